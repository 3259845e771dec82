//! The wire types of the HTTP API: the response bodies every endpoint
//! answers with, and the parsers that turn request fields into domain types
//! with per-field errors. The server functions (`api`), the service layer
//! and the pages all use these; none of them owns them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::{Email, Password, PersonName, RecoveryCode, SecondFactor, TotpCode};
use crate::error::AppError;

/// The user as every endpoint returns it. The TOTP secret is not a field,
/// so no response can carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub is_two_factor_authentication_enabled: bool,
    /// The email address was proved by its link.
    #[serde(default)]
    pub is_email_verified: bool,
    /// The person's IANA time zone, once their browser has reported it
    /// (POST /api/account/time-zone); only GET /api/authentication says it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// A group's deadline for two factors, while they are off (only GET
    /// /api/authentication says it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub two_factor_due: Option<TwoFactorDue>,
    /// The admin page is open to them (GET /api/authentication only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_admin: bool,
}

/// A deadline for two factors, in the server's words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TwoFactorDue {
    /// "Your administrator asks you to turn on two factors by 20 Jan 2027:
    /// 6 days left."
    pub message: String,
    /// It has passed: the apps send this log-in to turn them on.
    pub overdue: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogInResponse {
    pub user: User,
    pub two_factor_required: bool,
    /// The account has a passkey to offer at the second step.
    #[serde(default)]
    pub passkey: bool,
    /// This browser is remembered: the second factor was not asked for.
    #[serde(default)]
    pub remembered: bool,
}

/// A pending secret: base32 for manual entry and the URI for the QR code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateResponse {
    pub secret: String,
    pub otpauth_url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {
    pub message: String,
    /// A link shown once with the message (a new invitation's).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub link: String,
    /// A secret shown once with the message (a new app's).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret: String,
}

impl Done {
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into(), link: String::new(), secret: String::new() }
    }
}

/// Turning 2FA on: the user and 10 single-use recovery codes, shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnOnResponse {
    pub user: User,
    /// Empty when a new key replaced the app's old one: the codes the
    /// person has keep working.
    pub recovery_codes: Vec<String>,
    /// A new key replaced the old one (2FA was on already).
    #[serde(default)]
    pub replaced: bool,
}

/// A passkey's answer to a `proof` ceremony (POST /api/webauthn/proof/start),
/// sent with the change it proves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PasskeyAnswer {
    pub ceremony: String,
    pub credential: serde_json::Value,
}

/// What a mailed link can still do, read without using it (opening a link
/// changes nothing; its page asks first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkCheck {
    /// Unused and unexpired: the page offers its button.
    pub live: bool,
    /// Used already, and what it did is still true (the address is
    /// confirmed, the account is locked, the password was set).
    pub done: bool,
    /// What is true, for a link that is not live.
    pub message: String,
    /// Where to go next, for a link that is not live: a new link, or log in.
    pub next: String,
    /// The words on that button.
    pub next_label: String,
    /// A live invitation's address, when it is bound to one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub email: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryCodesResponse {
    pub recovery_codes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TwoFactorStatus {
    /// An authenticator app is set up.
    pub enabled: bool,
    pub recovery_codes_left: i64,
    /// Passkeys and security keys registered.
    #[serde(default)]
    pub passkeys: i64,
    /// This log-in is recent enough (5 minutes) to stand in for the
    /// password before a change (the pages then ask for none).
    #[serde(default)]
    pub recent_log_in: bool,
    /// A remembered browser stood in for this log-in's second factor and
    /// none was shown since: changes to the protection want one shown.
    #[serde(default)]
    pub remembered_only: bool,
}

/// A passkey or security key as the security page lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PasskeyView {
    pub id: String,
    pub name: String,
    /// Unix seconds.
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    /// The authenticator may sync it to other devices (backup eligible).
    pub syncable: bool,
    /// It is backed up (synced) now, as last reported.
    pub synced: bool,
}

