//! The HTTP API (DESIGN §2) as Leptos server functions with explicit,
//! stable endpoints under `/api` and camelCase JSON bodies. The browser app
//! calls these functions; any other client calls the same URLs. Each body
//! parses its input into domain types, calls one service function and maps
//! the result: no logic lives here.

use leptos::prelude::*;
use leptos::server_fn::codec::{GetUrl, Json};

use crate::error::AppError;
// The pages and other callers name the wire types through `api` too.
pub use crate::wire::*;

/// POST /api/authentication/register → 201 with the user.
#[server(prefix = "/api", endpoint = "authentication/register", input = Json)]
pub async fn register(email: String, name: String, password: String) -> Result<User, AppError> {
    use crate::server::{account, app_state, identity, set_status};
    let state = app_state()?;
    let meta = crate::server::extract::<crate::server::request::RequestMeta>(&state).await?;
    let (email, name, password) = match parse_registration(&email, &name, &password) {
        Ok(parsed) => parsed,
        Err(e) => return Err(identity::weak_password_too(&state, &meta, e, &email, &name, &password).await),
    };
    let user = account::register(&state, &meta, email, name, password).await?;
    set_status(http::StatusCode::CREATED);
    Ok(user)
}

/// POST /api/authentication/log-in → the user and whether a code is owed;
/// sets the session cookies (a password-stage one when 2FA is on).
#[server(prefix = "/api", endpoint = "authentication/log-in", input = Json)]
pub async fn log_in(email: String, password: String) -> Result<LogInResponse, AppError> {
    use crate::server::{account, app_state, extract, request::RequestMeta, set_cookies};
    let state = app_state()?;
    let meta = extract::<RequestMeta>(&state).await?;
    let email = parse_email(&email)?;
    let out = account::log_in(&state, &meta, email, &password).await?;
    set_cookies(&out.cookies);
    Ok(out.body)
}

/// POST /api/2fa/authenticate: a password-stage session plus a current code
/// or a recovery code becomes a full session. `remember: true` remembers
/// the browser (no second factor asked there for `REMEMBER_DAYS`).
#[server(prefix = "/api", endpoint = "2fa/authenticate", input = Json)]
pub async fn authenticate_two_factor(
    #[server(rename = "twoFactorAuthenticationCode")] code: Option<String>,
    #[server(rename = "recoveryCode")] recovery_code: Option<String>,
    #[server(default)] remember: Option<bool>,
) -> Result<User, AppError> {
    use crate::server::{account, app_state, auth::PasswordStage, extract, request::RequestMeta, set_cookies};
    let state = app_state()?;
    let session = extract::<PasswordStage>(&state).await?;
    let meta = extract::<RequestMeta>(&state).await?;
    let factor = match parse_second_factor(code.as_deref(), recovery_code.as_deref()) {
        Ok(factor) => factor,
        // A log-in that is over is said first, as for a well-formed code.
        Err(e) => {
            let row = state.db.user_by_id(session.id).await?;
            session.with_row(row)?;
            return Err(e);
        }
    };
    let out = account::authenticate(&state, &meta, session, factor, remember.unwrap_or(false)).await?;
    set_cookies(&out.cookies);
    Ok(out.body)
}

/// POST /api/2fa/generate: a new pending secret for the enrolment wizard.
/// With 2FA off it needs `password` unless the log-in was within the last
/// 5 minutes; while the app is on (a new phone) it needs a second factor:
/// `twoFactorAuthenticationCode`, `recoveryCode` or `passkey` (the answer
/// to POST /api/webauthn/proof/start).
#[server(prefix = "/api", endpoint = "2fa/generate", input = Json)]
pub async fn generate_two_factor(
    #[server(rename = "twoFactorAuthenticationCode")] code: Option<String>,
    password: Option<String>,
    #[server(rename = "recoveryCode")] recovery_code: Option<String>,
    passkey: Option<PasskeyAnswer>,
) -> Result<GenerateResponse, AppError> {
    use crate::server::factors::protection;
    use crate::server::full_request;
    let (state, session, meta) = full_request().await?;
    let factor = factor_proof(code.as_deref(), recovery_code.as_deref(), passkey.as_ref())?;
    protection::generate(&state, &meta, session, factor, password.as_deref()).await
}

