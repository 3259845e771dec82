//! Server-only code: state, database, crypto and the operations behind the
//! server functions. Compiled with the `ssr` feature only.

pub mod auth;
pub mod clock;
pub mod db;
pub mod passwords;
pub mod service;
pub mod state;
pub mod tokens;
pub mod totp;

use axum::extract::FromRequestParts;
use http::HeaderValue;
use leptos::prelude::use_context;
use leptos_axum::ResponseOptions;

use crate::error::AppError;
pub use state::AppState;

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

/// Adds a `Set-Cookie` header to the response.
pub fn set_cookie(value: &str) {
    if let (Some(res), Ok(v)) = (use_context::<ResponseOptions>(), HeaderValue::from_str(value)) {
        res.append_header(http::header::SET_COOKIE, v);
    }
}

pub fn set_status(status: http::StatusCode) {
    if let Some(res) = use_context::<ResponseOptions>() {
        res.set_status(status);
    }
}
