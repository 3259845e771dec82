//! The SQL of the admin page: finding people, and the counts that protect
//! the last administrator.

use super::*;

/// One line of the people list.
#[derive(Debug, Clone, FromRow)]
pub struct PersonSummaryRow {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub totp_enabled: i64,
    pub passkey_count: i64,
    pub email_verified_at: Option<i64>,
    pub locked_at: Option<i64>,
    pub created_at: i64,
    /// The latest log-in's start (None: never logged in).
    pub last_log_in: Option<i64>,
}

/// How the people list is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeopleOrder {
    /// Newest accounts first.
    Created,
    /// Most recent log-in first; never logged in last.
    LastLogIn,
}

/// `LIKE` pattern for "contains", with `%`, `_` and `\` taken literally.
fn contains_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// The filter of the people list: `$1` a contains-pattern on email or name
/// (or NULL), `$2` a group name (or NULL).
macro_rules! people_where {
    () => {
        "WHERE ($1 IS NULL OR lower(u.email) LIKE $1 ESCAPE '\\' OR lower(u.name) LIKE $1 ESCAPE '\\') \
         AND ($2 IS NULL OR EXISTS (SELECT 1 FROM user_groups g WHERE g.user_id = u.id AND g.name = $2))"
    };
}

/// One page of the list in an order: `$3` rows from `$4`.
macro_rules! people_page {
    ($order:literal) => {
        concat!(
            "SELECT u.id, u.email, u.name, u.totp_enabled, u.passkey_count, u.email_verified_at, u.locked_at, \
             u.created_at, (SELECT MAX(l.created_at) FROM logins l WHERE l.user_id = u.id) AS last_log_in \
             FROM users u ",
            people_where!(),
            " ORDER BY ",
            $order,
            " LIMIT $3 OFFSET $4"
        )
    };
}

/// The groups of up to 50 accounts (unused places bound to 0, which no
/// account has).
const GROUPS_OF_50: &str = "SELECT user_id, name FROM user_groups WHERE user_id IN ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22,$23,$24,$25,$26,$27,$28,$29,$30,$31,$32,$33,$34,$35,$36,$37,$38,$39,$40,$41,$42,$43,$44,$45,$46,$47,$48,$49,$50) \
     ORDER BY user_id, name";

/// The audit trail's filter: `$1` a contains-pattern on the person's
/// email (or NULL), `$2` a kind, `$3`..`$4` a time range (from included,
/// to excluded), `$5` the start of the client address; NULL: any.
macro_rules! events_where {
    () => {
        "WHERE ($1 IS NULL OR lower(u.email) LIKE $1 ESCAPE '\\') AND ($2 IS NULL OR e.kind = $2) \
         AND ($3 IS NULL OR e.at >= $3) AND ($4 IS NULL OR e.at < $4) \
         AND ($5 IS NULL OR substr(e.ip, 1, length($5)) = $5)"
    };
}

/// The events of the audit trail and who they were about and by.
macro_rules! events_from {
    () => {
        "FROM audit_events e LEFT JOIN users u ON u.id = e.user_id LEFT JOIN users a ON a.id = e.actor_id "
    };
}

/// The audit trail's filter, parsed: None for "any".
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Part of the email address.
    pub person: Option<String>,
    pub kind: Option<String>,
    pub from: Option<i64>,
    /// Excluded.
    pub until: Option<i64>,
    pub ip: Option<String>,
}

/// One event of the audit trail, with the addresses of the person and of
/// the administrator who acted.
#[derive(Debug, Clone, FromRow)]
pub struct EventRow {
    pub kind: String,
    pub at: i64,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub user_id: Option<i64>,
    pub person_email: Option<String>,
    pub actor_email: Option<String>,
    pub detail: Option<String>,
}

impl Db {
    /// Events matching `filter`, newest first: `limit` from `offset`, and
    /// how many match in all.
    pub async fn find_events(
        &self,
        filter: &EventFilter,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<EventRow>, i64), AppError> {
        let pattern = filter.person.as_deref().map(contains_pattern);
        let rows = sqlx::query_as::<_, EventRow>(concat!(
            "SELECT e.kind, e.at, e.ip, e.user_agent, e.user_id, u.email AS person_email, a.email AS actor_email, \
             e.detail ",
            events_from!(),
            events_where!(),
            " ORDER BY e.at DESC, e.id DESC LIMIT $6 OFFSET $7"
        ))
        .bind(pattern.as_deref())
        .bind(filter.kind.as_deref())
        .bind(filter.from)
        .bind(filter.until)
        .bind(filter.ip.as_deref())
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        let (total,): (i64,) = sqlx::query_as(concat!("SELECT COUNT(*) ", events_from!(), events_where!()))
            .bind(pattern.as_deref())
            .bind(filter.kind.as_deref())
            .bind(filter.from)
            .bind(filter.until)
            .bind(filter.ip.as_deref())
            .fetch_one(&self.pool)
            .await?;
        Ok((rows, total))
    }

