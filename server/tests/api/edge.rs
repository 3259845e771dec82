//! The browser-facing edge: cross-site writes refused, security headers, the nonce CSP, protected pages redirecting.

use super::*;

#[tokio::test]
async fn cross_site_posts_are_refused() {
    let app = spawn_app().await;
    let body = json!({"email": "jo@example.com", "name": "Jo", "password": PASSWORD});
    let url = format!("{}/api/authentication/register", app.base);
    let r = app.send(&app.client, app.client.post(&url).header("origin", "https://evil.example").json(&body)).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = app.send(&app.client, app.client.post(&url).header("sec-fetch-site", "cross-site").json(&body)).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    // Nothing was created.
    assert_eq!(app.log_in("jo@example.com", PASSWORD).await.status, StatusCode::UNAUTHORIZED);
    // The app's own origin passes.
    let own = app.base.clone();
    let r = app.send(&app.client, app.client.post(&url).header("origin", own).json(&body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

#[tokio::test]
async fn responses_carry_security_headers() {
    let app = spawn_app().await;
    let r = app.get("/login").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.contains("Log in"));
    assert_eq!(r.headers["x-content-type-options"], "nosniff");
    assert_eq!(r.headers["x-frame-options"], "DENY");
    // Not no-referrer: that makes browsers send `Origin: null` with our own
    // form posts (gate.spec.ts, plain http on a test domain).
    assert_eq!(r.headers["referrer-policy"], "same-origin");
    assert!(r.headers["content-security-policy"].to_str().unwrap_or("").contains("frame-ancestors 'none'"));
    let r = app.log_in("nobody@example.com", PASSWORD).await;
    assert_eq!(r.headers["cache-control"], "no-store");
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);
    assert_eq!(app.get("/readyz").await.status, StatusCode::OK);
}

#[tokio::test]
async fn protected_page_redirects_without_a_session() {
    let app = spawn_app().await;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let r = app.get_with(&client, "/").await;
    assert!(r.status.is_redirection(), "{} {:?} {}", r.status, r.headers, r.text);
    assert_eq!(r.headers["location"], "/login");
}

#[tokio::test]
async fn pages_carry_a_nonce_csp() {
    let app = spawn_app().await;
    let r = app.get("/login").await;
    let csp = r.headers["content-security-policy"].to_str().unwrap_or("").to_owned();
    let nonce = csp.split("'nonce-").nth(1).and_then(|s| s.split('\'').next()).expect("nonce in CSP");
    assert!(r.text.contains(&format!("nonce=\"{nonce}\"")), "the hydration script carries the nonce");
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("'wasm-unsafe-eval'") && !csp.contains("unsafe-inline")
    );
    let again = app.get("/login").await;
    assert_ne!(
        again.headers["content-security-policy"], r.headers["content-security-policy"],
        "a fresh nonce per page"
    );
    let api = app.log_in("nobody@example.com", PASSWORD).await;
    assert!(api.headers["content-security-policy"].to_str().unwrap_or("").starts_with("default-src 'none'"));
}

#[tokio::test]
async fn api_bodies_must_be_json_and_answers_are_never_redirects() {
    let app = spawn_app().await;
    let url = format!("{}/api/authentication/register", app.base);
    let body = r#"{"email":"plain@example.com","name":"Plain","password":"correct horse battery staple"}"#;
    let r = app.send(&app.client, app.client.post(&url).header("content-type", "text/plain").body(body)).await;
    assert_error(&r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "bad_request");
    assert_eq!(r.headers["cache-control"], "no-store");
    assert_eq!(app.log_in("plain@example.com", PASSWORD).await.status, StatusCode::UNAUTHORIZED, "nothing was created");

    // A browser-like call to the JSON API gets JSON, not a redirect to its Referer.
    let req = app
        .client
        .post(format!("{}/api/authentication/log-in", app.base))
        .header("accept", "text/html,application/xhtml+xml")
        .header("referer", format!("{}/login", app.base))
        .json(&json!({"email": "nobody@example.com", "password": "not the right one at all"}));
    let r = app.send(&app.client, req).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_credentials");
    assert!(!r.headers.contains_key("location"));

    // An oversized body: JSON and no-store like every API answer.
    let r = app.post_raw("/api/authentication/log-in", &format!("{{\"email\":\"{}\"}}", "x".repeat(70_000))).await;
    assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "bad_request");
    assert_eq!(r.headers["cache-control"], "no-store");
}

