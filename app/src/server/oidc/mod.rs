//! The OpenID Connect provider (docs/OIDC.md): apps that have a log-in of
//! their own sign people in through the portal. Authorization code flow
//! only, PKCE S256, RS256 id tokens. Everything an app receives hangs off
//! one portal log-in (a grant per authorization): when the log-in ends,
//! however it ends, the grant and every token issued from it are dead.

pub mod authorize;
pub mod backchannel;
pub mod clients;
pub mod connected;
pub mod keys;
pub mod logout;
pub mod revocation;
pub mod token;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::server::db::GrantSubject;
use crate::server::state::AppState;

/// A code is good for this long, once.
pub const CODE_TTL: i64 = 60;
/// Access tokens (userinfo) live this long, never past their log-in.
pub const ACCESS_TOKEN_TTL: i64 = 600;
/// Id tokens say they are good for this long.
pub const ID_TOKEN_TTL: i64 = 3600;

/// The scopes this provider knows; others asked for are ignored.
pub const SCOPES: [&str; 5] = ["openid", "profile", "email", "groups", "offline_access"];
/// The claims it can give (discovery).
pub const CLAIMS: [&str; 15] = [
    "sub",
    "iss",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "acr",
    "amr",
    "sid",
    "name",
    "preferred_username",
    "email",
    "email_verified",
    "groups",
];

/// `acr` of a log-in with two factors, and of one with the password alone.
pub const ACR_TWO_FACTORS: &str = "mfa";
pub const ACR_PASSWORD: &str = "pwd";

/// The provider's part of the state: the issuer, the signing keys (loaded
/// lazily, see `keys`) and the key of the access tokens.
pub struct Oidc {
    /// `PUBLIC_URL`, no slash at the end.
    pub issuer: String,
    pub(crate) keys: std::sync::RwLock<Option<std::sync::Arc<keys::KeySet>>>,
    pub(crate) reloading: tokio::sync::Mutex<()>,
    access_encoding: EncodingKey,
    access_decoding: DecodingKey,
    access_validation: Validation,
    /// Sends back-channel log-out messages: a short timeout, no redirects.
    pub(crate) http: reqwest::Client,
}

/// An access token: HS256 under a key derived from the portal's signing
/// key for this one use, so it can be neither a session cookie nor
/// anything else. Apps treat it as opaque; userinfo reads the grant it
/// names, which must be alive.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub client_id: String,
    pub scope: String,
    pub gid: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

const ACCESS_AUDIENCE_TAG: &str = "twofactor:oidc-access";

