//! Second factors: codes from an authenticator app (`totp`), recovery
//! codes (`recovery`), checking either as typed (`verify`), passkeys and
//! security keys (`passkeys`, over the WebAuthn relying party in
//! `webauthn`), the one rule for proving it is you before a change
//! (`proof`), the one place protection turns on or off (`protection`),
//! and browsers that skip the second factor (`remembered`).

pub mod passkeys;
pub mod proof;
pub mod protection;
pub mod recovery;
pub mod remembered;
pub mod totp;
pub mod verify;
pub mod webauthn;
