//! What people type to be known by, checked where only the server can
//! afford the Unicode tables: emails and names that would print like
//! another account's, and passwords that are easy to guess.
//!
//! - An email is NFKC-normalised (full-width `ａｎｎ` is `ann`), may hold no
//!   invisible or direction-changing character, and each part (the local
//!   part and every domain label) must be written in one script, so
//!   `аnn@example.com` with a Cyrillic `а` is refused rather than becoming a
//!   second "ann".
//! - A name is NFC-normalised and may hold no direction override or
//!   invisible character (the joiners that some scripts and emoji need
//!   stay allowed).
//! - A new password is NFC-normalised before hashing, so the same password
//!   typed on two keyboards is one password, and must not be easy to guess
//!   (zxcvbn score 3 of 4, with the email and name as known words).

use std::borrow::Cow;

use unicode_normalization::UnicodeNormalization;
use unicode_security::MixedScript;

use super::request::RequestMeta;
use super::state::AppState;
use crate::domain::{ParseError, Password};
use crate::error::AppError;

/// Bidirectional formatting characters: they reorder what is shown.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Unicode's Default_Ignorable_Code_Point: characters drawn as nothing
/// (soft hyphen, zero-width space and joiners, word joiner, variation
/// selectors, byte-order mark, tags, Hangul fillers...).
fn is_default_ignorable(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}'..='\u{1160}' | '\u{17B4}'..='\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}'
        | '\u{FFF0}'..='\u{FFF8}' | '\u{1BCA0}'..='\u{1BCA3}' | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0000}'..='\u{E0FFF}')
}

/// Joiners and selectors that names in some scripts, and emoji, need.
fn is_joiner_or_selector(c: char) -> bool {
    matches!(c, '\u{200C}' | '\u{200D}' | '\u{FE00}'..='\u{FE0F}')
}

const INVISIBLE: &str = "The address contains invisible or direction-changing characters.";
const MIXED: &str = "The address mixes letters from different alphabets. Type it in one alphabet.";

/// The canonical form of an email (already trimmed, lower-cased and
/// shaped like an address), or why it is refused.
pub fn email(email: &str) -> Result<String, ParseError> {
    if email.is_ascii() {
        return Ok(email.to_owned());
    }
    if email.chars().any(|c| is_default_ignorable(c) || is_bidi_control(c)) {
        return Err(ParseError(INVISIBLE));
    }
    // NFKC can make capitals (full-width 'Ａ') and new ignorables never
    // appear from it, so lower-case once more after it.
    let normal: String = email.nfkc().collect::<String>().to_lowercase();
    let Some((local, domain)) = normal.rsplit_once('@') else {
        return Err(ParseError("That does not look like an email address."));
    };
    if local.contains('@') || normal.chars().any(|c| c.is_whitespace() || c.is_control()) {
        // A compatibility character turned into '@' or a space.
        return Err(ParseError("That does not look like an email address."));
    }
    let parts = std::iter::once(local).chain(domain.split('.'));
    for part in parts {
        let letters: String = part.chars().filter(|c| !matches!(c, '.' | '-' | '_' | '+')).collect();
        if !letters.is_empty() && !letters.as_str().is_single_script() {
            return Err(ParseError(MIXED));
        }
    }
    Ok(normal)
}

/// The canonical form of a display name (already trimmed, no control
/// characters), or why it is refused.
pub fn name(name: &str) -> Result<String, ParseError> {
    if name.chars().any(|c| is_bidi_control(c) || (is_default_ignorable(c) && !is_joiner_or_selector(c))) {
        return Err(ParseError("The name contains invisible or direction-changing characters."));
    }
    Ok(name.nfc().collect())
}

/// The form of a password that is hashed: NFC, so "é" typed as one
/// character or as "e" plus an accent is the same password.
pub fn password_form(password: &str) -> Cow<'_, str> {
    if unicode_normalization::is_nfc(password) { Cow::Borrowed(password) } else { Cow::Owned(password.nfc().collect()) }
}

