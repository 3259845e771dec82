//! Scenario h: the owner's log-in during bursts of failed log-ins from the
//! same address.

use std::time::Instant;

use serde_json::json;

use super::{PASSWORD, client, post};
use crate::report::Row;
use crate::target::Target;

/// An owner's account, and the browser that logged in to it once (so it
/// holds the device cookie): the email and that browser.
pub async fn owner(api: &impl Fn(&str) -> String, tag: &str) -> (reqwest::Client, String) {
    let email = format!("owner-{tag}@example.com");
    let browser = client();
    post(&browser, api("/authentication/register"), json!({"email": email, "name": "Owner", "password": PASSWORD}))
        .await;
    let (s, _, _) = post(&browser, api("/authentication/log-in"), json!({"email": email, "password": PASSWORD})).await;
    assert_eq!(s, 200, "the owner's first log-in");
    (browser, email)
}

/// A burst of 400 parallel failed log-ins from this machine's address
/// (on the owner's account, or one per account), and the owner logging in
/// five times meanwhile from the same address with the browser that logged
/// in before (so it holds the device cookie). Reports how many of the
/// burst reached the password hash and what the owner saw.
pub async fn burst(
    api: &impl Fn(&str) -> String,
    target: Target,
    scenario: &'static str,
    (owner, owner_email): (reqwest::Client, String),
    same_account: bool,
) -> Row {
    let tag = if same_account { "same" } else { "spread" };
    // The attacker and the owner share one address (a NAT, say).
    let address = if same_account { "198.51.100.1" } else { "198.51.100.2" };
    let attacker = reqwest::Client::new();
    let tasks: Vec<_> = (0..400)
        .map(|i| {
            let email = if same_account { owner_email.clone() } else { format!("victim-{tag}-{i}@example.com") };
            let req = attacker
                .post(api("/authentication/log-in"))
                .header("x-forwarded-for", address)
                .json(&json!({"email": email, "password": "wrong password guess"}));
            tokio::spawn(async move { req.send().await.map(|r| r.status().as_u16()).unwrap_or(0) })
        })
        .collect();
    let mut owner_ms = Vec::new();
    let mut owner_status = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let r = owner
            .post(api("/authentication/log-in"))
            .header("x-forwarded-for", address)
            .json(&json!({"email": owner_email, "password": PASSWORD}))
            .send()
            .await;
        let s = r.map(|r| r.status().as_u16()).unwrap_or(0);
        owner_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        owner_status.push(s);
    }
    let mut counts = std::collections::BTreeMap::new();
    for t in tasks {
        *counts.entry(t.await.expect("task")).or_insert(0) += 1;
    }
    let statuses = counts.iter().map(|(s, n)| format!("{n}×{s}")).collect::<Vec<_>>().join(", ");
    // What the wrong password's status means on each server.
    let evaluated = match (target, same_account) {
        (Target::Ours, _) => format!("{} = evaluated by the password hash", target.wrong_password()),
        (Target::Original, true) => {
            format!("{} = evaluated by bcrypt: the original limits nothing", target.wrong_password())
        }
        (Target::Original, false) => {
            format!("{} = unknown account, refused before any hashing", target.wrong_password())
        }
    };
    let owner_statuses = owner_status.iter().map(u16::to_string).collect::<Vec<_>>().join("/");
    let max = owner_ms.iter().copied().fold(0.0, f64::max);
    let mean = owner_ms.iter().sum::<f64>() / owner_ms.len() as f64;
    Row {
        scenario: scenario.into(),
        figure: format!(
            "burst: {statuses} ({evaluated}); owner's 5 log-ins: {owner_statuses}, mean {mean:.0} ms, max {max:.0} ms"
        ),
        budget: "owner gets in; evaluated ≤ the limit",
    }
}
