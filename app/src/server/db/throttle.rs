//! The SQL of guessing limits: one conditional upsert per attempt, so a
//! limit holds across instances and under parallel requests.

use crate::server::metrics::{Count, METRICS};
use sqlx::AnyConnection;

use super::*;

/// A guessing limit: `free` failures, then a delay doubling from 1 s up to
/// `cap`; after `window` quiet seconds the count starts over.
#[derive(Debug, Clone, Copy)]
pub struct Throttle {
    pub free: i64,
    pub cap: i64,
    pub window: i64,
}

impl Db {
    /// Records one attempt against `key` if its delay has passed, in one
    /// conditional upsert: `Ok(None)` means the attempt may proceed (and is
    /// already counted as a failure until `throttle_reset`), `Ok(Some(s))`
    /// means it is refused for `s` more seconds. Failures past `free` double
    /// the delay, up to `cap`; a key quiet for `window` seconds starts over.
    pub async fn throttle_attempt(&self, key: &str, policy: Throttle, now: i64) -> Result<Option<i64>, AppError> {
        let wait = attempt(&mut *self.pool.acquire().await?, key, policy, now).await?;
        if wait.is_some() {
            METRICS.add(Count::throttled(key));
        }
        Ok(wait)
    }

    /// True once per throttling episode of `key` (the first refusal since
    /// its last evaluated failure): the one refusal worth auditing.
    pub async fn throttle_first_refusal(&self, key: &str) -> Result<bool, AppError> {
        first_refusal(&mut *self.pool.acquire().await?, key).await
    }

    /// Gives back one attempt reserved on `key` (an address whose attempt
    /// succeeded): its other failures stay counted.
    pub async fn throttle_release(&self, key: &str) -> Result<(), AppError> {
        release(&mut *self.pool.acquire().await?, key).await
    }

    /// Forgets the failures of `key` (after a success).
    pub async fn throttle_reset(&self, key: &str) -> Result<(), AppError> {
        reset(&mut *self.pool.acquire().await?, key).await
    }
}

/// The same, in a transaction: the buckets of one attempt are reserved (or
/// settled) together, with one commit, and with the operation they guard
/// when it needs no wait between (see `throttle`). Not counted as the
/// operation's writes by fault injection: the `throttle` table is the
/// limits' bookkeeping, not the operation's.
impl Tx {
    pub async fn throttle_attempt(&mut self, key: &str, policy: Throttle, now: i64) -> Result<Option<i64>, AppError> {
        let wait = attempt(&mut self.tx, key, policy, now).await?;
        if wait.is_some() {
            self.count(Count::throttled(key));
        }
        Ok(wait)
    }

    pub async fn throttle_first_refusal(&mut self, key: &str) -> Result<bool, AppError> {
        first_refusal(&mut self.tx, key).await
    }

    /// Settles reserved buckets in order: `true` resets the bucket (its
    /// row goes), `false` releases one attempt. The same statements as
    /// `Db::throttle_reset` and `Db::throttle_release`; on SQLite they
    /// go to the connection's thread as one batch (one round trip, about
    /// 40 µs, instead of one each).
    pub async fn throttle_settle(&mut self, buckets: &[(&str, bool)]) -> Result<(), AppError> {
        if self.backend != Backend::Sqlite || buckets.len() < 2 {
            for (key, reset_it) in buckets {
                if *reset_it {
                    reset(&mut self.tx, key).await?;
                } else {
                    release(&mut self.tx, key).await?;
                }
            }
            return Ok(());
        }
        let sql: Vec<String> = buckets
            .iter()
            .enumerate()
            .map(|(i, (_, reset_it))| if *reset_it { reset_sql(i + 1) } else { release_sql(i + 1) })
            .collect();
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.join("; ")));
        for (key, _) in buckets {
            query = query.bind(*key);
        }
        query.execute(&mut *self.tx).await?;
        Ok(())
    }
}

/// Releasing one attempt of the bucket named by parameter `$n`.
fn release_sql(n: usize) -> String {
    format!("UPDATE throttle SET failures = failures - 1 WHERE key = ${n} AND failures > 0")
}

/// Resetting the bucket named by parameter `$n`.
fn reset_sql(n: usize) -> String {
    format!("DELETE FROM throttle WHERE key = ${n}")
}

async fn attempt(conn: &mut AnyConnection, key: &str, policy: Throttle, now: i64) -> Result<Option<i64>, AppError> {
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
    .fetch_optional(&mut *conn)
    .await?;
    if counted.is_some() {
        return Ok(None);
    }
    let wait: Option<(i64,)> = sqlx::query_as("SELECT last_at + delay_seconds - $2 FROM throttle WHERE key = $1")
        .bind(key)
        .bind(now)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(Some(wait.map(|(w,)| w.max(1)).unwrap_or(1)))
}

async fn first_refusal(conn: &mut AnyConnection, key: &str) -> Result<bool, AppError> {
    let done = sqlx::query(
        "UPDATE throttle SET noticed_at = last_at WHERE key = $1 AND (noticed_at IS NULL OR noticed_at <> last_at)",
    )
    .bind(key)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

async fn release(conn: &mut AnyConnection, key: &str) -> Result<(), AppError> {
    sqlx::query(sqlx::AssertSqlSafe(release_sql(1))).bind(key).execute(&mut *conn).await?;
    Ok(())
}

async fn reset(conn: &mut AnyConnection, key: &str) -> Result<(), AppError> {
    sqlx::query(sqlx::AssertSqlSafe(reset_sql(1))).bind(key).execute(&mut *conn).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn rows(db: &Db) -> Vec<(String, i64, i64, i64)> {
        sqlx::query_as("SELECT key, failures, delay_seconds, last_at FROM throttle ORDER BY key")
            .fetch_all(&db.pool)
            .await
            .expect("rows")
    }

    /// The batch sent to SQLite's thread at once leaves exactly what the
    /// same statements leave one by one: each bucket reset or released,
    /// a bucket at zero failures left at zero, a missing one left missing.
    #[tokio::test]
    async fn a_batch_settles_as_the_statements_one_by_one() {
        let dir = std::env::temp_dir().join(format!("twofactor-throttle-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let mut after = Vec::new();
        for batched in [true, false] {
            let path = dir.join(format!("t-{batched}.db"));
            let _ = std::fs::remove_file(&path);
            let db = Db::connect(&format!("sqlite://{}?mode=rwc", path.display()), 2).await.expect("db");
            for (key, failures) in [("a", 3), ("b", 2), ("c", 0), ("d", 5)] {
                sqlx::query("INSERT INTO throttle (key, failures, delay_seconds, last_at) VALUES ($1, $2, 4, 100)")
                    .bind(key)
                    .bind(failures)
                    .execute(&db.pool)
                    .await
                    .expect("row");
            }
            let buckets = [("a", true), ("b", false), ("c", false), ("missing", false), ("missing2", true)];
            let mut tx = db.begin().await.expect("tx");
            if batched {
                tx.throttle_settle(&buckets).await.expect("settle");
            } else {
                for (key, reset_it) in buckets {
                    tx.throttle_settle(&[(key, reset_it)]).await.expect("one");
                }
            }
            tx.commit().await.expect("commit");
            after.push(rows(&db).await);
            db.close().await;
        }
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(after[0], after[1]);
        let expected = vec![("b".to_owned(), 1, 4, 100), ("c".to_owned(), 0, 4, 100), ("d".to_owned(), 5, 4, 100)];
        assert_eq!(after[0], expected);
    }
}
