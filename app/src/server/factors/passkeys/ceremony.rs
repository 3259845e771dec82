//! A ceremony's state between its two steps: kept in the database under
//! the SHA-256 of a random handle the client holds, taken out once.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::CEREMONY_SECONDS;
use crate::error::{AppError, ErrorKind};
use crate::server::crypto::{random_bytes, sha256_hex};
use crate::server::db::NewCeremony;
use crate::server::factors::webauthn::Refusal;
use crate::server::state::AppState;

/// Keeps a ceremony's state; returns the handle the client finishes with.
pub(super) async fn keep_ceremony(
    state: &AppState,
    kind: &str,
    user_id: Option<i64>,
    bound_to: Option<&str>,
    name: Option<&str>,
    ceremony_state: &str,
) -> Result<String, AppError> {
    let handle = URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
    state
        .db
        .insert_ceremony(&NewCeremony {
            id_hash: &sha256_hex(handle.as_bytes()),
            kind,
            user_id,
            bound_to,
            name,
            state: ceremony_state,
            expires_at: state.now() + CEREMONY_SECONDS,
        })
        .await?;
    Ok(handle)
}

fn ceremony_gone() -> AppError {
    AppError::bad_request("This passkey request has expired or was already used. Try again.")
}

/// Takes the ceremony the client names, if it is of this kind, unexpired
/// and started by the same session (or password step).
pub(super) async fn take_ceremony(
    state: &AppState,
    handle: &str,
    kind: &str,
    user_id: Option<i64>,
    bound_to: Option<&str>,
) -> Result<crate::server::db::CeremonyRow, AppError> {
    let row = state.db.take_ceremony(&sha256_hex(handle.as_bytes())).await?.ok_or_else(ceremony_gone)?;
    check_ceremony(state, row, kind, user_id, bound_to)
}

/// `take_ceremony` among the writes of `tx`: if the transaction fails, the
/// ceremony is still there to finish (a refusal commits its taking).
pub(super) async fn take_ceremony_in(
    state: &AppState,
    tx: &mut crate::server::db::Tx,
    handle: &str,
    kind: &str,
    user_id: Option<i64>,
    bound_to: Option<&str>,
) -> Result<crate::server::db::CeremonyRow, AppError> {
    let row = tx.take_ceremony(&sha256_hex(handle.as_bytes())).await?.ok_or_else(ceremony_gone)?;
    check_ceremony(state, row, kind, user_id, bound_to)
}

fn check_ceremony(
    state: &AppState,
    row: crate::server::db::CeremonyRow,
    kind: &str,
    user_id: Option<i64>,
    bound_to: Option<&str>,
) -> Result<crate::server::db::CeremonyRow, AppError> {
    if row.kind != kind
        || row.expires_at <= state.now()
        || row.user_id != user_id
        || row.bound_to.as_deref() != bound_to
    {
        return Err(ceremony_gone());
    }
    Ok(row)
}

pub(super) fn refused(refusal: Refusal) -> AppError {
    match refusal {
        Refusal::Invalid => AppError::new(ErrorKind::InvalidCode, "That passkey was not accepted. Try again."),
        Refusal::NotVerified => AppError::new(
            ErrorKind::InvalidCode,
            "Your passkey did not confirm it is you (no PIN, fingerprint or face check). Try again and complete \
             that step.",
        ),
        Refusal::CounterRegressed => AppError::forbidden(
            "This passkey was refused: it reported an older use than one already seen, which is what a copied \
             key does. Use another factor and remove this passkey.",
        ),
    }
}
