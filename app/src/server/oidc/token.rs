//! The token endpoint: a code (once, within `CODE_TTL`, by the client it
//! was issued to, with its PKCE verifier) or a refresh token (rotated)
//! becomes an access token, an id token and, with `offline_access`, a
//! refresh token. A code used twice or a spent refresh token presented
//! again revokes the grant: everything issued from it dies.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use sha2::Digest;

use super::clients::{self, Credentials};
use super::{ACCESS_TOKEN_TTL, ACR_PASSWORD, ACR_TWO_FACTORS, AccessClaims, ID_TOKEN_TTL, OAuthError, person_claims};
use crate::server::crypto::{random_bytes, sha256_hex};
use crate::server::db::{ClientRow, GrantSubject};
use crate::server::logins::Amr;
use crate::server::state::AppState;

/// The form of a token request (RFC 6749 4.1.3 and 6).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TokenRequest {
    pub grant_type: Option<String>,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub refresh_token: Option<String>,
    pub scope: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

fn invalid_grant(why: &str) -> OAuthError {
    OAuthError::new("invalid_grant", why)
}

/// Answers a token request from an authenticated client.
pub async fn token(
    state: &AppState,
    authorization: Option<&str>,
    req: &TokenRequest,
) -> Result<serde_json::Value, OAuthError> {
    let credentials = Credentials::from_request(authorization, req.client_id.as_deref(), req.client_secret.as_deref())?;
    let client = clients::authenticate(state, &credentials).await?;
    match req.grant_type.as_deref() {
        Some("authorization_code") => exchange_code(state, &client, req).await,
        Some("refresh_token") => refresh(state, &client, req).await,
        None => Err(OAuthError::new("invalid_request", "grant_type is missing.")),
        Some(_) => Err(OAuthError::new("unsupported_grant_type", "Use authorization_code or refresh_token.")),
    }
}

async fn exchange_code(
    state: &AppState,
    client: &ClientRow,
    req: &TokenRequest,
) -> Result<serde_json::Value, OAuthError> {
    let code = req.code.as_deref().ok_or_else(|| OAuthError::new("invalid_request", "code is missing."))?;
    let code_hash = sha256_hex(code.as_bytes());
    // Before anything is spent: a first key is made and stored outside it.
    let keys = super::keys::current(state).await?;
    let now = state.now();
    // RFC 7636 4.1: 43 to 128 characters; a verifier of another length
    // matches no challenge.
    let challenge =
        req.code_verifier.as_deref().map(|v| if (43..=128).contains(&v.len()) { s256(v) } else { String::new() });
    // The common case in one statement (SQLite); `None` changed nothing.
    if let Some(grant) = state
        .db
        .redeem_oidc_code_at_once(&code_hash, &client.id, req.redirect_uri.as_deref(), challenge.as_deref(), now)
        .await?
    {
        let (issued, refresh) = issue(state, client, &grant, true)?;
        if refresh.is_some() {
            // The statement spends no code whose grant keeps a refresh token.
            tracing::error!("a refresh token was issued outside a transaction");
            return Err(crate::error::AppError::internal().into());
        }
        return issued.signed(keys).await;
    }
    let mut tx = state.db.begin().await?;
    let Some(redeemed) = tx.redeem_oidc_code(&code_hash, now).await? else {
        // Used before: whoever holds it now may be a thief, and the tokens
        // the first use got may be in the wrong hands. End them all.
        if let Some(grant) = tx.oidc_grant_of_code(&code_hash).await? {
            tx.revoke_oidc_grant(&grant, now).await?;
            tx.commit().await?;
            tracing::warn!(client_id = client.id, "an authorization code was used twice: its grant is revoked");
            return Err(invalid_grant("The code was already used; what it gave is revoked."));
        }
        return Err(invalid_grant("The code is not valid."));
    };
    // A refusal from here on rolls back: the code stays unspent for the
    // request it was meant for.
    if redeemed.client_id != client.id {
        return Err(invalid_grant("The code was issued to another client."));
    }
    if now >= redeemed.code_expires_at {
        return Err(invalid_grant("The code has expired."));
    }
    if req.redirect_uri.as_deref() != Some(redeemed.redirect_uri.as_str()) {
        return Err(invalid_grant("redirect_uri differs from the authorization request's."));
    }
    match (&redeemed.code_challenge, challenge) {
        (Some(expected), Some(computed)) => {
            if computed != *expected {
                return Err(invalid_grant("The code verifier does not match the code challenge."));
            }
        }
        (Some(_), None) => return Err(invalid_grant("code_verifier is missing.")),
        (None, Some(_)) => return Err(invalid_grant("No code challenge was sent with the authorization request.")),
        (None, None) => {}
    }
    let grant = tx.hold_oidc_grant(&redeemed.grant_id, now).await?.ok_or_else(ended)?;
    let (issued, refresh) = issue(state, client, &grant, true)?;
    if let Some(hash) = refresh {
        tx.insert_oidc_refresh_token(&hash, &grant.grant_id, now).await?;
    }
    tx.commit().await?;
    issued.signed(keys).await
}

