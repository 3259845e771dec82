//! The SQL of second factors: TOTP replay steps and the consecutive-failure
//! cap, recovery codes, spent password-stage tokens, passkeys and WebAuthn
//! ceremonies.

use super::users::UserRecord;
use super::*;

/// A stored passkey or security key.
#[derive(Debug, Clone, FromRow)]
pub struct PasskeyRow {
    pub id: String,
    pub user_id: i64,
    pub credential_id: String,
    pub name: String,
    /// webauthn-rs's JSON (see `webauthn`).
    pub credential: String,
    pub backup_eligible: i64,
    pub backup_state: i64,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// A WebAuthn ceremony taken out of the database by its finish step.
#[derive(Debug, Clone, FromRow)]
pub struct CeremonyRow {
    pub kind: String,
    pub user_id: Option<i64>,
    pub bound_to: Option<String>,
    pub name: Option<String>,
    pub state: String,
    pub expires_at: i64,
}

pub struct NewCeremony<'a> {
    pub id_hash: &'a str,
    pub kind: &'a str,
    pub user_id: Option<i64>,
    pub bound_to: Option<&'a str>,
    pub name: Option<&'a str>,
    pub state: &'a str,
    pub expires_at: i64,
}

pub struct NewPasskey<'a> {
    pub id: &'a str,
    pub user_id: i64,
    pub credential_id: &'a str,
    pub name: &'a str,
    pub credential: &'a str,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub now: i64,
}

impl Db {
    /// Counts one more second-factor attempt before it is evaluated, if the
    /// account is under `cap` consecutive failures: `None` means refused.
    /// One conditional update, so parallel attempts cannot pass the cap.
    pub async fn reserve_factor_attempt(&self, id: i64, cap: i64) -> Result<Option<i64>, AppError> {
        reserve_factor_attempt(&mut *self.pool.acquire().await?, id, cap).await
    }

    /// A second factor passed: the consecutive count starts over.
    pub async fn clear_factor_failures(&self, id: i64) -> Result<(), AppError> {
        clear_factor_failures(&mut *self.pool.acquire().await?, id).await
    }

    pub(super) const PASSKEY_COLUMNS: &'static str =
        "id, user_id, credential_id, name, credential, backup_eligible, backup_state, created_at, last_used_at";

    /// A user's passkeys, oldest first.
    pub async fn passkeys_of(&self, user_id: i64) -> Result<Vec<PasskeyRow>, AppError> {
        let sql = format!("SELECT {} FROM passkeys WHERE user_id = $1 ORDER BY created_at, id", Self::PASSKEY_COLUMNS);
        Ok(sqlx::query_as::<_, PasskeyRow>(sqlx::AssertSqlSafe(sql)).bind(user_id).fetch_all(&self.pool).await?)
    }

