//! The gate in front of other apps, asked the way a reverse proxy asks
//! (the peer is loopback, a trusted proxy by default): forward-auth and
//! auth-request answers, gate cookies tied to the log-in session, access
//! rules, and the way back to the app after logging in.

use super::*;

const GATE: &[(&str, &str)] =
    &[("COOKIE_DOMAINS", "example.test"), ("PUBLIC_URL", "http://auth.example.test"), ("SIGNUP", "open")];

/// A client that keeps no cookies and follows no redirects: it sends
/// exactly the headers a proxy would pass on.
fn proxy() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

fn header<'a>(r: &'a Reply, name: &str) -> &'a str {
    r.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// The gate cookie's value among a response's Set-Cookie headers.
fn gate_cookie(r: &Reply) -> Option<String> {
    r.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).find_map(|c| {
        let (pair, attributes) = c.split_once(';')?;
        let value = pair.strip_prefix("twofactor_gate=")?;
        assert!(attributes.contains("Domain=example."), "{c}");
        assert!(attributes.contains("SameSite=Lax") && attributes.contains("HttpOnly"), "{c}");
        (!value.is_empty()).then(|| value.to_owned())
    })
}

impl TestApp {
    /// Traefik/Caddy's question about `method url` as a browser page (the
    /// caller adds cookies and the like).
    fn forward_auth_request(&self, method: &str, url: &str, accept: &str) -> reqwest::RequestBuilder {
        let (scheme, rest) = url.split_once("://").expect("url");
        let (host, uri) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        proxy()
            .get(format!("{}/api/authz/forward-auth", self.base))
            .header("x-forwarded-method", method)
            .header("x-forwarded-proto", scheme)
            .header("x-forwarded-host", host)
            .header("x-forwarded-uri", if uri.is_empty() { "/" } else { uri })
            .header("accept", accept)
    }

    /// Traefik/Caddy's question about `method url`, with the given cookie.
    async fn forward_auth(&self, method: &str, url: &str, gate: Option<&str>, accept: &str) -> Reply {
        let mut req = self
            .forward_auth_request(method, url, accept)
            // What the client sent to the app, passed on by the proxy.
            .header("remote-user", "admin");
        if let Some(gate) = gate {
            req = req.header("cookie", format!("other=1; twofactor_gate={gate}"));
        }
        self.send(&proxy(), req).await
    }

    /// nginx's question.
    async fn auth_request(&self, method: &str, url: &str, gate: Option<&str>) -> Reply {
        let mut req = proxy()
            .get(format!("{}/api/authz/auth-request", self.base))
            .header("x-original-method", method)
            .header("x-original-url", url);
        if let Some(gate) = gate {
            req = req.header("cookie", format!("twofactor_gate={gate}"));
        }
        self.send(&proxy(), req).await
    }

    /// Registers, turns 2FA on and logs in with password and code through
    /// the API. Returns the gate cookie of that log-in.
    async fn two_factor_gate_cookie(&self, email: &str) -> String {
        let secret = self.enrolled_user(email).await;
        self.password_stage(email).await;
        self.clock.advance(30);
        let r =
            self.post("/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": self.code_now(&secret)})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        gate_cookie(&r).expect("a gate cookie once the log-in is complete")
    }
}

const HTML: &str = "text/html,application/xhtml+xml";

