//! Following other instances' changes on PostgreSQL (`LISTEN`), so the
//! gate and session cache drop what another instance ended.

use super::*;

impl Db {
    /// Follows the other instances' changes on PostgreSQL (`LISTEN`), for
    /// the gate cache: on while listening, off and empty whenever the
    /// connection is lost, until it is back. Runs for the life of the server.
    pub async fn follow_gate_changes(&self, url: String) {
        use sqlx::postgres::PgListener;
        let cache = self.gate_cache.clone();
        loop {
            let listener = match PgListener::connect(&url).await {
                Ok(mut listener) => match listener.listen(gate_cache::CHANNEL).await {
                    Ok(()) => Some(listener),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not LISTEN for gate changes; the gate cache stays off");
                        None
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "could not connect to LISTEN for gate changes; the gate cache stays off");
                    None
                }
            };
            let Some(mut listener) = listener else {
                cache.reset(false);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            };
            // Anything from before is unknown: start empty, then follow.
            cache.reset(true);
            loop {
                match listener.try_recv().await {
                    Ok(Some(notification)) => {
                        if let Some(what) = Invalidation::parse(notification.payload()) {
                            cache.invalidate(&what);
                        }
                    }
                    // The connection was lost: what was said meanwhile is
                    // lost with it.
                    Ok(None) | Err(_) => {
                        tracing::warn!(
                            "lost the LISTEN connection for gate changes; the gate cache is off until it is back"
                        );
                        cache.reset(false);
                        break;
                    }
                }
            }
        }
    }
}
