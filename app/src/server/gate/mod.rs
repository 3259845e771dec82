//! The gate in front of other apps: who may reach which URL (the access
//! rules), where a log-in may send the browser back to (`rd`), and which
//! peers may tell us what the original request was (trusted proxies).
//! Pure functions, but for the cache; the endpoints are in `authz`.
//!
//! - `rules`: the `ACCESS_RULES` file and the decision it gives for a
//!   request and the person asking.
//! - `hosts`: host names and `*.name` patterns, compared on whole labels.
//! - `paths`: the path a rule is matched against, as the app will read it.
//! - `return_url`: where a log-in may send the browser back to (`rd`).
//! - `cidr`: address ranges (`TRUSTED_PROXIES`).
//! - `cache`: the gate decisions this process keeps, and when they go.

pub mod cache;
mod cidr;
mod hosts;
mod paths;
mod return_url;
mod rules;

pub use cidr::Cidr;
pub use hosts::is_under;
pub use paths::normalize_path;
pub use return_url::{MAX_RD_CHARS, safe_return_url};
pub use rules::{Decision, Policy, RemoteUser, Rule, Rules, Subject, Target, parse_duration, say_duration};
