//! `/api/webauthn/...`: the passkey endpoints (camelCase JSON). They parse
//! bodies and shape answers; the ceremonies, limits and sessions are in
//! `server::factors::passkeys`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::{HeaderValue, StatusCode, header};
use serde::Deserialize;
use serde_json::Value;

use crate::error::AppError;
use crate::server::WithCookies;
use crate::server::auth::{FullSession, PasswordSession};
use crate::server::factors::passkeys;
use crate::server::factors::proof;
use crate::server::request::RequestMeta;
use crate::server::state::AppState;

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

/// The code step's passkey: "Don't ask again on this browser" comes too.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SecondFactorFinish {
    ceremony: String,
    credential: Value,
    #[serde(default)]
    remember: bool,
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

async fn rename_route(
    State(state): State<AppState>,
    session: FullSession,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Response {
    let result = async {
        let input: Rename = body(&bytes)?;
        ok(passkeys::rename(&state, &session, &id, &input.name).await?)
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
        let out = passkeys::remove(&state, &meta, &session, &id, proof.password, proof.two_factor_authentication_code)
            .await?;
        Ok((StatusCode::OK, out))
    };
    respond(result.await)
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
        ok(passkeys::new_recovery_codes(&state, &meta, &session, proof.password).await?)
    };
    respond(result.await)
}

async fn register_start(
    State(state): State<AppState>,
    meta: RequestMeta,
    session: FullSession,
    bytes: Bytes,
) -> Response {
    let result = async {
        let input: RegisterStart = body(&bytes)?;
        let typed =
            proof::Proof { password: input.password.as_deref(), code: input.two_factor_authentication_code.as_deref() };
        ok(passkeys::register_start(&state, &meta, &session, &input.name, typed).await?)
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
        let out = passkeys::register_finish(&state, &meta, &session, &input.ceremony, &input.credential).await?;
        Ok((StatusCode::CREATED, out))
    };
    respond(result.await)
}

async fn second_factor_start(State(state): State<AppState>, session: PasswordSession, bytes: Bytes) -> Response {
    let result = async {
        let _: Empty = body(&bytes)?;
        ok(passkeys::second_factor_start(&state, &session).await?)
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
        let input: SecondFactorFinish = body(&bytes)?;
        let out =
            passkeys::second_factor_finish(&state, &meta, &session, &input.ceremony, &input.credential, input.remember)
                .await?;
        Ok((StatusCode::OK, out))
    };
    respond(result.await)
}

async fn sign_in_start(State(state): State<AppState>, meta: RequestMeta, bytes: Bytes) -> Response {
    let result = async {
        let _: Empty = body(&bytes)?;
        ok(passkeys::sign_in_start(&state, &meta).await?)
    };
    respond(result.await)
}

async fn sign_in_finish(State(state): State<AppState>, meta: RequestMeta, bytes: Bytes) -> Response {
    let result = async {
        let input: Finish = body(&bytes)?;
        let out = passkeys::sign_in_finish(&state, &meta, &input.ceremony, &input.credential).await?;
        Ok((StatusCode::OK, out))
    };
    respond(result.await)
}
