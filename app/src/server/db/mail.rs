//! The SQL of mail: the queue the worker sends from, and the single-use
//! tokens mailed links carry.

use super::audit::LockdownCause;
use super::*;

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

/// A message that may be claimed at `now` (a placeholder): pending, due,
/// and not held by another attempt's lease.
fn due(now: &str) -> String {
    format!("status = 'pending' AND next_attempt_at <= {now} AND (lease_until IS NULL OR lease_until <= {now})")
}

const MAIL_COLUMNS: &str = "id, kind, user_id, address, event_at, ip, user_agent, created_at, status, attempts, next_attempt_at, last_error, sent_at";

impl Db {
    /// Queues one message (a single row: no transaction needed).
    pub async fn enqueue_mail(&self, m: &NewMail<'_>) -> Result<i64, AppError> {
        let _turn = self.turn().await?;
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

    /// Takes a due message for one sending attempt, holding it until
    /// `lease_until`: true for exactly one of racing instances.
    ///
    /// One statement, in a transaction of its own so that a failure can be
    /// injected into it as into every other write (`fail_next_transaction_at`).
    pub async fn claim_mail(&self, id: i64, now: i64, lease_until: i64) -> Result<bool, AppError> {
        let mut tx = self.begin().await?;
        tx.step()?;
        let done = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE mail_queue SET lease_until = $3, attempts = attempts + 1 WHERE id = $1 AND {}",
            due("$2")
        )))
        .bind(id)
        .bind(now)
        .bind(lease_until)
        .execute(&mut *tx.tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Takes up to `limit` due messages, oldest first, for one sending
    /// attempt each (their `attempts` count it), holding them until
    /// `lease_until`. One statement for the round: of racing instances,
    /// each message goes to one (the outer condition is checked again on
    /// the row, after any other claim of it committed).
    pub async fn claim_due_mail(&self, now: i64, lease_until: i64, limit: i64) -> Result<Vec<MailRow>, AppError> {
        let mut tx = self.begin().await?;
        tx.step()?;
        let mut rows = sqlx::query_as::<_, MailRow>(sqlx::AssertSqlSafe(format!(
            "UPDATE mail_queue SET lease_until = $2, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM mail_queue WHERE {due} ORDER BY id LIMIT $3) AND {due} \
             RETURNING {MAIL_COLUMNS}",
            due = due("$1")
        )))
        .bind(now)
        .bind(lease_until)
        .bind(limit)
        .fetch_all(&mut *tx.tx)
        .await?;
        tx.commit().await?;
        rows.sort_by_key(|r| r.id);
        Ok(rows)
    }

    /// Records delivered messages, one statement for a round (the rows stay,
    /// without any text, for `server mail queue` until pruned).
    pub async fn mails_sent(&self, ids: &[i64], now: i64) -> Result<(), AppError> {
        if ids.is_empty() {
            return Ok(());
        }
        let _turn = self.turn().await?;
        let list = (0..ids.len()).map(|i| format!("${}", i + 2)).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "UPDATE mail_queue SET status = 'sent', sent_at = $1, lease_until = NULL, last_error = NULL \
             WHERE id IN ({list})"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now);
        for id in ids {
            query = query.bind(*id);
        }
        query.execute(&self.pool).await?;
        Ok(())
    }

    /// Records a failed attempt: tried again at `retry_at`, or given up
    /// (`failed`) when that is `None`.
    pub async fn mail_failed(&self, id: i64, error: &str, retry_at: Option<i64>) -> Result<(), AppError> {
        let _turn = self.turn().await?;
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
        let _turn = self.turn().await?;
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

    /// Messages waiting (pending) and given up (failed): a scrape's gauge.
    pub async fn mail_queue_depth(&self) -> Result<(i64, i64), AppError> {
        Ok(sqlx::query_as(
            "SELECT COALESCE(SUM(CASE WHEN status = 'pending' THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), 0) FROM mail_queue WHERE status <> 'sent'",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    /// Deletes sent and given-up messages older than `before`, and expired
    /// link tokens.
    pub async fn prune_mail(&self, before: i64, now: i64) -> Result<(), AppError> {
        let _turn = self.turn().await?;
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
        self.insert_mailed_token(token_hash, user_id, purpose, now, expires_at, None).await
    }

    /// `insert_email_token` for the link of queued message `mail_id` (a
    /// lockdown link remembers the notice it came in).
    pub async fn insert_mailed_token(
        &self,
        token_hash: &str,
        user_id: i64,
        purpose: &str,
        now: i64,
        expires_at: i64,
        mail_id: Option<i64>,
    ) -> Result<(), AppError> {
        let _turn = self.turn().await?;
        sqlx::query(
            "INSERT INTO email_tokens (token_hash, user_id, purpose, created_at, expires_at, mail_id) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(token_hash)
        .bind(user_id)
        .bind(purpose)
        .bind(now)
        .bind(expires_at)
        .bind(mail_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deletes a link token whose message could not be sent.
    pub async fn delete_email_token(&self, token_hash: &str) -> Result<(), AppError> {
        let _turn = self.turn().await?;
        sqlx::query("DELETE FROM email_tokens WHERE token_hash = $1").bind(token_hash).execute(&self.pool).await?;
        Ok(())
    }

    /// The account a live token of `purpose` belongs to, without using it
    /// (the reset page checks the new password against the account first).
    pub async fn email_token_owner(&self, token_hash: &str, purpose: &str, now: i64) -> Result<Option<i64>, AppError> {
        let row: Option<(i64,)> = sqlx::query_as(
            "SELECT user_id FROM email_tokens WHERE token_hash = $1 AND purpose = $2 AND expires_at > $3 \
             AND used_at IS NULL",
        )
        .bind(token_hash)
        .bind(purpose)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(id,)| id))
    }

    /// What a link token is, without using it: its account, when it
    /// expires and when it was used. `None`: no such token of `purpose`
    /// (never issued, replaced, or pruned after expiring).
    pub async fn email_token_state(
        &self,
        token_hash: &str,
        purpose: &str,
    ) -> Result<Option<(i64, i64, Option<i64>)>, AppError> {
        Ok(sqlx::query_as(
            "SELECT user_id, expires_at, used_at FROM email_tokens WHERE token_hash = $1 AND purpose = $2",
        )
        .bind(token_hash)
        .bind(purpose)
        .fetch_optional(&self.pool)
        .await?)
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

    /// Uses a link token: marks it used and returns its account if it was
    /// of `purpose`, unused and unexpired. One statement, so it works once.
    pub async fn take_email_token(
        &mut self,
        token_hash: &str,
        purpose: &str,
        now: i64,
    ) -> Result<Option<i64>, AppError> {
        self.step()?;
        let row: Option<(i64,)> = sqlx::query_as(
            "UPDATE email_tokens SET used_at = $3 WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL \
             AND expires_at > $3 RETURNING user_id",
        )
        .bind(token_hash)
        .bind(purpose)
        .bind(now)
        .fetch_optional(&mut *self.tx)
        .await?;
        Ok(row.map(|(id,)| id))
    }

    /// Uses a lockdown link's token like `take_email_token`, and reads what
    /// the notice it came in reported (if that message is still kept).
    pub async fn take_lockdown_token(
        &mut self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<(i64, Option<LockdownCause>)>, AppError> {
        self.step()?;
        let row: Option<(i64, Option<i64>)> = sqlx::query_as(
            "UPDATE email_tokens SET used_at = $2 WHERE token_hash = $1 AND purpose = 'lockdown' \
             AND used_at IS NULL AND expires_at > $2 RETURNING user_id, mail_id",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&mut *self.tx)
        .await?;
        let Some((user_id, mail_id)) = row else { return Ok(None) };
        let cause = match mail_id {
            Some(id) => {
                sqlx::query_as::<_, LockdownCause>(
                    "SELECT kind, event_at AS at, ip, user_agent FROM mail_queue WHERE id = $1 AND user_id = $2",
                )
                .bind(id)
                .bind(user_id)
                .fetch_optional(&mut *self.tx)
                .await?
            }
            None => None,
        };
        Ok(Some((user_id, cause)))
    }

    /// Deletes the account's unused tokens of `purpose` (used ones stay
    /// until they expire, to say what they did if opened again).
    pub async fn delete_email_tokens(&mut self, user_id: i64, purpose: &str) -> Result<(), AppError> {
        self.step()?;
        sqlx::query("DELETE FROM email_tokens WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL")
            .bind(user_id)
            .bind(purpose)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }
}
