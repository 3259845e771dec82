//! Guessing limits, recovery codes, turning 2FA off, replacing the secret, sealed secrets and the activity trail.

use super::*;

// ------------------------------------------------------------------ hardening

#[tokio::test]
async fn password_guessing_is_throttled_per_account() {
    let app = spawn_app().await;
    assert_eq!(app.register("nat@example.com").await.status, StatusCode::CREATED);
    for _ in 0..5 {
        assert_error(
            &app.log_in("nat@example.com", "wrong password guess").await,
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        );
    }
    // The sixth try, even with the right password, waits.
    let r = app.log_in("nat@example.com", PASSWORD).await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
    assert_eq!(r.headers["retry-after"], "1");
    assert_eq!(r.body["retryAfter"], 1);
    // An unknown email is throttled the same way: no enumeration by limits.
    for _ in 0..5 {
        app.log_in("ghost@example.com", "wrong password guess").await;
    }
    assert_error(&app.log_in("ghost@example.com", PASSWORD).await, StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
    // The delay doubles per failure.
    app.clock.advance(1);
    assert_error(
        &app.log_in("nat@example.com", "wrong password guess").await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    );
    let r = app.log_in("nat@example.com", PASSWORD).await;
    assert_eq!(r.headers["retry-after"], "2");
    app.clock.advance(2);
    // A success resets the count.
    assert_eq!(app.log_in("nat@example.com", PASSWORD).await.status, StatusCode::OK);
    for _ in 0..5 {
        assert_eq!(app.log_in("nat@example.com", "wrong password guess").await.status, StatusCode::UNAUTHORIZED);
    }
}

/// A log-in attempt from `address` (behind the trusted proxy) with a client
/// that keeps its cookies.
async fn log_in_from(app: &TestApp, client: &reqwest::Client, address: &str, email: &str, password: &str) -> Reply {
    let req = client
        .post(format!("{}/api/authentication/log-in", app.base))
        .header("x-forwarded-for", address)
        .json(&json!({"email": email, "password": password}));
    app.send(client, req).await
}

#[tokio::test]
async fn a_stranger_cannot_lock_the_owner_out_of_the_password_step() {
    let app = spawn_app_with(&[("TRUSTED_PROXY_HEADER", "x-forwarded-for")]).await;
    assert_eq!(app.register("own@example.com").await.status, StatusCode::CREATED);
    // The owner's browser has logged in before: it holds a device cookie.
    let owner = new_client();
    let r = log_in_from(&app, &owner, "192.0.2.10", "own@example.com", PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK);
    let set = r.headers.get_all("set-cookie").iter().map(|v| v.to_str().unwrap_or("")).collect::<Vec<_>>().join("\n");
    assert!(set.contains("device="), "{set}");
    assert!(set.contains("Max-Age=15552000"), "kept 180 days: {set}");

    // A stranger fails five times and is slowed down...
    let stranger = new_client();
    for _ in 0..5 {
        let r = log_in_from(&app, &stranger, "203.0.113.5", "own@example.com", "wrong password guess").await;
        assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    let r = log_in_from(&app, &stranger, "203.0.113.5", "own@example.com", "wrong password guess").await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
    // ... but the owner's browser is not, even from the same address, and
    // even once that address has used up its limit across accounts ...
    for i in 0..50 {
        log_in_from(&app, &stranger, "203.0.113.5", &format!("nobody{i}@example.com"), "wrong password guess").await;
    }
    let r = log_in_from(&app, &stranger, "203.0.113.5", "nobody@example.com", "wrong password guess").await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
    let r = log_in_from(&app, &owner, "203.0.113.5", "own@example.com", PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // ... and nor is a new browser from another address.
    let r = log_in_from(&app, &new_client(), "198.51.100.20", "own@example.com", PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // Guessing spread over many addresses meets the looser account-wide
    // limit: 50 failures from clients without the device cookie in all.
    let (mut evaluated, mut refused) = (5, 0);
    for i in 0..100 {
        let r = log_in_from(
            &app,
            &new_client(),
            &format!("10.1.{}.{}", i / 200, i % 200 + 1),
            "own@example.com",
            "wrong password guess",
        )
        .await;
        match r.status {
            StatusCode::UNAUTHORIZED => evaluated += 1,
            StatusCode::TOO_MANY_REQUESTS => refused += 1,
            other => panic!("unexpected {other}: {}", r.text),
        }
    }
    assert_eq!((evaluated, refused), (50, 55));
    // A new browser is now slowed down too, but the owner's is not.
    let r = log_in_from(&app, &new_client(), "198.51.100.21", "own@example.com", PASSWORD).await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
    let r = log_in_from(&app, &owner, "198.51.100.22", "own@example.com", PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // The device cookie counts for its own account only, and its own
    // failures are limited like any client's.
    assert_eq!(app.register("other@example.com").await.status, StatusCode::CREATED);
    for _ in 0..5 {
        log_in_from(&app, &new_client(), "192.0.2.30", "other@example.com", "wrong password guess").await;
    }
    let r = log_in_from(&app, &owner, "192.0.2.30", "other@example.com", PASSWORD).await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
    for _ in 0..5 {
        let r = log_in_from(&app, &owner, "192.0.2.10", "own@example.com", "wrong password guess").await;
        assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    let r = log_in_from(&app, &owner, "192.0.2.10", "own@example.com", PASSWORD).await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS, "too_many_requests");

    // A password change ends the trust of every device cookie issued
    // before it: cookies collected while the old password was known give
    // no extra guesses at the new one.
    app.clock.advance(2 * 3600);
    let refresh = owner.post(format!("{}/api/authentication/refresh", app.base)).json(&json!({}));
    assert_eq!(app.send(&owner, refresh).await.status, StatusCode::OK);
    let req = owner
        .post(format!("{}/api/authentication/change-password", app.base))
        .header("x-forwarded-for", "192.0.2.10")
        .json(&json!({"currentPassword": PASSWORD, "newPassword": "a brand new passphrase"}));
    assert_eq!(app.send(&owner, req).await.status, StatusCode::OK);
    for _ in 0..5 {
        log_in_from(&app, &new_client(), "192.0.2.60", "own@example.com", "wrong password guess").await;
    }
    let r = log_in_from(&app, &owner, "192.0.2.60", "own@example.com", "a brand new passphrase").await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
}

#[tokio::test]
async fn delay_is_capped_at_fifteen_minutes() {
    let app = spawn_app().await;
    assert_eq!(app.register("olga@example.com").await.status, StatusCode::CREATED);
    let mut waits = Vec::new();
    for _ in 0..40 {
        let r = app.log_in("olga@example.com", "wrong password guess").await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            let w = r.body["retryAfter"].as_i64().expect("retryAfter");
            waits.push(w);
            app.clock.advance(w);
        }
    }
    // 1, 2, 4, … 512, then 900 seconds and no more.
    assert_eq!(&waits[..10], &[1, 2, 4, 8, 16, 32, 64, 128, 256, 512]);
    assert!(waits[10..].iter().all(|w| *w == 900), "{waits:?}");
}

#[tokio::test]
async fn a_thousand_parallel_wrong_codes_evaluate_at_most_five() {
    let app = spawn_app().await;
    let secret = app.enrolled_user("pia@example.com").await;
    app.password_stage("pia@example.com").await;
    let right = app.code_at(&secret, app.clock_now() + 30);
    let wrong = if right == "000000" { "111111".to_owned() } else { "000000".to_owned() };
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let client = app.client.clone();
            let url = format!("{}/api/2fa/authenticate", app.base);
            let body = json!({"twoFactorAuthenticationCode": wrong});
            tokio::spawn(async move { client.post(url).json(&body).send().await.map(|r| r.status()) })
        })
        .collect();
    let (mut evaluated, mut throttled) = (0, 0);
    for t in tasks {
        match t.await.expect("task").expect("request") {
            StatusCode::UNAUTHORIZED => evaluated += 1,
            StatusCode::TOO_MANY_REQUESTS => throttled += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(evaluated, 5, "only the free attempts are evaluated");
    assert_eq!(throttled, 995);
    // Even the right code waits now.
    let r = app.post("/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": right})).await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
    // Guessing codes does not lock the password step.
    let r = app.log_in("pia@example.com", PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // After the delay the right code works and clears the count.
    app.clock.advance(r.body["retryAfter"].as_i64().unwrap_or(1).max(1));
    let r = app.post("/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": right})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn per_address_limit_spans_accounts() {
    let app = spawn_app().await;
    // 50 failures spread over many accounts from one address.
    for i in 0..50 {
        app.log_in(&format!("user{i}@example.com"), "wrong password guess").await;
    }
    let r = app.log_in("fresh@example.com", "wrong password guess").await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
    // Another address (behind a trusted proxy) is not affected.
    let proxied = spawn_app_with(&[("TRUSTED_PROXY_HEADER", "x-forwarded-for")]).await;
    for i in 0..50 {
        let req = proxied
            .client
            .post(format!("{}/api/authentication/log-in", proxied.base))
            .header("x-forwarded-for", "198.51.100.7")
            .json(&json!({"email": format!("user{i}@example.com"), "password": "wrong password guess"}));
        proxied.send(&proxied.client, req).await;
    }
    let other = proxied
        .client
        .post(format!("{}/api/authentication/log-in", proxied.base))
        .header("x-forwarded-for", "203.0.113.9")
        .json(&json!({"email": "fresh@example.com", "password": "wrong password guess"}));
    assert_error(&proxied.send(&proxied.client, other).await, StatusCode::UNAUTHORIZED, "invalid_credentials");
    let same = proxied
        .client
        .post(format!("{}/api/authentication/log-in", proxied.base))
        .header("x-forwarded-for", "10.0.0.1, 198.51.100.7")
        .json(&json!({"email": "fresh@example.com", "password": "wrong password guess"}));
    assert_error(&proxied.send(&proxied.client, same).await, StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
}

#[tokio::test]
async fn recovery_codes_work_once() {
    let app = spawn_app().await;
    let (_secret, codes) = app.enrolled_with_codes("quin@example.com").await;
    assert_eq!(codes.len(), 10);
    assert!(codes.iter().all(|c| c.len() == 14 && c.chars().filter(|&ch| ch == '-').count() == 2), "{codes:?}");
    let st = app.get("/api/2fa/status").await;
    assert_eq!(st.body["recoveryCodesLeft"], 10, "{}", st.text);

    app.password_stage("quin@example.com").await;
    // Typed in capitals without dashes: still the same code.
    let typed = codes[0].replace('-', "").to_uppercase();
    let r = app.post("/api/2fa/authenticate", json!({"recoveryCode": typed})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(app.get("/api/2fa/status").await.body["recoveryCodesLeft"], 9);

    app.password_stage("quin@example.com").await;
    let r = app.post("/api/2fa/authenticate", json!({"recoveryCode": codes[0]})).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
    let r = app.post("/api/2fa/authenticate", json!({"recoveryCode": "not-a-code"})).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    let r = app
        .post("/api/2fa/authenticate", json!({"recoveryCode": codes[1], "twoFactorAuthenticationCode": "123456"}))
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");

    // Two clients racing with one recovery code: exactly one wins.
    let a = new_client();
    let b = new_client();
    for c in [&a, &b] {
        let r = app
            .post_with(c, "/api/authentication/log-in", json!({"email": "quin@example.com", "password": PASSWORD}))
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let url = format!("{}/api/2fa/authenticate", app.base);
    let body = json!({"recoveryCode": codes[2]});
    let (ra, rb) = tokio::join!(a.post(&url).json(&body).send(), b.post(&url).json(&body).send());
    let statuses = [ra.expect("a").status(), rb.expect("b").status()];
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 1, "{statuses:?}");

    let events = app.with_cookie(reqwest::Method::GET, "/api/authentication/activity", "", None).await;
    assert_eq!(events.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn regenerating_recovery_codes_voids_the_old_ones() {
    let app = spawn_app().await;
    let (secret, old) = app.enrolled_with_codes("rae@example.com").await;
    let r = app.post("/api/2fa/recovery-codes", json!({"twoFactorAuthenticationCode": app.wrong_code(&secret)})).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
    // Refused: the old set is untouched and still works.
    assert_eq!(app.get("/api/2fa/status").await.body["recoveryCodesLeft"], 10);
    let other = new_client();
    app.post_with(&other, "/api/authentication/log-in", json!({"email": "rae@example.com", "password": PASSWORD}))
        .await;
    let r = app.post_with(&other, "/api/2fa/authenticate", json!({"recoveryCode": old[9]})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    app.clock.advance(30);
    let r = app.post("/api/2fa/recovery-codes", json!({"twoFactorAuthenticationCode": app.code_now(&secret)})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let new: Vec<String> = r.body["recoveryCodes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c.as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(new.len(), 10);
    app.password_stage("rae@example.com").await;
    assert_error(
        &app.post("/api/2fa/authenticate", json!({"recoveryCode": old[0]})).await,
        StatusCode::UNAUTHORIZED,
        "invalid_code",
    );
    assert_eq!(app.post("/api/2fa/authenticate", json!({"recoveryCode": new[0]})).await.status, StatusCode::OK);
}

#[tokio::test]
async fn turning_off_needs_password_and_code() {
    let app = spawn_app().await;
    let (secret, codes) = app.enrolled_with_codes("sam@example.com").await;
    // Another device's session, to see it end.
    let other = new_client();
    app.post_with(&other, "/api/authentication/log-in", json!({"email": "sam@example.com", "password": PASSWORD}))
        .await;
    app.clock.advance(30);
    let r = app
        .post_with(&other, "/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": app.code_now(&secret)}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(app.get_with(&other, "/api/authentication").await.status, StatusCode::OK);

    app.clock.advance(30);
    let code = app.code_now(&secret);
    let r = app
        .post("/api/2fa/turn-off", json!({"password": "not my password", "twoFactorAuthenticationCode": code}))
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_credentials");
    let r = app.post("/api/2fa/turn-off", json!({"password": PASSWORD})).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    let r = app
        .post(
            "/api/2fa/turn-off",
            json!({"password": PASSWORD, "twoFactorAuthenticationCode": app.wrong_code(&secret)}),
        )
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
    assert_eq!(app.get("/api/authentication").await.body["isTwoFactorAuthenticationEnabled"], true);

    // With a recovery code instead of the app code.
    let r = app.post("/api/2fa/turn-off", json!({"password": PASSWORD, "recoveryCode": codes[3]})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["isTwoFactorAuthenticationEnabled"], false);
    assert_eq!(app.get("/api/authentication").await.body["isTwoFactorAuthenticationEnabled"], false);
    // The other device's session ended with the change.
    assert_error(&app.get_with(&other, "/api/authentication").await, StatusCode::UNAUTHORIZED, "unauthenticated");
    // Logging in needs no code now.
    app.post("/api/authentication/log-out", json!({})).await;
    assert_eq!(app.log_in("sam@example.com", PASSWORD).await.body["twoFactorRequired"], false);
}

#[tokio::test]
async fn a_new_secret_needs_proof_and_replaces_the_old_only_when_confirmed() {
    let app = spawn_app().await;
    let old = app.enrolled_user("tom@example.com").await;
    app.clock.advance(30);
    let g = app.post("/api/2fa/generate", json!({"twoFactorAuthenticationCode": app.code_now(&old)})).await;
    assert_eq!(g.status, StatusCode::OK, "{}", g.text);
    let new = g.body["secret"].as_str().expect("secret").to_owned();
    assert_ne!(new, old);
    // Not confirmed yet: the old secret still logs in, the new does not.
    app.password_stage("tom@example.com").await;
    app.clock.advance(30);
    assert_error(
        &app.post("/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": app.code_now(&new)})).await,
        StatusCode::UNAUTHORIZED,
        "invalid_code",
    );
    assert_eq!(
        app.post("/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": app.code_now(&old)})).await.status,
        StatusCode::OK
    );
    // Confirmed: the new one replaces the old.
    app.clock.advance(30);
    let r = app.post("/api/2fa/turn-on", json!({"twoFactorAuthenticationCode": app.code_now(&new)})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    app.password_stage("tom@example.com").await;
    app.clock.advance(30);
    assert_error(
        &app.post("/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": app.code_now(&old)})).await,
        StatusCode::UNAUTHORIZED,
        "invalid_code",
    );
    app.clock.advance(30);
    assert_eq!(
        app.post("/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": app.code_now(&new)})).await.status,
        StatusCode::OK
    );
}

/// What a database dump shows for zed's secret.
async fn stored_secret(url: &str) -> (String,) {
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(url).await.expect("db");
    sqlx::query_as("SELECT totp_secret FROM users WHERE email = 'zed@example.com'")
        .fetch_one(&mut conn)
        .await
        .expect("row")
}

/// What a database dump shows for zed's recovery codes.
async fn stored_recovery_hashes(url: &str) -> Vec<String> {
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(url).await.expect("db");
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT code_hash FROM recovery_codes WHERE user_id = (SELECT id FROM users WHERE email = 'zed@example.com')",
    )
    .fetch_all(&mut conn)
    .await
    .expect("rows");
    rows.into_iter().map(|(h,)| h).collect()
}

fn unkeyed_digest(code: &str) -> String {
    use sha2::Digest;
    let normalised: String = code.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_lowercase();
    hex::encode(sha2::Sha256::digest(normalised.as_bytes()))
}

#[tokio::test]
async fn secrets_are_sealed_at_rest_and_keys_rotate() {
    init_test_log();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().to_path_buf();
    let k1 = format!("k1:{}", "0123456789abcdef".repeat(4));
    let k2 = format!("k2:{}", "fedcba9876543210".repeat(4));
    let app = spawn_in(dir, &[("SECRETS_KEY", &k1)]).await;
    let (secret, codes) = app.enrolled_with_codes("zed@example.com").await;
    // The OpenID provider's signing key, sealed under k1 too.
    let kid = app::server::oidc::keys::current(&app.state).await.expect("a signing key").signer_kid().to_owned();

    let url = app.database_url.clone();
    let stored = stored_secret(&url).await;
    assert!(stored.0.starts_with("v1.k1."), "{}", stored.0);
    assert!(!stored.0.contains(&secret), "the dump shows no usable secret");
    // Recovery codes are keyed hashes: the dump cannot test guesses alone.
    let hashes = stored_recovery_hashes(&url).await;
    assert_eq!(hashes.len(), 10);
    assert!(hashes.iter().all(|h| h.starts_with("r1.k1.")), "{hashes:?}");
    assert!(codes.iter().all(|c| !hashes.contains(&unkeyed_digest(c))), "no bare SHA-256 of a code");

    // Rotate: new key current, old key previous; the command re-seals.
    let config = Config::from_vars(|k| match k {
        "DATA_DIR" => Some(path.display().to_string()),
        "DATABASE_URL" => Some(url.clone()),
        "JWT_SECRET" => Some("test-signing-key-that-is-long-enough-0123456789".into()),
        "SECRETS_KEY" => Some(k2.clone()),
        "SECRETS_KEYS_PREVIOUS" => Some(k1.clone()),
        _ => None,
    })
    .expect("config");
    let rotated_state = build_state(&config, Arc::new(app.clock.clone())).await.expect("state");
    let report = server::ops::rotate_secrets_key_report(&rotated_state).await.expect("rotate");
    assert!(report.contains("re-encrypted the secrets of 1 account(s)"), "{report}");
    // Keyed hashes cannot move without the codes: the report says which
    // key must stay.
    assert!(report.contains("1 account(s) have recovery codes hashed under key \"k1\""), "{report}");
    assert!(report.contains("re-encrypted 1 OpenID signing key(s)"), "{report}");
    assert_eq!(server::ops::rotate_secrets_key(&rotated_state).await.expect("again"), 0);
    let stored = stored_secret(&url).await;
    assert!(stored.0.starts_with("v1.k2."), "{}", stored.0);
    // The signing key opens under k2 alone, and is the same key.
    let k2_only = Config::from_vars(|k| match k {
        "DATA_DIR" => Some(path.display().to_string()),
        "DATABASE_URL" => Some(url.clone()),
        "JWT_SECRET" => Some("test-signing-key-that-is-long-enough-0123456789".into()),
        "SECRETS_KEY" => Some(k2.clone()),
        _ => None,
    })
    .expect("config");
    let k2_state = build_state(&k2_only, Arc::new(app.clock.clone())).await.expect("state");
    let keys = app::server::oidc::keys::current(&k2_state).await.expect("the key opens under k2");
    assert_eq!(keys.signer_kid(), kid);

    // A server on the new key alone still logs the user in with the same app.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    super::serve(listener, build_router(rotated_state), &config);
    // Requests to that server: (client, path, body) → status.
    let post = |c: &reqwest::Client, path: &str, body: Value| {
        let req = c.post(format!("{base}{path}")).json(&body).send();
        async move { req.await.expect("request").status() }
    };
    let log_in = |c: reqwest::Client| {
        let post = &post;
        async move {
            let body = json!({"email": "zed@example.com", "password": PASSWORD});
            assert_eq!(post(&c, "/api/authentication/log-in", body).await, StatusCode::OK);
            c
        }
    };
    let c = log_in(new_client()).await;
    app.clock.advance(30);
    let code = json!({"twoFactorAuthenticationCode": app.code_now(&secret)});
    assert_eq!(post(&c, "/api/2fa/authenticate", code).await, StatusCode::OK);
    // A recovery code issued under the old key still works (the old key
    // is in SECRETS_KEYS_PREVIOUS); a new set is hashed under the new key.
    let c = log_in(new_client()).await;
    assert_eq!(post(&c, "/api/2fa/authenticate", json!({"recoveryCode": codes[0]})).await, StatusCode::OK);
    app.clock.advance(30);
    let code = json!({"twoFactorAuthenticationCode": app.code_now(&secret)});
    assert_eq!(post(&c, "/api/2fa/recovery-codes", code).await, StatusCode::OK);
    let hashes = stored_recovery_hashes(&url).await;
    assert!(hashes.iter().all(|h| h.starts_with("r1.k2.")), "{hashes:?}");

    // A code stored by an older release (unkeyed SHA-256) still spends.
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url).await.expect("db");
    sqlx::query(
        "INSERT INTO recovery_codes (user_id, code_hash) \
         SELECT id, $1 FROM users WHERE email = 'zed@example.com'",
    )
    .bind(unkeyed_digest("abcd-2345-efgh"))
    .execute(&mut conn)
    .await
    .expect("legacy row");
    let c = log_in(new_client()).await;
    assert_eq!(post(&c, "/api/2fa/authenticate", json!({"recoveryCode": "abcd-2345-efgh"})).await, StatusCode::OK);
}

#[tokio::test]
async fn activity_lists_security_events() {
    let app = spawn_app().await;
    assert_eq!(app.register("amy@example.com").await.status, StatusCode::CREATED);
    app.log_in("amy@example.com", "wrong password guess").await;
    let r = app
        .client
        .post(format!("{}/api/authentication/log-in", app.base))
        .header("user-agent", "Mozilla/5.0 TestBrowser/1.0")
        .json(&json!({"email": "amy@example.com", "password": PASSWORD}));
    assert_eq!(app.send(&app.client, r).await.status, StatusCode::OK);
    let a = app.get("/api/authentication/activity").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let events = a.body["events"].as_array().expect("events");
    assert_eq!(events[0]["kind"], "log_in_ok");
    assert_eq!(events[0]["ip"], "127.0.0.1");
    assert_eq!(events[0]["userAgent"], "Mozilla/5.0 TestBrowser/1.0");
    assert_eq!(events[0]["at"], START);
    assert_eq!(events[1]["kind"], "log_in_failed");
}

#[tokio::test]
async fn starting_enrolment_needs_the_password_unless_the_log_in_is_fresh() {
    let app = spawn_app().await;
    app.register("proof@example.com").await;
    app.log_in("proof@example.com", PASSWORD).await;
    // Within 5 minutes of the log-in, the session is proof enough.
    app.clock.advance(4 * 60);
    assert_eq!(app.post("/api/2fa/generate", json!({})).await.status, StatusCode::OK);
    // Later, a stolen session alone cannot bind another authenticator, even
    // after refreshing (a rotation is not a log-in).
    app.clock.advance(20 * 60);
    assert_eq!(app.post("/api/authentication/refresh", json!({})).await.status, StatusCode::OK);
    let r = app.post("/api/2fa/generate", json!({})).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    assert!(r.body["fields"]["password"].is_string(), "{}", r.text);
    let r = app.post("/api/2fa/generate", json!({"password": "not the password at all"})).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_credentials");
    let r = app.post("/api/2fa/generate", json!({"password": PASSWORD})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // A new log-in is fresh again.
    app.log_in("proof@example.com", PASSWORD).await;
    assert_eq!(app.post("/api/2fa/generate", json!({})).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_hundred_wrong_codes_in_a_row_lock_codes_until_a_recovery_code() {
    let app = spawn_app().await;
    let (secret, codes) = app.enrolled_with_codes("hundred@example.com").await;
    app.password_stage("hundred@example.com").await;
    for n in 0..100 {
        // An hour of quiet between tries: the throttle forgets, this cap
        // does not.
        app.clock.advance(3601);
        let r =
            app.post("/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": app.wrong_code(&secret)})).await;
        if r.status == StatusCode::UNAUTHORIZED && r.body["error"] == "unauthenticated" {
            app.password_stage("hundred@example.com").await; // the stage lasts 5 minutes
            let r = app
                .post("/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": app.wrong_code(&secret)}))
                .await;
            assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
        } else {
            assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
        }
        let _ = n;
    }
    app.clock.advance(3601);
    app.password_stage("hundred@example.com").await;
    // The right code is refused now, however long one waits.
    let r = app.post("/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": app.code_now(&secret)})).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    assert!(r.body["message"].as_str().unwrap_or("").contains("recovery"), "{}", r.text);
    app.clock.advance(30 * 86_400);
    app.password_stage("hundred@example.com").await;
    let r = app.post("/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": app.code_now(&secret)})).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    // A recovery code passes and starts the count over.
    let r = app.post("/api/2fa/authenticate", json!({"recoveryCode": codes[0]})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app.get("/api/authentication/activity").await;
    assert!(r.text.contains("codes_locked"), "{}", r.text);
    app.clock.advance(30);
    app.password_stage("hundred@example.com").await;
    let r = app.post("/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": app.code_now(&secret)})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn a_flood_of_refused_attempts_is_one_event_and_never_hides_a_change() {
    let app = spawn_app().await;
    app.register("flooded@example.com").await;
    app.log_in("flooded@example.com", PASSWORD).await;
    let change = json!({"currentPassword": PASSWORD, "newPassword": "a new and longer passphrase"});
    assert_eq!(app.post("/api/authentication/change-password", change).await.status, StatusCode::OK);
    // 200 anonymous wrong passwords at the same moment: after the free
    // ones, every request is refused, and that is audited once.
    let stranger = new_client();
    for _ in 0..200 {
        app.post_with(
            &stranger,
            "/api/authentication/log-in",
            json!({"email": "flooded@example.com", "password": "a guess from afar"}),
        )
        .await;
    }
    let a = app.get("/api/authentication/activity").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let kinds = all_kinds(&a.body);
    assert_eq!(kinds.iter().filter(|k| *k == "throttled").count(), 1, "{kinds:?}");
    let changes: Vec<&str> =
        a.body["changes"].as_array().expect("changes").iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(changes, ["password_changed"]);
}

