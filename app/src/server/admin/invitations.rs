//! Invitations on the admin page: a single-use link that makes one account,
//! also while `SIGNUP=closed`, optionally bound to an address (then only
//! that address can be used) and into groups, working for 1 to 30 days. Its
//! link is either shown once to the administrator (to copy) or mailed
//! through the queue to the bound address (then using it proves the
//! address). Listed with what became of each, revocable until used.
//!
//! An invitation never makes an administrator: `ADMIN_GROUP` is refused
//! (a link can be forwarded; administrators are made one by one, from
//! their page, once they have an account).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::domain::Email;
use crate::error::{AppError, ErrorKind};
use crate::server::audit;
use crate::server::auth::FullSession;
use crate::server::crypto::{random_bytes, sha256_hex};
use crate::server::db::{InvitationRow, NewInvitation};
use crate::server::factors::proof::{Proof, fresh, prove};
use crate::server::mail::{self, MailKind};
use crate::server::request::RequestMeta;
use crate::server::state::AppState;
use crate::server::time_zone::format_time;
use crate::wire::admin::{INVITATION_DAYS, InvitationAction, InvitationLine, InvitationsView, valid_group};
use crate::wire::{AuditKind, Done, parse_email};

use super::{ASK_PROOF, require_admin};

/// Invitations listed, newest first.
const LISTED: i64 = 100;
/// Groups one invitation may give.
const MAX_GROUPS: usize = 20;

pub async fn list(state: &AppState, session: &FullSession) -> Result<InvitationsView, AppError> {
    let admin = require_admin(state, session).await?;
    let zone = admin.time_zone.as_deref();
    let now = state.now();
    let invitations = state.db.invitations(LISTED).await?.into_iter().map(|row| line(row, now, zone)).collect();
    let groups = state
        .db
        .group_counts()
        .await?
        .into_iter()
        .map(|(name, _, _)| name)
        .filter(|g| *g != state.admin_group)
        .collect();
    let note = if state.gate.signup_open {
        "Anyone may make an account here (SIGNUP=open); an invitation also puts it in groups, and a mailed one \
         confirms its address."
    } else {
        "Sign-up is closed here (SIGNUP=closed): an invitation's link is the only way to make an account on the \
         page."
    };
    Ok(InvitationsView { invitations, groups, note: note.into(), needs_proof: !fresh(state, session) })
}

fn line(row: InvitationRow, now: i64, zone: Option<&str>) -> InvitationLine {
    let when = |at: i64| format_time(at, zone);
    let who = match &row.email {
        Some(email) => format!("For {email}"),
        None => "For any address".to_owned(),
    };
    let (state, live) = match (row.used_at, row.revoked_at) {
        (Some(at), _) => {
            let by = row.used_by_email.as_deref().unwrap_or("an account deleted since");
            (format!("Used on {} by {by}", when(at)), false)
        }
        (None, Some(at)) => (format!("Revoked on {}", when(at)), false),
        (None, None) if row.expires_at <= now => (format!("Expired on {}", when(row.expires_at)), false),
        (None, None) => {
            let how = match (row.mailed == 1, row.has_link == 1) {
                (true, true) => "mailed",
                (true, false) => "waiting to be mailed",
                (false, _) => "link copied",
            };
            (format!("Works until {} · {how}", when(row.expires_at)), true)
        }
    };
    let by = row.created_by_email.as_deref().unwrap_or("the operator's command (or an account deleted since)");
    let mut made = format!("Made on {} by {by}", when(row.created_at));
    let groups: Vec<&str> = row.groups().collect();
    if !groups.is_empty() {
        made.push_str(&format!(" · into {}", groups.join(", ")));
    }
    InvitationLine { id: row.id, who, state, made, live }
}

/// A new invitation, checked: what `make` stores.
pub struct Invitation {
    pub email: Option<Email>,
    pub groups: Vec<String>,
    pub days: i64,
    pub mail: bool,
}

/// A stored invitation: its link when it is to be copied (`None`: it goes
/// by mail), and when it stops working.
pub struct Made {
    pub id: i64,
    pub link: Option<String>,
    pub expires_at: i64,
}

/// Checks what a new invitation asks for; nothing is written.
pub async fn check(
    state: &AppState,
    email: &str,
    groups: Vec<String>,
    days: i64,
    mail: bool,
) -> Result<Invitation, AppError> {
    let email = match email.trim() {
        "" => None,
        typed => Some(parse_email(typed)?),
    };
    let groups = checked_groups(state, groups)?;
    if !(1..=INVITATION_DAYS.1).contains(&days) {
        return Err(AppError::field("days", format!("An invitation works 1 to {} days.", INVITATION_DAYS.1)));
    }
    if mail && email.is_none() {
        return Err(AppError::field("email", "To mail the link, give the address it goes to."));
    }
    if let Some(email) = &email
        && state.db.user_by_email(email.as_str()).await?.is_some()
    {
        return Err(AppError::conflict(format!("There is an account with the address {email} already.")));
    }
    Ok(Invitation { email, groups, days, mail })
}

