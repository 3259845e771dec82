//! Groups on the admin page: each with its members and how many of them
//! have two factors on; made with a first member, renamed, deleted. A group
//! is its memberships (there is no group without a member). The
//! administrators' group (`ADMIN_GROUP`) is neither renamed nor deleted
//! here, and nobody joins it in bulk: people are added to it one by one.
//! Every change needs the same proof as the rest of the page, lands in one
//! transaction and is audited for each member with the administrator.

use crate::error::{AppError, ErrorKind};
use crate::server::audit;
use crate::server::auth::FullSession;
use crate::server::db::{DeadlineRow, UserRow};
use crate::server::factors::proof::{Proof, fresh, prove};
use crate::server::request::RequestMeta;
use crate::server::state::AppState;
use crate::server::time_zone::{end_of_day, format_day};
use crate::wire::admin::{GRACE_DAYS, GroupAction, GroupLine, GroupsView, valid_group};
use crate::wire::{AuditKind, Done};

use super::{ASK_PROOF, require_admin};

/// What names `group` besides its members: the gate's access rules, and
/// the apps limited to it. Renaming or deleting it leaves them naming
/// nothing.
async fn named_by(state: &AppState, group: &str) -> Result<Vec<String>, AppError> {
    let mut names = Vec::new();
    if state.gate.rules.name_group(group) {
        names.push("ACCESS_RULES".to_owned());
    }
    for client in state.db.oidc_clients().await? {
        if client.groups().any(|g| g == group) {
            names.push(format!("the app {}", client.name));
        }
    }
    Ok(names)
}

pub async fn list(state: &AppState, session: &FullSession) -> Result<GroupsView, AppError> {
    let admin = require_admin(state, session).await?;
    let zone = admin.time_zone.as_deref();
    let deadlines = state.db.deadlines().await?;
    let mut groups = Vec::new();
    for (name, members, two_factor) in state.db.group_counts().await? {
        let deadline = deadlines.iter().find(|d| d.name == name).map(|d| deadline_words(d, zone)).unwrap_or_default();
        groups.push(GroupLine { named_by: named_by(state, &name).await?, name, members, two_factor, deadline });
    }
    Ok(GroupsView { groups, admin_group: state.admin_group.clone(), needs_proof: !fresh(state, session) })
}

/// "Two factors by 20 Jan 2027 (14 days for those who join later)".
fn deadline_words(d: &DeadlineRow, zone: Option<&str>) -> String {
    let day = format_day(d.due_at - 1, zone);
    let grace = if d.grace_days == 1 { "1 day".to_owned() } else { format!("{} days", d.grace_days) };
    format!("Two factors by {day} ({grace} for those who join later)")
}

fn bad_name() -> AppError {
    AppError::bad_request("A group name is 1 to 64 letters, digits, '-', '_' or '.'.")
}

