//! The pages' forms as real `POST`s, for browsers without JavaScript and
//! for a form submitted before the WebAssembly has loaded. Each page posts
//! to its own URL with a hidden `intent`; the handler calls the same
//! service function as the JSON API, then either redirects (303) to the next
//! page with the cookies set, or renders the page again with a
//! `FormOutcome`: the error and the non-secret fields kept, or what the step
//! produced (a QR code to scan, recovery codes). The same-origin check of
//! the router's edge guards these posts as it guards `/api`.

use std::collections::HashMap;

use axum::body::{Body, to_bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderValue, Method, StatusCode, header};
use leptos::prelude::provide_context;

use crate::error::{AppError, ErrorKind};
use crate::server::account;
use crate::server::auth::{FullSession, PasswordSession};
use crate::server::crypto::tokens::{CookieKind, Stage};
use crate::server::factors::proof::FactorProof;
use crate::server::factors::{proof, protection, recovery, remembered};
use crate::server::logins;
use crate::server::request::RequestMeta;
use crate::server::state::AppState;
use crate::ui::outcome::{FormOutcome, Intent, Shown};
use crate::wire::{parse_email, parse_new_password, parse_registration, parse_second_factor};

/// Largest form body read; the biggest form is three short fields.
const MAX_FORM_BYTES: usize = 16 * 1024;

type Fields = HashMap<String, String>;

/// The routes the pages post to. Merged into the router beside the
/// server-rendered GET routes of the same paths.
pub fn routes() -> axum::Router<AppState> {
    use axum::routing::post;
    axum::Router::new()
        .route("/signup", post(sign_up))
        .route("/login", post(log_in))
        .route("/security", post(security))
        .route("/admin", post(admin))
        .route("/logout", post(log_out))
        .route("/forgot-password", post(mailed))
        .route("/reset-password", post(mailed))
        .route("/verify-email", post(mailed))
        .route("/lockdown", post(mailed))
}

#[derive(serde::Deserialize)]
struct ReturnTo {
    rd: Option<String>,
}

/// `?rd=…` when the posted page's URL carries a way back to an app behind
/// the gate that the gate serves (docs/PROXIES.md); empty otherwise.
fn return_query(state: &AppState, parts: &Parts) -> String {
    match parts.uri.query().and_then(|q| serde_urlencoded::from_str::<ReturnTo>(q).ok()) {
        Some(ReturnTo { rd: Some(rd) }) if super::authz::return_url(state, &rd).is_some() => {
            format!("?{}", serde_urlencoded::to_string([("rd", rd)]).unwrap_or_default())
        }
        _ => String::new(),
    }
}

/// What a handler decided: go elsewhere, or draw the page again.
enum Answer {
    Redirect(String),
    Render(FormOutcome),
}

struct Posted {
    parts: Parts,
    fields: Fields,
    /// Every value of a field that may repeat (checkboxes).
    repeated: Vec<(String, String)>,
    intent: Option<Intent>,
    meta: RequestMeta,
}

impl Posted {
    async fn read(state: &AppState, req: Request) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let bytes = to_bytes(body, MAX_FORM_BYTES)
            .await
            .map_err(|_| plain_error(AppError::bad_request("The form is too large."), StatusCode::PAYLOAD_TOO_LARGE))?;
        let repeated: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
            .map_err(|_| plain_error(AppError::bad_request("The form could not be read."), StatusCode::BAD_REQUEST))?;
        let fields: Fields = repeated.iter().cloned().collect();
        let intent = fields.get("intent").and_then(|i| Intent::parse(i));
        let meta = RequestMeta::from_request_parts(&mut parts, state).await.unwrap_or_default();
        Ok(Self { parts, fields, repeated, intent, meta })
    }

    /// Every value posted for `name`, in order.
    fn all(&self, name: &str) -> Vec<String> {
        self.repeated.iter().filter(|(n, _)| n == name).map(|(_, v)| v.clone()).collect()
    }

    fn get(&self, name: &str) -> &str {
        self.fields.get(name).map(String::as_str).unwrap_or("")
    }

    async fn full_session(&mut self, state: &AppState) -> Result<FullSession, AppError> {
        FullSession::from_request_parts(&mut self.parts, state).await
    }
}

