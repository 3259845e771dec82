//! The apps that sign people in through the portal: registered by the
//! operator (`server oidc client …`), each with its exact redirect URIs,
//! its policy (groups, consent, PKCE, two factors) and, unless public, a
//! secret shown once and stored as SHA-256.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use super::OAuthError;
use crate::error::AppError;
use crate::server::audit;
use crate::server::crypto::{random_bytes, sha256_hex};
use crate::server::db::{ClientPolicy, ClientRow};
use crate::server::gate::{Cidr, say_duration};
use crate::server::request::RequestMeta;
use crate::server::state::AppState;
use crate::wire::AuditKind;
use crate::wire::admin::valid_group;

/// Longest redirect URI accepted.
const MAX_URI_CHARS: usize = 2000;
/// Redirect URIs (and addresses after log-out) one app may register.
const MAX_URIS: usize = 20;
/// The shortest `fresh`: showing the factor and coming back through the
/// authorize step (and a consent page) must fit in it, or the person would
/// be sent round again.
const MIN_FRESH: i64 = 60;
/// The longest `fresh` (as access rules allow).
const MAX_FRESH: i64 = 366 * 86_400;
/// One-factor networks one app may name.
const MAX_NETWORKS: usize = 20;

/// What `server oidc client add` asks for.
#[derive(Debug, Clone)]
pub struct NewClient {
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub backchannel_logout_uri: Option<String>,
    pub public: bool,
    pub groups: Vec<String>,
    /// Ask the person before the first sign-in to this app (the default).
    pub consent_ask: bool,
    /// PKCE required of a confidential client (public ones: always).
    pub pkce_required: bool,
    /// Tokens only for log-ins with two factors (the default).
    pub two_factor: bool,
    /// A remembered browser will do for the second factor (the default);
    /// false: the log-in must have shown one. Only with `two_factor`.
    pub remembered: bool,
    /// Seconds: a second factor shown at most that long before the app
    /// asks for a sign-in. Only with `two_factor`.
    pub fresh: Option<i64>,
    /// Address ranges ("192.168.1.0/24") from which the password alone
    /// will do. Only with `two_factor`.
    pub one_factor_networks: Vec<String>,
}

impl Default for NewClient {
    /// Nothing named, everything off but `remembered` (which only says a
    /// remembered browser is not refused).
    fn default() -> Self {
        Self {
            name: String::new(),
            redirect_uris: Vec::new(),
            post_logout_redirect_uris: Vec::new(),
            backchannel_logout_uri: None,
            public: false,
            groups: Vec::new(),
            consent_ask: false,
            pkce_required: false,
            two_factor: false,
            remembered: true,
            fresh: None,
            one_factor_networks: Vec::new(),
        }
    }
}

/// A client just registered: its id and, once, its secret.
#[derive(Debug, Clone)]
pub struct Created {
    pub id: String,
    pub secret: Option<String>,
}

/// An absolute `https` or `http` URI without a fragment, userinfo, spaces
/// or control characters: what an app can be sent back to.
pub fn check_uri(uri: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("{uri:?} is not a usable redirect URI: {why}"));
    if uri.is_empty() || uri.len() > MAX_URI_CHARS {
        return bad("empty or longer than 2000 characters");
    }
    if uri.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return bad("it contains spaces or control characters");
    }
    let Some((scheme, rest)) = uri.split_once("://") else { return bad("it must start with https:// or http://") };
    if !matches!(scheme, "https" | "http") {
        return bad("it must start with https:// or http://");
    }
    if uri.contains('#') {
        return bad("it must not have a fragment (#…)");
    }
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') {
        return bad("it needs a host and no user name");
    }
    Ok(())
}

fn new_secret() -> Result<String, AppError> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes::<32>()?))
}

