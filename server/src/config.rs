//! Configuration from the environment (and a `.env` file if present). Every
//! setting is documented in the README; a bad value stops start-up with a
//! message naming the variable.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use app::server::crypto::sealing::parse_key;
use app::server::crypto::tokens::MIN_KEY_BYTES;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Where Prometheus metrics are served (`METRICS_ADDR`; off when None).
    pub metrics_addr: Option<SocketAddr>,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub issuer: String,
    /// `None` in development without JWT_SECRET: a key is kept in the data
    /// directory instead (see `jwt_key`).
    pub jwt_secret: Option<Vec<u8>>,
    pub production: bool,
    pub cookie_secure: bool,
    /// `id:hex` key sealing TOTP secrets; generated in development.
    pub secrets_key: Option<(String, Vec<u8>)>,
    /// Older keys that can still open secrets during a rotation.
    pub secrets_keys_previous: Vec<(String, Vec<u8>)>,
    pub trusted_proxy_header: Option<http::HeaderName>,
    pub access_ttl_seconds: i64,
    pub refresh_ttl_seconds: i64,
    /// How long "Don't ask again on this browser" lasts (0: not offered).
    pub remember_days: i64,
    /// How long a just-rotated refresh token may be presented again (two
    /// tabs restored together) before that counts as a stolen copy.
    pub refresh_grace_seconds: i64,
    /// How long audit events are kept.
    pub audit_retention_days: i64,
    /// How many password checks may wait for a hashing thread before the
    /// answer is 503 (default: 16 per core).
    pub hash_queue_limit: Option<usize>,
    /// Accounts one client address may create per hour before a delay.
    pub registrations_per_hour: i64,
    /// Passwordless passkey sign-ins one address may start a minute.
    pub passkey_starts_per_minute: i64,
    pub log_format: LogFormat,
    pub site_root: String,
    pub db_max_connections: u32,
    pub db_acquire_timeout_seconds: u64,
    /// Open client connections; `None`: from the file limit (see main).
    pub max_connections: Option<usize>,
    /// Open connections one client address may hold.
    pub max_connections_per_address: usize,
    /// Peers whose connections are not counted per address: the trusted
    /// proxies, once the operator has said there are some (a proxy carries
    /// many clients). Empty with the defaults, so that a client on the
    /// same host is counted like any other.
    pub uncounted_peers: Vec<app::server::gate::Cidr>,
    /// Seconds a client has to send a request's headers.
    pub header_timeout_seconds: u64,
    /// Seconds a client has to send a request's body, once its headers are in.
    pub body_timeout_seconds: u64,
    /// Seconds a request has to be read and answered.
    pub request_timeout_seconds: u64,
    /// The portal's origin (no trailing slash).
    pub public_url: String,
    /// Parent domains that get a gate cookie.
    pub cookie_domains: Vec<String>,
    /// The access rules file, if any.
    pub access_rules: Option<PathBuf>,
    /// Peers whose forwarded headers are believed (the client address of
    /// `TRUSTED_PROXY_HEADER`, the gate's X-Forwarded-*).
    pub trusted_proxies: Vec<app::server::gate::Cidr>,
    /// Whether anyone may create an account on the sign-up page.
    pub signup_open: bool,
    /// What the gate's `Remote-User` carries: the account's number (`id`)
    /// or its confirmed address (`email`).
    pub remote_user: app::server::gate::RemoteUser,
    /// How long a gate decision's subject is believed without the database.
    pub gate_cache_seconds: i64,
    /// Whose members (with two factors on) use the admin page.
    pub admin_group: String,
    /// Where mail goes: `smtp://` (STARTTLS) or `smtps://` (TLS); `None`
    /// writes `.eml` files to `DATA_DIR/outbox` instead. Holds a password:
    /// never printed.
    pub smtp_url: Option<String>,
    /// The sender of every message.
    pub mail_from: String,
    /// Whether log-in waits until the email address is proved.
    pub require_email_verification: bool,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("metrics_addr", &self.metrics_addr)
            .field("data_dir", &self.data_dir)
            .field("production", &self.production)
            .field("cookie_secure", &self.cookie_secure)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// The access rules: the ACCESS_RULES file, or two factors everywhere.
    pub fn rules(&self) -> Result<app::server::gate::Rules, String> {
        match &self.access_rules {
            None => Ok(app::server::gate::Rules::two_factor_everywhere()),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("ACCESS_RULES: could not read {}: {e}", path.display()))?;
                let rules = app::server::gate::Rules::parse(&text)
                    .map_err(|e| format!("ACCESS_RULES {}: {e}", path.display()))?;
                // Without the header, every request would seem to come from
                // the proxy's own address, inside or outside every range.
                if rules.uses_networks() && self.trusted_proxy_header.is_none() {
                    return Err(format!(
                        "ACCESS_RULES {}: a rule names networks, so the gate must know each client's address: set \
                         TRUSTED_PROXY_HEADER (e.g. x-forwarded-for) to the header your proxy sets",
                        path.display()
                    ));
                }
                Ok(rules)
            }
        }
    }

    pub fn from_env() -> Result<Self, String> {
        Self::from_vars(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    /// Reads settings through `var`, so tests can pass a map.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let production = match var("APP_ENV").as_deref() {
            None | Some("development") => false,
            Some("production") => true,
            Some(other) => return Err(format!("APP_ENV must be development or production, got {other:?}")),
        };
        let listen = var("LISTEN_ADDR").or_else(|| var("LEPTOS_SITE_ADDR")).unwrap_or_else(|| "127.0.0.1:3000".into());
        let listen: SocketAddr = listen
            .parse()
            .map_err(|_| format!("LISTEN_ADDR must be host:port, like 127.0.0.1:3000, got {listen:?}"))?;
        let data_dir = PathBuf::from(var("DATA_DIR").unwrap_or_else(|| "data".into()));
        let database_url = match var("DATABASE_URL") {
            Some(url) => url,
            None => format!("sqlite://{}?mode=rwc", data_dir.join("twofactor.db").display()),
        };
        let issuer = var("TWO_FACTOR_AUTHENTICATION_APP_NAME").unwrap_or_else(|| "Two-Factor Login".into());
        if issuer.contains(':') || issuer.chars().count() > 64 {
            return Err("TWO_FACTOR_AUTHENTICATION_APP_NAME must be at most 64 characters and contain no ':'".into());
        }
        let jwt_secret = var("JWT_SECRET").map(String::into_bytes);
        match (&jwt_secret, production) {
            (Some(k), _) if k.len() < MIN_KEY_BYTES => {
                return Err(format!("JWT_SECRET must be at least {MIN_KEY_BYTES} bytes, it has {}", k.len()));
            }
            (Some(k), _) if !looks_random(k) => {
                return Err(
                    "JWT_SECRET does not look random (too few different characters): use e.g. `openssl rand -hex 32`"
                        .into(),
                );
            }
            (None, true) => {
                return Err(format!("JWT_SECRET is required when APP_ENV=production (at least {MIN_KEY_BYTES} bytes)"));
            }
            _ => {}
        }
        let cookie_secure = match var("COOKIE_SECURE").as_deref() {
            None => production,
            Some("true" | "1") => true,
            Some("false" | "0") => false,
            Some(other) => return Err(format!("COOKIE_SECURE must be true or false, got {other:?}")),
        };
        let access_ttl_seconds = seconds(&var, "ACCESS_TTL_SECONDS", 15 * 60, 30, 3600)?;
        let refresh_ttl_seconds = seconds(&var, "REFRESH_TTL_SECONDS", 30 * 86400, 300, 365 * 86400)?;
        let refresh_grace_seconds = seconds(&var, "REFRESH_GRACE_SECONDS", 10, 0, 60)?;
        let remember_days = bounded(&var, "REMEMBER_DAYS", 30, 0, 365, "days")?;
        let audit_retention_days = bounded(&var, "AUDIT_RETENTION_DAYS", 90, 1, 3650, "days")?;
        let registrations_per_hour = bounded(&var, "REGISTRATIONS_PER_HOUR", 10, 1, 1_000_000, "accounts")?;
        let passkey_starts_per_minute = bounded(&var, "PASSKEY_STARTS_PER_MINUTE", 30, 1, 1_000_000, "starts")?;
        let hash_queue_limit = match var("HASH_QUEUE_LIMIT") {
            None => None,
            Some(_) => {
                Some(usize::try_from(bounded(&var, "HASH_QUEUE_LIMIT", 0, 0, 100_000, "requests")?).unwrap_or(0))
            }
        };
        let secrets_key = match var("SECRETS_KEY") {
            Some(spec) => Some(checked_key("SECRETS_KEY", &spec)?),
            None if production => {
                return Err("SECRETS_KEY is required when APP_ENV=production (id:64-hex-characters)".into());
            }
            None => None,
        };
        let secrets_keys_previous = match var("SECRETS_KEYS_PREVIOUS") {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|spec| checked_key("SECRETS_KEYS_PREVIOUS", spec))
                .collect::<Result<_, _>>()?,
        };
        let trusted_proxy_header = match var("TRUSTED_PROXY_HEADER") {
            None => None,
            Some(h) => Some(
                http::HeaderName::from_bytes(h.trim().to_ascii_lowercase().as_bytes())
                    .map_err(|_| format!("TRUSTED_PROXY_HEADER must be a header name, got {h:?}"))?,
            ),
        };
        let log_format = match var("LOG_FORMAT").as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => return Err(format!("LOG_FORMAT must be text or json, got {other:?}")),
        };
        let site_root = var("LEPTOS_SITE_ROOT").unwrap_or_else(|| "target/site".into());
        let db_max_connections = match var("DATABASE_MAX_CONNECTIONS") {
            None => 10,
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or("DATABASE_MAX_CONNECTIONS must be a number between 1 and 1000")?,
        };
        let db_acquire_timeout_seconds = seconds(&var, "DATABASE_ACQUIRE_TIMEOUT_SECONDS", 5, 1, 60)? as u64;
        let max_connections = match var("MAX_CONNECTIONS") {
            None => None,
            Some(_) => {
                Some(usize::try_from(bounded(&var, "MAX_CONNECTIONS", 0, 1, 1_000_000, "connections")?).unwrap_or(1))
            }
        };
        let max_connections_per_address =
            usize::try_from(bounded(&var, "MAX_CONNECTIONS_PER_ADDRESS", 64, 1, 1_000_000, "connections")?)
                .unwrap_or(64);
        let header_timeout_seconds = seconds(&var, "HEADER_TIMEOUT_SECONDS", 10, 1, 300)? as u64;
        let body_timeout_seconds = seconds(&var, "BODY_TIMEOUT_SECONDS", 10, 1, 300)? as u64;
        let request_timeout_seconds = seconds(&var, "REQUEST_TIMEOUT_SECONDS", 30, 1, 3600)? as u64;
        let metrics_addr = match var("METRICS_ADDR") {
            None => None,
            Some(text) => {
                let addr: SocketAddr = text
                    .trim()
                    .parse()
                    .map_err(|_| format!("METRICS_ADDR must be host:port, like 127.0.0.1:9464, got {text:?}"))?;
                if addr.port() == listen.port() && (addr.ip() == listen.ip() || addr.ip().is_unspecified()) {
                    return Err("METRICS_ADDR must be another address than LISTEN_ADDR: metrics are never served \
                                on the public listener"
                        .into());
                }
                Some(addr)
            }
        };
        let public_url = var("PUBLIC_URL").unwrap_or_else(|| format!("http://localhost:{}", listen.port()));
        let public_url = public_url.trim().trim_end_matches('/').to_owned();
        match public_url.split_once("://") {
            Some(("https" | "http", rest)) if !rest.is_empty() && !rest.contains(['/', '?', '#', '@', '\\']) => {}
            _ => {
                return Err(format!(
                    "PUBLIC_URL must be the portal's origin, like https://auth.example.com (no path), got {public_url:?}"
                ));
            }
        }
        let cookie_domains = match var("COOKIE_DOMAINS") {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(|d| d.trim().trim_start_matches('.').to_ascii_lowercase())
                .filter(|d| !d.is_empty())
                .map(|d| {
                    if d.contains('.')
                        && d.split('.')
                            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
                    {
                        Ok(d)
                    } else {
                        Err(format!("COOKIE_DOMAINS: {d:?} is not a domain like example.com"))
                    }
                })
                .collect::<Result<_, _>>()?,
        };
        let access_rules = var("ACCESS_RULES").map(PathBuf::from);
        let gate_cache_seconds = gate_cache_seconds(&var)?;
        // In front of other apps, an open sign-up page would let anyone in:
        // closed unless the operator opens it.
        let signup_open = match var("SIGNUP").as_deref() {
            None => cookie_domains.is_empty(),
            Some("open") => true,
            Some("closed") => false,
            Some(other) => return Err(format!("SIGNUP must be open or closed, got {other:?}")),
        };
        let admin_group = var("ADMIN_GROUP").unwrap_or_else(|| "admins".to_owned());
        if !app::wire::admin::valid_group(&admin_group) {
            return Err(format!("ADMIN_GROUP must be 1 to 64 letters, digits, '-', '_' or '.', got {admin_group:?}"));
        }
        let remote_user = match var("GATE_REMOTE_USER") {
            None => app::server::gate::RemoteUser::default(),
            Some(text) => app::server::gate::RemoteUser::parse(&text)
                .ok_or_else(|| format!("GATE_REMOTE_USER must be id or email, got {text:?}"))?,
        };
        let trusted_proxies = match var("TRUSTED_PROXIES") {
            None => app::server::gate::Cidr::loopback(),
            Some(list) => list
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|s| app::server::gate::Cidr::parse(s).map_err(|e| format!("TRUSTED_PROXIES: {e}")))
                .collect::<Result<_, _>>()?,
        };
        let uncounted_peers = if trusted_proxy_header.is_some() || var("TRUSTED_PROXIES").is_some() {
            trusted_proxies.clone()
        } else {
            Vec::new()
        };
        let smtp_url = var("SMTP_URL");
        if let Some(url) = &smtp_url {
            app::server::mail::SmtpSettings::parse(url).map_err(|e| format!("SMTP_URL: {e}"))?;
        }
        let mail_from = var("MAIL_FROM").unwrap_or_else(|| {
            let host = public_url.split_once("://").map(|(_, h)| h).unwrap_or("localhost");
            let host = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host);
            // An address needs a domain name; an IP (or [IPv6]) has none.
            let host =
                if host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[') { "localhost" } else { host };
            format!("{issuer} <no-reply@{host}>")
        });
        app::server::mail::parse_mailbox(&mail_from).map_err(|e| format!("MAIL_FROM: {e}"))?;
        let require_email_verification = match var("REQUIRE_EMAIL_VERIFICATION").as_deref() {
            None | Some("false" | "0") => false,
            Some("true" | "1") => true,
            Some(other) => return Err(format!("REQUIRE_EMAIL_VERIFICATION must be true or false, got {other:?}")),
        };
        Ok(Self {
            metrics_addr,
            smtp_url,
            mail_from,
            require_email_verification,
            listen,
            data_dir,
            database_url,
            issuer,
            jwt_secret,
            production,
            cookie_secure,
            secrets_key,
            secrets_keys_previous,
            trusted_proxy_header,
            access_ttl_seconds,
            refresh_ttl_seconds,
            remember_days,
            refresh_grace_seconds,
            audit_retention_days,
            hash_queue_limit,
            registrations_per_hour,
            passkey_starts_per_minute,
            log_format,
            site_root,
            db_max_connections,
            db_acquire_timeout_seconds,
            max_connections,
            max_connections_per_address,
            uncounted_peers,
            header_timeout_seconds,
            body_timeout_seconds,
            request_timeout_seconds,
            public_url,
            cookie_domains,
            access_rules,
            trusted_proxies,
            signup_open,
            remote_user,
            gate_cache_seconds,
            admin_group,
        })
    }

    /// The JWT signing key: JWT_SECRET, or in development a random key kept
    /// in `DATA_DIR/jwt-secret` (created on first start, with a warning).
    pub fn jwt_key(&self) -> Result<Vec<u8>, String> {
        if let Some(k) = &self.jwt_secret {
            return Ok(k.clone());
        }
        let path = self.data_dir.join("jwt-secret");
        if let Ok(existing) = std::fs::read(&path) {
            if existing.len() >= MIN_KEY_BYTES {
                return Ok(existing);
            }
            return Err(format!(
                "{} is shorter than {MIN_KEY_BYTES} bytes; delete it to make a new one",
                path.display()
            ));
        }
        let mut raw = [0u8; 48];
        getrandom::fill(&mut raw).map_err(|e| format!("the OS random source failed: {e}"))?;
        let key = hex::encode(raw);
        write_private(&path, key.as_bytes())?;
        tracing::warn!(path = %path.display(), "JWT_SECRET is not set: generated a development signing key; set JWT_SECRET in production");
        Ok(key.into_bytes())
    }
}

