//! New accounts: a sign-up (limited, answered alike whether the address is
//! taken or not, in time) and one made by the operator.

use crate::domain::{Email, Password, PersonName};
use crate::error::AppError;
use crate::server::identity;
use crate::server::mail;
use crate::server::request::RequestMeta;
use crate::server::state::AppState;
use crate::server::throttle;
use crate::wire::User;

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
            tx.set_group(row.id, &state.admin_group, true).await?;
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
