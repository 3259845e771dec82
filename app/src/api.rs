//! The HTTP API (DESIGN §2) as Leptos server functions with explicit,
//! stable endpoints under `/api` and camelCase JSON bodies. The browser app
//! calls these functions; any other client calls the same URLs. Each body
//! parses its input into domain types, calls one service function and maps
//! the result: no logic lives here.

use std::collections::BTreeMap;

use leptos::prelude::*;
use leptos::server_fn::codec::{GetUrl, Json};
use serde::{Deserialize, Serialize};

use crate::domain::{Email, Password, PersonName, RecoveryCode, SecondFactor, TotpCode};
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

/// Turning 2FA on: the user and 10 single-use recovery codes, shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnOnResponse {
    pub user: User,
    pub recovery_codes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryCodesResponse {
    pub recovery_codes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TwoFactorStatus {
    pub enabled: bool,
    pub recovery_codes_left: i64,
}

/// Kinds of security events in the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    LogInOk,
    LogInFailed,
    CodeFailed,
    Throttled,
    TwoFactorOn,
    TwoFactorOff,
    RecoveryCodeUsed,
    RecoveryCodesRegenerated,
    RefreshReuseDetected,
    PasswordChanged,
    SessionsRevoked,
    TwoFactorReset,
}

impl AuditKind {
    const ALL: [AuditKind; 12] = [
        AuditKind::LogInOk,
        AuditKind::LogInFailed,
        AuditKind::CodeFailed,
        AuditKind::Throttled,
        AuditKind::TwoFactorOn,
        AuditKind::TwoFactorOff,
        AuditKind::RecoveryCodeUsed,
        AuditKind::RecoveryCodesRegenerated,
        AuditKind::RefreshReuseDetected,
        AuditKind::PasswordChanged,
        AuditKind::SessionsRevoked,
        AuditKind::TwoFactorReset,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::LogInOk => "log_in_ok",
            AuditKind::LogInFailed => "log_in_failed",
            AuditKind::CodeFailed => "code_failed",
            AuditKind::Throttled => "throttled",
            AuditKind::TwoFactorOn => "two_factor_on",
            AuditKind::TwoFactorOff => "two_factor_off",
            AuditKind::RecoveryCodeUsed => "recovery_code_used",
            AuditKind::RecoveryCodesRegenerated => "recovery_codes_regenerated",
            AuditKind::RefreshReuseDetected => "refresh_reuse_detected",
            AuditKind::PasswordChanged => "password_changed",
            AuditKind::SessionsRevoked => "sessions_revoked",
            AuditKind::TwoFactorReset => "two_factor_reset",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// How the security page names the event.
    pub fn label(self) -> &'static str {
        match self {
            AuditKind::LogInOk => "Logged in",
            AuditKind::LogInFailed => "Failed log-in (wrong password)",
            AuditKind::CodeFailed => "Wrong two-factor code",
            AuditKind::Throttled => "Too many attempts: slowed down",
            AuditKind::TwoFactorOn => "Two-factor authentication turned on",
            AuditKind::TwoFactorOff => "Two-factor authentication turned off",
            AuditKind::RecoveryCodeUsed => "Recovery code used",
            AuditKind::RecoveryCodesRegenerated => "New recovery codes made",
            AuditKind::RefreshReuseDetected => "Stolen session detected and ended",
            AuditKind::PasswordChanged => "Password changed",
            AuditKind::SessionsRevoked => "Logged out everywhere",
            AuditKind::TwoFactorReset => "Two-factor authentication reset by an administrator",
        }
    }

