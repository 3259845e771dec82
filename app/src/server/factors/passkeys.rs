//! Passkeys and security keys: registering, listing, renaming and removing
//! them, and logging in with one (as the second factor after the password,
//! or alone, without a password). The WebAuthn checks themselves are in
//! `webauthn`; this module keeps the ceremonies, the limits, the sessions
//! and the audit trail, and serves `/api/webauthn/...` (camelCase JSON).
//!
//! - A ceremony's state stays in the database under the SHA-256 of a
//!   random handle the client holds, for 5 minutes, and is taken out by
//!   the finish step in one statement: finished once, on any instance.
//! - Registering and removing need a full session and proof within the
//!   last 5 minutes: a fresh log-in, the password, or a current code.
//! - The first passkey turns two-factor protection on (with recovery codes
//!   and every other session ended, as turning the app on does); removing
//!   the last one while no app is set up turns it off again.
//! - Every assertion counts under the same guessing limits as a code.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderValue, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};

use super::webauthn::{Refusal, RelyingParty};
use crate::error::{AppError, ErrorKind};
use crate::server::WithCookies;
use crate::server::account;
use crate::server::audit::audit;
use crate::server::auth::{FullSession, PasswordSession};
use crate::server::crypto::{random_bytes, sha256_hex};
use crate::server::db::{NewCeremony, NewPasskey, PasskeyRow, UserRow};
use crate::server::logins::{self, Amr};
use crate::server::request::RequestMeta;
use crate::server::state::AppState;
use crate::server::throttle::{Attempt, OnSuccess};
use crate::wire::{AuditKind, PasskeyList, PasskeyView, RecoveryCodesResponse, User};

/// How long a ceremony may take, start to finish.
pub const CEREMONY_SECONDS: i64 = 5 * 60;
/// The longest name a passkey may have, in characters.
pub const MAX_NAME_CHARS: usize = 64;

pub fn routes() -> Router<AppState> {
    Router::new()
        // GET /api/webauthn/passkeys is a server function (`api`): the
        // security page reads it.
        .route("/api/webauthn/passkeys/{id}/rename", post(rename_route))
        .route("/api/webauthn/passkeys/{id}/remove", post(remove_route))
        .route("/api/webauthn/register/start", post(register_start))
        .route("/api/webauthn/register/finish", post(register_finish))
        .route("/api/webauthn/authenticate/start", post(second_factor_start))
        .route("/api/webauthn/authenticate/finish", post(second_factor_finish))
        .route("/api/webauthn/sign-in/start", post(sign_in_start))
        .route("/api/webauthn/sign-in/finish", post(sign_in_finish))
        .route("/api/webauthn/recovery-codes", post(recovery_codes_route))
}

