//! Authentication as types. `FullSession` is a request carrying a valid
//! full-stage token whose session version is current; `PasswordSession` is
//! one that passed the password step of a 2FA account and owes the code.
//! Server functions take one of these, so the guard cannot be forgotten on a
//! route: a password-stage token simply does not produce a `FullSession`.

use axum::extract::FromRequestParts;
use http::request::Parts;

use super::db::UserRow;
use super::state::AppState;
use super::tokens::{Claims, CookieKind, Stage};
use crate::error::AppError;

#[derive(Debug, Clone)]
pub struct FullSession {
    pub user: UserRow,
    pub claims: Claims,
}

#[derive(Debug, Clone)]
pub struct PasswordSession {
    pub user: UserRow,
    pub claims: Claims,
}

async fn session(parts: &Parts, state: &AppState, stage: Stage) -> Result<(UserRow, Claims), AppError> {
    let token = state.cookies.from_headers(CookieKind::Access, &parts.headers).ok_or_else(AppError::unauthenticated)?;
    let claims = state.keys.verify(token, stage, state.now()).ok_or_else(AppError::unauthenticated)?;
    let id = claims.user_id().ok_or_else(AppError::unauthenticated)?;
    // A full session belongs to a refresh family that must be live (an
    // allow-list): after log-out, a detected reuse, expiry or pruning its
    // access token is refused too, not only the refresh token. A
    // password-stage token has no family and must not claim one.
    let family = match stage {
        Stage::Full => Some(claims.sid.as_deref().ok_or_else(AppError::unauthenticated)?),
        Stage::Password => None,
    };
    let (user, live) =
        state.db.user_for_session(id, family, state.now()).await?.ok_or_else(AppError::unauthenticated)?;
    if user.session_version != claims.ver || (family.is_some() && !live) {
        return Err(AppError::unauthenticated());
    }
    Ok((user, claims))
}

impl FromRequestParts<AppState> for FullSession {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let (user, claims) = session(parts, state, Stage::Full).await?;
        Ok(Self { user, claims })
    }
}

impl FromRequestParts<AppState> for PasswordSession {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let (user, claims) = session(parts, state, Stage::Password).await?;
        // A password-stage token only exists for 2FA accounts; if 2FA was
        // turned off since, the version bump already refused it above.
        if !user.totp_enabled {
            return Err(AppError::unauthenticated());
        }
        Ok(Self { user, claims })
    }
}
