//! The SQL of the audit trail the person can review.

use super::*;

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

impl Db {
    pub async fn insert_audit(&self, e: &NewAuditEvent<'_>) -> Result<(), AppError> {
        let _turn = self.turn().await?;
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
}
