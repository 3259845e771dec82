//! The layers around every request: the same-origin check on writes, the
//! `/api` edge (error statuses, JSON for 405/413, empty bodies, no-store)
//! and the security and caching headers.

use app::error::AppError;
use app::server::AppState;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::MAX_BODY_BYTES;

/// The edge of every `/api/*` request: refuse cross-site writes before
/// anything runs, then give a server function's error the status its kind
/// names (server functions answer 500 by default), make other failures
/// JSON, and forbid caching. leptos_axum registers each server function as
/// its own route, so this is a layer rather than a handler.
pub async fn api_edge(req: Request, next: Next) -> Response {
    // The proxy's questions carry the original request's method and no
    // body of ours: no origin check, no JSON rules (see authz).
    if req.uri().path().starts_with("/api/authz/") {
        return next.run(req).await;
    }
    // The OpenID endpoints apps post to from their servers (token,
    // userinfo, revocation, introspection) carry no cookies; an authorize
    // or log-out request may come as a form post from the app's page: a
    // cross-site post carries none of the portal's cookies (Strict, and
    // Lax ones are not sent on a cross-site post), so it can end no
    // log-in and is answered as if nobody were logged in.
    if matches!(
        req.uri().path(),
        "/oidc/token" | "/oidc/userinfo" | "/oidc/authorize" | "/oidc/revoke" | "/oidc/introspect" | "/oidc/logout"
    ) {
        return next.run(req).await;
    }
    // Every write, to the API or a page's form, must come from this site.
    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let cross_site = unsafe_method && !same_origin(req.headers());
    if !req.uri().path().starts_with("/api/") {
        if cross_site {
            let (origin, host) = origin_and_host(req.headers());
            tracing::warn!(
                path = %req.uri().path(), origin, host,
                "cross-site form post refused (your own site behind a proxy? it must pass the Host the browser used)"
            );
            let mut res = (StatusCode::FORBIDDEN, "Cross-site requests are not allowed.").into_response();
            res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            return res;
        }
        return next.run(req).await;
    }
    let mut res = if cross_site {
        let (origin, host) = origin_and_host(req.headers());
        tracing::warn!(
            path = %req.uri().path(), origin, host,
            "cross-site request refused (your own site behind a proxy? it must pass the Host the browser used)"
        );
        AppError::forbidden("Cross-site requests are not allowed.").into_response()
    } else {
        let req = match empty_body_as_object(req).await {
            Ok(req) => req,
            Err(res) => return res,
        };
        let res = next.run(req).await;
        match res.status() {
            StatusCode::METHOD_NOT_ALLOWED => {
                json_status(AppError::bad_request("Method not allowed for this endpoint."), res.status())
            }
            StatusCode::PAYLOAD_TOO_LARGE => {
                json_status(AppError::bad_request("The request body is too large."), res.status())
            }
            _ => fix_error_status(res).await,
        }
    };
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Endpoints without arguments (`/2fa/generate`, `/log-out`) take `{}`; a
/// client that sends no body at all, as the NestJS original allowed, gets
/// the same answer instead of a JSON parse error. "No body" is either no
/// `Content-Length` (curl) or `Content-Length: 0` (urllib, requests, Java's
/// HttpClient, `fetch`); an endpoint with fields then names a missing one.
///
/// A body that is there must say it is JSON: a `text/plain` or form body is
/// what a cross-site form can send, and it is refused with 415 before any
/// parsing. The answer is always JSON: the request is marked as asking for
/// it, so Leptos never turns an API call into a redirect to the Referer.
async fn empty_body_as_object(req: Request) -> Result<Request, Response> {
    let (mut parts, body) = req.into_parts();
    parts.headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    if parts.method != Method::POST {
        return Ok(Request::from_parts(parts, body));
    }
    let bytes = to_bytes(body, MAX_BODY_BYTES).await.map_err(|_| {
        json_status(AppError::bad_request("The request body is too large."), StatusCode::PAYLOAD_TOO_LARGE)
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return Ok(with_body(parts, axum::body::Bytes::from_static(b"{}")));
    }
    let json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(json_status(
            AppError::bad_request("Send the body as JSON (Content-Type: application/json)."),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ));
    }
    Ok(with_body(parts, bytes))
}

/// The request with a body read here in full. Its framing headers must
/// describe the body it now carries, not the one the client sent: the body
/// limit further in (`RequestBodyLimitLayer`) reads `Content-Length` as a
/// promise and cuts the body at that many bytes, so the `{}` that stands in
/// for an empty body would fail as "length limit exceeded" under the
/// client's `Content-Length: 0`.
fn with_body(mut parts: axum::http::request::Parts, bytes: axum::body::Bytes) -> Request {
    parts.headers.remove(header::TRANSFER_ENCODING);
    parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    Request::from_parts(parts, Body::from(bytes))
}

fn json_status(error: AppError, status: StatusCode) -> Response {
    let mut res = error.into_response();
    *res.status_mut() = status;
    res
}

pub async fn unknown_endpoint() -> Response {
    AppError::not_found().into_response()
}

/// Browsers say where a request comes from; a request from another site is
/// refused. Clients that send neither header (curl, SDKs) are not browsers
/// and carry no ambient cookies of a victim, so they pass.
fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return matches!(site.to_str(), Ok("same-origin") | Ok("none"));
    }
    match (headers.get(header::ORIGIN), headers.get(header::HOST)) {
        (None, _) => true,
        (Some(origin), Some(host)) => {
            let origin = origin.to_str().unwrap_or("");
            let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or("");
            Some(origin_host) == host.to_str().ok()
        }
        (Some(_), None) => false,
    }
}

