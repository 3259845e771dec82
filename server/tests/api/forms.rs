//! The pages' forms posted as a browser without JavaScript posts them:
//! url-encoded bodies, 303 redirects, pages rendered again with the error.

use super::*;

/// A browser without JavaScript: keeps cookies, does not follow redirects
/// (so each 303 can be checked).
pub(super) fn browser() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

impl TestApp {
    pub(super) async fn form(&self, client: &reqwest::Client, path: &str, fields: &[(&str, &str)]) -> Reply {
        let mut r = self.send(client, client.post(format!("{}{path}", self.base)).form(fields)).await;
        r.text = without_markers(&r.text);
        r
    }

    /// A page as a browser without JavaScript sees it.
    pub(super) async fn page(&self, client: &reqwest::Client, path: &str) -> Reply {
        let mut r = self.get_with(client, path).await;
        r.text = without_markers(&r.text);
        r
    }
}

/// The HTML without the empty comments Leptos puts between text nodes for
/// hydration, so the visible text can be searched.
fn without_markers(html: &str) -> String {
    html.replace("<!>", "")
}

pub(super) fn location(r: &Reply) -> &str {
    r.headers.get("location").and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// The manual key shown on the enrolment step, without its spaces.
fn manual_key(html: &str) -> String {
    let start = html.find("data-testid=\"manual-key\"").expect("manual key on the page");
    let rest = &html[start..];
    let text = &rest[rest.find('>').expect("tag end") + 1..];
    text[..text.find('<').expect("text end")].split_whitespace().collect()
}

fn recovery_codes(html: &str) -> Vec<String> {
    html.split("<li><code>").skip(1).filter_map(|part| part.split('<').next()).map(str::to_owned).collect()
}

#[tokio::test]
async fn every_step_works_without_javascript() {
    let app = spawn_app().await;
    let b = browser();
    let email = "nojs@example.com";

    let r = app
        .form(&b, "/signup", &[("intent", "sign-up"), ("name", "No Script"), ("email", email), ("password", PASSWORD)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(location(&r), "/security");
    let page = app.page(&b, "/security").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("Set up two-factor authentication"), "{}", page.text);

    // Enrolment: the server draws the QR code and the key.
    let r = app.form(&b, "/security", &[("intent", "enrol")]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.text.contains("<svg"), "the QR code is drawn by the server");
    let secret = manual_key(&r.text);
    assert_eq!(secret.len(), 32, "{secret}");

    // A wrong code keeps the same key on the page and says why.
    let wrong = app.wrong_code(&secret);
    let r = app.form(&b, "/security", &[("intent", "confirm"), ("code", &wrong)]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(manual_key(&r.text), secret);
    assert!(r.text.contains("scanned the QR code shown now"), "{}", r.text);
    assert!(
        !r.text.contains(&format!("value=\"{wrong}\"")) && !r.text.contains(&format!("\"{wrong}\"")),
        "a code is never put back into the page"
    );

    let code = app.code_now(&secret);
    let r = app.form(&b, "/security", &[("intent", "confirm"), ("code", &code)]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let codes = recovery_codes(&r.text);
    assert_eq!(codes.len(), 10, "{}", r.text);
    // The session was renewed (2FA on bumps the version): the new cookies
    // were set and the page rendered with them.
    assert!(r.headers.get_all("set-cookie").iter().count() >= 2);
    let page = app.page(&b, "/security").await;
    assert!(page.text.contains("Two-factor authentication is on"), "{}", page.text);

    let r = app.form(&b, "/logout", &[]).await;
    assert_eq!((r.status, location(&r)), (StatusCode::SEE_OTHER, "/login"));
    assert_eq!(app.get_with(&b, "/").await.status, StatusCode::FOUND);

    // Password, then the code step is what the server renders.
    let r = app.form(&b, "/login", &[("intent", "password"), ("email", email), ("password", PASSWORD)]).await;
    assert_eq!((r.status, location(&r)), (StatusCode::SEE_OTHER, "/login"), "{}", r.text);
    let page = app.page(&b, "/login").await;
    assert!(page.text.contains("Enter your code"), "{}", page.text);
    app.clock.advance(30);
    let r = app.form(&b, "/login", &[("intent", "code"), ("code", &app.code_now(&secret))]).await;
    assert_eq!((r.status, location(&r)), (StatusCode::SEE_OTHER, "/"), "{}", r.text);
    let home = app.page(&b, "/").await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.text.contains("Welcome, No Script"), "{}", home.text);

    // A recovery code on the recovery path.
    app.form(&b, "/logout", &[]).await;
    app.form(&b, "/login", &[("intent", "password"), ("email", email), ("password", PASSWORD)]).await;
    let r = app.form(&b, "/login", &[("intent", "recovery"), ("recovery", &codes[0])]).await;
    assert_eq!((r.status, location(&r)), (StatusCode::SEE_OTHER, "/"), "{}", r.text);

    // Turning 2FA off: one field takes the app's code or a recovery code.
    let r = app.form(&b, "/security", &[("intent", "turn-off"), ("password", PASSWORD), ("code", &codes[0])]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "a spent recovery code");
    assert!(r.text.contains("not valid or was already used"), "{}", r.text);
    let r = app.form(&b, "/security", &[("intent", "turn-off"), ("password", PASSWORD), ("code", &codes[1])]).await;
    assert_eq!((r.status, location(&r)), (StatusCode::SEE_OTHER, "/security"), "{}", r.text);
    let page = app.page(&b, "/security").await;
    assert!(page.text.contains("Set up two-factor authentication"), "{}", page.text);

    // Change the password, then log out everywhere.
    let new_password = "a brand new passphrase here";
    let r = app
        .form(
            &b,
            "/security",
            &[("intent", "change-password"), ("currentPassword", PASSWORD), ("newPassword", new_password)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.text.contains("Password changed"), "{}", r.text);
    let r = app.form(&b, "/security", &[("intent", "everywhere")]).await;
    assert_eq!((r.status, location(&r)), (StatusCode::SEE_OTHER, "/login"));
    assert_eq!(app.log_in(email, new_password).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_failed_form_keeps_its_fields_but_never_a_secret() {
    let app = spawn_app().await;
    let b = browser();
    let short = "tooshort";
    let r = app
        .form(
            &b,
            "/signup",
            &[("intent", "sign-up"), ("name", "Kept Name"), ("email", "kept@example.com"), ("password", short)],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text.contains("value=\"kept@example.com\""), "{}", r.text);
    assert!(r.text.contains("value=\"Kept Name\""), "{}", r.text);
    assert!(!r.text.contains(short), "the password is not put back");
    assert!(r.text.contains("aria-invalid=\"true\""), "{}", r.text);

    app.register("kept@example.com").await;
    let wrong = "not the right password at all";
    let r = app.form(&b, "/login", &[("intent", "password"), ("email", "kept@example.com"), ("password", wrong)]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.text.contains("Wrong email or password."), "{}", r.text);
    assert!(r.text.contains("value=\"kept@example.com\""), "{}", r.text);
    assert!(!r.text.contains(wrong));

    // A code step whose password step expired goes back to the password.
    let r = app.form(&b, "/login", &[("intent", "code"), ("code", "123456")]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.text.contains("Your log-in timed out"), "{}", r.text);
    // An unknown form is refused.
    let r = app.form(&b, "/login", &[("intent", "nonsense")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_form_post_from_another_site_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let fields = [("intent", "sign-up"), ("name", "Mallory"), ("email", "csrf@example.com"), ("password", PASSWORD)];
    let url = format!("{}/signup", app.base);
    let b = browser();
    let r = app.send(&b, b.post(&url).header("origin", "https://evil.example").form(&fields)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app.send(&b, b.post(&url).header("sec-fetch-site", "cross-site").form(&fields)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(app.log_in("csrf@example.com", PASSWORD).await.status, StatusCode::UNAUTHORIZED, "no account made");

    // A logged-in victim: log out everywhere from another site does nothing.
    app.register("victim@example.com").await;
    let r = app
        .form(&b, "/login", &[("intent", "password"), ("email", "victim@example.com"), ("password", PASSWORD)])
        .await;
    assert_eq!(location(&r), "/");
    let forged = b
        .post(format!("{}/security", app.base))
        .header("sec-fetch-site", "same-site")
        .form(&[("intent", "everywhere")]);
    assert_eq!(app.send(&b, forged).await.status, StatusCode::FORBIDDEN);
    assert_eq!(app.get_with(&b, "/").await.status, StatusCode::OK, "still logged in");
}

#[tokio::test]
async fn an_expired_access_token_is_renewed_for_a_page() {
    let app = spawn_app().await;
    let b = browser();
    app.register("renew@example.com").await;
    app.form(&b, "/login", &[("intent", "password"), ("email", "renew@example.com"), ("password", PASSWORD)]).await;
    app.clock.advance(16 * 60);
    let r = app.page(&b, "/security").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.text.contains("renew@example.com"));
    assert!(set_cookie(&r, "access").is_some_and(|v| !v.is_empty()));
    assert_eq!(r.headers["cache-control"], "no-store");
}

#[tokio::test]
async fn the_enrolment_self_test_says_what_went_wrong() {
    let app = spawn_app().await;
    app.register("selftest@example.com").await;
    app.log_in("selftest@example.com", PASSWORD).await;
    let g = app.post("/api/2fa/generate", json!({})).await;
    let secret = g.body["secret"].as_str().expect("secret").to_owned();
    let bytes = totp::from_base32(&secret).expect("base32");
    let now = app.clock_now();
    let try_code = |code: String| {
        let app = &app;
        async move { app.post("/api/2fa/turn-on", json!({"twoFactorAuthenticationCode": code})).await }
    };

    let r = try_code(app.code_at(&secret, now + 120)).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
    assert!(r.body["message"].as_str().unwrap_or("").contains("about 2 minutes fast"), "{}", r.text);
    let r = try_code(app.code_at(&secret, now - 150)).await;
    assert!(r.body["message"].as_str().unwrap_or("").contains("about 150 seconds slow"), "{}", r.text);
    let eight = totp::code_with_digits(&bytes, 8, now).expect("code");
    let r = try_code(eight).await;
    assert!(r.body["message"].as_str().unwrap_or("").contains("8-digit"), "{}", r.text);
    let r = try_code(app.wrong_code(&secret)).await;
    assert!(r.body["message"].as_str().unwrap_or("").contains("scanned the QR code"), "{}", r.text);
    // Each try counted: the fifth failure used the free ones up.
    let r = try_code(app.code_at(&secret, now + 90)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    let r = try_code(app.code_now(&secret)).await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS, "too_many_requests");

    // Log-in never explains: a code from 2 minutes ahead is just wrong.
    app.clock.advance(3600);
    app.log_in("selftest@example.com", PASSWORD).await;
    let on = try_code(app.code_now(&secret)).await;
    assert_eq!(on.status, StatusCode::OK, "{}", on.text);
    app.password_stage("selftest@example.com").await;
    let r = app
        .post(
            "/api/2fa/authenticate",
            json!({"twoFactorAuthenticationCode": app.code_at(&secret, app.clock_now() + 120)}),
        )
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");
    assert!(!r.text.contains("fast") && !r.text.contains("clock"), "{}", r.text);
}

/// Signed in, `/login` and `/signup` have nothing to ask: they lead on
/// (home, or the app in `rd`); `GET /logout` is a page with the button, not
/// a browser error (issue 21, item 4).
#[tokio::test]
async fn signed_in_the_log_in_and_sign_up_pages_lead_on_and_get_logout_asks() {
    let app = spawn_app().await;
    let b = browser();
    let email = "already@example.com";
    let r = app
        .form(&b, "/signup", &[("intent", "sign-up"), ("name", "Al Ready"), ("email", email), ("password", PASSWORD)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    for path in ["/login", "/signup"] {
        let r = app.page(&b, path).await;
        assert_eq!((r.status, location(&r)), (StatusCode::SEE_OTHER, "/"), "{path}");
    }
    let r = app.page(&b, "/login?rd=https://elsewhere.example.net/").await;
    assert_eq!(location(&r), "/", "an rd outside the cookie domains leads home");

    let r = app.page(&b, "/logout").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.text.contains("Log out?") && r.text.contains(email), "{}", r.text);
    assert!(r.text.contains("action=\"/logout\"") && r.text.contains("method=\"post\""), "{}", r.text);
    let r = app.form(&b, "/logout", &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);

    // Logged out: the forms are drawn again, and /logout leads to log in.
    for path in ["/login", "/signup"] {
        let r = app.page(&b, path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert!(r.text.contains("<form"), "{path}: {}", r.text);
    }
    let r = app.page(&b, "/logout").await;
    assert!(r.status == StatusCode::OK || r.status.is_redirection(), "{}", r.status);
    assert!(!r.text.contains("Log out?"), "{}", r.text);
}