/// GET /api/webauthn/passkeys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PasskeyList {
    pub passkeys: Vec<PasskeyView>,
    /// Whether this server can register passkeys (it is reached by a
    /// domain name: `PUBLIC_URL`).
    pub available: bool,
}

/// One of the person's live log-ins (GET /api/authentication/log-ins).
/// `id` is a handle to end it by, derived one way from the log-in: never
/// the log-in's own id, which names its tokens inside the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogInView {
    pub id: String,
    /// Fixed words read from the User-Agent ("Firefox on Windows"), never
    /// the string itself.
    pub browser: String,
    /// The address it logged in from, as stored.
    pub ip: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds: the log-in's start or its latest refresh.
    pub last_seen_at: i64,
    /// `created_at` in the person's time zone with its abbreviation ("6 Dec
    /// 2026, 14:02 CET"), or in UTC, said as such (as `ActivityEvent::when`).
    #[serde(default)]
    pub created_when: String,
    /// `last_seen_at`, written the same way.
    #[serde(default)]
    pub last_seen_when: String,
    /// The log-in of the browser asking.
    pub current: bool,
    /// How it was reached (RFC 8176 names: `pwd`, `otp`, `rec`, `hwk`).
    pub amr: Vec<String>,
    /// The same in words: "the password and a code from the app".
    #[serde(default)]
    pub reached: String,
}

/// A browser that skips the second factor (see "Don't ask again on this
/// browser"), as its owner's list shows it. Named by `id`, a random handle
/// that can do nothing but forget it; the browser's secret never leaves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RememberedBrowserView {
    pub id: String,
    /// Fixed words read from the User-Agent ("Firefox on Windows").
    pub browser: String,
    /// The address it was remembered from.
    pub ip: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds: when it last stood in for the second factor.
    pub last_used_at: i64,
    /// Unix seconds: when it stops counting.
    pub expires_at: i64,
    /// The three times in the person's time zone (as `LogInView`).
    #[serde(default)]
    pub created_when: String,
    #[serde(default)]
    pub last_used_when: String,
    #[serde(default)]
    pub expires_when: String,
    /// The browser asking.
    pub current: bool,
}

/// Kinds of security events in the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    LogInOk,
    LogInFailed,
    CodeFailed,
    Throttled,
    TwoFactorOn,
    TwoFactorOff,
    RecoveryCodeUsed,
    RecoveryCodesRegenerated,
    RefreshReuseDetected,
    PasswordChanged,
    SessionsRevoked,
    TwoFactorReset,
    CodesLocked,
    PasskeyAdded,
    PasskeyRemoved,
    PasskeyUsed,
    PasskeyRefused,
    PasswordReset,
    LockedDown,
    EmailVerified,
    /// A code typed while setting up the app was not accepted: a step of
    /// the set-up, not an attack (counted under the same limits).
    SetupCodeFailed,
    /// The authenticator app's key was replaced by a new one (a new
    /// phone): sessions and recovery codes unchanged.
    TwoFactorKeyReplaced,
    /// One log-in ended from the security page's list (log-out per device).
    LogInEnded,
    /// An app's access taken back from the security page (Connected apps).
    AppAccessRevoked,
    /// An administrator added the account to a group (admin page).
    GroupAdded,
    /// An administrator took the account out of a group.
    GroupRemoved,
    /// An administrator locked the account (every log-in ended).
    LockedByAdmin,
    /// An administrator unlocked the account.
    Unlocked,
    /// An administrator sent the account a password-reset link.
    ResetMailSent,
    /// An administrator deleted an account (the event names nobody).
    AccountDeleted,
    /// An administrator renamed a group the account is in.
    GroupRenamed,
    /// An administrator made an invitation (the event names them only).
    InvitationMade,
    /// An administrator revoked an invitation.
    InvitationRevoked,
    /// The account was made with an invitation (the event names who made it).
    InvitationUsed,
    /// An administrator set a deadline for two factors on a group of theirs.
    DeadlineSet,
    /// An administrator removed a group's deadline for two factors.
    DeadlineCleared,
    /// An OpenID app registered (the admin page or `server oidc client
    /// add`); the event's detail names it.
    AppAdded,
    /// An app's settings changed.
    AppChanged,
    /// An app's secret replaced, or its previous secret retired.
    AppSecretChanged,
    /// An app removed: every sign-in and token it held ended.
    AppRemoved,
    /// The second factor is not asked for again on this browser (the code
    /// step's "Don't ask again").
    BrowserRemembered,
    /// Remembered browsers forgotten: one, or all of them.
    RememberedBrowsersForgotten,
    /// A second factor shown again in a live log-in (step-up: an app or a
    /// change wanted one shown now).
    SecondFactorShown,
}