/// Stores a checked invitation made by `actor` (`None`: the operator's
/// command), with its message queued when it goes by mail, and the event,
/// in one transaction.
pub async fn make(state: &AppState, meta: &RequestMeta, actor: Option<i64>, new: Invitation) -> Result<Made, AppError> {
    let now = state.now();
    // A copied link exists at once; a mailed one is made as it is sent.
    let token = if new.mail { None } else { Some(URL_SAFE_NO_PAD.encode(random_bytes::<32>()?)) };
    let token_hash = token.as_deref().map(|t| sha256_hex(t.as_bytes()));
    let expires_at = now + new.days * 86_400;
    let joined = new.groups.join(",");
    let mut tx = state.db.begin().await?;
    let id = tx
        .insert_invitation(&NewInvitation {
            token_hash: token_hash.as_deref(),
            email: new.email.as_ref().map(|e| e.as_str()),
            group_names: &joined,
            mailed: new.mail,
            created_by: actor,
            created_at: now,
            expires_at,
        })
        .await?;
    if let (true, Some(email)) = (new.mail, &new.email) {
        let kind = MailKind::Invite(id).as_string();
        tx.enqueue_mail(&mail::new_mail(state, &kind, None, email.as_str(), meta)).await?;
        tx.note_mail_queued();
    }
    let about = new.email.as_ref().map_or("for any address", |e| e.as_str());
    audit::record_about(state, &mut tx, actor, AuditKind::InvitationMade, about, meta).await?;
    audit::commit(state, tx).await?;
    tracing::info!(invitation = id, "invitation made");
    let link = token.map(|token| format!("{}/signup?invite={token}", state.gate.public_url));
    Ok(Made { id, link, expires_at })
}

/// Revokes an invitation not yet used: the address it was for (`None`:
/// any), or 404.
pub async fn revoke(
    state: &AppState,
    meta: &RequestMeta,
    actor: Option<i64>,
    id: i64,
) -> Result<Option<String>, AppError> {
    let mut tx = state.db.begin().await?;
    let Some(email) = tx.revoke_invitation(id, state.now()).await? else {
        return Err(AppError::new(
            ErrorKind::NotFound,
            "There is no such invitation left to revoke: it was used or revoked already, or never existed.",
        ));
    };
    let about = email.as_deref().unwrap_or("for any address");
    audit::record_about(state, &mut tx, actor, AuditKind::InvitationRevoked, about, meta).await?;
    audit::commit(state, tx).await?;
    tracing::info!(invitation = id, "invitation revoked");
    Ok(email)
}

/// Makes or revokes an invitation, after the administrator's proof.
pub async fn change(
    state: &AppState,
    meta: &RequestMeta,
    session: &FullSession,
    action: InvitationAction,
    proof: Proof<'_>,
) -> Result<Done, AppError> {
    let admin = require_admin(state, session).await?;
    let zone = admin.time_zone.as_deref();
    match action {
        InvitationAction::Create { email, groups, days, mail } => {
            // Everything that needs no proof is checked first.
            let new = check(state, &email, groups, days, mail).await?;
            prove(state, meta, session, &admin, proof, ASK_PROOF).await?;
            let who = new.email.as_ref().map_or_else(|| "any address".to_owned(), |e| e.as_str().to_owned());
            let made = make(state, meta, Some(admin.id), new).await?;
            let until = format_time(made.expires_at, zone);
            Ok(match made.link {
                None => Done::new(format!("Invitation mailed to {who}; its link works once, until {until}.")),
                Some(link) => Done {
                    message: format!(
                        "Invitation made for {who}. Copy its link now: it is not shown again. It works once, \
                         until {until}."
                    ),
                    link,
                    secret: String::new(),
                },
            })
        }
        InvitationAction::Revoke { id } => {
            prove(state, meta, session, &admin, proof, ASK_PROOF).await?;
            let who = revoke(state, meta, Some(admin.id), id).await?.unwrap_or_else(|| "any address".to_owned());
            Ok(Done::new(format!("Revoked the invitation for {who}: its link does nothing now.")))
        }
    }
}

/// The groups of a new invitation: valid names, not the administrators',
/// each once.
fn checked_groups(state: &AppState, groups: Vec<String>) -> Result<Vec<String>, AppError> {
    let mut out: Vec<String> = Vec::new();
    for group in groups {
        if !valid_group(&group) {
            return Err(AppError::field("groups", "A group name is 1 to 64 letters, digits, '-', '_' or '.'."));
        }
        if group == state.admin_group {
            return Err(AppError::forbidden(format!(
                "An invitation cannot make an administrator: add people to {group} one by one, from their page."
            )));
        }
        if !out.contains(&group) {
            out.push(group);
        }
    }
    if out.len() > MAX_GROUPS {
        return Err(AppError::field("groups", format!("An invitation gives {MAX_GROUPS} groups at most.")));
    }
    Ok(out)
}
