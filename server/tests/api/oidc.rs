//! The OpenID provider, driven by a real relying party: the `openidconnect`
//! crate (what Proxmox uses) discovers the provider, sends the browser to
//! authorize, exchanges the code and checks the id token's signature
//! against the JWKS, its nonce, audience, time and `at_hash`. Every error
//! path the spec names is asked too, and each ending of a log-in is seen
//! by the tokens issued from it.

use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, RefreshToken, Scope,
    TokenResponse,
};

use super::*;
use app::server::oidc::clients::{self, NewClient};

pub(super) const REDIRECT: &str = "https://app.example.test/oauth2/callback";

pub(super) type Rp =
    CoreClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointMaybeSet, EndpointMaybeSet>;

/// A browser that does not follow redirects (the test reads each one),
/// keeping cookies.
pub(super) fn browser() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

/// The relying party's own HTTP client: never follows redirects.
pub(super) fn rp_http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

pub(super) async fn oidc_app() -> TestApp {
    let mut app = spawn_app_with(&[("PUBLIC_URL", "self")]).await;
    app.client = browser();
    app
}

fn app_client(name: &str) -> NewClient {
    NewClient {
        name: name.into(),
        redirect_uris: vec![REDIRECT.into()],
        consent_ask: false,
        two_factor: true,
        ..Default::default()
    }
}

async fn add(app: &TestApp, new: NewClient) -> clients::Created {
    clients::add(&app.state, &Default::default(), None, &new).await.expect("client added")
}

pub(super) async fn relying_party(app: &TestApp, created: &clients::Created) -> Rp {
    let metadata = CoreProviderMetadata::discover_async(IssuerUrl::new(app.base.clone()).unwrap(), &rp_http())
        .await
        .expect("discovery");
    CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(created.id.clone()),
        created.secret.clone().map(ClientSecret::new),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap())
}

/// The query of a redirect's `Location` back to the app, as pairs.
pub(super) fn answer_of(reply: &Reply) -> HashMap<String, String> {
    let location = location(reply);
    assert!(location.starts_with(REDIRECT), "back to the app: {location}");
    let url = url::Url::parse(&location).unwrap();
    url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

/// Where the answer sends the browser: its `Location`, or the address a
/// "Continuing…" page (a step to the portal's own consent or enrolment
/// page) refreshes to.
fn location(reply: &Reply) -> String {
    if let Some(l) = reply.headers.get("location") {
        return l.to_str().unwrap().to_owned();
    }
    reply
        .text
        .split("content=\"0;url=")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(|to| to.replace("&amp;", "&").replace("&quot;", "\"").replace("&lt;", "<").replace("&gt;", ">"))
        .unwrap_or_default()
}

/// The id-token verifier on the test's clock (the tokens are from 2027).
fn at_clock(app: &TestApp) -> impl Fn() -> chrono::DateTime<chrono::Utc> + Send + Sync + use<> {
    let clock = app.clock.clone();
    move || {
        use app::server::clock::Clock;
        chrono::DateTime::from_timestamp(clock.now(), 0).unwrap()
    }
}

pub(super) struct SignedIn {
    pub(super) access: openidconnect::AccessToken,
    refresh: Option<RefreshToken>,
    code: String,
}

/// Authorize (logged in already), exchange, verify everything.
pub(super) async fn sign_in(app: &TestApp, rp: &Rp, scopes: &[&str]) -> SignedIn {
    sign_in_from(app, rp, scopes, None).await
}

/// `sign_in`, the browser's address forwarded by the proxy as `from`.
async fn sign_in_from(app: &TestApp, rp: &Rp, scopes: &[&str], from: Option<&str>) -> SignedIn {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request =
        rp.authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random);
    for s in scopes {
        request = request.add_scope(Scope::new((*s).into()));
    }
    let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
    let mut get = app.client.get(url.as_str());
    if let Some(from) = from {
        get = get.header("x-forwarded-for", from);
    }
    let reply = app.send(&app.client, get).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text);
    let answer = answer_of(&reply);
    assert_eq!(answer.get("state"), Some(state.secret()));
    assert_eq!(answer.get("iss"), Some(&app.base), "RFC 9207 iss");
    let code = answer.get("code").expect("a code").clone();
    let tokens = rp
        .exchange_code(AuthorizationCode::new(code.clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&rp_http())
        .await
        .expect("code exchange");
    let id_token = tokens.id_token().expect("an id token");
    let verifier = rp.id_token_verifier().set_time_fn(at_clock(app));
    let claims = id_token.claims(&verifier, &nonce).expect("id token verifies against the JWKS");
    let expected = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(claims.access_token_hash(), Some(&expected), "at_hash");
    assert!(!claims.subject().as_str().contains('@'), "sub is not the email");
    SignedIn { access: tokens.access_token().clone(), refresh: tokens.refresh_token().cloned(), code }
}

pub(super) async fn userinfo(app: &TestApp, access: &str) -> Reply {
    app.send(&app.client, app.client.get(format!("{}/oidc/userinfo", app.base)).bearer_auth(access)).await
}

#[tokio::test]
async fn a_real_client_signs_in_and_every_token_ends_with_the_log_in() {
    let app = oidc_app().await;
    app.enrolled_user("ann@example.com").await;
    server::ops::groups(&app.state, "ann@example.com", Some((true, "staff"))).await.unwrap();
    let created = add(&app, app_client("Wiki")).await;
    let rp = relying_party(&app, &created).await;
    let signed = sign_in(&app, &rp, &["email", "profile", "groups", "offline_access"]).await;

    // Userinfo, as the client library asks it (signature checks and all).
    let info: CoreUserInfoClaims =
        rp.user_info(signed.access.clone(), None).unwrap().request_async(&rp_http()).await.expect("userinfo");
    assert_eq!(info.email().map(|e| e.as_str()), Some("ann@example.com"));
    let raw = userinfo(&app, signed.access.secret()).await;
    assert_eq!(raw.status, StatusCode::OK, "{}", raw.text);
    assert_eq!(raw.body["groups"], json!(["staff"]));
    assert_eq!(raw.body["name"], "Ann Example");

    // A refresh keeps every claim (groups included) and rotates.
    let refresh = signed.refresh.clone().expect("offline_access gives a refresh token");
    let renewed = rp.exchange_refresh_token(&refresh).unwrap().request_async(&rp_http()).await.expect("refresh");
    let id_token = renewed.id_token().expect("an id token on refresh");
    let verifier = rp.id_token_verifier().set_time_fn(at_clock(&app));
    let claims = id_token.claims(&verifier, |_: Option<&Nonce>| Ok(())).expect("verifies");
    let groups = serde_json::to_value(claims.additional_claims()).unwrap();
    assert_eq!(claims.email().map(|e| e.as_str()), Some("ann@example.com"));
    let _ = groups;
    let payload = jwt_payload(id_token.to_string().as_str());
    assert_eq!(payload["groups"], json!(["staff"]), "groups survive a refresh");
    assert_eq!(payload["acr"], "mfa");
    assert_eq!(payload["amr"], json!(["pwd", "otp", "mfa"]));
    // The spent refresh token again: the grant is revoked.
    let again = rp.exchange_refresh_token(&refresh).unwrap().request_async(&rp_http()).await;
    assert!(again.is_err(), "a spent refresh token is refused");
    let after = userinfo(&app, renewed.access_token().secret()).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED, "reuse revoked the grant: {}", after.text);
    assert!(after.headers["www-authenticate"].to_str().unwrap().starts_with("Bearer error=\"invalid_token\""));

    // A new sign-in, then the portal log-out ends it too.
    let second = sign_in(&app, &rp, &["email"]).await;
    assert_eq!(userinfo(&app, second.access.secret()).await.status, StatusCode::OK);
    let out = app.post("/api/authentication/log-out", json!({})).await;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(userinfo(&app, second.access.secret()).await.status, StatusCode::UNAUTHORIZED);
}

