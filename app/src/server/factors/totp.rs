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

/// Why a code typed during enrolment did not confirm the new secret, found
/// by trying the usual set-up mistakes. Only the enrolment path asks: on
/// log-in it would tell a guesser how close a guess came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Diagnosis {
    /// Right secret and settings, but the phone's clock is `steps` time
    /// steps away from ours (positive: the phone is ahead).
    ClockOff { steps: i64 },
    /// Right secret, but the app hashes with SHA-256 or SHA-512.
    Algorithm(&'static str),
    /// Right secret, but the app shows 8 digits.
    EightDigits,
    /// Nothing matches: most likely an older QR code was scanned.
    NoMatch,
}

/// Farthest clock offset searched, in steps each side (5 minutes).
pub const DIAGNOSIS_STEPS: i64 = 10;

fn code_with(secret: &[u8], algorithm: Algorithm, digits: u8, time: i64) -> Option<String> {
    let t = Builder::new()
        .with_algorithm(algorithm)
        .with_digits(digits)
        .with_step_duration(STEP_SECONDS)
        .with_skew(0)
        .with_secret(secret.to_vec())
        .build()
        .ok()?;
    Some(t.generate(u64::try_from(time).ok()?).to_string())
}

/// A SHA-1 code with another number of digits (tests of the self-test).
pub fn code_with_digits(secret: &[u8], digits: u8, time: i64) -> Option<String> {
    code_with(secret, Algorithm::SHA1, digits, time)
}

/// Classifies a code (digits only, 6 or 8 of them) that `verify` refused.
/// Never a way in: the caller has already counted the attempt as failed.
pub fn diagnose(secret: &[u8], digits: &str, now: i64) -> Diagnosis {
    let step = STEP_SECONDS as i64;
    let window = -i64::from(SKEW_STEPS)..=i64::from(SKEW_STEPS);
    if digits.len() == 8 {
        let eight =
            window.clone().any(|k| code_with(secret, Algorithm::SHA1, 8, now + k * step).as_deref() == Some(digits));
        return if eight { Diagnosis::EightDigits } else { Diagnosis::NoMatch };
    }
    // Nearest offsets first, so the smallest explanation wins.
    for distance in (i64::from(SKEW_STEPS) + 1)..=DIAGNOSIS_STEPS {
        for steps in [distance, -distance] {
            if code_with(secret, Algorithm::SHA1, 6, now + steps * step).as_deref() == Some(digits) {
                return Diagnosis::ClockOff { steps };
            }
        }
    }
    for (algorithm, name) in [(Algorithm::SHA256, "SHA-256"), (Algorithm::SHA512, "SHA-512")] {
        if window.clone().any(|k| code_with(secret, algorithm, 6, now + k * step).as_deref() == Some(digits)) {
            return Diagnosis::Algorithm(name);
        }
    }
    Diagnosis::NoMatch
}

impl Diagnosis {
    /// What the person should do, in words.
    pub fn explain(self) -> String {
        match self {
            Diagnosis::ClockOff { steps } => {
                let seconds = steps.abs() * STEP_SECONDS as i64;
                let amount = if seconds >= 120 && seconds % 60 == 0 {
                    format!("{} minutes", seconds / 60)
                } else {
                    format!("{seconds} seconds")
                };
                let direction = if steps > 0 { "fast" } else { "slow" };
                format!(
                    "That code is from your app, but your phone's clock is about {amount} {direction}. \
                     Turn on automatic date and time in your phone's settings, then enter the new code."
                )
            }
            Diagnosis::Algorithm(name) => format!(
                "That code was made with {name}, but this account uses SHA-1. Delete the entry in your app and \
                 add it again by scanning the QR code (or choose SHA-1 when typing the key)."
            ),
            Diagnosis::EightDigits => "Your app shows 8-digit codes, but this account uses 6. Delete the entry in \
                 your app and add it again by scanning the QR code (or choose 6 digits when typing the key)."
                .to_owned(),
            Diagnosis::NoMatch => "That code does not match this key. Check that you scanned the QR code shown \
                 now (not one from an earlier try), then enter the code your app shows."
                .to_owned(),
        }
    }
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
    #[test]
    fn diagnosis_names_each_set_up_mistake() {
        let now = 1_800_000_015;
        let secret = RFC_SECRET;
        // The phone 3 steps ahead, 4 behind.
        let ahead = code_with(secret, Algorithm::SHA1, 6, now + 90).unwrap();
        assert_eq!(diagnose(secret, &ahead, now), Diagnosis::ClockOff { steps: 3 });
        let behind = code_with(secret, Algorithm::SHA1, 6, now - 120).unwrap();
        assert_eq!(diagnose(secret, &behind, now), Diagnosis::ClockOff { steps: -4 });
        // Ten steps is the edge; eleven is out of reach.
        let edge = code_with(secret, Algorithm::SHA1, 6, now + 300).unwrap();
        assert_eq!(diagnose(secret, &edge, now), Diagnosis::ClockOff { steps: 10 });
        let sha256 = code_with(secret, Algorithm::SHA256, 6, now).unwrap();
        assert_eq!(diagnose(secret, &sha256, now), Diagnosis::Algorithm("SHA-256"));
        let sha512 = code_with(secret, Algorithm::SHA512, 6, now + 30).unwrap();
        assert_eq!(diagnose(secret, &sha512, now), Diagnosis::Algorithm("SHA-512"));
        let eight = code_with(secret, Algorithm::SHA1, 8, now).unwrap();
        assert_eq!(eight.len(), 8);
        assert_eq!(diagnose(secret, &eight, now), Diagnosis::EightDigits);
        // A code of another secret matches nothing.
        let other = code_with(b"another secret, 20 b", Algorithm::SHA1, 6, now).unwrap();
        assert_eq!(diagnose(secret, &other, now), Diagnosis::NoMatch);
        assert!(Diagnosis::ClockOff { steps: 3 }.explain().contains("90 seconds fast"));
        assert!(Diagnosis::ClockOff { steps: -10 }.explain().contains("5 minutes slow"));
        assert!(Diagnosis::EightDigits.explain().contains("8-digit"));
    }
}