fn plain_error(error: AppError, status: StatusCode) -> Response {
    let mut res = (status, error.message).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// An error outcome for `intent`, keeping the named non-secret fields.
fn failed(intent: Intent, error: AppError, posted: &Posted, keep: &[&str]) -> FormOutcome {
    let mut outcome = FormOutcome::new(intent);
    for name in keep {
        outcome.fields.insert((*name).to_owned(), posted.get(name).trim().to_owned());
    }
    outcome.error = Some(error);
    outcome
}

async fn sign_up(State(state): State<AppState>, req: Request) -> Response {
    let posted = match Posted::read(&state, req).await {
        Ok(p) => p,
        Err(res) => return res,
    };
    let keep = ["name", "email", "invite"];
    let here = format!("/signup{}", return_query(&state, &posted.parts));
    let (email, name, password) =
        match parse_registration(posted.get("email"), posted.get("name"), posted.get("password")) {
            Ok(parsed) => parsed,
            Err(e) => {
                let (email, name, password) = (posted.get("email"), posted.get("name"), posted.get("password"));
                let e =
                    crate::server::identity::weak_password_too(&state, &posted.meta, e, email, name, password).await;
                let answer = Answer::Render(failed(Intent::SignUp, e, &posted, &keep));
                return finish(&state, posted.parts, &here, answer, vec![]).await;
            }
        };
    let login_email = email.clone();
    let password_text = password.expose().to_owned();
    let invite = posted.get("invite").trim().to_owned();
    let made = if invite.is_empty() {
        account::register(&state, &posted.meta, email, name, password).await
    } else {
        account::register_invited(&state, &posted.meta, &invite, email, name, password).await
    };
    if let Err(e) = made {
        let answer = Answer::Render(failed(Intent::SignUp, e, &posted, &keep));
        return finish(&state, posted.parts, &here, answer, vec![]).await;
    }
    match account::log_in(&state, &posted.meta, login_email, &password_text).await {
        Ok(out) => {
            let next = format!("/security{}", return_query(&state, &posted.parts));
            finish(&state, posted.parts, &here, Answer::Redirect(next), out.cookies).await
        }
        // The account exists; the log-in page says what went wrong.
        Err(_) => {
            let next = format!("/login{}", return_query(&state, &posted.parts));
            finish(&state, posted.parts, &here, Answer::Redirect(next), vec![]).await
        }
    }
}

async fn log_in(State(state): State<AppState>, req: Request) -> Response {
    let mut posted = match Posted::read(&state, req).await {
        Ok(p) => p,
        Err(res) => return res,
    };
    // Sent by the gate: `rd` rides along in the form's URL while it is one
    // the gate serves; the last step hands over to `GET /login?rd=`.
    let here = format!("/login{}", return_query(&state, &posted.parts));
    let done = if here == "/login" { "/".to_owned() } else { here.clone() };
    let (answer, cookies) = match posted.intent {
        Some(Intent::Password) => match parse_email(posted.get("email")) {
            Err(e) => (Answer::Render(failed(Intent::Password, e, &posted, &["email"])), vec![]),
            Ok(email) => match account::log_in(&state, &posted.meta, email, posted.get("password")).await {
                Ok(out) => {
                    let next = if out.body.two_factor_required { here.clone() } else { done.clone() };
                    (Answer::Redirect(next), out.cookies)
                }
                Err(e) => (Answer::Render(failed(Intent::Password, e, &posted, &["email"])), vec![]),
            },
        },
        Some(intent @ (Intent::Code | Intent::Recovery)) => {
            match PasswordSession::from_request_parts(&mut posted.parts, &state).await {
                Err(_) => {
                    let expired =
                        AppError::new(ErrorKind::Unauthenticated, "Your log-in timed out. Enter your password again.");
                    (Answer::Render(failed(Intent::Password, expired, &posted, &[])), logins::cleared_cookies(&state))
                }
                Ok(session) => {
                    let (code, recovery) = match intent {
                        Intent::Code => (Some(posted.get("code")), None),
                        _ => (None, Some(posted.get("recovery"))),
                    };
                    let result = match parse_second_factor(code, recovery) {
                        Ok(factor) => {
                            let remember = posted.get("remember") == "on";
                            account::authenticate(&state, &posted.meta, session.into(), factor, remember).await
                        }
                        Err(e) => Err(e),
                    };
                    match result {
                        Ok(out) => (Answer::Redirect(done.clone()), out.cookies),
                        Err(e) => (Answer::Render(failed(intent, e, &posted, &["remember"])), vec![]),
                    }
                }
            }
        }
        // "Use a different account": forget the password step, and end
        // whatever log-in this browser still holds.
        Some(Intent::Restart) => match logins::log_out(&state, &posted.parts.headers).await {
            Ok(cookies) => (Answer::Redirect(here.clone()), cookies),
            Err(e) => {
                return plain_error(
                    e.clone(),
                    StatusCode::from_u16(e.status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                );
            }
        },
        _ => return plain_error(AppError::bad_request("Unknown form."), StatusCode::BAD_REQUEST),
    };
    finish(&state, posted.parts, &here, answer, cookies).await
}

/// The admin page's forms: `person`, `action` and its `argument`, and the
/// administrator's proof (`code` or `password`) when their log-in is not
/// recent. The page is drawn again with what was done, or the error.
async fn admin(State(state): State<AppState>, req: Request) -> Response {
    use crate::server::admin;
    use crate::server::factors::proof::Proof;
    use crate::wire::admin::{AdminAction, AppAction, AppSettings, GroupAction, InvitationAction};
    let mut posted = match Posted::read(&state, req).await {
        Ok(p) => p,
        Err(res) => return res,
    };
    // An app's form, an invitation's, a group's, or a person's.
    let app_action = posted.get("app-action").to_owned();
    let invitation_action = posted.get("invitation-action").to_owned();
    let group_action = posted.get("group-action").to_owned();
    let person = posted.get("person").trim().parse::<i64>();
    let here = match (&person, group_action.is_empty()) {
        _ if !app_action.is_empty() => "/admin?view=apps".to_owned(),
        _ if !invitation_action.is_empty() => "/admin?view=invitations".to_owned(),
        (_, false) => "/admin?view=groups".to_owned(),
        (Ok(person), true) => format!("/admin?person={person}"),
        (Err(_), true) => return plain_error(AppError::bad_request("Unknown form."), StatusCode::BAD_REQUEST),
    };
    let session = match posted.full_session(&state).await {
        Ok(s) => s,
        Err(e) if e.error == ErrorKind::Unauthenticated => {
            return finish(&state, posted.parts, &here, Answer::Redirect("/login".into()), vec![]).await;
        }
        Err(e) => {
            let answer = Answer::Render(failed(Intent::Admin, e, &posted, &[]));
            return finish(&state, posted.parts, &here, answer, vec![]).await;
        }
    };
    let proof = Proof { password: Some(posted.get("password")), code: Some(posted.get("code")) };
    let result = match (person, group_action.is_empty()) {
        _ if !app_action.is_empty() => {
            let settings = AppSettings::from_form(|f| posted.get(f).to_owned(), |f| posted.all(f));
            let (id, confirm) = (posted.get("id").to_owned(), posted.get("confirm").to_owned());
            match AppAction::parse(&app_action, id, settings, confirm) {
                None => Err(AppError::bad_request("Unknown action.")),
                Some(action) => admin::apps::change(&state, &posted.meta, &session, action, proof).await,
            }
        }
        _ if !invitation_action.is_empty() => {
            let action = InvitationAction::parse(
                &invitation_action,
                posted.get("email"),
                posted.all("groups"),
                posted.get("days"),
                posted.get("mail") == "on",
                posted.get("id"),
            );
            match action {
                None => Err(AppError::bad_request("Unknown action.")),
                Some(action) => admin::invitations::change(&state, &posted.meta, &session, action, proof).await,
            }
        }
        (_, false) => {
            match GroupAction::parse(&group_action, posted.get("group"), posted.get("argument"), posted.get("days")) {
                None => Err(AppError::bad_request("Unknown action.")),
                Some(action) => admin::groups::change(&state, &posted.meta, &session, action, proof).await,
            }
        }
        (Ok(person), true) => match AdminAction::parse(posted.get("action"), posted.get("argument")) {
            None => Err(AppError::bad_request("Unknown action.")),
            Some(action) => admin::act(&state, &posted.meta, &session, person, action, proof).await,
        },
        (Err(_), true) => Err(AppError::bad_request("Unknown form.")),
    };
    let answer = match result {
        Ok(done) => {
            let mut outcome = FormOutcome::new(Intent::Admin);
            outcome.fields.insert("done".into(), done.message);
            // A new invitation's link, shown once: in this page, never in
            // a URL.
            outcome.fields.insert("link".into(), done.link);
            // A new app secret, the same way.
            outcome.fields.insert("secret".into(), done.secret);
            Answer::Render(outcome)
        }
        Err(e) => {
            let keep = [
                "action",
                "argument",
                "group",
                "email",
                "days",
                "app-action",
                "id",
                "name",
                "redirect-uris",
                "logout-uris",
                "backchannel-uri",
                "public",
                "consent",
                "pkce",
                "two-factor",
            ];
            let mut outcome = failed(Intent::Admin, e, &posted, &keep);
            // A refused app's groups come back ticked (its policy is not
            // silently widened on the second try).
            outcome.fields.insert("groups".into(), posted.all("groups").join(","));
            Answer::Render(outcome)
        }
    };
    finish(&state, posted.parts, &here, answer, vec![]).await
}

async fn security(State(state): State<AppState>, req: Request) -> Response {
    let mut posted = match Posted::read(&state, req).await {
        Ok(p) => p,
        Err(res) => return res,
    };
    let Some(intent) = posted.intent else {
        return plain_error(AppError::bad_request("Unknown form."), StatusCode::BAD_REQUEST);
    };
    // The way back to an app behind the gate, kept on the page, and that
    // the gate sent the person here (a second factor is wanted).
    let back = return_query(&state, &posted.parts);
    let sent_by_gate = posted.parts.uri.query().is_some_and(|q| q.split('&').any(|p| p == "need=two-factor"));
    let here = match (sent_by_gate, back.strip_prefix('?')) {
        (true, Some(rd)) => format!("/security?need=two-factor&{rd}"),
        (true, None) => "/security?need=two-factor".to_owned(),
        (false, _) => format!("/security{back}"),
    };
    let session = match posted.full_session(&state).await {
        Ok(s) => s,
        // Logged out meanwhile (or the session ended): the page itself
        // sends the visitor to log in.
        Err(e) if e.error == ErrorKind::Unauthenticated => {
            return finish(&state, posted.parts, &here, Answer::Redirect("/login".into()), vec![]).await;
        }
        Err(e) => {
            let answer = Answer::Render(failed(intent, e, &posted, &[]));
            return finish(&state, posted.parts, &here, answer, vec![]).await;
        }
    };
    let (answer, cookies) = match intent {
        // Set up the app, or (while it is on) a new phone: then the form
        // carries a current code or a recovery code instead of the password.
        Intent::Enrol => {
            let typed = posted.get("code").trim();
            let result = match (!typed.is_empty()).then(|| crate::wire::parse_any_second_factor(typed)).transpose() {
                Ok(factor) => {
                    let factor = factor.map(FactorProof::Typed);
                    protection::generate(&state, &posted.meta, session, factor, Some(posted.get("password"))).await
                }
                Err(e) => Err(e),
            };
            match result {
                Ok(secret) => (Answer::Render(shown(intent, Shown::Enrolment(secret))), vec![]),
                Err(e) => (Answer::Render(failed(intent, e, &posted, &[])), vec![]),
            }
        }
        Intent::Confirm => {
            let user = session.row(&state).await;
            match protection::turn_on(&state, &posted.meta, session, posted.get("code")).await {
                Ok(out) if out.body.replaced => (Answer::Render(shown(intent, Shown::KeyReplaced)), out.cookies),
                Ok(out) => (Answer::Render(shown(intent, Shown::RecoveryCodes(out.body.recovery_codes))), out.cookies),
                Err(e) => {
                    // Keep the same QR code on the page: the pending secret
                    // is still the one to scan.
                    let mut outcome = failed(intent, e, &posted, &[]);
                    outcome.shown = user
                        .ok()
                        .and_then(|user| protection::pending_enrolment(&state, &user).ok().flatten())
                        .map(Shown::Enrolment);
                    (Answer::Render(outcome), vec![])
                }
            }
        }
        Intent::Regenerate => {
            let result = match crate::wire::parse_code(posted.get("code")) {
                Ok(code) => recovery::regenerate_recovery_codes(&state, &posted.meta, session, code).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(out) => (Answer::Render(shown(intent, Shown::RecoveryCodes(out.recovery_codes))), vec![]),
                Err(e) => (Answer::Render(failed(intent, e, &posted, &[])), vec![]),
            }
        }
        Intent::TurnOff => {
            let result = match crate::wire::parse_any_second_factor(posted.get("code")) {
                Ok(factor) => protection::turn_off(&state, &posted.meta, session, posted.get("password"), factor).await,
                Err(e) => Err(e),
            };
            match result {
                // The browser keeps the form's anchor (`#turn-off`): gone
                // now, so the page opens at its top, the two-factor card.
                Ok(out) => (Answer::Redirect(here.clone()), out.cookies),
                Err(e) => (Answer::Render(failed(intent, e, &posted, &[])), vec![]),
            }
        }
        Intent::ChangePassword => {
            let result = match parse_new_password(posted.get("newPassword")) {
                Ok(new) => {
                    account::change_password(&state, &posted.meta, session, posted.get("currentPassword"), new).await
                }
                Err(e) => Err(e),
            };
            match result {
                Ok(out) => (Answer::Render(shown(intent, Shown::PasswordChanged)), out.cookies),
                Err(e) => (Answer::Render(failed(intent, e, &posted, &[])), vec![]),
            }
        }
        // A passkey's name or its removal: back to the page (its list shows
        // the change), or the page with the error beside that passkey.
        Intent::RenamePasskey => {
            match crate::server::factors::passkeys::rename(&state, &session, posted.get("passkey"), posted.get("name"))
                .await
            {
                Ok(_) => (Answer::Redirect(here.clone()), vec![]),
                Err(e) => (Answer::Render(failed(intent, e, &posted, &["passkey", "name"])), vec![]),
            }
        }
        Intent::RemovePasskey => {
            let password = Some(posted.get("password").to_owned()).filter(|p| !p.is_empty());
            match crate::server::factors::passkeys::remove(
                &state,
                &posted.meta,
                &session,
                posted.get("passkey"),
                password,
                None,
            )
            .await
            {
                Ok(out) => (Answer::Redirect(here.clone()), out.cookies),
                Err(e) => (Answer::Render(failed(intent, e, &posted, &["passkey"])), vec![]),
            }
        }
        Intent::PasskeyCodes => {
            let password = Some(posted.get("password").to_owned()).filter(|p| !p.is_empty());
            match crate::server::factors::passkeys::new_recovery_codes(&state, &posted.meta, &session, password).await {
                Ok(out) => (Answer::Render(shown(intent, Shown::RecoveryCodes(out.recovery_codes))), vec![]),
                Err(e) => (Answer::Render(failed(intent, e, &posted, &[])), vec![]),
            }
        }
        // "Log out" beside one log-in: the list again, saying which ended
        // (this browser's own is a log-out, to the log-in page).
        Intent::EndLogIn => match logins::end_one(&state, &posted.meta, &session, posted.get("login").trim()).await {
            Ok(ended) if ended.current => (Answer::Redirect("/login".into()), logins::cleared_cookies(&state)),
            Ok(ended) => (Answer::Render(shown(intent, Shown::LogInEnded(ended.browser))), vec![]),
            Err(e) => (Answer::Render(failed(intent, e, &posted, &[])), vec![]),
        },
        // "Take back access" beside a connected app: the list again, saying so.
        Intent::RevokeApp => {
            match crate::server::oidc::connected::revoke(&state, &posted.meta, &session, posted.get("app").trim()).await
            {
                Ok(name) => (Answer::Render(shown(intent, Shown::AppRevoked(name))), vec![]),
                Err(e) => (Answer::Render(failed(intent, e, &posted, &[])), vec![]),
            }
        }
        // "Forget" beside a remembered browser, or "Forget all": the list
        // again, saying so (this browser's own cookie goes with its entry).
        Intent::ForgetBrowsers => {
            let id = posted.get("browser").trim().to_owned();
            let result = match (id.is_empty(), posted.get("all") == "1") {
                (false, false) => remembered::forget(&state, &posted.meta, &session, Some(&id)).await,
                (true, true) => remembered::forget(&state, &posted.meta, &session, None).await,
                _ => Err(AppError::bad_request("Choose one remembered browser to forget, or all of them.")),
            };
            match result {
                Ok((done, mine)) => {
                    let cookies = if mine { vec![state.cookies.clear(CookieKind::Remember)] } else { vec![] };
                    (Answer::Render(shown(intent, Shown::BrowsersForgotten(done.message))), cookies)
                }
                Err(e) => (Answer::Render(failed(intent, e, &posted, &[])), vec![]),
            }
        }
        // A second factor shown again for an app behind the gate: on to
        // it (the log-in page checks the way back), else the page again.
        Intent::StepUp => {
            let typed = posted.get("code").trim();
            let result = match crate::wire::parse_any_second_factor(typed) {
                Ok(factor) => proof::step_up(&state, &posted.meta, &session, Some(FactorProof::Typed(factor))).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(_) if !back.is_empty() => (Answer::Redirect(format!("/login{back}")), vec![]),
                Ok(_) => (Answer::Redirect("/security".into()), vec![]),
                Err(e) => (Answer::Render(failed(intent, e, &posted, &[])), vec![]),
            }
        }
        Intent::Everywhere => match logins::log_out_everywhere(&state, &posted.meta, session).await {
            Ok(()) => (Answer::Redirect("/login".into()), logins::cleared_cookies(&state)),
            Err(e) => (Answer::Render(failed(intent, e, &posted, &[])), vec![]),
        },
        _ => return plain_error(AppError::bad_request("Unknown form."), StatusCode::BAD_REQUEST),
    };
    finish(&state, posted.parts, &here, answer, cookies).await
}

/// The one form of each page mail leads to: on success the browser goes
/// to the page's `?done=1` (the token leaves the address bar); otherwise
/// the page is drawn again with the error, keeping the email or the token.
async fn mailed(State(state): State<AppState>, req: Request) -> Response {
    let posted = match Posted::read(&state, req).await {
        Ok(p) => p,
        Err(res) => return res,
    };
    if posted.intent != Some(Intent::Mailed) {
        return plain_error(AppError::bad_request("Unknown form."), StatusCode::BAD_REQUEST);
    }
    let path = posted.parts.uri.path().to_owned();
    let token = posted.get("token").to_owned();
    let meta = &posted.meta;
    let result = match path.as_str() {
        "/forgot-password" => match parse_email(posted.get("email")) {
            Ok(email) => crate::server::mail::links::forgot_password(&state, meta, email).await,
            Err(e) => Err(e),
        },
        "/verify-email" if token.is_empty() => match parse_email(posted.get("email")) {
            Ok(email) => crate::server::mail::links::resend_verification(&state, meta, email).await,
            Err(e) => Err(e),
        },
        "/verify-email" => crate::server::mail::links::verify_email(&state, meta, &token).await,
        "/reset-password" => match parse_new_password(posted.get("newPassword")) {
            Ok(new) => crate::server::mail::links::reset_password(&state, meta, &token, new).await,
            Err(e) => Err(e),
        },
        _ => crate::server::mail::links::lockdown(&state, meta, &token).await,
    };
    let answer = match result {
        Ok(()) => Answer::Redirect(format!("{path}?done=1")),
        Err(e) => Answer::Render(failed(Intent::Mailed, e, &posted, &["email", "token"])),
    };
    finish(&state, posted.parts, &path, answer, vec![]).await
}

/// Log out from any page: ends this session, clears the cookies and goes
/// to the log-in page. Like the API's log-out, it always succeeds.
async fn log_out(State(state): State<AppState>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let cookies = match logins::log_out(&state, &parts.headers).await {
        Ok(cookies) => cookies,
        Err(e) => return e.into_response(),
    };
    finish(&state, parts, "/", Answer::Redirect("/login".into()), cookies).await
}

/// Renews an expired access token for page requests, before the page is
/// rendered: a browser without JavaScript cannot run the refresh itself,
/// and a hydrated one is spared a "restoring your session" flash. The
/// request then carries the new access token, and the response sets it.
/// API calls refresh explicitly (POST /api/authentication/refresh).
pub async fn renew_page_session(State(state): State<AppState>, req: Request, next: axum::middleware::Next) -> Response {
    let path = req.uri().path();
    let page = !(path.starts_with("/api/") || path.starts_with("/pkg/") || path == "/healthz" || path == "/readyz");
    if !page {
        return next.run(req).await;
    }
    let now = state.now();
    let access = state.cookies.from_headers(CookieKind::Access, req.headers());
    let full = access.is_some_and(|t| state.keys.verify(t, Stage::Full, now).is_some());
    let has_live_access = full || access.is_some_and(|t| state.keys.verify(t, Stage::Password, now).is_some());
    let Some(refresh) = state.cookies.from_headers(CookieKind::Refresh, req.headers()).map(str::to_owned) else {
        return next.run(req).await;
    };
    if has_live_access && !full {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    // An unexpired access token whose log-in ended (logged out from
    // another device, say) is renewed or forgotten like an expired one: a
    // browser without JavaScript could not restore it itself, and would
    // wait on "Restoring your session…" for ever.
    if full {
        match FullSession::from_request_parts(&mut parts, &state).await {
            Err(e) if e.error == ErrorKind::Unauthenticated => {}
            _ => return next.run(Request::from_parts(parts, body)).await,
        }
    }
    let meta = RequestMeta::from_request_parts(&mut parts, &state).await.unwrap_or_default();
    let cookies = match logins::refresh(&state, &meta, Some(&refresh)).await {
        Ok(out) => out.cookies,
        Err(e) if e.error == ErrorKind::Unavailable => return e.into_response(),
        // Renewed a moment ago by another request of this browser, whose
        // answer carries the successor: keep what the browser holds.
        Err(e) if e.error == ErrorKind::Conflict => Vec::new(),
        // Ended, spent or expired: the browser forgets it.
        Err(_) => logins::cleared_cookies(&state),
    };
    apply_cookies(&mut parts.headers, &cookies);
    let mut res = next.run(Request::from_parts(parts, body)).await;
    for cookie in cookies {
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    res
}

fn shown(intent: Intent, shown: Shown) -> FormOutcome {
    let mut outcome = FormOutcome::new(intent);
    outcome.shown = Some(shown);
    outcome
}

/// Sends the answer with the cookies. A rendered page is drawn as the GET
/// of `page` would be, seeing the cookies just set, with the outcome in
/// context; its status is the error's (so a failed post is not a 200).
async fn finish(state: &AppState, mut parts: Parts, page: &str, answer: Answer, cookies: Vec<String>) -> Response {
    let mut res = match answer {
        Answer::Redirect(to) => {
            let mut res = StatusCode::SEE_OTHER.into_response();
            if let Ok(to) = HeaderValue::from_str(&to) {
                res.headers_mut().insert(header::LOCATION, to);
            }
            res
        }
        Answer::Render(outcome) => {
            let status =
                outcome.error.as_ref().and_then(|e| StatusCode::from_u16(e.status()).ok()).unwrap_or(StatusCode::OK);
            let retry_after = outcome.error.as_ref().and_then(|e| e.retry_after);
            parts.method = Method::GET;
            if let Ok(uri) = page.parse() {
                parts.uri = uri;
            }
            apply_cookies(&mut parts.headers, &cookies);
            let options = state.leptos_options.clone();
            let context_state = state.clone();
            let render = leptos_axum::render_app_async_with_context(
                move || {
                    provide_context(context_state.clone());
                    provide_context(outcome.clone());
                },
                move || crate::ui::shell(options.clone()),
            );
            let mut res = render(Request::from_parts(parts, Body::empty())).await;
            // A page that redirected while rendering (the session ended)
            // keeps its redirect.
            if !res.headers().contains_key(header::LOCATION) {
                *res.status_mut() = status;
            }
            if let Some(seconds) = retry_after {
                res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
            }
            res
        }
    };
    for cookie in cookies {
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Rewrites the request's `Cookie` header as the browser would send it
/// after these `Set-Cookie` values: set ones replaced, cleared ones gone.
pub fn apply_cookies(headers: &mut http::HeaderMap, set_cookies: &[String]) {
    if set_cookies.is_empty() {
        return;
    }
    let mut jar: Vec<(String, String)> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('=').map(|(n, v)| (n.to_owned(), v.to_owned())))
        .collect();
    for set in set_cookies {
        let Some((name, value)) = set.split(';').next().and_then(|p| p.split_once('=')) else { continue };
        jar.retain(|(n, _)| n != name);
        if !value.is_empty() && !set.contains("Max-Age=0") {
            jar.push((name.to_owned(), value.to_owned()));
        }
    }
    headers.remove(header::COOKIE);
    let joined = jar.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("; ");
    if let Ok(v) = HeaderValue::from_str(&joined) {
        headers.insert(header::COOKIE, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_set_replace_and_clear_the_request_jar() {
        let mut headers = http::HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("access=old; theme=dark; refresh=r1"));
        apply_cookies(
            &mut headers,
            &[
                "access=new; HttpOnly; SameSite=Strict; Path=/; Max-Age=900".into(),
                "refresh=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0".into(),
            ],
        );
        assert_eq!(headers.get(header::COOKIE).unwrap(), "theme=dark; access=new");
    }
}