/// A second factor sent as proof: a typed code, or a passkey's answer;
/// not both.
#[cfg(feature = "ssr")]
fn factor_proof<'a>(
    code: Option<&str>,
    recovery_code: Option<&str>,
    passkey: Option<&'a PasskeyAnswer>,
) -> Result<Option<crate::server::factors::proof::FactorProof<'a>>, AppError> {
    use crate::server::factors::proof::FactorProof;
    let present = |v: Option<&str>| v.map(str::trim).is_some_and(|v| !v.is_empty());
    Ok(match (passkey, present(code) || present(recovery_code)) {
        (Some(_), true) => return Err(AppError::bad_request("Send a code or a passkey, not both.")),
        (Some(p), false) => Some(FactorProof::Passkey { ceremony: &p.ceremony, credential: &p.credential }),
        (None, true) => Some(FactorProof::Typed(parse_second_factor(code, recovery_code)?)),
        (None, false) => None,
    })
}

/// POST /api/2fa/step-up: a second factor shown again by someone logged
/// in (`twoFactorAuthenticationCode`, `recoveryCode` or `passkey`, as for
/// /api/2fa/generate), written into the log-in: what an access rule with
/// `fresh` or `remembered = false` asks for.
#[server(prefix = "/api", endpoint = "2fa/step-up", input = Json)]
pub async fn step_up(
    #[server(rename = "twoFactorAuthenticationCode")] code: Option<String>,
    #[server(rename = "recoveryCode")] recovery_code: Option<String>,
    passkey: Option<PasskeyAnswer>,
) -> Result<Done, AppError> {
    use crate::server::factors::proof;
    use crate::server::full_request;
    let (state, session, meta) = full_request().await?;
    let factor = factor_proof(code.as_deref(), recovery_code.as_deref(), passkey.as_ref())?;
    proof::step_up(&state, &meta, &session, factor).await
}

/// POST /api/webauthn/proof/start: a passkey ceremony whose answer proves
/// it is you before a change (`passkey` of /api/2fa/generate).
#[server(prefix = "/api", endpoint = "webauthn/proof/start", input = Json)]
pub async fn passkey_proof_start() -> Result<serde_json::Value, AppError> {
    use crate::server::{factors::passkeys, full_request};
    let (state, session, _) = full_request().await?;
    passkeys::proof_start(&state, &session).await
}

/// POST /api/2fa/turn-on: confirms the pending secret with a code; answers
/// the user and 10 recovery codes.
#[server(prefix = "/api", endpoint = "2fa/turn-on", input = Json)]
pub async fn turn_on_two_factor(
    #[server(rename = "twoFactorAuthenticationCode")] code: String,
) -> Result<TurnOnResponse, AppError> {
    use crate::server::{factors::protection, full_request, set_cookies};
    let (state, session, meta) = full_request().await?;
    let out = protection::turn_on(&state, &meta, session, &code).await?;
    set_cookies(&out.cookies);
    Ok(out.body)
}

/// POST /api/2fa/turn-off: the password and a current code or a recovery code.
#[server(prefix = "/api", endpoint = "2fa/turn-off", input = Json)]
pub async fn turn_off_two_factor(
    password: String,
    #[server(rename = "twoFactorAuthenticationCode")] code: Option<String>,
    #[server(rename = "recoveryCode")] recovery_code: Option<String>,
) -> Result<User, AppError> {
    use crate::server::{factors::protection, full_request, set_cookies};
    let (state, session, meta) = full_request().await?;
    let factor = parse_second_factor(code.as_deref(), recovery_code.as_deref())?;
    let out = protection::turn_off(&state, &meta, session, &password, factor).await?;
    set_cookies(&out.cookies);
    Ok(out.body)
}

/// POST /api/2fa/recovery-codes: a new set (the old ones stop working).
#[server(prefix = "/api", endpoint = "2fa/recovery-codes", input = Json)]
pub async fn regenerate_recovery_codes(
    #[server(rename = "twoFactorAuthenticationCode")] code: String,
) -> Result<RecoveryCodesResponse, AppError> {
    use crate::server::{factors::recovery, full_request};
    let (state, session, meta) = full_request().await?;
    let code = parse_code(&code)?;
    recovery::regenerate_recovery_codes(&state, &meta, session, code).await
}

