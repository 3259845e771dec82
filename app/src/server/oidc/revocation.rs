//! Token revocation (RFC 7009) and introspection (RFC 7662). A client
//! reaches only its own tokens: revoking another app's token does
//! nothing, introspecting one says `active: false`. Revoking either kind
//! of token ends the whole grant, as a log-out of the app would.

use serde::Deserialize;

use super::OAuthError;
use super::clients::{self, Credentials};
use crate::server::crypto::sha256_hex;
use crate::server::db::ClientRow;
use crate::server::state::AppState;

#[derive(Debug, Clone, Default, Deserialize)]
pub struct TokenQuestion {
    pub token: Option<String>,
    pub token_type_hint: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

async fn client_of(state: &AppState, authorization: Option<&str>, q: &TokenQuestion) -> Result<ClientRow, OAuthError> {
    let credentials = Credentials::from_request(authorization, q.client_id.as_deref(), q.client_secret.as_deref())?;
    clients::authenticate(state, &credentials).await
}

/// What a token is, if it is one of this client's and alive: (grant id,
/// "access_token" or "refresh_token", the access token's claims).
async fn own_token(
    state: &AppState,
    client: &ClientRow,
    token: &str,
) -> Result<Option<(String, &'static str, Option<super::AccessClaims>)>, OAuthError> {
    if let Some(claims) = state.oidc.verify_access(token, state.now()) {
        if claims.client_id != client.id {
            return Ok(None);
        }
        return Ok(Some((claims.gid.clone(), "access_token", Some(claims))));
    }
    match state.db.oidc_refresh_token(&sha256_hex(token.as_bytes())).await? {
        Some((grant, client_id, None)) if client_id == client.id => Ok(Some((grant, "refresh_token", None))),
        _ => Ok(None),
    }
}

/// RFC 7009: always 200 once the client is authenticated, whatever the
/// token was.
pub async fn revoke(state: &AppState, authorization: Option<&str>, q: &TokenQuestion) -> Result<(), OAuthError> {
    let client = client_of(state, authorization, q).await?;
    let token = q.token.as_deref().ok_or_else(|| OAuthError::new("invalid_request", "token is missing."))?;
    if let Some((grant, _, _)) = own_token(state, &client, token).await? {
        let mut tx = state.db.begin().await?;
        tx.revoke_oidc_grant(&grant, state.now()).await?;
        tx.commit().await?;
        tracing::info!(client_id = client.id, "an app revoked its token");
    }
    Ok(())
}

/// RFC 7662, for confidential clients: whether the token is alive, and
/// what it is good for.
pub async fn introspect(
    state: &AppState,
    authorization: Option<&str>,
    q: &TokenQuestion,
) -> Result<serde_json::Value, OAuthError> {
    let client = client_of(state, authorization, q).await?;
    if client.is_public() {
        return Err(OAuthError::new("invalid_client", "Only confidential clients may introspect tokens."));
    }
    let token = q.token.as_deref().ok_or_else(|| OAuthError::new("invalid_request", "token is missing."))?;
    let inactive = serde_json::json!({ "active": false });
    let Some((grant_id, kind, access)) = own_token(state, &client, token).await? else { return Ok(inactive) };
    let Some(grant) = state.db.oidc_grant_subject(&grant_id, state.now()).await? else { return Ok(inactive) };
    let mut answer = serde_json::json!({
        "active": true,
        "client_id": client.id,
        "scope": grant.scope,
        "sub": grant.subject,
        "iss": state.oidc.issuer,
        "token_type": if kind == "access_token" { "Bearer" } else { "refresh_token" },
    });
    if let Some(claims) = access {
        answer["exp"] = claims.exp.into();
        answer["iat"] = claims.iat.into();
        answer["aud"] = claims.aud.into();
    } else {
        answer["exp"] = grant.expires_at.into();
    }
    Ok(answer)
}
