//! Clients that hang up, forge their address or make the server score
//! crafted passwords: nothing they do keeps a place, frees a guess or costs
//! work outside the limits.

use std::time::Duration;

use app::domain::Email;
use app::server::request::RequestMeta;
use app::server::{account, throttle};
use tokio::io::AsyncWriteExt;

use super::*;

/// Failures counted per throttle key (sign-ups aside), and failed log-ins
/// audited.
async fn counted(app: &TestApp) -> (Vec<(String, i64)>, i64) {
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&app.database_url).await.expect("connect");
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT key, failures FROM throttle WHERE failures > 0 AND key NOT LIKE 'register-ip:%' ORDER BY key",
    )
    .fetch_all(&mut conn)
    .await
    .expect("throttle rows");
    let (audited,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM audit_events WHERE kind = 'log_in_failed'")
        .fetch_one(&mut conn)
        .await
        .expect("audit count");
    (rows, audited)
}

/// Waits (at most 10 s) until `done` holds.
async fn until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..10_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("never: {what}");
}

fn from(address: &str) -> RequestMeta {
    RequestMeta { ip: Some(address.to_owned()), ..Default::default() }
}

fn log_in_task(
    app: &TestApp,
    meta: RequestMeta,
    email: &str,
    password: &str,
) -> tokio::task::JoinHandle<Result<(), app::error::AppError>> {
    let (state, email, password) = (app.state.clone(), Email::parse(email).expect("email"), password.to_owned());
    tokio::spawn(async move { account::log_in(&state, &meta, email, &password).await.map(|_| ()) })
}

#[tokio::test]
async fn a_log_in_dropped_while_it_waits_for_a_hashing_thread_gives_everything_back() {
    let app = spawn_app_with(&[("HASH_QUEUE_LIMIT", "4")]).await;
    assert_eq!(app.register("ann@example.com").await.status, StatusCode::CREATED);
    let held = app.state.hasher.occupy_all().await;
    let runs = app.state.hasher.runs();
    for (email, password) in
        [("ann@example.com", PASSWORD), ("ann@example.com", "a wrong password guess"), ("nobody@example.com", PASSWORD)]
    {
        // Dropped by an aborted task (a connection that closed)...
        let task = log_in_task(&app, from("198.51.100.7"), email, password);
        until("queued for hashing", || app.state.hasher.waiting() == 1).await;
        assert!(!counted(&app).await.0.is_empty(), "its attempts are reserved while it waits");
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        throttle::settled().await;
        assert_eq!(app.state.hasher.waiting(), 0, "{email}: the place in the queue is back");
        assert_eq!(counted(&app).await, (vec![], 0), "{email}: no attempt kept, no failure recorded");
        // ...and by a deadline.
        let meta = from("198.51.100.8");
        let gave_up = tokio::time::timeout(
            Duration::from_millis(50),
            account::log_in(&app.state, &meta, Email::parse(email).unwrap(), password),
        )
        .await;
        assert!(gave_up.is_err(), "still waiting when dropped");
        throttle::settled().await;
        assert_eq!(app.state.hasher.waiting(), 0);
        assert_eq!(counted(&app).await, (vec![], 0), "{email}");
    }
    assert_eq!(app.state.hasher.runs(), runs, "nothing dropped was hashed");
    drop(held);
    // The limits are whole: five failures from one address count five,
    // then the owner's account waits for that address, as before.
    for _ in 0..5 {
        let r = account::log_in(
            &app.state,
            &from("198.51.100.7"),
            Email::parse("ann@example.com").unwrap(),
            "a wrong password guess",
        )
        .await;
        assert_eq!(r.err().map(|e| e.status()), Some(401));
    }
    let (rows, audited) = counted(&app).await;
    assert_eq!(audited, 5);
    assert!(rows.iter().all(|(_, n)| *n == 5), "{rows:?}");
}

