//! The whole flow and its guards: sign-up, password, code, replay protection, the skew window, stage separation, parsing and malformed input.

use super::*;

#[tokio::test]
async fn whole_flow_with_replay_protection() {
    let app = spawn_app().await;
    let mut bodies = Vec::new();

    // Sign up.
    let r = app.register("  Ann@Example.COM ").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["email"], "ann@example.com");
    assert_eq!(r.body["name"], "Ann Example");
    assert_eq!(r.body["isTwoFactorAuthenticationEnabled"], false);
    assert!(r.body["id"].as_i64().is_some());
    bodies.push(r.text);

    // No session yet.
    assert_error(&app.get("/api/authentication").await, StatusCode::UNAUTHORIZED, "unauthenticated");

    // Log in without 2FA: a full session at once.
    let r = app.log_in("ann@example.com", PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["twoFactorRequired"], false);
    let cookie = r.headers.get("set-cookie").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    assert!(cookie.starts_with("access="), "{cookie}");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie} lacks {attr}");
    }
    bodies.push(r.text);
    let me = app.get("/api/authentication").await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["email"], "ann@example.com");
    bodies.push(me.text);

    // Enrol: generate a pending secret, confirm it with a code.
    let g = app.post("/api/2fa/generate", json!({})).await;
    assert_eq!(g.status, StatusCode::OK, "{}", g.text);
    let secret = g.body["secret"].as_str().expect("secret").to_owned();
    let url = g.body["otpauthUrl"].as_str().expect("otpauthUrl");
    assert!(url.starts_with("otpauth://totp/Test%20Login:ann%40example.com?secret="), "{url}");
    assert!(url.contains(&format!("secret={secret}")));
    assert!(secret.len() >= 32, "160-bit secret in base32");

    // Not on until a code confirms it.
    let me = app.get("/api/authentication").await;
    assert_eq!(me.body["isTwoFactorAuthenticationEnabled"], false);
    bodies.push(me.text);

    let r = app.post("/api/2fa/turn-on", json!({"twoFactorAuthenticationCode": app.wrong_code(&secret)})).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
    let turn_on_code = app.code_now(&secret);
    let r = app.post("/api/2fa/turn-on", json!({"twoFactorAuthenticationCode": turn_on_code})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["user"]["isTwoFactorAuthenticationEnabled"], true);
    assert_eq!(r.body["recoveryCodes"].as_array().map(Vec::len), Some(10));
    bodies.push(r.text);

    // The turn-on session was renewed and still works.
    let me = app.get("/api/authentication").await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!(me.body["isTwoFactorAuthenticationEnabled"], true);
    bodies.push(me.text);

    // While on, generate needs a current code; without one nothing is stored
    // (a turn-on with the active secret's code finds no pending secret).
    assert_error(&app.post("/api/2fa/generate", json!({})).await, StatusCode::BAD_REQUEST, "bad_request");
    let r = app.post("/api/2fa/generate", json!({"twoFactorAuthenticationCode": app.wrong_code(&secret)})).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
    let r = app.post("/api/2fa/turn-on", json!({"twoFactorAuthenticationCode": app.code_now(&secret)})).await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");

    // Log out, then the password step gives a password-stage session only.
    let r = app.post("/api/authentication/log-out", json!({})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_error(&app.get("/api/authentication").await, StatusCode::UNAUTHORIZED, "unauthenticated");
    let r = app.log_in("ann@example.com", PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["twoFactorRequired"], true);
    assert!(r.headers.get("set-cookie").and_then(|v| v.to_str().ok()).unwrap_or("").contains("Max-Age=300"));
    bodies.push(r.text);

    // The password-stage session is refused everywhere but /2fa/authenticate.
    assert_error(&app.get("/api/authentication").await, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_error(&app.post("/api/2fa/generate", json!({})).await, StatusCode::UNAUTHORIZED, "unauthenticated");
    let r = app.post("/api/2fa/turn-on", json!({"twoFactorAuthenticationCode": app.code_now(&secret)})).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthenticated");

    // The code that turned 2FA on cannot be replayed to log in.
    let r = app.post("/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": turn_on_code})).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");

    // The next step's code works, once.
    app.clock.advance(30);
    let code = app.code_now(&secret);
    let r = app.post("/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": code})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["email"], "ann@example.com");
    bodies.push(r.text);
    let me = app.get("/api/authentication").await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    bodies.push(me.text);

    // Log in again: the same code again, and the older (still in-window) one, are refused.
    app.post("/api/authentication/log-out", json!({})).await;
    assert_eq!(app.log_in("ann@example.com", PASSWORD).await.status, StatusCode::OK);
    let r = app.post("/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": code})).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
    let older = app.code_at(&secret, app.clock_now() - 30);
    let r = app.post("/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": older})).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
    // A pasted "123 456" form is accepted.
    app.clock.advance(30);
    let c = app.code_now(&secret);
    let spaced = format!("{} {}", &c[..3], &c[3..]);
    let r = app.post("/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": spaced})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // The secret appears in no response but /2fa/generate's.
    for body in &bodies {
        assert!(!body.contains(&secret), "secret leaked in {body}");
        assert!(!body.to_lowercase().contains("secret"), "secret field in {body}");
    }
}

