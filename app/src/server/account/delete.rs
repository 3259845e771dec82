//! Deleting an account, by an administrator (the admin page) or the
//! operator (`server user delete`). One transaction: every log-in ends
//! (so each app that received tokens is told, by the back-channel queue),
//! then every row that names the person goes; their audit events stay,
//! anonymised, and one more says an account was deleted and by whom.

use crate::error::AppError;
use crate::server::audit;
use crate::server::db::{Tx, UserRow};
use crate::server::request::RequestMeta;
use crate::server::state::AppState;
use crate::wire::AuditKind;

/// Deletes `user`'s account in `tx` (the caller commits, with
/// `audit::commit`); `actor` is the administrator who asked (None: the
/// operator). False when it was gone already.
pub async fn delete_account(
    state: &AppState,
    tx: &mut Tx,
    user: &UserRow,
    actor: Option<i64>,
    meta: &RequestMeta,
) -> Result<bool, AppError> {
    tx.revoke_user_logins(user.id, state.now()).await?;
    if !tx.delete_account(user.id, &user.email).await? {
        return Ok(false);
    }
    audit::record_by(state, tx, None, actor, AuditKind::AccountDeleted, meta).await?;
    tracing::info!(account = user.id, actor, "an account was deleted");
    Ok(true)
}
