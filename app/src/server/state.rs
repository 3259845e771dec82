//! The shared application state handed to every request: database, hasher,
//! token keys, clock and settings. Built once by the server crate.

use std::sync::Arc;

use axum::extract::FromRef;
use leptos::config::LeptosOptions;

use super::clock::Clock;
use super::db::Db;
use super::passwords::Hasher;
use super::tokens::{CookieConfig, TokenKeys};

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub hasher: Hasher,
    pub keys: TokenKeys,
    pub cookies: CookieConfig,
    pub clock: Arc<dyn Clock>,
    /// Shown as the account's issuer in the authenticator app.
    pub issuer: Arc<str>,
    /// Lifetime of a full-session access token, in seconds.
    pub session_ttl: i64,
    pub leptos_options: LeptosOptions,
}

impl AppState {
    pub fn now(&self) -> i64 {
        self.clock.now()
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}
