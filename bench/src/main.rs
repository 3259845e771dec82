//! The benchmark harness (see BENCHMARKS.md). It starts the release server
//! on an empty database (or uses `--base-url`), then measures each scenario
//! of issue #5 and prints one table row per scenario. Load comes from wrk
//! (Debian's package); the 2FA scenario and the raw argon2 rate come from
//! this program. Timings are measurements, never assertions.

// A measuring tool run by hand: a failure should stop it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod hotp;
mod load;
mod report;
mod scenarios;
mod server;
mod target;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use report::Row;
use scenarios::{bursts, gate, postgres, site, throughput, two_factor};
use server::{rss_kib, start_server};
use target::Target;

#[derive(Parser)]
#[command(about = "Benchmarks the two-factor login server over its HTTP API")]
struct Args {
    /// A running server to measure; without it the harness starts
    /// `--server` itself on an empty SQLite database.
    #[arg(long)]
    base_url: Option<String>,
    /// Path prefix of the API: "/api" here, "" for the NestJS original
    /// (whose API differs in the ways `Target` lists).
    #[arg(long, default_value = "/api")]
    prefix: String,
    /// Path of the baseline of scenario a: by default `/healthz` here, and
    /// for the original (which has none) `GET /authentication` without a
    /// cookie, which it answers 401 without touching its database.
    #[arg(long)]
    health: Option<String>,
    /// Seconds per load run.
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// wrk connections.
    #[arg(long, default_value_t = 32)]
    connections: u32,
    /// Enrolled users for the 2FA scenario.
    #[arg(long, default_value_t = 200)]
    users: usize,
    #[arg(long, default_value = "target/release/server")]
    server: PathBuf,
    /// A PostgreSQL server (an admin URL such as
    /// postgres://postgres@127.0.0.1/postgres): adds scenario j, two
    /// instances on a fresh database there.
    #[arg(long)]
    postgres: Option<String>,
    #[arg(long, default_value = "target/site")]
    site: PathBuf,
    /// The process id of a server given by `--base-url`, for scenario e
    /// (its `VmRSS` and `VmHWM`); the harness knows its own server's.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Node's `oidc-provider` started by bench/peers/oidc-provider.mjs
    /// (e.g. http://127.0.0.1:4100): scenario l measures it too.
    #[arg(long)]
    oidc_peer: Option<String>,
    /// Only these scenarios, by letter (e.g. `bd`; f, start-up, always runs
    /// when the harness starts the server); c needs b and i needs a, so
    /// asking for c or i runs those too. All by default.
    #[arg(long)]
    only: Option<String>,
}