#[tokio::test]
async fn skew_window_is_one_step() {
    let app = spawn_app().await;
    let secret = app.enrolled_user("bob@example.com").await;
    app.post("/api/authentication/log-out", json!({})).await;
    assert_eq!(app.log_in("bob@example.com", PASSWORD).await.status, StatusCode::OK);
    // Two steps ahead of the server: refused. One step ahead: accepted.
    let now = app.clock_now();
    let r =
        app.post("/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": app.code_at(&secret, now + 60)})).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
    let r =
        app.post("/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": app.code_at(&secret, now + 30)})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn password_stage_expires_after_five_minutes() {
    let app = spawn_app().await;
    let secret = app.enrolled_user("cat@example.com").await;
    app.post("/api/authentication/log-out", json!({})).await;
    assert_eq!(app.log_in("cat@example.com", PASSWORD).await.status, StatusCode::OK);
    app.clock.advance(5 * 60 + 10);
    let r = app.post("/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": app.code_now(&secret)})).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
}

#[tokio::test]
async fn full_session_cannot_use_authenticate() {
    let app = spawn_app().await;
    let secret = app.enrolled_user("dan@example.com").await;
    app.clock.advance(30);
    let r = app.post("/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": app.code_now(&secret)})).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
}

#[tokio::test]
async fn racing_requests_with_one_code_have_one_winner() {
    let app = spawn_app().await;
    let secret = app.enrolled_user("eve@example.com").await;
    app.clock.advance(30);
    // Ten separate clients, each past the password step.
    let mut clients = Vec::new();
    for _ in 0..10 {
        let c = new_client();
        let r = app
            .post_with(&c, "/api/authentication/log-in", json!({"email": "eve@example.com", "password": PASSWORD}))
            .await;
        assert_eq!(r.status, StatusCode::OK);
        clients.push(c);
    }
    let code = app.code_now(&secret);
    let tasks = clients.into_iter().map(|c| {
        let url = format!("{}/api/2fa/authenticate", app.base);
        let code = code.clone();
        tokio::spawn(async move {
            c.post(url).json(&json!({"twoFactorAuthenticationCode": code})).send().await.map(|r| r.status())
        })
    });
    let mut ok = 0;
    for t in tasks {
        let status = t.await.expect("task").expect("request");
        if status == StatusCode::OK {
            ok += 1;
        } else {
            // Losers are refused as replays, or throttled once the
            // account's free attempts are spent.
            assert!(status == StatusCode::UNAUTHORIZED || status == StatusCode::TOO_MANY_REQUESTS, "{status}");
        }
    }
    assert_eq!(ok, 1, "exactly one request may win the code");
}

#[tokio::test]
async fn log_in_failures_are_generic() {
    let app = spawn_app().await;
    assert_eq!(app.register("fay@example.com").await.status, StatusCode::CREATED);
    let wrong = app.log_in("fay@example.com", "not the right password").await;
    let unknown = app.log_in("nobody@example.com", PASSWORD).await;
    let short = app.log_in("fay@example.com", "short").await;
    for r in [&wrong, &unknown, &short] {
        assert_error(r, StatusCode::UNAUTHORIZED, "invalid_credentials");
        assert_eq!(r.body["message"], wrong.body["message"]);
        assert!(r.headers.get("set-cookie").is_none());
    }
}

