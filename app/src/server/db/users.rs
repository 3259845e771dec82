//! The SQL of accounts: who a person is, their password hash, the flags
//! and secrets of their second factors, their session version, lockdown
//! and confirmed address, and their groups.

use super::*;

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
    /// The person's IANA time zone, as their browser reported it (None:
    /// not known yet; times are then said in UTC).
    pub time_zone: Option<String>,
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
pub(super) struct UserRecord {
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
    time_zone: Option<String>,
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
            time_zone: r.time_zone,
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

impl Db {
    /// The columns of a `UserRow`, in one place for every query that reads one.
    pub(super) const USER_COLUMNS: &'static str = "id, email, name, password_hash, totp_enabled, totp_secret, totp_pending_secret, totp_last_step, session_version, passkey_count, email_verified_at, locked_at, time_zone";

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
        user_by_id(&mut *self.pool.acquire().await?, id).await
    }

    /// Stores a pending secret. The active one (if any) is untouched.
    pub async fn set_pending_secret(&self, id: i64, secret: &str) -> Result<(), AppError> {
        let _turn = self.turn().await?;
        sqlx::query("UPDATE users SET totp_pending_secret = $1 WHERE id = $2")
            .bind(secret)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Stores the person's time zone (a name already checked against the
    /// tz database). One row; the same name again changes nothing. The
    /// sessions cached with the old one are dropped (on every instance).
    pub async fn set_time_zone(&self, id: i64, zone: &str) -> Result<(), AppError> {
        let mut tx = self.begin().await?;
        tx.step()?;
        let changed =
            sqlx::query("UPDATE users SET time_zone = $1 WHERE id = $2 AND (time_zone IS NULL OR time_zone <> $1)")
                .bind(zone)
                .bind(id)
                .execute(&mut *tx.tx)
                .await?
                .rows_affected()
                > 0;
        if changed {
            tx.invalidate(Invalidation::User(id)).await?;
        }
        tx.commit().await
    }

    /// The person's stored time zone, if any.
    pub async fn time_zone_of(&self, id: i64) -> Result<Option<String>, AppError> {
        let row: Option<(Option<String>,)> =
            sqlx::query_as("SELECT time_zone FROM users WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
        Ok(row.and_then(|(zone,)| zone))
    }

    pub async fn groups_of(&self, user_id: i64) -> Result<Vec<String>, AppError> {
        let rows: Vec<(String,)> = sqlx::query_as("SELECT name FROM user_groups WHERE user_id = $1 ORDER BY name")
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|(g,)| g).collect())
    }

    /// Adds or removes a group; true if that changed anything.
    pub async fn set_group(&self, user_id: i64, group: &str, member: bool, now: i64) -> Result<bool, AppError> {
        let mut tx = self.begin().await?;
        let changed = tx.set_group(user_id, group, member, now).await?;
        tx.commit().await?;
        Ok(changed)
    }

    /// Swaps a password hash for another of the same password (a rehash),
    /// only if it is still the one read: a concurrent change wins.
    pub async fn replace_password_hash(&self, id: i64, old: &str, new: &str) -> Result<(), AppError> {
        let _turn = self.turn().await?;
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2 AND password_hash = $3")
            .bind(new)
            .bind(id)
            .bind(old)
            .execute(&self.pool)
            .await?;
        Ok(())
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
        let _turn = self.turn().await?;
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
}

async fn user_by_id(conn: &mut sqlx::AnyConnection, id: i64) -> Result<Option<UserRow>, AppError> {
    Ok(sqlx::query_as::<_, UserRecord>(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM users WHERE id = $1",
        Db::USER_COLUMNS
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .map(UserRow::from))
}

impl Tx {
    /// The account's row as this transaction sees it.
    pub async fn user_by_id(&mut self, id: i64) -> Result<Option<UserRow>, AppError> {
        user_by_id(&mut self.tx, id).await
    }

    /// The account's session version now (0 for no such account).
    pub async fn session_version_of(&mut self, id: i64) -> Result<i64, AppError> {
        let row: Option<(i64,)> = sqlx::query_as("SELECT session_version FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await?;
        Ok(row.map_or(0, |(v,)| v))
    }

    /// Adds (at `now`) or removes a group of an account (the gate's cached
    /// decisions about it are dropped); whether anything changed.
    pub async fn set_group(&mut self, user_id: i64, group: &str, member: bool, now: i64) -> Result<bool, AppError> {
        self.step()?;
        let done = if member {
            sqlx::query("INSERT INTO user_groups (user_id, name, added_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                .bind(user_id)
                .bind(group)
                .bind(now)
                .execute(&mut *self.tx)
                .await?
        } else {
            sqlx::query("DELETE FROM user_groups WHERE user_id = $1 AND name = $2")
                .bind(user_id)
                .bind(group)
                .execute(&mut *self.tx)
                .await?
        };
        self.invalidate(Invalidation::User(user_id)).await?;
        Ok(done.rows_affected() > 0)
    }

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

    /// Replaces the app's active secret with the pending one while 2FA is
    /// on (a new phone): the step that confirmed it becomes the last
    /// accepted one; the session version and the recovery codes stay. Only
    /// if 2FA is still on and the pending secret is still the one the code
    /// was checked against. Returns whether it applied.
    pub async fn replace_totp(&mut self, id: i64, pending: &str, step: i64) -> Result<bool, AppError> {
        self.step()?;
        let done = sqlx::query(
            "UPDATE users SET totp_secret = totp_pending_secret, totp_pending_secret = NULL, totp_last_step = $1 \
             WHERE id = $2 AND totp_enabled = 1 AND totp_pending_secret = $3",
        )
        .bind(step)
        .bind(id)
        .bind(pending)
        .execute(&mut *self.tx)
        .await?
        .rows_affected()
            == 1;
        if done {
            self.invalidate(Invalidation::User(id)).await?;
        }
        Ok(done)
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
