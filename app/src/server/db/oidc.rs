//! The SQL of the OpenID provider: signing keys, the apps (clients), and
//! the grants one log-in gave an app (code, refresh tokens, consent). A
//! grant is alive while it is not revoked and its log-in is alive (the
//! `live!` rule every other token of a log-in follows).

use sqlx::FromRow;

use super::{Db, Tx};
use crate::error::AppError;
use crate::server::gate::cache::Invalidation;

/// A signing key as stored: the private part sealed.
#[derive(Debug, Clone, FromRow)]
pub struct KeyRow {
    pub kid: String,
    pub sealed_key: String,
    pub modulus: String,
    pub exponent: String,
    pub created_at: i64,
}

/// An app, as the operator registered it.
#[derive(Debug, Clone, FromRow)]
pub struct ClientRow {
    pub id: String,
    pub name: String,
    pub secret_hash: Option<String>,
    pub previous_secret_hash: Option<String>,
    pub redirect_uris: String,
    pub post_logout_redirect_uris: String,
    pub backchannel_logout_uri: Option<String>,
    pub allowed_groups: String,
    pub consent: String,
    pub pkce: String,
    pub two_factor: i64,
    /// 1: a remembered browser will do for the second factor; 0: one must
    /// have been shown in the log-in.
    pub remembered: i64,
    /// Seconds: a second factor shown that long ago at most. None: any time.
    pub fresh: Option<i64>,
    /// Address ranges from which the password alone will do, comma-
    /// separated (empty: none). Only with `two_factor`.
    pub one_factor_networks: String,
    pub created_at: i64,
}

/// Who may use an app: its groups, two factors, remembered, fresh and
/// one-factor networks (as in `ClientRow`).
pub type ClientPolicy = (String, i64, i64, Option<i64>, String);

/// An authorization about to be stored, with its code.
pub struct NewGrant<'a> {
    pub id: &'a str,
    pub login_id: &'a str,
    pub client_id: &'a str,
    pub user_id: i64,
    pub scope: &'a str,
    pub nonce: Option<&'a str>,
    pub redirect_uri: &'a str,
    pub code_hash: &'a str,
    pub code_challenge: Option<&'a str>,
    pub code_expires_at: i64,
    pub now: i64,
}

/// A code just spent: what the token endpoint must check against.
#[derive(Debug, Clone, FromRow)]
pub struct RedeemedCode {
    pub grant_id: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: Option<String>,
    pub code_expires_at: i64,
}

/// Everything a token or userinfo answer says about a live grant: who the
/// person is now (the claims), how the log-in was reached, what was
/// granted. Kept in the session cache by grant id; dropped with its log-in
/// or its person (a grant revoked alone drops its log-in's entries).
#[derive(Debug, Clone)]
pub struct GrantSubject {
    pub grant_id: String,
    pub client_id: String,
    pub user_id: i64,
    pub login_id: String,
    /// When the log-in (and so the grant) expires.
    pub expires_at: i64,
    pub scope: String,
    pub nonce: Option<String>,
    pub subject: Option<String>,
    pub email: String,
    pub name: String,
    pub email_verified: bool,
    pub groups: Vec<String>,
    pub amr: String,
    pub auth_at: i64,
}

impl GrantSubject {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.split(' ').any(|s| s == scope)
    }
}

const GRANT_SUBJECT: &str = concat!(
    "SELECT g.id, g.client_id, g.user_id, g.login_id, l.expires_at, g.scope, g.nonce, u.oidc_subject, \
     u.email, u.name, u.email_verified_at, l.amr, l.auth_at, ug.name AS grp \
     FROM oidc_grants g JOIN logins l ON l.id = g.login_id AND l.user_id = g.user_id \
     JOIN users u ON u.id = g.user_id \
     LEFT JOIN user_groups ug ON ug.user_id = g.user_id \
     WHERE g.id = $1 AND g.revoked_at IS NULL AND ",
    live!("$2"),
    " ORDER BY ug.name"
);

#[derive(FromRow)]
struct GrantSubjectRow {
    id: String,
    client_id: String,
    user_id: i64,
    login_id: String,
    expires_at: i64,
    scope: String,
    nonce: Option<String>,
    oidc_subject: Option<String>,
    email: String,
    name: String,
    email_verified_at: Option<i64>,
    amr: String,
    auth_at: i64,
    grp: Option<String>,
}

