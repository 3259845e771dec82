//! TOTP secrets at rest: sealed with XChaCha20-Poly1305 under a key from
//! configuration (never from the database), the user id as associated data
//! so a sealed secret copied onto another row does not open. A sealed value
//! reads `v1.<key id>.<base64url(nonce ‖ ciphertext)>`; the key id lets the
//! rotation command find rows under an old key.
//!
//! Recovery codes are kept as keyed hashes: HMAC-SHA256 under a key derived
//! from the same configured key, over the user id and the code, stored as
//! `r1.<key id>.<hex>`. A copy of the database alone is not enough to test
//! guesses offline, and equal codes of two users hash apart.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::error::AppError;

const NONCE_BYTES: usize = 24;

type HmacSha256 = Hmac<Sha256>;

/// What the recovery-code key is derived for; a new purpose gets a new label.
const RECOVERY_KEY_LABEL: &[u8] = b"twofactor:recovery-codes:v1";

/// Keys by id; one of them seals new values.
#[derive(Clone)]
pub struct SecretBox {
    current_id: Arc<str>,
    keys: Arc<HashMap<String, XChaCha20Poly1305>>,
    /// The recovery-code hashing key derived from each key, current first.
    recovery_keys: Arc<Vec<(String, HmacSha256)>>,
}

impl SecretBox {
    /// `current` seals; `previous` can still open (during a rotation).
    pub fn new(current: (&str, &[u8]), previous: &[(String, Vec<u8>)]) -> Result<Self, String> {
        let mut keys = HashMap::new();
        let mut recovery_keys = Vec::new();
        for (id, key) in std::iter::once((current.0.to_owned(), current.1.to_vec())).chain(previous.iter().cloned()) {
            if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                return Err(format!("secrets key id {id:?} must be letters, digits, - or _"));
            }
            if key.len() != 32 {
                return Err(format!("secrets key {id:?} must be 32 bytes (64 hex characters), it has {}", key.len()));
            }
            let cipher = XChaCha20Poly1305::new_from_slice(&key).map_err(|_| "bad secrets key length".to_owned())?;
            if keys.insert(id.clone(), cipher).is_some() {
                return Err(format!("secrets key id {id:?} is configured twice"));
            }
            let mut derive =
                <HmacSha256 as Mac>::new_from_slice(&key).map_err(|_| "bad secrets key length".to_owned())?;
            derive.update(RECOVERY_KEY_LABEL);
            let derived = derive.finalize().into_bytes();
            let mac = <HmacSha256 as Mac>::new_from_slice(&derived).map_err(|_| "bad derived key length".to_owned())?;
            recovery_keys.push((id, mac));
        }
        Ok(Self { current_id: current.0.into(), keys: Arc::new(keys), recovery_keys: Arc::new(recovery_keys) })
    }

    fn recovery_mac(id: &str, mac: &HmacSha256, user_id: i64, code: &str) -> String {
        let mut mac = mac.clone();
        mac.update(format!("{user_id}:{code}").as_bytes());
        format!("r1.{id}.{}", hex::encode(mac.finalize().into_bytes()))
    }

    /// The stored form of a new recovery code, under the current key.
    pub fn recovery_hash(&self, user_id: i64, code: &str) -> Result<String, AppError> {
        let (id, mac) = self.recovery_keys.first().ok_or_else(AppError::internal)?;
        Ok(Self::recovery_mac(id, mac, user_id, code))
    }

    /// Every stored form the code may have: under the current key, under
    /// each previous key (codes issued before a rotation), and the unkeyed
    /// SHA-256 of releases before keyed hashes. One lookup matches any.
    pub fn recovery_candidates(&self, user_id: i64, code: &str) -> Vec<String> {
        let mut all: Vec<String> =
            self.recovery_keys.iter().map(|(id, mac)| Self::recovery_mac(id, mac, user_id, code)).collect();
        all.push(hex::encode(Sha256::digest(code.as_bytes())));
        all
    }

    /// The key id a stored recovery-code hash names (`None` for the old
    /// unkeyed form).
    pub fn recovery_key_id(stored: &str) -> Option<&str> {
        stored.strip_prefix("r1.")?.split_once('.').map(|(id, _)| id)
    }

    pub fn current_id(&self) -> &str {
        &self.current_id
    }

    fn aad(user_id: i64) -> Vec<u8> {
        format!("twofactor:totp:{user_id}").into_bytes()
    }

    pub fn seal(&self, user_id: i64, plaintext: &[u8]) -> Result<String, AppError> {
        self.seal_with(&Self::aad(user_id), plaintext)
    }

    /// Seals a secret of the whole service (not of one person): `purpose`
    /// binds it to what it is, so a sealed value cannot be moved to
    /// another place and opened there (e.g. `oidc-key:KID`).
    pub fn seal_for(&self, purpose: &str, plaintext: &[u8]) -> Result<String, AppError> {
        self.seal_with(format!("twofactor:{purpose}").as_bytes(), plaintext)
    }

    /// Opens what `seal_for` sealed for the same `purpose`.
    pub fn open_for(&self, purpose: &str, sealed: &str) -> Result<Vec<u8>, AppError> {
        self.open_with(format!("twofactor:{purpose}").as_bytes(), sealed).inspect_err(|_| {
            tracing::error!(purpose, "a sealed service secret does not open (wrong key or damaged)");
        })
    }

    fn seal_with(&self, aad: &[u8], plaintext: &[u8]) -> Result<String, AppError> {
        let cipher = self.keys.get(self.current_id.as_ref()).ok_or_else(AppError::internal)?;
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).map_err(|_| AppError::internal())?;
        let ct =
            cipher.encrypt(&XNonce::from(nonce), Payload { msg: plaintext, aad }).map_err(|_| AppError::internal())?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&ct);
        Ok(format!("v1.{}.{}", self.current_id, URL_SAFE_NO_PAD.encode(blob)))
    }

    pub fn open(&self, user_id: i64, sealed: &str) -> Result<Vec<u8>, AppError> {
        self.open_with(&Self::aad(user_id), sealed).inspect_err(|_| {
            tracing::error!(user_id, "a sealed secret does not open (wrong key, wrong row or damaged)");
        })
    }

    fn open_with(&self, aad: &[u8], sealed: &str) -> Result<Vec<u8>, AppError> {
        let fail = AppError::internal;
        let (id, blob) = parse(sealed).ok_or_else(fail)?;
        let cipher = self.keys.get(id).ok_or_else(fail)?;
        if blob.len() <= NONCE_BYTES {
            return Err(fail());
        }
        let (nonce, ct) = blob.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| fail())?;
        cipher.decrypt(&XNonce::from(nonce), Payload { msg: ct, aad }).map_err(|_| fail())
    }

    /// The key id a sealed value names, if it is well formed.
    pub fn key_id(sealed: &str) -> Option<&str> {
        sealed.strip_prefix("v1.")?.split_once('.').map(|(id, _)| id)
    }
}

