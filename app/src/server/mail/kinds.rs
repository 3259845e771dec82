//! What mail is sent: the kinds a queued row names (`MailKind`, stored as
//! text and parsed back), the security notices and their words, and what
//! a link token is for (`Purpose`).

use crate::wire::AuditKind;

/// What a link token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Reset,
    Verify,
    Lockdown,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Reset => "reset",
            Purpose::Verify => "verify",
            Purpose::Lockdown => "lockdown",
        }
    }
}

/// A security notice: something changed on the account, or happened to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    TwoFactorOn,
    TwoFactorOff,
    TwoFactorKeyReplaced,
    RecoveryCodeUsed,
    RecoveryCodesRegenerated,
    PasswordChanged,
    PasswordReset,
    PasskeyAdded,
    PasskeyRemoved,
    RefreshReuse,
    NewBrowser,
    /// An administrator (the admin page or `server user reset-2fa`) reset
    /// the second factors.
    TwoFactorReset,
    /// An administrator locked the account: said, without a "This wasn't
    /// me" link (it is locked already).
    LockedByAdmin,
}

impl Notice {
    const ALL: [Notice; 13] = [
        Notice::TwoFactorOn,
        Notice::TwoFactorOff,
        Notice::TwoFactorKeyReplaced,
        Notice::RecoveryCodeUsed,
        Notice::RecoveryCodesRegenerated,
        Notice::PasswordChanged,
        Notice::PasswordReset,
        Notice::PasskeyAdded,
        Notice::PasskeyRemoved,
        Notice::RefreshReuse,
        Notice::NewBrowser,
        Notice::TwoFactorReset,
        Notice::LockedByAdmin,
    ];

    /// The notice an audited event sends, if any.
    pub fn for_event(kind: AuditKind) -> Option<Notice> {
        Some(match kind {
            AuditKind::TwoFactorOn => Notice::TwoFactorOn,
            AuditKind::TwoFactorOff => Notice::TwoFactorOff,
            AuditKind::TwoFactorKeyReplaced => Notice::TwoFactorKeyReplaced,
            AuditKind::RecoveryCodeUsed => Notice::RecoveryCodeUsed,
            AuditKind::RecoveryCodesRegenerated => Notice::RecoveryCodesRegenerated,
            AuditKind::PasswordChanged => Notice::PasswordChanged,
            AuditKind::PasswordReset => Notice::PasswordReset,
            AuditKind::PasskeyAdded => Notice::PasskeyAdded,
            AuditKind::PasskeyRemoved => Notice::PasskeyRemoved,
            AuditKind::RefreshReuseDetected => Notice::RefreshReuse,
            AuditKind::TwoFactorReset => Notice::TwoFactorReset,
            AuditKind::LockedByAdmin => Notice::LockedByAdmin,
            _ => return None,
        })
    }

    /// The audited event a notice reports (a new browser's notice goes
    /// with its log-in).
    pub fn audit_kind(self) -> AuditKind {
        match self {
            Notice::TwoFactorOn => AuditKind::TwoFactorOn,
            Notice::TwoFactorOff => AuditKind::TwoFactorOff,
            Notice::TwoFactorKeyReplaced => AuditKind::TwoFactorKeyReplaced,
            Notice::RecoveryCodeUsed => AuditKind::RecoveryCodeUsed,
            Notice::RecoveryCodesRegenerated => AuditKind::RecoveryCodesRegenerated,
            Notice::PasswordChanged => AuditKind::PasswordChanged,
            Notice::PasswordReset => AuditKind::PasswordReset,
            Notice::PasskeyAdded => AuditKind::PasskeyAdded,
            Notice::PasskeyRemoved => AuditKind::PasskeyRemoved,
            Notice::RefreshReuse => AuditKind::RefreshReuseDetected,
            Notice::NewBrowser => AuditKind::LogInOk,
            Notice::TwoFactorReset => AuditKind::TwoFactorReset,
            Notice::LockedByAdmin => AuditKind::LockedByAdmin,
        }
    }

