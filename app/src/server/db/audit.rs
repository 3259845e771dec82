//! The SQL of the audit trail the person can review.

use super::*;

pub struct NewAuditEvent<'a> {
    pub user_id: Option<i64>,
    /// The administrator who acted on `user_id`'s account (the admin page).
    pub actor_id: Option<i64>,
    pub kind: &'a str,
    pub at: i64,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    /// What the event was about when that is not an account: an app's
    /// name, an invitation's address (migration 0018).
    pub detail: Option<&'a str>,
}

#[derive(Debug, Clone, FromRow)]
pub struct AuditRow {
    pub kind: String,
    pub at: i64,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// On a lockdown: what its notice reported (see `LockdownCause`).
    pub about_kind: Option<String>,
    pub about_at: Option<i64>,
    pub about_ip: Option<String>,
    pub about_user_agent: Option<String>,
}

/// What set off a lockdown: the event the notice whose link was used
/// reported, as the notice told it (migration 0012).
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct LockdownCause {
    /// The notice's mail kind, e.g. `notice:new_browser`.
    pub kind: String,
    pub at: i64,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

const AUDIT_COLUMNS: &str = "kind, at, ip, user_agent, about_kind, about_at, about_ip, about_user_agent";

/// One event, alone (`Db::insert_audit`) or among a transaction's writes
/// (`Tx::insert_audit`).
fn insert_audit_query<'q>(e: &NewAuditEvent<'q>) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    sqlx::query(
        "INSERT INTO audit_events (user_id, kind, at, ip, user_agent, actor_id, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(e.user_id)
    .bind(e.kind)
    .bind(e.at)
    .bind(e.ip)
    .bind(e.user_agent)
    .bind(e.actor_id)
    .bind(e.detail)
}

impl Db {
    pub async fn insert_audit(&self, e: &NewAuditEvent<'_>) -> Result<(), AppError> {
        let _turn = self.turn().await?;
        insert_audit_query(e).execute(&self.pool).await?;
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
        let not = if exclude { "NOT" } else { "" };
        let sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_events WHERE user_id = $1 \
             AND (',' || $2 || ',') {not} LIKE ('%,' || kind || ',%') ORDER BY at DESC, id DESC LIMIT $3"
        );
        Ok(sqlx::query_as::<_, AuditRow>(sqlx::AssertSqlSafe(sql))
            .bind(user_id)
            .bind(list)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }

    /// What set off the account's latest lockdown (None: no lockdown, or
    /// its notice was not known).
    pub async fn latest_lockdown_cause(&self, user_id: i64) -> Result<Option<LockdownCause>, AppError> {
        type About = (Option<String>, Option<i64>, Option<String>, Option<String>);
        let row: Option<About> = sqlx::query_as(
            "SELECT about_kind, about_at, about_ip, about_user_agent FROM audit_events \
             WHERE user_id = $1 AND kind = 'locked_down' ORDER BY at DESC, id DESC LIMIT 1",
        )
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.and_then(|(kind, at, ip, user_agent)| Some(LockdownCause { kind: kind?, at: at?, ip, user_agent })))
    }
}

impl Tx {
    /// Whether the account has logged in before (a first log-in from a new
    /// browser is no news to its owner), read in this transaction before
    /// it records the log-in it is part of.
    pub async fn has_logged_in(&mut self, user_id: i64) -> Result<bool, AppError> {
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT id FROM audit_events WHERE user_id = $1 AND kind = 'log_in_ok' LIMIT 1")
                .bind(user_id)
                .fetch_optional(&mut *self.tx)
                .await?;
        Ok(row.is_some())
    }

    pub async fn insert_audit(&mut self, e: &NewAuditEvent<'_>) -> Result<(), AppError> {
        self.step()?;
        insert_audit_query(e).execute(&mut *self.tx).await?;
        Ok(())
    }

    /// The audit event of a lockdown, with what set it off (if known).
    pub async fn insert_lockdown_audit(
        &mut self,
        e: &NewAuditEvent<'_>,
        cause: Option<&LockdownCause>,
    ) -> Result<(), AppError> {
        self.step()?;
        sqlx::query(
            "INSERT INTO audit_events (user_id, kind, at, ip, user_agent, about_kind, about_at, about_ip, \
             about_user_agent) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(e.user_id)
        .bind(e.kind)
        .bind(e.at)
        .bind(e.ip)
        .bind(e.user_agent)
        .bind(cause.map(|c| c.kind.as_str()))
        .bind(cause.map(|c| c.at))
        .bind(cause.and_then(|c| c.ip.as_deref()))
        .bind(cause.and_then(|c| c.user_agent.as_deref()))
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }
}