/// Sends `n` log-ins at once; returns their statuses and Retry-After values.
async fn parallel_log_ins(
    app: &TestApp,
    n: usize,
    email: impl Fn(usize) -> String,
) -> Vec<(StatusCode, Option<String>)> {
    let url = format!("{}/api/authentication/log-in", app.base);
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (url, body) = (url.clone(), json!({"email": email(i), "password": "a wrong password guess"}));
            tokio::spawn(async move {
                let r = reqwest::Client::new().post(url).json(&body).send().await?;
                let retry = r.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
                Ok::<_, reqwest::Error>((r.status(), retry))
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("task").expect("request"));
    }
    out
}

#[tokio::test]
async fn the_address_limit_holds_under_parallel_requests() {
    let app = spawn_app().await;
    let runs = app.state.hasher.runs();
    // 150 failed log-ins at once from one address, each to another account
    // (so only the address limit, 50 free, can stop them).
    let replies = parallel_log_ins(&app, 150, |i| format!("stranger{i}@example.com")).await;
    let evaluated = app.state.hasher.runs() - runs;
    assert!(evaluated <= 51, "{evaluated} of 150 evaluated");
    let refused = replies.iter().filter(|(s, _)| *s == StatusCode::TOO_MANY_REQUESTS).count();
    assert!(refused >= 99, "{refused} refused");
    for (status, _) in &replies {
        assert!(
            matches!(
                *status,
                StatusCode::UNAUTHORIZED | StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
            ),
            "{status}"
        );
    }
}

