//! Access tokens: HS256 JWTs with the algorithm pinned, carried in an
//! HttpOnly, SameSite=Strict cookie. Two stages with different audiences: a
//! `password` token (5 minutes, good only for `/2fa/authenticate`) and a
//! `full` token. `ver` is the user's session version; bumping it in the
//! database kills every older token. Expiry is checked against the injected
//! `Clock`, not the system time, so tests can move time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::AppError;

/// Shortest signing key accepted: 256 bits, the HS256 output size.
pub const MIN_KEY_BYTES: usize = 32;
/// A password-stage token lives just long enough to type a code.
pub const PASSWORD_STAGE_TTL: i64 = 5 * 60;
/// Seconds of clock difference tolerated between instances.
pub const LEEWAY_SECONDS: i64 = 5;

const ISSUER: &str = "twofactor";
/// How long a browser keeps its device cookie after a successful log-in.
pub const DEVICE_TTL: i64 = 180 * 86_400;
/// What the device-cookie key is derived for.
const DEVICE_KEY_LABEL: &[u8] = b"twofactor:device-cookie:v1";
/// What the OpenID access-token key is derived for.
const OIDC_ACCESS_KEY_LABEL: &[u8] = b"twofactor:oidc-access-token:v1";

type HmacSha256 = Hmac<Sha256>;

/// A browser that has logged in to this account before (OWASP's device
/// cookie): it gets its own password-guessing budget, so strangers failing
/// on the account cannot lock it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub user_id: i64,
    /// The user's session version when issued: a password or 2FA change
    /// and log-out everywhere bump it, and the cookie stops counting.
    pub version: i64,
    /// Random, names the browser's throttle bucket.
    pub nonce: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// The password was right; the second factor is still owed.
    Password,
    /// Fully authenticated.
    Full,
    /// The OpenID authorize step's own cookie (`SameSite=Lax`, so an app's
    /// redirect carries it): it names a log-in, good only at `/oidc/`.
    Authorize,
}

impl Stage {
    fn audience(self) -> &'static str {
        match self {
            Stage::Password => "twofactor:second-factor",
            Stage::Full => "twofactor:session",
            Stage::Authorize => "twofactor:authorize",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub sub: String,
    pub stage: Stage,
    pub ver: i64,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub aud: String,
    pub iss: String,
    /// The refresh-token family of a full session, so log-out can end it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// When the person last proved who they are (Unix seconds): changing a
    /// factor without the password needs this to be recent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<i64>,
    /// A password-stage token's second factors on offer, so the code step
    /// is drawn for them without a database read: "app", "passkey" or
    /// both, space-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fac: Option<String>,
    /// A password-stage token's log-in comes from a browser that held no
    /// device cookie of this account: its owner is told once it succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nb: Option<bool>,
}

impl Claims {
    /// (an authenticator app, a passkey) on offer at the code step.
    pub fn factors(&self) -> (bool, bool) {
        let fac = self.fac.as_deref().unwrap_or("app");
        (fac.split(' ').any(|f| f == "app"), fac.split(' ').any(|f| f == "passkey"))
    }
}

impl Claims {
    pub fn user_id(&self) -> Option<i64> {
        self.sub.parse().ok()
    }
}

#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// Built once: verification runs on every authenticated request.
    full: Validation,
    password: Validation,
    authorize: Validation,
    /// Signs device cookies; derived from the signing key.
    device: HmacSha256,
    /// The key of the OpenID access tokens, derived for that use alone.
    oidc_access: [u8; 32],
}

/// Accepts HS256 only (never `none` or another algorithm), this issuer and
/// the stage's audience. Expiry is checked against the injected clock.
fn validation(stage: Stage) -> Validation {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.algorithms = vec![Algorithm::HS256];
    validation.set_audience(&[stage.audience()]);
    validation.set_issuer(&[ISSUER]);
    validation.set_required_spec_claims(&["exp", "sub", "aud", "iss"]);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.leeway = 0;
    validation
}

