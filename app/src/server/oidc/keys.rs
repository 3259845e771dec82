//! The keys that sign id tokens: RSA-2048, RS256 only (what Immich,
//! Nextcloud, Apache mod_auth_openidc and Cloudflare accept). Made the
//! first time one is needed, stored in the database with the private part
//! sealed under `SECRETS_KEY`, so every instance signs with the same key.
//!
//! Rotation (`server oidc rotate-key`) adds a key. Every instance reloads
//! the key set at least every `RELOAD_SECONDS`, and a key signs only once
//! it is `PUBLISH_SECONDS` old, so by the time a token names it, every
//! instance's JWKS lists it. A key that stopped signing stays in the JWKS
//! for `RETIRE_SECONDS`, past the life of anything it signed.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use crate::error::AppError;
use crate::server::db::KeyRow;
use crate::server::state::AppState;

/// How often an instance reads the key set again.
pub const RELOAD_SECONDS: i64 = 60;
/// A new key signs only after this long (every instance has published it).
pub const PUBLISH_SECONDS: i64 = 2 * RELOAD_SECONDS;
/// A key that stopped signing is published this much longer.
pub const RETIRE_SECONDS: i64 = 2 * super::ID_TOKEN_TTL;

/// One public key as the JWKS gives it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Jwk {
    pub kty: &'static str,
    #[serde(rename = "use")]
    pub use_: &'static str,
    pub alg: &'static str,
    pub kid: String,
    pub n: String,
    pub e: String,
}

/// The keys an instance knows: the one that signs and the ones published.
pub struct KeySet {
    signer_kid: String,
    signer: RsaKeyPair,
    published: Vec<Jwk>,
    loaded_at: i64,
}

impl KeySet {
    /// `sign_typed` on a blocking thread. An RSA signature is about 0.4 ms
    /// of CPU that never yields: on an async worker it holds up the tasks
    /// queued behind it, among them whichever holds SQLite's one writer
    /// turn, and every writer then waits in line (the token endpoint, 16
    /// exchanges at a time: 10 ms each, both cores half idle). Every
    /// signature made while serving goes through here.
    pub async fn sign_apart(
        self: std::sync::Arc<Self>,
        claims: serde_json::Map<String, serde_json::Value>,
        typ: &'static str,
    ) -> Result<String, AppError> {
        tokio::task::spawn_blocking(move || self.sign_typed(&claims, typ)).await.map_err(|_| AppError::internal())?
    }

    /// Signs `claims` as a compact JWS: `{"alg":"RS256","typ":…,"kid":…}`.
    pub fn sign_typed<T: Serialize>(&self, claims: &T, typ: &'static str) -> Result<String, AppError> {
        #[derive(Serialize)]
        struct Header<'a> {
            alg: &'static str,
            typ: &'static str,
            kid: &'a str,
        }
        let header = serde_json::to_vec(&Header { alg: "RS256", typ, kid: &self.signer_kid })
            .map_err(|_| AppError::internal())?;
        let payload = serde_json::to_vec(claims).map_err(|_| AppError::internal())?;
        let mut jws = URL_SAFE_NO_PAD.encode(header);
        jws.push('.');
        jws.push_str(&URL_SAFE_NO_PAD.encode(payload));
        let mut signature = vec![0u8; self.signer.public_modulus_len()];
        self.signer.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), jws.as_bytes(), &mut signature).map_err(|_| {
            tracing::error!("could not sign an id token");
            AppError::internal()
        })?;
        jws.push('.');
        jws.push_str(&URL_SAFE_NO_PAD.encode(signature));
        Ok(jws)
    }

    /// The claims of a token this provider signed with a published key
    /// (an `id_token_hint`): signature and issuer checked, expiry not (a
    /// hint may have expired).
    pub fn verify_own(&self, token: &str, issuer: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
        use jsonwebtoken::{Algorithm, DecodingKey, Validation};
        let kid = jsonwebtoken::decode_header(token).ok()?.kid?;
        let jwk = self.published.iter().find(|k| k.kid == kid)?;
        let key = DecodingKey::from_rsa_components(&jwk.n, &jwk.e).ok()?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.algorithms = vec![Algorithm::RS256];
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["iss", "sub", "aud"]);
        validation.set_issuer(&[issuer]);
        jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(token, &key, &validation)
            .ok()
            .map(|d| d.claims)
    }

    pub fn jwks(&self) -> &[Jwk] {
        &self.published
    }

    pub fn signer_kid(&self) -> &str {
        &self.signer_kid
    }
}

