//! The integration suite: each test starts the real router on a random port
//! against a fresh SQLite database with a manual clock, and talks to it over
//! HTTP like any client would.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::Arc;

use app::server::clock::ManualClock;
use app::server::factors::totp;
use reqwest::StatusCode;
use serde_json::{Value, json};
use server::config::Config;
use server::{build_router, build_state};

#[path = "api/admin.rs"]
mod admin;
#[path = "api/admin_apps.rs"]
mod admin_apps;
#[path = "api/atomic.rs"]
mod atomic;
#[path = "api/claims.rs"]
mod claims;
#[path = "api/edge.rs"]
mod edge;
#[path = "api/empty_bodies.rs"]
mod empty_bodies;
#[path = "api/faults.rs"]
mod faults;
#[path = "api/faults_traffic.rs"]
mod faults_traffic;
#[path = "api/flow.rs"]
mod flow;
#[path = "api/forms.rs"]
mod forms;
#[path = "api/fuzz.rs"]
mod fuzz;
#[path = "api/gate.rs"]
mod gate;
#[path = "api/hangups.rs"]
mod hangups;
#[path = "api/hardening.rs"]
mod hardening;
#[path = "api/identity.rs"]
mod identity;
#[path = "api/instances.rs"]
mod instances;
#[path = "api/invitations.rs"]
mod invitations;
#[path = "api/lockdown_loop.rs"]
mod lockdown_loop;
#[path = "api/log_ins.rs"]
mod log_ins;
#[path = "api/logins.rs"]
mod logins;
#[path = "api/mail.rs"]
mod mail;
#[path = "api/mail_rounds.rs"]
mod mail_rounds;
#[path = "api/metrics.rs"]
mod metrics;
#[path = "api/model.rs"]
mod model;
#[path = "api/moving.rs"]
mod moving;
#[path = "api/new_phone.rs"]
mod new_phone;
#[path = "api/oidc.rs"]
mod oidc;
#[path = "api/operators.rs"]
mod operators;
#[path = "api/passkeys.rs"]
mod passkeys;
#[path = "api/proxies.rs"]
mod proxies;
#[path = "api/proxy_configs.rs"]
mod proxy_configs;
#[path = "api/remembered.rs"]
mod remembered;
#[path = "api/retention.rs"]
mod retention;
#[path = "api/sessions.rs"]
mod sessions;
#[path = "api/traces.rs"]
mod traces;

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

/// Quiet unless asked: `TEST_LOG=1 cargo test …` shows the server's log.
fn init_test_log() {
    if std::env::var_os("TEST_LOG").is_some() {
        server::telemetry::init(server::config::LogFormat::Text);
    }
}

async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

