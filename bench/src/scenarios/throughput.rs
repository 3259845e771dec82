//! Scenarios a, b and c, load from wrk: the authenticated GET against a
//! baseline, log-ins against raw argon2 on the same cores, and the GET
//! while log-ins saturate the hashers.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use serde_json::json;

use super::{PASSWORD, client, post};
use crate::Args;
use crate::load::{Wrk, wrk};
use crate::report::Row;
use crate::target::Target;

/// Accounts the log-in load cycles through.
const LOGIN_ACCOUNTS: usize = 64;

/// The benchmark user, registered and logged in: the client that did it
/// (scenario b registers its accounts with it) and the session's cookies.
pub async fn session(api: &impl Fn(&str) -> String) -> (reqwest::Client, String) {
    let main_user = json!({"email": "bench@example.com", "name": "Bench", "password": PASSWORD});
    let c = client();
    post(&c, api("/authentication/register"), main_user.clone()).await;
    let (status, _, cookies) =
        post(&c, api("/authentication/log-in"), json!({"email": "bench@example.com", "password": PASSWORD})).await;
    assert_eq!(status, 200, "log-in for the benchmark user");
    let cookie = cookies.iter().filter_map(|c| c.split(';').next()).collect::<Vec<_>>().join("; ");
    // One request by hand: the load must measure successes.
    let probe = reqwest::Client::new().get(api("/authentication")).header("cookie", &cookie).send().await;
    assert_eq!(probe.map(|r| r.status().as_u16()).ok(), Some(200), "the session cookie opens GET /authentication");
    (c, cookie)
}

/// Scenario a: the authenticated GET and the baseline on the same server
/// (whose rate scenario i compares with too).
pub fn authenticated_get(
    args: &Args,
    api: &impl Fn(&str) -> String,
    base: &str,
    target: Target,
    cookie: &str,
) -> ([Row; 2], Wrk) {
    let health_path = args.health.clone().unwrap_or_else(|| target.health().to_owned());
    let p = &args.prefix;
    let auth = wrk(&api("/authentication"), args.seconds, args.connections, Some(cookie), None);
    let health = wrk(&format!("{base}{health_path}"), args.seconds, args.connections, None, None);
    let authenticated = Row {
        scenario: format!("a. GET {p}/authentication (full session)"),
        figure: format!(
            "{:.0} req/s, p50 {:.2} ms, p99 {:.2} ms; {}",
            auth.rps,
            auth.p50_ms,
            auth.p99_ms,
            auth.failures()
        ),
        budget: "≥ 50 × the original's, same session",
    };
    let baseline_answers = match (target, args.health.is_some()) {
        // Its 401 is the point of this baseline: every answer is one.
        (Target::Original, false) => {
            format!("{} of {} answers non-2xx (401, as meant)", health.non2xx, health.requests)
        }
        _ => health.failures(),
    };
    let baseline = Row {
        scenario: match (target, args.health.is_some()) {
            (Target::Ours, false) => "a. GET /healthz, same server".into(),
            (Target::Original, false) => "a. GET /authentication without a cookie (401), same server".into(),
            (_, true) => format!("a. GET {health_path}, same server"),
        },
        figure: format!(
            "{:.0} req/s, p50 {:.2} ms, p99 {:.2} ms; {baseline_answers}; authenticated = {:.0} % of it",
            health.rps,
            health.p50_ms,
            health.p99_ms,
            100.0 * auth.rps / health.rps
        ),
        budget: "authenticated ≥ 80 %",
    };
    ([authenticated, baseline], health)
}

