//! Invitations: made on the admin page (copied or mailed), a single-use link
//! that makes one account while sign-up is closed, bound to an address and
//! into groups when asked; revoked, expired, used twice or raced for, it
//! makes nothing.

use app::domain::{Email, Password, PersonName};

use super::admin::{done_by_boss, group, id_of};
use super::mail::{Sink, app_with_sink};
use super::*;

/// An account made by the operator (sign-up is closed in these tests).
async fn operator_made(app: &TestApp, email: &str, admin: bool) {
    let (email, name) = (Email::parse(email).unwrap(), PersonName::parse("Made By Operator").unwrap());
    let made =
        app::server::account::operator_add_user(&app.state, email, name, Password::parse(PASSWORD).unwrap(), admin)
            .await
            .expect("the operator makes the account");
    assert!(made);
}

/// boss@example.com, made by the operator with `--admin`, enrolled and
/// logged in on `app.client`.
async fn administrator(app: &TestApp) -> String {
    operator_made(app, "boss@example.com", true).await;
    let r = app.log_in("boss@example.com", PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let g = app.post("/api/2fa/generate", json!({})).await;
    let secret = g.body["secret"].as_str().expect("secret").to_owned();
    let on = app.post("/api/2fa/turn-on", json!({"twoFactorAuthenticationCode": app.code_now(&secret)})).await;
    assert_eq!(on.status, StatusCode::OK, "{}", on.text);
    secret
}

async fn invite(app: &TestApp, body: Value) -> Reply {
    app.post("/api/admin/invitation", body).await
}

async fn revoke(app: &TestApp, body: Value) -> Reply {
    app.post("/api/admin/invitation/revoke", body).await
}

/// The token of an invitation's link.
fn token_of(link: &str) -> String {
    let at = link.find("/signup?invite=").expect("an invitation link") + "/signup?invite=".len();
    link[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect()
}

async fn accept(app: &TestApp, token: &str, email: &str, password: &str) -> Reply {
    let body = json!({"token": token, "email": email, "name": "Newcomer", "password": password});
    app.post_with(&new_client(), "/api/authentication/accept-invitation", body).await
}

async fn check(app: &TestApp, token: &str) -> Reply {
    app.post_with(&new_client(), "/api/authentication/check-link", json!({"kind": "invite", "token": token})).await
}

#[tokio::test]
async fn an_invitation_makes_one_account_in_its_groups_while_sign_up_is_closed() {
    let app = spawn_app_with(&[("SIGNUP", "closed"), ("REGISTRATIONS_PER_HOUR", "1000")]).await;
    administrator(&app).await;
    operator_made(&app, "ann@example.com", false).await;
    let r = group(&app, json!({"action": "create", "name": "staff", "argument": "ann@example.com"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // Refusals change nothing (the mail worker stopped, so only what is
    // tried here could change a row).
    app.state.mail.stop_and_wait().await;
    let before = super::atomic::every_row(&app, &[]).await;
    for (body, status) in [
        (json!({"email": "not an address"}), StatusCode::BAD_REQUEST),
        (json!({"days": 0}), StatusCode::BAD_REQUEST),
        (json!({"days": 31}), StatusCode::BAD_REQUEST),
        (json!({"groups": ["admins"]}), StatusCode::FORBIDDEN),
        (json!({"groups": ["a b"]}), StatusCode::BAD_REQUEST),
        (json!({"mail": true}), StatusCode::BAD_REQUEST),
        (json!({"email": "ANN@example.com"}), StatusCode::CONFLICT),
        (json!({"days": "soon"}), StatusCode::BAD_REQUEST),
    ] {
        let r = invite(&app, body.clone()).await;
        assert_eq!(r.status, status, "{body}: {}", r.text);
    }
    for (body, status) in [(json!({"id": 999}), StatusCode::NOT_FOUND), (json!({}), StatusCode::BAD_REQUEST)] {
        let r = revoke(&app, body.clone()).await;
        assert_eq!(r.status, status, "{body}: {}", r.text);
    }
    assert_eq!(super::atomic::every_row(&app, &[]).await, before, "a refused invitation changes nothing");

    // Made for one address, into staff, shown once.
    let r = invite(&app, json!({"email": "New@Example.com", "groups": ["staff"], "days": 2})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.body["message"].as_str().unwrap().contains("new@example.com"), "{}", r.text);
    let link = r.body["link"].as_str().expect("the link, shown once").to_owned();
    assert!(link.starts_with(&format!("{}/signup?invite=", app.state.gate.public_url)), "{link}");
    let token = token_of(&link);
    let list = app.get("/api/admin/invitations").await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    assert!(!list.text.contains(&token), "the list never shows a link");
    assert_eq!(list.body["invitations"][0]["who"], "For new@example.com");
    assert_eq!(list.body["invitations"][0]["live"], true);
    assert_eq!(list.body["groups"], json!(["staff"]), "never the administrators' group");
    assert!(list.body["note"].as_str().unwrap().contains("SIGNUP=closed"), "{}", list.text);

    // The link is checked without being used, and says the address.
    let c = check(&app, &token).await;
    assert_eq!(
        (c.body["live"].as_bool(), c.body["email"].as_str()),
        (Some(true), Some("new@example.com")),
        "{}",
        c.text
    );
    // Sign-up without it stays closed.
    let open = json!({"email": "new@example.com", "name": "N", "password": PASSWORD});
    let r = app.post_with(&new_client(), "/api/authentication/register", open).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);

    // Another address, a weak password, a bad token: refused, and the
    // link still works.
    let r = accept(&app, &token, "other@example.com", PASSWORD).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.body["fields"]["email"].as_str().unwrap().contains("new@example.com"), "{}", r.text);
    let r = accept(&app, &token, "new@example.com", "password").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = accept(&app, &format!("{token}x"), "new@example.com", PASSWORD).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(check(&app, &token).await.body["live"], true);

    // Used: one account, in staff, its address still to be confirmed (the
    // link was copied, not mailed to it); the event names who invited.
    let r = accept(&app, &token, "new@example.com", PASSWORD).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["isEmailVerified"], false);
    let newcomer = id_of(&app, "new@example.com").await;
    assert_eq!(app.state.db.groups_of(newcomer).await.unwrap(), ["staff"]);
    let (by_boss, _) = done_by_boss(&app, newcomer).await;
    assert_eq!(by_boss, ["Account made with an administrator's invitation"]);
    let r = app
        .post_with(
            &new_client(),
            "/api/authentication/log-in",
            json!({"email": "new@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // Once only.
    let r = accept(&app, &token, "new@example.com", PASSWORD).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let c = check(&app, &token).await;
    assert_eq!(c.body["live"], false);
    assert!(c.body["message"].as_str().unwrap().contains("used already"), "{}", c.text);
    let list = app.get("/api/admin/invitations").await;
    let used = &list.body["invitations"][0];
    assert_eq!(used["live"], false);
    assert!(used["state"].as_str().unwrap().contains("by new@example.com"), "{used}");
    assert!(used["made"].as_str().unwrap().contains("by boss@example.com · into staff"), "{used}");
    let id = used["id"].as_i64().unwrap();
    assert_eq!(revoke(&app, json!({"id": id})).await.status, StatusCode::NOT_FOUND);

    // For any address, revoked: the link makes nothing.
    let r = invite(&app, json!({})).await;
    let revoked = token_of(r.body["link"].as_str().unwrap());
    let id = app.get("/api/admin/invitations").await.body["invitations"][0]["id"].as_i64().unwrap();
    let r = revoke(&app, json!({"id": id})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(accept(&app, &revoked, "late@example.com", PASSWORD).await.status, StatusCode::BAD_REQUEST);
    assert!(check(&app, &revoked).await.body["message"].as_str().unwrap().contains("revoked"));

    // Expired: a day and a second after a one-day invitation.
    let r = invite(&app, json!({"days": 1, "groups": ["staff"]})).await;
    let expiring = token_of(r.body["link"].as_str().unwrap());
    // Renaming the group renames it in the invitation not yet used.
    let r = group(&app, json!({"action": "rename", "name": "staff", "argument": "team"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let rows = app.state.db.invitations(10).await.unwrap();
    assert_eq!(rows[0].group_names, "team");
    assert_eq!(rows.iter().find(|r| r.used_at.is_some()).unwrap().group_names, "staff", "a used one stays as it was");
    // Each made and revoked invitation is on the administrator's trail.
    let trail = app.get("/api/admin/activity?kind=invitation_made").await;
    assert_eq!(trail.status, StatusCode::OK, "{}", trail.text);
    assert_eq!(trail.body["events"].as_array().unwrap().len(), 3, "{}", trail.text);
    let trail = app.get("/api/admin/activity?kind=invitation_revoked").await;
    assert_eq!(trail.body["events"].as_array().unwrap().len(), 1, "{}", trail.text);
    app.clock.advance(86_401);
    assert_eq!(accept(&app, &expiring, "late@example.com", PASSWORD).await.status, StatusCode::BAD_REQUEST);
    assert!(check(&app, &expiring).await.body["message"].as_str().unwrap().contains("expired"));
    assert!(app.state.db.user_by_email("late@example.com").await.unwrap().is_none());
}

#[tokio::test]
async fn a_mailed_invitation_proves_the_address_and_a_deleted_account_leaves_none() {
    let sink = Sink::start().await;
    let app = app_with_sink(&sink, &[("SIGNUP", "closed")]).await;
    administrator(&app).await;
    let r = invite(&app, json!({"email": "mia@example.com", "mail": true})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.body.get("link").is_none(), "a mailed link is never shown: {}", r.text);
    // After the notice that boss turned two factors on.
    let all = sink.wait_for(2).await;
    let message = all.iter().find(|m| m.to.iter().any(|t| t == "mia@example.com")).expect("the invitation");
    assert!(message.subject().contains("you are invited"), "{}", message.subject());
    let token = token_of(&message.text);
    let r = accept(&app, &token, "mia@example.com", PASSWORD).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["isEmailVerified"], true, "the link came to her mailbox");

    // Her account deleted: no invitation names her.
    let mia = id_of(&app, "mia@example.com").await;
    let r = app.post("/api/admin/act", json!({"person": mia, "action": "delete", "argument": "mia@example.com"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(app.state.db.invitations(10).await.unwrap().is_empty());
    // Nor any row at all: the invitation's events keep no address.
    let rows = super::atomic::every_row(&app, &[]).await;
    let naming: Vec<&String> = rows.values().flatten().filter(|r| r.contains("mia@example.com")).collect();
    assert!(naming.is_empty(), "{naming:?}");

    // A revoked invitation's message is never sent.
    app.state.mail.stop_and_wait().await;
    let r = invite(&app, json!({"email": "zed@example.com", "mail": true})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let id = app.state.db.invitations(1).await.unwrap()[0].id;
    assert_eq!(revoke(&app, json!({"id": id})).await.status, StatusCode::OK);
    app::server::mail::deliver_due(&app.state).await.expect("the queue runs");
    assert!(sink.received().iter().all(|m| !m.to.iter().any(|t| t == "zed@example.com")));
}

/// Many sign-ups racing with one link: exactly one account, every time;
/// the losers leave nothing behind.
#[tokio::test]
async fn one_invitation_makes_one_account_however_many_race_for_it() {
    let app = spawn_app_with(&[("SIGNUP", "closed"), ("REGISTRATIONS_PER_HOUR", "1000000")]).await;
    administrator(&app).await;
    let rounds = if app.database_url.starts_with("postgres") { 60 } else { 100 };
    for round in 0..rounds {
        let r = invite(&app, json!({})).await;
        let token = token_of(r.body["link"].as_str().expect("a link"));
        let tasks: Vec<_> = (0..3)
            .map(|i| {
                let (url, token) = (format!("{}/api/authentication/accept-invitation", app.base), token.clone());
                let email = format!("r{round}-{i}@example.com");
                tokio::spawn(async move {
                    let body = json!({"token": token, "email": email, "name": "Racer", "password": PASSWORD});
                    reqwest::Client::new().post(url).json(&body).send().await.map(|r| r.status())
                })
            })
            .collect();
        let mut made = 0;
        for t in tasks {
            match t.await.expect("task").expect("request") {
                StatusCode::CREATED => made += 1,
                StatusCode::BAD_REQUEST => {}
                other => panic!("round {round}: a racer was answered {other}"),
            }
        }
        assert_eq!(made, 1, "round {round}");
        let mut accounts = 0;
        for i in 0..3 {
            accounts +=
                usize::from(app.state.db.user_by_email(&format!("r{round}-{i}@example.com")).await.unwrap().is_some());
        }
        assert_eq!(accounts, 1, "round {round}");
    }
}

/// A sign-up with an invitation fails whole or not at all: each of its
/// writes failing in turn leaves every row as it was, the link included.
#[tokio::test]
async fn a_sign_up_with_an_invitation_fails_whole_or_not_at_all() {
    let app = spawn_app_with(&[("SIGNUP", "closed"), ("REGISTRATIONS_PER_HOUR", "1000")]).await;
    administrator(&app).await;
    let r = invite(&app, json!({"email": "fay@example.com", "groups": ["staff", "family"]})).await;
    let token = token_of(r.body["link"].as_str().expect("a link"));
    app.state.mail.stop_and_wait().await;
    // The guessing limit counts each try before the transaction: skipped.
    let (r, writes) = super::atomic::fail_each_write(
        &app,
        &["throttle"],
        async || (),
        async |()| accept(&app, &token, "fay@example.com", PASSWORD).await,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert!(writes >= 6, "invitation, account, used-by, two groups, mail, event: {writes}");
    let fay = id_of(&app, "fay@example.com").await;
    assert_eq!(app.state.db.groups_of(fay).await.unwrap(), ["family", "staff"]);
}

/// `server invite create|list|revoke`: the page's invitations from the
/// command line, with the same checks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_invites_lists_and_revokes_from_the_command_line() {
    use super::operators::operator;
    let app = spawn_app_with(&[("SIGNUP", "closed"), ("REGISTRATIONS_PER_HOUR", "1000")]).await;
    let (dir, url) = (app._dir.path().to_path_buf(), app.database_url.clone());
    let (ok, out, err) =
        operator(&url, &dir, &["invite", "create", "--email", "cli@example.com", "--group", "staff", "--days", "3"]);
    assert!(ok && out.contains("works once, until"), "{out} {err}");
    // The command runs on the machine's clock, the app on the test's (in
    // 2027): the link is checked in the database rather than used here.
    let hash = app::server::crypto::sha256_hex(token_of(&out).as_bytes());
    let (email, expires_at, used, revoked) = app.state.db.invitation_by_token(&hash).await.unwrap().expect("its row");
    assert_eq!((email.as_deref(), used, revoked), (Some("cli@example.com"), None, None));
    let row = app.state.db.invitations(1).await.unwrap().remove(0);
    assert_eq!((row.group_names.as_str(), expires_at - row.created_at), ("staff", 3 * 86_400));
    operator_made(&app, "taken@example.com", false).await;

    for (args, says) in [
        (&["invite", "create", "--group", "admins"][..], "cannot make an administrator"),
        (&["invite", "create", "--mail"][..], "give the address"),
        (&["invite", "create", "--days", "45"][..], "1 to 30 days"),
        (&["invite", "create", "--email", "taken@example.com"][..], "already"),
        (&["invite", "revoke", "999"][..], "no such invitation"),
    ] {
        let (ok, out, err) = operator(&url, &dir, args);
        assert!(!ok && err.contains(says), "{args:?}: {out} {err}");
    }
    let (ok, out, err) = operator(&url, &dir, &["invite", "create"]);
    assert!(ok, "{out} {err}");
    let (ok, out, err) = operator(&url, &dir, &["invite", "list"]);
    assert!(ok && out.contains("cli@example.com") && out.contains("2 invitation(s)"), "{out} {err}");
    let id = app.state.db.invitations(1).await.unwrap()[0].id.to_string();
    let (ok, out, err) = operator(&url, &dir, &["invite", "revoke", &id]);
    assert!(ok && out.contains("for any address"), "{out} {err}");
    let (ok, out, err) = operator(&url, &dir, &["invite", "list"]);
    assert!(ok && out.contains("revoked"), "{out} {err}");
    // Made and revoked by the operator: audited, naming no administrator.
    let rows = super::atomic::every_row(&app, &[]).await;
    let count = |kind: &str| rows["audit_events"].iter().filter(|r| r.contains(&format!("kind={kind}"))).count();
    assert_eq!((count("invitation_made"), count("invitation_revoked")), (2, 1));
}