    /// A page of people matching `search` (in email or name) and `group`,
    /// with their groups, and how many match in all.
    pub async fn find_people(
        &self,
        search: Option<&str>,
        group: Option<&str>,
        order: PeopleOrder,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<PersonSummaryRow>, Vec<(i64, String)>, i64), AppError> {
        let pattern = search.map(contains_pattern);
        let query = match order {
            PeopleOrder::Created => people_page!("u.created_at DESC, u.id DESC"),
            PeopleOrder::LastLogIn => people_page!("(last_log_in IS NULL), last_log_in DESC, u.id DESC"),
        };
        let rows = sqlx::query_as::<_, PersonSummaryRow>(query)
            .bind(pattern.as_deref())
            .bind(group)
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.pool)
            .await?;
        let (total,): (i64,) = sqlx::query_as(concat!("SELECT COUNT(*) FROM users u ", people_where!()))
            .bind(pattern.as_deref())
            .bind(group)
            .fetch_one(&self.pool)
            .await?;
        let mut groups = Vec::new();
        for page in rows.chunks(50) {
            let mut query = sqlx::query_as::<_, (i64, String)>(GROUPS_OF_50);
            for i in 0..50 {
                query = query.bind(page.get(i).map_or(0, |r| r.id));
            }
            groups.extend(query.fetch_all(&self.pool).await?);
        }
        Ok((rows, groups, total))
    }

    /// The events of an account, newest first, with the administrator who
    /// caused each (if one did).
    pub async fn admin_activity(&self, user_id: i64, limit: i64) -> Result<Vec<AdminActivityRow>, AppError> {
        Ok(sqlx::query_as::<_, AdminActivityRow>(
            "SELECT e.kind, e.at, e.ip, e.user_agent, a.email AS actor_email FROM audit_events e \
             LEFT JOIN users a ON a.id = e.actor_id WHERE e.user_id = $1 ORDER BY e.at DESC, e.id DESC LIMIT $2",
        )
        .bind(user_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }
}

/// One event of an account as the admin page shows it.
#[derive(Debug, Clone, FromRow)]
pub struct AdminActivityRow {
    pub kind: String,
    pub at: i64,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub actor_email: Option<String>,
}

impl Tx {
    /// Members of `group` with two factors on, other than `except`: the
    /// administrators left if `except` lost the role.
    pub async fn other_admins(&mut self, group: &str, except: i64) -> Result<i64, AppError> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM users u JOIN user_groups g ON g.user_id = u.id \
             WHERE g.name = $1 AND u.id <> $2 AND (u.totp_enabled = 1 OR u.passkey_count > 0)",
        )
        .bind(group)
        .bind(except)
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(n)
    }

    /// Deletes the account `user_id` (address `email`) and every row that
    /// names it; its audit events stay, with nothing that says whose they
    /// were. Its log-ins must have been ended in this transaction first
    /// (`revoke_user_logins`), so that the apps are still told.
    pub async fn delete_account(&mut self, user_id: i64, email: &str) -> Result<bool, AppError> {
        self.step()?;
        sqlx::query(
            "UPDATE audit_events SET user_id = NULL, ip = NULL, user_agent = NULL, about_ip = NULL, \
             about_user_agent = NULL WHERE user_id = $1",
        )
        .bind(user_id)
        .execute(&mut *self.tx)
        .await?;
        // An invitation's events name the address it was for.
        self.step()?;
        sqlx::query("UPDATE audit_events SET detail = NULL WHERE detail = $1")
            .bind(email)
            .execute(&mut *self.tx)
            .await?;
        // A reset asked for the address before the account existed has no
        // account on its row; it names the person all the same.
        self.step()?;
        sqlx::query("DELETE FROM mail_queue WHERE user_id = $1 OR address = $2")
            .bind(user_id)
            .bind(email)
            .execute(&mut *self.tx)
            .await?;
        // Invitations bound to the address or used to make the account.
        self.step()?;
        sqlx::query("DELETE FROM invitations WHERE email = $2 OR used_by = $1")
            .bind(user_id)
            .bind(email)
            .execute(&mut *self.tx)
            .await?;
        // Guessing limits keyed by the address ("pw:<email>", "pw:<email>:…",
        // "mail:<what>:<email>") or the account ("code:<id>").
        self.step()?;
        sqlx::query(
            "DELETE FROM throttle WHERE key = $1 OR key = $2 OR substr(key, 1, length($3)) = $3 \
             OR (substr(key, 1, 5) = 'mail:' AND length(key) > length($4) \
                 AND substr(key, length(key) - length($4) + 1) = $4)",
        )
        .bind(format!("pw:{email}"))
        .bind(format!("code:{user_id}"))
        .bind(format!("pw:{email}:"))
        .bind(format!(":{email}"))
        .execute(&mut *self.tx)
        .await?;
        // The rest (factors, log-ins, tokens, groups, grants, consents)
        // goes with the row; the account's part as an actor is forgotten.
        self.step()?;
        let done = sqlx::query("DELETE FROM users WHERE id = $1").bind(user_id).execute(&mut *self.tx).await?;
        Ok(done.rows_affected() == 1)
    }
}

