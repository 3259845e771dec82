//! Mail: a real SMTP conversation with a sink on loopback (written here,
//! speaking just enough SMTP for lettre), the password reset end to end,
//! email verification, each security notice once, the lockdown link, and
//! a mail server that is down (queued, log-in unaffected, delivered later,
//! nothing lost across a restart).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::Notify;

use super::*;

/// A message as the sink received it.
#[derive(Debug, Clone)]
pub(super) struct Received {
    pub to: Vec<String>,
    /// The message with quoted-printable undone, so links read whole.
    pub text: String,
}

impl Received {
    pub fn subject(&self) -> String {
        self.text.lines().find_map(|l| l.strip_prefix("Subject: ")).map(str::to_owned).unwrap_or_default()
    }

    /// The token of the first link to `path` (e.g. "/reset-password").
    pub fn token(&self, path: &str) -> Option<String> {
        let at = self.text.find(&format!("{path}?token="))? + path.len() + "?token=".len();
        let token: String =
            self.text[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect();
        (!token.is_empty()).then_some(token)
    }
}

/// An SMTP server on loopback that keeps what it is sent.
pub(super) struct Sink {
    pub port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    arrived: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Sink {
    pub async fn start() -> Sink {
        Self::start_on(0).await
    }

    pub async fn start_on(port: u16) -> Sink {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind the sink");
        let port = listener.local_addr().expect("addr").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let arrived = Arc::new(Notify::new());
        let (r, a) = (received.clone(), arrived.clone());
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (r, a) = (r.clone(), a.clone());
                tokio::spawn(async move {
                    let _ = converse(socket, r, a).await;
                });
            }
        });
        Sink { port, received, arrived, task }
    }

    /// SMTP_URL for this sink (plain text: it is on loopback).
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}?tls=none", self.port)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("sink").clone()
    }

    /// Waits (at most 10 s) until `n` messages have arrived.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let notified = self.arrived.notified();
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("expected {n} message(s), the sink has {}: {:?}", got.len(), subjects(&got));
            }
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(super) fn subjects(messages: &[Received]) -> Vec<String> {
    messages.iter().map(Received::subject).collect()
}

async fn converse(
    socket: tokio::net::TcpStream,
    received: Arc<Mutex<Vec<Received>>>,
    arrived: Arc<Notify>,
) -> std::io::Result<()> {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 sink.test ESMTP\r\n").await?;
    let mut to = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_ascii_uppercase();
        let reply: &[u8] = if command.starts_with("EHLO") {
            b"250-sink.test\r\n250 8BITMIME\r\n"
        } else if command.starts_with("HELO") || command.starts_with("MAIL FROM") || command.starts_with("RSET") {
            b"250 ok\r\n"
        } else if command.starts_with("RCPT TO") {
            to.push(line.trim_end()[8..].trim().trim_matches(['<', '>']).to_owned());
            b"250 ok\r\n"
        } else if command == "DATA" {
            write.write_all(b"354 go on\r\n").await?;
            let mut data = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" {
                    break;
                }
                data.push_str(line.strip_prefix('.').filter(|_| line.starts_with("..")).unwrap_or(&line));
            }
            received.lock().expect("sink").push(Received { to: std::mem::take(&mut to), text: unquote(&data) });
            arrived.notify_waiters();
            b"250 queued\r\n"
        } else if command == "QUIT" {
            write.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            b"250 ok\r\n"
        };
        write.write_all(reply).await?;
    }
}

/// Undoes quoted-printable (soft line breaks and =XX escapes).
pub(super) fn unquote(s: &str) -> String {
    let joined = s.replace("=\r\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && let Some(b) = joined.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An app that mails to `sink`.
pub(super) async fn app_with_sink(sink: &Sink, extra: &[(&str, &str)]) -> TestApp {
    let url = sink.url();
    let mut vars = vec![("SMTP_URL", url.as_str())];
    vars.extend_from_slice(extra);
    spawn_app_with(&vars).await
}

/// Messages to `address` whose subject contains `words`.
fn to_about<'a>(messages: &'a [Received], address: &str, words: &str) -> Vec<&'a Received> {
    messages.iter().filter(|m| m.to.iter().any(|t| t == address) && m.subject().contains(words)).collect()
}

