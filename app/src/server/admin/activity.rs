//! The audit trail of every account, for administrators: filtered by
//! person, kind, dates (in the administrator's time zone) and client
//! address; a page at a time, or everything that matches as CSV.

use jiff::civil::Date;
use jiff::tz::TimeZone;

use crate::error::AppError;
use crate::server::auth::FullSession;
use crate::server::db::{EventFilter, EventRow};
use crate::server::logins::list::browser_words;
use crate::server::state::AppState;
use crate::server::time_zone::{self, format_time};
use crate::wire::AuditKind;
use crate::wire::admin::{ActivityFilter, ActivityLine, ActivityPage, EVENTS_PER_PAGE};

use super::require_admin;

/// The most events one CSV holds (the newest that match).
pub const EXPORT_LIMIT: i64 = 100_000;

/// The filter as typed, checked and turned into times in `zone`.
fn parse(filter: &ActivityFilter, zone: &TimeZone) -> Result<EventFilter, AppError> {
    let text = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let person = text(&filter.person);
    if person.as_ref().is_some_and(|p| p.chars().count() > 200) {
        return Err(AppError::bad_request("The person is too long (200 characters at most)."));
    }
    let kind = text(&filter.kind);
    if let Some(k) = &kind
        && AuditKind::parse(k).is_none()
    {
        return Err(AppError::bad_request(format!("There is no kind of event called {k:?}.")));
    }
    let ip = text(&filter.ip);
    if ip.as_ref().is_some_and(|ip| ip.len() > 64 || !ip.chars().all(|c| c.is_ascii_hexdigit() || ".:".contains(c))) {
        return Err(AppError::bad_request("An address is digits, dots and colons: 10.0.0.7, 10.0. or 2001:db8::."));
    }
    // The start of a day in `zone`, `after` days on from the date typed.
    let day = |s: &str, what: &str, after: bool| -> Result<Option<i64>, AppError> {
        let Some(s) = text(s) else { return Ok(None) };
        let date: Date = s.parse().map_err(|_| {
            AppError::bad_request(format!("The {what} date must be written YYYY-MM-DD, like 2026-12-31."))
        })?;
        let no_such = || AppError::bad_request(format!("No such {what} date."));
        let date = if after { date.tomorrow().map_err(|_| no_such())? } else { date };
        Ok(Some(date.to_zoned_datetime(zone.clone()).map_err(|_| no_such())?.timestamp().as_second()))
    };
    let from = day(&filter.from, "first", false)?;
    // The last day is included: up to the start of the next one.
    let until = day(&filter.to, "last", true)?;
    if let (Some(from), Some(until)) = (from, until)
        && from >= until
    {
        return Err(AppError::bad_request("The first date is after the last one."));
    }
    Ok(EventFilter { person, kind, from, until, ip })
}

fn label(kind: &str) -> String {
    AuditKind::parse(kind).map_or_else(|| kind.to_owned(), |k| k.label().to_owned())
}

/// One page (from 1) of the events matching `filter`.
pub async fn page(
    state: &AppState,
    session: &FullSession,
    filter: &ActivityFilter,
    page: i64,
) -> Result<ActivityPage, AppError> {
    let admin = require_admin(state, session).await?;
    let zone_name = admin.time_zone.as_deref();
    let zone = zone_name.and_then(time_zone::parse);
    let parsed = parse(filter, zone.as_ref().map_or(&TimeZone::UTC, |(_, z)| z))?;
    let page = page.max(1);
    let (rows, total) =
        state.db.find_events(&parsed, (page - 1).saturating_mul(EVENTS_PER_PAGE), EVENTS_PER_PAGE).await?;
    let events = rows
        .into_iter()
        .map(|r| ActivityLine {
            label: match &r.detail {
                Some(detail) => format!("{}: {detail}", label(&r.kind)),
                None => label(&r.kind),
            },
            when: format_time(r.at, zone_name),
            browser: browser_words(r.user_agent.as_deref()),
            about_no_account: r.user_id.is_none() && r.detail.is_some(),
            person: r.person_email,
            person_id: r.user_id,
            by: r.actor_email,
            ip: r.ip,
        })
        .collect();
    Ok(ActivityPage {
        events,
        total,
        page,
        pages: ((total + EVENTS_PER_PAGE - 1) / EVENTS_PER_PAGE).max(1),
        kinds: AuditKind::all().iter().map(|k| (k.as_str().to_owned(), k.label().to_owned())).collect(),
        time_zone: zone.map_or_else(|| "UTC".to_owned(), |(name, _)| name),
    })
}

