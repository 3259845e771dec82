//! All SQL lives in this module, as small functions over sqlx's `Any`
//! driver so one binary serves SQLite and PostgreSQL: the pool, transactions
//! and pruning here, and a file per table group (users, logins, factors,
//! throttle, audit, mail, listen). The SQL is portable: `$n`
//! placeholders (SQLite accepts them too), `RETURNING`, BIGINT times.
//! Each security-relevant change is a single conditional statement, so
//! racing requests, even on two instances, cannot both win.

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, FromRow};

use super::gate::cache::{self as gate_cache, GateCache, Invalidation};
use crate::error::AppError;

/// The condition that makes a log-in `l` of account `u` alive at `$now`.
/// Spelled once, used by every liveness query (log-ins, the gate, the
/// OpenID grants).
macro_rules! live {
    ($now:literal) => {
        concat!("l.revoked_at IS NULL AND l.expires_at > ", $now, " AND l.session_version = u.session_version")
    };
}

/// The earliest two-factor deadline of account `u`'s groups (NULL: none):
/// per group, its date; for someone who joined after it was set, the day
/// they joined plus the group's grace when that is later (a membership
/// from before deadlines existed counts as long ago). Read with the
/// session and the gate cookie, so cached with them; group and deadline
/// changes drop those caches.
macro_rules! two_factor_due {
    () => {
        "(SELECT MIN(CASE WHEN COALESCE(m.added_at, 0) > d.set_at \
         AND m.added_at + d.grace_days * 86400 > d.due_at \
         THEN m.added_at + d.grace_days * 86400 ELSE d.due_at END) \
         FROM user_groups m JOIN group_deadlines d ON d.name = m.name WHERE m.user_id = u.id)"
    };
}

mod admin;
mod audit;
mod deadlines;
mod factors;
mod invitations;
mod listen;
mod logins;
mod mail;
pub mod moving;
mod oidc;
mod remembered;
mod throttle;
mod users;

pub use admin::{AdminActivityRow, EventFilter, EventRow, PeopleOrder, PersonSummaryRow};
pub use audit::{AuditRow, NewAuditEvent};
pub use deadlines::DeadlineRow;
pub use factors::{CeremonyRow, NewCeremony, NewPasskey, PasskeyRow};
pub use invitations::{InvitationRow, NewInvitation, TakenInvitation};
pub use logins::{
    GateSubject, LiveLoginRow, LoginRow, NewGateCookie, NewLogin, NewRefreshToken, RefreshRow, SessionUser,
};
pub use mail::{MailRow, NewMail};
pub use oidc::{ClientPolicy, ClientRow, ConnectedAppRow, GrantSubject, KeyRow, LogoutMessage, NewGrant, RedeemedCode};
pub use remembered::{NewRememberedBrowser, RememberedBrowserRow};
pub use throttle::Throttle;
pub use users::{SealedSecrets, UserRow, UserSummary};

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
    /// SQLite: one transaction writes at a time (the database has one
    /// writer lock); the others wait here, in order, rather than in
    /// SQLite's busy handler, which sleeps 1, 2, 5, 10 ms… between tries
    /// and so turned a few parallel code steps into a queue of naps.
    writer: Option<std::sync::Arc<tokio::sync::Semaphore>>,
    /// How long a transaction waits for its turn before answering 503, as
    /// long as a request waits for a connection (and as SQLite's busy
    /// timeout did): a turn never held is never waited for forever.
    turn_timeout: Duration,
    /// Tests only: the next transaction fails at its Nth write (see
    /// `fail_next_transaction_at`), to prove nothing half-done survives.
    #[cfg(feature = "fault-injection")]
    fault: std::sync::Arc<std::sync::Mutex<Option<u32>>>,
    /// Tests only: named points where a request can be held (see `hooks`).
    pub hooks: super::hooks::Hooks,
    /// Woken when a transaction that queued back-channel log-outs commits
    /// (see `oidc::backchannel`).
    pub logouts_queued: std::sync::Arc<tokio::sync::Notify>,
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
    /// SQLite: this transaction's turn to write (see `Db::writer`), held
    /// until it commits or rolls back.
    _turn: Option<tokio::sync::OwnedSemaphorePermit>,
    /// A message was queued: the mail worker is woken once this commits
    /// (see `audit::commit`).
    mail_queued: bool,
    /// Counts for the metrics, taken once this commits.
    counts: Vec<crate::server::metrics::Count>,
    /// Back-channel log-outs were queued: their sender is woken once this
    /// commits.
    logouts_queued: bool,
    logouts_wake: std::sync::Arc<tokio::sync::Notify>,
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

