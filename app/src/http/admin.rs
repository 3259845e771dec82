//! The admin page's download: GET /admin/activity.csv, the audit trail
//! with the filters of /admin?view=activity, for administrators only.

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::server::admin::activity;
use crate::server::auth::FullSession;
use crate::server::state::AppState;
use crate::wire::admin::ActivityFilter;

pub fn routes() -> axum::Router<AppState> {
    axum::Router::new().route("/admin/activity.csv", axum::routing::get(activity_csv))
}

async fn activity_csv(
    State(state): State<AppState>,
    session: Result<FullSession, crate::error::AppError>,
    filter: Result<Query<ActivityFilter>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let session = match session {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let Ok(Query(filter)) = filter else {
        return (StatusCode::BAD_REQUEST, "The filters of the activity page could not be read.").into_response();
    };
    match activity::csv(&state, &session, &filter).await {
        Ok(csv) => {
            let day = jiff::Timestamp::from_second(state.now()).map(|t| t.strftime("%Y-%m-%d").to_string());
            let name = format!("attachment; filename=\"activity-{}.csv\"", day.unwrap_or_default());
            let mut res = csv.into_response();
            let headers = res.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            if let Ok(v) = HeaderValue::from_str(&name) {
                headers.insert(header::CONTENT_DISPOSITION, v);
            }
            res
        }
        Err(e) => e.into_response(),
    }
}
