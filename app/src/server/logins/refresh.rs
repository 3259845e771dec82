//! Continuing a log-in: refresh-token rotation, its grace window, and
//! reuse as the theft alarm.

use super::issue_tokens;
use crate::error::AppError;
use crate::server::WithCookies;
use crate::server::audit::audit;
use crate::server::crypto::sha256_hex;
use crate::server::metrics::{METRICS, Refresh};
use crate::server::request::RequestMeta;
use crate::server::state::AppState;
use crate::wire::{AuditKind, User};

/// The answer to a second replay of a rotated token inside the grace
/// window: the browser already holds the successor.
fn replaced() -> AppError {
    AppError::conflict("This session was renewed a moment ago in another tab or request: retry with your new cookie.")
}

/// Rotates a refresh token: the presented one is spent and a successor
/// issued, with a new access token. First the log-in's row is held: a log-in
/// that ended (however, whenever) is refused, and an ending that comes
/// after waits for this refresh and then ends the log-in with its
/// successor. Presented again within the grace window
/// (`REFRESH_GRACE_SECONDS`, 10 s) of its rotation, a token gets one
/// successor of its own (two tabs restored together, a retried request);
/// a second replay is told to use its new cookie (409). Later, it was
/// copied: the log-in ends and its owner is told.
pub async fn refresh(state: &AppState, meta: &RequestMeta, token: Option<&str>) -> Result<WithCookies<User>, AppError> {
    let mut refused = Refresh::Refused;
    let result = refreshed(state, meta, token, &mut refused).await;
    match &result {
        Ok(_) => METRICS.refresh(Refresh::Ok),
        // Refused (401) or told to use its new cookie (409); a database
        // that did not answer is no refusal.
        Err(e) if matches!(e.status(), 401 | 409) => METRICS.refresh(refused),
        Err(_) => {}
    }
    result
}

/// `refresh`; `refused` says why when it ends in an error.
async fn refreshed(
    state: &AppState,
    meta: &RequestMeta,
    token: Option<&str>,
    refused: &mut Refresh,
) -> Result<WithCookies<User>, AppError> {
    let token = token.ok_or_else(AppError::unauthenticated)?;
    let now = state.now();
    let row = state.db.refresh_token(&sha256_hex(token.as_bytes())).await?.ok_or_else(AppError::unauthenticated)?;
    state.db.hooks.pause(crate::server::hooks::REFRESH_READ).await;
    let user = state.db.user_by_id(row.user_id).await?.ok_or_else(AppError::unauthenticated)?;
    let mut tx = state.db.begin().await?;
    let Some(login) = tx.hold_login(&row.family, row.user_id, now).await? else {
        return Err(AppError::unauthenticated());
    };
    if !tx.spend_refresh_token(row.id, now).await? {
        let used_at = tx.refresh_token_used_at(row.id).await?;
        let in_grace = used_at.is_some_and(|at| state.refresh_grace > 0 && now - at <= state.refresh_grace);
        if !in_grace {
            tx.revoke_login(&login.id, now).await?;
            tx.commit().await?;
            *refused = Refresh::Reused;
            audit(state, Some(row.user_id), AuditKind::RefreshReuseDetected, meta).await;
            tracing::warn!(user_id = row.user_id, "refresh token reuse detected: log-in ended");
            return Err(AppError::unauthenticated());
        }
        if !tx.claim_grace_successor(row.id, now).await? {
            return Err(replaced());
        }
        tracing::info!(user_id = row.user_id, "refresh token presented again within the grace window");
    }
    let cookies =
        issue_tokens(state, &mut tx, login.user_id, login.session_version, &login.id, login.expires_at, login.auth_at)
            .await?;
    tx.commit().await?;
    Ok(WithCookies { body: User::from(&user), cookies })
}