    /// Events worth a warning colour on the security page.
    pub fn is_warning(self) -> bool {
        matches!(
            self,
            AuditKind::LogInFailed
                | AuditKind::CodeFailed
                | AuditKind::Throttled
                | AuditKind::RefreshReuseDetected
                | AuditKind::TwoFactorReset
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivityEvent {
    pub kind: AuditKind,
    /// Unix seconds.
    pub at: i64,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    pub events: Vec<ActivityEvent>,
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

/// A 400 for one field, its message also the error's message.
fn field_failure(name: &str, e: crate::domain::ParseError) -> AppError {
    let mut errors = BTreeMap::new();
    errors.insert(name.to_owned(), e.0.to_owned());
    let mut err = AppError::fields(errors);
    err.message = e.0.to_owned();
    err
}

pub fn parse_code(code: &str) -> Result<TotpCode, AppError> {
    TotpCode::parse(code).map_err(|e| field_failure("twoFactorAuthenticationCode", e))
}

/// Exactly one of a 6-digit code or a recovery code.
pub fn parse_second_factor(code: Option<&str>, recovery: Option<&str>) -> Result<SecondFactor, AppError> {
    let present = |v: Option<&str>| v.map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
    match (present(code), present(recovery)) {
        (Some(c), None) => parse_code(&c).map(SecondFactor::Totp),
        (None, Some(r)) => {
            RecoveryCode::parse(&r).map(SecondFactor::Recovery).map_err(|e| field_failure("recoveryCode", e))
        }
        (None, None) => Err(AppError::bad_request("Enter the 6-digit code from your app or a recovery code.")),
        (Some(_), Some(_)) => Err(AppError::bad_request("Send a 6-digit code or a recovery code, not both.")),
    }
}

/// One field holding either a 6-digit code or a recovery code, told apart
/// by their shapes (a recovery code has letters). The forms use it where a
/// switch between two fields would need JavaScript.
pub fn parse_any_second_factor(text: &str) -> Result<SecondFactor, AppError> {
    if let Ok(code) = TotpCode::parse(text) {
        return Ok(SecondFactor::Totp(code));
    }
    RecoveryCode::parse(text).map(SecondFactor::Recovery).map_err(|_| {
        field_failure(
            "code",
            crate::domain::ParseError("Enter the 6-digit code from your app or one of your recovery codes."),
        )
    })
}

pub fn parse_new_password(password: &str) -> Result<Password, AppError> {
    Password::parse(password).map_err(|e| field_failure("newPassword", e))
}

pub fn parse_email(email: &str) -> Result<Email, AppError> {
    Email::parse(email).map_err(|e| field_failure("email", e))
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
/// sets the session cookies (a password-stage one when 2FA is on).
#[server(prefix = "/api", endpoint = "authentication/log-in", input = Json)]
pub async fn log_in(email: String, password: String) -> Result<LogInResponse, AppError> {
    use crate::server::{app_state, extract, request::RequestMeta, service, set_cookies};
    let state = app_state()?;
    let meta = extract::<RequestMeta>(&state).await?;
    let email = parse_email(&email)?;
    let out = service::log_in(&state, &meta, email, &password).await?;
    set_cookies(&out.cookies);
    Ok(out.body)
}

/// POST /api/2fa/authenticate: a password-stage session plus a current code
/// or a recovery code becomes a full session.
#[server(prefix = "/api", endpoint = "2fa/authenticate", input = Json)]
pub async fn authenticate_two_factor(
    #[server(rename = "twoFactorAuthenticationCode")] code: Option<String>,
    #[server(rename = "recoveryCode")] recovery_code: Option<String>,
) -> Result<User, AppError> {
    use crate::server::{app_state, auth::PasswordSession, extract, request::RequestMeta, service, set_cookies};
    let state = app_state()?;
    let session = extract::<PasswordSession>(&state).await?;
    let meta = extract::<RequestMeta>(&state).await?;
    let factor = parse_second_factor(code.as_deref(), recovery_code.as_deref())?;
    let out = service::authenticate(&state, &meta, session, factor).await?;
    set_cookies(&out.cookies);
    Ok(out.body)
}

/// POST /api/2fa/generate: a new pending secret for the enrolment wizard.
/// While 2FA is on it needs `twoFactorAuthenticationCode`.
#[server(prefix = "/api", endpoint = "2fa/generate", input = Json)]
pub async fn generate_two_factor(
    #[server(rename = "twoFactorAuthenticationCode")] code: Option<String>,
) -> Result<GenerateResponse, AppError> {
    use crate::server::{full_request, service};
    let (state, session, meta) = full_request().await?;
    let code = code.as_deref().map(str::trim).filter(|c| !c.is_empty()).map(parse_code).transpose()?;
    service::generate(&state, &meta, session, code).await
}

/// POST /api/2fa/turn-on: confirms the pending secret with a code; answers
/// the user and 10 recovery codes.
#[server(prefix = "/api", endpoint = "2fa/turn-on", input = Json)]
pub async fn turn_on_two_factor(
    #[server(rename = "twoFactorAuthenticationCode")] code: String,
) -> Result<TurnOnResponse, AppError> {
    use crate::server::{full_request, service, set_cookies};
    let (state, session, meta) = full_request().await?;
    let out = service::turn_on(&state, &meta, session, &code).await?;
    set_cookies(&out.cookies);
    Ok(out.body)
}

/// POST /api/2fa/turn-off: the password and a current code or a recovery code.
#[server(prefix = "/api", endpoint = "2fa/turn-off", input = Json)]
pub async fn turn_off_two_factor(
    password: String,
    #[server(rename = "twoFactorAuthenticationCode")] code: Option<String>,
    #[server(rename = "recoveryCode")] recovery_code: Option<String>,
) -> Result<User, AppError> {
    use crate::server::{full_request, service, set_cookies};
    let (state, session, meta) = full_request().await?;
    let factor = parse_second_factor(code.as_deref(), recovery_code.as_deref())?;
    let out = service::turn_off(&state, &meta, session, &password, factor).await?;
    set_cookies(&out.cookies);
    Ok(out.body)
}

/// POST /api/2fa/recovery-codes: a new set (the old ones stop working).
#[server(prefix = "/api", endpoint = "2fa/recovery-codes", input = Json)]
pub async fn regenerate_recovery_codes(
    #[server(rename = "twoFactorAuthenticationCode")] code: String,
) -> Result<RecoveryCodesResponse, AppError> {
    use crate::server::{full_request, service};
    let (state, session, meta) = full_request().await?;
    let code = parse_code(&code)?;
    service::regenerate_recovery_codes(&state, &meta, session, code).await
}

/// GET /api/2fa/status: whether 2FA is on and how many recovery codes are left.
#[server(prefix = "/api", endpoint = "2fa/status", input = GetUrl)]
pub async fn fetch_two_factor_status() -> Result<TwoFactorStatus, AppError> {
    use crate::server::{app_state, auth::FullSession, extract, service};
    let state = app_state()?;
    let session = extract::<FullSession>(&state).await?;
    service::status(&state, session).await
}

/// GET /api/authentication: the current user, for a full session only.
#[server(prefix = "/api", endpoint = "authentication", input = GetUrl)]
pub async fn current_user() -> Result<User, AppError> {
    use crate::server::{app_state, auth::FullSession, extract};
    let state = app_state()?;
    let session = extract::<FullSession>(&state).await?;
    Ok(User::from(&session.user))
}

/// POST /api/authentication/refresh: rotates the refresh token and issues a
/// new access token. A reused refresh token ends its whole session family.
#[server(prefix = "/api", endpoint = "authentication/refresh", input = Json)]
pub async fn refresh() -> Result<User, AppError> {
    use crate::server::tokens::CookieKind;
    use crate::server::{app_state, extract, request::RequestMeta, request_headers, service, set_cookies};
    let state = app_state()?;
    let meta = extract::<RequestMeta>(&state).await?;
    let headers = request_headers()?;
    let token = state.cookies.from_headers(CookieKind::Refresh, &headers);
    match service::refresh(&state, &meta, token).await {
        Ok(out) => {
            set_cookies(&out.cookies);
            Ok(out.body)
        }
        Err(e) => {
            set_cookies(&service::cleared_cookies(&state));
            Err(e)
        }
    }
}

/// POST /api/authentication/log-out: ends this session and clears the
/// cookies. Always 200.
#[server(prefix = "/api", endpoint = "authentication/log-out", input = Json)]
pub async fn log_out() -> Result<Done, AppError> {
    use crate::server::tokens::{CookieKind, Stage};
    use crate::server::{app_state, request_headers, service, set_cookies};
    let state = app_state()?;
    let headers = request_headers()?;
    let sid = state
        .cookies
        .from_headers(CookieKind::Access, &headers)
        .and_then(|t| state.keys.verify(t, Stage::Full, state.now()))
        .and_then(|c| c.sid);
    let refresh = state.cookies.from_headers(CookieKind::Refresh, &headers);
    service::log_out(&state, sid, refresh).await?;
    set_cookies(&service::cleared_cookies(&state));
    Ok(Done { message: "Logged out.".into() })
}

/// POST /api/authentication/log-out-everywhere: ends every session of the
/// user on every device, this one included.
#[server(prefix = "/api", endpoint = "authentication/log-out-everywhere", input = Json)]
pub async fn log_out_everywhere() -> Result<Done, AppError> {
    use crate::server::{full_request, service, set_cookies};
    let (state, session, meta) = full_request().await?;
    service::log_out_everywhere(&state, &meta, session).await?;
    set_cookies(&service::cleared_cookies(&state));
    Ok(Done { message: "Logged out everywhere.".into() })
}

/// POST /api/authentication/change-password: needs the current password;
/// every other session ends.
#[server(prefix = "/api", endpoint = "authentication/change-password", input = Json)]
pub async fn change_password(
    #[server(rename = "currentPassword")] current_password: String,
    #[server(rename = "newPassword")] new_password: String,
) -> Result<User, AppError> {
    use crate::server::{full_request, service, set_cookies};
    let (state, session, meta) = full_request().await?;
    let new = parse_new_password(&new_password)?;
    let out = service::change_password(&state, &meta, session, &current_password, new).await?;
    set_cookies(&out.cookies);
    Ok(out.body)
}

/// GET /api/authentication/activity: the user's recent security events.
#[server(prefix = "/api", endpoint = "authentication/activity", input = GetUrl)]
pub async fn fetch_activity() -> Result<Activity, AppError> {
    use crate::server::{app_state, auth::FullSession, extract, service};
    let state = app_state()?;
    let session = extract::<FullSession>(&state).await?;
    Ok(Activity { events: service::activity(&state, session).await? })
}
