//! The SQL of log-ins: the one row per log-in that says whether it is
//! alive (`logins`), the refresh tokens that continue it (`sessions`) and
//! the gate cookies that carry it to other apps (`gate_cookies`). Every
//! liveness question (portal, gate, refresh) asks the `logins` row, and
//! requires its session version to be the account's: an ending sets
//! `revoked_at` or moves the version, and either is final.

use sqlx::FromRow;

use super::{Db, Tx};
use crate::error::AppError;
use crate::server::gate::cache::Invalidation;
use crate::server::logins::Amr;

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
    /// When a second factor was last shown in it (None: never).
    pub factor_at: Option<i64>,
    /// The person's time zone (see `UserRow::time_zone`).
    pub time_zone: Option<String>,
    /// When a group of theirs wants two factors on by (`two_factor_due!`).
    pub two_factor_due: Option<i64>,
    /// A member of `ADMIN_GROUP` (the admin page also wants two factors).
    pub admin: bool,
}

impl SessionUser {
    /// A group's deadline for two factors has passed, and this log-in had
    /// none: it may only turn them on.
    pub fn overdue(&self, now: i64) -> bool {
        !self.amr.two_factor() && self.two_factor_due.is_some_and(|due| due <= now)
    }

    /// Whether log-in owes a second factor (see `UserRow::two_factor`).
    pub fn two_factor(&self) -> bool {
        self.totp_enabled || self.passkey_count > 0
    }
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
    /// When a second factor was last shown in the log-in (None: never; a
    /// remembered browser is not one).
    pub factor_at: Option<i64>,
    pub groups: Vec<String>,
    /// When a group of theirs wants two factors on by (`two_factor_due!`).
    pub two_factor_due: Option<i64>,
    /// The cookie domain the gate cookie was issued for.
    pub domain: String,
    /// The log-in session it belongs to.
    pub family: String,
    /// When the gate cookie (and its session family) expires.
    pub expires_at: i64,
}

/// A log-in about to be stored.
pub struct NewLogin<'a> {
    pub id: &'a str,
    pub user_id: i64,
    /// The account's session version the log-in was checked against.
    pub session_version: i64,
    pub amr: Amr,
    pub auth_at: i64,
    /// When a second factor was last shown (None: none was).
    pub factor_at: Option<i64>,
    /// The remembered browser that stood in for the second factor.
    pub remembered: Option<&'a str>,
    pub now: i64,
    pub expires_at: i64,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

/// A live log-in, as a refresh finds it once it holds the row.
#[derive(Debug, Clone, FromRow)]
pub struct LoginRow {
    pub id: String,
    pub user_id: i64,
    pub session_version: i64,
    pub amr: String,
    pub auth_at: i64,
    pub expires_at: i64,
}

/// A live log-in as its owner's list shows it: when and where it started,
/// when it was last seen, how it was reached.
#[derive(Debug, Clone, FromRow)]
pub struct LiveLoginRow {
    pub id: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub amr: String,
}

/// A refresh token's row: which log-in it continues, and whether it was
/// already exchanged.
#[derive(Debug, Clone, FromRow)]
pub struct RefreshRow {
    pub id: i64,
    pub user_id: i64,
    pub family: String,
}

pub struct NewRefreshToken<'a> {
    pub user_id: i64,
    pub family: &'a str,
    pub token_hash: &'a str,
    pub now: i64,
    pub expires_at: i64,
    pub session_version: i64,
    pub auth_at: i64,
}

pub struct NewGateCookie<'a> {
    pub token_hash: &'a str,
    pub user_id: i64,
    pub family: &'a str,
    pub domain: &'a str,
    pub now: i64,
    pub expires_at: i64,
}

/// An account's live log-ins, the most recently seen first.
const LIVE_LOGINS: &str = concat!(
    "SELECT l.id, l.created_at, l.last_seen_at, l.ip, l.user_agent, l.amr \
     FROM logins l JOIN users u ON u.id = l.user_id \
     WHERE l.user_id = $1 AND ",
    live!("$2"),
    " ORDER BY l.last_seen_at DESC, l.created_at DESC, l.id"
);

