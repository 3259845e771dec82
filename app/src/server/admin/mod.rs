//! The admin page's operations. Who may: members of `ADMIN_GROUP` with two
//! factors on (`require_admin`, on every read and write). Every write also
//! needs proof that it is still them (`factors::proof::prove`: the one
//! step-up rule of the security page), lands in one transaction with its
//! audit event naming both the administrator and the person, and cannot
//! take the administrator's own role or factors away (so the last
//! administrator cannot lock everyone out).

pub mod activity;
pub mod apps;
pub mod groups;
pub mod invitations;
pub mod overview;
pub mod rules;

use crate::error::{AppError, ErrorKind};
use crate::server::audit;
use crate::server::auth::FullSession;
use crate::server::db::{PeopleOrder, UserRow};
use crate::server::factors::proof::{Proof, prove};
use crate::server::logins::list::{browser_words, handle};
use crate::server::request::RequestMeta;
use crate::server::state::AppState;
use crate::server::time_zone::format_time;
use crate::wire::admin::{
    AdminAction, AdminEvent, AdminPasskey, Offer, PEOPLE_PER_PAGE, PeoplePage, PersonLine, PersonView, valid_group,
};
use crate::wire::{AuditKind, Done};

/// Events shown on a person's page.
const ACTIVITY_SHOWN: i64 = 30;

/// What a write asks for when the administrator's log-in is not recent.
pub const ASK_PROOF: &str =
    "To change someone's account, prove it is still you: type a code from your app (or log in again).";

/// The administrator's own row, or 403 for anyone else (a member of the
/// group without two factors included).
pub async fn require_admin(state: &AppState, session: &FullSession) -> Result<UserRow, AppError> {
    let row = session.row(state).await?;
    let groups = state.db.groups_of(row.id).await?;
    if !row.two_factor() || !groups.iter().any(|g| *g == state.admin_group) {
        return Err(AppError::forbidden("This page is for administrators."));
    }
    Ok(row)
}

/// One page of the people list: `search` in email or name, `group` exact,
/// `order` "created" (default) or "last-log-in", `page` from 1.
pub async fn people(
    state: &AppState,
    session: &FullSession,
    search: &str,
    group: &str,
    order: &str,
    page: i64,
) -> Result<PeoplePage, AppError> {
    let admin = require_admin(state, session).await?;
    let search = search.trim();
    let group = group.trim();
    if search.chars().count() > 200 {
        return Err(AppError::bad_request("The search is too long (200 characters at most)."));
    }
    if !group.is_empty() && !valid_group(group) {
        return Err(AppError::bad_request("A group name is 1 to 64 letters, digits, '-', '_' or '.'."));
    }
    let order = match order {
        "" | "created" => PeopleOrder::Created,
        "last-log-in" => PeopleOrder::LastLogIn,
        _ => return Err(AppError::bad_request("Sort by created or last-log-in.")),
    };
    let page = page.max(1);
    let (rows, groups, total) = state
        .db
        .find_people(
            (!search.is_empty()).then_some(search),
            (!group.is_empty()).then_some(group),
            order,
            (page - 1).saturating_mul(PEOPLE_PER_PAGE),
            PEOPLE_PER_PAGE,
        )
        .await?;
    let zone = admin.time_zone.as_deref();
    let people = rows
        .into_iter()
        .map(|r| PersonLine {
            groups: groups.iter().filter(|(id, _)| *id == r.id).map(|(_, g)| g.clone()).collect(),
            two_factor: r.totp_enabled == 1 || r.passkey_count > 0,
            email_verified: r.email_verified_at.is_some(),
            locked: r.locked_at.is_some(),
            created_when: format_time(r.created_at, zone),
            last_log_in_when: r.last_log_in.map_or_else(|| "never".to_owned(), |at| format_time(at, zone)),
            id: r.id,
            email: r.email,
            name: r.name,
        })
        .collect();
    Ok(PeoplePage { people, total, page, pages: ((total + PEOPLE_PER_PAGE - 1) / PEOPLE_PER_PAGE).max(1) })
}

fn no_such_person() -> AppError {
    AppError::new(ErrorKind::NotFound, "There is no such person (the account may have been deleted).")
}

