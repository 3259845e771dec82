//! Moving the authenticator app to a new phone while two-factor is on
//! (issue 21, item 1): proof by a second factor presented now, the old key
//! working until the new one is confirmed, and nothing else changed.

use webauthn_authenticator_rs::prelude::WebauthnAuthenticator;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_rs_proto::{CreationChallengeResponse, RequestChallengeResponse};

use super::*;

/// A second browser with a full log-in (password, then a code).
async fn other_browser(app: &TestApp, email: &str, secret: &str) -> reqwest::Client {
    let c = new_client();
    let r = app.post_with(&c, "/api/authentication/log-in", json!({"email": email, "password": PASSWORD})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    app.clock.advance(30);
    let body = json!({"twoFactorAuthenticationCode": app.code_now(secret)});
    let r = app.post_with(&c, "/api/2fa/authenticate", body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    c
}

/// Whether a code from `secret` finishes a log-in of `email` now, on a
/// fresh client (the clock moves a step first, so each code is new).
async fn logs_in_with(app: &TestApp, email: &str, secret: &str) -> bool {
    let c = new_client();
    let r = app.post_with(&c, "/api/authentication/log-in", json!({"email": email, "password": PASSWORD})).await;
    assert_eq!(r.body["twoFactorRequired"], true, "{}", r.text);
    app.clock.advance(30);
    let r =
        app.post_with(&c, "/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": app.code_now(secret)})).await;
    match r.status {
        StatusCode::OK => true,
        _ => {
            assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
            false
        }
    }
}

fn kinds(body: &Value) -> Vec<String> {
    all_kinds(body)
}