/// GET /api/2fa/status: whether 2FA is on and how many recovery codes are left.
#[server(prefix = "/api", endpoint = "2fa/status", input = GetUrl)]
pub async fn fetch_two_factor_status() -> Result<TwoFactorStatus, AppError> {
    use crate::server::{app_state, auth::FullSession, extract, factors::protection};
    let state = app_state()?;
    let session = extract::<FullSession>(&state).await?;
    protection::status(&state, session).await
}

/// GET /api/2fa/recovery-log-in: how many recovery codes are left when
/// this log-in was reached with one (`null` otherwise), so the page it
/// lands on can offer a new set.
#[server(prefix = "/api", endpoint = "2fa/recovery-log-in", input = GetUrl)]
pub async fn fetch_recovery_log_in() -> Result<Option<i64>, AppError> {
    use crate::server::{app_state, auth::FullSession, extract, logins::Amr};
    let state = app_state()?;
    let session = extract::<FullSession>(&state).await?;
    if !session.user.amr.has(Amr::RECOVERY_CODE) {
        return Ok(None);
    }
    Ok(Some(state.db.recovery_codes_left(session.user.id).await?))
}

/// GET /api/webauthn/passkeys: the person's passkeys and security keys.
#[server(prefix = "/api", endpoint = "webauthn/passkeys", input = GetUrl)]
pub async fn fetch_passkeys() -> Result<PasskeyList, AppError> {
    use crate::server::{app_state, auth::FullSession, extract, factors::passkeys};
    let state = app_state()?;
    let session = extract::<FullSession>(&state).await?;
    passkeys::list(&state, &session).await
}

/// GET /api/authentication: the current user, for a full session only.
#[server(prefix = "/api", endpoint = "authentication", input = GetUrl)]
pub async fn current_user() -> Result<User, AppError> {
    use crate::server::{app_state, auth::FullSession, extract};
    let state = app_state()?;
    let session = extract::<FullSession>(&state).await?;
    let mut user = User::from(&session.user);
    // The pages compare it with the browser's zone (see `ui::session`);
    // from the session, so the session cache still answers this request.
    user.time_zone = session.user.time_zone.clone();
    user.two_factor_due = crate::server::account::two_factor_due(&state, &session.user);
    // As `admin::require_admin` lets in: the group, and two factors on.
    user.is_admin = session.user.admin && session.user.two_factor();
    Ok(user)
}

/// POST /api/account/time-zone: the browser's IANA time zone (`timeZone`,
/// e.g. `Europe/Berlin`), stored on the account for the times on its pages
/// and in its mail. An unknown name is refused with 400, nothing stored.
#[server(prefix = "/api", endpoint = "account/time-zone", input = Json)]
pub async fn set_time_zone(#[server(rename = "timeZone")] time_zone: String) -> Result<TimeZoneSet, AppError> {
    use crate::server::{app_state, auth::FullSession, extract, time_zone};
    let state = app_state()?;
    let session = extract::<FullSession>(&state).await?;
    Ok(TimeZoneSet { time_zone: time_zone::set(&state, &session, &time_zone).await? })
}

/// POST /api/authentication/refresh: rotates the refresh token and issues a
/// new access token. A reused refresh token ends its whole session family.
#[server(prefix = "/api", endpoint = "authentication/refresh", input = Json)]
pub async fn refresh() -> Result<User, AppError> {
    use crate::server::crypto::tokens::CookieKind;
    use crate::server::{app_state, extract, logins, request::RequestMeta, request_headers, set_cookies};
    let state = app_state()?;
    let meta = extract::<RequestMeta>(&state).await?;
    let headers = request_headers()?;
    let token = state.cookies.from_headers(CookieKind::Refresh, &headers);
    match logins::refresh(&state, &meta, token).await {
        Ok(out) => {
            set_cookies(&out.cookies);
            Ok(out.body)
        }
        Err(e) => {
            // A log-in that ended: the browser forgets it. (A 409 says the
            // browser already holds the successor: nothing to clear.)
            if e.status() == 401 {
                set_cookies(&logins::cleared_cookies(&state));
            }
            Err(e)
        }
    }
}

/// POST /api/authentication/log-out: ends this session and clears the
/// cookies. Always 200.
#[server(prefix = "/api", endpoint = "authentication/log-out", input = Json)]
pub async fn log_out() -> Result<Done, AppError> {
    use crate::server::{app_state, logins, request_headers, set_cookies};
    let state = app_state()?;
    set_cookies(&logins::log_out(&state, &request_headers()?).await?);
    Ok(Done::new("Logged out."))
}

