//! Cryptography of the core: secrets sealed at rest (`sealing`: TOTP keys,
//! recovery-code hashes), the signed tokens and the cookies that carry them
//! (`tokens`), and the small helpers shared by everything else: hashing a
//! token for storage, and random bytes from the OS.

pub mod sealing;
pub mod tokens;

use sha2::{Digest, Sha256};

use crate::error::AppError;

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

pub fn random_bytes<const N: usize>() -> Result<[u8; N], AppError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| {
        tracing::error!(error = %e, "the OS random source failed");
        AppError::internal()
    })?;
    Ok(bytes)
}