#[tokio::test]
async fn a_session_cookie_sent_twice_is_refused() {
    let app = spawn_app().await;
    app.register("twice@example.com").await;
    let r = app.log_in("twice@example.com", PASSWORD).await;
    let access = set_cookie(&r, "access").expect("access");
    let one = app.current_user_with(&access).await;
    assert_eq!(one.status, StatusCode::OK);
    for jar in [format!("access=planted; access={access}"), format!("access={access}; access=planted")] {
        let r = app.with_cookie(reqwest::Method::GET, "/api/authentication", &jar, None).await;
        assert_error(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
    }
}

#[tokio::test]
async fn pages_with_user_data_are_never_stored() {
    let app = spawn_app().await;
    app.register("nostore@example.com").await;
    app.log_in("nostore@example.com", PASSWORD).await;
    for page in ["/", "/security", "/login"] {
        let r = app.get(page).await;
        assert_eq!(r.status, StatusCode::OK, "{page}");
        assert_eq!(r.headers["cache-control"], "no-store", "{page}");
    }
}

#[tokio::test]
async fn behind_a_proxy_the_right_most_forwarded_address_counts() {
    let app = spawn_app_with(&[("TRUSTED_PROXY_HEADER", "x-forwarded-for")]).await;
    app.register("proxied@example.com").await;
    // The client's own lines and entries come first; the proxy appends its
    // line last. A line with bytes that are not text does not hide it.
    let req = app
        .client
        .post(format!("{}/api/authentication/log-in", app.base))
        .header("x-forwarded-for", "6.6.6.6")
        .header(
            "x-forwarded-for",
            reqwest::header::HeaderValue::from_bytes(b"caf\xc3\xa9, 203.0.113.7").expect("value"),
        )
        .json(&json!({"email": "proxied@example.com", "password": PASSWORD}));
    assert_eq!(app.send(&app.client, req).await.status, StatusCode::OK);
    let r = app.get("/api/authentication/activity").await;
    assert_eq!(r.body["events"][0]["ip"], "203.0.113.7", "{}", r.text);
}

/// One answer read off a kept-alive connection: its head (lower-cased)
/// and as many body bytes as its Content-Length says.
async fn read_one_answer(stream: &mut tokio::net::TcpStream, pending: &mut Vec<u8>) -> (u16, String) {
    use tokio::io::AsyncReadExt;
    loop {
        if let Some(split) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&pending[..split]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .expect("answers here carry a Content-Length");
            if pending.len() >= split + 4 + length {
                pending.drain(..split + 4 + length);
                let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status line");
                return (status, head);
            }
        }
        let mut buf = [0u8; 4096];
        let n = stream.read(&mut buf).await.expect("read");
        assert!(
            n > 0,
            "the server closed a kept-alive connection; read so far: {:?}",
            String::from_utf8_lossy(pending)
        );
        pending.extend_from_slice(&buf[..n]);
    }
}

/// A proxy keeps its connections to the portal open and sends a request's
/// head and body in separate writes. A write refused on its head alone
/// (another site's Origin) must still be read to its end before the
/// answer, or the connection closes under the proxy, whose next request
/// on it fails (Caddy: "broken pipe", 502). Seen once in CI when the tests
/// served with `axum::serve`; the binary's own loop reads bodies before
/// routing, and the tests now serve with it.
#[tokio::test]
async fn a_write_refused_on_its_head_keeps_the_connection_for_the_next_request() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let body = json!({"email": "jo@example.com", "password": PASSWORD}).to_string();
    let head = format!(
        "POST /api/authentication/log-in HTTP/1.1\r\nHost: {addr}\r\nOrigin: https://evil.example\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut pending = Vec::new();
    for round in 0..200 {
        stream.write_all(head.as_bytes()).await.expect("head");
        if round == 0 {
            // No answer while the body is still on its way.
            let mut byte = [0u8; 1];
            let early = tokio::time::timeout(std::time::Duration::from_millis(100), stream.read(&mut byte)).await;
            assert!(early.is_err(), "answered (or closed) before the body arrived: {early:?}");
        } else {
            tokio::task::yield_now().await;
        }
        stream.write_all(body.as_bytes()).await.expect("body");
        let (status, head) = read_one_answer(&mut stream, &mut pending).await;
        assert_eq!(status, 403, "round {round}: {head}");
        assert!(!head.contains("connection: close"), "round {round}: {head}");
        // The same connection serves the next request.
        stream.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes()).await.expect("next");
        let (status, head) = read_one_answer(&mut stream, &mut pending).await;
        assert_eq!(status, 200, "round {round}: {head}");
    }
}