async fn forgot(app: &TestApp, email: &str) -> Reply {
    app.post_with(&new_client(), "/api/authentication/forgot-password", json!({"email": email})).await
}

#[tokio::test]
async fn a_reset_link_sets_a_new_password_once_and_keeps_the_second_factor() {
    let sink = Sink::start().await;
    let app = app_with_sink(&sink, &[]).await;
    let email = "reset@example.com";
    let secret = app.enrolled_user(email).await;
    // A second browser stays logged in until the reset.
    let other = new_client();
    let r = app.post_with(&other, "/api/authentication/log-in", json!({"email": email, "password": PASSWORD})).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .post_with(&other, "/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": app.code_now(&secret)}))
        .await;
    // (The code's step was spent by the enrolment, or not: either way, the
    // main client's full session is what must end.)
    let _ = r;
    assert_eq!(app.get("/api/authentication").await.status, StatusCode::OK);

    let r = forgot(&app, email).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    // Verification, 2FA on, and the reset link.
    let all = sink.wait_for(3).await;
    let reset = to_about(&all, email, "set a new password");
    assert_eq!(reset.len(), 1, "{:?}", subjects(&all));
    let token = reset[0].token("/reset-password").expect("a reset link");
    assert!(reset[0].text.contains("text/html") && reset[0].text.contains("text/plain"));

    // A weak password is refused and the link still works.
    let weak =
        app.post("/api/authentication/reset-password", json!({"token": token, "newPassword": "password1234"})).await;
    assert_error(&weak, StatusCode::BAD_REQUEST, "bad_request");
    let new_password = "a completely different passphrase 42";
    let done = app
        .post_with(
            &new_client(),
            "/api/authentication/reset-password",
            json!({"token": token, "newPassword": new_password}),
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    assert!(set_cookie(&done, "access").is_none() && set_cookie(&done, "refresh").is_none(), "it does not log in");
    // Once only.
    let again = app
        .post(
            "/api/authentication/reset-password",
            json!({"token": token, "newPassword": "yet another good passphrase 7"}),
        )
        .await;
    assert_error(&again, StatusCode::BAD_REQUEST, "bad_request");
    // Every session ended.
    assert_eq!(app.get("/api/authentication").await.status, StatusCode::UNAUTHORIZED);
    // The old password is gone; the new one still owes the code.
    assert_eq!(app.log_in(email, PASSWORD).await.status, StatusCode::UNAUTHORIZED);
    app.clock.advance(30);
    let r = app.log_in(email, new_password).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["twoFactorRequired"], true);
    assert_eq!(app.get("/api/authentication").await.status, StatusCode::UNAUTHORIZED, "not before the code");
    let r = app.post("/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": app.code_now(&secret)})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // The owner is told, once; the reset is in the activity.
    let all = sink.wait_for(4).await;
    assert_eq!(to_about(&all, email, "password was reset").len(), 1, "{:?}", subjects(&all));
    let a = app.get("/api/authentication/activity").await;
    assert!(all_kinds(&a.body).contains(&"password_reset".to_owned()), "{}", a.text);
}

