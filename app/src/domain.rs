//! Domain newtypes parsed at the edge (`Email`, `Password`, `PersonName`,
//! `TotpCode`). The browser form and the server both parse with these, so the
//! two agree by construction: a value of one of these types is valid.

use std::fmt;

#[cfg(feature = "ssr")]
pub mod identity;

/// Fewest characters a new password may have (DESIGN §3).
pub const PASSWORD_MIN_CHARS: usize = 12;
/// Most characters a password may have; checked before any hashing so that a
/// megabyte "password" never reaches argon2.
pub const PASSWORD_MAX_CHARS: usize = 128;
/// Longest accepted email address (RFC 5321 path limit).
pub const EMAIL_MAX_CHARS: usize = 254;
/// Longest display name.
pub const NAME_MAX_CHARS: usize = 100;

/// Why a value did not parse. The text is safe to show to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub &'static str);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// An email address, trimmed and lower-cased, so `Ann@Example.com ` and
/// `ann@example.com` are one account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let email = raw.trim().to_lowercase();
        if email.is_empty() {
            return Err(ParseError("Enter your email address."));
        }
        if email.chars().count() > EMAIL_MAX_CHARS {
            return Err(ParseError("That email address is too long."));
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err(ParseError("That does not look like an email address."));
        };
        let domain_ok = !domain.is_empty()
            && !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..");
        // ':' would break the otpauth label; the others only appear in quoted
        // or display-name forms that nobody types into a sign-up form.
        let no_odd_chars = !email
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, ':' | '"' | '<' | '>' | ',' | ';'));
        if local.is_empty() || !domain_ok || !no_odd_chars {
            return Err(ParseError("That does not look like an email address."));
        }
        // Look-alikes (invisible characters, mixed alphabets, compatibility
        // forms) are caught on the server, which has the Unicode tables.
        #[cfg(feature = "ssr")]
        let email = identity::email(&email)?;
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A password within the length limits. Its `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Characters, not bytes, are counted: a user typing 12 accented letters
    /// has typed 12 characters.
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let chars = raw.chars().count();
        if chars < PASSWORD_MIN_CHARS {
            return Err(ParseError("Use at least 12 characters."));
        }
        if chars > PASSWORD_MAX_CHARS {
            return Err(ParseError("Use at most 128 characters."));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// A display name: trimmed, 1..=100 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonName(String);

impl PersonName {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(ParseError("Enter your name."));
        }
        if name.chars().count() > NAME_MAX_CHARS {
            return Err(ParseError("Use at most 100 characters."));
        }
        if name.chars().any(char::is_control) {
            return Err(ParseError("The name contains characters that are not allowed."));
        }
        #[cfg(feature = "ssr")]
        let name = identity::name(name)?;
        #[cfg(not(feature = "ssr"))]
        let name = name.to_owned();
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A six-digit code from an authenticator app. People paste "123 456" or
/// "123-456", so spaces and dashes between digits are dropped; anything else
/// is refused.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpCode(String);

impl TotpCode {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let mut digits = String::with_capacity(6);
        for c in raw.trim().chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '\u{a0}' => {}
                _ => return Err(ParseError("The code is the 6 digits shown in your app.")),
            }
            if digits.len() > 6 {
                return Err(ParseError("The code is the 6 digits shown in your app."));
            }
        }
        if digits.len() != 6 {
            return Err(ParseError("The code is the 6 digits shown in your app."));
        }
        Ok(Self(digits))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TotpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpCode(<redacted>)")
    }
}

/// The characters of a recovery code: lower-case letters and digits without
/// the look-alikes 0/o, 1/l/i.
pub const RECOVERY_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
/// Characters in a recovery code: 12 × log2(31) ≈ 59 bits.
pub const RECOVERY_CODE_CHARS: usize = 12;

/// A recovery code as typed: `abcd-efgh-jkmn`, any case, dashes and spaces
/// optional. Stored as its normalised form (12 characters).
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryCode(String);

impl RecoveryCode {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let normal: String =
            raw.trim().chars().filter(|c| !matches!(c, '-' | ' ')).map(|c| c.to_ascii_lowercase()).collect();
        if normal.len() != RECOVERY_CODE_CHARS || !normal.bytes().all(|b| RECOVERY_ALPHABET.contains(&b)) {
            return Err(ParseError("A recovery code has 12 letters and digits, like abcd-efgh-jkmn."));
        }
        Ok(Self(normal))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `abcd-efgh-jkmn`, as shown to the user.
    pub fn display(&self) -> String {
        format!("{}-{}-{}", &self.0[0..4], &self.0[4..8], &self.0[8..12])
    }
}

impl fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryCode(<redacted>)")
    }
}

/// The second step of a log-in, or the proof for changing 2FA.
#[derive(Debug, Clone)]
pub enum SecondFactor {
    Totp(TotpCode),
    Recovery(RecoveryCode),
}

/// Splits a base32 secret into groups of four for manual entry:
/// `JBSW Y3DP EHPK 3PXP`.
pub fn group_secret(secret: &str) -> String {
    secret.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_trimmed_and_lowercased() {
        assert_eq!(Email::parse("  Ann@Example.COM ").unwrap().as_str(), "ann@example.com");
    }

    #[test]
    fn email_rejects_malformed() {
        for bad in [
            "",
            "   ",
            "ann",
            "@example.com",
            "ann@",
            "ann@example",
            "ann@.com",
            "ann@ex..com",
            "a b@example.com",
            "ann@exa@mple.com",
            "ann@example.com.",
            "a:b@example.com",
            "<ann@example.com>",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be refused");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(&long).is_err());
    }

    #[test]
    fn password_length_limits_count_characters() {
        assert!(Password::parse(&"a".repeat(11)).is_err());
        assert!(Password::parse(&"a".repeat(12)).is_ok());
        assert!(Password::parse(&"a".repeat(128)).is_ok());
        assert!(Password::parse(&"a".repeat(129)).is_err());
        // 12 two-byte characters are 24 bytes but 12 characters: allowed.
        assert!(Password::parse(&"é".repeat(12)).is_ok());
        assert!(Password::parse(&"é".repeat(11)).is_err());
    }

    #[test]
    fn password_debug_is_redacted() {
        let p = Password::parse("correct horse battery").unwrap();
        assert!(!format!("{p:?}").contains("horse"));
    }

    #[test]
    fn name_is_trimmed_and_bounded() {
        assert_eq!(PersonName::parse("  Ann  ").unwrap().as_str(), "Ann");
        assert!(PersonName::parse("   ").is_err());
        assert!(PersonName::parse(&"x".repeat(101)).is_err());
        assert!(PersonName::parse("a\u{0}b").is_err());
    }

    #[test]
    fn code_accepts_pasted_forms() {
        for ok in ["123456", "123 456", " 123-456 ", "12 34 56", "123\u{a0}456"] {
            assert_eq!(TotpCode::parse(ok).unwrap().as_str(), "123456", "{ok:?}");
        }
    }

    #[test]
    fn code_rejects_other_input() {
        for bad in ["", "12345", "1234567", "12345a", "１２３４５６", "123_456", "+123456", "123456 7"] {
            assert!(TotpCode::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn recovery_codes_normalise() {
        let c = RecoveryCode::parse(" ABCD-efgh-jkmn ").unwrap();
        assert_eq!(c.as_str(), "abcdefghjkmn");
        assert_eq!(c.display(), "abcd-efgh-jkmn");
        assert_eq!(RecoveryCode::parse("abcd efgh jkmn").unwrap(), c);
        for bad in ["", "abcd-efgh-jkm", "abcd-efgh-jkmnp", "abcd-efgh-jkm0", "abcd-efgh-jkml", "abcd_efgh_jkmn"] {
            assert!(RecoveryCode::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn secret_is_grouped_by_four() {
        assert_eq!(group_secret("JBSWY3DPEHPK3PXP"), "JBSW Y3DP EHPK 3PXP");
        assert_eq!(group_secret("ABCDEF"), "ABCD EF");
    }
}

/// Properties of every parser over arbitrary input: none panics, what is
/// accepted has the promised shape, and the forms people type round-trip.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn email_accepts_only_its_shape(raw in any::<String>()) {
            if let Ok(email) = Email::parse(&raw) {
                let s = email.as_str();
                prop_assert_eq!(s, s.trim());
                prop_assert_eq!(s.to_lowercase(), s);
                prop_assert!(s.chars().count() <= EMAIL_MAX_CHARS);
                let (local, domain) = s.split_once('@').expect("an @");
                prop_assert!(!local.is_empty() && domain.contains('.') && !domain.contains('@'));
                prop_assert!(!s.chars().any(|c| c.is_whitespace() || c.is_control() || c == ':'));
                // Parsing is idempotent.
                prop_assert_eq!(Email::parse(s).ok(), Some(email.clone()));
            }
        }

        #[test]
        fn email_keeps_real_addresses(local in "[a-z0-9._%+-]{1,40}", domain in "[a-z0-9-]{1,30}\\.[a-z]{2,10}", pad in " {0,3}") {
            let raw = format!("{pad}{}@{}{pad}", local.to_uppercase(), domain);
            let email = Email::parse(&raw).expect("a plain address parses");
            prop_assert_eq!(email.as_str(), format!("{local}@{domain}"));
        }

        #[test]
        fn password_is_about_length_only(raw in any::<String>()) {
            let n = raw.chars().count();
            prop_assert_eq!(Password::parse(&raw).is_ok(), (PASSWORD_MIN_CHARS..=PASSWORD_MAX_CHARS).contains(&n));
        }

        #[test]
        fn name_is_trimmed_bounded_and_printable(raw in any::<String>()) {
            if let Ok(name) = PersonName::parse(&raw) {
                let s = name.as_str();
                prop_assert_eq!(s, s.trim());
                prop_assert!(!s.is_empty() && s.chars().count() <= NAME_MAX_CHARS);
                prop_assert!(!s.chars().any(char::is_control));
            }
        }

        #[test]
        fn totp_code_is_six_digits_with_optional_separators(raw in any::<String>()) {
            if let Ok(code) = TotpCode::parse(&raw) {
                prop_assert_eq!(code.as_str().len(), 6);
                prop_assert!(code.as_str().bytes().all(|b| b.is_ascii_digit()));
            }
        }

        #[test]
        fn totp_code_as_apps_show_it(n in 0u32..1_000_000, sep in prop::sample::select(vec!["", " ", "-", "\u{a0}"])) {
            let digits = format!("{n:06}");
            let shown = format!("{}{sep}{}", &digits[..3], &digits[3..]);
            let code = TotpCode::parse(&shown).expect("parses");
            prop_assert_eq!(code.as_str(), digits.as_str());
        }

        #[test]
        fn recovery_codes_round_trip_in_any_case(raw in "[abcdefghjkmnpqrstuvwxyz23456789]{12}", upper in any::<bool>()) {
            let code = RecoveryCode::parse(&raw).expect("parses");
            let shown = if upper { code.display().to_uppercase() } else { code.display() };
            prop_assert_eq!(RecoveryCode::parse(&shown).expect("shown form parses"), code);
        }

        #[test]
        fn recovery_code_parse_never_panics(raw in any::<String>()) {
            if let Ok(code) = RecoveryCode::parse(&raw) {
                prop_assert_eq!(code.as_str().len(), RECOVERY_CODE_CHARS);
            }
        }

        #[test]
        fn grouping_a_secret_keeps_its_characters(raw in "[A-Z2-7]{0,64}") {
            prop_assert_eq!(group_secret(&raw).split_whitespace().collect::<String>(), raw);
        }
    }
}
