//! The one rule for proving it is still you before a change to how the
//! account is protected (step-up): a log-in within the last 5 minutes, the
//! password, or a current code from the app. Used by starting the app's
//! set-up and by adding, removing and re-keying passkeys. Moving the app
//! to a new phone while it is on asks for more, a second factor presented
//! now (`Needs::SecondFactor`): a current code, a recovery code (spent) or
//! a passkey; neither the password nor a recent log-in will do, so a
//! stolen session (or a stolen password) alone cannot move the second
//! factor to another phone.

use super::verify::verify_second_factor;
use crate::domain::SecondFactor;
use crate::error::AppError;
use crate::server::account::check_own_password;
use crate::server::auth::FullSession;
use crate::server::db::UserRow;
use crate::server::request::RequestMeta;
use crate::server::state::AppState;

/// How recent a log-in stands in for the password when changing a factor.
pub const FRESH_PROOF_SECONDS: i64 = 5 * 60;

/// What the person typed to prove it is them (either may be absent).
#[derive(Default)]
pub struct Proof<'a> {
    pub password: Option<&'a str>,
    pub code: Option<&'a str>,
}

/// A second factor presented as proof: one typed (a code from the app or a
/// recovery code), or a passkey's answer to a `proof` ceremony
/// (`passkeys::proof_start`).
pub enum FactorProof<'a> {
    Typed(SecondFactor),
    Passkey { ceremony: &'a str, credential: &'a serde_json::Value },
}

/// Checks a second factor presented now, under the code guessing limits (a
/// recovery code is spent, a passkey's counter moves on). With none, a 400
/// whose `code` field says `ask`.
pub async fn prove_second_factor(
    state: &AppState,
    meta: &RequestMeta,
    session: &FullSession,
    user: &UserRow,
    proof: Option<FactorProof<'_>>,
    ask: &str,
) -> Result<(), AppError> {
    match proof {
        Some(FactorProof::Typed(factor)) => verify_second_factor(state, meta, user, &factor).await,
        Some(FactorProof::Passkey { ceremony, credential }) => {
            super::passkeys::prove_with_passkey(state, meta, session, user, ceremony, credential).await
        }
        None => {
            let mut e = AppError::bad_request(ask);
            e.fields.insert("code".into(), ask.into());
            Err(e)
        }
    }
}

/// Whether the session's log-in (its factors, not its latest refresh) is
/// recent enough to stand as proof.
pub fn fresh(state: &AppState, session: &FullSession) -> bool {
    session.claims.auth.is_some_and(|at| state.now() - at <= FRESH_PROOF_SECONDS)
}

/// Checks the proof under the guessing limits of what was typed: the
/// password if given, else a code if given, else the log-in's age. With
/// none of them, a 400 whose `password` field says `ask`.
pub async fn prove(
    state: &AppState,
    meta: &RequestMeta,
    session: &FullSession,
    user: &UserRow,
    proof: Proof<'_>,
    ask: &str,
) -> Result<(), AppError> {
    if let Some(password) = proof.password.filter(|p| !p.is_empty()) {
        return check_own_password(state, meta, user, password, "password").await;
    }
    if let Some(code) = proof.code.map(str::trim).filter(|c| !c.is_empty()) {
        let code = crate::wire::parse_code(code)?;
        return verify_second_factor(state, meta, user, &SecondFactor::Totp(code)).await;
    }
    if fresh(state, session) {
        return Ok(());
    }
    let mut e = AppError::bad_request(ask);
    e.fields.insert("password".into(), ask.into());
    Err(e)
}
