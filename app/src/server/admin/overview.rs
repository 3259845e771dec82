//! The admin page's overview: how many people and how protected, the
//! groups' two-factor adoption, the last day's log-ins and failures, the
//! queues that carry mail and back-channel log-outs, and what is running.

use crate::error::AppError;
use crate::server::auth::FullSession;
use crate::server::state::AppState;
use crate::wire::AuditKind;
use crate::wire::admin::{GroupLine, Overview};

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

pub async fn overview(state: &AppState, session: &FullSession) -> Result<Overview, AppError> {
    require_admin(state, session).await?;
    let now = state.now();
    let day_ago = now - 24 * 3600;
    let (people, two_factor, confirmed, locked) = state.db.people_counts().await?;
    let counted: Vec<&str> = COUNTED.iter().map(|k| k.as_str()).collect();
    let seen = state.db.event_counts_since(day_ago).await?;
    let last_day = COUNTED
        .iter()
        .zip(&counted)
        .map(|(kind, name)| {
            let n = seen.iter().find(|(k, _)| k == name).map_or(0, |(_, n)| *n);
            (kind.label().to_owned(), n)
        })
        .collect();
    let (waiting, mail_sent_day) = state.db.mail_queue(day_ago).await?;
    let mail_failed = waiting.iter().filter(|m| m.status == "failed").count();
    let (mut logouts_pending, mut logouts_failed) = (0, 0);
    for (_, pending, _, failed) in state.db.logout_queue_counts().await? {
        logouts_pending += pending;
        logouts_failed += failed;
    }
    let groups = state
        .db
        .group_counts()
        .await?
        .into_iter()
        .map(|(name, members, two_factor)| GroupLine { name, members, two_factor, named_by: Vec::new() })
        .collect();
    Ok(Overview {
        people,
        two_factor,
        confirmed,
        locked,
        groups,
        last_day,
        mail_pending: i64::try_from(waiting.len() - mail_failed).unwrap_or(i64::MAX),
        mail_failed: i64::try_from(mail_failed).unwrap_or(i64::MAX),
        mail_sent_day,
        logouts_pending,
        logouts_failed,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        database: if state.db.is_postgres() { "PostgreSQL" } else { "SQLite" }.to_owned(),
    })
}
