//! The person's own live log-ins, as the security page lists them: the
//! browser in words, the address it came from, when it started and was
//! last seen, and which one is asking. Each is named by a handle, never by
//! its id: the id is the refresh family and the gate cache's key, and
//! travels inside access tokens, so it stays inside the server.

use super::Amr;
use crate::error::AppError;
use crate::server::auth::FullSession;
use crate::server::crypto::sha256_hex;
use crate::server::db::LiveLoginRow;
use crate::server::mail::browser_name;
use crate::server::state::AppState;
use crate::server::time_zone::format_time;
use crate::wire::LogInView;

/// The handle a log-in is shown and ended by: 128 bits of a hash of its id,
/// so the id cannot be worked out from it. Knowing a handle gives nothing
/// but the owner's own right to end that log-in.
pub(crate) fn handle(login: &str) -> String {
    let mut hex = sha256_hex(format!("log-in handle\0{login}").as_bytes());
    hex.truncate(32);
    hex
}

/// How the list names a browser: `browser_name`'s words, as a row's
/// heading ("An unknown browser" when nothing was recognised).
pub(crate) fn browser_words(user_agent: Option<&str>) -> String {
    let words = browser_name(user_agent.unwrap_or(""));
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => words,
    }
}

/// The person's live log-ins: this one first (it is being seen now,
/// whenever it last refreshed), then the others, the most recently seen
/// first.
pub async fn list(state: &AppState, session: &FullSession) -> Result<Vec<LogInView>, AppError> {
    let rows = state.db.live_logins(session.user.id, state.now()).await?;
    let zone = state.db.time_zone_of(session.user.id).await?;
    let mut views: Vec<LogInView> =
        rows.into_iter().map(|row| view(row, &session.user.family, zone.as_deref())).collect();
    // Stable: the others keep the database's order.
    views.sort_by_key(|v| !v.current);
    Ok(views)
}

pub(crate) fn view(row: LiveLoginRow, current: &str, zone: Option<&str>) -> LogInView {
    let parsed = Amr::parse(&row.amr);
    let amr = parsed.as_string();
    LogInView {
        reached: parsed.words(),
        id: handle(&row.id),
        browser: browser_words(row.user_agent.as_deref()),
        ip: row.ip,
        created_at: row.created_at,
        last_seen_at: row.last_seen_at,
        created_when: format_time(row.created_at, zone),
        last_seen_when: format_time(row.last_seen_at, zone),
        current: row.id == current,
        amr: amr.split(' ').filter(|n| !n.is_empty()).map(str::to_owned).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_stable_short_and_not_the_id() {
        let id = "0b6f3c1e-8a5e-4d3b-9d8e-2f1a7c5e9b10";
        assert_eq!(handle(id), handle(id));
        assert_eq!(handle(id).len(), 32);
        assert_ne!(handle(id), handle("0b6f3c1e-8a5e-4d3b-9d8e-2f1a7c5e9b11"));
        assert!(!handle(id).contains(&id[..8]));
    }

    #[test]
    fn rows_are_named_in_words() {
        let row = LiveLoginRow {
            id: "a".into(),
            created_at: 1,
            last_seen_at: 2,
            ip: Some("203.0.113.5".into()),
            user_agent: Some("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0".into()),
            amr: "otp pwd".into(),
        };
        let v = view(row.clone(), "a", Some("Europe/Berlin"));
        assert_eq!(v.browser, "Firefox on Windows");
        assert_eq!(v.amr, ["pwd", "otp"]);
        assert_eq!(v.reached, "the password and a code from the app");
        assert!(v.current);
        assert_ne!(v.id, "a");
        assert_eq!(
            (v.created_when.as_str(), v.last_seen_when.as_str()),
            ("1 Jan 1970, 01:00 CET", "1 Jan 1970, 01:00 CET")
        );
        let unknown = view(LiveLoginRow { user_agent: None, ..row }, "b", None);
        assert_eq!(unknown.created_when, "1 Jan 1970, 00:00 UTC");
        assert_eq!(unknown.browser, "An unknown browser");
        assert!(!unknown.current);
    }
}