    /// What the notice reported, as a phrase ("the notice about …"): the
    /// "locked" mail and the security page name what set a lockdown off.
    pub fn reported(self) -> &'static str {
        match self {
            Notice::TwoFactorOn => "two-factor authentication being turned on",
            Notice::TwoFactorOff => "two-factor authentication being turned off",
            Notice::TwoFactorKeyReplaced => "two-factor authentication moving to a new phone",
            Notice::RecoveryCodeUsed => "a recovery code being used",
            Notice::RecoveryCodesRegenerated => "new recovery codes being made",
            Notice::PasswordChanged => "a password change",
            Notice::PasswordReset => "a password reset",
            Notice::PasskeyAdded => "a passkey being added",
            Notice::PasskeyRemoved => "a passkey being removed",
            Notice::RefreshReuse => "a stolen session",
            Notice::NewBrowser => "a log-in from a new browser",
            Notice::TwoFactorReset => "two-factor authentication being reset by an administrator",
            Notice::LockedByAdmin => "an administrator locking the account",
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Notice::TwoFactorOn => "two_factor_on",
            Notice::TwoFactorOff => "two_factor_off",
            Notice::TwoFactorKeyReplaced => "two_factor_key_replaced",
            Notice::RecoveryCodeUsed => "recovery_code_used",
            Notice::RecoveryCodesRegenerated => "recovery_codes_regenerated",
            Notice::PasswordChanged => "password_changed",
            Notice::PasswordReset => "password_reset",
            Notice::PasskeyAdded => "passkey_added",
            Notice::PasskeyRemoved => "passkey_removed",
            Notice::RefreshReuse => "refresh_reuse_detected",
            Notice::NewBrowser => "new_browser",
            Notice::TwoFactorReset => "two_factor_reset",
            Notice::LockedByAdmin => "locked_by_admin",
        }
    }

    /// (subject, what happened) in the owner's words.
    pub(super) fn words(self) -> (&'static str, &'static str) {
        match self {
            Notice::TwoFactorOn => {
                ("Two-factor authentication was turned on", "Two-factor authentication was turned on for your account.")
            }
            Notice::TwoFactorOff => (
                "Two-factor authentication was turned off",
                "Two-factor authentication was turned off for your account. Logging in now needs only the password.",
            ),
            Notice::TwoFactorKeyReplaced => (
                "Two-factor authentication moved to a new phone",
                "A new authenticator app (a new phone) now makes the codes for your account; codes from the old one \
                 no longer work. Your recovery codes are unchanged.",
            ),
            Notice::RecoveryCodeUsed => {
                ("A recovery code was used", "One of your recovery codes was used to log in. It cannot be used again.")
            }
            Notice::RecoveryCodesRegenerated => (
                "New recovery codes were made",
                "New recovery codes were made for your account; the old ones no longer work.",
            ),
            Notice::PasswordChanged => ("Your password was changed", "The password of your account was changed."),
            Notice::PasswordReset => (
                "Your password was reset",
                "The password of your account was reset through a link we emailed, and every session was ended.",
            ),
            Notice::PasskeyAdded => ("A passkey was added", "A passkey or security key was added to your account."),
            Notice::PasskeyRemoved => {
                ("A passkey was removed", "A passkey or security key was removed from your account.")
            }
            Notice::RefreshReuse => (
                "A stolen session was stopped",
                "A copy of one of your sessions was used after the session had moved on, so we ended that session. \
                 Someone may have copied it from one of your browsers.",
            ),
            Notice::NewBrowser => (
                "New log-in from a browser we have not seen",
                "Someone logged in to your account from a browser that had not logged in to it before.",
            ),
            Notice::TwoFactorReset => (
                "An administrator reset your two-factor authentication",
                "An administrator removed your authenticator app, passkeys and recovery codes, and ended every \
                 session. Logging in now needs only the password: log in and set up two-factor authentication again.",
            ),
            Notice::LockedByAdmin => (
                "An administrator locked your account",
                "An administrator locked your account and ended every session, on every device and on the apps \
                 behind this portal. Nobody can log in to it until it is unlocked.",
            ),
        }
    }
}

/// What a queued row asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailKind {
    /// A password-reset link, asked for by address (which may have no account).
    Reset,
    /// The link that proves the email address.
    Verify,
    /// After a lockdown: what happened, and a link to set a new password.
    Locked,
    /// A security notice with its "This wasn't me" link.
    Notice(Notice),
    /// The operator's test message.
    Test,
    /// An invitation's link (the invitation's id): made as it is sent.
    Invite(i64),
}

impl MailKind {
    pub fn as_string(self) -> String {
        match self {
            MailKind::Reset => "reset".into(),
            MailKind::Verify => "verify".into(),
            MailKind::Locked => "locked".into(),
            MailKind::Test => "test".into(),
            MailKind::Notice(n) => format!("notice:{}", n.as_str()),
            MailKind::Invite(id) => format!("invite:{id}"),
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "reset" => MailKind::Reset,
            "verify" => MailKind::Verify,
            "locked" => MailKind::Locked,
            "test" => MailKind::Test,
            _ if s.starts_with("invite:") => MailKind::Invite(s["invite:".len()..].parse().ok()?),
            _ => {
                let name = s.strip_prefix("notice:")?;
                MailKind::Notice(Notice::ALL.into_iter().find(|n| n.as_str() == name)?)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for kind in [MailKind::Reset, MailKind::Verify, MailKind::Locked, MailKind::Test]
            .into_iter()
            .chain(Notice::ALL.into_iter().map(MailKind::Notice))
        {
            assert_eq!(MailKind::parse(&kind.as_string()), Some(kind));
        }
        assert_eq!(MailKind::parse("notice:nothing"), None);
    }

    #[test]
    fn each_notice_reports_the_event_that_sends_it() {
        for notice in Notice::ALL {
            if notice != Notice::NewBrowser {
                assert_eq!(Notice::for_event(notice.audit_kind()), Some(notice));
            }
        }
    }
}
