//! The HTTP adapters of the core (server only): the pages' form posts
//! answered without JavaScript (`forms`) and the gate's endpoints the
//! reverse proxies ask (`authz`). They parse requests, call `server` and
//! shape answers; `server` never imports them.

pub mod authz;
pub mod forms;