impl AuditKind {
    const ALL: [AuditKind; 43] = [
        AuditKind::LogInOk,
        AuditKind::LogInFailed,
        AuditKind::CodeFailed,
        AuditKind::Throttled,
        AuditKind::TwoFactorOn,
        AuditKind::TwoFactorOff,
        AuditKind::RecoveryCodeUsed,
        AuditKind::RecoveryCodesRegenerated,
        AuditKind::RefreshReuseDetected,
        AuditKind::PasswordChanged,
        AuditKind::SessionsRevoked,
        AuditKind::TwoFactorReset,
        AuditKind::CodesLocked,
        AuditKind::PasskeyAdded,
        AuditKind::PasskeyRemoved,
        AuditKind::PasskeyUsed,
        AuditKind::PasskeyRefused,
        AuditKind::PasswordReset,
        AuditKind::LockedDown,
        AuditKind::EmailVerified,
        AuditKind::SetupCodeFailed,
        AuditKind::TwoFactorKeyReplaced,
        AuditKind::LogInEnded,
        AuditKind::AppAccessRevoked,
        AuditKind::GroupAdded,
        AuditKind::GroupRemoved,
        AuditKind::LockedByAdmin,
        AuditKind::Unlocked,
        AuditKind::ResetMailSent,
        AuditKind::AccountDeleted,
        AuditKind::GroupRenamed,
        AuditKind::InvitationMade,
        AuditKind::InvitationRevoked,
        AuditKind::InvitationUsed,
        AuditKind::DeadlineSet,
        AuditKind::DeadlineCleared,
        AuditKind::AppAdded,
        AuditKind::AppChanged,
        AuditKind::AppSecretChanged,
        AuditKind::AppRemoved,
        AuditKind::BrowserRemembered,
        AuditKind::RememberedBrowsersForgotten,
        AuditKind::SecondFactorShown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::LogInOk => "log_in_ok",
            AuditKind::LogInFailed => "log_in_failed",
            AuditKind::CodeFailed => "code_failed",
            AuditKind::Throttled => "throttled",
            AuditKind::TwoFactorOn => "two_factor_on",
            AuditKind::TwoFactorOff => "two_factor_off",
            AuditKind::RecoveryCodeUsed => "recovery_code_used",
            AuditKind::RecoveryCodesRegenerated => "recovery_codes_regenerated",
            AuditKind::RefreshReuseDetected => "refresh_reuse_detected",
            AuditKind::PasswordChanged => "password_changed",
            AuditKind::SessionsRevoked => "sessions_revoked",
            AuditKind::TwoFactorReset => "two_factor_reset",
            AuditKind::CodesLocked => "codes_locked",
            AuditKind::PasskeyAdded => "passkey_added",
            AuditKind::PasskeyRemoved => "passkey_removed",
            AuditKind::PasskeyUsed => "passkey_used",
            AuditKind::PasskeyRefused => "passkey_refused",
            AuditKind::PasswordReset => "password_reset",
            AuditKind::LockedDown => "locked_down",
            AuditKind::EmailVerified => "email_verified",
            AuditKind::SetupCodeFailed => "setup_code_failed",
            AuditKind::TwoFactorKeyReplaced => "two_factor_key_replaced",
            AuditKind::LogInEnded => "log_in_ended",
            AuditKind::AppAccessRevoked => "app_access_revoked",
            AuditKind::GroupAdded => "group_added",
            AuditKind::GroupRemoved => "group_removed",
            AuditKind::LockedByAdmin => "locked_by_admin",
            AuditKind::Unlocked => "unlocked",
            AuditKind::ResetMailSent => "reset_mail_sent",
            AuditKind::AccountDeleted => "account_deleted",
            AuditKind::GroupRenamed => "group_renamed",
            AuditKind::InvitationMade => "invitation_made",
            AuditKind::InvitationRevoked => "invitation_revoked",
            AuditKind::InvitationUsed => "invitation_used",
            AuditKind::DeadlineSet => "deadline_set",
            AuditKind::DeadlineCleared => "deadline_cleared",
            AuditKind::AppAdded => "app_added",
            AuditKind::AppChanged => "app_changed",
            AuditKind::AppSecretChanged => "app_secret_changed",
            AuditKind::AppRemoved => "app_removed",
            AuditKind::BrowserRemembered => "browser_remembered",
            AuditKind::RememberedBrowsersForgotten => "remembered_browsers_forgotten",
            AuditKind::SecondFactorShown => "second_factor_shown",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Every kind, in the order they were added.
    pub fn all() -> &'static [AuditKind] {
        &Self::ALL
    }

