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

use super::request::RequestMeta;
use super::state::AppState;
use crate::domain::Password;
use crate::error::AppError;

pub use crate::domain::identity::{email, name, password_form};

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
    state.hasher.check_strength(password.expose(), known).await?.map_err(|why| AppError::field(field, why))
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
