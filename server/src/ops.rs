//! Operator commands that work on the database directly.

use app::server::AppState;
use app::server::db::SealedSecrets;
use app::server::sealing::SecretBox;

/// Re-seals every TOTP secret not under the current key. Each row is
/// swapped only if unchanged since read, so it is safe beside a running
/// server. Returns how many accounts were re-encrypted.
pub async fn rotate_secrets_key(state: &AppState) -> Result<usize, String> {
    let rows = state.db.sealed_secrets().await.map_err(|e| e.message)?;
    let current = state.secrets.current_id().to_owned();
    let mut done = 0;
    for row in rows {
        let reseal = |value: &Option<String>| -> Result<Option<String>, String> {
            match value {
                Some(sealed) if SecretBox::key_id(sealed) != Some(current.as_str()) => {
                    let plain = state.secrets.open(row.id, sealed).map_err(|_| {
                        format!(
                            "account {}: a secret is under key {:?}, which is neither SECRETS_KEY nor in SECRETS_KEYS_PREVIOUS",
                            row.id,
                            SecretBox::key_id(sealed).unwrap_or("?")
                        )
                    })?;
                    Ok(Some(state.secrets.seal(row.id, &plain).map_err(|e| e.message)?))
                }
                other => Ok(other.clone()),
            }
        };
        let new = SealedSecrets {
            id: row.id,
            totp_secret: reseal(&row.totp_secret)?,
            totp_pending_secret: reseal(&row.totp_pending_secret)?,
        };
        if new.totp_secret != row.totp_secret || new.totp_pending_secret != row.totp_pending_secret {
            if state.db.replace_sealed(&row, &new).await.map_err(|e| e.message)? {
                done += 1;
            } else {
                return Err(format!("account {} changed during the rotation; run the command again", row.id));
            }
        }
    }
    Ok(done)
}