/// POST /api/authentication/log-out-everywhere: ends every session of the
/// user on every device, this one included.
#[server(prefix = "/api", endpoint = "authentication/log-out-everywhere", input = Json)]
pub async fn log_out_everywhere() -> Result<Done, AppError> {
    use crate::server::{full_request, logins, set_cookies};
    let (state, session, meta) = full_request().await?;
    logins::log_out_everywhere(&state, &meta, session).await?;
    set_cookies(&logins::cleared_cookies(&state));
    Ok(Done::new("Logged out everywhere."))
}

/// GET /api/authentication/log-ins: the person's live log-ins, this
/// browser's first (marked `current`), then the most recently seen.
#[server(prefix = "/api", endpoint = "authentication/log-ins", input = GetUrl)]
pub async fn fetch_log_ins() -> Result<Vec<LogInView>, AppError> {
    use crate::server::{app_state, auth::FullSession, extract, logins};
    let state = app_state()?;
    let session = extract::<FullSession>(&state).await?;
    logins::list(&state, &session).await
}

/// POST /api/authentication/log-ins/end: ends one of the person's own
/// log-ins, by the `id` the list gave (404 for any other). Ending this
/// browser's own log-in logs it out.
#[server(prefix = "/api", endpoint = "authentication/log-ins/end", input = Json)]
pub async fn end_log_in(id: String) -> Result<Done, AppError> {
    use crate::server::{full_request, logins, set_cookies};
    let (state, session, meta) = full_request().await?;
    let ended = logins::end_one(&state, &meta, &session, id.trim()).await?;
    if ended.current {
        set_cookies(&logins::cleared_cookies(&state));
    }
    Ok(Done::new(format!("Logged out {}.", ended.browser)))
}

/// GET /api/2fa/remembered-browsers: the person's browsers that skip the
/// second factor (this one marked `current`), the most recently used first.
#[server(prefix = "/api", endpoint = "2fa/remembered-browsers", input = GetUrl)]
pub async fn fetch_remembered_browsers() -> Result<Vec<RememberedBrowserView>, AppError> {
    use crate::server::{factors::remembered, full_request};
    let (state, session, meta) = full_request().await?;
    remembered::list(&state, &meta, &session).await
}

/// POST /api/2fa/remembered-browsers/forget: `{"id": …}` forgets one (404
/// if there is none by that id), `{"all": true}` every one; each is asked
/// for a second factor at its next log-in.
#[server(prefix = "/api", endpoint = "2fa/remembered-browsers/forget", input = Json)]
pub async fn forget_remembered_browsers(
    #[server(default)] id: Option<String>,
    #[server(default)] all: Option<bool>,
) -> Result<Done, AppError> {
    use crate::server::{factors::remembered, full_request, set_cookies};
    let (state, session, meta) = full_request().await?;
    let id = match (id.as_deref().map(str::trim), all) {
        (Some(id), None | Some(false)) if !id.is_empty() => Some(id),
        (None, Some(true)) => None,
        _ => return Err(AppError::bad_request("Send the \"id\" of one remembered browser, or \"all\": true.")),
    };
    let (done, mine) = remembered::forget(&state, &meta, &session, id).await?;
    if mine {
        set_cookies(&[state.cookies.clear(crate::server::crypto::tokens::CookieKind::Remember)]);
    }
    Ok(done)
}

/// POST /api/authentication/change-password: needs the current password;
/// every other session ends.
#[server(prefix = "/api", endpoint = "authentication/change-password", input = Json)]
pub async fn change_password(
    #[server(rename = "currentPassword")] current_password: String,
    #[server(rename = "newPassword")] new_password: String,
) -> Result<User, AppError> {
    use crate::server::{account, full_request, set_cookies};
    let (state, session, meta) = full_request().await?;
    let new = parse_new_password(&new_password)?;
    let out = account::change_password(&state, &meta, session, &current_password, new).await?;
    set_cookies(&out.cookies);
    Ok(out.body)
}

/// GET /api/authentication/activity: the user's recent security events.
#[server(prefix = "/api", endpoint = "authentication/activity", input = GetUrl)]
pub async fn fetch_activity() -> Result<Activity, AppError> {
    use crate::server::{account, app_state, auth::FullSession, extract};
    let state = app_state()?;
    let session = extract::<FullSession>(&state).await?;
    account::activity(&state, session).await
}

