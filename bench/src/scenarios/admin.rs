//! Scenario m: the admin page's people list with 10,000 people. They are
//! signed up through the API (32 at a time; each hashes a password), an
//! administrator with 2FA on is made with the server's CLI, then `wrk`
//! asks for the first page (newest first), a search that scans every
//! address and name, and a page deep in the list ordered by last log-in;
//! then the overview and everyone's activity (first page, and filtered by
//! part of an address and a kind).

use std::sync::Arc;

use serde_json::json;

use super::{PASSWORD, post};
use crate::Args;
use crate::load::wrk;
use crate::report::Row;

/// People in the list.
const PEOPLE: usize = 10_000;
/// Sign-ups in flight at once.
const PARALLEL: usize = 32;

pub async fn people_list(
    args: &Args,
    api: &impl Fn(&str) -> String,
    base: &str,
    data_dir: &std::path::Path,
) -> Vec<Row> {
    let began = std::time::Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let url = api("/authentication/register");
    let mut tasks = Vec::new();
    for _ in 0..PARALLEL {
        let (next, url) = (next.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            // No cookie store: the sign-ups' sessions are not kept.
            let c = reqwest::Client::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= PEOPLE {
                    break;
                }
                let body = json!({"email": format!("person{i}@example.com"), "name": format!("Person {i}"), "password": PASSWORD});
                // A full hashing queue says when to come back, as to anyone.
                loop {
                    let (s, answer, _) = post(&c, url.clone(), body.clone()).await;
                    if s == 429 {
                        let wait = answer["retryAfter"].as_u64().unwrap_or(1);
                        tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
                        continue;
                    }
                    assert_eq!(s, 201, "sign-up {i}: {answer}");
                    break;
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    eprintln!("   {PEOPLE} people signed up in {:.0} s", began.elapsed().as_secs_f64());
    let email = "admin-bench@example.com";
    let cookie = super::two_factor_session(api, email).await;
    super::server_command(&args.server, data_dir, &["user", "groups", email, "add", "admins"]);
    let cases = [
        ("m. admin people list, first page of 10,001 (50, newest first)", "/api/admin/people?page=1"),
        ("m. admin people list, a search through every address and name", "/api/admin/people?search=son7777"),
        ("m. admin people list, page 150 by latest log-in", "/api/admin/people?order=last-log-in&page=150"),
        ("m. admin overview (counts over every account and the day's events)", "/api/admin/overview"),
        ("m. admin activity of everyone, first page", "/api/admin/activity?page=1"),
        ("m. admin activity, one person's address and kind", "/api/admin/activity?person=son7777&kind=log_in_ok"),
    ];
    let mut rows = Vec::new();
    for (scenario, path) in cases {
        let url = format!("{base}{path}");
        let r = reqwest::Client::new().get(&url).header("cookie", &cookie).send().await.expect("people");
        assert_eq!(r.status().as_u16(), 200, "{url}: {}", r.text().await.unwrap_or_default());
        let w = wrk(&url, args.seconds, args.connections, Some(&cookie), None);
        rows.push(Row {
            scenario: scenario.into(),
            figure: format!("{:.0} req/s, p50 {:.2} ms, p99 {:.2} ms; {}", w.rps, w.p50_ms, w.p99_ms, w.failures()),
            budget: "(measured)",
        });
    }
    rows
}
