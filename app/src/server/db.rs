//! All SQL lives here, as small functions over sqlx's `Any` driver so one
//! binary serves SQLite and PostgreSQL. The SQL is portable: `$n`
//! placeholders (SQLite accepts them too), `RETURNING`, BIGINT times.
//! Each security-relevant change is a single conditional statement, so
//! racing requests, even on two instances, cannot both win.

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, FromRow};

use super::gate_cache::{self, GateCache, Invalidation};
use crate::error::AppError;

mod logins;
pub use logins::{LoginRow, NewGateCookie, NewLogin, NewRefreshToken, RefreshRow};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    /// Gate decisions kept in memory; this layer tells it what changed.
    gate_cache: std::sync::Arc<GateCache>,
    /// Tests only: the next transaction fails at its Nth write (see
    /// `fail_next_transaction_at`), to prove nothing half-done survives.
    #[cfg(feature = "fault-injection")]
    fault: std::sync::Arc<std::sync::Mutex<Option<u32>>>,
    /// Tests only: named points where a request can be held (see `hooks`).
    pub hooks: super::hooks::Hooks,
}

/// Several writes that land together or not at all: dropped without
/// `commit`, everything is rolled back. Every operation that writes more
/// than one row goes through one of these.
pub struct Tx {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    backend: Backend,
    gate_cache: std::sync::Arc<GateCache>,
    /// Applied to the gate cache once the transaction has committed.
    invalidations: Vec<Invalidation>,
    #[cfg(feature = "fault-injection")]
    fail_at: Option<u32>,
    #[cfg(feature = "fault-injection")]
    writes: u32,
}

/// Rows deleted (or counted) per bounded table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pruned {
    pub sessions: u64,
    pub throttle: u64,
    pub audit: u64,
}

/// A user row. `Debug` leaves out the hash and the secrets.
#[derive(Clone)]
pub struct UserRow {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub totp_enabled: bool,
    pub totp_secret: Option<String>,
    pub totp_pending_secret: Option<String>,
    pub totp_last_step: Option<i64>,
    pub session_version: i64,
    /// Passkeys registered (kept with them in one transaction).
    pub passkey_count: i64,
    /// When the email address was proved by its link (None: not yet).
    pub email_verified_at: Option<i64>,
    /// When a notice's "This wasn't me" link locked the account (log-in
    /// is refused until a password reset clears it).
    pub locked_at: Option<i64>,
}

impl UserRow {
    /// Whether log-in owes a second factor: an authenticator app or a
    /// passkey.
    pub fn two_factor(&self) -> bool {
        self.totp_enabled || self.passkey_count > 0
    }
}

/// The row as the Any driver reads it: flags are 0/1 integers there.
#[derive(FromRow)]
struct UserRecord {
    id: i64,
    email: String,
    name: String,
    password_hash: String,
    totp_enabled: i64,
    totp_secret: Option<String>,
    totp_pending_secret: Option<String>,
    totp_last_step: Option<i64>,
    session_version: i64,
    passkey_count: i64,
    email_verified_at: Option<i64>,
    locked_at: Option<i64>,
}

impl From<UserRecord> for UserRow {
    fn from(r: UserRecord) -> Self {
        UserRow {
            id: r.id,
            email: r.email,
            name: r.name,
            password_hash: r.password_hash,
            totp_enabled: r.totp_enabled == 1,
            totp_secret: r.totp_secret,
            totp_pending_secret: r.totp_pending_secret,
            totp_last_step: r.totp_last_step,
            session_version: r.session_version,
            passkey_count: r.passkey_count,
            email_verified_at: r.email_verified_at,
            locked_at: r.locked_at,
        }
    }
}

impl std::fmt::Debug for UserRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRow")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("totp_enabled", &self.totp_enabled)
            .field("session_version", &self.session_version)
            .finish_non_exhaustive()
    }
}

/// A guessing limit: `free` failures, then a delay doubling from 1 s up to
/// `cap`; after `window` quiet seconds the count starts over.
#[derive(Debug, Clone, Copy)]
pub struct Throttle {
    pub free: i64,
    pub cap: i64,
    pub window: i64,
}

/// Who a live portal session is, as the session cache keeps it: identity
/// and validity only, never the password hash or a second-factor secret.
/// Every write to these fields bumps the session version and invalidates
/// the user's entries (see `Tx::enable_totp` and its neighbours).
#[derive(Debug, Clone)]
pub struct SessionUser {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub totp_enabled: bool,
    pub passkey_count: i64,
    pub email_verified: bool,
    pub session_version: i64,
    /// The log-in (its id, the refresh family).
    pub family: String,
    /// When the log-in expires.
    pub live_until: i64,
    /// How the log-in was reached.
    pub amr: super::logins::Amr,
}

impl SessionUser {
    /// Whether log-in owes a second factor (see `UserRow::two_factor`).
    pub fn two_factor(&self) -> bool {
        self.totp_enabled || self.passkey_count > 0
    }
}

/// A stored passkey or security key.
#[derive(Debug, Clone, FromRow)]
pub struct PasskeyRow {
    pub id: String,
    pub user_id: i64,
    pub credential_id: String,
    pub name: String,
    /// webauthn-rs's JSON (see `webauthn`).
    pub credential: String,
    pub backup_eligible: i64,
    pub backup_state: i64,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// A WebAuthn ceremony taken out of the database by its finish step.
#[derive(Debug, Clone, FromRow)]
pub struct CeremonyRow {
    pub kind: String,
    pub user_id: Option<i64>,
    pub bound_to: Option<String>,
    pub name: Option<String>,
    pub state: String,
    pub expires_at: i64,
}

pub struct NewCeremony<'a> {
    pub id_hash: &'a str,
    pub kind: &'a str,
    pub user_id: Option<i64>,
    pub bound_to: Option<&'a str>,
    pub name: Option<&'a str>,
    pub state: &'a str,
    pub expires_at: i64,
}

