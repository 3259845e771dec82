//! Where a log-in may send the browser back to (`rd`).

use super::hosts::{is_host_name, is_under};

/// Longest `rd` honoured.
pub const MAX_RD_CHARS: usize = 2048;

/// The URL a log-in may return to: `https` (or `http` when cookies may go
/// over plain http), a host equal to or under one of the cookie domains
/// (on whole labels), no userinfo, no backslash, no encoded slash or
/// backslash, no control characters, at most 2,048 characters. Anything
/// else gives `None` and the log-in goes home.
pub fn safe_return_url(rd: &str, cookie_domains: &[String], allow_http: bool) -> Option<String> {
    if rd.len() > MAX_RD_CHARS || rd.chars().any(|c| c.is_control() || c.is_whitespace() || c == '\\') {
        return None;
    }
    let lower = rd.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") {
        return None;
    }
    let rest = match lower.split_once("://") {
        Some(("https", rest)) => rest,
        Some(("http", rest)) if allow_http => rest,
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && port.len() <= 5 => host,
        Some(_) => return None,
        None => authority,
    };
    if !is_host_name(host) || !cookie_domains.iter().any(|d| is_under(host, d)) {
        return None;
    }
    Some(rd.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_urls_must_stay_under_the_cookie_domains() {
        let domains = vec!["example.com".to_owned(), "example.org".to_owned()];
        let ok = |rd: &str| safe_return_url(rd, &domains, false);
        assert_eq!(
            ok("https://wiki.example.com/page?x=1#top").as_deref(),
            Some("https://wiki.example.com/page?x=1#top")
        );
        assert!(ok("https://example.com/").is_some());
        assert!(ok("https://a.b.example.org:8443/x").is_some());
        for bad in [
            "https://evil.test/",
            "//evil.test/",
            "/relative/path",
            "https://example.com.evil.test/",
            "https://evil-example.com/",
            "https://user:pw@wiki.example.com/",
            "https://wiki.example.com@evil.test/",
            "https://wiki.example.com\\@evil.test/",
            "https:\\\\evil.test",
            "https://wiki.example.com/%2F%2Fevil.test",
            "https://wiki.example.com/%5cevil",
            "http://wiki.example.com/",
            "javascript:alert(1)",
            "https://wiki.example.com:99999999/",
            "https://wiki.example.com/\nSet-Cookie: x",
            "",
        ] {
            assert_eq!(ok(bad), None, "{bad:?}");
        }
        let long = format!("https://wiki.example.com/{}", "a".repeat(MAX_RD_CHARS));
        assert_eq!(ok(&long), None);
        assert!(safe_return_url("http://wiki.example.com/", &domains, true).is_some());
    }
}
