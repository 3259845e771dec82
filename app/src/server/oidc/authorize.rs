//! The authorize step: an app sends the browser here; it goes back with a
//! code (or an error), after a log-in, an enrolment or a consent when one
//! is owed. An unknown app or a redirect URI it did not register gets a
//! page, never a redirect: the app cannot be trusted with the answer.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::{ACR_TWO_FACTORS, CODE_TTL, known_scopes};
use crate::error::AppError;
use crate::server::auth::FullSession;
use crate::server::crypto::{random_bytes, sha256_hex};
use crate::server::db::{ClientRow, NewGrant};
use crate::server::state::AppState;

/// The parameters of an authorization request (OpenID Connect Core 3.1.2.1),
/// plus `login_after`, ours: the log-in must have been made at or after
/// this time (the second after the request that asked) (what `prompt=login` and `max_age` turn into on the way to
/// the log-in page). Unknown parameters are ignored; one given twice makes
/// the request unreadable.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuthorizeRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_challenge: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_challenge_method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_hint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr_values: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_after: Option<String>,
}

impl AuthorizeRequest {
    /// This request as a query string.
    pub fn query(&self) -> String {
        serde_urlencoded::to_string(self).unwrap_or_default()
    }

    /// The absolute URL of this request at the authorize endpoint.
    pub fn url(&self, state: &AppState) -> String {
        format!("{}?{}", state.oidc.url("/oidc/authorize"), self.query())
    }

    fn prompts(&self) -> impl Iterator<Item = &str> {
        self.prompt.as_deref().unwrap_or("").split(' ').filter(|p| !p.is_empty())
    }

    fn prompt_is(&self, word: &str) -> bool {
        self.prompts().any(|p| p == word)
    }

    /// The earliest log-in time this request accepts.
    pub fn login_after(&self) -> Option<i64> {
        self.login_after.as_deref().and_then(|t| t.parse().ok())
    }
}

/// What the browser is shown next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A page (400): the app is unknown or the redirect URI is not its own.
    ErrorPage(String),
    /// Sent on: back to the app (a code or an error), or to the log-in,
    /// enrolment or consent page on the way.
    Redirect(String),
}

/// What the consent page shows and sends back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentRequest {
    pub client_name: String,
    pub scopes: Vec<String>,
}

/// The person's answer on the consent page, with the request it was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consent {
    /// Not asked in this request.
    NotAsked,
    Allowed,
    Denied,
}

/// Where the app is sent back to, with `params` added to its query, and
/// `iss` (RFC 9207: a mix-up between providers is caught by the app).
fn back_to_app(state: &AppState, redirect_uri: &str, params: &[(&str, &str)], app_state: Option<&str>) -> String {
    let mut pairs: Vec<(&str, &str)> = params.to_vec();
    if let Some(s) = app_state {
        pairs.push(("state", s));
    }
    pairs.push(("iss", &state.oidc.issuer));
    let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
    let join = if redirect_uri.contains('?') { '&' } else { '?' };
    format!("{redirect_uri}{join}{query}")
}

fn app_error(state: &AppState, redirect_uri: &str, req: &AuthorizeRequest, error: &str, why: &str) -> Outcome {
    Outcome::Redirect(back_to_app(
        state,
        redirect_uri,
        &[("error", error), ("error_description", why)],
        req.state.as_deref(),
    ))
}

/// `/login?rd=…` back to this request, with `login_after` when the
/// log-in must be a new one.
fn to_log_in(state: &AppState, req: &AuthorizeRequest, login_after: Option<i64>) -> Outcome {
    let mut next = req.clone();
    if let Some(t) = login_after {
        next.login_after = Some(t.to_string());
        // Asked once: the log-in that follows answers it.
        next.prompt =
            Some(next.prompts().filter(|p| *p != "login").collect::<Vec<_>>().join(" ")).filter(|p| !p.is_empty());
    }
    Outcome::Redirect(format!("/login?rd={}", encode(&next.url(state))))
}

fn encode(value: &str) -> String {
    serde_urlencoded::to_string([("", value)]).unwrap_or_default().trim_start_matches('=').to_owned()
}

