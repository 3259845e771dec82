//! The integration suite: each test starts the real router on a random port
//! against a fresh SQLite database with a manual clock, and talks to it over
//! HTTP like any client would.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::Arc;

use app::server::clock::ManualClock;
use app::server::totp;
use reqwest::StatusCode;
use serde_json::{Value, json};
use server::config::Config;
use server::{build_router, build_state};

#[path = "api/atomic.rs"]
mod atomic;
#[path = "api/forms.rs"]
mod forms;
#[path = "api/retention.rs"]
mod retention;

/// 2027-01-15T08:00:10Z: 10 seconds into a TOTP step.
const START: i64 = 1_800_000_010;
const PASSWORD: &str = "correct horse battery staple";

struct TestApp {
    base: String,
    /// The database this app runs on (SQLite file, or a fresh PostgreSQL database).
    database_url: String,
    client: reqwest::Client,
    clock: ManualClock,
    state: app::server::AppState,
    _dir: tempfile::TempDir,
}

struct Reply {
    status: StatusCode,
    body: Value,
    text: String,
    headers: reqwest::header::HeaderMap,
}

async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

async fn spawn_app_with(extra: &[(&str, &str)]) -> TestApp {
    server::telemetry::init(server::config::LogFormat::Text);
    let dir = tempfile::tempdir().expect("temp dir");
    spawn_in(dir, extra).await
}

/// With TEST_POSTGRES_URL set (a server where the user may create
/// databases), every test runs on its own fresh PostgreSQL database;
/// otherwise on a fresh SQLite file.
async fn database_for(dir: &std::path::Path) -> String {
    let Ok(admin) = std::env::var("TEST_POSTGRES_URL") else {
        return format!("sqlite://{}?mode=rwc", dir.join("twofactor.db").display());
    };
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let name =
        format!("twofactor_test_{}_{}", std::process::id(), NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin).await.expect("TEST_POSTGRES_URL");
    // Two statements: PostgreSQL runs a multi-statement string as one
    // transaction, and these refuse to run inside one.
    for sql in [format!("DROP DATABASE IF EXISTS {name}"), format!("CREATE DATABASE {name}")] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.expect("create test database");
    }
    let (base, _) = admin.rsplit_once('/').expect("TEST_POSTGRES_URL names a database");
    format!("{base}/{name}")
}

/// Starts the app on the data directory `dir` (a restart keeps the data).
async fn spawn_in(dir: tempfile::TempDir, extra: &[(&str, &str)]) -> TestApp {
    let mut vars = HashMap::new();
    let database_url = match extra.iter().find(|(k, _)| *k == "DATABASE_URL") {
        Some((_, url)) => url.to_string(),
        None => database_for(dir.path()).await,
    };
    vars.insert("DATABASE_URL", database_url.clone());
    vars.insert("DATA_DIR", dir.path().display().to_string());
    vars.insert("JWT_SECRET", "test-signing-key-that-is-long-enough-0123456789".to_string());
    vars.insert("TWO_FACTOR_AUTHENTICATION_APP_NAME", "Test Login".to_string());
    for (k, v) in extra {
        vars.insert(k, v.to_string());
    }
    let config = Config::from_vars(|k| vars.get(k).cloned()).expect("config");
    let clock = ManualClock::new(START);
    let state = build_state(&config, Arc::new(clock.clone())).await.expect("state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = build_router(state.clone()).into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, router).await });
    TestApp { base: format!("http://{addr}"), database_url, client: new_client(), clock, state, _dir: dir }
}

fn new_client() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).build().expect("client")
}

impl TestApp {
    async fn send(&self, client: &reqwest::Client, req: reqwest::RequestBuilder) -> Reply {
        let _ = client;
        let res = req.send().await.expect("request");
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply { status, body, text, headers }
    }

    async fn post_with(&self, client: &reqwest::Client, path: &str, body: Value) -> Reply {
        self.send(client, client.post(format!("{}{path}", self.base)).json(&body)).await
    }

    async fn post(&self, path: &str, body: Value) -> Reply {
        self.post_with(&self.client, path, body).await
    }

    async fn post_raw(&self, path: &str, body: &str) -> Reply {
        let req = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_owned());
        self.send(&self.client, req).await
    }

    async fn get_with(&self, client: &reqwest::Client, path: &str) -> Reply {
        self.send(client, client.get(format!("{}{path}", self.base))).await
    }

    async fn get(&self, path: &str) -> Reply {
        self.get_with(&self.client, path).await
    }

    async fn register(&self, email: &str) -> Reply {
        self.post("/api/authentication/register", json!({"email": email, "name": "Ann Example", "password": PASSWORD}))
            .await
    }

    async fn log_in(&self, email: &str, password: &str) -> Reply {
        self.post("/api/authentication/log-in", json!({"email": email, "password": password})).await
    }

    fn code_now(&self, secret: &str) -> String {
        self.code_at(secret, self.clock_now())
    }

    fn code_at(&self, secret: &str, time: i64) -> String {
        let bytes = totp::from_base32(secret).expect("base32 secret");
        totp::code_at(&bytes, time).expect("code")
    }

    /// A six-digit code that the secret does not produce anywhere in the
    /// ±1 step window, so "wrong" never happens to be right.
    fn wrong_code(&self, secret: &str) -> String {
        let now = self.clock_now();
        let window: Vec<String> = [-30, 0, 30].iter().map(|d| self.code_at(secret, now + d)).collect();
        (0..).map(|n: u32| format!("{:06}", n * 7)).find(|c| !window.contains(c)).unwrap_or_default()
    }

    fn clock_now(&self) -> i64 {
        use app::server::clock::Clock;
        self.clock.now()
    }

    /// Registers, logs in (full session, 2FA off), enrols. Returns the secret.
    async fn enrolled_user(&self, email: &str) -> String {
        assert_eq!(self.register(email).await.status, StatusCode::CREATED);
        let r = self.log_in(email, PASSWORD).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let g = self.post("/api/2fa/generate", json!({})).await;
        assert_eq!(g.status, StatusCode::OK, "{}", g.text);
        let secret = g.body["secret"].as_str().expect("secret").to_owned();
        let on = self.post("/api/2fa/turn-on", json!({"twoFactorAuthenticationCode": self.code_now(&secret)})).await;
        assert_eq!(on.status, StatusCode::OK, "{}", on.text);
        secret
    }

    /// Like `enrolled_user`, also returning the recovery codes.
    async fn enrolled_with_codes(&self, email: &str) -> (String, Vec<String>) {
        assert_eq!(self.register(email).await.status, StatusCode::CREATED);
        assert_eq!(self.log_in(email, PASSWORD).await.status, StatusCode::OK);
        let g = self.post("/api/2fa/generate", json!({})).await;
        let secret = g.body["secret"].as_str().expect("secret").to_owned();
        let on = self.post("/api/2fa/turn-on", json!({"twoFactorAuthenticationCode": self.code_now(&secret)})).await;
        assert_eq!(on.status, StatusCode::OK, "{}", on.text);
        let codes = on.body["recoveryCodes"]
            .as_array()
            .expect("codes")
            .iter()
            .map(|c| c.as_str().unwrap_or("").to_owned())
            .collect();
        (secret, codes)
    }

    /// Logs out, then passes the password step (2FA on): a password-stage session.
    async fn password_stage(&self, email: &str) {
        self.post("/api/authentication/log-out", json!({})).await;
        let r = self.log_in(email, PASSWORD).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["twoFactorRequired"], true);
    }

    /// A request with exactly this Cookie header and no cookie store.
    async fn with_cookie(&self, method: reqwest::Method, path: &str, cookie: &str, body: Option<Value>) -> Reply {
        let bare = reqwest::Client::new();
        let mut req = bare.request(method, format!("{}{path}", self.base)).header("cookie", cookie);
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.send(&bare, req).await
    }
}

