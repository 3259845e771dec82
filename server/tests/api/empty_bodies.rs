//! Empty bodies, as real clients send them (issue 19): every POST endpoint
//! without arguments answers as it does for `{}` whether the client sends no
//! body at all (curl) or `Content-Length: 0` (Python's urllib and requests,
//! Java's HttpClient, `fetch`), with or without a Content-Type. Endpoints
//! with fields answer a field error for an empty body and change nothing.
//!
//! The requests are written byte for byte on a TCP socket, so what is on the
//! wire is exactly what each test says, whatever an HTTP client library would
//! add; a small cookie jar carries the session between them.

use std::collections::BTreeMap;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// How clients send "no body": the headers (beyond Host, Connection and
/// Cookie) of a POST whose body is empty.
const EMPTY_BODIES: &[(&str, &[(&str, &str)])] = &[
    // requests.post(url), Java HttpClient's noBody(), fetch(url, {method: 'POST'})
    ("Content-Length: 0", &[("Content-Length", "0")]),
    ("Content-Length: 0 and JSON", &[("Content-Length", "0"), ("Content-Type", "application/json")]),
    // urllib.request.Request(url, data=b"")
    (
        "Content-Length: 0 and a form type",
        &[("Content-Length", "0"), ("Content-Type", "application/x-www-form-urlencoded")],
    ),
    // fetch(url, {method: 'POST', body: ''})
    ("Content-Length: 0 and text", &[("Content-Length", "0"), ("Content-Type", "text/plain;charset=UTF-8")]),
    // curl -X POST
    ("no Content-Length", &[]),
    // A chunked body with no chunks.
    ("an empty chunked body", &[("Transfer-Encoding", "chunked")]),
];

struct Answer {
    status: u16,
    body: Value,
    text: String,
    set_cookies: Vec<String>,
}

/// A client that writes its requests by hand and keeps its cookies.
struct RawClient {
    addr: String,
    jar: BTreeMap<String, String>,
}

impl RawClient {
    fn new(app: &TestApp) -> Self {
        Self { addr: app.base.trim_start_matches("http://").to_owned(), jar: BTreeMap::new() }
    }

    /// A POST with an empty body framed as `how` says.
    async fn post_empty(&mut self, path: &str, how: &[(&str, &str)]) -> Answer {
        let chunked = how.iter().any(|(name, _)| *name == "Transfer-Encoding");
        self.request("POST", path, how, if chunked { b"0\r\n\r\n" } else { b"" }).await
    }

    /// A POST with a JSON body and its exact length.
    async fn post_json(&mut self, path: &str, body: &str) -> Answer {
        let length = body.len().to_string();
        let headers = [("Content-Type", "application/json"), ("Content-Length", length.as_str())];
        self.request("POST", path, &headers, body.as_bytes()).await
    }

    async fn get(&mut self, path: &str) -> Answer {
        self.request("GET", path, &[], b"").await
    }

    async fn request(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", self.addr);
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if !self.jar.is_empty() {
            let cookies: Vec<String> = self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
            head.push_str(&format!("Cookie: {}\r\n", cookies.join("; ")));
        }
        head.push_str("\r\n");
        let mut stream = tokio::net::TcpStream::connect(&self.addr).await.expect("connect");
        stream.write_all(head.as_bytes()).await.expect("write head");
        stream.write_all(body).await.expect("write body");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read answer");
        let answer = parse_answer(&raw);
        for cookie in &answer.set_cookies {
            let (pair, attributes) = cookie.split_once(';').unwrap_or((cookie, ""));
            let Some((name, value)) = pair.split_once('=') else { continue };
            if value.is_empty() || attributes.contains("Max-Age=0") {
                self.jar.remove(name.trim());
            } else {
                self.jar.insert(name.trim().to_owned(), value.to_owned());
            }
        }
        answer
    }
}

