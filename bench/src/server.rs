//! The server under test: starting and stopping the harness's own, and
//! reading a server's memory (RSS) from /proc.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Args;

/// The harness's own server: stopped, and its data directory removed, when
/// dropped.
pub struct Started {
    pub child: Child,
    pub base: String,
    pub startup_ms: f64,
    /// Its data directory (the CLI registers apps there).
    pub dir: PathBuf,
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts `--server` on a free port and an empty SQLite database and waits
/// until it is ready, timing the start-up (scenario f).
pub async fn start_server(args: &Args) -> Started {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let dir = std::env::temp_dir().join(format!("twofactor-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let base = format!("http://127.0.0.1:{port}");
    let probe = reqwest::Client::new();
    let began = Instant::now();
    let child = Command::new(&args.server)
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("DATA_DIR", &dir)
        .env("LEPTOS_SITE_ROOT", &args.site)
        .env("JWT_SECRET", "benchmark-signing-key-0123456789abcdef")
        .env("REGISTRATIONS_PER_HOUR", "1000000")
        // Scenario h gives each burst an address of its own.
        .env("TRUSTED_PROXY_HEADER", "x-forwarded-for")
        // Scenario i: the gate issues cookies for this parent domain (and
        // the harness signs people up, closed by default once it is set).
        .env("COOKIE_DOMAINS", "example.test")
        .env("SIGNUP", "open")
        // `BENCH_SERVER_LOG=server::trace=info` (with `LOG_FORMAT=json`)
        // logs each request's own latency, to set beside the harness's.
        .env("RUST_LOG", std::env::var("BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".into()))
        .stdout(Stdio::null())
        .spawn()
        .expect("start the server: build it first with cargo leptos build --release");
    loop {
        if probe.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(began.elapsed() < Duration::from_secs(30), "the server did not become ready");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let startup_ms = began.elapsed().as_secs_f64() * 1000.0;
    Started { child, base, startup_ms, dir }
}

/// A field of `/proc/<pid>/status` (`VmRSS:`, `VmHWM:`) in KiB, 0 if it
/// cannot be read.
pub fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}
