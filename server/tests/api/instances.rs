//! Real server processes: two instances on one PostgreSQL database acting as one service, draining on SIGTERM,
//! and slow clients that must not starve the server.

use super::*;

// ------------------------------------------------------------------ many instances and faults

/// A real server process (the binary cargo built for this test run).
pub(super) struct Instance {
    child: std::process::Child,
    base: String,
}

impl Instance {
    async fn start(database_url: &str, data_dir: &std::path::Path) -> Instance {
        Self::start_with(database_url, data_dir, &[]).await
    }

    pub(super) async fn start_with(database_url: &str, data_dir: &std::path::Path, extra: &[(&str, &str)]) -> Instance {
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
            .env("SECRETS_KEY", format!("s1:{}", "5a17c0ffee42d00d".repeat(4)))
            .env("RUST_LOG", "warn")
            // A replay is judged at once here (the clock is real).
            .env("REFRESH_GRACE_SECONDS", "0")
            .envs(extra.iter().copied())
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

    pub(super) fn url(&self, path: &str) -> String {
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

pub(super) async fn status_of(req: reqwest::RequestBuilder) -> StatusCode {
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

/// Opens a connection and sends part of a request's headers, then holds it.
pub(super) async fn half_sent(base: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(b"POST /api/authentication/log-in HTTP/1.1\r\nHost: x\r\nContent-Type: app").await.expect("write");
    stream
}

/// Reads until the server closes the connection; returns what it sent.
pub(super) async fn read_to_close(mut stream: tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(20), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the server kept a stalled connection open");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn held_open_connections_do_not_starve_the_server() {
    let dir = tempfile::tempdir().expect("dir");
    let url = database_for(dir.path()).await;
    let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(20)).build().expect("client");

    // Room for all of them: an honest request is answered at once while 40
    // half-sent requests are held open.
    let roomy = Instance::start_with(&url, dir.path(), &[("HEADER_TIMEOUT_SECONDS", "60")]).await;
    let mut held = Vec::new();
    for _ in 0..40 {
        held.push(half_sent(&roomy.base).await);
    }
    let started = std::time::Instant::now();
    assert_eq!(status_of(client.get(roomy.url("/healthz"))).await, StatusCode::OK);
    eprintln!("answered beside 40 held connections in {:?}", started.elapsed());
    drop(held);

    // Fewer slots than attackers: the header timeout frees them, so the
    // honest request is answered once it is accepted, not never.
    let tight = Instance::start_with(
        &url,
        dir.path(),
        &[("MAX_CONNECTIONS", "32"), ("HEADER_TIMEOUT_SECONDS", "1"), ("REQUEST_TIMEOUT_SECONDS", "2")],
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..40 {
        held.push(half_sent(&tight.base).await);
    }
    let started = std::time::Instant::now();
    assert_eq!(status_of(client.get(tight.url("/healthz"))).await, StatusCode::OK);
    eprintln!("answered behind 40 held connections and a cap of 32 in {:?}", started.elapsed());
    // Every stalled connection was closed by the server.
    for stream in held {
        read_to_close(stream).await;
    }
    // So is one that sends nothing at all, or one byte of an HTTP/2 preface.
    let silent = tokio::net::TcpStream::connect(tight.base.trim_start_matches("http://")).await.expect("connect");
    read_to_close(silent).await;
    use tokio::io::AsyncWriteExt;
    let mut preface = tokio::net::TcpStream::connect(tight.base.trim_start_matches("http://")).await.expect("connect");
    preface.write_all(b"P").await.expect("write");
    read_to_close(preface).await;

    // Headers sent in full but the body stalls: 408 in JSON once the
    // request timeout passes, and the connection is closed.
    let mut slow_body =
        tokio::net::TcpStream::connect(tight.base.trim_start_matches("http://")).await.expect("connect");
    slow_body
        .write_all(
            b"POST /api/authentication/log-in HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"email\":",
        )
        .await
        .expect("write");
    let answer = read_to_close(slow_body).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"error\":\"timeout\""), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("cache-control: no-store"), "{answer}");
}

/// Asks instance `at` about `app.example.test/` with a gate cookie: the
/// Location it answers (where the browser would be sent).
async fn gate_location(at: &Instance, gate: &str) -> String {
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(at.url("/api/authz/forward-auth"))
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "app.example.test")
        .header("x-forwarded-uri", "/")
        .header("accept", "text/html")
        .header("cookie", format!("twofactor_gate={gate}"))
        .send()
        .await
        .expect("authz");
    r.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned()
}

/// How soon another instance must refuse an ended log-in when it is told
/// (PostgreSQL `NOTIFY`): well below the 10 s its cache may keep an entry,
/// so a refusal inside it cannot be the entry's age.
const TOLD_WITHIN: std::time::Duration = std::time::Duration::from_secs(3);

#[tokio::test]
async fn a_log_out_on_one_instance_ends_the_gate_and_the_portal_session_on_the_other_at_once() {
    let dir = tempfile::tempdir().expect("dir");
    let url = database_for(dir.path()).await;
    let postgres = url.starts_with("postgres");
    // On PostgreSQL the news travels by NOTIFY: the cache may keep entries
    // the longest it allows (10 s), so a prompt refusal proves the
    // notification. On SQLite two processes cannot notify each other:
    // entries live one second.
    let max_age = if postgres { "10" } else { "1" };
    let env = [("COOKIE_DOMAINS", "example.test"), ("SIGNUP", "open"), ("GATE_CACHE_SECONDS", max_age)];
    let a = Instance::start_with(&url, dir.path(), &env).await;
    let b = Instance::start_with(&url, dir.path(), &env).await;
    let email = "gate-many@example.com";
    let c = new_client();
    let reg = json!({"email": email, "name": "Gate", "password": PASSWORD});
    assert_eq!(status_of(c.post(a.url("/api/authentication/register")).json(&reg)).await, StatusCode::CREATED);
    // A log-in on A, then asked of B until B's cache holds it: its gate
    // cookie and its access token.
    let log_in_and_ask_b = async || {
        let r = c
            .post(a.url("/api/authentication/log-in"))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .expect("log-in");
        let set_cookie = |name: &str| {
            r.headers()
                .get_all("set-cookie")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(|c| c.split(';').next()?.strip_prefix(name)?.strip_prefix('=').map(str::to_owned))
                .expect("cookie")
        };
        let (gate, access) = (set_cookie("twofactor_gate"), set_cookie("access"));
        // Alive on B (2FA is off, so "turn it on"): asked twice, the second
        // answer may come from B's cache.
        for _ in 0..3 {
            assert!(gate_location(&b, &gate).await.contains("/security?need=two-factor"));
            assert_eq!(portal_on(&b, &access).await, StatusCode::OK);
        }
        (gate, access)
    };
    // Asks B until it refuses the log-in at the gate and at the portal (by
    // its access token alone: the client's own cookies are cleared by the
    // log-out); how long each took.
    let refused_by_b = async |gate: &str, access: &str, started: std::time::Instant| {
        let (mut gate_refused, mut portal_refused) = (None, None);
        while gate_refused.is_none() || portal_refused.is_none() {
            if gate_refused.is_none() && gate_location(&b, gate).await.contains("/login?") {
                gate_refused = Some(started.elapsed());
            }
            if portal_refused.is_none() && portal_on(&b, access).await == StatusCode::UNAUTHORIZED {
                portal_refused = Some(started.elapsed());
            }
            assert!(started.elapsed() < std::time::Duration::from_secs(15), "B still lets the ended log-in through");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        (gate_refused.unwrap_or_default(), portal_refused.unwrap_or_default())
    };

    if postgres {
        // The control: the same log-in ended behind B's back (written to the
        // database as a log-out is, with no NOTIFY, as if B's listener were
        // deaf). B keeps letting it through until its entries age out, so
        // B's cache holds them and only the notification can end them
        // sooner; were the cache off, this fails.
        let (gate, access) = log_in_and_ask_b().await;
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url).await.expect("connect");
        sqlx::query(
            "UPDATE logins SET revoked_at = $1 WHERE revoked_at IS NULL \
             AND user_id = (SELECT id FROM users WHERE email = $2)",
        )
        .bind(unix_now())
        .bind(email)
        .execute(&mut conn)
        .await
        .expect("end the log-in unseen");
        sqlx::query("UPDATE users SET session_version = session_version + 1 WHERE email = $1")
            .bind(email)
            .execute(&mut conn)
            .await
            .expect("end the sessions unseen");
        let started = std::time::Instant::now();
        while started.elapsed() < TOLD_WITHIN {
            assert!(
                gate_location(&b, &gate).await.contains("/security?need=two-factor"),
                "the gate asked the database"
            );
            assert_eq!(portal_on(&b, &access).await, StatusCode::OK, "the portal asked the database");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let (gate_after, portal_after) = refused_by_b(&gate, &access, started).await;
        eprintln!(
            "an ended log-in nobody was told of, refused by B after: gate {gate_after:?}, portal {portal_after:?}"
        );
    }

    let (gate, access) = log_in_and_ask_b().await;
    let started = std::time::Instant::now();
    assert_eq!(
        status_of(c.post(a.url("/api/authentication/log-out-everywhere")).json(&json!({}))).await,
        StatusCode::OK
    );
    let (gate_refused, portal_refused) = refused_by_b(&gate, &access, started).await;
    eprintln!(
        "refused on the other instance after log-out-everywhere: gate {gate_refused:?}, portal {portal_refused:?}"
    );
    if postgres {
        assert!(gate_refused < TOLD_WITHIN && portal_refused < TOLD_WITHIN, "by NOTIFY, not by the entry's age");
    }
}

/// The portal's answer on `at` to a request with this access token alone.
async fn portal_on(at: &Instance, access: &str) -> StatusCode {
    new_client()
        .get(at.url("/api/authentication"))
        .header("cookie", format!("access={access}"))
        .send()
        .await
        .expect("portal")
        .status()
}

/// The operator's `server oidc client add --json`, run as its own process
/// on the instances' database; returns (client id, secret).
fn cli_add_client(database_url: &str, data_dir: &std::path::Path, args: &[&str]) -> (String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_server"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("DATA_DIR", data_dir)
        .env("JWT_SECRET", "shared-signing-key-of-the-whole-service-0123456789")
        .env("SECRETS_KEY", format!("s1:{}", "5a17c0ffee42d00d".repeat(4)))
        .env("PUBLIC_URL", "http://sso.example.test")
        .env("RUST_LOG", "warn")
        .args(["oidc", "client", "add", "--json"])
        .args(args)
        .output()
        .expect("run the CLI");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON from --json");
    (v["clientId"].as_str().unwrap().to_owned(), v["clientSecret"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn an_app_signs_in_through_one_instance_and_a_log_out_on_the_other_ends_its_tokens() {
    let dir = tempfile::tempdir().expect("dir");
    let url = database_for(dir.path()).await;
    // On PostgreSQL the caches hold entries up to 10 s: only NOTIFY makes
    // the refusal prompt. On SQLite (no NOTIFY between processes) the
    // cache is off.
    let max_age = if url.starts_with("postgres") { "10" } else { "0" };
    let env = [("PUBLIC_URL", "http://sso.example.test"), ("SIGNUP", "open"), ("GATE_CACHE_SECONDS", max_age)];
    let a = Instance::start_with(&url, dir.path(), &env).await;
    let b = Instance::start_with(&url, dir.path(), &env).await;
    let redirect = "https://app.example.test/cb";
    let (id, secret) = cli_add_client(
        &url,
        dir.path(),
        &["--name", "Wiki", "--redirect-uri", redirect, "--consent", "skip", "--two-factor", "optional"],
    );
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let reg = json!({"email": "sso@example.com", "name": "Sso", "password": PASSWORD});
    assert_eq!(status_of(browser.post(a.url("/api/authentication/register")).json(&reg)).await, StatusCode::CREATED);
    let creds = json!({"email": "sso@example.com", "password": PASSWORD});
    assert_eq!(status_of(browser.post(a.url("/api/authentication/log-in")).json(&creds)).await, StatusCode::OK);
    // The key is made once, through A; B signs with the same one.
    let jwks: Value = browser.get(a.url("/oidc/jwks")).send().await.unwrap().json().await.unwrap();

    // Authorize on A, exchange on B.
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("client_id", id.as_str()),
            ("redirect_uri", redirect),
            ("response_type", "code"),
            ("scope", "openid email"),
        ])
        .finish();
    let r = browser.get(a.url(&format!("/oidc/authorize?{query}"))).send().await.unwrap();
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let code = url::Url::parse(&location).unwrap().query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    let tokens: Value = reqwest::Client::new()
        .post(b.url("/oidc/token"))
        .basic_auth(&id, Some(&secret))
        .form(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", redirect)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = tokens["access_token"].as_str().expect("tokens from B").to_owned();
    let header = jsonwebtoken::decode_header(tokens["id_token"].as_str().unwrap()).unwrap();
    assert_eq!(Some(jwks["keys"][0]["kid"].as_str().unwrap()), header.kid.as_deref(), "B signs with A's key");
    let userinfo = |i: &Instance| reqwest::Client::new().get(i.url("/oidc/userinfo")).bearer_auth(&access).send();
    assert_eq!(userinfo(&a).await.unwrap().status(), StatusCode::OK, "A has it in its cache now");

    // The log-out through B ends the tokens A answers for.
    assert_eq!(status_of(browser.post(b.url("/api/authentication/log-out")).json(&json!({}))).await, StatusCode::OK);
    let started = std::time::Instant::now();
    let mut refused = false;
    while started.elapsed() < std::time::Duration::from_secs(2) {
        if userinfo(&a).await.unwrap().status() == StatusCode::UNAUTHORIZED {
            refused = true;
            break;
        }
    }
    assert!(refused, "A refused the token within 2 s (its cache holds entries for {max_age} s)");
}