/// Everything the page shows of one person.
pub async fn person(state: &AppState, session: &FullSession, id: i64) -> Result<PersonView, AppError> {
    let admin = require_admin(state, session).await?;
    let user = state.db.user_by_id(id).await?.ok_or_else(no_such_person)?;
    let zone = admin.time_zone.as_deref();
    let groups = state.db.groups_of(id).await?;
    let passkeys =
        state.db.passkeys_of(id).await?.into_iter().map(|p| AdminPasskey { id: p.id, name: p.name }).collect();
    let log_ins = state
        .db
        .live_logins(id, state.now())
        .await?
        .into_iter()
        .map(|l| crate::server::logins::list::view(l, &session.user.family, zone))
        .collect();
    let activity = state
        .db
        .admin_activity(id, ACTIVITY_SHOWN)
        .await?
        .into_iter()
        .map(|e| AdminEvent {
            label: AuditKind::parse(&e.kind).map_or_else(|| e.kind.clone(), |k| k.label().to_owned()),
            when: format_time(e.at, zone),
            ip: e.ip,
            browser: browser_words(e.user_agent.as_deref()),
            by: e.actor_email,
        })
        .collect();
    let is_you = id == admin.id;
    let remembered = crate::server::factors::remembered::list_of(state, id, None).await?;
    let offers = offers(&user, is_you, remembered.len());
    Ok(PersonView {
        offers,
        remembered,
        admin: groups.iter().any(|g| *g == state.admin_group),
        admin_group: state.admin_group.clone(),
        is_you,
        needs_proof: !crate::server::factors::proof::fresh(state, session),
        app: user.totp_enabled,
        passkeys,
        recovery_codes_left: state.db.recovery_codes_left(id).await?,
        email_verified: user.email_verified_at.is_some(),
        locked: user.locked_at.is_some(),
        groups,
        log_ins,
        activity,
        id,
        email: user.email,
        name: user.name,
    })
}

/// The changes to the whole account the page offers: what applies to the
/// account as it is, and nothing that would take the administrator's own
/// role or factors away.
fn offers(user: &UserRow, is_you: bool, remembered: usize) -> Vec<Offer> {
    let mut offers = Vec::new();
    if user.email_verified_at.is_none() {
        offers.push(Offer::new("confirm-email", "Confirm the address", "", false));
    }
    offers.push(Offer::new(
        "send-reset",
        "Mail a password-reset link",
        "For a forgotten password: they choose a new one; every log-in ends when they do.",
        false,
    ));
    if is_you {
        return offers;
    }
    if user.two_factor() {
        offers.push(Offer::new(
            "reset-factors",
            "Reset second factors",
            "For a lost phone or key: removes the app, passkeys and recovery codes; ends every log-in.",
            true,
        ));
    }
    if user.locked_at.is_some() {
        offers.push(Offer::new("unlock", "Unlock the account", "", false));
    } else {
        offers.push(Offer::new("lock", "Lock the account", "Ends every log-in until unlocked.", true));
    }
    offers.push(Offer::new("end-all-log-ins", "Log out everywhere", "", true));
    if remembered > 0 {
        offers.push(Offer::new(
            "forget-browsers",
            "Forget remembered browsers",
            "Each is asked for a second factor at its next log-in.",
            true,
        ));
    }
    offers.push(Offer {
        confirm: "Their email address, to confirm".into(),
        ..Offer::new(
            "delete",
            "Delete the account",
            "Ends every log-in and deletes the account, its factors and groups. Its activity stays, without the name. \
             This cannot be undone.",
            true,
        )
    });
    offers
}

