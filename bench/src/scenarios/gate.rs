//! Scenario i: the gate's decisions (forward-auth) for a valid gate cookie.

use serde_json::json;

use super::{PASSWORD, client, new_secret, post, unix_now};
use crate::Args;
use crate::load::{Wrk, wrk};
use crate::report::Row;
use crate::target::Target;

/// A user with 2FA on, logged in with a code: the gate cookie it got.
async fn gate_cookie(api: &impl Fn(&str) -> String) -> String {
    let c = client();
    let email = "gate@example.com";
    post(&c, api("/authentication/register"), json!({"email": email, "name": "Gate", "password": PASSWORD})).await;
    post(&c, api("/authentication/log-in"), json!({"email": email, "password": PASSWORD})).await;
    let secret = new_secret(Target::Ours, &c, api).await;
    let code = Target::Ours.code_at(&secret, unix_now());
    let (s, _, cookies) = post(&c, api("/2fa/turn-on"), json!({"twoFactorAuthenticationCode": code})).await;
    assert_eq!(s, 200, "turn-on for the gate user");
    let gate = cookies
        .iter()
        .find_map(|c| c.split(';').next()?.strip_prefix("twofactor_gate=").map(str::to_owned))
        .expect("a gate cookie");
    // One decision by hand: it must be an allow, or the load measures refusals.
    let r = reqwest::Client::new()
        .get(api("/authz/forward-auth"))
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "app.example.test")
        .header("x-forwarded-uri", "/notes")
        .header("cookie", format!("twofactor_gate={gate}"))
        .send()
        .await
        .expect("authz");
    assert_eq!(r.status().as_u16(), 200, "the gate allows the bench user");
    gate
}

/// Scenario i: gate decisions under load, as a share of the baseline of
/// scenario a (`health`).
pub async fn decisions(args: &Args, api: &impl Fn(&str) -> String, health: &Wrk) -> Row {
    let gate = gate_cookie(api).await;
    let script = std::env::temp_dir().join(format!("twofactor-bench-authz-{}.lua", std::process::id()));
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"GET\"\nwrk.headers[\"X-Forwarded-Method\"] = \"GET\"\n\
             wrk.headers[\"X-Forwarded-Proto\"] = \"https\"\nwrk.headers[\"X-Forwarded-Host\"] = \"app.example.test\"\n\
             wrk.headers[\"X-Forwarded-Uri\"] = \"/notes\"\nwrk.headers[\"Cookie\"] = \"twofactor_gate={gate}\"\n"
        ),
    )
    .expect("lua");
    let authz = wrk(&api("/authz/forward-auth"), args.seconds, args.connections, None, Some(&script));
    let _ = std::fs::remove_file(&script);
    Row {
        scenario: "i. gate decisions (forward-auth, valid gate cookie)".into(),
        figure: format!(
            "{:.0} req/s, p50 {:.2} ms, p99 {:.2} ms; {}; = {:.0} % of /healthz",
            authz.rps,
            authz.p50_ms,
            authz.p99_ms,
            authz.failures(),
            100.0 * authz.rps / health.rps
        ),
        budget: "≥ 80 % of /healthz",
    }
}