/// POST /api/authentication/forgot-password → 202 whether or not an
/// account has the address; a reset link is mailed if one does.
#[server(prefix = "/api", endpoint = "authentication/forgot-password", input = Json)]
pub async fn forgot_password(email: String) -> Result<(), AppError> {
    use crate::server::{app_state, extract, mail::links, request::RequestMeta, set_status};
    let state = app_state()?;
    let meta = extract::<RequestMeta>(&state).await?;
    links::forgot_password(&state, &meta, parse_email(&email)?).await?;
    set_status(http::StatusCode::ACCEPTED);
    Ok(())
}

/// POST /api/authentication/reset-password: a reset link's token and the
/// new password. Every session ends; nobody is logged in.
#[server(prefix = "/api", endpoint = "authentication/reset-password", input = Json)]
pub async fn reset_password(
    token: String,
    #[server(rename = "newPassword")] new_password: String,
) -> Result<(), AppError> {
    use crate::server::{app_state, extract, mail::links, request::RequestMeta};
    let state = app_state()?;
    let meta = extract::<RequestMeta>(&state).await?;
    let new = parse_new_password(&new_password)?;
    links::reset_password(&state, &meta, &token, new).await
}

/// POST /api/authentication/verify-email: proves the address with the
/// token of its link.
#[server(prefix = "/api", endpoint = "authentication/verify-email", input = Json)]
pub async fn verify_email(token: String) -> Result<(), AppError> {
    use crate::server::{app_state, extract, mail::links, request::RequestMeta};
    let state = app_state()?;
    let meta = extract::<RequestMeta>(&state).await?;
    links::verify_email(&state, &meta, &token).await
}

/// POST /api/authentication/check-link: what a mailed link (`kind`:
/// `reset`, `verify` or `lockdown`) can still do, without using it.
#[server(prefix = "/api", endpoint = "authentication/check-link", input = Json)]
pub async fn check_link(kind: String, token: String) -> Result<LinkCheck, AppError> {
    use crate::server::{app_state, mail::links};
    let state = app_state()?;
    links::check(&state, &kind, &token).await
}

/// POST /api/authentication/resend-verification → 202 for any address.
#[server(prefix = "/api", endpoint = "authentication/resend-verification", input = Json)]
pub async fn resend_verification(email: String) -> Result<(), AppError> {
    use crate::server::{app_state, extract, mail::links, request::RequestMeta, set_status};
    let state = app_state()?;
    let meta = extract::<RequestMeta>(&state).await?;
    links::resend_verification(&state, &meta, parse_email(&email)?).await?;
    set_status(http::StatusCode::ACCEPTED);
    Ok(())
}

/// POST /api/authentication/lockdown: a security notice's "This wasn't me"
/// token. Every session ends and log-in waits for a password reset.
#[server(prefix = "/api", endpoint = "authentication/lockdown", input = Json)]
pub async fn lockdown(token: String) -> Result<(), AppError> {
    use crate::server::{app_state, extract, mail::links, request::RequestMeta};
    let state = app_state()?;
    let meta = extract::<RequestMeta>(&state).await?;
    links::lockdown(&state, &meta, &token).await
}

/// POST /api/oidc/consent-request: what an app's sign-in request (the
/// authorize query, as the consent page received it) asks of the person;
/// 400 with the reason when it cannot be answered.
#[server(prefix = "/api", endpoint = "oidc/consent-request", input = Json)]
pub async fn describe_consent(request: String) -> Result<ConsentView, AppError> {
    use crate::server::oidc::authorize::{self, AuthorizeRequest};
    use crate::server::{app_state, auth::FullSession, extract};
    let state = app_state()?;
    extract::<FullSession>(&state).await?;
    let req = serde_urlencoded::from_str::<AuthorizeRequest>(request.trim_start_matches('?'))
        .map_err(|_| AppError::bad_request("The sign-in request is malformed."))?;
    match authorize::describe(&state, &req).await? {
        Ok(c) => Ok(ConsentView { client_name: c.client_name, scopes: c.scopes }),
        Err(problem) => Err(AppError::bad_request(problem)),
    }
}