/// The longest `GATE_CACHE_SECONDS` may be. A change the server is not
/// told of (an operator command on SQLite, a notification lost with its
/// connection on PostgreSQL) is seen only once an entry runs out: ending a
/// log-in or taking someone out of a group must reach every app within
/// seconds, not within the hour the setting once allowed.
pub const MAX_GATE_CACHE_SECONDS: i64 = 10;

fn gate_cache_seconds(var: &impl Fn(&str) -> Option<String>) -> Result<i64, String> {
    let Some(raw) = var("GATE_CACHE_SECONDS") else { return Ok(app::server::gate::cache::MAX_AGE_SECONDS) };
    match raw.trim().parse::<i64>() {
        Ok(n) if (0..=MAX_GATE_CACHE_SECONDS).contains(&n) => Ok(n),
        Ok(n) if n > MAX_GATE_CACHE_SECONDS => Err(format!(
            "GATE_CACHE_SECONDS is {n}, more than the limit of {MAX_GATE_CACHE_SECONDS} seconds: a log-out or \
             group change made by an operator command (SQLite) or missed by a lost PostgreSQL notification \
             would go unseen that long; use at most {MAX_GATE_CACHE_SECONDS} (0 turns the cache off)"
        )),
        _ => Err(format!(
            "GATE_CACHE_SECONDS must be a number of seconds between 0 and {MAX_GATE_CACHE_SECONDS}, got {raw:?}"
        )),
    }
}