/// The payload of a compact JWS, unverified (the client verified it).
fn jwt_payload(jws: &str) -> Value {
    use base64::Engine;
    let part = jws.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[tokio::test]
async fn a_code_works_once_and_a_second_use_revokes_what_the_first_got() {
    let app = oidc_app().await;
    app.enrolled_user("ann@example.com").await;
    let created = add(&app, app_client("Wiki")).await;
    let rp = relying_party(&app, &created).await;
    let signed = sign_in(&app, &rp, &["email"]).await;
    assert_eq!(userinfo(&app, signed.access.secret()).await.status, StatusCode::OK);
    let replay = exchange_code(&app, &created, &signed.code).await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST);
    assert_eq!(replay.body["error"], "invalid_grant");
    assert_eq!(userinfo(&app, signed.access.secret()).await.status, StatusCode::UNAUTHORIZED);
}

/// A token request with the client's secret as HTTP Basic.
pub(super) async fn token_form(app: &TestApp, created: &clients::Created, form: &[(&str, &str)]) -> Reply {
    let req = app
        .client
        .post(format!("{}/oidc/token", app.base))
        .basic_auth(&created.id, created.secret.as_deref())
        .form(form);
    app.send(&app.client, req).await
}

fn query_of(params: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish()
}

/// An authorize request with these parameters.
/// The app exchanges `code` (no PKCE) at the token endpoint.
async fn exchange_code(app: &TestApp, created: &clients::Created, code: &str) -> Reply {
    token_form(app, created, &[("grant_type", "authorization_code"), ("code", code), ("redirect_uri", REDIRECT)]).await
}

pub(super) async fn authorize(app: &TestApp, params: &[(&str, &str)]) -> Reply {
    app.get(&format!("/oidc/authorize?{}", query_of(params))).await
}

const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

