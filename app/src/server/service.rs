//! The operations behind the API, one function each. They take parsed
//! input, the request's metadata and an authenticated session type, and
//! return the response body plus the cookies to set; the server functions
//! only translate.

use crate::domain::{
    Email, Password, PersonName, RECOVERY_ALPHABET, RECOVERY_CODE_CHARS, RecoveryCode, SecondFactor, TotpCode,
};
use crate::error::AppError;
use crate::wire::{
    Activity, ActivityEvent, AuditKind, GenerateResponse, LogInResponse, RecoveryCodesResponse, TurnOnResponse,
    TwoFactorStatus, User,
};

use super::audit::{audit, notify};
use super::auth::{FullSession, PasswordSession};
use super::crypto::random_bytes;
use super::db::UserRow;
use super::factors::totp;
use super::identity;
use super::logins::{self, Amr};
use super::mail;
use super::request::RequestMeta;
use super::sealing::SecretBox;
use super::state::AppState;
use super::throttle::{self, Attempt, trusted_device};
use super::tokens::{CookieKind, PASSWORD_STAGE_TTL};

/// How recent a log-in stands in for the password when changing a factor.
pub const FRESH_PROOF_SECONDS: i64 = 5 * 60;
/// Recovery codes issued per set.
pub const RECOVERY_CODES: usize = 10;
/// Events shown on the security page.
const ACTIVITY_LIMIT: i64 = 30;

impl From<&super::db::SessionUser> for User {
    fn from(user: &super::db::SessionUser) -> Self {
        User {
            id: user.id,
            email: user.email.clone(),
            name: user.name.clone(),
            is_two_factor_authentication_enabled: user.totp_enabled,
            is_email_verified: user.email_verified,
        }
    }
}

impl From<&UserRow> for User {
    fn from(row: &UserRow) -> Self {
        User {
            id: row.id,
            email: row.email.clone(),
            name: row.name.clone(),
            is_two_factor_authentication_enabled: row.totp_enabled,
            is_email_verified: row.email_verified_at.is_some(),
        }
    }
}

/// A response body with the `Set-Cookie` values that go with it.
pub struct WithCookies<T> {
    pub body: T,
    pub cookies: Vec<String>,
}

/// After a successful log-in: tells the owner if it came from a browser
/// that never logged in to the account before (and the account has logged
/// in before: its very first log-in is no news). Call before auditing the
/// log-in itself.
async fn notice_new_browser(state: &AppState, meta: &RequestMeta, user_id: i64, new_browser: bool) {
    if !new_browser {
        return;
    }
    let told = match state.db.has_logged_in(user_id).await {
        Ok(true) => notify(state, user_id, mail::Notice::NewBrowser, None, meta).await,
        Ok(false) => Ok(()),
        Err(e) => Err(e),
    };
    if let Err(e) = told {
        tracing::warn!(user_id, error = %e.message, "could not queue the new-browser notice");
    }
}

/// Whether a log-in comes from a browser without this account's device
/// cookie (of any session version: a password change does not make the
/// owner's own browsers new).
fn is_new_browser(meta: &RequestMeta, user_id: i64) -> bool {
    meta.device.as_ref().is_none_or(|d| d.user_id != user_id)
}

// ---------------------------------------------------------------- account

///
/// Limited per client address (`Limits::registration_per_address`), each
/// try counted before anything else. A taken email is answered honestly
/// (409, until mail can tell the owner instead) but only after the same
/// argon2 run a new account costs, so timing does not tell the two apart.
pub async fn register(
    state: &AppState,
    meta: &RequestMeta,
    email: Email,
    name: PersonName,
    password: Password,
) -> Result<User, AppError> {
    if !state.gate.signup_open {
        return Err(signup_closed());
    }
    throttle::reserve_registration(state, meta).await?;
    identity::refuse_weak_password(state, &password, "password", &[email.as_str(), name.as_str()]).await?;
    let taken = state.db.user_by_email(email.as_str()).await?.is_some();
    let hash = state.hasher.hash(&password).await?;
    if taken {
        return Err(email_taken());
    }
    // The account and the message that proves its address, together.
    let mut tx = state.db.begin().await?;
    let Some(row) = tx.insert_user(email.as_str(), name.as_str(), &hash, state.now()).await? else {
        return Err(email_taken());
    };
    let kind = mail::MailKind::Verify.as_string();
    tx.enqueue_mail(&mail::new_mail(state, &kind, Some(row.id), &row.email, meta)).await?;
    tx.commit().await?;
    state.mail.wake();
    tracing::info!(user_id = row.id, "account created");
    Ok(User::from(&row))
}

