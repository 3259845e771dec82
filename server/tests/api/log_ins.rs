//! The person's list of log-ins and "Log out" per device: each browser
//! listed in words with its address, this one marked; ending another one
//! kills its refresh token, access token and gate cookie at once and
//! leaves this one working; a handle reaches only its owner's log-ins; a
//! refresh racing the ending never revives the log-in.

use super::forms::{self, browser, location};
use super::*;

const FIREFOX_WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0";
const CHROME_LINUX: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";

const SAFARI_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) \
                             Version/17.5 Mobile/15E148 Safari/604.1";

const LIST: &str = "/api/authentication/log-ins";
const END: &str = "/api/authentication/log-ins/end";

/// The portal with gate cookies for `example.test`, letting in any live
/// log-in at `one.example.test`.
async fn gated_app() -> TestApp {
    gated_app_with("[[rules]]\ndomain = \"one.example.test\"\npolicy = \"one_factor\"\n").await
}

/// One browser's log-in: its client (cookie store) and its cookies as set
/// at log-in.
struct Browser {
    client: reqwest::Client,
    access: String,
    refresh: String,
    gate: String,
}

fn client_as(agent: &str) -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).user_agent(agent).build().expect("client")
}

impl TestApp {
    async fn browser_logged_in(&self, email: &str, agent: &str) -> Browser {
        let client = client_as(agent);
        let r =
            self.post_with(&client, "/api/authentication/log-in", json!({"email": email, "password": PASSWORD})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let cookie = |name| set_cookie(&r, name).filter(|v| !v.is_empty()).expect("a log-in sets its cookies");
        Browser { access: cookie("access"), refresh: cookie("refresh"), gate: cookie("twofactor_gate"), client }
    }

    /// What nginx's auth_request would hear for `GET http://one.example.test/`.
    async fn gate_with(&self, gate: &str) -> StatusCode {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        let req = client
            .get(format!("{}/api/authz/auth-request", self.base))
            .header("x-original-method", "GET")
            .header("x-original-url", "http://one.example.test/")
            .header("cookie", format!("twofactor_gate={gate}"));
        req.send().await.expect("gate").status()
    }

    /// Every part of a log-in refused: gate cookie, access token, refresh token.
    async fn assert_dead(&self, b: &Browser, what: &str) {
        assert_eq!(self.gate_with(&b.gate).await, StatusCode::UNAUTHORIZED, "gate cookie, {what}");
        assert_eq!(self.current_user_with(&b.access).await.status, StatusCode::UNAUTHORIZED, "access token, {what}");
        assert_eq!(self.refresh_with(&b.refresh).await.status, StatusCode::UNAUTHORIZED, "refresh token, {what}");
    }

    async fn list_of(&self, b: &Browser) -> Vec<Value> {
        let r = self.get_with(&b.client, LIST).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.body.as_array().expect("a list").clone()
    }

    /// The handle of the one listed log-in that is not `b`'s own.
    async fn other_id(&self, b: &Browser) -> String {
        let list = self.list_of(b).await;
        let others: Vec<&Value> = list.iter().filter(|l| l["current"] == false).collect();
        assert_eq!(others.len(), 1, "{list:?}");
        others[0]["id"].as_str().expect("id").to_owned()
    }

    async fn login_rows(&self) -> Vec<String> {
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&self.database_url).await.expect("connect");
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT id || ':' || last_seen_at || ':' || COALESCE(CAST(revoked_at AS TEXT), '-') FROM logins ORDER BY id",
        )
        .fetch_all(&mut conn)
        .await
        .expect("logins");
        rows.into_iter().map(|(r,)| r).collect()
    }
}

