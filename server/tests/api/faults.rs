//! Database faults: gone, away and back, unwritable: 503 with a clear message and nothing half-written.

use super::*;

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

/// On SQLite a transaction waits its turn to write; a turn that never
/// comes (a writer stuck elsewhere) ends in 503 after the acquire timeout,
/// never in a request that hangs, and writing resumes once it is free.
#[tokio::test]
async fn a_write_that_cannot_get_its_turn_is_503_not_a_hang() {
    let dir = tempfile::tempdir().expect("dir");
    let url = database_for(dir.path()).await;
    if url.starts_with("postgres") {
        eprintln!("skipped: PostgreSQL has no single writer turn");
        return;
    }
    let app = spawn_in(dir, &[("DATABASE_ACQUIRE_TIMEOUT_SECONDS", "1")]).await;
    let held = app.state.db.begin().await.expect("a transaction holding the turn");
    let started = std::time::Instant::now();
    let r = app.register("turn@example.com").await;
    assert_error(&r, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "answered, not hung");
    drop(held);
    assert_eq!(app.register("turn@example.com").await.status, StatusCode::CREATED);
}