/// GET /api/oidc/connected-apps: the apps the person signs in to through
/// the portal, what each may know, when it last signed them in.
#[server(prefix = "/api", endpoint = "oidc/connected-apps", input = GetUrl)]
pub async fn fetch_connected_apps() -> Result<Vec<ConnectedApp>, AppError> {
    use crate::server::{app_state, auth::FullSession, extract, oidc};
    let state = app_state()?;
    let session = extract::<FullSession>(&state).await?;
    oidc::connected::list(&state, &session).await
}

/// POST /api/oidc/connected-apps/revoke: takes back an app's access (its
/// sign-ins end with every token; it asks for consent again next time).
#[server(prefix = "/api", endpoint = "oidc/connected-apps/revoke", input = Json)]
pub async fn revoke_app(#[server(rename = "clientId")] client_id: String) -> Result<Done, AppError> {
    use crate::server::{full_request, oidc};
    let (state, session, meta) = full_request().await?;
    let name = oidc::connected::revoke(&state, &meta, &session, client_id.trim()).await?;
    Ok(Done::new(format!("{name} can no longer sign you in without asking.")))
}

/// GET /api/admin/people: a page of the people list (administrators only:
/// members of `ADMIN_GROUP` with two factors on; 403 for anyone else).
/// `search` in email or name, `group` exact, `order` `created` or
/// `last-log-in`, `page` from 1.
#[server(prefix = "/api", endpoint = "admin/people", input = GetUrl)]
pub async fn fetch_people(
    #[server(default)] search: String,
    #[server(default)] group: String,
    #[server(default)] order: String,
    #[server(default)] page: Option<i64>,
) -> Result<crate::wire::admin::PeoplePage, AppError> {
    use crate::server::{admin, app_state, auth::FullSession, extract};
    let state = app_state()?;
    let session = extract::<FullSession>(&state).await?;
    admin::people(&state, &session, &search, &group, &order, page.unwrap_or(1)).await
}

/// GET /api/admin/person: one person's account as the admin page shows it.
#[server(prefix = "/api", endpoint = "admin/person", input = GetUrl)]
pub async fn fetch_person(id: i64) -> Result<crate::wire::admin::PersonView, AppError> {
    use crate::server::{admin, app_state, auth::FullSession, extract};
    let state = app_state()?;
    let session = extract::<FullSession>(&state).await?;
    admin::person(&state, &session, id).await
}

/// POST /api/admin/act: an administrator's change to a person's account
/// (`action`: `end-log-in` with the log-in's handle as `argument`,
/// `end-all-log-ins`, `confirm-email`, `reset-factors`, `add-group` or
/// `remove-group` with the group, `remove-passkey` with its id, `lock`,
/// `unlock`, `send-reset`, `delete` with the account's email address).
/// Needs a log-in within 5 minutes, the administrator's password or a
/// current code.
#[server(prefix = "/api", endpoint = "admin/act", input = Json)]
pub async fn admin_act(
    person: i64,
    action: String,
    #[server(default)] argument: String,
    #[server(default)] password: Option<String>,
    #[server(default)] code: Option<String>,
) -> Result<Done, AppError> {
    use crate::server::factors::proof::Proof;
    use crate::server::{admin, full_request};
    use crate::wire::admin::AdminAction;
    let (state, session, meta) = full_request().await?;
    let action = AdminAction::parse(&action, &argument).ok_or_else(|| {
        AppError::bad_request(
            "Unknown action: end-log-in, end-all-log-ins, confirm-email, reset-factors, add-group, remove-group, \
             remove-passkey, lock, unlock, send-reset or delete.",
        )
    })?;
    let proof = Proof { password: password.as_deref(), code: code.as_deref() };
    admin::act(&state, &meta, &session, person, action, proof).await
}

/// GET /api/admin/activity: the audit trail of every account, newest
/// first, 50 a page. Filters: `person` (part of an email address), `kind`
/// (an event kind as `kinds` lists them), `from` and `to` (dates,
/// YYYY-MM-DD, both included, in the administrator's time zone), `ip` (an
/// address or its start, "10.0."). The same filters give the CSV at
/// GET /admin/activity.csv.
#[server(prefix = "/api", endpoint = "admin/activity", input = GetUrl)]
pub async fn fetch_admin_activity(
    #[server(default)] person: String,
    #[server(default)] kind: String,
    #[server(default)] from: String,
    #[server(default)] to: String,
    #[server(default)] ip: String,
    #[server(default)] page: Option<i64>,
) -> Result<crate::wire::admin::ActivityPage, AppError> {
    use crate::server::{admin, app_state, auth::FullSession, extract};
    let state = app_state()?;
    let session = extract::<FullSession>(&state).await?;
    let filter = crate::wire::admin::ActivityFilter { person, kind, from, to, ip };
    admin::activity::page(&state, &session, &filter, page.unwrap_or(1)).await
}

