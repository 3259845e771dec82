//! README's "each sentence is checked by a test": the sentences that had
//! none. The dummy argon2 run for an unknown email, production cookies and
//! HSTS, the throttle window starting over, refresh-token expiry, and every
//! audit kind written by its own operation.

use super::*;

#[tokio::test]
async fn an_unknown_email_costs_one_argon2_run_like_a_known_one() {
    let app = spawn_app().await;
    app.register("known@example.com").await;
    let runs = app.state.hasher.runs();
    let r = app.log_in("unknown@example.com", PASSWORD).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_credentials");
    assert_eq!(app.state.hasher.runs(), runs + 1, "one verification against the dummy hash");
    let known = app.log_in("known@example.com", "a wrong but valid password").await;
    assert_eq!(app.state.hasher.runs(), runs + 2);
    assert_eq!(known.body["message"], r.body["message"], "the same message either way");
}

#[tokio::test]
async fn production_mode_sends_hsts_and_host_prefixed_secure_cookies() {
    let key = format!("p1:{}", "0123456789abcdef".repeat(4));
    let app = spawn_app_with(&[
        ("APP_ENV", "production"),
        ("JWT_SECRET", "production-signing-key-of-sufficient-length-0123456789"),
        ("SECRETS_KEY", &key),
    ])
    .await;
    app.register("prod@example.com").await;
    let r = app.log_in("prod@example.com", PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let cookies: Vec<&str> = r.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).collect();
    for name in ["__Host-access=", "__Host-refresh="] {
        let c = cookies.iter().find(|c| c.starts_with(name)).unwrap_or_else(|| panic!("{name} in {cookies:?}"));
        for part in ["; Secure", "; HttpOnly", "; SameSite=Strict", "; Path=/"] {
            assert!(c.contains(part), "{c}");
        }
        assert!(!c.contains("Domain="), "host-only: {c}");
    }
    assert!(r.headers["strict-transport-security"].to_str().unwrap_or("").contains("max-age=31536000"));
    assert!(app.get("/login").await.headers.contains_key("strict-transport-security"));
}

