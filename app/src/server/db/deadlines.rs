//! The SQL of two-factor deadlines (migration 0017): a group's date by
//! which its members must have two factors on, and the grace a member who
//! joins later gets from the day they join.

use super::*;

/// A group's deadline.
#[derive(Debug, Clone, FromRow)]
pub struct DeadlineRow {
    pub name: String,
    pub due_at: i64,
    pub grace_days: i64,
}

impl Db {
    /// Every group's deadline.
    pub async fn deadlines(&self) -> Result<Vec<DeadlineRow>, AppError> {
        Ok(sqlx::query_as("SELECT name, due_at, grace_days FROM group_deadlines ORDER BY name")
            .fetch_all(&self.pool)
            .await?)
    }

    /// `Tx::two_factor_due`, read alone (the admin page's rule tester).
    pub async fn two_factor_due(&self, user_id: i64) -> Result<Option<i64>, AppError> {
        let (due,): (Option<i64>,) =
            sqlx::query_as(concat!("SELECT ", two_factor_due!(), " FROM users u WHERE u.id = $1"))
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?
                .unwrap_or((None,));
        Ok(due)
    }
}

impl Tx {
    /// The earliest two-factor deadline of the account's groups (NULL:
    /// none), as the session reads it.
    pub async fn two_factor_due(&mut self, user_id: i64) -> Result<Option<i64>, AppError> {
        let (due,): (Option<i64>,) =
            sqlx::query_as(concat!("SELECT ", two_factor_due!(), " FROM users u WHERE u.id = $1"))
                .bind(user_id)
                .fetch_optional(&mut *self.tx)
                .await?
                .unwrap_or((None,));
        Ok(due)
    }

    /// Sets (or replaces) `group`'s deadline.
    pub async fn set_deadline(
        &mut self,
        group: &str,
        due_at: i64,
        grace_days: i64,
        by: i64,
        now: i64,
    ) -> Result<(), AppError> {
        self.step()?;
        sqlx::query(
            "INSERT INTO group_deadlines (name, due_at, grace_days, set_by, set_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (name) DO UPDATE SET due_at = $2, grace_days = $3, set_by = $4, set_at = $5",
        )
        .bind(group)
        .bind(due_at)
        .bind(grace_days)
        .bind(by)
        .bind(now)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Removes `group`'s deadline; whether it had one.
    pub async fn clear_deadline(&mut self, group: &str) -> Result<bool, AppError> {
        self.step()?;
        let done =
            sqlx::query("DELETE FROM group_deadlines WHERE name = $1").bind(group).execute(&mut *self.tx).await?;
        Ok(done.rows_affected() > 0)
    }

    /// A renamed group keeps its deadline; a deleted one loses it.
    pub async fn move_deadline(&mut self, from: &str, to: Option<&str>) -> Result<(), AppError> {
        self.step()?;
        match to {
            Some(to) => sqlx::query("UPDATE group_deadlines SET name = $2 WHERE name = $1").bind(from).bind(to),
            None => sqlx::query("DELETE FROM group_deadlines WHERE name = $1").bind(from),
        }
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }
}