/// Checks an app's settings; nothing is written. A refusal names the
/// field (as the API's JSON names it).
pub fn check(new: &NewClient) -> Result<(), AppError> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(AppError::field("name", "An app's name is 1 to 100 characters."));
    }
    if new.redirect_uris.is_empty() {
        return Err(AppError::field("redirectUris", "Give at least one redirect URI (where the app is sent back)."));
    }
    let lists: [(&str, &[String]); 2] =
        [("redirectUris", &new.redirect_uris), ("postLogoutRedirectUris", &new.post_logout_redirect_uris)];
    for (field, uris) in lists {
        if uris.len() > MAX_URIS {
            return Err(AppError::field(field, format!("{MAX_URIS} addresses at most.")));
        }
        for uri in uris {
            check_uri(uri).map_err(|why| AppError::field(field, why))?;
        }
    }
    if let Some(uri) = &new.backchannel_logout_uri {
        check_uri(uri).map_err(|why| AppError::field("backchannelLogoutUri", why))?;
    }
    if !new.two_factor && !new.one_factor_networks.is_empty() {
        return Err(AppError::field(
            "twoFactor",
            "Networks where the password alone will do are a setting for apps that want two factors elsewhere: \
             require two factors, or leave the networks empty.",
        ));
    }
    if new.one_factor_networks.len() > MAX_NETWORKS {
        return Err(AppError::field("oneFactorNetworks", format!("{MAX_NETWORKS} address ranges at most.")));
    }
    for range in &new.one_factor_networks {
        Cidr::parse(range)
            .map_err(|why| AppError::field("oneFactorNetworks", format!("{why} (write a range as 192.168.1.0/24).")))?;
    }
    if !new.two_factor && (!new.remembered || new.fresh.is_some()) {
        return Err(AppError::field(
            "twoFactor",
            "Which second factor will do is a setting for apps that want two factors: require them, or allow \
             remembered browsers and any age.",
        ));
    }
    if let Some(f) = new.fresh
        && !(MIN_FRESH..=MAX_FRESH).contains(&f)
    {
        return Err(AppError::field(
            "fresh",
            "A second factor's age is from 1 minute (the way to the app and back takes time) to 366 days.",
        ));
    }
    if let Some(g) = new.groups.iter().find(|g| !valid_group(g)) {
        return Err(AppError::field(
            "groups",
            format!("{g:?} is not a group name (1 to 64 letters, digits, '-', '_' or '.')."),
        ));
    }
    Ok(())
}

/// The row an app's settings make (its secrets and dates apart).
fn row(id: &str, new: &NewClient, secret_hash: Option<String>, now: i64) -> ClientRow {
    let public = secret_hash.is_none();
    ClientRow {
        id: id.to_owned(),
        name: new.name.trim().to_owned(),
        secret_hash,
        previous_secret_hash: None,
        redirect_uris: new.redirect_uris.join("\n"),
        post_logout_redirect_uris: new.post_logout_redirect_uris.join("\n"),
        backchannel_logout_uri: new.backchannel_logout_uri.clone(),
        allowed_groups: new.groups.join(","),
        consent: if new.consent_ask { "ask" } else { "skip" }.into(),
        pkce: if new.pkce_required || public { "required" } else { "optional" }.into(),
        two_factor: i64::from(new.two_factor),
        remembered: i64::from(new.remembered),
        fresh: new.fresh,
        // Written as parsed: " 10.0.0.0/8" is kept as "10.0.0.0/8", and
        // "192.168.1.7" as "192.168.1.7/32".
        one_factor_networks: new
            .one_factor_networks
            .iter()
            .filter_map(|r| Cidr::parse(r).ok())
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(","),
        created_at: now,
    }
}

/// "Grafana (client id …)": what an event about the app names.
fn about(name: &str, id: &str) -> String {
    format!("{name} (client id {id})")
}

/// Registers an app for `actor` (an administrator; `None`: the operator's
/// command), audited in the same transaction. Every URI is checked first;
/// nothing is stored when one is refused.
pub async fn add(
    state: &AppState,
    meta: &RequestMeta,
    actor: Option<i64>,
    new: &NewClient,
) -> Result<Created, AppError> {
    check(new)?;
    let id = URL_SAFE_NO_PAD.encode(random_bytes::<18>()?);
    let secret = if new.public { None } else { Some(new_secret()?) };
    let row = row(&id, new, secret.as_deref().map(|s| sha256_hex(s.as_bytes())), state.now());
    let mut tx = state.db.begin().await?;
    tx.insert_oidc_client(&row).await?;
    audit::record_about(state, &mut tx, actor, AuditKind::AppAdded, &about(&row.name, &id), meta).await?;
    tx.commit().await?;
    tracing::info!(client = %id, "OpenID app added");
    Ok(Created { id, secret })
}