/// A locked account (see `mail::links::lockdown`) logs in again only after a
/// password reset; with `REQUIRE_EMAIL_VERIFICATION`, an account logs in
/// once its address is proved. Checked after the password (or passkey),
/// so only the owner learns either.
pub(super) fn refuse_locked_or_unverified(state: &AppState, user: &UserRow) -> Result<(), AppError> {
    if user.locked_at.is_some() {
        let mut e = AppError::forbidden(
            "This account is locked: every session was ended from a security notice. Set a new password with \
             the link we emailed, or use \"Forgot your password?\" for a new one.",
        );
        e.fields.insert("account".into(), "locked".into());
        return Err(e);
    }
    if state.mail.require_verification && user.email_verified_at.is_none() {
        let mut e = AppError::forbidden(
            "Confirm your email address first: open the link we emailed you. No message? Send a new one below.",
        );
        e.fields.insert("account".into(), "unverified".into());
        return Err(e);
    }
    Ok(())
}

pub const SIGNUP_CLOSED: &str = "New accounts are made by the administrator here. Ask them for one.";

fn signup_closed() -> AppError {
    AppError::forbidden(SIGNUP_CLOSED)
}

/// `server user add`: an account made by the operator, with the same checks
/// as a sign-up (look-alike emails and names, weak passwords) and none of
/// its limits. False if the email is taken.
pub async fn operator_add_user(
    state: &AppState,
    email: Email,
    name: PersonName,
    password: Password,
) -> Result<bool, AppError> {
    identity::refuse_weak_password(state, &password, "password", &[email.as_str(), name.as_str()]).await?;
    let hash = state.hasher.hash(&password).await?;
    let mut tx = state.db.begin().await?;
    let created = tx.insert_user(email.as_str(), name.as_str(), &hash, state.now()).await?;
    // The operator typed the address: it is vouched for as if confirmed by
    // mail (the gate passes it on as Remote-Email), in the same transaction.
    if let Some(row) = &created {
        tx.set_email_verified(row.id, state.now()).await?;
    }
    tx.commit().await?;
    if let Some(row) = &created {
        tracing::info!(user_id = row.id, "account created by the operator, address confirmed");
    }
    Ok(created.is_some())
}

fn email_taken() -> AppError {
    let mut e = AppError::conflict("An account with this email already exists.");
    e.fields.insert("email".into(), "An account with this email already exists.".into());
    e
}

/// Checks a password for an account under the password guessing limits.
/// Unknown email, wrong password and a password outside the length limits
/// fail alike; an unknown email still costs one argon2 verification.
pub(super) async fn check_password(
    state: &AppState,
    meta: &RequestMeta,
    email: &str,
    user: Option<&UserRow>,
    password: &str,
) -> Result<(), AppError> {
    let user_id = user.map(|u| u.id);
    let attempt = Attempt::start(state, meta, Attempt::password_buckets(state, meta, email, user), user_id).await?;
    let stored = user.map(|u| u.password_hash.as_str());
    let trusted = trusted_device(meta, user).is_some();
    let ok = match Password::parse(password) {
        Ok(pw) => {
            let normal = identity::password_form(pw.expose());
            let mut ok = state.hasher.verify_as(&normal, stored, trusted).await?;
            // Hashes made before passwords were normalised hold the form as
            // typed: tried once on a miss, then replaced by the NFC form.
            if !ok && normal != pw.expose() {
                ok = state.hasher.verify_as(pw.expose(), stored, trusted).await?;
                if ok && let Some(user) = user {
                    let rehashed = state.hasher.hash(&pw).await?;
                    state.db.replace_password_hash(user.id, &user.password_hash, &rehashed).await?;
                }
            }
            ok
        }
        Err(_) => false,
    };
    if attempt.settle(state, meta, ok, AuditKind::LogInFailed).await? {
        Ok(())
    } else {
        Err(AppError::invalid_credentials())
    }
}

