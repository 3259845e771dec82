//! Where mail goes: the `SMTP_URL` settings and the lettre transport they
//! make, or `.eml` files in the outbox; `MAIL_FROM`; and `Mail`, the
//! settings and the worker's signals kept in the app state.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::Notify;

use crate::server::db::MailRow;
use crate::server::state::AppState;

/// One SMTP conversation may take this long.
const SMTP_TIMEOUT: Duration = Duration::from_secs(15);

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
    pub(super) from: Mailbox,
    /// Log-in waits for a proved email address.
    pub require_verification: bool,
    pub(super) wake: Notify,
    pub(super) stopped: AtomicBool,
    pub(super) stop: Notify,
    /// Workers running on this state (see `stop_and_wait`).
    pub(super) running: tokio::sync::watch::Sender<usize>,
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
            running: tokio::sync::watch::Sender::new(0),
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

    /// `stop`, then waits until no worker is in a round: a test then sees
    /// the queue change only when it says so. (A worker not yet started
    /// when this returns sees the stop before its first round.)
    pub async fn stop_and_wait(&self) {
        self.stop();
        let mut running = self.running.subscribe();
        let _ = running.wait_for(|n| *n == 0).await;
    }
}

pub(super) async fn send(state: &AppState, row: &MailRow, message: Message) -> Result<(), String> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
