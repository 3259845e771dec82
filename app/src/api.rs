//! The HTTP API (DESIGN §2) as Leptos server functions with explicit,
//! stable endpoints under `/api` and camelCase JSON bodies. The browser app
//! calls these functions; any other client calls the same URLs. Each body
//! parses its input into domain types, calls one service function and maps
//! the result: no logic lives here.

use std::collections::BTreeMap;

use leptos::prelude::*;
use leptos::server_fn::codec::{GetUrl, Json};
use serde::{Deserialize, Serialize};

use crate::domain::{Email, Password, PersonName, TotpCode};
use crate::error::AppError;

/// The user as every endpoint returns it. The TOTP secret is not a field,
/// so no response can carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub is_two_factor_authentication_enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogInResponse {
    pub user: User,
    pub two_factor_required: bool,
}

/// A pending secret: base32 for manual entry and the URI for the QR code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateResponse {
    pub secret: String,
    pub otpauth_url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {
    pub message: String,
}

/// Parses a field, collecting its message under the JSON field name.
fn field<T>(
    errors: &mut BTreeMap<String, String>,
    name: &str,
    parsed: Result<T, crate::domain::ParseError>,
) -> Option<T> {
    match parsed {
        Ok(v) => Some(v),
        Err(e) => {
            errors.insert(name.to_owned(), e.0.to_owned());
            None
        }
    }
}

/// Parses the sign-up form. Shared by the browser (to show field errors
/// before sending) and the server (the authority).
pub fn parse_registration(email: &str, name: &str, password: &str) -> Result<(Email, PersonName, Password), AppError> {
    let mut errors = BTreeMap::new();
    let email = field(&mut errors, "email", Email::parse(email));
    let name = field(&mut errors, "name", PersonName::parse(name));
    let password = field(&mut errors, "password", Password::parse(password));
    match (email, name, password) {
        (Some(e), Some(n), Some(p)) => Ok((e, n, p)),
        _ => Err(AppError::fields(errors)),
    }
}

pub fn parse_code(code: &str) -> Result<TotpCode, AppError> {
    TotpCode::parse(code).map_err(|e| {
        let mut errors = BTreeMap::new();
        errors.insert("twoFactorAuthenticationCode".to_owned(), e.0.to_owned());
        let mut err = AppError::fields(errors);
        err.message = e.0.to_owned();
        err
    })
}

pub fn parse_email(email: &str) -> Result<Email, AppError> {
    Email::parse(email).map_err(|e| {
        let mut errors = BTreeMap::new();
        errors.insert("email".to_owned(), e.0.to_owned());
        let mut err = AppError::fields(errors);
        err.message = e.0.to_owned();
        err
    })
}

/// POST /api/authentication/register → 201 with the user.
#[server(prefix = "/api", endpoint = "authentication/register", input = Json)]
pub async fn register(email: String, name: String, password: String) -> Result<User, AppError> {
    use crate::server::{app_state, service, set_status};
    let state = app_state()?;
    let (email, name, password) = parse_registration(&email, &name, &password)?;
    let user = service::register(&state, email, name, password).await?;
    set_status(http::StatusCode::CREATED);
    Ok(user)
}

/// POST /api/authentication/log-in → the user and whether a code is owed;
/// sets the access cookie (password stage when 2FA is on).
#[server(prefix = "/api", endpoint = "authentication/log-in", input = Json)]
pub async fn log_in(email: String, password: String) -> Result<LogInResponse, AppError> {
    use crate::server::{app_state, service, set_cookie};
    let state = app_state()?;
    let email = parse_email(&email)?;
    let out = service::log_in(&state, email, &password).await?;
    set_cookie(&out.cookie);
    Ok(out.body)
}

/// POST /api/2fa/authenticate: a password-stage session plus a current code
/// becomes a full session.
#[server(prefix = "/api", endpoint = "2fa/authenticate", input = Json)]
pub async fn authenticate_two_factor(
    #[server(rename = "twoFactorAuthenticationCode")] code: String,
) -> Result<User, AppError> {
    use crate::server::{app_state, auth::PasswordSession, extract, service, set_cookie};
    let state = app_state()?;
    let session = extract::<PasswordSession>(&state).await?;
    let code = parse_code(&code)?;
    let out = service::authenticate(&state, session, code).await?;
    set_cookie(&out.cookie);
    Ok(out.body)
}

/// POST /api/2fa/generate: a new pending secret for the enrolment wizard.
#[server(prefix = "/api", endpoint = "2fa/generate", input = Json)]
pub async fn generate_two_factor() -> Result<GenerateResponse, AppError> {
    use crate::server::{app_state, auth::FullSession, extract, service};
    let state = app_state()?;
    let session = extract::<FullSession>(&state).await?;
    service::generate(&state, session).await
}

/// POST /api/2fa/turn-on: confirms the pending secret with a code.
#[server(prefix = "/api", endpoint = "2fa/turn-on", input = Json)]
pub async fn turn_on_two_factor(
    #[server(rename = "twoFactorAuthenticationCode")] code: String,
) -> Result<User, AppError> {
    use crate::server::{app_state, auth::FullSession, extract, service, set_cookie};
    let state = app_state()?;
    let session = extract::<FullSession>(&state).await?;
    let code = parse_code(&code)?;
    let out = service::turn_on(&state, session, code).await?;
    set_cookie(&out.cookie);
    Ok(out.body)
}

/// GET /api/authentication: the current user, for a full session only.
#[server(prefix = "/api", endpoint = "authentication", input = GetUrl)]
pub async fn current_user() -> Result<User, AppError> {
    use crate::server::{app_state, auth::FullSession, extract};
    let state = app_state()?;
    let session = extract::<FullSession>(&state).await?;
    Ok(User::from(&session.user))
}

/// POST /api/authentication/log-out: clears the cookie. Always 200.
#[server(prefix = "/api", endpoint = "authentication/log-out", input = Json)]
pub async fn log_out() -> Result<Done, AppError> {
    use crate::server::{app_state, set_cookie};
    let state = app_state()?;
    set_cookie(&state.cookies.clear());
    Ok(Done { message: "Logged out.".into() })
}