pub struct NewPasskey<'a> {
    pub id: &'a str,
    pub user_id: i64,
    pub credential_id: &'a str,
    pub name: &'a str,
    pub credential: &'a str,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub now: i64,
}

/// The person a live gate cookie names.
#[derive(Debug, Clone)]
pub struct GateSubject {
    pub user_id: i64,
    pub email: String,
    pub name: String,
    /// Whether the person confirmed the email address (mailed link).
    pub email_verified: bool,
    pub two_factor: bool,
    pub groups: Vec<String>,
    /// The cookie domain the gate cookie was issued for.
    pub domain: String,
    /// The log-in session it belongs to.
    pub family: String,
    /// When the gate cookie (and its session family) expires.
    pub expires_at: i64,
}

pub struct NewAuditEvent<'a> {
    pub user_id: Option<i64>,
    pub kind: &'a str,
    pub at: i64,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

#[derive(Debug, Clone, FromRow)]
pub struct AuditRow {
    pub kind: String,
    pub at: i64,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone, FromRow)]
pub struct UserSummary {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub totp_enabled: i64,
    pub created_at: i64,
}

#[derive(Debug, Clone, FromRow)]
pub struct SealedSecrets {
    pub id: i64,
    pub totp_secret: Option<String>,
    pub totp_pending_secret: Option<String>,
}

/// A database error seen by a request: unreachable or busy means 503, the
/// rest is a bug and 500. Either way it is logged here, once, with its cause.
impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        if is_unavailable(&e) {
            tracing::warn!(error = %e, "database unavailable");
            AppError::unavailable()
        } else {
            tracing::error!(error = ?e, "database error");
            AppError::internal()
        }
    }
}

fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            // SQLite: busy (5), locked (6), read-only (8), I/O (10), full (13),
            // can't open (14). PostgreSQL: class 08 (connection), 57P0x
            // (shutdown), 53xxx (resources).
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            let primary = code.parse::<i64>().map(|c| c & 0xff).unwrap_or(-1);
            matches!(primary, 5 | 6 | 8 | 10 | 13 | 14)
                || code.starts_with("08")
                || code.starts_with("57P")
                || code.starts_with("53")
        }
        _ => false,
    }
}

