//! The operations behind the API, one function each. They take parsed
//! input and an authenticated session type, and return the response body
//! plus the cookie to set; the server functions only translate.

use crate::api::{GenerateResponse, LogInResponse, User};
use crate::domain::{Email, Password, PersonName, TotpCode};
use crate::error::AppError;

use super::auth::{FullSession, PasswordSession};
use super::db::UserRow;
use super::state::AppState;
use super::tokens::{PASSWORD_STAGE_TTL, Stage};
use super::totp;

impl From<&UserRow> for User {
    fn from(row: &UserRow) -> Self {
        User {
            id: row.id,
            email: row.email.clone(),
            name: row.name.clone(),
            is_two_factor_authentication_enabled: row.totp_enabled,
        }
    }
}

/// A response body with the `Set-Cookie` value that goes with it.
pub struct WithCookie<T> {
    pub body: T,
    pub cookie: String,
}

fn full_cookie(state: &AppState, user_id: i64, version: i64) -> Result<String, AppError> {
    let token = state.keys.issue(user_id, Stage::Full, version, state.now(), state.session_ttl)?;
    Ok(state.cookies.set(&token, state.session_ttl))
}

pub async fn register(state: &AppState, email: Email, name: PersonName, password: Password) -> Result<User, AppError> {
    // Checked before hashing so a taken email costs no argon2 run; the
    // INSERT below still decides races.
    if state.db.user_by_email(email.as_str()).await?.is_some() {
        return Err(email_taken());
    }
    let hash = state.hasher.hash(&password).await?;
    match state.db.insert_user(email.as_str(), name.as_str(), &hash, state.now()).await? {
        Some(row) => {
            tracing::info!(user_id = row.id, "account created");
            Ok(User::from(&row))
        }
        None => Err(email_taken()),
    }
}

fn email_taken() -> AppError {
    let mut e = AppError::conflict("An account with this email already exists.");
    e.fields.insert("email".into(), "An account with this email already exists.".into());
    e
}

/// The password step. Unknown email, wrong password and a password outside
/// the length limits all give the same answer; an unknown email still costs
/// one argon2 verification.
pub async fn log_in(state: &AppState, email: Email, password: &str) -> Result<WithCookie<LogInResponse>, AppError> {
    let Ok(password) = Password::parse(password) else {
        return Err(AppError::invalid_credentials());
    };
    let user = state.db.user_by_email(email.as_str()).await?;
    let ok = state.hasher.verify(password.expose(), user.as_ref().map(|u| u.password_hash.as_str())).await?;
    let Some(user) = user.filter(|_| ok) else {
        tracing::info!("log-in refused");
        return Err(AppError::invalid_credentials());
    };
    let cookie = if user.totp_enabled {
        let token =
            state.keys.issue(user.id, Stage::Password, user.session_version, state.now(), PASSWORD_STAGE_TTL)?;
        state.cookies.set(&token, PASSWORD_STAGE_TTL)
    } else {
        full_cookie(state, user.id, user.session_version)?
    };
    tracing::info!(user_id = user.id, two_factor = user.totp_enabled, "password accepted");
    Ok(WithCookie { body: LogInResponse { user: User::from(&user), two_factor_required: user.totp_enabled }, cookie })
}

/// The code step: upgrades a password-stage session to a full one. The
/// matched time step must be later than the last accepted one.
pub async fn authenticate(
    state: &AppState,
    session: PasswordSession,
    code: TotpCode,
) -> Result<WithCookie<User>, AppError> {
    let user = session.user;
    let secret = user.totp_secret.as_deref().and_then(totp::from_base32).ok_or_else(|| {
        tracing::error!(user_id = user.id, "2FA is on but the stored secret is unreadable");
        AppError::internal()
    })?;
    let Some(step) = totp::verify(&secret, &code, state.now()) else {
        tracing::info!(user_id = user.id, "wrong two-factor code");
        return Err(AppError::invalid_code());
    };
    if !state.db.accept_totp_step(user.id, step).await? {
        tracing::info!(user_id = user.id, "replayed two-factor code");
        return Err(AppError::invalid_code());
    }
    tracing::info!(user_id = user.id, "second factor accepted");
    Ok(WithCookie { cookie: full_cookie(state, user.id, user.session_version)?, body: User::from(&user) })
}

/// Stores a new pending secret and returns it with its otpauth URI.
pub async fn generate(state: &AppState, session: FullSession) -> Result<GenerateResponse, AppError> {
    let user = session.user;
    if user.totp_enabled {
        return Err(AppError::conflict("Two-factor authentication is already on."));
    }
    let secret = totp::generate_secret()?;
    let base32 = totp::to_base32(&secret);
    let otpauth_url = totp::otpauth_url(&secret, &state.issuer, &user.email)?;
    state.db.set_pending_secret(user.id, &base32).await?;
    Ok(GenerateResponse { secret: base32, otpauth_url })
}

/// Confirms the pending secret with a code and turns 2FA on. Every older
/// token dies (the session version moves); this session gets a fresh one.
pub async fn turn_on(state: &AppState, session: FullSession, code: TotpCode) -> Result<WithCookie<User>, AppError> {
    let user = session.user;
    if user.totp_enabled {
        return Err(AppError::conflict("Two-factor authentication is already on."));
    }
    let Some(pending) = user.totp_pending_secret.as_deref() else {
        return Err(AppError::conflict("Start the set-up first: generate a secret and scan it."));
    };
    let secret = totp::from_base32(pending).ok_or_else(AppError::internal)?;
    let Some(step) = totp::verify(&secret, &code, state.now()) else {
        return Err(AppError::invalid_code());
    };
    let Some(version) = state.db.enable_totp(user.id, pending, step).await? else {
        return Err(AppError::conflict("The set-up changed in another window. Scan the newest QR code."));
    };
    tracing::info!(user_id = user.id, "two-factor authentication turned on");
    let mut body = User::from(&user);
    body.is_two_factor_authentication_enabled = true;
    Ok(WithCookie { cookie: full_cookie(state, user.id, version)?, body })
}