#[tokio::test]
async fn anonymous_requests_are_sent_to_log_in() {
    let app = spawn_app_with(GATE).await;
    let r = app.forward_auth("GET", "http://app.example.test/page?x=1&y=2", None, HTML).await;
    assert_eq!(r.status, StatusCode::FOUND);
    assert_eq!(
        header(&r, "location"),
        "http://auth.example.test/login?rd=http%3A%2F%2Fapp.example.test%2Fpage%3Fx%3D1%26y%3D2"
    );
    assert_eq!(header(&r, "cache-control"), "no-store");
    assert!(r.text.is_empty(), "no body");
    let r = app.forward_auth("POST", "http://app.example.test/form", None, HTML).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = app.forward_auth("GET", "http://app.example.test/api", None, "application/json").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(header(&r, "location"), "");
    // nginx cannot pass a redirect from a subrequest: 401 with Location.
    let r = app.auth_request("GET", "http://app.example.test/page", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(header(&r, "location"), "http://auth.example.test/login?rd=http%3A%2F%2Fapp.example.test%2Fpage");
    // A HEAD or a DELETE is asked about the same way, with no body.
    for method in ["HEAD", "DELETE", "PUT"] {
        let req = proxy()
            .request(method.parse().expect("method"), format!("{}/api/authz/auth-request", app.base))
            .header("x-original-method", method)
            .header("x-original-url", "http://app.example.test/");
        assert_eq!(app.send(&proxy(), req).await.status, StatusCode::UNAUTHORIZED, "{method}");
    }
    // Without the original URL the question makes no sense.
    let r = app.send(&proxy(), proxy().get(format!("{}/api/authz/forward-auth", app.base))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_complete_log_in_opens_the_apps_and_log_out_closes_them() {
    let app = spawn_app_with(GATE).await;
    let gate = app.two_factor_gate_cookie("gate@example.com").await;
    let r = app.forward_auth("GET", "http://app.example.test/", Some(&gate), HTML).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let id = app.get("/api/authentication").await.body["id"].to_string();
    assert_eq!(header(&r, "remote-user"), id, "not the client's own Remote-User");
    // Signed up here and never confirmed: the address is not vouched for.
    assert_eq!(header(&r, "remote-email"), "");
    assert_eq!(header(&r, "remote-email-verified"), "false");
    assert_eq!(header(&r, "remote-name"), "Ann Example");
    assert!(r.headers.contains_key("remote-groups"));
    assert_eq!(header(&r, "remote-groups"), "");
    let r = app.auth_request("POST", "https://other.example.test/x", Some(&gate)).await;
    assert_eq!(r.status, StatusCode::OK);
    // The gate cookie opens nothing on the portal's own API.
    let stranger = proxy();
    let req =
        stranger.get(format!("{}/api/authentication", app.base)).header("cookie", format!("twofactor_gate={gate}"));
    assert_eq!(app.send(&stranger, req).await.status, StatusCode::UNAUTHORIZED);
    // A made-up cookie is nobody.
    let r = app.forward_auth("GET", "http://app.example.test/", Some("made-up-value"), HTML).await;
    assert_eq!(r.status, StatusCode::FOUND);

    // Log-out on the portal ends access to every app at once.
    let out = app.post("/api/authentication/log-out", json!({})).await;
    let cleared = out.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>();
    assert!(cleared.iter().any(|c| c.starts_with("twofactor_gate=;") && c.contains("Max-Age=0")), "{cleared:?}");
    let r = app.forward_auth("GET", "http://app.example.test/", Some(&gate), HTML).await;
    assert_eq!(r.status, StatusCode::FOUND);
}

#[tokio::test]
async fn every_way_a_session_ends_ends_the_gate_cookie() {
    let app = spawn_app_with(GATE).await;
    // Log-out everywhere from another session.
    let gate = app.two_factor_gate_cookie("ends@example.com").await;
    assert_eq!(app.forward_auth("GET", "http://a.example.test/", Some(&gate), HTML).await.status, StatusCode::OK);
    assert_eq!(app.post("/api/authentication/log-out-everywhere", json!({})).await.status, StatusCode::OK);
    assert_eq!(app.forward_auth("GET", "http://a.example.test/", Some(&gate), HTML).await.status, StatusCode::FOUND);

    // A password change ends every other log-in; this one gets a new cookie.
    assert_eq!(app.register("pw@example.com").await.status, StatusCode::CREATED);
    let first = gate_cookie(&app.log_in("pw@example.com", PASSWORD).await).expect("gate");
    let elsewhere = gate_cookie(&app.log_in("pw@example.com", PASSWORD).await).expect("gate");
    let body = json!({"currentPassword": PASSWORD, "newPassword": "a brand new passphrase"});
    let r = app.post("/api/authentication/change-password", body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let renewed = gate_cookie(&r).expect("the new session's gate cookie");
    let two = "http://a.example.test/";
    // (2FA is off for this account: the gate answers "turn it on", which
    // still shows the cookie is alive.)
    let alive = StatusCode::FOUND;
    let r = app.forward_auth("GET", two, Some(&renewed), HTML).await;
    assert_eq!((r.status, header(&r, "location").contains("/security")), (alive, true));
    for dead in [first, elsewhere] {
        let r = app.forward_auth("GET", two, Some(&dead), HTML).await;
        assert!(header(&r, "location").contains("/login?"), "{:?}", r.headers);
    }
}

#[tokio::test]
async fn a_password_only_session_is_sent_to_turn_on_two_factor() {
    let app = spawn_app_with(GATE).await;
    assert_eq!(app.register("one@example.com").await.status, StatusCode::CREATED);
    let r = app.log_in("one@example.com", PASSWORD).await;
    let gate = gate_cookie(&r).expect("a full session without 2FA gets a gate cookie too");
    let r = app.forward_auth("GET", "http://app.example.test/", Some(&gate), HTML).await;
    assert_eq!(r.status, StatusCode::FOUND);
    assert_eq!(
        header(&r, "location"),
        "http://auth.example.test/security?need=two-factor&rd=http%3A%2F%2Fapp.example.test%2F"
    );
    let r = app.auth_request("GET", "http://app.example.test/", Some(&gate)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn access_rules_decide_by_host_path_method_and_group() {
    let dir = tempfile::tempdir().expect("dir");
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        r#"
[[rules]]
domain = "wiki.example.test"
policy = "bypass"

[[rules]]
domain = "*.example.test"
path = "^/admin"
groups = ["admins"]
policy = "two_factor"

[[rules]]
domain = "*.example.test"
path = "^/admin"
policy = "deny"

[[rules]]
domain = "*.example.test"
policy = "two_factor"
"#,
    )
    .expect("rules");
    let rules = rules.display().to_string();
    let mut vars = GATE.to_vec();
    vars.push(("ACCESS_RULES", &rules));
    let app = spawn_app_with(&vars).await;
    let r = app.forward_auth("GET", "http://wiki.example.test/admin", None, HTML).await;
    assert_eq!(r.status, StatusCode::OK, "bypass");
    assert_eq!(header(&r, "remote-user"), "", "a client's own Remote-User is overwritten, even when bypassed");
    let gate = app.two_factor_gate_cookie("rules@example.com").await;
    assert_eq!(app.forward_auth("GET", "http://app.example.test/", Some(&gate), HTML).await.status, StatusCode::OK);
    let r = app.forward_auth("GET", "http://app.example.test/admin/users", Some(&gate), HTML).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "not in admins");
    // The same path spelled so a raw regex would miss it.
    for sneaky in ["/%61dmin/users", "//admin", "/./admin", "/x/../admin", "/;x/admin"] {
        let r = app.forward_auth("GET", &format!("http://app.example.test{sneaky}"), Some(&gate), HTML).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{sneaky}");
    }
    // One no rule can read (is it /admin/users, or one segment?): refused.
    let r = app.forward_auth("GET", "http://app.example.test/admin%2Fusers", Some(&gate), HTML).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let id = app.get("/api/authentication").await.body["id"].as_i64().expect("id");
    assert!(app.state.db.set_group(id, "admins", true, app.clock_now()).await.expect("group"));
    assert!(app.state.db.set_group(id, "family", true, app.clock_now()).await.expect("group"));
    let r = app.forward_auth("GET", "http://app.example.test/admin/users", Some(&gate), HTML).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(header(&r, "remote-groups"), "admins,family");
    // Anonymous on a group rule: asked to log in (the rule may apply then).
    let r = app.forward_auth("GET", "http://app.example.test/admin", None, HTML).await;
    assert_eq!(r.status, StatusCode::FOUND);
    // No rule matches another domain: denied.
    assert_eq!(app.forward_auth("GET", "http://example.org/", Some(&gate), HTML).await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn forwarded_headers_from_an_untrusted_address_are_refused() {
    let mut vars = GATE.to_vec();
    vars.push(("TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.1"));
    let app = spawn_app_with(&vars).await;
    let r = app.forward_auth("GET", "http://app.example.test/", None, HTML).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(app.auth_request("GET", "http://app.example.test/", None).await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_log_in_page_returns_to_the_app_and_only_to_the_gates_domains() {
    let app = spawn_app_with(GATE).await;
    let secret = app.enrolled_user("back@example.com").await;
    app.post("/api/authentication/log-out", json!({})).await;
    let b = no_redirects();
    let rd = "http://wiki.example.test/page?x=1";
    let login = format!("/login?{}", serde_urlencoded_rd(rd));
    // The page's forms carry rd, and may end in a redirect to the gated
    // domains (browsers check form-action on a form's redirects).
    let page = app.get_with(&b, &login).await;
    let csp = header(&page, "content-security-policy");
    assert!(
        csp.contains("form-action 'self' https://example.test:* https://*.example.test:* http://example.test:*"),
        "{csp}"
    );
    assert!(page.text.contains(&format!("action=\"{}\"", login.replace('&', "&amp;"))), "{}", page.text);
    // Password, then code, posted without JavaScript.
    let r = app
        .send(
            &b,
            b.post(format!("{}{login}", app.base)).form(&[
                ("intent", "password"),
                ("email", "back@example.com"),
                ("password", PASSWORD),
            ]),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(header(&r, "location"), login);
    app.clock.advance(30);
    let code = app.code_now(&secret);
    let r = app.send(&b, b.post(format!("{}{login}", app.base)).form(&[("intent", "code"), ("code", &code)])).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(header(&r, "location"), login);
    assert!(gate_cookie(&r).is_some());
    // The log-in page, now with a full session, sends the browser on.
    let r = app.get_with(&b, &login).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(header(&r, "location"), rd);
    let gate = gate_cookie(&r).expect("fresh gate cookies on the way back");
    assert_eq!(app.forward_auth("GET", rd, Some(&gate), HTML).await.status, StatusCode::OK);

    // Anything but a URL under the cookie domains lands on home.
    for evil in [
        "https://evil.test/",
        "//evil.test/",
        "http://example.test.evil.test/",
        "http://evilexample.test/",
        "http://user:pw@wiki.example.test/",
        "http://wiki.example.test\\@evil.test/",
        "http://wiki.example.test/%2F%2Fevil.test",
        "javascript:alert(1)",
    ] {
        let r = app.get_with(&b, &format!("/login?{}", serde_urlencoded_rd(evil))).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{evil}");
        assert_eq!(header(&r, "location"), "/", "{evil}");
    }
}

fn serde_urlencoded_rd(rd: &str) -> String {
    let mut out = String::from("rd=");
    for b in rd.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'*') {
            out.push(char::from(b));
        } else if b == b' ' {
            out.push('+');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[tokio::test]
async fn a_new_person_signs_up_on_the_way_and_keeps_the_way_back() {
    let app = spawn_app_with(GATE).await;
    let b = no_redirects();
    let rd = "http://wiki.example.test/page";
    let q = serde_urlencoded_rd(rd);
    let page = app.get_with(&b, &format!("/login?{q}")).await;
    assert!(page.text.contains(&format!("href=\"/signup?{q}\"")), "the sign-up link keeps rd: {}", page.text);
    let body = [("intent", "sign-up"), ("name", "Nia"), ("email", "nia@example.com"), ("password", PASSWORD)];
    let r = app.send(&b, b.post(format!("{}/signup?{q}", app.base)).form(&body)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(header(&r, "location"), format!("/security?{q}"));
    let page = app.get_with(&b, &format!("/security?{q}")).await;
    assert!(page.text.replace("<!>", "").contains("Continue to wiki.example.test"), "{}", page.text);
    assert!(page.text.contains(&format!("href=\"/login?{q}\"")), "{}", page.text);
    // The page's own forms keep it: the enrolment posted without JavaScript
    // comes back with the way back still on it.
    assert!(page.text.contains(&format!("action=\"/security?{q}\"")), "{}", page.text);
    let body = [("intent", "enrol"), ("password", PASSWORD)];
    let r = app.send(&b, b.post(format!("{}/security?{q}", app.base)).form(&body)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.text.contains(&format!("href=\"/login?{q}\"")), "{}", r.text);
    // Following it: the server checks rd and sends the browser on.
    let r = app.get_with(&b, &format!("/login?{q}")).await;
    assert_eq!((r.status, header(&r, "location")), (StatusCode::SEE_OTHER, rd));
    // A way back the gate does not serve is dropped, not carried along.
    let evil = serde_urlencoded_rd("https://evil.test/");
    let r = app
        .send(
            &b,
            b.post(format!("{}/signup?{evil}", app.base)).form(&[
                ("intent", "sign-up"),
                ("name", "Eve"),
                ("email", "eve@example.com"),
                ("password", PASSWORD),
            ]),
        )
        .await;
    assert_eq!(header(&r, "location"), "/security");
}

#[tokio::test]
async fn gate_cookies_count_only_for_their_domain_and_never_two_at_once() {
    let app = spawn_app_with(&[
        ("COOKIE_DOMAINS", "example.test,example.org"),
        ("PUBLIC_URL", "http://auth.example.test"),
        ("SIGNUP", "open"),
    ])
    .await;
    assert_eq!(app.register("dom@example.com").await.status, StatusCode::CREATED);
    let r = app.log_in("dom@example.com", PASSWORD).await;
    let cookies: Vec<(String, String)> = r
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|c| {
            let value = c.split(';').next()?.strip_prefix("twofactor_gate=")?.to_owned();
            let domain = c.split("Domain=").nth(1)?.split(';').next()?.to_owned();
            Some((domain, value))
        })
        .collect();
    assert_eq!(cookies.len(), 2, "one gate cookie per cookie domain: {cookies:?}");
    let for_test = &cookies.iter().find(|(d, _)| d == "example.test").expect("example.test").1;
    // Opens example.test's apps (2FA is off here: "turn it on" means known) ...
    let r = app.forward_auth("GET", "http://app.example.test/", Some(for_test), HTML).await;
    assert!(header(&r, "location").contains("/security?need=two-factor"), "{:?}", r.headers);
    // ... but is nobody on example.org, where an app could have replayed it.
    let r = app.forward_auth("GET", "http://app.example.org/", Some(for_test), HTML).await;
    assert!(header(&r, "location").contains("/login?"), "{:?}", r.headers);

    // A second live cookie of another log-in (planted by a sibling host):
    // nobody, whichever the browser sends first.
    assert_eq!(app.register("other@example.com").await.status, StatusCode::CREATED);
    let r = app.log_in("other@example.com", PASSWORD).await;
    let planted = gate_cookie(&r).expect("gate");
    let req = app
        .forward_auth_request("GET", "http://app.example.test/", HTML)
        .header("cookie", format!("twofactor_gate={planted}; twofactor_gate={for_test}"));
    let r = app.send(&proxy(), req).await;
    assert!(header(&r, "location").contains("/login?"), "{:?}", r.headers);
    // More cookies than cookie domains: nobody either.
    let req = app
        .forward_auth_request("GET", "http://app.example.test/", HTML)
        .header("cookie", format!("twofactor_gate=a; twofactor_gate=b; twofactor_gate={for_test}"));
    let r = app.send(&proxy(), req).await;
    assert!(header(&r, "location").contains("/login?"), "{:?}", r.headers);
}

#[tokio::test]
async fn log_out_also_ends_an_older_log_in_the_browser_still_holds_for_the_apps() {
    let app = spawn_app_with(GATE).await;
    assert_eq!(app.register("twice@example.com").await.status, StatusCode::CREATED);
    // The password typed again over a live log-in: the portal now names the
    // second log-in, the browser still holds the first's gate cookie.
    let first = gate_cookie(&app.log_in("twice@example.com", PASSWORD).await).expect("gate");
    let again = app.log_in("twice@example.com", PASSWORD).await;
    let second = gate_cookie(&again).expect("gate");
    let portal: Vec<String> = again
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
        .filter(|pair| pair.starts_with("access=") || pair.starts_with("refresh="))
        .collect();
    let alive = |r: &Reply| header(r, "location").contains("/security?need=two-factor");
    assert!(alive(&app.forward_auth("GET", "http://a.example.test/", Some(&first), HTML).await));
    // What the browser sends: the second log-in's portal cookies and the
    // first's gate cookie.
    let req = proxy()
        .post(format!("{}/api/authentication/log-out", app.base))
        .header("cookie", format!("{}; twofactor_gate={first}", portal.join("; ")))
        .json(&json!({}));
    assert_eq!(app.send(&proxy(), req).await.status, StatusCode::OK);
    for gate in [&first, &second] {
        let r = app.forward_auth("GET", "http://a.example.test/", Some(gate), HTML).await;
        assert!(header(&r, "location").contains("/login?"), "{:?}", r.headers);
    }
}

#[tokio::test]
async fn sign_up_is_closed_by_default_in_front_of_other_apps() {
    let app = spawn_app_with(&[("COOKIE_DOMAINS", "example.test"), ("PUBLIC_URL", "http://auth.example.test")]).await;
    let r = app.register("walk-in@example.com").await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    assert!(r.text.contains("administrator"), "{}", r.text);
    let b = no_redirects();
    let page = app.get_with(&b, "/signup").await;
    assert!(page.text.contains("signup-closed") && !page.text.contains("name=\"password\""), "{}", page.text);
    let page = app.get_with(&b, "/login").await;
    assert!(!page.text.contains("Create an account"), "{}", page.text);
    // The form posted anyway changes nothing.
    let body = [("intent", "sign-up"), ("name", "Walk In"), ("email", "walk-in@example.com"), ("password", PASSWORD)];
    let r = app.send(&b, b.post(format!("{}/signup", app.base)).form(&body)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(app.log_in("walk-in@example.com", PASSWORD).await.status, StatusCode::UNAUTHORIZED);
}

/// The app in front of other apps with these access rules; the directory
/// holding the file lives as long as the returned guard.
async fn app_with_rules(rules: &str) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("rules.toml");
    std::fs::write(&path, rules).expect("rules");
    let path = path.display().to_string();
    let mut vars = GATE.to_vec();
    vars.push(("ACCESS_RULES", &path));
    (spawn_app_with(&vars).await, dir)
}

/// The proxy's question with exactly these headers.
async fn ask(app: &TestApp, endpoint: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = proxy().get(format!("{}/api/authz/{endpoint}", app.base));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    app.send(&proxy(), req).await
}

/// `/admin` and anything but GET or HEAD are denied; the rest is open.
const STRICT: &str = r#"
[[rules]]
domain = "*.example.test"
path = "^/admin"
policy = "deny"

[[rules]]
domain = "*.example.test"
methods = ["GET", "HEAD"]
policy = "bypass"

[[rules]]
domain = "*.example.test"
policy = "deny"
"#;

#[tokio::test]
async fn a_question_without_the_original_method_or_url_is_refused_never_guessed() {
    let (app, _rules) = app_with_rules(STRICT).await;
    // Asked in full, the rules decide.
    let url = "http://app.example.test";
    assert_eq!(app.forward_auth("GET", &format!("{url}/notes"), None, HTML).await.status, StatusCode::OK);
    assert_eq!(app.forward_auth("GET", &format!("{url}/admin"), None, HTML).await.status, StatusCode::FORBIDDEN);
    assert_eq!(app.forward_auth("POST", &format!("{url}/notes"), None, HTML).await.status, StatusCode::FORBIDDEN);
    assert_eq!(app.auth_request("POST", &format!("{url}/notes"), None).await.status, StatusCode::FORBIDDEN);
    // Each question below is about a request the rules deny (/admin, or a
    // POST); with a header missing it was once judged as `GET /` and let
    // through.
    let get = ("x-forwarded-method", "GET");
    let post = ("x-forwarded-method", "POST");
    let proto = ("x-forwarded-proto", "http");
    let host = ("x-forwarded-host", "app.example.test");
    let notes = ("x-forwarded-uri", "/notes");
    let cases = vec![
        ("forward-auth", vec![get, proto, host], "X-Forwarded-Uri"),
        ("forward-auth", vec![get, proto, host, ("x-forwarded-uri", "")], "X-Forwarded-Uri"),
        ("forward-auth", vec![get, proto, host, ("x-forwarded-uri", "admin")], "X-Forwarded-Uri"),
        ("forward-auth", vec![proto, host, notes], "X-Forwarded-Method"),
        ("forward-auth", vec![("x-forwarded-method", ""), proto, host, notes], "X-Forwarded-Method"),
        ("forward-auth", vec![("x-forwarded-method", "G E T"), proto, host, notes], "X-Forwarded-Method"),
        ("forward-auth", vec![post, host, notes], "X-Forwarded-Proto"),
        ("forward-auth", vec![post, ("x-forwarded-proto", "ftp"), host, notes], "X-Forwarded-Proto"),
        ("forward-auth", vec![post, proto, notes], "X-Forwarded-Host"),
        ("forward-auth", vec![post, proto, ("x-forwarded-host", "app.example.test/x@y"), notes], "X-Forwarded-Host"),
        ("auth-request", vec![("x-original-url", "http://app.example.test/notes")], "X-Original-Method"),
        ("auth-request", vec![("x-original-method", "GET")], "X-Original-URL"),
        (
            "auth-request",
            vec![("x-original-method", "GET"), ("x-original-url", "http://app.example.test")],
            "X-Original-URL",
        ),
        ("auth-request", vec![("x-original-method", "GET"), ("x-original-url", "/admin")], "X-Original-URL"),
        (
            "auth-request",
            vec![("x-original-method", "GET"), ("x-original-url", "app.example.test/admin")],
            "X-Original-URL",
        ),
    ];
    for (endpoint, headers, missing) in cases {
        let r = ask(&app, endpoint, &headers).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
        let message = r.body["message"].as_str().unwrap_or("");
        assert!(message.contains(missing), "{endpoint} {headers:?}: {message}");
        assert_eq!(header(&r, "cache-control"), "no-store");
        assert!(!r.headers.contains_key("remote-user"), "{endpoint} {headers:?}");
    }
}

/// `/admin` in any case is denied; `/Reports` only as spelled.
const PATHS: &str = r#"
[[rules]]
domain = "*.example.test"
path = "^/public"
policy = "bypass"

[[rules]]
domain = "*.example.test"
path = "^/admin"
policy = "deny"

[[rules]]
domain = "*.example.test"
path = "^/Reports"
case_sensitive = true
policy = "deny"

[[rules]]
domain = "*.example.test"
policy = "one_factor"
"#;

#[tokio::test]
async fn paths_match_in_any_case_and_a_path_no_browser_sends_is_refused() {
    let (app, _rules) = app_with_rules(PATHS).await;
    assert_eq!(app.register("case@example.com").await.status, StatusCode::CREATED);
    let gate = gate_cookie(&app.log_in("case@example.com", PASSWORD).await).expect("gate");
    let on = |path: &str| format!("http://app.example.test{path}");
    assert_eq!(app.forward_auth("GET", &on("/notes"), Some(&gate), HTML).await.status, StatusCode::OK);
    for denied in ["/admin", "/ADMIN", "/Admin/users", "/%41DMIN", "/x/../aDmIn", "/Reports"] {
        let r = app.forward_auth("GET", &on(denied), Some(&gate), HTML).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{denied}");
        assert_eq!(app.auth_request("GET", &on(denied), Some(&gate)).await.status, StatusCode::FORBIDDEN, "{denied}");
    }
    // A rule that says so matches its own spelling only.
    assert_eq!(app.forward_auth("GET", &on("/reports"), Some(&gate), HTML).await.status, StatusCode::OK);
    for open in ["/public/a", "/PUBLIC/a", "/public/a|b", "/public/a^b", "/public/[x]"] {
        assert_eq!(app.forward_auth("GET", &on(open), None, HTML).await.status, StatusCode::OK, "{open}");
    }
    // A fragment (nginx resolves `/public#/../admin` to /admin), a space,
    // a quote, brackets a browser always encodes: no rule can say what the
    // app will make of them.
    for bad in [
        "/public#/../admin",
        "/public?x=1#/../../admin",
        "/public x",
        "/public\"x",
        "/public<x>",
        "/public{x}",
        "/public`x",
        "/public\tx",
    ] {
        let r = app.forward_auth("GET", &on(bad), Some(&gate), HTML).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
        assert!(r.body["message"].as_str().unwrap_or("").contains("path"), "{bad}: {}", r.text);
        // nginx passes on 401 and 403 only (anything else becomes its own
        // 500): the same refusal, as 403.
        assert_eq!(app.auth_request("GET", &on(bad), Some(&gate)).await.status, StatusCode::FORBIDDEN, "{bad}");
    }
}

#[tokio::test]
async fn remote_email_goes_only_once_confirmed_and_a_rule_can_require_a_confirmed_address() {
    let (app, _rules) = app_with_rules(
        r#"
[[rules]]
domain = "mail.example.test"
require_verified_email = true
policy = "one_factor"

[[rules]]
domain = "*.example.test"
policy = "one_factor"
"#,
    )
    .await;
    // Anyone may sign up here, with any address.
    assert_eq!(app.register("boss@example.com").await.status, StatusCode::CREATED);
    let gate = gate_cookie(&app.log_in("boss@example.com", PASSWORD).await).expect("gate");
    let id = app.get("/api/authentication").await.body["id"].as_i64().expect("id");
    let r = app.forward_auth("GET", "http://app.example.test/", Some(&gate), HTML).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(header(&r, "remote-user"), id.to_string());
    assert!(r.headers.contains_key("remote-email"), "always sent, so a client's copy never passes");
    assert_eq!(header(&r, "remote-email"), "", "an address nobody confirmed is not vouched for");
    assert_eq!(header(&r, "remote-email-verified"), "false");
    let r = app.auth_request("GET", "http://app.example.test/", Some(&gate)).await;
    assert_eq!((header(&r, "remote-email"), header(&r, "remote-email-verified")), ("", "false"));

    // A rule that needs a confirmed address: 403, saying why.
    let r = app.forward_auth("GET", "http://mail.example.test/inbox", Some(&gate), HTML).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(header(&r, "content-type").starts_with("text/html"), "{:?}", r.headers);
    assert!(r.text.contains("confirmed email address"), "{}", r.text);
    assert!(r.text.contains("http://auth.example.test/"), "a way to the portal: {}", r.text);
    let r = app.forward_auth("GET", "http://mail.example.test/inbox", Some(&gate), "application/json").await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    assert!(r.body["message"].as_str().unwrap_or("").contains("confirmed email address"), "{}", r.text);
    let r = app.auth_request("GET", "http://mail.example.test/inbox", Some(&gate)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Not logged in: log in first, as for any rule.
    assert_eq!(app.forward_auth("GET", "http://mail.example.test/", None, HTML).await.status, StatusCode::FOUND);

    // Confirmed (what the mailed link does): the address goes along, and
    // the rule lets them in, at once (the cached answer is dropped).
    let mut tx = app.state.db.begin().await.expect("tx");
    tx.set_email_verified(id, START).await.expect("confirm");
    tx.commit().await.expect("commit");
    let r = app.forward_auth("GET", "http://app.example.test/", Some(&gate), HTML).await;
    assert_eq!((header(&r, "remote-email"), header(&r, "remote-email-verified")), ("boss@example.com", "true"));
    let r = app.forward_auth("GET", "http://mail.example.test/inbox", Some(&gate), HTML).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(header(&r, "remote-email"), "boss@example.com");
}

/// `GATE_REMOTE_USER=email`: apps that take `Remote-User` as a login name
/// get the confirmed address; an unconfirmed one is never sent as a name
/// (refused where a log-in is needed, nobody on a bypass rule), and the
/// default stays the account's number (issue 21, item 13).
#[tokio::test]
async fn remote_user_can_be_the_confirmed_address_and_never_an_unconfirmed_one() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("rules.toml");
    std::fs::write(&path, "[[rules]]\ndomain = \"*.example.test\"\npath = \"^/public\"\npolicy = \"bypass\"\n\n[[rules]]\ndomain = \"*.example.test\"\npolicy = \"one_factor\"\n").expect("rules");
    let path = path.display().to_string();
    let mut vars = GATE.to_vec();
    vars.extend([("ACCESS_RULES", path.as_str()), ("GATE_REMOTE_USER", "email")]);
    let app = spawn_app_with(&vars).await;
    assert_eq!(app.register("grafana-user@example.com").await.status, StatusCode::CREATED);
    let gate = gate_cookie(&app.log_in("grafana-user@example.com", PASSWORD).await).expect("gate");
    let id = app.get("/api/authentication").await.body["id"].as_i64().expect("id");

    // Unconfirmed: no name to give, so no way in where one is needed.
    let r = app.forward_auth("GET", "http://grafana.example.test/", Some(&gate), HTML).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.text.contains("confirmed email address"), "{}", r.text);
    assert_eq!(
        app.auth_request("GET", "http://grafana.example.test/", Some(&gate)).await.status,
        StatusCode::FORBIDDEN
    );
    let r = app.forward_auth("GET", "http://grafana.example.test/public/logo.svg", Some(&gate), HTML).await;
    assert_eq!(r.status, StatusCode::OK, "a bypass rule still lets them through");
    assert_eq!((header(&r, "remote-user"), header(&r, "remote-email")), ("", ""), "as nobody");

    // Confirmed: the address is the name.
    let mut tx = app.state.db.begin().await.expect("tx");
    tx.set_email_verified(id, START).await.expect("confirm");
    tx.commit().await.expect("commit");
    for r in [
        app.forward_auth("GET", "http://grafana.example.test/", Some(&gate), HTML).await,
        app.auth_request("GET", "http://grafana.example.test/", Some(&gate)).await,
    ] {
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(header(&r, "remote-user"), "grafana-user@example.com");
        assert_eq!(header(&r, "remote-email-verified"), "true");
    }

    // A value the server does not know stops start-up, naming both choices.
    let bad = server::config::Config::from_vars(|name| match name {
        "GATE_REMOTE_USER" => Some("username".into()),
        _ => None,
    });
    assert!(bad.is_err_and(|e| e.contains("GATE_REMOTE_USER must be id or email")));
}

/// Denied by a rule, a person sees a page (Caddy and Traefik pass it on)
/// saying who they are signed in as and that this app is not open to
/// them, with the way to another account; an API client gets the same in
/// JSON (issue 21, item 3).
#[tokio::test]
async fn a_person_a_rule_keeps_out_is_told_who_they_are_and_how_to_switch() {
    let (app, _rules) = app_with_rules(
        "[[rules]]\ndomain = \"books.example.test\"\npolicy = \"one_factor\"\ngroups = [\"family\"]\n\n\
         [[rules]]\ndomain = \"books.example.test\"\npolicy = \"deny\"\n\n\
         [[rules]]\ndomain = \"*.example.test\"\npolicy = \"one_factor\"\n",
    )
    .await;
    assert_eq!(app.register("guest@example.com").await.status, StatusCode::CREATED);
    let gate = gate_cookie(&app.log_in("guest@example.com", PASSWORD).await).expect("gate");
    let r = app.forward_auth("GET", "http://books.example.test/shelf", Some(&gate), HTML).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(header(&r, "content-type").starts_with("text/html"), "{:?}", r.headers);
    assert_eq!(header(&r, "cache-control"), "no-store");
    assert!(r.text.contains("You are signed in as <strong>guest@example.com</strong>"), "{}", r.text);
    assert!(r.text.contains("<strong>books.example.test</strong>"), "{}", r.text);
    assert!(r.text.contains("href=\"http://auth.example.test/logout\">Use another account"), "{}", r.text);
    let r = app.forward_auth("GET", "http://books.example.test/shelf", Some(&gate), "application/json").await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    assert!(r.body["message"].as_str().unwrap_or("").contains("not open to this account"), "{}", r.text);
    // nginx takes only the status from its check.
    assert_eq!(app.auth_request("GET", "http://books.example.test/", Some(&gate)).await.status, StatusCode::FORBIDDEN);
    // Elsewhere the same person is let in.
    assert_eq!(app.forward_auth("GET", "http://notes.example.test/", Some(&gate), HTML).await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_admin_page_says_who_may_reach_a_url_with_the_gates_own_rules() {
    let rules = r#"
[[rules]]
domain = "*.example.test"
path = "^/admin"
groups = ["admins"]
policy = "two_factor"

[[rules]]
domain = "*.example.test"
path = "^/admin"
policy = "deny"

[[rules]]
domain = "wiki.example.test"
policy = "one_factor"
"#;
    let (app, _rules) = app_with_rules(rules).await;
    app.enrolled_user("boss@example.test").await;
    let boss = app.state.db.user_by_email("boss@example.test").await.unwrap().unwrap().id;
    assert!(app.state.db.set_group(boss, "admins", true, app.clock_now()).await.unwrap());
    let ann = json!({"email": "ann@example.test", "name": "Ann", "password": PASSWORD});
    assert_eq!(app.post_with(&new_client(), "/api/authentication/register", ann).await.status, StatusCode::CREATED);

    let view = app.get("/api/admin/rules").await;
    assert_eq!(view.status, StatusCode::OK, "{}", view.text);
    assert_eq!(
        view.body["rules"],
        json!([
            "*.example.test · path ^/admin · groups admins · two_factor (line 2)",
            "*.example.test · path ^/admin · deny (line 8)",
            "wiki.example.test · one_factor (line 13)"
        ])
    );
    assert_eq!((view.body["default"].as_str(), view.body["answers"].as_array().map(Vec::len)), (Some("deny"), Some(0)));

    let ask = |url: &str, who: &str| {
        let path = format!(
            "/api/admin/rules?{}",
            url::form_urlencoded::Serializer::new(String::new()).extend_pairs([("url", url), ("person", who)]).finish()
        );
        let app = &app;
        async move { app.get(&path).await }
    };
    let answers = |r: &Reply| -> Vec<String> {
        r.body["answers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                format!(
                    "{}: {} ({})",
                    a["who"].as_str().unwrap(),
                    a["answer"].as_str().unwrap(),
                    a["rule"].as_str().unwrap()
                )
            })
            .collect()
    };
    // The path as the gate reads it: any case, dot segments resolved.
    let r = ask("http://app.example.test/x/../ADMIN/users", "BOSS@example.test").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        answers(&r),
        [
            "Someone not logged in: is sent to log in (rule 1)",
            "boss@example.test with the password alone: is asked for a second factor (rule 1)",
            "boss@example.test with two factors: passes (rule 1)",
            "boss@example.test with two factors, a remembered browser standing in for the second: passes (rule 1)"
        ]
    );
    let r = ask("http://app.example.test/admin", "ann@example.test").await;
    assert_eq!(
        answers(&r)[1..],
        [
            "ann@example.test with the password alone: is refused (403) (rule 2)",
            "ann@example.test with two factors: is refused (403) (rule 2)",
            "ann@example.test with two factors, a remembered browser standing in for the second: is refused (403) (rule 2)"
        ]
    );
    let r = ask("http://wiki.example.test/page", "").await;
    assert_eq!(answers(&r), ["Someone not logged in: is sent to log in (rule 3)"]);
    let r = ask("https://elsewhere.example.org/", "").await;
    assert_eq!(answers(&r), ["Someone not logged in: is refused (403) (the default)"]);
    // The gate itself agrees for the first case.
    let gate = app.forward_auth("GET", "http://app.example.test/x/../ADMIN/users", None, HTML).await;
    assert_eq!(gate.status, StatusCode::FOUND, "{}", gate.text);
    for (url, who) in [
        ("wiki", ""),
        ("ftp://wiki.example.test/", ""),
        ("http://app.example.test/a%2Fb", ""),
        ("http://wiki.example.test/", "nobody@example.test"),
    ] {
        let r = ask(url, who).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{url} {who}: {}", r.text);
    }
}

/// A group's deadline for two factors: before it its members see the days
/// left and pass on the password alone; after it, a log-in without a
/// second factor is sent to turn one on, by the gate and by an OpenID app,
/// until they do. Resetting someone's factors does not renew it; someone
/// who joins later gets the grace period from the day they join.
#[tokio::test]
async fn after_a_groups_deadline_its_members_need_two_factors_until_they_turn_them_on() {
    use super::admin::{act, administrator, group, id_of};
    let (app, _dir) = app_with_rules("[[rules]]\ndomain = \"*.example.test\"\npolicy = \"one_factor\"\n").await;
    let boss_secret = administrator(&app).await;
    let (ann_c, bob_c) = (new_client(), new_client());
    for (c, email) in [(&ann_c, "ann@example.com"), (&bob_c, "bob@example.com")] {
        let body = json!({"email": email, "name": "N", "password": PASSWORD});
        assert_eq!(app.post_with(c, "/api/authentication/register", body).await.status, StatusCode::CREATED);
    }
    let r = group(&app, json!({"action": "create", "name": "staff", "argument": "ann@example.com"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let log_in = async |c: &reqwest::Client, email: &str| {
        let r = app.post_with(c, "/api/authentication/log-in", json!({"email": email, "password": PASSWORD})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        gate_cookie(&r).expect("a gate cookie")
    };
    let app_url = "http://app.example.test/";
    let sent_to_enrol = |r: &Reply| {
        r.status == StatusCode::FOUND
            && header(r, "location").starts_with("http://auth.example.test/security?need=two-factor&rd=")
    };

    // Refused: a bad date, a date gone by, a grace too long, no such group.
    for (body, status) in [
        (json!({"action": "deadline", "name": "staff", "argument": "31/01/2027"}), StatusCode::BAD_REQUEST),
        (json!({"action": "deadline", "name": "staff", "argument": "2027-01-01"}), StatusCode::BAD_REQUEST),
        (
            json!({"action": "deadline", "name": "staff", "argument": "2027-01-20", "days": 400}),
            StatusCode::BAD_REQUEST,
        ),
        (json!({"action": "deadline", "name": "nobody", "argument": "2027-01-20"}), StatusCode::NOT_FOUND),
        (json!({"action": "no-deadline", "name": "staff"}), StatusCode::NOT_FOUND),
    ] {
        let r = group(&app, body.clone()).await;
        assert_eq!(r.status, status, "{body}: {}", r.text);
    }
    // The test clock starts on 15 Jan 2027 (UTC): by the end of 20 Jan,
    // three days' grace for anyone who joins later.
    let r = group(&app, json!({"action": "deadline", "name": "staff", "argument": "2027-01-20", "days": 3})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.body["message"].as_str().unwrap().contains("20 Jan 2027"), "{}", r.text);
    let list = app.get("/api/admin/groups").await;
    let staff = list.body["groups"].as_array().unwrap().iter().find(|g| g["name"] == "staff").unwrap().clone();
    assert!(staff["deadline"].as_str().unwrap().contains("20 Jan 2027"), "{staff}");

    // Before: the password alone passes, and she is told the days left.
    let gate = log_in(&ann_c, "ann@example.com").await;
    assert_eq!(app.forward_auth("GET", app_url, Some(&gate), HTML).await.status, StatusCode::OK);
    let me = app.get_with(&ann_c, "/api/authentication").await;
    let due = &me.body["twoFactorDue"];
    assert_eq!(due["overdue"], false, "{}", me.text);
    assert!(due["message"].as_str().unwrap().contains("6 days left"), "{}", me.text);

    // After: sent to turn two factors on, with the way back.
    app.clock.advance(6 * 86_400);
    let gate = log_in(&ann_c, "ann@example.com").await;
    assert!(sent_to_enrol(&app.forward_auth("GET", app_url, Some(&gate), HTML).await));
    let me = app.get_with(&ann_c, "/api/authentication").await;
    assert_eq!(me.body["twoFactorDue"]["overdue"], true, "{}", me.text);
    // The admin page's tester says the same as the gate; Bob, not in the
    // group, passes with the password alone.
    assert_eq!(app.post("/api/authentication/refresh", json!({})).await.status, StatusCode::OK);
    for (who, alone) in [("ann@example.com", "is asked for a second factor"), ("bob@example.com", "passes")] {
        let tested = app.get(&format!("/api/admin/rules?url=http%3A%2F%2Fapp.example.test%2F&person={who}")).await;
        assert_eq!(tested.body["answers"][1]["answer"], alone, "{}", tested.text);
        assert_eq!(tested.body["answers"][2]["answer"], "passes", "{}", tested.text);
    }

    // She turns them on; a log-in with two factors passes.
    let g = app.post_with(&ann_c, "/api/2fa/generate", json!({})).await;
    let secret = g.body["secret"].as_str().expect("secret").to_owned();
    let on =
        app.post_with(&ann_c, "/api/2fa/turn-on", json!({"twoFactorAuthenticationCode": app.code_now(&secret)})).await;
    assert_eq!(on.status, StatusCode::OK, "{}", on.text);
    app.clock.advance(30);
    let r = app
        .post_with(&ann_c, "/api/authentication/log-in", json!({"email": "ann@example.com", "password": PASSWORD}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let code = json!({"twoFactorAuthenticationCode": app.code_now(&secret)});
    let r = app.post_with(&ann_c, "/api/2fa/authenticate", code).await;
    let gate = gate_cookie(&r).expect("a gate cookie");
    assert_eq!(app.forward_auth("GET", app_url, Some(&gate), HTML).await.status, StatusCode::OK);
    assert!(app.get_with(&ann_c, "/api/authentication").await.body.get("twoFactorDue").is_none());

    // Her factors reset by the administrator: the deadline is not renewed.
    assert_eq!(app.post("/api/authentication/refresh", json!({})).await.status, StatusCode::OK);
    let ann = id_of(&app, "ann@example.com").await;
    let r =
        act(&app, &app.client, json!({"person": ann, "action": "reset-factors", "code": app.code_now(&boss_secret)}))
            .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let gate = log_in(&ann_c, "ann@example.com").await;
    assert!(sent_to_enrol(&app.forward_auth("GET", app_url, Some(&gate), HTML).await));

    // Bob joins now: three days from today, then sent to turn them on.
    app.clock.advance(30);
    let bob = id_of(&app, "bob@example.com").await;
    let body = json!({"person": bob, "action": "add-group", "argument": "staff", "code": app.code_now(&boss_secret)});
    assert_eq!(act(&app, &app.client, body).await.status, StatusCode::OK);
    let gate = log_in(&bob_c, "bob@example.com").await;
    assert_eq!(app.forward_auth("GET", app_url, Some(&gate), HTML).await.status, StatusCode::OK);
    let me = app.get_with(&bob_c, "/api/authentication").await;
    assert!(me.body["twoFactorDue"]["message"].as_str().unwrap().contains("3 days left"), "{}", me.text);
    app.clock.advance(3 * 86_400 + 1);
    let gate = log_in(&bob_c, "bob@example.com").await;
    assert!(sent_to_enrol(&app.forward_auth("GET", app_url, Some(&gate), HTML).await));

    // The deadline removed: the password alone passes again.
    assert_eq!(app.post("/api/authentication/refresh", json!({})).await.status, StatusCode::OK);
    let body = json!({"action": "no-deadline", "name": "staff", "code": app.code_now(&boss_secret)});
    let r = group(&app, body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(app.forward_auth("GET", app_url, Some(&gate), HTML).await.status, StatusCode::OK);
}

/// `networks`: a rule applies only to clients inside its ranges, the
/// client's address read from `TRUSTED_PROXY_HEADER` as the proxy set it
/// (its right-most entry: what a client writes there itself comes first).
/// Without the header the server does not start with such a rule.
#[tokio::test]
async fn a_networks_rule_applies_only_to_clients_inside_its_ranges() {
    let rules = "[[rules]]\ndomain = \"*.example.test\"\nnetworks = [\"10.0.0.0/8\", \"192.168.1.0/24\"]\n\
                 policy = \"one_factor\"\n\n[[rules]]\ndomain = \"*.example.test\"\npolicy = \"two_factor\"\n";
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("rules.toml");
    std::fs::write(&path, rules).expect("rules");
    let path = path.display().to_string();

    // No header to read the client's address from: refused at start.
    let no_header = Config::from_vars(|k| match k {
        "DATABASE_URL" => Some("sqlite::memory:".into()),
        "ACCESS_RULES" => Some(path.clone()),
        "COOKIE_DOMAINS" => Some("example.test".into()),
        "PUBLIC_URL" => Some("http://auth.example.test".into()),
        _ => None,
    })
    .expect("config");
    let refused = no_header.rules().expect_err("a networks rule without TRUSTED_PROXY_HEADER");
    assert!(refused.contains("TRUSTED_PROXY_HEADER"), "{refused}");

    let mut vars = GATE.to_vec();
    vars.push(("ACCESS_RULES", &path));
    vars.push(("TRUSTED_PROXY_HEADER", "x-forwarded-for"));
    let app = spawn_app_with(&vars).await;
    // Bob logs in with the password alone (no second factor set up).
    let bob = no_redirects();
    let body = json!({"email": "bob@example.com", "name": "Bob", "password": PASSWORD});
    assert_eq!(app.post_with(&bob, "/api/authentication/register", body).await.status, StatusCode::CREATED);
    let r = app
        .post_with(&bob, "/api/authentication/log-in", json!({"email": "bob@example.com", "password": PASSWORD}))
        .await;
    let gate = gate_cookie(&r).expect("a gate cookie");
    let ask_from = |forwarded: &'static str, cookie: Option<String>| {
        let mut req =
            app.forward_auth_request("GET", "http://app.example.test/notes", HTML).header("x-forwarded-for", forwarded);
        if let Some(gate) = cookie {
            req = req.header("cookie", format!("twofactor_gate={gate}"));
        }
        let app = &app;
        async move { app.send(&proxy(), req).await }
    };
    for (from, passes) in [
        ("192.168.1.20", true),
        ("10.200.3.4", true),
        ("192.168.2.1", false),
        ("203.0.113.9", false),
        // The client wrote an inside address itself; the proxy appended
        // the real one.
        ("10.0.0.1, 203.0.113.9", false),
        ("203.0.113.9, 10.0.0.1", true),
    ] {
        let r = ask_from(from, Some(gate.clone())).await;
        if passes {
            assert_eq!(r.status, StatusCode::OK, "{from}: {}", r.text);
        } else {
            assert_eq!(r.status, StatusCode::FOUND, "{from}: {}", r.text);
            assert!(header(&r, "location").contains("/security?need=two-factor&rd="), "{from}");
        }
    }
    // No address from the proxy: the client is unknown, never the
    // proxy's own address.
    let req = app
        .forward_auth_request("GET", "http://app.example.test/notes", HTML)
        .header("cookie", format!("twofactor_gate={gate}"));
    let r = app.send(&proxy(), req).await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.text);
    // Inside, nobody logged in: still sent to log in.
    let r = ask_from("192.168.1.20", None).await;
    assert!(header(&r, "location").starts_with("http://auth.example.test/login?rd="), "{}", r.text);

    // The admin page's tester asks from an address too.
    super::admin::administrator(&app).await;
    let tested = |from: &str| {
        let path =
            format!("/api/admin/rules?url=http%3A%2F%2Fapp.example.test%2Fnotes&person=bob%40example.com&from={from}");
        let app = &app;
        async move { app.get(&path).await }
    };
    let inside = tested("192.168.1.20").await;
    assert_eq!(inside.body["answers"][1]["answer"], "passes", "{}", inside.text);
    assert_eq!(inside.body["answers"][1]["rule"], "rule 1", "{}", inside.text);
    let outside = tested("203.0.113.9").await;
    assert_eq!(outside.body["answers"][1]["answer"], "is asked for a second factor", "{}", outside.text);
    assert!(outside.body["rules"][0].as_str().unwrap().contains("from 10.0.0.0/8, 192.168.1.0/24"), "{}", outside.text);
    assert_eq!(tested("intranet").await.status, StatusCode::BAD_REQUEST);
}