    /// How the security page names the event.
    #[cfg(feature = "ssr")]
    pub fn label(self) -> &'static str {
        match self {
            AuditKind::LogInOk => "Logged in",
            AuditKind::LogInFailed => "Failed log-in (wrong password)",
            AuditKind::CodeFailed => "Wrong two-factor code",
            AuditKind::Throttled => "Too many attempts: slowed down",
            AuditKind::TwoFactorOn => "Two-factor authentication turned on",
            AuditKind::TwoFactorOff => "Two-factor authentication turned off",
            AuditKind::RecoveryCodeUsed => "Recovery code used",
            AuditKind::RecoveryCodesRegenerated => "New recovery codes made",
            AuditKind::RefreshReuseDetected => "Stolen session detected and ended",
            AuditKind::PasswordChanged => "Password changed",
            AuditKind::SessionsRevoked => "Logged out everywhere",
            AuditKind::TwoFactorReset => "Two-factor authentication reset by an administrator",
            AuditKind::CodesLocked => "100 wrong codes in a row: codes locked until a recovery code is used",
            AuditKind::PasskeyAdded => "Passkey added",
            AuditKind::PasskeyRemoved => "Passkey removed",
            AuditKind::PasskeyUsed => "Logged in with a passkey",
            AuditKind::PasskeyRefused => "Passkey refused",
            AuditKind::PasswordReset => "Password reset through an email link",
            AuditKind::LockedDown => "Account locked from a notice's \"This wasn't me\" link: every session ended",
            AuditKind::EmailVerified => "Email address confirmed",
            AuditKind::SetupCodeFailed => "A code typed during set-up was not accepted",
            AuditKind::TwoFactorKeyReplaced => "Authenticator app moved to a new phone (the old one stopped working)",
            AuditKind::LogInEnded => "Logged out one device",
            AuditKind::AppAccessRevoked => "Took back an app's access (Connected apps)",
            AuditKind::GroupAdded => "Added to a group by an administrator",
            AuditKind::GroupRemoved => "Taken out of a group by an administrator",
            AuditKind::LockedByAdmin => "Locked by an administrator",
            AuditKind::Unlocked => "Unlocked by an administrator",
            AuditKind::ResetMailSent => "Password-reset link mailed by an administrator",
            AuditKind::AccountDeleted => "Account deleted by an administrator",
            AuditKind::GroupRenamed => "A group of theirs renamed by an administrator",
            AuditKind::InvitationMade => "Invitation made",
            AuditKind::InvitationRevoked => "Invitation revoked",
            AuditKind::InvitationUsed => "Account made with an administrator's invitation",
            AuditKind::DeadlineSet => "A deadline for two factors set on a group of theirs by an administrator",
            AuditKind::DeadlineCleared => "A group's deadline for two factors removed by an administrator",
            AuditKind::AppAdded => "App added",
            AuditKind::AppChanged => "App changed",
            AuditKind::AppSecretChanged => "App secret changed",
            AuditKind::AppRemoved => "App removed",
            AuditKind::BrowserRemembered => "Browser remembered",
            AuditKind::RememberedBrowsersForgotten => "Remembered browsers forgotten",
            AuditKind::SecondFactorShown => "Second factor shown again",
        }
    }

    /// Changes to how the account is protected: listed apart on the
    /// security page.
    pub fn changes() -> &'static [AuditKind] {
        &[
            AuditKind::TwoFactorOn,
            AuditKind::TwoFactorOff,
            AuditKind::TwoFactorKeyReplaced,
            AuditKind::RecoveryCodesRegenerated,
            AuditKind::PasswordChanged,
            AuditKind::SessionsRevoked,
            AuditKind::LogInEnded,
            AuditKind::AppAccessRevoked,
            AuditKind::TwoFactorReset,
            AuditKind::RefreshReuseDetected,
            AuditKind::CodesLocked,
            AuditKind::PasskeyAdded,
            AuditKind::PasskeyRemoved,
            AuditKind::PasswordReset,
            AuditKind::LockedDown,
            AuditKind::BrowserRemembered,
            AuditKind::RememberedBrowsersForgotten,
        ]
    }

    /// Events worth a warning colour on the security page.
    pub fn is_warning(self) -> bool {
        matches!(
            self,
            AuditKind::LogInFailed
                | AuditKind::CodeFailed
                | AuditKind::Throttled
                | AuditKind::RefreshReuseDetected
                | AuditKind::TwoFactorReset
                | AuditKind::CodesLocked
                | AuditKind::PasskeyRefused
                | AuditKind::LockedDown
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivityEvent {
    /// The `AuditKind` as its name (`log_in_ok`): a string here, so the
    /// browser's code carries no list of every kind.
    pub kind: String,
    /// Worth a warning colour (`AuditKind::is_warning`).
    #[serde(default)]
    pub warning: bool,
    /// The event in words, as the page shows it (the server's: the words
    /// are not shipped in the browser's code).
    #[serde(default)]
    pub label: String,
    /// Unix seconds.
    pub at: i64,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// `at` in the person's time zone with its abbreviation ("6 Dec 2026,
    /// 14:02 CET"), or in UTC, said as such, while no zone is known.
    #[serde(default)]
    pub when: String,
    /// On a lockdown: the event its notice reported, which set it off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub about: Option<LockdownAbout>,
    /// This event is the one a lockdown's notice reported.
    #[serde(default)]
    pub set_off_lockdown: bool,
}

/// POST /api/account/time-zone: the zone as stored (the database's
/// spelling of the name sent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimeZoneSet {
    pub time_zone: String,
}

/// What set off a lockdown, as the notice whose link was used told it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockdownAbout {
    /// What the notice reported, in words ("a log-in from a new browser").
    pub what: String,
    /// The browser in fixed words ("Chrome on Linux"), never the User-Agent.
    pub browser: String,
    pub ip: Option<String>,
    /// When, as `ActivityEvent::when`.
    pub when: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Activity {
    /// Log-ins, failed attempts, throttling and recovery codes used.
    pub events: Vec<ActivityEvent>,
    /// Changes to the account's protection, kept apart (see
    /// `AuditKind::changes`).
    pub changes: Vec<ActivityEvent>,
    /// The zone `when` is written in (None: UTC).
    #[serde(default)]
    pub time_zone: Option<String>,
}

/// Parses a field, collecting its message under the JSON field name.
fn field<T>(
    errors: &mut BTreeMap<String, String>,
    name: &str,
    parsed: Result<T, crate::domain::ParseError>,
) -> Option<T> {
    match parsed {
        Ok(v) => Some(v),
        Err(e) => {
            errors.insert(name.to_owned(), e.0.to_owned());
            None
        }
    }
}

/// Parses the sign-up form. Shared by the browser (to show field errors
/// before sending) and the server (the authority).
pub fn parse_registration(email: &str, name: &str, password: &str) -> Result<(Email, PersonName, Password), AppError> {
    let mut errors = BTreeMap::new();
    let email = field(&mut errors, "email", Email::parse(email));
    let name = field(&mut errors, "name", PersonName::parse(name));
    let password = field(&mut errors, "password", Password::parse(password));
    match (email, name, password) {
        (Some(e), Some(n), Some(p)) => Ok((e, n, p)),
        // Whether the password is also too easy to guess costs the server
        // a scorer run: it says so under its limits (see
        // `server::identity::weak_password_too`), never while parsing.
        _ => Err(AppError::fields(errors)),
    }
}

/// A 400 for one field, its message also the error's message.
fn field_failure(name: &str, e: crate::domain::ParseError) -> AppError {
    let mut errors = BTreeMap::new();
    errors.insert(name.to_owned(), e.0.to_owned());
    let mut err = AppError::fields(errors);
    err.message = e.0.to_owned();
    err
}

pub fn parse_code(code: &str) -> Result<TotpCode, AppError> {
    TotpCode::parse(code).map_err(|e| field_failure("twoFactorAuthenticationCode", e))
}

/// Exactly one of a 6-digit code or a recovery code.
pub fn parse_second_factor(code: Option<&str>, recovery: Option<&str>) -> Result<SecondFactor, AppError> {
    let present = |v: Option<&str>| v.map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
    match (present(code), present(recovery)) {
        (Some(c), None) => parse_code(&c).map(SecondFactor::Totp),
        (None, Some(r)) => {
            RecoveryCode::parse(&r).map(SecondFactor::Recovery).map_err(|e| field_failure("recoveryCode", e))
        }
        (None, None) => Err(AppError::bad_request("Enter the 6-digit code from your app or a recovery code.")),
        (Some(_), Some(_)) => Err(AppError::bad_request("Send a 6-digit code or a recovery code, not both.")),
    }
}

/// One field holding either a 6-digit code or a recovery code, told apart
/// by their shapes (a recovery code has letters). The forms use it where a
/// switch between two fields would need JavaScript.
pub fn parse_any_second_factor(text: &str) -> Result<SecondFactor, AppError> {
    if let Ok(code) = TotpCode::parse(text) {
        return Ok(SecondFactor::Totp(code));
    }
    RecoveryCode::parse(text).map(SecondFactor::Recovery).map_err(|_| {
        field_failure(
            "code",
            crate::domain::ParseError("Enter the 6-digit code from your app or one of your recovery codes."),
        )
    })
}

pub fn parse_new_password(password: &str) -> Result<Password, AppError> {
    Password::parse(password).map_err(|e| field_failure("newPassword", e))
}

pub fn parse_email(email: &str) -> Result<Email, AppError> {
    Email::parse(email).map_err(|e| field_failure("email", e))
}

/// What the consent page shows for an app's sign-in request: the app's
/// name and what it asks to know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsentView {
    pub client_name: String,
    pub scopes: Vec<String>,
}

/// An app the person signs in to through the portal (security page,
/// "Connected apps"): what it may know and when it last signed them in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectedApp {
    pub client_id: String,
    pub name: String,
    /// Scope words (openid, profile, email, groups, offline_access).
    pub scopes: Vec<String>,
    /// Its newest sign-in that is still alive (Unix seconds), if any.
    pub signed_in_at: Option<i64>,
}

pub mod admin;
