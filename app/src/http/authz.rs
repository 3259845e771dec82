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
//! Both take any method and never read a body. Forwarded headers are
//! believed only from `TRUSTED_PROXIES`; anyone else gets 403. A question
//! missing any of them is refused (400, naming the header), never guessed;
//! so is a path no browser sends. A 200 has no body and always carries all
//! five `Remote-*` headers (empty when nobody is logged in), so a copy sent
//! by the client can never reach the app.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};

use crate::error::AppError;
use crate::server::auth::FullSession;
use crate::server::db::GateSubject;
use crate::server::gate::{Decision, RemoteUser, Subject, Target, safe_return_url};
use crate::server::metrics::{GateResult, METRICS};
use crate::server::state::AppState;

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

    /// The path, without the query. A `#` is not cut off here: no browser
    /// sends one, and the path check refuses it.
    fn path(&self) -> &str {
        self.uri.split('?').next().unwrap_or("/")
    }
}

/// A header's value, trimmed; `None` when missing, empty or not UTF-8. Read
/// as bytes, so a tab or a raw non-ASCII character in a path reaches the
/// path check instead of reading as a missing header.
fn text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Why a question cannot be answered: which header, and what it must be.
/// The proxy is misconfigured; the gate never guesses the rest.
struct Unreadable(String);

fn required(headers: &HeaderMap, name: &str, what: &str) -> Result<String, Unreadable> {
    text(headers, name).ok_or_else(|| Unreadable(format!("The {name} header is missing; it must carry {what}.")))
}

/// An HTTP method: letters only (a token in practice), upper-cased.
fn method(headers: &HeaderMap, name: &str, what: &str) -> Result<String, Unreadable> {
    let raw = required(headers, name, what)?;
    if raw.len() > 20 || !raw.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(Unreadable(format!("The {name} header {raw:?} is not an HTTP method; it must carry {what}.")));
    }
    Ok(raw.to_ascii_uppercase())
}

fn scheme(raw: &str) -> Option<String> {
    let lower = raw.to_ascii_lowercase();
    matches!(lower.as_str(), "http" | "https").then_some(lower)
}

/// A host, with an optional port: letters, digits, '-', '.', or an IPv6
/// literal in brackets. Lower-cased.
fn host(raw: &str) -> Option<String> {
    let ok = !raw.is_empty()
        && raw.len() <= 261
        && raw.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':' | b'[' | b']'));
    ok.then(|| raw.to_ascii_lowercase())
}

fn from_forward_auth(headers: &HeaderMap) -> Result<Original, Unreadable> {
    let method = method(headers, "X-Forwarded-Method", "the original request's method")?;
    let proto = required(headers, "X-Forwarded-Proto", "the original scheme, http or https")?;
    let scheme = scheme(&proto).ok_or_else(|| {
        Unreadable(format!("The X-Forwarded-Proto header {proto:?} must be http or https (the original scheme)."))
    })?;
    let raw_host = required(headers, "X-Forwarded-Host", "the original host")?;
    let host = host(&raw_host)
        .ok_or_else(|| Unreadable(format!("The X-Forwarded-Host header {raw_host:?} is not a host name.")))?;
    let uri = required(headers, "X-Forwarded-Uri", "the original path and query, starting with /")?;
    if !uri.starts_with('/') {
        return Err(Unreadable(format!(
            "The X-Forwarded-Uri header {uri:?} must be the original path and query, starting with /."
        )));
    }
    Ok(Original { method, scheme, host, uri })
}