/// A PKCE challenge as RFC 7636 allows: 43 to 128 characters of the
/// unreserved set (S256 gives exactly 43).
fn challenge_is_well_formed(challenge: &str) -> bool {
    (43..=128).contains(&challenge.len())
        && challenge.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// The client and redirect URI of a request, or the page that says why
/// the app cannot be sent anything.
pub async fn client_of(
    state: &AppState,
    req: &AuthorizeRequest,
) -> Result<Result<(ClientRow, String), String>, AppError> {
    let Some(client_id) = req.client_id.as_deref().filter(|c| !c.is_empty()) else {
        return Ok(Err("The app that sent you here did not say who it is (client_id is missing).".into()));
    };
    let Some(client) = state.db.oidc_client(client_id).await? else {
        return Ok(Err("The app that sent you here is not registered with this sign-in service. \
                       Tell the administrator of that app."
            .into()));
    };
    let Some(uri) = req.redirect_uri.as_deref().filter(|u| client.redirect_uris().any(|r| r == *u)) else {
        return Ok(Err(format!(
            "{} asked to be answered at an address it has not registered (redirect_uri). \
             Tell the administrator of that app.",
            client.name
        )));
    };
    let uri = uri.to_owned();
    Ok(Ok((client, uri)))
}

/// Runs the authorize step for `req` and whoever is logged in. `consent`
/// is the person's answer when this is the consent page's post; `from`,
/// the browser's address as a network rule judges it (`network_address`).
pub async fn authorize(
    state: &AppState,
    req: &AuthorizeRequest,
    session: Option<&FullSession>,
    consent: Consent,
    from: Option<std::net::IpAddr>,
) -> Result<Outcome, AppError> {
    let (client, redirect_uri) = match client_of(state, req).await? {
        Ok(found) => found,
        Err(page) => return Ok(Outcome::ErrorPage(page)),
    };
    let fail = |error: &str, why: &str| Ok(app_error(state, &redirect_uri, req, error, why));
    if req.request.is_some() {
        return fail("request_not_supported", "Request objects are not supported.");
    }
    if req.request_uri.is_some() {
        return fail("request_uri_not_supported", "request_uri is not supported.");
    }
    match req.response_type.as_deref() {
        Some("code") => {}
        None => return fail("invalid_request", "response_type is missing."),
        Some(_) => return fail("unsupported_response_type", "Only response_type=code is supported."),
    }
    if req.response_mode.as_deref().is_some_and(|m| m != "query") {
        return fail("invalid_request", "Only response_mode=query is supported.");
    }
    let scopes = known_scopes(req.scope.as_deref().unwrap_or(""));
    if !scopes.contains(&"openid") {
        return fail("invalid_scope", "The scope must include openid.");
    }
    match (req.code_challenge.as_deref(), req.code_challenge_method.as_deref()) {
        (_, Some(m)) if m != "S256" => {
            return fail("invalid_request", "Only the S256 code challenge method is supported.");
        }
        (Some(c), _) if !challenge_is_well_formed(c) => {
            return fail("invalid_request", "The code challenge is malformed.");
        }
        (Some(_), None) => {
            return fail("invalid_request", "code_challenge_method=S256 is required with a code challenge.");
        }
        (None, _) if client.pkce_required() => return fail("invalid_request", "This app must use PKCE (S256)."),
        _ => {}
    }
    if req.nonce.as_deref().is_some_and(|n| n.len() > 512 || n.chars().any(char::is_control)) {
        return fail("invalid_request", "The nonce is too long or has control characters.");
    }
    let prompt_none = req.prompt_is("none");
    if prompt_none && req.prompts().count() > 1 {
        return fail("invalid_request", "prompt=none cannot be combined with other prompts.");
    }
    let max_age = match req.max_age.as_deref().map(str::parse::<i64>) {
        None => None,
        Some(Ok(age)) if age >= 0 => Some(age),
        Some(_) => return fail("invalid_request", "max_age must be a whole number of seconds."),
    };
    let now = state.now();
    let Some(session) = session else {
        if prompt_none {
            return fail("login_required", "Nobody is logged in.");
        }
        return Ok(to_log_in(state, req, None));
    };
    // A log-in new enough for this request? Once a log-in made for it
    // (`login_after`) is there, it answers `prompt=login` and `max_age`
    // (`max_age=0` is `prompt=login`): asking again would be a loop.
    let auth_at = session.claims.auth.unwrap_or(0);
    let made_for_it = req.login_after().is_some_and(|t| auth_at >= t);
    if !made_for_it && (req.prompt_is("login") || max_age.is_some_and(|age| age == 0 || now - auth_at > age)) {
        if prompt_none {
            return fail("login_required", "The log-in is older than max_age allows.");
        }
        return Ok(to_log_in(state, req, Some(now + 1)));
    }
    if req.login_after().is_some_and(|t| auth_at < t) {
        if prompt_none {
            return fail("login_required", "A new log-in is needed.");
        }
        return Ok(to_log_in(state, req, req.login_after()));
    }
    let user = &session.user;
    // Past a group's deadline for two factors, every app wants them; an
    // app's one-factor networks waive only its own wish.
    let app_wants_two = client.wants_two_factors_from(from);
    let wants_two = app_wants_two
        || req.acr_values.as_deref().unwrap_or("").split(' ').any(|a| a == ACR_TWO_FACTORS)
        || user.overdue(now);
    if wants_two && !user.amr.two_factor() {
        if prompt_none {
            return fail("interaction_required", "This app needs a log-in with two factors.");
        }
        if user.two_factor() {
            // 2FA on, but this log-in had the password alone: log in again.
            return Ok(to_log_in(state, req, Some(now + 1)));
        }
        // As the gate does: turn on two-factor authentication, then back.
        return Ok(Outcome::Redirect(format!("/security?rd={}", encode(&req.url(state)))));
    }
    // The app wants a second factor shown (not a remembered browser), or
    // shown lately: asked for here, as the gate does, then back.
    if app_wants_two
        && let Some(limit) = client.factor_shown_within()
        && user.factor_at.is_none_or(|at| now - at > limit)
    {
        if prompt_none {
            return fail("interaction_required", "This app wants your second factor shown again.");
        }
        return Ok(Outcome::Redirect(format!("/security?need=two-factor&rd={}", encode(&req.url(state)))));
    }
    if client.groups().next().is_some() {
        let groups = state.db.groups_of(user.id).await?;
        if !client.groups().any(|g| groups.iter().any(|mine| mine == g)) {
            return fail("access_denied", "Your account is not allowed to use this app.");
        }
    }
    let scope = scopes.join(" ");
    let remember_consent = match consent {
        Consent::Denied => return fail("access_denied", "You did not allow the app to sign you in."),
        Consent::Allowed => client.asks_consent(),
        Consent::NotAsked if client.asks_consent() => {
            let agreed = state.db.oidc_consent(user.id, &client.id).await?;
            let covered = agreed.is_some_and(|a| scopes.iter().all(|s| a.split(' ').any(|x| x == *s)));
            if !covered || req.prompt_is("consent") {
                if prompt_none {
                    return fail("consent_required", "The app needs your consent first.");
                }
                return Ok(Outcome::Redirect(format!("/consent?{}", req.query())));
            }
            false
        }
        Consent::NotAsked => false,
    };
    // The code, and the grant it opens, bound to this log-in.
    let code = URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
    let grant_id = uuid::Uuid::new_v4().to_string();
    let mut tx = state.db.begin().await?;
    // The app's policy was read before this transaction: if an
    // administrator changed who may use it since, decide again under the
    // new one (a change that narrows it ends the grants it can see, so a
    // grant stored after it under the old policy would outlive it).
    if tx.oidc_client_policy(&client.id).await? != Some(client.policy()) {
        drop(tx);
        return Ok(Outcome::Redirect(format!("/oidc/authorize?{}", req.query())));
    }
    tx.oidc_subject(user.id, &uuid::Uuid::new_v4().to_string()).await?;
    if remember_consent {
        tx.store_oidc_consent(user.id, &client.id, &scope, now).await?;
    }
    let stored = tx
        .insert_oidc_grant(&NewGrant {
            id: &grant_id,
            login_id: &user.family,
            client_id: &client.id,
            user_id: user.id,
            scope: &scope,
            nonce: req.nonce.as_deref(),
            redirect_uri: &redirect_uri,
            code_hash: &sha256_hex(code.as_bytes()),
            code_challenge: req.code_challenge.as_deref(),
            code_expires_at: now + CODE_TTL,
            now,
        })
        .await?;
    if !stored {
        // The log-in ended since it was read: as if nobody were logged in.
        return Ok(to_log_in(state, req, None));
    }
    tx.commit().await?;
    tracing::info!(user_id = user.id, client_id = client.id, "authorization code issued");
    Ok(Outcome::Redirect(back_to_app(state, &redirect_uri, &[("code", &code)], req.state.as_deref())))
}

/// What the consent page shows for a request: the app's name and the
/// scopes it asks for, or the error page's text.
pub async fn describe(state: &AppState, req: &AuthorizeRequest) -> Result<Result<ConsentRequest, String>, AppError> {
    Ok(client_of(state, req).await?.map(|(client, _)| ConsentRequest {
        client_name: client.name,
        scopes: known_scopes(req.scope.as_deref().unwrap_or("")).into_iter().map(str::to_owned).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_round_trips_through_its_query() {
        let req = AuthorizeRequest {
            client_id: Some("c".into()),
            redirect_uri: Some("https://app.example.com/cb?x=1&y=2".into()),
            scope: Some("openid email".into()),
            state: Some("a b&c".into()),
            ..Default::default()
        };
        let back: AuthorizeRequest = serde_urlencoded::from_str(&req.query()).unwrap();
        assert_eq!(back, req);
        assert!(
            serde_urlencoded::from_str::<AuthorizeRequest>("client_id=a&client_id=b").is_err(),
            "a parameter given twice is refused"
        );
    }

    #[test]
    fn pkce_challenges_must_be_43_to_128_unreserved_characters() {
        assert!(challenge_is_well_formed(&"a".repeat(43)));
        assert!(challenge_is_well_formed(&"A-._~9".repeat(20)));
        assert!(!challenge_is_well_formed(&"a".repeat(42)));
        assert!(!challenge_is_well_formed(&"a".repeat(129)));
        assert!(!challenge_is_well_formed(&format!("{}+", "a".repeat(43))));
    }
}