fn seconds(var: &impl Fn(&str) -> Option<String>, name: &str, default: i64, min: i64, max: i64) -> Result<i64, String> {
    bounded(var, name, default, min, max, "seconds")
}

fn bounded(
    var: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: i64,
    min: i64,
    max: i64,
    unit: &str,
) -> Result<i64, String> {
    match var(name) {
        None => Ok(default),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|s| (min..=max).contains(s))
            .ok_or_else(|| format!("{name} must be a number of {unit} between {min} and {max}")),
    }
}

fn checked_key(name: &str, spec: &str) -> Result<(String, Vec<u8>), String> {
    let (id, key) = parse_key(spec).map_err(|e| format!("{name}: {e}"))?;
    if key.len() != 32 {
        return Err(format!("{name}: the key must be 32 bytes (64 hex characters)"));
    }
    if !looks_random(&key) {
        return Err(format!("{name} does not look random (too few different bytes): use e.g. `openssl rand -hex 32`"));
    }
    Ok((id, key))
}

/// A cheap guard against placeholder keys (`aaaa…`, all zeros, `abab…`):
/// at least 8 different byte values. 32 random bytes have about 30; the 64
/// characters of `openssl rand -hex 32` have 16.
fn looks_random(key: &[u8]) -> bool {
    let mut seen = [false; 256];
    for b in key {
        seen[usize::from(*b)] = true;
    }
    seen.iter().filter(|s| **s).count() >= 8
}

