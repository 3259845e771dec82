//! The measured scenarios, one file per group, and the HTTP helpers they
//! share.

pub mod admin;
pub mod bursts;
pub mod gate;
pub mod oidc;
pub mod postgres;
pub mod site;
pub mod throughput;
pub mod two_factor;

use serde_json::{Value, json};

use crate::target::Target;

/// The password of every account the harness makes.
pub const PASSWORD: &str = "correct horse battery staple";

pub fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).build().expect("client")
}

pub async fn post(c: &reqwest::Client, url: String, body: Value) -> (u16, Value, Vec<String>) {
    let r = c.post(url).json(&body).send().await.expect("request");
    let status = r.status().as_u16();
    let cookies = r.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).map(str::to_owned).collect();
    (status, r.json().await.unwrap_or(Value::Null), cookies)
}

/// Starts enrolment for the logged-in client and returns the new secret.
pub async fn new_secret(target: Target, c: &reqwest::Client, api: &impl Fn(&str) -> String) -> Vec<u8> {
    let r = c.post(api("/2fa/generate")).json(&json!({})).send().await.expect("generate");
    assert!(r.status().is_success(), "generate: {}", r.status());
    let generated = r.bytes().await.expect("generate body");
    let profile = match target {
        Target::Ours => None,
        Target::Original => Some(
            c.get(api("/authentication")).send().await.expect("profile").json::<Value>().await.expect("profile json"),
        ),
    };
    target.secret(&generated, profile.as_ref()).expect("a secret from the enrolment answer")
}

/// A person with 2FA on (registered, logged in, app turned on with a
/// code): the cookies of their full session, as a `Cookie` header.
pub async fn two_factor_session(api: &impl Fn(&str) -> String, email: &str) -> String {
    let c = client();
    post(&c, api("/authentication/register"), json!({"email": email, "name": "Bench", "password": PASSWORD})).await;
    post(&c, api("/authentication/log-in"), json!({"email": email, "password": PASSWORD})).await;
    let secret = new_secret(Target::Ours, &c, api).await;
    let code = Target::Ours.code_at(&secret, unix_now());
    let (s, _, cookies) = post(&c, api("/2fa/turn-on"), json!({"twoFactorAuthenticationCode": code})).await;
    assert_eq!(s, 200, "turn-on for {email}");
    cookies.iter().filter_map(|c| c.split(';').next()).collect::<Vec<_>>().join("; ")
}

/// Runs one of the server's operator commands on the harness's data
/// directory (the harness's server runs on it); panics with its error.
pub fn server_command(server: &std::path::Path, data_dir: &std::path::Path, args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new(server)
        .args(args)
        .env("DATA_DIR", data_dir)
        .env("JWT_SECRET", "benchmark-signing-key-0123456789abcdef")
        .env("COOKIE_DOMAINS", "example.test")
        .env("SIGNUP", "open")
        .env("RUST_LOG", "error")
        .output()
        .expect("the server's CLI");
    assert!(out.status.success(), "server {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    out.stdout
}
