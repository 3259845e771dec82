//! The admin page's server side: who may use it (members of ADMIN_GROUP
//! with two factors on; every admin route, read from the router, refuses
//! anyone else), proof before each change, the administrator's own role and
//! factors out of their reach, and every change audited with who did it.

use std::collections::BTreeMap;

use reqwest::Method;

use super::*;

/// The id of an account, from the database.
pub(super) async fn id_of(app: &TestApp, email: &str) -> i64 {
    app.state.db.user_by_email(email).await.unwrap().expect("an account").id
}

/// `boss@example.com`, enrolled, in `admins`, logged in on `app.client`;
/// returns the TOTP secret.
pub(super) async fn administrator(app: &TestApp) -> String {
    let secret = app.enrolled_user("boss@example.com").await;
    let id = id_of(app, "boss@example.com").await;
    assert!(app.state.db.set_group(id, "admins", true, app.clock_now()).await.unwrap());
    secret
}

/// `enrolled_user` in a browser of its own (`app.client` stays as it
/// was); returns the TOTP secret.
pub(super) async fn enrolled_elsewhere(app: &TestApp, email: &str) -> String {
    let c = new_client();
    let r = app
        .post_with(&c, "/api/authentication/register", json!({"email": email, "name": "N", "password": PASSWORD}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = app.post_with(&c, "/api/authentication/log-in", json!({"email": email, "password": PASSWORD})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let g = app.post_with(&c, "/api/2fa/generate", json!({})).await;
    let secret = g.body["secret"].as_str().expect("secret").to_owned();
    let on = app.post_with(&c, "/api/2fa/turn-on", json!({"twoFactorAuthenticationCode": app.code_now(&secret)})).await;
    assert_eq!(on.status, StatusCode::OK, "{}", on.text);
    assert_eq!(app.post_with(&c, "/api/authentication/log-out", json!({})).await.status, StatusCode::OK);
    secret
}

/// A second browser logged in as `email` with password and code.
async fn logged_in_elsewhere(app: &TestApp, email: &str, secret: &str) -> reqwest::Client {
    // A code of a later step than the one that turned two factors on.
    app.clock.advance(30);
    let c = new_client();
    let r = app.post_with(&c, "/api/authentication/log-in", json!({"email": email, "password": PASSWORD})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let code = json!({"twoFactorAuthenticationCode": app.code_now(secret)});
    let r = app.post_with(&c, "/api/2fa/authenticate", code).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    c
}

pub(super) async fn act(app: &TestApp, client: &reqwest::Client, body: Value) -> Reply {
    app.post_with(client, "/api/admin/act", body).await
}

/// The events of a person's trail that name boss@example.com, newest
/// first, and the page they were read from.
pub(super) async fn done_by_boss(app: &TestApp, person: i64) -> (Vec<String>, Reply) {
    let page = app.get(&format!("/api/admin/person?id={person}")).await;
    let labels = page.body["activity"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["by"] == "boss@example.com")
        .map(|e| e["label"].as_str().unwrap().to_owned())
        .collect();
    (labels, page)
}

/// Every admin route the router has, with a request that would succeed for
/// an administrator.
fn admin_requests(app: &TestApp, person: i64) -> Vec<(Method, String, Option<Value>)> {
    let routes: Vec<(Method, String)> = server::route_list(&app.state)
        .into_iter()
        .filter(|(_, p)| p.starts_with("/api/admin") || p.starts_with("/admin/"))
        .collect();
    assert!(routes.len() >= 12, "{routes:?}");
    let mut requests: Vec<_> = routes
        .into_iter()
        .map(|(m, p)| {
            let (path, body) = match p.as_str() {
                "/api/admin/people" => (format!("{p}?search=&page=1"), None),
                "/api/admin/person" => (format!("{p}?id={person}"), None),
                "/api/admin/act" => (p.clone(), Some(json!({"person": person, "action": "confirm-email"}))),
                "/api/admin/activity" => (format!("{p}?kind=log_in_ok&page=1"), None),
                "/api/admin/groups" | "/api/admin/overview" | "/api/admin/invitations" | "/api/admin/apps" => {
                    (p.clone(), None)
                }
                "/api/admin/app" => (
                    p.clone(),
                    Some(json!({"action": "create", "app": {"name": "Wiki", "redirectUris": ["https://wiki.example/cb"]}})),
                ),
                "/api/admin/invitation" => (p.clone(), Some(json!({"days": 3}))),
                // The invitation the line above makes (revokes are sorted last).
                "/api/admin/invitation/revoke" => (p.clone(), Some(json!({"id": 1}))),
                "/api/admin/rules" => (format!("{p}?url=https%3A%2F%2Fwiki.example.com%2F"), None),
                "/api/admin/group" => {
                    (p.clone(), Some(json!({"action": "create", "name": "testers", "argument": "ann@example.com"})))
                }
                "/admin/activity.csv" => (format!("{p}?kind=log_in_ok"), None),
                other => panic!("{other}: a new admin route; say here how to call it"),
            };
            (m, path, body)
        })
        .collect();
    requests.sort_by_key(|(_, p, _)| p.ends_with("/revoke"));
    requests
}

async fn call(
    app: &TestApp,
    client: &reqwest::Client,
    (method, path, body): &(Method, String, Option<Value>),
) -> Reply {
    let mut req = client.request(method.clone(), format!("{}{path}", app.base));
    if let Some(b) = body {
        req = req.json(b);
    }
    app.send(client, req).await
}

#[tokio::test]
async fn every_admin_route_refuses_all_but_administrators_with_two_factors() {
    let app = spawn_app().await;
    administrator(&app).await;
    let ann_secret = enrolled_elsewhere(&app, "ann@example.com").await;
    let ann = id_of(&app, "ann@example.com").await;
    let requests = admin_requests(&app, ann);

    // Logged out: 401. Someone with two factors outside the group: 403.
    let stranger = new_client();
    let ann_client = logged_in_elsewhere(&app, "ann@example.com", &ann_secret).await;
    for request in &requests {
        assert_eq!(call(&app, &stranger, request).await.status, StatusCode::UNAUTHORIZED, "{request:?}");
        let r = call(&app, &ann_client, request).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{request:?}: {}", r.text);
    }
    // In the group without two factors: 403 too.
    assert_eq!(app.register("carl@example.com").await.status, StatusCode::CREATED);
    let carl_id = id_of(&app, "carl@example.com").await;
    app.state.db.set_group(carl_id, "admins", true, app.clock_now()).await.unwrap();
    let carl = new_client();
    let r = app
        .post_with(&carl, "/api/authentication/log-in", json!({"email": "carl@example.com", "password": PASSWORD}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    for request in &requests {
        assert_eq!(call(&app, &carl, request).await.status, StatusCode::FORBIDDEN, "{request:?}");
    }
    // The pages offer the admin page to the administrator only.
    assert_eq!(app.get("/api/authentication").await.body["isAdmin"], true);
    for client in [&ann_client, &carl] {
        let me = app.get_with(client, "/api/authentication").await;
        assert_eq!(me.status, StatusCode::OK);
        assert!(me.body.get("isAdmin").is_none(), "{}", me.text);
    }
    // Nothing was changed by any of them.
    let ann_row = app.state.db.user_by_id(ann).await.unwrap().unwrap();
    assert!(ann_row.email_verified_at.is_none());
    // The administrator gets through every one.
    for request in &requests {
        let r = call(&app, &app.client, request).await;
        assert_eq!(r.status, StatusCode::OK, "{request:?}: {}", r.text);
    }
    // A cross-site post is refused before anything else.
    let r = app
        .send(
            &app.client,
            app.client
                .post(format!("{}/api/admin/act", app.base))
                .header("origin", "https://evil.example")
                .json(&json!({"person": ann, "action": "reset-factors"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(app.state.db.user_by_id(ann).await.unwrap().unwrap().totp_enabled);
}

#[tokio::test]
async fn an_administrator_changes_accounts_with_fresh_proof_and_each_change_names_them() {
    let app = spawn_app().await;
    let boss_secret = administrator(&app).await;
    let ann_secret = enrolled_elsewhere(&app, "ann@example.com").await;
    let ann = id_of(&app, "ann@example.com").await;
    let ann_client = logged_in_elsewhere(&app, "ann@example.com", &ann_secret).await;

    // The list finds her by part of her address and by group.
    let r = app.get("/api/admin/people?search=ANN%40").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["total"], 1);
    assert_eq!(r.body["people"][0]["email"], "ann@example.com");
    assert_eq!(r.body["people"][0]["twoFactor"], true);
    let r = app.get("/api/admin/people?group=admins").await;
    assert_eq!(r.body["people"][0]["email"], "boss@example.com");
    assert_eq!(r.body["total"], 1);
    // `%` is a character to look for, not a wildcard.
    assert_eq!(app.get("/api/admin/people?search=%25").await.body["total"], 0);
    assert_eq!(app.get("/api/admin/people?order=name").await.status, StatusCode::BAD_REQUEST);

    // Her page lists her one log-in; ending it ends her session (the log-in
    // of the administrator is fresh: no proof asked).
    let page = app.get(&format!("/api/admin/person?id={ann}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let offered: Vec<&str> =
        page.body["offers"].as_array().unwrap().iter().map(|o| o["action"].as_str().unwrap()).collect();
    assert_eq!(
        offered,
        ["confirm-email", "send-reset", "reset-factors", "lock", "end-all-log-ins", "delete"],
        "{}",
        page.text
    );
    let handle = page.body["logIns"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(page.body["logIns"].as_array().unwrap().len(), 1);
    let r = act(&app, &app.client, json!({"person": ann, "action": "end-log-in", "argument": handle})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(app.get_with(&ann_client, "/api/authentication").await.status, StatusCode::UNAUTHORIZED);
    let again = act(&app, &app.client, json!({"person": ann, "action": "end-log-in", "argument": handle})).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);

    // Five minutes on, a change asks for proof and changes nothing without it.
    app.clock.advance(301);
    let r = app.post("/api/authentication/refresh", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = act(&app, &app.client, json!({"person": ann, "action": "add-group", "argument": "staff"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(app.state.db.groups_of(ann).await.unwrap().is_empty());
    let wrong = act(
        &app,
        &app.client,
        json!({"person": ann, "action": "add-group", "argument": "staff", "code": app.wrong_code(&boss_secret)}),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.text);
    let code = app.code_now(&boss_secret);
    let r =
        act(&app, &app.client, json!({"person": ann, "action": "add-group", "argument": "staff", "code": code})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(app.state.db.groups_of(ann).await.unwrap(), ["staff"]);
    // The password stands as proof as well.
    let r = act(&app, &app.client, json!({"person": ann, "action": "reset-factors", "password": PASSWORD})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let row = app.state.db.user_by_id(ann).await.unwrap().unwrap();
    assert!(!row.two_factor());
    assert_eq!(app.state.db.recovery_codes_left(ann).await.unwrap(), 0);

    // Locked: her password no longer logs her in; unlocked, it does.
    let r = act(&app, &app.client, json!({"person": ann, "action": "lock", "password": PASSWORD})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let her = new_client();
    let login = json!({"email": "ann@example.com", "password": PASSWORD});
    let r = app.post_with(&her, "/api/authentication/log-in", login.clone()).await;
    assert_eq!((r.status, r.body["fields"]["account"].as_str()), (StatusCode::FORBIDDEN, Some("locked")), "{}", r.text);
    let r = act(&app, &app.client, json!({"person": ann, "action": "unlock", "password": PASSWORD})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(app.post_with(&her, "/api/authentication/log-in", login).await.status, StatusCode::OK);
    let r = act(
        &app,
        &app.client,
        json!({"person": ann, "action": "remove-passkey", "argument": "nope", "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);

    // Her activity says what was done and by whom.
    let (by_boss, _) = done_by_boss(&app, ann).await;
    assert_eq!(
        by_boss,
        [
            "Unlocked by an administrator",
            "Locked by an administrator",
            "Two-factor authentication reset by an administrator",
            "Added to a group by an administrator",
            "Logged out one device"
        ]
    );
    // Bad input: unknown action, a bad group name, no such person.
    for body in [
        json!({"person": ann, "action": "delete-everything", "password": PASSWORD}),
        json!({"person": ann, "action": "add-group", "argument": "a b", "password": PASSWORD}),
    ] {
        assert_eq!(act(&app, &app.client, body).await.status, StatusCode::BAD_REQUEST);
    }
    let r = act(&app, &app.client, json!({"person": 999_999, "action": "confirm-email", "password": PASSWORD})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_administrator_cannot_take_away_their_own_role_or_factors() {
    let app = spawn_app().await;
    administrator(&app).await;
    let boss = id_of(&app, "boss@example.com").await;
    for (action, argument) in [
        ("remove-group", "admins"),
        ("reset-factors", ""),
        ("end-all-log-ins", ""),
        ("lock", ""),
        ("remove-passkey", "x"),
    ] {
        let r = act(
            &app,
            &app.client,
            json!({"person": boss, "action": action, "argument": argument, "password": PASSWORD}),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{action}: {}", r.text);
    }
    assert_eq!(app.state.db.groups_of(boss).await.unwrap(), ["admins"]);
    assert!(app.state.db.user_by_id(boss).await.unwrap().unwrap().two_factor());
    // Their own page offers nothing that the server would refuse.
    let own = app.get(&format!("/api/admin/person?id={boss}")).await;
    let offered: Vec<&str> =
        own.body["offers"].as_array().unwrap().iter().map(|o| o["action"].as_str().unwrap()).collect();
    assert_eq!(offered, ["confirm-email", "send-reset"], "{}", own.text);
    // Another administrator can be taken out of the group: one is left.
    let other = enrolled_elsewhere(&app, "dana@example.com").await;
    drop(other);
    let dana = id_of(&app, "dana@example.com").await;
    app.state.db.set_group(dana, "admins", true, app.clock_now()).await.unwrap();
    let r = act(&app, &app.client, json!({"person": dana, "action": "remove-group", "argument": "admins"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(app.state.db.groups_of(dana).await.unwrap().is_empty());
}

#[tokio::test]
async fn an_administrator_removes_a_lost_passkey_and_the_last_one_ends_its_log_ins() {
    use super::passkeys::{Authenticator, register_key};
    let app = spawn_app().await;
    administrator(&app).await;
    // Carl protects his account with one passkey alone, in his own browser.
    let carl = new_client();
    let body = json!({"email": "carl@example.com", "name": "Carl", "password": PASSWORD});
    assert_eq!(app.post_with(&carl, "/api/authentication/register", body).await.status, StatusCode::CREATED);
    let login = json!({"email": "carl@example.com", "password": PASSWORD});
    assert_eq!(app.post_with(&carl, "/api/authentication/log-in", login).await.status, StatusCode::OK);
    let mut key = Authenticator::new(&app);
    let r = register_key(&app, &carl, &mut key, "Blue key").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = id_of(&app, "carl@example.com").await;

    let page = app.get(&format!("/api/admin/person?id={id}")).await;
    assert_eq!(page.body["passkeys"][0]["name"], "Blue key", "{}", page.text);
    let passkey = page.body["passkeys"][0]["id"].as_str().unwrap().to_owned();
    let r = act(&app, &app.client, json!({"person": id, "action": "remove-passkey", "argument": passkey})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // His last factor went: two factors are off, his log-ins ended, and the
    // trail names the administrator for both.
    let row = app.state.db.user_by_id(id).await.unwrap().unwrap();
    assert!(!row.two_factor());
    assert_eq!(app.get_with(&carl, "/api/authentication").await.status, StatusCode::UNAUTHORIZED);
    let (by_boss, page) = done_by_boss(&app, id).await;
    assert_eq!(by_boss, ["Two-factor authentication turned off", "Passkey removed"], "{}", page.text);
    let again = act(&app, &app.client, json!({"person": id, "action": "remove-passkey", "argument": passkey})).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_deleted_account_leaves_no_row_that_names_the_person_and_fails_whole_or_not_at_all() {
    let app = spawn_app().await;
    administrator(&app).await;
    app.state.mail.stop_and_wait().await;
    let (email, name) = ("ann.quill@example.com", "Ann Quill");
    // Ann: an account with a log-in, two factors, recovery codes, a group,
    // wrong passwords counted against her address, a reset mail waiting.
    let her = new_client();
    let r = app
        .post_with(&her, "/api/authentication/register", json!({"email": email, "name": name, "password": PASSWORD}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(
        app.post_with(&her, "/api/authentication/log-in", json!({"email": email, "password": PASSWORD})).await.status,
        StatusCode::OK
    );
    let g = app.post_with(&her, "/api/2fa/generate", json!({})).await;
    let secret = g.body["secret"].as_str().unwrap().to_owned();
    let on =
        app.post_with(&her, "/api/2fa/turn-on", json!({"twoFactorAuthenticationCode": app.code_now(&secret)})).await;
    assert_eq!(on.status, StatusCode::OK, "{}", on.text);
    let wrong = json!({"email": email, "password": "not her password at all"});
    assert_eq!(
        app.post_with(&new_client(), "/api/authentication/log-in", wrong).await.status,
        StatusCode::UNAUTHORIZED
    );
    let forgot = json!({"email": email});
    let r = app.post_with(&new_client(), "/api/authentication/forgot-password", forgot).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let ann = id_of(&app, email).await;
    let r = act(&app, &app.client, json!({"person": ann, "action": "add-group", "argument": "staff"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let names_her = |rows: &BTreeMap<String, Vec<String>>| -> Vec<String> {
        let id_columns = [format!("user_id={ann}"), format!("actor_id={ann}"), format!("id={ann}")];
        rows.iter()
            .flat_map(|(table, rows)| rows.iter().map(move |r| (table, r)))
            .filter(|(table, row)| {
                row.contains(email)
                    || row.contains(name)
                    || row.split(' ').any(|part| {
                        id_columns[..2].contains(&part.to_owned())
                            || (table.as_str() == "users" && part == id_columns[2])
                    })
            })
            .map(|(table, row)| format!("{table}: {row}"))
            .collect()
    };
    let before = super::atomic::every_row(&app, &[]).await;
    for table in ["users", "throttle", "mail_queue", "logins", "audit_events", "user_groups", "recovery_codes"] {
        assert!(!names_her(&BTreeMap::from([(table.to_owned(), before[table].clone())])).is_empty(), "{table}");
    }
    let her_events = before["audit_events"].iter().filter(|r| r.contains(&format!("user_id={ann} "))).count();

    // A confirmation that is not her address, and deleting oneself: refused.
    let boss = id_of(&app, "boss@example.com").await;
    for (person, typed, status) in [
        (ann, "", StatusCode::BAD_REQUEST),
        (ann, "ann@example.com", StatusCode::BAD_REQUEST),
        (boss, "boss@example.com", StatusCode::FORBIDDEN),
    ] {
        let r = act(&app, &app.client, json!({"person": person, "action": "delete", "argument": typed})).await;
        assert_eq!(r.status, status, "{typed}: {}", r.text);
    }
    assert_eq!(super::atomic::every_row(&app, &[]).await, before, "a refusal changes nothing");

    let (r, writes) = super::atomic::fail_each_write(
        &app,
        &[],
        async || (),
        async |()| {
            act(&app, &app.client, json!({"person": ann, "action": "delete", "argument": " Ann.Quill@example.com"}))
                .await
        },
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(writes >= 5, "log-ins, audit, mail, throttle, account, event: {writes}");
    let after = super::atomic::every_row(&app, &[]).await;
    assert_eq!(names_her(&after), Vec::<String>::new());
    // Her events stay, anonymised, and one more names the administrator.
    assert_eq!(after["audit_events"].len(), before["audit_events"].len() + 1);
    let deleted = after["audit_events"].iter().filter(|r| r.contains("kind=account_deleted")).collect::<Vec<_>>();
    assert_eq!(deleted.len(), 1);
    let parts: Vec<&str> = deleted[0].split(' ').collect();
    assert!(parts.contains(&format!("actor_id={boss}").as_str()) && parts.contains(&"user_id=-"), "{}", deleted[0]);
    let anonymised = |row: &&String| row.split(' ').any(|p| p == "user_id=-") && row.contains("ip=- ");
    assert!(after["audit_events"].iter().filter(anonymised).count() >= her_events, "{:?}", after["audit_events"]);
    assert!(her_events >= 3, "{her_events}");
    // She is logged out and cannot log in; she is nowhere on the page.
    assert_eq!(app.get_with(&her, "/api/authentication").await.status, StatusCode::UNAUTHORIZED);
    let login = json!({"email": email, "password": PASSWORD});
    assert_eq!(
        app.post_with(&new_client(), "/api/authentication/log-in", login).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.get("/api/admin/people?search=quill").await.body["total"], 0);
    assert_eq!(app.get(&format!("/api/admin/person?id={ann}")).await.status, StatusCode::NOT_FOUND);
    let again = act(&app, &app.client, json!({"person": ann, "action": "delete", "argument": email})).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_audit_trail_of_everyone_is_filtered_paged_and_exported_as_csv() {
    let app = spawn_app().await;
    let boss_secret = administrator(&app).await;
    drop(boss_secret);
    let ann_secret = enrolled_elsewhere(&app, "ann@example.com").await;
    drop(ann_secret);
    // Wrong passwords for Ann from a browser that says something a
    // spreadsheet would run.
    let odd = reqwest::Client::builder().user_agent("=cmd|' /C calc'!A0").build().unwrap();
    for _ in 0..3 {
        let wrong = json!({"email": "ann@example.com", "password": "not her password at all"});
        assert_eq!(app.post_with(&odd, "/api/authentication/log-in", wrong).await.status, StatusCode::UNAUTHORIZED);
    }

    let all = app.get("/api/admin/activity").await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text);
    assert_eq!(all.body["total"], 7, "two log-ins, two turned on, three failed: {}", all.text);
    assert_eq!(all.body["timeZone"], "UTC");
    assert!(all.body["kinds"].as_array().unwrap().iter().any(|k| k[0] == "account_deleted"));
    let failed = app.get("/api/admin/activity?person=ANN&kind=log_in_failed").await;
    assert_eq!(failed.body["total"], 3, "{}", failed.text);
    let line = &failed.body["events"][0];
    assert_eq!(line["person"], "ann@example.com");
    assert_eq!(line["label"], "Failed log-in (wrong password)");
    assert_eq!(line["ip"], "127.0.0.1");
    assert_eq!(app.get("/api/admin/activity?ip=127.0.&kind=log_in_failed").await.body["total"], 3);
    assert_eq!(app.get("/api/admin/activity?ip=10.&kind=log_in_failed").await.body["total"], 0);
    // Dates are whole days; the test clock is at 2027-01-15 (UTC).
    let today = chrono::DateTime::from_timestamp(app.state.now(), 0).unwrap().format("%Y-%m-%d").to_string();
    let r = app.get(&format!("/api/admin/activity?kind=log_in_failed&from={today}&to={today}")).await;
    assert_eq!(r.body["total"], 3, "{}", r.text);
    let r = app.get("/api/admin/activity?kind=log_in_failed&to=2000-01-01").await;
    assert_eq!(r.body["total"], 0, "{}", r.text);
    for bad in ["kind=nope", "from=yesterday", "from=2026-02-30", "ip=10.0.0.0%2F8", "from=2026-12-07&to=2026-12-06"] {
        let r = app.get(&format!("/api/admin/activity?{bad}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text);
    }
    // 50 a page.
    let meta = app::server::account::operator_meta();
    for _ in 0..50 {
        app::server::audit::audit(&app.state, None, app::wire::AuditKind::LogInFailed, &meta).await;
    }
    let second = app.get("/api/admin/activity?page=2").await;
    assert_eq!(second.body["page"], 2);
    assert_eq!((second.body["total"].as_i64(), second.body["pages"].as_i64()), (Some(57), Some(2)));
    assert_eq!(second.body["events"].as_array().unwrap().len(), 7);

    // The CSV: the same filter, every match, formulas defused.
    let csv = app
        .send(&app.client, app.client.get(format!("{}/admin/activity.csv?person=ann&kind=log_in_failed", app.base)))
        .await;
    assert_eq!(csv.status, StatusCode::OK, "{}", csv.text);
    assert_eq!(csv.headers["content-type"], "text/csv; charset=utf-8");
    assert!(csv.headers["content-disposition"].to_str().unwrap().starts_with("attachment; filename=\"activity-"));
    let lines: Vec<&str> = csv.text.lines().collect();
    assert_eq!(lines[0], "time,kind,event,person,by,address,user_agent,detail");
    assert_eq!(lines.len(), 4, "{}", csv.text);
    assert!(
        lines[1].ends_with(
            ",log_in_failed,Failed log-in (wrong password),ann@example.com,,127.0.0.1,\"'=cmd|' /C calc'!A0\","
        ),
        "{}",
        lines[1]
    );
    let bad = app.send(&app.client, app.client.get(format!("{}/admin/activity.csv?from=soon", app.base))).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text);
}

pub(super) async fn group(app: &TestApp, body: Value) -> Reply {
    app.post("/api/admin/group", body).await
}

#[tokio::test]
async fn groups_are_made_renamed_and_deleted_with_every_member_told_in_their_activity() {
    use app::server::oidc::clients::{self, NewClient};
    let app = spawn_app_with(&[("PUBLIC_URL", "self")]).await;
    let boss_secret = administrator(&app).await;
    enrolled_elsewhere(&app, "ann@example.com").await;
    let bob = json!({"email": "bob@example.com", "name": "Bob", "password": PASSWORD});
    assert_eq!(app.post_with(&new_client(), "/api/authentication/register", bob).await.status, StatusCode::CREATED);
    let (ann, bob) = (id_of(&app, "ann@example.com").await, id_of(&app, "bob@example.com").await);
    let wiki = NewClient {
        name: "Wiki".into(),
        redirect_uris: vec!["https://wiki.example/cb".into()],
        groups: vec!["staff".into(), "family".into()],
        ..Default::default()
    };
    let wiki = clients::add(&app.state, &Default::default(), None, &wiki).await.unwrap();

    // Made with a first member; refused: a name taken, the administrators'
    // group, an unknown address, a bad name.
    let r = group(&app, json!({"action": "create", "name": "staff", "argument": "ANN@example.com"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(app.state.db.groups_of(ann).await.unwrap(), ["staff"]);
    // The mail worker stops, so the rows change only by what is tried here.
    app.state.mail.stop_and_wait().await;
    let before = super::atomic::every_row(&app, &[]).await;
    for (body, status) in [
        (json!({"action": "create", "name": "staff", "argument": "bob@example.com"}), StatusCode::CONFLICT),
        (json!({"action": "create", "name": "admins", "argument": "bob@example.com"}), StatusCode::FORBIDDEN),
        (json!({"action": "create", "name": "new", "argument": "nobody@example.com"}), StatusCode::NOT_FOUND),
        (json!({"action": "create", "name": "a b", "argument": "bob@example.com"}), StatusCode::BAD_REQUEST),
        (json!({"action": "rename", "name": "admins", "argument": "bosses"}), StatusCode::FORBIDDEN),
        (json!({"action": "rename", "name": "staff", "argument": "admins"}), StatusCode::FORBIDDEN),
        (json!({"action": "delete", "name": "admins"}), StatusCode::FORBIDDEN),
        (json!({"action": "delete", "name": "nobody-here"}), StatusCode::NOT_FOUND),
        (json!({"action": "explode", "name": "staff"}), StatusCode::BAD_REQUEST),
    ] {
        let r = group(&app, body.clone()).await;
        assert_eq!(r.status, status, "{body}: {}", r.text);
    }
    assert_eq!(super::atomic::every_row(&app, &[]).await, before, "a refused group change changes nothing");
    let r = act(&app, &app.client, json!({"person": bob, "action": "add-group", "argument": "staff"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // The list: members, and how many of them have two factors.
    let list = app.get("/api/admin/groups").await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    assert_eq!(list.body["adminGroup"], "admins");
    let staff = list.body["groups"].as_array().unwrap().iter().find(|g| g["name"] == "staff").unwrap().clone();
    assert_eq!((staff["members"].as_i64(), staff["twoFactor"].as_i64()), (Some(2), Some(1)), "{staff}");
    assert_eq!(staff["namedBy"], json!(["the app Wiki"]));

    // Renamed: the members and the app follow; a taken name is refused.
    let r = group(&app, json!({"action": "create", "name": "family", "argument": "bob@example.com"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = group(&app, json!({"action": "rename", "name": "staff", "argument": "family"})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    let r = group(&app, json!({"action": "rename", "name": "staff", "argument": "team"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.body["message"].as_str().unwrap().contains("Apps limited to staff now say team"), "{}", r.text);
    assert_eq!(app.state.db.groups_of(ann).await.unwrap(), ["team"]);
    assert_eq!(app.state.db.groups_of(bob).await.unwrap(), ["family", "team"]);
    let client = app.state.db.oidc_clients().await.unwrap().into_iter().find(|c| c.id == wiki.id).unwrap();
    assert_eq!(client.allowed_groups, "team,family");

    // Five minutes on, a change needs proof; then deleted: everyone leaves.
    app.clock.advance(301);
    assert_eq!(app.post("/api/authentication/refresh", json!({})).await.status, StatusCode::OK);
    let r = group(&app, json!({"action": "delete", "name": "team"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(app.state.db.groups_of(ann).await.unwrap(), ["team"]);
    let r = group(&app, json!({"action": "delete", "name": "team", "code": app.code_now(&boss_secret)})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.body["message"].as_str().unwrap().contains("2 people left it"), "{}", r.text);
    assert!(app.state.db.groups_of(ann).await.unwrap().is_empty());
    assert_eq!(app.state.db.groups_of(bob).await.unwrap(), ["family"]);

    // Each member's trail names the administrator for each change.
    let (by_boss, page) = done_by_boss(&app, bob).await;
    assert_eq!(
        by_boss,
        [
            "Taken out of a group by an administrator",
            "A group of theirs renamed by an administrator",
            "Added to a group by an administrator",
            "Added to a group by an administrator"
        ],
        "{}",
        page.text
    );

    // The overview counts them: three accounts, two with two factors; the
    // groups' adoption; the day's log-ins.
    let o = app.get("/api/admin/overview").await;
    assert_eq!(o.status, StatusCode::OK, "{}", o.text);
    let facts = |title: &str| -> Value {
        o.body["sections"].as_array().unwrap().iter().find(|s| s["title"] == title).expect(title)["facts"].clone()
    };
    assert_eq!(facts("People")[0], json!(["Accounts", "3"]), "{}", o.text);
    assert_eq!(facts("People")[1], json!(["With two factors", "2 (66%)"]), "{}", o.text);
    assert!(
        facts("Two factors by group").as_array().unwrap().contains(&json!(["family", "0 (0%) of 1"])),
        "{}",
        o.text
    );
    assert_eq!(facts("The last 24 hours")[0], json!(["Logged in", "2"]), "{}", o.text);
    let database = if app.database_url.starts_with("postgres") { "PostgreSQL" } else { "SQLite" };
    assert_eq!(o.body["running"], format!("Version {} on {database}.", env!("CARGO_PKG_VERSION")));
}
