//! Metrics (`METRICS_ADDR`): a real server process counts what it did, on a
//! listener of its own (the public one has no /metrics); `promtool check
//! metrics` passes the text; and Debian's Prometheus scrapes it for real.

use super::instances::{Instance, half_sent, read_to_close, status_of};
use super::*;

/// A port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The value of the sample `line` (name and labels, as written) in `text`.
fn sample(text: &str, line: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(line)?.strip_prefix(' ')?.parse().ok())
}

fn have(tool: &str) -> bool {
    std::process::Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success())
}

#[tokio::test]
async fn a_server_counts_what_it_did_on_its_own_listener_and_prometheus_scrapes_it() {
    if std::env::var("TEST_POSTGRES_URL").is_ok() {
        eprintln!("skipped: runs once, in the SQLite pass");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("twofactor.db").display());
    let metrics_port = free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let a = Instance::start_with(&url, dir.path(), &[("METRICS_ADDR", &metrics_addr), ("HEADER_TIMEOUT_SECONDS", "1")])
        .await;
    let c = new_client();
    let ann = json!({"email": "ann@example.com", "name": "Ann", "password": PASSWORD});
    assert_eq!(status_of(c.post(a.url("/api/authentication/register")).json(&ann)).await, StatusCode::CREATED);
    let wrong = json!({"email": "ann@example.com", "password": "not her password at all"});
    assert_eq!(status_of(c.post(a.url("/api/authentication/log-in")).json(&wrong)).await, StatusCode::UNAUTHORIZED);
    let creds = json!({"email": "ann@example.com", "password": PASSWORD});
    assert_eq!(status_of(c.post(a.url("/api/authentication/log-in")).json(&creds)).await, StatusCode::OK);
    assert_eq!(status_of(c.post(a.url("/api/authentication/refresh")).json(&json!({}))).await, StatusCode::OK);
    assert_eq!(status_of(c.get(a.url("/api/authentication"))).await, StatusCode::OK);

    let scrape = reqwest::get(format!("http://{metrics_addr}/metrics")).await.unwrap();
    assert_eq!(scrape.status(), StatusCode::OK);
    assert!(scrape.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = scrape.text().await.unwrap();
    for (line, value) in [
        ("twofactor_checks_total{check=\"password\",outcome=\"refused\"}", 1.0),
        ("twofactor_checks_total{check=\"password\",outcome=\"ok\"}", 1.0),
        ("twofactor_log_ins_total{reached=\"password\"}", 1.0),
        ("twofactor_refreshes_total{outcome=\"ok\"}", 1.0),
        ("twofactor_mail_queue{state=\"failed\"}", 0.0),
        ("twofactor_build_info{version=\"0.1.0\",database=\"sqlite\"}", 1.0),
    ] {
        assert_eq!(sample(&text, line), Some(value), "{line} in\n{text}");
    }
    assert!(sample(&text, "twofactor_hash_wait_seconds_count").is_some_and(|n| n >= 2.0), "{text}");
    assert!(sample(&text, "twofactor_db_connections_max").is_some_and(|n| n >= 1.0), "{text}");
    // Nobody's data in a label: no address, email or id.
    assert!(!text.contains("ann@") && !text.contains("127.0.0.1"), "{text}");
    // Not on the public listener.
    let public = c.get(a.url("/metrics")).send().await.unwrap();
    assert_eq!(public.status(), StatusCode::NOT_FOUND);
    assert!(!public.text().await.unwrap().contains("twofactor_checks_total"));
    // A listener for a scraper or two, not a door to hold open: of 20
    // stalled connections from one address, 4 are held (then closed by the
    // header timeout) and the rest closed at once; a scraper on another
    // address is answered meanwhile.
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(half_sent(&format!("http://{metrics_addr}")).await);
    }
    let elsewhere = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .unwrap();
    assert_eq!(status_of(elsewhere.get(format!("http://{metrics_addr}/metrics"))).await, StatusCode::OK);
    for stream in held {
        read_to_close(stream).await;
    }

    let required = std::env::var("CI_REQUIRE_PROXIES").is_ok();
    if !have("promtool") || !have("prometheus") {
        assert!(!required, "Prometheus (Debian's prometheus package) is required here");
        eprintln!("skipped the scrape: no prometheus/promtool");
        return;
    }
    // promtool's lint of the exposition text.
    let checked = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("promtool");
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&checked.stdout), String::from_utf8_lossy(&checked.stderr));
    assert!(checked.status.success() && said.trim().is_empty(), "promtool: {said}");

    // A real scrape: Prometheus with a private config and data folder.
    let web_port = free_port();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: twofactor\n    static_configs:\n      - targets: ['{metrics_addr}']\n"
        ),
    )
    .unwrap();
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _prometheus = Killed(
        std::process::Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{web_port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start prometheus"),
    );
    let query = "twofactor_checks_total{check=\"password\",outcome=\"refused\",job=\"twofactor\"}";
    let api = format!("http://127.0.0.1:{web_port}/api/v1/query");
    let mut seen = None;
    // Polled until it has scraped (at most 30 s; usually 1 to 3).
    for _ in 0..300 {
        if let Ok(r) = reqwest::Client::new().get(&api).query(&[("query", query)]).send().await
            && let Ok(body) = r.json::<Value>().await
            && let Some(value) = body["data"]["result"][0]["value"][1].as_str()
        {
            seen = Some(value.to_owned());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(seen.as_deref(), Some("1"), "Prometheus scraped the count");
    let up = reqwest::Client::new().get(&api).query(&[("query", "up{job=\"twofactor\"}")]).send().await.unwrap();
    assert_eq!(up.json::<Value>().await.unwrap()["data"]["result"][0]["value"][1], "1");
}
