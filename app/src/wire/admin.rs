//! What the admin page's server functions send and take (`/api/admin/…`).

use serde::{Deserialize, Serialize};

use super::LogInView;

/// People on one page of the list.
pub const PEOPLE_PER_PAGE: i64 = 50;

/// A page of the people list (GET /api/admin/people).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeoplePage {
    pub people: Vec<PersonLine>,
    /// How many match the search in all.
    pub total: i64,
    /// From 1.
    pub page: i64,
    pub pages: i64,
}

/// One person in the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PersonLine {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub groups: Vec<String>,
    pub two_factor: bool,
    pub email_verified: bool,
    pub locked: bool,
    /// When the account was made, in the administrator's time zone.
    pub created_when: String,
    /// The latest log-in's start ("never" when none).
    pub last_log_in_when: String,
}

/// Everything the admin page shows of one person (GET /api/admin/person).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PersonView {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub groups: Vec<String>,
    /// An authenticator app is on.
    pub app: bool,
    pub passkeys: Vec<AdminPasskey>,
    pub recovery_codes_left: i64,
    pub email_verified: bool,
    pub locked: bool,
    /// A member of the administrators' group.
    pub admin: bool,
    /// That group's name (`ADMIN_GROUP`).
    pub admin_group: String,
    /// The administrator looking is this person.
    pub is_you: bool,
    /// The administrator's log-in is older than 5 minutes: a change needs
    /// a code from their app (or their password) with it.
    pub needs_proof: bool,
    /// Live log-ins; `id` is the handle "end-log-in" takes.
    pub log_ins: Vec<LogInView>,
    /// Browsers that skip the second factor ("forget-browsers" forgets
    /// them all).
    #[serde(default)]
    pub remembered: Vec<crate::wire::RememberedBrowserView>,
    pub activity: Vec<AdminEvent>,
    /// The changes to the whole account this administrator may make now,
    /// in the order the page shows them.
    pub offers: Vec<Offer>,
}

/// A change the page offers, in the server's words (they are not shipped
/// in the browser's code).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    /// What `admin/act` takes as `action`.
    pub action: String,
    /// The button.
    pub label: String,
    /// What it does, above the button ("" when the label says it all).
    pub note: String,
    /// It takes something away: drawn as a warning.
    pub danger: bool,
    /// A box the administrator must fill in as the argument (the email
    /// address, to delete): its label, or "" for none.
    pub confirm: String,
}

impl Offer {
    pub fn new(action: &str, label: &str, note: &str, danger: bool) -> Self {
        Offer { action: action.into(), label: label.into(), note: note.into(), danger, confirm: String::new() }
    }
}

/// One of the person's passkeys: `id` is what "remove-passkey" takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminPasskey {
    pub id: String,
    pub name: String,
}

/// One event of the person's audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminEvent {
    pub label: String,
    pub when: String,
    pub ip: Option<String>,
    pub browser: String,
    /// The administrator who did it, if one did.
    pub by: Option<String>,
}

/// Events on one page of the audit trail.
pub const EVENTS_PER_PAGE: i64 = 50;

/// The audit trail's filters, as typed (GET /api/admin/activity, and the
/// CSV at /admin/activity.csv). Empty: not filtered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ActivityFilter {
    /// Part of the person's email address.
    pub person: String,
    /// An event kind (`log_in_failed`).
    pub kind: String,
    /// First day, YYYY-MM-DD, in the administrator's time zone.
    pub from: String,
    /// Last day, included.
    pub to: String,
    /// A client address or its start ("10.0.").
    pub ip: String,
}

/// A page of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivityPage {
    pub events: Vec<ActivityLine>,
    pub total: i64,
    pub page: i64,
    pub pages: i64,
    /// Every kind of event, for the filter: (kind, words).
    pub kinds: Vec<(String, String)>,
    /// The zone the dates and times are in ("UTC" when the administrator's
    /// is not known).
    pub time_zone: String,
}

