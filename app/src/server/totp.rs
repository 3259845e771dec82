//! TOTP per RFC 6238 as Google Authenticator honours it: HMAC-SHA-1, 6
//! digits, 30-second steps, one step of skew either side. Secrets are 160
//! bits from the OS CSPRNG. Replay protection is not here: `verify` returns
//! the matched time step and the caller stores it atomically (see `db`).

use totp_rs::{Algorithm, Builder, Secret, Totp};

use crate::domain::TotpCode;
use crate::error::AppError;

pub const DIGITS: u8 = 6;
pub const STEP_SECONDS: u64 = 30;
pub const SKEW_STEPS: u16 = 1;
/// 160 bits, the length RFC 4226 recommends and authenticator apps expect.
pub const SECRET_BYTES: usize = 20;

/// A fresh random secret.
pub fn generate_secret() -> Result<Vec<u8>, AppError> {
    let mut bytes = vec![0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| {
        tracing::error!(error = %e, "the OS random source failed");
        AppError::internal()
    })?;
    Ok(bytes)
}

pub fn to_base32(secret: &[u8]) -> String {
    Secret::from(secret.to_vec()).to_base32()
}

pub fn from_base32(text: &str) -> Option<Vec<u8>> {
    Secret::try_from_base32(text).ok().map(|s| s.as_ref().to_vec())
}

fn totp(secret: &[u8], issuer: &str, account: &str) -> Result<Totp, AppError> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS)
        .with_step_duration(STEP_SECONDS)
        .with_skew(SKEW_STEPS)
        .with_secret(secret.to_vec())
        .with_issuer(Some(issuer))
        .with_account_name(account)
        .build()
        .map_err(|e| {
            tracing::error!(error = %e, "could not build a TOTP");
            AppError::internal()
        })
}

/// The `otpauth://` URI an authenticator app reads from the QR code.
pub fn otpauth_url(secret: &[u8], issuer: &str, account: &str) -> Result<String, AppError> {
    totp(secret, issuer, account)?.to_url().map_err(|e| {
        tracing::error!(error = %e, "could not build the otpauth URI");
        AppError::internal()
    })
}

/// The time step the code matches at `now` (±1 step), or `None`.
pub fn verify(secret: &[u8], code: &TotpCode, now: i64) -> Option<i64> {
    let now = u64::try_from(now).ok()?;
    // The label does not influence the code; any valid one will do here.
    let t = totp(secret, "x", "x").ok()?;
    t.check(code.as_str(), now).and_then(|step| i64::try_from(step).ok())
}

/// The code for `time` (tests and the bench harness compute codes with it).
pub fn code_at(secret: &[u8], time: i64) -> Option<String> {
    let t = totp(secret, "x", "x").ok()?;
    Some(t.generate(u64::try_from(time).ok()?).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, SHA-1 rows. The reference secret is the ASCII
    /// string "12345678901234567890"; the table shows 8 digits, and the
    /// 6-digit code is its last six (RFC 4226 truncation mod 10^6).
    const RFC_SECRET: &[u8] = b"12345678901234567890";
    const VECTORS: [(i64, &str); 6] = [
        (59, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
        (20_000_000_000, "65353130"),
    ];

    #[test]
    fn rfc6238_appendix_b_sha1() {
        for (time, eight) in VECTORS {
            let six = &eight[2..];
            assert_eq!(code_at(RFC_SECRET, time).as_deref(), Some(six), "T={time}");
            let code = TotpCode::parse(six).unwrap();
            assert_eq!(verify(RFC_SECRET, &code, time), Some(time / 30), "T={time}");
        }
    }

    #[test]
    fn skew_is_one_step_each_side() {
        let t = 1_234_567_890;
        let code = TotpCode::parse(&code_at(RFC_SECRET, t).unwrap()).unwrap();
        let step = t / 30;
        // The window edges: the first second of the next step and the last
        // second of the previous one still accept; two steps away do not.
        assert_eq!(verify(RFC_SECRET, &code, (step + 1) * 30), Some(step));
        assert_eq!(verify(RFC_SECRET, &code, (step + 1) * 30 + 29), Some(step));
        assert_eq!(verify(RFC_SECRET, &code, (step + 2) * 30), None);
        assert_eq!(verify(RFC_SECRET, &code, step * 30 - 1), Some(step));
        assert_eq!(verify(RFC_SECRET, &code, (step - 1) * 30), Some(step));
        assert_eq!(verify(RFC_SECRET, &code, (step - 1) * 30 - 1), None);
    }

    #[test]
    fn secrets_are_160_bits_and_distinct() {
        let a = generate_secret().unwrap();
        let b = generate_secret().unwrap();
        assert_eq!(a.len(), 20);
        assert_ne!(a, b);
        assert_eq!(to_base32(&a).len(), 32);
        assert_eq!(from_base32(&to_base32(&a)), Some(a));
    }

    #[test]
    fn otpauth_url_names_issuer_and_account() {
        let url = otpauth_url(RFC_SECRET, "Two-Factor Login", "ann@example.com").unwrap();
        assert!(url.starts_with("otpauth://totp/Two-Factor%20Login:ann%40example.com?secret="), "{url}");
        assert!(url.contains("issuer=Two-Factor%20Login"), "{url}");
    }
}