/// The RFC 7638 thumbprint of an RSA public key: its `kid`.
fn thumbprint(n: &str, e: &str) -> String {
    use sha2::Digest;
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(canonical.as_bytes()))
}

fn purpose(kid: &str) -> String {
    format!("oidc-key:{kid}")
}

/// Makes a new RSA-2048 key (on the blocking pool: it takes 20-200 ms) and stores it
/// sealed. Returns its kid.
pub async fn create_key(state: &AppState) -> Result<String, AppError> {
    let (der, n, e) = tokio::task::spawn_blocking(|| {
        use aws_lc_rs::encoding::AsDer;
        use aws_lc_rs::rsa::KeySize;
        use aws_lc_rs::signature::KeyPair;
        let key = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|e| e.to_string())?;
        let der = key.as_der().map_err(|e| e.to_string())?;
        let public = key.public_key();
        Ok::<_, String>((
            der.as_ref().to_vec(),
            URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
            URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
        ))
    })
    .await
    .map_err(|_| AppError::internal())?
    .map_err(|e| {
        tracing::error!(error = %e, "could not make an RSA key");
        AppError::internal()
    })?;
    let kid = thumbprint(&n, &e);
    let sealed_key = state.secrets.seal_for(&purpose(&kid), &der)?;
    state
        .db
        .insert_oidc_key(&KeyRow { kid: kid.clone(), sealed_key, modulus: n, exponent: e, created_at: state.now() })
        .await?;
    tracing::info!(kid, "made a new id-token signing key");
    Ok(kid)
}

/// Which key signs and which are published at `now`, from every stored
/// key (newest first): the newest key old enough to be published
/// everywhere signs (the oldest of all when none is, at first start);
/// keys newer than it are published already, older ones until
/// `RETIRE_SECONDS` after their successor started signing. Returns
/// (signer index, published indexes, indexes no token can name any more).
fn choose(rows: &[KeyRow], now: i64) -> Option<(usize, Vec<usize>, Vec<usize>)> {
    if rows.is_empty() {
        return None;
    }
    // None old enough (a first start, or a rotation right after it): the
    // oldest, published longest.
    let signer = rows.iter().position(|k| k.created_at + PUBLISH_SECONDS <= now).unwrap_or(rows.len() - 1);
    let mut published: Vec<usize> = (0..=signer).collect();
    let mut forgotten = Vec::new();
    for i in signer + 1..rows.len() {
        // Key i signed until key i-1 started to.
        let stopped = rows[i - 1].created_at + PUBLISH_SECONDS;
        if now - stopped < RETIRE_SECONDS { published.push(i) } else { forgotten.push(i) }
    }
    Some((signer, published, forgotten))
}

/// Builds the key set from the stored rows.
fn key_set(state: &AppState, rows: &[KeyRow], now: i64) -> Result<Option<KeySet>, AppError> {
    let Some((signer, published, _)) = choose(rows, now) else { return Ok(None) };
    let row = &rows[signer];
    let der = state.secrets.open_for(&purpose(&row.kid), &row.sealed_key)?;
    let pair = RsaKeyPair::from_pkcs8(&der).map_err(|e| {
        tracing::error!(kid = row.kid, error = %e, "a stored id-token key is not a usable RSA key");
        AppError::internal()
    })?;
    Ok(Some(KeySet {
        signer_kid: row.kid.clone(),
        signer: pair,
        published: published
            .into_iter()
            .map(|i| Jwk {
                kty: "RSA",
                use_: "sig",
                alg: "RS256",
                kid: rows[i].kid.clone(),
                n: rows[i].modulus.clone(),
                e: rows[i].exponent.clone(),
            })
            .collect(),
        loaded_at: now,
    }))
}

