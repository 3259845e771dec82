//! Passkeys over the HTTP API, with a software authenticator
//! (webauthn-authenticator-rs's `SoftPasskey`: real keys, real signatures).

use webauthn_authenticator_rs::prelude::WebauthnAuthenticator;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_rs_proto::{CreationChallengeResponse, RequestChallengeResponse};

use super::*;

/// A person's authenticator, answering for the portal's origin.
pub(super) struct Authenticator {
    soft: SoftPasskey,
    origin: url::Url,
}

impl Authenticator {
    pub(super) fn new(app: &TestApp) -> Self {
        Self::for_origin(&app.state.gate.public_url)
    }

    fn for_origin(origin: &str) -> Self {
        // `true`: it reports the person verified (a PIN or biometric).
        Self { soft: SoftPasskey::new(true), origin: url::Url::parse(origin).expect("origin") }
    }

    pub(super) fn register(&mut self, options: &Value) -> Value {
        let options: CreationChallengeResponse = serde_json::from_value(options.clone()).expect("creation options");
        serde_json::to_value(self.soft.do_registration(self.origin.clone(), options).expect("register")).unwrap()
    }

    pub(super) fn assert(&mut self, options: &Value) -> Value {
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

pub(super) async fn register_key(
    app: &TestApp,
    client: &reqwest::Client,
    key: &mut Authenticator,
    name: &str,
) -> Reply {
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
    // None of the refused renames changed anything.
    let listed = app.get("/api/webauthn/passkeys").await;
    assert_eq!(listed.body["passkeys"][0]["name"], "Work laptop");

    // New recovery codes without an app: the fresh log-in (or the
    // password) is the proof; the old codes stop working.
    let old = added.body["recoveryCodes"][0].as_str().unwrap().to_owned();
    let codes = app.post("/api/webauthn/recovery-codes", json!({})).await;
    assert_eq!(codes.status, StatusCode::OK, "{}", codes.text);
    assert_eq!(codes.body["recoveryCodes"].as_array().map(Vec::len), Some(10));
    let with_code = app.post("/api/webauthn/recovery-codes", json!({"twoFactorAuthenticationCode": "123456"})).await;
    assert_error(&with_code, StatusCode::BAD_REQUEST, "bad_request");
    app.clock.advance(app::server::factors::proof::FRESH_PROOF_SECONDS + 1);
    assert_eq!(app.post("/api/authentication/refresh", json!({})).await.status, StatusCode::OK);
    let stale = app.post("/api/webauthn/recovery-codes", json!({})).await;
    assert_error(&stale, StatusCode::BAD_REQUEST, "bad_request");
    let again = app.post("/api/webauthn/recovery-codes", json!({"password": PASSWORD})).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    app.password_stage("pk@example.com").await;
    let spent = app.post("/api/2fa/authenticate", json!({"recoveryCode": old})).await;
    assert_error(&spent, StatusCode::UNAUTHORIZED, "invalid_code");
    let fresh = again.body["recoveryCodes"][0].as_str().unwrap();
    let r = app.post("/api/2fa/authenticate", json!({"recoveryCode": fresh})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

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
    app.clock.advance(app::server::factors::passkeys::CEREMONY_SECONDS + 1);
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
    app.clock.advance(app::server::factors::proof::FRESH_PROOF_SECONDS + 1);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_list_and_remove_passkeys_and_a_reset_removes_them_all() {
    use super::operators::operator;
    let app = spawn_app().await;
    let (dir, url) = (app._dir.path().to_path_buf(), app.database_url.clone());
    let (_, added) = with_passkey(&app, "lost@example.com", "Stolen phone").await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    let id = added.body["passkey"]["id"].as_str().unwrap().to_owned();

    let (ok, out, err) = operator(&url, &dir, &["user", "passkeys", "lost@example.com"]);
    assert!(ok, "{err}");
    assert!(out.contains("passkeys of lost@example.com: 1") && out.contains(&id), "{out}");
    assert!(out.contains("\"Stolen phone\"") && out.contains("last used never"), "{out}");
    let (ok, _, err) = operator(&url, &dir, &["user", "passkeys", "lost@example.com", "remove", "nope"]);
    assert!(!ok && err.contains("no passkey with the id nope"), "{err}");
    let (ok, _, err) = operator(&url, &dir, &["user", "passkeys", "nobody@example.com"]);
    assert!(!ok && err.contains("no account"), "{err}");
    let (ok, out, err) = operator(&url, &dir, &["user", "passkeys", "lost@example.com", "remove", &id]);
    assert!(ok, "{err}");
    assert!(out.contains(&format!("removed passkey {id}")) && out.contains("passkeys of lost@example.com: 0"), "{out}");
    // It was the only factor: protection is off, every session ended.
    app.clock.advance(app::server::gate::cache::MAX_AGE_SECONDS);
    assert_error(&app.get("/api/authentication").await, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_eq!(app.log_in("lost@example.com", PASSWORD).await.body["twoFactorRequired"], false);

    // An operator's reset of 2FA removes passkeys along with the app.
    app.post("/api/authentication/log-out", json!({})).await;
    let (_, added) = with_passkey(&app, "reset-pk@example.com", "Key").await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    let (ok, _, err) = operator(&url, &dir, &["user", "reset-2fa", "reset-pk@example.com"]);
    assert!(ok, "{err}");
    let (_, out, _) = operator(&url, &dir, &["user", "passkeys", "reset-pk@example.com"]);
    assert!(out.contains("passkeys of reset-pk@example.com: 0"), "{out}");
    assert_eq!(app.log_in("reset-pk@example.com", PASSWORD).await.body["twoFactorRequired"], false);
}

#[tokio::test]
async fn the_pages_offer_the_passkey_and_manage_it_without_javascript() {
    use super::forms::{browser, location};
    let app = spawn_app().await;
    let (_, added) = with_passkey(&app, "page-pk@example.com", "Phone").await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    let id = added.body["passkey"]["id"].as_str().unwrap().to_owned();

    // The password step of an account with a passkey and no app: the code
    // step offers the passkey (and says what to do without JavaScript),
    // not an app's code.
    let b = browser();
    let r = app
        .form(&b, "/login", &[("intent", "password"), ("email", "page-pk@example.com"), ("password", PASSWORD)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let step = app.page(&b, "/login").await;
    assert!(
        step.text.contains("Use your passkey") && step.text.contains("data-passkey=\"second-factor\""),
        "{}",
        step.text
    );
    assert!(step.text.contains("Use one of your recovery codes instead"), "{}", step.text);
    assert!(!step.text.contains("name=\"code\""), "no app, no code field");
    let json = app.log_in("page-pk@example.com", PASSWORD).await;
    assert_eq!((json.body["twoFactorRequired"].clone(), json.body["passkey"].clone()), (json!(true), json!(true)));
    // The password step offers a sign-in with a passkey.
    let start = app.page(&browser(), "/login").await;
    assert!(start.text.contains("data-passkey=\"sign-in\""), "{}", start.text);

    // The security page lists it; renaming and removing are plain forms.
    let c = browser();
    let r = app
        .form(&c, "/login", &[("intent", "password"), ("email", "page-pk@example.com"), ("password", PASSWORD)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let code = added.body["recoveryCodes"][1].as_str().unwrap();
    let r = app.form(&c, "/login", &[("intent", "recovery"), ("recovery", code)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let page = app.page(&c, "/security").await;
    assert!(page.text.contains("Passkeys and security keys") && page.text.contains(">Phone<"), "{}", page.text);
    assert!(page.text.contains("On with a passkey"), "the app is off, 2FA is not: {}", page.text);
    assert!(page.text.contains("Add an authenticator app"), "{}", page.text);
    let r = app.form(&c, "/security", &[("intent", "rename-passkey"), ("passkey", &id), ("name", "")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "the page again, with the error");
    assert!(r.text.contains("Give the passkey a name"), "{}", r.text);
    let r = app.form(&c, "/security", &[("intent", "rename-passkey"), ("passkey", &id), ("name", "Old phone")]).await;
    assert_eq!((r.status, location(&r)), (StatusCode::SEE_OTHER, "/security"));
    assert!(app.page(&c, "/security").await.text.contains(">Old phone<"));
    // New recovery codes, shown once on the page.
    let r = app.form(&c, "/security", &[("intent", "passkey-codes"), ("password", "")]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.text.contains("Save your recovery codes") && r.text.matches("<li><code>").count() == 10, "{}", r.text);
    // The log-in was just now: removing needs no password.
    let r = app.form(&c, "/security", &[("intent", "remove-passkey"), ("passkey", &id), ("password", "")]).await;
    assert_eq!((r.status, location(&r)), (StatusCode::SEE_OTHER, "/security"), "{}", r.text);
    let page = app.page(&c, "/security").await;
    assert!(page.text.contains("You have no passkeys yet"), "{}", page.text);
}

#[tokio::test]
async fn a_ceremony_started_on_one_instance_finishes_on_another() {
    use super::instances::Instance;
    let dir = tempfile::tempdir().expect("dir");
    let url = database_for(dir.path()).await;
    // Every instance is the same relying party: one PUBLIC_URL.
    let origin = "http://localhost:3000";
    let env = [("PUBLIC_URL", origin), ("SIGNUP", "open")];
    let a = Instance::start_with(&url, dir.path(), &env).await;
    let b = Instance::start_with(&url, dir.path(), &env).await;
    let c = new_client();
    let post = |base: &Instance, path: &str, body: Value| {
        let req = c.post(base.url(path)).json(&body);
        async move {
            let r = req.send().await.expect("request");
            let status = r.status();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let reg = json!({"email": "two-rp@example.com", "name": "Two", "password": PASSWORD});
    assert_eq!(post(&a, "/api/authentication/register", reg).await.0, StatusCode::CREATED);
    let log_in = json!({"email": "two-rp@example.com", "password": PASSWORD});
    assert_eq!(post(&a, "/api/authentication/log-in", log_in.clone()).await.0, StatusCode::OK);
    let mut key = Authenticator::for_origin(origin);
    let (status, start) = post(&a, "/api/webauthn/register/start", json!({"name": "Shared"})).await;
    assert_eq!(status, StatusCode::OK, "{start}");
    let credential = key.register(&start["options"]);
    let (status, done) =
        post(&b, "/api/webauthn/register/finish", json!({"ceremony": start["ceremony"], "credential": credential}))
            .await;
    assert_eq!(status, StatusCode::CREATED, "finished on B: {done}");

    // The second factor: started on B, finished on A, and only once.
    let (_, stage) = post(&b, "/api/authentication/log-in", log_in).await;
    assert_eq!(stage["twoFactorRequired"], true);
    let (status, start) = post(&b, "/api/webauthn/authenticate/start", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{start}");
    let body = json!({"ceremony": start["ceremony"], "credential": key.assert(&start["options"])});
    let (status, user) = post(&a, "/api/webauthn/authenticate/finish", body.clone()).await;
    assert_eq!(status, StatusCode::OK, "finished on A: {user}");
    assert_eq!(c.get(b.url("/api/authentication")).send().await.expect("me").status(), StatusCode::OK);
    let (again, _) = post(&b, "/api/webauthn/authenticate/finish", body).await;
    assert!(again.is_client_error(), "{again}");
}

/// A discoverable passkey made here, because `SoftPasskey` keeps none: a
/// P-256 key, "none" attestation, user verified, and the user handle
/// returned in assertions, as a phone or a security key with a PIN does.
pub(super) struct Discoverable {
    key: p256::ecdsa::SigningKey,
    id: Vec<u8>,
    handle: Vec<u8>,
    counter: u32,
    origin: String,
}

/// Just enough CBOR for an attestation object.
enum Cbor {
    Int(i64),
    Bytes(Vec<u8>),
    Text(&'static str),
    Map(Vec<(Cbor, Cbor)>),
}

impl Cbor {
    fn encode(&self, out: &mut Vec<u8>) {
        fn head(out: &mut Vec<u8>, major: u8, n: u64) {
            match n {
                0..=23 => out.push(major << 5 | n as u8),
                24..=0xff => out.extend([major << 5 | 24, n as u8]),
                _ => {
                    out.push(major << 5 | 25);
                    out.extend((n as u16).to_be_bytes());
                }
            }
        }
        match self {
            Cbor::Int(n) if *n >= 0 => head(out, 0, *n as u64),
            Cbor::Int(n) => head(out, 1, (-1 - *n) as u64),
            Cbor::Bytes(b) => {
                head(out, 2, b.len() as u64);
                out.extend(b);
            }
            Cbor::Text(t) => {
                head(out, 3, t.len() as u64);
                out.extend(t.as_bytes());
            }
            Cbor::Map(entries) => {
                head(out, 5, entries.len() as u64);
                for (k, v) in entries {
                    k.encode(out);
                    v.encode(out);
                }
            }
        }
    }
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).expect("base64url")
}

impl Discoverable {
    fn new(origin: &str, seed: u8) -> Self {
        let key = p256::ecdsa::SigningKey::from_bytes(&[seed; 32].into()).expect("key");
        Self { key, id: vec![seed; 16], handle: vec![], counter: 0, origin: origin.to_owned() }
    }

    /// A key with an id of its own (a credential id is unique in the
    /// database): the `n`th made in this process.
    pub(super) fn numbered(origin: &str, n: u64) -> Self {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(format!("test passkey {n} of process {}", std::process::id()).as_bytes());
        let key = p256::ecdsa::SigningKey::from_bytes(&digest).expect("key");
        Self { key, id: digest[..16].to_vec(), handle: vec![], counter: 0, origin: origin.to_owned() }
    }

    fn rp_hash(&self) -> Vec<u8> {
        use sha2::Digest;
        let host = url::Url::parse(&self.origin).expect("origin").host_str().expect("host").to_owned();
        sha2::Sha256::digest(host.as_bytes()).to_vec()
    }

    fn client_data(&self, kind: &str, challenge: &str) -> Vec<u8> {
        json!({"type": kind, "challenge": challenge, "origin": self.origin, "crossOrigin": false})
            .to_string()
            .into_bytes()
    }

    /// Flags: user present (0x01) and verified (0x04), and `extra`.
    fn auth_data(&self, extra: u8) -> Vec<u8> {
        let mut data = self.rp_hash();
        data.push(0x01 | 0x04 | extra);
        data.extend(self.counter.to_be_bytes());
        data
    }

    pub(super) fn register(&mut self, options: &Value) -> Value {
        let public = &options["publicKey"];
        self.handle = unb64(public["user"]["id"].as_str().expect("user handle"));
        let point = self.key.verifying_key().to_encoded_point(false);
        let cose = Cbor::Map(vec![
            (Cbor::Int(1), Cbor::Int(2)),
            (Cbor::Int(3), Cbor::Int(-7)),
            (Cbor::Int(-1), Cbor::Int(1)),
            (Cbor::Int(-2), Cbor::Bytes(point.x().expect("x").to_vec())),
            (Cbor::Int(-3), Cbor::Bytes(point.y().expect("y").to_vec())),
        ]);
        // Attested credential data follows the flags (0x40).
        let mut auth_data = self.auth_data(0x40);
        auth_data.extend([0u8; 16]);
        auth_data.extend((self.id.len() as u16).to_be_bytes());
        auth_data.extend(&self.id);
        cose.encode(&mut auth_data);
        let mut attestation = Vec::new();
        Cbor::Map(vec![
            (Cbor::Text("fmt"), Cbor::Text("none")),
            (Cbor::Text("attStmt"), Cbor::Map(vec![])),
            (Cbor::Text("authData"), Cbor::Bytes(auth_data)),
        ])
        .encode(&mut attestation);
        let client_data = self.client_data("webauthn.create", public["challenge"].as_str().expect("challenge"));
        json!({
            "id": b64(&self.id), "rawId": b64(&self.id), "type": "public-key",
            "response": {"attestationObject": b64(&attestation), "clientDataJSON": b64(&client_data), "transports": ["internal"]},
            "clientExtensionResults": {}
        })
    }

    /// An assertion for a sign-in without a password (no credential named
    /// in the options: the authenticator finds its own).
    pub(super) fn assert(&mut self, options: &Value) -> Value {
        use p256::ecdsa::signature::Signer;
        use sha2::Digest;
        self.counter += 1;
        let client_data =
            self.client_data("webauthn.get", options["publicKey"]["challenge"].as_str().expect("challenge"));
        let auth_data = self.auth_data(0);
        let mut signed = auth_data.clone();
        signed.extend(sha2::Sha256::digest(&client_data));
        let signature: p256::ecdsa::Signature = self.key.sign(&signed);
        json!({
            "id": b64(&self.id), "rawId": b64(&self.id), "type": "public-key",
            "response": {
                "authenticatorData": b64(&auth_data), "clientDataJSON": b64(&client_data),
                "signature": b64(signature.to_der().as_bytes()), "userHandle": b64(&self.handle)
            },
            "clientExtensionResults": {}
        })
    }
}

#[tokio::test]
async fn a_discoverable_passkey_signs_in_without_a_password() {
    let app = spawn_app().await;
    assert_eq!(app.register("alone@example.com").await.status, StatusCode::CREATED);
    assert_eq!(app.log_in("alone@example.com", PASSWORD).await.status, StatusCode::OK);
    let mut key = Discoverable::new(&app.state.gate.public_url, 42);
    let start = app.post("/api/webauthn/register/start", json!({"name": "Phone"})).await;
    assert_eq!(start.status, StatusCode::OK, "{}", start.text);
    let credential = key.register(&start.body["options"]);
    let done = app
        .post("/api/webauthn/register/finish", json!({"ceremony": start.body["ceremony"], "credential": credential}))
        .await;
    assert_eq!(done.status, StatusCode::CREATED, "{}", done.text);
    app.post("/api/authentication/log-out", json!({})).await;

    let before = passkey_sign_ins_counted(&app).await;
    // Signed in by the passkey alone: a full session, the gate's two factors.
    let sign_in = |key: &mut Discoverable, start: &Reply| json!({"ceremony": start.body["ceremony"], "credential": key.assert(&start.body["options"])});
    let start = app.post("/api/webauthn/sign-in/start", json!({})).await;
    assert_eq!(start.status, StatusCode::OK, "{}", start.text);
    assert!(start.body["options"]["publicKey"]["allowCredentials"].as_array().is_none_or(Vec::is_empty));
    let body = sign_in(&mut key, &start);
    let signed_in = app.post("/api/webauthn/sign-in/finish", body.clone()).await;
    assert_eq!(signed_in.status, StatusCode::OK, "{}", signed_in.text);
    assert_eq!(signed_in.body["email"], "alone@example.com");
    assert_eq!(app.get("/api/authentication").await.status, StatusCode::OK);
    // The same answer again: its ceremony is spent.
    let again = app.post("/api/webauthn/sign-in/finish", body).await;
    assert_error(&again, StatusCode::BAD_REQUEST, "bad_request");

    // An unknown passkey: the same answer as a wrong password.
    app.post("/api/authentication/log-out", json!({})).await;
    let mut stranger = Discoverable::new(&app.state.gate.public_url, 7);
    stranger.handle = key.handle.clone();
    let start = app.post("/api/webauthn/sign-in/start", json!({})).await;
    let refused = app.post("/api/webauthn/sign-in/finish", sign_in(&mut stranger, &start)).await;
    assert_error(&refused, StatusCode::UNAUTHORIZED, "invalid_credentials");
    assert_error(&app.get("/api/authentication").await, StatusCode::UNAUTHORIZED, "unauthenticated");
    // A counter that did not move on (a copy of the key) is refused.
    key.counter -= 1;
    let start = app.post("/api/webauthn/sign-in/start", json!({})).await;
    let cloned = app.post("/api/webauthn/sign-in/finish", sign_in(&mut key, &start)).await;
    assert_error(&cloned, StatusCode::FORBIDDEN, "forbidden");
    // The real key, moving on, still works.
    key.counter += 1;
    let start = app.post("/api/webauthn/sign-in/start", json!({})).await;
    let fine = app.post("/api/webauthn/sign-in/finish", sign_in(&mut key, &start)).await;
    assert_eq!(fine.status, StatusCode::OK, "{}", fine.text);
    // Counted in the metrics as sign-ins by passkey, not as second factors
    // (two accepted; the stranger's and the copy's refused).
    let after = passkey_sign_ins_counted(&app).await;
    assert_eq!((after.0 - before.0, after.1 - before.1), (2.0, 2.0));
}

/// The metrics' passkey sign-ins so far: (accepted, refused).
async fn passkey_sign_ins_counted(app: &TestApp) -> (f64, f64) {
    let text = app::server::metrics::render(&app.state).await;
    let count = |outcome: &str| {
        let line = format!("twofactor_checks_total{{check=\"passkey_sign_in\",outcome=\"{outcome}\"}} ");
        text.lines().find_map(|l| l.strip_prefix(line.as_str())?.parse::<f64>().ok()).expect("the sample")
    };
    (count("ok"), count("refused"))
}

/// A passkey at the code step remembers the browser when the box is
/// ticked (passkeys.js sends `remember`), as a code does; unticked, or
/// said another way than true or false, nothing is remembered.
#[tokio::test]
async fn the_passkey_step_remembers_the_browser_when_asked() {
    let app = spawn_app().await;
    let (mut key, _) = with_passkey(&app, "rk@example.com", "Laptop").await;
    app.password_stage("rk@example.com").await;
    let (ceremony, options) = second_factor_options(&app).await;
    let odd = json!({"ceremony": ceremony, "credential": key.assert(&options), "remember": "yes"});
    assert_error(&app.post("/api/webauthn/authenticate/finish", odd).await, StatusCode::BAD_REQUEST, "bad_request");
    let (ceremony, options) = second_factor_options(&app).await;
    let body = json!({"ceremony": ceremony, "credential": key.assert(&options), "remember": false});
    let done = app.post("/api/webauthn/authenticate/finish", body).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    assert!(set_cookie(&done, "remember").is_none(), "not asked: not remembered");
    app.password_stage("rk@example.com").await;

    let (ceremony, options) = second_factor_options(&app).await;
    let body = json!({"ceremony": ceremony, "credential": key.assert(&options), "remember": true});
    let done = app.post("/api/webauthn/authenticate/finish", body).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    assert!(set_cookie(&done, "remember").is_some(), "{:?}", done.headers);
    app.post("/api/authentication/log-out", json!({})).await;
    let r = app.log_in("rk@example.com", PASSWORD).await;
    assert_eq!((r.body["twoFactorRequired"].clone(), r.body["remembered"].clone()), (json!(false), json!(true)));
    let listed = app.get("/api/2fa/remembered-browsers").await;
    assert_eq!(listed.body.as_array().map(Vec::len), Some(1), "{}", listed.text);
}

/// A passkey shown again (the step-up an access rule with `fresh` asks for)
/// is written into the live log-in, once: its ceremony is spent, and the
/// same answer again is refused with nothing written.
#[tokio::test]
async fn a_passkey_shown_again_is_written_into_the_log_in_once() {
    let app = spawn_app().await;
    let (mut key, added) = with_passkey(&app, "up@example.com", "Laptop").await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    app.clock.advance(60);
    let proof = app.post("/api/webauthn/proof/start", json!({})).await;
    assert_eq!(proof.status, StatusCode::OK, "{}", proof.text);
    let passkey = json!({"ceremony": proof.body["ceremony"], "credential": key.assert(&proof.body["options"])});
    let r = app.post("/api/2fa/step-up", json!({"passkey": passkey})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let count = |body: &Value| all_kinds(body).iter().filter(|k| *k == "second_factor_shown").count();
    assert_eq!(count(&app.get("/api/authentication/activity").await.body), 1);
    let again = app.post("/api/2fa/step-up", json!({"passkey": passkey})).await;
    assert_error(&again, StatusCode::BAD_REQUEST, "bad_request");
    assert_eq!(count(&app.get("/api/authentication/activity").await.body), 1, "nothing written by the replay");
}
