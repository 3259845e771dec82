//! The endpoints a reverse proxy asks before passing a request to a
//! protected app (docs/PROXIES.md), and the portal's way back to that app
//! after a log-in.
//!
//! - `/api/authz/forward-auth` (Traefik `forwardAuth`, Caddy
//!   `forward_auth`): the original request in `X-Forwarded-Method`,
//!   `-Proto`, `-Host`, `-Uri`.
//! - `/api/authz/auth-request` (nginx `auth_request`): `X-Original-Method`
//!   and `X-Original-URL`.
//!
//! Both take any method, never read a body and answer with none. Forwarded
//! headers are believed only from `TRUSTED_PROXIES`; anyone else gets 403.
//! A 200 always carries all four `Remote-*` headers (empty when nobody is
//! logged in), so a copy sent by the client can never reach the app.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};

use super::auth::FullSession;
use super::db::GateSubject;
use super::gate::{Decision, Subject, Target, safe_return_url};
use super::state::AppState;
use crate::error::AppError;

pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/api/authz/forward-auth", any(forward_auth))
        .route("/api/authz/auth-request", any(auth_request))
}

/// The request the proxy is asking about.
struct Original {
    method: String,
    scheme: String,
    host: String,
    /// Path and query, starting with '/'.
    uri: String,
}

impl Original {
    fn url(&self) -> String {
        format!("{}://{}{}", self.scheme, self.host, self.uri)
    }

    fn path(&self) -> &str {
        self.uri.split(['?', '#']).next().unwrap_or("/")
    }
}

fn text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

fn from_forward_auth(headers: &HeaderMap) -> Option<Original> {
    let host = text(headers, "x-forwarded-host")?.to_ascii_lowercase();
    let uri = text(headers, "x-forwarded-uri").unwrap_or_else(|| "/".into());
    Some(Original {
        method: text(headers, "x-forwarded-method").unwrap_or_else(|| "GET".into()).to_ascii_uppercase(),
        scheme: text(headers, "x-forwarded-proto").unwrap_or_else(|| "https".into()).to_ascii_lowercase(),
        host,
        uri: if uri.starts_with('/') { uri } else { format!("/{uri}") },
    })
}

fn from_auth_request(headers: &HeaderMap) -> Option<Original> {
    let url = text(headers, "x-original-url")?;
    let (scheme, rest) = url.split_once("://")?;
    let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (host, uri) = rest.split_at(split);
    if host.is_empty() || host.contains('@') {
        return None;
    }
    Some(Original {
        method: text(headers, "x-original-method").unwrap_or_else(|| "GET".into()).to_ascii_uppercase(),
        scheme: scheme.to_ascii_lowercase(),
        host: host.to_ascii_lowercase(),
        uri: if uri.starts_with('/') { uri.to_owned() } else { format!("/{uri}") },
    })
}

/// The host without a port, for the rules.
fn bare_host(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !name.ends_with(']') => name,
        _ => host,
    }
}

/// Who the gate cookies name, for a request to `host`. A cookie counts only
/// for hosts under the domain it was issued for. More cookies than cookie
/// domains, or live cookies of two different log-ins (a sibling host can
/// plant its own with a longer path, and browsers send that one first),
/// mean nobody: which one a server picks must not decide who it is.
async fn subject(state: &AppState, headers: &HeaderMap, host: &str) -> Result<Option<GateSubject>, AppError> {
    let values = state.cookies.gate_values(headers);
    if values.len() > state.gate.cookie_domains.len().max(1) {
        tracing::warn!(count = values.len(), "more gate cookies than cookie domains: treated as not logged in");
        return Ok(None);
    }
    let mut found: Option<GateSubject> = None;
    let (now, cache) = (state.now(), state.db.gate_cache());
    for value in values {
        let hash = super::service::sha256_hex(value.as_bytes());
        let who = match cache.get(&hash, now) {
            Some(who) => Some(who),
            None => {
                let generation = cache.generation();
                let who = state.db.gate_subject(&hash, now).await?;
                if let Some(who) = &who {
                    cache.put(&hash, who.clone(), generation, now);
                }
                who
            }
        };
        let Some(who) = who else { continue };
        if !super::gate::is_under(host, &who.domain) {
            continue;
        }
        match &found {
            Some(first) if first.family != who.family => {
                tracing::warn!("gate cookies of two different log-ins: treated as not logged in");
                return Ok(None);
            }
            Some(_) => {}
            None => found = Some(who),
        }
    }
    Ok(found)
}

enum Flavour {
    /// Traefik and Caddy: a redirect the proxy passes on.
    ForwardAuth,
    /// nginx: 401 with the log-in URL in `Location`.
    AuthRequest,
}

async fn forward_auth(state: State<AppState>, peer: ConnectInfo<SocketAddr>, headers: HeaderMap) -> Response {
    answer(state, peer, headers, Flavour::ForwardAuth).await
}

async fn auth_request(state: State<AppState>, peer: ConnectInfo<SocketAddr>, headers: HeaderMap) -> Response {
    answer(state, peer, headers, Flavour::AuthRequest).await
}