impl Args {
    fn runs(&self, scenario: char) -> bool {
        let needs = match scenario {
            'a' => "ai",
            'b' => "bc",
            other => return self.only.as_deref().is_none_or(|o| o.contains(other)),
        };
        self.only.as_deref().is_none_or(|o| o.chars().any(|c| needs.contains(c)))
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let mut rows = Vec::new();
    let started = if args.base_url.is_none() { Some(start_server(&args).await) } else { None };
    let base = args.base_url.clone().unwrap_or_else(|| started.as_ref().map(|s| s.base.clone()).unwrap_or_default());
    let pid = started.as_ref().map(|s| s.child.id()).or(args.server_pid);
    let api = |path: &str| format!("{base}{}{path}", args.prefix);
    let target = Target::from_prefix(&args.prefix);

    if let Some(s) = &started {
        rows.push(Row {
            scenario: "f. start-up to ready, empty database".into(),
            figure: format!("{:.0} ms", s.startup_ms),
            budget: "≤ 200 ms",
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let idle_rss = pid.map(|p| rss_kib(p, "VmRSS:")).unwrap_or(0);

    // A full session for the authenticated GET.
    let (c, cookie) = throughput::session(&api).await;

    let mut health = None;
    if args.runs('a') {
        eprintln!("a. authenticated GET, {} connections, {} s …", args.connections, args.seconds);
        let (baseline, h) = throughput::authenticated_get(&args, &api, &base, target, &cookie);
        rows.extend(baseline);
        health = Some(h);
    }

    if args.runs('b') {
        eprintln!("b. raw argon2 and log-in throughput …");
        let (login, script) = throughput::log_ins(&args, &api, target, &c).await;
        rows.extend(login);
        if args.runs('c') {
            eprintln!("c. authenticated GET while log-ins saturate the hashers …");
            rows.push(throughput::get_during_log_ins(&args, &api, &cookie, &script).await);
        } else {
            let _ = std::fs::remove_file(&script);
        }
    }
    let loaded_rss = pid.map(|p| rss_kib(p, "VmRSS:")).unwrap_or(0);

    if args.runs('d') {
        eprintln!("d. 2FA authenticate: enrolling {} users …", args.users);
        rows.push(two_factor::authenticate(&args, &api, target).await);
    }

    if let (Target::Ours, true) = (target, args.runs('r')) {
        eprintln!("r. log-ins from remembered browsers …");
        rows.push(two_factor::remembered_log_ins(&api, target).await);
    }

    if let (Target::Ours, Some(health), true) = (target, health.as_ref(), args.runs('i')) {
        eprintln!("i. gate decisions with a valid gate cookie …");
        rows.push(gate::decisions(&args, &api, health).await);
    }

    if let (Target::Ours, Some(s), true) = (target, &started, args.runs('l')) {
        eprintln!("l. the OpenID provider: code exchanges and userinfo …");
        rows.extend(scenarios::oidc::provider(&args, &base, &s.dir, health.as_ref()).await);
    }

    if let (Target::Ours, Some(s), true) = (target, &started, args.runs('m')) {
        eprintln!("m. the admin page's people list with 10,000 people …");
        rows.extend(scenarios::admin::people_list(&args, &api, &base, &s.dir).await);
    }

    if let (Target::Ours, Some(_), true) = (target, &started, args.runs('k')) {
        eprintln!("k. passkey ceremonies …");
        // The harness's server runs on its default PUBLIC_URL.
        let origin = base.replace("127.0.0.1", "localhost");
        rows.push(two_factor::passkey_ceremonies(&api, &origin).await);
    }

    if args.runs('h') {
        eprintln!("h. the owner's log-in during bursts of failed log-ins …");
        // Both owners log in once first (their browsers then hold the device
        // cookie): the first burst uses up this address's failures.
        let same = bursts::owner(&api, "same").await;
        let spread = bursts::owner(&api, "spread").await;
        rows.push(
            bursts::burst(
                &api,
                target,
                "h. 400 parallel wrong passwords on the owner's account, one address",
                same,
                true,
            )
            .await,
        );
        rows.push(
            bursts::burst(
                &api,
                target,
                "h. 400 parallel wrong passwords over 400 accounts, one address",
                spread,
                false,
            )
            .await,
        );
    }

    if let (Some(admin), true) = (&args.postgres, args.runs('j')) {
        eprintln!("j. two instances on PostgreSQL: log-out on one, refusal on the other …");
        rows.push(postgres::two_instances(&args, admin).await);
    }

    if let (Some(p), true) = (pid, args.runs('e')) {
        rows.push(Row {
            scenario: "e. server RSS".into(),
            figure: format!(
                "idle {:.1} MiB; after c {:.1} MiB; peak {:.1} MiB",
                idle_rss as f64 / 1024.0,
                loaded_rss as f64 / 1024.0,
                rss_kib(p, "VmHWM:") as f64 / 1024.0
            ),
            budget: "idle ≤ 30 MB; load ≤ 100 MB",
        });
    }

    if target == Target::Ours && args.runs('g') {
        rows.push(site::site_sizes(&args.site));
    }

    report::print_table(rows);
}
