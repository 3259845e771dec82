//! The axum server around the app: state construction and the router that
//! production and the integration tests share (`build_router`). The API
//! endpoints are the app's server functions; this crate adds the edge
//! around them: JSON errors with the right status, unknown endpoints, the
//! same-origin check and security headers.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod config;
pub mod listen;
pub mod middleware;
pub mod ops;
pub mod route_table;
pub mod site;
pub mod telemetry;
pub mod trace;

use std::sync::Arc;

use app::server::AppState;
use app::server::clock::Clock;
use app::server::crypto::sealing::SecretBox;
use app::server::crypto::tokens::{CookieConfig, TokenKeys};
use app::server::db::{Db, Throttle};
use app::server::passwords::Hasher;
use app::server::state::{Limits, StateInner};
use app::{App, shell};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use leptos::config::LeptosOptions;
use leptos_axum::{LeptosRoutes, generate_route_list};

use config::Config;
use tower_http::limit::RequestBodyLimitLayer;

/// The name cargo-leptos gives the site's wasm, js and css files.
pub const OUTPUT_NAME: &str = "twofactor";

/// Largest request body accepted; every API body is a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Connects the database (running migrations), loads keys and builds the
/// state. Any failure is a message for the operator and stops start-up.
pub async fn build_state(config: &Config, clock: Arc<dyn Clock>) -> Result<AppState, String> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| format!("could not create the data directory {}: {e}", config.data_dir.display()))?;
    let db = Db::connect_with_timeout(
        &config.database_url,
        config.db_max_connections,
        std::time::Duration::from_secs(config.db_acquire_timeout_seconds),
    )
    .await?;
    db.gate_cache().set_max_age(config.gate_cache_seconds);
    let keys = TokenKeys::new(&config.jwt_key()?)?;
    let oidc = app::server::oidc::Oidc::new(&config.public_url, keys.oidc_access_key());
    let (key_id, key) = config.secrets_key()?;
    let secrets = SecretBox::new((&key_id, &key), &config.secrets_keys_previous)?;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let hasher = Hasher::new(cores, config.hash_queue_limit.unwrap_or(16 * cores)).map_err(|e| e.message)?;
    let leptos_options = LeptosOptions::builder()
        .output_name(OUTPUT_NAME)
        .site_root(config.site_root.as_str())
        .site_addr(config.listen)
        .env(if config.production { leptos::config::Env::PROD } else { leptos_env() })
        .reload_port(reload_port())
        .hash_files(hashed_site(&config.site_root))
        .build();
    Ok(AppState::new(StateInner {
        db,
        hasher,
        keys,
        cookies: CookieConfig { secure: config.cookie_secure },
        clock,
        issuer: config.issuer.as_str().into(),
        secrets,
        access_ttl: config.access_ttl_seconds,
        refresh_ttl: config.refresh_ttl_seconds,
        remember_seconds: config.remember_days * 86_400,
        refresh_grace: config.refresh_grace_seconds,
        audit_retention: config.audit_retention_days * 86_400,
        trusted_proxy_header: config.trusted_proxy_header.clone(),
        limits: Limits {
            registration_per_address: Throttle {
                free: config.registrations_per_hour,
                ..Limits::default().registration_per_address
            },
            passkey_starts_per_address: Throttle {
                free: config.passkey_starts_per_minute,
                ..Limits::default().passkey_starts_per_address
            },
            ..Limits::default()
        },
        webauthn: app::server::factors::webauthn::RelyingParty::new(&config.public_url, &config.issuer),
        mail: app::server::mail::Mail::new(
            config.smtp_url.as_deref(),
            &config.mail_from,
            config.data_dir.join("outbox"),
            config.require_email_verification,
        )?,
        gate: app::server::state::GateConfig {
            public_url: config.public_url.clone(),
            cookie_domains: config.cookie_domains.clone(),
            rules: config.rules()?,
            trusted_proxies: config.trusted_proxies.clone(),
            signup_open: config.signup_open,
            remote_user: config.remote_user,
        },
        oidc,
        admin_group: config.admin_group.clone(),
        leptos_options,
    }))
}

/// `cargo leptos watch` sets LEPTOS_ENV=DEV and the reload port; the page
/// then reloads itself after a rebuild.
fn leptos_env() -> leptos::config::Env {
    match std::env::var("LEPTOS_ENV").as_deref() {
        Ok("DEV") | Ok("dev") | Ok("development") => leptos::config::Env::DEV,
        _ => leptos::config::Env::PROD,
    }
}

/// A release build made with `hash-files` writes `hash.txt` beside the
/// binary; the pages then name the hashed files, which are served as
/// immutable. Debug builds (tests, `cargo leptos watch`) have none. A
/// mismatched pair stops `serve` before this is asked (`site::check`).
fn hashed_site(site_root: &str) -> bool {
    exe_dir()
        .is_some_and(|dir| site::check(&dir, std::path::Path::new(site_root), OUTPUT_NAME) == Ok(site::Site::Hashed))
}

/// The folder of the running binary, where Leptos reads `hash.txt`.
pub fn exe_dir() -> Option<std::path::PathBuf> {
    std::env::current_exe().ok().and_then(|p| p.parent().map(|d| d.to_path_buf()))
}

fn reload_port() -> u32 {
    std::env::var("LEPTOS_RELOAD_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(3001)
}

/// Every route the app answers, as (method, path): read from the routes
/// `build_router` serves, so a new endpoint is listed without a list to
/// edit (see `route_table`).
pub fn route_list(state: &AppState) -> Vec<(axum::http::Method, String)> {
    route_table::of(&routes(state))
}

/// The routes, before the fallback and the layers around them.
fn routes(state: &AppState) -> Router<AppState> {
    let options = state.leptos_options.clone();
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/api/{*endpoint}", any(middleware::unknown_endpoint))
        .leptos_routes_with_context(state, generate_route_list(App), || {}, move || shell(options.clone()))
        .merge(app::http::forms::routes())
        .merge(app::http::admin::routes())
        .merge(app::http::authz::routes())
        .merge(app::http::webauthn::routes())
        .merge(app::http::oidc::routes())
}

pub fn build_router(state: AppState) -> Router {
    routes(&state)
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(axum::middleware::from_fn_with_state(state.clone(), app::http::authz::return_after_log_in))
        .layer(axum::middleware::from_fn_with_state(state.clone(), app::http::forms::renew_page_session))
        // Every API body is a few hundred bytes; 64 KiB bounds what a client
        // can make the server buffer. Inside the API edge, so a refused
        // body gets the same JSON error as everything else.
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(middleware::api_edge))
        .layer(axum::middleware::from_fn_with_state(state.clone(), middleware::security_headers))
        // Outermost: one span per request around every layer above, with
        // the route matched and an `X-Request-Id` on every answer.
        .layer(axum::middleware::from_fn_with_state(state.clone(), trace::requests))
        .with_state(state)
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.db.ping().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(e) => e.into_response(),
    }
}
