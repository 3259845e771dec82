//! Passkeys and security keys: registering, listing, renaming and removing
//! them, and logging in with one (as the second factor after the password,
//! or alone, without a password). The WebAuthn checks themselves are in
//! `webauthn`; this module keeps the ceremonies, the limits, the sessions
//! and the audit trail; `http::webauthn` serves them as `/api/webauthn/...`.
//!
//! - A ceremony's state stays in the database under the SHA-256 of a
//!   random handle the client holds, for 5 minutes, and is taken out by
//!   the finish step in one statement: finished once, on any instance.
//! - Registering and removing need a full session and proof within the
//!   last 5 minutes: a fresh log-in, the password, or a current code.
//! - The first passkey turns two-factor protection on (with recovery codes
//!   and every other session ended, as turning the app on does); removing
//!   the last one while no app is set up turns it off again.
//! - Every assertion counts under the same guessing limits as a code.

mod ceremony;
mod register;
mod sign_in;

pub use register::{register_finish, register_start};
pub use sign_in::{second_factor_finish, second_factor_start, sign_in_finish, sign_in_start};

use super::proof::Proof;
use crate::error::{AppError, ErrorKind};
use crate::server::WithCookies;
use crate::server::account;
use crate::server::audit::{self, audit};
use crate::server::auth::FullSession;
use crate::server::db::{PasskeyRow, UserRow};
use crate::server::logins;
use crate::server::request::RequestMeta;
use crate::server::state::AppState;
use crate::wire::{AuditKind, PasskeyList, PasskeyView, RecoveryCodesResponse};

/// How long a ceremony may take, start to finish.
pub const CEREMONY_SECONDS: i64 = 5 * 60;

/// The longest name a passkey may have, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// A passkey's name: trimmed, 1 to 64 characters, no control characters.
pub fn parse_name(name: &str) -> Result<String, AppError> {
    let name = name.trim();
    let fail = |message: &str| AppError::field("name", message);
    if name.is_empty() {
        return Err(fail("Give the passkey a name, such as the device it is on."));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(fail("A passkey's name can be at most 64 characters."));
    }
    if name.chars().any(char::is_control) {
        return Err(fail("A passkey's name cannot contain control characters."));
    }
    Ok(name.to_owned())
}

fn view(row: &PasskeyRow) -> PasskeyView {
    PasskeyView {
        id: row.id.clone(),
        name: row.name.clone(),
        created_at: row.created_at,
        last_used_at: row.last_used_at,
        syncable: row.backup_eligible != 0,
        synced: row.backup_state != 0,
    }
}

/// The person's passkeys, and whether this server can register more.
pub async fn list(state: &AppState, session: &FullSession) -> Result<PasskeyList, AppError> {
    let rows = state.db.passkeys_of(session.user.id).await?;
    Ok(PasskeyList { passkeys: rows.iter().map(view).collect(), available: state.webauthn.enabled() })
}

/// Renames one of the person's passkeys.
pub async fn rename(state: &AppState, session: &FullSession, id: &str, name: &str) -> Result<PasskeyView, AppError> {
    let name = parse_name(name)?;
    if !state.db.rename_passkey(session.user.id, id, &name).await? {
        return Err(no_such_passkey());
    }
    let rows = state.db.passkeys_of(session.user.id).await?;
    rows.iter().find(|r| r.id == id).map(view).ok_or_else(AppError::internal)
}

fn no_such_passkey() -> AppError {
    AppError::new(ErrorKind::NotFound, "No such passkey.")
}

/// What removing a passkey left.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Removed {
    pub passkeys_left: i64,
    pub two_factor_on: bool,
}

