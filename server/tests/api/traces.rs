//! One span per request: a request id on every answer (a trusted proxy's
//! own when it is safe), and JSON log lines that carry the request's
//! fields, the person and the log-in, and never a query string or a token.

use std::sync::Mutex;

use super::*;

fn request_id(r: &Reply) -> String {
    r.headers.get("x-request-id").and_then(|v| v.to_str().ok()).expect("X-Request-Id on every answer").to_owned()
}

fn is_new_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

impl TestApp {
    async fn get_with_id(&self, path: &str, id: &[u8]) -> Reply {
        let value = reqwest::header::HeaderValue::from_bytes(id).expect("a value reqwest can send");
        let bare = reqwest::Client::new();
        self.send(&bare, bare.get(format!("{}{path}", self.base)).header("x-request-id", value)).await
    }
}

#[tokio::test]
async fn every_answer_carries_its_own_request_id() {
    let app = spawn_app().await;
    let mut seen = std::collections::HashSet::new();
    let replies = [
        app.get("/healthz").await,
        app.get("/healthz").await,
        app.get("/api/authentication").await,
        app.get("/api/no-such-endpoint").await,
        app.get("/login").await,
        app.get("/no/such/page").await,
        app.get("/pkg/no-such-file.js").await,
        app.log_in("nobody@example.com", PASSWORD).await,
        app.post_raw("/api/authentication/log-in", "{not json").await,
        app.send(&app.client, app.client.put(format!("{}/api/authentication/log-in", app.base))).await,
    ];
    for r in &replies {
        let id = request_id(r);
        assert!(is_new_id(&id), "{id:?} ({})", r.status);
        assert!(seen.insert(id.clone()), "{id} answered twice");
    }
}

#[tokio::test]
async fn a_safe_request_id_from_a_trusted_proxy_is_kept() {
    // The test client is on loopback: a trusted proxy by default.
    let app = spawn_app().await;
    for id in ["nginx-7f3a9c.01_b", "0123456789abcdef0123456789abcdef", &"x".repeat(64)] {
        assert_eq!(request_id(&app.get_with_id("/healthz", id.as_bytes()).await), id);
        assert_eq!(request_id(&app.get_with_id("/api/authentication", id.as_bytes()).await), id);
    }
}

#[tokio::test]
async fn an_unsafe_request_id_is_replaced() {
    let app = spawn_app().await;
    let long = "x".repeat(65);
    let unsafe_ids: [&[u8]; 8] = [
        long.as_bytes(),
        b"has space",
        b"tab\there",
        b"quote\"d",
        b"a=b;c",
        b"{\"json\":1}",
        "\u{e9}t\u{e9}".as_bytes(),
        b"",
    ];
    for id in unsafe_ids {
        let r = app.get_with_id("/healthz", id).await;
        assert_eq!(r.status, StatusCode::OK);
        let echoed = request_id(&r);
        assert!(is_new_id(&echoed), "{:?} was answered with {echoed:?}", String::from_utf8_lossy(id));
    }
    // Two ids: which one is meant is not ours to guess.
    let bare = reqwest::Client::new();
    let req = bare.get(format!("{}/healthz", app.base)).header("x-request-id", "one").header("x-request-id", "two");
    assert!(is_new_id(&request_id(&app.send(&bare, req).await)));
    // CR or LF cannot be inside a value (HTTP/1 refuses a bare CR and ends
    // the line at a bare LF), so neither reaches an answer or a log line.
    for raw in ["a\rSet-Cookie: x=1", "a\nSet-Cookie: x=1"] {
        let answer = raw_get(&app.base, "/healthz", raw).await;
        assert!(!answer.to_ascii_lowercase().contains("set-cookie"), "{answer}");
        for line in answer.lines().filter(|l| l.to_ascii_lowercase().starts_with("x-request-id:")) {
            let id = line["x-request-id:".len()..].trim();
            assert!(id == "a" || is_new_id(id), "{answer}");
        }
    }
}

