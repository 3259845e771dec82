//! The metrics listener (`METRICS_ADDR`): `GET /metrics` in Prometheus's
//! text format, on an address of its own, never on the public one. Nothing
//! else is served there.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::server::metrics;
use crate::server::state::AppState;

/// The router of the metrics listener.
pub fn router(state: AppState) -> Router {
    Router::new().route("/metrics", get(scrape)).fallback(|| async { StatusCode::NOT_FOUND }).with_state(state)
}

async fn scrape(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8"), (header::CACHE_CONTROL, "no-store")],
        metrics::render(&state).await,
    )
        .into_response()
}
