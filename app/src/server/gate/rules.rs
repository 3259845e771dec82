//! The access rules (`ACCESS_RULES`, or two factors everywhere without
//! one) and the decision they give for a request and the person asking:
//! the first rule that matches decides.

use regex::{Regex, RegexBuilder};
use serde::Deserialize;

use std::net::IpAddr;

use super::cidr::Cidr;
use super::hosts::Domain;

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

impl Policy {
    /// As the rules file spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Bypass => "bypass",
            Policy::OneFactor => "one_factor",
            Policy::TwoFactor => "two_factor",
            Policy::Deny => "deny",
        }
    }
}

impl Rule {
    /// The rule in one line: where, who, what it demands, and its line in
    /// the file.
    fn describe(&self) -> String {
        let domains: Vec<String> = self.domains.iter().map(Domain::to_string).collect();
        let mut parts = vec![domains.join(", ")];
        if let Some(path) = &self.path {
            parts.push(format!("path {}", path.as_str()));
        }
        if let Some(methods) = &self.methods {
            parts.push(methods.join(", "));
        }
        if let Some(users) = &self.users {
            parts.push(format!("users {}", users.join(", ")));
        }
        if let Some(groups) = &self.groups {
            parts.push(format!("groups {}", groups.join(", ")));
        }
        if self.require_verified_email {
            parts.push("confirmed address".to_owned());
        }
        if let Some(networks) = &self.networks {
            let ranges: Vec<String> = networks.iter().map(Cidr::to_string).collect();
            parts.push(format!("from {}", ranges.join(", ")));
        }
        match self.shown_within {
            Some(NOT_REMEMBERED) => parts.push("no remembered browser".to_owned()),
            Some(seconds) => parts.push(format!("second factor within {}", say_duration(seconds))),
            None => {}
        }
        parts.push(self.policy.as_str().to_owned());
        format!("{} (line {})", parts.join(" · "), self.line)
    }
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
    /// The rule applies only to clients inside one of these ranges (the
    /// client's address as `TRUSTED_PROXY_HEADER` carries it).
    networks: Option<Vec<Cidr>>,
    /// A second factor must have been shown in the log-in within this many
    /// seconds (`fresh`), or at all (`remembered = false`:
    /// `NOT_REMEMBERED`); a remembered browser is not one.
    shown_within: Option<i64>,
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
    networks: Option<Vec<String>>,
    fresh: Option<String>,
    remembered: Option<bool>,
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
    /// The client's address (None: unknown; no `networks` rule applies).
    pub client: Option<IpAddr>,
}

/// What `Remote-User` carries to the apps (`GATE_REMOTE_USER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RemoteUser {
    /// The account's number: stable, but shown as the user's name by apps
    /// that take the header as a login name.
    #[default]
    Id,
    /// The confirmed email address: what apps such as Grafana or Gitea
    /// can use as a login name. A person whose address is not confirmed
    /// is refused (an unconfirmed address could be anyone's).
    Email,
}

impl RemoteUser {
    pub fn parse(text: &str) -> Option<RemoteUser> {
        match text.trim().to_ascii_lowercase().as_str() {
            "id" => Some(RemoteUser::Id),
            "email" => Some(RemoteUser::Email),
            _ => None,
        }
    }
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
    /// A group of theirs wanted two factors on by now: without a second
    /// factor on this log-in, no rule but `bypass` lets them through.
    pub overdue: bool,
    /// Seconds since a second factor was last shown in this log-in (None:
    /// never; a remembered browser stood in for it, or there was none).
    pub factor_age: Option<i64>,
}

/// `shown_within` of `remembered = false`: shown at any time in the log-in.
const NOT_REMEMBERED: i64 = i64::MAX;

