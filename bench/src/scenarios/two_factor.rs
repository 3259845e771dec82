//! Scenarios d and k: the step after the password, with a TOTP code (d)
//! and with a passkey (k).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{PASSWORD, client, new_secret, post, unix_now};
use crate::Args;
use crate::report::Row;
use crate::target::Target;

/// A new account `email`, signed up, logged in and with 2FA turned on in
/// the client returned (its secret beside it).
async fn enrolled(api: &impl Fn(&str) -> String, target: Target, email: &str) -> (reqwest::Client, Vec<u8>) {
    let c = client();
    post(&c, api("/authentication/register"), json!({"email": email, "name": "U", "password": PASSWORD})).await;
    post(&c, api("/authentication/log-in"), json!({"email": email, "password": PASSWORD})).await;
    let secret = new_secret(target, &c, api).await;
    target.clear_of_step_end().await;
    let code = target.code_at(&secret, unix_now());
    let (s, answer, _) = post(&c, api("/2fa/turn-on"), json!({"twoFactorAuthenticationCode": code})).await;
    assert_eq!(s, 200, "turn-on for {email}: {answer}");
    (c, secret)
}

/// Scenario d: `--users` people with 2FA on each submit their own valid
/// code once at the code step. Most log in from their own browser (the one
/// that enrolled: it holds the device cookie); a sixth from a browser new
/// to the account, whose log-in also queues a mail telling the owner.
pub async fn authenticate(args: &Args, api: &impl Fn(&str) -> String, target: Target) -> Row {
    let p = &args.prefix;
    let mut secrets = Vec::with_capacity(args.users);
    let one_by_one = args.users / 2;
    let third = one_by_one / 3;
    for i in 0..args.users {
        let email = format!("u{i}@example.com");
        let (own, secret) = enrolled(api, target, &email).await;
        // The password step, so each user holds a password-stage session.
        let stage = if (2 * third..one_by_one).contains(&i) { client() } else { own };
        post(&stage, api("/authentication/log-in"), json!({"email": email, "password": PASSWORD})).await;
        secrets.push((stage, secret));
    }
    // Each user submits its own valid code once: here the next step's code
    // (one step of skew), later than the step that turned 2FA on; to the
    // original the current one (see `Target`), never in a step's last
    // seconds. Half of them one at a time (latency), half 16 at a time
    // (throughput); codes are computed, and waits made, outside the timings.
    let url = api("/2fa/authenticate");
    let offset = target.code_offset();
    let authenticate = |c: reqwest::Client, code: String, url: String| async move {
        let t = Instant::now();
        let r = c.post(url).json(&json!({"twoFactorAuthenticationCode": code})).send().await.expect("authenticate");
        let status = r.status().as_u16();
        assert_eq!(status, 200, "a valid code was refused: {}", r.text().await.unwrap_or_default());
        t.elapsed()
    };
    let (one_by_one, together) = secrets.split_at(one_by_one);
    // One at a time, three ways: on a new connection (the password step's
    // was closed long ago, as a person's may be while they type), on one
    // just opened (a request made outside the timing, as a browser that
    // kept its connection), and the same from a browser new to the account.
    let (cold, rest) = one_by_one.split_at(third);
    let (warm, new_browser) = rest.split_at(third);
    let mut timings: [Vec<Duration>; 3] = Default::default();
    for (i, group) in [cold, warm, new_browser].into_iter().enumerate() {
        for (c, secret) in group {
            target.clear_of_step_end().await;
            let code = target.code_at(secret, unix_now() + offset);
            if i > 0 {
                // Any answer opens the connection (a GET here is refused).
                let _ = c.get(url.clone()).send().await;
            }
            timings[i].push(authenticate(c.clone(), code, url.clone()).await);
        }
    }
    let [cold_times, warm_times, new_times] = &mut timings;
    let percentile = |d: &mut Vec<Duration>, p: usize| {
        d.sort();
        d.get(d.len() * p / 100).copied().unwrap_or_default()
    };
    let (p50, p99) = (percentile(warm_times, 50), percentile(warm_times, 99));
    let (cold50, cold99) = (percentile(cold_times, 50), percentile(cold_times, 99));
    let (new50, new99) = (percentile(new_times, 50), percentile(new_times, 99));
    let mut busy = Duration::ZERO;
    for chunk in together.chunks(16) {
        target.clear_of_step_end().await;
        let codes: Vec<_> = chunk.iter().map(|(_, secret)| target.code_at(secret, unix_now() + offset)).collect();
        let began = Instant::now();
        let tasks: Vec<_> = chunk
            .iter()
            .zip(codes)
            .map(|((c, _), code)| tokio::spawn(authenticate(c.clone(), code, url.clone())))
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
        busy += began.elapsed();
    }
    let rate = together.len() as f64 / busy.as_secs_f64();
    Row {
        scenario: format!("d. POST {p}/2fa/authenticate, own valid code once"),
        figure: format!(
            "one at a time: p50 {:.2} ms, p99 {:.2} ms on an open connection ({} users), p50 {:.2} ms, p99 {:.2} ms \
             on a new one ({} users), p50 {:.2} ms, p99 {:.2} ms from a new browser, open connection ({} users); \
             {:.0} req/s 16 at a time ({} users); 0 refused",
            p50.as_secs_f64() * 1000.0,
            p99.as_secs_f64() * 1000.0,
            warm.len(),
            cold50.as_secs_f64() * 1000.0,
            cold99.as_secs_f64() * 1000.0,
            cold.len(),
            new50.as_secs_f64() * 1000.0,
            new99.as_secs_f64() * 1000.0,
            new_browser.len(),
            rate,
            together.len()
        ),
        budget: "p50 < 1 ms",
    }
}

