//! The mail worker's rounds: a round claims what is due in one write and
//! records what it sent in one, and two instances racing rounds over the
//! same queue send each message exactly once (SQLite and PostgreSQL).
//! Messages go to each instance's outbox (no `SMTP_URL`): the rounds are
//! the subject here, not the SMTP conversation (see `mail`).

use std::collections::HashMap;

use app::server::mail::{MailKind, deliver_due, enqueue};
use app::server::request::RequestMeta;

use super::*;

/// The addresses of the messages in the outboxes of `apps`, in the order
/// each outbox's files were named (by queue id).
fn sent_to(apps: &[&TestApp]) -> Vec<String> {
    let mut files: Vec<std::path::PathBuf> = apps
        .iter()
        .filter_map(|app| std::fs::read_dir(app._dir.path().join("outbox")).ok())
        .flat_map(|dir| dir.flatten().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| {
            let eml = std::fs::read_to_string(p).expect("eml");
            eml.lines().find_map(|l| l.strip_prefix("To: ")).expect("a To line").trim().to_owned()
        })
        .collect()
}

async fn queue(app: &TestApp, addresses: &[String]) {
    let meta = RequestMeta::default();
    for address in addresses {
        enqueue(&app.state, MailKind::Test, None, address, &meta).await.expect("queue");
    }
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&app.database_url).await.expect("connect");
    let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(&mut conn).await.expect("count");
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_rounds_on_two_instances_send_each_message_once() {
    let one = spawn_app().await;
    let two = spawn_app_with(&[("DATABASE_URL", one.database_url.as_str())]).await;
    // Only the rounds this test runs send anything.
    one.state.mail.stop_and_wait().await;
    two.state.mail.stop_and_wait().await;

    // One round takes everything due, in order.
    let first: Vec<String> = (0..7).map(|i| format!("first{i}@example.com")).collect();
    queue(&one, &first).await;
    assert_eq!(deliver_due(&one.state).await.expect("round"), 7, "one round claims all seven");
    assert_eq!(deliver_due(&one.state).await.expect("round"), 0, "nothing left");
    assert_eq!(sent_to(&[&one]), first, "each once");

    // Two instances race a round over the same queue, again and again.
    let mut expected = 7;
    for round in 0..300 {
        let batch: Vec<String> = (0..1 + round % 6).map(|i| format!("r{round}-{i}@example.com")).collect();
        queue(if round % 2 == 0 { &one } else { &two }, &batch).await;
        let (a, b) = tokio::join!(deliver_due(&one.state), deliver_due(&two.state));
        let (a, b) = (a.expect("round on one"), b.expect("round on two"));
        assert_eq!(a + b, batch.len(), "round {round}: claimed {a} + {b}");
        expected += batch.len();
    }
    let mut per_address: HashMap<String, usize> = HashMap::new();
    for to in sent_to(&[&one, &two]) {
        *per_address.entry(to).or_default() += 1;
    }
    let twice: Vec<_> = per_address.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
    assert_eq!(per_address.len(), expected);
    let settled = "SELECT COUNT(*) FROM mail_queue WHERE status = 'sent' AND attempts = 1 AND lease_until IS NULL";
    assert_eq!(count(&one, settled).await, expected as i64, "every message recorded sent, after one attempt");
}
