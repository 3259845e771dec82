//! One span per request, and one line when it is answered.
//!
//! The span `request` carries `method`, `route`, `request_id`, and, once
//! known, `user_id` and `login_id` (recorded by the session extractors and
//! the gate), then `status` and `latency_ms` (to the response head; a
//! streamed page body may take longer). Every line logged while the request
//! is handled carries these fields: in text as `request{…}:`, with
//! `LOG_FORMAT=json` under `span` and `spans`. Work a request hands to a
//! task of its own is outside the span unless spawned with
//! `.in_current_span()`. A request cut off (the client hung up, or
//! `REQUEST_TIMEOUT_SECONDS` passed) has no answered line.
//!
//! `route` is the route template the router matched (`/api/authentication`,
//! `/reset-password`), never the URL as sent: a query string can hold a
//! mailed link's token, and nothing secret goes in a log line. A request no
//! route matched (a site file, a 404) logs its path, without the query.
//!
//! The request id is echoed in `X-Request-Id` on every answer the router
//! gives. One sent by a peer in `TRUSTED_PROXIES` (nginx's `$request_id`,
//! say) is kept when it is 1 to 64 characters of `A-Z a-z 0-9 . _ -`, so
//! the proxy's log and ours name the same request; anything else, or one
//! from any other peer, is replaced by 32 random hex digits.
//!
//! Levels: the answered line is `info`, except for `/healthz`, `/readyz`
//! and site files (`/pkg/…`, and any file a GET found under the site root),
//! which are `debug` so that probes and page loads do not flood the log.
//! The span has the same level: under `RUST_LOG=warn` it is off, and a
//! warning then carries no request fields.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use app::server::AppState;
use app::server::gate::Cidr;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;
use tracing::field::Empty;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id taken from a proxy.
pub const MAX_REQUEST_ID: usize = 64;

/// The longest unmatched path logged (a 404 can be any length).
const MAX_PATH: usize = 128;

/// The outermost layer of the router (see `build_router`), so the span
/// covers every other layer and `MatchedPath` is known.
pub async fn requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id(&req, &state.gate.trusted_proxies);
    let matched = req.extensions().get::<MatchedPath>().map(MatchedPath::as_str);
    let (route, quiet) = match matched {
        Some(route) => (route, matches!(route, "/healthz" | "/readyz")),
        None => (bounded(req.uri().path()), req.uri().path().starts_with("/pkg/")),
    };
    let unmatched = matched.is_none();
    let method = req.method();
    let request_id = id.to_str().unwrap_or("-");
    // Every field is declared here: `record` can only fill a declared one.
    let span = if quiet {
        tracing::debug_span!(
            "request",
            %method,
            route,
            request_id,
            user_id = Empty,
            login_id = Empty,
            status = Empty,
            latency_ms = Empty
        )
    } else {
        tracing::info_span!(
            "request",
            %method,
            route,
            request_id,
            user_id = Empty,
            login_id = Empty,
            status = Empty,
            latency_ms = Empty
        )
    };
    let site_file = unmatched && matches!(*req.method(), axum::http::Method::GET | axum::http::Method::HEAD);
    let mut res = next.run(req).instrument(span.clone()).await;
    let status = res.status();
    if !span.is_disabled() {
        span.record("status", status.as_u16());
        span.record("latency_ms", millis(started.elapsed()));
        let found_file = site_file && (status.is_success() || status == StatusCode::NOT_MODIFIED);
        span.in_scope(|| {
            if quiet || found_file {
                tracing::debug!("answered");
            } else {
                tracing::info!("answered");
            }
        });
    }
    res.headers_mut().insert(REQUEST_ID, id);
    res
}

/// The proxy's id when a trusted proxy sent exactly one safe one, else a
/// new one.
fn request_id(req: &Request, trusted: &[Cidr]) -> HeaderValue {
    let from_proxy = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|ConnectInfo(peer)| trusted.iter().any(|range| range.contains(peer.ip())));
    if from_proxy {
        let mut sent = req.headers().get_all(&REQUEST_ID).iter();
        if let (Some(id), None) = (sent.next(), sent.next())
            && safe(id.as_bytes())
        {
            return id.clone();
        }
    }
    new_request_id()
}

/// Short and plain: nothing that could split a log line, quote its way out
/// of a field or fill the log.
pub fn safe(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID).contains(&id.len())
        && id.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// 16 random bytes in hex. Should the OS random source fail, a process
/// counter still tells requests apart rather than failing the request.
fn new_request_id() -> HeaderValue {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        static COUNT: AtomicU64 = AtomicU64::new(0);
        bytes[8..].copy_from_slice(&COUNT.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    }
    HeaderValue::from_str(&hex::encode(bytes)).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// At most `MAX_PATH` bytes, cut on a character boundary (a path is ASCII
/// on the wire, but nothing here relies on it).
fn bounded(path: &str) -> &str {
    if path.len() <= MAX_PATH {
        return path;
    }
    let mut end = MAX_PATH;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    &path[..end]
}

/// Milliseconds to the microsecond.
fn millis(elapsed: Duration) -> f64 {
    elapsed.as_micros() as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_plain_ids_are_safe() {
        assert!(safe(b"a"));
        assert!(safe(b"0f3c9a2b-1d4e.X_y"));
        assert!(safe("x".repeat(MAX_REQUEST_ID).as_bytes()));
        assert!(!safe(b""));
        assert!(!safe("x".repeat(MAX_REQUEST_ID + 1).as_bytes()));
        for bad in ["a b", "a\r\nb", "a\"b", "a/b", "a=b", "a{b}", "é"] {
            assert!(!safe(bad.as_bytes()), "{bad:?}");
        }
    }

    #[test]
    fn new_ids_are_32_hex_digits_and_differ() {
        let (a, b) = (new_request_id(), new_request_id());
        assert_eq!(a.len(), 32);
        assert!(a.as_bytes().iter().all(u8::is_ascii_hexdigit));
        assert_ne!(a, b);
    }

    #[test]
    fn long_paths_are_cut() {
        assert_eq!(bounded("/pkg/a.js"), "/pkg/a.js");
        let long = format!("/{}", "é".repeat(100));
        assert!(bounded(&long).len() <= MAX_PATH);
        assert!(long.starts_with(bounded(&long)));
    }
}