impl Oidc {
    /// `access_key`: 32 bytes derived from the JWT key for access tokens
    /// only (`TokenKeys::oidc_access_key`).
    pub fn new(issuer: &str, access_key: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        validation.set_issuer(&[issuer.trim_end_matches('/')]);
        validation.leeway = 0;
        Self {
            issuer: issuer.trim_end_matches('/').to_owned(),
            keys: Default::default(),
            reloading: Default::default(),
            access_encoding: EncodingKey::from_secret(access_key),
            access_decoding: DecodingKey::from_secret(access_key),
            access_validation: validation,
            http: reqwest::Client::builder()
                .timeout(backchannel::SEND_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    pub(crate) fn issue_access(&self, claims: &AccessClaims) -> Result<String, crate::error::AppError> {
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some(ACCESS_AUDIENCE_TAG.to_owned());
        jsonwebtoken::encode(&header, claims, &self.access_encoding).map_err(|_| crate::error::AppError::internal())
    }

    /// The claims of an access token of ours, unexpired at `now`.
    pub fn verify_access(&self, token: &str, now: i64) -> Option<AccessClaims> {
        let data = jsonwebtoken::decode::<AccessClaims>(token, &self.access_decoding, &self.access_validation).ok()?;
        if data.header.typ.as_deref() != Some(ACCESS_AUDIENCE_TAG) {
            return None;
        }
        let claims = data.claims;
        (claims.exp > now && claims.iat <= now + crate::server::crypto::tokens::LEEWAY_SECONDS).then_some(claims)
    }
}

/// An OAuth error as the token, userinfo, revocation and introspection
/// endpoints answer it (`{"error": …, "error_description": …}`), and as
/// the authorize endpoint sends it back to the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub error: &'static str,
    pub description: String,
    pub status: u16,
}

impl OAuthError {
    pub fn new(error: &'static str, description: impl Into<String>) -> Self {
        let status = match error {
            "invalid_client" | "invalid_token" => 401,
            "insufficient_scope" => 403,
            "server_error" => 500,
            "temporarily_unavailable" => 503,
            _ => 400,
        };
        Self { error, description: description.into(), status }
    }
}

impl From<crate::error::AppError> for OAuthError {
    fn from(e: crate::error::AppError) -> Self {
        match e.error {
            crate::error::ErrorKind::Unavailable => Self::new("temporarily_unavailable", e.message),
            _ => Self::new("server_error", "Something went wrong on our side."),
        }
    }
}

/// The live grant an access token names, from the cache when it can be.
pub async fn grant_of_access_token(state: &AppState, token: &str) -> Result<Option<GrantSubject>, OAuthError> {
    let now = state.now();
    let Some(claims) = state.oidc.verify_access(token, now) else { return Ok(None) };
    let cache = state.db.gate_cache();
    if let Some(grant) = cache.grant(&claims.gid, now) {
        return Ok(Some(grant));
    }
    let generation = cache.generation();
    let Some(grant) = state.db.oidc_grant_subject(&claims.gid, now).await? else { return Ok(None) };
    cache.put_grant(grant.clone(), generation, now);
    Ok(Some(grant))
}

/// The claims about the person a grant's scopes allow, as userinfo and
/// the id token give them.
pub fn person_claims(grant: &GrantSubject) -> serde_json::Map<String, serde_json::Value> {
    use serde_json::Value;
    let mut claims = serde_json::Map::new();
    claims.insert("sub".into(), Value::from(grant.subject.clone().unwrap_or_default()));
    if grant.has_scope("profile") {
        claims.insert("name".into(), Value::from(grant.name.clone()));
        claims.insert("preferred_username".into(), Value::from(grant.email.clone()));
    }
    if grant.has_scope("email") {
        claims.insert("email".into(), Value::from(grant.email.clone()));
        claims.insert("email_verified".into(), Value::from(grant.email_verified));
    }
    if grant.has_scope("groups") {
        claims.insert("groups".into(), Value::from(grant.groups.clone()));
    }
    claims
}

/// The userinfo answer for a bearer token: the person's claims, or
/// `invalid_token` when the token is not ours, expired, or its grant or
/// log-in ended.
pub async fn userinfo(state: &AppState, token: Option<&str>) -> Result<serde_json::Value, OAuthError> {
    let token = token.ok_or_else(|| OAuthError::new("invalid_token", "No access token was sent."))?;
    let grant = grant_of_access_token(state, token)
        .await?
        .ok_or_else(|| OAuthError::new("invalid_token", "The access token is not valid, or its log-in has ended."))?;
    Ok(serde_json::Value::Object(person_claims(&grant)))
}

/// The discovery document: everything else is found from it.
pub fn discovery(state: &AppState) -> serde_json::Value {
    let o = &state.oidc;
    serde_json::json!({
        "issuer": o.issuer,
        "authorization_endpoint": o.url("/oidc/authorize"),
        "token_endpoint": o.url("/oidc/token"),
        "userinfo_endpoint": o.url("/oidc/userinfo"),
        "jwks_uri": o.url("/oidc/jwks"),
        "end_session_endpoint": o.url("/oidc/logout"),
        "revocation_endpoint": o.url("/oidc/revoke"),
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint": o.url("/oidc/introspect"),
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": CLAIMS,
        "acr_values_supported": [ACR_TWO_FACTORS, ACR_PASSWORD],
        "prompt_values_supported": ["none", "login", "consent"],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "authorization_response_iss_parameter_supported": true,
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
    })
}

/// Scope words, known ones only, each once, in the order given.
pub fn known_scopes(scope: &str) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for word in scope.split(' ').filter(|w| !w.is_empty()) {
        if let Some(known) = SCOPES.iter().find(|s| **s == word)
            && !out.contains(known)
        {
            out.push(known);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_repeated_scopes_are_dropped() {
        assert_eq!(known_scopes("openid  email openid admin profile"), vec!["openid", "email", "profile"]);
        assert!(known_scopes("").is_empty());
    }

    #[test]
    fn access_tokens_are_ours_only_and_expire() {
        let oidc = Oidc::new("https://auth.example.com/", &[7u8; 32]);
        let claims = AccessClaims {
            iss: oidc.issuer.clone(),
            sub: "s".into(),
            aud: "c".into(),
            client_id: "c".into(),
            scope: "openid".into(),
            gid: "g".into(),
            iat: 100,
            exp: 700,
            jti: "j".into(),
        };
        let token = oidc.issue_access(&claims).unwrap();
        assert_eq!(oidc.verify_access(&token, 699).map(|c| c.gid), Some("g".into()));
        assert!(oidc.verify_access(&token, 700).is_none(), "expired");
        let other = Oidc::new("https://auth.example.com", &[8u8; 32]);
        assert!(other.verify_access(&token, 200).is_none(), "another key");
        // A token of the same key but another type (a session cookie's
        // header) is refused.
        let plain = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &oidc.access_encoding).unwrap();
        assert!(oidc.verify_access(&plain, 200).is_none());
    }
}
