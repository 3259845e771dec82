//! Scenario l: the OpenID provider. Code exchanges at the token endpoint
//! per second (codes made beforehand by authorize requests of a logged-in
//! browser), and userinfo per second with a bearer token, as a share of
//! `/healthz` (scenario a).

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use crate::Args;
use crate::load::{Wrk, wrk};
use crate::report::Row;

const REDIRECT: &str = "https://app.example.test/cb";
/// Codes made, then exchanged (a code lives 60 s: made in a few seconds).
const CODES: usize = 2000;
/// Exchanges in flight at once.
const PARALLEL: usize = 16;

/// Registers the bench's app with the server's CLI, on its data directory.
fn add_client(server: &std::path::Path, data_dir: &std::path::Path) -> (String, String) {
    let out = super::server_command(
        server,
        data_dir,
        &["oidc", "client", "add", "--json", "--name", "Bench", "--redirect-uri", REDIRECT, "--consent", "skip"],
    );
    let v: Value = serde_json::from_slice(&out).expect("--json");
    (v["clientId"].as_str().unwrap_or_default().to_owned(), v["clientSecret"].as_str().unwrap_or_default().to_owned())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted.get(((sorted.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(f64::NAN)
}

/// Scenario l, on the harness's own server (`data_dir` is its).
pub async fn provider(args: &Args, base: &str, data_dir: &std::path::Path, health: Option<&Wrk>) -> Vec<Row> {
    let api = |p: &str| format!("{base}/api{p}");
    let (id, secret) = add_client(&args.server, data_dir);
    let cookie = super::two_factor_session(&api, "oidc-bench@example.com").await;
    // An app reads the provider's keys when it starts, before any sign-in;
    // on a new database that first read makes the signing key (RSA key
    // generation, 50-500 ms), which belongs to no exchange. The peer makes
    // its key before it serves.
    let jwks = reqwest::get(format!("{base}/oidc/jwks")).await.expect("jwks");
    assert!(jwks.status().is_success(), "jwks: {}", jwks.status());
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let authorize = format!(
        "{base}/oidc/authorize?{}",
        query_of(&[
            ("client_id", &id),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
            ("scope", "openid email profile")
        ])
    );
    // The codes, made one after the other (a few seconds in all).
    let mut codes = Vec::with_capacity(CODES);
    for _ in 0..CODES {
        let r = browser.get(&authorize).header("cookie", &cookie).send().await.expect("authorize");
        let location = r.headers()["location"].to_str().unwrap_or_default().to_owned();
        let code = location.split("code=").nth(1).and_then(|c| c.split('&').next()).expect("a code").to_owned();
        codes.push(code);
    }
    let exchanged = exchange_all(format!("{base}/oidc/token"), &id, &secret, codes).await;
    let mut rows = vec![exchanged.row("l. OpenID code exchanges (token endpoint, 16 at a time, RS256 id token)")];
    rows.push(userinfo(
        args,
        &format!("{base}/oidc/userinfo"),
        &exchanged.access,
        health,
        "l. OpenID userinfo (bearer access token)",
        "/healthz",
        "≥ 50 % of /healthz",
    ));
    if let Some(peer) = &args.oidc_peer {
        rows.extend(peer_rows(args, peer, health).await);
    }
    rows
}

/// The same two measurements against Node's `oidc-provider`
/// (bench/peers/oidc-provider.mjs), codes made by its own models.
async fn peer_rows(args: &Args, peer: &str, health: Option<&Wrk>) -> Vec<Row> {
    let codes: Vec<String> = reqwest::get(format!("{peer}/bench/codes?n={CODES}"))
        .await
        .expect("the peer's codes")
        .json()
        .await
        .expect("codes JSON");
    let exchanged =
        exchange_all(format!("{peer}/token"), "bench", "bench-secret-bench-secret-bench-secret", codes).await;
    let row = exchanged.row("l. the same against oidc-provider 9.13.3 (Node 20, in-memory store)");
    let info = userinfo(
        args,
        &format!("{peer}/me"),
        &exchanged.access,
        health,
        "l. oidc-provider userinfo (bearer access token)",
        "our /healthz",
        "(peer)",
    );
    vec![row, info]
}

/// Userinfo under `wrk` with one bearer token, as a share of `health`.
fn userinfo(
    args: &Args,
    url: &str,
    access: &str,
    health: Option<&Wrk>,
    scenario: &str,
    baseline: &str,
    budget: &'static str,
) -> Row {
    let script = std::env::temp_dir().join(format!("twofactor-bench-userinfo-{}.lua", std::process::id()));
    std::fs::write(&script, format!("wrk.method = \"GET\"\nwrk.headers[\"Authorization\"] = \"Bearer {access}\"\n"))
        .expect("lua");
    let info = wrk(url, args.seconds, args.connections, None, Some(&script));
    let _ = std::fs::remove_file(&script);
    let share = health.map(|h| format!("; = {:.0} % of {baseline}", 100.0 * info.rps / h.rps)).unwrap_or_default();
    Row {
        scenario: scenario.into(),
        figure: format!(
            "{:.0} req/s, p50 {:.2} ms, p99 {:.2} ms; {}{share}",
            info.rps,
            info.p50_ms,
            info.p99_ms,
            info.failures()
        ),
        budget,
    }
}

/// Exchanges every code at `token_url`, `PARALLEL` at a time.
struct Exchanged {
    times: Vec<f64>,
    seconds: f64,
    /// An access token one of them gave (for userinfo).
    access: String,
}

impl Exchanged {
    fn row(&self, scenario: &str) -> Row {
        Row {
            scenario: scenario.into(),
            figure: format!(
                "{:.0} /s, p50 {:.2} ms, p99 {:.2} ms ({} codes)",
                self.times.len() as f64 / self.seconds,
                percentile(&self.times, 0.5),
                percentile(&self.times, 0.99),
                self.times.len()
            ),
            budget: "ahead of oidc-provider, same cores",
        }
    }
}

async fn exchange_all(token_url: String, id: &str, secret: &str, codes: Vec<String>) -> Exchanged {
    let queue = Arc::new(std::sync::Mutex::new(codes));
    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..PARALLEL {
        let (queue, http, id, secret, token_url) =
            (queue.clone(), http.clone(), id.to_owned(), secret.to_owned(), token_url.clone());
        tasks.push(tokio::spawn(async move {
            let mut times = Vec::new();
            let mut access = String::new();
            // The guard is dropped before the request: `pop` takes it alone.
            while let Some(code) = queue.lock().ok().and_then(|mut q| q.pop()) {
                let t = Instant::now();
                let r = http
                    .post(&token_url)
                    .basic_auth(&id, Some(&secret))
                    .form(&[("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", REDIRECT)])
                    .send()
                    .await
                    .expect("token");
                let status = r.status();
                let body: Value = r.json().await.expect("token JSON");
                assert!(status.is_success(), "{token_url}: {status} {body}");
                times.push(t.elapsed().as_secs_f64() * 1000.0);
                access = body["access_token"].as_str().unwrap_or_default().to_owned();
            }
            (times, access)
        }));
    }
    let mut times = Vec::new();
    let mut access = String::new();
    for t in tasks {
        let (mut ts, a) = t.await.expect("task");
        times.append(&mut ts);
        if !a.is_empty() {
            access = a;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    times.sort_by(f64::total_cmp);
    Exchanged { times, seconds, access }
}

fn query_of(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            let enc: String = v
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            format!("{k}={enc}")
        })
        .collect::<Vec<_>>()
        .join("&")
}
