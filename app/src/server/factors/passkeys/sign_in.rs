//! Logging in with a passkey: as the second factor after the password, or
//! alone (passwordless). Every assertion counts under the code limits.

use serde_json::{Value, json};

use super::ceremony::{keep_ceremony, refused, take_ceremony};
use crate::error::AppError;
use crate::server::WithCookies;
use crate::server::account;
use crate::server::audit::audit;
use crate::server::auth::PasswordSession;
use crate::server::db::UserRow;
use crate::server::factors::webauthn::{Refusal, RelyingParty};
use crate::server::logins::Amr;
use crate::server::metrics::{Count, Factor, METRICS};
use crate::server::request::RequestMeta;
use crate::server::state::AppState;
use crate::server::throttle::{Attempt, OnSuccess};
use crate::wire::{AuditKind, User};

/// Verifies an assertion for `user` against the ceremony, under the code
/// limits, and records the credential's new counter. The row is the one
/// the assertion names, and must be this user's.
pub(super) async fn verify_assertion(
    state: &AppState,
    meta: &RequestMeta,
    user: &UserRow,
    credential: &Value,
    claimed: Option<String>,
    ceremony_state: &str,
    passwordless: bool,
) -> Result<(), AppError> {
    let mut buckets = Attempt::code_buckets(state, meta, user.id);
    if passwordless {
        // Without a password, a failure also counts as a password failure:
        // a passkey guess must not be a way around the password limits.
        buckets.extend(Attempt::password_buckets(state, meta, &user.email, Some(user)));
    }
    let mut attempt = Attempt::start(state, meta, buckets, Some(user.id)).await?;
    if passwordless {
        attempt = attempt.counted_as(crate::server::metrics::Check::PasskeySignIn);
    }
    let row = match claimed {
        Some(id) => state.db.passkey_by_credential(&id).await?.filter(|r| r.user_id == user.id),
        None => None,
    };
    let verified = match &row {
        Some(row) if passwordless => state.webauthn.finish_passwordless(credential, ceremony_state, &row.credential),
        Some(row) => state.webauthn.finish_authentication(credential, ceremony_state, &row.credential),
        None => Err(Refusal::Invalid),
    };
    let outcome = match (&row, verified) {
        (Some(row), Ok(assertion)) => {
            // Of two assertions verified against the same counter, one is
            // recorded; the other is a replay.
            if state
                .db
                .record_passkey_use(&row.id, &row.credential, &assertion.updated, assertion.backup_state, state.now())
                .await?
            {
                Ok(())
            } else {
                Err(Refusal::Invalid)
            }
        }
        (_, Err(refusal)) => Err(refusal),
        (None, Ok(_)) => Err(Refusal::Invalid),
    };
    if let Err(refusal) = outcome {
        attempt.settle(state, meta, false, AuditKind::CodeFailed).await?;
        METRICS.add(Count::Factor(Factor::Passkey, false));
        audit(state, Some(user.id), AuditKind::PasskeyRefused, meta).await;
        if refusal == Refusal::CounterRegressed {
            tracing::warn!(user_id = user.id, "passkey counter went backwards: possibly a cloned key");
        }
        return Err(if passwordless && refusal == Refusal::Invalid {
            AppError::invalid_credentials()
        } else {
            refused(refusal)
        });
    }
    attempt.settle(state, meta, true, AuditKind::CodeFailed).await?;
    METRICS.add(Count::Factor(Factor::Passkey, true));
    state.db.clear_factor_failures(user.id).await?;
    audit(state, Some(user.id), AuditKind::PasskeyUsed, meta).await;
    Ok(())
}

/// Starts a passkey as the second factor of a password step.
pub async fn second_factor_start(state: &AppState, session: &PasswordSession) -> Result<Value, AppError> {
    let stored: Vec<String> = state.db.passkeys_of(session.user.id).await?.into_iter().map(|r| r.credential).collect();
    let (options, ceremony_state) = state.webauthn.start_authentication(&stored)?;
    let ceremony =
        keep_ceremony(state, "second_factor", Some(session.user.id), Some(&session.claims.jti), None, &ceremony_state)
            .await?;
    Ok(json!({ "ceremony": ceremony, "options": options }))
}

/// Finishes it: the password-stage token becomes a full log-in.
pub async fn second_factor_finish(
    state: &AppState,
    meta: &RequestMeta,
    session: &PasswordSession,
    ceremony: &str,
    credential: &Value,
    remember: bool,
) -> Result<WithCookies<User>, AppError> {
    let user = &session.user;
    let row = take_ceremony(state, ceremony, "second_factor", Some(user.id), Some(&session.claims.jti)).await?;
    let claimed = RelyingParty::claimed_credential(credential);
    verify_assertion(state, meta, user, credential, claimed, &row.state, false).await?;
    let amr = Amr::PASSWORD.with(Amr::PASSKEY);
    let cookies = account::finish_second_factor(state, meta, user, &session.claims, amr, remember).await?;
    Ok(WithCookies { body: User::from(user), cookies })
}

/// Starts a passwordless log-in (anyone may: starts count per address).
pub async fn sign_in_start(state: &AppState, meta: &RequestMeta) -> Result<Value, AppError> {
    // Anyone may start one: each start is a row, so starts count per
    // address like sign-ups do.
    let key = format!("passkey-start:{}", meta.ip_key());
    let attempt =
        Attempt::start(state, meta, vec![(key, state.limits.passkey_starts_per_address, OnSuccess::Release)], None)
            .await?;
    attempt.spend();
    let (options, ceremony_state) = state.webauthn.start_passwordless()?;
    let ceremony = keep_ceremony(state, "passwordless", None, None, None, &ceremony_state).await?;
    Ok(json!({ "ceremony": ceremony, "options": options }))
}

/// Finishes it: whose passkey it is comes from the assertion itself.
pub async fn sign_in_finish(
    state: &AppState,
    meta: &RequestMeta,
    ceremony: &str,
    credential: &Value,
) -> Result<WithCookies<User>, AppError> {
    let row = take_ceremony(state, ceremony, "passwordless", None, None).await?;
    // Whose passkey it claims to be; an unknown one gets the same
    // answer as a wrong password.
    let (user, claimed) = match state.webauthn.identify(credential) {
        Some((handle, id)) => (state.db.user_by_webauthn_handle(&handle.to_string()).await?, Some(id)),
        None => (None, None),
    };
    let Some(user) = user.filter(|u| u.passkey_count > 0) else {
        METRICS.add(Count::Factor(Factor::Passkey, false));
        audit(state, None, AuditKind::PasskeyRefused, meta).await;
        return Err(AppError::invalid_credentials());
    };
    verify_assertion(state, meta, &user, credential, claimed, &row.state, true).await?;
    let cookies = account::passwordless_session(state, meta, &user).await?;
    Ok(WithCookies { body: User::from(&user), cookies })
}
