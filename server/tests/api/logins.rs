//! One log-in, one row: when a log-in ends it stays ended, for the portal
//! and the gate alike, however a refresh or another log-in races the
//! ending. Races run for hundreds of rounds (`RACE_ROUNDS` overrides), or
//! are held at an exact step with a pause point (`app::server::hooks`).

use super::*;
use app::server::hooks;
use sha2::{Digest, Sha256};

/// `one.example.test` lets in any live log-in; `two.example.test` only one
/// reached with a second factor.
const RULES: &str = r#"
[[rules]]
domain = "one.example.test"
policy = "one_factor"

[[rules]]
domain = "two.example.test"
policy = "two_factor"
"#;

fn rounds(default: usize) -> usize {
    std::env::var("RACE_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn gated_app() -> TestApp {
    gated_app_with(RULES).await
}

/// The cookies of one log-in.
#[derive(Debug, Clone)]
struct Login {
    access: String,
    refresh: String,
    gate: String,
}

fn login_of(r: &Reply) -> Option<Login> {
    Some(Login {
        access: set_cookie(r, "access").filter(|v| !v.is_empty())?,
        refresh: set_cookie(r, "refresh").filter(|v| !v.is_empty())?,
        gate: set_cookie(r, "twofactor_gate").filter(|v| !v.is_empty())?,
    })
}

fn sha256_hex(data: &str) -> String {
    Sha256::digest(data.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

impl TestApp {
    /// A log-in (2FA off) on a client of its own.
    async fn fresh_login(&self, email: &str, password: &str) -> Reply {
        self.post_with(&new_client(), "/api/authentication/log-in", json!({"email": email, "password": password})).await
    }

    async fn logged_in(&self, email: &str, password: &str) -> Login {
        let r = self.fresh_login(email, password).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        login_of(&r).expect("a log-in sets access, refresh and gate cookies")
    }

    /// What nginx's auth_request would hear for `GET http://host/`.
    async fn gate_status(&self, gate: &str, host: &str) -> StatusCode {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        let req = client
            .get(format!("{}/api/authz/auth-request", self.base))
            .header("x-original-method", "GET")
            .header("x-original-url", format!("http://{host}/"))
            .header("cookie", format!("twofactor_gate={gate}"));
        req.send().await.expect("gate").status()
    }

    /// Asserts that nothing of this log-in works any more: its gate cookie,
    /// its access token and its refresh token.
    async fn assert_ended(&self, login: &Login, what: &str) {
        assert_eq!(self.gate_status(&login.gate, "one.example.test").await, StatusCode::UNAUTHORIZED, "gate, {what}");
        assert_eq!(self.current_user_with(&login.access).await.status, StatusCode::UNAUTHORIZED, "portal, {what}");
        assert_eq!(self.refresh_with(&login.refresh).await.status, StatusCode::UNAUTHORIZED, "refresh, {what}");
    }

    async fn count(&self, sql: &'static str) -> i64 {
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&self.database_url).await.expect("connect");
        let (n,): (i64,) = sqlx::query_as(sql).fetch_one(&mut conn).await.expect("count");
        n
    }

    /// Theft alarms raised: audit events and the notices mailed with them.
    async fn theft_alarms(&self) -> (i64, i64) {
        (
            self.count("SELECT COUNT(*) FROM audit_events WHERE kind = 'refresh_reuse_detected'").await,
            self.count("SELECT COUNT(*) FROM mail_queue WHERE kind LIKE '%refresh_reuse%'").await,
        )
    }

    async fn user_id(&self, access: &str) -> i64 {
        let me = self.current_user_with(access).await;
        me.body["id"].as_i64().expect("user id")
    }

    /// A lockdown link's token for the account, as a notice would carry.
    async fn lockdown_token(&self, user_id: i64) -> String {
        let token = format!("lockdown-{}", uuid_like());
        let now = self.clock_now();
        self.state
            .db
            .insert_email_token(&sha256_hex(&token), user_id, "lockdown", now, now + 3600)
            .await
            .expect("lockdown token");
        token
    }
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}

#[derive(Debug, Clone, Copy)]
enum Ending {
    LogOutEverywhere,
    Lockdown,
    PasswordChange,
}

/// Ends every log-in of the account the way `how` does, with the owner's
/// access token. Returns the password now in force.
async fn end_all(app: &TestApp, how: Ending, owner: &Login, password: &str, round: usize) -> String {
    match how {
        Ending::LogOutEverywhere => {
            let r = app
                .with_cookie(
                    reqwest::Method::POST,
                    "/api/authentication/log-out-everywhere",
                    &format!("access={}", owner.access),
                    Some(json!({})),
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            password.to_owned()
        }
        Ending::Lockdown => {
            let id = app.user_id(&owner.access).await;
            let token = app.lockdown_token(id).await;
            let r = app.post_with(&new_client(), "/api/authentication/lockdown", json!({"token": token})).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            password.to_owned()
        }
        Ending::PasswordChange => {
            let new = format!("{PASSWORD} {round}");
            let r = app
                .with_cookie(
                    reqwest::Method::POST,
                    "/api/authentication/change-password",
                    &format!("access={}", owner.access),
                    Some(json!({"currentPassword": password, "newPassword": new})),
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            new
        }
    }
}

/// Refreshes in a loop racing the ending of every log-in: afterwards
/// nothing of the log-in works, whatever the refreshes got, and no theft
/// was reported.
async fn refresh_racing(how: Ending) {
    let app = gated_app().await;
    let mut password = PASSWORD.to_owned();
    let mut revived = 0;
    let n = rounds(500);
    let mut email = format!("race-{}@example.com", uuid_like());
    assert_eq!(app.register(&email).await.status, StatusCode::CREATED);
    for round in 0..n {
        if matches!(how, Ending::Lockdown) && round > 0 {
            // A locked account stays locked: the next round is someone else.
            email = format!("race-{}@example.com", uuid_like());
            password = PASSWORD.to_owned();
            assert_eq!(app.register(&email).await.status, StatusCode::CREATED);
        }
        let login = app.logged_in(&email, &password).await;
        // Refreshing in a loop, as a thief holding the refresh token would,
        // until the ending refuses it.
        let refresher = app.refresh_until_refused(&login.refresh);
        let (refreshed, new_password) = tokio::join!(refresher, end_all(&app, how, &login, &password, round));
        password = new_password;
        let gate = app.gate_status(&login.gate, "one.example.test").await;
        let mut alive = gate != StatusCode::UNAUTHORIZED;
        // The newest tokens the loop got (the older ones were spent by it).
        if let Some((access, refresh)) = refreshed.last() {
            alive |= app.current_user_with(access).await.status != StatusCode::UNAUTHORIZED;
            alive |= app.refresh_with(refresh).await.status != StatusCode::UNAUTHORIZED;
        }
        if alive {
            revived += 1;
        }
    }
    let alarms = app.theft_alarms().await;
    eprintln!("{how:?}: {revived} of {n} rounds left the log-in working; theft alarms {alarms:?}");
    assert_eq!(revived, 0, "{how:?}: the log-in survived its ending in {revived} of {n} rounds");
    assert_eq!(alarms, (0, 0), "an ending is not a theft");
}

#[tokio::test]
async fn a_refresh_racing_log_out_everywhere_never_survives_it() {
    refresh_racing(Ending::LogOutEverywhere).await;
}

#[tokio::test]
async fn a_refresh_racing_a_lockdown_never_survives_it() {
    refresh_racing(Ending::Lockdown).await;
}

#[tokio::test]
async fn a_refresh_racing_a_password_change_never_survives_it() {
    refresh_racing(Ending::PasswordChange).await;
}

/// Tab A rotates R; tab B presents R inside the grace window and is held
/// between its read and its write; the log-out commits; B goes on. The
/// log-out stands.
#[tokio::test]
async fn a_grace_replay_held_across_a_log_out_does_not_reopen_the_log_in() {
    let app = gated_app().await;
    let email = "grace@example.com";
    assert_eq!(app.register(email).await.status, StatusCode::CREATED);
    let n = rounds(200);
    let (mut reopened, mut accepted) = (0, 0);
    for _ in 0..n {
        let login = app.logged_in(email, PASSWORD).await;
        let a = app.refresh_with(&login.refresh).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        let pause = app.state.db.hooks.arm(hooks::REFRESH_READ);
        let b = tokio::spawn({
            let (base, refresh) = (app.base.clone(), login.refresh.clone());
            async move {
                reqwest::Client::new()
                    .post(format!("{base}/api/authentication/refresh"))
                    .header("cookie", format!("refresh={refresh}"))
                    .json(&json!({}))
                    .send()
                    .await
                    .expect("refresh")
            }
        });
        pause.reached().await;
        let out = app
            .with_cookie(
                reqwest::Method::POST,
                "/api/authentication/log-out",
                &format!("access={}; refresh={}", login.access, set_cookie(&a, "refresh").unwrap_or_default()),
                Some(json!({})),
            )
            .await;
        assert_eq!(out.status, StatusCode::OK);
        pause.resume();
        let b = b.await.expect("task");
        let b_status = b.status();
        let b_cookies: Vec<String> =
            b.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok().map(str::to_owned)).collect();
        let mut alive = app.gate_status(&login.gate, "one.example.test").await != StatusCode::UNAUTHORIZED;
        for c in &b_cookies {
            let pair = c.split(';').next().unwrap_or("");
            if let Some(access) = pair.strip_prefix("access=").filter(|v| !v.is_empty()) {
                alive |= app.current_user_with(access).await.status != StatusCode::UNAUTHORIZED;
            }
            if let Some(refresh) = pair.strip_prefix("refresh=").filter(|v| !v.is_empty()) {
                alive |= app.refresh_with(refresh).await.status != StatusCode::UNAUTHORIZED;
            }
        }
        if alive {
            reopened += 1;
        }
        if b_status == StatusCode::OK {
            accepted += 1;
        }
    }
    let alarms = app.theft_alarms().await;
    eprintln!(
        "grace replay across a log-out: reopened {reopened} of {n}, refresh accepted in {accepted}; theft alarms {alarms:?}"
    );
    assert_eq!(reopened, 0, "the log-out was undone in {reopened} of {n} rounds");
    assert_eq!(accepted, 0, "a refresh of an ended log-in is refused");
    assert_eq!(alarms, (0, 0));
}

/// Inside the grace window a rotated token gets one successor, not one per
/// replay: a second replay is told to use its new cookie, and is no theft.
#[tokio::test]
async fn a_rotated_token_gets_one_successor_in_the_grace_window() {
    let app = gated_app().await;
    let email = "one-successor@example.com";
    assert_eq!(app.register(email).await.status, StatusCode::CREATED);
    let login = app.logged_in(email, PASSWORD).await;
    assert_eq!(app.refresh_with(&login.refresh).await.status, StatusCode::OK);
    let replay = app.refresh_with(&login.refresh).await;
    assert_eq!(replay.status, StatusCode::OK, "the first replay in the window: {}", replay.text);
    let again = app.refresh_with(&login.refresh).await;
    assert_error(&again, StatusCode::CONFLICT, "conflict");
    assert!(again.body["message"].as_str().unwrap_or("").contains("new cookie"), "{}", again.text);
    assert_eq!(app.theft_alarms().await, (0, 0));
    // The log-in itself goes on.
    assert_eq!(app.gate_status(&login.gate, "one.example.test").await, StatusCode::OK);
    // Past the window, the same token is a stolen copy: the log-in ends.
    app.clock.advance(app.state.refresh_grace + 1);
    assert_eq!(app.refresh_with(&login.refresh).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.gate_status(&login.gate, "one.example.test").await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.theft_alarms().await.0, 1);
}

/// Someone who knows the password is held between the password check and
/// storing the log-in while the owner ends every log-in. What that log-in
/// got must not work.
async fn log_in_in_flight(how: Ending) {
    let app = gated_app().await;
    let n = rounds(100);
    let (mut outlived, mut accepted) = (0, 0);
    let mut email = format!("flight-{}@example.com", uuid_like());
    let mut password = PASSWORD.to_owned();
    assert_eq!(app.register(&email).await.status, StatusCode::CREATED);
    for round in 0..n {
        if matches!(how, Ending::Lockdown) && round > 0 {
            email = format!("flight-{}@example.com", uuid_like());
            password = PASSWORD.to_owned();
            assert_eq!(app.register(&email).await.status, StatusCode::CREATED);
        }
        let owner = app.logged_in(&email, &password).await;
        let pause = app.state.db.hooks.arm(hooks::LOG_IN_VERIFIED);
        let thief = tokio::spawn({
            let (base, email, password) = (app.base.clone(), email.clone(), password.clone());
            async move {
                let r = reqwest::Client::new()
                    .post(format!("{base}/api/authentication/log-in"))
                    .json(&json!({"email": email, "password": password}))
                    .send()
                    .await
                    .expect("log-in");
                let status = r.status();
                let headers = r.headers().clone();
                let text = r.text().await.unwrap_or_default();
                Reply { status, body: serde_json::from_str(&text).unwrap_or(Value::Null), text, headers }
            }
        });
        pause.reached().await;
        password = end_all(&app, how, &owner, &password, round).await;
        pause.resume();
        let got = thief.await.expect("task");
        if let Some(login) = login_of(&got) {
            let works = app.gate_status(&login.gate, "one.example.test").await != StatusCode::UNAUTHORIZED
                || app.current_user_with(&login.access).await.status != StatusCode::UNAUTHORIZED;
            if works {
                outlived += 1;
            }
        }
        if got.status == StatusCode::OK {
            accepted += 1;
        }
    }
    eprintln!("{how:?}: a log-in in flight outlived it in {outlived} of {n} rounds (answered 200 in {accepted})");
    assert_eq!(outlived, 0);
    assert_eq!(accepted, 0, "a log-in overtaken by the ending is refused");
}

#[tokio::test]
async fn a_log_in_in_flight_does_not_outlive_log_out_everywhere() {
    log_in_in_flight(Ending::LogOutEverywhere).await;
}

#[tokio::test]
async fn a_log_in_in_flight_does_not_outlive_a_lockdown() {
    log_in_in_flight(Ending::Lockdown).await;
}

#[tokio::test]
async fn a_log_in_in_flight_does_not_outlive_a_password_change() {
    log_in_in_flight(Ending::PasswordChange).await;
}

/// Every way a log-in ends ends it for the gate, the portal and refresh
/// alike, at once.
#[tokio::test]
async fn every_way_a_log_in_ends_ends_it_everywhere() {
    let app = gated_app().await;
    let owner = |n: &str| format!("ends-{n}@example.com");
    let with_cookie = |login: &Login, path: &'static str, body: Value| {
        let cookie = format!("access={}; refresh={}", login.access, login.refresh);
        let app = &app;
        async move { app.with_cookie(reqwest::Method::POST, path, &cookie, Some(body)).await }
    };

    // Log-out.
    assert_eq!(app.register(&owner("out")).await.status, StatusCode::CREATED);
    let login = app.logged_in(&owner("out"), PASSWORD).await;
    assert_eq!(app.gate_status(&login.gate, "one.example.test").await, StatusCode::OK);
    assert_eq!(with_cookie(&login, "/api/authentication/log-out", json!({})).await.status, StatusCode::OK);
    app.assert_ended(&login, "log-out").await;

    // Log-out everywhere, from another log-in.
    assert_eq!(app.register(&owner("everywhere")).await.status, StatusCode::CREATED);
    let login = app.logged_in(&owner("everywhere"), PASSWORD).await;
    let other = app.logged_in(&owner("everywhere"), PASSWORD).await;
    end_all(&app, Ending::LogOutEverywhere, &other, PASSWORD, 0).await;
    app.assert_ended(&login, "log-out everywhere").await;

    // Lockdown.
    assert_eq!(app.register(&owner("lockdown")).await.status, StatusCode::CREATED);
    let login = app.logged_in(&owner("lockdown"), PASSWORD).await;
    end_all(&app, Ending::Lockdown, &login, PASSWORD, 0).await;
    app.assert_ended(&login, "lockdown").await;

    // Password change, from another log-in.
    assert_eq!(app.register(&owner("change")).await.status, StatusCode::CREATED);
    let login = app.logged_in(&owner("change"), PASSWORD).await;
    let other = app.logged_in(&owner("change"), PASSWORD).await;
    end_all(&app, Ending::PasswordChange, &other, PASSWORD, 0).await;
    app.assert_ended(&login, "password change").await;

    // Password reset through a mailed link.
    assert_eq!(app.register(&owner("reset")).await.status, StatusCode::CREATED);
    let login = app.logged_in(&owner("reset"), PASSWORD).await;
    let id = app.user_id(&login.access).await;
    let token = format!("reset-{}", uuid_like());
    let now = app.clock_now();
    app.state.db.insert_email_token(&sha256_hex(&token), id, "reset", now, now + 600).await.expect("token");
    let r = app
        .post_with(
            &new_client(),
            "/api/authentication/reset-password",
            json!({"token": token, "newPassword": "a new passphrase for the reset"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    app.assert_ended(&login, "password reset").await;

    // Two-factor authentication turned on from another log-in; that
    // log-in goes on, with two factors.
    assert_eq!(app.register(&owner("on")).await.status, StatusCode::CREATED);
    let login = app.logged_in(&owner("on"), PASSWORD).await;
    let other = app.logged_in(&owner("on"), PASSWORD).await;
    assert_eq!(app.gate_status(&other.gate, "two.example.test").await, StatusCode::UNAUTHORIZED, "password only");
    let g = with_cookie(&other, "/api/2fa/generate", json!({})).await;
    let secret = g.body["secret"].as_str().expect("secret").to_owned();
    let on =
        with_cookie(&other, "/api/2fa/turn-on", json!({"twoFactorAuthenticationCode": app.code_now(&secret)})).await;
    assert_eq!(on.status, StatusCode::OK, "{}", on.text);
    app.assert_ended(&login, "2FA turned on").await;
    app.assert_ended(&other, "2FA turned on, the old cookies of the log-in that did it").await;
    let renewed = login_of(&on).expect("the enrolling client's renewed log-in");
    assert_eq!(app.gate_status(&renewed.gate, "two.example.test").await, StatusCode::OK, "now with two factors");
    let codes: Vec<String> = on.body["recoveryCodes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c.as_str().unwrap_or("").to_owned())
        .collect();

    // Two-factor authentication turned off (password and a recovery code).
    let login = {
        let c = new_client();
        let r =
            app.post_with(&c, "/api/authentication/log-in", json!({"email": owner("on"), "password": PASSWORD})).await;
        assert_eq!(r.body["twoFactorRequired"], true, "{}", r.text);
        let r = app.post_with(&c, "/api/2fa/authenticate", json!({"recoveryCode": codes[0]})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        login_of(&r).expect("a log-in with a recovery code")
    };
    assert_eq!(app.gate_status(&login.gate, "two.example.test").await, StatusCode::OK, "a recovery code is a factor");
    let off = with_cookie(&renewed, "/api/2fa/turn-off", json!({"password": PASSWORD, "recoveryCode": codes[1]})).await;
    assert_eq!(off.status, StatusCode::OK, "{}", off.text);
    app.assert_ended(&login, "2FA turned off").await;

    // A refresh token replayed after the grace window: a stolen copy.
    assert_eq!(app.register(&owner("reuse")).await.status, StatusCode::CREATED);
    let login = app.logged_in(&owner("reuse"), PASSWORD).await;
    let rotated = app.refresh_with(&login.refresh).await;
    let successor = Login {
        access: set_cookie(&rotated, "access").expect("access"),
        refresh: set_cookie(&rotated, "refresh").expect("refresh"),
        gate: login.gate.clone(),
    };
    app.clock.advance(app.state.refresh_grace + 1);
    assert_eq!(app.refresh_with(&login.refresh).await.status, StatusCode::UNAUTHORIZED);
    app.assert_ended(&successor, "refresh token reuse").await;

    // An operator resets two-factor authentication.
    let login = app.logged_in(&owner("reuse"), PASSWORD).await;
    let email = app::domain::Email::parse(&owner("reuse")).expect("email");
    assert!(app::server::factors::protection::operator_reset_two_factor(&app.state, &email).await.expect("reset"));
    app.assert_ended(&login, "operator reset").await;

    // Expiry: the log-in's own lifetime.
    let login = app.logged_in(&owner("reuse"), PASSWORD).await;
    app.clock.advance(app.state.refresh_ttl);
    app.assert_ended(&login, "expiry").await;

    let alarms = app.theft_alarms().await;
    assert_eq!(alarms.0, 1, "only the replayed copy was a theft");
}