#[tokio::test]
async fn a_new_phone_replaces_the_key_only_when_confirmed_and_changes_nothing_else() {
    let app = spawn_app().await;
    let email = "phone@example.com";
    let (old, codes) = app.enrolled_with_codes(email).await;
    let other = other_browser(&app, email, &old).await;
    let before = snapshot(&app).await;

    // No proof, or proof that is not a second factor: refused, nothing changed.
    let r = app.post("/api/2fa/generate", json!({})).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    assert!(r.body["fields"]["code"].as_str().is_some(), "{}", r.text);
    let r = app.post("/api/2fa/generate", json!({"password": PASSWORD})).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    app.clock.advance(30);
    let r = app.post("/api/2fa/generate", json!({"twoFactorAuthenticationCode": app.wrong_code(&old)})).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
    let r = app.post("/api/2fa/generate", json!({"recoveryCode": "aaaaa-bbbbb"})).await;
    assert_eq!(r.status.as_u16() / 100, 4, "{}", r.text);
    let body = json!({"twoFactorAuthenticationCode": app.code_now(&old), "recoveryCode": codes[0]});
    assert_error(&app.post("/api/2fa/generate", body).await, StatusCode::BAD_REQUEST, "bad_request");
    assert_eq!(snapshot(&app).await, before, "refused proofs change nothing");

    // A current code: a new pending key; the old one keeps working.
    let g = app.post("/api/2fa/generate", json!({"twoFactorAuthenticationCode": app.code_now(&old)})).await;
    assert_eq!(g.status, StatusCode::OK, "{}", g.text);
    let new = g.body["secret"].as_str().expect("secret").to_owned();
    assert_ne!(new, old);
    assert!(logs_in_with(&app, email, &old).await, "the old phone works before the new one is confirmed");
    assert!(!logs_in_with(&app, email, &new).await, "the new phone does not work before it is confirmed");

    // A wrong confirmation changes nothing.
    let pending = snapshot(&app).await;
    app.clock.advance(30);
    let r = app.post("/api/2fa/turn-on", json!({"twoFactorAuthenticationCode": app.wrong_code(&new)})).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
    assert_eq!(snapshot(&app).await, pending, "a wrong confirmation changes nothing");
    assert!(logs_in_with(&app, email, &old).await);

    // Confirmed: the new key replaces the old, and that is all.
    let recovery_rows =
        |rows: &[String]| rows.iter().filter(|r| r.matches(':').count() == 2).cloned().collect::<Vec<_>>();
    let codes_before = recovery_rows(&snapshot(&app).await);
    app.clock.advance(30);
    let r = app.post("/api/2fa/turn-on", json!({"twoFactorAuthenticationCode": app.code_now(&new)})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["replaced"], true, "{}", r.text);
    assert_eq!(r.body["recoveryCodes"].as_array().map(Vec::len), Some(0), "{}", r.text);
    assert_eq!(r.body["user"]["isTwoFactorAuthenticationEnabled"], true);
    assert!(set_cookie(&r, "access").is_none(), "the session goes on as it was");
    assert_eq!(recovery_rows(&snapshot(&app).await), codes_before, "the recovery codes are unchanged");
    // This browser and the other one are still logged in.
    assert_eq!(app.get("/api/authentication").await.status, StatusCode::OK);
    assert_eq!(app.get_with(&other, "/api/authentication").await.status, StatusCode::OK);
    // The code that confirmed the new key cannot log in; later ones can, the old phone's cannot.
    assert!(!logs_in_with(&app, email, &old).await, "the old phone stopped working");
    assert!(logs_in_with(&app, email, &new).await, "the new phone works");
    // A recovery code from before still logs in.
    let c = new_client();
    app.post_with(&c, "/api/authentication/log-in", json!({"email": email, "password": PASSWORD})).await;
    let r = app.post_with(&c, "/api/2fa/authenticate", json!({"recoveryCode": codes[1]})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Recorded among the changes, in plain words on the page.
    let a = app.get("/api/authentication/activity").await;
    let changes: Vec<String> = a.body["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(changes.contains(&"two_factor_key_replaced".to_owned()), "{}", a.text);
    assert_eq!(changes.iter().filter(|k| *k == "two_factor_on").count(), 1, "{}", a.text);
    assert!(!kinds(&a.body).contains(&"sessions_revoked".to_owned()));
}

#[tokio::test]
async fn a_recovery_code_proves_it_is_you_and_is_spent() {
    let app = spawn_app().await;
    let email = "lost@example.com";
    let (old, codes) = app.enrolled_with_codes(email).await;
    let g = app.post("/api/2fa/generate", json!({"recoveryCode": codes[0]})).await;
    assert_eq!(g.status, StatusCode::OK, "{}", g.text);
    let new = g.body["secret"].as_str().expect("secret").to_owned();
    // Spent: it proves nothing a second time.
    let again = app.post("/api/2fa/generate", json!({"recoveryCode": codes[0]})).await;
    assert_error(&again, StatusCode::UNAUTHORIZED, "invalid_code");
    // The second generate failed: the first pending key is still the one to confirm.
    app.clock.advance(30);
    let r = app.post("/api/2fa/turn-on", json!({"twoFactorAuthenticationCode": app.code_now(&new)})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["replaced"], true);
    assert!(!logs_in_with(&app, email, &old).await);
    let s = app.get("/api/2fa/status").await;
    assert_eq!(s.body["recoveryCodesLeft"], 9, "{}", s.text);
}

#[tokio::test]
async fn without_the_app_on_generate_still_asks_for_the_password_only() {
    let app = spawn_app().await;
    app.register("fresh@example.com").await;
    app.log_in("fresh@example.com", PASSWORD).await;
    app.clock.advance(6 * 60);
    let r = app.post("/api/2fa/generate", json!({})).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    assert!(r.body["fields"]["password"].as_str().is_some(), "{}", r.text);
    let r = app.post("/api/2fa/generate", json!({"password": PASSWORD})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn a_passkey_proves_it_is_you_for_a_new_phone() {
    let app = spawn_app().await;
    let email = "keyed@example.com";
    let (old, _codes) = app.enrolled_with_codes(email).await;
    // Add a passkey (the turn-on log-in is fresh, so no password needed).
    let mut soft = SoftPasskey::new(true);
    let origin = url::Url::parse(&app.state.gate.public_url).expect("origin");
    let start = app.post("/api/webauthn/register/start", json!({"name": "Phone"})).await;
    assert_eq!(start.status, StatusCode::OK, "{}", start.text);
    let options: CreationChallengeResponse = serde_json::from_value(start.body["options"].clone()).expect("options");
    let credential = serde_json::to_value(soft.do_registration(origin.clone(), options).expect("register")).unwrap();
    let r = app
        .post("/api/webauthn/register/finish", json!({"ceremony": start.body["ceremony"], "credential": credential}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let before = snapshot(&app).await;

    let proof = app.post("/api/webauthn/proof/start", json!({})).await;
    assert_eq!(proof.status, StatusCode::OK, "{}", proof.text);
    let options: RequestChallengeResponse = serde_json::from_value(proof.body["options"].clone()).expect("options");
    let answer = serde_json::to_value(soft.do_authentication(origin.clone(), options).expect("assert")).unwrap();
    let passkey = json!({"ceremony": proof.body["ceremony"], "credential": answer});
    // A code and a passkey together: refused, nothing changed.
    let both = json!({"passkey": passkey, "twoFactorAuthenticationCode": app.code_now(&old)});
    assert_error(&app.post("/api/2fa/generate", both).await, StatusCode::BAD_REQUEST, "bad_request");
    assert_eq!(snapshot(&app).await, before);
    let g = app.post("/api/2fa/generate", json!({"passkey": passkey})).await;
    assert_eq!(g.status, StatusCode::OK, "{}", g.text);
    // The ceremony is spent: the same answer proves nothing again.
    let again = app.post("/api/2fa/generate", json!({"passkey": passkey})).await;
    assert_error(&again, StatusCode::BAD_REQUEST, "bad_request");
    let new = g.body["secret"].as_str().expect("secret").to_owned();
    app.clock.advance(30);
    let r = app.post("/api/2fa/turn-on", json!({"twoFactorAuthenticationCode": app.code_now(&new)})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(logs_in_with(&app, email, &new).await);
}

#[tokio::test]
async fn without_javascript_the_security_page_moves_the_app_to_a_new_phone() {
    let app = spawn_app().await;
    let email = "nojs-phone@example.com";
    let old = app.enrolled_user(email).await;
    let b = super::forms::browser();
    app.form(&b, "/login", &[("intent", "password"), ("email", email), ("password", PASSWORD)]).await;
    app.clock.advance(30);
    let r = app.form(&b, "/login", &[("intent", "code"), ("code", &app.code_now(&old))]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let page = app.page(&b, "/security").await;
    assert!(page.text.contains("Set up on a new phone"), "the panel is offered");

    // Without proof: the page again, the error in the new phone's panel.
    let r = app.form(&b, "/security", &[("intent", "enrol"), ("code", "")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.text.contains("to set up a new phone"), "{}", r.text);
    // A current code: the wizard, with the new key's QR code.
    app.clock.advance(30);
    let r = app.form(&b, "/security", &[("intent", "enrol"), ("code", &app.code_now(&old))]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.text.contains("data-testid=\"new-phone-wizard\""), "{}", r.text);
    assert!(r.text.contains("Use the new phone"));
    // The new key, as a client would read it from the page's manual key.
    let key: String = {
        let at = r.text.find("data-testid=\"manual-key\"").expect("manual key on the page");
        let rest = &r.text[at..];
        let text = &rest[rest.find('>').expect("tag end") + 1..];
        text[..text.find('<').expect("text end")].split_whitespace().collect()
    };
    // A wrong code: the wizard again, same key, with the error.
    app.clock.advance(30);
    let r = app.form(&b, "/security", &[("intent", "confirm"), ("code", &app.wrong_code(&key))]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert!(r.text.contains("data-testid=\"new-phone-wizard\""), "{}", r.text);
    let r = app.form(&b, "/security", &[("intent", "confirm"), ("code", &app.code_now(&key))]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.text.contains("Your new phone is set up"), "{}", r.text);
    assert!(set_cookie(&r, "access").is_none(), "the log-in goes on");
    assert!(logs_in_with(&app, email, &key).await);
}
