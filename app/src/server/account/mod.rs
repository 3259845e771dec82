//! Accounts: signing up (`register`), logging in with the password and
//! finishing with a second factor (`log_in`), changing the password
//! (`password`), the person's own activity (`activity`) and deleting an
//! account (`delete`). What the second factors are and when two-factor
//! protection is on lives in `factors`; what a log-in is once started
//! lives in `logins`.

mod activity;
mod delete;
mod log_in;
mod password;
mod register;

pub use activity::activity;
pub use delete::delete_account;
pub use log_in::{authenticate, log_in};
pub(crate) use log_in::{check_own_password, finish_second_factor, passwordless_session};
pub use password::change_password;
pub use register::{SIGNUP_CLOSED, check_invitation, operator_add_user, register, register_invited};

use crate::server::db::{SessionUser, UserRow};
use crate::server::request::RequestMeta;
use crate::server::state::AppState;
use crate::wire::{TwoFactorDue, User};

impl From<&crate::server::db::SessionUser> for User {
    fn from(user: &crate::server::db::SessionUser) -> Self {
        User {
            id: user.id,
            email: user.email.clone(),
            name: user.name.clone(),
            is_two_factor_authentication_enabled: user.totp_enabled,
            is_email_verified: user.email_verified,
            time_zone: None,
            two_factor_due: None,
            is_admin: false,
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
            time_zone: None,
            two_factor_due: None,
            is_admin: false,
        }
    }
}

/// What the pages say of a group's deadline for two factors while this
/// log-in has none: the days left, or that the apps now send it to turn
/// them on. `None`: no deadline, or two factors on this log-in.
pub fn two_factor_due(state: &AppState, user: &SessionUser) -> Option<TwoFactorDue> {
    let due = user.two_factor_due?;
    if user.amr.two_factor() {
        return None;
    }
    let now = state.now();
    let day = crate::server::time_zone::format_day(due - 1, user.time_zone.as_deref());
    Some(if due <= now {
        TwoFactorDue {
            message: format!(
                "Your administrator asked for two factors by {day}. Turn them on now: until you do, the apps \
                 behind this portal send you here."
            ),
            overdue: true,
        }
    } else {
        let left = (due - now + 86_399) / 86_400;
        let left = if left == 1 { "1 day left".to_owned() } else { format!("{left} days left") };
        TwoFactorDue {
            message: format!("Your administrator asks you to turn on two factors by {day}: {left}."),
            overdue: false,
        }
    })
}

/// How operator commands appear in the user's activity.
pub fn operator_meta() -> RequestMeta {
    RequestMeta { user_agent: Some("operator command".into()), ..Default::default() }
}
