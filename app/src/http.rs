//! The HTTP adapters of the core (server only): the pages' form posts
//! answered without JavaScript (`forms`), the admin page's CSV (`admin`), the gate's endpoints the
//! reverse proxies ask (`authz`), the passkey ceremonies (`webauthn`) and
//! the OpenID provider's endpoints (`oidc`), and the metrics listener's
//! scrape (`metrics`).
//! They parse requests, call `server` and shape answers; `server` never
//! imports them.

pub mod admin;
pub mod authz;
pub mod forms;
pub mod metrics;
pub mod oidc;
pub mod webauthn;