/// The value of cookie `name` from a reply's Set-Cookie headers.
fn set_cookie(reply: &Reply, name: &str) -> Option<String> {
    reply.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).find_map(|c| {
        let (pair, _) = c.split_once(';').unwrap_or((c, ""));
        let (n, v) = pair.split_once('=')?;
        (n == name).then(|| v.to_owned())
    })
}

fn assert_error(reply: &Reply, status: StatusCode, kind: &str) {
    assert_eq!(reply.status, status, "{}", reply.text);
    assert_eq!(reply.body["error"], kind, "{}", reply.text);
    assert!(reply.body["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", reply.text);
    assert!(
        reply.headers.get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("json")),
        "errors are JSON"
    );
}

#[tokio::test]
async fn whole_flow_with_replay_protection() {
    let app = spawn_app().await;
    let mut bodies = Vec::new();

    // Sign up.
    let r = app.register("  Ann@Example.COM ").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["email"], "ann@example.com");
    assert_eq!(r.body["name"], "Ann Example");
    assert_eq!(r.body["isTwoFactorAuthenticationEnabled"], false);
    assert!(r.body["id"].as_i64().is_some());
    bodies.push(r.text);

    // No session yet.
    assert_error(&app.get("/api/authentication").await, StatusCode::UNAUTHORIZED, "unauthenticated");

    // Log in without 2FA: a full session at once.
    let r = app.log_in("ann@example.com", PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["twoFactorRequired"], false);
    let cookie = r.headers.get("set-cookie").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    assert!(cookie.starts_with("access="), "{cookie}");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie} lacks {attr}");
    }
    bodies.push(r.text);
    let me = app.get("/api/authentication").await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["email"], "ann@example.com");
    bodies.push(me.text);

    // Enrol: generate a pending secret, confirm it with a code.
    let g = app.post("/api/2fa/generate", json!({})).await;
    assert_eq!(g.status, StatusCode::OK, "{}", g.text);
    let secret = g.body["secret"].as_str().expect("secret").to_owned();
    let url = g.body["otpauthUrl"].as_str().expect("otpauthUrl");
    assert!(url.starts_with("otpauth://totp/Test%20Login:ann%40example.com?secret="), "{url}");
    assert!(url.contains(&format!("secret={secret}")));
    assert!(secret.len() >= 32, "160-bit secret in base32");

    // Not on until a code confirms it.
    let me = app.get("/api/authentication").await;
    assert_eq!(me.body["isTwoFactorAuthenticationEnabled"], false);
    bodies.push(me.text);

    let r = app.post("/api/2fa/turn-on", json!({"twoFactorAuthenticationCode": app.wrong_code(&secret)})).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
    let turn_on_code = app.code_now(&secret);
    let r = app.post("/api/2fa/turn-on", json!({"twoFactorAuthenticationCode": turn_on_code})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["user"]["isTwoFactorAuthenticationEnabled"], true);
    assert_eq!(r.body["recoveryCodes"].as_array().map(Vec::len), Some(10));
    bodies.push(r.text);

    // The turn-on session was renewed and still works.
    let me = app.get("/api/authentication").await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!(me.body["isTwoFactorAuthenticationEnabled"], true);
    bodies.push(me.text);

    // While on, generate needs a current code; without one nothing is stored
    // (a turn-on with the active secret's code finds no pending secret).
    assert_error(&app.post("/api/2fa/generate", json!({})).await, StatusCode::BAD_REQUEST, "bad_request");
    let r = app.post("/api/2fa/generate", json!({"twoFactorAuthenticationCode": app.wrong_code(&secret)})).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
    let r = app.post("/api/2fa/turn-on", json!({"twoFactorAuthenticationCode": app.code_now(&secret)})).await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");

    // Log out, then the password step gives a password-stage session only.
    let r = app.post("/api/authentication/log-out", json!({})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_error(&app.get("/api/authentication").await, StatusCode::UNAUTHORIZED, "unauthenticated");
    let r = app.log_in("ann@example.com", PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["twoFactorRequired"], true);
    assert!(r.headers.get("set-cookie").and_then(|v| v.to_str().ok()).unwrap_or("").contains("Max-Age=300"));
    bodies.push(r.text);

    // The password-stage session is refused everywhere but /2fa/authenticate.
    assert_error(&app.get("/api/authentication").await, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_error(&app.post("/api/2fa/generate", json!({})).await, StatusCode::UNAUTHORIZED, "unauthenticated");
    let r = app.post("/api/2fa/turn-on", json!({"twoFactorAuthenticationCode": app.code_now(&secret)})).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthenticated");

    // The code that turned 2FA on cannot be replayed to log in.
    let r = app.post("/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": turn_on_code})).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");

    // The next step's code works, once.
    app.clock.advance(30);
    let code = app.code_now(&secret);
    let r = app.post("/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": code})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["email"], "ann@example.com");
    bodies.push(r.text);
    let me = app.get("/api/authentication").await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    bodies.push(me.text);

    // Log in again: the same code again, and the older (still in-window) one, are refused.
    app.post("/api/authentication/log-out", json!({})).await;
    assert_eq!(app.log_in("ann@example.com", PASSWORD).await.status, StatusCode::OK);
    let r = app.post("/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": code})).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
    let older = app.code_at(&secret, app.clock_now() - 30);
    let r = app.post("/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": older})).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
    // A pasted "123 456" form is accepted.
    app.clock.advance(30);
    let c = app.code_now(&secret);
    let spaced = format!("{} {}", &c[..3], &c[3..]);
    let r = app.post("/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": spaced})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // The secret appears in no response but /2fa/generate's.
    for body in &bodies {
        assert!(!body.contains(&secret), "secret leaked in {body}");
        assert!(!body.to_lowercase().contains("secret"), "secret field in {body}");
    }
}

#[tokio::test]
async fn skew_window_is_one_step() {
    let app = spawn_app().await;
    let secret = app.enrolled_user("bob@example.com").await;
    app.post("/api/authentication/log-out", json!({})).await;
    assert_eq!(app.log_in("bob@example.com", PASSWORD).await.status, StatusCode::OK);
    // Two steps ahead of the server: refused. One step ahead: accepted.
    let now = app.clock_now();
    let r =
        app.post("/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": app.code_at(&secret, now + 60)})).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
    let r =
        app.post("/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": app.code_at(&secret, now + 30)})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn password_stage_expires_after_five_minutes() {
    let app = spawn_app().await;
    let secret = app.enrolled_user("cat@example.com").await;
    app.post("/api/authentication/log-out", json!({})).await;
    assert_eq!(app.log_in("cat@example.com", PASSWORD).await.status, StatusCode::OK);
    app.clock.advance(5 * 60 + 10);
    let r = app.post("/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": app.code_now(&secret)})).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
}

