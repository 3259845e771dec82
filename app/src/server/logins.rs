//! Log-ins: one row each (`db::logins`), the single source of liveness for
//! the portal, the gate and every token issued from a log-in. Here a
//! log-in starts (with how it was reached), is continued by refresh tokens
//! and ends. A refresh holds the row first, so no ending can be undone by a
//! refresh that raced it; a log-in is stored only if the account's session
//! version is still the one its factors were checked against, so no log-in
//! in flight outlives an ending either.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::audit::audit;
use super::crypto::{random_bytes, sha256_hex};
use super::db::{NewGateCookie, NewLogin, NewRefreshToken, Tx};
use super::request::RequestMeta;
use super::service::WithCookies;
use super::state::AppState;
use super::tokens::{CookieKind, Stage};
use crate::error::AppError;
use crate::wire::{AuditKind, User};

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

    const NAMES: [(Amr, &'static str); 4] =
        [(Amr::PASSWORD, "pwd"), (Amr::APP, "otp"), (Amr::RECOVERY_CODE, "rec"), (Amr::PASSKEY, "hwk")];

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
fn overtaken() -> AppError {
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
    let now = state.now();
    let id = uuid::Uuid::new_v4().to_string();
    let expires_at = now + state.refresh_ttl;
    let stored = tx
        .insert_login(&NewLogin {
            id: &id,
            user_id,
            session_version: version,
            amr,
            auth_at: now,
            now,
            expires_at,
            ip: meta.ip.as_deref(),
            user_agent: meta.user_agent.as_deref(),
        })
        .await?;
    if !stored {
        return Err(overtaken());
    }
    let mut cookies = issue_tokens(state, tx, user_id, version, &id, expires_at, now).await?;
    cookies.extend(issue_gate_cookies(state, tx, user_id, &id, expires_at).await?);
    Ok(cookies)
}

/// Ends every log-in of the account and starts one for this client, in the
/// caller's transaction (which moved the session version to `version`).
pub async fn renew_all(
    state: &AppState,
    tx: &mut Tx,
    user_id: i64,
    version: i64,
    amr: Amr,
    meta: &RequestMeta,
) -> Result<Vec<String>, AppError> {
    tx.revoke_user_logins(user_id, state.now()).await?;
    start(state, tx, user_id, version, amr, meta).await
}

/// One gate cookie per configured cookie domain: an opaque random value,
/// stored hashed, alive while its log-in is.
pub async fn issue_gate_cookies(
    state: &AppState,
    tx: &mut Tx,
    user_id: i64,
    login: &str,
    expires_at: i64,
) -> Result<Vec<String>, AppError> {
    let now = state.now();
    let mut cookies = Vec::with_capacity(state.gate.cookie_domains.len());
    for domain in &state.gate.cookie_domains {
        let value = URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
        tx.insert_gate_cookie(&NewGateCookie {
            token_hash: &sha256_hex(value.as_bytes()),
            user_id,
            family: login,
            domain,
            now,
            expires_at,
        })
        .await?;
        cookies.push(state.cookies.set_gate(domain, &value, (expires_at - now).max(0)));
    }
    Ok(cookies)
}

/// A refresh token continuing the log-in, and an access token naming it.
async fn issue_tokens(
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

pub fn cleared_cookies(state: &AppState) -> Vec<String> {
    let mut cookies = vec![state.cookies.clear(CookieKind::Access), state.cookies.clear(CookieKind::Refresh)];
    cookies.extend(state.gate.cookie_domains.iter().map(|d| state.cookies.clear_gate(d)));
    cookies
}

/// The answer to a second replay of a rotated token inside the grace
/// window: the browser already holds the successor.
fn replaced() -> AppError {
    AppError::conflict("This session was renewed a moment ago in another tab or request: retry with your new cookie.")
}

/// Rotates a refresh token: the presented one is spent and a successor
/// issued, with a new access token. First the log-in's row is held: a log-in
/// that ended (however, whenever) is refused, and an ending that comes
/// after waits for this refresh and then ends the log-in with its
/// successor. Presented again within the grace window
/// (`REFRESH_GRACE_SECONDS`, 10 s) of its rotation, a token gets one
/// successor of its own (two tabs restored together, a retried request);
/// a second replay is told to use its new cookie (409). Later, it was
/// copied: the log-in ends and its owner is told.
pub async fn refresh(state: &AppState, meta: &RequestMeta, token: Option<&str>) -> Result<WithCookies<User>, AppError> {
    let token = token.ok_or_else(AppError::unauthenticated)?;
    let now = state.now();
    let row = state.db.refresh_token(&sha256_hex(token.as_bytes())).await?.ok_or_else(AppError::unauthenticated)?;
    state.db.hooks.pause(super::hooks::REFRESH_READ).await;
    let user = state.db.user_by_id(row.user_id).await?.ok_or_else(AppError::unauthenticated)?;
    let mut tx = state.db.begin().await?;
    let Some(login) = tx.hold_login(&row.family, row.user_id, now).await? else {
        return Err(AppError::unauthenticated());
    };
    if !tx.spend_refresh_token(row.id, now).await? {
        let used_at = tx.refresh_token_used_at(row.id).await?;
        let in_grace = used_at.is_some_and(|at| state.refresh_grace > 0 && now - at <= state.refresh_grace);
        if !in_grace {
            tx.revoke_login(&login.id, now).await?;
            tx.commit().await?;
            audit(state, Some(row.user_id), AuditKind::RefreshReuseDetected, meta).await;
            tracing::warn!(user_id = row.user_id, "refresh token reuse detected: log-in ended");
            return Err(AppError::unauthenticated());
        }
        if !tx.claim_grace_successor(row.id, now).await? {
            return Err(replaced());
        }
        tracing::info!(user_id = row.user_id, "refresh token presented again within the grace window");
    }
    let cookies =
        issue_tokens(state, &mut tx, login.user_id, login.session_version, &login.id, login.expires_at, login.auth_at)
            .await?;
    tx.commit().await?;
    Ok(WithCookies { body: User::from(&user), cookies })
}

/// Ends the log-in whose cookies `headers` carry: the one named by the
/// access token, the one of the refresh token and those of the gate
/// cookies (so a copied access token is refused too, and a log-in the
/// portal's cookies no longer name, say one the password was typed again
/// over, does not stay open on the apps). Returns the cookies that clear
/// them. Succeeds without a log-in too.
pub async fn log_out(state: &AppState, headers: &http::HeaderMap) -> Result<Vec<String>, AppError> {
    let now = state.now();
    let mut logins: Vec<String> = state
        .cookies
        .from_headers(CookieKind::Access, headers)
        .and_then(|t| state.keys.verify(t, Stage::Full, now))
        .and_then(|c| c.sid)
        .into_iter()
        .collect();
    if let Some(token) = state.cookies.from_headers(CookieKind::Refresh, headers)
        && let Some(login) = state.db.login_of_refresh(&sha256_hex(token.as_bytes())).await?
    {
        logins.push(login);
    }
    for value in state.cookies.gate_values(headers).into_iter().take(state.gate.cookie_domains.len()) {
        if let Some(login) = state.db.login_of_gate(&sha256_hex(value.as_bytes())).await? {
            logins.push(login);
        }
    }
    logins.sort();
    logins.dedup();
    state.db.revoke_logins(&logins, now).await?;
    Ok(cleared_cookies(state))
}

/// Moves the session version on and ends every log-in, together.
pub async fn end_all(state: &AppState, user_id: i64) -> Result<(), AppError> {
    let mut tx = state.db.begin().await?;
    tx.bump_session_version(user_id).await?;
    tx.revoke_user_logins(user_id, state.now()).await?;
    tx.commit().await
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
}
