//! Sessions: access-token expiry, refresh rotation and reuse detection, log-out, log-out everywhere and password change.

use super::*;

#[tokio::test]
async fn access_tokens_expire_and_refresh_rotates() {
    let app = spawn_app().await;
    assert_eq!(app.register("uma@example.com").await.status, StatusCode::CREATED);
    let r = app.log_in("uma@example.com", PASSWORD).await;
    let first_refresh = set_cookie(&r, "refresh").expect("refresh cookie");
    assert!(
        r.headers.get_all("set-cookie").iter().any(
            |c| c.to_str().unwrap_or("").starts_with("access=") && c.to_str().unwrap_or("").contains("Max-Age=900")
        )
    );
    app.clock.advance(15 * 60 + 10);
    assert_error(&app.get("/api/authentication").await, StatusCode::UNAUTHORIZED, "unauthenticated");
    let r = app.post("/api/authentication/refresh", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let second_refresh = set_cookie(&r, "refresh").expect("rotated");
    assert_ne!(first_refresh, second_refresh);
    assert_eq!(app.get("/api/authentication").await.status, StatusCode::OK);

    // Replaying the first refresh token once the grace window for
    // concurrent tabs has passed: refused, and the family dies.
    app.clock.advance(app.state.refresh_grace + 1);
    let r = app.refresh_with(&first_refresh).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_error(&app.get("/api/authentication").await, StatusCode::UNAUTHORIZED, "unauthenticated");
    let r = app.post("/api/authentication/refresh", json!({})).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
    let kinds = activity_kinds(&app, "uma@example.com").await;
    assert!(kinds.contains(&"refresh_reuse_detected".to_owned()), "{kinds:?}");
}

#[tokio::test]
async fn a_forged_refresh_token_is_refused_and_cleared() {
    let app = spawn_app().await;
    let r = app
        .with_cookie(reqwest::Method::POST, "/api/authentication/refresh", "refresh=not-a-real-token", Some(json!({})))
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert!(r.headers.get_all("set-cookie").iter().all(|c| c.to_str().unwrap_or("").contains("Max-Age=0")));
    let r = app.post("/api/authentication/refresh", json!({})).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
}

#[tokio::test]
async fn refresh_never_upgrades_a_password_stage_session() {
    let app = spawn_app().await;
    app.enrolled_user("val@example.com").await;
    app.password_stage("val@example.com").await;
    let r = app.post("/api/authentication/refresh", json!({})).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_error(&app.get("/api/authentication").await, StatusCode::UNAUTHORIZED, "unauthenticated");
}

#[tokio::test]
async fn log_out_ends_the_access_token_too() {
    let app = spawn_app().await;
    assert_eq!(app.register("wes@example.com").await.status, StatusCode::CREATED);
    let r = app.log_in("wes@example.com", PASSWORD).await;
    let access = set_cookie(&r, "access").expect("access");
    let refresh = set_cookie(&r, "refresh").expect("refresh");
    let r = app.post("/api/authentication/log-out", json!({})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers.get_all("set-cookie").iter().all(|c| c.to_str().unwrap_or("").contains("Max-Age=0")));
    let copied = format!("access={access}");
    assert_error(
        &app.with_cookie(reqwest::Method::GET, "/api/authentication", &copied, None).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    let r = app.refresh_with(&refresh).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
}

#[tokio::test]
async fn log_out_everywhere_and_password_change_end_other_sessions() {
    let app = spawn_app().await;
    assert_eq!(app.register("xia@example.com").await.status, StatusCode::CREATED);
    let phone = new_client();
    let laptop = new_client();
    for c in [&phone, &laptop] {
        assert_eq!(
            app.post_with(c, "/api/authentication/log-in", json!({"email": "xia@example.com", "password": PASSWORD}))
                .await
                .status,
            StatusCode::OK
        );
    }
    // Password change: the current one is required; other sessions end.
    let r = app
        .post_with(
            &laptop,
            "/api/authentication/change-password",
            json!({"currentPassword": "wrong current one", "newPassword": "a brand new passphrase"}),
        )
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_credentials");
    let r = app
        .post_with(
            &laptop,
            "/api/authentication/change-password",
            json!({"currentPassword": PASSWORD, "newPassword": "short"}),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    assert!(r.body["fields"]["newPassword"].is_string());
    // Neither refusal changed anything: the old password works, no session ended.
    assert_eq!(app.log_in("xia@example.com", PASSWORD).await.status, StatusCode::OK);
    assert_eq!(app.get_with(&phone, "/api/authentication").await.status, StatusCode::OK);
    let r = app
        .post_with(
            &laptop,
            "/api/authentication/change-password",
            json!({"currentPassword": PASSWORD, "newPassword": "a brand new passphrase"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(app.get_with(&laptop, "/api/authentication").await.status, StatusCode::OK);
    assert_error(&app.get_with(&phone, "/api/authentication").await, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_error(
        &app.post_with(&phone, "/api/authentication/refresh", json!({})).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    assert_error(&app.log_in("xia@example.com", PASSWORD).await, StatusCode::UNAUTHORIZED, "invalid_credentials");
    assert_eq!(app.log_in("xia@example.com", "a brand new passphrase").await.status, StatusCode::OK);

    // Log out everywhere from the laptop ends the main client's session too.
    let r = app.post_with(&laptop, "/api/authentication/log-out-everywhere", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_error(&app.get_with(&laptop, "/api/authentication").await, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_error(&app.get("/api/authentication").await, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_error(
        &app.post("/api/authentication/refresh", json!({})).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
}

#[tokio::test]
async fn a_password_stage_token_is_exchanged_once() {
    let app = spawn_app().await;
    let secret = app.enrolled_user("once@example.com").await;
    app.clock.advance(30);
    app.post("/api/authentication/log-out", json!({})).await;
    let r = app.log_in("once@example.com", PASSWORD).await;
    let stage = set_cookie(&r, "access").expect("password-stage cookie");
    let code = app.code_now(&secret);
    let r = app
        .with_cookie(
            reqwest::Method::POST,
            "/api/2fa/authenticate",
            &format!("access={stage}"),
            Some(json!({"twoFactorAuthenticationCode": code})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // A copy of the same stage token, with the next valid code, within
    // its five minutes: refused.
    app.clock.advance(30);
    let r = app
        .with_cookie(
            reqwest::Method::POST,
            "/api/2fa/authenticate",
            &format!("access={stage}"),
            Some(json!({"twoFactorAuthenticationCode": app.code_now(&secret)})),
        )
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
}
