//! The one wire error type, `AppError`: what every server function returns on
//! failure, what the JSON API sends (`{error, message, fields?}`), and what the
//! browser shows. Messages are written for people and never carry an
//! internal error text; the HTTP status is derived from `error` alone.

use std::collections::BTreeMap;

use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

/// Machine-readable error kinds. Each maps to exactly one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Malformed request or a field that did not parse (400).
    BadRequest,
    /// Email/password wrong, or no such user (401, one generic message).
    InvalidCredentials,
    /// No session, an expired one, or a session of the wrong stage (401).
    Unauthenticated,
    /// A wrong, expired or already used two-factor code (401).
    InvalidCode,
    /// Cross-site request (403).
    Forbidden,
    /// No such endpoint (404).
    NotFound,
    /// The state does not allow it, e.g. email taken (409).
    Conflict,
    /// The request was not read and answered in time (408).
    Timeout,
    /// Too many attempts (429).
    TooManyRequests,
    /// The database is unreachable (503).
    Unavailable,
    /// Anything else; details are only in the server log (500).
    Internal,
    /// Browser side only: the server could not be reached.
    Network,
}

impl ErrorKind {
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::BadRequest => 400,
            ErrorKind::InvalidCredentials | ErrorKind::Unauthenticated | ErrorKind::InvalidCode => 401,
            ErrorKind::Forbidden => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict => 409,
            ErrorKind::Timeout => 408,
            ErrorKind::TooManyRequests => 429,
            ErrorKind::Unavailable => 503,
            ErrorKind::Internal => 500,
            ErrorKind::Network => 502,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct AppError {
    pub error: ErrorKind,
    pub message: String,
    /// Per-field messages for form errors, keyed by the JSON field name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
    /// With `too_many_requests`: seconds until the next attempt is allowed
    /// (also sent as the `Retry-After` header).
    #[serde(default, rename = "retryAfter", skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<i64>,
}

impl AppError {
    pub fn new(error: ErrorKind, message: impl Into<String>) -> Self {
        Self { error, message: message.into(), fields: BTreeMap::new(), retry_after: None }
    }

    pub fn status(&self) -> u16 {
        self.error.status()
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, message)
    }

    /// A 400 about one field: the message is said for the form and beside
    /// the field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        let mut e = Self::bad_request(message.clone());
        e.fields.insert(field.into(), message);
        e
    }

    /// A 400 naming the fields that did not parse.
    pub fn fields(fields: BTreeMap<String, String>) -> Self {
        Self {
            error: ErrorKind::BadRequest,
            message: "Please correct the highlighted fields.".into(),
            fields,
            retry_after: None,
        }
    }

    pub fn invalid_credentials() -> Self {
        Self::new(ErrorKind::InvalidCredentials, "Wrong email or password.")
    }

    pub fn unauthenticated() -> Self {
        Self::new(ErrorKind::Unauthenticated, "Please log in.")
    }

    pub fn invalid_code() -> Self {
        Self::new(ErrorKind::InvalidCode, "That code is not valid. Wait for the next code in your app and try again.")
    }

    /// One generic answer for every guessing limit.
    pub fn too_many(retry_after: i64) -> Self {
        let wait = if retry_after >= 120 {
            format!("{} minutes", (retry_after + 59) / 60)
        } else {
            match retry_after.max(1) {
                1 => "1 second".to_owned(),
                n => format!("{n} seconds"),
            }
        };
        let mut e = Self::new(ErrorKind::TooManyRequests, format!("Too many attempts. Try again in {wait}."));
        e.retry_after = Some(retry_after.max(1));
        e
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, message)
    }

    pub fn not_found() -> Self {
        Self::new(ErrorKind::NotFound, "No such endpoint.")
    }

    pub fn unavailable() -> Self {
        Self::new(ErrorKind::Unavailable, "The service is temporarily unavailable. Please try again in a moment.")
    }

    /// Too much work queued (password hashing): try again in a second.
    pub fn busy() -> Self {
        let mut e = Self::new(ErrorKind::Unavailable, "The service is busy. Please try again in a moment.");
        e.retry_after = Some(1);
        e
    }

    pub fn internal() -> Self {
        Self::new(ErrorKind::Internal, "Something went wrong on our side. Please try again.")
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            // The request body did not decode into the arguments: the client's
            // fault. serde's text names the field and stays free of secrets.
            ServerFnErrorErr::Args(detail) => AppError::body_not_valid(&detail),
            ServerFnErrorErr::MissingArg(field) => AppError::missing_field(&field),
            ServerFnErrorErr::UnsupportedRequestMethod(_) => AppError::bad_request("Method not allowed."),
            ServerFnErrorErr::Request(_) => {
                AppError::new(ErrorKind::Network, "Could not reach the server. Check your connection and try again.")
            }
            // On the server this is the request body failing to decode. A
            // well-formed body without a required field (`{}`, which an
            // empty body stands for) is a field error, not a JSON error.
            #[cfg(feature = "ssr")]
            ServerFnErrorErr::Deserialization(detail) => match serde_missing_field(&detail) {
                Some(field) => AppError::missing_field(field),
                None => AppError::bad_request(format!(
                    "The request body is not valid JSON for this endpoint: {}",
                    short(&detail)
                )),
            },
            // In the browser it is the response failing to decode.
            #[cfg(not(feature = "ssr"))]
            ServerFnErrorErr::Deserialization(_) => {
                AppError::new(ErrorKind::Network, "The server sent an unexpected answer. Please try again.")
            }
            _ => AppError::internal(),
        }
    }
}