fn parse(sealed: &str) -> Option<(&str, Vec<u8>)> {
    let (id, b64) = sealed.strip_prefix("v1.")?.split_once('.')?;
    Some((id, URL_SAFE_NO_PAD.decode(b64).ok()?))
}

/// Parses `id:hex` (a configured key).
pub fn parse_key(spec: &str) -> Result<(String, Vec<u8>), String> {
    let (id, hex) = spec.trim().split_once(':').ok_or("a secrets key is written id:64-hex-characters")?;
    let bytes = hex::decode(hex).map_err(|_| "a secrets key's bytes are written in hexadecimal")?;
    Ok((id.to_owned(), bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed() -> SecretBox {
        SecretBox::new(("k1", &[7u8; 32]), &[]).unwrap()
    }

    #[test]
    fn seal_open_round_trip_and_no_plaintext() {
        let b = boxed();
        let sealed = b.seal(42, b"JBSWY3DPEHPK3PXP-secret").unwrap();
        assert!(sealed.starts_with("v1.k1."));
        assert!(!sealed.contains("JBSWY3DP"));
        assert_eq!(b.open(42, &sealed).unwrap(), b"JBSWY3DPEHPK3PXP-secret");
        // Fresh nonce each time.
        assert_ne!(sealed, b.seal(42, b"JBSWY3DPEHPK3PXP-secret").unwrap());
    }

    #[test]
    fn another_row_or_key_does_not_open() {
        let b = boxed();
        let sealed = b.seal(42, b"secret").unwrap();
        assert!(b.open(43, &sealed).is_err(), "user id is associated data");
        let other = SecretBox::new(("k1", &[8u8; 32]), &[]).unwrap();
        assert!(other.open(42, &sealed).is_err());
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(b.open(42, &tampered).is_err());
    }

    #[test]
    fn previous_keys_open_during_rotation() {
        let old = boxed();
        let sealed = old.seal(1, b"s").unwrap();
        let rotated = SecretBox::new(("k2", &[9u8; 32]), &[("k1".into(), vec![7u8; 32])]).unwrap();
        assert_eq!(rotated.open(1, &sealed).unwrap(), b"s");
        assert_eq!(SecretBox::key_id(&sealed), Some("k1"));
        assert_eq!(SecretBox::key_id(&rotated.seal(1, b"s").unwrap()), Some("k2"));
    }

    #[test]
    fn recovery_hashes_are_keyed_per_user_and_survive_a_rotation() {
        let b = boxed();
        let stored = b.recovery_hash(1, "ABCD2345EFGH").unwrap();
        assert!(stored.starts_with("r1.k1."), "{stored}");
        assert_eq!(SecretBox::recovery_key_id(&stored), Some("k1"));
        assert!(!stored.contains(&hex::encode(Sha256::digest(b"ABCD2345EFGH"))), "not the bare digest");
        assert_ne!(stored, b.recovery_hash(2, "ABCD2345EFGH").unwrap(), "salted by the user id");
        let other = SecretBox::new(("k1", &[8u8; 32]), &[]).unwrap();
        assert!(!other.recovery_candidates(1, "ABCD2345EFGH").contains(&stored), "another key does not match");
        let rotated = SecretBox::new(("k2", &[9u8; 32]), &[("k1".into(), vec![7u8; 32])]).unwrap();
        let candidates = rotated.recovery_candidates(1, "ABCD2345EFGH");
        assert!(candidates[0].starts_with("r1.k2."));
        assert!(candidates.contains(&stored), "codes issued under the old key still match");
        assert!(candidates.contains(&hex::encode(Sha256::digest(b"ABCD2345EFGH"))), "and the unkeyed form");
        assert_eq!(SecretBox::recovery_key_id(&candidates[2]), None);
    }

    #[test]
    fn a_key_id_configured_twice_is_refused() {
        let err = SecretBox::new(("k1", &[7u8; 32]), &[("k1".into(), vec![8u8; 32])]).err().unwrap();
        assert!(err.contains("twice"), "{err}");
    }

    #[test]
    fn key_parsing() {
        let (id, key) = parse_key(&format!("prod-2026:{}", "ab".repeat(32))).unwrap();
        assert_eq!((id.as_str(), key.len()), ("prod-2026", 32));
        assert!(parse_key("nocolon").is_err());
        assert!(parse_key("k:zz").is_err());
        assert!(SecretBox::new(("k", &[1u8; 16]), &[]).is_err());
    }
}
