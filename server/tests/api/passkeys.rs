//! Passkeys over the HTTP API, with a software authenticator
//! (webauthn-authenticator-rs's `SoftPasskey`: real keys, real signatures).

use webauthn_authenticator_rs::prelude::WebauthnAuthenticator;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_rs_proto::{CreationChallengeResponse, RequestChallengeResponse};

use super::*;

/// A person's authenticator, answering for the portal's origin.
struct Authenticator {
    soft: SoftPasskey,
    origin: url::Url,
}

impl Authenticator {
    fn new(app: &TestApp) -> Self {
        // `true`: it reports the person verified (a PIN or biometric).
        Self { soft: SoftPasskey::new(true), origin: url::Url::parse(&app.state.gate.public_url).expect("origin") }
    }

    fn register(&mut self, options: &Value) -> Value {
        let options: CreationChallengeResponse = serde_json::from_value(options.clone()).expect("creation options");
        serde_json::to_value(self.soft.do_registration(self.origin.clone(), options).expect("register")).unwrap()
    }

    fn assert(&mut self, options: &Value) -> Value {
        let options: RequestChallengeResponse = serde_json::from_value(options.clone()).expect("request options");
        serde_json::to_value(self.soft.do_authentication(self.origin.clone(), options).expect("assert")).unwrap()
    }
}

/// Signs up and logs in `email` (2FA off, a fresh log-in), then registers
/// a passkey named `name`. Returns the authenticator and the answer.
async fn with_passkey(app: &TestApp, email: &str, name: &str) -> (Authenticator, Reply) {
    assert_eq!(app.register(email).await.status, StatusCode::CREATED);
    assert_eq!(app.log_in(email, PASSWORD).await.status, StatusCode::OK);
    let mut key = Authenticator::new(app);
    let reply = register_key(app, &app.client, &mut key, name).await;
    (key, reply)
}

async fn register_key(app: &TestApp, client: &reqwest::Client, key: &mut Authenticator, name: &str) -> Reply {
    let start = app.post_with(client, "/api/webauthn/register/start", json!({"name": name})).await;
    assert_eq!(start.status, StatusCode::OK, "{}", start.text);
    let credential = key.register(&start.body["options"]);
    app.post_with(
        client,
        "/api/webauthn/register/finish",
        json!({"ceremony": start.body["ceremony"], "credential": credential}),
    )
    .await
}

/// The second-factor ceremony for the client's password-stage session:
/// (ceremony, options).
async fn second_factor_options(app: &TestApp) -> (Value, Value) {
    let start = app.post("/api/webauthn/authenticate/start", json!({})).await;
    assert_eq!(start.status, StatusCode::OK, "{}", start.text);
    (start.body["ceremony"].clone(), start.body["options"].clone())
}