fn parse_answer(raw: &[u8]) -> Answer {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete answer");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut payload = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).expect("status line");
    let mut set_cookies = Vec::new();
    let mut chunked = false;
    for line in lines {
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        if name.eq_ignore_ascii_case("set-cookie") {
            set_cookies.push(value.trim().to_owned());
        }
        if name.eq_ignore_ascii_case("transfer-encoding") && value.to_ascii_lowercase().contains("chunked") {
            chunked = true;
        }
    }
    if chunked {
        payload = dechunk(&payload);
    }
    let text = String::from_utf8_lossy(&payload).into_owned();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer { status, body, text, set_cookies }
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&rest[..end]);
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16).expect("chunk size");
        if size == 0 {
            break;
        }
        let start = end + 2;
        out.extend_from_slice(&rest[start..start + size]);
        rest = &rest[start + size + 2..];
    }
    out
}

async fn logged_in(app: &TestApp, email: &str) -> RawClient {
    let mut c = RawClient::new(app);
    let r = c.post_json("/api/authentication/log-in", &json!({"email": email, "password": PASSWORD}).to_string()).await;
    assert_eq!(r.status, 200, "log-in: {}", r.text);
    assert!(c.jar.contains_key("access") && c.jar.contains_key("refresh"), "{:?}", r.set_cookies);
    c
}

#[tokio::test]
async fn every_endpoint_without_arguments_takes_an_empty_body_however_it_is_framed() {
    let app = spawn_app().await;
    assert_eq!(app.register("empty@example.com").await.status, StatusCode::CREATED);
    for (how, headers) in EMPTY_BODIES {
        // POST /api/2fa/generate: a pending secret (2FA off, fresh log-in).
        let mut c = logged_in(&app, "empty@example.com").await;
        let r = c.post_empty("/api/2fa/generate", headers).await;
        assert_eq!(r.status, 200, "generate with {how}: {}", r.text);
        assert!(r.body["secret"].is_string() && r.body["otpauthUrl"].is_string(), "generate with {how}: {}", r.text);

        // POST /api/authentication/refresh: rotated cookies that work.
        let before = c.jar.get("refresh").cloned();
        let r = c.post_empty("/api/authentication/refresh", headers).await;
        assert_eq!(r.status, 200, "refresh with {how}: {}", r.text);
        assert_eq!(r.body["email"], "empty@example.com", "refresh with {how}: {}", r.text);
        assert_ne!(c.jar.get("refresh"), before.as_ref(), "refresh with {how} rotated the token");
        let me = c.get("/api/authentication").await;
        assert_eq!(me.status, 200, "after refresh with {how}: {}", me.text);

        // POST /api/authentication/log-out: cookies cleared, the session
        // over (its access token no longer works).
        let mut stale = RawClient { addr: c.addr.clone(), jar: c.jar.clone() };
        let r = c.post_empty("/api/authentication/log-out", headers).await;
        assert_eq!(r.status, 200, "log-out with {how}: {}", r.text);
        assert!(!c.jar.contains_key("access"), "log-out with {how} cleared the access cookie: {:?}", r.set_cookies);
        assert_eq!(stale.get("/api/authentication").await.status, 401, "log-out with {how} ended the session");

        // POST /api/authentication/log-out-everywhere: every session ends.
        let mut c = logged_in(&app, "empty@example.com").await;
        let mut other = logged_in(&app, "empty@example.com").await;
        let r = c.post_empty("/api/authentication/log-out-everywhere", headers).await;
        assert_eq!(r.status, 200, "log-out-everywhere with {how}: {}", r.text);
        assert_eq!(other.get("/api/authentication").await.status, 401, "log-out-everywhere with {how}");

        // POST /api/webauthn/sign-in/start: a passkey ceremony, no session.
        let mut anonymous = RawClient::new(&app);
        let r = anonymous.post_empty("/api/webauthn/sign-in/start", headers).await;
        assert_eq!(r.status, 200, "sign-in/start with {how}: {}", r.text);
        assert!(r.body["ceremony"].is_string(), "sign-in/start with {how}: {}", r.text);
    }
}

