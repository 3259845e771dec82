//! The person's own activity, as the security page shows it.

use crate::error::AppError;
use crate::server::auth::FullSession;
use crate::server::state::AppState;
use crate::wire::{Activity, ActivityEvent, AuditKind};

/// Events shown on the security page.
const ACTIVITY_LIMIT: i64 = 30;

/// The user's recent events, and apart from them the security changes, so
/// a flood of failed attempts can never push a change off the page.
pub async fn activity(state: &AppState, session: FullSession) -> Result<Activity, AppError> {
    let changes: Vec<&str> = AuditKind::changes().iter().map(|k| k.as_str()).collect();
    let to_events = |rows: Vec<crate::server::db::AuditRow>| -> Vec<ActivityEvent> {
        rows.into_iter()
            .filter_map(|r| {
                Some(ActivityEvent { kind: AuditKind::parse(&r.kind)?, at: r.at, ip: r.ip, user_agent: r.user_agent })
            })
            .collect()
    };
    let id = session.user.id;
    Ok(Activity {
        events: to_events(state.db.recent_audit(id, &changes, true, ACTIVITY_LIMIT).await?),
        changes: to_events(state.db.recent_audit(id, &changes, false, ACTIVITY_LIMIT).await?),
    })
}