#[tokio::test]
async fn an_hour_of_quiet_gives_the_free_attempts_back() {
    let app = spawn_app().await;
    app.register("quiet@example.com").await;
    let mut refused = false;
    for _ in 0..8 {
        let r = app.log_in("quiet@example.com", "wrong password number").await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            refused = true;
            break;
        }
        assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    assert!(refused, "the limit was reached");
    assert_error(&app.log_in("quiet@example.com", PASSWORD).await, StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
    // The window is an hour: past it, the count starts over, and four
    // wrong passwords in a row are all evaluated again.
    app.clock.advance(3601);
    for _ in 0..4 {
        let r = app.log_in("quiet@example.com", "wrong password number").await;
        assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    assert_eq!(app.log_in("quiet@example.com", PASSWORD).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_refresh_token_dies_with_its_lifetime() {
    let app = spawn_app().await;
    app.register("expiry@example.com").await;
    app.log_in("expiry@example.com", PASSWORD).await;
    // Kept alive by use, the family still ends 30 days after the log-in.
    for _ in 0..29 {
        app.clock.advance(86_400);
        assert_eq!(app.post("/api/authentication/refresh", json!({})).await.status, StatusCode::OK);
    }
    app.clock.advance(86_400);
    let r = app.post("/api/authentication/refresh", json!({})).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_error(&app.get("/api/authentication").await, StatusCode::UNAUTHORIZED, "unauthenticated");
}

#[tokio::test]
async fn every_audit_kind_is_written_by_its_operation() {
    let app = spawn_app().await;
    let email = "audit@example.com";
    let (secret, codes) = app.enrolled_with_codes(email).await; // log_in_ok, two_factor_on
    app.log_in(email, "not the password at all").await; // log_in_failed
    app.password_stage(email).await;
    app.post("/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": app.wrong_code(&secret)})).await; // code_failed
    app.post("/api/2fa/authenticate", json!({"recoveryCode": codes[0]})).await; // recovery_code_used
    app.clock.advance(30);
    let r = app.post("/api/2fa/recovery-codes", json!({"twoFactorAuthenticationCode": app.code_now(&secret)})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text); // recovery_codes_regenerated
    let new = "a different long passphrase";
    let r =
        app.post("/api/authentication/change-password", json!({"currentPassword": PASSWORD, "newPassword": new})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text); // password_changed
    // A refresh token replayed after its grace window.
    let r = app.post("/api/authentication/refresh", json!({})).await;
    let spent = set_cookie(&r, "refresh").expect("refresh");
    app.post("/api/authentication/refresh", json!({})).await;
    app.clock.advance(app.state.refresh_grace + 1);
    app.refresh_with(&spent).await; // refresh_reuse_detected
    app.post("/api/authentication/log-in", json!({"email": email, "password": new})).await;
    app.clock.advance(60);
    app.post("/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": app.code_now(&secret)})).await;
    app.post("/api/authentication/log-out-everywhere", json!({})).await; // sessions_revoked
    app.post("/api/authentication/log-in", json!({"email": email, "password": new})).await;
    app.clock.advance(60);
    app.post("/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": app.code_now(&secret)})).await;
    app.clock.advance(30);
    let off = json!({"password": new, "twoFactorAuthenticationCode": app.code_now(&secret)});
    assert_eq!(app.post("/api/2fa/turn-off", off).await.status, StatusCode::OK); // two_factor_off
    let g = app.post("/api/2fa/generate", json!({"password": new})).await;
    let pending = g.body["secret"].as_str().expect("secret").to_owned();
    let typo = json!({"twoFactorAuthenticationCode": app.wrong_code(&pending)});
    assert_eq!(app.post("/api/2fa/turn-on", typo).await.status, StatusCode::UNAUTHORIZED); // setup_code_failed
    let address = app::domain::Email::parse(email).expect("email");
    app::server::factors::protection::operator_reset_two_factor(&app.state, &address).await.expect("reset"); // two_factor_reset
    for _ in 0..6 {
        app.log_in(email, "wrong again and again").await; // throttled
    }
    app.clock.advance(3600);
    let c = new_client();
    app.post_with(&c, "/api/authentication/log-in", json!({"email": email, "password": new})).await;
    let r = app.get_with(&c, "/api/authentication/activity").await;
    let kinds = all_kinds(&r.body);
    for kind in [
        "log_in_ok",
        "log_in_failed",
        "code_failed",
        "setup_code_failed",
        "throttled",
        "two_factor_on",
        "two_factor_off",
        "recovery_code_used",
        "recovery_codes_regenerated",
        "refresh_reuse_detected",
        "password_changed",
        "sessions_revoked",
        "two_factor_reset",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} missing from {kinds:?}");
    }
}

/// On forms without an email field a wrong password is "not your current
/// password", on its own field; a wait of one second is "1 second"
/// (issue 21, item 6).
#[tokio::test]
async fn a_wrong_current_password_is_called_that() {
    let app = spawn_app().await;
    app.register("words@example.com").await;
    app.log_in("words@example.com", PASSWORD).await;
    let body = json!({"currentPassword": "not my password at all", "newPassword": "a different long passphrase"});
    let r = app.post("/api/authentication/change-password", body).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_credentials");
    assert_eq!(r.body["message"], "That is not your current password.");
    assert_eq!(r.body["fields"]["currentPassword"], "That is not your current password.");
    let r = app.log_in("words@example.com", "not my password at all").await;
    assert_eq!(r.body["message"], "Wrong email or password.", "the log-in form keeps its words");
    assert_eq!(app::error::AppError::too_many(1).message, "Too many attempts. Try again in 1 second.");
    assert_eq!(app::error::AppError::too_many(5).message, "Too many attempts. Try again in 5 seconds.");
}
