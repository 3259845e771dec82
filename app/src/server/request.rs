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
    let socket = || parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip().to_string());
    match &state.trusted_proxy_header {
        Some(header) => forwarded_ip(parts.headers.get_all(header)).or_else(socket),
        None => socket(),
    }
}

/// The address the trusted proxy appended: the right-most entry over every
/// line of the header (a client may send its own lines and entries first;
/// the proxy's comes last). Bytes that are not text, or an entry that is
/// not an address, give `None` and the caller falls back to the socket.
fn forwarded_ip(lines: http::header::GetAll<'_, http::HeaderValue>) -> Option<String> {
    let last_line = lines.iter().next_back()?;
    let text = String::from_utf8_lossy(last_line.as_bytes());
    let last = text.rsplit(',').next()?.trim();
    last.parse::<std::net::IpAddr>().ok().map(|ip| ip.to_string())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(lines: &[&[u8]]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for line in lines {
            h.append("x-forwarded-for", http::HeaderValue::from_bytes(line).unwrap());
        }
        h
    }

    #[test]
    fn the_proxys_entry_is_the_right_most_of_all_lines() {
        let h = headers(&[b"1.1.1.1, 2.2.2.2", b"3.3.3.3"]);
        assert_eq!(forwarded_ip(h.get_all("x-forwarded-for")).as_deref(), Some("3.3.3.3"));
        let h = headers(&[b"evil, 10.0.0.1", b"203.0.113.9 , 198.51.100.7"]);
        assert_eq!(forwarded_ip(h.get_all("x-forwarded-for")).as_deref(), Some("198.51.100.7"));
        let h = headers(&[b"spoofed", b"2001:db8::1"]);
        assert_eq!(forwarded_ip(h.get_all("x-forwarded-for")).as_deref(), Some("2001:db8::1"));
    }

    #[test]
    fn non_ascii_bytes_before_the_proxys_entry_do_not_hide_it() {
        let h = headers(&[b"caf\xc3\xa9, 192.0.2.4"]);
        assert_eq!(forwarded_ip(h.get_all("x-forwarded-for")).as_deref(), Some("192.0.2.4"));
        let h = headers(&[b"192.0.2.4, \xff\xfe"]);
        assert_eq!(forwarded_ip(h.get_all("x-forwarded-for")), None, "then the socket address is used");
        assert_eq!(forwarded_ip(http::HeaderMap::new().get_all("x-forwarded-for")), None);
    }
}