/// Makes, renames or deletes a group, after the administrator's proof.
pub async fn change(
    state: &AppState,
    meta: &RequestMeta,
    session: &FullSession,
    action: GroupAction,
    proof: Proof<'_>,
) -> Result<Done, AppError> {
    let admin = require_admin(state, session).await?;
    let admins = state.admin_group.as_str();
    // Refusals that need no proof come first.
    match &action {
        GroupAction::Create { name, .. } if !valid_group(name) => return Err(bad_name()),
        GroupAction::Rename { from, to } if !valid_group(from) || !valid_group(to) => return Err(bad_name()),
        GroupAction::Delete { name } | GroupAction::Deadline { name, .. } | GroupAction::NoDeadline { name }
            if !valid_group(name) =>
        {
            return Err(bad_name());
        }
        GroupAction::Deadline { grace_days, .. } if !(0..=GRACE_DAYS.1).contains(grace_days) => {
            return Err(AppError::bad_request(format!(
                "Someone who joins later gets 0 to {} days to turn two factors on.",
                GRACE_DAYS.1
            )));
        }
        GroupAction::Create { name, .. } | GroupAction::Rename { to: name, .. } if name == admins => {
            return Err(AppError::forbidden(format!(
                "Members of {admins} are administrators: add people to it one by one, from their page."
            )));
        }
        GroupAction::Rename { from: name, .. } | GroupAction::Delete { name } if name == admins => {
            return Err(AppError::forbidden(format!(
                "{admins} is the administrators' group (ADMIN_GROUP): it is renamed there, and cannot be deleted."
            )));
        }
        GroupAction::Rename { from, to } if from == to => {
            return Err(AppError::bad_request("The new name is the same as the old one."));
        }
        _ => {}
    }
    // What the change needs from the database, read before the proof is
    // spent and outside the transaction: the first member of a new group,
    // and (for the message) what still names a group about to go.
    let change = match action {
        GroupAction::Create { name, member } => {
            let email = member.trim().to_lowercase();
            let member = state.db.user_by_email(&email).await?.ok_or_else(|| {
                AppError::new(ErrorKind::NotFound, format!("There is no account with the address {email}."))
            })?;
            Change::Create { name, member }
        }
        GroupAction::Rename { from, to } => Change::Rename { from, to },
        GroupAction::Delete { name } => Change::Delete { named: named_by(state, &name).await?, name },
        GroupAction::Deadline { name, by, grace_days } => {
            let zone = admin.time_zone.as_deref();
            let due_at = end_of_day(&by, zone)
                .ok_or_else(|| AppError::bad_request("The date must be written YYYY-MM-DD, like 2027-01-31."))?;
            // Today is the earliest: "by the end of today".
            if due_at <= state.now() {
                return Err(AppError::bad_request("That date has passed: pick today or a later one."));
            }
            Change::Deadline { name, due_at, grace_days }
        }
        GroupAction::NoDeadline { name } => Change::NoDeadline { name },
    };
    prove(state, meta, session, &admin, proof, ASK_PROOF).await?;
    let mut tx = state.db.begin().await?;
    let message = match change {
        Change::Create { name, member } => {
            if !tx.group_members(&name).await?.is_empty() {
                return Err(AppError::conflict(format!("There is a group called {name} already.")));
            }
            tx.set_group(member.id, &name, true, state.now()).await?;
            audit::record_by(state, &mut tx, Some(member.id), Some(admin.id), AuditKind::GroupAdded, meta).await?;
            format!("Made the group {name} with {} in it.", member.email)
        }
        Change::Rename { from, to } => {
            if !tx.group_members(&to).await?.is_empty() {
                return Err(AppError::conflict(format!("There is a group called {to} already: pick another name.")));
            }
            let members = tx.rename_group(&from, &to).await?;
            if members.is_empty() {
                return Err(AppError::new(ErrorKind::NotFound, format!("There is no group called {from}.")));
            }
            let apps = tx.rename_group_of_apps(&from, &to).await?;
            tx.rename_group_of_invitations(&from, Some(&to)).await?;
            tx.move_deadline(&from, Some(&to)).await?;
            for id in &members {
                audit::record_by(state, &mut tx, Some(*id), Some(admin.id), AuditKind::GroupRenamed, meta).await?;
            }
            let mut said = format!("Renamed {from} to {to} ({} {}).", members.len(), people(members.len()));
            if apps > 0 {
                said.push_str(&format!(" Apps limited to {from} now say {to}."));
            }
            if state.gate.rules.name_group(&from) {
                said.push_str(&format!(" ACCESS_RULES still name {from}: change them to {to} too."));
            }
            said
        }
        Change::Deadline { name, due_at, grace_days } => {
            let members = tx.group_members(&name).await?;
            if members.is_empty() {
                return Err(AppError::new(ErrorKind::NotFound, format!("There is no group called {name}.")));
            }
            tx.set_deadline(&name, due_at, grace_days, admin.id, state.now()).await?;
            // What the gate and the sessions keep of them is read again.
            tx.members_changed(members.iter().map(|id| (*id,)).collect()).await?;
            for id in &members {
                audit::record_by(state, &mut tx, Some(*id), Some(admin.id), AuditKind::DeadlineSet, meta).await?;
            }
            let words =
                deadline_words(&DeadlineRow { name: name.clone(), due_at, grace_days }, admin.time_zone.as_deref());
            format!("{name}: {words}. Its members see the days left; after it, the apps send them to turn them on.")
        }
        Change::NoDeadline { name } => {
            if !tx.clear_deadline(&name).await? {
                return Err(AppError::new(ErrorKind::NotFound, format!("{name} has no deadline for two factors.")));
            }
            let members = tx.group_members(&name).await?;
            tx.members_changed(members.iter().map(|id| (*id,)).collect()).await?;
            for id in &members {
                audit::record_by(state, &mut tx, Some(*id), Some(admin.id), AuditKind::DeadlineCleared, meta).await?;
            }
            format!("{name} has no deadline for two factors any more.")
        }
        Change::Delete { name, named } => {
            let members = tx.delete_group(&name).await?;
            tx.move_deadline(&name, None).await?;
            if members.is_empty() {
                return Err(AppError::new(ErrorKind::NotFound, format!("There is no group called {name}.")));
            }
            // Invitations not yet used no longer put anyone in it.
            tx.rename_group_of_invitations(&name, None).await?;
            for id in &members {
                audit::record_by(state, &mut tx, Some(*id), Some(admin.id), AuditKind::GroupRemoved, meta).await?;
            }
            let mut said = format!("Deleted {name}: {} {} left it.", members.len(), people(members.len()));
            if !named.is_empty() {
                said.push_str(&format!(" {} still name it: nobody passes them by it now.", named.join(" and ")));
            }
            said
        }
    };
    audit::commit(state, tx).await?;
    tracing::info!(admin = admin.id, "an administrator changed a group");
    Ok(Done::new(message))
}

/// A group change with what it needs read already.
enum Change {
    Create { name: String, member: UserRow },
    Rename { from: String, to: String },
    Delete { name: String, named: Vec<String> },
    Deadline { name: String, due_at: i64, grace_days: i64 },
    NoDeadline { name: String },
}

fn people(n: usize) -> &'static str {
    if n == 1 { "person" } else { "people" }
}