/// Removes one of the person's passkeys, with proof (see `prove`).
pub async fn remove(
    state: &AppState,
    meta: &RequestMeta,
    session: &FullSession,
    id: &str,
    password: Option<String>,
    code: Option<String>,
) -> Result<WithCookies<Removed>, AppError> {
    let user = session.row(state).await?;
    if !state.db.passkeys_of(user.id).await?.iter().any(|r| r.id == id) {
        return Err(no_such_passkey());
    }
    prove(state, meta, session, &user, Proof { password: password.as_deref(), code: code.as_deref() }).await?;
    let mut tx = state.db.begin().await?;
    let Some(dropped) = drop_passkey(&mut tx, user.id, id).await? else { return Err(no_such_passkey()) };
    // Protection went off: every session ends, this client gets a new one.
    let cookies = match dropped.version {
        Some(version) => {
            let (amr, shown) = (session.user.amr, session.user.factor_at);
            logins::renew_all(state, &mut tx, user.id, version, amr, shown, meta).await?
        }
        None => vec![],
    };
    dropped.audit(state, &mut tx, user.id, meta).await?;
    audit::commit(state, tx).await?;
    Ok(WithCookies { body: Removed { passkeys_left: dropped.left, two_factor_on: dropped.version.is_none() }, cookies })
}

/// What removing a passkey did, inside the caller's transaction.
struct Dropped {
    left: i64,
    /// The new session version when it was the last passkey of an account
    /// without an app: protection is off and the recovery codes are gone.
    version: Option<i64>,
}

/// Removes a passkey and forgets the remembered browsers; the last one of
/// an account without an app turns
/// two-factor protection off (recovery codes deleted, version bumped; the
/// caller ends the sessions). `None`: no such passkey of this user.
async fn drop_passkey(tx: &mut crate::server::db::Tx, user_id: i64, id: &str) -> Result<Option<Dropped>, AppError> {
    let Some((left, app)) = tx.delete_passkey(user_id, id).await? else { return Ok(None) };
    // A key gone (lost, perhaps stolen): remembered browsers are asked again.
    tx.forget_remembered_browsers(user_id, None).await?;
    if left > 0 || app {
        return Ok(Some(Dropped { left, version: None }));
    }
    tx.delete_recovery_codes(user_id).await?;
    let version = tx.bump_session_version(user_id).await?;
    Ok(Some(Dropped { left, version: Some(version) }))
}

impl Dropped {
    /// Records the removal (and protection going off) among the writes of
    /// `tx`, so the trail never misses a change that landed.
    async fn audit(
        &self,
        state: &AppState,
        tx: &mut crate::server::db::Tx,
        user_id: i64,
        meta: &RequestMeta,
    ) -> Result<(), AppError> {
        self.audit_by(state, tx, user_id, None, meta).await
    }

    /// `audit`, naming the administrator who removed it (if one did).
    async fn audit_by(
        &self,
        state: &AppState,
        tx: &mut crate::server::db::Tx,
        user_id: i64,
        actor: Option<i64>,
        meta: &RequestMeta,
    ) -> Result<(), AppError> {
        audit::record_by(state, tx, Some(user_id), actor, AuditKind::PasskeyRemoved, meta).await?;
        if self.version.is_some() {
            audit::record_by(state, tx, Some(user_id), actor, AuditKind::TwoFactorOff, meta).await?;
        }
        tracing::info!(user_id, left = self.left, "passkey removed");
        Ok(())
    }
}

/// New recovery codes for an account protected by passkeys alone (with
/// the app, a code from it is the proof: `recovery::regenerate_recovery_codes`).
/// Proof as for any change of factor: a fresh log-in or the password.
pub async fn new_recovery_codes(
    state: &AppState,
    meta: &RequestMeta,
    session: &FullSession,
    password: Option<String>,
) -> Result<RecoveryCodesResponse, AppError> {
    let user = session.row(state).await?;
    if user.totp_enabled {
        return Err(AppError::conflict("Confirm with a code from your authenticator app instead."));
    }
    if user.passkey_count == 0 {
        return Err(AppError::conflict("Turn on two-factor authentication first."));
    }
    prove(state, meta, session, &user, Proof { password: password.as_deref(), code: None }).await?;
    let (codes, hashes) = super::recovery::new_recovery_codes(&state.secrets, user.id)?;
    let mut tx = state.db.begin().await?;
    tx.replace_recovery_codes(user.id, &hashes).await?;
    tx.commit().await?;
    audit(state, Some(user.id), AuditKind::RecoveryCodesRegenerated, meta).await;
    Ok(RecoveryCodesResponse { recovery_codes: codes })
}