/// One event of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivityLine {
    pub label: String,
    pub when: String,
    /// The account's address (None: a deleted account, or a failed log-in
    /// to an address without one).
    pub person: Option<String>,
    pub person_id: Option<i64>,
    /// The event is about no account (an app, an invitation): no person
    /// to name.
    #[serde(default)]
    pub about_no_account: bool,
    /// The administrator who did it, if one did.
    pub by: Option<String>,
    pub ip: Option<String>,
    pub browser: String,
}

/// What an administrator does to a person's account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminAction {
    /// Ends one log-in, by the handle the person's page lists.
    EndLogIn(String),
    /// Ends every log-in.
    EndAllLogIns,
    /// Vouches for the email address.
    ConfirmEmail,
    /// Removes the app, every passkey and the recovery codes; every
    /// log-in ends (for someone who lost their phone).
    ResetFactors,
    AddGroup(String),
    RemoveGroup(String),
    /// Removes one passkey (a lost or stolen key), by its id.
    RemovePasskey(String),
    /// Ends every log-in and refuses log-in until unlocked here or a
    /// password reset by mail.
    Lock,
    Unlock,
    /// Mails a password-reset link to the account's address.
    SendReset,
    /// Deletes the account; the argument is its email address, typed
    /// again to confirm.
    Delete(String),
    /// Forgets every remembered browser: each asks for a second factor
    /// at its next log-in.
    ForgetBrowsers,
}

impl AdminAction {
    /// From the form's or the request's `action` and its argument.
    pub fn parse(action: &str, argument: &str) -> Option<Self> {
        let argument = argument.trim();
        Some(match action {
            "end-log-in" if !argument.is_empty() => AdminAction::EndLogIn(argument.to_owned()),
            "end-all-log-ins" => AdminAction::EndAllLogIns,
            "confirm-email" => AdminAction::ConfirmEmail,
            "reset-factors" => AdminAction::ResetFactors,
            "add-group" if !argument.is_empty() => AdminAction::AddGroup(argument.to_owned()),
            "remove-group" if !argument.is_empty() => AdminAction::RemoveGroup(argument.to_owned()),
            "remove-passkey" if !argument.is_empty() => AdminAction::RemovePasskey(argument.to_owned()),
            "lock" => AdminAction::Lock,
            "unlock" => AdminAction::Unlock,
            "send-reset" => AdminAction::SendReset,
            "forget-browsers" => AdminAction::ForgetBrowsers,
            "delete" => AdminAction::Delete(argument.to_owned()),
            _ => return None,
        })
    }
}

/// The groups (GET /api/admin/groups).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupsView {
    pub groups: Vec<GroupLine>,
    /// `ADMIN_GROUP`: neither renamed nor deleted on the page.
    pub admin_group: String,
    /// A change needs a code from the administrator's app.
    pub needs_proof: bool,
}

/// One group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupLine {
    pub name: String,
    pub members: i64,
    /// Members with two factors on.
    pub two_factor: i64,
    /// What names it besides its members ("ACCESS_RULES", "the app Wiki").
    pub named_by: Vec<String>,
    /// Its deadline for two factors, in words ("" for none).
    #[serde(default)]
    pub deadline: String,
}

/// A change to a group (POST /api/admin/group).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupAction {
    /// A new group, with its first member (an email address).
    Create {
        name: String,
        member: String,
    },
    Rename {
        from: String,
        to: String,
    },
    /// Everyone leaves it.
    Delete {
        name: String,
    },
    /// Its members must have two factors on by the end of `by`
    /// (YYYY-MM-DD, in the administrator's zone); someone joining later
    /// gets `grace_days` from the day they join.
    Deadline {
        name: String,
        by: String,
        grace_days: i64,
    },
    NoDeadline {
        name: String,
    },
}

/// The grace a member who joins after a group's deadline gets by default,
/// and at most (days).
pub const GRACE_DAYS: (i64, i64) = (14, 365);