/// What changing an app did: `None`, no such app.
pub struct Changed {
    /// Sign-ins ended because who may use the app was narrowed.
    pub ended: u64,
}

/// Replaces an app's settings (its kind, public or confidential, stays).
/// When the change narrows who may use it (other groups, or two factors
/// now required), its live sign-ins end with their tokens, so nobody keeps
/// access the new settings would not give; the apps' next sign-in asks
/// again under them.
pub async fn change(
    state: &AppState,
    meta: &RequestMeta,
    actor: Option<i64>,
    id: &str,
    new: &NewClient,
) -> Result<Option<Changed>, AppError> {
    check(new)?;
    let mut tx = state.db.begin().await?;
    let Some(old) = tx.lock_oidc_client(id).await? else { return Ok(None) };
    let mut updated = row(id, new, old.secret_hash.clone(), old.created_at);
    if old.is_public() {
        updated.pkce = "required".into();
    }
    // Narrower: some group that could use it no longer can (or "everyone"
    // became some groups), two factors became required, or a second
    // factor shown is now wanted where a remembered browser did (no longer
    // `remembered`, or a `fresh` where there was none: its sign-ins from
    // remembered browsers must not live on through refresh tokens). A
    // shorter `fresh` ends nothing: it is asked at each sign-in the app
    // starts, as `max_age` is. A network taken out of the one-factor
    // networks ends them too (a sign-in made there with the password
    // alone would otherwise be renewed).
    let narrowed = (updated.groups().next().is_some() && !old.groups().all(|g| updated.groups().any(|n| n == g)))
        || (updated.groups().next().is_some() && old.groups().next().is_none())
        || (updated.two_factor == 1 && old.two_factor == 0)
        || (updated.remembered == 0 && old.remembered == 1)
        || (updated.factor_shown_within().is_some() && old.factor_shown_within().is_none())
        || old.one_factor_networks().any(|r| !updated.one_factor_networks().any(|n| n == r));
    tx.update_oidc_client(&updated).await?;
    let ended = if narrowed { tx.revoke_client_grants(id, state.now()).await? } else { 0 };
    audit::record_about(state, &mut tx, actor, AuditKind::AppChanged, &about(&updated.name, id), meta).await?;
    tx.commit().await?;
    tracing::info!(client = %id, ended, "OpenID app changed");
    Ok(Some(Changed { ended }))
}

/// Removes an app: its grants and tokens end with it. Its name, or `None`.
pub async fn remove(
    state: &AppState,
    meta: &RequestMeta,
    actor: Option<i64>,
    id: &str,
) -> Result<Option<String>, AppError> {
    let mut tx = state.db.begin().await?;
    let Some(name) = tx.remove_oidc_client(id).await? else { return Ok(None) };
    audit::record_about(state, &mut tx, actor, AuditKind::AppRemoved, &about(&name, id), meta).await?;
    tx.commit().await?;
    tracing::info!(client = %id, "OpenID app removed");
    Ok(Some(name))
}

/// A new secret for a confidential app, given once; the old one stays
/// good until `remove_old_secret`, so the app can be moved over first.
/// `None`: no such confidential app.
pub async fn rotate_secret(
    state: &AppState,
    meta: &RequestMeta,
    actor: Option<i64>,
    id: &str,
) -> Result<Option<String>, AppError> {
    let secret = new_secret()?;
    let mut tx = state.db.begin().await?;
    let Some(name) = tx.rotate_oidc_client_secret(id, &sha256_hex(secret.as_bytes())).await? else {
        return Ok(None);
    };
    let detail = format!("{}: a new secret; the previous one still works", about(&name, id));
    audit::record_about(state, &mut tx, actor, AuditKind::AppSecretChanged, &detail, meta).await?;
    tx.commit().await?;
    Ok(Some(secret))
}

