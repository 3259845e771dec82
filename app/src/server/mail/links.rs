//! The operations behind mailed links: asking for a password reset and
//! using it, proving the email address, and the lockdown a security
//! notice offers. None of them logs anyone in: a reset keeps the second
//! factor owed at the next log-in, and ends every session.

use crate::domain::{Email, Password};
use crate::error::AppError;
use crate::wire::{AuditKind, LinkCheck};

use crate::server::audit;
use crate::server::crypto::sha256_hex;
use crate::server::db::{NewAuditEvent, Throttle};
use crate::server::identity::refuse_weak_password;
use crate::server::mail::{self, MailKind, Purpose};
use crate::server::request::RequestMeta;
use crate::server::state::AppState;
use crate::server::throttle::{Attempt, OnSuccess};

/// Requests one client address may make per hour before waiting (reset
/// and verification mail together).
const PER_ADDRESS: Throttle = Throttle { free: 10, cap: 15 * 60, window: 3600 };
/// Messages one email address may be sent per hour; past it, requests are
/// answered the same and nothing is sent.
const PER_EMAIL: Throttle = Throttle { free: 3, cap: 3600, window: 3600 };
/// Refused password resets (a bad link, a weak password) one client
/// address may make per hour before waiting; a reset that succeeds gives
/// its try back.
const RESETS_PER_ADDRESS: Throttle = Throttle { free: 20, cap: 15 * 60, window: 3600 };

fn bad_link(what: &str) -> AppError {
    AppError::bad_request(format!(
        "This {what} link is not valid: it was already used, it expired, or it was copied incompletely."
    ))
}

/// Counts a mail request: the address's limit answers 429; the email's
/// limit answers `false` (say the same, send nothing).
async fn mail_allowed(state: &AppState, meta: &RequestMeta, what: &str, email: &Email) -> Result<bool, AppError> {
    let now = state.now();
    let key = format!("mail-ip:{}", meta.ip_key());
    if let Some(wait) = state.db.throttle_attempt(&key, PER_ADDRESS, now).await? {
        return Err(AppError::too_many(wait));
    }
    let key = format!("mail:{what}:{}", email.as_str());
    Ok(state.db.throttle_attempt(&key, PER_EMAIL, now).await?.is_none())
}

/// "Forgot your password?": queues a reset message for the address. The
/// request does the same work whether or not an account has it (two
/// throttle rows and one queued row), so the answer and its time say
/// nothing; the worker finds the account, or sends nothing.
pub async fn forgot_password(state: &AppState, meta: &RequestMeta, email: Email) -> Result<(), AppError> {
    if mail_allowed(state, meta, "reset", &email).await? {
        mail::enqueue(state, MailKind::Reset, None, email.as_str(), meta).await?;
    }
    Ok(())
}

/// Sends the verification link again, on the same terms as a reset: the
/// same answer for any address, limited per client and per address.
pub async fn resend_verification(state: &AppState, meta: &RequestMeta, email: Email) -> Result<(), AppError> {
    if mail_allowed(state, meta, "verify", &email).await? {
        mail::enqueue(state, MailKind::Verify, None, email.as_str(), meta).await?;
    }
    Ok(())
}