    pub async fn passkey_by_credential(&self, credential_id: &str) -> Result<Option<PasskeyRow>, AppError> {
        let sql = format!("SELECT {} FROM passkeys WHERE credential_id = $1", Self::PASSKEY_COLUMNS);
        Ok(sqlx::query_as::<_, PasskeyRow>(sqlx::AssertSqlSafe(sql))
            .bind(credential_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// The account's WebAuthn user handle, made on first use.
    pub async fn webauthn_handle(&self, user_id: i64, fresh: &str) -> Result<String, AppError> {
        let _turn = self.turn().await?;
        sqlx::query("UPDATE users SET webauthn_id = $1 WHERE id = $2 AND webauthn_id IS NULL")
            .bind(fresh)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        let (handle,): (Option<String>,) =
            sqlx::query_as("SELECT webauthn_id FROM users WHERE id = $1").bind(user_id).fetch_one(&self.pool).await?;
        handle.ok_or_else(AppError::internal)
    }

    pub async fn user_by_webauthn_handle(&self, handle: &str) -> Result<Option<UserRow>, AppError> {
        Ok(sqlx::query_as::<_, UserRecord>(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM users WHERE webauthn_id = $1",
            Self::USER_COLUMNS
        )))
        .bind(handle)
        .fetch_optional(&self.pool)
        .await?
        .map(UserRow::from))
    }

    pub async fn insert_ceremony(&self, c: &NewCeremony<'_>) -> Result<(), AppError> {
        let _turn = self.turn().await?;
        sqlx::query(
            "INSERT INTO webauthn_ceremonies (id, kind, user_id, bound_to, name, state, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(c.id_hash)
        .bind(c.kind)
        .bind(c.user_id)
        .bind(c.bound_to)
        .bind(c.name)
        .bind(c.state)
        .bind(c.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Takes a ceremony out, in one statement: of requests finishing the
    /// same ceremony (on any instance), one gets it. Expired ones are
    /// taken too, and refused by the caller.
    pub async fn take_ceremony(&self, id_hash: &str) -> Result<Option<CeremonyRow>, AppError> {
        let _turn = self.turn().await?;
        Ok(sqlx::query_as::<_, CeremonyRow>(
            "DELETE FROM webauthn_ceremonies WHERE id = $1 \
             RETURNING kind, user_id, bound_to, name, state, expires_at",
        )
        .bind(id_hash)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Stores what a verified assertion moved on (counter, backup state),
    /// only if the credential is still as it was read: of two assertions
    /// verified against the same counter, one is recorded.
    pub async fn record_passkey_use(
        &self,
        id: &str,
        before: &str,
        after: &str,
        backup_state: bool,
        now: i64,
    ) -> Result<bool, AppError> {
        let _turn = self.turn().await?;
        let done = sqlx::query(
            "UPDATE passkeys SET credential = $1, backup_state = $2, last_used_at = $3 \
             WHERE id = $4 AND credential = $5",
        )
        .bind(after)
        .bind(i64::from(backup_state))
        .bind(now)
        .bind(id)
        .bind(before)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn rename_passkey(&self, user_id: i64, id: &str, name: &str) -> Result<bool, AppError> {
        let _turn = self.turn().await?;
        let done = sqlx::query("UPDATE passkeys SET name = $1 WHERE id = $2 AND user_id = $3")
            .bind(name)
            .bind(id)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Spends a recovery code, given every stored form it may have (see
    /// `SecretBox::recovery_candidates`): one conditional update, so true for
    /// exactly one of any racing requests.
    pub async fn use_recovery_code(&self, user_id: i64, candidates: &[String], now: i64) -> Result<bool, AppError> {
        use_recovery_code(&mut *self.pool.acquire().await?, user_id, candidates, now).await
    }

    /// The stored hashes of unused recovery codes with the users they
    /// belong to, for the key-rotation report.
    pub async fn unused_recovery_hashes(&self) -> Result<Vec<(i64, String)>, AppError> {
        Ok(sqlx::query_as("SELECT user_id, code_hash FROM recovery_codes WHERE used_at IS NULL")
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn recovery_codes_left(&self, user_id: i64) -> Result<i64, AppError> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL")
            .bind(user_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(n)
    }
}

impl Tx {
    /// `Db::take_ceremony` as one of the writes of this transaction: rolled
    /// back with it, the ceremony can be finished again.
    pub async fn take_ceremony(&mut self, id_hash: &str) -> Result<Option<CeremonyRow>, AppError> {
        self.step()?;
        Ok(sqlx::query_as::<_, CeremonyRow>(
            "DELETE FROM webauthn_ceremonies WHERE id = $1 \
             RETURNING kind, user_id, bound_to, name, state, expires_at",
        )
        .bind(id_hash)
        .fetch_optional(&mut *self.tx)
        .await?)
    }

    /// `Db::reserve_factor_attempt`, in this transaction.
    pub async fn reserve_factor_attempt(&mut self, id: i64, cap: i64) -> Result<Option<i64>, AppError> {
        self.step()?;
        reserve_factor_attempt(&mut self.tx, id, cap).await
    }

    /// `Db::clear_factor_failures`, in this transaction.
    pub async fn clear_factor_failures(&mut self, id: i64) -> Result<(), AppError> {
        self.step()?;
        clear_factor_failures(&mut self.tx, id).await
    }

    /// `Db::use_recovery_code`, in this transaction.
    pub async fn use_recovery_code(&mut self, user_id: i64, candidates: &[String], now: i64) -> Result<bool, AppError> {
        self.step()?;
        use_recovery_code(&mut self.tx, user_id, candidates, now).await
    }

    /// A code from the app for time step `step`, counted and judged in one
    /// conditional update: refused (`None`) at `cap` consecutive failures,
    /// as `reserve_factor_attempt`; else accepted if `step` is later than
    /// the last accepted one (the replay guard's compare-and-set, which
    /// also starts the count over: `Some(0)`), or counted as one more
    /// failure (`Some(n)`, n ≥ 1). Every expression reads the row as it
    /// was, so exactly one of racing requests with the same step gets
    /// `Some(0)`.
    pub async fn judge_totp_step(&mut self, id: i64, step: i64, cap: i64) -> Result<Option<i64>, AppError> {
        self.step()?;
        let row: Option<(i64,)> = sqlx::query_as(
            "UPDATE users SET \
               factor_failures = CASE WHEN totp_enabled = 1 AND (totp_last_step IS NULL OR totp_last_step < $2) \
                 THEN 0 ELSE factor_failures + 1 END, \
               totp_last_step = CASE WHEN totp_enabled = 1 AND (totp_last_step IS NULL OR totp_last_step < $2) \
                 THEN $2 ELSE totp_last_step END \
             WHERE id = $1 AND factor_failures < $3 \
             RETURNING factor_failures",
        )
        .bind(id)
        .bind(step)
        .bind(cap)
        .fetch_optional(&mut *self.tx)
        .await?;
        Ok(row.map(|(n,)| n))
    }

    /// Marks a password-stage token as exchanged: true the first time only.
    pub async fn spend_stage_token(&mut self, jti: &str, expires_at: i64) -> Result<bool, AppError> {
        self.step()?;
        let done = sqlx::query(
            "INSERT INTO spent_stage_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING",
        )
        .bind(jti)
        .bind(expires_at)
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Replaces a user's recovery codes with new ones (hashes), atomically.
    pub async fn replace_recovery_codes(&mut self, user_id: i64, hashes: &[String]) -> Result<(), AppError> {
        self.step()?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1").bind(user_id).execute(&mut *self.tx).await?;
        for hash in hashes {
            sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
                .bind(user_id)
                .bind(hash)
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(())
    }

    /// Stores a new passkey and counts it on the account; `None` if the
    /// credential is already registered (to anyone). Returns the count.
    pub async fn insert_passkey(&mut self, p: &NewPasskey<'_>) -> Result<Option<i64>, AppError> {
        self.step()?;
        let inserted = sqlx::query(
            "INSERT INTO passkeys (id, user_id, credential_id, name, credential, backup_eligible, backup_state, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (credential_id) DO NOTHING",
        )
        .bind(p.id)
        .bind(p.user_id)
        .bind(p.credential_id)
        .bind(p.name)
        .bind(p.credential)
        .bind(i64::from(p.backup_eligible))
        .bind(i64::from(p.backup_state))
        .bind(p.now)
        .execute(&mut *self.tx)
        .await?;
        if inserted.rows_affected() != 1 {
            return Ok(None);
        }
        let (count,): (i64,) =
            sqlx::query_as("UPDATE users SET passkey_count = passkey_count + 1 WHERE id = $1 RETURNING passkey_count")
                .bind(p.user_id)
                .fetch_one(&mut *self.tx)
                .await?;
        self.invalidate(Invalidation::User(p.user_id)).await?;
        Ok(Some(count))
    }

    /// Removes one of the user's passkeys: the count left and whether the
    /// app is on (read in the same statement), or `None` if there was no
    /// such passkey.
    pub async fn delete_passkey(&mut self, user_id: i64, id: &str) -> Result<Option<(i64, bool)>, AppError> {
        self.step()?;
        let deleted = sqlx::query("DELETE FROM passkeys WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user_id)
            .execute(&mut *self.tx)
            .await?;
        if deleted.rows_affected() != 1 {
            return Ok(None);
        }
        let (count, app): (i64, i64) = sqlx::query_as(
            "UPDATE users SET passkey_count = passkey_count - 1 WHERE id = $1 RETURNING passkey_count, totp_enabled",
        )
        .bind(user_id)
        .fetch_one(&mut *self.tx)
        .await?;
        self.invalidate(Invalidation::User(user_id)).await?;
        Ok(Some((count, app == 1)))
    }

    /// Removes every passkey of the user (an operator's reset).
    pub async fn delete_all_passkeys(&mut self, user_id: i64) -> Result<u64, AppError> {
        self.step()?;
        let deleted =
            sqlx::query("DELETE FROM passkeys WHERE user_id = $1").bind(user_id).execute(&mut *self.tx).await?;
        sqlx::query("UPDATE users SET passkey_count = 0 WHERE id = $1").bind(user_id).execute(&mut *self.tx).await?;
        self.invalidate(Invalidation::User(user_id)).await?;
        Ok(deleted.rows_affected())
    }

    /// Deletes the recovery codes (two-factor protection is off).
    pub async fn delete_recovery_codes(&mut self, user_id: i64) -> Result<(), AppError> {
        self.step()?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1").bind(user_id).execute(&mut *self.tx).await?;
        Ok(())
    }
}

async fn reserve_factor_attempt(conn: &mut sqlx::AnyConnection, id: i64, cap: i64) -> Result<Option<i64>, AppError> {
    let row: Option<(i64,)> = sqlx::query_as(
        "UPDATE users SET factor_failures = factor_failures + 1 WHERE id = $1 AND factor_failures < $2 \
         RETURNING factor_failures",
    )
    .bind(id)
    .bind(cap)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|(n,)| n))
}

async fn clear_factor_failures(conn: &mut sqlx::AnyConnection, id: i64) -> Result<(), AppError> {
    sqlx::query("UPDATE users SET factor_failures = 0 WHERE id = $1").bind(id).execute(&mut *conn).await?;
    Ok(())
}

async fn use_recovery_code(
    conn: &mut sqlx::AnyConnection,
    user_id: i64,
    candidates: &[String],
    now: i64,
) -> Result<bool, AppError> {
    if candidates.is_empty() {
        return Ok(false);
    }
    let list: Vec<String> = (0..candidates.len()).map(|i| format!("${}", i + 3)).collect();
    let sql = format!(
        "UPDATE recovery_codes SET used_at = $1 WHERE user_id = $2 AND code_hash IN ({}) AND used_at IS NULL",
        list.join(", ")
    );
    // Built from numbered placeholders only; every value is bound.
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now).bind(user_id);
    for candidate in candidates {
        query = query.bind(candidate);
    }
    let done = query.execute(&mut *conn).await?;
    Ok(done.rows_affected() >= 1)
}