#[tokio::test]
async fn a_log_in_cancelled_anywhere_counts_whole_or_not_at_all() {
    let app = spawn_app().await;
    assert_eq!(app.register("ann@example.com").await.status, StatusCode::CREATED);
    let (mut given_back, mut recorded) = (0, 0);
    // Deadlines from nothing to past the end of a log-in: each drops the
    // request at some await point (reserving, queued, hashing, settling).
    for n in 0..60u64 {
        let meta = from(&format!("198.51.100.{n}"));
        let email = format!("guess{n}@example.com");
        let deadline = Duration::from_micros(n * n * 25);
        let outcome = tokio::time::timeout(
            deadline,
            account::log_in(&app.state, &meta, Email::parse(&email).unwrap(), "a wrong password guess"),
        )
        .await;
        throttle::settled().await;
        assert_eq!(app.state.hasher.waiting(), 0);
        let (rows, _) = counted(&app).await;
        let ip = meta.ip_key();
        let keys = [format!("pw-ip:{ip}"), format!("pw:{email}:ip:{ip}"), format!("pw:{email}")];
        let mine: Vec<i64> = rows.iter().filter(|(key, _)| keys.contains(key)).map(|r| r.1).collect();
        match mine.as_slice() {
            [] => {
                assert!(outcome.is_err(), "a finished failure is counted");
                given_back += 1;
            }
            [1, 1, 1] => recorded += 1,
            other => panic!("after {deadline:?}: a partial count {other:?}"),
        }
    }
    let (_, audited) = counted(&app).await;
    assert_eq!(audited, recorded, "each counted failure is audited, even when its client had left");
    assert!(given_back > 0 && recorded > 0, "{given_back} given back, {recorded} recorded");
}

#[tokio::test]
async fn clients_that_hang_up_mid_log_in_leave_no_place_taken() {
    let app = spawn_app_with(&[("HASH_QUEUE_LIMIT", "40")]).await;
    let honest: Vec<String> = (0..20).map(|n| format!("honest{n}@example.com")).collect();
    for email in &honest {
        assert_eq!(app.register(email).await.status, StatusCode::CREATED);
    }
    // The test app is served by the binary's own connection loop.
    let addr: std::net::SocketAddr = app.base.trim_start_matches("http://").parse().expect("address");
    // Three bursts of 30 log-ins that hang up while they wait for a
    // hashing thread (all taken meanwhile), all from this one address.
    let held = app.state.hasher.occupy_all().await;
    for burst in 0..3 {
        let mut streams = Vec::new();
        for n in 0..30 {
            let body = json!({"email": format!("burst{burst}-{n}@example.com"), "password": "a wrong password guess"})
                .to_string();
            let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let head = format!(
                "POST /api/authentication/log-in HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\n\r\n",
                body.len()
            );
            stream.write_all(format!("{head}{body}").as_bytes()).await.expect("send");
            streams.push(stream);
        }
        until("the burst waits for hashing", || app.state.hasher.waiting() == 30).await;
        drop(streams);
        until("the server noticed the hang-ups", || app.state.hasher.waiting() == 0).await;
    }
    throttle::settled().await;
    assert_eq!(counted(&app).await, (vec![], 0), "no attempt kept, no failure recorded");
    drop(held);
    // Twenty honest log-ins at once, from the same address: all get in.
    let url = format!("http://{addr}/api/authentication/log-in");
    let tasks: Vec<_> = honest
        .iter()
        .map(|email| {
            let (url, body) = (url.clone(), json!({"email": email, "password": PASSWORD}));
            tokio::spawn(async move { reqwest::Client::new().post(url).json(&body).send().await.map(|r| r.status()) })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.expect("task").expect("log-in"), StatusCode::OK);
    }
}