/// GET /api/admin/groups: every group with its members and how many have
/// two factors on.
#[server(prefix = "/api", endpoint = "admin/groups", input = GetUrl)]
pub async fn fetch_groups() -> Result<crate::wire::admin::GroupsView, AppError> {
    use crate::server::{admin, app_state, auth::FullSession, extract};
    let state = app_state()?;
    let session = extract::<FullSession>(&state).await?;
    admin::groups::list(&state, &session).await
}

/// POST /api/admin/group: `action` `create` (the group `name`, its first
/// member's address as `argument`), `rename` (to `argument`), `delete`,
/// `deadline` (two factors on by the date in `argument`, YYYY-MM-DD; `days`
/// of grace for someone who joins later, 14 by default) or `no-deadline`.
/// The same proof as /api/admin/act.
#[server(prefix = "/api", endpoint = "admin/group", input = Json)]
pub async fn admin_group(
    action: String,
    name: String,
    #[server(default)] argument: String,
    #[server(default)] days: Option<i64>,
    #[server(default)] password: Option<String>,
    #[server(default)] code: Option<String>,
) -> Result<Done, AppError> {
    use crate::server::factors::proof::Proof;
    use crate::server::{admin, full_request};
    use crate::wire::admin::GroupAction;
    let (state, session, meta) = full_request().await?;
    let days = days.map(|d| d.to_string()).unwrap_or_default();
    let action = GroupAction::parse(&action, &name, &argument, &days).ok_or_else(|| {
        AppError::bad_request(
            "Unknown action: create (with the first member's address), rename, delete, deadline (with the date) \
             or no-deadline.",
        )
    })?;
    let proof = Proof { password: password.as_deref(), code: code.as_deref() };
    admin::groups::change(&state, &meta, &session, action, proof).await
}

/// GET /api/admin/invitations: the newest 100 invitations with what
/// became of each, and the groups a new one may give.
#[server(prefix = "/api", endpoint = "admin/invitations", input = GetUrl)]
pub async fn fetch_invitations() -> Result<crate::wire::admin::InvitationsView, AppError> {
    use crate::server::{admin, app_state, auth::FullSession, extract};
    let state = app_state()?;
    let session = extract::<FullSession>(&state).await?;
    admin::invitations::list(&state, &session).await
}

/// POST /api/admin/invitation: a new invitation, every field optional:
/// `email` it is bound to, `groups`, `days` 1 to 30 (7), `mail` to send its
/// link to `email`; otherwise the answer's `link`, shown once. The same
/// proof as /api/admin/act.
#[server(prefix = "/api", endpoint = "admin/invitation", input = Json)]
pub async fn admin_invitation(
    #[server(default)] email: String,
    #[server(default)] groups: Vec<String>,
    #[server(default)] days: Option<i64>,
    #[server(default)] mail: bool,
    #[server(default)] password: Option<String>,
    #[server(default)] code: Option<String>,
) -> Result<Done, AppError> {
    use crate::server::factors::proof::Proof;
    use crate::server::{admin, full_request};
    use crate::wire::admin::{INVITATION_DAYS, InvitationAction};
    let (state, session, meta) = full_request().await?;
    let action = InvitationAction::Create { email, groups, days: days.unwrap_or(INVITATION_DAYS.0), mail };
    let proof = Proof { password: password.as_deref(), code: code.as_deref() };
    admin::invitations::change(&state, &meta, &session, action, proof).await
}

/// POST /api/admin/invitation/revoke: revokes the invitation `id` while it
/// is not used (404 otherwise). The same proof as /api/admin/act.
#[server(prefix = "/api", endpoint = "admin/invitation/revoke", input = Json)]
pub async fn revoke_invitation(
    id: i64,
    #[server(default)] password: Option<String>,
    #[server(default)] code: Option<String>,
) -> Result<Done, AppError> {
    use crate::server::factors::proof::Proof;
    use crate::server::{admin, full_request};
    use crate::wire::admin::InvitationAction;
    let (state, session, meta) = full_request().await?;
    let proof = Proof { password: password.as_deref(), code: code.as_deref() };
    admin::invitations::change(&state, &meta, &session, InvitationAction::Revoke { id }, proof).await
}

