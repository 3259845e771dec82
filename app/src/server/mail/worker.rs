//! The queue and its worker: a message is queued as a row, claimed by one
//! instance, made and sent, or tried again later with a growing back-off.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::compose::compose;
use super::kinds::MailKind;
use super::smtp::send;
use crate::error::AppError;
use crate::server::db::{MailRow, NewMail};
use crate::server::request::RequestMeta;
use crate::server::state::AppState;

/// An instance sending a message holds it this long; after a crash the
/// message is tried again once it runs out.
const LEASE_SECONDS: i64 = 120;
/// Attempts before a message is given up (about 5 hours of back-off).
pub const MAX_ATTEMPTS: i64 = 12;
/// The first retry waits this long; each next one twice as long, up to
/// `MAX_BACKOFF`.
const FIRST_BACKOFF: i64 = 30;
const MAX_BACKOFF: i64 = 3600;
/// Messages taken per round.
const BATCH: i64 = 20;
/// Without a wake-up (a message queued by another instance or process),
/// the worker looks at the queue this often.
const POLL: Duration = Duration::from_secs(5);
/// Sent and given-up rows are kept this long for `server mail queue`.
pub const KEEP_SECONDS: i64 = 30 * 86_400;

/// Queues a message and wakes the worker. One row: it lands or not.
pub async fn enqueue(
    state: &AppState,
    kind: MailKind,
    user_id: Option<i64>,
    address: &str,
    meta: &RequestMeta,
) -> Result<i64, AppError> {
    let kind = kind.as_string();
    let id = state.db.enqueue_mail(&new_mail(state, &kind, user_id, address, meta)).await?;
    state.mail.wake();
    Ok(id)
}

/// The row for a message about something happening now, from `meta`.
pub fn new_mail<'a>(
    state: &AppState,
    kind: &'a str,
    user_id: Option<i64>,
    address: &'a str,
    meta: &'a RequestMeta,
) -> NewMail<'a> {
    NewMail {
        kind,
        user_id,
        address,
        event_at: state.now(),
        ip: meta.ip.as_deref(),
        user_agent: meta.user_agent.as_deref(),
        now: state.now(),
    }
}

/// Sends queued mail until stopped: at once when woken, otherwise every
/// few seconds. Every instance runs one; a message is claimed by one.
pub async fn run_worker(state: AppState) {
    tracing::info!("mail goes to {}", state.mail.describe());
    loop {
        if state.mail.stopped.load(Ordering::SeqCst) {
            return;
        }
        match deliver_due(&state).await {
            // A full batch: there may be more.
            Ok(n) if n as i64 >= BATCH => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e.message, "could not read the mail queue; trying again shortly"),
        }
        tokio::select! {
            _ = state.mail.wake.notified() => {}
            _ = state.mail.stop.notified() => return,
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// One round: every due message this instance can claim, each sent or
/// rescheduled. Returns how many were due.
pub async fn deliver_due(state: &AppState) -> Result<usize, AppError> {
    let due = state.db.due_mail(state.now(), BATCH).await?;
    for row in &due {
        if state.db.claim_mail(row.id, state.now(), state.now() + LEASE_SECONDS).await? {
            deliver(state, row).await?;
        }
    }
    Ok(due.len())
}

/// What became of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Sent,
    /// Nothing to send (no such account, already verified): row deleted.
    Dropped,
    /// Failed; tried again later.
    Retry(String),
    /// Failed for the last time.
    GaveUp(String),
}

/// Makes and sends one claimed message and records the outcome.
pub async fn deliver(state: &AppState, row: &MailRow) -> Result<Delivery, AppError> {
    let attempts = row.attempts + 1;
    let made = match compose(state, row).await {
        Ok(Some(made)) => made,
        Ok(None) => {
            state.db.drop_mail(row.id).await?;
            return Ok(Delivery::Dropped);
        }
        Err(why) => return record_failure(state, row, attempts, why, None).await,
    };
    match send(state, row, made.message).await {
        Ok(()) => {
            state.db.mail_sent(row.id, state.now()).await?;
            tracing::info!(id = row.id, kind = %row.kind, "mail sent");
            Ok(Delivery::Sent)
        }
        Err(why) => record_failure(state, row, attempts, why, made.token_hash).await,
    }
}

async fn record_failure(
    state: &AppState,
    row: &MailRow,
    attempts: i64,
    why: String,
    token_hash: Option<String>,
) -> Result<Delivery, AppError> {
    // The link of a message that was not sent must not work later.
    if let Some(hash) = token_hash {
        state.db.delete_email_token(&hash).await?;
    }
    let last = attempts >= MAX_ATTEMPTS || row.kind == "test";
    let retry_at = (!last).then(|| state.now() + backoff(attempts));
    state.db.mail_failed(row.id, &why, retry_at).await?;
    tracing::warn!(id = row.id, kind = %row.kind, attempts, error = %why, retry_at, "mail not sent");
    Ok(if last { Delivery::GaveUp(why) } else { Delivery::Retry(why) })
}

/// Seconds before attempt `attempts + 1`.
fn backoff(attempts: i64) -> i64 {
    let doublings = u32::try_from((attempts - 1).clamp(0, 20)).unwrap_or(20);
    (FIRST_BACKOFF << doublings).min(MAX_BACKOFF)
}

/// A message's account, for tests and the operator: `None` for a test.
pub fn describe_row(row: &MailRow) -> String {
    format!("#{} {} to {} ({} attempt(s))", row.id, row.kind, row.address, row.attempts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_an_hour() {
        assert_eq!((1..=9).map(backoff).collect::<Vec<_>>(), [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
    }
}