#[tokio::test]
async fn a_full_hashing_queue_answers_503_with_retry_after_at_once() {
    let app = spawn_app_with(&[("HASH_QUEUE_LIMIT", "0")]).await;
    app.register("queued@example.com").await;
    let replies = parallel_log_ins(&app, 30, |i| format!("queue{i}@example.com")).await;
    let busy: Vec<_> = replies.iter().filter(|(s, _)| *s == StatusCode::SERVICE_UNAVAILABLE).collect();
    assert!(!busy.is_empty(), "with no queue, parallel log-ins beyond the hashing threads are turned away");
    for (_, retry) in &busy {
        assert_eq!(retry.as_deref(), Some("1"));
    }
    // Once the burst is over, the owner logs in as usual.
    assert_eq!(app.log_in("queued@example.com", PASSWORD).await.status, StatusCode::OK);

    // While every hashing thread is busy, a stranger is turned away at
    // once, but a browser that has logged in before waits in a reserve
    // strangers cannot fill: slower, never turned away.
    let held = app.state.hasher.occupy_all().await;
    let r = app
        .post_with(
            &new_client(),
            "/api/authentication/log-in",
            json!({"email": "queued@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    let (owner, base) = (app.client.clone(), app.base.clone());
    let during = tokio::spawn(async move {
        owner
            .post(format!("{base}/api/authentication/log-in"))
            .json(&json!({"email": "queued@example.com", "password": PASSWORD}))
            .send()
            .await
            .map(|r| r.status())
    });
    while app.state.hasher.waiting() == 0 && !during.is_finished() {
        tokio::task::yield_now().await;
    }
    drop(held);
    assert_eq!(during.await.expect("task").expect("log-in"), StatusCode::OK);
}

#[tokio::test]
async fn registration_is_limited_per_address_and_a_taken_email_costs_a_hash() {
    let app = spawn_app_with(&[("REGISTRATIONS_PER_HOUR", "3")]).await;
    for n in 0..3 {
        assert_eq!(app.register(&format!("new{n}@example.com")).await.status, StatusCode::CREATED);
    }
    assert_error(&app.register("new3@example.com").await, StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
    app.clock.advance(3601);
    // A taken email is answered only after the argon2 run a new account
    // costs: the answer's timing does not tell the two apart.
    let runs = app.state.hasher.runs();
    assert_error(&app.register("new0@example.com").await, StatusCode::CONFLICT, "conflict");
    assert_eq!(app.state.hasher.runs(), runs + 1);
    assert_eq!(app.register("new3@example.com").await.status, StatusCode::CREATED);
    assert_eq!(app.state.hasher.runs(), runs + 2);
}
