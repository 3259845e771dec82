//! Passkeys and security keys: the one module that calls `webauthn-rs`
//! (pinned to =0.6.2, whose API may still move). Everything else sees JSON
//! for the browser, strings for the database and the plain facts below.
//!
//! - Ceremony state is serialised to a string the caller keeps in the
//!   database (`webauthn_ceremonies`) and hands back once; it never goes
//!   to the client.
//! - Credentials are stored as webauthn-rs's own JSON; the id, counter and
//!   backup flags are read out of it here.
//! - User verification is required for registration and for every
//!   assertion (webauthn-rs's passkey policy), and checked again here.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Url, Uuid, Webauthn, WebauthnBuilder, WebauthnError,
};

use crate::error::{AppError, ErrorKind};

/// The relying party: this portal, as `PUBLIC_URL` names it.
pub struct RelyingParty {
    webauthn: Option<Webauthn>,
    /// Why passkeys are off, when they are.
    off: Option<String>,
}

impl std::fmt::Debug for RelyingParty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelyingParty").field("on", &self.webauthn.is_some()).finish()
    }
}

/// A credential just registered, ready to store.
#[derive(Debug, Clone)]
pub struct NewCredential {
    /// base64url, unpadded.
    pub credential_id: String,
    /// webauthn-rs's credential as JSON.
    pub credential: String,
    pub backup_eligible: bool,
    pub backup_state: bool,
}

/// A verified assertion.
#[derive(Debug, Clone)]
pub struct Assertion {
    pub credential_id: String,
    /// The stored credential with its counter and backup state moved on.
    pub updated: String,
    pub backup_state: bool,
}

/// Why an assertion or registration was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not a valid answer to this ceremony (wrong challenge, origin,
    /// signature, credential, malformed JSON).
    Invalid,
    /// The authenticator did not verify the person (PIN or biometric).
    NotVerified,
    /// The signature counter went backwards: the key may have been cloned.
    CounterRegressed,
}

impl RelyingParty {
    /// Passkeys for the portal at `public_url` (an origin). Browsers refuse
    /// WebAuthn on an IP address, and so does webauthn-rs: then passkeys
    /// are off and the reason is kept for the log and the API.
    pub fn new(public_url: &str, name: &str) -> Self {
        let built = (|| {
            let origin = Url::parse(public_url).map_err(|e| format!("PUBLIC_URL is not a URL: {e}"))?;
            let host = origin.host_str().ok_or("PUBLIC_URL has no host")?.to_owned();
            if origin.domain().is_none() {
                return Err(format!(
                    "passkeys need PUBLIC_URL to name the portal by a domain name, not the address {host} \
                     (browsers refuse WebAuthn there)"
                ));
            }
            WebauthnBuilder::new(&host, &origin)
                .and_then(|b| b.rp_name(name).build())
                .map_err(|e| format!("passkeys are off: {e}"))
        })();
        match built {
            Ok(webauthn) => Self { webauthn: Some(webauthn), off: None },
            Err(why) => Self { webauthn: None, off: Some(why) },
        }
    }

    pub fn enabled(&self) -> bool {
        self.webauthn.is_some()
    }

    /// Why passkeys are off (`None` when on).
    pub fn off_reason(&self) -> Option<&str> {
        self.off.as_deref()
    }

    fn get(&self) -> Result<&Webauthn, AppError> {
        self.webauthn.as_ref().ok_or_else(|| {
            AppError::new(
                ErrorKind::Conflict,
                "Passkeys are not available on this server: it must be reached by a domain name (PUBLIC_URL).",
            )
        })
    }

    /// Starts registering a credential for the person with this user
    /// handle; `existing` are their stored credentials (an authenticator
    /// holding one of them is asked not to register twice). Returns the
    /// options for the browser and the state to keep.
    pub fn start_registration(
        &self,
        handle: Uuid,
        email: &str,
        display_name: &str,
        existing: &[String],
    ) -> Result<(Value, String), AppError> {
        let exclude: Vec<_> = existing.iter().filter_map(|c| parse_passkey(c)).map(|p| p.cred_id().clone()).collect();
        let (options, state) = self
            .get()?
            .start_passkey_registration(handle, email, display_name, Some(exclude))
            .map_err(|e| internal("start registration", &e))?;
        let mut options = serde_json::to_value(options).map_err(|_| AppError::internal())?;
        // Ask for a discoverable credential where the authenticator can make
        // one, so the same passkey signs in without a password later; a
        // security key without room for one still registers.
        if let Some(selection) = options.pointer_mut("/publicKey/authenticatorSelection") {
            selection["residentKey"] = Value::from("preferred");
        }
        Ok((options, to_state(&state)?))
    }