fn bare(status: StatusCode) -> Response {
    let mut res = status.into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

async fn answer(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    flavour: Flavour,
) -> Response {
    if !state.gate.trusted_proxies.iter().any(|range| range.contains(peer.ip())) {
        tracing::warn!(peer = %peer.ip(), "an authz request from an address not in TRUSTED_PROXIES was refused");
        return bare(StatusCode::FORBIDDEN);
    }
    let original = match flavour {
        Flavour::ForwardAuth => from_forward_auth(&headers),
        Flavour::AuthRequest => from_auth_request(&headers),
    };
    let Some(original) = original else {
        tracing::warn!("an authz request without the original URL's headers (see docs/PROXIES.md)");
        return bare(StatusCode::BAD_REQUEST);
    };
    let who = match subject(&state, &headers, bare_host(&original.host)).await {
        Ok(who) => who,
        Err(e) => return bare(StatusCode::from_u16(e.status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)),
    };
    // Rules see the path as the app will read it; one nobody can read the
    // same way twice is refused.
    let Some(path) = super::gate::normalize_path(original.path()) else {
        tracing::info!("an authz request for an ambiguous path was refused");
        return bare(StatusCode::FORBIDDEN);
    };
    let target = Target { method: &original.method, host: bare_host(&original.host), path: &path };
    let as_subject = who.as_ref().map(|w| Subject {
        user_id: w.user_id,
        email: &w.email,
        groups: &w.groups,
        two_factor: w.two_factor,
    });
    let decision = state.gate.rules.decide(&target, as_subject.as_ref());
    match decision {
        Decision::Allow => allowed(who.as_ref()),
        Decision::Forbidden => bare(StatusCode::FORBIDDEN),
        Decision::LogIn | Decision::SecondFactor => {
            let page = if decision == Decision::LogIn { "/login?" } else { "/security?need=two-factor&" };
            let query = serde_urlencoded::to_string([("rd", original.url())]).unwrap_or_default();
            let location = format!("{}{page}{query}", state.gate.public_url);
            let Ok(location) = HeaderValue::from_str(&location) else { return bare(StatusCode::UNAUTHORIZED) };
            let wants_page = headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|accept| accept.contains("text/html"));
            let status = match flavour {
                Flavour::AuthRequest => StatusCode::UNAUTHORIZED,
                Flavour::ForwardAuth if !wants_page => StatusCode::UNAUTHORIZED,
                Flavour::ForwardAuth if matches!(original.method.as_str(), "GET" | "HEAD" | "OPTIONS") => {
                    StatusCode::FOUND
                }
                Flavour::ForwardAuth => StatusCode::SEE_OTHER,
            };
            let mut res = bare(status);
            if status != StatusCode::UNAUTHORIZED || matches!(flavour, Flavour::AuthRequest) {
                res.headers_mut().insert(header::LOCATION, location);
            }
            res
        }
    }
}

/// 200 with every `Remote-*` header set, empty when nobody is logged in.
fn allowed(who: Option<&GateSubject>) -> Response {
    let mut res = bare(StatusCode::OK);
    let values = match who {
        Some(w) => [w.user_id.to_string(), w.email.clone(), w.name.clone(), w.groups.join(",")],
        None => Default::default(),
    };
    for (name, value) in ["remote-user", "remote-email", "remote-name", "remote-groups"].iter().zip(values) {
        let value = HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| HeaderValue::from_static(""));
        res.headers_mut().insert(HeaderName::from_static(name), value);
    }
    res
}

#[derive(serde::Deserialize)]
struct ReturnTo {
    rd: Option<String>,
}

/// `GET /login?rd=…` with a full session: back to the app the person was
/// opening (if `rd` is under a cookie domain; home otherwise), with fresh
/// gate cookies for this log-in in case the browser has none yet. Without
/// a full session the log-in page is drawn as usual, carrying `rd`.
pub async fn return_after_log_in(
    State(state): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if req.method() != Method::GET || req.uri().path() != "/login" {
        return next.run(req).await;
    }
    let Some(rd) = req.uri().query().and_then(|q| serde_urlencoded::from_str::<ReturnTo>(q).ok()).and_then(|r| r.rd)
    else {
        return next.run(req).await;
    };
    let (mut parts, body) = req.into_parts();
    let session =
        <FullSession as axum::extract::FromRequestParts<AppState>>::from_request_parts(&mut parts, &state).await;
    let Ok(session) = session else { return next.run(axum::extract::Request::from_parts(parts, body)).await };
    let destination = return_url(&state, &rd).unwrap_or_else(|| "/".into());
    let mut cookies = Vec::new();
    if let (Some(family), false) = (session.claims.sid.as_deref(), state.gate.cookie_domains.is_empty()) {
        let expires_at = state.now() + state.refresh_ttl;
        let issued = async {
            let mut tx = state.db.begin().await?;
            let cookies = super::service::issue_gate_cookies(
                &state,
                &mut tx,
                session.user.id,
                family,
                expires_at,
                session.user.two_factor(),
            )
            .await?;
            tx.commit().await?;
            Ok::<_, AppError>(cookies)
        };
        match issued.await {
            Ok(c) => cookies = c,
            Err(e) => return e.into_response(),
        }
    }
    let mut res = bare(StatusCode::SEE_OTHER);
    let location = HeaderValue::from_str(&destination).unwrap_or_else(|_| HeaderValue::from_static("/"));
    res.headers_mut().insert(header::LOCATION, location);
    for cookie in cookies {
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    res
}

/// `rd` if it is a URL the gate serves, else `None`.
pub fn return_url(state: &AppState, rd: &str) -> Option<String> {
    safe_return_url(rd, &state.gate.cookie_domains, !state.cookies.secure)
}