/// Starts a passkey's answer as proof before a change (moving the app to a
/// new phone): the options for the browser and the ceremony's handle,
/// bound to this log-in. The answer goes with the change itself
/// (`proof::FactorProof::Passkey`).
pub async fn proof_start(state: &AppState, session: &FullSession) -> Result<serde_json::Value, AppError> {
    let stored: Vec<String> = state.db.passkeys_of(session.user.id).await?.into_iter().map(|r| r.credential).collect();
    if stored.is_empty() {
        return Err(AppError::conflict("You have no passkey. Use a code from your app or a recovery code."));
    }
    let (options, ceremony_state) = state.webauthn.start_authentication(&stored)?;
    let family = session.claims.sid.as_deref();
    let handle = ceremony::keep_ceremony(state, "proof", Some(session.user.id), family, None, &ceremony_state).await?;
    Ok(serde_json::json!({ "ceremony": handle, "options": options }))
}

/// Checks a passkey's answer to a `proof` ceremony of this log-in, under
/// the code guessing limits.
pub(crate) async fn prove_with_passkey(
    state: &AppState,
    meta: &RequestMeta,
    session: &FullSession,
    user: &UserRow,
    handle: &str,
    credential: &serde_json::Value,
) -> Result<(), AppError> {
    let family = session.claims.sid.as_deref();
    let row = ceremony::take_ceremony(state, handle, "proof", Some(user.id), family).await?;
    let claimed = super::webauthn::RelyingParty::claimed_credential(credential);
    sign_in::verify_assertion(state, meta, user, credential, claimed, &row.state, false).await
}

/// Operator: a user's passkeys (`server user passkeys EMAIL`).
pub async fn operator_list(
    state: &AppState,
    email: &crate::domain::Email,
) -> Result<Option<Vec<PasskeyView>>, AppError> {
    let Some(user) = state.db.user_by_email(email.as_str()).await? else { return Ok(None) };
    Ok(Some(state.db.passkeys_of(user.id).await?.iter().map(view).collect()))
}

/// Operator: removes one of a user's passkeys (a lost or stolen key, after
/// checking who is asking out of band). The last one of an account without
/// an app turns two-factor protection off and ends every session. `None`:
/// no such account; `Some(false)`: no such passkey.
pub async fn operator_remove(
    state: &AppState,
    email: &crate::domain::Email,
    id: &str,
) -> Result<Option<bool>, AppError> {
    let Some(user) = state.db.user_by_email(email.as_str()).await? else { return Ok(None) };
    let mut tx = state.db.begin().await?;
    let Some(dropped) = drop_passkey(&mut tx, user.id, id).await? else { return Ok(Some(false)) };
    if dropped.version.is_some() {
        tx.revoke_user_logins(user.id, state.now()).await?;
    }
    dropped.audit(state, &mut tx, user.id, &account::operator_meta()).await?;
    audit::commit(state, tx).await?;
    Ok(Some(true))
}

/// An administrator removes one of `user_id`'s passkeys, in `tx` (as the
/// operator's command does: the last one of an account without an app
/// turns two factors off and ends its log-ins), recorded under `actor`.
/// `false`: the account has no such passkey.
pub async fn remove_for_admin(
    state: &AppState,
    tx: &mut crate::server::db::Tx,
    user_id: i64,
    id: &str,
    actor: i64,
    meta: &RequestMeta,
) -> Result<bool, AppError> {
    let Some(dropped) = drop_passkey(tx, user_id, id).await? else { return Ok(false) };
    if dropped.version.is_some() {
        tx.revoke_user_logins(user_id, state.now()).await?;
    }
    dropped.audit_by(state, tx, user_id, Some(actor), meta).await?;
    Ok(true)
}

/// A change to passkeys needs recent proof (the one rule of `proof`).
async fn prove(
    state: &AppState,
    meta: &RequestMeta,
    session: &FullSession,
    user: &UserRow,
    proof: Proof<'_>,
) -> Result<(), AppError> {
    super::proof::prove(state, meta, session, user, proof, "Enter your password to change your passkeys.").await
}
