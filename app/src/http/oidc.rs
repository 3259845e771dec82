//! The OpenID provider's endpoints (docs/OIDC.md): discovery, the JWKS,
//! authorize (and the consent page's post), token and userinfo. They
//! parse requests and shape answers as the specs say; the decisions are
//! in `server::oidc`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Deserialize;

use crate::error::AppError;
use crate::server::auth::FullSession;
use crate::server::oidc::authorize::{self, AuthorizeRequest, Consent, Outcome};
use crate::server::oidc::logout::{LogoutOutcome, LogoutRequest};
use crate::server::oidc::revocation::TokenQuestion;
use crate::server::oidc::token::TokenRequest;
use crate::server::oidc::{self, OAuthError};
use crate::server::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery).options(preflight))
        .route("/oidc/jwks", get(jwks).options(preflight))
        .route("/oidc/authorize", get(authorize_get).post(authorize_post))
        .route("/oidc/consent", post(consent))
        .route("/oidc/token", post(token).options(preflight))
        .route("/oidc/userinfo", get(userinfo_get).post(userinfo_post).options(preflight))
        .route("/oidc/revoke", post(revoke).options(preflight))
        .route("/oidc/introspect", post(introspect))
        .route("/oidc/logout", get(logout_get).post(logout_post))
}

/// The endpoints apps call from their servers (and single-page apps from
/// browsers) carry no cookies: any origin may read them.
fn cors(mut res: Response) -> Response {
    res.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    res
}

async fn preflight() -> Response {
    let mut res = cors(StatusCode::NO_CONTENT.into_response());
    let h = res.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST"));
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("Authorization, Content-Type"));
    h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    res
}

fn json_with(status: StatusCode, body: &serde_json::Value, cache: &'static str) -> Response {
    let mut res = (status, axum::Json(body)).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if cache == "no-store" {
        res.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    }
    cors(res)
}

fn oauth_error(e: &OAuthError) -> Response {
    let body = serde_json::json!({ "error": e.error, "error_description": e.description });
    json_with(StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST), &body, "no-store")
}

async fn discovery(State(state): State<AppState>) -> Response {
    json_with(StatusCode::OK, &oidc::discovery(&state), "public, max-age=300")
}

async fn jwks(State(state): State<AppState>) -> Response {
    match oidc::keys::current(&state).await {
        Ok(keys) => json_with(StatusCode::OK, &serde_json::json!({ "keys": keys.jwks() }), "public, max-age=60"),
        Err(e) => e.into_response(),
    }
}

/// The page for a request that cannot go back to its app.
fn error_page(message: &str) -> Response {
    let escaped = escape(message);
    let html = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Sign-in request refused</title></head><body><main>\
         <h1>This sign-in request cannot be answered</h1><p>{escaped}</p>\
         <p><a href=\"/\">Go to your account</a></p></main></body></html>"
    );
    let mut res = (StatusCode::BAD_REQUEST, axum::response::Html(html)).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn see_other(location: &str) -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    match HeaderValue::from_str(location) {
        Ok(v) => {
            res.headers_mut().insert(header::LOCATION, v);
        }
        Err(_) => return error_page("The app's address cannot be used."),
    }
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// A step to one of the portal's own pages (consent, enrolment) taken
/// from a page of the portal rather than by a redirect: the request here
/// may be the end of a chain an app started, and a browser does not send
/// the portal's Strict cookies along such a chain, so that page would
/// find nobody logged in. A navigation this page starts is the portal's
/// own, and carries them. Without a refresh, the link does the same.
fn continue_page(to: &str) -> Response {
    let to = escape(to);
    let html = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"0;url={to}\"><title>Continuing…</title></head>\
         <body><main><h1>Continuing…</h1><p><a href=\"{to}\">Continue</a></p></main></body></html>"
    );
    let mut res = (StatusCode::OK, axum::response::Html(html)).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn outcome(result: Result<Outcome, AppError>) -> Response {
    match result {
        Ok(Outcome::ErrorPage(message)) => error_page(&message),
        Ok(Outcome::Redirect(to)) if to.starts_with("/consent?") || to.starts_with("/security?") => continue_page(&to),
        Ok(Outcome::Redirect(to)) => see_other(&to),
        Err(e) => e.into_response(),
    }
}