/// A duration as rules write it: a number and a unit, `s`, `m`, `h` or `d`
/// ("90s", "15m", "12h", "7d"); from 1 second to 366 days.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let unit = |c: char| match c {
        's' => Some(1),
        'm' => Some(60),
        'h' => Some(3600),
        'd' => Some(86_400),
        _ => None,
    };
    let problem = || format!("{text:?} is not a duration such as \"15m\" (a number, then s, m, h or d)");
    let last = text.chars().last().ok_or_else(problem)?;
    let scale = unit(last).ok_or_else(problem)?;
    let number: i64 = text[..text.len() - 1].parse().map_err(|_| problem())?;
    let seconds = number.checked_mul(scale).ok_or_else(problem)?;
    if !(1..=366 * 86_400).contains(&seconds) {
        return Err(format!("{text:?} is outside 1s to 366d"));
    }
    Ok(seconds)
}

/// Seconds in the largest unit that says them exactly: "15 minutes".
pub fn say_duration(seconds: i64) -> String {
    let (n, unit) = match seconds {
        s if s % 86_400 == 0 => (s / 86_400, "day"),
        s if s % 3600 == 0 => (s / 3600, "hour"),
        s if s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
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
    /// Some rule applies only to some networks: the gate must know each
    /// client's own address (`TRUSTED_PROXY_HEADER`).
    pub fn uses_networks(&self) -> bool {
        self.rules.iter().any(|r| r.networks.is_some())
    }

    /// Some rule names `group`.
    pub fn name_group(&self, group: &str) -> bool {
        self.rules.iter().any(|r| r.groups.as_ref().is_some_and(|gs| gs.iter().any(|g| g == group)))
    }

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
            let networks = raw
                .networks
                .map(|ns| {
                    if ns.is_empty() {
                        return Err(fail("networks must name at least one range (or leave it out)".into()));
                    }
                    ns.iter().map(|n| Cidr::parse(n).map_err(|e| fail(format!("networks: {e}")))).collect()
                })
                .transpose()?;
            let fresh =
                raw.fresh.as_deref().map(parse_duration).transpose().map_err(|e| fail(format!("fresh: {e}")))?;
            if (fresh.is_some() || raw.remembered.is_some()) && raw.policy != Policy::TwoFactor {
                return Err(fail(
                    "fresh and remembered say which second factor will do: they need policy = \"two_factor\"".into(),
                ));
            }
            let shown_within = match (fresh, raw.remembered) {
                (Some(_), Some(true)) => {
                    return Err(fail("fresh already refuses a remembered browser: leave out remembered = true".into()));
                }
                (Some(seconds), _) => Some(seconds),
                (None, Some(false)) => Some(NOT_REMEMBERED),
                (None, _) => None,
            };
            let users = raw.users.map(|us| us.into_iter().map(|u| u.trim().to_lowercase()).collect());
            rules.push(Rule {
                domains,
                path,
                methods,
                users,
                groups: raw.groups,
                require_verified_email: raw.require_verified_email,
                networks,
                shown_within,
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
        self.decide_why(target, subject).0
    }

    /// `decide`, and which rule decided (its index; None: the default).
    pub fn decide_why(&self, target: &Target<'_>, subject: Option<&Subject<'_>>) -> (Decision, Option<usize>) {
        let host = target.host.to_ascii_lowercase();
        for (i, rule) in self.rules.iter().enumerate() {
            if !rule.domains.iter().any(|d| d.matches(&host))
                || rule.path.as_ref().is_some_and(|re| !re.is_match(target.path))
                || rule.methods.as_ref().is_some_and(|ms| !ms.iter().any(|m| m.eq_ignore_ascii_case(target.method)))
                || rule
                    .networks
                    .as_ref()
                    .is_some_and(|ns| !target.client.is_some_and(|ip| ns.iter().any(|n| n.contains(ip))))
            {
                continue;
            }
            if rule.users.is_some() || rule.groups.is_some() {
                let Some(who) = subject else { return (Decision::LogIn, Some(i)) };
                let by_user = rule.users.as_ref().is_some_and(|us| us.iter().any(|u| u == who.email));
                let by_group =
                    rule.groups.as_ref().is_some_and(|gs| gs.iter().any(|g| who.groups.iter().any(|h| h == g)));
                if !(by_user || by_group) {
                    continue;
                }
            }
            return (apply(rule.policy, rule.require_verified_email, rule.shown_within, subject), Some(i));
        }
        (apply(self.default, false, None, subject), None)
    }

    /// Each rule in words, in order, and the default's.
    pub fn describe(&self) -> (Vec<String>, String) {
        let rules = self.rules.iter().map(Rule::describe).collect();
        (rules, self.default.as_str().to_owned())
    }
}

fn apply(
    policy: Policy,
    require_verified_email: bool,
    shown_within: Option<i64>,
    subject: Option<&Subject<'_>>,
) -> Decision {
    let shown_enough =
        |who: &Subject<'_>| shown_within.is_none_or(|limit| who.factor_age.is_some_and(|age| age <= limit));
    match (policy, subject) {
        (Policy::Bypass, _) => Decision::Allow,
        (Policy::Deny, _) => Decision::Forbidden,
        (_, None) => Decision::LogIn,
        (_, Some(who)) if require_verified_email && !who.email_verified => Decision::UnverifiedEmail,
        (_, Some(who)) if who.overdue && !who.two_factor => Decision::SecondFactor,
        (Policy::OneFactor, Some(_)) => Decision::Allow,
        (Policy::TwoFactor, Some(who)) if who.two_factor && shown_enough(who) => Decision::Allow,
        (Policy::TwoFactor, Some(_)) => Decision::SecondFactor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::gate::normalize_path;

    fn target<'a>(method: &'a str, host: &'a str, path: &'a str) -> Target<'a> {
        Target { method, host, path, client: None }
    }

    fn who<'a>(email: &'a str, groups: &'a [String], two_factor: bool) -> Subject<'a> {
        Subject {
            user_id: 1,
            email,
            groups,
            two_factor,
            email_verified: true,
            overdue: false,
            factor_age: two_factor.then_some(0),
        }
    }

    #[test]
    fn past_a_deadline_only_bypass_lets_a_log_in_without_a_second_factor_through() {
        let rules = Rules::parse(EXAMPLE).unwrap();
        let none: Vec<String> = vec![];
        let late = Subject { overdue: true, ..who("ann@example.com", &none, false) };
        let late_with_two = Subject { overdue: true, ..who("ann@example.com", &none, true) };
        assert_eq!(rules.decide(&target("GET", "media.example.com", "/"), Some(&late)), Decision::SecondFactor);
        assert_eq!(rules.decide(&target("GET", "media.example.com", "/"), Some(&late_with_two)), Decision::Allow);
        assert_eq!(rules.decide(&target("GET", "wiki.example.com", "/"), Some(&late)), Decision::Allow);
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
    fn sneaky_paths_meet_the_rules() {
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
    fn a_networks_rule_matches_only_clients_inside_its_ranges() {
        let rules = Rules::parse(
            "[[rules]]\ndomain = \"*.example.test\"\nnetworks = [\"10.0.0.0/8\", \"2001:db8::/32\"]\n\
             policy = \"bypass\"\n\n[[rules]]\ndomain = \"*.example.test\"\npolicy = \"deny\"\n",
        )
        .unwrap();
        assert!(rules.uses_networks());
        let from = |ip: Option<&str>| Target {
            method: "GET",
            host: "app.example.test",
            path: "/",
            client: ip.map(|i| i.parse().unwrap()),
        };
        for (ip, decision) in [
            (Some("10.1.2.3"), Decision::Allow),
            (Some("::ffff:10.1.2.3"), Decision::Allow),
            (Some("2001:db8::7"), Decision::Allow),
            (Some("11.0.0.1"), Decision::Forbidden),
            (None, Decision::Forbidden),
        ] {
            assert_eq!(rules.decide(&from(ip), None), decision, "{ip:?}");
        }
        assert!(rules.describe().0[0].contains("from 10.0.0.0/8, 2001:db8::/32"), "{:?}", rules.describe());
        for (text, words) in [
            ("networks = []", "at least one range"),
            ("networks = [\"10.0.0.0/33\"]", "bad prefix"),
            ("networks = [\"intranet\"]", "not an address"),
        ] {
            let err =
                Rules::parse(&format!("[[rules]]\ndomain = \"a.test\"\n{text}\npolicy = \"bypass\"\n")).unwrap_err();
            assert!(err.starts_with("line 1:") && err.contains(words), "{text}: {err}");
        }
        assert!(!Rules::parse(EXAMPLE).unwrap().uses_networks());
    }

    #[test]
    fn fresh_and_remembered_say_which_second_factor_will_do() {
        let rules = Rules::parse(
            "[[rules]]\ndomain = \"bank.test\"\nfresh = \"15m\"\npolicy = \"two_factor\"\n\n\
             [[rules]]\ndomain = \"admin.test\"\nremembered = false\npolicy = \"two_factor\"\n\n\
             [[rules]]\ndomain = \"wiki.test\"\npolicy = \"two_factor\"\n",
        )
        .unwrap();
        let at = |host| target("GET", host, "/");
        let none: Vec<String> = vec![];
        let shown = |age: Option<i64>| Subject { factor_age: age, ..who("ann@example.com", &none, true) };
        // A remembered browser: two factors, none shown in this log-in.
        let remembered = shown(None);
        for (host, age, decision) in [
            ("bank.test", Some(0), Decision::Allow),
            ("bank.test", Some(900), Decision::Allow),
            ("bank.test", Some(901), Decision::SecondFactor),
            ("bank.test", None, Decision::SecondFactor),
            ("admin.test", Some(86_400 * 30), Decision::Allow),
            ("admin.test", None, Decision::SecondFactor),
            ("wiki.test", None, Decision::Allow),
        ] {
            assert_eq!(rules.decide(&at(host), Some(&shown(age))), decision, "{host} {age:?}");
        }
        assert_eq!(rules.decide(&at("wiki.test"), Some(&remembered)), Decision::Allow);
        let password_only = Subject { two_factor: false, ..shown(None) };
        assert_eq!(rules.decide(&at("bank.test"), Some(&password_only)), Decision::SecondFactor);
        let (described, _) = rules.describe();
        assert!(described[0].contains("second factor within 15 minutes"), "{described:?}");
        assert!(described[1].contains("no remembered browser"), "{described:?}");
        for (text, words) in [
            ("fresh = \"15m\"\npolicy = \"one_factor\"", "need policy"),
            ("remembered = false\npolicy = \"bypass\"", "need policy"),
            ("fresh = \"15\"\npolicy = \"two_factor\"", "not a duration"),
            ("fresh = \"0m\"\npolicy = \"two_factor\"", "outside 1s to 366d"),
            ("fresh = \"400d\"\npolicy = \"two_factor\"", "outside 1s to 366d"),
            ("fresh = \"m\"\npolicy = \"two_factor\"", "not a duration"),
            ("fresh = \"1h\"\nremembered = true\npolicy = \"two_factor\"", "leave out remembered = true"),
            ("fresh = 15\npolicy = \"two_factor\"", "invalid type"),
        ] {
            let err = Rules::parse(&format!("[[rules]]\ndomain = \"a.test\"\n{text}\n")).unwrap_err();
            assert!(err.starts_with("line ") && err.contains(words), "{text}: {err}");
        }
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("12h"), Ok(43_200));
        assert_eq!(
            (say_duration(90), say_duration(3600), say_duration(86_400 * 2)),
            ("90 seconds".into(), "1 hour".into(), "2 days".into())
        );
    }
}