impl TokenKeys {
    pub fn new(secret: &[u8]) -> Result<Self, String> {
        if secret.len() < MIN_KEY_BYTES {
            return Err(format!("the JWT signing key must be at least {MIN_KEY_BYTES} bytes, it has {}", secret.len()));
        }
        let derive = |label: &[u8]| {
            let mut mac = <HmacSha256 as Mac>::new_from_slice(secret).map_err(|_| "bad signing key".to_owned())?;
            mac.update(label);
            Ok::<[u8; 32], String>(mac.finalize().into_bytes().into())
        };
        let device = <HmacSha256 as Mac>::new_from_slice(&derive(DEVICE_KEY_LABEL)?)
            .map_err(|_| "bad derived key".to_owned())?;
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            full: validation(Stage::Full),
            password: validation(Stage::Password),
            authorize: validation(Stage::Authorize),
            device,
            oidc_access: derive(OIDC_ACCESS_KEY_LABEL)?,
        })
    }

    /// The key OpenID access tokens are signed with (see `oidc`).
    pub fn oidc_access_key(&self) -> &[u8; 32] {
        &self.oidc_access
    }

    fn device_mac(&self, payload: &str) -> HmacSha256 {
        let mut mac = self.device.clone();
        mac.update(payload.as_bytes());
        mac
    }

    /// A device cookie value for this user: `user.version.expiry.nonce.mac`.
    pub fn issue_device(&self, user_id: i64, version: i64, now: i64) -> Result<String, AppError> {
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).map_err(|_| AppError::internal())?;
        let payload = format!("{user_id}.{version}.{}.{}", now + DEVICE_TTL, URL_SAFE_NO_PAD.encode(nonce));
        let mac = URL_SAFE_NO_PAD.encode(self.device_mac(&payload).finalize().into_bytes());
        Ok(format!("{payload}.{mac}"))
    }

    /// The device a cookie value names, if it is ours, intact and unexpired.
    pub fn open_device(&self, value: &str, now: i64) -> Option<Device> {
        let (payload, mac) = value.rsplit_once('.')?;
        let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
        self.device_mac(payload).verify_slice(&mac).ok()?;
        let mut parts = payload.splitn(4, '.');
        let user_id = parts.next()?.parse().ok()?;
        let version = parts.next()?.parse().ok()?;
        let expires: i64 = parts.next()?.parse().ok()?;
        let nonce = parts.next()?;
        (expires > now).then(|| Device { user_id, version, nonce: nonce.to_owned() })
    }

    pub fn issue(
        &self,
        user_id: i64,
        stage: Stage,
        ver: i64,
        now: i64,
        ttl: i64,
        // A full session's refresh family and the time of its log-in.
        session: Option<(&str, i64)>,
    ) -> Result<String, AppError> {
        let claims = Claims {
            sub: user_id.to_string(),
            stage,
            ver,
            iat: now,
            exp: now + ttl,
            jti: uuid::Uuid::new_v4().to_string(),
            aud: stage.audience().to_owned(),
            iss: ISSUER.to_owned(),
            sid: session.map(|(family, _)| family.to_owned()),
            auth: session.map(|(_, auth_at)| auth_at),
            fac: None,
            nb: None,
        };
        self.sign(&claims)
    }

    /// A password-stage token naming the second factors on offer.
    pub fn issue_password_stage(
        &self,
        user_id: i64,
        ver: i64,
        now: i64,
        ttl: i64,
        (app, passkey): (bool, bool),
        new_browser: bool,
    ) -> Result<String, AppError> {
        let fac = [app.then_some("app"), passkey.then_some("passkey")].into_iter().flatten().collect::<Vec<_>>();
        let claims = Claims {
            sub: user_id.to_string(),
            stage: Stage::Password,
            ver,
            iat: now,
            exp: now + ttl,
            jti: uuid::Uuid::new_v4().to_string(),
            aud: Stage::Password.audience().to_owned(),
            iss: ISSUER.to_owned(),
            sid: None,
            auth: None,
            fac: Some(fac.join(" ")),
            nb: new_browser.then_some(true),
        };
        self.sign(&claims)
    }

    fn sign(&self, claims: &Claims) -> Result<String, AppError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding).map_err(|e| {
            tracing::error!(error = %e, "could not sign a token");
            AppError::internal()
        })
    }

    /// Decodes a token of the given stage. Any other algorithm (including
    /// `none`), a bad signature, another audience, or an expired token is
    /// refused.
    pub fn verify(&self, token: &str, stage: Stage, now: i64) -> Option<Claims> {
        let validation = match stage {
            Stage::Full => &self.full,
            Stage::Password => &self.password,
            Stage::Authorize => &self.authorize,
        };
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, validation).ok()?;
        let claims = data.claims;
        if claims.stage != stage || claims.exp + LEEWAY_SECONDS <= now || claims.iat > now + LEEWAY_SECONDS {
            return None;
        }
        Some(claims)
    }
}

