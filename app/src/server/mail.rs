//! Mail: what is sent (password resets, email verification, security
//! notices with their lockdown link, the operator's test message), the
//! queue it waits in and the worker that sends it, off the request path,
//! over SMTP (lettre) or into `.eml` files in the outbox.
//!
//! A queued row names what to send, never its text. The message, and the
//! single-use token its link carries, are made when it is sent, so no
//! working link ever sits in the database; a failed attempt deletes its
//! token and the next one makes a new one.
//!
//! What the links lead to (a reset, a confirmation, a lockdown) is `links`.

pub mod links;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::Notify;

use super::crypto::{random_bytes, sha256_hex};
use super::db::{MailRow, NewMail};
use super::request::RequestMeta;
use super::state::AppState;
use crate::error::AppError;
use crate::wire::AuditKind;

/// A password-reset link works this long.
pub const RESET_TTL: i64 = 30 * 60;
/// A verification or lockdown link works this long.
pub const LINK_TTL: i64 = 7 * 86_400;
/// An instance sending a message holds it this long; after a crash the
/// message is tried again once it runs out.
const LEASE_SECONDS: i64 = 120;
/// Attempts before a message is given up (about 5 hours of back-off).
pub const MAX_ATTEMPTS: i64 = 12;
/// The first retry waits this long; each next one twice as long, up to
/// `MAX_BACKOFF`.
const FIRST_BACKOFF: i64 = 30;
const MAX_BACKOFF: i64 = 3600;
/// Messages taken per round.
const BATCH: i64 = 20;
/// Without a wake-up (a message queued by another instance or process),
/// the worker looks at the queue this often.
const POLL: Duration = Duration::from_secs(5);
/// One SMTP conversation may take this long.
const SMTP_TIMEOUT: Duration = Duration::from_secs(15);
/// Sent and given-up rows are kept this long for `server mail queue`.
pub const KEEP_SECONDS: i64 = 30 * 86_400;

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
    RecoveryCodeUsed,
    RecoveryCodesRegenerated,
    PasswordChanged,
    PasswordReset,
    PasskeyAdded,
    PasskeyRemoved,
    RefreshReuse,
    NewBrowser,
}

impl Notice {
    const ALL: [Notice; 10] = [
        Notice::TwoFactorOn,
        Notice::TwoFactorOff,
        Notice::RecoveryCodeUsed,
        Notice::RecoveryCodesRegenerated,
        Notice::PasswordChanged,
        Notice::PasswordReset,
        Notice::PasskeyAdded,
        Notice::PasskeyRemoved,
        Notice::RefreshReuse,
        Notice::NewBrowser,
    ];