fn ended() -> OAuthError {
    invalid_grant("The log-in this code came from has ended.")
}

/// RFC 7636 4.6: BASE64URL(SHA256(verifier)).
fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
}

async fn refresh(state: &AppState, client: &ClientRow, req: &TokenRequest) -> Result<serde_json::Value, OAuthError> {
    let token =
        req.refresh_token.as_deref().ok_or_else(|| OAuthError::new("invalid_request", "refresh_token is missing."))?;
    let keys = super::keys::current(state).await?;
    let now = state.now();
    let mut tx = state.db.begin().await?;
    let grant_id = match tx.spend_oidc_refresh_token(&sha256_hex(token.as_bytes()), now).await? {
        Ok(grant) => grant,
        Err(Some(grant)) => {
            tx.revoke_oidc_grant(&grant, now).await?;
            tx.commit().await?;
            tracing::warn!(client_id = client.id, "a spent refresh token was presented again: its grant is revoked");
            return Err(invalid_grant("The refresh token was already used; the sign-in is revoked."));
        }
        Err(None) => return Err(invalid_grant("The refresh token is not valid.")),
    };
    let mut grant = tx
        .hold_oidc_grant(&grant_id, now)
        .await?
        .ok_or_else(|| invalid_grant("The log-in this token came from has ended."))?;
    if grant.client_id != client.id {
        return Err(invalid_grant("The refresh token was issued to another client."));
    }
    // Past a group's deadline for two factors, a sign-in made with the
    // password alone is not renewed: the app sends the person back to
    // authorize, which sends them to turn two factors on.
    if !Amr::parse(&grant.amr).two_factor() && tx.two_factor_due(grant.user_id).await?.is_some_and(|due| due <= now) {
        return Err(invalid_grant("Two factors are needed now: sign in again."));
    }
    // Who may use the app is read again: someone taken out of its groups
    // (or a one-factor sign-in once the app needs two) is not renewed. An
    // app with one-factor networks can only have made one-factor sign-ins
    // inside them: a range taken out ends them (`clients::change`), and
    // the refresh comes from the app's server, not from the browser.
    // The sign-in ends with the refusal (its token unspent, so no reuse
    // alarm; introspection and the person's connected apps see it ended).
    let refused =
        if client.groups().next().is_some() && !client.groups().any(|g| grant.groups.iter().any(|mine| mine == g)) {
            Some("Your account may no longer use this app: sign in again.")
        } else if client.needs_two_factors()
            && client.one_factor_networks().next().is_none()
            && !Amr::parse(&grant.amr).two_factor()
        {
            Some("The app needs two factors now: sign in again.")
        } else {
            None
        };
    if let Some(why) = refused {
        // Rolled back first: the token stays unspent (and SQLite's one
        // writer turn is free for the next transaction).
        drop(tx);
        let mut ending = state.db.begin().await?;
        ending.revoke_oidc_grant(&grant.grant_id, now).await?;
        ending.commit().await?;
        return Err(invalid_grant(why));
    }
    if let Some(asked) = req.scope.as_deref() {
        // A refresh may narrow what the tokens say, never widen it.
        let narrowed = super::known_scopes(asked);
        if narrowed.iter().any(|s| !grant.has_scope(s))
            || asked.split(' ').any(|w| !w.is_empty() && !grant.has_scope(w))
        {
            return Err(OAuthError::new("invalid_scope", "A refresh cannot add scopes."));
        }
        grant.scope = narrowed.join(" ");
    }
    let (issued, refresh) = issue(state, client, &grant, false)?;
    if let Some(hash) = refresh {
        tx.insert_oidc_refresh_token(&hash, &grant.grant_id, now).await?;
    }
    tx.commit().await?;
    issued.signed(keys).await
}

/// The `sid` apps see for a log-in: stable for the log-in, and not its
/// id (which never leaves the portal).
pub fn session_id(login_id: &str) -> String {
    sha256_hex(format!("twofactor:oidc-sid:{login_id}").as_bytes())[..32].to_owned()
}