async fn spawn_app_with(extra: &[(&str, &str)]) -> TestApp {
    init_test_log();
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
    // Tests create many accounts from one address; the limit has its own test.
    vars.insert("REGISTRATIONS_PER_HOUR", "100000".to_string());
    // Race tests open hundreds of connections from 127.0.0.1 at once; the
    // per-address cap has its own tests.
    vars.insert("MAX_CONNECTIONS_PER_ADDRESS", "100000".to_string());
    for (k, v) in extra {
        vars.insert(k, v.to_string());
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    // `PUBLIC_URL=self`: the address the app is about to serve on (an
    // OpenID issuer must be where its clients find it).
    if vars.get("PUBLIC_URL").is_some_and(|v| v == "self") {
        vars.insert("PUBLIC_URL", format!("http://{addr}"));
    }
    let config = Config::from_vars(|k| vars.get(k).cloned()).expect("config");
    let clock = ManualClock::new(START);
    let state = build_state(&config, Arc::new(clock.clone())).await.expect("state");
    serve(listener, build_router(state.clone()), &config);
    tokio::spawn(app::server::mail::run_worker(state.clone()));
    tokio::spawn(app::server::oidc::backchannel::run_sender(state.clone()));
    TestApp { base: format!("http://{addr}"), database_url, client: new_client(), clock, state, _dir: dir }
}

/// Serves `router` as the binary does: its own connection loop (bodies
/// read before routing, the header, body and request timers, the
/// connection caps) with `config`'s limits, never `axum::serve`.
fn serve(listener: tokio::net::TcpListener, router: axum::Router, config: &Config) {
    let limits = config.listen_limits(4096);
    tokio::spawn(server::listen::serve(listener, router, limits, std::future::pending()));
}

/// An app behind the gate for `*.example.test`, with these access rules
/// (TOML) and open sign-up.
async fn gated_app_with(rules: &str) -> TestApp {
    let file = tempfile::Builder::new().suffix(".toml").tempfile().expect("rules file");
    std::fs::write(file.path(), rules).expect("write rules");
    let (_, path) = file.keep().expect("keep rules file");
    let path = path.display().to_string();
    spawn_app_with(&[
        ("COOKIE_DOMAINS", "example.test"),
        ("PUBLIC_URL", "http://auth.example.test"),
        ("SIGNUP", "open"),
        ("ACCESS_RULES", &path),
    ])
    .await
}

/// What the gate answers for `GET url` with this gate cookie (nginx's
/// auth_request): its status, and where it sends the browser.
async fn gate_reply(app: &TestApp, gate: &str, url: &str) -> (StatusCode, String) {
    let res = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(format!("{}/api/authz/auth-request", app.base))
        .header("x-original-method", "GET")
        .header("x-original-url", url)
        .header("cookie", format!("twofactor_gate={gate}"))
        .send()
        .await
        .expect("request");
    let to = res.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    (res.status(), to)
}

/// `gate_reply`'s status alone.
async fn gate_answer(app: &TestApp, gate: &str, url: &str) -> StatusCode {
    gate_reply(app, gate, url).await.0
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

    /// POST /api/authentication/refresh with exactly this refresh token.
    async fn refresh_with(&self, refresh: &str) -> Reply {
        self.with_cookie(
            reqwest::Method::POST,
            "/api/authentication/refresh",
            &format!("refresh={refresh}"),
            Some(json!({})),
        )
        .await
    }

    /// Refreshes from `refresh` again and again, as a thief holding the
    /// token would, until refused (at most 100 rotations): each rotation's
    /// access and refresh tokens, oldest first.
    async fn refresh_until_refused(&self, refresh: &str) -> Vec<(String, String)> {
        let mut got = Vec::new();
        let mut refresh = refresh.to_owned();
        for _ in 0..100 {
            let r = self.refresh_with(&refresh).await;
            let (Some(access), Some(next)) = (set_cookie(&r, "access"), set_cookie(&r, "refresh")) else { break };
            if access.is_empty() || next.is_empty() {
                break;
            }
            got.push((access, next.clone()));
            refresh = next;
        }
        got
    }

    /// GET /api/authentication with exactly this access token.
    async fn current_user_with(&self, access: &str) -> Reply {
        self.with_cookie(reqwest::Method::GET, "/api/authentication", &format!("access={access}"), None).await
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

/// Logs in afresh on a new client and lists the activity kinds.
async fn activity_kinds(app: &TestApp, email: &str) -> Vec<String> {
    let c = new_client();
    let r = app.post_with(&c, "/api/authentication/log-in", json!({"email": email, "password": PASSWORD})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["twoFactorRequired"], false, "activity_kinds needs an account without 2FA");
    let a = app.get_with(&c, "/api/authentication/activity").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    all_kinds(&a.body)
}

/// The kinds in an activity answer, changes and other events together.
fn all_kinds(body: &Value) -> Vec<String> {
    ["changes", "events"]
        .iter()
        .flat_map(|list| body[*list].as_array().cloned().unwrap_or_default())
        .map(|e| e["kind"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// Everything a security operation may touch, to compare before and after.
async fn snapshot(app: &TestApp) -> Vec<String> {
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&app.database_url).await.expect("connect");
    let mut rows = Vec::new();
    for sql in [
        "SELECT id || ':' || password_hash || ':' || totp_enabled || ':' || COALESCE(totp_secret, '-') || ':' || \
         COALESCE(totp_pending_secret, '-') || ':' || COALESCE(CAST(totp_last_step AS TEXT), '-') || ':' || \
         session_version FROM users ORDER BY id",
        "SELECT user_id || ':' || code_hash || ':' || COALESCE(CAST(used_at AS TEXT), '-') FROM recovery_codes ORDER BY id",
        "SELECT family || ':' || token_hash || ':' || COALESCE(CAST(used_at AS TEXT), '-') || ':' || \
         COALESCE(CAST(revoked_at AS TEXT), '-') FROM sessions ORDER BY id",
    ] {
        let found: Vec<(String,)> =
            sqlx::query_as(sqlx::AssertSqlSafe(sql.to_owned())).fetch_all(&mut conn).await.expect("snapshot query");
        rows.extend(found.into_iter().map(|(r,)| r));
    }
    rows
}
