//! The gate's access rules on the admin page: read-only (they live in
//! `ACCESS_RULES`), with "who may reach this URL?": the URL and a person
//! go through the same path normalisation and rule engine as the gate's
//! own decisions, for that person logged in with the password alone and
//! with two factors, and for someone not logged in.

use crate::error::AppError;
use crate::server::auth::FullSession;
use crate::server::gate::{Decision, Subject, Target, normalize_path};
use crate::server::state::AppState;
use crate::wire::admin::{RuleAnswer, RulesView};

use super::require_admin;

fn words(decision: Decision) -> &'static str {
    match decision {
        Decision::Allow => "passes",
        Decision::LogIn => "is sent to log in",
        Decision::SecondFactor => "is asked for a second factor",
        Decision::UnverifiedEmail => "is asked to confirm their email address",
        Decision::Forbidden => "is refused (403)",
    }
}

/// The rules, and when `url` is given, what the gate answers for it
/// (`method`, default GET) and `person` (an email address; none: only
/// someone not logged in is tried), asked from the address `from` (none:
/// an unknown address, which no `networks` rule matches).
pub async fn rules(
    state: &AppState,
    session: &FullSession,
    url: &str,
    method: &str,
    person: &str,
    from: &str,
) -> Result<RulesView, AppError> {
    require_admin(state, session).await?;
    let rules = &state.gate.rules;
    let (described, default) = rules.describe();
    let mut view = RulesView { rules: described, default, answers: Vec::new() };
    let url = url.trim();
    if url.is_empty() {
        return Ok(view);
    }
    let uri: http::Uri =
        url.parse().map_err(|_| AppError::bad_request("Type a whole address: https://wiki.example.com/page"))?;
    let (Some(host), Some(scheme)) = (uri.host(), uri.scheme_str()) else {
        return Err(AppError::bad_request("Type a whole address, with https:// and the host."));
    };
    if scheme != "https" && scheme != "http" {
        return Err(AppError::bad_request("The address must start with https:// (or http://)."));
    }
    let path = normalize_path(uri.path()).ok_or_else(|| {
        AppError::bad_request("The gate refuses this path: it carries an encoded slash or a broken %-escape.")
    })?;
    let method = match method.trim().to_ascii_uppercase() {
        m if m.is_empty() => "GET".to_owned(),
        m if m.len() <= 16 && m.bytes().all(|b| b.is_ascii_uppercase()) => m,
        _ => return Err(AppError::bad_request("A method is a word such as GET or POST.")),
    };
    let client = match from.trim() {
        "" => None,
        typed => Some(typed.parse::<std::net::IpAddr>().map_err(|_| {
            AppError::bad_request("The client's address is an IPv4 or IPv6 address, such as 192.168.1.20.")
        })?),
    };
    let target = Target { method: &method, host, path: &path, client };
    let rule_words = |i: Option<usize>| i.map_or_else(|| "the default".to_owned(), |i| format!("rule {}", i + 1));
    let (decision, rule) = rules.decide_why(&target, None);
    view.answers.push(RuleAnswer {
        who: "Someone not logged in".into(),
        answer: words(decision).into(),
        rule: rule_words(rule),
    });
    let person = person.trim().to_lowercase();
    if !person.is_empty() {
        let user = state
            .db
            .user_by_email(&person)
            .await?
            .ok_or_else(|| AppError::bad_request(format!("There is no account with the address {person}.")))?;
        let groups = state.db.groups_of(user.id).await?;
        // Past a group's deadline, the password alone is sent to enrol, as
        // the gate does.
        let overdue = state.db.two_factor_due(user.id).await?.is_some_and(|due| due <= state.now());
        let ways = [
            (false, None, "with the password alone"),
            (true, Some(0), "with two factors"),
            (true, None, "with two factors, a remembered browser standing in for the second"),
        ];
        let shown = if state.remember_seconds > 0 { &ways[..] } else { &ways[..2] };
        for &(two_factor, factor_age, who) in shown {
            let subject = Subject {
                user_id: user.id,
                email: &user.email,
                groups: &groups,
                two_factor,
                email_verified: user.email_verified_at.is_some(),
                overdue: overdue && !two_factor,
                factor_age,
            };
            let (decision, rule) = rules.decide_why(&target, Some(&subject));
            view.answers.push(RuleAnswer {
                who: format!("{} {who}", user.email),
                answer: words(decision).into(),
                rule: rule_words(rule),
            });
        }
    }
    Ok(view)
}