#[tokio::test]
async fn registration_validation() {
    let app = spawn_app().await;
    assert_eq!(app.register("gus@example.com").await.status, StatusCode::CREATED);
    // The same email, differently typed.
    let r = app.register(" GUS@example.com").await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");
    assert!(r.body["fields"]["email"].is_string());

    let runs = app.state.hasher.runs();
    for (password, field_msg) in [("a".repeat(11), "at least 12"), ("a".repeat(129), "at most 128")] {
        let r = app
            .post(
                "/api/authentication/register",
                json!({"email": "hal@example.com", "name": "Hal", "password": password}),
            )
            .await;
        assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
        assert!(r.body["fields"]["password"].as_str().unwrap_or("").contains(field_msg), "{}", r.text);
    }
    // A megabyte password is refused at the edge too.
    let r = app
        .post(
            "/api/authentication/register",
            json!({"email": "hal@example.com", "name": "Hal", "password": "x".repeat(1 << 20)}),
        )
        .await;
    assert!(r.status.is_client_error(), "{}", r.status);
    assert_eq!(app.state.hasher.runs(), runs, "refused passwords are never hashed");

    let r = app
        .post("/api/authentication/register", json!({"email": "not-an-email", "name": " ", "password": PASSWORD}))
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    assert!(r.body["fields"]["email"].is_string() && r.body["fields"]["name"].is_string(), "{}", r.text);
    // Nothing was created by the refused requests.
    assert_eq!(app.log_in("hal@example.com", PASSWORD).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn malformed_input_is_a_client_error_never_500() {
    let app = spawn_app().await;
    for (path, body) in [
        ("/api/authentication/register", "{not json"),
        ("/api/authentication/register", r#"{"email":"a@b.co"}"#),
        ("/api/authentication/register", r#"{"email":1,"name":2,"password":3}"#),
        ("/api/authentication/log-in", ""),
        ("/api/authentication/log-in", "[]"),
        ("/api/2fa/turn-on", "{}"),
        ("/api/2fa/authenticate", r#"{"code":"123456"}"#),
    ] {
        let r = app.post_raw(path, body).await;
        assert!(r.status.is_client_error(), "{path} {body:?} gave {}: {}", r.status, r.text);
        assert!(r.body["message"].is_string(), "{path} {body:?}: {}", r.text);
    }
    // Non-digit codes from a password-stage session.
    app.enrolled_user("ian@example.com").await;
    app.post("/api/authentication/log-out", json!({})).await;
    app.log_in("ian@example.com", PASSWORD).await;
    for bad in ["abcdef", "12345", "1234567", "12345x", ""] {
        let r = app.post("/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": bad})).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    }
    let r = app.get("/api/no-such-endpoint").await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn endpoints_without_arguments_accept_an_empty_body() {
    let app = spawn_app().await;
    assert_eq!(app.register("kim@example.com").await.status, StatusCode::CREATED);
    assert_eq!(app.log_in("kim@example.com", PASSWORD).await.status, StatusCode::OK);
    let r = app.send(&app.client, app.client.post(format!("{}/api/2fa/generate", app.base))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.body["otpauthUrl"].is_string());
    let r = app.send(&app.client, app.client.post(format!("{}/api/authentication/log-out", app.base))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn password_stage_token_is_refused_by_every_other_endpoint() {
    let app = spawn_app().await;
    let secret = app.enrolled_user("yan@example.com").await;
    app.post("/api/authentication/log-out", json!({})).await;
    let r = app.log_in("yan@example.com", PASSWORD).await;
    let stage = format!("access={}", set_cookie(&r, "access").expect("access"));
    let code = app.code_at(&secret, app.clock_now() + 30);
    let posts = [
        ("/api/2fa/generate", json!({"twoFactorAuthenticationCode": code})),
        ("/api/2fa/turn-on", json!({"twoFactorAuthenticationCode": code})),
        ("/api/2fa/turn-off", json!({"password": PASSWORD, "twoFactorAuthenticationCode": code})),
        ("/api/2fa/recovery-codes", json!({"twoFactorAuthenticationCode": code})),
        ("/api/authentication/log-out-everywhere", json!({})),
        (
            "/api/authentication/change-password",
            json!({"currentPassword": PASSWORD, "newPassword": "another long passphrase"}),
        ),
    ];
    for (path, body) in posts {
        let r = app.with_cookie(reqwest::Method::POST, path, &stage, Some(body)).await;
        assert_error(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
    }
    for path in ["/api/authentication", "/api/2fa/status", "/api/authentication/activity"] {
        assert_error(
            &app.with_cookie(reqwest::Method::GET, path, &stage, None).await,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        );
    }
    // A forged "alg: none" token is refused too.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let claims = json!({"sub": "1", "stage": "full", "ver": 2, "iat": START, "exp": START + 9999, "jti": "x",
        "aud": "twofactor:session", "iss": "twofactor", "sid": "x"});
    let forged = format!("access={}.{}.", b64.encode(br#"{"alg":"none","typ":"JWT"}"#), b64.encode(claims.to_string()));
    assert_error(
        &app.with_cookie(reqwest::Method::GET, "/api/authentication", &forged, None).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
}