impl GroupAction {
    /// From `action` (create, rename, delete, deadline, no-deadline), the
    /// group's `name`, the `argument` (the first member's address; the new
    /// name; the deadline's date) and `days` (a deadline's grace, empty for
    /// the default).
    pub fn parse(action: &str, name: &str, argument: &str, days: &str) -> Option<Self> {
        let (name, argument) = (name.trim().to_owned(), argument.trim().to_owned());
        Some(match action {
            "create" if !argument.is_empty() => GroupAction::Create { name, member: argument },
            "rename" => GroupAction::Rename { from: name, to: argument },
            "delete" => GroupAction::Delete { name },
            "deadline" => GroupAction::Deadline {
                name,
                by: argument,
                grace_days: match days.trim() {
                    "" => GRACE_DAYS.0,
                    d => d.parse().ok()?,
                },
            },
            "no-deadline" => GroupAction::NoDeadline { name },
            _ => return None,
        })
    }
}

/// The invitations (GET /api/admin/invitations), newest first, and what a
/// new one may offer. The words come from the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvitationsView {
    pub invitations: Vec<InvitationLine>,
    /// The groups a new invitation may put someone in (every group but
    /// `ADMIN_GROUP`: administrators are made one by one).
    pub groups: Vec<String>,
    /// What sign-up is like here, and what an invitation changes.
    pub note: String,
    pub needs_proof: bool,
}

/// One invitation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvitationLine {
    pub id: i64,
    /// "For ann@example.com" or "For any address".
    pub who: String,
    /// What became of it, or until when it works.
    pub state: String,
    /// Who made it and when; the groups it gives.
    pub made: String,
    /// Not used, revoked or expired: it may be revoked.
    pub live: bool,
}

/// A change to the invitations (POST /api/admin/invitation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvitationAction {
    /// A new invitation: bound to `email` (or to any address when empty),
    /// into `groups`, working `days` days; `mail` sends its link to
    /// `email`, else the link is shown once.
    Create {
        email: String,
        groups: Vec<String>,
        days: i64,
        mail: bool,
    },
    Revoke {
        id: i64,
    },
}

/// How long a new invitation works by default, and at most (days).
pub const INVITATION_DAYS: (i64, i64) = (7, 30);

impl InvitationAction {
    /// From `action` (create, revoke) and the form's fields: `email`,
    /// `groups`, `days` (empty: the default), `mail`; `id` to revoke.
    pub fn parse(action: &str, email: &str, groups: Vec<String>, days: &str, mail: bool, id: &str) -> Option<Self> {
        Some(match action {
            "create" => InvitationAction::Create {
                email: email.trim().to_owned(),
                groups: groups.into_iter().map(|g| g.trim().to_owned()).filter(|g| !g.is_empty()).collect(),
                days: match days.trim() {
                    "" => INVITATION_DAYS.0,
                    d => d.parse().ok()?,
                },
                mail,
            },
            "revoke" => InvitationAction::Revoke { id: id.trim().parse().ok()? },
            _ => return None,
        })
    }
}

/// The OpenID apps (GET /api/admin/apps), oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppsView {
    pub apps: Vec<AppLine>,
    /// Every group, for "only for members of".
    pub groups: Vec<String>,
    /// Where apps find the portal: its issuer and discovery address.
    pub issuer: String,
    pub discovery: String,
    pub needs_proof: bool,
}

/// One app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppLine {
    /// Its client id.
    pub id: String,
    pub settings: AppSettings,
    /// Its policy and secrets in the server's words.
    pub facts: Vec<String>,
    /// A previous secret still works (after a new one was made).
    pub old_secret: bool,
}

