//! The one place two-factor protection with an authenticator app turns on
//! or off: starting the set-up (`generate`), confirming it (`turn_on`),
//! turning it off, the operator's reset and the state the pages show.
//! (A first passkey turns protection on too: see `passkeys`.)

use super::proof::{FactorProof, Proof, prove, prove_second_factor};
use super::recovery::new_recovery_codes;
use super::totp;
use super::verify::{factor_amr, open_secret, verify_second_factor};
use crate::domain::{Email, SecondFactor, TotpCode};
use crate::error::AppError;
use crate::server::WithCookies;
use crate::server::account::{check_own_password, operator_meta};
use crate::server::audit::{self, audit};
use crate::server::auth::FullSession;
use crate::server::db::UserRow;
use crate::server::logins::{self, Amr};
use crate::server::request::RequestMeta;
use crate::server::state::AppState;
use crate::server::throttle::Attempt;
use crate::wire::{AuditKind, GenerateResponse, TurnOnResponse, TwoFactorStatus, User};

/// Stores a new pending secret and returns it with its otpauth URI.
///
/// With 2FA off, starting enrolment needs the password, unless the person
/// logged in within the last 5 minutes: a stolen session alone cannot bind
/// the thief's authenticator and take the recovery codes.
///
/// While the app is on this sets up a new phone, and needs a second factor
/// presented now (`proof::prove_second_factor`): a current code, a
/// recovery code or a passkey. The active secret keeps working until the
/// new one is confirmed (`turn_on`).
pub async fn generate(
    state: &AppState,
    meta: &RequestMeta,
    session: FullSession,
    factor: Option<FactorProof<'_>>,
    password: Option<&str>,
) -> Result<GenerateResponse, AppError> {
    let user = session.row(state).await?;
    if user.totp_enabled {
        let ask = "Two-factor authentication is on: to set up a new phone, enter a current code from your app \
                   or a recovery code, or use a passkey.";
        prove_second_factor(state, meta, &session, &user, factor, ask).await?;
    } else {
        let proof = Proof { password, code: None };
        prove(state, meta, &session, &user, proof, "Enter your password to set up two-factor authentication.").await?;
    }
    let secret = totp::generate_secret()?;
    let base32 = totp::to_base32(&secret);
    let otpauth_url = totp::otpauth_url(&secret, &state.issuer, &user.email)?;
    state.db.set_pending_secret(user.id, &state.secrets.seal(user.id, &secret)?).await?;
    Ok(GenerateResponse { secret: base32, otpauth_url })
}

/// The digits of a code typed during enrolment: 6 (or 8, to explain an app
/// set to 8 digits), with spaces and dashes allowed as on log-in.
fn enrolment_digits(typed: &str) -> Result<String, AppError> {
    let digits: String = typed.chars().filter(|c| !matches!(c, ' ' | '-' | '\u{a0}')).collect();
    if (digits.len() == 6 || digits.len() == 8) && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(digits)
    } else {
        crate::wire::parse_code(typed).map(|c| c.as_str().to_owned())
    }
}

/// The pending secret of an enrolment in progress, to show its QR code
/// again (after a wrong code on the no-JavaScript path).
pub fn pending_enrolment(state: &AppState, user: &UserRow) -> Result<Option<GenerateResponse>, AppError> {
    let Some(pending) = user.totp_pending_secret.as_deref() else { return Ok(None) };
    let secret = open_secret(state, user, Some(pending))?;
    Ok(Some(GenerateResponse {
        secret: totp::to_base32(&secret),
        otpauth_url: totp::otpauth_url(&secret, &state.issuer, &user.email)?,
    }))
}

