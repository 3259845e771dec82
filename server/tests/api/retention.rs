//! Bounded tables: expired and spent sessions, quiet throttle rows and old
//! audit events are pruned; session validity is an allow-list, so pruning
//! can never bring a token back to life.

use app::server::crypto::tokens::Stage;
use app::server::retention;

use super::*;

const DAY: i64 = 86_400;

#[tokio::test]
async fn tables_stay_bounded_and_live_sessions_survive_pruning() {
    let app = spawn_app().await;
    app.register("keep@example.com").await;
    app.log_in("keep@example.com", PASSWORD).await;
    // Rotations leave spent rows behind.
    for _ in 0..3 {
        app.clock.advance(16 * 60);
        assert_eq!(app.post("/api/authentication/refresh", json!({})).await.status, StatusCode::OK);
    }
    // Another device logs in and out: a revoked family.
    let other = new_client();
    app.post_with(&other, "/api/authentication/log-in", json!({"email": "keep@example.com", "password": PASSWORD}))
        .await;
    app.post_with(&other, "/api/authentication/log-out", json!({})).await;
    // Strangers: throttle rows for addresses and unknown emails, audit rows
    // without a user.
    for n in 0..4 {
        app.log_in(&format!("nobody{n}@example.com"), "wrong password entirely").await;
    }
    let before = app.state.db.row_counts().await.expect("counts");
    assert!(before.sessions >= 5 && before.throttle >= 5 && before.audit >= 6, "{before:?}");

    // Nothing is old enough yet.
    assert_eq!(retention::prune(&app.state).await.expect("prune").sessions, 0);

    // Eight days on: spent sessions and quiet throttle rows go; the live
    // session and the audit trail stay.
    app.clock.advance(8 * DAY);
    let pruned = retention::prune(&app.state).await.expect("prune");
    let after = app.state.db.row_counts().await.expect("counts");
    assert_eq!(after.sessions, 1, "only the live refresh token is left: {pruned:?}");
    assert_eq!(after.throttle, 0);
    assert_eq!(after.audit, before.audit);
    assert_eq!(app.post("/api/authentication/refresh", json!({})).await.status, StatusCode::OK, "still logged in");
    assert_eq!(app.get("/api/authentication").await.status, StatusCode::OK);

    // Past the audit retention (90 days) and the refresh lifetime (30 days).
    app.clock.advance(91 * DAY);
    retention::prune(&app.state).await.expect("prune");
    assert_eq!(app.state.db.row_counts().await.expect("counts"), Default::default());
    assert_error(
        &app.post("/api/authentication/refresh", json!({})).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
}

#[tokio::test]
async fn a_token_naming_a_family_that_is_not_stored_is_refused() {
    let app = spawn_app().await;
    app.register("allow@example.com").await;
    let r = app.log_in("allow@example.com", PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK);
    let user_id = r.body["user"]["id"].as_i64().expect("id");
    // A correctly signed token whose family was never stored (or was
    // pruned): a deny-list would accept it.
    let now = app.clock_now();
    let forged = app.state.keys.issue(user_id, Stage::Full, 1, now, 900, Some(("no-such-family", now))).expect("token");
    let r = app.current_user_with(&forged).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthenticated");

    // A revoked family whose rows were pruned stays dead.
    let access = set_cookie(&app.log_in("allow@example.com", PASSWORD).await, "access").expect("access");
    app.post("/api/authentication/log-out", json!({})).await;
    app.clock.advance(8 * DAY);
    retention::prune(&app.state).await.expect("prune");
    app.clock.advance(-8 * DAY);
    let r = app.current_user_with(&access).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
}