impl Db {
    /// Who a full session is, if its log-in is live, in one round trip:
    /// this runs on every authenticated request the session cache cannot
    /// answer. An allow-list: a log-in never stored, pruned, ended or from
    /// an older session version is nobody.
    pub async fn session_user(
        &self,
        id: i64,
        login: &str,
        now: i64,
        admin_group: &str,
    ) -> Result<Option<SessionUser>, AppError> {
        #[derive(FromRow)]
        struct Row {
            id: i64,
            email: String,
            name: String,
            totp_enabled: i64,
            passkey_count: i64,
            email_verified_at: Option<i64>,
            session_version: i64,
            expires_at: i64,
            amr: String,
            factor_at: Option<i64>,
            time_zone: Option<String>,
            two_factor_due: Option<i64>,
            admin: i64,
        }
        let row = sqlx::query_as::<_, Row>(concat!(
            "SELECT u.id, u.email, u.name, u.totp_enabled, u.passkey_count, u.email_verified_at, \
             u.session_version, l.expires_at, l.amr, l.factor_at, u.time_zone, ",
            two_factor_due!(),
            " AS two_factor_due, \
             (SELECT COUNT(*) FROM user_groups a WHERE a.user_id = u.id AND a.name = $4) AS admin FROM logins l JOIN users u ON u.id = l.user_id \
             WHERE l.id = $2 AND u.id = $1 AND ",
            live!("$3")
        ))
        .bind(id)
        .bind(login)
        .bind(now)
        .bind(admin_group)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| SessionUser {
            id: r.id,
            email: r.email,
            name: r.name,
            totp_enabled: r.totp_enabled == 1,
            passkey_count: r.passkey_count,
            email_verified: r.email_verified_at.is_some(),
            session_version: r.session_version,
            family: login.to_owned(),
            live_until: r.expires_at,
            amr: Amr::parse(&r.amr),
            factor_at: r.factor_at,
            time_zone: r.time_zone,
            two_factor_due: r.two_factor_due,
            admin: r.admin > 0,
        }))
    }

    /// Who a gate cookie names, if it and its log-in are alive. Whether
    /// the person passed a second factor is the log-in's, never the
    /// account's.
    pub async fn gate_subject(&self, token_hash: &str, now: i64) -> Result<Option<GateSubject>, AppError> {
        // One round trip: a row per group (or one with no group).
        #[derive(FromRow)]
        struct Row {
            user_id: i64,
            email: String,
            name: String,
            email_verified_at: Option<i64>,
            amr: String,
            factor_at: Option<i64>,
            domain: String,
            family: String,
            expires_at: i64,
            grp: Option<String>,
            two_factor_due: Option<i64>,
        }
        let rows = sqlx::query_as::<_, Row>(concat!(
            "SELECT g.user_id, u.email, u.name, u.email_verified_at, l.amr, l.factor_at, g.domain, g.family, \
             CASE WHEN g.expires_at < l.expires_at THEN g.expires_at ELSE l.expires_at END AS expires_at, \
             ug.name AS grp, ",
            two_factor_due!(),
            " AS two_factor_due FROM gate_cookies g JOIN logins l ON l.id = g.family AND l.user_id = g.user_id \
             JOIN users u ON u.id = g.user_id \
             LEFT JOIN user_groups ug ON ug.user_id = g.user_id \
             WHERE g.token_hash = $1 AND g.expires_at > $2 AND ",
            live!("$2"),
            " ORDER BY ug.name"
        ))
        .bind(token_hash)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        let groups: Vec<String> = rows.iter().filter_map(|r| r.grp.clone()).collect();
        let Some(row) = rows.into_iter().next() else { return Ok(None) };
        Ok(Some(GateSubject {
            user_id: row.user_id,
            email: row.email,
            name: row.name,
            email_verified: row.email_verified_at.is_some(),
            two_factor: Amr::parse(&row.amr).two_factor(),
            factor_at: row.factor_at,
            groups,
            two_factor_due: row.two_factor_due,
            domain: row.domain,
            family: row.family,
            expires_at: row.expires_at,
        }))
    }

    /// The account's live log-ins (not ended, not expired, of its current
    /// session version), the most recently seen first.
    pub async fn live_logins(&self, user_id: i64, now: i64) -> Result<Vec<LiveLoginRow>, AppError> {
        Ok(sqlx::query_as::<_, LiveLoginRow>(LIVE_LOGINS).bind(user_id).bind(now).fetch_all(&self.pool).await?)
    }

    pub async fn refresh_token(&self, token_hash: &str) -> Result<Option<RefreshRow>, AppError> {
        Ok(sqlx::query_as::<_, RefreshRow>("SELECT id, user_id, family FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// The log-in a refresh token continues, live or not.
    pub async fn login_of_refresh(&self, token_hash: &str) -> Result<Option<String>, AppError> {
        let row: Option<(String,)> = sqlx::query_as("SELECT family FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|(f,)| f))
    }

    /// The log-in a gate cookie belongs to, live or not.
    pub async fn login_of_gate(&self, token_hash: &str) -> Result<Option<String>, AppError> {
        let row: Option<(String,)> = sqlx::query_as("SELECT family FROM gate_cookies WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|(f,)| f))
    }

    /// Ends these log-ins (and with them their tokens and gate cookies):
    /// one transaction, whatever their number.
    pub async fn revoke_logins(&self, logins: &[String], now: i64) -> Result<(), AppError> {
        if logins.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        for id in logins {
            tx.revoke_login(id, now).await?;
        }
        tx.commit().await
    }
}

impl Tx {
    /// Stores a log-in, only if the account's session version is still the
    /// one its factors were checked against and the account is not locked:
    /// a log-in overtaken by an ending is not stored. False: not stored.
    pub async fn insert_login(&mut self, l: &NewLogin<'_>) -> Result<bool, AppError> {
        self.step()?;
        let done = sqlx::query(
            "INSERT INTO logins (id, user_id, session_version, amr, auth_at, created_at, last_seen_at, expires_at, \
             ip, user_agent, factor_at, remembered_id) \
             SELECT $1, id, session_version, $3, $4, $5, $5, $6, $7, $8, $10, $11 FROM users \
             WHERE id = $2 AND session_version = $9 AND locked_at IS NULL",
        )
        .bind(l.id)
        .bind(l.user_id)
        .bind(l.amr.as_string())
        .bind(l.auth_at)
        .bind(l.now)
        .bind(l.expires_at)
        .bind(l.ip)
        .bind(l.user_agent)
        .bind(l.session_version)
        .bind(l.factor_at)
        .bind(l.remembered)
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A refresh's first write: takes the log-in's row (PostgreSQL locks
    /// it until this transaction ends; SQLite has taken its one writer
    /// lock), so a refresh and an ending of the same log-in run one after
    /// the other, never interleaved. `None`: the log-in is not alive.
    pub async fn hold_login(&mut self, id: &str, user_id: i64, now: i64) -> Result<Option<LoginRow>, AppError> {
        self.step()?;
        Ok(sqlx::query_as::<_, LoginRow>(
            "UPDATE logins SET last_seen_at = $3 WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL \
             AND expires_at > $3 AND session_version = (SELECT session_version FROM users WHERE users.id = $2) \
             RETURNING id, user_id, session_version, amr, auth_at, expires_at",
        )
        .bind(id)
        .bind(user_id)
        .bind(now)
        .fetch_optional(&mut *self.tx)
        .await?)
    }

    /// `Db::live_logins`, read in this transaction (an ending picks its
    /// log-in from these, so it can only ever be the account's own).
    pub async fn live_logins(&mut self, user_id: i64, now: i64) -> Result<Vec<LiveLoginRow>, AppError> {
        Ok(sqlx::query_as::<_, LiveLoginRow>(LIVE_LOGINS).bind(user_id).bind(now).fetch_all(&mut *self.tx).await?)
    }

    /// Ends one log-in (and queues the back-channel log-outs of the apps
    /// that received tokens from it). The log-in row is written first: on
    /// PostgreSQL that waits for a token exchange holding it (see
    /// `hold_oidc_grant`), so the queue below sees the code it spent.
    pub async fn revoke_login(&mut self, id: &str, now: i64) -> Result<(), AppError> {
        self.step()?;
        let ended: Option<(String,)> =
            sqlx::query_as("UPDATE logins SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL RETURNING id")
                .bind(now)
                .bind(id)
                .fetch_optional(&mut *self.tx)
                .await?;
        if ended.is_some() {
            self.queue_logouts_of_login(id, now).await?;
        }
        self.invalidate(Invalidation::Family(id.to_owned())).await
    }

    /// Ends every log-in of an account (queuing back-channel log-outs, in
    /// the same order as `revoke_login`).
    pub async fn revoke_user_logins(&mut self, user_id: i64, now: i64) -> Result<(), AppError> {
        self.step()?;
        let ended: Vec<(String,)> =
            sqlx::query_as("UPDATE logins SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL RETURNING id")
                .bind(now)
                .bind(user_id)
                .fetch_all(&mut *self.tx)
                .await?;
        for (id,) in &ended {
            self.queue_logouts_of_login(id, now).await?;
        }
        self.invalidate(Invalidation::User(user_id)).await
    }

    pub async fn insert_refresh_token(&mut self, s: &NewRefreshToken<'_>) -> Result<(), AppError> {
        self.step()?;
        sqlx::query(
            "INSERT INTO sessions (user_id, family, token_hash, created_at, expires_at, session_version, auth_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(s.user_id)
        .bind(s.family)
        .bind(s.token_hash)
        .bind(s.now)
        .bind(s.expires_at)
        .bind(s.session_version)
        .bind(s.auth_at)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Spends a refresh token: true for exactly one of racing requests.
    pub async fn spend_refresh_token(&mut self, id: i64, now: i64) -> Result<bool, AppError> {
        self.step()?;
        let done = sqlx::query("UPDATE sessions SET used_at = $1 WHERE id = $2 AND used_at IS NULL")
            .bind(now)
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// When a refresh token was spent, read on this transaction's own
    /// connection.
    pub async fn refresh_token_used_at(&mut self, id: i64) -> Result<Option<i64>, AppError> {
        let row: Option<(Option<i64>,)> =
            sqlx::query_as("SELECT used_at FROM sessions WHERE id = $1").bind(id).fetch_optional(&mut *self.tx).await?;
        Ok(row.and_then(|(at,)| at))
    }

    /// The one successor a spent token may get inside the grace window:
    /// true for the first replay only.
    pub async fn claim_grace_successor(&mut self, id: i64, now: i64) -> Result<bool, AppError> {
        self.step()?;
        let done = sqlx::query("UPDATE sessions SET replayed_at = $1 WHERE id = $2 AND replayed_at IS NULL")
            .bind(now)
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A gate cookie for one cookie domain, tied to a log-in. It replaces
    /// the log-in's earlier cookie for that domain.
    pub async fn insert_gate_cookie(&mut self, g: &NewGateCookie<'_>) -> Result<(), AppError> {
        self.step()?;
        let replaced = sqlx::query("DELETE FROM gate_cookies WHERE family = $1 AND domain = $2")
            .bind(g.family)
            .bind(g.domain)
            .execute(&mut *self.tx)
            .await?;
        if replaced.rows_affected() > 0 {
            self.invalidate(Invalidation::Family(g.family.to_owned())).await?;
        }
        self.insert_new_gate_cookie(g).await
    }

    /// A gate cookie for a log-in started in this transaction: it has no
    /// earlier cookie to replace.
    pub async fn insert_first_gate_cookie(&mut self, g: &NewGateCookie<'_>) -> Result<(), AppError> {
        self.step()?;
        self.insert_new_gate_cookie(g).await
    }

    async fn insert_new_gate_cookie(&mut self, g: &NewGateCookie<'_>) -> Result<(), AppError> {
        sqlx::query(
            "INSERT INTO gate_cookies (token_hash, user_id, family, domain, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(g.token_hash)
        .bind(g.user_id)
        .bind(g.family)
        .bind(g.domain)
        .bind(g.now)
        .bind(g.expires_at)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }
}