/// `Db::redeem_oidc_code_at_once`'s answer: the grant's row (its `grp`
/// NULL) and the groups as a JSON array.
#[derive(FromRow)]
struct RedeemedAtOnceRow {
    #[sqlx(flatten)]
    subject: GrantSubjectRow,
    groups: String,
}

/// One row per group (or one with none) into one subject.
fn grant_subject(rows: Vec<GrantSubjectRow>) -> Option<GrantSubject> {
    let groups: Vec<String> = rows.iter().filter_map(|r| r.grp.clone()).collect();
    let row = rows.into_iter().next()?;
    Some(GrantSubject {
        grant_id: row.id,
        client_id: row.client_id,
        user_id: row.user_id,
        login_id: row.login_id,
        expires_at: row.expires_at,
        scope: row.scope,
        nonce: row.nonce,
        subject: row.oidc_subject,
        email: row.email,
        name: row.name,
        email_verified: row.email_verified_at.is_some(),
        groups,
        amr: row.amr,
        auth_at: row.auth_at,
    })
}

/// The columns of `oidc_clients`, in `ClientRow`'s order.
macro_rules! client_columns {
    () => {
        "id, name, secret_hash, previous_secret_hash, redirect_uris, post_logout_redirect_uris, \
         backchannel_logout_uri, allowed_groups, consent, pkce, two_factor, remembered, fresh, one_factor_networks, \
         created_at"
    };
}

