//! The gate in front of other apps: who may reach which URL (the access
//! rules), where a log-in may send the browser back to (`rd`), and which
//! peers may tell us what the original request was (trusted proxies).
//! Pure functions; the endpoints are in `authz`.

pub mod cache;

use std::net::IpAddr;

use regex::{Regex, RegexBuilder};
use serde::Deserialize;

/// What a rule demands of a request it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Anyone, logged in or not.
    Bypass,
    /// Any full session.
    OneFactor,
    /// A full session reached with a second factor.
    TwoFactor,
    /// Nobody.
    Deny,
}

/// A host pattern: exact, or `*.example.com` for any name under it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Domain {
    Exact(String),
    Under(String),
}

impl Domain {
    fn parse(raw: &str) -> Result<Self, String> {
        let lower = raw.trim().to_ascii_lowercase();
        let (wild, name) = match lower.strip_prefix("*.") {
            Some(rest) => (true, rest.to_owned()),
            None => (false, lower),
        };
        if !is_host_name(&name) {
            return Err(format!("{raw:?} is not a host name (or *.host.name)"));
        }
        Ok(if wild { Domain::Under(name) } else { Domain::Exact(name) })
    }

    fn matches(&self, host: &str) -> bool {
        match self {
            Domain::Exact(name) => host == name,
            Domain::Under(parent) => host.len() > parent.len() + 1 && is_under(host, parent),
        }
    }
}

/// Letters, digits, hyphens and dots, in labels of 1 to 63 characters.
fn is_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// `host` is `parent` or a name under it, compared on whole labels:
/// `evil-example.com` is not under `example.com`.
pub fn is_under(host: &str, parent: &str) -> bool {
    host == parent || host.strip_suffix(parent).is_some_and(|head| head.ends_with('.'))
}

#[derive(Debug, Clone)]
pub struct Rule {
    domains: Vec<Domain>,
    /// Matched without regard to case unless the rule sets
    /// `case_sensitive = true`: many apps serve `/ADMIN` as `/admin`.
    path: Option<Regex>,
    methods: Option<Vec<String>>,
    users: Option<Vec<String>>,
    groups: Option<Vec<String>>,
    /// Only a person who confirmed their email address passes.
    require_verified_email: bool,
    pub policy: Policy,
    /// Where the rule starts in the file, for messages.
    pub line: usize,
}

/// The rules file's shape.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    rules: Vec<toml::Spanned<RawRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    domain: OneOrMany,
    path: Option<String>,
    methods: Option<Vec<String>>,
    users: Option<Vec<String>>,
    groups: Option<Vec<String>>,
    #[serde(default)]
    case_sensitive: bool,
    #[serde(default)]
    require_verified_email: bool,
    policy: Policy,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// The request a decision is about.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    pub method: &'a str,
    pub host: &'a str,
    pub path: &'a str,
}

/// Who is asking, when a gate cookie names a live session.
#[derive(Debug, Clone)]
pub struct Subject<'a> {
    pub user_id: i64,
    pub email: &'a str,
    pub groups: &'a [String],
    /// The session was reached with a second factor.
    pub two_factor: bool,
    /// The person confirmed the email address (a mailed link).
    pub email_verified: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Not logged in (or the rule may apply once we know who it is).
    LogIn,
    /// Logged in with the password only where two factors are required.
    SecondFactor,
    /// Logged in, but the rule wants a confirmed email address.
    UnverifiedEmail,
    Forbidden,
}

const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"];

#[derive(Debug, Clone)]
pub struct Rules {
    rules: Vec<Rule>,
    /// Without a rules file every host needs two factors; with one, a
    /// request no rule matches is denied.
    default: Policy,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|b| *b == b'\n').count() + 1
}

impl Rules {
    /// No rules file: every host under the cookie domains needs two factors.
    pub fn two_factor_everywhere() -> Self {
        Self { rules: Vec::new(), default: Policy::TwoFactor }
    }