    /// The notice an audited event sends, if any.
    pub fn for_event(kind: AuditKind) -> Option<Notice> {
        Some(match kind {
            AuditKind::TwoFactorOn => Notice::TwoFactorOn,
            AuditKind::TwoFactorOff => Notice::TwoFactorOff,
            AuditKind::RecoveryCodeUsed => Notice::RecoveryCodeUsed,
            AuditKind::RecoveryCodesRegenerated => Notice::RecoveryCodesRegenerated,
            AuditKind::PasswordChanged => Notice::PasswordChanged,
            AuditKind::PasswordReset => Notice::PasswordReset,
            AuditKind::PasskeyAdded => Notice::PasskeyAdded,
            AuditKind::PasskeyRemoved => Notice::PasskeyRemoved,
            AuditKind::RefreshReuseDetected => Notice::RefreshReuse,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Notice::TwoFactorOn => "two_factor_on",
            Notice::TwoFactorOff => "two_factor_off",
            Notice::RecoveryCodeUsed => "recovery_code_used",
            Notice::RecoveryCodesRegenerated => "recovery_codes_regenerated",
            Notice::PasswordChanged => "password_changed",
            Notice::PasswordReset => "password_reset",
            Notice::PasskeyAdded => "passkey_added",
            Notice::PasskeyRemoved => "passkey_removed",
            Notice::RefreshReuse => "refresh_reuse_detected",
            Notice::NewBrowser => "new_browser",
        }
    }

    /// (subject, what happened) in the owner's words.
    fn words(self) -> (&'static str, &'static str) {
        match self {
            Notice::TwoFactorOn => {
                ("Two-factor authentication was turned on", "Two-factor authentication was turned on for your account.")
            }
            Notice::TwoFactorOff => (
                "Two-factor authentication was turned off",
                "Two-factor authentication was turned off for your account. Logging in now needs only the password.",
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
}

impl MailKind {
    pub fn as_string(self) -> String {
        match self {
            MailKind::Reset => "reset".into(),
            MailKind::Verify => "verify".into(),
            MailKind::Locked => "locked".into(),
            MailKind::Test => "test".into(),
            MailKind::Notice(n) => format!("notice:{}", n.as_str()),
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "reset" => MailKind::Reset,
            "verify" => MailKind::Verify,
            "locked" => MailKind::Locked,
            "test" => MailKind::Test,
            _ => {
                let name = s.strip_prefix("notice:")?;
                MailKind::Notice(Notice::ALL.into_iter().find(|n| n.as_str() == name)?)
            }
        })
    }
}

// ---------------------------------------------------------------- settings

/// How to reach the SMTP server, from `SMTP_URL`:
/// `smtp://[user:password@]host[:port]` speaks STARTTLS and refuses to go
/// on without it (port 587 by default); `smtps://…` speaks TLS from the
/// first byte (port 465). `?tls=none` sends in the clear, for a relay on
/// the same machine only.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    host: String,
    port: u16,
    tls: TlsMode,
    user: Option<String>,
    password: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TlsMode {
    StartTls,
    Wrapper,
    None,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl SmtpSettings {
    pub fn parse(url: &str) -> Result<Self, String> {
        let (scheme, rest) = url.split_once("://").ok_or("expected smtp://host:port or smtps://host:port")?;
        let (tls, default_port) = match scheme {
            "smtp" => (TlsMode::StartTls, 587),
            "smtps" => (TlsMode::Wrapper, 465),
            _ => return Err(format!("the scheme must be smtp or smtps, got {scheme:?}")),
        };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let tls = match query {
            None | Some("") => tls,
            Some("tls=none") if tls == TlsMode::StartTls => TlsMode::None,
            Some(other) => return Err(format!("unknown option {other:?} (the only one is tls=none, with smtp://)")),
        };
        let rest = rest.trim_end_matches('/');
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        if hostport.contains('/') {
            return Err("no path is allowed after the host".into());
        }
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => match p.parse::<u16>() {
                Ok(port) if port > 0 => (h, port),
                _ => return Err(format!("the port must be a number, got {p:?}")),
            },
            _ => (hostport, default_port),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err("the host is missing".into());
        }
        let (user, password) = match userinfo {
            None => (None, None),
            Some(u) => {
                let (user, password) = u.split_once(':').ok_or("give both user and password, as user:password@")?;
                (Some(percent_decode(user)?), Some(percent_decode(password)?))
            }
        };
        Ok(Self { host: host.to_owned(), port, tls, user, password })
    }

    /// Where mail goes, without the password: for the log and the operator.
    pub fn describe(&self) -> String {
        let how = match self.tls {
            TlsMode::StartTls => "STARTTLS",
            TlsMode::Wrapper => "TLS",
            TlsMode::None => "no encryption",
        };
        let who = self.user.as_deref().map(|u| format!(" as {u}")).unwrap_or_default();
        format!("SMTP {}:{} ({how}){who}", self.host, self.port)
    }

    fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
        let tls = match self.tls {
            TlsMode::None => Tls::None,
            mode => {
                let params = TlsParameters::new(self.host.clone()).map_err(|e| format!("TLS settings: {e}"))?;
                if mode == TlsMode::Wrapper { Tls::Wrapper(params) } else { Tls::Required(params) }
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(self.host.clone())
            .port(self.port)
            .tls(tls)
            .timeout(Some(SMTP_TIMEOUT));
        if let (Some(user), Some(password)) = (&self.user, &self.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(builder.build())
    }
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or("a % in the user or password must start an escape like %40")?;
            out.push(
                u8::from_str_radix(hex, 16).map_err(|_| "a % in the user or password must start an escape like %40")?,
            );
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the user and password must be UTF-8".into())
}

/// `MAIL_FROM`: `Name <address>` or a bare address.
pub fn parse_mailbox(s: &str) -> Result<Mailbox, String> {
    s.parse::<Mailbox>().map_err(|e| format!("{s:?} is not an address like \"Login <no-reply@example.com>\" ({e})"))
}

enum Transport {
    Smtp { transport: AsyncSmtpTransport<Tokio1Executor>, describe: String },
    Outbox(PathBuf),
}

/// The mail settings and the worker's signals, kept in the app state.
pub struct Mail {
    transport: Transport,
    from: Mailbox,
    /// Log-in waits for a proved email address.
    pub require_verification: bool,
    wake: Notify,
    stopped: AtomicBool,
    stop: Notify,
}

impl Mail {
    /// `smtp_url` `None`: messages become `.eml` files in `outbox`.
    pub fn new(
        smtp_url: Option<&str>,
        from: &str,
        outbox: PathBuf,
        require_verification: bool,
    ) -> Result<Self, String> {
        let transport = match smtp_url {
            Some(url) => {
                let settings = SmtpSettings::parse(url).map_err(|e| format!("SMTP_URL: {e}"))?;
                Transport::Smtp { transport: settings.transport()?, describe: settings.describe() }
            }
            None => Transport::Outbox(outbox),
        };
        Ok(Self {
            transport,
            from: parse_mailbox(from).map_err(|e| format!("MAIL_FROM: {e}"))?,
            require_verification,
            wake: Notify::new(),
            stopped: AtomicBool::new(false),
            stop: Notify::new(),
        })
    }

    /// Where mail goes, for the start-up log and the operator.
    pub fn describe(&self) -> String {
        match &self.transport {
            Transport::Smtp { describe, .. } => describe.clone(),
            Transport::Outbox(dir) => format!("the outbox {} (.eml files; set SMTP_URL to send)", dir.display()),
        }
    }

    /// Tells this instance's worker a message is waiting.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Stops this instance's worker (tests stand in for a process ending).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.stop.notify_waiters();
        self.stop.notify_one();
    }
}

// ---------------------------------------------------------------- queue

/// Queues a message and wakes the worker. One row: it lands or not.
pub async fn enqueue(
    state: &AppState,
    kind: MailKind,
    user_id: Option<i64>,
    address: &str,
    meta: &RequestMeta,
) -> Result<i64, AppError> {
    let kind = kind.as_string();
    let id = state.db.enqueue_mail(&new_mail(state, &kind, user_id, address, meta)).await?;
    state.mail.wake();
    Ok(id)
}

/// The row for a message about something happening now, from `meta`.
pub fn new_mail<'a>(
    state: &AppState,
    kind: &'a str,
    user_id: Option<i64>,
    address: &'a str,
    meta: &'a RequestMeta,
) -> NewMail<'a> {
    NewMail {
        kind,
        user_id,
        address,
        event_at: state.now(),
        ip: meta.ip.as_deref(),
        user_agent: meta.user_agent.as_deref(),
        now: state.now(),
    }
}

/// Sends queued mail until stopped: at once when woken, otherwise every
/// few seconds. Every instance runs one; a message is claimed by one.
pub async fn run_worker(state: AppState) {
    tracing::info!("mail goes to {}", state.mail.describe());
    loop {
        if state.mail.stopped.load(Ordering::SeqCst) {
            return;
        }
        match deliver_due(&state).await {
            // A full batch: there may be more.
            Ok(n) if n as i64 >= BATCH => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e.message, "could not read the mail queue; trying again shortly"),
        }
        tokio::select! {
            _ = state.mail.wake.notified() => {}
            _ = state.mail.stop.notified() => return,
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// One round: every due message this instance can claim, each sent or
/// rescheduled. Returns how many were due.
pub async fn deliver_due(state: &AppState) -> Result<usize, AppError> {
    let due = state.db.due_mail(state.now(), BATCH).await?;
    for row in &due {
        if state.db.claim_mail(row.id, state.now(), state.now() + LEASE_SECONDS).await? {
            deliver(state, row).await?;
        }
    }
    Ok(due.len())
}

/// What became of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Sent,
    /// Nothing to send (no such account, already verified): row deleted.
    Dropped,
    /// Failed; tried again later.
    Retry(String),
    /// Failed for the last time.
    GaveUp(String),
}

/// Makes and sends one claimed message and records the outcome.
pub async fn deliver(state: &AppState, row: &MailRow) -> Result<Delivery, AppError> {
    let attempts = row.attempts + 1;
    let made = match compose(state, row).await {
        Ok(Some(made)) => made,
        Ok(None) => {
            state.db.drop_mail(row.id).await?;
            return Ok(Delivery::Dropped);
        }
        Err(why) => return record_failure(state, row, attempts, why, None).await,
    };
    match send(state, row, made.message).await {
        Ok(()) => {
            state.db.mail_sent(row.id, state.now()).await?;
            tracing::info!(id = row.id, kind = %row.kind, "mail sent");
            Ok(Delivery::Sent)
        }
        Err(why) => record_failure(state, row, attempts, why, made.token_hash).await,
    }
}

async fn record_failure(
    state: &AppState,
    row: &MailRow,
    attempts: i64,
    why: String,
    token_hash: Option<String>,
) -> Result<Delivery, AppError> {
    // The link of a message that was not sent must not work later.
    if let Some(hash) = token_hash {
        state.db.delete_email_token(&hash).await?;
    }
    let last = attempts >= MAX_ATTEMPTS || row.kind == "test";
    let retry_at = (!last).then(|| state.now() + backoff(attempts));
    state.db.mail_failed(row.id, &why, retry_at).await?;
    tracing::warn!(id = row.id, kind = %row.kind, attempts, error = %why, retry_at, "mail not sent");
    Ok(if last { Delivery::GaveUp(why) } else { Delivery::Retry(why) })
}

/// Seconds before attempt `attempts + 1`.
fn backoff(attempts: i64) -> i64 {
    let doublings = u32::try_from((attempts - 1).clamp(0, 20)).unwrap_or(20);
    (FIRST_BACKOFF << doublings).min(MAX_BACKOFF)
}

async fn send(state: &AppState, row: &MailRow, message: Message) -> Result<(), String> {
    match &state.mail.transport {
        Transport::Smtp { transport, .. } => transport.send(message).await.map(|_| ()).map_err(|e| e.to_string()),
        Transport::Outbox(dir) => {
            let dir = dir.clone();
            let name = format!("{}-{:06}-{}.eml", row.created_at, row.id, row.kind.replace(':', "-"));
            let bytes = message.formatted();
            let path = tokio::task::spawn_blocking(move || write_outbox(&dir, &name, &bytes))
                .await
                .map_err(|e| e.to_string())??;
            tracing::info!(id = row.id, kind = %row.kind, path = %path.display(), "mail written to the outbox");
            Ok(())
        }
    }
}

/// Writes the message whole or not at all (a reader never sees half).
fn write_outbox(dir: &std::path::Path, name: &str, bytes: &[u8]) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("could not create {}: {e}", dir.display()))?;
    let path = dir.join(name);
    let partial = dir.join(format!(".{name}.partial"));
    std::fs::write(&partial, bytes).map_err(|e| format!("could not write {}: {e}", partial.display()))?;
    std::fs::rename(&partial, &path).map_err(|e| format!("could not write {}: {e}", path.display()))?;
    Ok(path)
}

// ---------------------------------------------------------------- messages

struct Made {
    message: Message,
    /// The token the message's link carries (deleted if sending fails).
    token_hash: Option<String>,
}

/// A new single-use link to `path` for `purpose`: the URL to mail and the
/// stored hash.
async fn new_link(
    state: &AppState,
    user_id: i64,
    purpose: Purpose,
    ttl: i64,
    path: &str,
) -> Result<(String, String), String> {
    let token = URL_SAFE_NO_PAD.encode(random_bytes::<32>().map_err(|e| e.message)?);
    let hash = sha256_hex(token.as_bytes());
    let now = state.now();
    state.db.insert_email_token(&hash, user_id, purpose.as_str(), now, now + ttl).await.map_err(|e| e.message)?;
    Ok((format!("{}{path}?token={token}", state.gate.public_url), hash))
}

/// The message a row asks for, or `None` when there is nothing to send.
async fn compose(state: &AppState, row: &MailRow) -> Result<Option<Made>, String> {
    let kind = MailKind::parse(&row.kind).ok_or_else(|| format!("unknown kind {:?}", row.kind))?;
    let user = match kind {
        MailKind::Test => None,
        // Asked for by address: there may be no such account (then nothing
        // is sent, and the asker saw the same answer either way).
        MailKind::Reset => match state.db.user_by_email(&row.address).await.map_err(|e| e.message)? {
            Some(user) => Some(user),
            None => return Ok(None),
        },
        // Sent again on request, by address, on the same terms.
        MailKind::Verify if row.user_id.is_none() => {
            match state.db.user_by_email(&row.address).await.map_err(|e| e.message)? {
                Some(user) => Some(user),
                None => return Ok(None),
            }
        }
        _ => match row.user_id {
            Some(id) => match state.db.user_by_id(id).await.map_err(|e| e.message)? {
                Some(user) => Some(user),
                None => return Ok(None),
            },
            None => return Ok(None),
        },
    };
    let issuer = &*state.issuer;
    // The name was typed by whoever made the account. Until the address is
    // confirmed that may be a stranger using someone else's address (with
    // an advert or a link for a name), so no mail carries it before.
    let trusted_name = user.as_ref().filter(|u| u.email_verified_at.is_some()).map(|u| u.name.as_str());
    let greeting = trusted_name.map(|name| format!("Hello {name},")).unwrap_or_else(|| "Hello,".into());
    let mut token_hash = None;
    let (subject, paragraphs, button): (String, Vec<String>, Option<(String, String)>) = match (kind, &user) {
        (MailKind::Test, _) => (
            format!("{issuer}: test message"),
            vec![format!(
                "This is a test message from {issuer} at {}, sent by the operator's `server mail test` command. \
                 Mail from it reaches this address.",
                state.gate.public_url
            )],
            None,
        ),
        (MailKind::Verify, Some(u)) => {
            if u.email_verified_at.is_some() {
                return Ok(None);
            }
            let (link, hash) = new_link(state, u.id, Purpose::Verify, LINK_TTL, "/verify-email").await?;
            token_hash = Some(hash);
            (
                format!("{issuer}: confirm your email address"),
                vec![
                    format!("An account on {issuer} was made with this address. Confirm that it is yours:"),
                    "The link works once, for 7 days. If you did not make this account, ignore this message.".into(),
                ],
                Some(("Confirm my email address".into(), link)),
            )
        }
        (MailKind::Reset, Some(u)) => {
            let (link, hash) = new_link(state, u.id, Purpose::Reset, RESET_TTL, "/reset-password").await?;
            token_hash = Some(hash);
            (
                format!("{issuer}: set a new password"),
                vec![
                    "Someone asked to reset the password of your account. To choose a new one, open this link:".into(),
                    "It works once, for 30 minutes. It does not log you in: afterwards you log in with the new \
                     password and, if two-factor authentication is on, your code or passkey as usual. Every \
                     session of the account will end."
                        .into(),
                    "If you did not ask for this, ignore this message: your password stays as it is.".into(),
                ],
                Some(("Set a new password".into(), link)),
            )
        }
        (MailKind::Locked, Some(u)) => {
            let (link, hash) = new_link(state, u.id, Purpose::Reset, RESET_TTL, "/reset-password").await?;
            token_hash = Some(hash);
            (
                format!("{issuer}: your account is locked"),
                vec![
                    format!(
                        "Your account was locked at {} from the \"This wasn't me\" link of a security notice. \
                         Every session has ended and nobody can log in until the password is reset.",
                        format_utc(row.event_at)
                    ),
                    "Set a new password with this link (it works once, for 30 minutes; after that, use \
                     \"Forgot your password?\" on the log-in page):"
                        .into(),
                ],
                Some(("Set a new password".into(), link)),
            )
        }
        (MailKind::Notice(notice), Some(u)) => {
            let (link, hash) = new_link(state, u.id, Purpose::Lockdown, LINK_TTL, "/lockdown").await?;
            token_hash = Some(hash);
            let (subject, what) = notice.words();
            (
                format!("{issuer}: {}", subject.to_lowercase()),
                vec![
                    what.to_owned(),
                    format!(
                        "When: {}. From: {}. Browser: {}.",
                        format_utc(row.event_at),
                        row.ip.as_deref().unwrap_or("an operator command or an unknown address"),
                        // Never the User-Agent itself: anyone can put any
                        // text there, a link included.
                        row.user_agent.as_deref().map(browser_name).unwrap_or_else(|| UNKNOWN_BROWSER.into())
                    ),
                    "If this was you, there is nothing to do.".into(),
                    "If it wasn't you, lock your account now: every session ends at once and nobody can log in \
                     until the password is reset through a new email link. The link works once, for 7 days."
                        .into(),
                ],
                Some(("This wasn't me: lock my account".into(), link)),
            )
        }
        (_, None) => return Ok(None),
    };
    let to = match &user {
        Some(u) => mailbox(trusted_name, &u.email),
        None => parse_mailbox(&row.address),
    };
    let message = to
        .and_then(|to| build_message(&state.mail.from, to, &subject, &greeting, &paragraphs, button.as_ref(), issuer));
    match message {
        Ok(message) => Ok(Some(Made { message, token_hash })),
        Err(why) => {
            if let Some(hash) = &token_hash {
                let _ = state.db.delete_email_token(hash).await;
            }
            Err(why)
        }
    }
}

fn mailbox(name: Option<&str>, email: &str) -> Result<Mailbox, String> {
    let address = email.parse().map_err(|e| format!("the account's address cannot be mailed ({e})"))?;
    Ok(Mailbox::new(name.map(str::to_owned), address))
}

const UNKNOWN_BROWSER: &str = "an unknown browser";

/// What a mail says of a browser: a name recognised in its User-Agent
/// ("Firefox on Linux", "Safari on iOS", "Chrome"), else "an unknown
/// browser". Only these fixed words come out, never the string itself.
pub fn browser_name(user_agent: &str) -> String {
    let has = |token: &str| user_agent.contains(token);
    // Order matters: Edge and Opera also say Chrome and Safari, Chrome also
    // says Safari, an iPad also says Mac OS X, Android also says Linux.
    let browser = if has("Edg/") || has("Edge/") || has("EdgA/") || has("EdgiOS/") {
        Some("Edge")
    } else if has("OPR/") || has("OPT/") || has("OPiOS/") || has("Opera") {
        Some("Opera")
    } else if has("Firefox/") || has("FxiOS/") {
        Some("Firefox")
    } else if has("Chrome/") || has("CriOS/") || has("Chromium/") {
        Some("Chrome")
    } else if has("Safari/") && has("Version/") {
        Some("Safari")
    } else {
        None
    };
    let system = if has("iPhone") || has("iPad") || has("iPod") {
        Some("iOS")
    } else if has("Android") {
        Some("Android")
    } else if has("Windows") {
        Some("Windows")
    } else if has("Macintosh") || has("Mac OS X") {
        Some("macOS")
    } else if has("Linux") {
        Some("Linux")
    } else {
        None
    };
    match (browser, system) {
        (Some(browser), Some(system)) => format!("{browser} on {system}"),
        (Some(browser), None) => browser.to_owned(),
        (None, _) => UNKNOWN_BROWSER.to_owned(),
    }
}

/// Plain text and simple HTML with the same words. Both are
/// quoted-printable, so long links survive any mail server.
fn build_message(
    from: &Mailbox,
    to: Mailbox,
    subject: &str,
    greeting: &str,
    paragraphs: &[String],
    button: Option<&(String, String)>,
    issuer: &str,
) -> Result<Message, String> {
    let mut text = format!("{greeting}\n\n");
    let mut html = format!(
        "<!DOCTYPE html><html><body style=\"font-family:system-ui,sans-serif;line-height:1.5;color:#1f2933\">\
         <p>{}</p>",
        escape(greeting)
    );
    for (i, p) in paragraphs.iter().enumerate() {
        text.push_str(p);
        text.push_str("\n\n");
        html.push_str(&format!("<p>{}</p>", escape(p)));
        // The link goes after the paragraph that introduces it.
        if i == 0
            && let Some((label, url)) = button
        {
            text.push_str(&format!("{url}\n\n"));
            html.push_str(&format!(
                "<p><a href=\"{0}\" style=\"display:inline-block;padding:10px 16px;background:#1d4ed8;color:#fff;\
                 text-decoration:none;border-radius:6px\">{1}</a></p><p style=\"font-size:13px;color:#52606d\">\
                 Or copy this address into your browser: {0}</p>",
                escape(url),
                escape(label)
            ));
        }
    }
    text.push_str(&format!("-- \n{issuer}\n"));
    html.push_str(&format!("<p style=\"color:#52606d\">{}</p></body></html>", escape(issuer)));
    let part = |content_type: ContentType, body: String| {
        SinglePart::builder().header(content_type).header(ContentTransferEncoding::QuotedPrintable).body(body)
    };
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(subject)
        .multipart(
            MultiPart::alternative()
                .singlepart(part(ContentType::TEXT_PLAIN, text))
                .singlepart(part(ContentType::TEXT_HTML, html)),
        )
        .map_err(|e| format!("could not build the message: {e}"))
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn format_utc(at: i64) -> String {
    format!("{} UTC", crate::time::format_utc(at))
}

/// A message's account, for tests and the operator: `None` for a test.
pub fn describe_row(row: &MailRow) -> String {
    format!("#{} {} to {} ({} attempt(s))", row.id, row.kind, row.address, row.attempts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_are_named_never_quoted() {
        for (agent, name) in [
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 \
                 Safari/537.36",
                "Chrome on Windows",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 \
                 Safari/537.36 Edg/126.0.0.0",
                "Edge on Windows",
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) \
                 Chrome/126.0.0.0 Safari/537.36 OPR/111.0.0.0",
                "Opera on macOS",
            ),
            ("Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0", "Firefox on Linux"),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 \
                 Safari/605.1.15",
                "Safari on macOS",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) \
                 Version/17.5 Mobile/15E148 Safari/604.1",
                "Safari on iOS",
            ),
            (
                "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/126.0 \
                 Mobile/15E148 Safari/604.1",
                "Chrome on iOS",
            ),
            (
                "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 \
                 Mobile Safari/537.36",
                "Chrome on Android",
            ),
            ("Mozilla/5.0 (Android 14; Mobile; rv:127.0) Gecko/127.0 Firefox/127.0", "Firefox on Android"),
            ("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 Chrome/126.0.0.0 Safari/537.36", "Chrome"),
            ("curl/8.5.0", "an unknown browser"),
            ("", "an unknown browser"),
            ("Windows https://evil.example/win", "an unknown browser"),
        ] {
            assert_eq!(browser_name(agent), name, "{agent}");
        }
        // Whatever is around a recognised name stays out.
        let name = browser_name("Firefox/1 <a href=https://evil.example>claim</a> Windows");
        assert_eq!(name, "Firefox on Windows");
    }

    #[test]
    fn smtp_urls_default_to_encryption() {
        let s = SmtpSettings::parse("smtp://ann%40example.com:p%3Ass@mail.example.com").unwrap();
        assert_eq!((s.host.as_str(), s.port, s.tls), ("mail.example.com", 587, TlsMode::StartTls));
        assert_eq!((s.user.as_deref(), s.password.as_deref()), (Some("ann@example.com"), Some("p:ss")));
        assert!(!s.describe().contains("p:ss"), "the password is never shown");
        assert!(!format!("{s:?}").contains("p:ss"));
        let s = SmtpSettings::parse("smtps://mail.example.com").unwrap();
        assert_eq!((s.port, s.tls), (465, TlsMode::Wrapper));
        let s = SmtpSettings::parse("smtp://127.0.0.1:2525?tls=none").unwrap();
        assert_eq!((s.host.as_str(), s.port, s.tls), ("127.0.0.1", 2525, TlsMode::None));
        let s = SmtpSettings::parse("smtp://[::1]:2525").unwrap();
        assert_eq!((s.host.as_str(), s.port), ("::1", 2525));
        for bad in [
            "http://mail.example.com",
            "mail.example.com",
            "smtp://:25",
            "smtp://host:port",
            "smtps://host?tls=none",
            "smtp://user@host",
            "smtp://host/path",
            "smtp://u:%zz@host",
        ] {
            assert!(SmtpSettings::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn kinds_round_trip_and_backoff_doubles_to_an_hour() {
        for kind in [MailKind::Reset, MailKind::Verify, MailKind::Locked, MailKind::Test]
            .into_iter()
            .chain(Notice::ALL.into_iter().map(MailKind::Notice))
        {
            assert_eq!(MailKind::parse(&kind.as_string()), Some(kind));
        }
        assert_eq!(MailKind::parse("notice:nothing"), None);
        assert_eq!((1..=9).map(backoff).collect::<Vec<_>>(), [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
    }

    #[test]
    fn messages_have_both_bodies_and_escape_what_people_typed() {
        let from = parse_mailbox("Login <no-reply@example.com>").unwrap();
        let to = mailbox(Some("Ann <b>"), "ann@example.com").unwrap();
        let button = ("Go".to_owned(), "https://auth.example.com/x?token=a&b".to_owned());
        let m =
            build_message(&from, to, "Subject", "Hello Ann <b>,", &["First".into()], Some(&button), "Login").unwrap();
        let raw = String::from_utf8(m.formatted()).unwrap();
        assert!(raw.contains("multipart/alternative"));
        assert!(raw.contains("text/plain") && raw.contains("text/html"));
        assert!(raw.contains("Hello Ann &lt;b&gt;,"), "{raw}");
        assert!(raw.contains("token=3Da&amp;b"), "quoted-printable, escaped in HTML: {raw}");
    }
}
