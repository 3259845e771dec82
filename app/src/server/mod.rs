//! Server-only code: state, database, crypto and the operations behind the
//! server functions. Compiled with the `ssr` feature only.

pub mod account;
pub mod admin;
pub mod audit;
pub mod auth;
pub mod clock;
pub mod crypto;
pub mod db;
pub mod factors;
pub mod gate;
pub mod hooks;
pub mod identity;
pub mod logins;
pub mod mail;
pub mod metrics;
pub mod oidc;
pub mod passwords;
pub mod request;
pub mod retention;
pub mod state;
pub mod throttle;
pub mod time_zone;

use axum::extract::FromRequestParts;
use http::HeaderValue;
use leptos::prelude::use_context;
use leptos_axum::ResponseOptions;

use crate::error::AppError;
use crypto::tokens;
pub use state::AppState;

/// A response body with the `Set-Cookie` values that go with it.
pub struct WithCookies<T> {
    pub body: T,
    pub cookies: Vec<String>,
}

/// The application state provided to every server function.
pub fn app_state() -> Result<AppState, AppError> {
    use_context::<AppState>().ok_or_else(|| {
        tracing::error!("AppState missing from the server function context");
        AppError::internal()
    })
}

/// Runs an axum extractor (e.g. `FullSession`) on the current request.
pub async fn extract<T>(state: &AppState) -> Result<T, AppError>
where
    T: FromRequestParts<AppState, Rejection = AppError>,
{
    let mut parts = use_context::<http::request::Parts>().ok_or_else(AppError::internal)?;
    T::from_request_parts(&mut parts, state).await
}

/// The state, the full session and the client metadata of the current
/// request: what most server functions start with.
pub async fn full_request() -> Result<(AppState, auth::FullSession, request::RequestMeta), AppError> {
    let state = app_state()?;
    let session = extract::<auth::FullSession>(&state).await?;
    let meta = extract::<request::RequestMeta>(&state).await?;
    Ok((state, session, meta))
}

/// Adds `Set-Cookie` headers to the response.
pub fn set_cookies(values: &[String]) {
    let Some(res) = use_context::<ResponseOptions>() else { return };
    for value in values {
        if let Ok(v) = HeaderValue::from_str(value) {
            res.append_header(http::header::SET_COOKIE, v);
        }
    }
}

/// The current request's headers.
pub fn request_headers() -> Result<http::HeaderMap, AppError> {
    use_context::<http::request::Parts>().map(|p| p.headers).ok_or_else(AppError::internal)
}

/// Whether the request carries a refresh cookie (the page then restores the
/// session in the browser instead of sending the visitor to log in).
pub fn has_refresh_cookie() -> bool {
    let (Some(state), Ok(headers)) = (use_context::<AppState>(), request_headers()) else { return false };
    state.cookies.from_headers(tokens::CookieKind::Refresh, &headers).is_some()
}

pub fn set_status(status: http::StatusCode) {
    if let Some(res) = use_context::<ResponseOptions>() {
        res.set_status(status);
    }
}

/// Whether the request carries a live password-stage token: the log-in page
/// then renders its code step (the step is server state, so a reload, a
/// browser without JavaScript and a hydrated page agree).
pub fn password_stage_pending() -> bool {
    password_stage_factors().is_some()
}

/// The second factors a live password-stage token offers: (an
/// authenticator app, a passkey).
pub fn password_stage_factors() -> Option<(bool, bool)> {
    let (Some(state), Ok(headers)) = (use_context::<AppState>(), request_headers()) else { return None };
    state
        .cookies
        .from_headers(tokens::CookieKind::Access, &headers)
        .and_then(|t| state.keys.verify(t, tokens::Stage::Password, state.now()))
        .map(|claims| claims.factors())
}
