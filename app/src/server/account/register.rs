//! New accounts: a sign-up (limited, answered alike whether the address is
//! taken or not, in time) and one made by the operator.

use crate::domain::{Email, Password, PersonName};
use crate::error::AppError;
use crate::server::audit;
use crate::server::crypto::sha256_hex;
use crate::server::identity;
use crate::server::mail;
use crate::server::request::RequestMeta;
use crate::server::state::AppState;
use crate::server::throttle;
use crate::wire::{AuditKind, LinkCheck, User};

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
    let hash = new_account_hash(state, &email, &name, &password).await?;
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

/// A sign-up with an invitation's link (`token`), whatever `SIGNUP` says:
/// the same limits and checks as `register`, and the address the
/// invitation is bound to, if any. In one transaction the invitation is
/// used (one statement: of two sign-ups racing with one link, one wins),
/// the account made, put in the invitation's groups, its address counted
/// as proved when the link came by mail to it (else its confirmation
/// queued), and the event audited naming who invited. A refused sign-up
/// leaves the link working.
pub async fn register_invited(
    state: &AppState,
    meta: &RequestMeta,
    token: &str,
    email: Email,
    name: PersonName,
    password: Password,
) -> Result<User, AppError> {
    throttle::reserve_registration(state, meta).await?;
    let token_hash = sha256_hex(token.trim().as_bytes());
    let now = state.now();
    match state.db.invitation_by_token(&token_hash).await? {
        Some((bound, expires_at, None, None)) if expires_at > now => {
            if let Some(bound) = bound
                && bound != email.as_str()
            {
                let message = format!("This invitation is for {bound}: make the account with that address.");
                let mut e = AppError::bad_request(message.clone());
                e.fields.insert("email".into(), message);
                return Err(e);
            }
        }
        _ => return Err(bad_invitation()),
    }
    let hash = new_account_hash(state, &email, &name, &password).await?;
    let mut tx = state.db.begin().await?;
    let Some(invitation) = tx.take_invitation(&token_hash, now).await? else {
        return Err(bad_invitation());
    };
    if invitation.email.as_deref().is_some_and(|bound| bound != email.as_str()) {
        return Err(bad_invitation());
    }
    let Some(row) = tx.insert_user(email.as_str(), name.as_str(), &hash, now).await? else {
        return Err(email_taken());
    };
    tx.set_invitation_used_by(invitation.id, row.id).await?;
    for group in invitation.group_names.split(',').filter(|g| !g.is_empty()) {
        // Never the administrators' group, whatever the row says.
        if group != state.admin_group {
            tx.set_group(row.id, group, true, now).await?;
        }
    }
    if invitation.mailed == 1 && invitation.email.is_some() {
        // The link reached the mailbox: the address is proved.
        tx.set_email_verified(row.id, now).await?;
    } else {
        let kind = mail::MailKind::Verify.as_string();
        tx.enqueue_mail(&mail::new_mail(state, &kind, Some(row.id), &row.email, meta)).await?;
        tx.note_mail_queued();
    }
    audit::record_by(state, &mut tx, Some(row.id), invitation.created_by, AuditKind::InvitationUsed, meta).await?;
    audit::commit(state, tx).await?;
    tracing::info!(user_id = row.id, invitation = invitation.id, "account created with an invitation");
    let row = state.db.user_by_id(row.id).await?.unwrap_or(row);
    Ok(User::from(&row))
}

/// What an invitation's link can still do, read without using it: live
/// (with the address it is bound to), or why not.
pub async fn check_invitation(state: &AppState, token: &str) -> Result<LinkCheck, AppError> {
    let found = state.db.invitation_by_token(&sha256_hex(token.trim().as_bytes())).await?;
    let dead = |message: &str| LinkCheck {
        live: false,
        done: false,
        message: message.into(),
        next: "/login".into(),
        next_label: "Go to log in".into(),
        email: String::new(),
    };
    Ok(match found {
        None => dead("This invitation is not valid: its link was copied incompletely, or it was never made here."),
        Some((_, _, Some(_), _)) => {
            dead("This invitation was used already: its account exists. Log in with it, or ask for a new invitation.")
        }
        Some((_, _, None, Some(_))) => dead("This invitation was revoked. Ask the administrator for a new one."),
        Some((_, expires_at, None, None)) if expires_at <= state.now() => {
            dead("This invitation expired. Ask the administrator for a new one.")
        }
        Some((email, _, None, None)) => LinkCheck {
            live: true,
            done: false,
            message: String::new(),
            next: String::new(),
            next_label: String::new(),
            email: email.unwrap_or_default(),
        },
    })
}

fn bad_invitation() -> AppError {
    AppError::bad_request(
        "This invitation is not valid: it was used or revoked, it expired, or its link was copied incompletely. \
         Ask for a new one.",
    )
}

/// A new account's password checked and hashed. A taken email is refused
/// only after the argon2 run a new account costs, so timing does not tell
/// the two apart.
async fn new_account_hash(
    state: &AppState,
    email: &Email,
    name: &PersonName,
    password: &Password,
) -> Result<String, AppError> {
    identity::refuse_weak_password(state, password, "password", &[email.as_str(), name.as_str()]).await?;
    let taken = state.db.user_by_email(email.as_str()).await?.is_some();
    let hash = state.hasher.hash(password).await?;
    if taken {
        return Err(email_taken());
    }
    Ok(hash)
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
    admin: bool,
) -> Result<bool, AppError> {
    identity::refuse_weak_password(state, &password, "password", &[email.as_str(), name.as_str()]).await?;
    let hash = state.hasher.hash(&password).await?;
    let mut tx = state.db.begin().await?;
    let created = tx.insert_user(email.as_str(), name.as_str(), &hash, state.now()).await?;
    // The operator typed the address: it is vouched for as if confirmed by
    // mail (the gate passes it on as Remote-Email), in the same transaction.
    if let Some(row) = &created {
        tx.set_email_verified(row.id, state.now()).await?;
        // `--admin`: in `ADMIN_GROUP` from the start (the admin page opens
        // once they have turned two factors on).
        if admin {
            tx.set_group(row.id, &state.admin_group, true, state.now()).await?;
        }
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