#[tokio::test]
async fn reset_links_expire_and_change_only_their_own_account() {
    let sink = Sink::start().await;
    let app = app_with_sink(&sink, &[]).await;
    for who in ["ann@example.com", "bob@example.com"] {
        assert_eq!(app.register(who).await.status, StatusCode::CREATED);
    }
    assert_eq!(forgot(&app, "ann@example.com").await.status, StatusCode::ACCEPTED);
    let all = sink.wait_for(3).await;
    let token = to_about(&all, "ann@example.com", "set a new password")[0].token("/reset-password").expect("link");
    let new_password = "a completely different passphrase 42";
    let check = |kind: &'static str, token: String| {
        let app = &app;
        async move { app.post("/api/authentication/check-link", json!({"kind": kind, "token": token})).await }
    };
    let live = check("reset", token.clone()).await;
    assert_eq!((live.status, live.body["live"].clone()), (StatusCode::OK, json!(true)), "{}", live.text);
    app.clock.advance(31 * 60);
    // Expired: said before anything is typed, with a new link as the way on.
    let r = check("reset", token.clone()).await;
    assert_eq!((r.body["live"].clone(), r.body["done"].clone()), (json!(false), json!(false)), "{}", r.text);
    assert!(r.body["message"].as_str().unwrap_or("").contains("expired"), "{}", r.text);
    assert_eq!(r.body["next"], "/forgot-password");
    let late =
        app.post("/api/authentication/reset-password", json!({"token": token, "newPassword": new_password})).await;
    assert_error(&late, StatusCode::BAD_REQUEST, "bad_request");
    // A fresh link, used: only Ann's password changes.
    assert_eq!(forgot(&app, "ann@example.com").await.status, StatusCode::ACCEPTED);
    let all = sink.wait_for(4).await;
    let token = to_about(&all, "ann@example.com", "set a new password")[1].token("/reset-password").expect("link");
    let r = app.post("/api/authentication/reset-password", json!({"token": token, "newPassword": new_password})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Used: it says what it did, and leads to log in.
    let r = check("reset", token.clone()).await;
    assert_eq!((r.body["live"].clone(), r.body["done"].clone()), (json!(false), json!(true)), "{}", r.text);
    assert!(r.body["message"].as_str().unwrap_or("").contains("already set a new password"), "{}", r.text);
    assert_eq!(r.body["next"], "/login");
    // Unknown, or of another kind: "not valid", a new link as the way on;
    // a kind the server does not know is a 400.
    let r = check("reset", "copied-incompletely".into()).await;
    assert!(r.body["message"].as_str().unwrap_or("").contains("not valid"), "{}", r.text);
    assert_eq!(r.body["live"], false);
    assert_eq!(check("verify", token.clone()).await.body["live"], false);
    assert_error(&check("other", token.clone()).await, StatusCode::BAD_REQUEST, "bad_request");
    assert_eq!(app.log_in("bob@example.com", PASSWORD).await.status, StatusCode::OK);
    assert_eq!(app.log_in("ann@example.com", new_password).await.status, StatusCode::OK);
    // Garbage and the wrong kind of token are refused alike.
    for bad in ["", "x", &"A".repeat(43)] {
        let r =
            app.post("/api/authentication/reset-password", json!({"token": bad, "newPassword": new_password})).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    }
    let verify = to_about(&all, "bob@example.com", "confirm your email")[0].token("/verify-email").expect("link");
    let r = app.post("/api/authentication/reset-password", json!({"token": verify, "newPassword": new_password})).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
}

#[tokio::test]
async fn unknown_addresses_get_the_same_answer_and_no_mail() {
    let sink = Sink::start().await;
    let app = app_with_sink(&sink, &[]).await;
    assert_eq!(app.register("known@example.com").await.status, StatusCode::CREATED);
    sink.wait_for(1).await;
    let known = forgot(&app, "known@example.com").await;
    let unknown = forgot(&app, "nobody@example.com").await;
    assert_eq!((known.status, &known.text), (unknown.status, &unknown.text));
    assert_eq!(known.status, StatusCode::ACCEPTED);
    // Past the per-address limit: the same answer, and nothing sent.
    for _ in 0..3 {
        assert_eq!(forgot(&app, "known@example.com").await.status, StatusCode::ACCEPTED);
    }
    sink.wait_for(4).await;
    // Whatever the worker still holds is done once it is idle.
    app::server::mail::deliver_due(&app.state).await.expect("queue");
    let all = sink.received();
    assert_eq!(to_about(&all, "known@example.com", "set a new password").len(), 3, "{:?}", subjects(&all));
    assert!(all.iter().all(|m| !m.to.contains(&"nobody@example.com".to_owned())), "{:?}", subjects(&all));
    // A malformed address is a 400 and nothing else.
    let r = app.post("/api/authentication/forgot-password", json!({"email": "not an address"})).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
}

