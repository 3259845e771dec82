//! Changing the password while logged in (a reset by mail is in
//! `mail::links`).

use super::log_in::check_own_password;
use crate::domain::Password;
use crate::error::AppError;
use crate::server::WithCookies;
use crate::server::audit::audit;
use crate::server::auth::FullSession;
use crate::server::identity;
use crate::server::logins::{self, Amr};
use crate::server::request::RequestMeta;
use crate::server::state::AppState;
use crate::wire::{AuditKind, User};

/// Changes the password (the current one is required); other sessions end.
pub async fn change_password(
    state: &AppState,
    meta: &RequestMeta,
    session: FullSession,
    current: &str,
    new: Password,
) -> Result<WithCookies<User>, AppError> {
    let user = session.row(state).await?;
    check_own_password(state, meta, &user, current, "currentPassword").await?;
    identity::refuse_weak_password(state, &new, "newPassword", &[&user.email, &user.name]).await?;
    let hash = state.hasher.hash(&new).await?;
    // The hash, the session version, the revocation and this client's new
    // session: all or nothing (never "changed but logged out").
    let mut tx = state.db.begin().await?;
    let version = tx.set_password(user.id, &hash).await?;
    let amr = session.user.amr.with(Amr::PASSWORD);
    let cookies = logins::renew_all(state, &mut tx, user.id, version, amr, session.user.factor_at, meta).await?;
    tx.commit().await?;
    audit(state, Some(user.id), AuditKind::PasswordChanged, meta).await;
    Ok(WithCookies { cookies, body: User::from(&user) })
}