/// A GET written by hand, with `id` as the X-Request-Id value byte for byte.
async fn raw_get(base: &str, path: &str, id: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nX-Request-Id: {id}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let read = stream.read_to_end(&mut answer);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), read).await.expect("an answer, then close");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_request_id_from_an_untrusted_peer_is_replaced() {
    let app = spawn_app_with(&[("TRUSTED_PROXIES", "10.0.0.0/8")]).await;
    let r = app.get_with_id("/healthz", b"chosen-by-the-client").await;
    assert!(is_new_id(&request_id(&r)));
}

/// The server binary with `LOG_FORMAT=json`, its log lines gathered as
/// they come. A real process: a subscriber set for one test thread would
/// miss what other tests' threads in the same process (plain `cargo test`)
/// have already turned off at the shared call sites.
struct JsonLogged {
    child: std::process::Child,
    base: String,
    lines: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Drop for JsonLogged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl JsonLogged {
    async fn start() -> JsonLogged {
        let dir = tempfile::tempdir().expect("dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_server"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            // No `.env` of the developer's is read from here.
            .current_dir(dir.path())
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("DATABASE_URL", format!("sqlite://{}?mode=rwc", dir.path().join("twofactor.db").display()))
            .env("DATA_DIR", dir.path())
            .env("JWT_SECRET", "test-signing-key-that-is-long-enough-0123456789")
            .env("SECRETS_KEY", format!("s1:{}", "5a17c0ffee42d00d".repeat(4)))
            .env("COOKIE_DOMAINS", "example.test")
            .env("PUBLIC_URL", "http://auth.example.test")
            .env("SIGNUP", "open")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start the server binary");
        let stderr = child.stderr.take().expect("stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let gathered = lines.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                gathered.lock().expect("log lines").push(line);
            }
        });
        let server = JsonLogged { child, base: format!("http://127.0.0.1:{port}"), lines, _dir: dir };
        let probe = reqwest::Client::new();
        for _ in 0..500 {
            if probe.get(format!("{}/readyz", server.base)).send().await.is_ok_and(|r| r.status().is_success()) {
                return server;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("the server did not become ready:\n{}", server.text());
    }

    fn text(&self) -> String {
        self.lines.lock().expect("log lines").join("\n")
    }

    /// Every line that names request `id`, once its answered line is in.
    async fn lines_of(&self, id: &str) -> Vec<Value> {
        for _ in 0..250 {
            let lines: Vec<Value> = self
                .lines
                .lock()
                .expect("log lines")
                .iter()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
                .filter(|l: &Value| l["span"]["request_id"] == id)
                .collect();
            if lines.iter().any(|l| l["fields"]["message"] == "answered") {
                return lines;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("no answered line for request {id} in\n{}", self.text());
    }

    /// The line that ends request `id`: exactly one.
    async fn answered(&self, reply: &Reply) -> Value {
        let id = request_id(reply);
        let lines = self.lines_of(&id).await;
        let mut answered = lines.iter().filter(|l| l["fields"]["message"] == "answered");
        let line = answered.next().cloned().expect("answered");
        assert!(answered.next().is_none(), "one answered line per request: {lines:?}");
        line
    }

    async fn post(&self, client: &reqwest::Client, path: &str, body: Value) -> Reply {
        send(client.post(format!("{}{path}", self.base)).json(&body)).await
    }

    async fn get(&self, client: &reqwest::Client, path: &str) -> Reply {
        send(client.get(format!("{}{path}", self.base))).await
    }
}

async fn send(req: reqwest::RequestBuilder) -> Reply {
    let res = req.send().await.expect("request");
    let (status, headers) = (res.status(), res.headers().clone());
    let text = res.text().await.expect("body");
    Reply { status, body: serde_json::from_str(&text).unwrap_or(Value::Null), text, headers }
}

fn code_at(secret: &str, time: i64) -> String {
    totp::code_at(&totp::from_base32(secret).expect("base32 secret"), time).expect("code")
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

#[tokio::test]
async fn json_lines_carry_the_request_the_person_and_the_log_in_and_no_secret() {
    let server = JsonLogged::start().await;
    let client = new_client();
    let email = "traced@example.com";
    let r = server
        .post(
            &client,
            "/api/authentication/register",
            json!({"email": email, "name": "Ann Example", "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let log_in = json!({"email": email, "password": PASSWORD});
    assert_eq!(server.post(&client, "/api/authentication/log-in", log_in.clone()).await.status, StatusCode::OK);
    let g = server.post(&client, "/api/2fa/generate", json!({})).await;
    let secret = g.body["secret"].as_str().expect("secret").to_owned();
    let first_code = code_at(&secret, unix_now());
    let on = server.post(&client, "/api/2fa/turn-on", json!({"twoFactorAuthenticationCode": first_code})).await;
    assert_eq!(on.status, StatusCode::OK, "{}", on.text);
    assert_eq!(server.post(&client, "/api/authentication/log-out", json!({})).await.status, StatusCode::OK);
    let r = server.post(&client, "/api/authentication/log-in", log_in).await;
    assert_eq!(r.body["twoFactorRequired"], true, "{}", r.text);
    // The clock is real: the next step's code, inside the ±1 step window
    // and after the step turn-on used.
    let code = code_at(&secret, unix_now() + 30);
    let done = server.post(&client, "/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": code})).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    let access = set_cookie(&done, "access").expect("access");
    let refresh = set_cookie(&done, "refresh").expect("refresh");
    let gate = set_cookie(&done, "twofactor_gate").expect("a gate cookie");

    // A logged-in request with a token in its query string.
    let token = "QueryToken9f8e7d6c5b4a";
    let me = server.get(&client, &format!("/api/authentication?token={token}")).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    let user_id = me.body["id"].as_i64().expect("user id");
    let line = server.answered(&me).await;
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["target"], "server::trace");
    let span = &line["span"];
    assert_eq!(span["name"], "request");
    assert_eq!(span["method"], "GET");
    assert_eq!(span["route"], "/api/authentication", "{line}");
    assert_eq!(span["status"], 200);
    assert!(span["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{line}");
    assert_eq!(span["user_id"], user_id, "{line}");
    let login_id = span["login_id"].as_str().expect("login_id").to_owned();
    assert!(!login_id.is_empty());
    assert_eq!(line["spans"][0]["request_id"], span["request_id"], "the request's span heads the list");

    // What the service logs inside a request carries its fields too (the
    // password step's "password accepted").
    let lines = server.lines_of(&request_id(&r)).await;
    assert!(lines.iter().any(|l| l["fields"]["message"] != "answered"), "the service's own lines: {lines:?}");
    assert!(lines.iter().all(|l| l["span"]["route"] == "/api/authentication/log-in"), "{lines:?}");
    // The code step's session is the password step's: it names the person.
    let code_line = server.answered(&done).await;
    assert_eq!(code_line["span"]["route"], "/api/2fa/authenticate");
    assert_eq!(code_line["span"]["user_id"], user_id, "{code_line}");

    // A page with a mailed link's token in its query: the route, never the URL.
    let page = server.get(&client, &format!("/reset-password?token={token}")).await;
    assert_eq!(server.answered(&page).await["span"]["route"], "/reset-password");

    // The gate's answer names the person and the log-in.
    let proxy = reqwest::Client::new();
    let ask = proxy
        .get(format!("{}/api/authz/forward-auth", server.base))
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "app.example.test")
        .header("x-forwarded-uri", format!("/private?token={token}"))
        .header("cookie", format!("twofactor_gate={gate}"));
    let allowed = send(ask).await;
    assert_eq!(allowed.status, StatusCode::OK, "{}", allowed.text);
    let gate_line = server.answered(&allowed).await;
    assert_eq!(gate_line["span"]["route"], "/api/authz/forward-auth");
    assert_eq!(gate_line["span"]["user_id"], user_id, "{gate_line}");
    assert_eq!(gate_line["span"]["login_id"], login_id.as_str(), "{gate_line}");

    // Probes are logged at debug: not at info.
    let probe = server.get(&client, "/healthz").await;
    let last = server.get(&client, "/api/authentication").await;
    server.answered(&last).await;
    let all = server.text();
    assert!(!all.contains(&request_id(&probe)), "/healthz is logged at debug");

    // The code as a value: six digits alone could be part of a timestamp.
    let (first_code, code) = (format!("\"{first_code}\""), format!("\"{code}\""));
    for secret_value in [token, "token=", &access, &refresh, &gate, &secret, &first_code, &code, PASSWORD] {
        assert!(!all.contains(secret_value), "{secret_value:?} is in the log:\n{all}");
    }
}
