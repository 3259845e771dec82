//! The browser-facing edge: cross-site writes refused, security headers, the nonce CSP, protected pages redirecting.

use super::*;

#[tokio::test]
async fn cross_site_posts_are_refused() {
    let app = spawn_app().await;
    let body = json!({"email": "jo@example.com", "name": "Jo", "password": PASSWORD});
    let url = format!("{}/api/authentication/register", app.base);
    let r = app.send(&app.client, app.client.post(&url).header("origin", "https://evil.example").json(&body)).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = app.send(&app.client, app.client.post(&url).header("sec-fetch-site", "cross-site").json(&body)).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    // Nothing was created.
    assert_eq!(app.log_in("jo@example.com", PASSWORD).await.status, StatusCode::UNAUTHORIZED);
    // The app's own origin passes.
    let own = app.base.clone();
    let r = app.send(&app.client, app.client.post(&url).header("origin", own).json(&body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

#[tokio::test]
async fn responses_carry_security_headers() {
    let app = spawn_app().await;
    let r = app.get("/login").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.contains("Log in"));
    assert_eq!(r.headers["x-content-type-options"], "nosniff");
    assert!(r.headers["content-security-policy"].to_str().unwrap_or("").contains("frame-ancestors 'none'"));
    let r = app.log_in("nobody@example.com", PASSWORD).await;
    assert_eq!(r.headers["cache-control"], "no-store");
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);
    assert_eq!(app.get("/readyz").await.status, StatusCode::OK);
}

#[tokio::test]
async fn protected_page_redirects_without_a_session() {
    let app = spawn_app().await;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let r = app.get_with(&client, "/").await;
    assert!(r.status.is_redirection(), "{} {:?} {}", r.status, r.headers, r.text);
    assert_eq!(r.headers["location"], "/login");
}

#[tokio::test]
async fn pages_carry_a_nonce_csp() {
    let app = spawn_app().await;
    let r = app.get("/login").await;
    let csp = r.headers["content-security-policy"].to_str().unwrap_or("").to_owned();
    let nonce = csp.split("'nonce-").nth(1).and_then(|s| s.split('\'').next()).expect("nonce in CSP");
    assert!(r.text.contains(&format!("nonce=\"{nonce}\"")), "the hydration script carries the nonce");
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("'wasm-unsafe-eval'") && !csp.contains("unsafe-inline")
    );
    let again = app.get("/login").await;
    assert_ne!(
        again.headers["content-security-policy"], r.headers["content-security-policy"],
        "a fresh nonce per page"
    );
    let api = app.log_in("nobody@example.com", PASSWORD).await;
    assert!(api.headers["content-security-policy"].to_str().unwrap_or("").starts_with("default-src 'none'"));
}
