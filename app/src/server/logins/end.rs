//! Ending log-ins: this one (log-out), one of the person's own from the
//! security page's list, every one of the account (log-out everywhere, the
//! operator's command, and every change that moves the session version
//! on).

use super::cleared_cookies;
use crate::domain::Email;
use crate::error::{AppError, ErrorKind};
use crate::server::account::operator_meta;
use crate::server::audit::{self, audit};
use crate::server::auth::FullSession;
use crate::server::crypto::sha256_hex;
use crate::server::crypto::tokens::{CookieKind, Stage};
use crate::server::request::RequestMeta;
use crate::server::state::AppState;
use crate::wire::AuditKind;

/// Ends the log-in whose cookies `headers` carry: the one named by the
/// access token, the one of the refresh token and those of the gate
/// cookies (so a copied access token is refused too, and a log-in the
/// portal's cookies no longer name, say one the password was typed again
/// over, does not stay open on the apps). Returns the cookies that clear
/// them. Succeeds without a log-in too.
pub async fn log_out(state: &AppState, headers: &http::HeaderMap) -> Result<Vec<String>, AppError> {
    let now = state.now();
    let mut logins: Vec<String> = state
        .cookies
        .from_headers(CookieKind::Access, headers)
        .and_then(|t| state.keys.verify(t, Stage::Full, now))
        .and_then(|c| c.sid)
        .into_iter()
        .collect();
    if let Some(token) = state.cookies.from_headers(CookieKind::Refresh, headers)
        && let Some(login) = state.db.login_of_refresh(&sha256_hex(token.as_bytes())).await?
    {
        logins.push(login);
    }
    for value in state.cookies.gate_values(headers).into_iter().take(state.gate.cookie_domains.len()) {
        if let Some(login) = state.db.login_of_gate(&sha256_hex(value.as_bytes())).await? {
            logins.push(login);
        }
    }
    logins.sort();
    logins.dedup();
    state.db.revoke_logins(&logins, now).await?;
    Ok(cleared_cookies(state))
}

/// What ending one log-in from the list did.
#[derive(Debug, Clone)]
pub struct EndedLogIn {
    /// It was this browser's own log-in: its cookies are to be cleared,
    /// as a log-out does.
    pub current: bool,
    /// Its browser in words, as in a sentence ("Firefox on Windows",
    /// "an unknown browser"), for the answer to say.
    pub browser: String,
}

/// The answer for a handle that names none of the person's live log-ins:
/// another person's, one that already ended, or none at all.
fn no_such_log_in() -> AppError {
    AppError::new(ErrorKind::NotFound, "That log-in has already ended, or is not one of yours.")
}

/// Ends one of the person's own log-ins, named by the handle the list
/// showed (`list::handle`). The log-in is looked for among the account's
/// live log-ins inside the transaction that ends it, so a handle can only
/// ever reach its owner's; the ending is the one every log-out uses
/// (`Tx::revoke_login`: refresh tokens, gate cookies and the caches go
/// with the row; a refresh holding the row first is waited for), and the
/// audit event lands with it.
pub async fn end_one(
    state: &AppState,
    meta: &RequestMeta,
    session: &FullSession,
    handle: &str,
) -> Result<EndedLogIn, AppError> {
    let user_id = session.user.id;
    let now = state.now();
    let mut tx = state.db.begin().await?;
    let live = tx.live_logins(user_id, now).await?;
    let Some(login) = live.into_iter().find(|l| super::list::handle(&l.id) == handle) else {
        return Err(no_such_log_in());
    };
    tx.revoke_login(&login.id, now).await?;
    audit::record(state, &mut tx, Some(user_id), AuditKind::LogInEnded, meta).await?;
    audit::commit(state, tx).await?;
    Ok(EndedLogIn {
        current: login.id == session.user.family,
        browser: crate::server::mail::browser_name(login.user_agent.as_deref().unwrap_or("")),
    })
}

/// Moves the session version on and ends every log-in, together.
pub async fn end_all(state: &AppState, user_id: i64) -> Result<(), AppError> {
    let mut tx = state.db.begin().await?;
    tx.bump_session_version(user_id).await?;
    tx.revoke_user_logins(user_id, state.now()).await?;
    tx.commit().await
}

/// Ends every session of the user, on every device, this one included.
pub async fn log_out_everywhere(state: &AppState, meta: &RequestMeta, session: FullSession) -> Result<(), AppError> {
    let user = session.user;
    super::end_all(state, user.id).await?;
    audit(state, Some(user.id), AuditKind::SessionsRevoked, meta).await;
    Ok(())
}

/// Operator: ends every session of a user.
pub async fn operator_revoke_sessions(state: &AppState, email: &Email) -> Result<bool, AppError> {
    let Some(user) = state.db.user_by_email(email.as_str()).await? else { return Ok(false) };
    super::end_all(state, user.id).await?;
    audit(state, Some(user.id), AuditKind::SessionsRevoked, &operator_meta()).await;
    Ok(true)
}
