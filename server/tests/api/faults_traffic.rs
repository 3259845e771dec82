//! Faults with traffic running: the SQLite disk filling up (a small tmpfs),
//! an instance of two killed with SIGKILL mid-traffic and started again,
//! and PostgreSQL itself stopped and started under two instances. Each: requests during the fault get a clear 503 (or, from the
//! killed instance, no answer at all), none fails after recovery, nothing
//! is half-written (every log-in has its refresh token and its gate
//! cookie; every account answered 201 exists, every one answered 503 does
//! not), no log-in that was answered is lost, and the restarted instance
//! hears the other's changes again (LISTEN).

use super::instances::{Instance, status_of};
use super::*;

/// Sign-ups and log-ins, one after another: what each was answered.
#[derive(Debug, Default)]
struct Traffic {
    created: Vec<String>,
    refused: Vec<String>,
    /// A log-in answered 200, with the browser that holds it.
    logged_in: Vec<(String, reqwest::Client)>,
    statuses: Vec<u16>,
}

/// The rows every log-in must have beside it, whatever was cut short.
async fn half_written(url: &str) -> Vec<String> {
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(url).await.expect("connect");
    let mut found = Vec::new();
    for (what, sql) in [
        (
            "a log-in without a refresh token",
            "SELECT COUNT(*) FROM logins l WHERE NOT EXISTS (SELECT 1 FROM sessions s WHERE s.family = l.id)",
        ),
        (
            "a refresh token without its log-in",
            "SELECT COUNT(*) FROM sessions s WHERE NOT EXISTS (SELECT 1 FROM logins l WHERE l.id = s.family)",
        ),
        (
            "a gate cookie without its log-in",
            "SELECT COUNT(*) FROM gate_cookies g WHERE NOT EXISTS (SELECT 1 FROM logins l WHERE l.id = g.family)",
        ),
    ] {
        let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut conn).await.expect(what);
        if n > 0 {
            found.push(format!("{n} × {what}"));
        }
    }
    found
}

/// The settings of two instances behind one gate rule (a log-in will do
/// for wiki.example.test), and the two, started on `url`. The session cache
/// is believed for 10 s (the most allowed): only LISTEN can tell an
/// instance of another's change sooner.
async fn two_gated_instances(url: &str, dir: &std::path::Path) -> (Vec<(&'static str, String)>, Instance, Instance) {
    let rules = dir.join("rules.toml");
    std::fs::write(&rules, "[[rules]]\ndomain = \"wiki.example.test\"\npolicy = \"one_factor\"\n").unwrap();
    let settings = vec![
        ("COOKIE_DOMAINS", "example.test".to_owned()),
        ("PUBLIC_URL", "http://auth.example.test".to_owned()),
        ("ACCESS_RULES", rules.display().to_string()),
        ("GATE_CACHE_SECONDS", "10".to_owned()),
        ("REGISTRATIONS_PER_HOUR", "100000".to_owned()),
        ("SIGNUP", "open".to_owned()),
    ];
    let borrowed: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let a = Instance::start_with(url, dir, &borrowed).await;
    let b = Instance::start_with(url, dir, &borrowed).await;
    (settings, a, b)
}

/// The gate asked by instance `inst` about wiki.example.test with a gate
/// cookie.
fn gate_at(inst: &Instance, cookie: &str) -> reqwest::RequestBuilder {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .unwrap()
        .get(inst.url("/api/authz/auth-request"))
        .header("x-original-method", "GET")
        .header("x-original-url", "http://wiki.example.test/")
        .header("cookie", format!("twofactor_gate={cookie}"))
}

fn mount_tmpfs(dir: &std::path::Path, size: &str) -> bool {
    std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success())
}

struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test]
async fn a_full_disk_under_traffic_is_503_and_nothing_half_written_and_it_resumes() {
    if std::env::var("TEST_POSTGRES_URL").is_ok() {
        eprintln!("skipped: the SQLite disk runs in the SQLite pass");
        return;
    }
    let holder = tempfile::tempdir().unwrap();
    let disk = holder.path().join("disk");
    std::fs::create_dir_all(&disk).unwrap();
    if !mount_tmpfs(&disk, "64m") {
        assert!(std::env::var("CI_REQUIRE_PROXIES").is_err(), "mounting a tmpfs (root) is required here");
        eprintln!("skipped: cannot mount a tmpfs here");
        return;
    }
    let _unmount = Unmount(disk.clone());
    let url = format!("sqlite://{}?mode=rwc", disk.join("twofactor.db").display());
    let data = tempfile::tempdir().unwrap();
    let extra = [("DATABASE_ACQUIRE_TIMEOUT_SECONDS", "2"), ("REGISTRATIONS_PER_HOUR", "100000")];
    let a = Instance::start_with(&url, data.path(), &extra).await;
    // The disk shrunk to what the migrated database takes, and 1 MiB.
    let used: u64 = std::fs::read_dir(&disk).unwrap().filter_map(Result::ok).map(|e| e.metadata().unwrap().len()).sum();
    let size = format!("remount,size={}k", used / 1024 + 1024);
    assert!(std::process::Command::new("mount").args(["-o", &size]).arg(&disk).status().unwrap().success());

    // Sign-ups (each a user row and audit rows) and log-ins until the disk
    // is full, and a little past it.
    let mut t = Traffic::default();
    let mut full_for = 0;
    for n in 0..5000 {
        let email = format!("traffic{n}@example.com");
        let body = json!({"email": email, "name": "Traffic", "password": PASSWORD});
        let c = new_client();
        let status = status_of(c.post(a.url("/api/authentication/register")).json(&body)).await;
        t.statuses.push(status.as_u16());
        match status {
            StatusCode::CREATED => {
                t.created.push(email.clone());
                let creds = json!({"email": email, "password": PASSWORD});
                let s = status_of(c.post(a.url("/api/authentication/log-in")).json(&creds)).await;
                t.statuses.push(s.as_u16());
                if s == StatusCode::OK {
                    t.logged_in.push((email, c));
                }
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                t.refused.push(email);
                full_for += 1;
                if full_for >= 5 {
                    break;
                }
            }
            other => panic!("sign-up {n} answered {other}"),
        }
    }
    assert!(full_for >= 5, "the disk never filled ({} accounts)", t.created.len());
    assert!(t.statuses.iter().all(|s| matches!(s, 200 | 201 | 503)), "only 200, 201 or 503: {:?}", t.statuses);
    let probe = reqwest::get(a.url("/api/authentication")).await.unwrap();
    assert!(probe.status() != StatusCode::INTERNAL_SERVER_ERROR);

    // Room again: everything answers, and nothing is half-written.
    assert!(
        std::process::Command::new("mount").args(["-o", "remount,size=64m"]).arg(&disk).status().unwrap().success()
    );
    let c = new_client();
    for email in &t.created {
        let creds = json!({"email": email, "password": PASSWORD});
        assert_eq!(
            status_of(c.post(a.url("/api/authentication/log-in")).json(&creds)).await,
            StatusCode::OK,
            "{email}"
        );
    }
    for email in &t.refused {
        let creds = json!({"email": email, "password": PASSWORD});
        let s = status_of(c.post(a.url("/api/authentication/log-in")).json(&creds)).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{email} was refused, yet exists");
        let body = json!({"email": email, "name": "N", "password": PASSWORD});
        assert_eq!(status_of(c.post(a.url("/api/authentication/register")).json(&body)).await, StatusCode::CREATED);
    }
    for (email, browser) in &t.logged_in {
        assert_eq!(status_of(browser.get(a.url("/api/authentication"))).await, StatusCode::OK, "{email}'s log-in");
    }
    drop(a);
    assert_eq!(half_written(&url).await, Vec::<String>::new());
    eprintln!(
        "disk full after {} accounts: {} sign-ups answered 503, none half-written, all served again",
        t.created.len(),
        t.refused.len()
    );
}

