//! The one rule for proving it is still you before a change to how the
//! account is protected (step-up): a log-in within the last 5 minutes, the
//! password, or a current code from the app. Used by starting the app's
//! set-up and by adding, removing and re-keying passkeys. From a log-in
//! where a remembered browser stood in for the second factor, only a
//! second factor will do (the password is what that log-in already had). Moving the app
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
use crate::server::logins::Amr;
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
        None => Err(code_wanted(ask)),
    }
}

/// No second factor came: a 400 whose `code` field says `ask`.
fn code_wanted(ask: &str) -> AppError {
    let mut e = AppError::bad_request(ask);
    e.fields.insert("code".into(), ask.into());
    e
}

/// Whether the session's log-in (its factors, not its latest refresh) is
/// recent enough to stand as proof. A log-in where a remembered browser
/// stood in for the second factor never is: from such a browser a change
/// to the account's protection asks for the password or a code.
pub fn fresh(state: &AppState, session: &FullSession) -> bool {
    !remembered_only(session) && session.claims.auth.is_some_and(|at| state.now() - at <= FRESH_PROOF_SECONDS)
}

/// A remembered browser stood in for the second factor of this log-in,
/// and none was shown since: the password proves nothing the log-in did
/// not, so a change to the account's protection asks for a second factor
/// (`prove`), shown in the change or before it (`step_up`).
pub fn remembered_only(session: &FullSession) -> bool {
    let amr = session.user.amr;
    amr.has(Amr::REMEMBERED) && !amr.shown_second_factor()
}

/// The refusal of the password as proof from a remembered browser: a 400
/// whose `code` field asks for a second factor.
fn second_factor_wanted() -> AppError {
    let ask = "This browser was not asked for your second factor at log-in: to make this change, enter a code \
               from your app (or show your second factor on the security page first).";
    let mut e = AppError::bad_request(ask);
    e.fields.insert("code".into(), ask.into());
    e
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
    if let Some(code) = proof.code.map(str::trim).filter(|c| !c.is_empty()) {
        let code = crate::wire::parse_code(code)?;
        return verify_second_factor(state, meta, user, &SecondFactor::Totp(code)).await;
    }
    if remembered_only(session) {
        return Err(second_factor_wanted());
    }
    if let Some(password) = proof.password.filter(|p| !p.is_empty()) {
        return check_own_password(state, meta, user, password, "password").await;
    }
    if fresh(state, session) {
        return Ok(());
    }
    let mut e = AppError::bad_request(ask);
    e.fields.insert("password".into(), ask.into());
    Err(e)
}

/// Step-up of the log-in itself: a second factor shown now (under the code
/// guessing limits) is written into the live log-in (`amr` gains it, and
/// the time it was shown moves to now), so access rules that want one
/// shown recently (`fresh`) or not a remembered browser (`remembered =
/// false`) let it through. Nothing is written if the factor is refused.
pub async fn step_up(
    state: &AppState,
    meta: &RequestMeta,
    session: &FullSession,
    proof: Option<FactorProof<'_>>,
) -> Result<crate::wire::Done, AppError> {
    let user = session.row(state).await?;
    if !user.two_factor() {
        return Err(AppError::bad_request(
            "Two-factor authentication is off for this account: turn it on to show a second factor.",
        ));
    }
    state.db.hooks.pause(crate::server::hooks::STEP_UP_READY).await;
    match proof {
        // A typed code is checked and written into the log-in in one
        // transaction, run to its end if the client hangs up: a recovery
        // code is never spent for a log-in that ended meanwhile (the
        // check is rolled back with it, as if never tried).
        Some(FactorProof::Typed(typed)) => {
            let (state, meta, family) = (state.clone(), meta.clone(), session.user.family.clone());
            crate::server::throttle::detached(async move {
                let mut tx = state.db.begin().await?;
                if let Err(refused) = super::verify::check(&state, &meta, &mut tx, &user, &typed).await? {
                    crate::server::audit::commit(&state, tx).await?;
                    return Err(refused);
                }
                show_again(&state, &meta, tx, &family, &user, super::verify::factor_amr(&typed)).await
            })
            .await
        }
        // A passkey's ceremony is spent and its answer checked first (its
        // own writes: the ceremony and the key's counter), then written.
        Some(FactorProof::Passkey { ceremony, credential }) => {
            super::passkeys::prove_with_passkey(state, meta, session, &user, ceremony, credential).await?;
            let tx = state.db.begin().await?;
            show_again(state, meta, tx, &session.user.family, &user, Amr::PASSKEY).await
        }
        None => Err(code_wanted("Enter a code from your authenticator app.")),
    }
}

/// `step_up`'s write: the log-in `family` shows `factor` now, audited,
/// committed with whatever `tx` holds. A log-in that ended is a 401 and
/// nothing of `tx` is kept.
async fn show_again(
    state: &AppState,
    meta: &RequestMeta,
    mut tx: crate::server::db::Tx,
    family: &str,
    user: &UserRow,
    factor: Amr,
) -> Result<crate::wire::Done, AppError> {
    if !tx.show_factor_again(family, user.id, factor, state.now()).await? {
        return Err(AppError::unauthenticated());
    }
    crate::server::audit::record(state, &mut tx, Some(user.id), crate::wire::AuditKind::SecondFactorShown, meta)
        .await?;
    crate::server::audit::commit(state, tx).await?;
    tracing::info!(user_id = user.id, "second factor shown again");
    Ok(crate::wire::Done::new("Thank you: that was your second factor."))
}
