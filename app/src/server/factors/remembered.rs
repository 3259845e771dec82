//! Remembered browsers: "Don't ask again on this browser" at the code step.
//! The browser gets a random secret in an HttpOnly cookie; the server keeps
//! its hash, bound to the account's session version, so a password change,
//! turning two factors on or off, log-out everywhere or a lockdown voids
//! every entry at once (a new phone and a removed passkey delete them). At the next password step that browser skips the second
//! factor (the log-in's `amr` says `remembered`); nothing else does: a
//! stale, foreign or made-up cookie is simply asked for the code. A
//! remembered log-in is never a fresh proof (`proof::fresh`), and access
//! rules may refuse it (`remembered = false`, `fresh`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::AppError;
use crate::server::audit;
use crate::server::auth::FullSession;
use crate::server::crypto::tokens::CookieKind;
use crate::server::crypto::{random_bytes, sha256_hex};
use crate::server::db::{NewRememberedBrowser, RememberedBrowserRow, Tx, UserRow};
use crate::server::logins::list::browser_words;
use crate::server::request::RequestMeta;
use crate::server::state::AppState;
use crate::server::time_zone::format_time;
use crate::wire::{AuditKind, Done, RememberedBrowserView};

/// Browsers are remembered at all (`REMEMBER_DAYS` is not 0).
pub fn offered(state: &AppState) -> bool {
    state.remember_seconds > 0
}

/// Entries made at or before this count no more (`REMEMBER_DAYS` ago:
/// lowering the setting shortens the entries already made).
fn made_after(state: &AppState) -> i64 {
    state.now() - state.remember_seconds
}

/// In the transaction of a log-in that showed a second factor: remembers
/// the browser (replacing its earlier entry, if it had one) and audits it.
/// Returns the cookie that carries the secret.
pub(crate) async fn remember(
    state: &AppState,
    tx: &mut Tx,
    user: &UserRow,
    meta: &RequestMeta,
) -> Result<String, AppError> {
    let secret = URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
    let now = state.now();
    if let Some(old) = meta.remembered.as_deref() {
        tx.forget_remembered_browser_by_hash(user.id, old).await?;
    }
    tx.insert_remembered_browser(&NewRememberedBrowser {
        id: &uuid::Uuid::new_v4().to_string(),
        user_id: user.id,
        secret_hash: &sha256_hex(secret.as_bytes()),
        session_version: user.session_version,
        now,
        expires_at: now + state.remember_seconds,
        ip: meta.ip.as_deref(),
        user_agent: meta.user_agent.as_deref(),
    })
    .await?;
    audit::record(state, tx, Some(user.id), AuditKind::BrowserRemembered, meta).await?;
    Ok(state.cookies.set(CookieKind::Remember, &secret, state.remember_seconds))
}

/// At the password step, in the log-in's transaction: the entry of this
/// browser's cookie if it stands in for the second factor for `user` now
/// (its last use moves on). None, and nothing written, for anything else.
pub(crate) async fn recognised(
    state: &AppState,
    tx: &mut Tx,
    user: &UserRow,
    meta: &RequestMeta,
) -> Result<Option<String>, AppError> {
    match meta.remembered.as_deref() {
        Some(hash) if offered(state) => {
            tx.use_remembered_browser(hash, user.id, user.session_version, state.now(), made_after(state)).await
        }
        _ => Ok(None),
    }
}

fn view(row: RememberedBrowserRow, asking: Option<&str>, zone: Option<&str>) -> RememberedBrowserView {
    RememberedBrowserView {
        current: asking == Some(row.secret_hash.as_str()),
        id: row.id,
        browser: browser_words(row.user_agent.as_deref()),
        ip: row.ip,
        created_when: format_time(row.created_at, zone),
        last_used_when: format_time(row.last_used_at, zone),
        expires_when: format_time(row.expires_at, zone),
        created_at: row.created_at,
        last_used_at: row.last_used_at,
        expires_at: row.expires_at,
    }
}

/// The browsers of an account that skip the second factor now, the most
/// recently used first; `asking` is the hash of the asking browser's
/// cookie (marked `current`).
pub async fn list_of(
    state: &AppState,
    user_id: i64,
    asking: Option<&str>,
) -> Result<Vec<RememberedBrowserView>, AppError> {
    if !offered(state) {
        return Ok(Vec::new());
    }
    let rows = state.db.remembered_browsers(user_id, state.now(), made_after(state)).await?;
    let zone = state.db.time_zone_of(user_id).await?;
    Ok(rows.into_iter().map(|row| view(row, asking, zone.as_deref())).collect())
}

/// The person's own list.
pub async fn list(
    state: &AppState,
    meta: &RequestMeta,
    session: &FullSession,
) -> Result<Vec<RememberedBrowserView>, AppError> {
    list_of(state, session.user.id, meta.remembered.as_deref()).await
}

/// In `tx`: forgets one remembered browser of the account (`Some(id)`)
/// or all of them, and ends the log-ins they started (but `keep`, the
/// asking one). Returns the entries that counted until now.
pub(crate) async fn forget_in(
    state: &AppState,
    tx: &mut Tx,
    user_id: i64,
    id: Option<&str>,
    keep: Option<&str>,
) -> Result<Vec<RememberedBrowserRow>, AppError> {
    let version = tx.session_version_of(user_id).await?;
    let now = state.now();
    let mut gone = tx.forget_remembered_browsers(user_id, id).await?;
    // Voided entries go too, unsaid: only those that counted are news.
    gone.retain(|row| row.counts(version, now) && row.created_at > made_after(state));
    for row in &gone {
        tx.end_logins_of_remembered(user_id, &row.id, keep, now).await?;
    }
    Ok(gone)
}

/// The owner forgets one of their remembered browsers (`Some(id)`, 404 if
/// none that counts has that id) or all of them: one transaction, with an
/// audit event. The log-ins those browsers started end, except the one
/// asking. Returns what to say and whether the asking browser's own entry
/// went (its cookie is then cleared).
pub async fn forget(
    state: &AppState,
    meta: &RequestMeta,
    session: &FullSession,
    id: Option<&str>,
) -> Result<(Done, bool), AppError> {
    let user_id = session.user.id;
    let mut tx = state.db.begin().await?;
    let gone = forget_in(state, &mut tx, user_id, id, Some(&session.user.family)).await?;
    if id.is_some() && gone.is_empty() {
        return Err(AppError::new(
            crate::error::ErrorKind::NotFound,
            "That browser is not remembered any more: it was forgotten already, or its time ran out.",
        ));
    }
    if !gone.is_empty() {
        audit::record(state, &mut tx, Some(user_id), AuditKind::RememberedBrowsersForgotten, meta).await?;
    }
    audit::commit(state, tx).await?;
    let mine = meta.remembered.as_deref().is_some_and(|h| gone.iter().any(|r| r.secret_hash == h));
    let message = match gone.as_slice() {
        [] => "No browser was remembered.".to_owned(),
        [one] => format!(
            "Forgot {}: it will be asked for a second factor at its next log-in.",
            browser_words(one.user_agent.as_deref())
        ),
        many => format!("Forgot {} browsers: each will be asked for a second factor at its next log-in.", many.len()),
    };
    Ok((Done::new(message), mine))
}
