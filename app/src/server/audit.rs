//! The audit trail the person reviews, and the security notices mailed
//! with the changes they must hear of: one call records both, together.

use super::db::{NewAuditEvent, Tx};
use super::mail;
use super::request::RequestMeta;
use super::state::AppState;
use crate::error::AppError;
use crate::wire::AuditKind;

/// Writes an audit event and, for a change the owner must hear of, queues
/// the security notice with it (see `mail::Notice`). A failure to write
/// them is logged, not raised: the operation they describe has already
/// happened.
pub async fn audit(state: &AppState, user_id: Option<i64>, kind: AuditKind, meta: &RequestMeta) {
    let event = NewAuditEvent {
        user_id,
        actor_id: None,
        kind: kind.as_str(),
        at: state.now(),
        ip: meta.ip.as_deref(),
        user_agent: meta.user_agent.as_deref(),
        detail: None,
    };
    let written = match (mail::Notice::for_event(kind), user_id) {
        (Some(notice), Some(id)) => notify(state, id, notice, Some(&event), meta).await,
        _ => state.db.insert_audit(&event).await,
    };
    if let Err(e) = written {
        tracing::warn!(kind = kind.as_str(), error = %e.message, "could not write an audit event");
    }
}

/// Queues a security notice to the account's owner, with the audit event
/// it goes with (if any) in the same transaction: the event is never
/// recorded without its notice, or the other way round.
pub async fn notify(
    state: &AppState,
    user_id: i64,
    notice: mail::Notice,
    event: Option<&NewAuditEvent<'_>>,
    meta: &RequestMeta,
) -> Result<(), AppError> {
    let Some(user) = state.db.user_by_id(user_id).await? else { return Ok(()) };
    let kind = mail::MailKind::Notice(notice).as_string();
    let mut tx = state.db.begin().await?;
    if let Some(event) = event {
        tx.insert_audit(event).await?;
    }
    tx.enqueue_mail(&mail::new_mail(state, &kind, Some(user.id), &user.email, meta)).await?;
    tx.commit().await?;
    state.mail.wake();
    Ok(())
}

/// `audit`, as one of the writes of `tx`: the event (and its notice, if
/// its kind has one) lands with the operation it describes, or neither
/// does. Commit with `commit`, which wakes the mail worker if a notice was
/// queued.
pub async fn record(
    state: &AppState,
    tx: &mut Tx,
    user_id: Option<i64>,
    kind: AuditKind,
    meta: &RequestMeta,
) -> Result<(), AppError> {
    record_by(state, tx, user_id, None, kind, meta).await
}

/// `record`, for an administrator (`actor_id`) acting on `user_id`'s
/// account: the event names both.
pub async fn record_by(
    state: &AppState,
    tx: &mut Tx,
    user_id: Option<i64>,
    actor_id: Option<i64>,
    kind: AuditKind,
    meta: &RequestMeta,
) -> Result<(), AppError> {
    record_detailed(state, tx, user_id, actor_id, kind, None, meta).await
}

/// `record_by`, with words on how it happened (`detail`, shown beside the
/// event on the admin page and in its CSV).
pub async fn record_detailed(
    state: &AppState,
    tx: &mut Tx,
    user_id: Option<i64>,
    actor_id: Option<i64>,
    kind: AuditKind,
    detail: Option<&str>,
    meta: &RequestMeta,
) -> Result<(), AppError> {
    let event = NewAuditEvent {
        user_id,
        actor_id,
        kind: kind.as_str(),
        at: state.now(),
        ip: meta.ip.as_deref(),
        user_agent: meta.user_agent.as_deref(),
        detail,
    };
    tx.insert_audit(&event).await?;
    if let (Some(notice), Some(id)) = (mail::Notice::for_event(kind), user_id) {
        let email = tx.user_email(id).await?;
        queue_notice(state, tx, id, &email, notice, meta).await?;
    }
    Ok(())
}

/// An administrator's (`actor_id`; `None`: the operator's command) event
/// about something that is not an account, as one of the writes of `tx`:
/// `detail` says what (an app, an invitation's address).
pub async fn record_about(
    state: &AppState,
    tx: &mut Tx,
    actor_id: Option<i64>,
    kind: AuditKind,
    detail: &str,
    meta: &RequestMeta,
) -> Result<(), AppError> {
    let event = NewAuditEvent {
        user_id: None,
        actor_id,
        kind: kind.as_str(),
        at: state.now(),
        ip: meta.ip.as_deref(),
        user_agent: meta.user_agent.as_deref(),
        detail: Some(detail),
    };
    tx.insert_audit(&event).await
}

/// Queues a security notice to `email`, the account's address, in `tx`.
pub async fn queue_notice(
    state: &AppState,
    tx: &mut Tx,
    user_id: i64,
    email: &str,
    notice: mail::Notice,
    meta: &RequestMeta,
) -> Result<(), AppError> {
    let kind = mail::MailKind::Notice(notice).as_string();
    tx.enqueue_mail(&mail::new_mail(state, &kind, Some(user_id), email, meta)).await?;
    tx.note_mail_queued();
    Ok(())
}

/// Commits `tx`, then wakes the mail worker if a message was queued in it.
pub async fn commit(state: &AppState, tx: Tx) -> Result<(), AppError> {
    let queued = tx.mail_queued();
    tx.commit().await?;
    if queued {
        state.mail.wake();
    }
    Ok(())
}