/// The password step. With 2FA off it starts a full session; with 2FA on
/// it sets a password-stage token good for 5 minutes and one endpoint.
pub async fn log_in(
    state: &AppState,
    meta: &RequestMeta,
    email: Email,
    password: &str,
) -> Result<WithCookies<LogInResponse>, AppError> {
    let user = state.db.user_by_email(email.as_str()).await?;
    check_password(state, meta, email.as_str(), user.as_ref(), password).await?;
    let Some(user) = user else { return Err(AppError::invalid_credentials()) };
    state.db.hooks.pause(super::hooks::LOG_IN_VERIFIED).await;
    // Said only to someone who knows the password.
    refuse_locked_or_unverified(state, &user)?;
    let new_browser = is_new_browser(meta, user.id);
    // This browser now knows the password: from here on its failures on
    // this account count on their own (see `Attempt::password_buckets`).
    let device = state.keys.issue_device(user.id, user.session_version, state.now())?;
    let device_cookie = state.cookies.set(CookieKind::Device, &device, super::tokens::DEVICE_TTL);
    let mut cookies = if user.two_factor() {
        let factors = (user.totp_enabled, user.passkey_count > 0);
        let token = state.keys.issue_password_stage(
            user.id,
            user.session_version,
            state.now(),
            PASSWORD_STAGE_TTL,
            factors,
            new_browser,
        )?;
        vec![
            state.cookies.set(CookieKind::Access, &token, PASSWORD_STAGE_TTL),
            state.cookies.clear(CookieKind::Refresh),
        ]
    } else {
        let mut tx = state.db.begin().await?;
        let cookies = logins::start(state, &mut tx, user.id, user.session_version, Amr::PASSWORD, meta).await?;
        tx.commit().await?;
        notice_new_browser(state, meta, user.id, new_browser).await;
        audit(state, Some(user.id), AuditKind::LogInOk, meta).await;
        cookies
    };
    cookies.push(device_cookie);
    tracing::info!(user_id = user.id, two_factor = user.two_factor(), "password accepted");
    let body = LogInResponse {
        user: User::from(&user),
        two_factor_required: user.two_factor(),
        passkey: user.passkey_count > 0,
    };
    Ok(WithCookies { body, cookies })
}

// ---------------------------------------------------------------- second factor

fn open_secret(state: &AppState, user: &UserRow, sealed: Option<&str>) -> Result<Vec<u8>, AppError> {
    let sealed = sealed.ok_or_else(|| {
        tracing::error!(user_id = user.id, "a TOTP secret was expected but is missing");
        AppError::internal()
    })?;
    state.secrets.open(user.id, sealed)
}