#[tokio::test]
async fn full_session_cannot_use_authenticate() {
    let app = spawn_app().await;
    let secret = app.enrolled_user("dan@example.com").await;
    app.clock.advance(30);
    let r = app.post("/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": app.code_now(&secret)})).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
}

#[tokio::test]
async fn racing_requests_with_one_code_have_one_winner() {
    let app = spawn_app().await;
    let secret = app.enrolled_user("eve@example.com").await;
    app.clock.advance(30);
    // Ten separate clients, each past the password step.
    let mut clients = Vec::new();
    for _ in 0..10 {
        let c = new_client();
        let r = app
            .post_with(&c, "/api/authentication/log-in", json!({"email": "eve@example.com", "password": PASSWORD}))
            .await;
        assert_eq!(r.status, StatusCode::OK);
        clients.push(c);
    }
    let code = app.code_now(&secret);
    let tasks = clients.into_iter().map(|c| {
        let url = format!("{}/api/2fa/authenticate", app.base);
        let code = code.clone();
        tokio::spawn(async move {
            c.post(url).json(&json!({"twoFactorAuthenticationCode": code})).send().await.map(|r| r.status())
        })
    });
    let mut ok = 0;
    for t in tasks {
        let status = t.await.expect("task").expect("request");
        if status == StatusCode::OK {
            ok += 1;
        } else {
            // Losers are refused as replays, or throttled once the
            // account's free attempts are spent.
            assert!(status == StatusCode::UNAUTHORIZED || status == StatusCode::TOO_MANY_REQUESTS, "{status}");
        }
    }
    assert_eq!(ok, 1, "exactly one request may win the code");
}

#[tokio::test]
async fn log_in_failures_are_generic() {
    let app = spawn_app().await;
    assert_eq!(app.register("fay@example.com").await.status, StatusCode::CREATED);
    let wrong = app.log_in("fay@example.com", "not the right password").await;
    let unknown = app.log_in("nobody@example.com", PASSWORD).await;
    let short = app.log_in("fay@example.com", "short").await;
    for r in [&wrong, &unknown, &short] {
        assert_error(r, StatusCode::UNAUTHORIZED, "invalid_credentials");
        assert_eq!(r.body["message"], wrong.body["message"]);
        assert!(r.headers.get("set-cookie").is_none());
    }
}

