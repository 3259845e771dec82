//! Back-channel log-out (OpenID Connect Back-Channel Logout 1.0): when a
//! log-in ends, however it ends, each app that received tokens from it
//! and registered a back-channel address is sent a signed logout token
//! naming the log-in (`sid`) and the person (`sub`). The messages are
//! queued in the transaction that ends the log-in (`db::oidc`) and sent
//! from here, with retries, by whichever instance claims them first.

use std::time::Duration;

use super::token::session_id;
use crate::error::AppError;
use crate::server::db::LogoutMessage;
use crate::server::state::AppState;

/// Messages claimed per round.
const BATCH: i64 = 20;
/// A claimed message is left alone by other senders this long.
const LEASE_SECONDS: i64 = 60;
/// Tries before a message is given up (about an hour after the first).
pub const MAX_ATTEMPTS: i64 = 8;
/// How long an app may take to answer.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the queue is read when nothing wakes the sender.
const POLL: Duration = Duration::from_secs(15);
/// A logout token is good this long.
const TOKEN_TTL: i64 = 120;

/// The event a logout token carries (section 2.4 of the spec).
const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// Seconds until the next try after `attempts` failed ones: 30 s, 1, 2,
/// 4… minutes, at most an hour.
pub fn retry_after(attempts: i64) -> i64 {
    (30_i64 << (attempts.clamp(1, 8) - 1)).min(3600)
}

/// Runs for the life of the server: sends what is due, then waits for a
/// transaction that queued more, or for `POLL`.
pub async fn run_sender(state: AppState) {
    loop {
        match send_due(&state).await {
            Ok(n) if n as i64 >= BATCH => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e.message, "could not read the back-channel log-out queue"),
        }
        tokio::select! {
            _ = state.db.logouts_queued.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// One round: the due messages this instance could claim, each sent (in
/// parallel) and its outcome recorded. Returns how many were claimed.
pub async fn send_due(state: &AppState) -> Result<usize, AppError> {
    let now = state.now();
    let claimed = state.db.claim_due_logouts(now, now + LEASE_SECONDS, BATCH).await?;
    if claimed.is_empty() {
        return Ok(0);
    }
    let keys = super::keys::current(state).await?;
    let mut sends = tokio::task::JoinSet::new();
    for m in claimed.iter().cloned() {
        let token = logout_token(state, &keys, &m, now).await?;
        let http = state.oidc.http.clone();
        sends.spawn(async move {
            let sent = post(&http, &m.backchannel_logout_uri, &token).await;
            (m, sent)
        });
    }
    while let Some(done) = sends.join_next().await {
        let Ok((m, sent)) = done else { continue };
        let attempts = m.attempts + 1;
        let outcome = match sent {
            Ok(()) => {
                tracing::info!(client_id = m.client_id, "back-channel log-out delivered");
                Ok(())
            }
            Err(error) if attempts >= MAX_ATTEMPTS => {
                tracing::warn!(client_id = m.client_id, error, "back-channel log-out given up");
                Err((error, None))
            }
            Err(error) => {
                tracing::info!(client_id = m.client_id, error, attempts, "back-channel log-out failed; will retry");
                Err((error, Some(state.now() + retry_after(attempts))))
            }
        };
        state.db.record_logout(&m, state.now(), outcome).await?;
    }
    Ok(claimed.len())
}

/// The signed logout token for one message: `typ` `logout+jwt`, never a
/// `nonce` (section 2.4).
async fn logout_token(
    state: &AppState,
    keys: &std::sync::Arc<super::keys::KeySet>,
    m: &LogoutMessage,
    now: i64,
) -> Result<String, AppError> {
    let serde_json::Value::Object(claims) = serde_json::json!({
        "iss": state.oidc.issuer,
        "aud": m.client_id,
        "iat": now,
        "exp": now + TOKEN_TTL,
        "jti": uuid::Uuid::new_v4().to_string(),
        "sub": m.oidc_subject.clone().unwrap_or_default(),
        "sid": session_id(&m.login_id),
        "events": { EVENT: {} },
    }) else {
        return Err(AppError::internal());
    };
    keys.clone().sign_apart(claims, "logout+jwt").await
}

/// POSTs the token as a form; any 2xx is delivery (section 2.8 says 200).
async fn post(http: &reqwest::Client, uri: &str, token: &str) -> Result<(), String> {
    let res = http
        .post(uri)
        .header(http::header::CACHE_CONTROL, "no-store")
        .form(&[("logout_token", token)])
        .send()
        .await
        .map_err(|e| format!("{}", e.without_url()))?;
    if res.status().is_success() { Ok(()) } else { Err(format!("answered {}", res.status())) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_an_hour() {
        assert_eq!((1..=8).map(retry_after).collect::<Vec<_>>(), vec![30, 60, 120, 240, 480, 960, 1920, 3600]);
    }
}
