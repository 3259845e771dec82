//! Bad input never reaches a 500: every endpoint gets malformed bodies,
//! wrong types, huge numbers, invalid UTF-8, overlong strings and unknown
//! fields, logged out and logged in. Each answer is a 4xx JSON error and
//! the accounts, sessions and recovery codes are exactly as before.

use super::*;

/// Bodies no endpoint accepts, whatever its fields.
fn raw_bodies() -> Vec<Vec<u8>> {
    let mut bodies: Vec<Vec<u8>> = [
        &b"not json"[..],
        b"\xff\xfe\xfd\x00",
        b"[]",
        b"null",
        b"\"a string\"",
        b"123",
        b"1e400",
        b"-99999999999999999999999999999999",
        b"{",
        b"{\"a\":",
        b"{\"email\": \"\xc3\x28\"}",
        b"true",
    ]
    .iter()
    .map(|b| b.to_vec())
    .collect();
    bodies.push(format!("{}{}", "[".repeat(2000), "]".repeat(2000)).into_bytes());
    bodies.push(format!("{{\"email\": \"{}\"}}", "x".repeat(70_000)).into_bytes());
    bodies
}

/// Values of the wrong type, or of the right type but never valid.
fn bad_values() -> Vec<Value> {
    vec![
        json!(123),
        json!(-1),
        json!(1.5e308),
        json!(u64::MAX),
        json!(true),
        json!([]),
        json!({"nested": {"deeper": [1, 2, 3]}}),
        json!(""),
        json!("\u{0}\u{1}\u{7f}"),
        json!("no-at-sign-here"),
        json!("x".repeat(5_000)),
        json!("١٢٣٤٥٦"),
        json!("12345678901234567890"),
    ]
}

/// The JSON endpoints and their required fields. Endpoints without
/// arguments accept any object (unknown fields are ignored), so they only
/// get the raw bodies.
const ENDPOINTS: &[(&str, &[&str])] = &[
    ("/api/authentication/register", &["email", "name", "password"]),
    ("/api/authentication/log-in", &["email", "password"]),
    ("/api/2fa/authenticate", &["twoFactorAuthenticationCode"]),
    ("/api/2fa/turn-on", &["twoFactorAuthenticationCode"]),
    ("/api/2fa/turn-off", &["password", "twoFactorAuthenticationCode"]),
    ("/api/2fa/recovery-codes", &["twoFactorAuthenticationCode"]),
    ("/api/authentication/change-password", &["currentPassword", "newPassword"]),
    ("/api/2fa/generate", &[]),
    ("/api/authentication/refresh", &[]),
    ("/api/authentication/log-out", &[]),
    ("/api/authentication/log-out-everywhere", &[]),
];

async fn expect_client_error(app: &TestApp, client: &reqwest::Client, path: &str, body: Vec<u8>) {
    let shown = String::from_utf8_lossy(&body).chars().take(60).collect::<String>();
    let req = client.post(format!("{}{path}", app.base)).header("content-type", "application/json").body(body);
    let r = app.send(client, req).await;
    assert!(r.status.is_client_error(), "{path} with {shown:?}: {} {}", r.status, r.text);
    assert!(r.body["error"].is_string() && r.body["message"].is_string(), "{path} with {shown:?}: {}", r.text);
}

#[tokio::test]
async fn malformed_requests_get_a_client_error_and_change_nothing() {
    let app = spawn_app().await;
    app.enrolled_user("fuzz@example.com").await;
    let logged_out = new_client();
    let before = snapshot(&app).await;
    for client in [&logged_out, &app.client] {
        for (path, fields) in ENDPOINTS {
            for body in raw_bodies() {
                // An endpoint without fields takes any complete object
                // (unknown fields are ignored, their contents unchecked) and
                // `[]` (serde reads a struct from a sequence of its fields).
                if fields.is_empty() && (body == b"[]" || body.starts_with(b"{\"email\"")) {
                    continue;
                }
                expect_client_error(&app, client, path, body).await;
            }
            // Each field in turn gets each bad value; the others too.
            for value in bad_values() {
                for (i, _) in fields.iter().enumerate() {
                    let mut object = serde_json::Map::new();
                    for (j, name) in fields.iter().enumerate() {
                        object.insert((*name).to_owned(), if i == j { value.clone() } else { json!("x") });
                    }
                    object.insert("unknownField".into(), json!({"a": [1, 2]}));
                    let body = serde_json::to_vec(&Value::Object(object)).expect("json");
                    expect_client_error(&app, client, path, body).await;
                }
            }
        }
        for path in
            ["/api/authentication?x=%ff%fe", "/api/2fa/status?a[]=1&a[]=2", "/api/authentication/activity?limit=-1"]
        {
            let r = app.get_with(client, path).await;
            assert!(r.status.is_client_error() || r.status == StatusCode::OK, "{path}: {} {}", r.status, r.text);
        }
    }
    assert_eq!(snapshot(&app).await, before, "bad input changed the database");
    assert_eq!(app.get("/api/authentication").await.status, StatusCode::OK, "the session survived");
}
