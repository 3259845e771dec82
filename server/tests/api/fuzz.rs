//! Bad input never reaches a 500: every route that takes a body (every
//! POST, PUT, PATCH and DELETE the router answers, read from the router
//! itself by `server::route_list`, so a new endpoint is covered without
//! editing a list) gets malformed bodies, wrong types, huge numbers,
//! invalid UTF-8, overlong strings and unknown fields, logged out and
//! logged in. A JSON endpoint answers a 4xx JSON error; a page's form
//! answers a 4xx (the page again with the error, or a plain refusal).
//! Afterwards the accounts, sessions and recovery codes are exactly as
//! before.

use std::collections::BTreeSet;

use reqwest::Method;

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
        b"%ff%fe=%00&intent=%c3%28&&==&a[]=1",
    ]
    .iter()
    .map(|b| b.to_vec())
    .collect();
    bodies.push(format!("{}{}", "[".repeat(2000), "]".repeat(2000)).into_bytes());
    bodies.push(format!("{{\"email\": \"{}\"}}", "x".repeat(70_000)).into_bytes());
    bodies
}

/// Bodies a JSON endpoint without arguments may take as `{}`: a complete
/// object (unknown fields are ignored, their contents unchecked) and `[]`
/// (serde reads a struct from a sequence of its fields).
fn taken_without_arguments(body: &[u8]) -> bool {
    body == b"[]" || body.starts_with(b"{\"email\"")
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

/// The write routes: what takes a body.
fn write_routes(app: &TestApp) -> Vec<(Method, String)> {
    server::route_list(&app.state)
        .into_iter()
        .filter(|(m, _)| [Method::POST, Method::PUT, Method::PATCH, Method::DELETE].contains(m))
        .collect()
}

/// The route's path with its parameters filled in.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|part| match part {
            p if p.starts_with("{*") => "fuzz/unknown".to_owned(),
            p if p.starts_with('{') => "1".to_owned(),
            p => p.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The JSON API: under `/api`, except the gate's questions (no body of
/// ours, no JSON rules: see `authz`).
fn is_json(path: &str) -> bool {
    path.starts_with("/api/") && !path.starts_with("/api/authz/")
}

/// Optional fields the API uses: an endpoint cannot name them as missing,
/// so every endpoint with fields gets them too (unknown ones are ignored).
const OPTIONAL_FIELDS: &[&str] = &["twoFactorAuthenticationCode", "recoveryCode", "password"];

struct Route {
    method: Method,
    path: String,
    /// The JSON fields it reads (none: it takes no arguments).
    fields: Vec<String>,
    /// A form that acts whatever it is sent (log out): no input to get
    /// wrong, so it is posted to logged out only.
    takes_no_input: bool,
}

/// What each route takes, asked of the server itself before the snapshot,
/// by a session of its own (an answer may act: log it out, start a
/// ceremony), logged in again whenever it was logged out. `[]` is a
/// sequence of no fields: refused by an endpoint with fields, taken by one
/// without; `{}` then names the missing ones. An empty form answered with
/// a redirect (logged in or out) was acted on.
async fn discover(app: &TestApp) -> Vec<Route> {
    let asker = "fuzz-asker@example.com";
    assert_eq!(app.register(asker).await.status, StatusCode::CREATED);
    let client = super::forms::browser();
    let mut routes = Vec::new();
    for (method, path) in write_routes(app) {
        if app.get_with(&client, "/api/authentication").await.status == StatusCode::UNAUTHORIZED {
            let login = json!({"email": asker, "password": PASSWORD});
            assert_eq!(app.post_with(&client, "/api/authentication/log-in", login).await.status, StatusCode::OK);
        }
        let url = format!("{}{}", app.base, concrete(&path));
        let mut fields = BTreeSet::new();
        if !is_json(&path) {
            let r = app.send(&client, client.request(method.clone(), &url).form(&[("", "")][..0])).await;
            // Asked logged out too: an OpenID log-out with nothing to end
            // sends the browser on, whatever it was sent.
            let stranger = super::forms::browser();
            let alone = app.send(&stranger, stranger.request(method.clone(), &url).form(&[("", "")][..0])).await;
            let takes_no_input = r.status.is_redirection() || alone.status.is_redirection();
            routes.push(Route { method, path, fields: vec![], takes_no_input });
            continue;
        }
        let r = app.send(&client, client.request(method.clone(), &url).json(&json!([]))).await;
        if r.status == StatusCode::BAD_REQUEST {
            fields.extend(OPTIONAL_FIELDS.iter().map(|f| f.to_string()));
            let mut object = serde_json::Map::new();
            for _ in 0..6 {
                let r = app.send(&client, client.request(method.clone(), &url).json(&object)).await;
                let named: Vec<String> =
                    r.body["fields"].as_object().map(|f| f.keys().cloned().collect()).unwrap_or_default();
                if named.iter().all(|f| object.contains_key(f)) {
                    break;
                }
                for f in named {
                    object.insert(f.clone(), json!("x"));
                    fields.insert(f);
                }
            }
        }
        routes.push(Route { method, path, fields: fields.into_iter().collect(), takes_no_input: false });
    }
    routes
}

async fn expect_client_error(app: &TestApp, client: &reqwest::Client, route: &Route, body: Vec<u8>, form: bool) {
    let shown = String::from_utf8_lossy(&body).chars().take(60).collect::<String>();
    let path = concrete(&route.path);
    let content_type = if form { "application/x-www-form-urlencoded" } else { "application/json" };
    let req = client
        .request(route.method.clone(), format!("{}{path}", app.base))
        .header("content-type", content_type)
        .body(body);
    let r = app.send(client, req).await;
    let what = format!("{} {path} ({content_type}) with {shown:?}", route.method);
    if route.takes_no_input {
        // It reads nothing, so nothing sent is wrong: it acts (logged out,
        // on nothing), and never fails.
        assert!(!r.status.is_server_error(), "{what}: {} {}", r.status, r.text);
        return;
    }
    assert!(r.status.is_client_error(), "{what}: {} {}", r.status, r.text);
    if is_json(&route.path) {
        assert!(r.body["error"].is_string() && r.body["message"].is_string(), "{what}: {}", r.text);
    }
}

#[tokio::test]
async fn malformed_requests_to_every_route_get_a_client_error_and_change_nothing() {
    let app = spawn_app().await;
    let routes = discover(&app).await;
    // The router is read whole: the endpoints of every kind are there.
    for (method, path) in [
        ("POST", "/api/authentication/register"),
        ("POST", "/api/2fa/turn-off"),
        ("POST", "/api/webauthn/register/finish"),
        ("POST", "/login"),
        ("DELETE", "/api/authz/forward-auth"),
        ("PUT", "/api/{*endpoint}"),
    ] {
        assert!(routes.iter().any(|r| r.method == method && r.path == path), "{method} {path} is not listed");
    }
    let register = routes.iter().find(|r| r.path == "/api/authentication/register").expect("register");
    assert!(["email", "name", "password"].iter().all(|f| register.fields.contains(&f.to_string())), "found by asking");
    let with_fields = routes.iter().filter(|r| !r.fields.is_empty()).count();
    let forms = routes.iter().filter(|r| !is_json(&r.path)).count();
    eprintln!("{} write routes: {with_fields} JSON with fields, {forms} forms and gate questions", routes.len());

    // Clients that follow no redirects, so a form's 303 is seen as such.
    let email = "fuzz@example.com";
    let secret = app.enrolled_user(email).await;
    let (logged_out, member) = (super::forms::browser(), super::forms::browser());
    let r = app.post_with(&member, "/api/authentication/log-in", json!({"email": email, "password": PASSWORD})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    app.clock.advance(30);
    let code = json!({"twoFactorAuthenticationCode": app.code_now(&secret)});
    assert_eq!(app.post_with(&member, "/api/2fa/authenticate", code).await.status, StatusCode::OK);
    let before = snapshot(&app).await;
    for (client, logged_in) in [(&logged_out, false), (&member, true)] {
        for route in &routes {
            if logged_in && route.takes_no_input {
                continue;
            }
            let json = is_json(&route.path);
            for body in raw_bodies() {
                if json && route.fields.is_empty() && taken_without_arguments(&body) {
                    continue;
                }
                expect_client_error(&app, client, route, body.clone(), false).await;
                if !json {
                    expect_client_error(&app, client, route, body, true).await;
                }
            }
            // Each field in turn gets each bad value; the others too.
            for value in bad_values() {
                for (i, _) in route.fields.iter().enumerate() {
                    let mut object = serde_json::Map::new();
                    for (j, name) in route.fields.iter().enumerate() {
                        object.insert(name.clone(), if i == j { value.clone() } else { json!("x") });
                    }
                    object.insert("unknownField".into(), json!({"a": [1, 2]}));
                    let body = serde_json::to_vec(&Value::Object(object)).expect("json");
                    expect_client_error(&app, client, route, body, false).await;
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
    assert_eq!(app.get_with(&member, "/api/authentication").await.status, StatusCode::OK, "the session survived");
}
