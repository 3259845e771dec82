//! Nothing half-done: a failure part-way through an operation that writes
//! several rows leaves the database exactly as before, and two refreshes
//! of one token in the same moment are not taken for a theft.

use super::*;

#[tokio::test]
async fn turning_on_fails_whole_or_not_at_all() {
    let app = spawn_app().await;
    app.register("atomic-on@example.com").await;
    app.log_in("atomic-on@example.com", PASSWORD).await;
    let g = app.post("/api/2fa/generate", json!({})).await;
    let secret = g.body["secret"].as_str().expect("secret").to_owned();
    // Writes: 1 flag and secret, 2 recovery codes, 3 revocation, 4 new session.
    for nth in 1..=4 {
        let before = snapshot(&app).await;
        app.state.db.fail_next_transaction_at(nth);
        let r = app.post("/api/2fa/turn-on", json!({"twoFactorAuthenticationCode": app.code_now(&secret)})).await;
        assert_error(&r, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
        assert_eq!(snapshot(&app).await, before, "failing write {nth} left a trace");
        assert_eq!(app.get("/api/authentication").await.status, StatusCode::OK, "still logged in");
    }
    let r = app.post("/api/2fa/turn-on", json!({"twoFactorAuthenticationCode": app.code_now(&secret)})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn a_password_change_fails_whole_or_not_at_all() {
    let app = spawn_app().await;
    app.register("atomic-pw@example.com").await;
    app.log_in("atomic-pw@example.com", PASSWORD).await;
    let new = "an entirely different passphrase";
    let change = json!({"currentPassword": PASSWORD, "newPassword": new});
    // Writes: 1 hash and version, 2 revocation, 3 new session.
    for nth in 1..=3 {
        let before = snapshot(&app).await;
        app.state.db.fail_next_transaction_at(nth);
        let r = app.post("/api/authentication/change-password", change.clone()).await;
        assert_error(&r, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
        assert_eq!(snapshot(&app).await, before, "failing write {nth} left a trace");
        assert_eq!(app.get("/api/authentication").await.status, StatusCode::OK, "not logged out");
    }
    let other = new_client();
    let r = app
        .post_with(&other, "/api/authentication/log-in", json!({"email": "atomic-pw@example.com", "password": new}))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "the new password was never stored");
    assert_eq!(app.post("/api/authentication/change-password", change).await.status, StatusCode::OK);
}

#[tokio::test]
async fn turning_off_and_logging_out_everywhere_fail_whole() {
    let app = spawn_app().await;
    let secret = app.enrolled_user("atomic-off@example.com").await;
    for nth in 1..=3 {
        app.clock.advance(30);
        let off = json!({"password": PASSWORD, "twoFactorAuthenticationCode": app.code_now(&secret)});
        let before = snapshot(&app).await;
        app.state.db.fail_next_transaction_at(nth);
        assert_error(&app.post("/api/2fa/turn-off", off.clone()).await, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
        // The code was spent by the failed try: that is the replay guard,
        // not part of the operation. Everything else is as it was.
        let after = snapshot(&app).await;
        assert_eq!(after[1..], before[1..], "failing write {nth} left a trace");
    }
    for nth in 1..=2 {
        let before = snapshot(&app).await;
        app.state.db.fail_next_transaction_at(nth);
        let r = app.post("/api/authentication/log-out-everywhere", json!({})).await;
        assert_error(&r, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
        assert_eq!(snapshot(&app).await, before);
    }
    assert_eq!(app.get("/api/authentication").await.status, StatusCode::OK);
}

#[tokio::test]
async fn parallel_refreshes_of_one_token_are_not_a_theft() {
    let app = spawn_app().await;
    app.register("tabs@example.com").await;
    let r = app.log_in("tabs@example.com", PASSWORD).await;
    let refresh = set_cookie(&r, "refresh").expect("refresh cookie");
    app.clock.advance(16 * 60);
    // Ten tabs restored at once, all with the same cookie.
    let url = format!("{}/api/authentication/refresh", app.base);
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (url, cookie) = (url.clone(), format!("refresh={refresh}"));
            tokio::spawn(async move {
                let res = reqwest::Client::new().post(url).header("cookie", cookie).json(&json!({})).send().await?;
                let access = res.headers().get_all("set-cookie").iter().find_map(|c| {
                    let c = c.to_str().ok()?;
                    c.strip_prefix("access=").map(|rest| rest.split(';').next().unwrap_or("").to_owned())
                });
                Ok::<_, reqwest::Error>((res.status(), access))
            })
        })
        .collect();
    // One rotation and one successor for a replay inside the grace window;
    // every further replay is told to retry with its new cookie (409), which
    // the browser, sharing one cookie jar across tabs, already holds.
    let mut successors = Vec::new();
    let mut told_to_retry = 0;
    for t in tasks {
        let (status, access) = t.await.expect("task").expect("request");
        match status {
            StatusCode::OK => successors.push(access.expect("access cookie")),
            StatusCode::CONFLICT => {
                assert_eq!(access, None, "a 409 sets no cookie");
                told_to_retry += 1;
            }
            other => panic!("a tab was answered {other}"),
        }
    }
    assert_eq!((successors.len(), told_to_retry), (2, 8));
    // Each successor works: the log-in lives.
    for access in &successors {
        let r = app.current_user_with(access).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    let kinds = activity_kinds(&app, "tabs@example.com").await;
    assert!(!kinds.contains(&"refresh_reuse_detected".to_owned()), "{kinds:?}");

    // A minute later the same token is a stolen copy: the family dies.
    app.clock.advance(60);
    let r = app.refresh_with(&refresh).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
    let r = app.current_user_with(&successors[0]).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
    let kinds = activity_kinds(&app, "tabs@example.com").await;
    assert!(kinds.contains(&"refresh_reuse_detected".to_owned()), "{kinds:?}");
}