#[tokio::test]
async fn a_forged_client_address_from_a_peer_that_is_no_proxy_is_ignored() {
    // The tests connect from 127.0.0.1; the only proxies are elsewhere.
    let app = spawn_app_with(&[("TRUSTED_PROXY_HEADER", "x-forwarded-for"), ("TRUSTED_PROXIES", "10.0.0.0/8")]).await;
    let mut statuses = Vec::new();
    for n in 0..60 {
        let req = app
            .client
            .post(format!("{}/api/authentication/log-in", app.base))
            .header("x-forwarded-for", format!("203.0.113.{n}"))
            .json(&json!({"email": format!("forged{n}@example.com"), "password": "a wrong password guess"}));
        statuses.push(app.send(&app.client, req).await.status);
    }
    let failed = statuses.iter().filter(|s| **s == StatusCode::UNAUTHORIZED).count();
    assert_eq!(failed, 50, "the address limit (50) holds: {statuses:?}");
    assert!(statuses[50..].iter().all(|s| *s == StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
    let (rows, _) = counted(&app).await;
    assert!(rows.iter().any(|(key, n)| key == "pw-ip:127.0.0.1" && *n == 50), "{rows:?}");
    assert!(!rows.iter().any(|(key, _)| key.contains("203.0.113.")), "the forged addresses count for nothing");
}

/// A 64-character password that costs zxcvbn hundreds of milliseconds when
/// scored whole (many different l33t characters).
const CRAFTED: &str = "[$g%{!gt$1{3@1657ctt0l+450e1zcis<{la287!3$!0x7s|9<oa10ob[2<6to((";

fn sign_up(email: &str, password: &str) -> Value {
    json!({"email": email, "name": "Ann Example", "password": password})
}

#[tokio::test]
async fn the_password_scorer_runs_only_within_the_limits() {
    // Sign-up closed: neither a whole form nor one with another field
    // wrong gets its password scored.
    let closed = spawn_app_with(&[("SIGNUP", "closed")]).await;
    let r = closed.post("/api/authentication/register", sign_up("ann@example.com", CRAFTED)).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = closed.post("/api/authentication/register", sign_up("not an email", CRAFTED)).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    assert!(r.body["fields"]["email"].is_string() && r.body["fields"].get("password").is_none(), "{}", r.text);
    assert_eq!(closed.state.hasher.scorings(), 0);

    // Open: each scored try counts against the address first.
    let app = spawn_app_with(&[("REGISTRATIONS_PER_HOUR", "2"), ("HASH_QUEUE_LIMIT", "0")]).await;
    let r = app.post("/api/authentication/register", sign_up("not an email", "password1234")).await;
    assert!(r.body["fields"]["email"].is_string() && r.body["fields"]["password"].is_string(), "{}", r.text);
    let r = app.post("/api/authentication/register", sign_up("ann@example.com", "password1234")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(app.state.hasher.scorings(), 2);
    let r = app.post("/api/authentication/register", sign_up("ann@example.com", CRAFTED)).await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
    let r = app.post("/api/authentication/register", sign_up("not an email", "password1234")).await;
    assert!(r.body["fields"]["email"].is_string() && r.body["fields"].get("password").is_none(), "{}", r.text);
    assert_eq!(app.state.hasher.scorings(), 2, "past the limit nothing is scored");

    // The scorer waits in the hashing queue: full, it is 503 at once.
    app.clock.advance(3601);
    let held = app.state.hasher.occupy_all().await;
    let r = app.post("/api/authentication/register", sign_up("ann@example.com", CRAFTED)).await;
    assert_error(&r, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert_eq!(r.headers["retry-after"], "1");
    drop(held);

    // Changing the password: the current one is checked (under its
    // limit) before the new one is scored.
    let app = spawn_app().await;
    assert_eq!(app.register("ann@example.com").await.status, StatusCode::CREATED);
    assert_eq!(app.log_in("ann@example.com", PASSWORD).await.status, StatusCode::OK);
    let scored = app.state.hasher.scorings();
    let r = app
        .post(
            "/api/authentication/change-password",
            json!({"currentPassword": "a wrong password guess", "newPassword": CRAFTED}),
        )
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_credentials");
    assert_eq!(app.state.hasher.scorings(), scored);
}

#[tokio::test]
async fn password_resets_are_limited_per_address_before_anything_else() {
    let app = spawn_app().await;
    assert_eq!(app.register("ann@example.com").await.status, StatusCode::CREATED);
    let reset = |token: &str| json!({"token": token, "newPassword": "a completely different passphrase 42"});
    for n in 0..20 {
        let r = app.post("/api/authentication/reset-password", reset(&format!("not-a-token-{n}"))).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    }
    let r = app.post("/api/authentication/reset-password", reset("not-a-token")).await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
    // Another address is not held up, and nothing was scored.
    let other = tokio::time::timeout(
        Duration::from_secs(30),
        app::server::mail::links::reset_password(
            &app.state,
            &from("198.51.100.9"),
            "not-a-token",
            app::domain::Password::parse("a completely different passphrase 42").unwrap(),
        ),
    )
    .await
    .expect("answered");
    assert_eq!(other.err().map(|e| e.status()), Some(400));
    assert_eq!(app.state.hasher.scorings(), 1, "only the sign-up's password was scored");
}