impl Db {
    /// Connects and applies the embedded migrations. A failure here stops
    /// start-up with the returned message.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, String> {
        Self::connect_with_timeout(url, max_connections, Duration::from_secs(5)).await
    }

    /// `acquire_timeout` bounds how long a request waits for a connection
    /// (and so how soon it answers 503 while the database is away).
    pub async fn connect_with_timeout(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> Result<Self, String> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(format!("DATABASE_URL must start with sqlite: or postgres://, got {:?}", scheme(url)));
        };
        let options = AnyConnectOptions::from_str(url).map_err(|e| format!("DATABASE_URL is not valid: {e}"))?;
        let mut pool = AnyPoolOptions::new().max_connections(max_connections).acquire_timeout(acquire_timeout);
        if backend == Backend::Sqlite {
            // WAL lets readers run beside the one writer; busy_timeout makes a
            // writer wait for the lock instead of failing at once.
            pool = pool.after_connect(|conn, _meta| {
                Box::pin(async move {
                    sqlx::raw_sql(
                        "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; \
                         PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
                    )
                    .execute(conn)
                    .await?;
                    Ok(())
                })
            });
        }
        let pool = pool
            .connect_with(options)
            .await
            .map_err(|e| format!("could not connect to the database ({}): {e}", scheme(url)))?;
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&pool).await.map_err(|e| format!("database migration failed: {e}"))?;
        Ok(Self {
            pool,
            // On PostgreSQL other instances change things too: the cache
            // stays off until the listener hears them (see `gate_cache`).
            gate_cache: std::sync::Arc::new(GateCache::new(backend == Backend::Sqlite)),
            backend,
            #[cfg(feature = "fault-injection")]
            fault: Default::default(),
            hooks: Default::default(),
        })
    }

    pub async fn begin(&self) -> Result<Tx, AppError> {
        Ok(Tx {
            tx: self.pool.begin().await?,
            backend: self.backend,
            gate_cache: self.gate_cache.clone(),
            invalidations: Vec::new(),
            #[cfg(feature = "fault-injection")]
            fail_at: self.fault.lock().map(|mut f| f.take()).unwrap_or(None),
            #[cfg(feature = "fault-injection")]
            writes: 0,
        })
    }

    /// Tests only: the next transaction begun fails at its `nth` write with
    /// the error a lost database gives (503).
    #[cfg(feature = "fault-injection")]
    pub fn fail_next_transaction_at(&self, nth: u32) {
        if let Ok(mut f) = self.fault.lock() {
            *f = Some(nth);
        }
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The columns of a `UserRow`, in one place for every query that reads one.
    const USER_COLUMNS: &'static str = "id, email, name, password_hash, totp_enabled, totp_secret, totp_pending_secret, totp_last_step, session_version, passkey_count, email_verified_at, locked_at";

    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserRow>, AppError> {
        Ok(sqlx::query_as::<_, UserRecord>(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM users WHERE email = $1",
            Self::USER_COLUMNS
        )))
        .bind(email)
        .fetch_optional(&self.pool)
        .await?
        .map(UserRow::from))
    }

    pub async fn user_by_id(&self, id: i64) -> Result<Option<UserRow>, AppError> {
        Ok(sqlx::query_as::<_, UserRecord>(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM users WHERE id = $1",
            Self::USER_COLUMNS
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .map(UserRow::from))
    }

    /// Deletes what no longer protects anything: log-ins that expired or
    /// ended before `keep_spent_until` (an ended one is kept that long for
    /// the person's list), the refresh tokens of those, rotated tokens
    /// older than `keep_spent_until` (kept that long to catch a stolen
    /// copy replayed), throttle rows quiet since `throttle_quiet_since`,
    /// and audit events older than `audit_since`. Returns the rows deleted
    /// per table (`sessions`: refresh tokens).
    pub async fn prune(
        &self,
        now: i64,
        keep_spent_until: i64,
        throttle_quiet_since: i64,
        audit_since: i64,
    ) -> Result<Pruned, AppError> {
        let sessions = sqlx::query(
            "DELETE FROM sessions WHERE expires_at <= $1 OR (used_at IS NOT NULL AND used_at < $2) \
             OR family IN (SELECT id FROM logins WHERE revoked_at < $2)",
        )
        .bind(now)
        .bind(keep_spent_until)
        .execute(&self.pool)
        .await?
        .rows_affected();
        sqlx::query("DELETE FROM logins WHERE expires_at <= $1 OR revoked_at < $2")
            .bind(now)
            .bind(keep_spent_until)
            .execute(&self.pool)
            .await?;
        let throttle = sqlx::query("DELETE FROM throttle WHERE last_at < $1 AND last_at + delay_seconds < $2")
            .bind(throttle_quiet_since)
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM spent_stage_tokens WHERE expires_at < $1").bind(now).execute(&self.pool).await?;
        sqlx::query("DELETE FROM webauthn_ceremonies WHERE expires_at < $1").bind(now).execute(&self.pool).await?;
        // Gate cookies whose log-in ended.
        sqlx::query(
            "DELETE FROM gate_cookies WHERE expires_at <= $1 OR NOT EXISTS \
             (SELECT 1 FROM logins l WHERE l.id = gate_cookies.family AND l.revoked_at IS NULL)",
        )
        .bind(now)
        .execute(&self.pool)
        .await?;
        let audit = sqlx::query("DELETE FROM audit_events WHERE at < $1")
            .bind(audit_since)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(Pruned { sessions, throttle, audit })
    }

    /// Rows per table, for the prune tests and the operator.
    pub async fn row_counts(&self) -> Result<Pruned, AppError> {
        let (sessions, throttle, audit): (i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM sessions), (SELECT COUNT(*) FROM throttle), (SELECT COUNT(*) FROM audit_events)",
        )
        .fetch_one(&self.pool)
        .await?;
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        Ok(Pruned { sessions: n(sessions), throttle: n(throttle), audit: n(audit) })
    }

    /// Counts one more second-factor attempt before it is evaluated, if the
    /// account is under `cap` consecutive failures: `None` means refused.
    /// One conditional update, so parallel attempts cannot pass the cap.
    pub async fn reserve_factor_attempt(&self, id: i64, cap: i64) -> Result<Option<i64>, AppError> {
        let row: Option<(i64,)> = sqlx::query_as(
            "UPDATE users SET factor_failures = factor_failures + 1 WHERE id = $1 AND factor_failures < $2 \
             RETURNING factor_failures",
        )
        .bind(id)
        .bind(cap)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(n,)| n))
    }

    /// A second factor passed: the consecutive count starts over.
    pub async fn clear_factor_failures(&self, id: i64) -> Result<(), AppError> {
        sqlx::query("UPDATE users SET factor_failures = 0 WHERE id = $1").bind(id).execute(&self.pool).await?;
        Ok(())
    }

    /// Stores a pending secret. The active one (if any) is untouched.
    pub async fn set_pending_secret(&self, id: i64, secret: &str) -> Result<(), AppError> {
        sqlx::query("UPDATE users SET totp_pending_secret = $1 WHERE id = $2")
            .bind(secret)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Accepts a TOTP time step for a user if it is later than the last
    /// accepted one: the replay guard as one compare-and-set. Exactly one of
    /// several racing requests with the same code gets `true`. A success
    /// also starts the consecutive-failure count over, in the same write.
    pub async fn accept_totp_step(&self, id: i64, step: i64) -> Result<bool, AppError> {
        let done = sqlx::query(
            "UPDATE users SET totp_last_step = $1, factor_failures = 0 \
             WHERE id = $2 AND totp_enabled = 1 AND (totp_last_step IS NULL OR totp_last_step < $1)",
        )
        .bind(step)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records one attempt against `key` if its delay has passed, in one
    /// conditional upsert: `Ok(None)` means the attempt may proceed (and is
    /// already counted as a failure until `throttle_reset`), `Ok(Some(s))`
    /// means it is refused for `s` more seconds. Failures past `free` double
    /// the delay, up to `cap`; a key quiet for `window` seconds starts over.
    pub async fn throttle_attempt(&self, key: &str, policy: Throttle, now: i64) -> Result<Option<i64>, AppError> {
        let window_start = now - policy.window;
        let counted: Option<(i64,)> = sqlx::query_as(
            "INSERT INTO throttle (key, failures, delay_seconds, last_at) VALUES ($1, 1, 0, $2) \
             ON CONFLICT (key) DO UPDATE SET \
               failures = CASE WHEN throttle.last_at < $3 THEN 1 ELSE throttle.failures + 1 END, \
               delay_seconds = CASE \
                 WHEN throttle.last_at < $3 THEN 0 \
                 WHEN throttle.failures + 1 < $4 THEN 0 \
                 WHEN throttle.delay_seconds = 0 THEN 1 \
                 WHEN throttle.delay_seconds * 2 > $5 THEN $5 \
                 ELSE throttle.delay_seconds * 2 END, \
               last_at = $2 \
             WHERE throttle.last_at < $3 OR throttle.last_at + throttle.delay_seconds <= $2 \
             RETURNING failures",
        )
        .bind(key)
        .bind(now)
        .bind(window_start)
        .bind(policy.free)
        .bind(policy.cap)
        .fetch_optional(&self.pool)
        .await?;
        if counted.is_some() {
            return Ok(None);
        }
        let wait: Option<(i64,)> = sqlx::query_as("SELECT last_at + delay_seconds - $2 FROM throttle WHERE key = $1")
            .bind(key)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        Ok(Some(wait.map(|(w,)| w.max(1)).unwrap_or(1)))
    }

    /// True once per throttling episode of `key` (the first refusal since
    /// its last evaluated failure): the one refusal worth auditing.
    pub async fn throttle_first_refusal(&self, key: &str) -> Result<bool, AppError> {
        let done = sqlx::query(
            "UPDATE throttle SET noticed_at = last_at WHERE key = $1 AND (noticed_at IS NULL OR noticed_at <> last_at)",
        )
        .bind(key)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives back one attempt reserved on `key` (an address whose attempt
    /// succeeded): its other failures stay counted.
    pub async fn throttle_release(&self, key: &str) -> Result<(), AppError> {
        sqlx::query("UPDATE throttle SET failures = failures - 1 WHERE key = $1 AND failures > 0")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets the failures of `key` (after a success).
    pub async fn throttle_reset(&self, key: &str) -> Result<(), AppError> {
        sqlx::query("DELETE FROM throttle WHERE key = $1").bind(key).execute(&self.pool).await?;
        Ok(())
    }

    const PASSKEY_COLUMNS: &'static str =
        "id, user_id, credential_id, name, credential, backup_eligible, backup_state, created_at, last_used_at";

    /// A user's passkeys, oldest first.
    pub async fn passkeys_of(&self, user_id: i64) -> Result<Vec<PasskeyRow>, AppError> {
        let sql = format!("SELECT {} FROM passkeys WHERE user_id = $1 ORDER BY created_at, id", Self::PASSKEY_COLUMNS);
        Ok(sqlx::query_as::<_, PasskeyRow>(sqlx::AssertSqlSafe(sql)).bind(user_id).fetch_all(&self.pool).await?)
    }

    pub async fn passkey_by_credential(&self, credential_id: &str) -> Result<Option<PasskeyRow>, AppError> {
        let sql = format!("SELECT {} FROM passkeys WHERE credential_id = $1", Self::PASSKEY_COLUMNS);
        Ok(sqlx::query_as::<_, PasskeyRow>(sqlx::AssertSqlSafe(sql))
            .bind(credential_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// The account's WebAuthn user handle, made on first use.
    pub async fn webauthn_handle(&self, user_id: i64, fresh: &str) -> Result<String, AppError> {
        sqlx::query("UPDATE users SET webauthn_id = $1 WHERE id = $2 AND webauthn_id IS NULL")
            .bind(fresh)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        let (handle,): (Option<String>,) =
            sqlx::query_as("SELECT webauthn_id FROM users WHERE id = $1").bind(user_id).fetch_one(&self.pool).await?;
        handle.ok_or_else(AppError::internal)
    }

    pub async fn user_by_webauthn_handle(&self, handle: &str) -> Result<Option<UserRow>, AppError> {
        Ok(sqlx::query_as::<_, UserRecord>(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM users WHERE webauthn_id = $1",
            Self::USER_COLUMNS
        )))
        .bind(handle)
        .fetch_optional(&self.pool)
        .await?
        .map(UserRow::from))
    }

    pub async fn insert_ceremony(&self, c: &NewCeremony<'_>) -> Result<(), AppError> {
        sqlx::query(
            "INSERT INTO webauthn_ceremonies (id, kind, user_id, bound_to, name, state, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(c.id_hash)
        .bind(c.kind)
        .bind(c.user_id)
        .bind(c.bound_to)
        .bind(c.name)
        .bind(c.state)
        .bind(c.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Takes a ceremony out, in one statement: of requests finishing the
    /// same ceremony (on any instance), one gets it. Expired ones are
    /// taken too, and refused by the caller.
    pub async fn take_ceremony(&self, id_hash: &str) -> Result<Option<CeremonyRow>, AppError> {
        Ok(sqlx::query_as::<_, CeremonyRow>(
            "DELETE FROM webauthn_ceremonies WHERE id = $1 \
             RETURNING kind, user_id, bound_to, name, state, expires_at",
        )
        .bind(id_hash)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Stores what a verified assertion moved on (counter, backup state),
    /// only if the credential is still as it was read: of two assertions
    /// verified against the same counter, one is recorded.
    pub async fn record_passkey_use(
        &self,
        id: &str,
        before: &str,
        after: &str,
        backup_state: bool,
        now: i64,
    ) -> Result<bool, AppError> {
        let done = sqlx::query(
            "UPDATE passkeys SET credential = $1, backup_state = $2, last_used_at = $3 \
             WHERE id = $4 AND credential = $5",
        )
        .bind(after)
        .bind(i64::from(backup_state))
        .bind(now)
        .bind(id)
        .bind(before)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn rename_passkey(&self, user_id: i64, id: &str, name: &str) -> Result<bool, AppError> {
        let done = sqlx::query("UPDATE passkeys SET name = $1 WHERE id = $2 AND user_id = $3")
            .bind(name)
            .bind(id)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn groups_of(&self, user_id: i64) -> Result<Vec<String>, AppError> {
        let rows: Vec<(String,)> = sqlx::query_as("SELECT name FROM user_groups WHERE user_id = $1 ORDER BY name")
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|(g,)| g).collect())
    }

    /// Adds or removes a group; true if that changed anything.
    pub async fn set_group(&self, user_id: i64, group: &str, member: bool) -> Result<bool, AppError> {
        let mut tx = self.begin().await?;
        let done = if member {
            sqlx::query("INSERT INTO user_groups (user_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(user_id)
                .bind(group)
                .execute(&mut *tx.tx)
                .await?
        } else {
            sqlx::query("DELETE FROM user_groups WHERE user_id = $1 AND name = $2")
                .bind(user_id)
                .bind(group)
                .execute(&mut *tx.tx)
                .await?
        };
        tx.invalidate(Invalidation::User(user_id)).await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Swaps a password hash for another of the same password (a rehash),
    /// only if it is still the one read: a concurrent change wins.
    pub async fn replace_password_hash(&self, id: i64, old: &str, new: &str) -> Result<(), AppError> {
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2 AND password_hash = $3")
            .bind(new)
            .bind(id)
            .bind(old)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Spends a recovery code, given every stored form it may have (see
    /// `SecretBox::recovery_candidates`): one conditional update, so true for
    /// exactly one of any racing requests.
    pub async fn use_recovery_code(&self, user_id: i64, candidates: &[String], now: i64) -> Result<bool, AppError> {
        if candidates.is_empty() {
            return Ok(false);
        }
        let list: Vec<String> = (0..candidates.len()).map(|i| format!("${}", i + 3)).collect();
        let sql = format!(
            "UPDATE recovery_codes SET used_at = $1 WHERE user_id = $2 AND code_hash IN ({}) AND used_at IS NULL",
            list.join(", ")
        );
        // Built from numbered placeholders only; every value is bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now).bind(user_id);
        for candidate in candidates {
            query = query.bind(candidate);
        }
        let done = query.execute(&self.pool).await?;
        Ok(done.rows_affected() >= 1)
    }

    /// The stored hashes of unused recovery codes with the users they
    /// belong to, for the key-rotation report.
    pub async fn unused_recovery_hashes(&self) -> Result<Vec<(i64, String)>, AppError> {
        Ok(sqlx::query_as("SELECT user_id, code_hash FROM recovery_codes WHERE used_at IS NULL")
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn recovery_codes_left(&self, user_id: i64) -> Result<i64, AppError> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL")
            .bind(user_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(n)
    }

    pub async fn insert_audit(&self, e: &NewAuditEvent<'_>) -> Result<(), AppError> {
        sqlx::query("INSERT INTO audit_events (user_id, kind, at, ip, user_agent) VALUES ($1, $2, $3, $4, $5)")
            .bind(e.user_id)
            .bind(e.kind)
            .bind(e.at)
            .bind(e.ip)
            .bind(e.user_agent)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A user's latest events of the given kinds (or of every other kind,
    /// with `exclude`), newest first.
    pub async fn recent_audit(
        &self,
        user_id: i64,
        kinds: &[&str],
        exclude: bool,
        limit: i64,
    ) -> Result<Vec<AuditRow>, AppError> {
        // Kinds are the app's own constants; they are bound, never spliced.
        let list = kinds.join(",");
        let sql = if exclude {
            "SELECT kind, at, ip, user_agent FROM audit_events WHERE user_id = $1 \
             AND (',' || $2 || ',') NOT LIKE ('%,' || kind || ',%') ORDER BY at DESC, id DESC LIMIT $3"
        } else {
            "SELECT kind, at, ip, user_agent FROM audit_events WHERE user_id = $1 \
             AND (',' || $2 || ',') LIKE ('%,' || kind || ',%') ORDER BY at DESC, id DESC LIMIT $3"
        };
        Ok(sqlx::query_as::<_, AuditRow>(sql).bind(user_id).bind(list).bind(limit).fetch_all(&self.pool).await?)
    }

    /// Every stored secret, for re-encryption under a new key.
    pub async fn sealed_secrets(&self) -> Result<Vec<SealedSecrets>, AppError> {
        Ok(sqlx::query_as::<_, SealedSecrets>(
            "SELECT id, totp_secret, totp_pending_secret FROM users \
             WHERE totp_secret IS NOT NULL OR totp_pending_secret IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Swaps a user's sealed secrets if they are still the ones read.
    pub async fn replace_sealed(&self, old: &SealedSecrets, new: &SealedSecrets) -> Result<bool, AppError> {
        let done = sqlx::query(
            "UPDATE users SET totp_secret = $1, totp_pending_secret = $2 WHERE id = $3 \
             AND COALESCE(totp_secret, '') = $4 AND COALESCE(totp_pending_secret, '') = $5",
        )
        .bind(new.totp_secret.as_deref())
        .bind(new.totp_pending_secret.as_deref())
        .bind(old.id)
        .bind(old.totp_secret.as_deref().unwrap_or(""))
        .bind(old.totp_pending_secret.as_deref().unwrap_or(""))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every account, oldest first, for the operator's `user list`.
    pub async fn list_users(&self) -> Result<Vec<UserSummary>, AppError> {
        Ok(sqlx::query_as::<_, UserSummary>("SELECT id, email, name, totp_enabled, created_at FROM users ORDER BY id")
            .fetch_all(&self.pool)
            .await?)
    }

    /// Cheap round trip for readiness checks.
    pub async fn ping(&self) -> Result<(), AppError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

fn scheme(url: &str) -> &str {
    url.split(':').next().unwrap_or("")
}

impl Tx {
    /// Inserts a user; `None` when the email is taken.
    pub async fn insert_user(
        &mut self,
        email: &str,
        name: &str,
        password_hash: &str,
        now: i64,
    ) -> Result<Option<UserRow>, AppError> {
        self.step()?;
        let result = sqlx::query_as::<_, UserRecord>(sqlx::AssertSqlSafe(format!(
            "INSERT INTO users (email, name, password_hash, created_at) VALUES ($1, $2, $3, $4) RETURNING {}",
            Db::USER_COLUMNS
        )))
        .bind(email)
        .bind(name)
        .bind(password_hash)
        .bind(now)
        .fetch_one(&mut *self.tx)
        .await;
        match result {
            Ok(row) => Ok(Some(row.into())),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Marks a password-stage token as exchanged: true the first time only.
    pub async fn spend_stage_token(&mut self, jti: &str, expires_at: i64) -> Result<bool, AppError> {
        self.step()?;
        let done = sqlx::query(
            "INSERT INTO spent_stage_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING",
        )
        .bind(jti)
        .bind(expires_at)
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn commit(self) -> Result<(), AppError> {
        self.tx.commit().await?;
        for what in &self.invalidations {
            self.gate_cache.invalidate(what);
        }
        Ok(())
    }

    /// Records that gate decisions about `what` must be made afresh: here
    /// once this transaction commits, and on PostgreSQL on every instance
    /// (the notification is delivered only if it commits).
    async fn invalidate(&mut self, what: Invalidation) -> Result<(), AppError> {
        if self.invalidations.contains(&what) {
            return Ok(());
        }
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(gate_cache::CHANNEL)
                .bind(what.payload())
                .execute(&mut *self.tx)
                .await?;
        }
        self.invalidations.push(what);
        Ok(())
    }

    /// Counts a write; with fault injection on, fails the chosen one.
    fn step(&mut self) -> Result<(), AppError> {
        #[cfg(feature = "fault-injection")]
        {
            self.writes += 1;
            if self.fail_at == Some(self.writes) {
                return Err(AppError::unavailable());
            }
        }
        Ok(())
    }

    /// Promotes the pending secret to active, turns 2FA on, records the step
    /// that confirmed it (so that code cannot log in afterwards) and bumps the
    /// session version, all in one statement. It only applies if the pending
    /// secret is still the one the code was checked against. Returns the new
    /// session version, or `None` if nothing changed.
    pub async fn enable_totp(&mut self, id: i64, pending: &str, step: i64) -> Result<Option<i64>, AppError> {
        self.step()?;
        let version: Option<(i64,)> = sqlx::query_as(
            "UPDATE users SET totp_secret = totp_pending_secret, totp_pending_secret = NULL, \
             totp_enabled = 1, totp_last_step = $1, session_version = session_version + 1 \
             WHERE id = $2 AND totp_pending_secret = $3 \
             RETURNING session_version",
        )
        .bind(step)
        .bind(id)
        .bind(pending)
        .fetch_optional(&mut *self.tx)
        .await?;
        if version.is_some() {
            self.invalidate(Invalidation::User(id)).await?;
        }
        Ok(version.map(|(v,)| v))
    }

    /// Turns 2FA off: clears both secrets, the replay step and the recovery
    /// codes, and bumps the session version. Returns the new version.
    pub async fn disable_totp(&mut self, id: i64) -> Result<i64, AppError> {
        self.step()?;
        let (version,): (i64,) = sqlx::query_as(
            "UPDATE users SET totp_enabled = 0, totp_secret = NULL, totp_pending_secret = NULL, \
             totp_last_step = NULL, factor_failures = 0, session_version = session_version + 1 WHERE id = $1 \
             RETURNING session_version",
        )
        .bind(id)
        .fetch_one(&mut *self.tx)
        .await?;
        // The recovery codes stay while a passkey keeps 2FA on.
        sqlx::query(
            "DELETE FROM recovery_codes WHERE user_id = $1 \
             AND (SELECT passkey_count FROM users WHERE id = $1) = 0",
        )
        .bind(id)
        .execute(&mut *self.tx)
        .await?;
        self.invalidate(Invalidation::User(id)).await?;
        Ok(version)
    }

    /// Moves the session version on: every token issued before is refused.
    pub async fn bump_session_version(&mut self, id: i64) -> Result<i64, AppError> {
        self.step()?;
        let (version,): (i64,) = sqlx::query_as(
            "UPDATE users SET session_version = session_version + 1 WHERE id = $1 RETURNING session_version",
        )
        .bind(id)
        .fetch_one(&mut *self.tx)
        .await?;
        self.invalidate(Invalidation::User(id)).await?;
        Ok(version)
    }

    /// Stores a new password hash and bumps the session version.
    pub async fn set_password(&mut self, id: i64, hash: &str) -> Result<i64, AppError> {
        self.step()?;
        let (version,): (i64,) = sqlx::query_as(
            "UPDATE users SET password_hash = $1, session_version = session_version + 1 WHERE id = $2 \
             RETURNING session_version",
        )
        .bind(hash)
        .bind(id)
        .fetch_one(&mut *self.tx)
        .await?;
        self.invalidate(Invalidation::User(id)).await?;
        Ok(version)
    }

    /// Replaces a user's recovery codes with new ones (hashes), atomically.
    pub async fn replace_recovery_codes(&mut self, user_id: i64, hashes: &[String]) -> Result<(), AppError> {
        self.step()?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1").bind(user_id).execute(&mut *self.tx).await?;
        for hash in hashes {
            sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
                .bind(user_id)
                .bind(hash)
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(())
    }

    /// Stores a new passkey and counts it on the account; `None` if the
    /// credential is already registered (to anyone). Returns the count.
    pub async fn insert_passkey(&mut self, p: &NewPasskey<'_>) -> Result<Option<i64>, AppError> {
        self.step()?;
        let inserted = sqlx::query(
            "INSERT INTO passkeys (id, user_id, credential_id, name, credential, backup_eligible, backup_state, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (credential_id) DO NOTHING",
        )
        .bind(p.id)
        .bind(p.user_id)
        .bind(p.credential_id)
        .bind(p.name)
        .bind(p.credential)
        .bind(i64::from(p.backup_eligible))
        .bind(i64::from(p.backup_state))
        .bind(p.now)
        .execute(&mut *self.tx)
        .await?;
        if inserted.rows_affected() != 1 {
            return Ok(None);
        }
        let (count,): (i64,) =
            sqlx::query_as("UPDATE users SET passkey_count = passkey_count + 1 WHERE id = $1 RETURNING passkey_count")
                .bind(p.user_id)
                .fetch_one(&mut *self.tx)
                .await?;
        self.invalidate(Invalidation::User(p.user_id)).await?;
        Ok(Some(count))
    }

    /// Removes one of the user's passkeys: the count left and whether the
    /// app is on (read in the same statement), or `None` if there was no
    /// such passkey.
    pub async fn delete_passkey(&mut self, user_id: i64, id: &str) -> Result<Option<(i64, bool)>, AppError> {
        self.step()?;
        let deleted = sqlx::query("DELETE FROM passkeys WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user_id)
            .execute(&mut *self.tx)
            .await?;
        if deleted.rows_affected() != 1 {
            return Ok(None);
        }
        let (count, app): (i64, i64) = sqlx::query_as(
            "UPDATE users SET passkey_count = passkey_count - 1 WHERE id = $1 RETURNING passkey_count, totp_enabled",
        )
        .bind(user_id)
        .fetch_one(&mut *self.tx)
        .await?;
        self.invalidate(Invalidation::User(user_id)).await?;
        Ok(Some((count, app == 1)))
    }

    /// Removes every passkey of the user (an operator's reset).
    pub async fn delete_all_passkeys(&mut self, user_id: i64) -> Result<u64, AppError> {
        self.step()?;
        let deleted =
            sqlx::query("DELETE FROM passkeys WHERE user_id = $1").bind(user_id).execute(&mut *self.tx).await?;
        sqlx::query("UPDATE users SET passkey_count = 0 WHERE id = $1").bind(user_id).execute(&mut *self.tx).await?;
        self.invalidate(Invalidation::User(user_id)).await?;
        Ok(deleted.rows_affected())
    }

    /// Deletes the recovery codes (two-factor protection is off).
    pub async fn delete_recovery_codes(&mut self, user_id: i64) -> Result<(), AppError> {
        self.step()?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1").bind(user_id).execute(&mut *self.tx).await?;
        Ok(())
    }
}

impl Db {
    /// Follows the other instances' changes on PostgreSQL (`LISTEN`), for
    /// the gate cache: on while listening, off and empty whenever the
    /// connection is lost, until it is back. Runs for the life of the server.
    pub async fn follow_gate_changes(&self, url: String) {
        use sqlx::postgres::PgListener;
        let cache = self.gate_cache.clone();
        loop {
            let listener = match PgListener::connect(&url).await {
                Ok(mut listener) => match listener.listen(gate_cache::CHANNEL).await {
                    Ok(()) => Some(listener),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not LISTEN for gate changes; the gate cache stays off");
                        None
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "could not connect to LISTEN for gate changes; the gate cache stays off");
                    None
                }
            };
            let Some(mut listener) = listener else {
                cache.reset(false);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            };
            // Anything from before is unknown: start empty, then follow.
            cache.reset(true);
            loop {
                match listener.try_recv().await {
                    Ok(Some(notification)) => {
                        if let Some(what) = Invalidation::parse(notification.payload()) {
                            cache.invalidate(&what);
                        }
                    }
                    // The connection was lost: what was said meanwhile is
                    // lost with it.
                    Ok(None) | Err(_) => {
                        tracing::warn!(
                            "lost the LISTEN connection for gate changes; the gate cache is off until it is back"
                        );
                        cache.reset(false);
                        break;
                    }
                }
            }
        }
    }

    /// The gate decisions this process keeps (see `gate_cache`).
    pub fn gate_cache(&self) -> &GateCache {
        &self.gate_cache
    }

    pub fn is_postgres(&self) -> bool {
        self.backend == Backend::Postgres
    }
}

// ---------------------------------------------------------------- mail

/// A message to send, as queued (see migration 0009).
pub struct NewMail<'a> {
    pub kind: &'a str,
    pub user_id: Option<i64>,
    pub address: &'a str,
    pub event_at: i64,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub now: i64,
}

/// A queued message, as the worker and the operator read it.
#[derive(Debug, Clone, FromRow)]
pub struct MailRow {
    pub id: i64,
    pub kind: String,
    pub user_id: Option<i64>,
    pub address: String,
    pub event_at: i64,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: i64,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub sent_at: Option<i64>,
}

const MAIL_COLUMNS: &str = "id, kind, user_id, address, event_at, ip, user_agent, created_at, status, attempts, next_attempt_at, last_error, sent_at";

impl Db {
    /// Queues one message (a single row: no transaction needed).
    pub async fn enqueue_mail(&self, m: &NewMail<'_>) -> Result<i64, AppError> {
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO mail_queue (kind, user_id, address, event_at, ip, user_agent, created_at, next_attempt_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id",
        )
        .bind(m.kind)
        .bind(m.user_id)
        .bind(m.address)
        .bind(m.event_at)
        .bind(m.ip)
        .bind(m.user_agent)
        .bind(m.now)
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }

    /// Pending messages whose time has come and that no instance holds.
    pub async fn due_mail(&self, now: i64, limit: i64) -> Result<Vec<MailRow>, AppError> {
        Ok(sqlx::query_as::<_, MailRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {MAIL_COLUMNS} FROM mail_queue WHERE status = 'pending' AND next_attempt_at <= $1 \
             AND (lease_until IS NULL OR lease_until <= $1) ORDER BY id LIMIT $2"
        )))
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Takes a due message for one sending attempt, holding it until
    /// `lease_until`: true for exactly one of racing instances.
    pub async fn claim_mail(&self, id: i64, now: i64, lease_until: i64) -> Result<bool, AppError> {
        let done = sqlx::query(
            "UPDATE mail_queue SET lease_until = $3, attempts = attempts + 1 WHERE id = $1 AND status = 'pending' \
             AND next_attempt_at <= $2 AND (lease_until IS NULL OR lease_until <= $2)",
        )
        .bind(id)
        .bind(now)
        .bind(lease_until)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records a delivered message (the row stays, without any text, for
    /// `server mail queue` until pruned).
    pub async fn mail_sent(&self, id: i64, now: i64) -> Result<(), AppError> {
        sqlx::query(
            "UPDATE mail_queue SET status = 'sent', sent_at = $2, lease_until = NULL, last_error = NULL WHERE id = $1",
        )
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a failed attempt: tried again at `retry_at`, or given up
    /// (`failed`) when that is `None`.
    pub async fn mail_failed(&self, id: i64, error: &str, retry_at: Option<i64>) -> Result<(), AppError> {
        let status = if retry_at.is_some() { "pending" } else { "failed" };
        sqlx::query(
            "UPDATE mail_queue SET status = $2, next_attempt_at = COALESCE($3, next_attempt_at), lease_until = NULL, \
             last_error = $4 WHERE id = $1",
        )
        .bind(id)
        .bind(status)
        .bind(retry_at)
        .bind(error)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets a message that is not to be sent (a reset asked for an
    /// address with no account, a verification no longer needed).
    pub async fn drop_mail(&self, id: i64) -> Result<(), AppError> {
        sqlx::query("DELETE FROM mail_queue WHERE id = $1").bind(id).execute(&self.pool).await?;
        Ok(())
    }

    /// One message by id (the operator's test message).
    pub async fn mail_by_id(&self, id: i64) -> Result<Option<MailRow>, AppError> {
        Ok(sqlx::query_as::<_, MailRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {MAIL_COLUMNS} FROM mail_queue WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Pending and failed messages, oldest first, and how many were sent
    /// since `sent_since`: what `server mail queue` shows.
    pub async fn mail_queue(&self, sent_since: i64) -> Result<(Vec<MailRow>, i64), AppError> {
        let rows = sqlx::query_as::<_, MailRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {MAIL_COLUMNS} FROM mail_queue WHERE status <> 'sent' ORDER BY id"
        )))
        .fetch_all(&self.pool)
        .await?;
        let (sent,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM mail_queue WHERE status = 'sent' AND sent_at >= $1")
            .bind(sent_since)
            .fetch_one(&self.pool)
            .await?;
        Ok((rows, sent))
    }

    /// Deletes sent and given-up messages older than `before`, and expired
    /// link tokens.
    pub async fn prune_mail(&self, before: i64, now: i64) -> Result<(), AppError> {
        sqlx::query("DELETE FROM mail_queue WHERE status <> 'pending' AND created_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        sqlx::query("DELETE FROM email_tokens WHERE expires_at <= $1").bind(now).execute(&self.pool).await?;
        Ok(())
    }

    /// Stores a link token (its hash) for `purpose`.
    pub async fn insert_email_token(
        &self,
        token_hash: &str,
        user_id: i64,
        purpose: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), AppError> {
        sqlx::query(
            "INSERT INTO email_tokens (token_hash, user_id, purpose, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(user_id)
        .bind(purpose)
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deletes a link token whose message could not be sent.
    pub async fn delete_email_token(&self, token_hash: &str) -> Result<(), AppError> {
        sqlx::query("DELETE FROM email_tokens WHERE token_hash = $1").bind(token_hash).execute(&self.pool).await?;
        Ok(())
    }

    /// The account a live token of `purpose` belongs to, without using it
    /// (the reset page checks the new password against the account first).
    pub async fn email_token_owner(&self, token_hash: &str, purpose: &str, now: i64) -> Result<Option<i64>, AppError> {
        let row: Option<(i64,)> = sqlx::query_as(
            "SELECT user_id FROM email_tokens WHERE token_hash = $1 AND purpose = $2 AND expires_at > $3",
        )
        .bind(token_hash)
        .bind(purpose)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(id,)| id))
    }

    /// Whether the account has logged in before (a first log-in from a new
    /// browser is no news to its owner).
    pub async fn has_logged_in(&self, user_id: i64) -> Result<bool, AppError> {
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT id FROM audit_events WHERE user_id = $1 AND kind = 'log_in_ok' LIMIT 1")
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.is_some())
    }
}

impl Tx {
    /// Queues a message with the other writes of this transaction.
    pub async fn enqueue_mail(&mut self, m: &NewMail<'_>) -> Result<(), AppError> {
        self.step()?;
        sqlx::query(
            "INSERT INTO mail_queue (kind, user_id, address, event_at, ip, user_agent, created_at, next_attempt_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        )
        .bind(m.kind)
        .bind(m.user_id)
        .bind(m.address)
        .bind(m.event_at)
        .bind(m.ip)
        .bind(m.user_agent)
        .bind(m.now)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    pub async fn insert_audit(&mut self, e: &NewAuditEvent<'_>) -> Result<(), AppError> {
        self.step()?;
        sqlx::query("INSERT INTO audit_events (user_id, kind, at, ip, user_agent) VALUES ($1, $2, $3, $4, $5)")
            .bind(e.user_id)
            .bind(e.kind)
            .bind(e.at)
            .bind(e.ip)
            .bind(e.user_agent)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Uses a link token: deletes it and returns its account if it was of
    /// `purpose` and unexpired. One statement, so it works once.
    pub async fn take_email_token(
        &mut self,
        token_hash: &str,
        purpose: &str,
        now: i64,
    ) -> Result<Option<i64>, AppError> {
        self.step()?;
        let row: Option<(i64, i64)> = sqlx::query_as(
            "DELETE FROM email_tokens WHERE token_hash = $1 AND purpose = $2 RETURNING user_id, expires_at",
        )
        .bind(token_hash)
        .bind(purpose)
        .fetch_optional(&mut *self.tx)
        .await?;
        Ok(row.filter(|(_, expires_at)| *expires_at > now).map(|(id, _)| id))
    }

    /// Deletes the account's unused tokens of `purpose`.
    pub async fn delete_email_tokens(&mut self, user_id: i64, purpose: &str) -> Result<(), AppError> {
        self.step()?;
        sqlx::query("DELETE FROM email_tokens WHERE user_id = $1 AND purpose = $2")
            .bind(user_id)
            .bind(purpose)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Marks the email address proved (kept if it already was).
    pub async fn set_email_verified(&mut self, user_id: i64, now: i64) -> Result<(), AppError> {
        self.step()?;
        sqlx::query("UPDATE users SET email_verified_at = COALESCE(email_verified_at, $2) WHERE id = $1")
            .bind(user_id)
            .bind(now)
            .execute(&mut *self.tx)
            .await?;
        self.invalidate(Invalidation::User(user_id)).await?;
        Ok(())
    }

    /// The account's email address, read in this transaction.
    pub async fn user_email(&mut self, user_id: i64) -> Result<String, AppError> {
        let (email,): (String,) =
            sqlx::query_as("SELECT email FROM users WHERE id = $1").bind(user_id).fetch_one(&mut *self.tx).await?;
        Ok(email)
    }

    /// Sets or clears the lockdown mark; the session version moves too, so
    /// every token of the account dies. Returns the new version.
    pub async fn set_locked(&mut self, user_id: i64, locked_at: Option<i64>) -> Result<i64, AppError> {
        self.step()?;
        let (version,): (i64,) = sqlx::query_as(
            "UPDATE users SET locked_at = $2, session_version = session_version + 1 WHERE id = $1 \
             RETURNING session_version",
        )
        .bind(user_id)
        .bind(locked_at)
        .fetch_one(&mut *self.tx)
        .await?;
        self.invalidate(Invalidation::User(user_id)).await?;
        Ok(version)
    }
}
