//! Registering a passkey: the ceremony's two steps, with proof first; the
//! first factor of an account without one turns protection on.

use serde_json::{Value, json};

use super::ceremony::{keep_ceremony, refused, take_ceremony_in};
use super::{parse_name, prove};
use crate::error::AppError;
use crate::server::WithCookies;
use crate::server::audit;
use crate::server::auth::FullSession;
use crate::server::crypto::random_bytes;
use crate::server::db::NewPasskey;
use crate::server::factors::proof::Proof;
use crate::server::logins::{self, Amr};
use crate::server::request::RequestMeta;
use crate::server::state::AppState;
use crate::wire::{AuditKind, PasskeyView};

/// Starts registering a passkey named `name`, after proof: the options
/// for the browser and the ceremony's handle.
pub async fn register_start(
    state: &AppState,
    meta: &RequestMeta,
    session: &FullSession,
    name: &str,
    proof: Proof<'_>,
) -> Result<Value, AppError> {
    let name = parse_name(name)?;
    let user = session.row(state).await?;
    prove(state, meta, session, &user, proof).await?;
    let fresh = uuid::Uuid::new_v4().to_string();
    let handle = state.db.webauthn_handle(user.id, &fresh).await?;
    let handle = uuid::Uuid::parse_str(&handle).map_err(|_| AppError::internal())?;
    let existing: Vec<String> = state.db.passkeys_of(user.id).await?.into_iter().map(|r| r.credential).collect();
    let (options, ceremony_state) = state.webauthn.start_registration(handle, &user.email, &user.name, &existing)?;
    let family = session.claims.sid.as_deref();
    let ceremony = keep_ceremony(state, "register", Some(user.id), family, Some(&name), &ceremony_state).await?;
    Ok(json!({ "ceremony": ceremony, "options": options }))
}

/// Finishes registering: stores the passkey (201 for the caller) and, for
/// the account's first factor, the recovery codes shown once.
pub async fn register_finish(
    state: &AppState,
    meta: &RequestMeta,
    session: &FullSession,
    ceremony: &str,
    credential: &Value,
) -> Result<WithCookies<Value>, AppError> {
    let user = session.row(state).await?;
    // The ceremony is taken in the transaction that stores the passkey: a
    // failure on the way leaves it to be finished again.
    let mut tx = state.db.begin().await?;
    let family = session.claims.sid.as_deref();
    let row = take_ceremony_in(state, &mut tx, ceremony, "register", Some(user.id), family).await?;
    let credential = match state.webauthn.finish_registration(credential, &row.state) {
        Ok(c) => c,
        Err(refusal) => {
            // Refused: the ceremony is spent, and the refusal recorded.
            audit::record(state, &mut tx, Some(user.id), AuditKind::PasskeyRefused, meta).await?;
            audit::commit(state, tx).await?;
            return Err(refused(refusal));
        }
    };
    let name = row.name.unwrap_or_else(|| "Passkey".into());
    let id = hex::encode(random_bytes::<16>()?);
    let now = state.now();
    let Some(count) = tx
        .insert_passkey(&NewPasskey {
            id: &id,
            user_id: user.id,
            credential_id: &credential.credential_id,
            name: &name,
            credential: &credential.credential,
            backup_eligible: credential.backup_eligible,
            backup_state: credential.backup_state,
            now,
        })
        .await?
    else {
        return Err(AppError::conflict("This passkey is already registered."));
    };
    // The first factor of an account without one turns protection on:
    // recovery codes, and every other session ends (as turning the app
    // on does); this client gets a new one.
    let turned_on = count == 1 && !user.totp_enabled;
    let (codes, cookies) = if turned_on {
        let (codes, hashes) = crate::server::factors::recovery::new_recovery_codes(&state.secrets, user.id)?;
        tx.replace_recovery_codes(user.id, &hashes).await?;
        let version = tx.bump_session_version(user.id).await?;
        let amr = session.user.amr.with(Amr::PASSKEY);
        // The new passkey was just used: a second factor shown now.
        (Some(codes), logins::renew_all(state, &mut tx, user.id, version, amr, Some(state.now()), meta).await?)
    } else {
        (None, vec![])
    };
    audit::record(state, &mut tx, Some(user.id), AuditKind::PasskeyAdded, meta).await?;
    if turned_on {
        audit::record(state, &mut tx, Some(user.id), AuditKind::TwoFactorOn, meta).await?;
    }
    audit::commit(state, tx).await?;
    tracing::info!(user_id = user.id, count, "passkey added");
    let passkey = PasskeyView {
        id,
        name,
        created_at: now,
        last_used_at: None,
        syncable: credential.backup_eligible,
        synced: credential.backup_state,
    };
    Ok(WithCookies { body: json!({ "passkey": passkey, "recoveryCodes": codes }), cookies })
}