/// Lowest zxcvbn score a new password needs: 3 means it resists about
/// 10^10 guesses, an offline attack on a leaked slow hash.
const MIN_SCORE: zxcvbn::Score = zxcvbn::Score::Three;
/// How much of a new password the scorer sees. zxcvbn's l33t matcher tries
/// every reading of characters like `1 | 7 4 @ $ 0 ( {` as letters, and
/// its work grows steeply with length once a password holds many different
/// ones. The slowest inputs a search found (release build, this project's
/// 2-core machine, CPU time on a busy machine): 7 ms at 16 characters,
/// 22 ms at 20, 60 ms at 32, 250 ms at 64 (the old bound); but 9.5 ms at
/// 64 characters holding no more than 6 different l33t characters, and
/// an 87-character passphrase costs 3 ms. So the scorer sees the first 16
/// characters, and goes on up to 64 while the part it sees holds at most
/// 6 different l33t characters: about 10 ms at worst, in the hashing
/// queue like an argon2 verification (26 ms). Scoring a
/// prefix accepts nothing weak (a guesser must find the whole password,
/// prefix included); it may refuse a long one that starts weakly.
pub const SCORED_CHARS: usize = 64;
const ALWAYS_SCORED: usize = 16;
const MAX_L33T_KINDS: usize = 6;
/// The characters zxcvbn 3's l33t table reads as letters.
const L33T_CHARS: &str = "4@8({[<369!|1057$+%2";

/// The part of `password` that is scored (see `SCORED_CHARS`).
fn scored_part(password: &str) -> &str {
    let mut kinds: Vec<char> = Vec::new();
    for (n, (at, c)) in password.char_indices().enumerate() {
        if n == SCORED_CHARS {
            return &password[..at];
        }
        if L33T_CHARS.contains(c) && !kinds.contains(&c) {
            kinds.push(c);
        }
        if n >= ALWAYS_SCORED && kinds.len() > MAX_L33T_KINDS {
            return &password[..at];
        }
    }
    password
}

/// Refuses a new password that is easy to guess, saying why. `known` are
/// words an attacker would try first: the email and the name.
pub fn check_strength(password: &str, known: &[&str]) -> Result<(), String> {
    let scored = scored_part(password);
    let mut words: Vec<&str> = Vec::new();
    for k in known {
        words.push(k);
        words.extend(k.split(|c: char| !c.is_alphanumeric()).filter(|w| w.chars().count() >= 3));
    }
    let estimate = zxcvbn::zxcvbn(scored, &words);
    if estimate.score() >= MIN_SCORE {
        return Ok(());
    }
    let mut message = String::from("This password is too easy to guess.");
    if let Some(feedback) = estimate.feedback() {
        if let Some(warning) = feedback.warning() {
            message.push(' ');
            message.push_str(&warning.to_string());
        }
        if let Some(suggestion) = feedback.suggestions().first() {
            message.push(' ');
            message.push_str(&suggestion.to_string());
        }
    }
    if !message.contains("words") {
        message.push_str(" A few unrelated words make a strong one.");
    }
    Err(message)
}

/// A new password that is easy to guess is refused, with the reason on
/// its field. The scorer runs on a hashing thread, queued with the hashes
/// (503 when the queue is full): callers check their limits first.
pub(super) async fn refuse_weak_password(
    state: &AppState,
    password: &Password,
    field: &str,
    known: &[&str],
) -> Result<(), AppError> {
    state.hasher.check_strength(password.expose(), known).await?.map_err(|why| {
        let mut e = AppError::bad_request(&why);
        e.fields.insert(field.into(), why);
        e
    })
}

