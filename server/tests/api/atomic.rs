//! Nothing half-done: a failure part-way through an operation that writes
//! several rows leaves the database exactly as before, and two refreshes
//! of one token in the same moment are not taken for a theft.

use std::collections::BTreeMap;

use super::*;

#[tokio::test]
async fn turning_on_fails_whole_or_not_at_all() {
    let app = spawn_app().await;
    // The mail worker's own transactions must not take the fault meant
    // for the operation (its claim is a transaction too).
    app.state.mail.stop();
    app.register("atomic-on@example.com").await;
    app.log_in("atomic-on@example.com", PASSWORD).await;
    let g = app.post("/api/2fa/generate", json!({})).await;
    let secret = g.body["secret"].as_str().expect("secret").to_owned();
    // Writes: 1 flag and secret, 2 recovery codes, 3 revocation, 4 new session.
    for nth in 1..=4 {
        let before = snapshot(&app).await;
        app.state.db.fail_next_transaction_at(nth);
        let r = app.post("/api/2fa/turn-on", json!({"twoFactorAuthenticationCode": app.code_now(&secret)})).await;
        assert_error(&r, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
        assert_eq!(snapshot(&app).await, before, "failing write {nth} left a trace");
        assert_eq!(app.get("/api/authentication").await.status, StatusCode::OK, "still logged in");
    }
    let r = app.post("/api/2fa/turn-on", json!({"twoFactorAuthenticationCode": app.code_now(&secret)})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn a_password_change_fails_whole_or_not_at_all() {
    let app = spawn_app().await;
    // The mail worker's own transactions must not take the fault meant
    // for the operation (its claim is a transaction too).
    app.state.mail.stop();
    app.register("atomic-pw@example.com").await;
    app.log_in("atomic-pw@example.com", PASSWORD).await;
    let new = "an entirely different passphrase";
    let change = json!({"currentPassword": PASSWORD, "newPassword": new});
    // Writes: 1 hash and version, 2 revocation, 3 new session.
    for nth in 1..=3 {
        let before = snapshot(&app).await;
        app.state.db.fail_next_transaction_at(nth);
        let r = app.post("/api/authentication/change-password", change.clone()).await;
        assert_error(&r, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
        assert_eq!(snapshot(&app).await, before, "failing write {nth} left a trace");
        assert_eq!(app.get("/api/authentication").await.status, StatusCode::OK, "not logged out");
    }
    let other = new_client();
    let r = app
        .post_with(&other, "/api/authentication/log-in", json!({"email": "atomic-pw@example.com", "password": new}))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "the new password was never stored");
    assert_eq!(app.post("/api/authentication/change-password", change).await.status, StatusCode::OK);
}

#[tokio::test]
async fn turning_off_and_logging_out_everywhere_fail_whole() {
    let app = spawn_app().await;
    // The mail worker's own transactions must not take the fault meant
    // for the operation (its claim is a transaction too).
    app.state.mail.stop();
    let secret = app.enrolled_user("atomic-off@example.com").await;
    for nth in 1..=3 {
        app.clock.advance(30);
        let off = json!({"password": PASSWORD, "twoFactorAuthenticationCode": app.code_now(&secret)});
        let before = snapshot(&app).await;
        app.state.db.fail_next_transaction_at(nth);
        assert_error(&app.post("/api/2fa/turn-off", off.clone()).await, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
        // The code was spent by the failed try: that is the replay guard,
        // not part of the operation. Everything else is as it was.
        let after = snapshot(&app).await;
        assert_eq!(after[1..], before[1..], "failing write {nth} left a trace");
    }
    for nth in 1..=2 {
        let before = snapshot(&app).await;
        app.state.db.fail_next_transaction_at(nth);
        let r = app.post("/api/authentication/log-out-everywhere", json!({})).await;
        assert_error(&r, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
        assert_eq!(snapshot(&app).await, before);
    }
    assert_eq!(app.get("/api/authentication").await.status, StatusCode::OK);
}

#[tokio::test]
async fn parallel_refreshes_of_one_token_are_not_a_theft() {
    let app = spawn_app().await;
    app.register("tabs@example.com").await;
    let r = app.log_in("tabs@example.com", PASSWORD).await;
    let refresh = set_cookie(&r, "refresh").expect("refresh cookie");
    app.clock.advance(16 * 60);
    // Ten tabs restored at once, all with the same cookie.
    let url = format!("{}/api/authentication/refresh", app.base);
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (url, cookie) = (url.clone(), format!("refresh={refresh}"));
            tokio::spawn(async move {
                let res = reqwest::Client::new().post(url).header("cookie", cookie).json(&json!({})).send().await?;
                let access = res.headers().get_all("set-cookie").iter().find_map(|c| {
                    let c = c.to_str().ok()?;
                    c.strip_prefix("access=").map(|rest| rest.split(';').next().unwrap_or("").to_owned())
                });
                Ok::<_, reqwest::Error>((res.status(), access))
            })
        })
        .collect();
    // One rotation and one successor for a replay inside the grace window;
    // every further replay is told to retry with its new cookie (409), which
    // the browser, sharing one cookie jar across tabs, already holds.
    let mut successors = Vec::new();
    let mut told_to_retry = 0;
    for t in tasks {
        let (status, access) = t.await.expect("task").expect("request");
        match status {
            StatusCode::OK => successors.push(access.expect("access cookie")),
            StatusCode::CONFLICT => {
                assert_eq!(access, None, "a 409 sets no cookie");
                told_to_retry += 1;
            }
            other => panic!("a tab was answered {other}"),
        }
    }
    assert_eq!((successors.len(), told_to_retry), (2, 8));
    // Each successor works: the log-in lives.
    for access in &successors {
        let r = app.current_user_with(access).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    let kinds = activity_kinds(&app, "tabs@example.com").await;
    assert!(!kinds.contains(&"refresh_reuse_detected".to_owned()), "{kinds:?}");

    // A minute later the same token is a stolen copy: the family dies.
    app.clock.advance(60);
    let r = app.refresh_with(&refresh).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
    let r = app.current_user_with(&successors[0]).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
    let kinds = activity_kinds(&app, "tabs@example.com").await;
    assert!(kinds.contains(&"refresh_reuse_detected".to_owned()), "{kinds:?}");
}

// ------------------------------------------------------------------ every multi-write operation

/// Every row of every table, as text, to compare before and after. Left
/// out: the guessing counters (a try is reserved before an operation and
/// given back after it, whatever became of it) and what `skip` names, a
/// table or a `table.column`.
async fn all_rows(app: &TestApp, skip: &[&str]) -> BTreeMap<String, Vec<String>> {
    let mut skip = skip.to_vec();
    skip.push("throttle");
    every_row(app, &skip).await
}

/// Every row of every table but those `skip` names (a table or a
/// `table.column`), as `column=value` text, sorted.
pub(super) async fn every_row(app: &TestApp, skip: &[&str]) -> BTreeMap<String, Vec<String>> {
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&app.database_url).await.expect("connect");
    let postgres = app.database_url.starts_with("postgres");
    let tables_sql = if postgres {
        "SELECT CAST(table_name AS TEXT) FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
    } else {
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    };
    let tables: Vec<(String,)> = sqlx::query_as(tables_sql).fetch_all(&mut conn).await.expect("tables");
    let mut all = BTreeMap::new();
    for (table,) in tables {
        if table.starts_with("_sqlx") || skip.contains(&table.as_str()) {
            continue;
        }
        let columns_sql = if postgres {
            format!(
                "SELECT CAST(column_name AS TEXT) FROM information_schema.columns \
                 WHERE table_schema = 'public' AND table_name = '{table}' ORDER BY ordinal_position"
            )
        } else {
            format!("SELECT name FROM pragma_table_info('{table}')")
        };
        let columns: Vec<(String,)> =
            sqlx::query_as(sqlx::AssertSqlSafe(columns_sql)).fetch_all(&mut conn).await.expect("columns");
        let shown: Vec<String> = columns
            .into_iter()
            .filter(|(c,)| !skip.contains(&format!("{table}.{c}").as_str()))
            .map(|(c,)| format!("'{c}=' || COALESCE(CAST(\"{c}\" AS TEXT), '-')"))
            .collect();
        let sql = format!("SELECT {} FROM {table}", shown.join(" || ' ' || "));
        let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(&mut conn).await.expect("rows");
        let mut rows: Vec<String> = rows.into_iter().map(|(r,)| r).collect();
        rows.sort();
        all.insert(table, rows);
    }
    all
}

/// Runs an operation with its first write failing, then its second, and
/// so on until it goes through: each failure is a 503 and leaves every row
/// as it was (but what `skip` names). `prepare` runs before each try,
/// before the rows are read (a ceremony to finish); `act` is the try.
/// Returns the answer that went through and how many writes it makes.
pub(super) async fn fail_each_write<P>(
    app: &TestApp,
    skip: &[&str],
    mut prepare: impl AsyncFnMut() -> P,
    mut act: impl AsyncFnMut(P) -> Reply,
) -> (Reply, u32) {
    for nth in 1..=30 {
        let prepared = prepare().await;
        // Bookkeeping a request left running (a guessing slot given back)
        // must not take the fault meant for the operation.
        app::server::throttle::settled().await;
        let before = all_rows(app, skip).await;
        app.state.db.fail_next_transaction_at(nth);
        let r = act(prepared).await;
        if r.status != StatusCode::SERVICE_UNAVAILABLE {
            return (r, nth - 1);
        }
        assert_error(&r, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
        let after = all_rows(app, skip).await;
        for (table, rows) in &before {
            assert_eq!(Some(rows), after.get(table), "failing write {nth} left a trace in {table}");
        }
    }
    panic!("the operation never went through");
}

/// Stops the app's mail worker once the `n` messages expected have been
/// sent and recorded: the queue then changes only when a test says so
/// (`deliver_due`), never between two readings of the rows.
async fn hold_the_mail(app: &TestApp, sink: Option<&super::mail::Sink>, n: usize) -> Vec<super::mail::Received> {
    let got = match sink {
        Some(sink) => sink.wait_for(n).await,
        None => Vec::new(),
    };
    let started = std::time::Instant::now();
    loop {
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&app.database_url).await.expect("connect");
        let (busy,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM mail_queue WHERE lease_until IS NOT NULL OR (status = 'pending' AND attempts = 0)",
        )
        .fetch_one(&mut conn)
        .await
        .expect("queue");
        if busy == 0 || sink.is_none() {
            break;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "the mail worker did not settle");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    app.state.mail.stop_and_wait().await;
    got
}

/// The token of the first link to `path` in the messages to `address`
/// whose subject has `words`.
fn link(messages: &[super::mail::Received], address: &str, words: &str, path: &str) -> String {
    messages
        .iter()
        .filter(|m| m.to.iter().any(|t| t == address) && m.subject().contains(words))
        .find_map(|m| m.token(path))
        .unwrap_or_else(|| panic!("no {words:?} message with a {path} link: {:?}", super::mail::subjects(messages)))
}

pub(super) async fn count(app: &TestApp, sql: &str) -> i64 {
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&app.database_url).await.expect("connect");
    let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(&mut conn).await.expect("count");
    n
}

#[tokio::test]
async fn a_lockdown_and_the_reset_after_it_by_mail_link_fail_whole_or_not_at_all() {
    let sink = super::mail::Sink::start().await;
    let app = super::mail::app_with_sink(&sink, &[]).await;
    let email = "atomic-lock@example.com";
    let secret = app.enrolled_user(email).await;
    // Verification and "two-factor turned on", with its lockdown link.
    let mail = hold_the_mail(&app, Some(&sink), 2).await;
    let token = link(&mail, email, "turned on", "/lockdown");

    let (r, writes) = fail_each_write(
        &app,
        &[],
        async || (),
        async |()| app.post_with(&new_client(), "/api/authentication/lockdown", json!({"token": token})).await,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(writes >= 5, "lock, end the log-ins, void the reset links, audit, queue: {writes}");
    // Whole: every session ended, log-in refused, the event and its mail.
    assert_eq!(app.get("/api/authentication").await.status, StatusCode::UNAUTHORIZED);
    assert_error(&app.log_in(email, PASSWORD).await, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM audit_events WHERE kind = 'locked_down'").await, 1);
    assert_eq!(app::server::mail::deliver_due(&app.state).await.expect("deliver"), 1, "the locked mail, once");
    let mail = sink.wait_for(3).await;
    let token = link(&mail, email, "locked", "/reset-password");

    let new_password = "a completely different passphrase 42";
    let (r, writes) = fail_each_write(
        &app,
        &[],
        async || (),
        async |()| {
            let reset = json!({"token": token, "newPassword": new_password});
            app.post_with(&new_client(), "/api/authentication/reset-password", reset).await
        },
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(writes >= 7, "token, password, unlock, log-ins, links, proved, audit, queue: {writes}");
    // Whole: unlocked with the new password, the second factor kept.
    assert_eq!(app.log_in(email, PASSWORD).await.status, StatusCode::UNAUTHORIZED);
    app.clock.advance(30);
    let r = app.log_in(email, new_password).await;
    assert_eq!((r.status, r.body["twoFactorRequired"].clone()), (StatusCode::OK, json!(true)), "{}", r.text);
    let r = app.post("/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": app.code_now(&secret)})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM audit_events WHERE kind = 'password_reset'").await, 1);
    // The link is kept as used (to say what it did if opened again); no
    // other reset link is left.
    let reset_links = "SELECT COUNT(*) FROM email_tokens WHERE purpose = 'reset' AND used_at IS NULL";
    assert_eq!(count(&app, reset_links).await, 0, "the link is used, the others void");
    let used = "SELECT COUNT(*) FROM email_tokens WHERE purpose = 'reset' AND used_at IS NOT NULL";
    assert_eq!(count(&app, used).await, 1);
}

#[tokio::test]
async fn an_email_verification_fails_whole_or_not_at_all() {
    let sink = super::mail::Sink::start().await;
    let app = super::mail::app_with_sink(&sink, &[("REQUIRE_EMAIL_VERIFICATION", "true")]).await;
    let email = "atomic-verify@example.com";
    assert_eq!(app.register(email).await.status, StatusCode::CREATED);
    let mail = hold_the_mail(&app, Some(&sink), 1).await;
    let token = link(&mail, email, "confirm your email", "/verify-email");

    let (r, writes) = fail_each_write(
        &app,
        &[],
        async || (),
        async |()| app.post_with(&new_client(), "/api/authentication/verify-email", json!({"token": token})).await,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(writes >= 2, "the token used, the address proved: {writes}");
    let r = app.log_in(email, PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["user"]["isEmailVerified"], true);
    let again = app.post("/api/authentication/verify-email", json!({"token": token})).await;
    assert_error(&again, StatusCode::BAD_REQUEST, "bad_request");
}

/// A software authenticator (real keys, real signatures) for the portal.
struct SoftKey(webauthn_authenticator_rs::softpasskey::SoftPasskey, url::Url);

impl SoftKey {
    fn new(app: &TestApp) -> Self {
        let origin = url::Url::parse(&app.state.gate.public_url).expect("origin");
        Self(webauthn_authenticator_rs::softpasskey::SoftPasskey::new(true), origin)
    }

    fn register(&mut self, options: &Value) -> Value {
        use webauthn_authenticator_rs::prelude::WebauthnAuthenticator;
        let options: webauthn_rs_proto::CreationChallengeResponse =
            serde_json::from_value(options.clone()).expect("creation options");
        serde_json::to_value(self.0.do_registration(self.1.clone(), options).expect("register")).expect("json")
    }
}

#[tokio::test]
async fn adding_and_removing_a_passkey_fail_whole_or_not_at_all() {
    let app = spawn_app().await;
    hold_the_mail(&app, None, 0).await;
    let email = "atomic-pk@example.com";
    assert_eq!(app.register(email).await.status, StatusCode::CREATED);
    assert_eq!(app.log_in(email, PASSWORD).await.status, StatusCode::OK);
    let other = new_client();
    let r = app.post_with(&other, "/api/authentication/log-in", json!({"email": email, "password": PASSWORD})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let mut key = SoftKey::new(&app);

    // The first factor of the account: the passkey, recovery codes, every
    // other log-in ended and this one renewed, in one transaction. The
    // ceremony is taken in that transaction too: after each failure the
    // same answer to the same ceremony goes through.
    let start = app.post("/api/webauthn/register/start", json!({"name": "Laptop"})).await;
    assert_eq!(start.status, StatusCode::OK, "{}", start.text);
    let finish = json!({"ceremony": start.body["ceremony"], "credential": key.register(&start.body["options"])});
    let prepare = async || finish.clone();
    let (added, writes) =
        fail_each_write(&app, &[], prepare, async |finish| app.post("/api/webauthn/register/finish", finish).await)
            .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    assert!(writes >= 7, "ceremony, passkey, codes, version, log-ins ended, log-in, token: {writes}");
    assert_eq!(added.body["recoveryCodes"].as_array().map(Vec::len), Some(10));
    let status = app.get("/api/2fa/status").await;
    assert_eq!((status.body["passkeys"].clone(), status.body["recoveryCodesLeft"].clone()), (json!(1), json!(10)));
    assert_eq!(app.get_with(&other, "/api/authentication").await.status, StatusCode::UNAUTHORIZED, "ended");
    assert!(set_cookie(&added, "access").is_some(), "this client's log-in is renewed");

    // The last factor: protection off, the codes gone, every log-in ended
    // and this one renewed.
    let id = added.body["passkey"]["id"].as_str().expect("id").to_owned();
    let path = format!("/api/webauthn/passkeys/{id}/remove");
    let (removed, writes) = fail_each_write(&app, &[], async || (), async |()| app.post(&path, json!({})).await).await;
    assert_eq!(removed.status, StatusCode::OK, "{}", removed.text);
    assert!(writes >= 6, "passkey, codes, version, log-ins ended, log-in, token: {writes}");
    assert_eq!((removed.body["passkeysLeft"].clone(), removed.body["twoFactorOn"].clone()), (json!(0), json!(false)));
    assert_eq!(app.get("/api/authentication").await.status, StatusCode::OK, "this client's new session");
    let status = app.get("/api/2fa/status").await;
    assert_eq!((status.body["passkeys"].clone(), status.body["recoveryCodesLeft"].clone()), (json!(0), json!(0)));
}

/// Traefik's question about `https://app.<domain>/` with a gate cookie:
/// "let through", or where the browser is sent ("" for through).
async fn gate_answer(app: &TestApp, domain: &str, gate: &str) -> String {
    let req = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(format!("{}/api/authz/forward-auth", app.base))
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", format!("app.{domain}"))
        .header("x-forwarded-uri", "/")
        .header("accept", "text/html")
        .header("cookie", format!("twofactor_gate={gate}"));
    let r = app.send(&new_client(), req).await;
    match r.status {
        StatusCode::OK => String::new(),
        _ => r.headers.get("location").and_then(|v| v.to_str().ok()).unwrap_or("?").to_owned(),
    }
}

/// Every gate cookie a reply sets, by its domain.
fn gate_cookies(r: &Reply) -> BTreeMap<String, String> {
    r.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|c| {
            let value = c.split(';').next()?.strip_prefix("twofactor_gate=")?;
            let domain = c.split(';').find_map(|a| a.trim().strip_prefix("Domain="))?;
            (!value.is_empty()).then(|| (domain.trim_start_matches('.').to_owned(), value.to_owned()))
        })
        .collect()
}

#[tokio::test]
async fn a_log_in_and_its_gate_cookies_land_whole_or_not_at_all() {
    let domains =
        [("COOKIE_DOMAINS", "example.test,other.test"), ("PUBLIC_URL", "http://auth.example.test"), ("SIGNUP", "open")];
    let app = spawn_app_with(&domains).await;
    hold_the_mail(&app, None, 0).await;
    // Whole: the tokens, and a gate cookie per domain that the gate knows
    // (it lets a two-factor log-in through and sends a password-only one
    // to turn two-factor on, as the default rules say).
    let check = async |r: &Reply, through: bool| {
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert!(set_cookie(r, "access").is_some() && set_cookie(r, "refresh").is_some());
        let gates = gate_cookies(r);
        assert_eq!(gates.keys().collect::<Vec<_>>(), ["example.test", "other.test"], "one per domain");
        for (domain, gate) in &gates {
            let answer = gate_answer(&app, domain, gate).await;
            assert!(if through { answer.is_empty() } else { answer.contains("need=two-factor") }, "{domain}: {answer}");
        }
    };

    // The password alone (2FA off): log-in, refresh token, a gate cookie
    // per domain.
    let email = "atomic-gate@example.com";
    assert_eq!(app.register(email).await.status, StatusCode::CREATED);
    let (r, writes) = fail_each_write(
        &app,
        &[],
        async || (),
        async |()| {
            app.post_with(&new_client(), "/api/authentication/log-in", json!({"email": email, "password": PASSWORD}))
                .await
        },
    )
    .await;
    assert!(writes >= 4, "log-in, refresh token, two gate cookies: {writes}");
    check(&r, false).await;

    // The code step: the password-stage token spent, then the same. Each
    // try needs a code of its own (a code is spent as it is checked, by
    // the replay guard, before the transaction).
    let email = "atomic-gate-2fa@example.com";
    let secret = app.enrolled_user(email).await;
    app.password_stage(email).await;
    let (r, writes) = fail_each_write(
        &app,
        &["users.totp_last_step"],
        async || app.clock.advance(30),
        async |()| {
            app.post("/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": app.code_now(&secret)})).await
        },
    )
    .await;
    assert!(writes >= 5, "stage token, log-in, refresh token, two gate cookies: {writes}");
    check(&r, true).await;
}

#[tokio::test]
async fn a_failed_mail_claim_leaves_the_message_queued_and_it_goes_once() {
    let sink = super::mail::Sink::start().await;
    let app = super::mail::app_with_sink(&sink, &[]).await;
    hold_the_mail(&app, None, 0).await;
    let email = "atomic-mail@example.com";
    assert_eq!(app.register(email).await.status, StatusCode::CREATED);
    let queued = "SELECT COUNT(*) FROM mail_queue WHERE status = 'pending' AND attempts = 0 AND lease_until IS NULL";
    assert_eq!(count(&app, queued).await, 1, "the verification waits");

    app::server::throttle::settled().await;
    let before = all_rows(&app, &[]).await;
    app.state.db.fail_next_transaction_at(1);
    let failed = app::server::mail::deliver_due(&app.state).await;
    assert_eq!(failed.map_err(|e| e.error), Err(app::error::ErrorKind::Unavailable), "the claim failed");
    assert_eq!(all_rows(&app, &[]).await, before, "nothing claimed, no link made");
    assert!(sink.received().is_empty());

    assert_eq!(app::server::mail::deliver_due(&app.state).await.expect("deliver"), 1);
    let mail = sink.wait_for(1).await;
    assert_eq!(mail.len(), 1, "sent once");
    let sent = "SELECT COUNT(*) FROM mail_queue WHERE status = 'sent' AND attempts = 1";
    assert_eq!(count(&app, sent).await, 1);
    assert_eq!(app::server::mail::deliver_due(&app.state).await.expect("deliver"), 0, "nothing left");
}