#[tokio::test]
async fn registration_validation() {
    let app = spawn_app().await;
    assert_eq!(app.register("gus@example.com").await.status, StatusCode::CREATED);
    // The same email, differently typed.
    let r = app.register(" GUS@example.com").await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");
    assert!(r.body["fields"]["email"].is_string());

    let runs = app.state.hasher.runs();
    for (password, field_msg) in [("a".repeat(11), "at least 12"), ("a".repeat(129), "at most 128")] {
        let r = app
            .post(
                "/api/authentication/register",
                json!({"email": "hal@example.com", "name": "Hal", "password": password}),
            )
            .await;
        assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
        assert!(r.body["fields"]["password"].as_str().unwrap_or("").contains(field_msg), "{}", r.text);
    }
    // A megabyte password is refused at the edge too.
    let r = app
        .post(
            "/api/authentication/register",
            json!({"email": "hal@example.com", "name": "Hal", "password": "x".repeat(1 << 20)}),
        )
        .await;
    assert!(r.status.is_client_error(), "{}", r.status);
    assert_eq!(app.state.hasher.runs(), runs, "refused passwords are never hashed");

    let r = app
        .post("/api/authentication/register", json!({"email": "not-an-email", "name": " ", "password": PASSWORD}))
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    assert!(r.body["fields"]["email"].is_string() && r.body["fields"]["name"].is_string(), "{}", r.text);
    // Nothing was created by the refused requests.
    assert_eq!(app.log_in("hal@example.com", PASSWORD).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn malformed_input_is_a_client_error_never_500() {
    let app = spawn_app().await;
    for (path, body) in [
        ("/api/authentication/register", "{not json"),
        ("/api/authentication/register", r#"{"email":"a@b.co"}"#),
        ("/api/authentication/register", r#"{"email":1,"name":2,"password":3}"#),
        ("/api/authentication/log-in", ""),
        ("/api/authentication/log-in", "[]"),
        ("/api/2fa/turn-on", "{}"),
        ("/api/2fa/authenticate", r#"{"code":"123456"}"#),
    ] {
        let r = app.post_raw(path, body).await;
        assert!(r.status.is_client_error(), "{path} {body:?} gave {}: {}", r.status, r.text);
        assert!(r.body["message"].is_string(), "{path} {body:?}: {}", r.text);
    }
    // Non-digit codes from a password-stage session.
    app.enrolled_user("ian@example.com").await;
    app.post("/api/authentication/log-out", json!({})).await;
    app.log_in("ian@example.com", PASSWORD).await;
    for bad in ["abcdef", "12345", "1234567", "12345x", ""] {
        let r = app.post("/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": bad})).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    }
    let r = app.get("/api/no-such-endpoint").await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
}

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
async fn endpoints_without_arguments_accept_an_empty_body() {
    let app = spawn_app().await;
    assert_eq!(app.register("kim@example.com").await.status, StatusCode::CREATED);
    assert_eq!(app.log_in("kim@example.com", PASSWORD).await.status, StatusCode::OK);
    let r = app.send(&app.client, app.client.post(format!("{}/api/2fa/generate", app.base))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.body["otpauthUrl"].is_string());
    let r = app.send(&app.client, app.client.post(format!("{}/api/authentication/log-out", app.base))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn database_gone_is_503_not_500() {
    let app = spawn_app().await;
    assert_eq!(app.register("lee@example.com").await.status, StatusCode::CREATED);
    app.state.db.close().await;
    let r = app.log_in("lee@example.com", PASSWORD).await;
    assert_error(&r, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    let r = app.register("max@example.com").await;
    assert_error(&r, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert_eq!(app.get("/readyz").await.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);
}

// ------------------------------------------------------------------ hardening

#[tokio::test]
async fn password_guessing_is_throttled_per_account() {
    let app = spawn_app().await;
    assert_eq!(app.register("nat@example.com").await.status, StatusCode::CREATED);
    for _ in 0..5 {
        assert_error(
            &app.log_in("nat@example.com", "wrong password guess").await,
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        );
    }
    // The sixth try, even with the right password, waits.
    let r = app.log_in("nat@example.com", PASSWORD).await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
    assert_eq!(r.headers["retry-after"], "1");
    assert_eq!(r.body["retryAfter"], 1);
    // An unknown email is throttled the same way: no enumeration by limits.
    for _ in 0..5 {
        app.log_in("ghost@example.com", "wrong password guess").await;
    }
    assert_error(&app.log_in("ghost@example.com", PASSWORD).await, StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
    // The delay doubles per failure.
    app.clock.advance(1);
    assert_error(
        &app.log_in("nat@example.com", "wrong password guess").await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    );
    let r = app.log_in("nat@example.com", PASSWORD).await;
    assert_eq!(r.headers["retry-after"], "2");
    app.clock.advance(2);
    // A success resets the count.
    assert_eq!(app.log_in("nat@example.com", PASSWORD).await.status, StatusCode::OK);
    for _ in 0..5 {
        assert_eq!(app.log_in("nat@example.com", "wrong password guess").await.status, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn delay_is_capped_at_fifteen_minutes() {
    let app = spawn_app().await;
    assert_eq!(app.register("olga@example.com").await.status, StatusCode::CREATED);
    let mut waits = Vec::new();
    for _ in 0..40 {
        let r = app.log_in("olga@example.com", "wrong password guess").await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            let w = r.body["retryAfter"].as_i64().expect("retryAfter");
            waits.push(w);
            app.clock.advance(w);
        }
    }
    // 1, 2, 4, … 512, then 900 seconds and no more.
    assert_eq!(&waits[..10], &[1, 2, 4, 8, 16, 32, 64, 128, 256, 512]);
    assert!(waits[10..].iter().all(|w| *w == 900), "{waits:?}");
}

#[tokio::test]
async fn a_thousand_parallel_wrong_codes_evaluate_at_most_five() {
    let app = spawn_app().await;
    let secret = app.enrolled_user("pia@example.com").await;
    app.password_stage("pia@example.com").await;
    let right = app.code_at(&secret, app.clock_now() + 30);
    let wrong = if right == "000000" { "111111".to_owned() } else { "000000".to_owned() };
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let client = app.client.clone();
            let url = format!("{}/api/2fa/authenticate", app.base);
            let body = json!({"twoFactorAuthenticationCode": wrong});
            tokio::spawn(async move { client.post(url).json(&body).send().await.map(|r| r.status()) })
        })
        .collect();
    let (mut evaluated, mut throttled) = (0, 0);
    for t in tasks {
        match t.await.expect("task").expect("request") {
            StatusCode::UNAUTHORIZED => evaluated += 1,
            StatusCode::TOO_MANY_REQUESTS => throttled += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(evaluated, 5, "only the free attempts are evaluated");
    assert_eq!(throttled, 995);
    // Even the right code waits now.
    let r = app.post("/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": right})).await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
    // Guessing codes does not lock the password step.
    let r = app.log_in("pia@example.com", PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // After the delay the right code works and clears the count.
    app.clock.advance(r.body["retryAfter"].as_i64().unwrap_or(1).max(1));
    let r = app.post("/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": right})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn per_address_limit_spans_accounts() {
    let app = spawn_app().await;
    // 50 failures spread over many accounts from one address.
    for i in 0..50 {
        app.log_in(&format!("user{i}@example.com"), "wrong password guess").await;
    }
    let r = app.log_in("fresh@example.com", "wrong password guess").await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
    // Another address (behind a trusted proxy) is not affected.
    let proxied = spawn_app_with(&[("TRUSTED_PROXY_HEADER", "x-forwarded-for")]).await;
    for i in 0..50 {
        let req = proxied
            .client
            .post(format!("{}/api/authentication/log-in", proxied.base))
            .header("x-forwarded-for", "198.51.100.7")
            .json(&json!({"email": format!("user{i}@example.com"), "password": "wrong password guess"}));
        proxied.send(&proxied.client, req).await;
    }
    let other = proxied
        .client
        .post(format!("{}/api/authentication/log-in", proxied.base))
        .header("x-forwarded-for", "203.0.113.9")
        .json(&json!({"email": "fresh@example.com", "password": "wrong password guess"}));
    assert_error(&proxied.send(&proxied.client, other).await, StatusCode::UNAUTHORIZED, "invalid_credentials");
    let same = proxied
        .client
        .post(format!("{}/api/authentication/log-in", proxied.base))
        .header("x-forwarded-for", "10.0.0.1, 198.51.100.7")
        .json(&json!({"email": "fresh@example.com", "password": "wrong password guess"}));
    assert_error(&proxied.send(&proxied.client, same).await, StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
}

#[tokio::test]
async fn recovery_codes_work_once() {
    let app = spawn_app().await;
    let (_secret, codes) = app.enrolled_with_codes("quin@example.com").await;
    assert_eq!(codes.len(), 10);
    assert!(codes.iter().all(|c| c.len() == 14 && c.chars().filter(|&ch| ch == '-').count() == 2), "{codes:?}");
    let st = app.get("/api/2fa/status").await;
    assert_eq!(st.body["recoveryCodesLeft"], 10, "{}", st.text);

    app.password_stage("quin@example.com").await;
    // Typed in capitals without dashes: still the same code.
    let typed = codes[0].replace('-', "").to_uppercase();
    let r = app.post("/api/2fa/authenticate", json!({"recoveryCode": typed})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(app.get("/api/2fa/status").await.body["recoveryCodesLeft"], 9);

    app.password_stage("quin@example.com").await;
    let r = app.post("/api/2fa/authenticate", json!({"recoveryCode": codes[0]})).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
    let r = app.post("/api/2fa/authenticate", json!({"recoveryCode": "not-a-code"})).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    let r = app
        .post("/api/2fa/authenticate", json!({"recoveryCode": codes[1], "twoFactorAuthenticationCode": "123456"}))
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");

    // Two clients racing with one recovery code: exactly one wins.
    let a = new_client();
    let b = new_client();
    for c in [&a, &b] {
        let r = app
            .post_with(c, "/api/authentication/log-in", json!({"email": "quin@example.com", "password": PASSWORD}))
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let url = format!("{}/api/2fa/authenticate", app.base);
    let body = json!({"recoveryCode": codes[2]});
    let (ra, rb) = tokio::join!(a.post(&url).json(&body).send(), b.post(&url).json(&body).send());
    let statuses = [ra.expect("a").status(), rb.expect("b").status()];
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 1, "{statuses:?}");

    let events = app.with_cookie(reqwest::Method::GET, "/api/authentication/activity", "", None).await;
    assert_eq!(events.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn regenerating_recovery_codes_voids_the_old_ones() {
    let app = spawn_app().await;
    let (secret, old) = app.enrolled_with_codes("rae@example.com").await;
    let r = app.post("/api/2fa/recovery-codes", json!({"twoFactorAuthenticationCode": app.wrong_code(&secret)})).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
    // Refused: the old set is untouched and still works.
    assert_eq!(app.get("/api/2fa/status").await.body["recoveryCodesLeft"], 10);
    let other = new_client();
    app.post_with(&other, "/api/authentication/log-in", json!({"email": "rae@example.com", "password": PASSWORD}))
        .await;
    let r = app.post_with(&other, "/api/2fa/authenticate", json!({"recoveryCode": old[9]})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    app.clock.advance(30);
    let r = app.post("/api/2fa/recovery-codes", json!({"twoFactorAuthenticationCode": app.code_now(&secret)})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let new: Vec<String> = r.body["recoveryCodes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c.as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(new.len(), 10);
    app.password_stage("rae@example.com").await;
    assert_error(
        &app.post("/api/2fa/authenticate", json!({"recoveryCode": old[0]})).await,
        StatusCode::UNAUTHORIZED,
        "invalid_code",
    );
    assert_eq!(app.post("/api/2fa/authenticate", json!({"recoveryCode": new[0]})).await.status, StatusCode::OK);
}

#[tokio::test]
async fn turning_off_needs_password_and_code() {
    let app = spawn_app().await;
    let (secret, codes) = app.enrolled_with_codes("sam@example.com").await;
    // Another device's session, to see it end.
    let other = new_client();
    app.post_with(&other, "/api/authentication/log-in", json!({"email": "sam@example.com", "password": PASSWORD}))
        .await;
    app.clock.advance(30);
    let r = app
        .post_with(&other, "/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": app.code_now(&secret)}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(app.get_with(&other, "/api/authentication").await.status, StatusCode::OK);

    app.clock.advance(30);
    let code = app.code_now(&secret);
    let r = app
        .post("/api/2fa/turn-off", json!({"password": "not my password", "twoFactorAuthenticationCode": code}))
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_credentials");
    let r = app.post("/api/2fa/turn-off", json!({"password": PASSWORD})).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    let r = app
        .post(
            "/api/2fa/turn-off",
            json!({"password": PASSWORD, "twoFactorAuthenticationCode": app.wrong_code(&secret)}),
        )
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
    assert_eq!(app.get("/api/authentication").await.body["isTwoFactorAuthenticationEnabled"], true);

    // With a recovery code instead of the app code.
    let r = app.post("/api/2fa/turn-off", json!({"password": PASSWORD, "recoveryCode": codes[3]})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["isTwoFactorAuthenticationEnabled"], false);
    assert_eq!(app.get("/api/authentication").await.body["isTwoFactorAuthenticationEnabled"], false);
    // The other device's session ended with the change.
    assert_error(&app.get_with(&other, "/api/authentication").await, StatusCode::UNAUTHORIZED, "unauthenticated");
    // Logging in needs no code now.
    app.post("/api/authentication/log-out", json!({})).await;
    assert_eq!(app.log_in("sam@example.com", PASSWORD).await.body["twoFactorRequired"], false);
}

#[tokio::test]
async fn a_new_secret_needs_proof_and_replaces_the_old_only_when_confirmed() {
    let app = spawn_app().await;
    let old = app.enrolled_user("tom@example.com").await;
    app.clock.advance(30);
    let g = app.post("/api/2fa/generate", json!({"twoFactorAuthenticationCode": app.code_now(&old)})).await;
    assert_eq!(g.status, StatusCode::OK, "{}", g.text);
    let new = g.body["secret"].as_str().expect("secret").to_owned();
    assert_ne!(new, old);
    // Not confirmed yet: the old secret still logs in, the new does not.
    app.password_stage("tom@example.com").await;
    app.clock.advance(30);
    assert_error(
        &app.post("/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": app.code_now(&new)})).await,
        StatusCode::UNAUTHORIZED,
        "invalid_code",
    );
    assert_eq!(
        app.post("/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": app.code_now(&old)})).await.status,
        StatusCode::OK
    );
    // Confirmed: the new one replaces the old.
    app.clock.advance(30);
    let r = app.post("/api/2fa/turn-on", json!({"twoFactorAuthenticationCode": app.code_now(&new)})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    app.password_stage("tom@example.com").await;
    app.clock.advance(30);
    assert_error(
        &app.post("/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": app.code_now(&old)})).await,
        StatusCode::UNAUTHORIZED,
        "invalid_code",
    );
    app.clock.advance(30);
    assert_eq!(
        app.post("/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": app.code_now(&new)})).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn access_tokens_expire_and_refresh_rotates() {
    let app = spawn_app().await;
    assert_eq!(app.register("uma@example.com").await.status, StatusCode::CREATED);
    let r = app.log_in("uma@example.com", PASSWORD).await;
    let first_refresh = set_cookie(&r, "refresh").expect("refresh cookie");
    assert!(
        r.headers.get_all("set-cookie").iter().any(
            |c| c.to_str().unwrap_or("").starts_with("access=") && c.to_str().unwrap_or("").contains("Max-Age=900")
        )
    );
    app.clock.advance(15 * 60 + 10);
    assert_error(&app.get("/api/authentication").await, StatusCode::UNAUTHORIZED, "unauthenticated");
    let r = app.post("/api/authentication/refresh", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let second_refresh = set_cookie(&r, "refresh").expect("rotated");
    assert_ne!(first_refresh, second_refresh);
    assert_eq!(app.get("/api/authentication").await.status, StatusCode::OK);

    // Replaying the first refresh token once the grace window for
    // concurrent tabs has passed: refused, and the family dies.
    app.clock.advance(app.state.refresh_grace + 1);
    let r = app
        .with_cookie(
            reqwest::Method::POST,
            "/api/authentication/refresh",
            &format!("refresh={first_refresh}"),
            Some(json!({})),
        )
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_error(&app.get("/api/authentication").await, StatusCode::UNAUTHORIZED, "unauthenticated");
    let r = app.post("/api/authentication/refresh", json!({})).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
    let kinds = activity_kinds(&app, "uma@example.com").await;
    assert!(kinds.contains(&"refresh_reuse_detected".to_owned()), "{kinds:?}");
}

/// Logs in afresh on a new client and lists the activity kinds.
async fn activity_kinds(app: &TestApp, email: &str) -> Vec<String> {
    let c = new_client();
    let r = app.post_with(&c, "/api/authentication/log-in", json!({"email": email, "password": PASSWORD})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["twoFactorRequired"], false, "activity_kinds needs an account without 2FA");
    let a = app.get_with(&c, "/api/authentication/activity").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    a.body["events"].as_array().expect("events").iter().map(|e| e["kind"].as_str().unwrap_or("").to_owned()).collect()
}

#[tokio::test]
async fn a_forged_refresh_token_is_refused_and_cleared() {
    let app = spawn_app().await;
    let r = app
        .with_cookie(reqwest::Method::POST, "/api/authentication/refresh", "refresh=not-a-real-token", Some(json!({})))
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert!(r.headers.get_all("set-cookie").iter().all(|c| c.to_str().unwrap_or("").contains("Max-Age=0")));
    let r = app.post("/api/authentication/refresh", json!({})).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
}

#[tokio::test]
async fn refresh_never_upgrades_a_password_stage_session() {
    let app = spawn_app().await;
    app.enrolled_user("val@example.com").await;
    app.password_stage("val@example.com").await;
    let r = app.post("/api/authentication/refresh", json!({})).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_error(&app.get("/api/authentication").await, StatusCode::UNAUTHORIZED, "unauthenticated");
}

#[tokio::test]
async fn log_out_ends_the_access_token_too() {
    let app = spawn_app().await;
    assert_eq!(app.register("wes@example.com").await.status, StatusCode::CREATED);
    let r = app.log_in("wes@example.com", PASSWORD).await;
    let access = set_cookie(&r, "access").expect("access");
    let refresh = set_cookie(&r, "refresh").expect("refresh");
    let r = app.post("/api/authentication/log-out", json!({})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers.get_all("set-cookie").iter().all(|c| c.to_str().unwrap_or("").contains("Max-Age=0")));
    let copied = format!("access={access}");
    assert_error(
        &app.with_cookie(reqwest::Method::GET, "/api/authentication", &copied, None).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    let r = app
        .with_cookie(
            reqwest::Method::POST,
            "/api/authentication/refresh",
            &format!("refresh={refresh}"),
            Some(json!({})),
        )
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
}

#[tokio::test]
async fn log_out_everywhere_and_password_change_end_other_sessions() {
    let app = spawn_app().await;
    assert_eq!(app.register("xia@example.com").await.status, StatusCode::CREATED);
    let phone = new_client();
    let laptop = new_client();
    for c in [&phone, &laptop] {
        assert_eq!(
            app.post_with(c, "/api/authentication/log-in", json!({"email": "xia@example.com", "password": PASSWORD}))
                .await
                .status,
            StatusCode::OK
        );
    }
    // Password change: the current one is required; other sessions end.
    let r = app
        .post_with(
            &laptop,
            "/api/authentication/change-password",
            json!({"currentPassword": "wrong current one", "newPassword": "a brand new passphrase"}),
        )
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_credentials");
    let r = app
        .post_with(
            &laptop,
            "/api/authentication/change-password",
            json!({"currentPassword": PASSWORD, "newPassword": "short"}),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    assert!(r.body["fields"]["newPassword"].is_string());
    // Neither refusal changed anything: the old password works, no session ended.
    assert_eq!(app.log_in("xia@example.com", PASSWORD).await.status, StatusCode::OK);
    assert_eq!(app.get_with(&phone, "/api/authentication").await.status, StatusCode::OK);
    let r = app
        .post_with(
            &laptop,
            "/api/authentication/change-password",
            json!({"currentPassword": PASSWORD, "newPassword": "a brand new passphrase"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(app.get_with(&laptop, "/api/authentication").await.status, StatusCode::OK);
    assert_error(&app.get_with(&phone, "/api/authentication").await, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_error(
        &app.post_with(&phone, "/api/authentication/refresh", json!({})).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    assert_error(&app.log_in("xia@example.com", PASSWORD).await, StatusCode::UNAUTHORIZED, "invalid_credentials");
    assert_eq!(app.log_in("xia@example.com", "a brand new passphrase").await.status, StatusCode::OK);

    // Log out everywhere from the laptop ends the main client's session too.
    let r = app.post_with(&laptop, "/api/authentication/log-out-everywhere", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_error(&app.get_with(&laptop, "/api/authentication").await, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_error(&app.get("/api/authentication").await, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_error(
        &app.post("/api/authentication/refresh", json!({})).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
}

#[tokio::test]
async fn password_stage_token_is_refused_by_every_other_endpoint() {
    let app = spawn_app().await;
    let secret = app.enrolled_user("yan@example.com").await;
    app.post("/api/authentication/log-out", json!({})).await;
    let r = app.log_in("yan@example.com", PASSWORD).await;
    let stage = format!("access={}", set_cookie(&r, "access").expect("access"));
    let code = app.code_at(&secret, app.clock_now() + 30);
    let posts = [
        ("/api/2fa/generate", json!({"twoFactorAuthenticationCode": code})),
        ("/api/2fa/turn-on", json!({"twoFactorAuthenticationCode": code})),
        ("/api/2fa/turn-off", json!({"password": PASSWORD, "twoFactorAuthenticationCode": code})),
        ("/api/2fa/recovery-codes", json!({"twoFactorAuthenticationCode": code})),
        ("/api/authentication/log-out-everywhere", json!({})),
        (
            "/api/authentication/change-password",
            json!({"currentPassword": PASSWORD, "newPassword": "another long passphrase"}),
        ),
    ];
    for (path, body) in posts {
        let r = app.with_cookie(reqwest::Method::POST, path, &stage, Some(body)).await;
        assert_error(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
    }
    for path in ["/api/authentication", "/api/2fa/status", "/api/authentication/activity"] {
        assert_error(
            &app.with_cookie(reqwest::Method::GET, path, &stage, None).await,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        );
    }
    // A forged "alg: none" token is refused too.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let claims = json!({"sub": "1", "stage": "full", "ver": 2, "iat": START, "exp": START + 9999, "jti": "x",
        "aud": "twofactor:session", "iss": "twofactor", "sid": "x"});
    let forged = format!("access={}.{}.", b64.encode(br#"{"alg":"none","typ":"JWT"}"#), b64.encode(claims.to_string()));
    assert_error(
        &app.with_cookie(reqwest::Method::GET, "/api/authentication", &forged, None).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
}

/// What a database dump shows for zed's secret.
async fn stored_secret(url: &str) -> (String,) {
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(url).await.expect("db");
    sqlx::query_as("SELECT totp_secret FROM users WHERE email = 'zed@example.com'")
        .fetch_one(&mut conn)
        .await
        .expect("row")
}

#[tokio::test]
async fn secrets_are_sealed_at_rest_and_keys_rotate() {
    server::telemetry::init(server::config::LogFormat::Text);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().to_path_buf();
    let k1 = format!("k1:{}", "11".repeat(32));
    let k2 = format!("k2:{}", "22".repeat(32));
    let app = spawn_in(dir, &[("SECRETS_KEY", &k1)]).await;
    let secret = app.enrolled_user("zed@example.com").await;

    let url = app.database_url.clone();
    let stored = stored_secret(&url).await;
    assert!(stored.0.starts_with("v1.k1."), "{}", stored.0);
    assert!(!stored.0.contains(&secret), "the dump shows no usable secret");

    // Rotate: new key current, old key previous; the command re-seals.
    let config = Config::from_vars(|k| match k {
        "DATA_DIR" => Some(path.display().to_string()),
        "DATABASE_URL" => Some(url.clone()),
        "JWT_SECRET" => Some("test-signing-key-that-is-long-enough-0123456789".into()),
        "SECRETS_KEY" => Some(k2.clone()),
        "SECRETS_KEYS_PREVIOUS" => Some(k1.clone()),
        _ => None,
    })
    .expect("config");
    let rotated_state = build_state(&config, Arc::new(app.clock.clone())).await.expect("state");
    assert_eq!(server::ops::rotate_secrets_key(&rotated_state).await.expect("rotate"), 1);
    assert_eq!(server::ops::rotate_secrets_key(&rotated_state).await.expect("again"), 0);
    let stored = stored_secret(&url).await;
    assert!(stored.0.starts_with("v1.k2."), "{}", stored.0);

    // A server on the new key alone still logs the user in with the same app.
    let router = build_router(rotated_state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    let c = new_client();
    let r = c
        .post(format!("{base}/api/authentication/log-in"))
        .json(&json!({"email": "zed@example.com", "password": PASSWORD}))
        .send()
        .await
        .expect("log-in");
    assert_eq!(r.status(), StatusCode::OK);
    app.clock.advance(30);
    let r = c
        .post(format!("{base}/api/2fa/authenticate"))
        .json(&json!({"twoFactorAuthenticationCode": app.code_now(&secret)}))
        .send()
        .await
        .expect("code");
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn activity_lists_security_events() {
    let app = spawn_app().await;
    assert_eq!(app.register("amy@example.com").await.status, StatusCode::CREATED);
    app.log_in("amy@example.com", "wrong password guess").await;
    let r = app
        .client
        .post(format!("{}/api/authentication/log-in", app.base))
        .header("user-agent", "Mozilla/5.0 TestBrowser/1.0")
        .json(&json!({"email": "amy@example.com", "password": PASSWORD}));
    assert_eq!(app.send(&app.client, r).await.status, StatusCode::OK);
    let a = app.get("/api/authentication/activity").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let events = a.body["events"].as_array().expect("events");
    assert_eq!(events[0]["kind"], "log_in_ok");
    assert_eq!(events[0]["ip"], "127.0.0.1");
    assert_eq!(events[0]["userAgent"], "Mozilla/5.0 TestBrowser/1.0");
    assert_eq!(events[0]["at"], START);
    assert_eq!(events[1]["kind"], "log_in_failed");
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

// ------------------------------------------------------------------ many instances and faults

/// A real server process (the binary cargo built for this test run).
struct Instance {
    child: std::process::Child,
    base: String,
}

impl Instance {
    async fn start(database_url: &str, data_dir: &std::path::Path) -> Instance {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
            l.local_addr().expect("addr").port()
        };
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_server"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("DATABASE_URL", database_url)
            .env("DATA_DIR", data_dir)
            .env("JWT_SECRET", "shared-signing-key-of-the-whole-service-0123456789")
            .env("SECRETS_KEY", format!("s1:{}", "5a".repeat(32)))
            .env("RUST_LOG", "warn")
            // A replay is judged at once here (the clock is real).
            .env("REFRESH_GRACE_SECONDS", "0")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start the server binary");
        // Owned by an Instance from here, so a failed start still kills it.
        let instance = Instance { child, base: format!("http://127.0.0.1:{port}") };
        let probe = reqwest::Client::new();
        // Poll until it answers; start-up includes migrations.
        for _ in 0..500 {
            if probe.get(instance.url("/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
                return instance;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("the server at {} did not become ready", instance.base);
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn terminate(&self) {
        let _ = std::process::Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

async fn status_of(req: reqwest::RequestBuilder) -> StatusCode {
    req.send().await.expect("request").status()
}

#[tokio::test]
async fn two_instances_act_as_one_service() {
    let dir = tempfile::tempdir().expect("dir");
    let url = database_for(dir.path()).await;
    let a = Instance::start(&url, dir.path()).await;
    let b = Instance::start(&url, dir.path()).await;
    let c = new_client();
    let creds = json!({"email": "multi@example.com", "password": PASSWORD});
    let reg = json!({"email": "multi@example.com", "name": "Multi", "password": PASSWORD});
    assert_eq!(status_of(c.post(a.url("/api/authentication/register")).json(&reg)).await, StatusCode::CREATED);
    assert_eq!(status_of(c.post(b.url("/api/authentication/register")).json(&reg)).await, StatusCode::CONFLICT);

    // Enrol through A, confirm through B.
    assert_eq!(status_of(c.post(a.url("/api/authentication/log-in")).json(&creds)).await, StatusCode::OK);
    let g: Value =
        c.post(a.url("/api/2fa/generate")).json(&json!({})).send().await.expect("g").json().await.expect("json");
    let secret = totp::from_base32(g["secret"].as_str().expect("secret")).expect("base32");
    let code = |t: i64| totp::code_at(&secret, t).expect("code");
    let on = c.post(b.url("/api/2fa/turn-on")).json(&json!({"twoFactorAuthenticationCode": code(unix_now())}));
    assert_eq!(status_of(on).await, StatusCode::OK);

    // A code accepted by A is refused by B.
    let next = code(unix_now() + 30);
    assert_eq!(status_of(c.post(a.url("/api/authentication/log-in")).json(&creds)).await, StatusCode::OK);
    let body = json!({"twoFactorAuthenticationCode": next});
    assert_eq!(status_of(c.post(a.url("/api/2fa/authenticate")).json(&body)).await, StatusCode::OK);
    assert_eq!(status_of(c.post(b.url("/api/authentication/log-in")).json(&creds)).await, StatusCode::OK);
    assert_eq!(status_of(c.post(b.url("/api/2fa/authenticate")).json(&body)).await, StatusCode::UNAUTHORIZED);

    // Guessing limits count the failures sent to both.
    let wrong = if next == "000000" { "111111" } else { "000000" };
    let (mut evaluated, mut throttled) = (0, 0);
    for i in 0..12 {
        let inst = if i % 2 == 0 { &a } else { &b };
        match status_of(c.post(inst.url("/api/2fa/authenticate")).json(&json!({"twoFactorAuthenticationCode": wrong})))
            .await
        {
            StatusCode::UNAUTHORIZED => evaluated += 1,
            StatusCode::TOO_MANY_REQUESTS => throttled += 1,
            other => panic!("unexpected {other}"),
        }
    }
    // 5 free, one already spent by the replay refused on B; a second
    // boundary crossed during the burst may let one more through at 1 s,
    // and the next delay is 2 s.
    assert!((4..=6).contains(&evaluated), "evaluated {evaluated}");
    assert_eq!(evaluated + throttled, 12);

    // A refresh token rotated on A cannot be reused on B.
    let d = new_client();
    let multi2 = json!({"email": "other@example.com", "name": "Other", "password": PASSWORD});
    assert_eq!(status_of(d.post(a.url("/api/authentication/register")).json(&multi2)).await, StatusCode::CREATED);
    let r = d
        .post(a.url("/api/authentication/log-in"))
        .json(&json!({"email": "other@example.com", "password": PASSWORD}))
        .send()
        .await
        .expect("log-in");
    let first = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("refresh=").map(|v| v.split(';').next().unwrap_or("").to_owned()))
        .expect("refresh");
    assert_eq!(status_of(d.post(a.url("/api/authentication/refresh"))).await, StatusCode::OK);
    let replay =
        reqwest::Client::new().post(b.url("/api/authentication/refresh")).header("cookie", format!("refresh={first}"));
    assert_eq!(status_of(replay).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        status_of(d.get(b.url("/api/authentication"))).await,
        StatusCode::UNAUTHORIZED,
        "the family is revoked everywhere"
    );

    // Log-out-everywhere on A ends the session on B.
    let e = new_client();
    e.post(a.url("/api/authentication/log-in"))
        .json(&json!({"email": "other@example.com", "password": PASSWORD}))
        .send()
        .await
        .expect("log-in");
    assert_eq!(status_of(e.get(b.url("/api/authentication"))).await, StatusCode::OK);
    assert_eq!(status_of(e.post(a.url("/api/authentication/log-out-everywhere"))).await, StatusCode::OK);
    let stale = new_client();
    stale
        .post(b.url("/api/authentication/log-in"))
        .json(&json!({"email": "other@example.com", "password": PASSWORD}))
        .send()
        .await
        .expect("log-in");
    assert_eq!(status_of(e.get(b.url("/api/authentication"))).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status_of(stale.get(b.url("/api/authentication"))).await, StatusCode::OK, "new log-ins still work");
}

#[tokio::test]
async fn sigterm_drains_requests_in_flight() {
    let dir = tempfile::tempdir().expect("dir");
    let url = database_for(dir.path()).await;
    let server = Instance::start(&url, dir.path()).await;
    let client = reqwest::Client::new();
    // Each log-in costs an argon2 verification; at most one per core runs at
    // a time, so these queue for a while.
    let mut tasks: Vec<_> = (0..16)
        .map(|i| {
            let req = client
                .post(server.url("/api/authentication/log-in"))
                .json(&json!({"email": format!("q{i}@example.com"), "password": PASSWORD}));
            tokio::spawn(async move { req.send().await.map(|r| r.status()) })
        })
        .collect();
    // Once the first answer is back, the rest are being served: stop now.
    let first = tasks.remove(0).await.expect("task").expect("first answer");
    assert_eq!(first, StatusCode::UNAUTHORIZED);
    server.terminate();
    for t in tasks {
        assert_eq!(t.await.expect("task").expect("answered, not cut off"), StatusCode::UNAUTHORIZED);
    }
    let mut server = server;
    let status = server.child.wait().expect("exit");
    assert!(status.success(), "{status}");
}

/// A TCP relay in front of PostgreSQL that can be cut and restored, to play
/// the database going away and coming back.
struct Relay {
    port: u16,
    up: Arc<std::sync::atomic::AtomicBool>,
    cut: tokio::sync::broadcast::Sender<()>,
}

impl Relay {
    async fn start(upstream: String) -> Relay {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (cut, _) = tokio::sync::broadcast::channel::<()>(4);
        let (flag, cutter) = (up.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !flag.load(Ordering::SeqCst) {
                    continue; // dropped: connection refused in effect
                }
                let upstream = upstream.clone();
                let mut stop = cutter.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = stop.recv() => {}
                    }
                });
            }
        });
        Relay { port, up, cut }
    }

    fn down(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        let _ = self.cut.send(());
    }

    fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test]
async fn database_away_gives_503_and_service_resumes_without_restart() {
    let Ok(_) = std::env::var("TEST_POSTGRES_URL") else {
        eprintln!("skipped: needs TEST_POSTGRES_URL (the relay stands in front of PostgreSQL)");
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let direct = database_for(dir.path()).await;
    // postgres://user@host:port/db → relay on another port, same database.
    let (head, db) = direct.rsplit_once('/').expect("db");
    let host_port = head.rsplit_once('@').map(|(_, h)| h).unwrap_or(head.trim_start_matches("postgres://"));
    let relay = Relay::start(host_port.to_owned()).await;
    let via_relay = format!("{}/{db}", head.replace(host_port, &format!("127.0.0.1:{}", relay.port)));
    let app = spawn_in(dir, &[("DATABASE_URL", &via_relay), ("DATABASE_ACQUIRE_TIMEOUT_SECONDS", "1")]).await;
    assert_eq!(app.register("ida@example.com").await.status, StatusCode::CREATED);

    relay.down();
    let r = app.log_in("ida@example.com", PASSWORD).await;
    assert_error(&r, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert!(!r.text.to_lowercase().contains("connection"), "no internal error text: {}", r.text);
    assert_error(&app.register("jon@example.com").await, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert_eq!(app.get("/readyz").await.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);

    relay.restore();
    assert_eq!(app.get("/readyz").await.status, StatusCode::OK);
    assert_eq!(app.log_in("ida@example.com", PASSWORD).await.status, StatusCode::OK);
    // Nothing half-written: the sign-up during the outage did not happen.
    assert_error(&app.log_in("jon@example.com", PASSWORD).await, StatusCode::UNAUTHORIZED, "invalid_credentials");
    assert_eq!(app.register("jon@example.com").await.status, StatusCode::CREATED);
}

/// Runs an operator command of the server binary against a database.
fn operator(database_url: &str, data_dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_server"))
        .args(args)
        .env_clear()
        .env("DATABASE_URL", database_url)
        .env("DATA_DIR", data_dir)
        .env("JWT_SECRET", "test-signing-key-that-is-long-enough-0123456789")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run the server binary");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn operator_commands() {
    let app = spawn_app().await;
    let dir = app._dir.path().to_path_buf();
    let url = app.database_url.clone();
    app.enrolled_user("ops@example.com").await;
    let other = new_client();
    app.post_with(&other, "/api/authentication/log-in", json!({"email": "ops@example.com", "password": PASSWORD}))
        .await;

    let (ok, out, err) = operator(&url, &dir, &["migrate"]);
    assert!(ok, "{err}");
    assert!(out.contains("migrations applied"));
    let (ok, out, err) = operator(&url, &dir, &["user", "list"]);
    assert!(ok, "{err}");
    assert!(out.contains("ops@example.com") && out.contains(" on ") && out.contains("1 account(s)"), "{out}");

    let (ok, _, err) = operator(&url, &dir, &["user", "reset-2fa", "nobody@example.com"]);
    assert!(!ok && err.contains("no account"), "{err}");
    let (ok, out, err) = operator(&url, &dir, &["user", "reset-2fa", "OPS@example.com"]);
    assert!(ok, "{err}");
    assert!(out.contains("two-factor authentication is off"), "{out}");
    // The running service sees it at once: old sessions end, the password alone logs in.
    assert_error(&app.get("/api/authentication").await, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_eq!(app.log_in("ops@example.com", PASSWORD).await.body["twoFactorRequired"], false);
    let kinds = activity_kinds(&app, "ops@example.com").await;
    assert!(kinds.contains(&"two_factor_reset".to_owned()), "{kinds:?}");

    let (ok, out, err) = operator(&url, &dir, &["user", "revoke-sessions", "ops@example.com"]);
    assert!(ok && out.contains("every session"), "{err}");
    assert_error(&app.get("/api/authentication").await, StatusCode::UNAUTHORIZED, "unauthenticated");

    // A bad setting stops the binary with a message naming it.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_server"))
        .env_clear()
        .env("DATABASE_URL", "mysql://nope")
        .env("DATA_DIR", &dir)
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("DATABASE_URL must start with sqlite: or postgres://"));
}

#[tokio::test]
async fn a_failed_migration_stops_start_up() {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("broken.db").display());
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url).await.expect("db");
    sqlx::raw_sql("CREATE TABLE users (something_else TEXT)").execute(&mut conn).await.expect("table");
    drop(conn);
    let (ok, _, err) = operator(&url, dir.path(), &["migrate"]);
    assert!(!ok);
    assert!(err.contains("database migration failed"), "{err}");
    let (ok, _, err) = operator(&url, dir.path(), &["serve"]);
    assert!(!ok, "serve must not start on a failed migration");
    assert!(err.contains("database migration failed"), "{err}");
}

#[tokio::test]
async fn an_unwritable_sqlite_file_gives_503_and_changes_nothing() {
    if std::env::var("TEST_POSTGRES_URL").is_ok() {
        return; // SQLite only; the PostgreSQL outage is the relay test.
    }
    // A migrated database with one account, then reopened read-only: the
    // state of a disk remounted read-only or a file whose permissions changed.
    let first = spawn_app().await;
    assert_eq!(first.register("ro@example.com").await.status, StatusCode::CREATED);
    let path = first.database_url.trim_start_matches("sqlite://").split('?').next().unwrap_or("").to_owned();
    let dir = tempfile::tempdir().expect("dir");
    let read_only = format!("sqlite://{path}?mode=ro");
    let app = spawn_in(dir, &[("DATABASE_URL", &read_only), ("DATABASE_ACQUIRE_TIMEOUT_SECONDS", "1")]).await;

    let r = app.register("new@example.com").await;
    assert_error(&r, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    let r = app.log_in("ro@example.com", PASSWORD).await;
    assert_error(&r, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);
    // Nothing was written: the writable server sees only the first account.
    assert_error(&first.log_in("new@example.com", PASSWORD).await, StatusCode::UNAUTHORIZED, "invalid_credentials");
    assert_eq!(first.log_in("ro@example.com", PASSWORD).await.status, StatusCode::OK);
}
