//! Remembered browsers ("Don't ask again on this browser"): the browser
//! that ticked it skips only the second factor, and nothing else does (a
//! browser without the cookie, a copied cookie on another account, a
//! forgotten or made-up one); every voiding event asks again; a remembered
//! log-in is no fresh proof; access rules with `remembered = false` and
//! `fresh` send it to show a factor again, which the log-in then carries.

use super::admin::{act, administrator, id_of};
use super::forms::{self, location};
use super::*;

const RULES: &str = "[[rules]]\ndomain = \"wiki.example.test\"\npolicy = \"two_factor\"\n\n\
                     [[rules]]\ndomain = \"admin.example.test\"\nremembered = false\npolicy = \"two_factor\"\n\n\
                     [[rules]]\ndomain = \"bank.example.test\"\nfresh = \"15m\"\npolicy = \"two_factor\"\n";

/// A browser of its own that logs in as `email` with the password and a
/// code (of a later step than any before), ticking "Don't ask again" when
/// `remember`. Returns it and the reply.
async fn code_log_in(app: &TestApp, email: &str, secret: &str, remember: bool) -> (reqwest::Client, Reply) {
    let c = new_client();
    let r = app.post_with(&c, "/api/authentication/log-in", json!({"email": email, "password": PASSWORD})).await;
    assert_eq!((r.status, r.body["twoFactorRequired"].clone()), (StatusCode::OK, json!(true)), "{}", r.text);
    app.clock.advance(30);
    let body = json!({"twoFactorAuthenticationCode": app.code_now(secret), "remember": remember});
    let r = app.post_with(&c, "/api/2fa/authenticate", body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    (c, r)
}

/// The password step again in browser `c` (logged out first): its reply.
async fn password_again(app: &TestApp, c: &reqwest::Client, email: &str) -> Reply {
    app.post_with(c, "/api/authentication/log-out", json!({})).await;
    let r = app.post_with(c, "/api/authentication/log-in", json!({"email": email, "password": PASSWORD})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r
}

/// Whether browser `c`'s next log-in skips the code (and is then logged in).
async fn skips_code(app: &TestApp, c: &reqwest::Client, email: &str) -> bool {
    let r = password_again(app, c, email).await;
    let skipped = r.body["twoFactorRequired"] == false;
    assert_eq!(r.body["remembered"], skipped, "{}", r.text);
    let me = app.get_with(c, "/api/authentication").await.status;
    assert_eq!(me == StatusCode::OK, skipped, "a full session exactly when the code was skipped");
    skipped
}

#[tokio::test]
async fn a_remembered_browser_skips_only_the_second_factor() {
    let app = gated_app_with(RULES).await;
    let secret = app.enrolled_user("ann@example.test").await;
    let (c, r) = code_log_in(&app, "ann@example.test", &secret, true).await;
    let cookie =
        r.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).find(|v| v.starts_with("remember="));
    let cookie = cookie.expect("a remembered-browser cookie");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Max-Age=2592000"));
    let secret_value = &cookie["remember=".len()..cookie.find(';').unwrap()];
    let stored = stored_hashes(&app).await;
    assert_eq!(stored.len(), 1);
    assert!(!stored[0].contains(secret_value) && stored[0].len() == 64, "only its hash is kept");
    assert!(kinds_seen_by(&app, &c).await.contains(&"browser_remembered".to_owned()));

    // That browser skips the code; it says how it was reached.
    assert!(skips_code(&app, &c, "ann@example.test").await);
    let list = app.get_with(&c, "/api/authentication/log-ins").await;
    let mine = list.body.as_array().unwrap().iter().find(|l| l["current"] == true).unwrap().clone();
    assert_eq!(mine["amr"], json!(["pwd", "remembered"]));
    assert_eq!(mine["reached"], "the password and a remembered browser");
    // A remembered log-in is no recent proof, and the password (which it
    // already had) proves nothing more: a change asks for a second factor.
    let status = app.get_with(&c, "/api/2fa/status").await;
    assert_eq!(
        (status.body["recentLogIn"].clone(), status.body["rememberedOnly"].clone()),
        (json!(false), json!(true))
    );
    let r = app.post_with(&c, "/api/2fa/generate", json!({})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = app.post_with(&c, "/api/webauthn/register/start", json!({"name": "Key", "password": PASSWORD})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.body["fields"]["code"].as_str().unwrap().contains("not asked for your second factor"), "{}", r.text);
    // Any other browser is asked for the code, ticked or not.
    let (other, _) = code_log_in(&app, "ann@example.test", &secret, false).await;
    assert!(!skips_code(&app, &other, "ann@example.test").await);

    // The gate: two factors will do for the wiki; not for rules that want
    // one shown (`remembered = false`, `fresh`).
    let r = password_again(&app, &c, "ann@example.test").await;
    let g = set_cookie(&r, "twofactor_gate").expect("gate cookie");
    assert_eq!(gate_reply(&app, &g, "http://wiki.example.test/").await.0, StatusCode::OK);
    for url in ["http://admin.example.test/", "http://bank.example.test/"] {
        let (status, to) = gate_reply(&app, &g, url).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{url}");
        assert!(to.contains("/security?need=two-factor&rd="), "{url}: {to}");
    }
    // A wrong code shown again changes nothing.
    app.clock.advance(30);
    let r =
        app.post_with(&c, "/api/2fa/step-up", json!({"twoFactorAuthenticationCode": app.wrong_code(&secret)})).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert_eq!(gate_reply(&app, &g, "http://admin.example.test/").await.0, StatusCode::UNAUTHORIZED);
    let r = app.post_with(&c, "/api/2fa/step-up", json!({})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    // The right one: both pass, the same log-in and cookie.
    let r = app.post_with(&c, "/api/2fa/step-up", json!({"twoFactorAuthenticationCode": app.code_now(&secret)})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(app.get_with(&c, "/api/2fa/status").await.body["rememberedOnly"], false);
    assert!(kinds_seen_by(&app, &c).await.contains(&"second_factor_shown".to_owned()));
    for url in ["http://admin.example.test/", "http://bank.example.test/", "http://wiki.example.test/"] {
        assert_eq!(gate_reply(&app, &g, url).await.0, StatusCode::OK, "{url}");
    }
    // Fifteen minutes on, the bank wants it again; the rest do not.
    app.clock.advance(15 * 60);
    assert_eq!(gate_reply(&app, &g, "http://bank.example.test/").await.0, StatusCode::OK, "15 minutes exactly");
    app.clock.advance(1);
    assert_eq!(gate_reply(&app, &g, "http://bank.example.test/").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(gate_reply(&app, &g, "http://admin.example.test/").await.0, StatusCode::OK);
    // (The access token ran out meanwhile.)
    assert_eq!(app.post_with(&c, "/api/authentication/refresh", json!({})).await.status, StatusCode::OK);
    let list = app.get_with(&c, "/api/authentication/log-ins").await;
    let mine = list.body.as_array().unwrap().iter().find(|l| l["current"] == true).unwrap().clone();
    assert_eq!(mine["amr"], json!(["pwd", "otp", "remembered"]));
}

/// The kinds of the security activity a logged-in browser sees.
async fn kinds_seen_by(app: &TestApp, c: &reqwest::Client) -> Vec<String> {
    let a = app.get_with(c, "/api/authentication/activity").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    all_kinds(&a.body)
}

/// The secret hashes of every remembered browser, as stored.
async fn stored_hashes(app: &TestApp) -> Vec<String> {
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&app.database_url).await.expect("connect");
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT secret_hash FROM remembered_browsers").fetch_all(&mut conn).await.expect("query");
    rows.into_iter().map(|(h,)| h).collect()
}

#[tokio::test]
async fn a_code_from_a_password_log_in_that_came_fresh_counts_for_fresh_rules() {
    // A log-in with the code is fresh; the same rule then counts from it.
    let app = gated_app_with(RULES).await;
    let secret = app.enrolled_user("ann@example.test").await;
    let (c, r) = code_log_in(&app, "ann@example.test", &secret, false).await;
    let g = set_cookie(&r, "twofactor_gate").unwrap();
    assert_eq!(gate_reply(&app, &g, "http://bank.example.test/").await.0, StatusCode::OK);
    assert_eq!(gate_reply(&app, &g, "http://admin.example.test/").await.0, StatusCode::OK);
    app.clock.advance(15 * 60 + 1);
    assert_eq!(gate_reply(&app, &g, "http://bank.example.test/").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(gate_reply(&app, &g, "http://admin.example.test/").await.0, StatusCode::OK);
    // A password change renews the log-in; its second factor was still
    // shown when it was, not at the change.
    let (c2, r) = code_log_in(&app, "ann@example.test", &secret, false).await;
    drop((c, r));
    app.clock.advance(10 * 60);
    let body = json!({"currentPassword": PASSWORD, "newPassword": "another horse battery staple"});
    let r = app.post_with(&c2, "/api/authentication/change-password", body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let g = set_cookie(&r, "twofactor_gate").expect("the renewed log-in's gate cookie");
    assert_eq!(gate_reply(&app, &g, "http://bank.example.test/").await.0, StatusCode::OK);
    app.clock.advance(5 * 60 + 1);
    assert_eq!(
        gate_reply(&app, &g, "http://bank.example.test/").await.0,
        StatusCode::UNAUTHORIZED,
        "15 minutes after the code"
    );
    assert_eq!(gate_reply(&app, &g, "http://admin.example.test/").await.0, StatusCode::OK);
}

#[tokio::test]
async fn every_voiding_event_asks_again() {
    let app = spawn_app().await;
    let boss = administrator(&app).await;
    let secret = super::admin::enrolled_elsewhere(&app, "ann@example.com").await;
    let ann = id_of(&app, "ann@example.com").await;
    let mut secret = secret;
    for event in ["password change", "log out everywhere", "new phone", "turned off and on", "admin lock", "admin"] {
        let (c, _) = code_log_in(&app, "ann@example.com", &secret, true).await;
        assert!(skips_code(&app, &c, "ann@example.com").await, "{event}: remembered");
        match event {
            "password change" => {
                let body = json!({"currentPassword": PASSWORD, "newPassword": "another horse battery staple"});
                assert_eq!(app.post_with(&c, "/api/authentication/change-password", body).await.status, StatusCode::OK);
                let body = json!({"currentPassword": "another horse battery staple", "newPassword": PASSWORD});
                assert_eq!(app.post_with(&c, "/api/authentication/change-password", body).await.status, StatusCode::OK);
            }
            "log out everywhere" => {
                let r = app.post_with(&c, "/api/authentication/log-out-everywhere", json!({})).await;
                assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            }
            "new phone" => {
                app.clock.advance(30);
                let r = app
                    .post_with(&c, "/api/2fa/generate", json!({"twoFactorAuthenticationCode": app.code_now(&secret)}))
                    .await;
                assert_eq!(r.status, StatusCode::OK, "{}", r.text);
                let new = r.body["secret"].as_str().unwrap().to_owned();
                let r = app
                    .post_with(&c, "/api/2fa/turn-on", json!({"twoFactorAuthenticationCode": app.code_now(&new)}))
                    .await;
                assert_eq!(r.status, StatusCode::OK, "{}", r.text);
                secret = new;
            }
            "turned off and on" => {
                app.clock.advance(30);
                let body = json!({"password": PASSWORD, "twoFactorAuthenticationCode": app.code_now(&secret)});
                let r = app.post_with(&c, "/api/2fa/turn-off", body).await;
                assert_eq!(r.status, StatusCode::OK, "{}", r.text);
                let g = app.post_with(&c, "/api/2fa/generate", json!({"password": PASSWORD})).await;
                secret = g.body["secret"].as_str().unwrap().to_owned();
                let r = app
                    .post_with(&c, "/api/2fa/turn-on", json!({"twoFactorAuthenticationCode": app.code_now(&secret)}))
                    .await;
                assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            }
            "admin lock" => {
                for action in ["lock", "unlock"] {
                    app.clock.advance(30);
                    let body = json!({"person": ann, "action": action, "code": app.code_now(&boss)});
                    let r = act(&app, &app.client, body).await;
                    assert_eq!(r.status, StatusCode::OK, "{action}: {}", r.text);
                }
            }
            _ => {
                let page = app.get(&format!("/api/admin/person?id={ann}")).await;
                assert_eq!(page.body["remembered"].as_array().unwrap().len(), 1, "{}", page.text);
                assert!(page.body["offers"].as_array().unwrap().iter().any(|o| o["action"] == "forget-browsers"));
                app.clock.advance(30);
                let body = json!({"person": ann, "action": "forget-browsers", "code": app.code_now(&boss)});
                let r = act(&app, &app.client, body).await;
                assert_eq!(r.status, StatusCode::OK, "{}", r.text);
                assert!(
                    r.body["message"].as_str().unwrap().starts_with("Forgot 1 remembered browser of ann@"),
                    "{}",
                    r.text
                );
                let (labels, _) = super::admin::done_by_boss(&app, ann).await;
                assert_eq!(labels[0], "Remembered browsers forgotten");
            }
        }
        app.clock.advance(30);
        assert!(!skips_code(&app, &c, "ann@example.com").await, "{event}: asked again");
    }
}

#[tokio::test]
async fn a_copied_forged_or_forgotten_cookie_is_asked_for_the_code() {
    let app = spawn_app().await;
    let ann = app.enrolled_user("ann@example.com").await;
    let bob = super::admin::enrolled_elsewhere(&app, "bob@example.com").await;
    let (c, r) = code_log_in(&app, "ann@example.com", &ann, true).await;
    let value = set_cookie(&r, "remember").unwrap();
    // Ann's cookie in a browser logging in as Bob.
    let copied = reqwest::Client::builder().build().unwrap();
    let with = |cookie: &str| {
        copied
            .post(format!("{}/api/authentication/log-in", app.base))
            .header("cookie", format!("remember={cookie}"))
            .json(&json!({"email": "bob@example.com", "password": PASSWORD}))
    };
    for cookie in [value.as_str(), "made-up-made-up-made-up-made-up", "x", &"y".repeat(300)] {
        let r = app.send(&copied, with(cookie)).await;
        assert_eq!((r.status, r.body["twoFactorRequired"].clone()), (StatusCode::OK, json!(true)), "{cookie}");
    }
    // Ann's cookie stolen with her password: the thief skips the code, and
    // Ann forgetting the browser ends the thief's log-in.
    let thief = reqwest::Client::builder().cookie_store(true).build().unwrap();
    let r = app
        .send(&thief, {
            thief
                .post(format!("{}/api/authentication/log-in", app.base))
                .header("cookie", format!("remember={value}"))
                .json(&json!({"email": "ann@example.com", "password": PASSWORD}))
        })
        .await;
    assert_eq!(r.body["remembered"], true, "{}", r.text);
    let thief_access = set_cookie(&r, "access").unwrap();
    assert_eq!(app.current_user_with(&thief_access).await.status, StatusCode::OK);
    // Ann's own list: this browser, marked; forgetting by another
    // account's hand finds nothing.
    let list = app.get_with(&c, "/api/2fa/remembered-browsers").await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    let entry = list.body[0].clone();
    assert_eq!((entry["current"].clone(), list.body.as_array().unwrap().len()), (json!(true), 1));
    let id = entry["id"].as_str().unwrap();
    let bob_client = new_client();
    app.clock.advance(30);
    let r = app
        .post_with(&bob_client, "/api/authentication/log-in", json!({"email": "bob@example.com", "password": PASSWORD}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .post_with(&bob_client, "/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": app.code_now(&bob)}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app.post_with(&bob_client, "/api/2fa/remembered-browsers/forget", json!({"id": id})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    for bad in [json!({}), json!({"all": false}), json!({"id": "", "all": false}), json!({"id": id, "all": true})] {
        let r = app.post_with(&c, "/api/2fa/remembered-browsers/forget", bad.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text);
    }
    assert_eq!(app.get_with(&c, "/api/2fa/remembered-browsers").await.body.as_array().unwrap().len(), 1, "unchanged");
    // Forgotten by its owner: the cookie goes, the log-ins it started end
    // (not the owner's own), and the next log-in asks.
    let r = app.post_with(&c, "/api/2fa/remembered-browsers/forget", json!({"id": id})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(set_cookie(&r, "remember").as_deref(), Some(""), "its own cookie is cleared");
    assert_eq!(app.current_user_with(&thief_access).await.status, StatusCode::UNAUTHORIZED, "the thief's log-in ended");
    assert_eq!(app.get_with(&c, "/api/authentication").await.status, StatusCode::OK, "the owner's goes on");
    let r = app
        .send(&copied, {
            copied
                .post(format!("{}/api/authentication/log-in", app.base))
                .header("cookie", format!("remember={value}"))
                .json(&json!({"email": "ann@example.com", "password": PASSWORD}))
        })
        .await;
    assert_eq!(r.body["twoFactorRequired"], true, "the forgotten cookie, kept by hand");
    assert!(kinds_seen_by(&app, &c).await.contains(&"remembered_browsers_forgotten".to_owned()));
    // Two browsers, forgotten at once.
    let (one, _) = code_log_in(&app, "ann@example.com", &ann, true).await;
    let (two, _) = code_log_in(&app, "ann@example.com", &ann, true).await;
    let r = app.post_with(&one, "/api/2fa/remembered-browsers/forget", json!({"all": true})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.body["message"].as_str().unwrap().starts_with("Forgot 2 browsers"), "{}", r.text);
    assert!(!skips_code(&app, &two, "ann@example.com").await);
}

#[tokio::test]
async fn remembering_ends_with_its_days_and_can_be_turned_off() {
    let app = spawn_app().await;
    let secret = app.enrolled_user("ann@example.com").await;
    let (c, _) = code_log_in(&app, "ann@example.com", &secret, true).await;
    app.clock.advance(30 * 86_400 - 60);
    assert!(skips_code(&app, &c, "ann@example.com").await, "within 30 days");
    app.clock.advance(61);
    assert!(!skips_code(&app, &c, "ann@example.com").await, "after 30 days");

    let off = spawn_app_with(&[("REMEMBER_DAYS", "0")]).await;
    let secret = off.enrolled_user("ann@example.com").await;
    let (c, r) = code_log_in(&off, "ann@example.com", &secret, true).await;
    assert_eq!(set_cookie(&r, "remember"), None, "not offered");
    assert!(!skips_code(&off, &c, "ann@example.com").await);
    let page = off.get_with(&c, "/login").await;
    assert!(!page.text.contains("name=\"remember\""));
}

#[tokio::test]
async fn without_javascript_the_box_remembers_and_the_step_up_form_goes_on_to_the_app() {
    let app = gated_app_with(RULES).await;
    let secret = app.enrolled_user("ann@example.test").await;
    let b = forms::browser();
    let r =
        app.form(&b, "/login", &[("intent", "password"), ("email", "ann@example.test"), ("password", PASSWORD)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let page = app.page(&b, "/login").await;
    assert!(
        page.text.contains("Don&#x27;t ask again on this browser for 30 days")
            || page.text.contains("Don't ask again on this browser for 30 days"),
        "{}",
        page.text
    );
    // A wrong code keeps the box ticked.
    app.clock.advance(30);
    let r = app.form(&b, "/login", &[("intent", "code"), ("code", &app.wrong_code(&secret)), ("remember", "on")]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.text.contains("name=\"remember\" type=\"checkbox\" checked"), "{}", r.text);
    let r = app.form(&b, "/login", &[("intent", "code"), ("code", &app.code_now(&secret)), ("remember", "on")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert!(set_cookie(&r, "remember").is_some_and(|v| !v.is_empty()));
    // Logged out and in again: the password is enough.
    app.form(&b, "/", &[("intent", "log-out")]).await;
    app.post_with(&b, "/api/authentication/log-out", json!({})).await;
    let r =
        app.form(&b, "/login", &[("intent", "password"), ("email", "ann@example.test"), ("password", PASSWORD)]).await;
    assert_eq!((r.status, location(&r)), (StatusCode::SEE_OTHER, "/"), "{}", r.text);
    // The list without JavaScript: a form per browser, one for all.
    let page = app.page(&b, "/security").await;
    assert!(page.text.contains("data-testid=\"remembered-browser\""), "{}", page.text);
    let r = app.form(&b, "/security", &[("intent", "forget-browsers")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "neither one nor all: nothing forgotten");
    assert!(app.page(&b, "/security").await.text.contains("data-testid=\"remembered-browser\""));
    // The gate sends it to show a factor; the page asks, then goes on.
    let rd = "http://admin.example.test/x";
    let security = format!("/security?need=two-factor&rd={}", urlencode(rd));
    let page = app.page(&b, &security).await;
    assert!(page.text.contains("data-testid=\"step-up\""), "{}", page.text);
    app.clock.advance(30);
    let r = app.form(&b, &security, &[("intent", "step-up"), ("code", "12")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text.contains("data-testid=\"step-up\""), "{}", r.text);
    let r = app.form(&b, &security, &[("intent", "step-up"), ("code", &app.code_now(&secret))]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(location(&r), format!("/login?rd={}", urlencode(rd)));
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A remembered browser logging in while its owner forgets it, the forget
/// started 0–19 scheduler turns after the password was checked, many times
/// over: either
/// the log-in came first and the forget ended it, or the forget came first
/// and the log-in was asked for the code. Never a live log-in from a
/// forgotten browser.
#[tokio::test]
async fn a_browser_forgotten_while_it_logs_in_keeps_nothing() {
    let app = spawn_app().await;
    let secret = app.enrolled_user("ann@example.com").await;
    let rounds = if std::env::var("TEST_POSTGRES_URL").is_ok() { 60 } else { 100 };
    let (mut before, mut after) = (0, 0);
    for round in 0..rounds {
        let (browser, _) = code_log_in(&app, "ann@example.com", &secret, true).await;
        // The owner's own browser, kept logged in as the clock moves on.
        assert_eq!(app.post("/api/authentication/refresh", json!({})).await.status, StatusCode::OK);
        app.post_with(&browser, "/api/authentication/log-out", json!({})).await;
        // Held once the password is checked (argon2 takes longer than any
        // number of turns), then let go: the forget starts 0–19 turns later,
        // around the log-in's transaction.
        let pause = app.state.db.hooks.arm(app::server::hooks::LOG_IN_VERIFIED);
        let log_in = app.post_with(
            &browser,
            "/api/authentication/log-in",
            json!({"email": "ann@example.com", "password": PASSWORD}),
        );
        let forget = async {
            pause.reached().await;
            pause.resume();
            for _ in 0..(round % 20) {
                tokio::task::yield_now().await;
            }
            app.post("/api/2fa/remembered-browsers/forget", json!({"all": true})).await
        };
        let (logged, forgot) = tokio::join!(log_in, forget);
        assert_eq!(forgot.status, StatusCode::OK, "{}", forgot.text);
        assert_eq!(logged.status, StatusCode::OK, "{}", logged.text);
        if logged.body["remembered"] == true {
            let access = set_cookie(&logged, "access").expect("a remembered log-in's cookie");
            let me = app.current_user_with(&access).await;
            assert_eq!(me.status, StatusCode::UNAUTHORIZED, "round {round}: a forgotten browser's log-in lives on");
            before += 1;
        } else {
            assert_eq!(logged.body["twoFactorRequired"], true, "{}", logged.text);
            after += 1;
        }
    }
    eprintln!("log-in first: {before}, forget first: {after}");
}

/// A step-up whose log-in ends while it is on its way (held after reading
/// the session, while the same browser logs out): 401, and the recovery
/// code it carried is not spent; it logs in next time.
#[tokio::test]
async fn a_step_up_for_a_log_in_that_ended_meanwhile_spends_no_recovery_code() {
    let app = spawn_app().await;
    let (_, codes) = app.enrolled_with_codes("ann@example.test").await;
    let pause = app.state.db.hooks.arm(app::server::hooks::STEP_UP_READY);
    let shown = tokio::spawn({
        let (c, url, code) = (app.client.clone(), format!("{}/api/2fa/step-up", app.base), codes[0].clone());
        async move { c.post(url).json(&json!({"recoveryCode": code})).send().await.expect("step-up").status() }
    });
    pause.reached().await;
    assert_eq!(app.post("/api/authentication/log-out", json!({})).await.status, StatusCode::OK);
    pause.resume();
    assert_eq!(shown.await.expect("task"), StatusCode::UNAUTHORIZED);
    app.password_stage("ann@example.test").await;
    let r = app.post("/api/2fa/authenticate", json!({"recoveryCode": codes[0]})).await;
    assert_eq!(r.status, StatusCode::OK, "the code was spent: {}", r.text);
}

/// The code step reads the account first: a write from outside the
/// transactions (a guessing-limit row here) committed between that read
/// and the step's first write must neither fail the step (SQLite gives up
/// at once on a transaction whose snapshot went stale, unless it took the
/// write lock at its start) nor be lost.
#[tokio::test]
async fn a_write_between_the_code_steps_read_and_its_writes_fails_neither() {
    let app = spawn_app().await;
    let secret = app.enrolled_user("ann@example.test").await;
    app.password_stage("ann@example.test").await;
    let pause = app.state.db.hooks.arm(app::server::hooks::CODE_STEP_READ);
    // The next step's code (the current one turned two factors on).
    let code = app.code_at(&secret, app.clock_now() + 30);
    let step = tokio::spawn({
        let (c, url) = (app.client.clone(), format!("{}/api/2fa/authenticate", app.base));
        async move { c.post(url).json(&json!({"twoFactorAuthenticationCode": code})).send().await.expect("code").status() }
    });
    pause.reached().await;
    let db = app.state.db.clone();
    let (policy, now) = (app.state.limits.per_address, app.clock_now());
    let other = tokio::spawn(async move { db.throttle_attempt("register-ip:192.0.2.1", policy, now).await });
    tokio::task::yield_now().await;
    pause.resume();
    assert_eq!(step.await.expect("task"), StatusCode::OK);
    assert_eq!(other.await.expect("task").expect("the other write"), None);
    assert_eq!(app.get("/api/authentication").await.status, StatusCode::OK);
}
