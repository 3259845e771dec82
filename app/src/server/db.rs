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

use crate::error::AppError;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
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
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(format!("DATABASE_URL must start with sqlite: or postgres://, got {:?}", scheme(url)));
        };
        let options = AnyConnectOptions::from_str(url).map_err(|e| format!("DATABASE_URL is not valid: {e}"))?;
        let mut pool = AnyPoolOptions::new().max_connections(max_connections).acquire_timeout(Duration::from_secs(5));
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
        Ok(Self { pool, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Inserts a user; `None` when the email is taken.
    pub async fn insert_user(
        &self,
        email: &str,
        name: &str,
        password_hash: &str,
        now: i64,
    ) -> Result<Option<UserRow>, AppError> {
        let result = sqlx::query_as::<_, UserRecord>(
            "INSERT INTO users (email, name, password_hash, created_at) VALUES ($1, $2, $3, $4) \
             RETURNING id, email, name, password_hash, totp_enabled, totp_secret, \
             totp_pending_secret, totp_last_step, session_version",
        )
        .bind(email)
        .bind(name)
        .bind(password_hash)
        .bind(now)
        .fetch_one(&self.pool)
        .await;
        match result {
            Ok(row) => Ok(Some(row.into())),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserRow>, AppError> {
        Ok(sqlx::query_as::<_, UserRecord>(
            "SELECT id, email, name, password_hash, totp_enabled, totp_secret, \
             totp_pending_secret, totp_last_step, session_version FROM users WHERE email = $1",
        )
        .bind(email)
        .fetch_optional(&self.pool)
        .await?
        .map(UserRow::from))
    }

    pub async fn user_by_id(&self, id: i64) -> Result<Option<UserRow>, AppError> {
        Ok(sqlx::query_as::<_, UserRecord>(
            "SELECT id, email, name, password_hash, totp_enabled, totp_secret, \
             totp_pending_secret, totp_last_step, session_version FROM users WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .map(UserRow::from))
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

    /// Promotes the pending secret to active, turns 2FA on, records the step
    /// that confirmed it (so that code cannot log in afterwards) and bumps the
    /// session version, all in one statement. It only applies if the pending
    /// secret is still the one the code was checked against and 2FA is off.
    /// Returns the new session version, or `None` if nothing changed.
    pub async fn enable_totp(&self, id: i64, pending: &str, step: i64) -> Result<Option<i64>, AppError> {
        let version: Option<(i64,)> = sqlx::query_as(
            "UPDATE users SET totp_secret = totp_pending_secret, totp_pending_secret = NULL, \
             totp_enabled = 1, totp_last_step = $1, session_version = session_version + 1 \
             WHERE id = $2 AND totp_pending_secret = $3 AND totp_enabled = 0 \
             RETURNING session_version",
        )
        .bind(step)
        .bind(id)
        .bind(pending)
        .fetch_optional(&self.pool)
        .await?;
        Ok(version.map(|(v,)| v))
    }

    /// Accepts a TOTP time step for a user if it is later than the last
    /// accepted one: the replay guard as one compare-and-set. Exactly one of
    /// several racing requests with the same code gets `true`.
    pub async fn accept_totp_step(&self, id: i64, step: i64) -> Result<bool, AppError> {
        let done = sqlx::query(
            "UPDATE users SET totp_last_step = $1 \
             WHERE id = $2 AND totp_enabled = 1 AND (totp_last_step IS NULL OR totp_last_step < $1)",
        )
        .bind(step)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
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