impl Db {
    /// Every signing key, the newest first.
    pub async fn oidc_keys(&self) -> Result<Vec<KeyRow>, AppError> {
        Ok(sqlx::query_as::<_, KeyRow>(
            "SELECT kid, sealed_key, modulus, exponent, created_at FROM oidc_keys ORDER BY created_at DESC, kid",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn insert_oidc_key(&self, key: &KeyRow) -> Result<(), AppError> {
        let _turn = self.turn().await?;
        sqlx::query(
            "INSERT INTO oidc_keys (kid, sealed_key, modulus, exponent, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&key.kid)
        .bind(&key.sealed_key)
        .bind(&key.modulus)
        .bind(&key.exponent)
        .bind(key.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Swaps a key's sealed form, only if unchanged since read.
    pub async fn replace_oidc_key_seal(&self, kid: &str, old: &str, new: &str) -> Result<bool, AppError> {
        let _turn = self.turn().await?;
        let done = sqlx::query("UPDATE oidc_keys SET sealed_key = $3 WHERE kid = $1 AND sealed_key = $2")
            .bind(kid)
            .bind(old)
            .bind(new)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Forgets keys no token can still name.
    /// Together or not at all, in one transaction.
    pub async fn delete_oidc_keys(&self, kids: &[String]) -> Result<(), AppError> {
        let mut tx = self.begin().await?;
        for kid in kids {
            tx.step()?;
            sqlx::query("DELETE FROM oidc_keys WHERE kid = $1").bind(kid).execute(&mut *tx.tx).await?;
        }
        tx.commit().await
    }

    /// The app with this client id. An id that cannot be one of ours (they
    /// are base64url, 24 characters) is nobody, without asking the
    /// database (PostgreSQL refuses a NUL byte in text, say).
    pub async fn oidc_client(&self, id: &str) -> Result<Option<ClientRow>, AppError> {
        if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Ok(None);
        }
        Ok(sqlx::query_as::<_, ClientRow>(concat!("SELECT ", client_columns!(), " FROM oidc_clients WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn oidc_clients(&self) -> Result<Vec<ClientRow>, AppError> {
        Ok(sqlx::query_as::<_, ClientRow>(concat!(
            "SELECT ",
            client_columns!(),
            " FROM oidc_clients ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await?)
    }

    /// SQLite's exchange in one statement, in the writer turn: spends the
    /// code only if every check of the token endpoint holds (its client,
    /// not expired, the same redirect URI, the PKCE challenge, a live
    /// log-in) and there is no refresh token to store with it, and returns
    /// the grant with the person's claims as that same statement saw them.
    /// SQLite runs writers one at a time, so no ending can come between
    /// the check of the log-in, the spending and the claims. `None` changes
    /// nothing: the transactional path (`Tx::redeem_oidc_code`) then says
    /// why; it is the only path on PostgreSQL, where the log-in row must be
    /// locked. `challenge` is the S256 of the request's verifier.
    pub async fn redeem_oidc_code_at_once(
        &self,
        code_hash: &str,
        client_id: &str,
        redirect_uri: Option<&str>,
        challenge: Option<&str>,
        now: i64,
    ) -> Result<Option<GrantSubject>, AppError> {
        if self.backend != super::Backend::Sqlite {
            return Ok(None);
        }
        let _turn = self.turn().await?;
        // Columns of the updated row are named `oidc_grants.…` inside the
        // subqueries (SQLite takes no alias there).
        let row: Option<RedeemedAtOnceRow> = sqlx::query_as(concat!(
            "UPDATE oidc_grants SET code_used_at = $2 WHERE code_hash = $1 AND code_used_at IS NULL \
             AND revoked_at IS NULL AND client_id = $3 AND code_expires_at > $2 AND redirect_uri = $4 \
             AND ((code_challenge IS NULL AND $5 IS NULL) OR code_challenge = $5) \
             AND (' ' || scope || ' ') NOT LIKE '% offline_access %' \
             AND EXISTS (SELECT 1 FROM logins l JOIN users u ON u.id = l.user_id \
                         WHERE l.id = oidc_grants.login_id AND l.user_id = oidc_grants.user_id AND ",
            live!("$2"),
            ") RETURNING id, client_id, user_id, login_id, scope, nonce, \
             (SELECT expires_at FROM logins WHERE id = oidc_grants.login_id) AS expires_at, \
             (SELECT amr FROM logins WHERE id = oidc_grants.login_id) AS amr, \
             (SELECT auth_at FROM logins WHERE id = oidc_grants.login_id) AS auth_at, \
             (SELECT oidc_subject FROM users WHERE id = oidc_grants.user_id) AS oidc_subject, \
             (SELECT email FROM users WHERE id = oidc_grants.user_id) AS email, \
             (SELECT name FROM users WHERE id = oidc_grants.user_id) AS name, \
             (SELECT email_verified_at FROM users WHERE id = oidc_grants.user_id) AS email_verified_at, \
             (SELECT json_group_array(name) FROM (SELECT name FROM user_groups \
              WHERE user_id = oidc_grants.user_id ORDER BY name)) AS groups, NULL AS grp"
        ))
        .bind(code_hash)
        .bind(now)
        .bind(client_id)
        .bind(redirect_uri)
        .bind(challenge)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let groups: Vec<String> = serde_json::from_str(&row.groups).map_err(|e| {
            tracing::error!(error = %e, "the groups of a grant did not read back");
            AppError::internal()
        })?;
        Ok(grant_subject(vec![row.subject]).map(|subject| GrantSubject { groups, ..subject }))
    }

    /// The live grant an access token names, with the person's claims as
    /// they are now. `None`: revoked, its log-in ended, or no such grant.
    pub async fn oidc_grant_subject(&self, grant_id: &str, now: i64) -> Result<Option<GrantSubject>, AppError> {
        let rows =
            sqlx::query_as::<_, GrantSubjectRow>(GRANT_SUBJECT).bind(grant_id).bind(now).fetch_all(&self.pool).await?;
        Ok(grant_subject(rows))
    }

    /// A refresh token's grant, its client and when it was spent.
    pub async fn oidc_refresh_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<(String, String, Option<i64>)>, AppError> {
        Ok(sqlx::query_as(
            "SELECT r.grant_id, g.client_id, r.used_at FROM oidc_refresh_tokens r \
             JOIN oidc_grants g ON g.id = r.grant_id WHERE r.token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The scopes the person agreed to share with the app, if asked before.
    pub async fn oidc_consent(&self, user_id: i64, client_id: &str) -> Result<Option<String>, AppError> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT scope FROM oidc_consents WHERE user_id = $1 AND client_id = $2")
                .bind(user_id)
                .bind(client_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(s,)| s))
    }
}

impl Tx {
    pub async fn insert_oidc_client(&mut self, c: &ClientRow) -> Result<(), AppError> {
        self.step()?;
        sqlx::query(concat!(
            "INSERT INTO oidc_clients (",
            client_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
        ))
        .bind(&c.id)
        .bind(&c.name)
        .bind(&c.secret_hash)
        .bind(&c.previous_secret_hash)
        .bind(&c.redirect_uris)
        .bind(&c.post_logout_redirect_uris)
        .bind(&c.backchannel_logout_uri)
        .bind(&c.allowed_groups)
        .bind(&c.consent)
        .bind(&c.pkce)
        .bind(c.two_factor)
        .bind(c.remembered)
        .bind(c.fresh)
        .bind(&c.one_factor_networks)
        .bind(c.created_at)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// The app, held until the transaction ends (PostgreSQL: a row lock
    /// that leaves its key alone, so rows naming the app are not blocked;
    /// SQLite: the transaction holds the one writer turn already).
    pub async fn lock_oidc_client(&mut self, id: &str) -> Result<Option<ClientRow>, AppError> {
        let sql = if self.backend == super::Backend::Postgres {
            concat!("SELECT ", client_columns!(), " FROM oidc_clients WHERE id = $1 FOR NO KEY UPDATE")
        } else {
            concat!("SELECT ", client_columns!(), " FROM oidc_clients WHERE id = $1")
        };
        Ok(sqlx::query_as::<_, ClientRow>(sql).bind(id).fetch_optional(&mut *self.tx).await?)
    }

    /// Who may use the app now (its groups, whether it needs two factors,
    /// which second factor will do), held until the transaction ends: PostgreSQL takes a share
    /// lock, so a change to the app (`lock_oidc_client`) waits for this
    /// transaction or this one waits for it and reads its result; SQLite's
    /// writer turn already runs them one at a time. `None`: the app is gone.
    pub async fn oidc_client_policy(&mut self, id: &str) -> Result<Option<ClientPolicy>, AppError> {
        let sql = if self.backend == super::Backend::Postgres {
            "SELECT allowed_groups, two_factor, remembered, fresh, one_factor_networks FROM oidc_clients \
             WHERE id = $1 FOR SHARE"
        } else {
            "SELECT allowed_groups, two_factor, remembered, fresh, one_factor_networks FROM oidc_clients WHERE id = $1"
        };
        Ok(sqlx::query_as(sql).bind(id).fetch_optional(&mut *self.tx).await?)
    }

    /// Replaces an app's settings (not its id, kind or secrets). False: no
    /// such app.
    pub async fn update_oidc_client(&mut self, c: &ClientRow) -> Result<bool, AppError> {
        self.step()?;
        let done = sqlx::query(
            "UPDATE oidc_clients SET name = $2, redirect_uris = $3, post_logout_redirect_uris = $4, \
             backchannel_logout_uri = $5, allowed_groups = $6, consent = $7, pkce = $8, two_factor = $9, \
             remembered = $10, fresh = $11, one_factor_networks = $12 WHERE id = $1",
        )
        .bind(&c.id)
        .bind(&c.name)
        .bind(&c.redirect_uris)
        .bind(&c.post_logout_redirect_uris)
        .bind(&c.backchannel_logout_uri)
        .bind(&c.allowed_groups)
        .bind(&c.consent)
        .bind(&c.pkce)
        .bind(c.two_factor)
        .bind(c.remembered)
        .bind(c.fresh)
        .bind(&c.one_factor_networks)
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The caches hear once of each log-in whose grants just ended.
    async fn grants_ended(&mut self, logins: &[(String,)]) -> Result<(), AppError> {
        let mut seen = std::collections::HashSet::new();
        for (login,) in logins {
            if seen.insert(login) {
                self.invalidate(Invalidation::Family(login.clone())).await?;
            }
        }
        Ok(())
    }

    /// Ends every live sign-in (grant) of an app, with its tokens; how
    /// many ended. The consents stay.
    pub async fn revoke_client_grants(&mut self, client_id: &str, now: i64) -> Result<u64, AppError> {
        self.step()?;
        let logins: Vec<(String,)> = sqlx::query_as(
            "UPDATE oidc_grants SET revoked_at = $2 WHERE client_id = $1 AND revoked_at IS NULL RETURNING login_id",
        )
        .bind(client_id)
        .bind(now)
        .fetch_all(&mut *self.tx)
        .await?;
        self.grants_ended(&logins).await?;
        Ok(logins.len() as u64)
    }

    /// Removes an app; its grants, tokens and consents go with it (the
    /// caches hear of each log-in that held a grant).
    pub async fn remove_oidc_client(&mut self, id: &str) -> Result<Option<String>, AppError> {
        self.step()?;
        let logins: Vec<(String,)> = sqlx::query_as("SELECT DISTINCT login_id FROM oidc_grants WHERE client_id = $1")
            .bind(id)
            .fetch_all(&mut *self.tx)
            .await?;
        let name: Option<(String,)> = sqlx::query_as("DELETE FROM oidc_clients WHERE id = $1 RETURNING name")
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await?;
        for (login,) in logins {
            self.invalidate(Invalidation::Family(login)).await?;
        }
        Ok(name.map(|(n,)| n))
    }

    /// A new secret; the current one becomes the previous (still good).
    pub async fn rotate_oidc_client_secret(&mut self, id: &str, secret_hash: &str) -> Result<Option<String>, AppError> {
        self.step()?;
        let name: Option<(String,)> = sqlx::query_as(
            "UPDATE oidc_clients SET previous_secret_hash = secret_hash, secret_hash = $2 \
             WHERE id = $1 AND secret_hash IS NOT NULL RETURNING name",
        )
        .bind(id)
        .bind(secret_hash)
        .fetch_optional(&mut *self.tx)
        .await?;
        Ok(name.map(|(n,)| n))
    }

    /// Ends the previous secret's life.
    pub async fn drop_previous_oidc_secret(&mut self, id: &str) -> Result<Option<String>, AppError> {
        self.step()?;
        let name: Option<(String,)> = sqlx::query_as(
            "UPDATE oidc_clients SET previous_secret_hash = NULL WHERE id = $1 AND previous_secret_hash IS NOT NULL \
             RETURNING name",
        )
        .bind(id)
        .fetch_optional(&mut *self.tx)
        .await?;
        Ok(name.map(|(n,)| n))
    }

    /// The account's subject for apps, given now if it has none yet.
    pub async fn oidc_subject(&mut self, user_id: i64, candidate: &str) -> Result<String, AppError> {
        self.step()?;
        let (subject,): (String,) = sqlx::query_as(
            "UPDATE users SET oidc_subject = COALESCE(oidc_subject, $2) WHERE id = $1 RETURNING oidc_subject",
        )
        .bind(user_id)
        .bind(candidate)
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(subject)
    }

    /// Stores an authorization and its code, only while the log-in it
    /// comes from is alive. False: the log-in ended meanwhile.
    pub async fn insert_oidc_grant(&mut self, g: &NewGrant<'_>) -> Result<bool, AppError> {
        self.step()?;
        let done = sqlx::query(concat!(
            "INSERT INTO oidc_grants (id, login_id, client_id, user_id, scope, nonce, redirect_uri, code_hash, \
             code_challenge, code_expires_at, created_at) \
             SELECT $1, l.id, $3, l.user_id, $5, $6, $7, $8, $9, $10, $11 \
             FROM logins l JOIN users u ON u.id = l.user_id \
             WHERE l.id = $2 AND l.user_id = $4 AND ",
            live!("$11")
        ))
        .bind(g.id)
        .bind(g.login_id)
        .bind(g.client_id)
        .bind(g.user_id)
        .bind(g.scope)
        .bind(g.nonce)
        .bind(g.redirect_uri)
        .bind(g.code_hash)
        .bind(g.code_challenge)
        .bind(g.code_expires_at)
        .bind(g.now)
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Spends a code: only its first use gets the grant back.
    pub async fn redeem_oidc_code(&mut self, code_hash: &str, now: i64) -> Result<Option<RedeemedCode>, AppError> {
        self.step()?;
        Ok(sqlx::query_as::<_, RedeemedCode>(
            "UPDATE oidc_grants SET code_used_at = $2 WHERE code_hash = $1 AND code_used_at IS NULL \
             AND revoked_at IS NULL \
             RETURNING id AS grant_id, client_id, redirect_uri, code_challenge, code_expires_at",
        )
        .bind(code_hash)
        .bind(now)
        .fetch_optional(&mut *self.tx)
        .await?)
    }

    /// The grant of a code already spent (a replay), if the code exists.
    pub async fn oidc_grant_of_code(&mut self, code_hash: &str) -> Result<Option<String>, AppError> {
        let row: Option<(String,)> = sqlx::query_as("SELECT id FROM oidc_grants WHERE code_hash = $1")
            .bind(code_hash)
            .fetch_optional(&mut *self.tx)
            .await?;
        Ok(row.map(|(id,)| id))
    }

    /// Revokes a grant: its refresh tokens and access tokens are dead.
    pub async fn revoke_oidc_grant(&mut self, grant_id: &str, now: i64) -> Result<(), AppError> {
        self.step()?;
        let login: Option<(String,)> = sqlx::query_as(
            "UPDATE oidc_grants SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL RETURNING login_id",
        )
        .bind(grant_id)
        .bind(now)
        .fetch_optional(&mut *self.tx)
        .await?;
        if let Some((login,)) = login {
            self.invalidate(Invalidation::Family(login)).await?;
        }
        Ok(())
    }

    /// Holds the grant's log-in (as a refresh of the portal does, so no
    /// ending interleaves) and reads the grant with the person's claims.
    pub async fn hold_oidc_grant(&mut self, grant_id: &str, now: i64) -> Result<Option<GrantSubject>, AppError> {
        self.step()?;
        // SQLite: this transaction holds the one writer turn, which every
        // ending takes too, so they already run one after the other; the
        // row lock is PostgreSQL's way to the same.
        if self.backend == super::Backend::Postgres {
            let held: Option<(String,)> = sqlx::query_as(
                "UPDATE logins SET last_seen_at = $2 WHERE id = (SELECT login_id FROM oidc_grants WHERE id = $1) \
                 AND revoked_at IS NULL AND expires_at > $2 RETURNING id",
            )
            .bind(grant_id)
            .bind(now)
            .fetch_optional(&mut *self.tx)
            .await?;
            if held.is_none() {
                return Ok(None);
            }
        }
        let rows = sqlx::query_as::<_, GrantSubjectRow>(GRANT_SUBJECT)
            .bind(grant_id)
            .bind(now)
            .fetch_all(&mut *self.tx)
            .await?;
        Ok(grant_subject(rows))
    }

    pub async fn insert_oidc_refresh_token(
        &mut self,
        token_hash: &str,
        grant_id: &str,
        now: i64,
    ) -> Result<(), AppError> {
        self.step()?;
        sqlx::query("INSERT INTO oidc_refresh_tokens (token_hash, grant_id, created_at) VALUES ($1, $2, $3)")
            .bind(token_hash)
            .bind(grant_id)
            .bind(now)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Spends a refresh token. `Ok(Ok(grant))`: spent now; `Ok(Err(Some(grant)))`:
    /// spent before (a replay); `Ok(Err(None))`: no such token.
    pub async fn spend_oidc_refresh_token(
        &mut self,
        token_hash: &str,
        now: i64,
    ) -> Result<Result<String, Option<String>>, AppError> {
        self.step()?;
        let spent: Option<(String,)> = sqlx::query_as(
            "UPDATE oidc_refresh_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL RETURNING grant_id",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&mut *self.tx)
        .await?;
        if let Some((grant,)) = spent {
            return Ok(Ok(grant));
        }
        let known: Option<(String,)> = sqlx::query_as("SELECT grant_id FROM oidc_refresh_tokens WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&mut *self.tx)
            .await?;
        Ok(Err(known.map(|(g,)| g)))
    }

    /// Remembers what the person agreed the app may know.
    pub async fn store_oidc_consent(
        &mut self,
        user_id: i64,
        client_id: &str,
        scope: &str,
        now: i64,
    ) -> Result<(), AppError> {
        self.step()?;
        sqlx::query(
            "INSERT INTO oidc_consents (user_id, client_id, scope, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (user_id, client_id) DO UPDATE SET scope = excluded.scope, created_at = excluded.created_at",
        )
        .bind(user_id)
        .bind(client_id)
        .bind(scope)
        .bind(now)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }
}

/// A back-channel log-out message due to be sent.
#[derive(Debug, Clone, FromRow)]
pub struct LogoutMessage {
    pub client_id: String,
    pub login_id: String,
    pub attempts: i64,
    pub next_at: i64,
    pub backchannel_logout_uri: String,
    pub oidc_subject: Option<String>,
}

/// The messages to queue when a log-in ends: one per app that received
/// tokens from it and has a back-channel address. Run right after the
/// statement that ended it (`$1`, which had not expired by `$2`, now).
const QUEUE_LOGOUTS: &str = "INSERT INTO oidc_logout_messages (client_id, login_id, subject, created_at, next_at) \
     SELECT DISTINCT g.client_id, g.login_id, u.oidc_subject, $2, $2 FROM oidc_grants g \
     JOIN oidc_clients c ON c.id = g.client_id JOIN logins l ON l.id = g.login_id JOIN users u ON u.id = g.user_id \
     WHERE g.login_id = $1 AND l.expires_at > $2 AND g.code_used_at IS NOT NULL \
     AND c.backchannel_logout_uri IS NOT NULL \
     ON CONFLICT DO NOTHING";

impl Tx {
    /// Queues the back-channel log-out of a log-in this transaction has
    /// just ended (see `revoke_login`).
    pub(super) async fn queue_logouts_of_login(&mut self, login_id: &str, now: i64) -> Result<(), AppError> {
        let done = sqlx::query(QUEUE_LOGOUTS).bind(login_id).bind(now).execute(&mut *self.tx).await?;
        self.logouts_queued |= done.rows_affected() > 0;
        Ok(())
    }
}

impl Db {
    /// Claims up to `limit` due messages for this sender until `lease`
    /// (another instance skips them meanwhile): each claim is a
    /// conditional update, so two senders never both win one.
    pub async fn claim_due_logouts(&self, now: i64, lease: i64, limit: i64) -> Result<Vec<LogoutMessage>, AppError> {
        let due = sqlx::query_as::<_, LogoutMessage>(
            "SELECT m.client_id, m.login_id, m.attempts, m.next_at, c.backchannel_logout_uri, \
             m.subject AS oidc_subject FROM oidc_logout_messages m JOIN oidc_clients c ON c.id = m.client_id \
             WHERE m.sent_at IS NULL AND m.failed_at IS NULL AND m.next_at <= $1 \
             AND c.backchannel_logout_uri IS NOT NULL ORDER BY m.next_at LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut claimed = Vec::with_capacity(due.len());
        let _turn = self.turn().await?;
        for m in due {
            let won = sqlx::query(
                "UPDATE oidc_logout_messages SET next_at = $4, attempts = attempts + 1 \
                 WHERE client_id = $1 AND login_id = $2 AND next_at = $3 AND sent_at IS NULL AND failed_at IS NULL",
            )
            .bind(&m.client_id)
            .bind(&m.login_id)
            .bind(m.next_at)
            .bind(lease)
            .execute(&self.pool)
            .await?;
            if won.rows_affected() == 1 {
                claimed.push(m);
            }
        }
        Ok(claimed)
    }

    /// Records how a send went: delivered, to be tried again at `retry_at`,
    /// or given up (`retry_at` None).
    pub async fn record_logout(
        &self,
        m: &LogoutMessage,
        now: i64,
        outcome: Result<(), (String, Option<i64>)>,
    ) -> Result<(), AppError> {
        let _turn = self.turn().await?;
        let query = match &outcome {
            Ok(()) => sqlx::query(
                "UPDATE oidc_logout_messages SET sent_at = $3, last_error = NULL WHERE client_id = $1 AND login_id = $2",
            )
            .bind(&m.client_id)
            .bind(&m.login_id)
            .bind(now),
            Err((error, Some(retry_at))) => sqlx::query(
                "UPDATE oidc_logout_messages SET next_at = $3, last_error = $4 WHERE client_id = $1 AND login_id = $2",
            )
            .bind(&m.client_id)
            .bind(&m.login_id)
            .bind(*retry_at)
            .bind(error.clone()),
            Err((error, None)) => sqlx::query(
                "UPDATE oidc_logout_messages SET failed_at = $3, last_error = $4 WHERE client_id = $1 AND login_id = $2",
            )
            .bind(&m.client_id)
            .bind(&m.login_id)
            .bind(now)
            .bind(error.clone()),
        };
        query.execute(&self.pool).await?;
        Ok(())
    }

    /// Messages not sent yet and given up, per app (for the operator).
    pub async fn logout_queue_counts(&self) -> Result<Vec<(String, i64, i64, i64)>, AppError> {
        Ok(sqlx::query_as(
            "SELECT client_id, \
             SUM(CASE WHEN sent_at IS NULL AND failed_at IS NULL THEN 1 ELSE 0 END), \
             SUM(CASE WHEN sent_at IS NOT NULL THEN 1 ELSE 0 END), \
             SUM(CASE WHEN failed_at IS NOT NULL THEN 1 ELSE 0 END) \
             FROM oidc_logout_messages GROUP BY client_id ORDER BY client_id",
        )
        .fetch_all(&self.pool)
        .await?)
    }
}

/// An app the person signed in to, as their security page lists it.
#[derive(Debug, Clone, FromRow)]
pub struct ConnectedAppRow {
    pub client_id: String,
    pub name: String,
    /// What the person agreed to share ('' when the app asks no consent).
    pub consented: Option<String>,
    /// The scopes of its newest live sign-in, if any.
    pub last_scope: Option<String>,
    pub last_at: Option<i64>,
}

impl Db {
    /// The apps the person agreed to share with or holds a live sign-in
    /// to, the most recent first.
    pub async fn connected_apps(&self, user_id: i64, now: i64) -> Result<Vec<ConnectedAppRow>, AppError> {
        Ok(sqlx::query_as::<_, ConnectedAppRow>(concat!(
            "SELECT c.id AS client_id, c.name, co.scope AS consented, \
             (SELECT g2.scope FROM oidc_grants g2 WHERE g2.client_id = c.id AND g2.user_id = $1 \
              ORDER BY g2.created_at DESC LIMIT 1) AS last_scope, \
             (SELECT MAX(g.created_at) FROM oidc_grants g JOIN logins l ON l.id = g.login_id \
              JOIN users u ON u.id = g.user_id \
              WHERE g.client_id = c.id AND g.user_id = $1 AND g.revoked_at IS NULL AND g.code_used_at IS NOT NULL AND ",
            live!("$2"),
            ") AS last_at \
             FROM oidc_clients c LEFT JOIN oidc_consents co ON co.client_id = c.id AND co.user_id = $1 \
             WHERE co.user_id IS NOT NULL OR EXISTS (SELECT 1 FROM oidc_grants g JOIN logins l ON l.id = g.login_id \
              JOIN users u ON u.id = g.user_id WHERE g.client_id = c.id AND g.user_id = $1 \
              AND g.revoked_at IS NULL AND g.code_used_at IS NOT NULL AND ",
            live!("$2"),
            ") ORDER BY last_at DESC, c.name"
        ))
        .bind(user_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await?)
    }
}

impl Tx {
    /// Takes back an app's access: its sign-ins (grants) of this person
    /// end, with every token, and the consent goes (it is asked again).
    /// False: nothing of the person's was there.
    pub async fn revoke_app(&mut self, user_id: i64, client_id: &str, now: i64) -> Result<bool, AppError> {
        self.step()?;
        let logins: Vec<(String,)> = sqlx::query_as(
            "UPDATE oidc_grants SET revoked_at = $3 WHERE user_id = $1 AND client_id = $2 AND revoked_at IS NULL \
             RETURNING login_id",
        )
        .bind(user_id)
        .bind(client_id)
        .bind(now)
        .fetch_all(&mut *self.tx)
        .await?;
        let consents = sqlx::query("DELETE FROM oidc_consents WHERE user_id = $1 AND client_id = $2")
            .bind(user_id)
            .bind(client_id)
            .execute(&mut *self.tx)
            .await?
            .rows_affected();
        self.grants_ended(&logins).await?;
        Ok(!logins.is_empty() || consents > 0)
    }
}
