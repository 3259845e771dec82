//! Log-ins: one row each (`db::logins`), the single source of liveness for
//! the portal, the gate and every token issued from a log-in. Here a
//! log-in starts (with how it was reached), is continued by refresh tokens
//! and ends. A refresh holds the row first, so no ending can be undone by a
//! refresh that raced it; a log-in is stored only if the account's session
//! version is still the one its factors were checked against, so no log-in
//! in flight outlives an ending either.

mod end;
mod gate_cookies;
pub(crate) mod list;
mod refresh;

pub use end::{EndedLogIn, end_all, end_one, log_out, log_out_everywhere, operator_revoke_sessions};
pub use gate_cookies::issue_gate_cookies;
pub use list::list;
pub use refresh::refresh;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::AppError;
use crate::server::crypto::tokens::{CookieKind, Stage};
use crate::server::crypto::{random_bytes, sha256_hex};
use crate::server::db::{NewLogin, NewRefreshToken, Tx};
use crate::server::metrics;
use crate::server::request::RequestMeta;
use crate::server::state::AppState;

/// How a log-in was reached: the factors the person presented (RFC 8176
/// names where one fits). Two factors: anything beside the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Amr(u8);

impl Amr {
    pub const PASSWORD: Amr = Amr(1);
    /// A code from the authenticator app.
    pub const APP: Amr = Amr(2);
    pub const RECOVERY_CODE: Amr = Amr(4);
    /// A passkey or security key.
    pub const PASSKEY: Amr = Amr(8);
    /// A remembered browser stood in for the second factor (see
    /// `account::remembered`): it counts as two factors, except where an
    /// access rule or an app wants one shown (`shown_second_factor`).
    pub const REMEMBERED: Amr = Amr(16);

    const NAMES: [(Amr, &'static str); 5] = [
        (Amr::PASSWORD, "pwd"),
        (Amr::APP, "otp"),
        (Amr::RECOVERY_CODE, "rec"),
        (Amr::PASSKEY, "hwk"),
        (Amr::REMEMBERED, "remembered"),
    ];

    /// A second factor was shown in this log-in: a code, a recovery code
    /// or a passkey (a remembered browser is not one).
    pub fn shown_second_factor(self) -> bool {
        self.0 & (Amr::APP.0 | Amr::RECOVERY_CODE.0 | Amr::PASSKEY.0) != 0
    }

    pub fn with(self, other: Amr) -> Amr {
        Amr(self.0 | other.0)
    }

    pub fn has(self, other: Amr) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }

    /// Reached with a second factor (a passkey alone counts: possession,
    /// and the PIN or biometric its authenticator verified).
    pub fn two_factor(self) -> bool {
        self.0 & !Amr::PASSWORD.0 != 0
    }

    /// How the log-in was reached, in words: "the password and a code".
    pub fn words(self) -> String {
        let mut parts: Vec<&str> = Vec::new();
        for (factor, words) in [
            (Amr::PASSWORD, "the password"),
            (Amr::APP, "a code from the app"),
            (Amr::RECOVERY_CODE, "a recovery code"),
            (Amr::PASSKEY, "a passkey"),
            (Amr::REMEMBERED, "a remembered browser"),
        ] {
            if self.has(factor) {
                parts.push(words);
            }
        }
        match parts.as_slice() {
            [] => "an unknown way".to_owned(),
            [one] if self == Amr::PASSWORD => format!("{one} alone"),
            _ => parts.join(" and "),
        }
    }

    /// As stored: space-separated names. Unknown names are ignored.
    pub fn parse(text: &str) -> Amr {
        text.split(' ')
            .filter_map(|word| Self::NAMES.iter().find(|(_, name)| *name == word))
            .fold(Amr::default(), |amr, (bit, _)| amr.with(*bit))
    }

    pub fn as_string(self) -> String {
        Self::NAMES.iter().filter(|(bit, _)| self.has(*bit)).map(|(_, name)| *name).collect::<Vec<_>>().join(" ")
    }
}

/// The answer to a log-in overtaken by an ending of the account's log-ins
/// (a password change, log-out everywhere, a lockdown) between checking
/// its factors and storing itself.
pub(crate) fn overtaken() -> AppError {
    AppError::conflict("Your account changed while you were logging in. Log in again.")
}

