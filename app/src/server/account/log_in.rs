//! Logging in: the password step (under the guessing limits), the code
//! step that finishes it, and a passkey alone. Each ends in
//! `logins::start`.

use crate::domain::{Email, Password, SecondFactor};
use crate::error::AppError;
use crate::server::WithCookies;
use crate::server::audit;
use crate::server::auth::{PasswordSession, PasswordStage};
use crate::server::crypto::tokens::{CookieKind, PASSWORD_STAGE_TTL};
use crate::server::db::{Tx, UserRow};
use crate::server::factors::remembered;
use crate::server::factors::verify::{self, factor_amr};
use crate::server::identity;
use crate::server::logins::{self, Amr};
use crate::server::mail;
use crate::server::request::RequestMeta;
use crate::server::state::AppState;
use crate::server::throttle::{Attempt, detached, trusted_device};
use crate::wire::{AuditKind, LogInResponse, User};

/// After a successful log-in, in its transaction: tells the owner if it
/// came from a browser that never logged in to the account before (and
/// the account has logged in before: its very first log-in is no news).
/// Call before auditing the log-in itself.
async fn notice_new_browser(
    state: &AppState,
    tx: &mut Tx,
    meta: &RequestMeta,
    user: &UserRow,
    new_browser: bool,
) -> Result<(), AppError> {
    if new_browser && tx.has_logged_in(user.id).await? {
        audit::queue_notice(state, tx, user.id, &user.email, mail::Notice::NewBrowser, meta).await?;
    }
    Ok(())
}

/// A log-in stored in `tx` is reported: the new-browser notice if due,
/// then the audit event, both landing with the log-in or not at all.
async fn report_log_in(
    state: &AppState,
    tx: &mut Tx,
    meta: &RequestMeta,
    user: &UserRow,
    new_browser: bool,
) -> Result<(), AppError> {
    notice_new_browser(state, tx, meta, user, new_browser).await?;
    audit::record(state, tx, Some(user.id), AuditKind::LogInOk, meta).await
}

/// Whether a log-in comes from a browser without this account's device
/// cookie (of any session version: a password change does not make the
/// owner's own browsers new).
fn is_new_browser(meta: &RequestMeta, user_id: i64) -> bool {
    meta.device.as_ref().is_none_or(|d| d.user_id != user_id)
}