fn from_auth_request(headers: &HeaderMap) -> Result<Original, Unreadable> {
    let method = method(
        headers,
        "X-Original-Method",
        "the original request's method (nginx: proxy_set_header X-Original-Method $request_method;)",
    )?;
    let what = "the original URL (nginx: proxy_set_header X-Original-URL $scheme://$host$request_uri;)";
    let url = required(headers, "X-Original-URL", what)?;
    let refuse = || {
        Unreadable(format!("The X-Original-URL header {url:?} is not a full URL with a path; it must carry {what}."))
    };
    let (raw_scheme, rest) = url.split_once("://").ok_or_else(refuse)?;
    let scheme = scheme(raw_scheme).ok_or_else(refuse)?;
    // The path must be there: a URL without one is not what nginx sends,
    // and reading it as "/" would be a guess.
    let (raw_host, uri) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
    if !uri.starts_with('/') {
        return Err(refuse());
    }
    let host = host(raw_host).ok_or_else(refuse)?;
    Ok(Original { method, scheme, host, uri: uri.to_owned() })
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
        let hash = crate::server::crypto::sha256_hex(value.as_bytes());
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
        if !crate::server::gate::is_under(host, &who.domain) {
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
    let started = std::time::Instant::now();
    let answered = |result: GateResult| METRICS.gate(result, started.elapsed());
    let original = match flavour {
        Flavour::ForwardAuth => from_forward_auth(&headers),
        Flavour::AuthRequest => from_auth_request(&headers),
    };
    let original = match original {
        Ok(original) => original,
        Err(Unreadable(message)) => {
            // The proxy is set up wrong: say which header, at warn the first
            // time only (a misconfigured proxy asks on every request), and
            // never judge a request the gate cannot see whole.
            static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
            if !SAID.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::warn!(peer = %peer.ip(), "an authz request was refused: {message} (see docs/PROXIES.md)");
            } else {
                tracing::debug!(peer = %peer.ip(), "an authz request was refused: {message}");
            }
            answered(GateResult::Unreadable);
            return refusal(AppError::bad_request(message));
        }
    };
    let wants_page =
        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|accept| accept.contains("text/html"));
    // Rules see the path as the app will read it; one nobody can read the
    // same way twice, or with what no browser sends unencoded, is refused
    // before anything is looked up.
    let path = crate::server::gate::normalize_path(original.path()).filter(|_| readable_query(&original.uri));
    let Some(path) = path else {
        answered(GateResult::Unreadable);
        tracing::info!(method = %original.method, "an authz request for an unreadable path was refused");
        let message = "The path of this request cannot be judged: it carries a character no browser sends \
                       unencoded (#, a space, a quote, <, >, `, {, }, a control character), an encoded slash or \
                       backslash, or a broken %-escape.";
        return match flavour {
            Flavour::ForwardAuth => refusal(AppError::bad_request(message)),
            // nginx passes on only 401 and 403 from the check; anything
            // else becomes its own 500.
            Flavour::AuthRequest => refusal(AppError::forbidden(message)),
        };
    };
    let who = match subject(&state, &headers, bare_host(&original.host)).await {
        Ok(who) => who,
        Err(e) => {
            answered(GateResult::Unavailable);
            return bare(StatusCode::from_u16(e.status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE));
        }
    };
    if let Some(w) = &who {
        tracing::Span::current().record("user_id", w.user_id).record("login_id", w.family.as_str());
    }
    let target = Target {
        method: &original.method,
        host: bare_host(&original.host),
        path: &path,
        client: crate::server::request::client_of(&state, peer.ip(), &headers),
    };
    let as_subject = who.as_ref().map(|w| Subject {
        user_id: w.user_id,
        email: &w.email,
        groups: &w.groups,
        two_factor: w.two_factor,
        email_verified: w.email_verified,
        overdue: w.two_factor_due.is_some_and(|due| due <= state.now()),
        factor_age: w.factor_at.map(|at| state.now() - at),
    });
    let decision = state.gate.rules.decide(&target, as_subject.as_ref());
    answered(GateResult::from(decision));
    match decision {
        // A login name must be something the person proved: with addresses
        // as names, an unconfirmed one passes only where nobody needs a
        // name (a bypass rule), and goes there as nobody.
        Decision::Allow
            if state.gate.remote_user == RemoteUser::Email && who.as_ref().is_some_and(|w| !w.email_verified) =>
        {
            if state.gate.rules.decide(&target, None) == Decision::Allow {
                allowed(None, state.gate.remote_user)
            } else {
                unverified_email(&state.gate.public_url, wants_page)
            }
        }
        Decision::Allow => allowed(who.as_ref(), state.gate.remote_user),
        Decision::Forbidden => forbidden(&state.gate.public_url, who.as_ref(), target.host, wants_page),
        Decision::UnverifiedEmail => unverified_email(&state.gate.public_url, wants_page),
        Decision::LogIn | Decision::SecondFactor => {
            let page = if decision == Decision::LogIn { "/login?" } else { "/security?need=two-factor&" };
            let query = serde_urlencoded::to_string([("rd", original.url())]).unwrap_or_default();
            let location = format!("{}{page}{query}", state.gate.public_url);
            let Ok(location) = HeaderValue::from_str(&location) else { return bare(StatusCode::UNAUTHORIZED) };
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

/// The query may hold anything a browser sends; a `#` (a fragment no
/// browser sends), a space or a control character mean a hand-made request
/// that proxies and apps may each split differently.
fn readable_query(uri: &str) -> bool {
    uri.split_once('?').is_none_or(|(_, query)| !query.bytes().any(|b| b == b'#' || b == b' ' || b.is_ascii_control()))
}

/// An error with the gate's headers: JSON `{message}`, never cached.
fn refusal(error: AppError) -> Response {
    let mut res = error.into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// 403 for a person whose email address is not confirmed, on a rule that
/// wants one: a short page saying so (Caddy and Traefik show it to the
/// browser; nginx shows its own 403), or JSON for an API client.
fn unverified_email(public_url: &str, wants_page: bool) -> Response {
    let message = format!(
        "This app needs a confirmed email address. Open the link in the message we sent you, or ask for a new \
         one at {public_url}/verify-email."
    );
    if !wants_page {
        return refusal(AppError::forbidden(message));
    }
    let link = html_escape(&format!("{public_url}/verify-email"));
    gate_page(
        "Confirm your email address",
        &format!(
            "<p>This app lets in only people with a confirmed email address. Open the link in the message we \
             sent you, or ask for a new one:</p><p><a class=\"btn\" href=\"{link}\">Send a new link</a></p>"
        ),
    )
}

/// 403 from a rule: a page saying who is signed in and that this app is
/// not open to them, with the way to another account (Caddy and Traefik
/// show it; nginx shows its own 403 unless `error_page` says otherwise,
/// see docs/PROXIES.md), or JSON for an API client.
fn forbidden(public_url: &str, who: Option<&GateSubject>, host: &str, wants_page: bool) -> Response {
    let message = match who {
        Some(w) => format!("You are signed in as {}; {host} is not open to this account.", w.email),
        None => format!("{host} is not open here."),
    };
    if !wants_page {
        return refusal(AppError::forbidden(message));
    }
    let (host, portal) = (html_escape(host), html_escape(public_url));
    let body = match who {
        Some(w) => format!(
            "<p>You are signed in as <strong>{}</strong>. The administrator has not opened <strong>{host}</strong> \
             to this account.</p><p><a class=\"btn\" href=\"{portal}/logout\">Use another account</a> \
             <a href=\"{portal}/\">Your account</a></p>",
            html_escape(&w.email)
        ),
        None => {
            format!("<p><strong>{host}</strong> is not open here.</p><p><a href=\"{portal}/\">Your account</a></p>")
        }
    };
    gate_page("This app is not open to you", &body)
}

/// A short page the gate answers with itself (the site's style sheet has a
/// hashed name the gate does not know, so the few rules it needs are here).
fn gate_page(title: &str, body: &str) -> Response {
    let page = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{title}</title>\
         <style>body{{font:16px/1.5 system-ui,sans-serif;margin:0;padding:2rem 1rem;color:#1a1a1a;background:#f6f7f9}}\
         main{{max-width:32rem;margin:0 auto;background:#fff;padding:1.5rem;border-radius:8px;\
         box-shadow:0 1px 3px rgba(0,0,0,.12)}}h1{{font-size:1.4rem;margin-top:0}}a{{color:#0b57d0}}\
         .btn{{display:inline-block;padding:.6rem 1rem;border-radius:6px;background:#0b57d0;color:#fff;\
         text-decoration:none;margin-right:1rem}}@media (prefers-color-scheme:dark){{body{{background:#111;\
         color:#eee}}main{{background:#1d1f23}}a{{color:#8ab4f8}}.btn{{background:#8ab4f8;color:#111}}}}</style>\
         </head><body><main><h1>{title}</h1>{body}</main></body></html>"
    );
    let mut res = (StatusCode::FORBIDDEN, axum::response::Html(page)).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// 200 with every `Remote-*` header set, empty when nobody is logged in.
/// `Remote-Email` carries the address only once the person confirmed it
/// (anyone may sign up with anyone's address); `Remote-Email-Verified`
/// says which (`true`, `false`, or empty when nobody is logged in).
/// `Remote-User` is the account's number, or its confirmed address
/// (`GATE_REMOTE_USER=email`; the caller refuses an unconfirmed one).
fn allowed(who: Option<&GateSubject>, remote_user: RemoteUser) -> Response {
    let mut res = bare(StatusCode::OK);
    let values = match who {
        Some(w) => [
            match remote_user {
                RemoteUser::Email if w.email_verified => w.email.clone(),
                RemoteUser::Email => String::new(),
                RemoteUser::Id => w.user_id.to_string(),
            },
            if w.email_verified { w.email.clone() } else { String::new() },
            w.email_verified.to_string(),
            w.name.clone(),
            w.groups.join(","),
        ],
        None => Default::default(),
    };
    let names = ["remote-user", "remote-email", "remote-email-verified", "remote-name", "remote-groups"];
    for (name, value) in names.iter().zip(values) {
        let value = HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| HeaderValue::from_static(""));
        res.headers_mut().insert(HeaderName::from_static(name), value);
    }
    res
}

#[derive(serde::Deserialize)]
struct ReturnTo {
    rd: Option<String>,
}

/// `GET /login` or `GET /signup` with a full session: nothing to fill in,
/// so on to where the person was going. With `rd`, back to the app they
/// were opening (if `rd` is under a cookie domain; home otherwise), with
/// fresh gate cookies for this log-in in case the browser has none yet;
/// without, to the account's home page. Without a full session the page is
/// drawn as usual, carrying `rd`.
pub async fn return_after_log_in(
    State(state): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if req.method() != Method::GET || !matches!(req.uri().path(), "/login" | "/signup") {
        return next.run(req).await;
    }
    let rd = req.uri().query().and_then(|q| serde_urlencoded::from_str::<ReturnTo>(q).ok()).and_then(|r| r.rd);
    let (mut parts, body) = req.into_parts();
    let session =
        <FullSession as axum::extract::FromRequestParts<AppState>>::from_request_parts(&mut parts, &state).await;
    let Ok(session) = session else { return next.run(axum::extract::Request::from_parts(parts, body)).await };
    // An app asked for a log-in newer than this one (`prompt=login`,
    // `max_age`): the log-in page is shown, as if nobody were logged in.
    if rd.as_deref().is_some_and(|rd| wants_newer_log_in(&state, rd, session.claims.auth.unwrap_or(0))) {
        return next.run(axum::extract::Request::from_parts(parts, body)).await;
    }
    let destination = rd.as_deref().and_then(|rd| return_url(&state, rd)).unwrap_or_else(|| "/".into());
    let mut cookies = Vec::new();
    if let (Some(family), Some(_), false) =
        (session.claims.sid.as_deref(), rd.as_ref(), state.gate.cookie_domains.is_empty())
    {
        let expires_at = state.now() + state.refresh_ttl;
        let issued = async {
            let mut tx = state.db.begin().await?;
            let cookies =
                crate::server::logins::issue_gate_cookies(&state, &mut tx, session.user.id, family, expires_at).await?;
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
/// Whether `rd` is the portal's authorize step asking for a log-in made
/// after `auth_at`.
fn wants_newer_log_in(state: &AppState, rd: &str, auth_at: i64) -> bool {
    rd.strip_prefix(&format!("{}?", state.oidc.url("/oidc/authorize")))
        .and_then(|q| serde_urlencoded::from_str::<crate::server::oidc::authorize::AuthorizeRequest>(q).ok())
        .and_then(|r| r.login_after())
        .is_some_and(|after| auth_at < after)
}

pub fn return_url(state: &AppState, rd: &str) -> Option<String> {
    // The portal's own authorize step (an app's sign-in on its way back).
    if let Some(query) = rd.strip_prefix(&format!("{}?", state.oidc.url("/oidc/authorize")))
        && rd.len() <= crate::server::gate::MAX_RD_CHARS
        && !query.chars().any(|c| c.is_control() || c.is_whitespace() || c == '\\' || c == '#')
    {
        return Some(format!("/oidc/authorize?{query}"));
    }
    safe_return_url(rd, &state.gate.cookie_domains, !state.cookies.secure)
}