/// Starts a log-in: its row, its first refresh token, an access token
/// naming it and a gate cookie per cookie domain. Refused if the account's
/// session version is no longer `version` (see `overtaken`). Returns the
/// cookies.
pub async fn start(
    state: &AppState,
    tx: &mut Tx,
    user_id: i64,
    version: i64,
    amr: Amr,
    meta: &RequestMeta,
) -> Result<Vec<String>, AppError> {
    try_start(state, tx, user_id, version, amr, meta).await?.ok_or_else(overtaken)
}

/// `start`, with an overtaken log-in as `Ok(None)`: nothing was written,
/// and the caller may commit what else it did (see `account::authenticate`).
/// A second factor in `amr` was shown now.
pub(crate) async fn try_start(
    state: &AppState,
    tx: &mut Tx,
    user_id: i64,
    version: i64,
    amr: Amr,
    meta: &RequestMeta,
) -> Result<Option<Vec<String>>, AppError> {
    let shown = amr.shown_second_factor().then_some(state.now());
    let started =
        insert(state, tx, user_id, version, Reached { amr, factor_at: shown, remembered: None }, meta).await?;
    if started.is_some() {
        let how = match amr {
            a if a == Amr::PASSWORD => metrics::Reached::Password,
            a if a.has(Amr::PASSWORD) => metrics::Reached::TwoFactors,
            _ => metrics::Reached::Passkey,
        };
        tx.count(metrics::Count::LogIn(how));
    }
    Ok(started)
}

/// A log-in reached by the password and the remembered browser `entry`
/// (`factors::remembered`): no second factor shown.
pub(crate) async fn start_remembered(
    state: &AppState,
    tx: &mut Tx,
    user_id: i64,
    version: i64,
    entry: &str,
    meta: &RequestMeta,
) -> Result<Vec<String>, AppError> {
    let reached = Reached { amr: Amr::PASSWORD.with(Amr::REMEMBERED), factor_at: None, remembered: Some(entry) };
    let cookies = insert(state, tx, user_id, version, reached, meta).await?.ok_or_else(overtaken)?;
    tx.count(metrics::Count::LogIn(metrics::Reached::Remembered));
    Ok(cookies)
}

/// How a log-in about to be stored was reached.
struct Reached<'a> {
    amr: Amr,
    /// When a second factor was last shown (None: none was).
    factor_at: Option<i64>,
    remembered: Option<&'a str>,
}

async fn insert(
    state: &AppState,
    tx: &mut Tx,
    user_id: i64,
    version: i64,
    reached: Reached<'_>,
    meta: &RequestMeta,
) -> Result<Option<Vec<String>>, AppError> {
    let now = state.now();
    let id = uuid::Uuid::new_v4().to_string();
    let expires_at = now + state.refresh_ttl;
    let stored = tx
        .insert_login(&NewLogin {
            id: &id,
            user_id,
            session_version: version,
            amr: reached.amr,
            auth_at: now,
            factor_at: reached.factor_at,
            remembered: reached.remembered,
            now,
            expires_at,
            ip: meta.ip.as_deref(),
            user_agent: meta.user_agent.as_deref(),
        })
        .await?;
    if !stored {
        return Ok(None);
    }
    let mut cookies = issue_tokens(state, tx, user_id, version, &id, expires_at, now).await?;
    cookies.push(authorize_cookie(state, user_id, version, &id, now, expires_at)?);
    cookies.extend(gate_cookies::issue_first_gate_cookies(state, tx, user_id, &id, expires_at).await?);
    Ok(Some(cookies))
}

/// Ends every log-in of the account and starts one for this client, in the
/// caller's transaction (which moved the session version to `version`).
/// The new log-in is reached by `amr`, its second factor last shown at
/// `factor_at` (the old log-in's, or now when the change checked one).
pub async fn renew_all(
    state: &AppState,
    tx: &mut Tx,
    user_id: i64,
    version: i64,
    amr: Amr,
    factor_at: Option<i64>,
    meta: &RequestMeta,
) -> Result<Vec<String>, AppError> {
    tx.revoke_user_logins(user_id, state.now()).await?;
    let reached = Reached { amr, factor_at, remembered: None };
    insert(state, tx, user_id, version, reached, meta).await?.ok_or_else(overtaken)
}