    pub fn finish_registration(&self, credential: &Value, state: &str) -> Result<NewCredential, Refusal> {
        let webauthn = self.get().map_err(|_| Refusal::Invalid)?;
        let credential: RegisterPublicKeyCredential =
            serde_json::from_value(credential.clone()).map_err(|_| Refusal::Invalid)?;
        let state: PasskeyRegistration = serde_json::from_str(state).map_err(|_| Refusal::Invalid)?;
        let passkey = webauthn.finish_passkey_registration(&credential, &state).map_err(refusal)?;
        let stored = serde_json::to_value(&passkey).map_err(|_| Refusal::Invalid)?;
        let flag = |name: &str| stored.pointer(&format!("/cred/{name}")).and_then(Value::as_bool).unwrap_or(false);
        Ok(NewCredential {
            credential_id: URL_SAFE_NO_PAD.encode(passkey.cred_id()),
            backup_eligible: flag("backup_eligible"),
            backup_state: flag("backup_state"),
            credential: stored.to_string(),
        })
    }

    /// Starts an assertion by one of these stored credentials (a second
    /// factor after the password).
    pub fn start_authentication(&self, stored: &[String]) -> Result<(Value, String), AppError> {
        let passkeys: Vec<Passkey> = stored.iter().filter_map(|c| parse_passkey(c)).collect();
        if passkeys.is_empty() {
            return Err(AppError::conflict("This account has no passkey."));
        }
        let (options, state) =
            self.get()?.start_passkey_authentication(&passkeys).map_err(|e| internal("start authentication", &e))?;
        Ok((serde_json::to_value(options).map_err(|_| AppError::internal())?, to_state(&state)?))
    }

    /// Which stored credential an assertion claims to be from (unverified:
    /// only to find the row to verify it against).
    pub fn claimed_credential(credential: &Value) -> Option<String> {
        let credential: PublicKeyCredential = serde_json::from_value(credential.clone()).ok()?;
        Some(URL_SAFE_NO_PAD.encode(credential.get_credential_id()))
    }

    /// Verifies an assertion against the ceremony and the stored credential
    /// it names.
    pub fn finish_authentication(&self, credential: &Value, state: &str, stored: &str) -> Result<Assertion, Refusal> {
        let webauthn = self.get().map_err(|_| Refusal::Invalid)?;
        let credential: PublicKeyCredential =
            serde_json::from_value(credential.clone()).map_err(|_| Refusal::Invalid)?;
        let state: PasskeyAuthentication = serde_json::from_str(state).map_err(|_| Refusal::Invalid)?;
        let result = webauthn.finish_passkey_authentication(&credential, &state).map_err(refusal)?;
        updated(stored, &result)
    }

    /// Starts a sign-in without a password: any discoverable credential of
    /// this site, with user verification required.
    pub fn start_passwordless(&self) -> Result<(Value, String), AppError> {
        let (options, state) =
            self.get()?.start_discoverable_authentication().map_err(|e| internal("start sign-in", &e))?;
        let mut options = serde_json::to_value(options).map_err(|_| AppError::internal())?;
        // webauthn-rs asks for conditional mediation (autofill); this
        // portal asks from a button, so the browser shows its own dialog.
        if let Some(map) = options.as_object_mut() {
            map.remove("mediation");
        }
        Ok((options, to_state(&state)?))
    }

    /// The user handle and credential id a passwordless assertion claims
    /// (unverified: only to find the row to verify it against).
    pub fn identify(&self, credential: &Value) -> Option<(Uuid, String)> {
        let credential: PublicKeyCredential = serde_json::from_value(credential.clone()).ok()?;
        let (handle, id) = self.webauthn.as_ref()?.identify_discoverable_authentication(&credential).ok()?;
        Some((handle, URL_SAFE_NO_PAD.encode(id)))
    }

