//! Non-secret wizard state kept across reloads in the tab's sessionStorage
//! (the email typed, the current step). Never a token, secret or code. On
//! the server these are no-ops: storage exists only in the browser.

#[cfg(feature = "hydrate")]
use gloo_storage::{SessionStorage, Storage};

pub const LOGIN_EMAIL: &str = "twofactor.login.email";
pub const LOGIN_STEP: &str = "twofactor.login.step";
pub const ENROL_STEP: &str = "twofactor.enrol.step";

pub fn load(key: &str) -> Option<String> {
    #[cfg(feature = "hydrate")]
    {
        SessionStorage::get::<String>(key).ok()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = key;
        None
    }
}

pub fn save(key: &str, value: &str) {
    #[cfg(feature = "hydrate")]
    {
        let _ = SessionStorage::set(key, value);
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = (key, value);
    }
}

pub fn forget(key: &str) {
    #[cfg(feature = "hydrate")]
    {
        SessionStorage::delete(key);
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = key;
    }
}