/// Verifies a code from the active secret or a recovery code, under the
/// per-account code limit (separate from the password one, so guessing
/// codes never locks the password step). A TOTP code must be for a later
/// time step than the last accepted one; a recovery code is spent.
pub(super) async fn verify_second_factor(
    state: &AppState,
    meta: &RequestMeta,
    user: &UserRow,
    factor: &SecondFactor,
) -> Result<(), AppError> {
    let attempt = Attempt::start(state, meta, Attempt::code_buckets(state, meta, user.id), Some(user.id)).await?;
    // The consecutive-failure cap, reserved before evaluating: codes stop
    // at 100 for good (quiet time does not help); recovery codes get 100
    // more, then only an operator can help.
    let cap = match factor {
        SecondFactor::Totp(_) => CODE_FAILURE_CAP,
        SecondFactor::Recovery(_) => RECOVERY_FAILURE_CAP,
    };
    let Some(consecutive) = state.db.reserve_factor_attempt(user.id, cap).await? else {
        return Err(codes_locked(factor));
    };
    let ok = match factor {
        // An account protected by passkeys alone has no app to take a code from.
        SecondFactor::Totp(_) if !user.totp_enabled => false,
        SecondFactor::Totp(code) => {
            let secret = open_secret(state, user, user.totp_secret.as_deref())?;
            match totp::verify(&secret, code, state.now()) {
                Some(step) => state.db.accept_totp_step(user.id, step).await?,
                None => false,
            }
        }
        SecondFactor::Recovery(code) => {
            let candidates = state.secrets.recovery_candidates(user.id, code.as_str());
            let used = state.db.use_recovery_code(user.id, &candidates, state.now()).await?;
            if used {
                // (An accepted TOTP step clears the count in its own write.)
                state.db.clear_factor_failures(user.id).await?;
                audit(state, Some(user.id), AuditKind::RecoveryCodeUsed, meta).await;
            }
            used
        }
    };
    // Settled before anything else awaits: a client hanging up now cannot
    // take back a wrong code's count.
    let ok = attempt.settle(state, meta, ok, AuditKind::CodeFailed).await?;
    if !ok && consecutive == CODE_FAILURE_CAP {
        audit(state, Some(user.id), AuditKind::CodesLocked, meta).await;
        tracing::warn!(user_id = user.id, "100 consecutive second-factor failures: codes locked");
    }
    if ok {
        Ok(())
    } else {
        Err(match factor {
            SecondFactor::Totp(_) => AppError::invalid_code(),
            SecondFactor::Recovery(_) => AppError::new(
                crate::error::ErrorKind::InvalidCode,
                "That recovery code is not valid or was already used.",
            ),
        })
    }
}

/// Consecutive failed second factors after which app codes are refused.
pub const CODE_FAILURE_CAP: i64 = 100;
/// ... and after which recovery codes are refused too (an operator resets).
pub const RECOVERY_FAILURE_CAP: i64 = 200;

fn codes_locked(factor: &SecondFactor) -> AppError {
    AppError::forbidden(match factor {
        SecondFactor::Totp(_) => {
            "After 100 wrong codes in a row, codes from your app are locked. Log in with one of your recovery \
             codes, or ask the administrator to reset two-factor authentication."
        }
        SecondFactor::Recovery(_) => {
            "Too many wrong codes in a row. Ask the administrator to reset two-factor authentication."
        }
    })
}

/// The code step: a password-stage session plus a current code (or a
/// recovery code) becomes a full session.
pub async fn authenticate(
    state: &AppState,
    meta: &RequestMeta,
    session: PasswordSession,
    factor: SecondFactor,
) -> Result<WithCookies<User>, AppError> {
    let user = session.user;
    verify_second_factor(state, meta, &user, &factor).await?;
    let amr = Amr::PASSWORD.with(factor_amr(&factor));
    let cookies = finish_second_factor(state, meta, &user, &session.claims, amr).await?;
    Ok(WithCookies { cookies, body: User::from(&user) })
}

/// How a second factor shows in a log-in's `amr`.
fn factor_amr(factor: &SecondFactor) -> Amr {
    match factor {
        SecondFactor::Totp(_) => Amr::APP,
        SecondFactor::Recovery(_) => Amr::RECOVERY_CODE,
    }
}