async fn run_authorize(state: &AppState, parts: &Parts, form: &str, consent: Consent) -> Response {
    // The consent page's own form: its page allows forms to post to this
    // origin alone, and a browser holds the redirect after a post to the
    // same rule, so the way on to the app is a page of ours.
    let answered_from_our_form = consent != Consent::NotAsked;
    let Ok(req) = serde_urlencoded::from_str::<AuthorizeRequest>(form) else {
        return error_page("The sign-in request is malformed (a parameter may be given twice).");
    };
    let session = match FullSession::at_authorize(parts, state).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let from = crate::server::request::network_address(state, parts);
    match authorize::authorize(state, &req, session.as_ref(), consent, from).await {
        Ok(Outcome::Redirect(to)) if answered_from_our_form => continue_page(&to),
        other => outcome(other),
    }
}

async fn authorize_get(State(state): State<AppState>, parts: Parts, RawQuery(query): RawQuery) -> Response {
    run_authorize(&state, &parts, query.as_deref().unwrap_or(""), Consent::NotAsked).await
}

/// OpenID Connect Core 3.1.2.1: the request may come as a form post too.
async fn authorize_post(State(state): State<AppState>, parts: Parts, body: Bytes) -> Response {
    match form_text(&parts.headers, &body) {
        Ok(form) => run_authorize(&state, &parts, form, Consent::NotAsked).await,
        Err(_) => error_page("The sign-in request must be sent as a form (application/x-www-form-urlencoded)."),
    }
}

#[derive(Deserialize)]
struct Decision {
    decision: Option<String>,
}

/// The consent page's post: the request it showed, and the answer.
async fn consent(State(state): State<AppState>, parts: Parts, body: Bytes) -> Response {
    let Ok(form) = form_text(&parts.headers, &body) else {
        return error_page("The answer must be sent as a form.");
    };
    let decision = match serde_urlencoded::from_str::<Decision>(form).ok().and_then(|d| d.decision).as_deref() {
        Some("allow") => Consent::Allowed,
        Some("deny") => Consent::Denied,
        _ => return error_page("Choose Allow or Deny."),
    };
    run_authorize(&state, &parts, form, decision).await
}

/// The body as form text, if it says it is a form.
fn form_text<'a>(headers: &HeaderMap, body: &'a Bytes) -> Result<&'a str, ()> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(());
    }
    std::str::from_utf8(body).map_err(|_| ())
}

async fn token(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(form) = form_text(&headers, &body) else {
        return oauth_error(&OAuthError::new(
            "invalid_request",
            "Send the token request as a form (application/x-www-form-urlencoded).",
        ));
    };
    let Ok(req) = serde_urlencoded::from_str::<TokenRequest>(form) else {
        return oauth_error(&OAuthError::new("invalid_request", "The form is malformed (a parameter given twice?)."));
    };
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    match oidc::token::token(&state, authorization, &req).await {
        Ok(answer) => json_with(StatusCode::OK, &answer, "no-store"),
        Err(e) => {
            let mut res = oauth_error(&e);
            if e.error == "invalid_client" && authorization.is_some() {
                res.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"twofactor\""));
            }
            res
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

async fn answer_userinfo(state: &AppState, token: Option<&str>) -> Response {
    match oidc::userinfo(state, token).await {
        Ok(claims) => json_with(StatusCode::OK, &claims, "no-store"),
        Err(e) => {
            let mut res = oauth_error(&e);
            if e.status == 401 {
                let challenge =
                    format!("Bearer error=\"{}\", error_description=\"{}\"", e.error, e.description.replace('"', "'"));
                if let Ok(v) = HeaderValue::from_str(&challenge) {
                    res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
                }
            }
            res
        }
    }
}

async fn userinfo_get(State(state): State<AppState>, headers: HeaderMap) -> Response {
    answer_userinfo(&state, bearer(&headers)).await
}

#[derive(Deserialize)]
struct UserinfoForm {
    access_token: Option<String>,
}

/// RFC 6750: the token in the header, or in a form body (not both).
async fn userinfo_post(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let from_form = form_text(&headers, &body)
        .ok()
        .and_then(|f| serde_urlencoded::from_str::<UserinfoForm>(f).ok())
        .and_then(|f| f.access_token);
    match (bearer(&headers), from_form.as_deref()) {
        (Some(_), Some(_)) => {
            oauth_error(&OAuthError::new("invalid_request", "Send the access token once, not in two places."))
        }
        (header, form) => answer_userinfo(&state, header.or(form)).await,
    }
}

/// A form of an app's server (revocation, introspection), or the error.
fn token_question(headers: &HeaderMap, body: &Bytes) -> Result<TokenQuestion, Box<Response>> {
    let form = form_text(headers, body).map_err(|_| {
        oauth_error(&OAuthError::new(
            "invalid_request",
            "Send the request as a form (application/x-www-form-urlencoded).",
        ))
    })?;
    serde_urlencoded::from_str::<TokenQuestion>(form).map_err(|_| {
        Box::new(oauth_error(&OAuthError::new("invalid_request", "The form is malformed (a parameter given twice?).")))
    })
}

fn client_auth_error(e: &OAuthError, authorization: Option<&str>) -> Response {
    let mut res = oauth_error(e);
    if e.error == "invalid_client" && authorization.is_some() {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"twofactor\""));
    }
    res
}

