//! The OpenID apps on the admin page: added with a secret shown once and
//! then used by a real relying party, changed (a narrower policy ends the
//! app's sign-ins), given a new secret while the old one still works until
//! retired, removed with its name typed; every refusal changes no row, and
//! every change is in the trail with the administrator and the app.

use app::server::oidc::clients;

use super::admin::administrator;
use super::oidc::{REDIRECT, authorize, oidc_app, relying_party, sign_in, token_form, userinfo};
use super::*;

async fn apps(app: &TestApp, body: Value) -> Reply {
    app.post("/api/admin/app", body).await
}

/// A token request with a code that was never issued: `invalid_grant`
/// when the client authenticated, `invalid_client` when it did not.
async fn client_auth(app: &TestApp, id: &str, secret: &str) -> String {
    let created = clients::Created { id: id.into(), secret: Some(secret.into()) };
    let form = [("grant_type", "authorization_code"), ("code", "never-issued"), ("redirect_uri", REDIRECT)];
    let r = token_form(app, &created, &form).await;
    r.body["error"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn an_app_is_added_changed_rekeyed_and_removed_from_the_admin_page() {
    let app = oidc_app().await;
    let boss_secret = administrator(&app).await;
    app.state.mail.stop_and_wait().await;

    // Refused, each with the field it is about, and no row changes.
    let before = super::atomic::every_row(&app, &[]).await;
    let good = json!({"name": "Grafana", "redirectUris": [REDIRECT]});
    for (body, status, field) in [
        (json!({"action": "create", "app": {"redirectUris": [REDIRECT]}}), StatusCode::BAD_REQUEST, "name"),
        (json!({"action": "create", "app": {"name": "X"}}), StatusCode::BAD_REQUEST, "redirectUris"),
        (
            json!({"action": "create", "app": {"name": "X", "redirectUris": ["javascript://x"]}}),
            StatusCode::BAD_REQUEST,
            "redirectUris",
        ),
        (
            json!({"action": "create", "app": {"name": "X", "redirectUris": [REDIRECT], "postLogoutRedirectUris": ["/rel"]}}),
            StatusCode::BAD_REQUEST,
            "postLogoutRedirectUris",
        ),
        (
            json!({"action": "create", "app": {"name": "X", "redirectUris": [REDIRECT], "groups": ["a b"]}}),
            StatusCode::BAD_REQUEST,
            "groups",
        ),
        (
            json!({"action": "create", "app": {"name": "X", "redirectUris": [REDIRECT], "fresh": "soon"}}),
            StatusCode::BAD_REQUEST,
            "fresh",
        ),
        (
            json!({"action": "create", "app": {"name": "X", "redirectUris": [REDIRECT], "fresh": "367d"}}),
            StatusCode::BAD_REQUEST,
            "fresh",
        ),
        (
            json!({"action": "create", "app": {"name": "X", "redirectUris": [REDIRECT], "fresh": "30s"}}),
            StatusCode::BAD_REQUEST,
            "fresh",
        ),
        (
            json!({"action": "create", "app": {"name": "X", "redirectUris": [REDIRECT], "twoFactor": false, "remembered": false}}),
            StatusCode::BAD_REQUEST,
            "twoFactor",
        ),
        (
            json!({"action": "create", "app": {"name": "X", "redirectUris": [REDIRECT], "twoFactor": false, "fresh": "15m"}}),
            StatusCode::BAD_REQUEST,
            "twoFactor",
        ),
        (
            json!({"action": "create", "app": {"name": "X", "redirectUris": [REDIRECT], "oneFactorNetworks": ["home"]}}),
            StatusCode::BAD_REQUEST,
            "oneFactorNetworks",
        ),
        (
            json!({"action": "create", "app": {"name": "X", "redirectUris": [REDIRECT], "oneFactorNetworks": "10.0.0.0/8"}}),
            StatusCode::BAD_REQUEST,
            "",
        ),
        (
            json!({"action": "create", "app": {"name": "X", "redirectUris": [REDIRECT], "twoFactor": false, "oneFactorNetworks": ["10.0.0.0/8"]}}),
            StatusCode::BAD_REQUEST,
            "twoFactor",
        ),
        (json!({"action": "launch", "app": good}), StatusCode::BAD_REQUEST, ""),
        (json!({"action": "change", "id": "nope", "app": good}), StatusCode::NOT_FOUND, ""),
        (json!({"action": "rotate-secret", "id": "nope"}), StatusCode::NOT_FOUND, ""),
        (json!({"action": "remove", "id": "nope", "confirm": "nope"}), StatusCode::NOT_FOUND, ""),
    ] {
        let r = apps(&app, body.clone()).await;
        assert_eq!(r.status, status, "{body}: {}", r.text);
        if !field.is_empty() {
            assert!(r.body["fields"][field].is_string(), "{body}: {}", r.text);
        }
    }
    assert_eq!(super::atomic::every_row(&app, &[]).await, before, "a refused change wrote something");

    // Added: the secret is in the answer once, and a real relying party
    // signs in with it.
    let r = apps(
        &app,
        json!({"action": "create", "app": {"name": "Grafana", "redirectUris": [REDIRECT], "consent": false}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let secret = r.body["secret"].as_str().expect("the secret, once").to_owned();
    let listed = app.get("/api/admin/apps").await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    assert!(!listed.text.contains(&secret), "the list never shows a secret");
    let line = &listed.body["apps"][0];
    let id = line["id"].as_str().unwrap().to_owned();
    assert!(r.body["message"].as_str().unwrap().contains(&id), "{}", r.text);
    assert_eq!(line["settings"]["redirectUris"], json!([REDIRECT]));
    assert_eq!(line["settings"]["twoFactor"], true, "two factors by default");
    assert_eq!(line["settings"]["consent"], false);
    assert_eq!((&line["settings"]["remembered"], &line["settings"]["fresh"]), (&json!(true), &json!("")));
    assert_eq!(line["settings"]["oneFactorNetworks"], json!([]));
    assert_eq!(listed.body["discovery"], format!("{}/.well-known/openid-configuration", app.base));
    let created = clients::Created { id: id.clone(), secret: Some(secret.clone()) };
    let rp = relying_party(&app, &created).await;
    let signed = sign_in(&app, &rp, &[]).await;
    assert_eq!(userinfo(&app, signed.access.secret()).await.status, StatusCode::OK);

    // A new redirect URI: the old one is refused at once; a change that
    // does not narrow who may use the app keeps its sign-ins.
    let other = "https://app.example.test/other";
    let r = apps(
        &app,
        json!({"action": "change", "id": id, "app": {"name": "Grafana", "redirectUris": [other], "consent": false}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let params =
        [("client_id", id.as_str()), ("redirect_uri", REDIRECT), ("response_type", "code"), ("scope", "openid")];
    assert_eq!(authorize(&app, &params).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(userinfo(&app, signed.access.secret()).await.status, StatusCode::OK);
    // Only for a group the administrator is not in: their sign-in ends and
    // a new one is refused.
    let narrowed = json!({"name": "Grafana", "redirectUris": [REDIRECT], "groups": ["staff"], "consent": false});
    let r = apps(&app, json!({"action": "change", "id": id, "app": narrowed})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.body["message"].as_str().unwrap().contains("1 sign-in ended"), "{}", r.text);
    assert_eq!(userinfo(&app, signed.access.secret()).await.status, StatusCode::UNAUTHORIZED);
    let refused = authorize(&app, &params).await;
    let back = refused.headers.get("location").map(|l| l.to_str().unwrap().to_owned()).unwrap_or_default();
    assert!(back.contains("error=access_denied"), "{}: {}", refused.status, refused.text);
    // Which second factor will do: read back as set, and in the facts.
    let strict = json!({"name": "Grafana", "redirectUris": [REDIRECT], "remembered": false, "fresh": "90m"});
    let r = apps(&app, json!({"action": "change", "id": id, "app": strict})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let line = &app.get("/api/admin/apps").await.body["apps"][0];
    assert_eq!((&line["settings"]["remembered"], &line["settings"]["fresh"]), (&json!(false), &json!("90m")));
    assert!(line["facts"].as_array().unwrap().contains(&json!("A second factor shown within 90 minutes")), "{line}");
    let r = apps(&app, json!({"action": "change", "id": id, "app": good})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // A new secret: both work until the previous one is retired.
    let r = apps(&app, json!({"action": "rotate-secret", "id": id})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let new_secret = r.body["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    assert_eq!(client_auth(&app, &id, &secret).await, "invalid_grant");
    assert_eq!(client_auth(&app, &id, &new_secret).await, "invalid_grant");
    assert_eq!(app.get("/api/admin/apps").await.body["apps"][0]["oldSecret"], true);
    let r = apps(&app, json!({"action": "remove-old-secret", "id": id})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(client_auth(&app, &id, &secret).await, "invalid_client");
    assert_eq!(client_auth(&app, &id, &new_secret).await, "invalid_grant");
    assert_eq!(apps(&app, json!({"action": "remove-old-secret", "id": id})).await.status, StatusCode::NOT_FOUND);

    // A public app: no secret to show or replace.
    let r =
        apps(&app, json!({"action": "create", "app": {"name": "Phone", "redirectUris": [REDIRECT], "public": true}}))
            .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.body.get("secret").is_none(), "{}", r.text);
    let listed = app.get("/api/admin/apps").await.body["apps"].clone();
    let phone = listed.as_array().unwrap().iter().find(|a| a["settings"]["name"] == "Phone").unwrap().clone();
    assert_eq!(phone["settings"]["pkceRequired"], true, "{phone}");
    let phone_id = phone["id"].as_str().unwrap();
    assert_eq!(apps(&app, json!({"action": "rotate-secret", "id": phone_id})).await.status, StatusCode::BAD_REQUEST);

    // Five minutes on, each change asks for proof first.
    app.clock.advance(301);
    assert_eq!(app.post("/api/authentication/refresh", json!({})).await.status, StatusCode::OK);
    // (A wrong code is counted against the administrator and audited:
    // those rows may change.)
    let skip = ["audit_events", "throttle", "users"];
    let before = super::atomic::every_row(&app, &skip).await;
    let r = apps(&app, json!({"action": "remove", "id": id, "confirm": "Grafana"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let wrong = app.wrong_code(&boss_secret);
    let r = apps(&app, json!({"action": "remove", "id": id, "confirm": "Grafana", "code": wrong})).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    // The name must be typed as it is.
    let code = app.code_now(&boss_secret);
    let r = apps(&app, json!({"action": "remove", "id": id, "confirm": "grafana", "code": code})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.body["fields"]["confirm"].is_string(), "{}", r.text);
    assert_eq!(super::atomic::every_row(&app, &skip).await, before, "refused removals wrote something");
    let r = apps(&app, json!({"action": "remove", "id": id, "confirm": "Grafana", "code": code})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(client_auth(&app, &id, &new_secret).await, "invalid_client");
    assert_eq!(app.get("/api/admin/apps").await.body["apps"].as_array().unwrap().len(), 1);

    // Each change is in the trail, naming the administrator and the app.
    let trail = app.get("/api/admin/activity").await;
    let events: Vec<(String, String)> = trail.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["label"].as_str().unwrap().starts_with("App "))
        .map(|e| (e["label"].as_str().unwrap().to_owned(), e["by"].as_str().unwrap_or_default().to_owned()))
        .collect();
    let about = format!("Grafana (client id {id})");
    let expected: Vec<(String, String)> = [
        format!("App removed: {about}"),
        format!("App added: Phone (client id {phone_id})"),
        format!("App secret changed: {about}: the previous secret retired"),
        format!("App secret changed: {about}: a new secret; the previous one still works"),
        format!("App changed: {about}"),
        format!("App changed: {about}"),
        format!("App changed: {about}"),
        format!("App changed: {about}"),
        format!("App added: {about}"),
    ]
    .into_iter()
    .map(|label| (label, "boss@example.com".to_owned()))
    .collect();
    assert_eq!(events, expected);
    assert!(trail.body["events"][0]["aboutNoAccount"].as_bool().unwrap(), "{}", trail.text);
}

#[tokio::test]
async fn the_operators_commands_for_apps_are_in_the_trail_too() {
    let app = oidc_app().await;
    administrator(&app).await;
    let new = clients::NewClient { name: "Wiki".into(), redirect_uris: vec![REDIRECT.into()], ..Default::default() };
    let made = clients::add(&app.state, &Default::default(), None, &new).await.expect("added");
    assert!(clients::remove(&app.state, &Default::default(), None, &made.id).await.unwrap().is_some());
    let trail = app.get("/api/admin/activity?kind=app_added").await;
    assert_eq!(trail.body["events"][0]["label"], format!("App added: Wiki (client id {})", made.id));
    assert!(trail.body["events"][0]["by"].is_null(), "the operator's command names no administrator");
    // A name too long, from the command line as from the page.
    let long = clients::NewClient { name: "x".repeat(101), ..new };
    assert_eq!(clients::add(&app.state, &Default::default(), None, &long).await.unwrap_err().fields.len(), 1);
}

/// An administrator narrowing an app while someone signs in to it: the
/// sign-in either sees the new settings (and is refused) or its grant is
/// among those the change ends; no grant made under the old settings
/// outlives the change. The two race each round.
#[tokio::test]
async fn a_sign_in_racing_a_change_that_shuts_the_person_out_keeps_nothing() {
    use super::oidc::{answer_of, browser};
    let app = oidc_app().await;
    let postgres = app.database_url.starts_with("postgres");
    // Bob, with the password alone, in his own browser.
    let bob = browser();
    let body = json!({"email": "bob@example.com", "name": "Bob", "password": PASSWORD});
    assert_eq!(app.post_with(&bob, "/api/authentication/register", body).await.status, StatusCode::CREATED);
    let body = json!({"email": "bob@example.com", "password": PASSWORD});
    assert_eq!(app.post_with(&bob, "/api/authentication/log-in", body).await.status, StatusCode::OK);
    let open = clients::NewClient {
        name: "Wiki".into(),
        redirect_uris: vec![REDIRECT.into()],
        two_factor: false,
        ..Default::default()
    };
    let shut = clients::NewClient { groups: vec!["staff".into()], ..open.clone() };
    let made = clients::add(&app.state, &Default::default(), None, &open).await.unwrap();
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("client_id", made.id.as_str()),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
            ("scope", "openid"),
        ])
        .finish();
    let live = format!("SELECT COUNT(*) FROM oidc_grants WHERE client_id = '{}' AND revoked_at IS NULL", made.id);
    let (mut issued, mut refused) = (0, 0);
    for round in 0..if postgres { 60 } else { 100 } {
        let sign_in = async {
            let mut url = format!("{}/oidc/authorize?{query}", app.base);
            // A changed policy sends the browser to decide again.
            loop {
                let r = app.send(&bob, bob.get(&url)).await;
                let to = r.headers.get("location").map(|l| l.to_str().unwrap().to_owned()).unwrap_or_default();
                match to.strip_prefix("/oidc/authorize?") {
                    Some(again) => url = format!("{}/oidc/authorize?{again}", app.base),
                    None => return answer_of(&r),
                }
            }
        };
        let meta = app::server::request::RequestMeta::default();
        // The change starts a little later each round, so it lands before,
        // during and after the sign-in's steps.
        let change = async {
            for _ in 0..round % 50 {
                tokio::task::yield_now().await;
            }
            clients::change(&app.state, &meta, None, &made.id, &shut).await
        };
        let (answer, changed) = tokio::join!(sign_in, change);
        changed.unwrap().expect("the app");
        if answer.contains_key("code") {
            issued += 1
        } else {
            refused += 1
        }
        assert_eq!(super::atomic::count(&app, &live).await, 0, "a grant outlived the change: {answer:?}");
        // Open again for the next round (widening ends nothing).
        assert_eq!(
            clients::change(&app.state, &Default::default(), None, &made.id, &open).await.unwrap().unwrap().ended,
            0
        );
    }
    eprintln!("sign-ins that got a code before the change: {issued}, refused after it: {refused}");
    assert!(refused > 0, "the change never came first");
}
