//! Lockdown closes the loop (issue 21, item 9) and times in the person's
//! time zone (item 7): the new-browser notice gives the facts (browser and
//! system in words, the address, the local time) before its button; the
//! "locked" mail leads with the log-in that set it off, then the reset
//! link; after the reset the activity names that log-in and marks it. The
//! zone is stored only when the tz database knows it. Real mail, read from
//! an SMTP sink.

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};

use super::mail::{Received, Sink, app_with_sink, subjects};
use super::*;

const CHROME_ON_LINUX: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const STRANGER_IP: &str = "203.0.113.5";

/// A browser the server sees at `ip` (through the trusted proxy header).
fn browser_at(agent: &str, ip: &str) -> reqwest::Client {
    let mut headers = HeaderMap::new();
    headers.insert("x-forwarded-for", HeaderValue::from_str(ip).expect("ip"));
    reqwest::Client::builder().cookie_store(true).user_agent(agent).default_headers(headers).build().expect("client")
}

/// The plain-text part of a message (the HTML part follows it).
fn plain(m: &Received) -> &str {
    let text = m.text.as_str();
    let end = text.find("Content-Type: text/html").unwrap_or(text.len());
    &text[..end]
}

/// Where `needle` is in `haystack`, or a failure naming both.
fn at(haystack: &str, needle: &str) -> usize {
    haystack.find(needle).unwrap_or_else(|| panic!("{needle:?} is not in:\n{haystack}"))
}

fn about<'a>(messages: &'a [Received], email: &str, words: &str) -> Vec<&'a Received> {
    messages.iter().filter(|m| m.to.iter().any(|t| t == email) && m.subject().contains(words)).collect()
}

async fn set_zone(app: &TestApp, zone: &str) -> Reply {
    app.post("/api/account/time-zone", json!({"timeZone": zone})).await
}

async fn stored_zone(app: &TestApp) -> Value {
    let me = app.get("/api/authentication").await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    me.body["timeZone"].clone()
}