#[tokio::test]
async fn a_whitespace_body_counts_as_empty_and_malformed_json_stays_a_clear_400() {
    let app = spawn_app().await;
    assert_eq!(app.register("blank@example.com").await.status, StatusCode::CREATED);
    let mut c = logged_in(&app, "blank@example.com").await;
    // Whitespace is longer than nothing and shorter than `{}`.
    let r = c.request("POST", "/api/2fa/generate", &[("Content-Length", "1")], b" ").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = c.request("POST", "/api/2fa/generate", &[("Content-Length", "3")], b"\r\n ").await;
    assert_eq!(r.status, 200, "{}", r.text);

    // A body that is there but is not JSON: a 400 that says so.
    for body in ["{not json", "{", "nul"] {
        let r = c.post_json("/api/authentication/log-out", body).await;
        assert_eq!(r.status, 400, "{body:?}: {}", r.text);
        assert_eq!(r.body["error"], "bad_request", "{body:?}: {}", r.text);
        assert!(r.body["message"].as_str().is_some_and(|m| m.contains("not valid JSON")), "{body:?}: {}", r.text);
        assert!(r.body.get("fields").is_none(), "{body:?}: {}", r.text);
    }
    // The session is still there: the refused requests did nothing.
    assert_eq!(c.get("/api/authentication").await.status, 200);
}

#[tokio::test]
async fn an_empty_body_to_an_endpoint_with_fields_is_a_field_error_and_changes_nothing() {
    let app = spawn_app().await;
    assert_eq!(app.register("fields@example.com").await.status, StatusCode::CREATED);
    let mut full = logged_in(&app, "fields@example.com").await;
    let mut anonymous = RawClient::new(&app);
    let before = snapshot(&app).await;
    let runs = app.state.hasher.runs();

    // (endpoint, the field the answer names, whose request)
    let cases: &[(&str, &str, bool)] = &[
        ("/api/authentication/register", "email", false),
        ("/api/authentication/log-in", "email", false),
        ("/api/authentication/forgot-password", "email", false),
        ("/api/authentication/reset-password", "token", false),
        ("/api/authentication/verify-email", "token", false),
        ("/api/authentication/lockdown", "token", false),
        ("/api/2fa/turn-on", "twoFactorAuthenticationCode", true),
        ("/api/2fa/turn-off", "password", true),
        ("/api/2fa/recovery-codes", "twoFactorAuthenticationCode", true),
        ("/api/authentication/change-password", "currentPassword", true),
        ("/api/webauthn/register/start", "name", true),
    ];
    for (how, headers) in EMPTY_BODIES {
        for (path, field, needs_session) in cases {
            let client = if *needs_session { &mut full } else { &mut anonymous };
            let r = client.post_empty(path, headers).await;
            assert_eq!(r.status, 400, "{path} with {how}: {}", r.text);
            assert_eq!(r.body["error"], "bad_request", "{path} with {how}: {}", r.text);
            assert!(r.body["fields"][field].is_string(), "{path} with {how} names `{field}`: {}", r.text);
            assert!(!r.text.contains("JSON") && !r.text.contains("length limit"), "{path} with {how}: {}", r.text);
        }
        // `{}` is answered the same way as no body.
        let r = anonymous.post_json("/api/authentication/register", "{}").await;
        assert_eq!(r.status, 400, "{}", r.text);
        assert!(r.body["fields"]["email"].is_string(), "{}", r.text);
    }
    assert_eq!(snapshot(&app).await, before, "an empty body changed the database");
    assert_eq!(app.state.hasher.runs(), runs, "an empty body never reaches password hashing");
    assert_eq!(full.get("/api/authentication").await.status, 200, "the session survived");
}