/// Scenario b: log-ins per second, and raw argon2 verifications per second
/// for comparison. Against ours it measures two kinds of log-in: from the
/// owner's browser (it carries the device cookie of an earlier log-in, as
/// a person's own browser does) and from a browser new to the account
/// (each one queues a mail telling the owner, which the server then writes
/// out). Returns the rows and wrk's log-in script (owners' browsers), which
/// scenario c runs again (and then removes).
pub async fn log_ins(
    args: &Args,
    api: &impl Fn(&str) -> String,
    target: Target,
    c: &reqwest::Client,
) -> (Vec<Row>, PathBuf) {
    // Measured before and after the log-ins: this virtual machine's speed
    // drifts by 10-20 % within a minute, so the log-ins are compared with
    // the mean of the two (both are printed).
    let raw_before = raw_argon2_rate(args.seconds.min(10));
    // Log-ins spread over many accounts: concurrent attempts on one account
    // are limited by design (each in-flight attempt counts until it succeeds).
    let mut devices = Vec::with_capacity(LOGIN_ACCOUNTS);
    for i in 0..LOGIN_ACCOUNTS {
        let email = format!("login{i}@example.com");
        post(c, api("/authentication/register"), json!({"email": email, "name": "L", "password": PASSWORD})).await;
        if target == Target::Ours {
            // One log-in by hand: its device cookie makes the browser the owner's.
            let (status, _, cookies) =
                post(&client(), api("/authentication/log-in"), json!({"email": email, "password": PASSWORD})).await;
            assert_eq!(status, 200, "the first log-in of {email}");
            let device = cookies
                .iter()
                .filter_map(|c| c.split(';').next())
                .find(|c| c.starts_with("device=") || c.starts_with("__Host-device="))
                .expect("a device cookie from the log-in");
            devices.push(device.to_owned());
        }
    }
    let pid = std::process::id();
    let owners = login_script(&format!("twofactor-bench-login-{pid}.lua"), &devices);
    let new_browsers = login_script(&format!("twofactor-bench-login-new-{pid}.lua"), &[]);
    let rows = match target {
        Target::Ours => {
            let owner = wrk(&api("/authentication/log-in"), args.seconds, 16, None, Some(&owners));
            let fresh = wrk(&api("/authentication/log-in"), args.seconds, 16, None, Some(&new_browsers));
            let raw_after = raw_argon2_rate(args.seconds.min(10));
            let raw = (raw_before + raw_after) / 2.0;
            let share = |w: &Wrk| {
                format!(
                    "{:.1} vs {raw:.1} /s (raw before {raw_before:.1}, after {raw_after:.1}) = {:.0} %; {}",
                    w.rps,
                    100.0 * w.rps / raw,
                    w.failures()
                )
            };
            vec![
                Row {
                    scenario: "b. log-ins/s vs raw argon2 verifications/s (the owner's browser)".into(),
                    figure: share(&owner),
                    budget: "≥ 90 %",
                },
                Row {
                    scenario: "b. the same from a browser new to the account (each mails the owner)".into(),
                    figure: share(&fresh),
                    budget: "(for comparison)",
                },
            ]
        }
        Target::Original => {
            let login = wrk(&api("/authentication/log-in"), args.seconds, 16, None, Some(&new_browsers));
            let raw = raw_before;
            vec![Row {
                scenario: "b. log-ins/s (bcrypt cost 10: password compare + refresh-token hash)".into(),
                figure: format!(
                    "{:.1} /s, p50 {:.1} ms, p99 {:.1} ms; {} (raw argon2 here {raw:.1} /s: not its hash)",
                    login.rps,
                    login.p50_ms,
                    login.p99_ms,
                    login.failures()
                ),
                budget: "(for comparison)",
            }]
        }
    };
    let _ = std::fs::remove_file(&new_browsers);
    (rows, owners)
}

/// wrk's script for log-ins cycling through the accounts; with `cookies`
/// (one per account, in order) each request carries its account's.
fn login_script(name: &str, cookies: &[String]) -> PathBuf {
    let script = std::env::temp_dir().join(name);
    let mut f = std::fs::File::create(&script).expect("lua");
    let quoted: Vec<String> = cookies.iter().map(|c| format!("{c:?}")).collect();
    writeln!(
        f,
        "cookies = {{{}}}\ncounter = 0\nrequest = function()\n  counter = counter + 1\n  local i = counter % {LOGIN_ACCOUNTS}\n  local body = '{{\"email\":\"login' .. i .. '@example.com\",\"password\":\"{PASSWORD}\"}}'\n  local headers = {{[\"Content-Type\"] = \"application/json\"}}\n  if cookies[i + 1] then headers[\"Cookie\"] = cookies[i + 1] end\n  return wrk.format(\"POST\", nil, headers, body)\nend",
        quoted.join(", ")
    )
    .expect("lua");
    script
}

/// Scenario c: the authenticated GET while b's log-in load runs; removes
/// b's script.
pub async fn get_during_log_ins(args: &Args, api: &impl Fn(&str) -> String, cookie: &str, script: &Path) -> Row {
    let p = &args.prefix;
    let (login_url, get_url, secs, conns, ck, sc) = (
        api("/authentication/log-in"),
        api("/authentication"),
        args.seconds,
        args.connections,
        cookie.to_owned(),
        script.to_path_buf(),
    );
    let background = std::thread::spawn(move || wrk(&login_url, secs, 16, None, Some(&sc)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = wrk(&get_url, secs.saturating_sub(1).max(1), conns, Some(&ck), None);
    let background = background.join().expect("the log-in load");
    let _ = std::fs::remove_file(script);
    Row {
        scenario: format!("c. GET {p}/authentication during b"),
        figure: format!(
            "{:.0} req/s, p99 {:.2} ms; {}; log-ins meanwhile {:.1} /s, {}",
            during.rps,
            during.p99_ms,
            during.failures(),
            background.rps,
            background.failures()
        ),
        budget: "p99 < 10 ms",
    }
}

/// Raw argon2id verifications per second with every core busy, the same
/// parameters as the server (OWASP: 19 MiB, t=2, p=1).
fn raw_argon2_rate(seconds: u64) -> f64 {
    let params = argon2::Params::new(19 * 1024, 2, 1, None).expect("params");
    let a2 = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let hash = a2.hash_password(PASSWORD.as_bytes()).expect("hash").to_string();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let threads: Vec<_> = (0..cores)
        .map(|_| {
            let (hash, a2) = (hash.clone(), a2.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let _ = a2.verify_password(PASSWORD.as_bytes(), hash.as_str());
                    n += 1;
                }
                n
            })
        })
        .collect();
    let total: u64 = threads.into_iter().map(|t| t.join().unwrap_or(0)).sum();
    total as f64 / seconds as f64
}
