//! The person's side of the provider: the apps they sign in to through
//! the portal ("Connected apps" on the security page), and taking one's
//! access back (its sign-ins end with every token, and its consent goes).

use crate::error::{AppError, ErrorKind};
use crate::server::audit;
use crate::server::auth::FullSession;
use crate::server::request::RequestMeta;
use crate::server::state::AppState;
use crate::wire::{AuditKind, ConnectedApp};

/// The apps the person agreed to share with or is signed in to.
pub async fn list(state: &AppState, session: &FullSession) -> Result<Vec<ConnectedApp>, AppError> {
    let rows = state.db.connected_apps(session.user.id, state.now()).await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let scope = r.consented.filter(|s| !s.is_empty()).or(r.last_scope).unwrap_or_else(|| "openid".into());
            ConnectedApp {
                client_id: r.client_id,
                name: r.name,
                scopes: super::known_scopes(&scope).into_iter().map(str::to_owned).collect(),
                signed_in_at: r.last_at,
            }
        })
        .collect())
}

/// Takes back an app's access. Returns its name; 404 when the person has
/// nothing with that app (another person's, or already taken back).
pub async fn revoke(
    state: &AppState,
    meta: &RequestMeta,
    session: &FullSession,
    client_id: &str,
) -> Result<String, AppError> {
    let not_connected = || AppError::new(ErrorKind::NotFound, "That app is not connected to your account.");
    let client = state.db.oidc_client(client_id).await?.ok_or_else(not_connected)?;
    let mut tx = state.db.begin().await?;
    if !tx.revoke_app(session.user.id, &client.id, state.now()).await? {
        return Err(not_connected());
    }
    audit::record(state, &mut tx, Some(session.user.id), AuditKind::AppAccessRevoked, meta).await?;
    audit::commit(state, tx).await?;
    tracing::info!(user_id = session.user.id, client_id = client.id, "an app's access was taken back");
    Ok(client.name)
}