/// A sign-up refused for another field: says now if the password is weak
/// too, rather than after that field is fixed. The scorer is the costly
/// part, so it runs on a sign-up's terms: only while sign-up is open, each
/// try counted against the address like a sign-up, in the hashing queue.
/// Past any of them the answer names the other fields only.
pub async fn weak_password_too(
    state: &AppState,
    meta: &RequestMeta,
    mut refused: AppError,
    email: &str,
    name: &str,
    password: &str,
) -> AppError {
    if !state.gate.signup_open || refused.fields.contains_key("password") {
        return refused;
    }
    let Ok(password) = Password::parse(password) else { return refused };
    if super::throttle::reserve_registration(state, meta).await.is_err() {
        return refused;
    }
    if let Ok(Err(why)) = state.hasher.check_strength(password.expose(), &[email.trim(), name.trim()]).await {
        refused.fields.insert("password".into(), why);
    }
    refused
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_emails_pass_unchanged() {
        assert_eq!(email("ann.lee+tag@example.com").unwrap(), "ann.lee+tag@example.com");
    }

    #[test]
    fn invisible_and_bidi_characters_are_refused() {
        for bad in [
            "an\u{200B}n@example.com",
            "an\u{00AD}n@example.com",
            "ann\u{202E}moc@example.com",
            "ann@exa\u{2060}mple.com",
            "\u{FEFF}ann@example.com",
            "ann\u{200D}@example.com",
            "ann\u{E0041}@example.com",
        ] {
            assert_eq!(email(bad), Err(ParseError(INVISIBLE)), "{bad:?}");
        }
    }

    #[test]
    fn compatibility_forms_fold_into_one_account() {
        assert_eq!(email("ａｎｎ@example.com").unwrap(), "ann@example.com");
        assert_eq!(email("ＡＮＮ@example.com").unwrap(), "ann@example.com");
        assert_eq!(email("ﬁona@example.com").unwrap(), "fiona@example.com");
        // Composed and decomposed accents are one address.
        assert_eq!(email("rene\u{301}@example.com").unwrap(), email("ren\u{e9}@example.com").unwrap());
        // A full-width '@' becomes a second '@'.
        assert!(email("ann＠evil@example.com").is_err());
    }

    #[test]
    fn mixed_scripts_are_refused_single_scripts_pass() {
        // Cyrillic 'а' (U+0430) among Latin letters.
        assert_eq!(email("\u{430}nn@example.com"), Err(ParseError(MIXED)));
        assert_eq!(email("ann@ex\u{430}mple.com"), Err(ParseError(MIXED)));
        // Greek omicron in a Latin domain label.
        assert_eq!(email("ann@g\u{3bf}\u{3bf}gle.com"), Err(ParseError(MIXED)));
        // One script each is fine, even different ones per part.
        assert_eq!(email("jürgen@example.com").unwrap(), "jürgen@example.com");
        assert_eq!(email("иван@пример.рф").unwrap(), "иван@пример.рф");
        assert_eq!(email("иван@example.com").unwrap(), "иван@example.com");
        assert_eq!(email("山田たろう@example.jp").unwrap(), "山田たろう@example.jp", "Han with Hiragana is Japanese");
        assert_eq!(email("ann.lee-2@example.com").unwrap(), "ann.lee-2@example.com");
    }

    #[test]
    fn names_refuse_overrides_but_keep_joiners() {
        assert!(name("Ann\u{202E}eeL").is_err());
        assert!(name("An\u{200B}n").is_err());
        assert!(name("Ann\u{2066}Lee").is_err());
        assert_eq!(name("Ren\u{65}\u{301}").unwrap(), "Ren\u{e9}");
        assert_eq!(name("می\u{200C}خواهم").unwrap(), "می\u{200C}خواهم", "ZWNJ is part of Persian spelling");
        assert!(name("Ann 👩\u{200D}💻").is_ok(), "emoji sequences use ZWJ");
        assert_eq!(name("Ann Lee").unwrap(), "Ann Lee");
    }

    #[test]
    fn passwords_hash_in_nfc() {
        assert_eq!(password_form("caf\u{65}\u{301} au lait 12"), "caf\u{e9} au lait 12");
        assert!(matches!(password_form("plain ascii password"), Cow::Borrowed(_)));
    }

    #[test]
    fn the_scorer_sees_a_bounded_part() {
        // Many different l33t characters: the first 16 only.
        let crafted = "[$g%{!gt$1{3@1657ctt0l+450e1zcis<{la287!3$!0x7s|9<oa10ob[2<6to((";
        assert_eq!(scored_part(crafted), &crafted[..16]);
        // Few: up to 64 characters, known words whole.
        assert_eq!(scored_part("annabel.lee@example.com"), "annabel.lee@example.com");
        let long = "velvet otter juggles quietly ".repeat(4);
        assert_eq!(scored_part(&long).chars().count(), 64);
        // The 7th kind past the 16th character ends the part before it.
        let p = "abcdefghijklmnop4@8({[<xyz";
        assert_eq!(scored_part(p), "abcdefghijklmnop4@8({[");
        assert_eq!(scored_part(&"ñ".repeat(70)), "ñ".repeat(64), "multi-byte characters cut cleanly");
    }

    #[test]
    fn weak_passwords_are_refused_with_a_reason() {
        for weak in
            ["            ", "password1234", "qwertyuiopasdf", "aaaaaaaaaaaaaaaa", "123456789012", "iloveyou2024!"]
        {
            let err = check_strength(weak, &[]).expect_err(weak);
            assert!(err.starts_with("This password is too easy to guess."), "{err}");
            assert!(err.len() > "This password is too easy to guess.".len() + 10, "says why: {err}");
        }
        // The account's own email and name count as known words.
        let known = ["annabel.lee@example.com", "Annabel Lee"];
        for own in ["annabel.lee@example.com", "annabel lee 1234", "Annabel Lee!!!!"] {
            assert!(check_strength(own, &known).is_err(), "{own}");
            assert!(check_strength("velvet otter juggles quietly", &known).is_ok());
        }
        for strong in ["correct horse battery staple", "velvet otter juggles quietly", "Tr0ub4dor&3-plus-more-words"] {
            assert_eq!(check_strength(strong, &["ann@example.com", "Ann"]), Ok(()), "{strong}");
        }
    }
}