impl Db {
    /// Every group: its name, members, and members with two factors on.
    pub async fn group_counts(&self) -> Result<Vec<(String, i64, i64)>, AppError> {
        Ok(sqlx::query_as(
            "SELECT g.name, COUNT(*), SUM(CASE WHEN u.totp_enabled = 1 OR u.passkey_count > 0 THEN 1 ELSE 0 END) \
             FROM user_groups g JOIN users u ON u.id = g.user_id GROUP BY g.name ORDER BY g.name",
        )
        .fetch_all(&self.pool)
        .await?)
    }
}

impl Tx {
    /// The accounts in `group`.
    pub async fn group_members(&mut self, group: &str) -> Result<Vec<i64>, AppError> {
        let rows: Vec<(i64,)> = sqlx::query_as("SELECT user_id FROM user_groups WHERE name = $1 ORDER BY user_id")
            .bind(group)
            .fetch_all(&mut *self.tx)
            .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// Gives `from`'s members `to` instead (nobody may be in `to` yet); the
    /// members, whose cached gate decisions are dropped.
    pub async fn rename_group(&mut self, from: &str, to: &str) -> Result<Vec<i64>, AppError> {
        self.step()?;
        let rows = sqlx::query_as("UPDATE user_groups SET name = $2 WHERE name = $1 RETURNING user_id")
            .bind(from)
            .bind(to)
            .fetch_all(&mut *self.tx)
            .await?;
        self.members_changed(rows).await
    }

    /// Takes everyone out of `group`; who was in it.
    pub async fn delete_group(&mut self, group: &str) -> Result<Vec<i64>, AppError> {
        self.step()?;
        let rows = sqlx::query_as("DELETE FROM user_groups WHERE name = $1 RETURNING user_id")
            .bind(group)
            .fetch_all(&mut *self.tx)
            .await?;
        self.members_changed(rows).await
    }

    /// The accounts whose groups a statement changed: the gate's cached
    /// decisions about them are dropped.
    pub async fn members_changed(&mut self, rows: Vec<(i64,)>) -> Result<Vec<i64>, AppError> {
        let members: Vec<i64> = rows.into_iter().map(|(id,)| id).collect();
        for id in &members {
            self.invalidate(Invalidation::User(*id)).await?;
        }
        Ok(members)
    }

    /// Apps limited to `from` are limited to `to` instead; how many.
    pub async fn rename_group_of_apps(&mut self, from: &str, to: &str) -> Result<usize, AppError> {
        let apps: Vec<(String, String)> =
            sqlx::query_as("SELECT id, allowed_groups FROM oidc_clients").fetch_all(&mut *self.tx).await?;
        let mut changed = 0;
        for (id, groups) in apps {
            if !groups.split(',').any(|g| g == from) {
                continue;
            }
            self.step()?;
            let renamed: Vec<&str> = groups.split(',').map(|g| if g == from { to } else { g }).collect();
            sqlx::query("UPDATE oidc_clients SET allowed_groups = $2 WHERE id = $1")
                .bind(&id)
                .bind(renamed.join(","))
                .execute(&mut *self.tx)
                .await?;
            changed += 1;
        }
        Ok(changed)
    }
}

impl Db {
    /// Accounts: all, with two factors on, with a confirmed address, locked.
    pub async fn people_counts(&self) -> Result<(i64, i64, i64, i64), AppError> {
        Ok(sqlx::query_as(
            "SELECT COUNT(*), \
             COALESCE(SUM(CASE WHEN totp_enabled = 1 OR passkey_count > 0 THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN email_verified_at IS NOT NULL THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN locked_at IS NOT NULL THEN 1 ELSE 0 END), 0) FROM users",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    /// How many events of each kind since `since`.
    pub async fn event_counts_since(&self, since: i64) -> Result<Vec<(String, i64)>, AppError> {
        Ok(sqlx::query_as("SELECT kind, COUNT(*) FROM audit_events WHERE at >= $1 GROUP BY kind")
            .bind(since)
            .fetch_all(&self.pool)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::contains_pattern;

    #[test]
    fn a_search_matches_its_text_literally_and_in_any_case() {
        assert_eq!(contains_pattern("Ann"), "%ann%");
        assert_eq!(contains_pattern("100%_a\\b"), "%100\\%\\_a\\\\b%");
    }
}
