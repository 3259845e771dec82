//! The gate's cookies: one per cookie domain per log-in, opaque, stored
//! hashed, alive exactly as long as the log-in.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::AppError;
use crate::server::crypto::{random_bytes, sha256_hex};
use crate::server::db::{NewGateCookie, Tx};
use crate::server::state::AppState;

/// One gate cookie per configured cookie domain: an opaque random value,
/// stored hashed, alive while its log-in is.
pub async fn issue_gate_cookies(
    state: &AppState,
    tx: &mut Tx,
    user_id: i64,
    login: &str,
    expires_at: i64,
) -> Result<Vec<String>, AppError> {
    let now = state.now();
    let mut cookies = Vec::with_capacity(state.gate.cookie_domains.len());
    for domain in &state.gate.cookie_domains {
        let value = URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
        tx.insert_gate_cookie(&NewGateCookie {
            token_hash: &sha256_hex(value.as_bytes()),
            user_id,
            family: login,
            domain,
            now,
            expires_at,
        })
        .await?;
        cookies.push(state.cookies.set_gate(domain, &value, (expires_at - now).max(0)));
    }
    Ok(cookies)
}