/// The keys, read again when older than `RELOAD_SECONDS`, made on first
/// need. One reload at a time per instance.
pub async fn current(state: &AppState) -> Result<std::sync::Arc<KeySet>, AppError> {
    let now = state.now();
    if let Some(set) = state.oidc.keys.read().ok().and_then(|k| k.clone())
        && now - set.loaded_at < RELOAD_SECONDS
        && now >= set.loaded_at
    {
        return Ok(set);
    }
    let _one = state.oidc.reloading.lock().await;
    if let Some(set) = state.oidc.keys.read().ok().and_then(|k| k.clone())
        && now - set.loaded_at < RELOAD_SECONDS
        && now >= set.loaded_at
    {
        return Ok(set);
    }
    let mut rows = state.db.oidc_keys().await?;
    if rows.is_empty() {
        create_key(state).await?;
        rows = state.db.oidc_keys().await?;
    }
    let set = std::sync::Arc::new(key_set(state, &rows, now)?.ok_or_else(AppError::internal)?);
    if let Ok(mut keys) = state.oidc.keys.write() {
        *keys = Some(set.clone());
    }
    Ok(set)
}

/// `server rotate-secrets-key`: re-seals each id-token key not under the
/// current `SECRETS_KEY` (the old one must be in `SECRETS_KEYS_PREVIOUS`).
/// Returns how many were re-sealed.
pub async fn reseal(state: &AppState) -> Result<usize, AppError> {
    use crate::server::crypto::sealing::SecretBox;
    let mut done = 0;
    for row in state.db.oidc_keys().await? {
        if SecretBox::key_id(&row.sealed_key) == Some(state.secrets.current_id()) {
            continue;
        }
        let der = state.secrets.open_for(&purpose(&row.kid), &row.sealed_key)?;
        let sealed = state.secrets.seal_for(&purpose(&row.kid), &der)?;
        if state.db.replace_oidc_key_seal(&row.kid, &row.sealed_key, &sealed).await? {
            done += 1;
        }
    }
    Ok(done)
}

/// `server oidc rotate-key`: a new key, published now, signing once every
/// instance has it; keys no token can name any more are deleted.
pub async fn rotate(state: &AppState) -> Result<String, AppError> {
    let kid = create_key(state).await?;
    let rows = state.db.oidc_keys().await?;
    let now = state.now();
    if let Some((_, _, forgotten)) = choose(&rows, now) {
        let kids: Vec<String> = forgotten.into_iter().map(|i| rows[i].kid.clone()).collect();
        state.db.delete_oidc_keys(&kids).await?;
    }
    Ok(kid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kid: &str, created_at: i64) -> KeyRow {
        KeyRow {
            kid: kid.into(),
            sealed_key: String::new(),
            modulus: String::new(),
            exponent: String::new(),
            created_at,
        }
    }

    #[test]
    fn a_new_key_signs_only_once_published_and_an_old_one_stays_until_retired() {
        assert!(choose(&[], 0).is_none());
        // First start: the only key signs at once.
        assert_eq!(choose(&[row("a", 1000)], 1000), Some((0, vec![0], vec![])));
        // Rotated at 5000: "b" is published but "a" still signs.
        let keys = [row("b", 5000), row("a", 1000)];
        assert_eq!(choose(&keys, 5000), Some((1, vec![0, 1], vec![])));
        assert_eq!(choose(&keys, 5000 + PUBLISH_SECONDS - 1).map(|c| c.0), Some(1));
        // Then "b" signs and "a" stays published until retired.
        let signing = 5000 + PUBLISH_SECONDS;
        assert_eq!(choose(&keys, signing), Some((0, vec![0, 1], vec![])));
        assert_eq!(choose(&keys, signing + RETIRE_SECONDS - 1), Some((0, vec![0, 1], vec![])));
        assert_eq!(choose(&keys, signing + RETIRE_SECONDS), Some((0, vec![0], vec![1])));
        // Rotated twice in quick succession at first start: the first key
        // signs until the second is old enough.
        let young = [row("c", 1010), row("b", 1005), row("a", 1000)];
        assert_eq!(choose(&young, 1020).map(|c| c.0), Some(2));
        assert_eq!(choose(&young, 1005 + PUBLISH_SECONDS).map(|c| c.0), Some(1));
    }

    #[test]
    fn the_kid_is_the_rfc_7638_thumbprint() {
        // RFC 7638 section 3.1's example key.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        assert_eq!(thumbprint(n, "AQAB"), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }
}
