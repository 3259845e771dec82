//! The audit trail the person reviews, and the security notices mailed
//! with the changes they must hear of: one call records both, together.

use super::db::NewAuditEvent;
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
        kind: kind.as_str(),
        at: state.now(),
        ip: meta.ip.as_deref(),
        user_agent: meta.user_agent.as_deref(),
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