#[tokio::test]
async fn a_time_zone_is_stored_only_when_the_tz_database_knows_it() {
    let app = spawn_app().await;
    // Without a session: 401; from another site: 403 before anything runs.
    assert_eq!(set_zone(&app, "Europe/Berlin").await.status, StatusCode::UNAUTHORIZED);
    let email = "zones@example.com";
    assert_eq!(app.register(email).await.status, StatusCode::CREATED);
    assert_eq!(app.log_in(email, PASSWORD).await.status, StatusCode::OK);
    assert_eq!(stored_zone(&app).await, Value::Null, "no zone until the browser says one");
    let url = format!("{}/api/account/time-zone", app.base);
    let r = app
        .send(
            &app.client,
            app.client.post(&url).header("sec-fetch-site", "cross-site").json(&json!({"timeZone": "Asia/Tokyo"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(stored_zone(&app).await, Value::Null);

    // Unknown names (and things that are not names) are refused, nothing stored.
    let long = "A".repeat(200);
    for bad in ["Mars/Olympus_Mons", "", "Europe/Berlin/Mitte", "+02:00", "../../etc/localtime", long.as_str()] {
        let r = set_zone(&app, bad).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
        assert_eq!(stored_zone(&app).await, Value::Null, "{bad:?} stored nothing");
    }
    // A known one is stored as the database spells it.
    let r = set_zone(&app, "europe/berlin").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["timeZone"], "Europe/Berlin");
    assert_eq!(stored_zone(&app).await, "Europe/Berlin");
    // A later unknown one leaves it as it was.
    assert_error(&set_zone(&app, "Atlantis/Capital").await, StatusCode::BAD_REQUEST, "bad_request");
    assert_eq!(stored_zone(&app).await, "Europe/Berlin");

    // The activity says its times in that zone, with the abbreviation.
    let a = app.get("/api/authentication/activity").await;
    assert_eq!(a.body["timeZone"], "Europe/Berlin");
    let when = a.body["events"][0]["when"].as_str().expect("when");
    // START is 2027-01-15 08:00:10 UTC: 09:00 in Berlin, in winter.
    assert_eq!(when, "15 Jan 2027, 09:00 CET", "{}", a.text);
}

#[tokio::test]
async fn without_a_zone_times_are_utc_and_say_so() {
    let sink = Sink::start().await;
    let app = app_with_sink(&sink, &[("TRUSTED_PROXY_HEADER", "x-forwarded-for")]).await;
    let email = "utc@example.com";
    assert_eq!(app.register(email).await.status, StatusCode::CREATED);
    assert_eq!(app.log_in(email, PASSWORD).await.status, StatusCode::OK);
    app.clock.advance(60);
    let stranger = browser_at(CHROME_ON_LINUX, STRANGER_IP);
    let r = app.post_with(&stranger, "/api/authentication/log-in", json!({"email": email, "password": PASSWORD})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let all = sink.wait_for(2).await; // the confirmation link, the notice
    let notice = about(&all, email, "new log-in")[0];
    at(plain(notice), "Chrome on Linux, from 203.0.113.5, on 15 Jan 2027, 08:01 UTC.");
    let a = app.get("/api/authentication/activity").await;
    assert_eq!(a.body["timeZone"], Value::Null);
    assert_eq!(a.body["events"][0]["when"], "15 Jan 2027, 08:01 UTC", "{}", a.text);
}

#[tokio::test]
async fn the_notice_the_locked_mail_and_the_activity_close_the_loop() {
    let sink = Sink::start().await;
    let app = app_with_sink(&sink, &[("TRUSTED_PROXY_HEADER", "x-forwarded-for")]).await;
    let email = "loop@example.com";
    let secret = app.enrolled_user(email).await;
    assert_eq!(set_zone(&app, "Europe/Berlin").await.status, StatusCode::OK);
    sink.wait_for(2).await; // the confirmation link; two-factor turned on

    // Someone else logs in with the password and a code, from a browser
    // that never logged in to the account before.
    app.clock.advance(120);
    let stranger = browser_at(CHROME_ON_LINUX, STRANGER_IP);
    let r = app.post_with(&stranger, "/api/authentication/log-in", json!({"email": email, "password": PASSWORD})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app
        .post_with(&stranger, "/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": app.code_now(&secret)}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let all = sink.wait_for(3).await;
    let notices = about(&all, email, "new log-in from a browser");
    assert_eq!(notices.len(), 1, "{:?}", subjects(&all));
    let notice = plain(notices[0]);
    // The facts, in words and local time, come before the button's link;
    // the User-Agent itself is never quoted.
    let what = at(notice, "Someone logged in to your account from a browser that had not logged in to it before.");
    let facts = at(notice, "Chrome on Linux, from 203.0.113.5, on 15 Jan 2027, 09:02 CET.");
    let if_you = at(notice, "If this was you, there is nothing to do.");
    let link = at(notice, "/lockdown?token=");
    assert!(what < facts && facts < if_you && if_you < link, "{notice}");
    assert!(!notice.contains("KHTML") && !notice.contains(" UTC"), "{notice}");
    let token = notices[0].token("/lockdown").expect("lockdown link");

    // The owner locks the account from their own browser, later.
    app.clock.advance(600);
    let r = app.post("/api/authentication/lockdown", json!({"token": token})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let all = sink.wait_for(4).await;
    let locked = about(&all, email, "your account is locked");
    assert_eq!(locked.len(), 1, "{:?}", subjects(&all));
    let locked_text = plain(locked[0]);
    // It leads with what happened (when, which notice, which log-in), then
    // the reset link, then what to do next.
    let what = at(
        locked_text,
        "Your account was locked on 15 Jan 2027, 09:12 CET from the \"This wasn't me\" link of our notice about a \
         log-in from a new browser: Chrome on Linux, from 203.0.113.5, on 15 Jan 2027, 09:02 CET.",
    );
    let link = at(locked_text, "/reset-password?token=");
    let next = at(locked_text, "open the security page");
    assert!(what < link && link < next, "{locked_text}");
    let reset = locked[0].token("/reset-password").expect("reset link");

    // After the reset, the owner logs in again and reads the activity.
    app.clock.advance(60);
    let new_password = "a completely different passphrase 42";
    let r = app.post("/api/authentication/reset-password", json!({"token": reset, "newPassword": new_password})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    app.clock.advance(30);
    assert_eq!(app.log_in(email, new_password).await.status, StatusCode::OK);
    let r = app.post("/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": app.code_now(&secret)})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let a = app.get("/api/authentication/activity").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let changes = a.body["changes"].as_array().expect("changes");
    let lockdown = changes.iter().find(|e| e["kind"] == "locked_down").expect("the lockdown");
    assert_eq!(
        lockdown["about"],
        json!({
            "what": "a log-in from a new browser",
            "browser": "Chrome on Linux",
            "ip": STRANGER_IP,
            "when": "15 Jan 2027, 09:02 CET",
        }),
        "{}",
        a.text
    );
    assert_eq!(lockdown["when"], "15 Jan 2027, 09:12 CET");
    // Exactly the stranger's log-in is marked; the owner's are not.
    let events = a.body["events"].as_array().expect("events");
    let marked: Vec<&Value> = events.iter().filter(|e| e["setOffLockdown"] == true).collect();
    assert_eq!(marked.len(), 1, "{}", a.text);
    assert_eq!(marked[0]["kind"], "log_in_ok");
    assert_eq!(marked[0]["ip"], STRANGER_IP);
    assert_eq!(marked[0]["when"], "15 Jan 2027, 09:02 CET");
    assert!(events.iter().filter(|e| e["kind"] == "log_in_ok").count() >= 3, "{}", a.text);
}

#[tokio::test]
async fn a_lockdown_from_a_notice_about_a_change_marks_that_change() {
    let sink = Sink::start().await;
    let app = app_with_sink(&sink, &[]).await;
    let email = "change@example.com";
    app.enrolled_user(email).await;
    let all = sink.wait_for(2).await;
    let notice = about(&all, email, "turned on")[0];
    // No zone is known: the notice says UTC.
    at(plain(notice), "on 15 Jan 2027, 08:00 UTC.");
    let token = notice.token("/lockdown").expect("lockdown link");
    app.clock.advance(60);
    assert_eq!(app.post("/api/authentication/lockdown", json!({"token": token})).await.status, StatusCode::OK);
    let all = sink.wait_for(3).await;
    let locked = plain(about(&all, email, "your account is locked")[0]);
    at(locked, "of our notice about two-factor authentication being turned on: ");
    // The lockdown's event keeps what set it off.
    let id = app.state.db.user_by_email(email).await.expect("user").expect("exists").id;
    let cause = app.state.db.latest_lockdown_cause(id).await.expect("cause").expect("known");
    assert_eq!(cause.kind, "notice:two_factor_on");
    assert_eq!(cause.at, START);
}