/// The two cookies: a short-lived access token and the opaque refresh
/// token. Both HttpOnly, SameSite=Strict, Path=/.
#[derive(Debug, Clone)]
pub struct CookieConfig {
    pub secure: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieKind {
    Access,
    Refresh,
    /// This browser has logged in before (see `Device`).
    Device,
    /// The log-in, for the OpenID authorize step only (`Stage::Authorize`):
    /// `SameSite=Lax` and `Path=/oidc`, since an app's redirect to
    /// `/oidc/authorize` is a cross-site navigation that carries no Strict
    /// cookie.
    Authorize,
    /// A remembered browser's secret (`factors::remembered`): the second
    /// factor is not asked for again here while its entry counts.
    Remember,
}

impl CookieConfig {
    /// `__Host-` makes the browser refuse the cookie unless it is Secure,
    /// host-only and Path=/, so it is only usable with `secure`.
    pub fn name(&self, kind: CookieKind) -> &'static str {
        match (kind, self.secure) {
            (CookieKind::Access, true) => "__Host-access",
            (CookieKind::Access, false) => "access",
            (CookieKind::Refresh, true) => "__Host-refresh",
            (CookieKind::Refresh, false) => "refresh",
            (CookieKind::Device, true) => "__Host-device",
            (CookieKind::Device, false) => "device",
            // `__Secure-`, not `__Host-`: the path is /oidc, not /.
            (CookieKind::Authorize, true) => "__Secure-oidc_login",
            (CookieKind::Authorize, false) => "oidc_login",
            (CookieKind::Remember, true) => "__Host-remember",
            (CookieKind::Remember, false) => "remember",
        }
    }

    pub fn set(&self, kind: CookieKind, value: &str, max_age: i64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        let (same_site, path) = match kind {
            CookieKind::Authorize => ("Lax", "/oidc"),
            _ => ("Strict", "/"),
        };
        format!("{}={value}; HttpOnly; SameSite={same_site}; Path={path}; Max-Age={max_age}{secure}", self.name(kind))
    }

    pub fn clear(&self, kind: CookieKind) -> String {
        self.set(kind, "", 0)
    }

