//! Who is asking: the client address (from the socket, or from one header
//! named by the trusted-proxy setting) and the user agent, for guessing
//! limits and the audit trail.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use http::request::Parts;

use super::state::AppState;
use crate::error::AppError;

/// Longest user agent kept in the audit trail.
const MAX_USER_AGENT: usize = 200;

#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl RequestMeta {
    /// A throttle key part for the address; requests with no known address
    /// share one bucket rather than escaping the limit.
    pub fn ip_key(&self) -> &str {
        self.ip.as_deref().unwrap_or("unknown")
    }
}

fn client_ip(parts: &Parts, state: &AppState) -> Option<String> {
    if let Some(header) = &state.trusted_proxy_header {
        // The proxy appends the address it saw; with X-Forwarded-For that is
        // the last entry, and earlier ones are whatever the client claimed.
        let value = parts.headers.get(header)?.to_str().ok()?;
        let last = value.rsplit(',').next()?.trim();
        return last.parse::<std::net::IpAddr>().ok().map(|ip| ip.to_string());
    }
    parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip().to_string())
}

impl FromRequestParts<AppState> for RequestMeta {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let user_agent = parts
            .headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().filter(|c| !c.is_control()).take(MAX_USER_AGENT).collect());
        Ok(Self { ip: client_ip(parts, state), user_agent })
    }
}
