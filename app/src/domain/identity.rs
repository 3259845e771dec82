//! The identity rules only the server can afford (the Unicode tables stay
//! out of the browser's WebAssembly): emails and names that would print
//! like another account's, and the one form of a password that is hashed.
//! See `server::identity` for the password-strength rule built on them.

use std::borrow::Cow;

use unicode_normalization::UnicodeNormalization;
use unicode_security::MixedScript;

use super::ParseError;

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
}