    /// The gate cookie's name: `__Secure-` when Secure (the prefix allows a
    /// `Domain`, unlike `__Host-`).
    pub fn gate_name(&self) -> &'static str {
        if self.secure { "__Secure-twofactor_gate" } else { "twofactor_gate" }
    }

    /// The gate cookie for one parent domain: sent to every host under it,
    /// `SameSite=Lax` so a link from mail or chat still carries it.
    pub fn set_gate(&self, domain: &str, value: &str, max_age: i64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!(
            "{}={value}; Domain={domain}; HttpOnly; SameSite=Lax; Path=/; Max-Age={max_age}{secure}",
            self.gate_name()
        )
    }

    pub fn clear_gate(&self, domain: &str) -> String {
        self.set_gate(domain, "", 0)
    }

    /// Every gate-cookie value a request carries (a browser may hold one per
    /// parent domain it matches).
    pub fn gate_values<'a>(&self, headers: &'a http::HeaderMap) -> Vec<&'a str> {
        let name = self.gate_name();
        headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|h| h.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .filter(|(n, v)| *n == name && !v.is_empty())
            .map(|(_, v)| v)
            .collect()
    }

    /// The cookie's value from a request's headers. A request carrying the
    /// cookie twice (a second one planted by a sibling site over plain
    /// http, say) gets neither: which one a server picks must not decide
    /// whose session it is.
    pub fn from_headers<'a>(&self, kind: CookieKind, headers: &'a http::HeaderMap) -> Option<&'a str> {
        let name = self.name(kind);
        let mut found = headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|h| h.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .filter(|(n, _)| *n == name);
        let (_, value) = found.next()?;
        if found.next().is_some() || value.is_empty() {
            return None;
        }
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: i64 = 1_800_000_000;

    fn keys() -> TokenKeys {
        TokenKeys::new(KEY).unwrap()
    }

    #[test]
    fn device_cookies_are_signed_bound_and_expire() {
        let k = keys();
        let value = k.issue_device(42, 3, NOW).unwrap();
        let device = k.open_device(&value, NOW + 10).unwrap();
        assert_eq!((device.user_id, device.version), (42, 3));
        assert_ne!(k.issue_device(42, 3, NOW).unwrap(), value, "a new nonce each time");
        assert_eq!(k.open_device(&value, NOW + DEVICE_TTL), None, "expired");
        // Another user id, a longer life or another nonce breaks the mac.
        let (_, rest) = value.split_once('.').unwrap();
        assert_eq!(k.open_device(&format!("43.{rest}"), NOW), None);
        let parts: Vec<&str> = value.split('.').collect();
        let later = format!("{}.{}.{}.{}.{}", parts[0], parts[1], NOW + 10 * DEVICE_TTL, parts[3], parts[4]);
        assert_eq!(k.open_device(&later, NOW), None);
        let newer = format!("{}.{}.{}.{}.{}", parts[0], 4, parts[2], parts[3], parts[4]);
        assert_eq!(k.open_device(&newer, NOW), None, "the version is signed too");
        assert_eq!(k.open_device("42.1.nonce", NOW), None);
        assert_eq!(k.open_device("", NOW), None);
        // Another signing key does not accept it.
        let other = TokenKeys::new(b"another-key-0123456789abcdef-0123").unwrap();
        assert_eq!(other.open_device(&value, NOW), None);
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(TokenKeys::new(b"short").is_err());
        assert!(TokenKeys::new(&[7u8; 31]).is_err());
    }

    #[test]
    fn round_trip_and_expiry() {
        let k = keys();
        let t = k.issue(7, Stage::Full, 3, NOW, 60, Some(("fam", NOW))).unwrap();
        let c = k.verify(&t, Stage::Full, NOW + 10).unwrap();
        assert_eq!((c.user_id(), c.ver, c.stage, c.sid.as_deref()), (Some(7), 3, Stage::Full, Some("fam")));
        assert!(k.verify(&t, Stage::Full, NOW + 60 + LEEWAY_SECONDS).is_none());
        assert!(k.verify(&t, Stage::Full, NOW + 60 + LEEWAY_SECONDS - 1).is_some());
    }

    #[test]
    fn stages_are_not_interchangeable() {
        let k = keys();
        let p = k.issue(7, Stage::Password, 1, NOW, PASSWORD_STAGE_TTL, None).unwrap();
        assert!(k.verify(&p, Stage::Full, NOW).is_none());
        let f = k.issue(7, Stage::Full, 1, NOW, 60, None).unwrap();
        assert!(k.verify(&f, Stage::Password, NOW).is_none());
    }

    #[test]
    fn tampered_tokens_are_refused() {
        let k = keys();
        let t = k.issue(7, Stage::Full, 1, NOW, 60, None).unwrap();
        let parts: Vec<&str> = t.split('.').collect();
        // alg: none, no signature
        let none = format!("{}.{}.", URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#), parts[1]);
        assert!(k.verify(&none, Stage::Full, NOW).is_none());
        // another algorithm with the same key
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &k.verify(&t, Stage::Full, NOW).unwrap(),
            &EncodingKey::from_secret(KEY),
        )
        .unwrap();
        assert!(k.verify(&hs512, Stage::Full, NOW).is_none());
        // another key
        let other = TokenKeys::new(b"another key that is long enough!!").unwrap();
        assert!(k.verify(&other.issue(7, Stage::Full, 1, NOW, 60, None).unwrap(), Stage::Full, NOW).is_none());
        // a payload edited to another user
        let payload = URL_SAFE_NO_PAD
            .encode(String::from_utf8(URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap().replace("\"7\"", "\"8\""));
        assert!(k.verify(&format!("{}.{}.{}", parts[0], payload, parts[2]), Stage::Full, NOW).is_none());
    }

    #[test]
    fn cookie_attributes() {
        use CookieKind::*;
        let plain = CookieConfig { secure: false };
        assert_eq!(plain.set(Access, "abc", 300), "access=abc; HttpOnly; SameSite=Strict; Path=/; Max-Age=300");
        let secure = CookieConfig { secure: true };
        assert!(secure.set(Refresh, "abc", 300).starts_with("__Host-refresh=abc; HttpOnly; SameSite=Strict; Path=/;"));
        assert!(secure.set(Access, "abc", 300).ends_with("; Secure"));
        let jar = |value: &'static str| {
            let mut h = http::HeaderMap::new();
            h.append(http::header::COOKIE, http::HeaderValue::from_static(value));
            h
        };
        assert_eq!(plain.from_headers(Access, &jar("x=1; access=tok; refresh=r")), Some("tok"));
        assert_eq!(plain.from_headers(Refresh, &jar("x=1; access=tok; refresh=r")), Some("r"));
        assert_eq!(plain.from_headers(Access, &jar("x=1; access=")), None);
        assert_eq!(secure.from_headers(Access, &jar("access=tok")), None);
        // Twice, in one header or across two: neither counts.
        assert_eq!(plain.from_headers(Access, &jar("access=mine; access=planted")), None);
        let mut two = jar("access=mine");
        two.append(http::header::COOKIE, http::HeaderValue::from_static("access=planted"));
        assert_eq!(plain.from_headers(Access, &two), None);
    }
}
