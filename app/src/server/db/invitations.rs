//! The SQL of invitations (migration 0016): made and revoked by an
//! administrator, their link made when it is copied or mailed, used once
//! by the sign-up that makes the account.

use super::*;

/// An invitation as the admin page lists it.
#[derive(Debug, Clone, FromRow)]
pub struct InvitationRow {
    pub id: i64,
    pub email: Option<String>,
    pub group_names: String,
    pub mailed: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// Whether its link exists yet (a mailed one's is made when sent).
    pub has_link: i64,
    pub created_by_email: Option<String>,
    pub used_by_email: Option<String>,
}

impl InvitationRow {
    pub fn groups(&self) -> impl Iterator<Item = &str> {
        self.group_names.split(',').filter(|g| !g.is_empty())
    }
}

/// What a sign-up needs of the invitation it uses.
#[derive(Debug, Clone, FromRow)]
pub struct TakenInvitation {
    pub id: i64,
    pub email: Option<String>,
    pub group_names: String,
    pub mailed: i64,
    pub created_by: Option<i64>,
}

/// A new invitation.
pub struct NewInvitation<'a> {
    pub token_hash: Option<&'a str>,
    pub email: Option<&'a str>,
    pub group_names: &'a str,
    pub mailed: bool,
    pub created_by: Option<i64>,
    pub created_at: i64,
    pub expires_at: i64,
}

impl Db {
    /// The newest `limit` invitations, with who made and who used each.
    pub async fn invitations(&self, limit: i64) -> Result<Vec<InvitationRow>, AppError> {
        Ok(sqlx::query_as(
            "SELECT i.id, i.email, i.group_names, i.mailed, i.created_at, i.expires_at, i.used_at, i.revoked_at, \
             CASE WHEN i.token_hash IS NULL THEN 0 ELSE 1 END AS has_link, \
             c.email AS created_by_email, u.email AS used_by_email \
             FROM invitations i LEFT JOIN users c ON c.id = i.created_by LEFT JOIN users u ON u.id = i.used_by \
             ORDER BY i.created_at DESC, i.id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The invitation a link's token belongs to, read without using it:
    /// `(email, expires_at, used_at, revoked_at)`.
    pub async fn invitation_by_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<(Option<String>, i64, Option<i64>, Option<i64>)>, AppError> {
        Ok(sqlx::query_as("SELECT email, expires_at, used_at, revoked_at FROM invitations WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// A mailed invitation's link, made as its message is sent (replacing
    /// the link of an earlier try): the invitation's address and groups,
    /// who made it, or `None` when it can no longer be used (then nothing
    /// is sent).
    pub async fn give_invitation_link(
        &self,
        id: i64,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<(Option<String>, String, i64, Option<i64>)>, AppError> {
        let _turn = self.turn().await?;
        Ok(sqlx::query_as(
            "UPDATE invitations SET token_hash = $2 WHERE id = $1 AND used_at IS NULL AND revoked_at IS NULL \
             AND expires_at > $3 RETURNING email, group_names, expires_at, created_by",
        )
        .bind(id)
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?)
    }
}

impl Tx {
    pub async fn insert_invitation(&mut self, new: &NewInvitation<'_>) -> Result<i64, AppError> {
        self.step()?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO invitations (token_hash, email, group_names, mailed, created_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(new.token_hash)
        .bind(new.email)
        .bind(new.group_names)
        .bind(i64::from(new.mailed))
        .bind(new.created_by)
        .bind(new.created_at)
        .bind(new.expires_at)
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(id)
    }

    /// Revokes an invitation not yet used nor revoked; its address, if it
    /// was one to revoke (`Some(None)` for one bound to no address).
    pub async fn revoke_invitation(&mut self, id: i64, now: i64) -> Result<Option<Option<String>>, AppError> {
        self.step()?;
        let row: Option<(Option<String>,)> = sqlx::query_as(
            "UPDATE invitations SET revoked_at = $2 WHERE id = $1 AND used_at IS NULL AND revoked_at IS NULL \
             RETURNING email",
        )
        .bind(id)
        .bind(now)
        .fetch_optional(&mut *self.tx)
        .await?;
        Ok(row.map(|(email,)| email))
    }

    /// Uses the invitation whose link's token hashes to `token_hash`: one
    /// statement, so of two sign-ups racing with one link only one wins,
    /// on any instance. `None`: no such link, used, revoked or expired.
    pub async fn take_invitation(&mut self, token_hash: &str, now: i64) -> Result<Option<TakenInvitation>, AppError> {
        self.step()?;
        Ok(sqlx::query_as(
            "UPDATE invitations SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL \
             AND expires_at > $2 RETURNING id, email, group_names, mailed, created_by",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&mut *self.tx)
        .await?)
    }

    /// Names the account an invitation made.
    pub async fn set_invitation_used_by(&mut self, id: i64, user_id: i64) -> Result<(), AppError> {
        self.step()?;
        sqlx::query("UPDATE invitations SET used_by = $2 WHERE id = $1")
            .bind(id)
            .bind(user_id)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Invitations into `from` put people in `to` instead (`None`: in
    /// neither); how many changed.
    pub async fn rename_group_of_invitations(&mut self, from: &str, to: Option<&str>) -> Result<usize, AppError> {
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, group_names FROM invitations WHERE used_at IS NULL AND revoked_at IS NULL")
                .fetch_all(&mut *self.tx)
                .await?;
        let mut changed = 0;
        for (id, names) in rows {
            if !names.split(',').any(|g| g == from) {
                continue;
            }
            self.step()?;
            let renamed: Vec<&str> = names.split(',').filter_map(|g| if g == from { to } else { Some(g) }).collect();
            sqlx::query("UPDATE invitations SET group_names = $2 WHERE id = $1")
                .bind(id)
                .bind(renamed.join(","))
                .execute(&mut *self.tx)
                .await?;
            changed += 1;
        }
        Ok(changed)
    }
}