/// Every event matching `filter` (the newest `EXPORT_LIMIT`) as CSV:
/// times in UTC (RFC 3339), one event a line.
pub async fn csv(state: &AppState, session: &FullSession, filter: &ActivityFilter) -> Result<String, AppError> {
    let admin = require_admin(state, session).await?;
    let zone = admin.time_zone.as_deref().and_then(time_zone::parse);
    let parsed = parse(filter, zone.as_ref().map_or(&TimeZone::UTC, |(_, z)| z))?;
    let (rows, _) = state.db.find_events(&parsed, 0, EXPORT_LIMIT).await?;
    let mut out = String::from("time,kind,event,person,by,address,user_agent,detail\r\n");
    for r in &rows {
        line(&mut out, r);
    }
    Ok(out)
}

fn line(out: &mut String, r: &EventRow) {
    let time = jiff::Timestamp::from_second(r.at).map(|t| t.to_string()).unwrap_or_default();
    let cells = [
        time.as_str(),
        r.kind.as_str(),
        &label(&r.kind),
        r.person_email.as_deref().unwrap_or(""),
        r.actor_email.as_deref().unwrap_or(""),
        r.ip.as_deref().unwrap_or(""),
        r.user_agent.as_deref().unwrap_or(""),
        r.detail.as_deref().unwrap_or(""),
    ];
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_cell(out, cell);
    }
    out.push_str("\r\n");
}

/// A CSV cell (RFC 4180): quoted when it holds a comma, quote or line
/// break. A cell a spreadsheet would run as a formula (a User-Agent is
/// whatever the client sent) starts with a `'`.
fn push_cell(out: &mut String, cell: &str) {
    let formula = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quoted = formula || cell.contains([',', '"', '\n', '\r']);
    if quoted {
        out.push('"');
    }
    if formula {
        out.push('\'');
    }
    for c in cell.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    if quoted {
        out.push('"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(from: &str, to: &str) -> ActivityFilter {
        ActivityFilter { from: from.into(), to: to.into(), ..Default::default() }
    }

    #[test]
    fn dates_are_whole_days_in_the_administrators_zone() {
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        let f = parse(&filter("2026-12-06", "2026-12-06"), &berlin).unwrap();
        // Midnight in Berlin (UTC+1) is 23:00 UTC the day before.
        assert_eq!(f.from, Some(1_796_511_600));
        assert_eq!(f.until, Some(1_796_511_600 + 86_400));
        let utc = parse(&filter("2026-12-06", ""), &TimeZone::UTC).unwrap();
        assert_eq!((utc.from, utc.until), (Some(1_796_515_200), None));
    }

    #[test]
    fn bad_filters_are_refused_with_a_reason() {
        let utc = TimeZone::UTC;
        for (f, words) in [
            (filter("6.12.2026", ""), "YYYY-MM-DD"),
            (filter("2026-02-30", ""), "YYYY-MM-DD"),
            (filter("2026-12-07", "2026-12-06"), "after the last"),
            (ActivityFilter { kind: "nope".into(), ..Default::default() }, "no kind"),
            (ActivityFilter { ip: "10.0.0.0/8".into(), ..Default::default() }, "digits, dots"),
        ] {
            let e = parse(&f, &utc).unwrap_err();
            assert!(e.message.contains(words), "{f:?}: {}", e.message);
        }
    }

    #[test]
    fn cells_are_quoted_and_formulas_defused() {
        let mut out = String::new();
        for cell in ["plain", "a,b", "say \"hi\"", "=HYPERLINK(\"x\")", "-1", "line\nbreak"] {
            push_cell(&mut out, cell);
            out.push('|');
        }
        assert_eq!(out, "plain|\"a,b\"|\"say \"\"hi\"\"\"|\"'=HYPERLINK(\"\"x\"\")\"|\"'-1\"|\"line\nbreak\"|");
    }
}
