//! The shared application state handed to every request: database, hasher,
//! token keys, clock and settings. Built once by the server crate.

use std::sync::Arc;

use axum::extract::FromRef;
use leptos::config::LeptosOptions;

use super::clock::Clock;
use super::crypto::sealing::SecretBox;
use super::crypto::tokens::{CookieConfig, TokenKeys};
use super::db::Db;
use super::db::Throttle;
use super::gate::{Cidr, Rules};
use super::passwords::Hasher;

/// Cheap to clone (one reference count): axum and Leptos clone the state
/// several times per request.
#[derive(Clone)]
pub struct AppState(Arc<StateInner>);

impl AppState {
    pub fn new(inner: StateInner) -> Self {
        Self(Arc::new(inner))
    }
}

impl std::ops::Deref for AppState {
    type Target = StateInner;

    fn deref(&self) -> &StateInner {
        &self.0
    }
}

pub struct StateInner {
    pub db: Db,
    pub hasher: Hasher,
    pub keys: TokenKeys,
    pub cookies: CookieConfig,
    pub clock: Arc<dyn Clock>,
    /// Shown as the account's issuer in the authenticator app.
    pub issuer: Arc<str>,
    /// Seals TOTP secrets at rest.
    pub secrets: SecretBox,
    /// Lifetime of a full-session access token, in seconds.
    pub access_ttl: i64,
    /// Lifetime of a log-in's refresh tokens (the whole family), in seconds.
    pub refresh_ttl: i64,
    /// How long a remembered browser skips the second factor, in seconds
    /// (`REMEMBER_DAYS`; 0: browsers are not remembered).
    pub remember_seconds: i64,
    /// How long a just-rotated refresh token may be presented again, in
    /// seconds, before that counts as reuse of a stolen copy.
    pub refresh_grace: i64,
    /// How long audit events are kept, in seconds.
    pub audit_retention: i64,
    /// The header carrying the client address when behind a proxy.
    pub trusted_proxy_header: Option<http::HeaderName>,
    pub limits: Limits,
    /// The gate in front of other apps (forward authentication).
    pub gate: GateConfig,
    /// Passkeys: this portal as the WebAuthn relying party.
    pub webauthn: super::factors::webauthn::RelyingParty,
    /// Mail: the transport, the sender, and the worker's signals.
    pub mail: super::mail::Mail,
    /// The OpenID provider: issuer, signing keys, access-token key.
    pub oidc: super::oidc::Oidc,
    /// Members of this group with two factors on use the admin page
    /// (`ADMIN_GROUP`, default `admins`).
    pub admin_group: String,
    pub leptos_options: LeptosOptions,
}

/// Settings of the gate: where the portal is, which parent domains get a
/// gate cookie, the access rules and which peers may forward requests.
#[derive(Clone)]
pub struct GateConfig {
    /// The portal's own origin, e.g. `https://auth.example.com`, no slash at
    /// the end.
    pub public_url: String,
    /// Parent domains that get a gate cookie (`Domain=`), lower-case.
    pub cookie_domains: Vec<String>,
    pub rules: Rules,
    pub trusted_proxies: Vec<Cidr>,
    /// Anyone may create an account (`SIGNUP`; closed by default once
    /// `COOKIE_DOMAINS` is set); otherwise the operator adds people.
    pub signup_open: bool,
    /// What `Remote-User` carries (`GATE_REMOTE_USER`).
    pub remote_user: crate::server::gate::RemoteUser,
}

impl StateInner {
    pub fn now(&self) -> i64 {
        self.clock.now()
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

/// Guessing limits (DESIGN §3): per account, and looser per address.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Per account and client (device cookie, else address).
    pub password_per_account: Throttle,
    /// Per account, shared by every client without the account's device
    /// cookie: against guessing spread over many addresses.
    pub password_per_account_untrusted: Throttle,
    pub code_per_account: Throttle,
    pub per_address: Throttle,
    /// Accounts one address may create: 10 an hour, then slower.
    pub registration_per_address: Throttle,
    /// Passwordless passkey sign-ins one address may start: 30 a minute
    /// (each is a stored ceremony), then slower.
    pub passkey_starts_per_address: Throttle,
}

impl Default for Limits {
    fn default() -> Self {
        let account = Throttle { free: 5, cap: 15 * 60, window: 3600 };
        Self {
            password_per_account: account,
            password_per_account_untrusted: Throttle { free: 50, ..account },
            code_per_account: account,
            per_address: Throttle { free: 50, ..account },
            registration_per_address: Throttle { free: 10, ..account },
            passkey_starts_per_address: Throttle { free: 30, cap: 60, window: 60 },
        }
    }
}