/// What an administrator sets for an app (POST /api/admin/app's `app`).
/// Missing fields take the defaults: confidential, consent asked, two
/// factors required, PKCE optional (public apps: always required).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AppSettings {
    pub name: String,
    /// Where the app may be sent back after a sign-in, compared exactly.
    pub redirect_uris: Vec<String>,
    /// Where it may be sent after a log-out it started.
    pub post_logout_redirect_uris: Vec<String>,
    /// Its back-channel log-out address (empty: none).
    pub backchannel_logout_uri: String,
    /// No secret (an app in a browser or on a phone): PKCE instead. Set
    /// when it is added; it cannot change.
    pub public: bool,
    /// Only members of these groups may use it (empty: everyone).
    pub groups: Vec<String>,
    /// Ask the person before their first sign-in to it.
    pub consent: bool,
    pub pkce_required: bool,
    /// Only log-ins with two factors.
    pub two_factor: bool,
    /// With two factors: a remembered browser will do for the second.
    pub remembered: bool,
    /// With two factors: the second shown within this long ("15m", "12h";
    /// empty: at any time).
    pub fresh: String,
    /// With two factors: address ranges ("192.168.1.0/24") from which the
    /// password alone will do (empty: none).
    pub one_factor_networks: Vec<String>,
}

impl Default for AppSettings {
    fn default() -> Self {
        Self {
            name: String::new(),
            redirect_uris: Vec::new(),
            post_logout_redirect_uris: Vec::new(),
            backchannel_logout_uri: String::new(),
            public: false,
            groups: Vec::new(),
            consent: true,
            pkce_required: false,
            two_factor: true,
            remembered: true,
            fresh: String::new(),
            one_factor_networks: Vec::new(),
        }
    }
}

impl AppSettings {
    /// From a posted form's fields (`get` one, `all` of a repeated one):
    /// `name`, `redirect-uris` and `logout-uris` (one a line),
    /// `backchannel-uri`, `groups`, `fresh`, `networks` (separated by
    /// commas or spaces), and the boxes `public`,
    /// `consent`, `pkce`, `two-factor`, `remembered` (ticked: "on").
    pub fn from_form(get: impl Fn(&str) -> String, all: impl Fn(&str) -> Vec<String>) -> Self {
        let on = |field: &str| get(field) == "on";
        Self {
            name: get("name"),
            redirect_uris: lines(&get("redirect-uris")),
            post_logout_redirect_uris: lines(&get("logout-uris")),
            backchannel_logout_uri: get("backchannel-uri"),
            public: on("public"),
            groups: all("groups"),
            consent: on("consent"),
            pkce_required: on("pkce"),
            two_factor: on("two-factor"),
            remembered: on("remembered"),
            fresh: get("fresh").trim().to_owned(),
            one_factor_networks: get("networks")
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|r| !r.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }
}

/// The non-empty lines of a text area, trimmed.
pub fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

/// A change to the apps (POST /api/admin/app).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppAction {
    Create(AppSettings),
    Change {
        id: String,
        settings: AppSettings,
    },
    /// A new secret, shown once; the old one works until `RemoveOldSecret`.
    RotateSecret {
        id: String,
    },
    RemoveOldSecret {
        id: String,
    },
    /// Removes the app; `confirm` must be its name, typed.
    Remove {
        id: String,
        confirm: String,
    },
}

impl AppAction {
    /// From `action` (create, change, rotate-secret, remove-old-secret,
    /// remove) and its fields.
    pub fn parse(action: &str, id: String, settings: AppSettings, confirm: String) -> Option<Self> {
        Some(match action {
            "create" => AppAction::Create(settings),
            "change" => AppAction::Change { id, settings },
            "rotate-secret" => AppAction::RotateSecret { id },
            "remove-old-secret" => AppAction::RemoveOldSecret { id },
            "remove" => AppAction::Remove { id, confirm },
            _ => return None,
        })
    }
}

/// The admin page's overview (GET /api/admin/overview): sections of facts
/// in the server's words (the page draws them as they come, so the words
/// are not shipped in the browser's code).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overview {
    pub sections: Vec<FactSection>,
    /// "Version 0.1.0 on SQLite."
    pub running: String,
}

/// A heading and its facts: (what, how many).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactSection {
    pub title: String,
    pub facts: Vec<(String, String)>,
}