/// Ends the previous secret's life. False: there was none (or no app).
pub async fn remove_old_secret(
    state: &AppState,
    meta: &RequestMeta,
    actor: Option<i64>,
    id: &str,
) -> Result<bool, AppError> {
    let mut tx = state.db.begin().await?;
    let Some(name) = tx.drop_previous_oidc_secret(id).await? else { return Ok(false) };
    let detail = format!("{}: the previous secret retired", about(&name, id));
    audit::record_about(state, &mut tx, actor, AuditKind::AppSecretChanged, &detail, meta).await?;
    tx.commit().await?;
    Ok(true)
}

impl ClientRow {
    pub fn redirect_uris(&self) -> impl Iterator<Item = &str> {
        self.redirect_uris.lines().filter(|l| !l.is_empty())
    }

    pub fn post_logout_redirect_uris(&self) -> impl Iterator<Item = &str> {
        self.post_logout_redirect_uris.lines().filter(|l| !l.is_empty())
    }

    pub fn groups(&self) -> impl Iterator<Item = &str> {
        self.allowed_groups.split(',').filter(|g| !g.is_empty())
    }

    pub fn is_public(&self) -> bool {
        self.secret_hash.is_none()
    }

    pub fn pkce_required(&self) -> bool {
        self.is_public() || self.pkce == "required"
    }

    pub fn asks_consent(&self) -> bool {
        self.consent == "ask"
    }

    pub fn needs_two_factors(&self) -> bool {
        self.two_factor == 1
    }

    /// How long ago a second factor must have been shown in the log-in for
    /// this app (`i64::MAX`: at any time, not a remembered browser). None:
    /// a remembered browser will do.
    pub fn factor_shown_within(&self) -> Option<i64> {
        match (self.fresh, self.remembered) {
            (Some(seconds), _) => Some(seconds),
            (None, 0) => Some(i64::MAX),
            (None, _) => None,
        }
    }

    /// What the app wants of the second factor, in words (None: the usual).
    pub fn second_factor_words(&self) -> Option<String> {
        match (self.fresh, self.remembered) {
            (Some(seconds), _) => Some(format!("A second factor shown within {}", say_duration(seconds))),
            (None, 0) => Some("A second factor shown, not a remembered browser".to_owned()),
            (None, _) => None,
        }
    }

    /// The policy as `Tx::oidc_client_policy` reads it.
    pub fn policy(&self) -> ClientPolicy {
        (self.allowed_groups.clone(), self.two_factor, self.remembered, self.fresh, self.one_factor_networks.clone())
    }

    /// The ranges from which the password alone will do, as stored.
    pub fn one_factor_networks(&self) -> impl Iterator<Item = &str> {
        self.one_factor_networks.split(',').filter(|r| !r.is_empty())
    }

    /// Whether two factors are wanted of a browser at `address` (the
    /// address a network rule judges; None: unknown, so not inside any):
    /// an app that wants them asks everywhere but from its one-factor
    /// networks.
    pub fn wants_two_factors_from(&self, address: Option<std::net::IpAddr>) -> bool {
        self.needs_two_factors()
            && !address.is_some_and(|ip| {
                self.one_factor_networks().filter_map(|r| Cidr::parse(r).ok()).any(|range| range.contains(ip))
            })
    }

    fn secret_matches(&self, secret: &str) -> bool {
        let hash = sha256_hex(secret.as_bytes());
        self.secret_hash.as_deref() == Some(hash.as_str())
            || self.previous_secret_hash.as_deref() == Some(hash.as_str())
    }
}

/// How a client said who it is at the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub client_id: String,
    pub secret: Option<String>,
    /// Sent as HTTP Basic (the answer to a failure then names the scheme).
    pub basic: bool,
}