/// What a mailed link can still do, read without using it (a mail
/// scanner's fetch changes nothing). A link that did its job says what is
/// true now, not "not valid".
pub async fn check(state: &AppState, kind: &str, token: &str) -> Result<LinkCheck, AppError> {
    let purpose = match kind {
        "reset" => Purpose::Reset,
        "verify" => Purpose::Verify,
        "lockdown" => Purpose::Lockdown,
        "invite" => return crate::server::account::check_invitation(state, token).await,
        _ => return Err(AppError::bad_request("kind must be reset, verify, lockdown or invite.")),
    };
    let now = state.now();
    let found = state.db.email_token_state(&sha256_hex(token.trim().as_bytes()), purpose.as_str()).await?;
    // A dead link's way on: a new link of the same kind, or (for one that
    // did its job) logging in.
    let new_link = match purpose {
        Purpose::Verify => ("/verify-email", "Send a new link"),
        Purpose::Reset | Purpose::Lockdown => ("/forgot-password", "Send a new password link"),
    };
    let log_in = ("/login", "Go to log in");
    let answer = |live: bool, done: bool, message: &str, (next, label): (&str, &str)| {
        Ok(LinkCheck {
            live,
            done,
            message: message.into(),
            next: next.into(),
            next_label: label.into(),
            email: String::new(),
        })
    };
    let Some((user_id, expires_at, used_at)) = found else {
        return answer(
            false,
            false,
            match purpose {
                Purpose::Verify => {
                    "This confirmation link is not valid: a newer one replaced it, or it was copied incompletely. \
                 Send yourself a new one."
                }
                Purpose::Reset => {
                    "This password link is not valid: a newer link or a lockdown replaced it, or it was copied \
                 incompletely. Ask for a new one."
                }
                Purpose::Lockdown => {
                    "This lockdown link is not valid any more. If someone else may be using your account, set a new \
                 password with a reset link: that ends every session too."
                }
            },
            new_link,
        );
    };
    if used_at.is_some() {
        let user = state.db.user_by_id(user_id).await?;
        let locked = user.as_ref().is_some_and(|u| u.locked_at.is_some());
        return match purpose {
            Purpose::Verify => {
                answer(false, true, "Your email address is already confirmed. Nothing more to do.", log_in)
            }
            Purpose::Reset => answer(
                false,
                true,
                "This link already set a new password. Log in with it; if that was not you, ask for a new link.",
                log_in,
            ),
            Purpose::Lockdown if locked => answer(
                false,
                true,
                "This account is already locked and every session has ended. The link to set a new password is in \
                 your mail; no message? Ask for a new one.",
                new_link,
            ),
            Purpose::Lockdown => answer(
                false,
                true,
                "This account was locked with this link, and a new password has been set since. Log in as usual.",
                log_in,
            ),
        };
    }
    if expires_at <= now {
        return answer(
            false,
            false,
            match purpose {
                Purpose::Verify => "This confirmation link expired (links work for 7 days). Send yourself a new one.",
                Purpose::Reset => "This password link expired (links work for 30 minutes). Ask for a new one.",
                Purpose::Lockdown => {
                    "This lockdown link expired. If someone else may be using your account, set a new password with \
                 a reset link: that ends every session too."
                }
            },
            new_link,
        );
    }
    answer(true, false, "", ("", ""))
}