/// The two headers a refused write was judged by, for the log: an
/// operator whose proxy drops `Host` sees both names side by side. Header
/// values only (no path, no query), shortened, control characters shown
/// escaped.
fn origin_and_host(headers: &HeaderMap) -> (String, String) {
    let shown = |name: header::HeaderName| -> String {
        let Some(value) = headers.get(name) else { return "(none)".into() };
        let text = String::from_utf8_lossy(value.as_bytes());
        text.chars().take(100).flat_map(char::escape_default).collect()
    };
    (shown(header::ORIGIN), shown(header::HOST))
}

async fn fix_error_status(res: Response) -> Response {
    if !res.headers().contains_key(leptos::server_fn::error::SERVER_FN_ERROR_HEADER) {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let bytes = to_bytes(body, 64 * 1024).await.unwrap_or_default();
    let error: AppError = serde_json::from_slice(&bytes).unwrap_or_else(|_| AppError::internal());
    parts.status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Some(seconds) = error.retry_after {
        parts.headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    }
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(bytes))
}

pub async fn security_headers(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let site_file = req.uri().path().starts_with("/pkg/");
    // /passkeys.js (scripts/ship-js) keeps its name across releases: revalidated.
    let unhashed_site_file = req.uri().path() == "/passkeys.js";
    let mut res = next.run(req).await;
    // Site files carry a content hash in their names when built for release,
    // so a browser may keep them for good; without hashes it must revalidate.
    // Pages and API answers are per-user and never stored.
    let cache = if site_file && res.status() == StatusCode::OK {
        if state.leptos_options.hash_files { "public, max-age=31536000, immutable" } else { "no-cache" }
    } else if unhashed_site_file && res.status() == StatusCode::OK {
        "no-cache"
    } else {
        "no-store"
    };
    if !res.headers().contains_key(header::CACHE_CONTROL) {
        res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    }
    // A page that called <Redirect/> during server rendering gets a Location
    // header from leptos_axum but keeps 200; make it a real redirect so a
    // browser without JavaScript (or before hydration) follows it too.
    if res.status() == StatusCode::OK && res.headers().contains_key(header::LOCATION) {
        *res.status_mut() = StatusCode::FOUND;
    }
    let h = res.headers_mut();
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    // Nothing of our URLs leaves this origin. Not `no-referrer`: under it a
    // browser sends `Origin: null` with a same-origin form post, and where
    // it sends no `Sec-Fetch-Site` (plain http on a name other than
    // localhost) our own forms would be refused as cross-site.
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    // Pages set their own policy with the script nonce (see app::shell);
    // everything else (JSON, files, errors) may run nothing at all.
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"),
        );
    }
    if state.cookies.secure {
        h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000; includeSubDomains"));
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_write_logs_both_names_escaped_and_short() {
        let mut headers = HeaderMap::new();
        headers.insert(header::ORIGIN, HeaderValue::from_static("https://auth.example.com"));
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:3000"));
        assert_eq!(origin_and_host(&headers), ("https://auth.example.com".into(), "127.0.0.1:3000".into()));
        headers.insert(header::HOST, HeaderValue::from_bytes(b"evil\tname").unwrap());
        headers.remove(header::ORIGIN);
        assert_eq!(origin_and_host(&headers), ("(none)".into(), "evil\\tname".into()));
        headers.insert(header::HOST, HeaderValue::from_str(&"h".repeat(500)).unwrap());
        assert_eq!(origin_and_host(&headers).1.len(), 100);
    }
}