/// RFC 8176 names for how the log-in was reached (a recovery code is a
/// one-time password), with `mfa` when there were two factors, and our own
/// `remembered` when a remembered browser stood in for the second one (an
/// app that wants a factor shown in this log-in refuses that).
fn amr_values(amr: Amr) -> Vec<&'static str> {
    let mut out = Vec::new();
    if amr.has(Amr::PASSWORD) {
        out.push("pwd");
    }
    if amr.has(Amr::APP) || amr.has(Amr::RECOVERY_CODE) {
        out.push("otp");
    }
    if amr.has(Amr::PASSKEY) {
        out.push("hwk");
    }
    if amr.has(Amr::REMEMBERED) {
        out.push("remembered");
    }
    if amr.two_factor() {
        out.push("mfa");
    }
    out
}

/// A token answer whose id token is still to be signed.
struct Issued {
    answer: serde_json::Value,
    id_claims: serde_json::Map<String, serde_json::Value>,
}

impl Issued {
    /// Signs the id token (on a blocking thread, `KeySet::sign_apart`).
    /// Done after the transaction commits: on SQLite a transaction holds
    /// the one writer turn, so signing inside it would let only one
    /// exchange sign at a time.
    async fn signed(mut self, keys: std::sync::Arc<super::keys::KeySet>) -> Result<serde_json::Value, OAuthError> {
        // `typ` `JWT`, not `ID+JWT`: Proxmox's client refuses the latter.
        let token = keys.sign_apart(std::mem::take(&mut self.id_claims), "JWT").await?;
        self.answer["id_token"] = serde_json::Value::from(token);
        Ok(self.answer)
    }
}

/// The tokens for a live grant, and the hash of the refresh token (with
/// `offline_access`) the caller stores in the transaction that spent the
/// code or the previous refresh token; the id token is signed once that
/// transaction has committed (`Issued::signed`).
fn issue(
    state: &AppState,
    client: &ClientRow,
    grant: &GrantSubject,
    with_nonce: bool,
) -> Result<(Issued, Option<String>), OAuthError> {
    use serde_json::Value;
    let now = state.now();
    let issuer = state.oidc.issuer.clone();
    let subject = grant.subject.clone().unwrap_or_default();
    let expires = (now + ACCESS_TOKEN_TTL).min(grant.expires_at);
    let access = state.oidc.issue_access(&AccessClaims {
        iss: issuer.clone(),
        sub: subject.clone(),
        aud: client.id.clone(),
        client_id: client.id.clone(),
        scope: grant.scope.clone(),
        gid: grant.grant_id.clone(),
        iat: now,
        exp: expires,
        jti: uuid::Uuid::new_v4().to_string(),
    })?;
    let amr = Amr::parse(&grant.amr);
    let mut claims = person_claims(grant);
    claims.insert("iss".into(), Value::from(issuer));
    claims.insert("aud".into(), Value::from(client.id.clone()));
    claims.insert("azp".into(), Value::from(client.id.clone()));
    claims.insert("iat".into(), Value::from(now));
    claims.insert("exp".into(), Value::from(now + ID_TOKEN_TTL));
    claims.insert("auth_time".into(), Value::from(grant.auth_at));
    claims.insert("amr".into(), Value::from(amr_values(amr)));
    claims.insert("acr".into(), Value::from(if amr.two_factor() { ACR_TWO_FACTORS } else { ACR_PASSWORD }));
    claims.insert("sid".into(), Value::from(session_id(&grant.login_id)));
    // OpenID Connect Core 3.1.3.6: the left half of the access token's
    // SHA-256, base64url.
    let digest = sha2::Sha256::digest(access.as_bytes());
    claims.insert("at_hash".into(), Value::from(URL_SAFE_NO_PAD.encode(&digest[..16])));
    if with_nonce && let Some(nonce) = &grant.nonce {
        claims.insert("nonce".into(), Value::from(nonce.clone()));
    }
    let mut answer = serde_json::json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": (expires - now).max(0),
        "scope": grant.scope,
    });
    let mut refresh_hash = None;
    if grant.has_scope("offline_access") {
        let refresh = URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
        refresh_hash = Some(sha256_hex(refresh.as_bytes()));
        answer["refresh_token"] = Value::from(refresh);
    }
    Ok((Issued { answer, id_claims: claims }, refresh_hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amr_names_follow_rfc_8176() {
        assert_eq!(amr_values(Amr::PASSWORD), vec!["pwd"]);
        assert_eq!(amr_values(Amr::PASSWORD.with(Amr::APP)), vec!["pwd", "otp", "mfa"]);
        assert_eq!(amr_values(Amr::PASSWORD.with(Amr::RECOVERY_CODE)), vec!["pwd", "otp", "mfa"]);
        assert_eq!(amr_values(Amr::PASSKEY), vec!["hwk", "mfa"]);
    }

    #[test]
    fn the_sid_is_stable_and_not_the_login_id() {
        assert_eq!(session_id("a"), session_id("a"));
        assert_ne!(session_id("a"), session_id("b"));
        assert_eq!(session_id("a").len(), 32);
    }
}