    /// Parses an `ACCESS_RULES` file. Errors name the line.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: RulesFile = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(0);
            format!("line {line}: {}", e.message())
        })?;
        let mut rules = Vec::with_capacity(file.rules.len());
        for spanned in file.rules {
            let line = line_of(text, spanned.span().start);
            let raw = spanned.into_inner();
            let fail = |what: String| format!("line {line}: {what}");
            let domains = match raw.domain {
                OneOrMany::One(d) => vec![d],
                OneOrMany::Many(ds) => ds,
            };
            if domains.is_empty() {
                return Err(fail("domain must name at least one host".into()));
            }
            let domains = domains.iter().map(|d| Domain::parse(d)).collect::<Result<Vec<_>, _>>().map_err(fail)?;
            let path = raw
                .path
                .map(|p| {
                    RegexBuilder::new(&p)
                        .case_insensitive(!raw.case_sensitive)
                        .build()
                        .map_err(|e| fail(format!("path is not a valid regular expression: {e}")))
                })
                .transpose()?;
            let methods = raw
                .methods
                .map(|ms| {
                    ms.into_iter()
                        .map(|m| {
                            let upper = m.to_ascii_uppercase();
                            if METHODS.contains(&upper.as_str()) {
                                Ok(upper)
                            } else {
                                Err(fail(format!("{m:?} is not an HTTP method")))
                            }
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
                .transpose()?;
            if raw.policy == Policy::Bypass && (raw.users.is_some() || raw.groups.is_some()) {
                return Err(fail(
                    "a bypass rule cannot name users or groups (it applies before anyone logs in)".into(),
                ));
            }
            if raw.policy == Policy::Bypass && raw.require_verified_email {
                return Err(fail(
                    "a bypass rule cannot require a verified email (it lets in people who are not logged in)".into(),
                ));
            }
            let users = raw.users.map(|us| us.into_iter().map(|u| u.trim().to_lowercase()).collect());
            rules.push(Rule {
                domains,
                path,
                methods,
                users,
                groups: raw.groups,
                require_verified_email: raw.require_verified_email,
                policy: raw.policy,
                line,
            });
        }
        Ok(Self { rules, default: Policy::Deny })
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The first rule matching the request (and the person, when it names
    /// users or groups) decides. A rule naming users or groups cannot be
    /// judged for someone not logged in: they are asked to log in.
    pub fn decide(&self, target: &Target<'_>, subject: Option<&Subject<'_>>) -> Decision {
        let host = target.host.to_ascii_lowercase();
        for rule in &self.rules {
            if !rule.domains.iter().any(|d| d.matches(&host))
                || rule.path.as_ref().is_some_and(|re| !re.is_match(target.path))
                || rule.methods.as_ref().is_some_and(|ms| !ms.iter().any(|m| m.eq_ignore_ascii_case(target.method)))
            {
                continue;
            }
            if rule.users.is_some() || rule.groups.is_some() {
                let Some(who) = subject else { return Decision::LogIn };
                let by_user = rule.users.as_ref().is_some_and(|us| us.iter().any(|u| u == who.email));
                let by_group =
                    rule.groups.as_ref().is_some_and(|gs| gs.iter().any(|g| who.groups.iter().any(|h| h == g)));
                if !(by_user || by_group) {
                    continue;
                }
            }
            return apply(rule.policy, rule.require_verified_email, subject);
        }
        apply(self.default, false, subject)
    }
}

fn apply(policy: Policy, require_verified_email: bool, subject: Option<&Subject<'_>>) -> Decision {
    match (policy, subject) {
        (Policy::Bypass, _) => Decision::Allow,
        (Policy::Deny, _) => Decision::Forbidden,
        (_, None) => Decision::LogIn,
        (_, Some(who)) if require_verified_email && !who.email_verified => Decision::UnverifiedEmail,
        (Policy::OneFactor, Some(_)) => Decision::Allow,
        (Policy::TwoFactor, Some(who)) if who.two_factor => Decision::Allow,
        (Policy::TwoFactor, Some(_)) => Decision::SecondFactor,
    }
}

// ---------------------------------------------------------------- paths

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

// ---------------------------------------------------------------- rd

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

// ---------------------------------------------------------------- trusted proxies

/// An address range: `10.0.0.0/8`, `::1`, `192.0.2.7`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let (addr, prefix) = match raw.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (raw, None),
        };
        let network: IpAddr = addr.parse().map_err(|_| format!("{raw:?} is not an address or address/prefix"))?;
        if let IpAddr::V6(v6) = network
            && v6.to_ipv4_mapped().is_some()
        {
            // Peers are compared as IPv4 once unmapped; such a range would
            // never match.
            return Err(format!("{raw:?}: write an IPv4-mapped range as IPv4 (e.g. 10.0.0.0/8)"));
        }
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => {
                p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| format!("{raw:?}: bad prefix length"))?
            }
        };
        Ok(Self { network, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(self.prefix)) };
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = if self.prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(self.prefix)) };
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }

    /// Loopback, the default: a proxy on the same machine.
    pub fn loopback() -> Vec<Self> {
        vec![
            Self { network: IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 0)), prefix: 8 },
            Self { network: IpAddr::V6(std::net::Ipv6Addr::LOCALHOST), prefix: 128 },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target<'a>(method: &'a str, host: &'a str, path: &'a str) -> Target<'a> {
        Target { method, host, path }
    }

    fn who<'a>(email: &'a str, groups: &'a [String], two_factor: bool) -> Subject<'a> {
        Subject { user_id: 1, email, groups, two_factor, email_verified: true }
    }

    const EXAMPLE: &str = r#"
[[rules]]
domain = "wiki.example.com"
policy = "bypass"

