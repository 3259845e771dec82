//! Authentication as types. `FullSession` is a request carrying a valid
//! full-stage token whose session version is current and whose log-in is
//! live; `PasswordSession` is one that passed the password step of a 2FA
//! account and owes the code. Server functions take one of these, so the
//! guard cannot be forgotten on a route: a password-stage token simply does
//! not produce a `FullSession`.
//!
//! A full session is answered from the session cache when it can be (see
//! `gate::cache`), so it carries who the person is, not their secrets: a
//! handler that needs the password hash or the second-factor secret asks
//! for `FullSession::row`, which reads the row afresh.

use axum::extract::FromRequestParts;
use http::request::Parts;

use super::crypto::tokens::{Claims, CookieKind, Stage};
use super::db::{SessionUser, UserRow};
use super::state::AppState;
use crate::error::AppError;

#[derive(Debug, Clone)]
pub struct FullSession {
    pub user: SessionUser,
    pub claims: Claims,
}

impl FullSession {
    /// The user's row as it is now, for a handler that needs the password
    /// hash or the second-factor secrets; refused if the session version
    /// moved on since this request was let in.
    pub async fn row(&self, state: &AppState) -> Result<UserRow, AppError> {
        let row = state.db.user_by_id(self.user.id).await?.ok_or_else(AppError::unauthenticated)?;
        if row.session_version != self.claims.ver {
            return Err(AppError::unauthenticated());
        }
        Ok(row)
    }
}

#[derive(Debug, Clone)]
pub struct PasswordSession {
    pub user: UserRow,
    pub claims: Claims,
}

fn claims(parts: &Parts, state: &AppState, stage: Stage) -> Result<(i64, Claims), AppError> {
    let token = state.cookies.from_headers(CookieKind::Access, &parts.headers).ok_or_else(AppError::unauthenticated)?;
    let claims = state.keys.verify(token, stage, state.now()).ok_or_else(AppError::unauthenticated)?;
    let id = claims.user_id().ok_or_else(AppError::unauthenticated)?;
    Ok((id, claims))
}

impl FromRequestParts<AppState> for FullSession {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let (id, claims) = claims(parts, state, Stage::Full)?;
        live_session(state, id, claims).await
    }
}

impl FullSession {
    /// Who is logged in at the OpenID authorize step: the portal's own
    /// session when the browser sent it (a same-site request), else the
    /// log-in the authorize cookie names (an app's redirect, which carries
    /// no Strict cookie). The same liveness rule either way. `None`: nobody.
    pub async fn at_authorize(parts: &Parts, state: &AppState) -> Result<Option<Self>, AppError> {
        for (kind, stage) in [(CookieKind::Access, Stage::Full), (CookieKind::Authorize, Stage::Authorize)] {
            let Some(token) = state.cookies.from_headers(kind, &parts.headers) else { continue };
            let Some(claims) = state.keys.verify(token, stage, state.now()) else { continue };
            let Some(id) = claims.user_id() else { continue };
            match live_session(state, id, claims).await {
                Ok(session) => return Ok(Some(session)),
                Err(e) if e.error == crate::error::ErrorKind::Unauthenticated => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }
}

async fn live_session(state: &AppState, id: i64, claims: Claims) -> Result<FullSession, AppError> {
    // A full session belongs to a refresh family that must be live (an
    // allow-list): after log-out, a detected reuse, expiry or pruning
    // its access token is refused too, not only the refresh token.
    let family = claims.sid.as_deref().ok_or_else(AppError::unauthenticated)?;
    let (now, cache) = (state.now(), state.db.gate_cache());
    let user = match cache.session(family, now) {
        Some(user) => user,
        None => {
            let generation = cache.generation();
            let user = state
                .db
                .session_user(id, family, now, &state.admin_group)
                .await?
                .ok_or_else(AppError::unauthenticated)?;
            cache.put_session(user.clone(), generation, now);
            user
        }
    };
    if user.id != id || user.session_version != claims.ver {
        return Err(AppError::unauthenticated());
    }
    tracing::Span::current().record("user_id", user.id).record("login_id", user.family.as_str());
    Ok(FullSession { user, claims })
}

impl FromRequestParts<AppState> for PasswordSession {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let stage = PasswordStage::from_request_parts(parts, state).await?;
        let user = state.db.user_by_id(stage.id).await?;
        stage.with_row(user)
    }
}

/// A password-stage token checked on its own, the account's row not yet
/// read: for the code step, which reads the row in its own transaction
/// (one trip to the database fewer) and then holds it to the same rules
/// as `PasswordSession` (`with_row`).
#[derive(Debug, Clone)]
pub struct PasswordStage {
    pub id: i64,
    pub claims: Claims,
}

impl PasswordStage {
    /// The session, once the account's `row` (as read now) is known: a
    /// row gone, a session version moved on, or no second factor left
    /// (turning 2FA off moves the version too) is 401.
    pub fn with_row(self, row: Option<UserRow>) -> Result<PasswordSession, AppError> {
        let user = row.ok_or_else(AppError::unauthenticated)?;
        // A password-stage token only exists for 2FA accounts (an app or
        // a passkey).
        if user.id != self.id || user.session_version != self.claims.ver || !user.two_factor() {
            return Err(AppError::unauthenticated());
        }
        tracing::Span::current().record("user_id", user.id);
        Ok(PasswordSession { user, claims: self.claims })
    }
}

impl From<PasswordSession> for PasswordStage {
    fn from(session: PasswordSession) -> Self {
        Self { id: session.user.id, claims: session.claims }
    }
}

impl FromRequestParts<AppState> for PasswordStage {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let (id, claims) = claims(parts, state, Stage::Password)?;
        // A password-stage token has no family and must not claim one.
        if claims.sid.is_some() {
            return Err(AppError::unauthenticated());
        }
        Ok(Self { id, claims })
    }
}