impl Credentials {
    /// From the `Authorization` header (`client_secret_basic`) or the form
    /// (`client_secret_post`, or `none` with only `client_id`). Both at
    /// once, or a Basic header that does not decode, is refused.
    pub fn from_request(
        authorization: Option<&str>,
        form_id: Option<&str>,
        form_secret: Option<&str>,
    ) -> Result<Self, OAuthError> {
        let invalid = |why: &str| OAuthError::new("invalid_client", why);
        if let Some(header) = authorization {
            let Some(encoded) = header.strip_prefix("Basic ").or_else(|| header.strip_prefix("basic ")) else {
                return Err(invalid("Only HTTP Basic client authentication is accepted in the Authorization header."));
            };
            if form_secret.is_some() {
                return Err(OAuthError::new("invalid_request", "Use one way of client authentication, not two."));
            }
            let decoded =
                STANDARD.decode(encoded.trim()).map_err(|_| invalid("The Basic credentials do not decode."))?;
            let decoded = String::from_utf8(decoded).map_err(|_| invalid("The Basic credentials do not decode."))?;
            let (id, secret) =
                decoded.split_once(':').ok_or_else(|| invalid("The Basic credentials do not decode."))?;
            // RFC 6749 2.3.1: both are form-encoded before Basic encoding.
            let unescape = |s: &str| {
                serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("v={s}"))
                    .ok()
                    .and_then(|mut v| v.pop())
                    .map(|(_, v)| v)
            };
            let id = unescape(id).ok_or_else(|| invalid("The Basic credentials do not decode."))?;
            let secret = unescape(secret).ok_or_else(|| invalid("The Basic credentials do not decode."))?;
            if form_id.is_some_and(|f| f != id) {
                return Err(OAuthError::new("invalid_request", "client_id differs from the Basic credentials."));
            }
            return Ok(Self { client_id: id, secret: Some(secret), basic: true });
        }
        let id = form_id.filter(|s| !s.is_empty()).ok_or_else(|| invalid("No client authentication was sent."))?;
        Ok(Self { client_id: id.to_owned(), secret: form_secret.map(str::to_owned), basic: false })
    }
}

/// The client these credentials prove, or `invalid_client`: a
/// confidential client must present its secret (or the previous one
/// after a rotation), a public one must present none.
pub async fn authenticate(state: &AppState, credentials: &Credentials) -> Result<ClientRow, OAuthError> {
    let refused = || OAuthError::new("invalid_client", "Client authentication failed.");
    let client = state.db.oidc_client(&credentials.client_id).await?.ok_or_else(refused)?;
    match (&credentials.secret, client.is_public()) {
        (Some(secret), false) if client.secret_matches(secret) => Ok(client),
        (None, true) => Ok(client),
        _ => Err(refused()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_must_be_absolute_web_uris() {
        assert!(check_uri("https://app.example.com/oauth2/callback").is_ok());
        assert!(check_uri("http://127.0.0.1:8080/cb?x=1").is_ok());
        for bad in [
            "",
            "/relative",
            "app.example.com/cb",
            "javascript://x",
            "https://app.example.com/cb#frag",
            "https://user@app.example.com/cb",
            "https:///cb",
            "https://app.example.com/c b",
        ] {
            assert!(check_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn basic_credentials_are_form_decoded_and_cannot_be_doubled() {
        let header = format!("Basic {}", STANDARD.encode("my%20app:s%3Acret"));
        let c = Credentials::from_request(Some(&header), None, None).unwrap();
        assert_eq!((c.client_id.as_str(), c.secret.as_deref(), c.basic), ("my app", Some("s:cret"), true));
        assert_eq!(Credentials::from_request(Some(&header), None, Some("x")).unwrap_err().error, "invalid_request");
        assert_eq!(Credentials::from_request(Some(&header), Some("other"), None).unwrap_err().error, "invalid_request");
        assert_eq!(Credentials::from_request(Some("Bearer x"), None, None).unwrap_err().error, "invalid_client");
        assert_eq!(Credentials::from_request(Some("Basic !!"), None, None).unwrap_err().error, "invalid_client");
        let post = Credentials::from_request(None, Some("id"), Some("s")).unwrap();
        assert_eq!((post.client_id.as_str(), post.secret.as_deref(), post.basic), ("id", Some("s"), false));
        assert_eq!(Credentials::from_request(None, None, None).unwrap_err().error, "invalid_client");
    }
}
