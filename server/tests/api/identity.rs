//! Look-alike emails and names, weak passwords, and passwords in NFC.

use super::*;

fn register_body(email: &str, name: &str, password: &str) -> Value {
    json!({"email": email, "name": name, "password": password})
}

async fn user_count(app: &TestApp) -> i64 {
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&app.database_url).await.expect("db");
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users").fetch_one(&mut conn).await.expect("count");
    n
}

#[tokio::test]
async fn look_alike_emails_and_names_are_refused_or_folded() {
    let app = spawn_app().await;
    assert_eq!(app.register("ann@example.com").await.status, StatusCode::CREATED);
    // Each of these would print as "ann@example.com" or reorder on screen.
    for email in [
        "\u{430}nn@example.com",      // Cyrillic а
        "an\u{200B}n@example.com",    // zero-width space
        "an\u{00AD}n@example.com",    // soft hyphen
        "ann@ex\u{430}mple.com",      // Cyrillic in the domain
        "ann\u{202E}moc@example.com", // right-to-left override
    ] {
        let r = app.post("/api/authentication/register", register_body(email, "Ann", PASSWORD)).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
        assert!(r.body["fields"]["email"].is_string(), "{email:?}: {}", r.text);
    }
    // Compatibility forms are the same account, not a second one.
    let r = app.post("/api/authentication/register", register_body("ＡＮＮ@example.com", "Ann", PASSWORD)).await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");
    assert_eq!(app.log_in("ａｎｎ@example.com", PASSWORD).await.status, StatusCode::OK);
    // A name may not carry direction overrides or invisible characters.
    let r =
        app.post("/api/authentication/register", register_body("bob@example.com", "Bob\u{202E}nimda", PASSWORD)).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    assert!(r.body["fields"]["name"].is_string(), "{}", r.text);
    assert_eq!(user_count(&app).await, 1, "nothing was created by a refused request");
    // A single script other than Latin is welcome.
    let r = app.post("/api/authentication/register", register_body("иван@example.com", "Иван", PASSWORD)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

#[tokio::test]
async fn weak_passwords_are_refused_with_a_reason() {
    let app = spawn_app().await;
    for weak in ["            ", "password1234", "qwertyuiopasdfgh", "ann@example.com", "Ann Example 2026"] {
        let r = app.post("/api/authentication/register", register_body("ann@example.com", "Ann Example", weak)).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
        let why = r.body["fields"]["password"].as_str().unwrap_or_default();
        assert!(why.starts_with("This password is too easy to guess."), "{weak:?}: {}", r.text);
    }
    assert_eq!(user_count(&app).await, 0);
    // With another field wrong too, both are named at once.
    let r =
        app.post("/api/authentication/register", register_body("\u{430}nn@example.com", "Ann", "password1234")).await;
    assert!(r.body["fields"]["email"].is_string() && r.body["fields"]["password"].is_string(), "{}", r.text);
    assert_eq!(app.register("ann@example.com").await.status, StatusCode::CREATED);
    app.log_in("ann@example.com", PASSWORD).await;
    let r = app
        .post(
            "/api/authentication/change-password",
            json!({"currentPassword": PASSWORD, "newPassword": "password1234"}),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    assert!(r.body["fields"]["newPassword"].as_str().unwrap_or_default().contains("too easy"), "{}", r.text);
    // Unchanged: the old password still works, the session too.
    assert_eq!(app.get("/api/authentication").await.status, StatusCode::OK);
    assert_eq!(app.log_in("ann@example.com", PASSWORD).await.status, StatusCode::OK);
}

/// "crème brûlée" typed with combining accents, and composed.
const DECOMPOSED: &str = "cre\u{300}me bru\u{302}le\u{301}e for two";
const COMPOSED: &str = "cr\u{e8}me br\u{fb}l\u{e9}e for two";

#[tokio::test]
async fn passwords_are_compared_in_nfc_and_old_hashes_are_upgraded() {
    let app = spawn_app().await;
    let r = app.post("/api/authentication/register", register_body("nfc@example.com", "Nora", DECOMPOSED)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(app.log_in("nfc@example.com", COMPOSED).await.status, StatusCode::OK);
    assert_eq!(app.log_in("nfc@example.com", DECOMPOSED).await.status, StatusCode::OK);

    // An account hashed by an older release, over the form as typed.
    use argon2::password_hash::PasswordHasher;
    let legacy = argon2::Argon2::default().hash_password(DECOMPOSED.as_bytes()).expect("hash").to_string();
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&app.database_url).await.expect("db");
    sqlx::query("UPDATE users SET password_hash = $1 WHERE email = 'nfc@example.com'")
        .bind(&legacy)
        .execute(&mut conn)
        .await
        .expect("legacy hash");
    // The composed form misses the old hash; the form as typed still works
    // and the hash is replaced by the NFC one ...
    assert_eq!(app.log_in("nfc@example.com", DECOMPOSED).await.status, StatusCode::OK);
    let (now,): (String,) = sqlx::query_as("SELECT password_hash FROM users WHERE email = 'nfc@example.com'")
        .fetch_one(&mut conn)
        .await
        .expect("hash");
    assert_ne!(now, legacy, "rehashed");
    // ... so from then on either way of typing it works.
    assert_eq!(app.log_in("nfc@example.com", COMPOSED).await.status, StatusCode::OK);
    assert_eq!(app.log_in("nfc@example.com", "creme brulee for two").await.status, StatusCode::UNAUTHORIZED);
}