/// A refresh token continuing the log-in, and an access token naming it.
pub(crate) async fn issue_tokens(
    state: &AppState,
    tx: &mut Tx,
    user_id: i64,
    version: i64,
    login: &str,
    expires_at: i64,
    auth_at: i64,
) -> Result<Vec<String>, AppError> {
    let now = state.now();
    let refresh = URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
    tx.insert_refresh_token(&NewRefreshToken {
        user_id,
        family: login,
        token_hash: &sha256_hex(refresh.as_bytes()),
        now,
        expires_at,
        session_version: version,
        auth_at,
    })
    .await?;
    let access = state.keys.issue(user_id, Stage::Full, version, now, state.access_ttl, Some((login, auth_at)))?;
    Ok(vec![
        state.cookies.set(CookieKind::Access, &access, state.access_ttl),
        state.cookies.set(CookieKind::Refresh, &refresh, (expires_at - now).max(0)),
    ])
}

/// The OpenID authorize step's cookie for a log-in started at `auth_at`
/// (see `CookieKind::Authorize`): it lives as long as the log-in.
fn authorize_cookie(
    state: &AppState,
    user_id: i64,
    version: i64,
    login: &str,
    auth_at: i64,
    expires_at: i64,
) -> Result<String, AppError> {
    let ttl = (expires_at - auth_at).max(0);
    let token = state.keys.issue(user_id, Stage::Authorize, version, auth_at, ttl, Some((login, auth_at)))?;
    Ok(state.cookies.set(CookieKind::Authorize, &token, ttl))
}

pub fn cleared_cookies(state: &AppState) -> Vec<String> {
    let mut cookies = vec![
        state.cookies.clear(CookieKind::Access),
        state.cookies.clear(CookieKind::Refresh),
        state.cookies.clear(CookieKind::Authorize),
    ];
    cookies.extend(state.gate.cookie_domains.iter().map(|d| state.cookies.clear_gate(d)));
    cookies
}

#[cfg(test)]
mod tests {
    use super::Amr;

    #[test]
    fn amr_round_trips_and_counts_factors() {
        let both = Amr::PASSWORD.with(Amr::APP);
        assert_eq!(both.as_string(), "pwd otp");
        assert_eq!(Amr::parse("pwd otp"), both);
        assert_eq!(Amr::parse("otp pwd unknown"), both, "order and unknown names do not matter");
        assert!(both.two_factor());
        assert!(!Amr::PASSWORD.two_factor());
        assert!(Amr::PASSKEY.two_factor(), "a passkey alone is two factors");
        assert!(Amr::PASSWORD.with(Amr::RECOVERY_CODE).two_factor());
        assert_eq!(Amr::parse(""), Amr::default());
        assert!(!Amr::default().two_factor() && !Amr::default().has(Amr::default()));
    }

    #[test]
    fn how_a_log_in_was_reached_is_said_in_words() {
        assert_eq!(Amr::PASSWORD.words(), "the password alone");
        assert_eq!(Amr::PASSKEY.words(), "a passkey");
        assert_eq!(Amr::PASSWORD.with(Amr::RECOVERY_CODE).words(), "the password and a recovery code");
        assert_eq!(Amr::default().words(), "an unknown way");
        assert_eq!(Amr::PASSWORD.with(Amr::REMEMBERED).words(), "the password and a remembered browser");
    }

    #[test]
    fn a_remembered_browser_is_two_factors_but_no_factor_shown() {
        let remembered = Amr::PASSWORD.with(Amr::REMEMBERED);
        assert!(remembered.two_factor());
        assert!(!remembered.shown_second_factor());
        assert_eq!(Amr::parse(&remembered.as_string()), remembered);
        assert!(remembered.with(Amr::APP).shown_second_factor());
        assert!(Amr::PASSKEY.shown_second_factor() && !Amr::PASSWORD.shown_second_factor());
    }
}
