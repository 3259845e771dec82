//! The gate's cookies: one per cookie domain per log-in, opaque, stored
//! hashed, alive exactly as long as the log-in.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::AppError;
use crate::server::crypto::{random_bytes, sha256_hex};
use crate::server::db::{NewGateCookie, Tx};
use crate::server::state::AppState;

/// One gate cookie per configured cookie domain: an opaque random value,
/// stored hashed, alive while its log-in is. Each replaces the log-in's
/// earlier cookie for its domain.
pub async fn issue_gate_cookies(
    state: &AppState,
    tx: &mut Tx,
    user_id: i64,
    login: &str,
    expires_at: i64,
) -> Result<Vec<String>, AppError> {
    issue(state, tx, user_id, login, expires_at, false).await
}

/// `issue_gate_cookies` for a log-in started in `tx` (nothing to replace).
pub(super) async fn issue_first_gate_cookies(
    state: &AppState,
    tx: &mut Tx,
    user_id: i64,
    login: &str,
    expires_at: i64,
) -> Result<Vec<String>, AppError> {
    issue(state, tx, user_id, login, expires_at, true).await
}

async fn issue(
    state: &AppState,
    tx: &mut Tx,
    user_id: i64,
    login: &str,
    expires_at: i64,
    first: bool,
) -> Result<Vec<String>, AppError> {
    let now = state.now();
    let mut cookies = Vec::with_capacity(state.gate.cookie_domains.len());
    for domain in &state.gate.cookie_domains {
        let value = URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
        let row = NewGateCookie {
            token_hash: &sha256_hex(value.as_bytes()),
            user_id,
            family: login,
            domain,
            now,
            expires_at,
        };
        if first {
            tx.insert_first_gate_cookie(&row).await?;
        } else {
            tx.insert_gate_cookie(&row).await?;
        }
        cookies.push(state.cookies.set_gate(domain, &value, (expires_at - now).max(0)));
    }
    Ok(cookies)
}
