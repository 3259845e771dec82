//! Housekeeping: what is deleted once it can no longer matter (expired and
//! spent sessions, throttle windows that passed, old mail and audit rows,
//! remembered browsers that can no longer count).

use super::mail;
use super::state::AppState;
use crate::error::AppError;

/// How long a rotated or revoked refresh-token row is kept: a stolen copy
/// replayed within this time is still recognised (and ends its family).
pub const SPENT_SESSION_KEEP_SECONDS: i64 = 7 * 86_400;

/// Deletes expired and spent sessions, throttle rows whose window has
/// passed and audit events past their retention. Idempotent, so several
/// instances may run it at once.
pub async fn prune(state: &AppState) -> Result<super::db::Pruned, AppError> {
    let now = state.now();
    let limits = state.limits;
    let window = [
        limits.password_per_account,
        limits.password_per_account_untrusted,
        limits.code_per_account,
        limits.per_address,
        limits.registration_per_address,
    ]
    .iter()
    .map(|t| t.window.max(t.cap))
    .max()
    .unwrap_or(0);
    state.db.prune_mail(now - mail::KEEP_SECONDS, now).await?;
    state.db.sweep_remembered_browsers(now, now - state.remember_seconds).await?;
    state.db.prune(now, now - SPENT_SESSION_KEEP_SECONDS, now - window, now - state.audit_retention).await
}
