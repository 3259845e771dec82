//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): an app
//! sends the browser here to end the portal log-in, then back to an
//! address it registered. With an `id_token_hint` naming this browser's
//! log-in it ends at once; without one (or with a stale one) the person
//! is asked first, so a link on another site cannot log anyone out.

use serde::{Deserialize, Serialize};

use super::token::session_id;
use crate::error::AppError;
use crate::server::auth::FullSession;
use crate::server::state::AppState;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct LogoutRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token_hint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_logout_redirect_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logout_hint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui_locales: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogoutOutcome {
    /// A page: the request names an address the app did not register, or
    /// a hint this provider did not sign.
    ErrorPage(String),
    /// Ask the person first (the app's name, when known).
    Confirm(Option<String>),
    /// Sent on to `to`; `ended`: a log-in ended (its cookies are cleared).
    Done { ended: bool, to: String },
}

/// Runs a log-out request for whoever is logged in. `confirmed`: the
/// person said yes on the confirmation page (a same-site post).
pub async fn logout(
    state: &AppState,
    req: &LogoutRequest,
    session: Option<&FullSession>,
    confirmed: bool,
) -> Result<LogoutOutcome, AppError> {
    let hint = match req.id_token_hint.as_deref().filter(|h| !h.is_empty()) {
        None => None,
        Some(token) => {
            let keys = super::keys::current(state).await?;
            match keys.verify_own(token, &state.oidc.issuer) {
                Some(claims) => Some(claims),
                None => {
                    return Ok(LogoutOutcome::ErrorPage(
                        "The log-out request carries a token this sign-in service did not issue.".into(),
                    ));
                }
            }
        }
    };
    let hinted_client = hint.as_ref().and_then(|c| match c.get("aud") {
        Some(serde_json::Value::String(aud)) => Some(aud.clone()),
        Some(serde_json::Value::Array(auds)) => auds.first().and_then(|a| a.as_str()).map(str::to_owned),
        _ => None,
    });
    let client_id = match (req.client_id.as_deref(), hinted_client.as_deref()) {
        (Some(a), Some(b)) if a != b => {
            return Ok(LogoutOutcome::ErrorPage("The log-out request names two different apps.".into()));
        }
        (Some(id), _) | (None, Some(id)) => Some(id.to_owned()),
        (None, None) => None,
    };
    let client = match &client_id {
        Some(id) => state.db.oidc_client(id).await?,
        None => None,
    };
    let to = match req.post_logout_redirect_uri.as_deref() {
        None => "/login".to_owned(),
        Some(uri) => {
            let registered = client.as_ref().is_some_and(|c| c.post_logout_redirect_uris().any(|r| r == uri));
            if !registered {
                return Ok(LogoutOutcome::ErrorPage(
                    "The app asked to be sent back to an address it has not registered for after log-out.".into(),
                ));
            }
            match req.state.as_deref() {
                Some(s) => {
                    let join = if uri.contains('?') { '&' } else { '?' };
                    format!("{uri}{join}{}", serde_urlencoded::to_string([("state", s)]).unwrap_or_default())
                }
                None => uri.to_owned(),
            }
        }
    };
    let Some(session) = session else { return Ok(LogoutOutcome::Done { ended: false, to }) };
    let family = &session.user.family;
    let hint_names_this_log_in =
        hint.as_ref().and_then(|c| c.get("sid")).and_then(|s| s.as_str()) == Some(session_id(family).as_str());
    if !(hint_names_this_log_in || confirmed) {
        return Ok(LogoutOutcome::Confirm(client.map(|c| c.name)));
    }
    state.db.revoke_logins(std::slice::from_ref(family), state.now()).await?;
    tracing::info!(user_id = session.user.id, client_id = client_id.as_deref().unwrap_or(""), "logged out by an app");
    Ok(LogoutOutcome::Done { ended: true, to })
}