/// Confirms the pending secret with a code and makes it the active one.
/// Turning 2FA on ends every session (this client gets a new one) and
/// makes 10 new recovery codes. Replacing the key while on (a new phone)
/// changes the key alone: sessions and recovery codes stay (`replace`).
///
/// The code arrives as typed: 6 digits confirm; a refused code (or 8
/// digits, which never confirm) is checked against the usual set-up
/// mistakes and the answer says which one it was (see `totp::diagnose`).
/// Every try counts toward the code guessing limit.
pub async fn turn_on(
    state: &AppState,
    meta: &RequestMeta,
    session: FullSession,
    typed: &str,
) -> Result<WithCookies<TurnOnResponse>, AppError> {
    let digits = enrolment_digits(typed)?;
    let user = session.row(state).await?;
    // The log-in goes on with the code just typed as a second factor.
    let amr = session.user.amr.with(Amr::APP);
    let Some(pending) = user.totp_pending_secret.as_deref() else {
        return Err(AppError::conflict("Start the set-up first: generate a secret and scan it."));
    };
    // The code is checked against the pending secret, under the same
    // limit as every other code.
    let attempt = Attempt::start(state, meta, Attempt::code_buckets(state, meta, user.id), Some(user.id)).await?;
    let secret = open_secret(state, &user, Some(pending))?;
    let now = state.now();
    let step = TotpCode::parse(&digits).ok().and_then(|code| totp::verify(&secret, &code, now));
    attempt.settle(state, meta, step.is_some(), AuditKind::SetupCodeFailed).await?;
    let Some(step) = step else {
        let diagnosis = totp::diagnose(&secret, &digits, now);
        tracing::info!(user_id = user.id, ?diagnosis, "enrolment code refused");
        let mut e = AppError::invalid_code();
        e.message = diagnosis.explain();
        return Err(e);
    };
    if user.totp_enabled {
        return replace(state, meta, &user, pending, step).await;
    }
    let (codes, hashes) = new_recovery_codes(&state.secrets, user.id)?;
    // The flag, the secret, the replay step, the recovery codes, the
    // session version and this client's new session: all or nothing.
    let mut tx = state.db.begin().await?;
    let Some(version) = tx.enable_totp(user.id, pending, step).await? else {
        return Err(AppError::conflict("The set-up changed in another window. Scan the newest QR code."));
    };
    tx.replace_recovery_codes(user.id, &hashes).await?;
    // The code just confirmed is a second factor shown now.
    let cookies = logins::renew_all(state, &mut tx, user.id, version, amr, Some(state.now()), meta).await?;
    tx.commit().await?;
    audit(state, Some(user.id), AuditKind::TwoFactorOn, meta).await;
    tracing::info!(user_id = user.id, "two-factor authentication turned on");
    let mut body = User::from(&user);
    body.is_two_factor_authentication_enabled = true;
    Ok(WithCookies { cookies, body: TurnOnResponse { user: body, recovery_codes: codes, replaced: false } })
}

/// The new phone's key, confirmed at `step`, replaces the active one, with
/// its audit row (and notice) in the same transaction. Nothing else moves:
/// every session goes on, the recovery codes stay.
async fn replace(
    state: &AppState,
    meta: &RequestMeta,
    user: &UserRow,
    pending: &str,
    step: i64,
) -> Result<WithCookies<TurnOnResponse>, AppError> {
    let mut tx = state.db.begin().await?;
    if !tx.replace_totp(user.id, pending, step).await? {
        return Err(AppError::conflict("The set-up changed in another window. Scan the newest QR code."));
    }
    // A new key: browsers remembered under the old one are asked again.
    tx.forget_remembered_browsers(user.id, None).await?;
    audit::record(state, &mut tx, Some(user.id), AuditKind::TwoFactorKeyReplaced, meta).await?;
    audit::commit(state, tx).await?;
    tracing::info!(user_id = user.id, "authenticator app key replaced");
    let body = TurnOnResponse { user: User::from(user), recovery_codes: vec![], replaced: true };
    Ok(WithCookies { cookies: vec![], body })
}

/// Turns 2FA off: needs the password and a current code or a recovery code.
pub async fn turn_off(
    state: &AppState,
    meta: &RequestMeta,
    session: FullSession,
    password: &str,
    factor: SecondFactor,
) -> Result<WithCookies<User>, AppError> {
    let user = session.row(state).await?;
    if !user.totp_enabled {
        return Err(AppError::conflict("Two-factor authentication is already off."));
    }
    check_own_password(state, meta, &user, password, "password").await?;
    verify_second_factor(state, meta, &user, &factor).await?;
    let mut tx = state.db.begin().await?;
    let version = tx.disable_totp(user.id).await?;
    let amr = session.user.amr.with(Amr::PASSWORD).with(factor_amr(&factor));
    let cookies = logins::renew_all(state, &mut tx, user.id, version, amr, Some(state.now()), meta).await?;
    tx.commit().await?;
    audit(state, Some(user.id), AuditKind::TwoFactorOff, meta).await;
    tracing::info!(user_id = user.id, "two-factor authentication turned off");
    let mut body = User::from(&user);
    body.is_two_factor_authentication_enabled = false;
    Ok(WithCookies { cookies, body })
}

pub async fn status(state: &AppState, session: FullSession) -> Result<TwoFactorStatus, AppError> {
    let left = if session.user.two_factor() { state.db.recovery_codes_left(session.user.id).await? } else { 0 };
    Ok(TwoFactorStatus {
        enabled: session.user.totp_enabled,
        recovery_codes_left: left,
        passkeys: session.user.passkey_count,
        recent_log_in: super::proof::fresh(state, &session),
        remembered_only: super::proof::remembered_only(&session),
    })
}

/// Operator: turns 2FA off for a user who lost both phone and recovery
/// codes (after checking who they are out of band). Every session ends.
pub async fn operator_reset_two_factor(state: &AppState, email: &Email) -> Result<bool, AppError> {
    let Some(user) = state.db.user_by_email(email.as_str()).await? else { return Ok(false) };
    let mut tx = state.db.begin().await?;
    tx.delete_all_passkeys(user.id).await?;
    tx.disable_totp(user.id).await?;
    tx.delete_recovery_codes(user.id).await?;
    tx.revoke_user_logins(user.id, state.now()).await?;
    tx.commit().await?;
    audit(state, Some(user.id), AuditKind::TwoFactorReset, &operator_meta()).await;
    Ok(true)
}