/// GET /api/admin/apps: the OpenID apps with their settings, and where
/// apps find the portal.
#[server(prefix = "/api", endpoint = "admin/apps", input = GetUrl)]
pub async fn fetch_apps() -> Result<crate::wire::admin::AppsView, AppError> {
    use crate::server::{admin, app_state, auth::FullSession, extract};
    let state = app_state()?;
    let session = extract::<FullSession>(&state).await?;
    admin::apps::list(&state, &session).await
}

/// POST /api/admin/app: `action` `create` (the settings in `app`; a
/// confidential app's secret is in the answer's `secret`, shown once),
/// `change` (app `id`, its new `app` settings; its kind stays),
/// `rotate-secret` (a new `secret`; the previous one works until
/// `remove-old-secret`) or `remove` (`confirm`: the app's name). The same
/// proof as /api/admin/act.
#[server(prefix = "/api", endpoint = "admin/app", input = Json)]
pub async fn admin_app(
    action: String,
    #[server(default)] id: String,
    #[server(default)] app: crate::wire::admin::AppSettings,
    #[server(default)] confirm: String,
    #[server(default)] password: Option<String>,
    #[server(default)] code: Option<String>,
) -> Result<Done, AppError> {
    use crate::server::factors::proof::Proof;
    use crate::server::{admin, full_request};
    use crate::wire::admin::AppAction;
    let (state, session, meta) = full_request().await?;
    let action = AppAction::parse(&action, id, app, confirm).ok_or_else(|| {
        AppError::bad_request("Unknown action: create, change, rotate-secret, remove-old-secret or remove.")
    })?;
    let proof = Proof { password: password.as_deref(), code: code.as_deref() };
    admin::apps::change(&state, &meta, &session, action, proof).await
}

/// POST /api/authentication/accept-invitation → 201 with the user: a
/// sign-up with an invitation's `token` (whatever `SIGNUP` says), in the
/// invitation's groups; its address confirmed when the link came by mail.
#[server(prefix = "/api", endpoint = "authentication/accept-invitation", input = Json)]
pub async fn accept_invitation(token: String, email: String, name: String, password: String) -> Result<User, AppError> {
    use crate::server::{account, app_state, identity, set_status};
    let state = app_state()?;
    let meta = crate::server::extract::<crate::server::request::RequestMeta>(&state).await?;
    let (email, name, password) = match parse_registration(&email, &name, &password) {
        Ok(parsed) => parsed,
        Err(e) => return Err(identity::weak_password_too(&state, &meta, e, &email, &name, &password).await),
    };
    let user = account::register_invited(&state, &meta, &token, email, name, password).await?;
    set_status(http::StatusCode::CREATED);
    Ok(user)
}

/// GET /api/admin/overview: accounts and their protection, each group's
/// two-factor adoption, the last 24 hours' log-ins and failures, the mail
/// and back-channel queues, the version and the database.
#[server(prefix = "/api", endpoint = "admin/overview", input = GetUrl)]
pub async fn fetch_overview() -> Result<crate::wire::admin::Overview, AppError> {
    use crate::server::{admin, app_state, auth::FullSession, extract};
    let state = app_state()?;
    let session = extract::<FullSession>(&state).await?;
    admin::overview::overview(&state, &session).await
}

/// GET /api/admin/rules: the gate's access rules, one line each; with
/// `url` (and `method`, `person`, `from`: the client's address), what the
/// gate answers for it: someone not logged in, and the person with the
/// password alone and with two factors.
#[server(prefix = "/api", endpoint = "admin/rules", input = GetUrl)]
pub async fn fetch_rules(
    #[server(default)] url: String,
    #[server(default)] method: String,
    #[server(default)] person: String,
    #[server(default)] from: String,
) -> Result<crate::wire::admin::RulesView, AppError> {
    use crate::server::{admin, app_state, auth::FullSession, extract};
    let state = app_state()?;
    let session = extract::<FullSession>(&state).await?;
    admin::rules::rules(&state, &session, &url, &method, &person, &from).await
}
