//! The application crate, compiled twice: for the browser (`hydrate`) and
//! for the server (`ssr`). It owns the pages and components (`ui`), the
//! server functions that form the HTTP API (`api`), their request and
//! response types (`wire`), the wire error type
//! (`error`), the domain newtypes both sides parse with (`domain`) and, on
//! the server only, everything behind the API (`server`) and its HTTP
//! adapters (`http`).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
#![recursion_limit = "256"]

pub mod api;
pub mod domain;
pub mod error;
pub mod time;
pub mod ui;
pub mod wire;

#[cfg(feature = "ssr")]
pub mod http;
#[cfg(feature = "ssr")]
pub mod server;

pub use ui::{App, format_utc, shell};
