//! The person's time zone: an IANA name the browser reports once a page is
//! hydrated, checked against the tz database bundled with jiff (so a name
//! means the same on every host) and stored on the account; and times as
//! the person reads them, in that zone or in UTC said as such.

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::error::AppError;
use crate::server::auth::FullSession;
use crate::server::state::AppState;

/// Longer than any name in the tz database (the longest is 32 bytes).
const MAX_NAME: usize = 64;

/// The zone `name` stands for, with its name as the database spells it
/// (`europe/berlin` is `Europe/Berlin`). `None`: no such zone. Fixed
/// offsets and POSIX rules are not names and are refused.
pub fn parse(name: &str) -> Option<(String, TimeZone)> {
    let name = name.trim();
    if name.is_empty() || name.len() > MAX_NAME || !name.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    let zone = TimeZone::get(name).ok()?;
    let canonical = zone.iana_name()?.to_owned();
    Some((canonical, zone))
}

/// `6 Dec 2026, 14:02 CET` in the zone named `zone`, or `6 Dec 2026, 13:02
/// UTC` when none is known (or the stored name is no longer in the
/// database). A zone whose abbreviation is only a number (`+04`) is said
/// as `UTC+04`.
pub fn format_time(at: i64, zone: Option<&str>) -> String {
    let zone = zone.and_then(parse).map(|(_, z)| z).unwrap_or(TimeZone::UTC);
    let Ok(ts) = Timestamp::from_second(at) else {
        return format!("{} UTC", crate::time::format_utc(at));
    };
    let local = ts.to_zoned_datetime(zone);
    let abbreviation = local.strftime("%Z").to_string();
    let label = if abbreviation.starts_with(['+', '-']) { format!("UTC{abbreviation}") } else { abbreviation };
    format!("{}, {} {label}", local.strftime("%-d %b %Y"), local.strftime("%H:%M"))
}

/// `6 Dec 2026`: the day `at` falls on in the zone named `zone` (UTC when
/// none is known).
pub fn format_day(at: i64, zone: Option<&str>) -> String {
    let zone = zone.and_then(parse).map(|(_, z)| z).unwrap_or(TimeZone::UTC);
    match Timestamp::from_second(at) {
        Ok(ts) => ts.to_zoned_datetime(zone).strftime("%-d %b %Y").to_string(),
        Err(_) => crate::time::format_utc(at),
    }
}

/// The start of the day after `date` (YYYY-MM-DD) in the zone named
/// `zone` (UTC when none is known): "by that date" ends there. `None`: not
/// a date.
pub fn end_of_day(date: &str, zone: Option<&str>) -> Option<i64> {
    let zone = zone.and_then(parse).map(|(_, z)| z).unwrap_or(TimeZone::UTC);
    let date: jiff::civil::Date = date.trim().parse().ok()?;
    Some(date.tomorrow().ok()?.to_zoned_datetime(zone).ok()?.timestamp().as_second())
}

/// POST /api/account/time-zone: stores the browser's zone on the account.
/// An unknown name is refused (400) and nothing is stored; the same name
/// again writes nothing. Returns the name as stored.
pub async fn set(state: &AppState, session: &FullSession, name: &str) -> Result<String, AppError> {
    let Some((canonical, _)) = parse(name) else {
        let mut e = AppError::bad_request("That is not a time zone we know (an IANA name such as Europe/Berlin).");
        e.fields.insert("timeZone".into(), "unknown".into());
        return Err(e);
    };
    state.db.set_time_zone(session.user.id, &canonical).await?;
    Ok(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_against_the_database() {
        assert_eq!(parse("Europe/Berlin").map(|(n, _)| n).as_deref(), Some("Europe/Berlin"));
        assert_eq!(parse("america/new_york").map(|(n, _)| n).as_deref(), Some("America/New_York"));
        assert_eq!(parse("UTC").map(|(n, _)| n).as_deref(), Some("UTC"));
        for bad in ["", "Mars/Olympus_Mons", "Europe/Berlin ", "../../etc/passwd", "+05:00", "EST5EDT,M3.2.0,M11.1.0"] {
            if bad == "Europe/Berlin " {
                // Surrounding blanks are trimmed, like any other field.
                assert!(parse(bad).is_some());
                continue;
            }
            assert!(parse(bad).is_none(), "{bad:?}");
        }
        assert!(parse(&"A".repeat(65)).is_none());
    }

    #[test]
    fn times_in_a_zone_or_in_utc_said_as_such() {
        // 2026-12-06 13:02:00 UTC.
        let at = 1_796_562_120;
        assert_eq!(format_time(at, None), "6 Dec 2026, 13:02 UTC");
        assert_eq!(format_time(at, Some("Europe/Berlin")), "6 Dec 2026, 14:02 CET");
        assert_eq!(format_time(at, Some("Asia/Tokyo")), "6 Dec 2026, 22:02 JST");
        assert_eq!(format_time(at, Some("Asia/Dubai")), "6 Dec 2026, 17:02 UTC+04");
        assert_eq!(format_time(at, Some("Nowhere/Else")), "6 Dec 2026, 13:02 UTC");
        // Summer time.
        assert_eq!(format_time(at - 180 * 86_400, Some("Europe/Berlin")), "9 Jun 2026, 15:02 CEST");
    }
}
