//! The path a rule is matched against: the request's path as the app
//! behind the proxy will read it, or `None` when nobody could say.

/// What never appears unencoded in the path of a request a browser sends
/// (the WHATWG path percent-encode set, and the backslash browsers turn
/// into a slash).
const NEVER_RAW_IN_A_PATH: &[u8] = b"# \"<>`{}\\";

/// The path a rule is matched against: what the app behind the proxy will
/// most likely serve for `raw` (without its query). Percent-escapes of
/// unreserved characters are decoded, `;params` are dropped from each
/// segment, empty, `.` and `..` segments are resolved, so `/%61dmin`,
/// `//admin`, `/./admin` and `/x/../admin` all match `^/admin`. A path
/// with an encoded slash, backslash or NUL, a raw backslash, a control
/// character or a broken escape gives `None`: no rule could say what it
/// means, and the gate refuses it. So does one with a character a browser
/// always percent-encodes in a path (`#`, space, `"`, `<`, `>`, `` ` ``,
/// `{`, `}`): only a hand-made request carries one, and proxies read them
/// differently (nginx resolves `/public#/../admin` to `/admin`, while the
/// rest of the URL after `#` would be a fragment to anyone else).
pub fn normalize_path(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut decoded = String::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = raw.get(i + 1..i + 3)?;
            let value = u8::from_str_radix(hex, 16).ok()?;
            if matches!(value, b'/' | b'\\' | 0) {
                return None;
            }
            if value.is_ascii_alphanumeric() || matches!(value, b'-' | b'.' | b'_' | b'~') {
                decoded.push(char::from(value));
            } else {
                decoded.push('%');
                decoded.push_str(&hex.to_ascii_uppercase());
            }
            i += 3;
            continue;
        }
        if b.is_ascii_control() || NEVER_RAW_IN_A_PATH.contains(&b) {
            return None;
        }
        // Multi-byte characters pass through whole.
        let ch = raw[i..].chars().next()?;
        decoded.push(ch);
        i += ch.len_utf8();
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        let segment = segment.split(';').next().unwrap_or("");
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let trailing = decoded.ends_with('/') || decoded.ends_with("/.") || decoded.ends_with("/..");
    let mut path = format!("/{}", segments.join("/"));
    if trailing && path != "/" {
        path.push('/');
    }
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_matched_as_the_app_will_read_them() {
        for (raw, normal) in [
            ("/", "/"),
            ("", "/"),
            ("/admin", "/admin"),
            ("/%61dmin", "/admin"),
            ("/%41dmin/x", "/Admin/x"),
            ("//admin", "/admin"),
            ("/./admin", "/admin"),
            ("/x/../admin", "/admin"),
            ("/../../admin", "/admin"),
            ("/;x/admin", "/admin"),
            ("/admin;jsessionid=1/users", "/admin/users"),
            ("/admin/", "/admin/"),
            ("/admin/.", "/admin/"),
            ("/notes%20and%3Fmore", "/notes%20and%3Fmore"),
            ("/caf\u{e9}", "/caf\u{e9}"),
        ] {
            assert_eq!(normalize_path(raw).as_deref(), Some(normal), "{raw:?}");
        }
        for bad in ["/admin%2Fusers", "/%2e%2e%2fadmin", "/a%5cb", "/a\\b", "/a%00", "/a%", "/a%zz", "/a\nb"] {
            assert_eq!(normalize_path(bad), None, "{bad:?}");
        }
        // What only a hand-made request carries unencoded.
        for bad in ["/public#/../admin", "/a b", "/a\"b", "/a<b>", "/a`b", "/a{b}", "/a\tb", "/a\u{7f}"] {
            assert_eq!(normalize_path(bad), None, "{bad:?}");
        }
        // What browsers do send as it is.
        for fine in ["/a|b", "/a^b", "/a[b]", "/a!$&'()*+,=:@b", "/a%23b"] {
            assert_eq!(normalize_path(fine).as_deref(), Some(fine), "{fine:?}");
        }
    }
}