#[tokio::test]
async fn a_mail_server_that_is_down_delays_nothing_and_loses_nothing() {
    // A port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let down = format!("smtp://127.0.0.1:{port}?tls=none");
    let app = spawn_app_with(&[("SMTP_URL", &down)]).await;
    let started = std::time::Instant::now();
    assert_eq!(app.register("queued@example.com").await.status, StatusCode::CREATED);
    assert_eq!(app.log_in("queued@example.com", PASSWORD).await.status, StatusCode::OK);
    assert_eq!(forgot(&app, "queued@example.com").await.status, StatusCode::ACCEPTED);
    let took = started.elapsed();
    // Both messages are tried and wait for a retry, with the reason.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let pending = loop {
        let (rows, _) = app.state.db.mail_queue(0).await.expect("queue");
        if rows.len() == 2 && rows.iter().all(|r| r.attempts >= 1 && r.last_error.is_some()) {
            break rows;
        }
        assert!(std::time::Instant::now() < deadline, "{rows:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(pending.iter().all(|r| r.status == "pending"), "{pending:?}");
    eprintln!("register + log-in + forgot with the mail server down: {took:?}");

    // The process ends; a new one starts on the same database, and the
    // mail server is back.
    app.state.mail.stop();
    let sink = Sink::start().await;
    let url = sink.url();
    let restarted = spawn_app_with(&[("SMTP_URL", &url), ("DATABASE_URL", &app.database_url)]).await;
    restarted.clock.set(app.clock_now() + 30);
    restarted.state.mail.wake();
    let all = sink.wait_for(2).await;
    assert_eq!(to_about(&all, "queued@example.com", "confirm your email").len(), 1);
    let reset = to_about(&all, "queued@example.com", "set a new password");
    let token = reset[0].token("/reset-password").expect("link");
    let r = restarted
        .post(
            "/api/authentication/reset-password",
            json!({"token": token, "newPassword": "a completely different passphrase 42"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let (rows, sent) = restarted.state.db.mail_queue(0).await.expect("queue");
    assert!(rows.iter().all(|r| r.kind.starts_with("notice:")), "{rows:?}");
    assert!(sent >= 2);
}

#[tokio::test]
async fn each_notice_is_sent_once_with_its_lockdown_link() {
    let sink = Sink::start().await;
    let app = app_with_sink(&sink, &[]).await;
    let email = "notice@example.com";
    let (secret, codes) = app.enrolled_with_codes(email).await;
    let mut expected = vec!["confirm your email", "two-factor authentication was turned on"];
    sink.wait_for(expected.len()).await;

    app.clock.advance(30);
    let r = app.post("/api/2fa/recovery-codes", json!({"twoFactorAuthenticationCode": app.code_now(&secret)})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let codes2: Vec<String> = r.body["recoveryCodes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c.as_str().unwrap_or("").to_owned())
        .collect();
    assert_ne!(codes, codes2);
    expected.push("new recovery codes were made");

    // The same browser logs in again with a recovery code: no "new
    // browser" notice, one "recovery code used".
    app.password_stage(email).await;
    let r = app.post("/api/2fa/authenticate", json!({"recoveryCode": codes2[0]})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    expected.push("a recovery code was used");

    // Another browser: told once.
    app.clock.advance(30);
    let stranger = new_client();
    let r = app.post_with(&stranger, "/api/authentication/log-in", json!({"email": email, "password": PASSWORD})).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .post_with(&stranger, "/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": app.code_now(&secret)}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    expected.push("new log-in from a browser");

    let new_password = "a completely different passphrase 42";
    let r = app
        .post("/api/authentication/change-password", json!({"currentPassword": PASSWORD, "newPassword": new_password}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    expected.push("your password was changed");

    app.clock.advance(30);
    let r = app
        .post(
            "/api/2fa/turn-off",
            json!({"password": new_password, "twoFactorAuthenticationCode": app.code_now(&secret)}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    expected.push("two-factor authentication was turned off");

    // A refresh token presented again after the grace window.
    let refresh = set_cookie(&r, "refresh").expect("refresh cookie");
    assert_eq!(app.refresh_with(&refresh).await.status, StatusCode::OK);
    app.clock.advance(60);
    assert_eq!(app.refresh_with(&refresh).await.status, StatusCode::UNAUTHORIZED);
    expected.push("a stolen session was stopped");

    let all = sink.wait_for(expected.len()).await;
    app::server::mail::deliver_due(&app.state).await.expect("queue");
    let all = if sink.received().len() > all.len() { sink.received() } else { all };
    for words in &expected {
        assert_eq!(to_about(&all, email, words).len(), 1, "{words}: {:?}", subjects(&all));
    }
    assert_eq!(all.len(), expected.len(), "{:?}", subjects(&all));
    // Every notice carries its own lockdown link; the first-step mail does not.
    let notices: Vec<_> = all.iter().filter(|m| !m.subject().contains("confirm your email")).collect();
    let tokens: std::collections::HashSet<_> =
        notices.iter().map(|m| m.token("/lockdown").expect("a lockdown link")).collect();
    assert_eq!(tokens.len(), notices.len());
}

#[tokio::test]
async fn the_lockdown_link_ends_everything_until_a_reset() {
    let sink = Sink::start().await;
    let app = app_with_sink(&sink, &[]).await;
    let email = "locked@example.com";
    let secret = app.enrolled_user(email).await;
    let all = sink.wait_for(2).await;
    let notice = to_about(&all, email, "turned on")[0];
    let token = notice.token("/lockdown").expect("lockdown link");
    assert_eq!(app.get("/api/authentication").await.status, StatusCode::OK);

    let r = app.post_with(&new_client(), "/api/authentication/lockdown", json!({"token": token})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(app.get("/api/authentication").await.status, StatusCode::UNAUTHORIZED, "every session ended");
    let again = app.post("/api/authentication/lockdown", json!({"token": token})).await;
    assert_error(&again, StatusCode::BAD_REQUEST, "bad_request");
    // Even the right password is refused, and says why.
    let r = app.log_in(email, PASSWORD).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    assert!(r.text.contains("locked"), "{}", r.text);
    assert_eq!(app.log_in(email, "wrong password entirely").await.status, StatusCode::UNAUTHORIZED);

    // The locked mail carries a fresh reset link; an older one is void.
    let all = sink.wait_for(3).await;
    let locked = to_about(&all, email, "your account is locked");
    assert_eq!(locked.len(), 1, "{:?}", subjects(&all));
    let token = locked[0].token("/reset-password").expect("reset link");
    let new_password = "a completely different passphrase 42";
    let r = app.post("/api/authentication/reset-password", json!({"token": token, "newPassword": new_password})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    app.clock.advance(30);
    let r = app.log_in(email, new_password).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["twoFactorRequired"], true);
    let r = app.post("/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": app.code_now(&secret)})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let a = app.get("/api/authentication/activity").await;
    let kinds = all_kinds(&a.body);
    assert!(kinds.contains(&"locked_down".to_owned()) && kinds.contains(&"password_reset".to_owned()), "{kinds:?}");
}

#[tokio::test]
async fn email_verification_and_the_setting_that_requires_it() {
    let sink = Sink::start().await;
    let app = app_with_sink(&sink, &[("REQUIRE_EMAIL_VERIFICATION", "true")]).await;
    let email = "verify@example.com";
    assert_eq!(app.register(email).await.status, StatusCode::CREATED);
    let r = app.log_in(email, PASSWORD).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(r.body["fields"]["account"], "unverified", "{}", r.text);
    // The wrong password still gets the generic answer.
    assert_eq!(app.log_in(email, "wrong password entirely").await.status, StatusCode::UNAUTHORIZED);
    let r = app.post("/api/authentication/resend-verification", json!({"email": email})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let r = app.post("/api/authentication/resend-verification", json!({"email": "nobody@example.com"})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let all = sink.wait_for(2).await;
    let links: Vec<_> =
        to_about(&all, email, "confirm your email").iter().map(|m| m.token("/verify-email").expect("link")).collect();
    assert_eq!(links.len(), 2);
    let r = app.post("/api/authentication/verify-email", json!({"token": links[1]})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app.post("/api/authentication/verify-email", json!({"token": links[1]})).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    // Opened again, the used link says what is true.
    let r = app.post("/api/authentication/check-link", json!({"kind": "verify", "token": links[1]})).await;
    assert_eq!((r.body["live"].clone(), r.body["done"].clone()), (json!(false), json!(true)), "{}", r.text);
    assert!(r.body["message"].as_str().unwrap_or("").contains("already confirmed"), "{}", r.text);
    let r = app.log_in(email, PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["user"]["isEmailVerified"], true);
    assert_eq!(app.get("/api/authentication").await.body["isEmailVerified"], true);
}

// The commands run as child processes waited on synchronously: the sink
// needs a thread of its own meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_send_a_test_message_and_read_the_queue() {
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path();
    let url = sink.url();
    let key: &std::ffi::OsStr = "test-signing-key-that-is-long-enough-0123456789".as_ref();
    let run = |args: &[&str], smtp: Option<&str>| {
        let mut vars = vec![("DATA_DIR", data.as_os_str()), ("JWT_SECRET", key)];
        if let Some(smtp) = smtp {
            vars.push(("SMTP_URL", smtp.as_ref()));
        }
        super::operators::server_command(args, &vars)
    };
    let (ok, out, err) = run(&["mail", "test", "olga@example.com"], Some(&url));
    assert!(ok, "{out}{err}");
    assert!(out.contains("sent a test message to olga@example.com through SMTP 127.0.0.1"), "{out}");
    let got = sink.wait_for(1).await;
    assert_eq!(got[0].to, ["olga@example.com"]);
    assert!(got[0].subject().contains("test message"), "{:?}", got[0].subject());

    // A server that is down: the command fails and says why; the queue
    // shows the message as given up, with the error.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let down = format!("smtp://127.0.0.1:{port}?tls=none");
    let (ok, out, err) = run(&["mail", "test", "olga@example.com"], Some(&down));
    assert!(!ok && err.contains("could not send to olga@example.com"), "{out}{err}");
    let (ok, out, err) = run(&["mail", "queue"], Some(&down));
    assert!(ok, "{out}{err}");
    assert!(out.contains("failed test to olga@example.com: 1 attempt(s), given up; last error:"), "{out}");
    assert!(out.contains("1 sent in the last 24 hours"), "{out}");

    // Without SMTP_URL the message lands in the outbox as an .eml file.
    let (ok, out, err) = run(&["mail", "test", "olga@example.com"], None);
    assert!(ok && out.contains("outbox"), "{out}{err}");
    let files: Vec<_> = std::fs::read_dir(data.join("outbox")).expect("outbox").flatten().collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let eml = std::fs::read_to_string(files[0].path()).expect("eml");
    assert!(eml.contains("To: olga@example.com") && eml.contains("test message"), "{eml}");
    let (ok, _, err) = run(&["mail", "test", "not an address"], None);
    assert!(!ok && err.contains("cannot send"), "{err}");
}

#[tokio::test]
async fn the_mailed_pages_work_without_javascript() {
    use super::forms::{browser, location};
    let sink = Sink::start().await;
    let app = app_with_sink(&sink, &[]).await;
    let email = "pages@example.com";
    assert_eq!(app.register(email).await.status, StatusCode::CREATED);
    let b = browser();

    // The log-in page leads to the form; the form answers the same for anyone.
    assert!(app.page(&b, "/login").await.text.contains("href=\"/forgot-password\""));
    let page = app.page(&b, "/forgot-password").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("method=\"post\"") && page.text.contains("action=\"/forgot-password\""));
    let bad = app.form(&b, "/forgot-password", &[("intent", "mailed"), ("email", "nope")]).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.text.contains("value=\"nope\""), "the typed address is kept");
    for who in [email, "stranger@example.com"] {
        let r = app.form(&b, "/forgot-password", &[("intent", "mailed"), ("email", who)]).await;
        assert_eq!((r.status, location(&r)), (StatusCode::SEE_OTHER, "/forgot-password?done=1"));
    }
    assert!(app.page(&b, "/forgot-password?done=1").await.text.contains("If an account has that address"));

    let all = sink.wait_for(2).await;
    let token = to_about(&all, email, "set a new password")[0].token("/reset-password").expect("link");
    // Opening the link changes nothing; the page carries the token in its form.
    let page = app.page(&b, &format!("/reset-password?token={token}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains(&format!("name=\"token\" value=\"{token}\"")), "{}", page.text);
    assert!(page.text.contains("action=\"/reset-password\""), "the post drops the token from the address");
    let weak = app
        .form(&b, "/reset-password", &[("intent", "mailed"), ("token", &token), ("newPassword", "password1234")])
        .await;
    assert_eq!(weak.status, StatusCode::BAD_REQUEST);
    assert!(weak.text.contains("too easy") && weak.text.contains(&format!("value=\"{token}\"")));
    let new_password = "a completely different passphrase 42";
    let r = app
        .form(&b, "/reset-password", &[("intent", "mailed"), ("token", &token), ("newPassword", new_password)])
        .await;
    assert_eq!((r.status, location(&r)), (StatusCode::SEE_OTHER, "/reset-password?done=1"), "{}", r.text);
    let used = app
        .form(&b, "/reset-password", &[("intent", "mailed"), ("token", &token), ("newPassword", new_password)])
        .await;
    assert_eq!(used.status, StatusCode::BAD_REQUEST);
    assert!(used.text.contains("href=\"/forgot-password\""), "offers a new link");
    assert!(app.page(&b, "/reset-password").await.text.contains("opens from a link in an email"));

    // Verification: the link's page has a button; the home page nags until then.
    let verify = to_about(&all, email, "confirm your email")[0].token("/verify-email").expect("link");
    let r = app.form(&b, "/login", &[("intent", "password"), ("email", email), ("password", new_password)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    // (The reset proved the address already: no nagging.)
    assert!(!app.page(&b, "/").await.text.contains("data-testid=\"verify-email\""));
    let r = app.form(&b, "/verify-email", &[("intent", "mailed"), ("token", &verify)]).await;
    assert_eq!((r.status, location(&r)), (StatusCode::SEE_OTHER, "/verify-email?done=1"));

    // The lockdown page: opening it does nothing; its button locks.
    let all = sink.wait_for(3).await;
    let notice = to_about(&all, email, "password was reset")[0].token("/lockdown").expect("link");
    assert!(app.page(&b, &format!("/lockdown?token={notice}")).await.text.contains("Lock my account"));
    assert_eq!(app.page(&b, "/").await.status, StatusCode::OK, "still logged in");
    let r = app.form(&b, "/lockdown", &[("intent", "mailed"), ("token", &notice)]).await;
    assert_eq!((r.status, location(&r)), (StatusCode::SEE_OTHER, "/lockdown?done=1"));
    assert_eq!(app.get_with(&b, "/api/authentication").await.status, StatusCode::UNAUTHORIZED, "logged out");
}

/// A client that logs in from a browser with this User-Agent.
fn browser(user_agent: &str) -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).user_agent(user_agent).build().expect("client")
}

#[tokio::test]
async fn mail_never_carries_a_strangers_words_or_the_raw_browser_string() {
    let sink = Sink::start().await;
    let app = app_with_sink(&sink, &[]).await;
    // A stranger signs up with someone else's address and an advert for a
    // name, then asks for a password reset of it: both mails go to an
    // address nobody has confirmed.
    let advert = "Claim your prize at https://evil.example/win";
    let stranger = new_client();
    let body = json!({"email": "victim@example.com", "name": advert, "password": PASSWORD});
    let r = app.post_with(&stranger, "/api/authentication/register", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(forgot(&app, "victim@example.com").await.status, StatusCode::ACCEPTED);
    let all = sink.wait_for(2).await;
    let to_victim: Vec<_> = all.iter().filter(|m| m.to.iter().any(|t| t == "victim@example.com")).collect();
    assert_eq!(to_victim.len(), 2, "{:?}", subjects(&all));
    for m in &to_victim {
        assert!(!m.text.contains("evil.example") && !m.text.contains("prize"), "{}", m.text);
        assert!(m.text.contains("Hello,"), "{}", m.text);
    }

    // The owner of a confirmed account is greeted by name; a log-in from a
    // browser whose User-Agent carries a link is told as what it parses as.
    let email = "owner@example.com";
    assert_eq!(app.register(email).await.status, StatusCode::CREATED);
    // Its confirmation mail is out before the address is marked confirmed
    // here (the worker drops a confirmation mail whose address is already
    // confirmed, so marking it first would race the worker).
    sink.wait_for(3).await;
    let id = app.log_in(email, PASSWORD).await.body["user"]["id"].as_i64().expect("id");
    let mut tx = app.state.db.begin().await.expect("tx");
    tx.set_email_verified(id, START).await.expect("confirm");
    tx.commit().await.expect("commit");
    let agents = [
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/126.0.0.0 Safari/537.36 see https://evil.example/win",
            "Chrome on Windows",
        ),
        ("Visit https://evil.example/win now", "an unknown browser"),
    ];
    for (n, (agent, parsed)) in agents.iter().enumerate() {
        app.clock.advance(30);
        let c = browser(agent);
        let r = app.post_with(&c, "/api/authentication/log-in", json!({"email": email, "password": PASSWORD})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let all = sink.wait_for(3 + n + 1).await;
        let notices = to_about(&all, email, "new log-in from a browser");
        assert_eq!(notices.len(), n + 1, "{:?}", subjects(&all));
        let notice = notices[n];
        let facts = format!("{parsed}, from ").to_lowercase();
        assert!(notice.text.to_lowercase().contains(&facts), "{}", notice.text);
        assert!(!notice.text.contains("evil.example") && !notice.text.contains("Visit"), "{}", notice.text);
        assert!(notice.text.contains("Hello Ann Example,"), "{}", notice.text);
    }
}

#[tokio::test]
async fn a_reset_of_the_second_factors_by_an_administrator_is_mailed_to_the_person() {
    let sink = Sink::start().await;
    let app = app_with_sink(&sink, &[]).await;
    let email = "reset@example.com";
    app.enrolled_user(email).await;
    sink.wait_for(2).await;
    let address = app::domain::Email::parse(email).expect("email");
    assert!(app::server::factors::protection::operator_reset_two_factor(&app.state, &address).await.expect("reset"));
    let all = sink.wait_for(3).await;
    let notices = to_about(&all, email, "an administrator reset your two-factor authentication");
    assert_eq!(notices.len(), 1, "{:?}", subjects(&all));
    assert!(notices[0].text.contains("set up two-factor authentication again"), "{}", notices[0].text);
    assert!(notices[0].token("/lockdown").is_some(), "with its \"This wasn't me\" link: {}", notices[0].text);
}

/// `email` and boss@example.com, both enrolled, boss an administrator
/// logged in on `app.client`, their first mails received; `email`'s id.
async fn person_and_administrator(sink: &Sink, email: &str) -> (TestApp, i64) {
    let app = app_with_sink(sink, &[]).await;
    app.enrolled_user(email).await;
    app.enrolled_user("boss@example.com").await;
    let boss = app.state.db.user_by_email("boss@example.com").await.unwrap().unwrap().id;
    assert!(app.state.db.set_group(boss, "admins", true, app.clock_now()).await.unwrap());
    sink.wait_for(4).await;
    let person = app.state.db.user_by_email(email).await.unwrap().unwrap().id;
    (app, person)
}

#[tokio::test]
async fn an_account_locked_by_an_administrator_is_told_how_to_get_back_in() {
    let sink = Sink::start().await;
    let email = "locked@example.com";
    let (app, person) = person_and_administrator(&sink, email).await;
    let r = app.post("/api/admin/act", json!({"person": person, "action": "lock"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let all = sink.wait_for(5).await;
    let notices = to_about(&all, email, "an administrator locked your account");
    assert_eq!(notices.len(), 1, "{:?}", subjects(&all));
    assert!(notices[0].text.contains("Forgot your password?"), "{}", notices[0].text);
    // When, not the administrator's browser or address.
    assert!(notices[0].text.contains("It happened on"), "{}", notices[0].text);
    assert!(!notices[0].text.contains("127.0.0.1"), "{}", notices[0].text);
    // Locked already: no "This wasn't me" link to lock it.
    assert!(notices[0].token("/lockdown").is_none(), "{}", notices[0].text);
    // Unlocking says nothing more; locking again (after) does.
    let r = app.post("/api/admin/act", json!({"person": person, "action": "unlock"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(app.post("/api/admin/act", json!({"person": person, "action": "lock"})).await.status, StatusCode::OK);
    let all = sink.wait_for(6).await;
    assert_eq!(to_about(&all, email, "an administrator locked your account").len(), 2, "{:?}", subjects(&all));
}

#[tokio::test]
async fn an_administrator_mails_a_password_reset_link_that_works() {
    let sink = Sink::start().await;
    let email = "forgetful@example.com";
    let (app, person) = person_and_administrator(&sink, email).await;

    let r = app.post("/api/admin/act", json!({"person": person, "action": "send-reset"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.body["message"].as_str().unwrap().contains(email), "{}", r.text);
    let all = sink.wait_for(5).await;
    let resets = to_about(&all, email, "set a new password");
    assert_eq!(resets.len(), 1, "{:?}", subjects(&all));
    let token = resets[0].token("/reset-password").expect("a reset link");
    let new_password = "a fresh and long passphrase 7";
    let r = app
        .post_with(
            &new_client(),
            "/api/authentication/reset-password",
            json!({"token": token, "newPassword": new_password}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let page = app.get(&format!("/api/admin/person?id={person}")).await;
    let sent = page.body["activity"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["label"] == "Password-reset link mailed by an administrator")
        .cloned();
    assert_eq!(sent.map(|e| e["by"].clone()), Some(json!("boss@example.com")), "{}", page.text);
}
