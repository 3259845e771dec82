//! The admin page's overview: how many people and how protected, the
//! groups' two-factor adoption, the last day's log-ins and failures, the
//! queues that carry mail and back-channel log-outs, and what is running.

use crate::error::AppError;
use crate::server::auth::FullSession;
use crate::server::state::AppState;
use crate::wire::AuditKind;
use crate::wire::admin::{FactSection, Overview};

use super::require_admin;

/// The events counted for the last day, in the order shown.
const COUNTED: [AuditKind; 6] = [
    AuditKind::LogInOk,
    AuditKind::PasskeyUsed,
    AuditKind::LogInFailed,
    AuditKind::CodeFailed,
    AuditKind::Throttled,
    AuditKind::LockedDown,
];

/// "12 (40%)": `part` of `all`.
fn share(part: i64, all: i64) -> String {
    if all == 0 { "0".to_owned() } else { format!("{part} ({}%)", part * 100 / all) }
}

fn fact(what: &str, n: impl ToString) -> (String, String) {
    (what.to_owned(), n.to_string())
}

pub async fn overview(state: &AppState, session: &FullSession) -> Result<Overview, AppError> {
    require_admin(state, session).await?;
    let now = state.now();
    let day_ago = now - 24 * 3600;
    let (people, two_factor, confirmed, locked) = state.db.people_counts().await?;
    let seen = state.db.event_counts_since(day_ago).await?;
    let last_day = COUNTED
        .iter()
        .map(|kind| {
            let n = seen.iter().find(|(k, _)| k == kind.as_str()).map_or(0, |(_, n)| *n);
            fact(kind.label(), n)
        })
        .collect();
    let (waiting, mail_sent_day) = state.db.mail_queue(day_ago).await?;
    let mail_failed = waiting.iter().filter(|m| m.status == "failed").count();
    let (mut logouts_pending, mut logouts_failed) = (0, 0);
    for (_, pending, _, failed) in state.db.logout_queue_counts().await? {
        logouts_pending += pending;
        logouts_failed += failed;
    }
    let groups: Vec<(String, String)> = state
        .db
        .group_counts()
        .await?
        .into_iter()
        .map(|(name, members, two_factor)| (name, format!("{} of {members}", share(two_factor, members))))
        .collect();
    let section = |title: &str, facts| FactSection { title: title.to_owned(), facts };
    Ok(Overview {
        sections: vec![
            section(
                "People",
                vec![
                    fact("Accounts", people),
                    fact("With two factors", share(two_factor, people)),
                    fact("Address confirmed", share(confirmed, people)),
                    fact("Locked", locked),
                ],
            ),
            section("Two factors by group", groups),
            section("The last 24 hours", last_day),
            section(
                "Queues",
                vec![
                    fact("Mail waiting", waiting.len() - mail_failed),
                    fact("Mail given up", mail_failed),
                    fact("Mail sent (24 hours)", mail_sent_day),
                    fact("Log-outs waiting for apps", logouts_pending),
                    fact("Log-outs given up", logouts_failed),
                ],
            ),
        ],
        running: format!(
            "Version {} on {}.",
            env!("CARGO_PKG_VERSION"),
            if state.db.is_postgres() { "PostgreSQL" } else { "SQLite" }
        ),
    })
}