#[tokio::test]
async fn a_passkey_turns_2fa_on_and_is_the_second_factor() {
    let app = spawn_app().await;
    let (mut key, added) = with_passkey(&app, "pk@example.com", "  Laptop  ").await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    assert_eq!(added.body["passkey"]["name"], "Laptop");
    // The first factor of the account: recovery codes, as the app gives.
    assert_eq!(added.body["recoveryCodes"].as_array().map(Vec::len), Some(10));
    let listed = app.get("/api/webauthn/passkeys").await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    assert_eq!(listed.body["passkeys"][0]["name"], "Laptop");
    assert_eq!(listed.body["passkeys"][0]["lastUsedAt"], Value::Null);
    let status = app.get("/api/2fa/status").await;
    assert_eq!((status.body["enabled"].clone(), status.body["passkeys"].clone()), (json!(false), json!(1)));
    assert_eq!(status.body["recoveryCodesLeft"], 10);

    // From now on the password alone is not enough.
    app.password_stage("pk@example.com").await;
    assert_error(&app.get("/api/authentication").await, StatusCode::UNAUTHORIZED, "unauthenticated");
    let (ceremony, options) = second_factor_options(&app).await;
    assert!(options["publicKey"]["allowCredentials"].as_array().is_some_and(|c| c.len() == 1));
    let assertion = key.assert(&options);
    let done =
        app.post("/api/webauthn/authenticate/finish", json!({"ceremony": ceremony, "credential": assertion})).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    assert_eq!(app.get("/api/authentication").await.status, StatusCode::OK);
    let listed = app.get("/api/webauthn/passkeys").await;
    assert_eq!(listed.body["passkeys"][0]["lastUsedAt"], json!(app.clock_now()));

    // A second key on the same authenticator is refused (already there);
    // renaming keeps the rules of a name.
    let id = listed.body["passkeys"][0]["id"].as_str().unwrap().to_owned();
    let renamed = app.post(&format!("/api/webauthn/passkeys/{id}/rename"), json!({"name": "Work laptop"})).await;
    assert_eq!((renamed.status, renamed.body["name"].clone()), (StatusCode::OK, json!("Work laptop")));
    let bad = app.post(&format!("/api/webauthn/passkeys/{id}/rename"), json!({"name": " "})).await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "bad_request");
    assert!(bad.body["fields"]["name"].is_string(), "{}", bad.text);
    let long = app.post(&format!("/api/webauthn/passkeys/{id}/rename"), json!({"name": "x".repeat(65)})).await;
    assert_error(&long, StatusCode::BAD_REQUEST, "bad_request");
    let nobody = app.post("/api/webauthn/passkeys/nope/rename", json!({"name": "Other"})).await;
    assert_eq!(nobody.status, StatusCode::NOT_FOUND);

    let kinds = all_kinds(&app.get("/api/authentication/activity").await.body);
    for kind in ["passkey_added", "two_factor_on", "passkey_used"] {
        assert!(kinds.contains(&kind.to_owned()), "{kind} in {kinds:?}");
    }
}