/// The gate's access rules, and what they answer for a URL
/// (GET /api/admin/rules).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RulesView {
    /// Each rule in one line, in the order they are tried.
    pub rules: Vec<String>,
    /// The policy when no rule matches.
    pub default: String,
    /// For the URL asked about: someone not logged in, then the person
    /// with the password alone and with two factors.
    pub answers: Vec<RuleAnswer>,
}

/// What the gate answers one kind of visitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleAnswer {
    pub who: String,
    /// "passes", "is refused (403)", …
    pub answer: String,
    /// "rule 2", or "the default".
    pub rule: String,
}

/// Group names as access rules name them: 1 to 64 letters, digits, `-`,
/// `_` or `.`.
pub fn valid_group(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_apps_form_reads_one_address_a_line_and_its_boxes() {
        let form = |f: &str| {
            match f {
                "name" => " Grafana ",
                "redirect-uris" => " https://a.example/cb \r\n\r\nhttps://b.example/cb\n",
                "consent" | "two-factor" => "on",
                _ => "",
            }
            .to_owned()
        };
        let s = AppSettings::from_form(form, |_| vec!["staff".into()]);
        assert_eq!(s.redirect_uris, ["https://a.example/cb", "https://b.example/cb"]);
        assert!(s.post_logout_redirect_uris.is_empty());
        assert_eq!((s.consent, s.two_factor, s.public, s.pkce_required), (true, true, false, false));
        assert_eq!(s.groups, ["staff"]);
        assert_eq!(AppAction::parse("launch", String::new(), s.clone(), String::new()), None);
        assert_eq!(
            AppAction::parse("remove", "id1".into(), s, "Grafana".into()),
            Some(AppAction::Remove { id: "id1".into(), confirm: "Grafana".into() })
        );
        // An API client that leaves the policy out gets the safe defaults.
        let d: AppSettings = serde_json::from_str(r#"{"name":"X"}"#).unwrap();
        assert!(d.consent && d.two_factor && !d.public);
    }

    #[test]
    fn invitation_actions_parse_their_fields_and_refuse_anything_else() {
        let groups = vec![" staff ".to_owned(), "".to_owned()];
        assert_eq!(
            InvitationAction::parse("create", " a@b.example ", groups, "", true, ""),
            Some(InvitationAction::Create {
                email: "a@b.example".into(),
                groups: vec!["staff".into()],
                days: INVITATION_DAYS.0,
                mail: true
            })
        );
        assert_eq!(InvitationAction::parse("create", "", vec![], "x", false, ""), None);
        assert_eq!(
            InvitationAction::parse("revoke", "", vec![], "", false, " 12 "),
            Some(InvitationAction::Revoke { id: 12 })
        );
        assert_eq!(InvitationAction::parse("revoke", "", vec![], "", false, ""), None);
        assert_eq!(InvitationAction::parse("accept", "", vec![], "", false, "1"), None);
    }

    #[test]
    fn actions_parse_with_their_argument_and_refuse_anything_else() {
        assert_eq!(AdminAction::parse("end-log-in", " ab "), Some(AdminAction::EndLogIn("ab".into())));
        assert_eq!(AdminAction::parse("end-log-in", ""), None);
        assert_eq!(AdminAction::parse("reset-factors", ""), Some(AdminAction::ResetFactors));
        assert_eq!(AdminAction::parse("add-group", "staff"), Some(AdminAction::AddGroup("staff".into())));
        assert_eq!(AdminAction::parse("delete-everything", ""), None);
        // An empty confirmation is the server's to refuse, with a reason.
        assert_eq!(AdminAction::parse("delete", ""), Some(AdminAction::Delete(String::new())));
    }

    #[test]
    fn group_names_are_those_rules_can_name() {
        assert!(valid_group("staff.eu-1_a"));
        assert!(!valid_group(""));
        assert!(!valid_group("a b"));
        assert!(!valid_group(&"a".repeat(65)));
    }
}
