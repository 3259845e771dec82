//! Which server the harness measures (`Target`): this project or the NestJS
//! original, and every difference between their APIs the harness needs.

use std::time::Duration;

use serde_json::Value;

use crate::hotp::hotp_sha1;

/// Which server the harness talks to. The NestJS original differs from
/// this project in what the harness needs:
/// - no prefix and no health route (the baseline is its 401 on
///   `GET /authentication` without a cookie);
/// - `POST /2fa/generate` answers 201 with a PNG QR code (and no
///   `Content-Type`), and the secret is only readable as
///   `twoFactorAuthenticationSecret` in `GET /authentication`;
/// - its secrets are 80 bits (otplib's `generateSecret()`: 16 base32
///   characters), which totp-rs refuses to build a `Totp` from (it wants
///   at least 128): the harness computes those codes itself (`hotp_sha1`);
/// - it accepts a code of the current 30-second step only (otplib's
///   default window 0; checked with curl: the previous and the next
///   step's codes are 401) and has no replay protection (the same code
///   twice is 200 twice), where this project refuses the step that turned
///   2FA on and accepts one step of skew; so a code for the original is
///   never computed in the last seconds of a step (`clear_of_step_end`);
/// - a wrong password is 400 there, 401 here, and a log-in for an unknown
///   address is 400 without any hashing (here a dummy argon2 hash runs);
///   it limits no guesses;
/// - each log-in there costs two bcrypt operations (cost 10: the password
///   compare, then a hash of the refresh token it stores), so the ratio to
///   raw argon2 (scenario b) does not apply;
/// - it has no gate (scenario i), no passkeys (k), no PostgreSQL
///   instances to compare (j) and no site (g).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Ours,
    Original,
}

impl Target {
    pub fn from_prefix(prefix: &str) -> Self {
        if prefix.is_empty() { Target::Original } else { Target::Ours }
    }

    /// The baseline path of scenario a.
    pub fn health(self) -> &'static str {
        match self {
            Target::Ours => "/healthz",
            Target::Original => "/authentication",
        }
    }

    /// The status of a log-in refused by the password check.
    pub fn wrong_password(self) -> u16 {
        match self {
            Target::Ours => 401,
            Target::Original => 400,
        }
    }

    /// Seconds from now whose code a user submits at the code step.
    pub fn code_offset(self) -> i64 {
        match self {
            Target::Ours => 30,
            Target::Original => 0,
        }
    }

    /// The new secret, from `/2fa/generate`'s answer or (for the
    /// original) from the profile read after it.
    pub fn secret(self, generated: &[u8], profile: Option<&Value>) -> Option<Vec<u8>> {
        let base32 = match self {
            Target::Ours => serde_json::from_slice::<Value>(generated).ok()?["secret"].as_str()?.to_owned(),
            Target::Original => {
                if !generated.starts_with(b"\x89PNG") {
                    return None;
                }
                profile?["twoFactorAuthenticationSecret"].as_str()?.to_owned()
            }
        };
        app::server::factors::totp::from_base32(&base32)
    }

    /// The 6-digit code of `secret` at `time`. The project's own secrets
    /// are 160 bits and go through its TOTP module; the original's are 80
    /// bits, which that module (totp-rs) refuses.
    pub fn code_at(self, secret: &[u8], time: i64) -> String {
        match self {
            Target::Ours => app::server::factors::totp::code_at(secret, time).expect("a code for a 160-bit secret"),
            Target::Original => hotp_sha1(secret, u64::try_from(time).expect("a time after 1970") / 30),
        }
    }

    /// Waits, for the original only, until at least `STEP_MARGIN` remains
    /// in the current 30-second step: it accepts the current step's code
    /// only, so a code computed at 29.9 s would be refused on arrival.
    /// Callers wait outside their timings.
    pub async fn clear_of_step_end(self) {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let into_step = Duration::from_millis(u64::try_from(now.as_millis() % 30_000).unwrap_or(0));
        let left = Duration::from_secs(30).saturating_sub(into_step);
        if self == Target::Original && left < STEP_MARGIN {
            // A little past the boundary, so the server's clock is there too.
            tokio::time::sleep(left + Duration::from_millis(200)).await;
        }
    }
}

/// Time a code for the original must have left in its step when computed.
const STEP_MARGIN: Duration = Duration::from_secs(3);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_secret_is_read_where_each_server_gives_it() {
        let secret = [7u8; 20];
        let base32 = app::server::factors::totp::to_base32(&secret);
        let ours = serde_json::to_vec(&json!({"secret": base32, "otpauthUrl": "otpauth://totp/x"})).unwrap();
        assert_eq!(Target::Ours.secret(&ours, None), Some(secret.to_vec()));
        // The original: a PNG, and the secret on the profile.
        let png = b"\x89PNG\r\n\x1a\n rest of the image";
        let profile = json!({"id": 1, "email": "u@example.com", "twoFactorAuthenticationSecret": base32});
        assert_eq!(Target::Original.secret(png, Some(&profile)), Some(secret.to_vec()));
        assert_eq!(Target::Original.secret(png, Some(&json!({"twoFactorAuthenticationSecret": null}))), None);
        assert_eq!(Target::Original.secret(&ours, Some(&profile)), None, "not a PNG: not the original");
        assert_eq!(Target::Ours.secret(png, None), None);
    }

    #[test]
    fn the_prefix_names_the_target() {
        assert_eq!(Target::from_prefix("/api"), Target::Ours);
        assert_eq!(Target::from_prefix(""), Target::Original);
        assert_eq!((Target::Original.health(), Target::Original.wrong_password()), ("/authentication", 400));
        assert_eq!((Target::Ours.code_offset(), Target::Original.code_offset()), (30, 0));
    }

    #[test]
    fn codes_for_the_original_match_rfc_6238_and_the_project() {
        // RFC 6238 appendix B, SHA-1 (its 8-digit codes, last 6 digits).
        let key = b"12345678901234567890";
        for (time, code) in
            [(59, "287082"), (1_111_111_109, "081804"), (1_234_567_890, "005924"), (2_000_000_000, "279037")]
        {
            assert_eq!(Target::Original.code_at(key, time), code, "at {time}");
            assert_eq!(Target::Ours.code_at(key, time), code, "the project's module at {time}");
        }
        // An 80-bit secret as the original makes them (seen from it with
        // curl); the code checked with Python's hmac module.
        let secret = app::server::factors::totp::from_base32("KQOAOFISGMLE4EKA").expect("16 base32 characters");
        assert_eq!(secret.len(), 10);
        assert_eq!(app::server::factors::totp::code_at(&secret, 1_796_548_610), None, "totp-rs refuses 80 bits");
        assert_eq!(Target::Original.code_at(&secret, 1_796_548_610), "105344");
    }
}
