//! Scenario j: two server instances on one PostgreSQL database, and how
//! soon the second refuses a log-in ended on the first.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use super::{PASSWORD, client, post};
use crate::Args;
use crate::report::Row;

/// Scenario j: two server processes on one fresh PostgreSQL database. A
/// person logs in on A, B answers the gate for their cookie (and caches it
/// for up to a minute), they log out everywhere on A, and B is asked until
/// it refuses. 100 rounds; the time from A's answer to B's refusal.
pub async fn two_instances(args: &Args, admin: &str) -> Row {
    let db = format!("twofactor_bench_{}", std::process::id());
    let psql = |sql: String| {
        let ok = Command::new("psql").args(["-q", "-d", admin, "-c", &sql]).status().expect("psql");
        assert!(ok.success(), "psql: {sql}");
    };
    psql(format!("DROP DATABASE IF EXISTS {db}"));
    psql(format!("CREATE DATABASE {db}"));
    let url = format!("{}/{db}", admin.rsplit_once('/').expect("an admin URL names a database").0);
    let dir = std::env::temp_dir().join(format!("twofactor-bench-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let start = |port: u16| {
        Command::new(&args.server)
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("DATA_DIR", &dir)
            .env("DATABASE_URL", &url)
            .env("LEPTOS_SITE_ROOT", &args.site)
            .env("JWT_SECRET", "benchmark-signing-key-0123456789abcdef")
            .env("COOKIE_DOMAINS", "example.test")
            .env("SIGNUP", "open")
            .env("GATE_CACHE_SECONDS", "10")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start a server")
    };
    let free = || std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let (port_a, port_b) = (free(), free());
    /// Stops a server however the scenario ends.
    struct Stop(Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    // A first: it applies the migrations; B starts on a ready database.
    let _a = Stop(start(port_a));
    // The gate answers with redirects; they are the answer, not to follow.
    let probe = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let ready = |port: u16| {
        let probe = probe.clone();
        async move {
            for _ in 0..3000 {
                if probe
                    .get(format!("http://127.0.0.1:{port}/readyz"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            panic!("a server did not become ready");
        }
    };
    ready(port_a).await;
    let _b = Stop(start(port_b));
    ready(port_b).await;
    let on = |port: u16, path: &str| format!("http://127.0.0.1:{port}/api{path}");
    let c = client();
    post(
        &c,
        on(port_a, "/authentication/register"),
        json!({"email": "two@example.com", "name": "Two", "password": PASSWORD}),
    )
    .await;
    let ask_b = |gate: String| {
        let probe = probe.clone();
        let url = on(port_b, "/authz/forward-auth");
        async move {
            let r = probe
                .get(url)
                .header("x-forwarded-method", "GET")
                .header("x-forwarded-proto", "https")
                .header("x-forwarded-host", "app.example.test")
                .header("x-forwarded-uri", "/")
                .header("accept", "text/html")
                .header("cookie", format!("twofactor_gate={gate}"))
                .send()
                .await
                .expect("authz");
            r.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or("").contains("/login?")
        }
    };
    // The portal on B, by the access token alone: true once it refuses.
    let portal_b = |access: String| {
        let probe = probe.clone();
        let url = on(port_b, "/authentication");
        async move {
            let r = probe.get(url).header("cookie", format!("access={access}")).send().await.expect("portal");
            r.status().as_u16() == 401
        }
    };
    let (mut delays, mut portal_delays) = (Vec::new(), Vec::new());
    for _ in 0..100 {
        let (_, _, cookies) =
            post(&c, on(port_a, "/authentication/log-in"), json!({"email": "two@example.com", "password": PASSWORD}))
                .await;
        let cookie = |name: &str| {
            cookies
                .iter()
                .find_map(|c| c.split(';').next()?.strip_prefix(name)?.strip_prefix('=').map(str::to_owned))
                .expect("cookie")
        };
        let (gate, access) = (cookie("twofactor_gate"), cookie("access"));
        assert!(!ask_b(gate.clone()).await, "B lets the new log-in through");
        assert!(!portal_b(access.clone()).await, "B's portal knows the new log-in");
        let (s, _, _) = post(&c, on(port_a, "/authentication/log-out-everywhere"), json!({})).await;
        assert_eq!(s, 200);
        let answered = Instant::now();
        let (mut gate_at, mut portal_at) = (None, None);
        while gate_at.is_none() || portal_at.is_none() {
            if gate_at.is_none() && ask_b(gate.clone()).await {
                gate_at = Some(answered.elapsed());
            }
            if portal_at.is_none() && portal_b(access.clone()).await {
                portal_at = Some(answered.elapsed());
            }
            assert!(answered.elapsed() < Duration::from_secs(30), "B never refused");
        }
        delays.extend(gate_at);
        portal_delays.extend(portal_at);
    }
    drop((_a, _b));
    let _ = std::fs::remove_dir_all(&dir);
    psql(format!("DROP DATABASE IF EXISTS {db}"));
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let summary = |mut d: Vec<Duration>| {
        d.sort();
        format!(
            "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            ms(d[d.len() / 2]),
            ms(d[d.len() * 99 / 100]),
            ms(d[d.len() - 1])
        )
    };
    Row {
        scenario: "j. two instances on PostgreSQL: log-out-everywhere answered on A → B refuses".into(),
        figure: format!(
            "gate {}; portal session {} over {} rounds (B keeps entries up to 60 s; NOTIFY ends them)",
            summary(delays.clone()),
            summary(portal_delays),
            delays.len()
        ),
        budget: "p99 < 10 ms",
    }
}