/// A locked account (see `mail::links::lockdown`) logs in again only after a
/// password reset; with `REQUIRE_EMAIL_VERIFICATION`, an account logs in
/// once its address is proved. Checked after the password (or passkey),
/// so only the owner learns either.
fn refuse_locked_or_unverified(state: &AppState, user: &UserRow) -> Result<(), AppError> {
    if user.locked_at.is_some() {
        let mut e = AppError::forbidden(
            "This account is locked: every session was ended (from a security notice, or by an administrator). \
             Set a new password with the link we emailed, or use \"Forgot your password?\" for a new one.",
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

/// Checks a password for an account under the password guessing limits.
/// Unknown email, wrong password and a password outside the length limits
/// fail alike; an unknown email still costs one argon2 verification.
pub(crate) async fn check_password(
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

/// `check_password` for someone logged in, on a form that has no email
/// field: a wrong password is called what it is ("not your current
/// password"), on `field`, under the same limits.
pub(crate) async fn check_own_password(
    state: &AppState,
    meta: &RequestMeta,
    user: &UserRow,
    password: &str,
    field: &str,
) -> Result<(), AppError> {
    check_password(state, meta, &user.email, Some(user), password).await.map_err(|e| {
        if e.error != crate::error::ErrorKind::InvalidCredentials {
            return e;
        }
        let message = "That is not your current password.";
        let mut e = AppError::new(crate::error::ErrorKind::InvalidCredentials, message);
        e.fields.insert(field.into(), message.into());
        e
    })
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
    state.db.hooks.pause(crate::server::hooks::LOG_IN_VERIFIED).await;
    // Said only to someone who knows the password.
    refuse_locked_or_unverified(state, &user)?;
    let new_browser = is_new_browser(meta, user.id);
    // This browser now knows the password: from here on its failures on
    // this account count on their own (see `Attempt::password_buckets`).
    let device = state.keys.issue_device(user.id, user.session_version, state.now())?;
    let device_cookie = state.cookies.set(CookieKind::Device, &device, crate::server::crypto::tokens::DEVICE_TTL);
    let remembered = if user.two_factor() { remembered_log_in(state, meta, &user, new_browser).await? } else { None };
    let skipped = remembered.is_some();
    let mut cookies = if let Some(cookies) = remembered {
        cookies
    } else if user.two_factor() {
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
        report_log_in(state, &mut tx, meta, &user, new_browser).await?;
        audit::commit(state, tx).await?;
        cookies
    };
    cookies.push(device_cookie);
    tracing::info!(user_id = user.id, two_factor = user.two_factor(), remembered = skipped, "password accepted");
    let body = LogInResponse {
        user: User::from(&user),
        two_factor_required: user.two_factor() && !skipped,
        passkey: user.passkey_count > 0,
        remembered: skipped,
    };
    Ok(WithCookies { body, cookies })
}

/// After the password, from a browser whose remembered-browser cookie
/// counts for this account now: a full log-in reached by the password and
/// the remembered browser. None (nothing written) from any other browser.
async fn remembered_log_in(
    state: &AppState,
    meta: &RequestMeta,
    user: &UserRow,
    new_browser: bool,
) -> Result<Option<Vec<String>>, AppError> {
    if meta.remembered.is_none() || !remembered::offered(state) {
        return Ok(None);
    }
    let mut tx = state.db.begin().await?;
    let Some(entry) = remembered::recognised(state, &mut tx, user, meta).await? else {
        return Ok(None);
    };
    let cookies = logins::start_remembered(state, &mut tx, user.id, user.session_version, &entry, meta).await?;
    notice_new_browser(state, &mut tx, meta, user, new_browser).await?;
    let how = "a remembered browser stood in for the second factor";
    audit::record_detailed(state, &mut tx, Some(user.id), None, AuditKind::LogInOk, Some(how), meta).await?;
    audit::commit(state, tx).await?;
    Ok(Some(cookies))
}

/// The code step: a password-stage session plus a current code (or a
/// recovery code) becomes a full session. One transaction, run to its end
/// even if the client hangs up: the code checked under the limits
/// (`verify::check`) and, if it passed, the password-stage token spent and
/// the log-in started and reported. A log-in refused after a good code (the
/// token already spent, or overtaken by an ending) still commits the
/// verdict, as a refused code does: the step stays used, the limits
/// settled. With `remember` (and `REMEMBER_DAYS` not 0) the browser is
/// remembered in the same transaction.
pub async fn authenticate(
    state: &AppState,
    meta: &RequestMeta,
    stage: PasswordStage,
    factor: SecondFactor,
    remember: bool,
) -> Result<WithCookies<User>, AppError> {
    let amr = Amr::PASSWORD.with(factor_amr(&factor));
    let (state, meta) = (state.clone(), meta.clone());
    detached(async move {
        let mut tx = state.db.begin().await?;
        // The account as this transaction sees it (a token for a row gone
        // or changed since is 401, nothing written).
        let row = tx.user_by_id(stage.id).await?;
        state.db.hooks.pause(crate::server::hooks::CODE_STEP_READ).await;
        let PasswordSession { user, claims } = stage.with_row(row)?;
        let answer = match verify::check(&state, &meta, &mut tx, &user, &factor).await? {
            Ok(()) => start_second_factor(&state, &meta, &mut tx, &user, &claims, amr, remember).await?,
            Err(refused) => Err(refused),
        };
        audit::commit(&state, tx).await?;
        if answer.is_ok() {
            tracing::info!(user_id = user.id, "second factor accepted");
        }
        answer.map(|cookies| WithCookies { cookies, body: User::from(&user) })
    })
    .await
}

/// After a second factor (a code or a passkey) was accepted for a
/// password-stage token: spends the token and starts the full session,
/// reached by `amr`; remembers this browser when asked (`remember`).
pub(crate) async fn finish_second_factor(
    state: &AppState,
    meta: &RequestMeta,
    user: &UserRow,
    stage: &crate::server::crypto::tokens::Claims,
    amr: Amr,
    remember: bool,
) -> Result<Vec<String>, AppError> {
    let mut tx = state.db.begin().await?;
    let cookies = start_second_factor(state, meta, &mut tx, user, stage, amr, remember).await??;
    audit::commit(state, tx).await?;
    tracing::info!(user_id = user.id, "second factor accepted");
    Ok(cookies)
}

/// `finish_second_factor`'s writes, in `tx`. The inner error is a refusal
/// that left no log-in behind: the token was spent before (401), or the
/// log-in was overtaken by an ending (409; the token is then spent, and
/// dead anyway: the session version it names moved on).
async fn start_second_factor(
    state: &AppState,
    meta: &RequestMeta,
    tx: &mut Tx,
    user: &UserRow,
    stage: &crate::server::crypto::tokens::Claims,
    amr: Amr,
    remember: bool,
) -> Result<Result<Vec<String>, AppError>, AppError> {
    // One password step, one session: a copy of the password-stage token
    // cannot be exchanged again with a later code.
    if !tx.spend_stage_token(&stage.jti, stage.exp).await? {
        return Ok(Err(AppError::unauthenticated()));
    }
    let Some(mut cookies) = logins::try_start(state, tx, user.id, user.session_version, amr, meta).await? else {
        return Ok(Err(logins::overtaken()));
    };
    report_log_in(state, tx, meta, user, stage.nb == Some(true)).await?;
    if remember && remembered::offered(state) {
        cookies.push(remembered::remember(state, tx, user, meta).await?);
    }
    Ok(Ok(cookies))
}

/// A full session from a passkey alone (possession, and the PIN or
/// biometric the authenticator verified).
pub(crate) async fn passwordless_session(
    state: &AppState,
    meta: &RequestMeta,
    user: &UserRow,
) -> Result<Vec<String>, AppError> {
    refuse_locked_or_unverified(state, user)?;
    let mut tx = state.db.begin().await?;
    let cookies = logins::start(state, &mut tx, user.id, user.session_version, Amr::PASSKEY, meta).await?;
    audit::record(state, &mut tx, Some(user.id), AuditKind::LogInOk, meta).await?;
    audit::commit(state, tx).await?;
    tracing::info!(user_id = user.id, "signed in with a passkey");
    Ok(cookies)
}