// ---------------------------------------------------------------- bodies

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Proof {
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    two_factor_authentication_code: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RegisterStart {
    name: String,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    two_factor_authentication_code: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Finish {
    ceremony: String,
    credential: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Rename {
    name: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Empty {}

fn body<T: serde::de::DeserializeOwned>(bytes: &Bytes) -> Result<T, AppError> {
    let bytes = if bytes.is_empty() { &b"{}"[..] } else { &bytes[..] };
    serde_json::from_slice(bytes).map_err(|e| AppError::body_not_valid(&e.to_string()))
}

fn answer<T: serde::Serialize>(status: StatusCode, body: &T, cookies: &[String]) -> Response {
    let mut res = (status, axum::Json(body)).into_response();
    for cookie in cookies {
        if let Ok(v) = HeaderValue::from_str(cookie) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    res
}

fn respond<T: serde::Serialize>(result: Result<(StatusCode, WithCookies<T>), AppError>) -> Response {
    match result {
        Ok((status, out)) => answer(status, &out.body, &out.cookies),
        Err(e) => e.into_response(),
    }
}

fn ok<T>(body: T) -> Result<(StatusCode, WithCookies<T>), AppError> {
    Ok((StatusCode::OK, WithCookies { body, cookies: vec![] }))
}

// ---------------------------------------------------------------- helpers

/// A passkey's name: trimmed, 1 to 64 characters, no control characters.
pub fn parse_name(name: &str) -> Result<String, AppError> {
    let name = name.trim();
    let fail = |message: &str| {
        let mut e = AppError::bad_request(message);
        e.fields.insert("name".into(), message.into());
        e
    };
    if name.is_empty() {
        return Err(fail("Give the passkey a name, such as the device it is on."));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(fail("A passkey's name can be at most 64 characters."));
    }
    if name.chars().any(char::is_control) {
        return Err(fail("A passkey's name cannot contain control characters."));
    }
    Ok(name.to_owned())
}

fn view(row: &PasskeyRow) -> PasskeyView {
    PasskeyView {
        id: row.id.clone(),
        name: row.name.clone(),
        created_at: row.created_at,
        last_used_at: row.last_used_at,
        syncable: row.backup_eligible != 0,
        synced: row.backup_state != 0,
    }
}

/// A change to passkeys needs recent proof (the one rule of `proof`).
async fn prove(
    state: &AppState,
    meta: &RequestMeta,
    session: &FullSession,
    user: &UserRow,
    proof: &Proof,
) -> Result<(), AppError> {
    let typed = super::proof::Proof {
        password: proof.password.as_deref(),
        code: proof.two_factor_authentication_code.as_deref(),
    };
    super::proof::prove(state, meta, session, user, typed, "Enter your password to change your passkeys.").await
}

/// Keeps a ceremony's state; returns the handle the client finishes with.
async fn keep_ceremony(
    state: &AppState,
    kind: &str,
    user_id: Option<i64>,
    bound_to: Option<&str>,
    name: Option<&str>,
    ceremony_state: &str,
) -> Result<String, AppError> {
    let handle = URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
    state
        .db
        .insert_ceremony(&NewCeremony {
            id_hash: &sha256_hex(handle.as_bytes()),
            kind,
            user_id,
            bound_to,
            name,
            state: ceremony_state,
            expires_at: state.now() + CEREMONY_SECONDS,
        })
        .await?;
    Ok(handle)
}

fn ceremony_gone() -> AppError {
    AppError::bad_request("This passkey request has expired or was already used. Try again.")
}

/// Takes the ceremony the client names, if it is of this kind, unexpired
/// and started by the same session (or password step).
async fn take_ceremony(
    state: &AppState,
    handle: &str,
    kind: &str,
    user_id: Option<i64>,
    bound_to: Option<&str>,
) -> Result<crate::server::db::CeremonyRow, AppError> {
    let row = state.db.take_ceremony(&sha256_hex(handle.as_bytes())).await?.ok_or_else(ceremony_gone)?;
    if row.kind != kind
        || row.expires_at <= state.now()
        || row.user_id != user_id
        || row.bound_to.as_deref() != bound_to
    {
        return Err(ceremony_gone());
    }
    Ok(row)
}

fn refused(refusal: Refusal) -> AppError {
    match refusal {
        Refusal::Invalid => AppError::new(ErrorKind::InvalidCode, "That passkey was not accepted. Try again."),
        Refusal::NotVerified => AppError::new(
            ErrorKind::InvalidCode,
            "Your passkey did not confirm it is you (no PIN, fingerprint or face check). Try again and complete \
             that step.",
        ),
        Refusal::CounterRegressed => AppError::forbidden(
            "This passkey was refused: it reported an older use than one already seen, which is what a copied \
             key does. Use another factor and remove this passkey.",
        ),
    }
}

// ---------------------------------------------------------------- managing

/// The person's passkeys, and whether this server can register more.
pub async fn list(state: &AppState, session: &FullSession) -> Result<PasskeyList, AppError> {
    let rows = state.db.passkeys_of(session.user.id).await?;
    Ok(PasskeyList { passkeys: rows.iter().map(view).collect(), available: state.webauthn.enabled() })
}

/// Renames one of the person's passkeys.
pub async fn rename(state: &AppState, session: &FullSession, id: &str, name: &str) -> Result<PasskeyView, AppError> {
    let name = parse_name(name)?;
    if !state.db.rename_passkey(session.user.id, id, &name).await? {
        return Err(no_such_passkey());
    }
    let rows = state.db.passkeys_of(session.user.id).await?;
    rows.iter().find(|r| r.id == id).map(view).ok_or_else(AppError::internal)
}

fn no_such_passkey() -> AppError {
    AppError::new(ErrorKind::NotFound, "No such passkey.")
}

/// What removing a passkey left.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Removed {
    pub passkeys_left: i64,
    pub two_factor_on: bool,
}

/// Removes one of the person's passkeys, with proof (see `prove`).
pub async fn remove(
    state: &AppState,
    meta: &RequestMeta,
    session: &FullSession,
    id: &str,
    password: Option<String>,
    code: Option<String>,
) -> Result<WithCookies<Removed>, AppError> {
    let user = session.row(state).await?;
    if !state.db.passkeys_of(user.id).await?.iter().any(|r| r.id == id) {
        return Err(no_such_passkey());
    }
    prove(state, meta, session, &user, &Proof { password, two_factor_authentication_code: code }).await?;
    let mut tx = state.db.begin().await?;
    let Some(dropped) = drop_passkey(&mut tx, user.id, id).await? else { return Err(no_such_passkey()) };
    // Protection went off: every session ends, this client gets a new one.
    let cookies = match dropped.version {
        Some(version) => logins::renew_all(state, &mut tx, user.id, version, session.user.amr, meta).await?,
        None => vec![],
    };
    tx.commit().await?;
    dropped.audit(state, user.id, meta).await;
    Ok(WithCookies { body: Removed { passkeys_left: dropped.left, two_factor_on: dropped.version.is_none() }, cookies })
}

/// What removing a passkey did, inside the caller's transaction.
struct Dropped {
    left: i64,
    /// The new session version when it was the last passkey of an account
    /// without an app: protection is off and the recovery codes are gone.
    version: Option<i64>,
}

/// Removes a passkey; the last one of an account without an app turns
/// two-factor protection off (recovery codes deleted, version bumped; the
/// caller ends the sessions). `None`: no such passkey of this user.
async fn drop_passkey(tx: &mut crate::server::db::Tx, user_id: i64, id: &str) -> Result<Option<Dropped>, AppError> {
    let Some((left, app)) = tx.delete_passkey(user_id, id).await? else { return Ok(None) };
    if left > 0 || app {
        return Ok(Some(Dropped { left, version: None }));
    }
    tx.delete_recovery_codes(user_id).await?;
    let version = tx.bump_session_version(user_id).await?;
    Ok(Some(Dropped { left, version: Some(version) }))
}

impl Dropped {
    async fn audit(&self, state: &AppState, user_id: i64, meta: &RequestMeta) {
        audit(state, Some(user_id), AuditKind::PasskeyRemoved, meta).await;
        if self.version.is_some() {
            audit(state, Some(user_id), AuditKind::TwoFactorOff, meta).await;
        }
        tracing::info!(user_id, left = self.left, "passkey removed");
    }
}

async fn rename_route(
    State(state): State<AppState>,
    session: FullSession,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Response {
    let result = async {
        let input: Rename = body(&bytes)?;
        ok(rename(&state, &session, &id, &input.name).await?)
    };
    respond(result.await)
}

async fn remove_route(
    State(state): State<AppState>,
    meta: RequestMeta,
    session: FullSession,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Response {
    let result = async {
        let proof: Proof = body(&bytes)?;
        let out = remove(&state, &meta, &session, &id, proof.password, proof.two_factor_authentication_code).await?;
        Ok((StatusCode::OK, out))
    };
    respond(result.await)
}

/// New recovery codes for an account protected by passkeys alone (with
/// the app, a code from it is the proof: `recovery::regenerate_recovery_codes`).
/// Proof as for any change of factor: a fresh log-in or the password.
pub async fn new_recovery_codes(
    state: &AppState,
    meta: &RequestMeta,
    session: &FullSession,
    password: Option<String>,
) -> Result<RecoveryCodesResponse, AppError> {
    let user = session.row(state).await?;
    if user.totp_enabled {
        return Err(AppError::conflict("Confirm with a code from your authenticator app instead."));
    }
    if user.passkey_count == 0 {
        return Err(AppError::conflict("Turn on two-factor authentication first."));
    }
    prove(state, meta, session, &user, &Proof { password, two_factor_authentication_code: None }).await?;
    let (codes, hashes) = super::recovery::new_recovery_codes(&state.secrets, user.id)?;
    let mut tx = state.db.begin().await?;
    tx.replace_recovery_codes(user.id, &hashes).await?;
    tx.commit().await?;
    audit(state, Some(user.id), AuditKind::RecoveryCodesRegenerated, meta).await;
    Ok(RecoveryCodesResponse { recovery_codes: codes })
}

async fn recovery_codes_route(
    State(state): State<AppState>,
    meta: RequestMeta,
    session: FullSession,
    bytes: Bytes,
) -> Response {
    let result = async {
        let proof: Proof = body(&bytes)?;
        if proof.two_factor_authentication_code.is_some() {
            return Err(AppError::bad_request("Send the password (or nothing, right after logging in)."));
        }
        ok(new_recovery_codes(&state, &meta, &session, proof.password).await?)
    };
    respond(result.await)
}

/// Operator: a user's passkeys (`server user passkeys EMAIL`).
pub async fn operator_list(
    state: &AppState,
    email: &crate::domain::Email,
) -> Result<Option<Vec<PasskeyView>>, AppError> {
    let Some(user) = state.db.user_by_email(email.as_str()).await? else { return Ok(None) };
    Ok(Some(state.db.passkeys_of(user.id).await?.iter().map(view).collect()))
}

/// Operator: removes one of a user's passkeys (a lost or stolen key, after
/// checking who is asking out of band). The last one of an account without
/// an app turns two-factor protection off and ends every session. `None`:
/// no such account; `Some(false)`: no such passkey.
pub async fn operator_remove(
    state: &AppState,
    email: &crate::domain::Email,
    id: &str,
) -> Result<Option<bool>, AppError> {
    let Some(user) = state.db.user_by_email(email.as_str()).await? else { return Ok(None) };
    let mut tx = state.db.begin().await?;
    let Some(dropped) = drop_passkey(&mut tx, user.id, id).await? else { return Ok(Some(false)) };
    if dropped.version.is_some() {
        tx.revoke_user_logins(user.id, state.now()).await?;
    }
    tx.commit().await?;
    dropped.audit(state, user.id, &account::operator_meta()).await;
    Ok(Some(true))
}

// ---------------------------------------------------------------- registering

async fn register_start(
    State(state): State<AppState>,
    meta: RequestMeta,
    session: FullSession,
    bytes: Bytes,
) -> Response {
    let result = async {
        let input: RegisterStart = body(&bytes)?;
        let name = parse_name(&input.name)?;
        let user = session.row(&state).await?;
        let proof =
            Proof { password: input.password, two_factor_authentication_code: input.two_factor_authentication_code };
        prove(&state, &meta, &session, &user, &proof).await?;
        let fresh = uuid::Uuid::new_v4().to_string();
        let handle = state.db.webauthn_handle(user.id, &fresh).await?;
        let handle = uuid::Uuid::parse_str(&handle).map_err(|_| AppError::internal())?;
        let existing: Vec<String> = state.db.passkeys_of(user.id).await?.into_iter().map(|r| r.credential).collect();
        let (options, ceremony_state) =
            state.webauthn.start_registration(handle, &user.email, &user.name, &existing)?;
        let family = session.claims.sid.as_deref();
        let ceremony = keep_ceremony(&state, "register", Some(user.id), family, Some(&name), &ceremony_state).await?;
        ok(json!({ "ceremony": ceremony, "options": options }))
    };
    respond(result.await)
}

async fn register_finish(
    State(state): State<AppState>,
    meta: RequestMeta,
    session: FullSession,
    bytes: Bytes,
) -> Response {
    let result = async {
        let input: Finish = body(&bytes)?;
        let row =
            take_ceremony(&state, &input.ceremony, "register", Some(session.user.id), session.claims.sid.as_deref())
                .await?;
        let credential = match state.webauthn.finish_registration(&input.credential, &row.state) {
            Ok(c) => c,
            Err(refusal) => {
                audit(&state, Some(session.user.id), AuditKind::PasskeyRefused, &meta).await;
                return Err(refused(refusal));
            }
        };
        let user = session.row(&state).await?;
        let name = row.name.unwrap_or_else(|| "Passkey".into());
        let id = hex::encode(random_bytes::<16>()?);
        let now = state.now();
        let mut tx = state.db.begin().await?;
        let Some(count) = tx
            .insert_passkey(&NewPasskey {
                id: &id,
                user_id: user.id,
                credential_id: &credential.credential_id,
                name: &name,
                credential: &credential.credential,
                backup_eligible: credential.backup_eligible,
                backup_state: credential.backup_state,
                now,
            })
            .await?
        else {
            return Err(AppError::conflict("This passkey is already registered."));
        };
        // The first factor of an account without one turns protection on:
        // recovery codes, and every other session ends (as turning the app
        // on does); this client gets a new one.
        let turned_on = count == 1 && !user.totp_enabled;
        let (codes, cookies) = if turned_on {
            let (codes, hashes) = super::recovery::new_recovery_codes(&state.secrets, user.id)?;
            tx.replace_recovery_codes(user.id, &hashes).await?;
            let version = tx.bump_session_version(user.id).await?;
            let amr = session.user.amr.with(Amr::PASSKEY);
            (Some(codes), logins::renew_all(&state, &mut tx, user.id, version, amr, &meta).await?)
        } else {
            (None, vec![])
        };
        tx.commit().await?;
        audit(&state, Some(user.id), AuditKind::PasskeyAdded, &meta).await;
        if turned_on {
            audit(&state, Some(user.id), AuditKind::TwoFactorOn, &meta).await;
        }
        tracing::info!(user_id = user.id, count, "passkey added");
        let passkey = PasskeyView {
            id,
            name,
            created_at: now,
            last_used_at: None,
            syncable: credential.backup_eligible,
            synced: credential.backup_state,
        };
        Ok((StatusCode::CREATED, WithCookies { body: json!({ "passkey": passkey, "recoveryCodes": codes }), cookies }))
    };
    respond(result.await)
}

// ---------------------------------------------------------------- logging in

/// Verifies an assertion for `user` against the ceremony, under the code
/// limits, and records the credential's new counter. The row is the one
/// the assertion names, and must be this user's.
async fn verify_assertion(
    state: &AppState,
    meta: &RequestMeta,
    user: &UserRow,
    credential: &Value,
    claimed: Option<String>,
    ceremony_state: &str,
    passwordless: bool,
) -> Result<(), AppError> {
    let mut buckets = Attempt::code_buckets(state, meta, user.id);
    if passwordless {
        // Without a password, a failure also counts as a password failure:
        // a passkey guess must not be a way around the password limits.
        buckets.extend(Attempt::password_buckets(state, meta, &user.email, Some(user)));
    }
    let attempt = Attempt::start(state, meta, buckets, Some(user.id)).await?;
    let row = match claimed {
        Some(id) => state.db.passkey_by_credential(&id).await?.filter(|r| r.user_id == user.id),
        None => None,
    };
    let verified = match &row {
        Some(row) if passwordless => state.webauthn.finish_passwordless(credential, ceremony_state, &row.credential),
        Some(row) => state.webauthn.finish_authentication(credential, ceremony_state, &row.credential),
        None => Err(Refusal::Invalid),
    };
    let outcome = match (&row, verified) {
        (Some(row), Ok(assertion)) => {
            // Of two assertions verified against the same counter, one is
            // recorded; the other is a replay.
            if state
                .db
                .record_passkey_use(&row.id, &row.credential, &assertion.updated, assertion.backup_state, state.now())
                .await?
            {
                Ok(())
            } else {
                Err(Refusal::Invalid)
            }
        }
        (_, Err(refusal)) => Err(refusal),
        (None, Ok(_)) => Err(Refusal::Invalid),
    };
    if let Err(refusal) = outcome {
        attempt.settle(state, meta, false, AuditKind::CodeFailed).await?;
        audit(state, Some(user.id), AuditKind::PasskeyRefused, meta).await;
        if refusal == Refusal::CounterRegressed {
            tracing::warn!(user_id = user.id, "passkey counter went backwards: possibly a cloned key");
        }
        return Err(if passwordless && refusal == Refusal::Invalid {
            AppError::invalid_credentials()
        } else {
            refused(refusal)
        });
    }
    attempt.settle(state, meta, true, AuditKind::CodeFailed).await?;
    state.db.clear_factor_failures(user.id).await?;
    audit(state, Some(user.id), AuditKind::PasskeyUsed, meta).await;
    Ok(())
}

async fn second_factor_start(State(state): State<AppState>, session: PasswordSession, bytes: Bytes) -> Response {
    let result = async {
        let _: Empty = body(&bytes)?;
        let stored: Vec<String> =
            state.db.passkeys_of(session.user.id).await?.into_iter().map(|r| r.credential).collect();
        let (options, ceremony_state) = state.webauthn.start_authentication(&stored)?;
        let ceremony = keep_ceremony(
            &state,
            "second_factor",
            Some(session.user.id),
            Some(&session.claims.jti),
            None,
            &ceremony_state,
        )
        .await?;
        ok(json!({ "ceremony": ceremony, "options": options }))
    };
    respond(result.await)
}

async fn second_factor_finish(
    State(state): State<AppState>,
    meta: RequestMeta,
    session: PasswordSession,
    bytes: Bytes,
) -> Response {
    let result = async {
        let input: Finish = body(&bytes)?;
        let user = session.user;
        let row =
            take_ceremony(&state, &input.ceremony, "second_factor", Some(user.id), Some(&session.claims.jti)).await?;
        let claimed = RelyingParty::claimed_credential(&input.credential);
        verify_assertion(&state, &meta, &user, &input.credential, claimed, &row.state, false).await?;
        let amr = Amr::PASSWORD.with(Amr::PASSKEY);
        let cookies = account::finish_second_factor(&state, &meta, &user, &session.claims, amr).await?;
        Ok((StatusCode::OK, WithCookies { body: User::from(&user), cookies }))
    };
    respond(result.await)
}

async fn sign_in_start(State(state): State<AppState>, meta: RequestMeta, bytes: Bytes) -> Response {
    let result = async {
        let _: Empty = body(&bytes)?;
        // Anyone may start one: each start is a row, so starts count per
        // address like sign-ups do.
        let key = format!("passkey-start:{}", meta.ip_key());
        let attempt = Attempt::start(
            &state,
            &meta,
            vec![(key, crate::server::db::Throttle { free: 30, cap: 60, window: 60 }, OnSuccess::Release)],
            None,
        )
        .await?;
        attempt.spend();
        let (options, ceremony_state) = state.webauthn.start_passwordless()?;
        let ceremony = keep_ceremony(&state, "passwordless", None, None, None, &ceremony_state).await?;
        ok(json!({ "ceremony": ceremony, "options": options }))
    };
    respond(result.await)
}

async fn sign_in_finish(State(state): State<AppState>, meta: RequestMeta, bytes: Bytes) -> Response {
    let result = async {
        let input: Finish = body(&bytes)?;
        let row = take_ceremony(&state, &input.ceremony, "passwordless", None, None).await?;
        // Whose passkey it claims to be; an unknown one gets the same
        // answer as a wrong password.
        let (user, claimed) = match state.webauthn.identify(&input.credential) {
            Some((handle, id)) => (state.db.user_by_webauthn_handle(&handle.to_string()).await?, Some(id)),
            None => (None, None),
        };
        let Some(user) = user.filter(|u| u.passkey_count > 0) else {
            audit(&state, None, AuditKind::PasskeyRefused, &meta).await;
            return Err(AppError::invalid_credentials());
        };
        verify_assertion(&state, &meta, &user, &input.credential, claimed, &row.state, true).await?;
        let cookies = account::passwordless_session(&state, &meta, &user).await?;
        Ok((StatusCode::OK, WithCookies { body: User::from(&user), cookies }))
    };
    respond(result.await)
}