[[rules]]
domain = "*.example.com"
path = "^/admin"
groups = ["admins"]
policy = "two_factor"

[[rules]]
domain = "*.example.com"
path = "^/admin"
policy = "deny"

[[rules]]
domain = ["media.example.com", "tv.example.com"]
methods = ["GET", "head"]
policy = "one_factor"

[[rules]]
domain = "*.example.com"
policy = "two_factor"
"#;

    #[test]
    fn the_first_matching_rule_decides() {
        let rules = Rules::parse(EXAMPLE).unwrap();
        assert_eq!(rules.len(), 5);
        let admins = vec!["admins".to_owned()];
        let none: Vec<String> = Vec::new();
        let ann = who("ann@example.com", &admins, true);
        let bob = who("bob@example.com", &none, true);
        let pw_only = who("cy@example.com", &none, false);
        assert_eq!(rules.decide(&target("GET", "wiki.example.com", "/admin"), None), Decision::Allow);
        assert_eq!(rules.decide(&target("GET", "app.example.com", "/admin/x"), None), Decision::LogIn);
        assert_eq!(rules.decide(&target("GET", "app.example.com", "/admin/x"), Some(&ann)), Decision::Allow);
        assert_eq!(rules.decide(&target("GET", "app.example.com", "/admin/x"), Some(&bob)), Decision::Forbidden);
        assert_eq!(rules.decide(&target("GET", "media.example.com", "/"), Some(&pw_only)), Decision::Allow);
        assert_eq!(rules.decide(&target("POST", "media.example.com", "/"), Some(&pw_only)), Decision::SecondFactor);
        assert_eq!(rules.decide(&target("GET", "APP.Example.com", "/"), Some(&bob)), Decision::Allow);
        assert_eq!(rules.decide(&target("GET", "app.example.com", "/"), None), Decision::LogIn);
        // No rule for the host: denied.
        assert_eq!(rules.decide(&target("GET", "example.org", "/"), Some(&ann)), Decision::Forbidden);
        // A wildcard needs a label before the parent.
        assert_eq!(rules.decide(&target("GET", "example.com", "/"), Some(&ann)), Decision::Forbidden);
        assert_eq!(rules.decide(&target("GET", "evilexample.com", "/"), Some(&ann)), Decision::Forbidden);
    }

    #[test]
    fn without_a_file_everything_needs_two_factors() {
        let rules = Rules::two_factor_everywhere();
        let none: Vec<String> = Vec::new();
        assert_eq!(rules.decide(&target("GET", "a.example.com", "/"), None), Decision::LogIn);
        assert_eq!(
            rules.decide(&target("GET", "a.example.com", "/"), Some(&who("x@y.z", &none, false))),
            Decision::SecondFactor
        );
        assert_eq!(
            rules.decide(&target("GET", "a.example.com", "/"), Some(&who("x@y.z", &none, true))),
            Decision::Allow
        );
    }

    #[test]
    fn users_match_by_email() {
        let rules = Rules::parse(
            "[[rules]]\ndomain = \"a.example.com\"\nusers = [\"Ann@Example.com\"]\npolicy = \"one_factor\"\n",
        )
        .unwrap();
        let none: Vec<String> = Vec::new();
        assert_eq!(
            rules.decide(&target("GET", "a.example.com", "/"), Some(&who("ann@example.com", &none, false))),
            Decision::Allow
        );
        assert_eq!(
            rules.decide(&target("GET", "a.example.com", "/"), Some(&who("bob@example.com", &none, true))),
            Decision::Forbidden
        );
    }

    #[test]
    fn a_malformed_file_names_the_line() {
        let cases = [
            ("[[rules]]\ndomain = \"a.example.com\"\npolicy = \"maybe\"\n", "line 3"),
            (
                "[[rules]]\ndomain = \"a.example.com\"\npolicy = \"bypass\"\n\n[[rules]]\ndomain = \"b..com\"\npolicy = \"deny\"\n",
                "line 5",
            ),
            ("[[rules]]\ndomain = \"a.example.com\"\npath = \"^/(unclosed\"\npolicy = \"deny\"\n", "line 1"),
            ("[[rules]]\ndomain = \"a.example.com\"\npolicy = \"deny\"\ncolour = \"red\"\n", "line 4"),
            ("[[rules]]\ndomain = \"a.example.com\"\nmethods = [\"FETCH\"]\npolicy = \"deny\"\n", "line 1"),
            ("[[rules]]\ndomain = \"a.example.com\"\ngroups = [\"x\"]\npolicy = \"bypass\"\n", "line 1"),
            ("[[rules]\ndomain = 1\n", "line 1"),
        ];
        for (text, line) in cases {
            let err = Rules::parse(text).expect_err(text);
            assert!(err.starts_with(line), "{text:?}: {err}");
        }
    }

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
        let rules = Rules::parse(EXAMPLE).unwrap();
        let none: Vec<String> = Vec::new();
        let bob = who("bob@example.com", &none, true);
        for sneaky in ["/%61dmin", "//admin", "/./admin", "/x/../admin", "/;x/admin"] {
            let path = normalize_path(sneaky).unwrap();
            assert_eq!(
                rules.decide(&target("GET", "app.example.com", &path), Some(&bob)),
                Decision::Forbidden,
                "{sneaky}"
            );
        }
    }

    #[test]
    fn paths_match_in_any_case_unless_the_rule_says_otherwise() {
        let rules = Rules::parse(
            r#"
[[rules]]
domain = "a.example.com"
path = "^/admin"
policy = "deny"

[[rules]]
domain = "a.example.com"
path = "^/Reports/"
case_sensitive = true
policy = "deny"

[[rules]]
domain = "a.example.com"
path = "^/public"
policy = "bypass"

[[rules]]
domain = "a.example.com"
policy = "one_factor"
"#,
        )
        .unwrap();
        let none: Vec<String> = Vec::new();
        let bob = who("bob@example.com", &none, true);
        let decide = |path: &str, who: Option<&Subject<'_>>| rules.decide(&target("GET", "a.example.com", path), who);
        for denied in ["/admin", "/ADMIN", "/Admin/x", "/aDMIN", "/Reports/q1"] {
            assert_eq!(decide(denied, Some(&bob)), Decision::Forbidden, "{denied}");
        }
        for allowed in ["/reports/q1", "/REPORTS/q1", "/notes"] {
            assert_eq!(decide(allowed, Some(&bob)), Decision::Allow, "{allowed}");
        }
        assert_eq!(decide("/PUBLIC/x", None), Decision::Allow);
        // The normalised path of a sneaky spelling, in any case.
        let path = normalize_path("/x/../%41dMiN").unwrap();
        assert_eq!(decide(&path, Some(&bob)), Decision::Forbidden);
    }

    #[test]
    fn a_rule_may_require_a_confirmed_email_address() {
        let rules = Rules::parse(
            "[[rules]]\ndomain = \"mail.example.com\"\nrequire_verified_email = true\npolicy = \"two_factor\"\n\n\
             [[rules]]\ndomain = \"*.example.com\"\npolicy = \"one_factor\"\n",
        )
        .unwrap();
        let none: Vec<String> = Vec::new();
        let confirmed = who("ann@example.com", &none, true);
        let unconfirmed = Subject { email_verified: false, ..who("eve@example.com", &none, true) };
        let password_only = Subject { email_verified: false, two_factor: false, ..who("cy@example.com", &none, true) };
        let mail = target("GET", "mail.example.com", "/");
        assert_eq!(rules.decide(&mail, Some(&confirmed)), Decision::Allow);
        assert_eq!(rules.decide(&mail, Some(&unconfirmed)), Decision::UnverifiedEmail);
        assert_eq!(rules.decide(&mail, Some(&password_only)), Decision::UnverifiedEmail);
        assert_eq!(rules.decide(&mail, None), Decision::LogIn);
        // Other rules do not ask.
        assert_eq!(rules.decide(&target("GET", "wiki.example.com", "/"), Some(&unconfirmed)), Decision::Allow);
        // A bypass rule lets in people nobody knows: it cannot ask.
        let err =
            Rules::parse("[[rules]]\ndomain = \"a.example.com\"\nrequire_verified_email = true\npolicy = \"bypass\"\n")
                .unwrap_err();
        assert!(err.starts_with("line 1") && err.contains("verified email"), "{err}");
        // A value that is not a boolean names its line.
        let err = Rules::parse("[[rules]]\ndomain = \"a.example.com\"\ncase_sensitive = \"yes\"\npolicy = \"deny\"\n")
            .unwrap_err();
        assert!(err.starts_with("line 3"), "{err}");
    }

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

    #[test]
    fn address_ranges() {
        let lan = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(lan.contains("10.1.2.3".parse().unwrap()));
        assert!(!lan.contains("11.0.0.1".parse().unwrap()));
        assert!(lan.contains("::ffff:10.9.9.9".parse().unwrap()), "v4-mapped");
        let one = Cidr::parse("192.0.2.7").unwrap();
        assert!(one.contains("192.0.2.7".parse().unwrap()));
        assert!(!one.contains("192.0.2.8".parse().unwrap()));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:1::1".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains("8.8.8.8".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("example.com").is_err());
        assert!(Cidr::parse("::ffff:10.0.0.0/104").is_err(), "would never match");
        assert!(Cidr::loopback().iter().any(|c| c.contains("127.0.0.1".parse().unwrap())));
        assert!(Cidr::loopback().iter().any(|c| c.contains("::1".parse().unwrap())));
    }
}