/// Sets a new password with a reset link's token. Each try is counted
/// against the client address first (before the token is looked up or the
/// password scored). The token is checked without being used, so a weak
/// password is refused and the link still works; then, in one
/// transaction: the token is used, the password set, a lockdown lifted,
/// every session ended, the address counted as proved, the event audited
/// and its notice queued. Nobody is logged in.
pub async fn reset_password(state: &AppState, meta: &RequestMeta, token: &str, new: Password) -> Result<(), AppError> {
    let key = format!("reset-ip:{}", meta.ip_key());
    let attempt = Attempt::start(state, meta, vec![(key, RESETS_PER_ADDRESS, OnSuccess::Release)], None).await?;
    let now = state.now();
    let hash = sha256_hex(token.trim().as_bytes());
    let owner = state.db.email_token_owner(&hash, Purpose::Reset.as_str(), now).await?;
    let user = match owner {
        Some(id) => state.db.user_by_id(id).await?,
        None => None,
    };
    let Some(user) = user else {
        attempt.spend();
        return Err(bad_link("password reset"));
    };
    if let Err(weak) = refuse_weak_password(state, &new, "newPassword", &[&user.email, &user.name]).await {
        if weak.status() == 400 {
            attempt.spend();
        }
        return Err(weak);
    }
    let password_hash = state.hasher.hash(&new).await?;
    let mut tx = state.db.begin().await?;
    if tx.take_email_token(&hash, Purpose::Reset.as_str(), now).await? != Some(user.id) {
        return Err(bad_link("password reset"));
    }
    tx.set_password(user.id, &password_hash).await?;
    if user.locked_at.is_some() {
        tx.set_locked(user.id, None).await?;
    }
    tx.revoke_user_logins(user.id, now).await?;
    tx.delete_email_tokens(user.id, Purpose::Reset.as_str()).await?;
    // The link reached the mailbox: the address is proved.
    tx.set_email_verified(user.id, now).await?;
    let event = NewAuditEvent {
        user_id: Some(user.id),
        actor_id: None,
        kind: AuditKind::PasswordReset.as_str(),
        at: now,
        ip: meta.ip.as_deref(),
        user_agent: meta.user_agent.as_deref(),
        detail: None,
    };
    tx.insert_audit(&event).await?;
    let kind = MailKind::Notice(mail::Notice::PasswordReset).as_string();
    tx.enqueue_mail(&mail::new_mail(state, &kind, Some(user.id), &user.email, meta)).await?;
    tx.commit().await?;
    // Done: the try is given back (a failure to do so costs only a slot).
    if let Err(e) = attempt.settle(state, meta, true, AuditKind::PasswordReset).await {
        tracing::warn!(error = %e.message, "a reset's try was not given back");
    }
    state.mail.wake();
    tracing::info!(user_id = user.id, "password reset through an email link");
    Ok(())
}

/// Proves the account's email address with its link.
pub async fn verify_email(state: &AppState, meta: &RequestMeta, token: &str) -> Result<(), AppError> {
    let now = state.now();
    let hash = sha256_hex(token.trim().as_bytes());
    let mut tx = state.db.begin().await?;
    let Some(user_id) = tx.take_email_token(&hash, Purpose::Verify.as_str(), now).await? else {
        return Err(bad_link("confirmation"));
    };
    tx.set_email_verified(user_id, now).await?;
    audit::record(state, &mut tx, Some(user_id), AuditKind::EmailVerified, meta).await?;
    audit::commit(state, tx).await
}

/// "This wasn't me": at once, every session and gate cookie of the account
/// ends (the session version moves and every refresh family is revoked)
/// and log-in is refused until a password reset. Older reset links stop
/// working; a fresh one is mailed, with what happened. The audit event
/// keeps what the notice reported (the log-in that set the lockdown off),
/// for the "locked" mail and the security page afterwards.
pub async fn lockdown(state: &AppState, meta: &RequestMeta, token: &str) -> Result<(), AppError> {
    let now = state.now();
    let hash = sha256_hex(token.trim().as_bytes());
    let mut tx = state.db.begin().await?;
    let Some((user_id, cause)) = tx.take_lockdown_token(&hash, now).await? else {
        return Err(bad_link("lockdown"));
    };
    tx.set_locked(user_id, Some(now)).await?;
    tx.revoke_user_logins(user_id, now).await?;
    tx.delete_email_tokens(user_id, Purpose::Reset.as_str()).await?;
    let event = NewAuditEvent {
        user_id: Some(user_id),
        actor_id: None,
        kind: AuditKind::LockedDown.as_str(),
        at: now,
        ip: meta.ip.as_deref(),
        user_agent: meta.user_agent.as_deref(),
        detail: None,
    };
    tx.insert_lockdown_audit(&event, cause.as_ref()).await?;
    let address = tx.user_email(user_id).await?;
    let kind = MailKind::Locked.as_string();
    tx.enqueue_mail(&mail::new_mail(state, &kind, Some(user_id), &address, meta)).await?;
    tx.commit().await?;
    state.mail.wake();
    tracing::warn!(user_id, "account locked from a security notice");
    Ok(())
}
