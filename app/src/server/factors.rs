//! Second factors: codes from an authenticator app (`totp`), passkeys and
//! security keys (`passkeys`, over the WebAuthn relying party in
//! `webauthn`). Recovery codes, the proof rule and turning protection on or
//! off still live in `service` (issue 20 moves them here).

pub mod passkeys;
pub mod totp;
pub mod webauthn;