#[tokio::test]
async fn an_instance_killed_mid_traffic_loses_no_log_in_and_hears_the_other_again() {
    let Ok(_) = std::env::var("TEST_POSTGRES_URL") else {
        eprintln!("skipped: two instances share a PostgreSQL database");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = database_for(dir.path()).await;
    let (settings, a, b) = two_gated_instances(&url, dir.path()).await;

    // A burst of sign-ups and log-ins to A; SIGKILL (no draining) as soon
    // as the first is answered, the rest in flight.
    let (done, mut first) = tokio::sync::mpsc::unbounded_channel::<()>();
    let burst: Vec<_> = (0..24)
        .map(|i| {
            let (register, log_in) = (a.url("/api/authentication/register"), a.url("/api/authentication/log-in"));
            let done = done.clone();
            tokio::spawn(async move {
                let email = format!("burst{i}@example.com");
                let c = new_client();
                let body = json!({"email": email, "name": "B", "password": PASSWORD});
                let signed_up = c.post(register).json(&body).send().await.map(|r| r.status());
                let creds = json!({"email": email, "password": PASSWORD});
                let logged_in = match signed_up {
                    Ok(StatusCode::CREATED) => c.post(log_in).json(&creds).send().await.map(|r| r.status()).ok(),
                    _ => None,
                };
                let _ = done.send(());
                (email, signed_up.ok(), logged_in, c)
            })
        })
        .collect();
    first.recv().await;
    drop(a);
    let mut answered = Vec::new();
    for task in burst {
        let (email, signed_up, logged_in, c) = task.await.unwrap();
        // Answered: a sign-up made it, a log-in made it. Cut off: either.
        assert!(signed_up.is_none_or(|s| s == StatusCode::CREATED), "{email}: {signed_up:?}");
        if logged_in == Some(StatusCode::OK) {
            answered.push((email, c));
        }
    }

    // Traffic to B meanwhile.
    let mut t = Traffic::default();
    let mut gates: Vec<(String, String)> = Vec::new(); // (email, gate cookie)
    for n in 0..20 {
        let target = &b;
        let to_a = false;
        let email = format!("traffic{n}@example.com");
        let c = new_client();
        let body = json!({"email": email, "name": "T", "password": PASSWORD});
        let status = status_of(c.post(target.url("/api/authentication/register")).json(&body)).await;
        assert_eq!(status, StatusCode::CREATED, "sign-up {n} (to A: {to_a})");
        t.created.push(email.clone());
        let creds = json!({"email": email, "password": PASSWORD});
        let res = c.post(target.url("/api/authentication/log-in")).json(&creds).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let gate = res
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix("twofactor_gate=").map(|rest| rest.split(';').next().unwrap().to_owned()));
        gates.push((email.clone(), gate.expect("a gate cookie")));
        let s = status_of(c.post(target.url("/api/authentication/refresh")).json(&json!({}))).await;
        assert_eq!(s, StatusCode::OK);
        t.logged_in.push((email, c));
    }
    // A again (a new process); every log-in answered works on both.
    let borrowed: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let a = Instance::start_with(&url, dir.path(), &borrowed).await;
    for (email, browser) in t.logged_in.iter().chain(&answered) {
        for inst in [&a, &b] {
            assert_eq!(status_of(browser.get(inst.url("/api/authentication"))).await, StatusCode::OK, "{email}");
        }
    }
    assert_eq!(half_written(&url).await, Vec::<String>::new());

    // The new A hears B: a log-in ended through B is refused by A's gate
    // at once, though A had it cached for 10 seconds.
    let (email, cookie) = gates.last().unwrap().clone();
    assert_eq!(status_of(gate_at(&a, &cookie)).await, StatusCode::OK, "cached by A");
    let browser = &t.logged_in.iter().find(|(e, _)| *e == email).unwrap().1;
    assert!(status_of(browser.post(b.url("/api/authentication/log-out")).json(&json!({}))).await.is_success());
    let mut refused = false;
    // The notification travels in milliseconds; 3 s (less than the
    // cache's 10) bounds the wait.
    for _ in 0..60 {
        if status_of(gate_at(&a, &cookie)).await == StatusCode::UNAUTHORIZED {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(refused, "the restarted instance did not hear the log-out (LISTEN)");
}

/// A PostgreSQL server of the test's own (Debian's `initdb` and `pg_ctl`,
/// run as the `postgres` account), so that it can be stopped and started
/// without touching the machine's. Stopped when dropped.
struct OwnPostgres {
    bin: std::path::PathBuf,
    data: std::path::PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

impl OwnPostgres {
    /// None when this machine has no PostgreSQL server binaries (or the
    /// test does not run as root).
    fn start() -> Option<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(Result::ok)
            .map(|v| v.path().join("bin"))
            .find(|b| b.join("initdb").exists())?;
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let data = dir.path().join("data");
        // (Root's to give: as another user, there is no such server here.)
        let own = std::process::Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()).status();
        if !own.is_ok_and(|s| s.success()) {
            return None;
        }
        let pg = Self { bin, data, port, _dir: dir };
        let init = pg.run("initdb", &["-D", &pg.data.display().to_string(), "-A", "trust", "-U", "postgres", "-N"]);
        assert!(init, "initdb");
        assert!(pg.ctl(&["start"]), "pg_ctl start");
        Some(pg)
    }

    fn run(&self, tool: &str, args: &[&str]) -> bool {
        std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(tool))
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// `pg_ctl` on this server, waiting for it (`-w`); a fast stop ends
    /// every session at once, as a restart by an operator does.
    fn ctl(&self, action: &[&str]) -> bool {
        let options = format!("-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off", self.port, self.data.display());
        let log = self.data.join("server.log").display().to_string();
        let data = self.data.display().to_string();
        let mut args = vec!["-D", &data, "-l", &log, "-o", &options, "-w", "-m", "fast"];
        args.extend_from_slice(action);
        self.run("pg_ctl", &args)
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        self.ctl(&["stop"]);
    }
}

/// PostgreSQL restarted under the traffic of two instances: while it is
/// down every request is answered (503, never a 500 or a hang), the
/// instances come back by themselves when it is up, every log-in answered
/// before works on both, nothing is half-written, and each instance hears
/// the other's log-outs again (its LISTEN connection was made anew).
#[tokio::test]
async fn a_database_restart_under_traffic_is_503_and_both_instances_resume_and_listen_again() {
    let Ok(_) = std::env::var("TEST_POSTGRES_URL") else {
        eprintln!("skipped: runs in the PostgreSQL pass");
        return;
    };
    let Some(pg) = tokio::task::spawn_blocking(OwnPostgres::start).await.unwrap() else {
        assert!(std::env::var("CI_REQUIRE_PROXIES").is_err(), "PostgreSQL's server binaries are required here");
        eprintln!("skipped: no initdb, or not root");
        return;
    };
    let url = pg.url();
    let dir = tempfile::tempdir().unwrap();
    let (_, a, b) = two_gated_instances(&url, dir.path()).await;
    // One person's whole visit: sign-up, log-in, refresh, a gate check,
    // the first two on one instance and the rest on the other. Every
    // answer is one of these; what the sign-up and log-in answered is kept.
    let visit = |n: usize, first: String, second: String| async move {
        let email = format!("visit{n}@example.com");
        let c =
            reqwest::Client::builder().cookie_store(true).timeout(std::time::Duration::from_secs(20)).build().unwrap();
        let mut statuses = Vec::new();
        let body = json!({"email": email, "name": "V", "password": PASSWORD});
        let signed_up = c.post(format!("{first}/api/authentication/register")).json(&body).send().await;
        let signed_up = signed_up.expect("an answer to the sign-up").status();
        statuses.push(signed_up);
        let mut gate = None;
        if signed_up == StatusCode::CREATED {
            let creds = json!({"email": email, "password": PASSWORD});
            let r = c.post(format!("{first}/api/authentication/log-in")).json(&creds).send().await;
            let r = r.expect("an answer to the log-in");
            statuses.push(r.status());
            if r.status() == StatusCode::OK {
                gate = r.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).find_map(|v| {
                    v.strip_prefix("twofactor_gate=").map(|rest| rest.split(';').next().unwrap().to_owned())
                });
                let r = c.post(format!("{second}/api/authentication/refresh")).json(&json!({})).send().await;
                statuses.push(r.expect("an answer to the refresh").status());
            }
        }
        (email, signed_up, gate, c, statuses)
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = tokio::spawn({
        let (stop, a_base, b_base) = (stop.clone(), a.url(""), b.url(""));
        async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let (first, second) =
                    if n % 2 == 0 { (a_base.clone(), b_base.clone()) } else { (b_base.clone(), a_base.clone()) };
                let _ = tx.send(visit(n, first, second).await);
                n += 1;
            }
        }
    });
    // Some visits; PostgreSQL stopped until two visits were refused
    // (503) while it was down; started again; traffic until a visit of
    // each kind (first on A, first on B) goes through again.
    let mut visits = Vec::new();
    while visits.len() < 4 {
        visits.push(rx.recv().await.unwrap());
    }
    let pg = std::sync::Arc::new(pg);
    let stopped = pg.clone();
    assert!(tokio::task::spawn_blocking(move || stopped.ctl(&["stop"])).await.unwrap(), "pg_ctl stop");
    let mut refused_while_down = 0;
    while refused_while_down < 2 {
        let v = rx.recv().await.unwrap();
        if v.1 == StatusCode::SERVICE_UNAVAILABLE {
            refused_while_down += 1;
        }
        visits.push(v);
    }
    let started = pg.clone();
    assert!(tokio::task::spawn_blocking(move || started.ctl(&["start"])).await.unwrap(), "pg_ctl start");
    let back = std::time::Instant::now();
    let mut through_since = 0;
    while through_since < 2 {
        let v = rx.recv().await.unwrap();
        if v.4.len() == 3 && v.4.iter().all(|s| s.is_success()) {
            through_since += 1;
        } else {
            through_since = 0;
        }
        visits.push(v);
    }
    eprintln!("both instances answered again {:?} after PostgreSQL was back", back.elapsed());
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    traffic.await.unwrap();
    while let Ok(v) = rx.try_recv() {
        visits.push(v);
    }
    // Every answer was one of these: never a 500.
    let all: Vec<u16> = visits.iter().flat_map(|v| v.4.iter().map(|s| s.as_u16())).collect();
    assert!(all.iter().all(|s| matches!(s, 200 | 201 | 503)), "{all:?}");
    eprintln!(
        "{} visits, {} answers, {} of them 503",
        visits.len(),
        all.len(),
        all.iter().filter(|s| **s == 503).count()
    );

    // Every log-in answered works on both; nothing is half-written; every
    // account answered 201 is there.
    for (email, _, gate, c, statuses) in &visits {
        if statuses.get(1) == Some(&StatusCode::OK) && statuses.get(2) == Some(&StatusCode::OK) {
            for inst in [&a, &b] {
                assert_eq!(status_of(c.get(inst.url("/api/authentication"))).await, StatusCode::OK, "{email}");
            }
            assert!(gate.is_some(), "{email}: a log-in without a gate cookie");
        }
    }
    assert_eq!(half_written(&url).await, Vec::<String>::new());
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url).await.expect("connect");
    for (email, signed_up, ..) in &visits {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE email = $1")
            .bind(email)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        if *signed_up == StatusCode::CREATED {
            assert_eq!(n, 1, "{email} was answered 201");
        }
    }

    // Each instance hears the other again: a log-out through one is
    // refused by the other's gate at once, though it had the cookie cached
    // for 10 seconds (LISTEN, connected anew after the restart).
    let fully: Vec<_> = visits.iter().filter(|v| v.4.len() == 3 && v.4.iter().all(|s| s.is_success())).collect();
    assert!(fully.len() >= 2);
    for ((ended_at, hears), v) in [(&a, &b), (&b, &a)].into_iter().zip(fully.iter().rev()) {
        let (email, _, gate, c, _) = v;
        let cookie = gate.as_deref().expect("a gate cookie");
        assert_eq!(status_of(gate_at(hears, cookie)).await, StatusCode::OK, "{email}: cached");
        assert!(status_of(c.post(ended_at.url("/api/authentication/log-out")).json(&json!({}))).await.is_success());
        let mut refused = false;
        // The notification travels in milliseconds; 3 s (less than the
        // cache's 10) bounds the wait.
        for _ in 0..60 {
            if status_of(gate_at(hears, cookie)).await == StatusCode::UNAUTHORIZED {
                refused = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(refused, "{email}: the log-out was not heard after the restart (LISTEN)");
    }
}