/// After a second factor (a code or a passkey) was accepted for a
/// password-stage token: spends the token and starts the full session,
/// reached by `amr`.
pub(super) async fn finish_second_factor(
    state: &AppState,
    meta: &RequestMeta,
    user: &UserRow,
    stage: &super::tokens::Claims,
    amr: Amr,
) -> Result<Vec<String>, AppError> {
    let mut tx = state.db.begin().await?;
    // One password step, one session: a copy of the password-stage token
    // cannot be exchanged again with a later code.
    if !tx.spend_stage_token(&stage.jti, stage.exp).await? {
        return Err(AppError::unauthenticated());
    }
    let cookies = logins::start(state, &mut tx, user.id, user.session_version, amr, meta).await?;
    tx.commit().await?;
    notice_new_browser(state, meta, user.id, stage.nb == Some(true)).await;
    audit(state, Some(user.id), AuditKind::LogInOk, meta).await;
    tracing::info!(user_id = user.id, "second factor accepted");
    Ok(cookies)
}

/// A full session from a passkey alone (possession, and the PIN or
/// biometric the authenticator verified).
pub(super) async fn passwordless_session(
    state: &AppState,
    meta: &RequestMeta,
    user: &UserRow,
) -> Result<Vec<String>, AppError> {
    refuse_locked_or_unverified(state, user)?;
    let mut tx = state.db.begin().await?;
    let cookies = logins::start(state, &mut tx, user.id, user.session_version, Amr::PASSKEY, meta).await?;
    tx.commit().await?;
    audit(state, Some(user.id), AuditKind::LogInOk, meta).await;
    tracing::info!(user_id = user.id, "signed in with a passkey");
    Ok(cookies)
}

