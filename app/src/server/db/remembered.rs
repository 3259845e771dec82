//! The SQL of remembered browsers (`remembered_browsers`): entries made at
//! the code step, used by the password step, listed and forgotten by their
//! owner. An entry counts only while its session version is the
//! account's, so every query that uses or lists entries asks for it.

use sqlx::FromRow;

use super::{Db, Tx};
use crate::error::AppError;
use crate::server::gate::cache::Invalidation;
use crate::server::logins::Amr;

/// An entry about to be stored.
pub struct NewRememberedBrowser<'a> {
    pub id: &'a str,
    pub user_id: i64,
    pub secret_hash: &'a str,
    pub session_version: i64,
    pub now: i64,
    pub expires_at: i64,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

/// An entry as its owner's list shows it.
#[derive(Debug, Clone, FromRow)]
pub struct RememberedBrowserRow {
    pub id: String,
    pub secret_hash: String,
    pub session_version: i64,
    pub created_at: i64,
    pub last_used_at: i64,
    pub expires_at: i64,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl RememberedBrowserRow {
    /// The entry counted (until it went): the account's session version
    /// `version`, unexpired at `now`.
    pub fn counts(&self, version: i64, now: i64) -> bool {
        self.session_version == version && self.expires_at > now
    }
}

/// The account's entries that count: its session version, unexpired, and
/// made after `$3` (`REMEMBER_DAYS` ago: a shorter setting holds at once).
const LIVE_ENTRIES: &str = "SELECT r.id, r.secret_hash, r.session_version, r.created_at, r.last_used_at, r.expires_at, \
     r.ip, r.user_agent FROM remembered_browsers r JOIN users u ON u.id = r.user_id \
     WHERE r.user_id = $1 AND r.session_version = u.session_version AND r.expires_at > $2 AND r.created_at > $3 \
     ORDER BY r.last_used_at DESC, r.id";

impl Db {
    pub async fn remembered_browsers(
        &self,
        user_id: i64,
        now: i64,
        made_after: i64,
    ) -> Result<Vec<RememberedBrowserRow>, AppError> {
        Ok(sqlx::query_as::<_, RememberedBrowserRow>(LIVE_ENTRIES)
            .bind(user_id)
            .bind(now)
            .bind(made_after)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Entries that can never count again (expired, made before
    /// `made_after`, or of an earlier session version); how many went.
    pub async fn sweep_remembered_browsers(&self, now: i64, made_after: i64) -> Result<u64, AppError> {
        let _turn = self.turn().await?;
        let done = sqlx::query(
            "DELETE FROM remembered_browsers WHERE expires_at <= $1 OR created_at <= $2 OR session_version <> \
             (SELECT session_version FROM users WHERE users.id = remembered_browsers.user_id)",
        )
        .bind(now)
        .bind(made_after)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}

impl Tx {
    /// Forgets one of the account's entries (`Some(id)`) or all of them;
    /// returns those that went (counting or not: see `counts`).
    pub async fn forget_remembered_browsers(
        &mut self,
        user_id: i64,
        id: Option<&str>,
    ) -> Result<Vec<RememberedBrowserRow>, AppError> {
        self.step()?;
        let rows = match id {
            Some(id) => {
                sqlx::query_as::<_, RememberedBrowserRow>(
                    "DELETE FROM remembered_browsers WHERE user_id = $1 AND id = $2 \
                     RETURNING id, secret_hash, session_version, created_at, last_used_at, expires_at, ip, user_agent",
                )
                .bind(user_id)
                .bind(id)
                .fetch_all(&mut *self.tx)
                .await?
            }
            None => {
                sqlx::query_as::<_, RememberedBrowserRow>(
                    "DELETE FROM remembered_browsers WHERE user_id = $1 \
                     RETURNING id, secret_hash, session_version, created_at, last_used_at, expires_at, ip, user_agent",
                )
                .bind(user_id)
                .fetch_all(&mut *self.tx)
                .await?
            }
        };
        Ok(rows)
    }

    /// Forgets the account's entry whose secret hashes to `secret_hash`.
    pub async fn forget_remembered_browser_by_hash(&mut self, user_id: i64, secret_hash: &str) -> Result<(), AppError> {
        self.step()?;
        sqlx::query("DELETE FROM remembered_browsers WHERE user_id = $1 AND secret_hash = $2")
            .bind(user_id)
            .bind(secret_hash)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    pub async fn insert_remembered_browser(&mut self, r: &NewRememberedBrowser<'_>) -> Result<(), AppError> {
        self.step()?;
        sqlx::query(
            "INSERT INTO remembered_browsers (id, user_id, secret_hash, session_version, created_at, last_used_at, \
             expires_at, ip, user_agent) VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8)",
        )
        .bind(r.id)
        .bind(r.user_id)
        .bind(r.secret_hash)
        .bind(r.session_version)
        .bind(r.now)
        .bind(r.expires_at)
        .bind(r.ip)
        .bind(r.user_agent)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Uses the entry whose secret hashes to `secret_hash`, if it is this
    /// account's, of its session version `version`, unexpired and made
    /// after `made_after`: its last use moves to `now`; its id. None for
    /// anything else (another account's, forgotten, voided, expired, made
    /// up): the caller asks for the code.
    pub async fn use_remembered_browser(
        &mut self,
        secret_hash: &str,
        user_id: i64,
        version: i64,
        now: i64,
        made_after: i64,
    ) -> Result<Option<String>, AppError> {
        self.step()?;
        let row: Option<(String,)> = sqlx::query_as(
            "UPDATE remembered_browsers SET last_used_at = $4 WHERE secret_hash = $1 AND user_id = $2 \
             AND session_version = $3 AND expires_at > $4 AND created_at > $5 \
             AND session_version = (SELECT session_version FROM users WHERE users.id = $2) RETURNING id",
        )
        .bind(secret_hash)
        .bind(user_id)
        .bind(version)
        .bind(now)
        .bind(made_after)
        .fetch_optional(&mut *self.tx)
        .await?;
        Ok(row.map(|(id,)| id))
    }

    /// Ends the live log-ins remembered browser `entry` started, except
    /// `keep` (the asking one); how many.
    pub async fn end_logins_of_remembered(
        &mut self,
        user_id: i64,
        entry: &str,
        keep: Option<&str>,
        now: i64,
    ) -> Result<usize, AppError> {
        self.step()?;
        let live: Vec<(String,)> =
            sqlx::query_as("SELECT id FROM logins WHERE user_id = $1 AND remembered_id = $2 AND revoked_at IS NULL")
                .bind(user_id)
                .bind(entry)
                .fetch_all(&mut *self.tx)
                .await?;
        let mut ended = 0;
        for (id,) in live.into_iter().filter(|(id,)| Some(id.as_str()) != keep) {
            self.revoke_login(&id, now).await?;
            ended += 1;
        }
        Ok(ended)
    }

    /// A second factor shown again in a live log-in (`amr` gains it, the
    /// time it was shown is `now`); false if the log-in is not alive.
    pub async fn show_factor_again(
        &mut self,
        login: &str,
        user_id: i64,
        factor: Amr,
        now: i64,
    ) -> Result<bool, AppError> {
        self.step()?;
        // The time first: that write takes the row (PostgreSQL holds it to
        // the end of the transaction), so two step-ups never lose a bit.
        let row: Option<(String,)> = sqlx::query_as(
            "UPDATE logins SET factor_at = $3 WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL \
             AND expires_at > $3 AND session_version = (SELECT session_version FROM users WHERE users.id = $2) \
             RETURNING amr",
        )
        .bind(login)
        .bind(user_id)
        .bind(now)
        .fetch_optional(&mut *self.tx)
        .await?;
        let Some((amr,)) = row else { return Ok(false) };
        let amr = Amr::parse(&amr).with(factor);
        sqlx::query("UPDATE logins SET amr = $1 WHERE id = $2")
            .bind(amr.as_string())
            .bind(login)
            .execute(&mut *self.tx)
            .await?;
        self.invalidate(Invalidation::Family(login.to_owned())).await?;
        Ok(true)
    }
}
