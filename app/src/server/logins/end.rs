//! Ending log-ins: this one (log-out), every one of the account (log-out
//! everywhere, the operator's command, and every change that moves the
//! session version on).

use super::cleared_cookies;
use crate::domain::Email;
use crate::error::AppError;
use crate::server::account::operator_meta;
use crate::server::audit::audit;
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