/// Stores a new pending secret and returns it with its otpauth URI. While
/// 2FA is on this needs a current code: a stolen session alone cannot move
/// the second factor to another phone.
///
/// With 2FA off, starting enrolment needs the password, unless the person
/// logged in within the last 5 minutes: a stolen session alone cannot bind
/// the thief's authenticator and take the recovery codes.
pub async fn generate(
    state: &AppState,
    meta: &RequestMeta,
    session: FullSession,
    code: Option<TotpCode>,
    password: Option<&str>,
) -> Result<GenerateResponse, AppError> {
    let fresh = session.claims.auth.is_some_and(|at| state.now() - at <= FRESH_PROOF_SECONDS);
    let user = session.row(state).await?;
    if !user.totp_enabled {
        match password.filter(|p| !p.is_empty()) {
            Some(password) => check_password(state, meta, &user.email, Some(&user), password).await?,
            None if fresh => {}
            None => {
                let mut e = AppError::bad_request("Enter your password to set up two-factor authentication.");
                e.fields.insert("password".into(), e.message.clone());
                return Err(e);
            }
        }
    }
    if user.totp_enabled {
        let Some(code) = code else {
            return Err(AppError::bad_request(
                "Two-factor authentication is on: enter a current code to set up a new key.",
            ));
        };
        verify_second_factor(state, meta, &user, &SecondFactor::Totp(code)).await?;
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

pub(super) fn new_recovery_codes(secrets: &SecretBox, user_id: i64) -> Result<(Vec<String>, Vec<String>), AppError> {
    let mut shown = Vec::with_capacity(RECOVERY_CODES);
    let mut hashes = Vec::with_capacity(RECOVERY_CODES);
    for _ in 0..RECOVERY_CODES {
        // Rejection sampling keeps every character equally likely.
        let mut code = String::with_capacity(RECOVERY_CODE_CHARS);
        while code.len() < RECOVERY_CODE_CHARS {
            for b in random_bytes::<16>()? {
                let limit = 256 - 256 % RECOVERY_ALPHABET.len();
                if (b as usize) < limit && code.len() < RECOVERY_CODE_CHARS {
                    code.push(RECOVERY_ALPHABET[b as usize % RECOVERY_ALPHABET.len()] as char);
                }
            }
        }
        let code = RecoveryCode::parse(&code).map_err(|_| AppError::internal())?;
        hashes.push(secrets.recovery_hash(user_id, code.as_str())?);
        shown.push(code.display());
    }
    Ok((shown, hashes))
}

/// Confirms the pending secret with a code and makes it the active one,
/// turning 2FA on (or replacing the key while on). Every session ends; this
/// client gets a new one, and 10 new recovery codes.
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
    attempt.settle(state, meta, step.is_some(), AuditKind::CodeFailed).await?;
    let Some(step) = step else {
        let diagnosis = totp::diagnose(&secret, &digits, now);
        tracing::info!(user_id = user.id, ?diagnosis, "enrolment code refused");
        let mut e = AppError::invalid_code();
        e.message = diagnosis.explain();
        return Err(e);
    };
    let (codes, hashes) = new_recovery_codes(&state.secrets, user.id)?;
    // The flag, the secret, the replay step, the recovery codes, the
    // session version and this client's new session: all or nothing.
    let mut tx = state.db.begin().await?;
    let Some(version) = tx.enable_totp(user.id, pending, step).await? else {
        return Err(AppError::conflict("The set-up changed in another window. Scan the newest QR code."));
    };
    tx.replace_recovery_codes(user.id, &hashes).await?;
    let cookies = logins::renew_all(state, &mut tx, user.id, version, amr, meta).await?;
    tx.commit().await?;
    audit(state, Some(user.id), AuditKind::TwoFactorOn, meta).await;
    tracing::info!(user_id = user.id, "two-factor authentication turned on");
    let mut body = User::from(&user);
    body.is_two_factor_authentication_enabled = true;
    Ok(WithCookies { cookies, body: TurnOnResponse { user: body, recovery_codes: codes } })
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
    check_password(state, meta, &user.email, Some(&user), password).await?;
    verify_second_factor(state, meta, &user, &factor).await?;
    let mut tx = state.db.begin().await?;
    let version = tx.disable_totp(user.id).await?;
    let amr = session.user.amr.with(Amr::PASSWORD).with(factor_amr(&factor));
    let cookies = logins::renew_all(state, &mut tx, user.id, version, amr, meta).await?;
    tx.commit().await?;
    audit(state, Some(user.id), AuditKind::TwoFactorOff, meta).await;
    tracing::info!(user_id = user.id, "two-factor authentication turned off");
    let mut body = User::from(&user);
    body.is_two_factor_authentication_enabled = false;
    Ok(WithCookies { cookies, body })
}

/// A new set of recovery codes (the old ones stop working); needs a code.
pub async fn regenerate_recovery_codes(
    state: &AppState,
    meta: &RequestMeta,
    session: FullSession,
    code: TotpCode,
) -> Result<RecoveryCodesResponse, AppError> {
    let user = session.row(state).await?;
    if !user.totp_enabled {
        return Err(AppError::conflict("Turn on two-factor authentication first."));
    }
    verify_second_factor(state, meta, &user, &SecondFactor::Totp(code)).await?;
    let (codes, hashes) = new_recovery_codes(&state.secrets, user.id)?;
    let mut tx = state.db.begin().await?;
    tx.replace_recovery_codes(user.id, &hashes).await?;
    tx.commit().await?;
    audit(state, Some(user.id), AuditKind::RecoveryCodesRegenerated, meta).await;
    Ok(RecoveryCodesResponse { recovery_codes: codes })
}

pub async fn status(state: &AppState, session: FullSession) -> Result<TwoFactorStatus, AppError> {
    let left = if session.user.two_factor() { state.db.recovery_codes_left(session.user.id).await? } else { 0 };
    Ok(TwoFactorStatus {
        enabled: session.user.totp_enabled,
        recovery_codes_left: left,
        passkeys: session.user.passkey_count,
    })
}

// ---------------------------------------------------------------- sessions API

/// Ends every session of the user, on every device, this one included.
pub async fn log_out_everywhere(state: &AppState, meta: &RequestMeta, session: FullSession) -> Result<(), AppError> {
    let user = session.user;
    logins::end_all(state, user.id).await?;
    audit(state, Some(user.id), AuditKind::SessionsRevoked, meta).await;
    Ok(())
}

/// How operator commands appear in the user's activity.
pub(super) fn operator_meta() -> RequestMeta {
    RequestMeta { ip: None, user_agent: Some("operator command".into()), device: None }
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

/// Operator: ends every session of a user.
pub async fn operator_revoke_sessions(state: &AppState, email: &Email) -> Result<bool, AppError> {
    let Some(user) = state.db.user_by_email(email.as_str()).await? else { return Ok(false) };
    logins::end_all(state, user.id).await?;
    audit(state, Some(user.id), AuditKind::SessionsRevoked, &operator_meta()).await;
    Ok(true)
}

/// Changes the password (the current one is required); other sessions end.
pub async fn change_password(
    state: &AppState,
    meta: &RequestMeta,
    session: FullSession,
    current: &str,
    new: Password,
) -> Result<WithCookies<User>, AppError> {
    let user = session.row(state).await?;
    check_password(state, meta, &user.email, Some(&user), current).await?;
    identity::refuse_weak_password(state, &new, "newPassword", &[&user.email, &user.name]).await?;
    let hash = state.hasher.hash(&new).await?;
    // The hash, the session version, the revocation and this client's new
    // session: all or nothing (never "changed but logged out").
    let mut tx = state.db.begin().await?;
    let version = tx.set_password(user.id, &hash).await?;
    let amr = session.user.amr.with(Amr::PASSWORD);
    let cookies = logins::renew_all(state, &mut tx, user.id, version, amr, meta).await?;
    tx.commit().await?;
    audit(state, Some(user.id), AuditKind::PasswordChanged, meta).await;
    Ok(WithCookies { cookies, body: User::from(&user) })
}

/// How long a rotated or revoked refresh-token row is kept: a stolen copy
/// replayed within this time is still recognised (and ends its family).
pub const SPENT_SESSION_KEEP_SECONDS: i64 = 7 * 86_400;

/// Deletes expired and spent sessions, throttle rows whose window has
/// passed and audit events past their retention. Idempotent, so several
/// instances may run it at once.
pub async fn prune(state: &AppState) -> Result<super::db::Pruned, AppError> {
    let now = state.now();
    let limits = state.limits;
    let window = [
        limits.password_per_account,
        limits.password_per_account_untrusted,
        limits.code_per_account,
        limits.per_address,
        limits.registration_per_address,
    ]
    .iter()
    .map(|t| t.window.max(t.cap))
    .max()
    .unwrap_or(0);
    state.db.prune_mail(now - mail::KEEP_SECONDS, now).await?;
    state.db.prune(now, now - SPENT_SESSION_KEEP_SECONDS, now - window, now - state.audit_retention).await
}

/// The user's recent events, and apart from them the security changes, so
/// a flood of failed attempts can never push a change off the page.
pub async fn activity(state: &AppState, session: FullSession) -> Result<Activity, AppError> {
    let changes: Vec<&str> = AuditKind::changes().iter().map(|k| k.as_str()).collect();
    let to_events = |rows: Vec<super::db::AuditRow>| -> Vec<ActivityEvent> {
        rows.into_iter()
            .filter_map(|r| {
                Some(ActivityEvent { kind: AuditKind::parse(&r.kind)?, at: r.at, ip: r.ip, user_agent: r.user_agent })
            })
            .collect()
    };
    let id = session.user.id;
    Ok(Activity {
        events: to_events(state.db.recent_audit(id, &changes, true, ACTIVITY_LIMIT).await?),
        changes: to_events(state.db.recent_audit(id, &changes, false, ACTIVITY_LIMIT).await?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_codes_are_distinct_and_parse() {
        let secrets = SecretBox::new(("k1", &[3u8; 32]), &[]).unwrap();
        let (shown, hashes) = new_recovery_codes(&secrets, 7).unwrap();
        assert_eq!(shown.len(), 10);
        let unique: std::collections::HashSet<_> = shown.iter().collect();
        assert_eq!(unique.len(), 10);
        for (code, hash) in shown.iter().zip(&hashes) {
            let parsed = RecoveryCode::parse(code).unwrap();
            assert_eq!(&secrets.recovery_candidates(7, parsed.as_str())[0], hash);
            assert!(!hash.contains(parsed.as_str()));
        }
    }
}
