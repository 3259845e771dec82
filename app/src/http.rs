//! The HTTP adapters of the core (server only): the pages' form posts
//! answered without JavaScript (`forms`), the admin page's CSV (`admin`), the gate's endpoints the
//! reverse proxies ask (`authz`), the passkey ceremonies (`webauthn`) and
//! the OpenID provider's endpoints (`oidc`).
//! They parse requests, call `server` and shape answers; `server` never
//! imports them.

pub mod admin;
pub mod authz;
pub mod forms;
pub mod oidc;
pub mod webauthn;