    pub fn finish_passwordless(&self, credential: &Value, state: &str, stored: &str) -> Result<Assertion, Refusal> {
        let webauthn = self.get().map_err(|_| Refusal::Invalid)?;
        let credential: PublicKeyCredential =
            serde_json::from_value(credential.clone()).map_err(|_| Refusal::Invalid)?;
        let state: DiscoverableAuthentication = serde_json::from_str(state).map_err(|_| Refusal::Invalid)?;
        let passkey = parse_passkey(stored).ok_or(Refusal::Invalid)?;
        let result = webauthn.finish_discoverable_authentication_v2(&credential, state, &passkey).map_err(refusal)?;
        updated(stored, &result)
    }
}

/// The stored credential moved on by a verified assertion.
fn updated(stored: &str, result: &webauthn_rs::prelude::AuthenticationResult) -> Result<Assertion, Refusal> {
    if !result.user_verified() {
        return Err(Refusal::NotVerified);
    }
    let mut passkey = parse_passkey(stored).ok_or(Refusal::Invalid)?;
    // `None`: the assertion was by another credential than this row's.
    passkey.update_credential(result).ok_or(Refusal::Invalid)?;
    Ok(Assertion {
        credential_id: URL_SAFE_NO_PAD.encode(result.cred_id()),
        updated: serde_json::to_string(&passkey).map_err(|_| Refusal::Invalid)?,
        backup_state: result.backup_state(),
    })
}

fn parse_passkey(stored: &str) -> Option<Passkey> {
    serde_json::from_str(stored).ok()
}

fn to_state<T: serde::Serialize>(state: &T) -> Result<String, AppError> {
    serde_json::to_string(state).map_err(|_| AppError::internal())
}

fn internal(what: &str, e: &WebauthnError) -> AppError {
    tracing::error!(error = %e, "webauthn: could not {what}");
    AppError::internal()
}

fn refusal(e: WebauthnError) -> Refusal {
    tracing::info!(error = %e, "webauthn: refused");
    match e {
        WebauthnError::UserNotVerified => Refusal::NotVerified,
        WebauthnError::CredentialPossibleCompromise => Refusal::CounterRegressed,
        _ => Refusal::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ip_address_turns_passkeys_off_with_a_reason() {
        let rp = RelyingParty::new("http://127.0.0.1:3000", "Two-factor login");
        assert!(!rp.enabled());
        assert!(rp.off_reason().is_some_and(|r| r.contains("domain name")));
        assert!(rp.start_passwordless().is_err());
        let rp = RelyingParty::new("http://localhost:3000", "Two-factor login");
        assert!(rp.enabled(), "{:?}", rp.off_reason());
    }

    #[test]
    fn registration_options_ask_for_a_discoverable_verified_credential() {
        let rp = RelyingParty::new("https://auth.example.com", "Two-factor login");
        let (options, state) = rp.start_registration(Uuid::nil(), "ann@example.com", "Ann", &[]).unwrap();
        let selection = &options["publicKey"]["authenticatorSelection"];
        assert_eq!(selection["residentKey"], "preferred");
        assert_eq!(selection["userVerification"], "required");
        assert_eq!(options["publicKey"]["rp"]["id"], "auth.example.com");
        // The challenge is in the state the server keeps.
        let challenge = options["publicKey"]["challenge"].as_str().unwrap();
        assert!(state.len() > challenge.len());
        let (options, _) = rp.start_passwordless().unwrap();
        assert!(options.get("mediation").is_none());
        assert_eq!(options["publicKey"]["userVerification"], "required");
    }

    #[test]
    fn nonsense_is_refused_not_a_crash() {
        let rp = RelyingParty::new("https://auth.example.com", "Two-factor login");
        let junk = serde_json::json!({"id": "x", "response": {}});
        assert_eq!(rp.finish_registration(&junk, "{}").unwrap_err(), Refusal::Invalid);
        assert_eq!(rp.finish_authentication(&junk, "{}", "{}").unwrap_err(), Refusal::Invalid);
        assert!(rp.identify(&junk).is_none());
        assert!(RelyingParty::claimed_credential(&junk).is_none());
    }
}
