//! Remembered browsers: "Don't ask again on this browser" at the code step.
//! The browser gets a random secret in an HttpOnly cookie; the server keeps
//! its hash, bound to the account's session version, so a password change,
//! a change of second factors, log-out everywhere or a lockdown voids every
//! entry at once. At the next password step that browser skips the second
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

/// At the password step, in the log-in's transaction: whether this
/// browser's cookie stands in for the second factor for `user` now (its
/// last use moves on). False, and nothing written, for anything else.
pub(crate) async fn recognised(
    state: &AppState,
    tx: &mut Tx,
    user: &UserRow,
    meta: &RequestMeta,
) -> Result<bool, AppError> {
    match meta.remembered.as_deref() {
        Some(hash) if offered(state) => {
            tx.use_remembered_browser(hash, user.id, user.session_version, state.now()).await
        }
        _ => Ok(false),
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
    let rows = state.db.remembered_browsers(user_id, state.now()).await?;
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

/// Forgets one remembered browser of the account (`Some(id)`, 404 if it
/// has none that counts by that id) or all of them, with an audit event naming who
/// did it (`actor`: an administrator; None: the owner). One transaction.
/// Returns what to say and whether the asking browser's own entry went.
pub async fn forget(
    state: &AppState,
    meta: &RequestMeta,
    user_id: i64,
    actor: Option<i64>,
    id: Option<&str>,
) -> Result<(Done, bool), AppError> {
    let mine = |rows: &[RememberedBrowserRow]| {
        meta.remembered.as_deref().is_some_and(|h| rows.iter().any(|r| r.secret_hash == h))
    };
    let mut tx = state.db.begin().await?;
    // Voided entries go too, unsaid: only those that counted are news.
    let version = tx.session_version_of(user_id).await?;
    let now = state.now();
    let mut gone = tx.forget_remembered_browsers(user_id, id).await?;
    gone.retain(|row| row.counts(version, now));
    if id.is_some() && gone.is_empty() {
        return Err(AppError::new(
            crate::error::ErrorKind::NotFound,
            "That browser is not remembered any more: it was forgotten already, or its time ran out.",
        ));
    }
    if !gone.is_empty() {
        audit::record_by(state, &mut tx, Some(user_id), actor, AuditKind::RememberedBrowsersForgotten, meta).await?;
    }
    tx.commit().await?;
    let message = match gone.as_slice() {
        [] => "No browser was remembered.".to_owned(),
        [one] => format!(
            "Forgot {}: it will be asked for a second factor at its next log-in.",
            browser_words(one.user_agent.as_deref())
        ),
        many => format!("Forgot {} browsers: each will be asked for a second factor at its next log-in.", many.len()),
    };
    Ok((Done::new(message), mine(&gone)))
}
