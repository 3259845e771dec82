//! Recovery codes: ten single-use codes, stored as keyed hashes, shown
//! once; a new set replaces the old one. Spending one is in `verify`.

use super::verify::verify_second_factor;
use crate::domain::{RECOVERY_ALPHABET, RECOVERY_CODE_CHARS, RecoveryCode, SecondFactor, TotpCode};
use crate::error::AppError;
use crate::server::audit::audit;
use crate::server::auth::FullSession;
use crate::server::crypto::random_bytes;
use crate::server::crypto::sealing::SecretBox;
use crate::server::request::RequestMeta;
use crate::server::state::AppState;
use crate::wire::{AuditKind, RecoveryCodesResponse};

/// Recovery codes issued per set.
pub const RECOVERY_CODES: usize = 10;

pub(crate) fn new_recovery_codes(secrets: &SecretBox, user_id: i64) -> Result<(Vec<String>, Vec<String>), AppError> {
    let mut shown = Vec::with_capacity(RECOVERY_CODES);
    let mut hashes = Vec::with_capacity(RECOVERY_CODES);
    for _ in 0..RECOVERY_CODES {
        // Rejection sampling keeps every character equally likely.
        let mut code = String::with_capacity(RECOVERY_CODE_CHARS);
        while code.len() < RECOVERY_CODE_CHARS {
            for b in random_bytes::<16>()? {
                let limit = 256 - 256 % RECOVERY_ALPHABET.len();
                if (b as usize) < limit && code.len() < RECOVERY_CODE_CHARS {
                    code.push(RECOVERY_ALPHABET[b as usize % RECOVERY_ALPHABET.len()] as char);
                }
            }
        }
        let code = RecoveryCode::parse(&code).map_err(|_| AppError::internal())?;
        hashes.push(secrets.recovery_hash(user_id, code.as_str())?);
        shown.push(code.display());
    }
    Ok((shown, hashes))
}

/// A new set of recovery codes (the old ones stop working); needs a code.
pub async fn regenerate_recovery_codes(
    state: &AppState,
    meta: &RequestMeta,
    session: FullSession,
    code: TotpCode,
) -> Result<RecoveryCodesResponse, AppError> {
    let user = session.row(state).await?;
    if !user.totp_enabled {
        return Err(AppError::conflict("Turn on two-factor authentication first."));
    }
    verify_second_factor(state, meta, &user, &SecondFactor::Totp(code)).await?;
    let (codes, hashes) = new_recovery_codes(&state.secrets, user.id)?;
    let mut tx = state.db.begin().await?;
    tx.replace_recovery_codes(user.id, &hashes).await?;
    tx.commit().await?;
    audit(state, Some(user.id), AuditKind::RecoveryCodesRegenerated, meta).await;
    Ok(RecoveryCodesResponse { recovery_codes: codes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_codes_are_distinct_and_parse() {
        let secrets = SecretBox::new(("k1", &[3u8; 32]), &[]).unwrap();
        let (shown, hashes) = new_recovery_codes(&secrets, 7).unwrap();
        assert_eq!(shown.len(), 10);
        let unique: std::collections::HashSet<_> = shown.iter().collect();
        assert_eq!(unique.len(), 10);
        for (code, hash) in shown.iter().zip(&hashes) {
            let parsed = RecoveryCode::parse(code).unwrap();
            assert_eq!(&secrets.recovery_candidates(7, parsed.as_str())[0], hash);
            assert!(!hash.contains(parsed.as_str()));
        }
    }
}
