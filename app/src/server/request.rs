//! Who is asking: the client address (from the socket, or from one header
//! named by the trusted-proxy setting when the socket is a trusted proxy's)
//! and the user agent, for guessing limits and the audit trail.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use http::request::Parts;

use super::crypto::tokens::{CookieKind, Device};
use super::gate::Cidr;
use super::state::AppState;
use crate::error::AppError;

/// Longest user agent kept in the audit trail.
const MAX_USER_AGENT: usize = 200;

#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The browser's device cookie, when it carries a valid one.
    pub device: Option<Device>,
    /// The SHA-256 of the browser's remembered-browser cookie, when it
    /// sends one (whose, and whether it still counts, the database says).
    pub remembered: Option<String>,
}

impl RequestMeta {
    /// A throttle key part for the address; requests with no known address
    /// share one bucket rather than escaping the limit. IPv6 addresses are
    /// counted per /64, the block one subscriber usually holds, so that
    /// stepping through one's own addresses does not multiply the budget.
    pub fn ip_key(&self) -> String {
        match self.ip.as_deref().map(str::parse::<std::net::IpAddr>) {
            Some(Ok(std::net::IpAddr::V6(v6))) if v6.to_ipv4_mapped().is_none() => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
            Some(Ok(std::net::IpAddr::V6(v6))) => v6.to_ipv4_mapped().map(|v4| v4.to_string()).unwrap_or_default(),
            Some(_) => self.ip.clone().unwrap_or_default(),
            None => "unknown".to_owned(),
        }
    }
}

fn client_ip(parts: &Parts, state: &AppState) -> Option<String> {
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip());
    client_address(peer, &parts.headers, state.trusted_proxy_header.as_ref(), &state.gate.trusted_proxies)
}

/// The address of the client a trusted proxy asks the gate about: what
/// `networks` rules judge. Only what the proxy put in
/// `TRUSTED_PROXY_HEADER`: without it (or unreadable) the client is
/// unknown, never the proxy's own address (which may sit inside a range).
pub(crate) fn client_of(state: &AppState, peer: IpAddr, headers: &http::HeaderMap) -> Option<IpAddr> {
    let header = state.trusted_proxy_header.as_ref()?;
    if !state.gate.trusted_proxies.iter().any(|range| range.contains(peer)) {
        return None;
    }
    forwarded_ip(headers.get_all(header))?.parse().ok()
}

/// The address a rule about networks judges (an OpenID app's one-factor
/// networks): the socket's, or, from a trusted proxy, only what it put in
/// `TRUSTED_PROXY_HEADER` (None without it: the proxy's own address may
/// sit inside a range, and every client would seem to be there).
/// A peer that is not a trusted proxy yet forwards for someone (it sends
/// the configured header, or any usual forwarding header) is a proxy nobody
/// listed: its clients are unknown too, never taken for the proxy's own
/// address.
pub(crate) fn network_address(state: &AppState, parts: &Parts) -> Option<IpAddr> {
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip())?;
    if state.gate.trusted_proxies.iter().any(|range| range.contains(peer)) {
        return client_of(state, peer, &parts.headers);
    }
    let forwarding = ["x-forwarded-for", "forwarded", "x-real-ip"].iter().any(|name| parts.headers.contains_key(*name))
        || state.trusted_proxy_header.as_ref().is_some_and(|name| parts.headers.contains_key(name));
    (!forwarding).then_some(peer)
}

/// The client's address: the forwarded one only when the connection comes
/// from a trusted proxy (`TRUSTED_PROXIES`), else the socket's own. A
/// client that reaches the server directly could otherwise name any
/// address in the header and get a fresh guessing budget with each.
fn client_address(
    peer: Option<IpAddr>,
    headers: &http::HeaderMap,
    header: Option<&http::HeaderName>,
    trusted: &[Cidr],
) -> Option<String> {
    let from_proxy = peer.is_some_and(|ip| trusted.iter().any(|range| range.contains(ip)));
    match header {
        Some(header) if from_proxy => forwarded_ip(headers.get_all(header)).or_else(|| peer.map(|ip| ip.to_string())),
        _ => peer.map(|ip| ip.to_string()),
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
        let device = state
            .cookies
            .from_headers(CookieKind::Device, &parts.headers)
            .and_then(|value| state.keys.open_device(value, state.now()));
        let remembered = state
            .cookies
            .from_headers(CookieKind::Remember, &parts.headers)
            .filter(|value| (20..=100).contains(&value.len()))
            .map(|value| crate::server::crypto::sha256_hex(value.as_bytes()));
        Ok(Self { ip: client_ip(parts, state), user_agent, device, remembered })
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
    fn the_header_is_believed_only_from_a_trusted_proxy() {
        let h = headers(&[b"203.0.113.9"]);
        let name = http::HeaderName::from_static("x-forwarded-for");
        let lan = [Cidr::parse("10.0.0.0/8").unwrap()];
        let peer = |ip: &str| Some(ip.parse::<IpAddr>().unwrap());
        let from = |p, trusted: &[Cidr]| client_address(p, &h, Some(&name), trusted);
        assert_eq!(from(peer("10.1.2.3"), &lan).as_deref(), Some("203.0.113.9"), "the proxy's word");
        assert_eq!(from(peer("198.51.100.7"), &lan).as_deref(), Some("198.51.100.7"), "a forged header");
        assert_eq!(from(peer("127.0.0.1"), &lan).as_deref(), Some("127.0.0.1"));
        assert_eq!(from(peer("127.0.0.1"), &Cidr::loopback()).as_deref(), Some("203.0.113.9"));
        assert_eq!(from(peer("::ffff:10.0.0.5"), &lan).as_deref(), Some("203.0.113.9"), "IPv4-mapped peer");
        assert_eq!(from(None, &lan), None, "no peer: nobody to trust");
        // No header configured: the socket, whoever it is.
        assert_eq!(client_address(peer("10.1.2.3"), &h, None, &lan).as_deref(), Some("10.1.2.3"));
        // From a trusted proxy without a usable header: the proxy's address.
        let empty = http::HeaderMap::new();
        assert_eq!(client_address(peer("10.1.2.3"), &empty, Some(&name), &lan).as_deref(), Some("10.1.2.3"));
    }

    #[test]
    fn ipv6_addresses_share_a_bucket_per_64() {
        let meta = |ip: &str| RequestMeta { ip: Some(ip.to_owned()), ..Default::default() };
        assert_eq!(meta("2001:db8:1:2:aaaa::1").ip_key(), "2001:db8:1:2::/64");
        assert_eq!(meta("2001:db8:1:2:ffff:1:2:3").ip_key(), meta("2001:db8:1:2::9").ip_key());
        assert_ne!(meta("2001:db8:1:3::1").ip_key(), meta("2001:db8:1:2::1").ip_key());
        assert_eq!(meta("::ffff:192.0.2.7").ip_key(), "192.0.2.7");
        assert_eq!(meta("192.0.2.7").ip_key(), "192.0.2.7");
        assert_eq!(RequestMeta::default().ip_key(), "unknown");
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