#[tokio::test]
async fn a_ceremony_is_finished_once_and_not_after_it_expires() {
    let app = spawn_app().await;
    let (mut key, added) = with_passkey(&app, "once@example.com", "Key").await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    app.password_stage("once@example.com").await;
    let (ceremony, options) = second_factor_options(&app).await;
    let assertion = key.assert(&options);
    let body = json!({"ceremony": ceremony, "credential": assertion});
    // Two finishes of one ceremony at once: one wins.
    let (a, b) = tokio::join!(
        app.post("/api/webauthn/authenticate/finish", body.clone()),
        app.post("/api/webauthn/authenticate/finish", body.clone())
    );
    let mut statuses = [a.status.as_u16(), b.status.as_u16()];
    statuses.sort();
    assert_eq!(statuses[0], 200, "{} / {}", a.text, b.text);
    assert!(statuses[1] == 400 || statuses[1] == 401, "{} / {}", a.text, b.text);

    // The same assertion on a new ceremony: its challenge is another one.
    app.password_stage("once@example.com").await;
    let (ceremony, _) = second_factor_options(&app).await;
    let replay =
        app.post("/api/webauthn/authenticate/finish", json!({"ceremony": ceremony, "credential": assertion})).await;
    assert_error(&replay, StatusCode::UNAUTHORIZED, "invalid_code");

    // A used ceremony stays used.
    let (_, options) = second_factor_options(&app).await;
    let finish = app
        .post("/api/webauthn/authenticate/finish", json!({"ceremony": ceremony, "credential": key.assert(&options)}))
        .await;
    assert_error(&finish, StatusCode::BAD_REQUEST, "bad_request");

    // A ceremony older than 5 minutes is refused, even with a valid answer.
    let (ceremony, options) = second_factor_options(&app).await;
    let done = app
        .post("/api/webauthn/authenticate/finish", json!({"ceremony": ceremony, "credential": key.assert(&options)}))
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    let start = app.post("/api/webauthn/register/start", json!({"name": "Late key"})).await;
    assert_eq!(start.status, StatusCode::OK, "{}", start.text);
    let mut other = Authenticator::new(&app);
    let credential = other.register(&start.body["options"]);
    app.clock.advance(app::server::passkeys::CEREMONY_SECONDS + 1);
    let late = app
        .post("/api/webauthn/register/finish", json!({"ceremony": start.body["ceremony"], "credential": credential}))
        .await;
    assert_error(&late, StatusCode::BAD_REQUEST, "bad_request");
    assert_eq!(app.get("/api/webauthn/passkeys").await.body["passkeys"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn another_persons_passkey_and_a_cloned_key_are_refused() {
    let app = spawn_app().await;
    let (mut ann_key, ann) = with_passkey(&app, "ann-pk@example.com", "Ann's key").await;
    let ann_codes = ann.body["recoveryCodes"].as_array().cloned().expect("codes");
    app.post("/api/authentication/log-out", json!({})).await;
    let (_, added) = with_passkey(&app, "bob-pk@example.com", "Bob's key").await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);

    // Bob's password step, answered by Ann's authenticator for Ann's own
    // ceremony options: not Bob's credential, and not Bob's challenge.
    app.password_stage("ann-pk@example.com").await;
    let (_, ann_options) = second_factor_options(&app).await;
    let anns = ann_key.assert(&ann_options);
    app.password_stage("bob-pk@example.com").await;
    let (bob_ceremony, _) = second_factor_options(&app).await;
    let refused =
        app.post("/api/webauthn/authenticate/finish", json!({"ceremony": bob_ceremony, "credential": anns})).await;
    assert_error(&refused, StatusCode::UNAUTHORIZED, "invalid_code");
    assert_error(&app.get("/api/authentication").await, StatusCode::UNAUTHORIZED, "unauthenticated");

    // A counter that goes backwards: the stored one is moved ahead, as if
    // a copy of the key had been used meanwhile.
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&app.database_url).await.expect("db");
    let ann_id = "(SELECT id FROM users WHERE email = 'ann-pk@example.com')";
    let (stored,): (String,) =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT credential FROM passkeys WHERE user_id = {ann_id}")))
            .fetch_one(&mut conn)
            .await
            .expect("Ann's passkey");
    let mut stored: Value = serde_json::from_str(&stored).expect("json");
    assert!(stored["cred"]["counter"].as_u64().is_some_and(|c| c < 1000), "{stored}");
    stored["cred"]["counter"] = json!(1000);
    sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE passkeys SET credential = $1 WHERE user_id = {ann_id}")))
        .bind(stored.to_string())
        .execute(&mut conn)
        .await
        .expect("update");
    app.password_stage("ann-pk@example.com").await;
    let (ceremony, options) = second_factor_options(&app).await;
    let cloned = app
        .post(
            "/api/webauthn/authenticate/finish",
            json!({"ceremony": ceremony, "credential": ann_key.assert(&options)}),
        )
        .await;
    assert_error(&cloned, StatusCode::FORBIDDEN, "forbidden");
    assert!(cloned.body["message"].as_str().unwrap_or("").contains("copied key"), "{}", cloned.text);
    // Ann, with her recovery code, sees the refusal in her activity.
    app.password_stage("ann-pk@example.com").await;
    let code = ann_codes[0].as_str().unwrap();
    let r = app.post("/api/2fa/authenticate", json!({"recoveryCode": code})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let kinds = all_kinds(&app.get("/api/authentication/activity").await.body);
    assert!(kinds.contains(&"passkey_refused".to_owned()), "{kinds:?}");
}

#[tokio::test]
async fn removing_a_passkey_needs_proof_and_the_last_one_turns_2fa_off() {
    let app = spawn_app().await;
    let (_, added) = with_passkey(&app, "rm@example.com", "Only key").await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    let id = added.body["passkey"]["id"].as_str().unwrap().to_owned();
    let path = format!("/api/webauthn/passkeys/{id}/remove");
    // The log-in is no longer fresh: proof is needed.
    app.clock.advance(app::server::service::FRESH_PROOF_SECONDS + 1);
    let r = app.post("/api/authentication/refresh", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let bare = app.post(&path, json!({})).await;
    assert_error(&bare, StatusCode::BAD_REQUEST, "bad_request");
    assert!(bare.body["fields"]["password"].is_string(), "{}", bare.text);
    let wrong = app.post(&path, json!({"password": "not the password at all"})).await;
    assert_error(&wrong, StatusCode::UNAUTHORIZED, "invalid_credentials");
    assert_eq!(app.get("/api/webauthn/passkeys").await.body["passkeys"].as_array().map(Vec::len), Some(1));
    // Registering another one needs the same proof.
    let start = app.post("/api/webauthn/register/start", json!({"name": "Second"})).await;
    assert_error(&start, StatusCode::BAD_REQUEST, "bad_request");

    let removed = app.post(&path, json!({"password": PASSWORD})).await;
    assert_eq!(removed.status, StatusCode::OK, "{}", removed.text);
    assert_eq!((removed.body["passkeysLeft"].clone(), removed.body["twoFactorOn"].clone()), (json!(0), json!(false)));
    assert_eq!(app.get("/api/authentication").await.status, StatusCode::OK, "this client keeps a new session");
    let again = app.post(&path, json!({"password": PASSWORD})).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    // The password alone logs in again, and the recovery codes are gone.
    app.post("/api/authentication/log-out", json!({})).await;
    assert_eq!(app.log_in("rm@example.com", PASSWORD).await.body["twoFactorRequired"], false);
    assert_eq!(app.get("/api/2fa/status").await.body["recoveryCodesLeft"], 0);
    let kinds = activity_kinds(&app, "rm@example.com").await;
    assert!(kinds.contains(&"passkey_removed".to_owned()) && kinds.contains(&"two_factor_off".to_owned()));
}

#[tokio::test]
async fn passkeys_need_a_session_and_well_formed_requests() {
    let app = spawn_app().await;
    for path in ["/api/webauthn/register/start", "/api/webauthn/authenticate/start"] {
        assert_error(&app.post(path, json!({"name": "x"})).await, StatusCode::UNAUTHORIZED, "unauthenticated");
    }
    assert_error(&app.get("/api/webauthn/passkeys").await, StatusCode::UNAUTHORIZED, "unauthenticated");
    // A passwordless sign-in may start without a session; finishing with
    // nonsense is the generic refusal, and changes nothing.
    let start = app.post("/api/webauthn/sign-in/start", json!({})).await;
    assert_eq!(start.status, StatusCode::OK, "{}", start.text);
    assert_eq!(start.body["options"]["publicKey"]["userVerification"], "required");
    let junk = app
        .post("/api/webauthn/sign-in/finish", json!({"ceremony": start.body["ceremony"], "credential": {"id": "x"}}))
        .await;
    assert_error(&junk, StatusCode::UNAUTHORIZED, "invalid_credentials");
    let unknown = app.post("/api/webauthn/sign-in/finish", json!({"ceremony": "nope", "credential": {}})).await;
    assert_error(&unknown, StatusCode::BAD_REQUEST, "bad_request");
    assert_eq!(app.register("shape@example.com").await.status, StatusCode::CREATED);
    assert_eq!(app.log_in("shape@example.com", PASSWORD).await.status, StatusCode::OK);
    let extra = app.post("/api/webauthn/register/start", json!({"name": "k", "surprise": 1})).await;
    assert_error(&extra, StatusCode::BAD_REQUEST, "bad_request");
    let nameless = app.post("/api/webauthn/register/start", json!({"name": ""})).await;
    assert_error(&nameless, StatusCode::BAD_REQUEST, "bad_request");
    // A password-stage session cannot manage passkeys.
    let codes_user = "stage-pk@example.com";
    app.post("/api/authentication/log-out", json!({})).await;
    app.enrolled_user(codes_user).await;
    app.password_stage(codes_user).await;
    assert_error(
        &app.post("/api/webauthn/register/start", json!({"name": "k"})).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    // An account with only an app has no passkey to ask for.
    let none = app.post("/api/webauthn/authenticate/start", json!({})).await;
    assert_error(&none, StatusCode::CONFLICT, "conflict");
}