impl Config {
    /// The public listener's limits (`listen::serve`), with room for
    /// `files` open files when MAX_CONNECTIONS is not set. Tests serve
    /// with these too, so they run the connection loop people run.
    pub fn listen_limits(&self, files: usize) -> crate::listen::Limits {
        crate::listen::Limits {
            // Each connection holds a file; keep room for the database, the
            // site's files and logs.
            max_connections: self.max_connections.unwrap_or_else(|| files.saturating_sub(128).clamp(16, 4096)),
            max_per_address: self.max_connections_per_address,
            // A proxy carries many clients: counted only against the total.
            unlimited_peers: self.uncounted_peers.clone().into(),
            header_timeout: std::time::Duration::from_secs(self.header_timeout_seconds),
            body_timeout: std::time::Duration::from_secs(self.body_timeout_seconds),
            request_timeout: std::time::Duration::from_secs(self.request_timeout_seconds),
            drain_timeout: std::time::Duration::from_secs(self.request_timeout_seconds + 5),
        }
    }

    /// The key sealing TOTP secrets: SECRETS_KEY, or in development a key
    /// kept in `DATA_DIR/secrets-key` (created on first start).
    pub fn secrets_key(&self) -> Result<(String, Vec<u8>), String> {
        if let Some(k) = &self.secrets_key {
            return Ok(k.clone());
        }
        let path = self.data_dir.join("secrets-key");
        if let Ok(existing) = std::fs::read_to_string(&path) {
            return checked_key(&path.display().to_string(), &existing);
        }
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw).map_err(|e| format!("the OS random source failed: {e}"))?;
        let spec = format!("dev1:{}", hex::encode(raw));
        write_private(&path, spec.as_bytes())?;
        tracing::warn!(path = %path.display(), "SECRETS_KEY is not set: generated a development key for TOTP secrets; set SECRETS_KEY in production");
        checked_key("secrets-key", &spec)
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| format!("could not create {}: {e}", path.display()))?;
    file.write_all(bytes).map_err(|e| format!("could not write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_vars(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_development_on_sqlite() {
        let c = config(&[]).unwrap();
        assert!(!c.production && !c.cookie_secure);
        assert_eq!(c.listen.to_string(), "127.0.0.1:3000");
        assert_eq!(c.database_url, "sqlite://data/twofactor.db?mode=rwc");
    }

    #[test]
    fn production_requires_a_long_key_and_secure_cookies() {
        assert!(config(&[("APP_ENV", "production")]).unwrap_err().contains("JWT_SECRET is required"));
        assert!(config(&[("APP_ENV", "production"), ("JWT_SECRET", "short")]).unwrap_err().contains("at least 32"));
        let key = "production-signing-key-0123456789";
        let err = config(&[("APP_ENV", "production"), ("JWT_SECRET", key)]).unwrap_err();
        assert!(err.contains("SECRETS_KEY is required"), "{err}");
        let secrets = format!("p1:{}", "0123456789abcdef".repeat(4));
        let c = config(&[("APP_ENV", "production"), ("JWT_SECRET", key), ("SECRETS_KEY", &secrets)]).unwrap();
        assert!(c.cookie_secure);
        assert_eq!(c.secrets_key.unwrap().0, "p1");
    }

    #[test]
    fn keys_that_are_not_random_are_refused() {
        let err = config(&[("JWT_SECRET", &"k".repeat(40))]).unwrap_err();
        assert!(err.contains("JWT_SECRET does not look random"), "{err}");
        let err = config(&[("JWT_SECRET", &"ab".repeat(20))]).unwrap_err();
        assert!(err.contains("does not look random"), "{err}");
        let zero = format!("z1:{}", "00".repeat(32));
        let err = config(&[("SECRETS_KEY", &zero)]).unwrap_err();
        assert!(err.contains("SECRETS_KEY does not look random"), "{err}");
        let repeated = format!("z1:{}", "ab".repeat(32));
        assert!(config(&[("SECRETS_KEY", &repeated)]).is_err());
        // `openssl rand -hex 32` output passes, as text or as a key.
        let hex = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        assert!(config(&[("JWT_SECRET", hex), ("SECRETS_KEY", &format!("r1:{hex}"))]).is_ok());
    }

    #[test]
    fn metrics_are_off_by_default_and_never_on_the_public_listener() {
        assert_eq!(config(&[]).unwrap().metrics_addr, None);
        let on = config(&[("METRICS_ADDR", "127.0.0.1:9464")]).unwrap();
        assert_eq!(on.metrics_addr.map(|a| a.to_string()).as_deref(), Some("127.0.0.1:9464"));
        for same in ["127.0.0.1:3000", "0.0.0.0:3000"] {
            let err = config(&[("METRICS_ADDR", same)]).unwrap_err();
            assert!(err.contains("another address than LISTEN_ADDR"), "{same}: {err}");
        }
        assert!(config(&[("METRICS_ADDR", "nine")]).unwrap_err().contains("METRICS_ADDR must be host:port"));
    }

    #[test]
    fn proxies_are_not_counted_per_address_once_named() {
        assert!(config(&[]).unwrap().uncounted_peers.is_empty(), "a local client is counted by default");
        let c = config(&[("TRUSTED_PROXY_HEADER", "x-forwarded-for")]).unwrap();
        assert_eq!(c.uncounted_peers, app::server::gate::Cidr::loopback());
        let c = config(&[("TRUSTED_PROXIES", "10.0.0.0/8")]).unwrap();
        assert_eq!(c.uncounted_peers, vec![app::server::gate::Cidr::parse("10.0.0.0/8").unwrap()]);
        assert_eq!(config(&[]).unwrap().max_connections_per_address, 64);
    }

    #[test]
    fn bad_values_name_the_variable() {
        assert!(config(&[("LISTEN_ADDR", "nope")]).unwrap_err().contains("LISTEN_ADDR"));
        assert!(config(&[("COOKIE_SECURE", "maybe")]).unwrap_err().contains("COOKIE_SECURE"));
        assert!(config(&[("TWO_FACTOR_AUTHENTICATION_APP_NAME", "a:b")]).unwrap_err().contains("APP_NAME"));
        assert!(config(&[("APP_ENV", "staging")]).unwrap_err().contains("APP_ENV"));
        assert!(config(&[("SECRETS_KEY", "k:abcd")]).unwrap_err().contains("SECRETS_KEY"));
        assert!(config(&[("TRUSTED_PROXY_HEADER", "bad header")]).unwrap_err().contains("TRUSTED_PROXY_HEADER"));
        assert!(config(&[("ACCESS_TTL_SECONDS", "5")]).unwrap_err().contains("ACCESS_TTL_SECONDS"));
        assert!(config(&[("MAX_CONNECTIONS_PER_ADDRESS", "0")]).unwrap_err().contains("MAX_CONNECTIONS_PER_ADDRESS"));
        assert!(config(&[("BODY_TIMEOUT_SECONDS", "0")]).unwrap_err().contains("BODY_TIMEOUT_SECONDS"));
    }

    #[test]
    fn the_gate_cache_is_bounded_to_ten_seconds_on_both_databases() {
        for db in ["sqlite://data/x.db?mode=rwc", "postgres://u:p@localhost/x"] {
            for refused in ["11", "60", "3600"] {
                let err = config(&[("DATABASE_URL", db), ("GATE_CACHE_SECONDS", refused)]).unwrap_err();
                assert!(err.contains("GATE_CACHE_SECONDS") && err.contains("limit of 10 seconds"), "{err}");
            }
            for bad in ["-1", "two", ""] {
                let err = config(&[("DATABASE_URL", db), ("GATE_CACHE_SECONDS", bad)]).unwrap_err();
                assert!(err.contains("GATE_CACHE_SECONDS") && err.contains("between 0 and 10"), "{err}");
            }
            for ok in [0, 2, 10] {
                let c = config(&[("DATABASE_URL", db), ("GATE_CACHE_SECONDS", &ok.to_string())]).unwrap();
                assert_eq!(c.gate_cache_seconds, ok);
            }
            assert_eq!(config(&[("DATABASE_URL", db)]).unwrap().gate_cache_seconds, 2);
        }
    }
}
