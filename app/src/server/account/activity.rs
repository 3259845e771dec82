//! The person's own activity, as the security page shows it: times in
//! their time zone, and a lockdown with the event that set it off (that
//! event marked where it appears).

use crate::error::AppError;
use crate::server::auth::FullSession;
use crate::server::db::AuditRow;
use crate::server::mail::{MailKind, browser_name};
use crate::server::state::AppState;
use crate::server::time_zone::format_time;
use crate::wire::{Activity, ActivityEvent, AuditKind, LockdownAbout};

/// Events shown on the security page.
const ACTIVITY_LIMIT: i64 = 30;

/// A notice's time and its event's may fall in neighbouring seconds (each
/// reads the clock); the address and browser must match exactly.
const SAME_EVENT_SECONDS: i64 = 2;

/// The user's recent events, and apart from them the security changes, so
/// a flood of failed attempts can never push a change off the page.
pub async fn activity(state: &AppState, session: FullSession) -> Result<Activity, AppError> {
    let id = session.user.id;
    let zone = state.db.time_zone_of(id).await?;
    let changes: Vec<&str> = AuditKind::changes().iter().map(|k| k.as_str()).collect();
    let events = state.db.recent_audit(id, &changes, true, ACTIVITY_LIMIT).await?;
    let changes = state.db.recent_audit(id, &changes, false, ACTIVITY_LIMIT).await?;
    // What the lockdowns on the page were set off by: (audit kind, at, ip,
    // User-Agent) of the reported event.
    let causes: Vec<(AuditKind, i64, Option<String>, Option<String>)> = changes
        .iter()
        .filter(|r| r.kind == AuditKind::LockedDown.as_str())
        .filter_map(|r| {
            let kind = match MailKind::parse(r.about_kind.as_deref()?)? {
                MailKind::Notice(notice) => notice.audit_kind(),
                _ => return None,
            };
            Some((kind, r.about_at?, r.about_ip.clone(), r.about_user_agent.clone()))
        })
        .collect();
    let zone_ref = zone.as_deref();
    let to_events = |rows: Vec<AuditRow>| -> Vec<ActivityEvent> {
        rows.into_iter()
            .filter_map(|r| {
                let kind = AuditKind::parse(&r.kind)?;
                let set_off_lockdown = causes.iter().any(|(k, at, ip, agent)| {
                    *k == kind && (r.at - at).abs() <= SAME_EVENT_SECONDS && *ip == r.ip && *agent == r.user_agent
                });
                let about = about(&r, zone_ref);
                Some(ActivityEvent {
                    kind: kind.as_str().to_owned(),
                    warning: kind.is_warning(),
                    label: kind.label().to_owned(),
                    at: r.at,
                    when: format_time(r.at, zone_ref),
                    ip: r.ip,
                    user_agent: r.user_agent,
                    about,
                    set_off_lockdown,
                })
            })
            .collect()
    };
    Ok(Activity { events: to_events(events), changes: to_events(changes), time_zone: zone })
}

/// A lockdown's cause in words, if its notice was known.
fn about(row: &AuditRow, zone: Option<&str>) -> Option<LockdownAbout> {
    let MailKind::Notice(notice) = MailKind::parse(row.about_kind.as_deref()?)? else { return None };
    Some(LockdownAbout {
        what: notice.reported().to_owned(),
        browser: row.about_user_agent.as_deref().map(browser_name).unwrap_or_else(|| "an unknown browser".into()),
        ip: row.about_ip.clone(),
        when: format_time(row.about_at?, zone),
    })
}