/// Scenario k: passkey ceremonies, each step timed by the client (the
/// software authenticator's own signing is outside the timings): for 50
/// people, registering one (start, finish) and using it after the password
/// (start, finish).
pub async fn passkey_ceremonies(api: &impl Fn(&str) -> String, origin: &str) -> Row {
    use webauthn_authenticator_rs::prelude::WebauthnAuthenticator;
    use webauthn_authenticator_rs::softpasskey::SoftPasskey;
    let origin = url::Url::parse(origin).expect("origin");
    let timed = |c: reqwest::Client, url: String, body: Value| async move {
        let t = Instant::now();
        let (status, answer, _) = post(&c, url, body).await;
        (t.elapsed(), status, answer)
    };
    let mut steps: [Vec<Duration>; 4] = Default::default();
    for i in 0..50 {
        let c = client();
        let email = format!("passkey{i}@example.com");
        post(&c, api("/authentication/register"), json!({"email": email, "name": "P", "password": PASSWORD})).await;
        post(&c, api("/authentication/log-in"), json!({"email": email, "password": PASSWORD})).await;
        let mut key = SoftPasskey::new(true);
        let (d, s, start) = timed(c.clone(), api("/webauthn/register/start"), json!({"name": "Bench key"})).await;
        assert_eq!(s, 200, "register start: {start}");
        steps[0].push(d);
        let options = serde_json::from_value(start["options"].clone()).expect("creation options");
        let credential = key.do_registration(origin.clone(), options).expect("register");
        let body = json!({"ceremony": start["ceremony"], "credential": credential});
        let (d, s, done) = timed(c.clone(), api("/webauthn/register/finish"), body).await;
        assert_eq!(s, 201, "register finish: {done}");
        steps[1].push(d);
        let stage = client();
        post(&stage, api("/authentication/log-in"), json!({"email": email, "password": PASSWORD})).await;
        let (d, s, start) = timed(stage.clone(), api("/webauthn/authenticate/start"), json!({})).await;
        assert_eq!(s, 200, "authenticate start: {start}");
        steps[2].push(d);
        let options = serde_json::from_value(start["options"].clone()).expect("request options");
        let credential = key.do_authentication(origin.clone(), options).expect("assert");
        let body = json!({"ceremony": start["ceremony"], "credential": credential});
        let (d, s, done) = timed(stage, api("/webauthn/authenticate/finish"), body).await;
        assert_eq!(s, 200, "authenticate finish: {done}");
        steps[3].push(d);
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let summary = |d: &mut Vec<Duration>| {
        d.sort();
        format!("p50 {:.2} ms, p99 {:.2} ms", ms(d[d.len() / 2]), ms(d[d.len() * 99 / 100]))
    };
    let [a, b, c, d] = &mut steps;
    Row {
        scenario: "k. passkey ceremonies, server round trips (50 people)".into(),
        figure: format!(
            "register: start {}, finish {}; after the password: start {}, finish {}",
            summary(a),
            summary(b),
            summary(c),
            summary(d)
        ),
        budget: "(none set)",
    }
}

/// Scenario r: log-ins from remembered browsers ("Don't ask again on this
/// browser"). 40 people with 2FA on each log in once with a code and the
/// box ticked; then, one at a time, each logs in again from that browser
/// (the password alone: a full log-in, argon2 included) and from a
/// browser that is not remembered (the password step, which then owes a
/// code). Each on a connection just opened, outside the timing.
pub async fn remembered_log_ins(api: &impl Fn(&str) -> String, target: Target) -> Row {
    let people = 40;
    let mut browsers = Vec::with_capacity(people);
    for i in 0..people {
        let email = format!("remembered{i}@example.com");
        let (c, secret) = enrolled(api, target, &email).await;
        post(&c, api("/authentication/log-out"), json!({})).await;
        post(&c, api("/authentication/log-in"), json!({"email": email, "password": PASSWORD})).await;
        target.clear_of_step_end().await;
        let code = target.code_at(&secret, unix_now() + target.code_offset());
        let body = json!({"twoFactorAuthenticationCode": code, "remember": true});
        let (s, answer, _) = post(&c, api("/2fa/authenticate"), body).await;
        assert_eq!(s, 200, "remembered code step for {email}: {answer}");
        post(&c, api("/authentication/log-out"), json!({})).await;
        browsers.push((c, email));
    }
    let url = api("/authentication/log-in");
    let timed = |c: reqwest::Client, email: String, url: String| async move {
        let _ = c.get(url.clone()).send().await;
        let t = Instant::now();
        let (s, answer, _) = post(&c, url, json!({"email": email, "password": PASSWORD})).await;
        let took = t.elapsed();
        assert_eq!(s, 200, "log-in of {email}: {answer}");
        (took, answer["twoFactorRequired"] == false)
    };
    let mut remembered = Vec::with_capacity(people);
    let mut asked = Vec::with_capacity(people);
    for (c, email) in &browsers {
        let (took, skipped) = timed(c.clone(), email.clone(), url.clone()).await;
        assert!(skipped, "{email}: a remembered browser was asked for the code");
        remembered.push(took);
        post(c, api("/authentication/log-out"), json!({})).await;
        let (took, skipped) = timed(client(), email.clone(), url.clone()).await;
        assert!(!skipped, "{email}: a new browser skipped the code");
        asked.push(took);
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let summary = |d: &mut Vec<Duration>| {
        d.sort();
        format!("p50 {:.2} ms, p99 {:.2} ms", ms(d[d.len() / 2]), ms(d[d.len() * 99 / 100]))
    };
    Row {
        scenario: "r. log-in from a remembered browser (password alone, full log-in)".into(),
        figure: format!(
            "{} ({people} people); the password step of a browser not remembered (a code still owed): {}",
            summary(&mut remembered),
            summary(&mut asked)
        ),
        budget: "(none set)",
    }
}