/// Does `action` to person `id`'s account, after the administrator's
/// proof; the message says what was done.
pub async fn act(
    state: &AppState,
    meta: &RequestMeta,
    session: &FullSession,
    id: i64,
    action: AdminAction,
    proof: Proof<'_>,
) -> Result<Done, AppError> {
    let admin = require_admin(state, session).await?;
    let yourself = id == admin.id;
    // Refusals that need no proof come first: nothing is asked for in vain.
    match &action {
        AdminAction::ResetFactors if yourself => {
            return Err(AppError::forbidden(
                "You cannot reset your own second factors here: administrators need them. Use your security page.",
            ));
        }
        AdminAction::RemovePasskey(_) | AdminAction::Lock if yourself => {
            return Err(AppError::forbidden("Change your own passkeys and log-ins on your security page."));
        }
        AdminAction::EndAllLogIns if yourself => {
            return Err(AppError::forbidden("To end your own log-ins, use Log out everywhere on your security page."));
        }
        AdminAction::RemoveGroup(g) if yourself && *g == state.admin_group => {
            return Err(AppError::forbidden("You cannot take away your own administrator role."));
        }
        AdminAction::AddGroup(g) | AdminAction::RemoveGroup(g) if !valid_group(g) => {
            return Err(AppError::bad_request("A group name is 1 to 64 letters, digits, '-', '_' or '.'."));
        }
        AdminAction::Delete(_) if yourself => {
            return Err(AppError::forbidden("You cannot delete your own account here."));
        }
        _ => {}
    }
    let user = state.db.user_by_id(id).await?.ok_or_else(no_such_person)?;
    if let AdminAction::Delete(typed) = &action
        && typed.trim().to_lowercase() != user.email
    {
        return Err(AppError::bad_request(format!(
            "To delete this account, type its email address ({}) in the box.",
            user.email
        )));
    }
    prove(state, meta, session, &admin, proof, ASK_PROOF).await?;
    let now = state.now();
    let mut tx = state.db.begin().await?;
    let (kind, message) = match action {
        AdminAction::RemovePasskey(passkey) => {
            if !crate::server::factors::passkeys::remove_for_admin(state, &mut tx, id, &passkey, admin.id, meta).await?
            {
                return Err(AppError::new(ErrorKind::NotFound, "That passkey was already removed."));
            }
            audit::commit(state, tx).await?;
            tracing::info!(admin = admin.id, person = id, "an administrator removed a passkey");
            return Ok(Done::new(format!("Removed a passkey of {}.", user.email)));
        }
        AdminAction::Lock => {
            if user.locked_at.is_some() {
                return Ok(Done::new(format!("{} is locked already.", user.email)));
            }
            tx.set_locked(id, Some(now)).await?;
            tx.revoke_user_logins(id, now).await?;
            (
                AuditKind::LockedByAdmin,
                format!(
                    "Locked {}: every log-in ended; they cannot log in until unlocked here or a password reset by mail.",
                    user.email
                ),
            )
        }
        AdminAction::Unlock => {
            if user.locked_at.is_none() {
                return Ok(Done::new(format!("{} is not locked.", user.email)));
            }
            tx.set_locked(id, None).await?;
            (AuditKind::Unlocked, format!("Unlocked {}: they can log in again.", user.email))
        }
        AdminAction::EndLogIn(wanted) => {
            let live = tx.live_logins(id, now).await?;
            let Some(login) = live.into_iter().find(|l| handle(&l.id) == wanted) else {
                return Err(AppError::new(ErrorKind::NotFound, "That log-in has already ended."));
            };
            tx.revoke_login(&login.id, now).await?;
            let browser = browser_words(login.user_agent.as_deref());
            (AuditKind::LogInEnded, format!("Ended the log-in of {} ({browser}).", user.email))
        }
        AdminAction::EndAllLogIns => {
            tx.bump_session_version(id).await?;
            tx.revoke_user_logins(id, now).await?;
            (AuditKind::SessionsRevoked, format!("Ended every log-in of {}.", user.email))
        }
        AdminAction::ConfirmEmail => {
            if user.email_verified_at.is_some() {
                return Ok(Done::new(format!("The address {} was confirmed already.", user.email)));
            }
            tx.set_email_verified(id, now).await?;
            (AuditKind::EmailVerified, format!("Confirmed the address {}.", user.email))
        }
        AdminAction::ResetFactors => {
            tx.delete_all_passkeys(id).await?;
            tx.disable_totp(id).await?;
            tx.delete_recovery_codes(id).await?;
            tx.revoke_user_logins(id, now).await?;
            (
                AuditKind::TwoFactorReset,
                format!(
                    "Reset the second factors of {}: they log in with their password and set up a new one.",
                    user.email
                ),
            )
        }
        AdminAction::SendReset => {
            let mail = crate::server::mail::new_mail(state, "reset", Some(id), &user.email, meta);
            tx.enqueue_mail(&mail).await?;
            tx.note_mail_queued();
            (
                AuditKind::ResetMailSent,
                format!(
                    "Mailed a password-reset link to {}. It works once, for a limited time; using it ends every log-in{}.",
                    user.email,
                    if user.locked_at.is_some() { " and unlocks the account" } else { "" }
                ),
            )
        }
        AdminAction::Delete(_) => {
            if !crate::server::account::delete_account(state, &mut tx, &user, Some(admin.id), meta).await? {
                return Err(no_such_person());
            }
            audit::commit(state, tx).await?;
            return Ok(Done::new(format!(
                "Deleted the account of {}: its log-ins ended and its data is gone; its activity stays, without the name.",
                user.email
            )));
        }
        AdminAction::ForgetBrowsers => {
            let gone = crate::server::factors::remembered::forget_in(state, &mut tx, id, None, None).await?;
            if gone.is_empty() {
                return Ok(Done::new(format!("{} has no remembered browser.", user.email)));
            }
            (
                AuditKind::RememberedBrowsersForgotten,
                format!(
                    "Forgot {} remembered browser{} of {}: the log-ins they started ended, and a second factor is \
                     asked for at the next log-in.",
                    gone.len(),
                    if gone.len() == 1 { "" } else { "s" },
                    user.email
                ),
            )
        }
        AdminAction::AddGroup(group) => {
            if !tx.set_group(id, &group, true, state.now()).await? {
                return Ok(Done::new(format!("{} is in {group} already.", user.email)));
            }
            (AuditKind::GroupAdded, format!("Added {} to {group}.", user.email))
        }
        AdminAction::RemoveGroup(group) => {
            if group == state.admin_group && tx.other_admins(&group, id).await? == 0 {
                return Err(AppError::forbidden("This is the last administrator: name another one first."));
            }
            if !tx.set_group(id, &group, false, state.now()).await? {
                return Ok(Done::new(format!("{} was not in {group}.", user.email)));
            }
            (AuditKind::GroupRemoved, format!("Took {} out of {group}.", user.email))
        }
    };
    audit::record_by(state, &mut tx, Some(id), Some(admin.id), kind, meta).await?;
    audit::commit(state, tx).await?;
    tracing::info!(admin = admin.id, person = id, kind = kind.as_str(), "an administrator changed an account");
    Ok(Done::new(message))
}