/// A database error seen by a request: unreachable or busy means 503, the
/// rest is a bug and 500. Either way it is logged here, once, with its cause.
impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        if is_unavailable(&e) {
            TROUBLE_AT.store(wall_clock(), std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(error = %e, "database unavailable");
            AppError::unavailable()
        } else {
            tracing::error!(error = ?e, "database error");
            AppError::internal()
        }
    }
}

/// When (Unix seconds, wall clock) a database error of the kind that can
/// roll a SQLite transaction back behind sqlx's back was last seen.
static TROUBLE_AT: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(i64::MIN / 2);
/// How long after such an error returning connections are probed.
const TROUBLE_PROBE_SECONDS: i64 = 600;

fn wall_clock() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn troubled_lately() -> bool {
    wall_clock() - TROUBLE_AT.load(std::sync::atomic::Ordering::Relaxed) < TROUBLE_PROBE_SECONDS
}

fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // SQLite's `BEGIN IMMEDIATE` (`Db::begin_with`) refused on a
        // connection sqlx still counts inside a transaction: one SQLite
        // rolled back by itself (a full disk). Closed on its return (see
        // the pool's `after_release`).
        sqlx::Error::InvalidSavePointStatement => true,
        sqlx::Error::Database(db) => {
            // SQLite: busy (5), locked (6), read-only (8), I/O (10), full (13),
            // can't open (14). PostgreSQL: class 08 (connection), 57P0x
            // (shutdown), 53xxx (resources).
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            // A PostgreSQL SQLSTATE is five characters, some all digits
            // ("22021", a NUL byte in text): never read as SQLite's number.
            let primary = if code.len() == 5 { -1 } else { code.parse::<i64>().map(|c| c & 0xff).unwrap_or(-1) };
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
            pool = pool
                // A file does not drop its connections as a server does: the
                // ping sqlx sends before lending one (a round trip to the
                // connection's thread, two per request) finds nothing here.
                .test_before_acquire(false)
                .after_connect(|conn, _meta| {
                    Box::pin(async move {
                        sqlx::raw_sql(
                            "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; \
                         PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
                        )
                        .execute(conn)
                        .await?;
                        Ok(())
                    })
                })
                // A connection must come back with no transaction open. SQLite
                // rolls a transaction back by itself on some errors (a full
                // disk, an I/O error), which sqlx does not see: it then takes
                // the connection for one still inside a transaction, and a
                // later rollback "to a savepoint" leaves one open, holding the
                // write lock for good. For a while after such an error
                // (`TROUBLE_PROBE_SECONDS`) each connection is probed on its
                // return (an empty transaction begun and rolled back through
                // sqlx, no I/O; about 0.1 ms a request, so not always): one
                // found inside a transaction, by SQLite or by sqlx's count,
                // is closed, which rolls it back and frees the lock.
                .after_release(|conn, _meta| {
                    Box::pin(async move {
                        if !troubled_lately() {
                            return Ok(true);
                        }
                        match sqlx::Connection::begin_with(&mut *conn, "BEGIN").await {
                            Ok(tx) => Ok(tx.rollback().await.is_ok()),
                            Err(_) => {
                                tracing::warn!("a database connection came back inside a transaction: closed");
                                Ok(false)
                            }
                        }
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
            // stays off until the listener hears them (see `gate::cache`).
            gate_cache: std::sync::Arc::new(GateCache::new(backend == Backend::Sqlite)),
            writer: (backend == Backend::Sqlite).then(|| std::sync::Arc::new(tokio::sync::Semaphore::new(1))),
            turn_timeout: acquire_timeout,
            backend,
            #[cfg(feature = "fault-injection")]
            fault: Default::default(),
            hooks: Default::default(),
            logouts_queued: Default::default(),
        })
    }

    /// The pool's connections now (open, idle) and the most it opens.
    pub fn pool_use(&self) -> (u64, u64, u64) {
        let max = u64::from(self.pool.options().get_max_connections());
        (u64::from(self.pool.size()), u64::try_from(self.pool.num_idle()).unwrap_or(0), max)
    }

    /// "sqlite" or "postgres".
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    pub async fn begin(&self) -> Result<Tx, AppError> {
        self.begin_with(true).await
    }

    /// A transaction of the guessing limits' own bookkeeping (reserving and
    /// settling attempts, see `throttle`): it runs beside the operation it
    /// guards, so a fault injected for the next transaction
    /// (`fail_next_transaction_at`) is left for the operation's own.
    pub async fn begin_bookkeeping(&self) -> Result<Tx, AppError> {
        self.begin_with(false).await
    }

    #[cfg_attr(not(feature = "fault-injection"), allow(unused_variables))]
    async fn begin_with(&self, takes_fault: bool) -> Result<Tx, AppError> {
        let turn = self.turn().await?;
        // SQLite: the write lock at once. A transaction that read first
        // and wrote later would fail outright (SQLITE_BUSY_SNAPSHOT, which
        // the busy timeout does not wait out) if a write outside the turn
        // (an audit row, a throttle row) committed in between; the turn
        // keeps transactions from waiting on each other for it.
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(Tx {
            tx,
            _turn: turn,
            backend: self.backend,
            gate_cache: self.gate_cache.clone(),
            invalidations: Vec::new(),
            mail_queued: false,
            counts: Vec::new(),
            logouts_queued: false,
            logouts_wake: self.logouts_queued.clone(),
            #[cfg(feature = "fault-injection")]
            fail_at: if takes_fault { self.fault.lock().map(|mut f| f.take()).unwrap_or(None) } else { None },
            #[cfg(feature = "fault-injection")]
            writes: 0,
        })
    }

    /// SQLite: this instance's turn to write, for a transaction or for one
    /// statement that writes outside one (an autocommit write that skipped
    /// the queue would meet a transaction in SQLite's busy handler and nap).
    /// `None` on PostgreSQL, where rows lock themselves.
    async fn turn(&self) -> Result<Option<tokio::sync::OwnedSemaphorePermit>, AppError> {
        let Some(writer) = &self.writer else { return Ok(None) };
        match tokio::time::timeout(self.turn_timeout, writer.clone().acquire_owned()).await {
            Ok(Ok(turn)) => Ok(Some(turn)),
            Ok(Err(_)) => Err(AppError::internal()),
            Err(_) => {
                tracing::warn!("no turn to write within the acquire timeout: the database is busy");
                Err(AppError::unavailable())
            }
        }
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
        let _turn = self.turn().await?;
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
    pub async fn commit(self) -> Result<(), AppError> {
        self.tx.commit().await?;
        for what in &self.invalidations {
            self.gate_cache.invalidate(what);
        }
        for count in self.counts {
            crate::server::metrics::METRICS.add(count);
        }
        if self.logouts_queued {
            self.logouts_wake.notify_one();
        }
        Ok(())
    }

    /// Counts `count` in the metrics if (once) this transaction commits.
    pub fn count(&mut self, count: crate::server::metrics::Count) {
        self.counts.push(count);
    }

    /// Notes that a message was queued in this transaction (see
    /// `audit::commit`, which wakes the mail worker once it lands).
    pub fn note_mail_queued(&mut self) {
        self.mail_queued = true;
    }

    /// Whether a message was queued in this transaction.
    pub fn mail_queued(&self) -> bool {
        self.mail_queued
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
}

impl Db {
    /// The gate decisions this process keeps (see `gate::cache`).
    pub fn gate_cache(&self) -> &GateCache {
        &self.gate_cache
    }

    pub fn is_postgres(&self) -> bool {
        self.backend == Backend::Postgres
    }
}

// ---------------------------------------------------------------- mail