#[tokio::test]
async fn the_list_shows_each_browser_in_words_this_one_first_then_the_most_recently_seen() {
    let app = gated_app().await;
    let email = "two-browsers@example.com";
    assert_eq!(app.register(email).await.status, StatusCode::CREATED);
    let firefox = app.browser_logged_in(email, FIREFOX_WINDOWS).await;
    app.clock.advance(60);
    let chrome = app.browser_logged_in(email, CHROME_LINUX).await;
    app.clock.advance(60);
    let iphone = app.browser_logged_in(email, SAFARI_IPHONE).await;

    let list = app.list_of(&firefox).await;
    let browsers: Vec<&str> = list.iter().map(|l| l["browser"].as_str().unwrap_or("")).collect();
    assert_eq!(browsers, ["Firefox on Windows", "Safari on iOS", "Chrome on Linux"], "this one, then the newest seen");
    let current: Vec<bool> = list.iter().map(|l| l["current"].as_bool().unwrap_or(false)).collect();
    assert_eq!(current, [true, false, false]);
    for login in &list {
        assert_eq!(login["ip"], "127.0.0.1");
        assert_eq!(login["amr"], json!(["pwd"]));
    }
    assert_eq!((list[0]["createdAt"].as_i64(), list[2]["createdAt"].as_i64()), (Some(START), Some(START + 60)));
    // No zone told yet: UTC, said as such.
    assert_eq!(list[0]["createdWhen"], "15 Jan 2027, 08:00 UTC");
    // The ids are handles: never a log-in's own id (the refresh family,
    // inside the server), and they give nothing to present as a cookie.
    let ids: Vec<String> =
        app.login_rows().await.iter().map(|r| r.split(':').next().unwrap_or("").to_owned()).collect();
    for login in &list {
        let id = login["id"].as_str().expect("id");
        assert_eq!(id.len(), 32, "{id}");
        assert!(!ids.iter().any(|real| real == id || real.contains(id) || id.contains(real.as_str())), "{id}");
    }
    // Chrome's view marks Chrome, and gives the same handles.
    let seen = app.list_of(&chrome).await;
    assert_eq!(seen[0]["browser"], "Chrome on Linux");
    assert_eq!(seen[0]["current"], true);
    assert_eq!(seen[0]["id"], list[2]["id"]);

    // A refresh is "last seen": Firefox moves up, first seen kept; the
    // times are written in the person's zone once it is known.
    app.clock.advance(60);
    assert_eq!(app.refresh_with(&firefox.refresh).await.status, StatusCode::OK);
    let r = app.post_with(&iphone.client, "/api/account/time-zone", json!({"timeZone": "Europe/Berlin"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let list = app.list_of(&iphone).await;
    let browsers: Vec<&str> = list.iter().map(|l| l["browser"].as_str().unwrap_or("")).collect();
    assert_eq!(browsers, ["Safari on iOS", "Firefox on Windows", "Chrome on Linux"], "{list:?}");
    assert_eq!(list[1]["lastSeenAt"], START + 180);
    assert_eq!(list[1]["createdAt"], START);
    assert_eq!(list[1]["createdWhen"], "15 Jan 2027, 09:00 CET");
    assert_eq!(list[1]["lastSeenWhen"], "15 Jan 2027, 09:03 CET");

    // A log-out leaves the list.
    let r = app.post_with(&chrome.client, "/api/authentication/log-out", json!({})).await;
    assert_eq!(r.status, StatusCode::OK);
    let list = app.list_of(&iphone).await;
    assert_eq!(list.len(), 2, "the ended log-in is gone: {list:?}");
    assert!(list.iter().all(|l| l["browser"] != "Chrome on Linux"), "{list:?}");
}

#[tokio::test]
async fn ending_the_other_log_in_kills_its_tokens_and_gate_cookie_at_once_and_leaves_this_one() {
    let app = gated_app().await;
    let email = "end-other@example.com";
    assert_eq!(app.register(email).await.status, StatusCode::CREATED);
    let mine = app.browser_logged_in(email, FIREFOX_WINDOWS).await;
    let other = app.browser_logged_in(email, CHROME_LINUX).await;
    // Both work, and the caches know both (so the ending must reach them).
    for b in [&mine, &other] {
        assert_eq!(app.gate_with(&b.gate).await, StatusCode::OK);
        assert_eq!(app.current_user_with(&b.access).await.status, StatusCode::OK);
    }

    let id = app.other_id(&mine).await;
    let r = app.post_with(&mine.client, END, json!({"id": id})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["message"], "Logged out Chrome on Linux.");
    assert!(set_cookie(&r, "access").is_none(), "this browser keeps its cookies");
    app.assert_dead(&other, "after its ending").await;

    // This one goes on: portal, gate, refresh.
    assert_eq!(app.current_user_with(&mine.access).await.status, StatusCode::OK);
    assert_eq!(app.gate_with(&mine.gate).await, StatusCode::OK);
    assert_eq!(app.refresh_with(&mine.refresh).await.status, StatusCode::OK);
    let list = app.list_of(&mine).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["browser"], "Firefox on Windows");

    // Said in the activity, in plain words, with the changes.
    let a = app.get_with(&mine.client, "/api/authentication/activity").await;
    let changes: Vec<&str> =
        a.body["changes"].as_array().expect("changes").iter().filter_map(|e| e["kind"].as_str()).collect();
    assert!(changes.contains(&"log_in_ended"), "{changes:?}");

    // Ended already: 404, nothing more happens.
    let r = app.post_with(&mine.client, END, json!({"id": id})).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn another_persons_log_in_or_an_unknown_one_is_not_found_and_nothing_changes() {
    let app = gated_app().await;
    assert_eq!(app.register("ann@example.com").await.status, StatusCode::CREATED);
    assert_eq!(app.register("bob@example.com").await.status, StatusCode::CREATED);
    let ann = app.browser_logged_in("ann@example.com", FIREFOX_WINDOWS).await;
    let bob = app.browser_logged_in("bob@example.com", CHROME_LINUX).await;
    let bobs = app.list_of(&bob).await[0]["id"].as_str().expect("id").to_owned();
    // Bob's log-in's own id (the refresh family), as an access token carries it.
    let real_ids: Vec<String> =
        app.login_rows().await.iter().map(|r| r.split(':').next().unwrap_or("").to_owned()).collect();
    let before = (snapshot(&app).await, app.login_rows().await);
    let activity_before = app.count_audit().await;

    for id in [bobs.as_str(), "", "nope", &"0".repeat(32), real_ids[0].as_str(), real_ids[1].as_str()] {
        let r = app.post_with(&ann.client, END, json!({"id": id})).await;
        assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    }
    assert_eq!((snapshot(&app).await, app.login_rows().await), before, "nothing changed");
    assert_eq!(app.count_audit().await, activity_before, "nothing recorded");
    assert_eq!(app.current_user_with(&bob.access).await.status, StatusCode::OK);
    assert_eq!(app.gate_with(&bob.gate).await, StatusCode::OK);
    assert_eq!(app.refresh_with(&bob.refresh).await.status, StatusCode::OK);

    // Both endpoints need a full session; the write is refused cross-site.
    assert_error(&app.get(LIST).await, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_error(&app.post(END, json!({"id": bobs})).await, StatusCode::UNAUTHORIZED, "unauthenticated");
    let r = app
        .send(
            &ann.client,
            ann.client
                .post(format!("{}{END}", app.base))
                .header("origin", "https://evil.example")
                .json(&json!({"id": bobs})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = app.post_with(&ann.client, END, json!({})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(app.current_user_with(&bob.access).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_password_stage_session_can_neither_list_nor_end() {
    let app = spawn_app().await;
    let _secret = app.enrolled_user("stage@example.com").await;
    app.password_stage("stage@example.com").await;
    assert_error(&app.get(LIST).await, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_error(&app.post(END, json!({"id": "x"})).await, StatusCode::UNAUTHORIZED, "unauthenticated");
}

#[tokio::test]
async fn ending_this_browsers_own_log_in_logs_it_out() {
    let app = gated_app().await;
    let email = "end-mine@example.com";
    assert_eq!(app.register(email).await.status, StatusCode::CREATED);
    let mine = app.browser_logged_in(email, FIREFOX_WINDOWS).await;
    let other = app.browser_logged_in(email, CHROME_LINUX).await;
    let list = app.list_of(&mine).await;
    let own = list.iter().find(|l| l["current"] == true).expect("this one")["id"].as_str().expect("id").to_owned();
    let r = app.post_with(&mine.client, END, json!({"id": own})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(set_cookie(&r, "access").as_deref(), Some(""), "cookies cleared as a log-out clears them");
    assert_eq!(set_cookie(&r, "refresh").as_deref(), Some(""));
    app.assert_dead(&mine, "after ending this browser's own").await;
    assert_eq!(app.get_with(&mine.client, "/api/authentication").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.current_user_with(&other.access).await.status, StatusCode::OK, "the other one goes on");
}

#[tokio::test]
async fn the_form_without_javascript_ends_one_log_in() {
    let app = gated_app().await;
    let email = "end-nojs@example.com";
    assert_eq!(app.register(email).await.status, StatusCode::CREATED);
    let page_browser = browser();
    let r =
        app.form(&page_browser, "/login", &[("intent", "password"), ("email", email), ("password", PASSWORD)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let other = app.browser_logged_in(email, CHROME_LINUX).await;
    // The other browser has no JavaScript either.
    let other_page = forms::browser();
    let r = app.form(&other_page, "/login", &[("intent", "password"), ("email", email), ("password", PASSWORD)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let page = app.page(&page_browser, "/security").await;
    assert!(page.text.contains("Where you&#x27;re logged in") || page.text.contains("Where you're logged in"));
    assert!(page.text.contains("Chrome on Linux") && page.text.contains("This browser"), "{}", page.text);
    let list = app.get_with(&page_browser, LIST).await;
    let id_of = |browser: &str| {
        let list = list.body.as_array().expect("list");
        let found = list.iter().find(|l| l["current"] == false && l["browser"] == browser).expect("listed");
        found["id"].as_str().expect("id").to_owned()
    };
    let (id, other_page_id) = (&id_of("Chrome on Linux"), &id_of("An unknown browser"));
    assert!(page.text.contains(&format!("value=\"{id}\"")), "the form carries the handle");

    let r = app.form(&page_browser, "/security", &[("intent", "end-log-in"), ("login", id)]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.text.contains("Logged out Chrome on Linux."), "{}", r.text);
    app.assert_dead(&other, "after the form").await;
    // The other page browser, its access token unexpired but its log-in
    // ended, is sent to log in (it cannot restore a session itself).
    assert_eq!(app.page(&other_page, "/security").await.status, StatusCode::OK, "alive until ended");
    let r = app.form(&page_browser, "/security", &[("intent", "end-log-in"), ("login", other_page_id)]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app.page(&other_page, "/security").await;
    assert!(r.status.is_redirection(), "{} {}", r.status, r.text);
    assert_eq!(location(&r), "/login");
    assert_eq!(set_cookie(&r, "refresh").as_deref(), Some(""), "the dead log-in's cookies are forgotten");
    // Again: the page says it is gone, with a 404.
    let r = app.form(&page_browser, "/security", &[("intent", "end-log-in"), ("login", id)]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.text.contains("already ended"), "{}", r.text);
    // This browser's own: a log-out, to the log-in page.
    let list = app.get_with(&page_browser, LIST).await;
    let own = list.body[0]["id"].as_str().expect("id").to_owned();
    let r = app.form(&page_browser, "/security", &[("intent", "end-log-in"), ("login", &own)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(location(&r), "/login");
    assert_eq!(app.get_with(&page_browser, LIST).await.status, StatusCode::UNAUTHORIZED);
}

/// A refresh of log-in B in a loop (as a thief holding its refresh token
/// would) racing A's ending of B: afterwards nothing of B works, whatever
/// the refreshes got, A still does, and no theft was reported.
#[tokio::test]
async fn a_refresh_racing_the_ending_of_its_log_in_never_survives_it() {
    let app = gated_app().await;
    let email = "end-race@example.com";
    assert_eq!(app.register(email).await.status, StatusCode::CREATED);
    let a = app.browser_logged_in(email, FIREFOX_WINDOWS).await;
    let n = std::env::var("RACE_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let mut revived = 0;
    for round in 0..n {
        let b = app.browser_logged_in(email, CHROME_LINUX).await;
        let id = app.other_id(&a).await;
        let refresher = app.refresh_until_refused(&b.refresh);
        let ending = app.post_with(&a.client, END, json!({"id": id}));
        let (refreshed, ended) = tokio::join!(refresher, ending);
        assert_eq!(ended.status, StatusCode::OK, "round {round}: {}", ended.text);
        let mut alive = app.gate_with(&b.gate).await != StatusCode::UNAUTHORIZED;
        if let Some((access, refresh)) = refreshed.last() {
            alive |= app.current_user_with(access).await.status != StatusCode::UNAUTHORIZED;
            alive |= app.refresh_with(refresh).await.status != StatusCode::UNAUTHORIZED;
        }
        if alive {
            revived += 1;
        }
    }
    eprintln!("{revived} of {n} rounds left log-in B working");
    assert_eq!(revived, 0, "log-in B survived its ending in {revived} of {n} rounds");
    assert_eq!(app.get_with(&a.client, "/api/authentication").await.status, StatusCode::OK, "A goes on");
    assert_eq!(app.count_kind("refresh_reuse_detected").await, 0, "an ending is not a theft");
    assert_eq!(app.count_kind("log_in_ended").await, n as i64, "one audit event per ending");
}

impl TestApp {
    async fn count_audit(&self) -> i64 {
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&self.database_url).await.expect("connect");
        let (n,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM audit_events").fetch_one(&mut conn).await.expect("count");
        n
    }

    async fn count_kind(&self, kind: &str) -> i64 {
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&self.database_url).await.expect("connect");
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM audit_events WHERE kind = $1")
            .bind(kind)
            .fetch_one(&mut conn)
            .await
            .expect("count");
        n
    }
}
