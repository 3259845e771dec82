//! The queue and its worker: a message is queued as a row, claimed by one
//! instance, made and sent, or tried again later with a growing back-off.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::compose::compose;
use super::kinds::MailKind;
use super::smtp::send;
use crate::error::AppError;
use crate::server::db::{MailRow, NewMail};
use crate::server::metrics::METRICS;
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
/// Woken, the worker waits this long for more: the notices of a burst of
/// log-ins are then claimed, and recorded as sent, in one write each
/// rather than two per message in the writes of the log-ins themselves.
const GATHER: Duration = Duration::from_millis(20);
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
    /// Counts this worker as running until it returns (or is dropped).
    struct Running<'a>(&'a tokio::sync::watch::Sender<usize>);
    impl Drop for Running<'_> {
        fn drop(&mut self) {
            self.0.send_modify(|n| *n -= 1);
        }
    }
    state.mail.running.send_modify(|n| *n += 1);
    let _running = Running(&state.mail.running);
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
            _ = state.mail.wake.notified() => {
                tokio::select! {
                    _ = state.mail.stop.notified() => return,
                    _ = tokio::time::sleep(GATHER) => {}
                }
            }
            _ = state.mail.stop.notified() => return,
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// One round: the due messages this instance could claim (at most
/// `BATCH`, in one write), each sent or rescheduled, the sent ones recorded
/// in one write. Returns how many were claimed.
pub async fn deliver_due(state: &AppState) -> Result<usize, AppError> {
    let now = state.now();
    let claimed = state.db.claim_due_mail(now, now + LEASE_SECONDS, BATCH).await?;
    let mut sent = Vec::with_capacity(claimed.len());
    let mut failed = Ok(());
    for row in &claimed {
        match attempt(state, row).await {
            Ok(Delivery::Sent) => sent.push(row.id),
            Ok(_) => {}
            // The rest stay claimed until their lease runs out, then are
            // tried again (so is a sent one whose record is lost here).
            Err(e) => {
                failed = Err(e);
                break;
            }
        }
    }
    state.db.mails_sent(&sent, state.now()).await?;
    for row in claimed.iter().filter(|r| sent.contains(&r.id)) {
        tracing::info!(id = row.id, kind = %row.kind, "mail sent");
    }
    failed.map(|()| claimed.len())
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

/// Makes and sends one claimed message (`row` as claimed: its `attempts`
/// count this one) and records the outcome.
pub async fn deliver(state: &AppState, row: &MailRow) -> Result<Delivery, AppError> {
    let outcome = attempt(state, row).await?;
    if outcome == Delivery::Sent {
        state.db.mails_sent(&[row.id], state.now()).await?;
        tracing::info!(id = row.id, kind = %row.kind, "mail sent");
    }
    Ok(outcome)
}

/// `deliver`, but a sent message is left for the caller to record.
async fn attempt(state: &AppState, row: &MailRow) -> Result<Delivery, AppError> {
    let attempts = row.attempts;
    let made = match compose(state, row).await {
        Ok(Some(made)) => made,
        Ok(None) => {
            state.db.drop_mail(row.id).await?;
            return Ok(Delivery::Dropped);
        }
        Err(why) => return record_failure(state, row, attempts, why, None).await,
    };
    let sent = send(state, row, made.message).await;
    METRICS.mail(sent.is_ok());
    match sent {
        Ok(()) => Ok(Delivery::Sent),
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