#[tokio::test]
async fn requests_an_app_cannot_be_trusted_with_get_a_page_and_the_rest_go_back_as_errors() {
    let app = oidc_app().await;
    app.enrolled_user("ann@example.com").await;
    let created = add(&app, app_client("Wiki")).await;
    let id = created.id.as_str();
    let base = [("client_id", id), ("redirect_uri", REDIRECT), ("response_type", "code"), ("scope", "openid")];

    // Never a redirect: unknown client, unregistered redirect URI, a
    // parameter twice.
    for params in [
        vec![("client_id", "nobody"), ("redirect_uri", REDIRECT), ("response_type", "code"), ("scope", "openid")],
        vec![
            ("client_id", id),
            ("redirect_uri", "https://evil.test/cb"),
            ("response_type", "code"),
            ("scope", "openid"),
        ],
        vec![("client_id", id), ("client_id", id), ("redirect_uri", REDIRECT)],
        // Never a client id of ours (PostgreSQL would refuse the NUL).
        vec![("client_id", "a\u{0}b"), ("redirect_uri", REDIRECT), ("response_type", "code"), ("scope", "openid")],
    ] {
        let r = authorize(&app, &params).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{params:?}");
        assert!(r.headers.get("location").is_none());
        assert!(r.text.contains("cannot be answered"), "{}", r.text);
    }

    let with = |extra: &[(&'static str, &'static str)]| {
        let mut p: Vec<(&str, &str)> = base.to_vec();
        for (k, v) in extra {
            p.retain(|(pk, _)| pk != k);
            p.push((k, v));
        }
        p
    };
    for (extra, error) in [
        (vec![("response_type", "token")], "unsupported_response_type"),
        (vec![("scope", "email profile")], "invalid_scope"),
        (vec![("response_mode", "fragment")], "invalid_request"),
        (vec![("code_challenge", CHALLENGE), ("code_challenge_method", "plain")], "invalid_request"),
        (vec![("code_challenge", "short"), ("code_challenge_method", "S256")], "invalid_request"),
        (vec![("request", "eyJ9.e30.")], "request_not_supported"),
        (vec![("prompt", "none login")], "invalid_request"),
        (vec![("max_age", "soon")], "invalid_request"),
        (vec![("nonce", "n\u{0}")], "invalid_request"),
    ] {
        let r = authorize(&app, &with(&extra)).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{extra:?}: {}", r.text);
        let answer = answer_of(&r);
        assert_eq!(answer.get("error").map(String::as_str), Some(error), "{extra:?}");
        assert_eq!(answer.get("iss"), Some(&app.base));
    }

    // A public client must use PKCE.
    let public = add(&app, NewClient { public: true, ..app_client("Phone app") }).await;
    let r = authorize(
        &app,
        &[("client_id", &public.id), ("redirect_uri", REDIRECT), ("response_type", "code"), ("scope", "openid")],
    )
    .await;
    assert_eq!(answer_of(&r).get("error").map(String::as_str), Some("invalid_request"));

    // Nobody logged in: prompt=none says so; otherwise the log-in page.
    let stranger = browser();
    let query = query_of(&with(&[("prompt", "none"), ("state", "s1")]));
    let r = app.get_with(&stranger, &format!("/oidc/authorize?{query}")).await;
    let answer = answer_of(&r);
    assert_eq!((answer["error"].as_str(), answer["state"].as_str()), ("login_required", "s1"));
    let query = query_of(&base);
    let r = app.get_with(&stranger, &format!("/oidc/authorize?{query}")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(location(&r).starts_with("/login?rd="), "{}", location(&r));
}

/// A code for `client_id`, with the RFC 7636 example challenge.
async fn pkce_code(app: &TestApp, client_id: &str) -> String {
    let r = authorize(
        app,
        &[
            ("client_id", client_id),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
            ("scope", "openid"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ],
    )
    .await;
    answer_of(&r)["code"].clone()
}

#[tokio::test]
async fn the_token_endpoint_checks_the_client_the_code_and_the_verifier() {
    let app = oidc_app().await;
    app.enrolled_user("ann@example.com").await;
    let created = add(&app, app_client("Wiki")).await;
    let other = add(&app, app_client("Other")).await;
    let c = pkce_code(&app, &created.id).await;
    let exchange = |code: String, verifier: &'static str| {
        vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code),
            ("redirect_uri", REDIRECT.to_owned()),
            ("code_verifier", verifier.to_owned()),
        ]
    };
    let as_refs = |v: &Vec<(&'static str, String)>| v.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>();

    // A wrong secret, the other client's credentials, a wrong verifier:
    // refused, and the code stays good for its own request.
    let wrong_secret = clients::Created { id: created.id.clone(), secret: Some("wrong".into()) };
    let form = as_refs(&exchange(c.clone(), VERIFIER));
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = token_form(&app, &wrong_secret, &form).await;
    assert_eq!((r.status, r.body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")));
    assert!(r.headers.get("www-authenticate").is_some());
    let r = token_form(&app, &other, &form).await;
    assert_eq!(r.body["error"], "invalid_grant", "{}", r.text);
    let bad = exchange(c.clone(), "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXX");
    let bad: Vec<(&str, &str)> = bad.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(token_form(&app, &created, &bad).await.body["error"], "invalid_grant");
    // Another redirect URI, no verifier, a verifier of a wrong length (its
    // S256 is not checked at all): refused, the code still unspent.
    let mut other_uri = form.clone();
    other_uri[2].1 = "https://app.example.com/elsewhere";
    let no_verifier: Vec<(&str, &str)> = form[..3].to_vec();
    let mut short = form.clone();
    short[3].1 = &VERIFIER[..42];
    for refused in [&other_uri, &no_verifier, &short] {
        let r = token_form(&app, &created, refused).await;
        assert_eq!(r.body["error"], "invalid_grant", "{refused:?}: {}", r.text);
    }
    // client_secret_post works the same as Basic.
    let mut posted = form.clone();
    let secret = created.secret.clone().unwrap();
    posted.push(("client_id", &created.id));
    posted.push(("client_secret", &secret));
    let req = app.client.post(format!("{}/oidc/token", app.base)).form(&posted);
    let r = app.send(&app.client, req).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.headers["cache-control"], "no-store");
    assert!(r.body.get("refresh_token").is_none(), "no offline_access, no refresh token");

    // A code past its minute.
    let late = pkce_code(&app, &created.id).await;
    app.clock.advance(61);
    let form = exchange(late, VERIFIER);
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(token_form(&app, &created, &form).await.body["error"], "invalid_grant");

    // Not a form, an unknown grant type.
    let req = app.client.post(format!("{}/oidc/token", app.base)).json(&json!({"grant_type": "authorization_code"}));
    assert_eq!(app.send(&app.client, req).await.body["error"], "invalid_request");
    assert_eq!(token_form(&app, &created, &[("grant_type", "password")]).await.body["error"], "unsupported_grant_type");
}

#[tokio::test]
async fn consent_is_asked_once_and_a_no_goes_back_to_the_app() {
    let app = oidc_app().await;
    app.enrolled_user("ann@example.com").await;
    let created = add(&app, NewClient { consent_ask: true, ..app_client("Photos") }).await;
    let params = [
        ("client_id", created.id.as_str()),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("scope", "openid email"),
        ("state", "xyz"),
    ];
    // A page of the portal's own leads there (see `continue_page`).
    let r = authorize(&app, &params).await;
    assert_eq!(r.status, StatusCode::OK);
    let to = location(&r);
    assert!(to.starts_with("/consent?"), "{to}");
    assert!(r.text.contains(&format!("<a href=\"{}\">Continue</a>", to.replace('&', "&amp;"))), "{}", r.text);
    // The page names the app and what it asks.
    let page = app.get(&to).await;
    assert!(page.text.contains("Allow Photos to sign you in?"), "{}", page.text);
    assert!(page.text.contains("Your email address"));
    // No.
    let mut form: Vec<(&str, &str)> = params.to_vec();
    form.push(("decision", "deny"));
    let r = app.send(&app.client, app.client.post(format!("{}/oidc/consent", app.base)).form(&form)).await;
    let answer = answer_of(&r);
    assert_eq!((answer["error"].as_str(), answer["state"].as_str()), ("access_denied", "xyz"));
    // Yes: a code, and the next time no question.
    form.pop();
    form.push(("decision", "allow"));
    let r = app.send(&app.client, app.client.post(format!("{}/oidc/consent", app.base)).form(&form)).await;
    assert!(answer_of(&r).contains_key("code"), "{}", location(&r));
    let r = authorize(&app, &params).await;
    assert!(answer_of(&r).contains_key("code"));
    // More scopes than agreed to: asked again.
    let mut wider = params.to_vec();
    wider[3] = ("scope", "openid email groups");
    assert!(location(&authorize(&app, &wider).await).starts_with("/consent?"));
    // prompt=none where consent is owed.
    wider.push(("prompt", "none"));
    assert_eq!(answer_of(&authorize(&app, &wider).await)["error"], "consent_required");
    // A cross-site post of the consent form is refused.
    let req = app.client.post(format!("{}/oidc/consent", app.base)).header("origin", "https://evil.test").form(&form);
    assert_eq!(app.send(&app.client, req).await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_log_in_on_the_way_returns_to_the_app_and_prompt_login_asks_for_a_new_one() {
    let app = oidc_app().await;
    let secret = app.enrolled_user("ann@example.com").await;
    let created = add(&app, app_client("Wiki")).await;
    let params = [
        ("client_id", created.id.as_str()),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("scope", "openid"),
        ("prompt", "login"),
    ];
    let r = authorize(&app, &params).await;
    let to = location(&r);
    assert!(to.starts_with("/login?rd="), "{to}");
    // The log-in page is shown although a session exists (it is too old).
    let page = app.get(&to).await;
    assert_eq!(page.status, StatusCode::OK, "the log-in form, not a redirect");
    app.clock.advance(30);
    assert_eq!(app.log_in("ann@example.com", PASSWORD).await.status, StatusCode::OK);
    let code = app.code_now(&secret);
    let done = app.post("/api/2fa/authenticate", json!({"twoFactorAuthenticationCode": code})).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    // The page the wizard goes to next sends the browser back to authorize.
    let back = app.get(&to).await;
    assert_eq!(back.status, StatusCode::SEE_OTHER);
    let again = location(&back);
    assert!(again.starts_with("/oidc/authorize?"), "{again}");
    let r = app.get(&again).await;
    assert!(answer_of(&r).contains_key("code"), "{}", location(&r));
}

#[tokio::test]
async fn an_account_without_two_factors_is_taken_to_enrol_first() {
    let app = oidc_app().await;
    assert_eq!(app.register("bob@example.com").await.status, StatusCode::CREATED);
    assert_eq!(app.log_in("bob@example.com", PASSWORD).await.status, StatusCode::OK);
    let created = add(&app, app_client("Wiki")).await;
    let params = [
        ("client_id", created.id.as_str()),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("scope", "openid"),
    ];
    let r = authorize(&app, &params).await;
    assert!(location(&r).starts_with("/security?rd="), "{}", location(&r));
    // An app that takes one factor gets a code, with acr "pwd"...
    let relaxed = add(&app, NewClient { two_factor: false, ..app_client("Intranet") }).await;
    let mut params = params.to_vec();
    params[0] = ("client_id", &relaxed.id);
    assert!(answer_of(&authorize(&app, &params).await).contains_key("code"));
    // ...unless the request demands two factors.
    params.push(("acr_values", "mfa"));
    assert!(location(&authorize(&app, &params).await).starts_with("/security?rd="));
}

/// An app that wants two factors, but the password alone from the home
/// network: the browser's address as the trusted proxy forwards it
/// decides; a request from the proxy without the header is from nowhere
/// (even though the proxy's own address is in a range). The one-factor
/// sign-in made at home is renewed from the app's server; taking the
/// range out ends it.
#[tokio::test]
async fn an_app_takes_the_password_alone_only_from_its_one_factor_networks() {
    let mut app = spawn_app_with(&[("PUBLIC_URL", "self"), ("TRUSTED_PROXY_HEADER", "x-forwarded-for")]).await;
    app.client = browser();
    assert_eq!(app.register("bob@example.com").await.status, StatusCode::CREATED);
    assert_eq!(app.log_in("bob@example.com", PASSWORD).await.status, StatusCode::OK);
    let home = vec!["192.168.1.0/24".to_owned(), "127.0.0.0/8".to_owned()];
    let photos = add(&app, NewClient { one_factor_networks: home.clone(), ..app_client("Photos") }).await;
    let ask = |from: Option<&'static str>, prompt_none: bool| {
        let mut params = vec![
            ("client_id", photos.id.as_str()),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
            ("scope", "openid"),
        ];
        if prompt_none {
            params.push(("prompt", "none"));
        }
        let url = format!("{}/oidc/authorize?{}", app.base, query_of(&params));
        let app = &app;
        async move {
            let mut get = app.client.get(url);
            if let Some(from) = from {
                get = get.header("x-forwarded-for", from);
            }
            app.send(&app.client, get).await
        }
    };
    let to_enrol = |r: &Reply| location(r).starts_with("/security?rd=");
    for outside in [Some("203.0.113.9"), Some("192.168.2.1"), None] {
        assert!(to_enrol(&ask(outside, false).await), "from {outside:?}");
        let quiet = answer_of(&ask(outside, true).await);
        assert_eq!(quiet.get("error").map(String::as_str), Some("interaction_required"), "from {outside:?}");
    }
    // From home: a code, and a sign-in whose acr says the password.
    assert!(answer_of(&ask(Some("192.168.1.7"), false).await).contains_key("code"));
    let rp = relying_party(&app, &photos).await;
    let signed = sign_in_from(&app, &rp, &["offline_access"], Some("192.168.1.7")).await;
    let access = signed.access.secret().clone();
    assert_eq!(userinfo(&app, &access).await.status, StatusCode::OK);
    // The app's server renews it (from its own address).
    let refresh = signed.refresh.expect("a refresh token");
    let renewed = rp.exchange_refresh_token(&refresh).unwrap().request_async(&rp_http()).await.expect("renewed");
    let refresh = renewed.refresh_token().expect("a new refresh token").clone();
    // Adding a range ends nothing; taking one out ends the app's sign-ins.
    let wider =
        NewClient { one_factor_networks: [home.clone(), vec!["10.0.0.0/8".into()]].concat(), ..app_client("Photos") };
    let changed = clients::change(&app.state, &Default::default(), None, &photos.id, &wider).await.unwrap();
    assert_eq!(changed.map(|c| c.ended), Some(0));
    let narrower = NewClient { one_factor_networks: vec!["10.0.0.0/8".into()], ..app_client("Photos") };
    let changed = clients::change(&app.state, &Default::default(), None, &photos.id, &narrower).await.unwrap();
    // The renewed sign-in, and the grant of the first code (never exchanged).
    assert_eq!(changed.map(|c| c.ended), Some(2));
    let refused = rp.exchange_refresh_token(&refresh).unwrap().request_async(&rp_http()).await;
    assert!(format!("{refused:?}").contains("invalid_grant"), "{refused:?}");
    assert!(to_enrol(&ask(Some("192.168.1.7"), false).await), "no longer home");
    assert!(answer_of(&ask(Some("10.1.2.3"), false).await).contains_key("code"));
    // A group's deadline or acr_values=mfa are not the app's wish: the
    // network does not waive them (the second is checked here).
    let params = [
        ("client_id", photos.id.as_str()),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("scope", "openid"),
        ("acr_values", "mfa"),
    ];
    let url = format!("{}/oidc/authorize?{}", app.base, query_of(&params));
    let r = app.send(&app.client, app.client.get(url).header("x-forwarded-for", "10.1.2.3")).await;
    assert!(to_enrol(&r), "{}", location(&r));
    // Refused settings: networks without two factors, and what is not a range.
    let odd = NewClient { two_factor: false, one_factor_networks: home.clone(), ..app_client("Odd") };
    assert!(clients::check(&odd).unwrap_err().fields.contains_key("twoFactor"));
    for bad in ["intranet", "10.0.0.0/33", "::ffff:10.0.0.0/104"] {
        let odd = NewClient { one_factor_networks: vec![bad.into()], ..app_client("Odd") };
        assert!(clients::check(&odd).unwrap_err().fields.contains_key("oneFactorNetworks"), "{bad}");
    }
    let many = NewClient { one_factor_networks: vec!["10.0.0.1".into(); 21], ..app_client("Odd") };
    assert!(clients::check(&many).unwrap_err().fields.contains_key("oneFactorNetworks"));
}

/// A proxy nobody listed in `TRUSTED_PROXIES` forwards for someone: its
/// clients are from nowhere, though the proxy's own address is inside a
/// one-factor network; the same address without a forwarding header is
/// its own (a browser on the machine).
#[tokio::test]
async fn a_proxy_nobody_listed_gives_its_clients_no_network() {
    let mut app = spawn_app_with(&[
        ("PUBLIC_URL", "self"),
        ("TRUSTED_PROXY_HEADER", "x-forwarded-for"),
        ("TRUSTED_PROXIES", "10.0.0.0/8"),
    ])
    .await;
    app.client = browser();
    assert_eq!(app.register("bob@example.com").await.status, StatusCode::CREATED);
    assert_eq!(app.log_in("bob@example.com", PASSWORD).await.status, StatusCode::OK);
    let home = NewClient { one_factor_networks: vec!["127.0.0.0/8".into()], ..app_client("Photos") };
    let photos = add(&app, home).await;
    let params =
        [("client_id", photos.id.as_str()), ("redirect_uri", REDIRECT), ("response_type", "code"), ("scope", "openid")];
    let url = format!("{}/oidc/authorize?{}", app.base, query_of(&params));
    assert!(answer_of(&app.send(&app.client, app.client.get(&url)).await).contains_key("code"), "from the machine");
    for (header, value) in
        [("x-forwarded-for", "127.0.0.1"), ("forwarded", "for=127.0.0.1"), ("x-real-ip", "127.0.0.1")]
    {
        let r = app.send(&app.client, app.client.get(&url).header(header, value)).await;
        assert!(location(&r).starts_with("/security?rd="), "{header}: {}", location(&r));
    }
}

/// Apps that want the second factor shown (`remembered` refused) or shown
/// lately (`fresh`): a log-in a remembered browser stood in for, or one
/// whose factor is too old, is sent to show one again and comes back for
/// its code; `prompt=none` hears that interaction is needed. Refusing
/// remembered browsers later ends the app's sign-ins.
#[tokio::test]
async fn an_app_that_wants_the_second_factor_shown_asks_for_it_again() {
    let app = oidc_app().await;
    let secret = app.enrolled_user("ann@example.com").await;
    let code_step =
        |remember: bool| json!({"twoFactorAuthenticationCode": app.code_now(&secret), "remember": remember});
    // This browser is remembered, then logs in with the password alone.
    app.post("/api/authentication/log-out", json!({})).await;
    assert_eq!(app.log_in("ann@example.com", PASSWORD).await.body["twoFactorRequired"], true);
    app.clock.advance(30);
    assert_eq!(app.post("/api/2fa/authenticate", code_step(true)).await.status, StatusCode::OK);
    app.post("/api/authentication/log-out", json!({})).await;
    assert_eq!(app.log_in("ann@example.com", PASSWORD).await.body["remembered"], true);

    let usual = add(&app, app_client("Wiki")).await;
    let shown = add(&app, NewClient { remembered: false, ..app_client("Bank") }).await;
    let recent = add(&app, NewClient { fresh: Some(600), ..app_client("Payroll") }).await;
    let ask = |id: &str, extra: Option<(&'static str, &'static str)>| {
        let mut params =
            vec![("client_id", id.to_owned()), ("redirect_uri", REDIRECT.into()), ("response_type", "code".into())];
        params.push(("scope", "openid".into()));
        params.extend(extra.map(|(k, v)| (k, v.to_owned())));
        let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let query = query_of(&pairs);
        let app = &app;
        async move { app.get(&format!("/oidc/authorize?{query}")).await }
    };
    let sent_to_show = |r: &Reply| location(r).starts_with("/security?need=two-factor&rd=");
    assert!(answer_of(&ask(&usual.id, None).await).contains_key("code"), "a remembered browser does for most");
    for app_id in [&shown.id, &recent.id] {
        let r = ask(app_id, None).await;
        assert!(sent_to_show(&r), "{}", location(&r));
        let rd = url::Url::parse(&format!("http://x{}", location(&r))).unwrap();
        let back = rd.query_pairs().find(|(k, _)| k == "rd").unwrap().1.into_owned();
        assert!(back.contains("/oidc/authorize?") && back.contains(app_id.as_str()), "comes back: {back}");
        let quiet = answer_of(&ask(app_id, Some(("prompt", "none"))).await);
        assert_eq!(quiet.get("error").map(String::as_str), Some("interaction_required"));
    }
    // Shown: both give a code, in the same log-in.
    app.clock.advance(30);
    let r = app.post("/api/2fa/step-up", json!({"twoFactorAuthenticationCode": app.code_now(&secret)})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    for app_id in [&shown.id, &recent.id] {
        assert!(answer_of(&ask(app_id, None).await).contains_key("code"));
    }
    // Ten minutes on, Payroll wants it again; the Bank does not.
    app.clock.advance(600);
    assert!(answer_of(&ask(&recent.id, None).await).contains_key("code"), "600 seconds exactly");
    app.clock.advance(1);
    assert!(sent_to_show(&ask(&recent.id, None).await));
    assert!(answer_of(&ask(&shown.id, None).await).contains_key("code"));

    // The usual app, told to refuse remembered browsers (or to want a fresh
    // factor), ends its sign-ins; a shorter `fresh` ends nothing.
    let tighter = NewClient { remembered: false, ..app_client("Wiki") };
    let changed = clients::change(&app.state, &Default::default(), None, &usual.id, &tighter).await.unwrap();
    assert_eq!(changed.map(|c| c.ended), Some(1));
    let shorter = NewClient { fresh: Some(300), ..app_client("Payroll") };
    let changed = clients::change(&app.state, &Default::default(), None, &recent.id, &shorter).await.unwrap();
    assert_eq!(changed.map(|c| c.ended), Some(0));
    let fresh_now = NewClient { fresh: Some(3600), ..app_client("Photos") };
    let photos = add(&app, app_client("Photos")).await;
    assert!(answer_of(&ask(&photos.id, None).await).contains_key("code"));
    let changed = clients::change(&app.state, &Default::default(), None, &photos.id, &fresh_now).await.unwrap();
    assert_eq!(changed.map(|c| c.ended), Some(1));
    let too_short = NewClient { fresh: Some(59), ..app_client("Quick") };
    assert!(clients::check(&too_short).unwrap_err().fields.contains_key("fresh"));
    // Without two factors, neither setting means anything: refused.
    for odd in [
        NewClient { two_factor: false, remembered: false, ..app_client("Odd") },
        NewClient { two_factor: false, fresh: Some(60), ..app_client("Odd") },
    ] {
        let e = clients::check(&odd).unwrap_err();
        assert!(e.fields.contains_key("twoFactor"), "{e:?}");
    }
}

#[tokio::test]
async fn discovery_and_jwks_say_rs256_and_a_rotated_key_signs_once_published() {
    let app = oidc_app().await;
    let d = app.get("/.well-known/openid-configuration").await;
    assert_eq!(d.status, StatusCode::OK);
    assert_eq!(d.body["issuer"], app.base);
    assert_eq!(d.body["id_token_signing_alg_values_supported"], json!(["RS256"]));
    assert_eq!(d.body["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(d.headers["access-control-allow-origin"], "*");
    let jwks = app.get("/oidc/jwks").await;
    let keys = jwks.body["keys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 1);
    assert_eq!(
        (keys[0]["kty"].as_str(), keys[0]["alg"].as_str(), keys[0]["use"].as_str()),
        (Some("RSA"), Some("RS256"), Some("sig"))
    );
    let first = keys[0]["kid"].as_str().unwrap().to_owned();

    app.clock.advance(1);
    let second = app::server::oidc::keys::rotate(&app.state).await.unwrap();
    app.clock.advance(app::server::oidc::keys::RELOAD_SECONDS);
    let jwks = app.get("/oidc/jwks").await;
    let kids: Vec<&str> = jwks.body["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(kids, vec![second.as_str(), first.as_str()], "published at once, newest first");
    let keys = app::server::oidc::keys::current(&app.state).await.unwrap();
    assert_eq!(keys.signer_kid(), first, "the old key signs until the new one is everywhere");
    app.clock.advance(app::server::oidc::keys::PUBLISH_SECONDS);
    let keys = app::server::oidc::keys::current(&app.state).await.unwrap();
    assert_eq!(keys.signer_kid(), second);
    // Once nothing the first key signed can be alive, the next rotation
    // deletes it.
    app.clock.advance(app::server::oidc::keys::RETIRE_SECONDS);
    let third = app::server::oidc::keys::rotate(&app.state).await.unwrap();
    let stored: Vec<String> = app.state.db.oidc_keys().await.unwrap().into_iter().map(|k| k.kid).collect();
    assert_eq!(stored, vec![third, second], "the first key is gone");
}

#[tokio::test]
async fn an_app_logs_the_person_out_with_a_hint_at_once_and_without_one_after_asking() {
    let app = oidc_app().await;
    let secret = app.enrolled_user("ann@example.com").await;
    let after = "https://app.example.test/logged-out";
    let created = add(&app, NewClient { post_logout_redirect_uris: vec![after.into()], ..app_client("Wiki") }).await;
    let rp = relying_party(&app, &created).await;
    let (hint, first) = id_token_and_access(&app, &rp).await;

    // Errors are pages: an address not registered, a hint not ours.
    let r = app
        .get(&format!(
            "/oidc/logout?{}",
            query_of(&[("client_id", &created.id), ("post_logout_redirect_uri", "https://evil.test/")])
        ))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let forged = format!("{}.{}", hint.rsplit_once('.').unwrap().0, "AAAA");
    let r = app.get(&format!("/oidc/logout?{}", query_of(&[("id_token_hint", &forged)]))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // Without a hint: a question, and nothing ended.
    let ask = [("client_id", created.id.as_str()), ("post_logout_redirect_uri", after), ("state", "s9")];
    let r = app.get(&format!("/oidc/logout?{}", query_of(&ask))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.contains("Wiki asks to log you out."), "{}", r.text);
    assert_eq!(userinfo(&app, first.secret()).await.status, StatusCode::OK);
    // A yes from another site carries no cookie of ours: nothing ends.
    let mut yes = ask.to_vec();
    yes.push(("confirm", "yes"));
    let stranger = browser();
    let r = app.send(&stranger, stranger.post(format!("{}/oidc/logout", app.base)).form(&yes)).await;
    assert_eq!(location(&r), format!("{after}?state=s9"));
    assert!(r.headers.get("set-cookie").is_none(), "nothing to clear");
    assert_eq!(userinfo(&app, first.secret()).await.status, StatusCode::OK);
    // The person's yes: the log-in ends, back to the app with its state.
    let r = app.send(&app.client, app.client.post(format!("{}/oidc/logout", app.base)).form(&yes)).await;
    assert_eq!(location(&r), format!("{after}?state=s9"));
    assert_eq!(userinfo(&app, first.secret()).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.get("/api/authentication").await.status, StatusCode::UNAUTHORIZED, "the portal log-in ended");

    // Logged in again: a hint naming this log-in ends it without asking;
    // the earlier log-in's hint is stale and asks.
    app.clock.advance(30);
    assert_eq!(app.log_in("ann@example.com", PASSWORD).await.status, StatusCode::OK);
    let code = json!({"twoFactorAuthenticationCode": app.code_now(&secret)});
    assert_eq!(app.post("/api/2fa/authenticate", code).await.status, StatusCode::OK);
    let (fresh, second) = id_token_and_access(&app, &rp).await;
    let r = app.get(&format!("/oidc/logout?{}", query_of(&[("id_token_hint", &hint)]))).await;
    assert_eq!(r.status, StatusCode::OK, "a stale hint asks first");
    let r = app
        .get(&format!("/oidc/logout?{}", query_of(&[("id_token_hint", &fresh), ("post_logout_redirect_uri", after)])))
        .await;
    assert_eq!(location(&r), after);
    let cleared: Vec<&str> = r.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).collect();
    assert!(
        cleared.iter().any(|c| c.starts_with("access=;")) && cleared.iter().any(|c| c.starts_with("oidc_login=;")),
        "{cleared:?}"
    );
    assert_eq!(userinfo(&app, second.secret()).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn revocation_and_introspection_reach_only_the_clients_own_tokens() {
    let app = oidc_app().await;
    app.enrolled_user("ann@example.com").await;
    let created = add(&app, app_client("Wiki")).await;
    let other = add(&app, app_client("Other")).await;
    let rp = relying_party(&app, &created).await;
    let signed = sign_in(&app, &rp, &["email", "offline_access"]).await;
    let refresh = signed.refresh.clone().unwrap();
    let ask = |who: &clients::Created, path: &'static str, token: String| {
        let req = app
            .client
            .post(format!("{}{path}", app.base))
            .basic_auth(&who.id, who.secret.as_deref())
            .form(&[("token", token)]);
        app.send(&app.client, req)
    };
    let r = ask(&created, "/oidc/introspect", signed.access.secret().clone()).await;
    assert_eq!((r.body["active"].as_bool(), r.body["token_type"].as_str()), (Some(true), Some("Bearer")), "{}", r.text);
    assert_eq!(r.body["scope"], "openid email offline_access");
    let r = ask(&created, "/oidc/introspect", refresh.secret().clone()).await;
    assert_eq!(r.body["token_type"], "refresh_token");
    // Another app sees nothing and revokes nothing.
    assert_eq!(ask(&other, "/oidc/introspect", signed.access.secret().clone()).await.body["active"], false);
    assert_eq!(ask(&other, "/oidc/revoke", refresh.secret().clone()).await.status, StatusCode::OK);
    assert_eq!(userinfo(&app, signed.access.secret()).await.status, StatusCode::OK);
    // Garbage: 200 all the same; a wrong secret: 401.
    assert_eq!(ask(&created, "/oidc/revoke", "garbage".into()).await.status, StatusCode::OK);
    let wrong = clients::Created { id: created.id.clone(), secret: Some("nope".into()) };
    assert_eq!(ask(&wrong, "/oidc/revoke", "garbage".into()).await.status, StatusCode::UNAUTHORIZED);
    // Its own refresh token: the grant ends, access token included.
    assert_eq!(ask(&created, "/oidc/revoke", refresh.secret().clone()).await.status, StatusCode::OK);
    assert_eq!(userinfo(&app, signed.access.secret()).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(ask(&created, "/oidc/introspect", signed.access.secret().clone()).await.body["active"], false);
    // Public clients may not introspect.
    let public = add(&app, NewClient { public: true, ..app_client("Phone") }).await;
    let req =
        app.client.post(format!("{}/oidc/introspect", app.base)).form(&[("token", "x"), ("client_id", &public.id)]);
    assert_eq!(app.send(&app.client, req).await.status, StatusCode::UNAUTHORIZED);
}

/// Signs in through the app and returns (the raw id token, the access token).
async fn id_token_and_access(app: &TestApp, rp: &Rp) -> (String, openidconnect::AccessToken) {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, _, _) = rp
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .set_pkce_challenge(challenge)
        .url();
    let reply = app.send(&app.client, app.client.get(url.as_str())).await;
    let code = answer_of(&reply)["code"].clone();
    let tokens = rp
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&rp_http())
        .await
        .expect("code exchange");
    (tokens.id_token().unwrap().to_string(), tokens.access_token().clone())
}

/// An app's back-channel log-out address: records each logout token
/// posted to it, and answers 503 to the first `failures` posts.
async fn logout_receiver(failures: u32) -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    use std::sync::atomic::{AtomicU32, Ordering};
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let left = Arc::new(AtomicU32::new(failures));
    let router = axum::Router::new().route(
        "/backchannel",
        axum::routing::post(move |axum::Form(form): axum::Form<HashMap<String, String>>| {
            let (tx, left) = (tx.clone(), left.clone());
            async move {
                let _ = tx.send(form.get("logout_token").cloned().unwrap_or_default());
                if left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
                    axum::http::StatusCode::SERVICE_UNAVAILABLE
                } else {
                    axum::http::StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{addr}/backchannel"), rx)
}

/// The next logout token the app receives (the sender is woken by the
/// ending's commit; this waits on the channel, never on a timer of ours).
async fn next_logout(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(std::time::Duration::from_secs(20), rx.recv()).await.expect("a logout token").unwrap()
}

/// The claims of a logout token, its signature checked against the JWKS.
async fn verified_logout(app: &TestApp, token: &str, client_id: &str) -> Value {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("logout+jwt"));
    let jwks = app.get("/oidc/jwks").await.body;
    let kid = header.kid.unwrap();
    let jwk = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid.as_str()).expect("its key is published");
    let key = DecodingKey::from_rsa_components(jwk["n"].as_str().unwrap(), jwk["e"].as_str().unwrap()).unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[client_id]);
    validation.set_issuer(&[app.base.as_str()]);
    jsonwebtoken::decode::<Value>(token, &key, &validation).expect("a valid logout token").claims
}

#[tokio::test]
async fn every_ending_of_a_log_in_is_told_to_the_apps_over_the_back_channel_with_retries() {
    let app = oidc_app().await;
    let secret = app.enrolled_user("ann@example.com").await;
    let (uri, mut received) = logout_receiver(1).await;
    let created = add(&app, NewClient { backchannel_logout_uri: Some(uri), ..app_client("Wiki") }).await;
    let quiet = add(&app, app_client("No back channel")).await;
    let rp = relying_party(&app, &created).await;
    let (id_token, _) = id_token_and_access(&app, &rp).await;
    let quiet_rp = relying_party(&app, &quiet).await;
    id_token_and_access(&app, &quiet_rp).await;
    let sid = jwt_payload(&id_token)["sid"].clone();
    let d = app.get("/.well-known/openid-configuration").await;
    assert_eq!(d.body["backchannel_logout_session_supported"], true);

    // A log-out: the app hears of it; the first post fails (503)...
    assert_eq!(app.post("/api/authentication/log-out", json!({})).await.status, StatusCode::OK);
    let first = next_logout(&mut received).await;
    let claims = verified_logout(&app, &first, &created.id).await;
    assert_eq!(claims["sid"], sid, "the log-in the id token named");
    assert_eq!(claims["sub"], jwt_payload(&id_token)["sub"]);
    assert!(claims["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());
    assert!(claims.get("nonce").is_none());
    // ...and is tried again once its back-off is over.
    app.clock.advance(app::server::oidc::backchannel::retry_after(1));
    app.state.db.logouts_queued.notify_one();
    let again = next_logout(&mut received).await;
    assert_eq!(verified_logout(&app, &again, &created.id).await["sid"], sid);

    // A password change ends the other log-ins: told too, once each.
    app.clock.advance(30);
    assert_eq!(app.log_in("ann@example.com", PASSWORD).await.status, StatusCode::OK);
    let code = json!({"twoFactorAuthenticationCode": app.code_now(&secret)});
    assert_eq!(app.post("/api/2fa/authenticate", code).await.status, StatusCode::OK);
    let (second, _) = id_token_and_access(&app, &rp).await;
    let change = json!({"currentPassword": PASSWORD, "newPassword": "another horse battery staple"});
    let r = app.post("/api/authentication/change-password", change).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let told = next_logout(&mut received).await;
    assert_eq!(verified_logout(&app, &told, &created.id).await["sid"], jwt_payload(&second)["sid"]);
    assert!(received.try_recv().is_err(), "one message per app and log-in");
}

#[tokio::test]
async fn max_age_zero_asks_for_a_new_log_in_once_and_the_new_one_answers_it() {
    let app = oidc_app().await;
    let secret = app.enrolled_user("ann@example.com").await;
    let created = add(&app, app_client("Wiki")).await;
    let params = [
        ("client_id", created.id.as_str()),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("scope", "openid"),
        ("max_age", "0"),
    ];
    // In the very second of the log-in: still a new log-in is asked for.
    let to = location(&authorize(&app, &params).await);
    assert!(to.starts_with("/login?rd="), "{to}");
    app.clock.advance(30);
    assert_eq!(app.log_in("ann@example.com", PASSWORD).await.status, StatusCode::OK);
    let code = json!({"twoFactorAuthenticationCode": app.code_now(&secret)});
    assert_eq!(app.post("/api/2fa/authenticate", code).await.status, StatusCode::OK);
    // Seconds pass on the way back: the log-in made for it still counts.
    app.clock.advance(3);
    let back = location(&app.get(&to).await);
    let r = app.get(&back).await;
    assert!(answer_of(&r).contains_key("code"), "{}", location(&r));
}

#[tokio::test]
async fn connected_apps_are_listed_and_taking_one_back_ends_its_tokens_and_asks_again() {
    let app = oidc_app().await;
    app.enrolled_user("ann@example.com").await;
    let created = add(&app, NewClient { consent_ask: true, ..app_client("Photos") }).await;
    let quiet = add(&app, app_client("Never used")).await;
    let params = [
        ("client_id", created.id.as_str()),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("scope", "openid email groups"),
    ];
    let mut form: Vec<(&str, &str)> = params.to_vec();
    form.push(("decision", "allow"));
    let r = app.send(&app.client, app.client.post(format!("{}/oidc/consent", app.base)).form(&form)).await;
    let code = answer_of(&r)["code"].clone();
    let tokens = exchange_code(&app, &created, &code).await;
    let access = tokens.body["access_token"].as_str().unwrap().to_owned();

    let list = app.get("/api/oidc/connected-apps").await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    let apps = list.body.as_array().unwrap();
    assert_eq!(apps.len(), 1, "only the app signed in to: {}", list.text);
    assert_eq!(apps[0]["name"], "Photos");
    assert_eq!(apps[0]["scopes"], json!(["openid", "email", "groups"]));
    assert_eq!(apps[0]["signedInAt"], app.clock_now());

    // Another app's id, or one never connected: 404, nothing changes.
    let r = app.post("/api/oidc/connected-apps/revoke", json!({"clientId": quiet.id})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(userinfo(&app, &access).await.status, StatusCode::OK);

    // Without JavaScript: the security page's form.
    let r = app
        .send(
            &app.client,
            app.client.post(format!("{}/security", app.base)).form(&[("intent", "revoke-app"), ("app", &created.id)]),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.status);
    assert!(r.text.contains("Photos can no longer sign you in without asking."), "the page says so");
    assert_eq!(userinfo(&app, &access).await.status, StatusCode::UNAUTHORIZED, "its tokens ended");
    assert_eq!(app.get("/api/oidc/connected-apps").await.body, json!([]));
    let activity = app.get("/api/authentication/activity").await;
    assert!(all_kinds(&activity.body).contains(&"app_access_revoked".to_owned()), "{}", activity.text);
    // Asked again next time.
    assert!(location(&authorize(&app, &params).await).starts_with("/consent?"));
    // Taken back already: 404.
    let r = app.post("/api/oidc/connected-apps/revoke", json!({"clientId": created.id})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_code_exchanged_twice_at_once_gives_tokens_once_and_a_refresh_token_likewise() {
    let app = oidc_app().await;
    app.enrolled_user("ann@example.com").await;
    let created = add(&app, app_client("Wiki")).await;
    let params = [
        ("client_id", created.id.as_str()),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("scope", "openid offline_access"),
    ];
    let exchange = |form: Vec<(&'static str, String)>| {
        let req = app
            .client
            .post(format!("{}/oidc/token", app.base))
            .basic_auth(&created.id, created.secret.as_deref())
            .form(&form);
        async move { req.send().await.unwrap().status() }
    };
    // Two exchanges of one code, side by side, 200 times: one wins each time.
    for round in 0..200 {
        let code = answer_of(&authorize(&app, &params).await)["code"].clone();
        let form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code),
            ("redirect_uri", REDIRECT.to_owned()),
        ];
        let (a, b) = tokio::join!(exchange(form.clone()), exchange(form));
        let won = [a, b].iter().filter(|s| **s == StatusCode::OK).count();
        assert_eq!(won, 1, "round {round}: {a} and {b}");
    }
    // The same for a refresh token presented twice at once.
    for round in 0..100 {
        let code = answer_of(&authorize(&app, &params).await)["code"].clone();
        let r = exchange_code(&app, &created, &code).await;
        let refresh = r.body["refresh_token"].as_str().unwrap().to_owned();
        let form = vec![("grant_type", "refresh_token"), ("refresh_token", refresh.as_str())];
        let form: Vec<(&'static str, String)> = form.into_iter().map(|(k, v)| (k, v.to_owned())).collect();
        let (a, b) = tokio::join!(exchange(form.clone()), exchange(form));
        let won = [a, b].iter().filter(|s| **s == StatusCode::OK).count();
        assert_eq!(won, 1, "round {round}: {a} and {b}");
    }
}

#[tokio::test]
async fn senders_racing_for_the_back_channel_queue_deliver_each_log_out_once() {
    let app = oidc_app().await;
    let secret = app.enrolled_user("ann@example.com").await;
    let (uri, mut received) = logout_receiver(0).await;
    let created = add(&app, NewClient { backchannel_logout_uri: Some(uri), ..app_client("Wiki") }).await;
    let rp = relying_party(&app, &created).await;
    let rounds = 100;
    for round in 0..rounds {
        if round > 0 {
            app.clock.advance(30);
            assert_eq!(app.log_in("ann@example.com", PASSWORD).await.status, StatusCode::OK);
            let code = json!({"twoFactorAuthenticationCode": app.code_now(&secret)});
            assert_eq!(app.post("/api/2fa/authenticate", code).await.status, StatusCode::OK);
        }
        id_token_and_access(&app, &rp).await;
        assert_eq!(app.post("/api/authentication/log-out", json!({})).await.status, StatusCode::OK);
        // The server's own sender (woken by the ending) and two more.
        let (a, b) = tokio::join!(
            app::server::oidc::backchannel::send_due(&app.state),
            app::server::oidc::backchannel::send_due(&app.state)
        );
        a.unwrap();
        b.unwrap();
    }
    let mut sids = std::collections::HashSet::new();
    for _ in 0..rounds {
        let token = next_logout(&mut received).await;
        assert!(sids.insert(jwt_payload(&token)["sid"].to_string()), "a log-in told twice");
    }
    app::server::oidc::backchannel::send_due(&app.state).await.unwrap();
    assert!(received.try_recv().is_err(), "nothing more than one message per log-in");
}

#[tokio::test]
async fn a_code_exchanged_while_its_log_in_ends_gives_tokens_only_if_the_app_is_told() {
    let app = oidc_app().await;
    let secret = app.enrolled_user("ann@example.com").await;
    let (uri, mut received) = logout_receiver(0).await;
    let created = add(&app, NewClient { backchannel_logout_uri: Some(uri), ..app_client("Wiki") }).await;
    let params = [
        ("client_id", created.id.as_str()),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("scope", "openid"),
    ];
    // The exchange and the log-out side by side, 200 times. Either the code
    // is spent first (tokens, and the ending queues a back-channel log-out
    // for the app) or the log-in ended first (invalid_grant): never tokens
    // the app is not told have ended.
    let rounds = 200;
    let mut exchanged = 0;
    for round in 0..rounds {
        if round > 0 {
            app.clock.advance(30);
            assert_eq!(app.log_in("ann@example.com", PASSWORD).await.status, StatusCode::OK);
            let code = json!({"twoFactorAuthenticationCode": app.code_now(&secret)});
            assert_eq!(app.post("/api/2fa/authenticate", code).await.status, StatusCode::OK);
        }
        let code = answer_of(&authorize(&app, &params).await)["code"].clone();
        let (token, logout) =
            tokio::join!(exchange_code(&app, &created, &code), app.post("/api/authentication/log-out", json!({})));
        assert_eq!(logout.status, StatusCode::OK, "round {round}");
        match token.status {
            StatusCode::OK => exchanged += 1,
            _ => assert_eq!(token.body["error"], "invalid_grant", "round {round}: {}", token.text),
        }
    }
    app::server::oidc::backchannel::send_due(&app.state).await.unwrap();
    for _ in 0..exchanged {
        next_logout(&mut received).await;
    }
    let mut extra = 0;
    while received.try_recv().is_ok() {
        extra += 1;
    }
    assert_eq!(extra, 0, "messages for log-ins whose code was not exchanged ({exchanged} exchanged)");
    assert!(exchanged > 0, "the exchange never won a round: the race was not run");
}

#[tokio::test]
async fn a_deleted_account_is_logged_out_of_every_app_after_its_rows_are_gone() {
    let app = oidc_app().await;
    app.enrolled_user("ann@example.com").await;
    let (uri, mut received) = logout_receiver(0).await;
    let created = add(&app, NewClient { backchannel_logout_uri: Some(uri), ..app_client("Wiki") }).await;
    let rp = relying_party(&app, &created).await;
    let (id_token, access) = id_token_and_access(&app, &rp).await;
    let signed_in = jwt_payload(&id_token);

    let user = app.state.db.user_by_email("ann@example.com").await.unwrap().unwrap();
    let meta = app::server::account::operator_meta();
    let mut tx = app.state.db.begin().await.unwrap();
    assert!(app::server::account::delete_account(&app.state, &mut tx, &user, None, &meta).await.unwrap());
    app::server::audit::commit(&app.state, tx).await.unwrap();
    assert!(app.state.db.user_by_id(user.id).await.unwrap().is_none());

    // The app is told, with the subject and log-in it knows, although the
    // account is gone; its access token is refused.
    let claims = verified_logout(&app, &next_logout(&mut received).await, &created.id).await;
    assert_eq!((&claims["sub"], &claims["sid"]), (&signed_in["sub"], &signed_in["sid"]));
    assert_eq!(userinfo(&app, access.secret()).await.status, StatusCode::UNAUTHORIZED);
}

/// Past a group's deadline for two factors, an app that takes one factor
/// sends its member to turn them on as well.
#[tokio::test]
async fn past_a_groups_deadline_every_app_sends_a_one_factor_log_in_to_enrol() {
    let app = oidc_app().await;
    assert_eq!(app.register("bob@example.com").await.status, StatusCode::CREATED);
    assert_eq!(app.log_in("bob@example.com", PASSWORD).await.status, StatusCode::OK);
    let bob = app.state.db.user_by_email("bob@example.com").await.unwrap().unwrap().id;
    let now = app.clock_now();
    let mut tx = app.state.db.begin().await.unwrap();
    tx.set_group(bob, "staff", true, now).await.unwrap();
    tx.set_deadline("staff", now + 86_400, 0, bob, now).await.unwrap();
    tx.members_changed(vec![(bob,)]).await.unwrap();
    tx.commit().await.unwrap();
    let relaxed = add(&app, NewClient { two_factor: false, ..app_client("Intranet") }).await;
    let params = [
        ("client_id", relaxed.id.as_str()),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("scope", "openid"),
    ];
    assert!(answer_of(&authorize(&app, &params).await).contains_key("code"), "before the deadline");
    // A sign-in with a refresh token, made before the deadline.
    let rp = relying_party(&app, &relaxed).await;
    let signed = sign_in(&app, &rp, &["offline_access"]).await;
    let refresh = signed.refresh.expect("a refresh token");
    app.clock.advance(86_400);
    // After it, the app cannot renew the one-factor sign-in...
    let renewed = rp.exchange_refresh_token(&refresh).unwrap().request_async(&rp_http()).await;
    assert!(format!("{renewed:?}").contains("invalid_grant"), "{renewed:?}");
    assert_eq!(app.log_in("bob@example.com", PASSWORD).await.status, StatusCode::OK);
    // ...and a new one is sent to turn two factors on.
    let r = authorize(&app, &params).await;
    assert!(location(&r).starts_with("/security?rd="), "{}", location(&r));
}

#[tokio::test]
async fn someone_taken_out_of_an_apps_group_cannot_renew_their_sign_in() {
    let app = oidc_app().await;
    app.enrolled_user("ann@example.com").await;
    let ann = app.state.db.user_by_email("ann@example.com").await.unwrap().unwrap().id;
    assert!(app.state.db.set_group(ann, "staff", true, app.clock_now()).await.unwrap());
    let staff_only = add(&app, NewClient { groups: vec!["staff".into()], ..app_client("Staff wiki") }).await;
    let rp = relying_party(&app, &staff_only).await;
    let signed = sign_in(&app, &rp, &["offline_access", "groups"]).await;
    let refresh = signed.refresh.expect("a refresh token");
    // Still in the group: renewed (a new token, the old one spent).
    let renewed = rp.exchange_refresh_token(&refresh).unwrap().request_async(&rp_http()).await.expect("renewed");
    let refresh = renewed.refresh_token().expect("a new refresh token").clone();
    // Taken out of it: not renewed, and the sign-in ends (introspection
    // says so); the token was not spent, so trying again raises no reuse
    // alarm, and being put back in the group brings nothing back.
    assert!(app.state.db.set_group(ann, "staff", false, app.clock_now()).await.unwrap());
    let refused = rp.exchange_refresh_token(&refresh).unwrap().request_async(&rp_http()).await;
    assert!(format!("{refused:?}").contains("may no longer use this app"), "{refused:?}");
    let form = [("token", refresh.secret().as_str())];
    let seen = app
        .send(
            &app.client,
            app.client
                .post(format!("{}/oidc/introspect", app.base))
                .basic_auth(&staff_only.id, staff_only.secret.as_deref())
                .form(&form),
        )
        .await;
    assert_eq!(seen.body["active"], false, "{}", seen.text);
    assert!(app.state.db.set_group(ann, "staff", true, app.clock_now()).await.unwrap());
    let again = rp.exchange_refresh_token(&refresh).unwrap().request_async(&rp_http()).await;
    assert!(format!("{again:?}").contains("invalid_grant"), "{again:?}");
    assert!(!format!("{again:?}").contains("already used"), "no reuse alarm: {again:?}");
}