async fn revoke(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let q = match token_question(&headers, &body) {
        Ok(q) => q,
        Err(res) => return *res,
    };
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    match oidc::revocation::revoke(&state, authorization, &q).await {
        Ok(()) => cors(StatusCode::OK.into_response()),
        Err(e) => client_auth_error(&e, authorization),
    }
}

async fn introspect(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let q = match token_question(&headers, &body) {
        Ok(q) => q,
        Err(res) => return *res,
    };
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    match oidc::revocation::introspect(&state, authorization, &q).await {
        Ok(answer) => json_with(StatusCode::OK, &answer, "no-store"),
        Err(e) => client_auth_error(&e, authorization),
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The question before a log-out an app asked for without saying which
/// log-in (or naming another one): a same-site form post answers it.
fn confirm_page(req: &LogoutRequest, app: Option<&str>) -> Response {
    let fields: String = serde_urlencoded::to_string(req)
        .ok()
        .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(&q).ok())
        .unwrap_or_default()
        .iter()
        .map(|(k, v)| format!("<input type=\"hidden\" name=\"{}\" value=\"{}\">", escape(k), escape(v)))
        .collect();
    let who = app
        .map(|a| format!("{} asks to log you out.", escape(a)))
        .unwrap_or_else(|| "An app asks to log you out.".into());
    let html = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Log out?</title></head><body><main><h1>Log out?</h1><p>{who} \
         Logging out ends your log-in here and in the apps you signed in to with it.</p>\
         <form method=\"post\" action=\"/oidc/logout\">{fields}\
         <button type=\"submit\" name=\"confirm\" value=\"yes\">Log out</button></form>\
         <p><a href=\"/\">Stay logged in</a></p></main></body></html>"
    );
    let mut res = (StatusCode::OK, axum::response::Html(html)).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Its one form posts here; nothing else runs or loads.
    res.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    );
    res
}

async fn run_logout(state: &AppState, parts: &Parts, form: &str, confirmed: bool) -> Response {
    let Ok(req) = serde_urlencoded::from_str::<LogoutRequest>(form) else {
        return error_page("The log-out request is malformed (a parameter may be given twice).");
    };
    let session = match FullSession::at_authorize(parts, state).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    match oidc::logout::logout(state, &req, session.as_ref(), confirmed).await {
        Ok(LogoutOutcome::ErrorPage(message)) => error_page(&message),
        Ok(LogoutOutcome::Confirm(app)) => confirm_page(&req, app.as_deref()),
        Ok(LogoutOutcome::Done { ended, to }) => {
            // After the question's form: on by a page of ours (see
            // `run_authorize`); otherwise a redirect.
            let mut res = if confirmed { continue_page(&to) } else { see_other(&to) };
            if ended {
                for cookie in crate::server::logins::cleared_cookies(state) {
                    if let Ok(v) = HeaderValue::from_str(&cookie) {
                        res.headers_mut().append(header::SET_COOKIE, v);
                    }
                }
            }
            res
        }
        Err(e) => e.into_response(),
    }
}

async fn logout_get(State(state): State<AppState>, parts: Parts, RawQuery(query): RawQuery) -> Response {
    run_logout(&state, &parts, query.as_deref().unwrap_or(""), false).await
}

#[derive(Deserialize)]
struct Confirmed {
    confirm: Option<String>,
}

/// The app's form post of a log-out request, or the confirmation page's
/// answer (`confirm=yes`, honoured only from this site: a post from
/// another carries none of the portal's cookies).
async fn logout_post(State(state): State<AppState>, parts: Parts, body: Bytes) -> Response {
    let Ok(form) = form_text(&parts.headers, &body) else {
        return error_page("The log-out request must be sent as a form (application/x-www-form-urlencoded).");
    };
    let confirmed =
        serde_urlencoded::from_str::<Confirmed>(form).ok().and_then(|c| c.confirm).as_deref() == Some("yes");
    run_logout(&state, &parts, form, confirmed).await
}