fn short(text: &str) -> String {
    text.chars().take(200).collect()
}

/// The field serde names in "missing field `email` at line 1 column 2".
/// serde stops at the first missing field, so that is the one named.
fn serde_missing_field(detail: &str) -> Option<&str> {
    detail.strip_prefix("missing field `")?.split_once('`').map(|(field, _)| field)
}

impl AppError {
    /// A 400 for a required field the body does not have, shaped like
    /// every other field error (`fields` keyed by the JSON name).
    pub fn missing_field(field: &str) -> Self {
        let field = short(field);
        let mut e = Self::fields(BTreeMap::from([(field.clone(), "This field is required.".to_owned())]));
        e.message = format!("Missing field: {field}.");
        e
    }

    /// A request body that did not decode into an endpoint's input, from
    /// serde's text (which names the field and never a secret): a missing
    /// field is a field error; anything else a 400 quoting serde.
    pub fn body_not_valid(detail: &str) -> Self {
        match serde_missing_field(detail) {
            Some(field) => Self::missing_field(field),
            None => Self::bad_request(format!("The request body is not valid: {}", short(detail))),
        }
    }
}

/// The HTTP answer for an error: its status and `{error, message, …}` as
/// JSON. Server functions answer through `FromServerFnError` instead; the
/// router's edge gives those the same status.
#[cfg(feature = "ssr")]
impl axum::response::IntoResponse for AppError {
    fn into_response(self) -> axum::response::Response {
        let status = http::StatusCode::from_u16(self.status()).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        (status, axum::Json(self)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_shape_is_stable() {
        let e = AppError::invalid_credentials();
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["error"], "invalid_credentials");
        assert_eq!(json["message"], "Wrong email or password.");
        assert!(json.get("fields").is_none());
        assert_eq!(e.status(), 401);
    }

    #[cfg(feature = "ssr")]
    #[test]
    fn a_missing_field_is_a_field_error() {
        let e = AppError::from_server_fn_error(ServerFnErrorErr::Deserialization(
            "missing field `twoFactorAuthenticationCode` at line 1 column 2".into(),
        ));
        assert_eq!(e.status(), 400);
        assert_eq!(e.fields.get("twoFactorAuthenticationCode").map(String::as_str), Some("This field is required."));
        let e = AppError::from_server_fn_error(ServerFnErrorErr::Deserialization(
            "expected value at line 1 column 1".into(),
        ));
        assert_eq!(e.status(), 400);
        assert!(e.fields.is_empty() && e.message.contains("not valid JSON"), "{e:?}");
    }

    #[test]
    fn args_errors_are_client_errors() {
        let e = AppError::from_server_fn_error(ServerFnErrorErr::Args("missing field `email`".into()));
        assert_eq!(e.status(), 400);
        assert!(e.message.contains("email"));
    }
}
