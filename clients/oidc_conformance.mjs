// Conformance-style checks of the OpenID provider (docs/OIDC.md) with
// `openid-client` (end2end's devDependency), an OpenID-certified relying
// party. Each check is named after the OpenID conformance suite's
// basic-OP module it mirrors (oidcc-…) and prints `ok NAME`, or `FAIL
// NAME:` with what was expected and what came back. Every check runs;
// any failure makes the exit status 1.
//
// The "browser" is Node's fetch with a cookie jar and no redirect
// following: it logs in over the API as clients/seed_flow.mjs does (two
// factors, TOTP from `otpauth`), then GETs the authorization URL that
// openid-client built and hands the 303's Location to openid-client.
//
// Usage: OIDC_CLIENTS='{"confidential": {"clientId", "clientSecret"},
//   "public": {…}, "logout": {…}}' node clients/oidc_conformance.mjs BASE
// where BASE is the server's PUBLIC_URL (the issuer) and the clients come
// from `server oidc client add … --json` (scripts/test-clients):
// confidential and logout with --consent skip, logout also with
// --post-logout-redirect-uri; all three with the redirect URI below.

import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';

const require = createRequire(new URL('../end2end/package.json', import.meta.url));
const OTPAuth = require('otpauth');
const client = await import(pathToFileURL(require.resolve('openid-client')).href);

const REDIRECT_URI = 'http://127.0.0.1:9/cb';
const POST_LOGOUT_REDIRECT_URI = 'http://127.0.0.1:9/logged-out';
const PASSWORD = 'correct horse battery staple';

const base = (process.argv[2] ?? '').replace(/\/$/, '');
const clients = JSON.parse(process.env.OIDC_CLIENTS ?? 'null');
if (!base || !clients?.confidential || !clients?.public || !clients?.logout) {
  console.error('usage: OIDC_CLIENTS=\'{"confidential":…,"public":…,"logout":…}\' node clients/oidc_conformance.mjs BASE');
  process.exit(2);
}

// ---------------------------------------------------------------------------
// Running and asserting

class CheckFailed extends Error {}

function assert(condition, message) {
  if (!condition) throw new CheckFailed(message);
}

function assertEqual(actual, expected, what) {
  assert(actual === expected, `${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
}

/** Runs `fn` and returns what it threw; fails if it did not throw. */
async function rejection(fn, what) {
  try {
    await fn();
  } catch (err) {
    if (err instanceof CheckFailed) throw err;
    return err;
  }
  throw new CheckFailed(`${what}: expected a refusal, but it succeeded`);
}

/** An error as one line: class, message, OAuth error and cause. */
function describe(err) {
  const parts = [`${err?.name ?? 'Error'}: ${err?.message ?? err}`];
  if (err?.error) parts.push(`error=${err.error}`);
  if (err?.error_description) parts.push(`(${err.error_description})`);
  if (err?.status) parts.push(`status=${err.status}`);
  if (err?.cause?.message) parts.push(`cause: ${err.cause.message}`);
  return parts.join(' ');
}

let failed = 0;

/** One named check: `ok NAME`, or `FAIL NAME: why` and the exit code 1. */
async function check(name, fn) {
  try {
    await fn();
    console.log(`ok ${name}`);
  } catch (err) {
    failed += 1;
    const why = err instanceof CheckFailed ? err.message : `unexpected ${describe(err)}`;
    console.error(`FAIL ${name}: ${why}`);
    if (!(err instanceof CheckFailed) && err?.stack) console.error(err.stack);
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------
// The browser: fetch, a cookie jar, no redirects followed

class Browser {
  /** name → { value, sameSite } as the server last set them. */
  jar = new Map();

  /**
   * One request; the answer's cookies go into the jar. `crossSite`: a
   * top-level navigation coming from the app (its redirect), which a
   * browser makes without the SameSite=Strict cookies.
   */
  async request(url, { method = 'GET', headers = {}, body, crossSite = false } = {}) {
    const all = { ...headers };
    const sent = [...this.jar].filter(([, c]) => !(crossSite && c.sameSite === 'strict'));
    if (sent.length) all.cookie = sent.map(([k, c]) => `${k}=${c.value}`).join('; ');
    const res = await fetch(new URL(url, base), { method, headers: all, body, redirect: 'manual' });
    for (const cookie of res.headers.getSetCookie()) {
      const [pair, ...attributes] = cookie.split(';').map((s) => s.trim());
      const at = pair.indexOf('=');
      const [name, value] = [pair.slice(0, at), pair.slice(at + 1)];
      const sameSite = (attributes.find((a) => /^samesite=/i.test(a)) ?? 'samesite=lax').slice(9).toLowerCase();
      if (value === '' || attributes.some((a) => /^max-age=0$/i.test(a))) this.jar.delete(name);
      else this.jar.set(name, { value, sameSite });
    }
    return res;
  }

  /** A JSON API call that must answer `expect`. */
  async api(method, path, { body, expect = 200 } = {}) {
    const headers = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await this.request(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    assert(res.status === expect, `${method} ${path} answered ${res.status}, expected ${expect}: ${text}`);
    return text ? JSON.parse(text) : null;
  }
}

/**
 * A new account with an authenticator app, logged in with two factors as
 * clients/seed_flow.mjs does it. Returns the browser, the account and
 * its recovery codes (each logs in once more, for a second browser).
 */
async function signUpWithTwoFactors() {
  const browser = new Browser();
  const email = `oidc-${randomBytes(4).toString('hex')}@example.com`;
  const name = 'OIDC Conformance';
  await browser.api('POST', '/api/authentication/register', { body: { email, name, password: PASSWORD }, expect: 201 });
  await browser.api('POST', '/api/authentication/log-in', { body: { email, password: PASSWORD } });
  const g = await browser.api('POST', '/api/2fa/generate');
  const totp = OTPAuth.URI.parse(g.otpauthUrl);
  const step = Math.floor(Date.now() / 1000 / 30);
  const codeAt = (s) => totp.generate({ timestamp: s * 30_000 });
  const on = await browser.api('POST', '/api/2fa/turn-on', { body: { twoFactorAuthenticationCode: codeAt(step) } });
  await browser.api('POST', '/api/authentication/log-out');
  const r = await browser.api('POST', '/api/authentication/log-in', { body: { email, password: PASSWORD } });
  assert(r.twoFactorRequired === true, `log-in after turning 2FA on: ${JSON.stringify(r)}`);
  // The next time step's code is accepted (one step of skew) and unspent.
  await browser.api('POST', '/api/2fa/authenticate', { body: { twoFactorAuthenticationCode: codeAt(step + 1) } });
  const me = await browser.api('GET', '/api/authentication');
  assert(me.email === email && me.isTwoFactorAuthenticationEnabled, `current user: ${JSON.stringify(me)}`);
  return { browser, email, name, recoveryCodes: on.recoveryCodes };
}

/** Another browser of the same account, logged in with a recovery code. */
async function logInAgain(email, recoveryCode) {
  const browser = new Browser();
  await browser.api('POST', '/api/authentication/log-in', { body: { email, password: PASSWORD } });
  await browser.api('POST', '/api/2fa/authenticate', { body: { recoveryCode } });
  return browser;
}

// ---------------------------------------------------------------------------
// The relying party: openid-client configurations and the code flow

/**
 * A configuration from discovery. `auth`: an openid-client ClientAuth
 * (default: client_secret_post with the secret, none without one).
 * `fetchHook` wraps every request openid-client makes.
 */
async function relyingParty({ clientId, clientSecret }, { auth, fetchHook, nonRepudiation = true } = {}) {
  const config = await client.discovery(new URL(base), clientId, clientSecret ?? undefined, auth, {
    execute: [client.allowInsecureRequests],
  });
  // Without this, openid-client trusts the (TLS) channel and never checks
  // an id token's signature against the JWKS.
  if (nonRepudiation) client.enableNonRepudiationChecks(config);
  if (fetchHook) config[client.customFetch] = fetchHook;
  return config;
}

/** The browser follows the app's redirect to `url`: status, Location, body. */
async function visit(browser, url) {
  const res = await browser.request(url, { crossSite: true });
  const { status, headers } = res;
  return { status, location: headers.get('location'), type: headers.get('content-type'), body: await res.text() };
}

/** Authorization request parameters, with PKCE S256 unless `pkce: false`. */
async function authorizationRequest({ scope = 'openid', nonce = true, pkce = true, extra = {} } = {}) {
  const params = { redirect_uri: REDIRECT_URI, scope, state: client.randomState(), ...extra };
  const checks = { expectedState: params.state, idTokenExpected: true };
  if (nonce) params.nonce = checks.expectedNonce = client.randomNonce();
  if (pkce) {
    checks.pkceCodeVerifier = client.randomPKCECodeVerifier();
    params.code_challenge = await client.calculatePKCECodeChallenge(checks.pkceCodeVerifier);
    params.code_challenge_method = 'S256';
  }
  return { params, checks };
}

/** The browser's trip to the authorize endpoint, which must send it back to the app. */
async function authorizeBack(config, browser, params) {
  const answer = await visit(browser, client.buildAuthorizationUrl(config, params));
  assert(
    answer.status === 303 && answer.location?.startsWith(`${REDIRECT_URI}?`),
    `authorize: expected a 303 to ${REDIRECT_URI}, got ${answer.status} ` +
      `Location=${answer.location} ${answer.body.slice(0, 200)}`,
  );
  return new URL(answer.location);
}

/** The whole code flow: authorize in `browser`, then the token request. */
async function codeFlow(config, browser, options = {}) {
  const { params, checks } = await authorizationRequest(options);
  const callback = await authorizeBack(config, browser, params);
  assert(callback.searchParams.has('code'), `authorize: no code in ${callback}`);
  const tokens = await client.authorizationCodeGrant(config, callback, { ...checks, ...options.checks });
  return { tokens, claims: tokens.claims(), callback, checks, params };
}

/** The parameters an authorize error brought back, after checking iss and state. */
function errorAtRedirect(callback, params) {
  const q = callback.searchParams;
  assertEqual(q.get('iss'), base, 'iss of the authorization response');
  assertEqual(q.get('state'), params.state, 'state of the authorization response');
  assert(!q.has('code'), `an error response carries no code: ${callback}`);
  return { error: q.get('error'), description: q.get('error_description') };
}

/**
 * A fetch for openid-client that notes what it sends to the token
 * endpoint: `seen.authorization` (the header) and `seen.body` (the form).
 */
function tokenRequestRecorder() {
  const seen = {};
  const hook = (url, init) => {
    if (String(url).endsWith('/oidc/token')) {
      seen.authorization = new Headers(init.headers).get('authorization');
      seen.body = new URLSearchParams(init.body);
    }
    return fetch(url, init);
  };
  return { seen, hook };
}

/** A raw userinfo request; the status, WWW-Authenticate and JSON body. */
async function userinfoRaw(init) {
  const res = await fetch(`${base}/oidc/userinfo`, init);
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: res.status, challenge: res.headers.get('www-authenticate'), json, text };
}

/** Userinfo must refuse this access token: 401 invalid_token. */
async function assertAccessTokenDead(accessToken, what) {
  const r = await userinfoRaw({ headers: { authorization: `Bearer ${accessToken}` } });
  assert(
    r.status === 401 && r.json?.error === 'invalid_token' && /invalid_token/.test(r.challenge ?? ''),
    `${what}: userinfo should answer 401 invalid_token, answered ${r.status} ${r.challenge ?? ''} ${r.text}`,
  );
}

/** The token endpoint must refuse `fn`'s request with invalid_grant. */
async function assertInvalidGrant(what, fn) {
  const err = await rejection(fn, what);
  assert(err instanceof client.ResponseBodyError && err.error === 'invalid_grant', `${what}: expected invalid_grant, got ${describe(err)}`);
}

/** A 400 page and no redirect: the app is not trusted with the answer. */
function assertErrorPage(answer, what) {
  assert(
    answer.status === 400 && answer.location === null && /text\/html/.test(answer.type ?? ''),
    `${what}: expected a 400 error page without Location, got ${answer.status} Location=${answer.location} (${answer.type})`,
  );
}

/** The standard id token claims this provider promises (docs/OIDC.md §3). */
function assertIdToken(claims, clientId, { nonce } = {}) {
  assertEqual(claims.iss, base, 'id token iss');
  assert(
    claims.aud === clientId || (Array.isArray(claims.aud) && claims.aud.includes(clientId)),
    `id token aud ${JSON.stringify(claims.aud)} does not name ${clientId}`,
  );
  assert(typeof claims.sub === 'string' && claims.sub.length > 0 && !claims.sub.includes('@'), `id token sub: ${claims.sub}`);
  assertEqual(claims.nonce, nonce, 'id token nonce');
  for (const c of ['iat', 'exp', 'auth_time']) assert(Number.isInteger(claims[c]), `id token ${c}: ${claims[c]}`);
  assert(claims.exp > Date.now() / 1000, `id token already expired: exp=${claims.exp}`);
  assertEqual(claims.acr, 'mfa', 'id token acr (two factors)');
  assert(Array.isArray(claims.amr) && claims.amr.includes('mfa'), `id token amr: ${JSON.stringify(claims.amr)}`);
}

// ---------------------------------------------------------------------------
// Set-up

const user = await signUpWithTwoFactors();
const rp = await relyingParty(clients.confidential);
const pub = await relyingParty(clients.public);
const { clientId } = clients.confidential;

// ---------------------------------------------------------------------------
// The checks

await check('oidcc-discovery-endpoint-verification', async () => {
  const m = rp.serverMetadata();
  assertEqual(m.issuer, base, 'issuer');
  assert(m.response_types_supported?.includes('code'), `response_types_supported: ${m.response_types_supported}`);
  assert(m.id_token_signing_alg_values_supported?.includes('RS256'), 'RS256 is advertised');
  assert(m.code_challenge_methods_supported?.includes('S256'), 'S256 is advertised');
  for (const e of ['authorization_endpoint', 'token_endpoint', 'userinfo_endpoint', 'jwks_uri', 'end_session_endpoint']) {
    assert(m[e]?.startsWith(`${base}/`), `${e}: ${m[e]}`);
  }
});

let sub; // the account's subject at the confidential client
let authTime; // when the browser's log-in was made (seconds)

await check('oidcc-server', async () => {
  const { tokens, claims, callback, checks } = await codeFlow(rp, user.browser);
  assertEqual(callback.searchParams.get('iss'), base, 'iss of the authorization response (RFC 9207)');
  assertIdToken(claims, clientId, { nonce: checks.expectedNonce });
  const header = JSON.parse(Buffer.from(tokens.id_token.split('.')[0], 'base64url'));
  assert(header.alg === 'RS256' && header.kid, `id token header: ${JSON.stringify(header)}`);
  assertEqual(tokens.token_type, 'bearer', 'token_type');
  assert(typeof tokens.access_token === 'string', 'an access token');
  sub = claims.sub;
  authTime = claims.auth_time;
});

await check('oidcc-scope-email', async () => {
  const { tokens, claims } = await codeFlow(rp, user.browser, { scope: 'openid email' });
  assertEqual(claims.sub, sub, 'sub is stable');
  assertEqual(claims.email, user.email, 'id token email');
  assertEqual(claims.email_verified, false, 'id token email_verified (a signed-up, unconfirmed address)');
  assertEqual(claims.name, undefined, 'id token name without the profile scope');
  const info = await client.fetchUserInfo(rp, tokens.access_token, claims.sub);
  assertEqual(info.email, user.email, 'userinfo email');
  assertEqual(info.email_verified, false, 'userinfo email_verified');
});

await check('oidcc-scope-profile', async () => {
  const { tokens, claims } = await codeFlow(rp, user.browser, { scope: 'openid profile' });
  assertEqual(claims.name, user.name, 'id token name');
  assertEqual(claims.preferred_username, user.email, 'id token preferred_username');
  assertEqual(claims.email, undefined, 'id token email without the email scope');
  const info = await client.fetchUserInfo(rp, tokens.access_token, claims.sub);
  assertEqual(info.name, user.name, 'userinfo name');
  assertEqual(info.preferred_username, user.email, 'userinfo preferred_username');
});

// One sign-in for the three ways of calling userinfo.
let userinfoTokens;
const userinfoSignIn = async () => (userinfoTokens ??= (await codeFlow(rp, user.browser, { scope: 'openid email' })).tokens);

await check('oidcc-userinfo-get', async () => {
  const tokens = await userinfoSignIn();
  let method;
  const seen = await relyingParty(clients.confidential, {
    fetchHook: (url, init) => ((method = init.method), fetch(url, init)),
  });
  const info = await client.fetchUserInfo(seen, tokens.access_token, sub);
  assertEqual(method, 'GET', 'method openid-client used');
  assertEqual(info.sub, sub, 'userinfo sub');
  assertEqual(info.email, user.email, 'userinfo email');
});

await check('oidcc-userinfo-post-header', async () => {
  const tokens = await userinfoSignIn();
  const endpoint = new URL(rp.serverMetadata().userinfo_endpoint);
  const res = await client.fetchProtectedResource(rp, tokens.access_token, endpoint, 'POST');
  const text = await res.text();
  assertEqual(res.status, 200, `POST userinfo with Authorization: Bearer (${text})`);
  const info = JSON.parse(text);
  assertEqual(info.sub, sub, 'userinfo sub');
  assertEqual(info.email, user.email, 'userinfo email');
});

await check('oidcc-userinfo-post-body', async () => {
  const tokens = await userinfoSignIn();
  const r = await userinfoRaw({ method: 'POST', body: new URLSearchParams({ access_token: tokens.access_token }) });
  assertEqual(r.status, 200, `POST userinfo with access_token in the form (${r.text})`);
  assertEqual(r.json.sub, sub, 'userinfo sub');
  assertEqual(r.json.email, user.email, 'userinfo email');
});

await check('oidcc-ensure-request-without-nonce-succeeds-for-code-flow', async () => {
  const { params, claims } = await codeFlow(rp, user.browser, { nonce: false });
  assert(!('nonce' in params), 'the request had no nonce');
  assertIdToken(claims, clientId, { nonce: undefined });
});

await check('oidcc-codereuse', async () => {
  const { tokens, callback, checks } = await codeFlow(rp, user.browser);
  await client.fetchUserInfo(rp, tokens.access_token, sub); // alive before the reuse
  await assertInvalidGrant('the code used a second time', () => client.authorizationCodeGrant(rp, callback, checks));
  await assertAccessTokenDead(tokens.access_token, 'the access token from the first use, after the code was reused');
});

await check('oidcc-ensure-redirect-uri-in-authorization-request', async () => {
  const { params } = await authorizationRequest();
  const url = client.buildAuthorizationUrl(rp, params);
  url.searchParams.delete('redirect_uri');
  assertErrorPage(await visit(user.browser, url), 'authorize without redirect_uri');
});

await check('oidcc-ensure-registered-redirect-uri', async () => {
  const { params } = await authorizationRequest({ extra: { redirect_uri: 'http://127.0.0.1:9/not-registered' } });
  const answer = await visit(user.browser, client.buildAuthorizationUrl(rp, params));
  assertErrorPage(answer, 'authorize with an unregistered redirect_uri');
});

await check('oidcc-prompt-none-not-logged-in', async () => {
  const { params, checks } = await authorizationRequest({ extra: { prompt: 'none' } });
  const callback = await authorizeBack(rp, new Browser(), params);
  assertEqual(errorAtRedirect(callback, params).error, 'login_required', 'error');
  // openid-client reads it as the error it is.
  const err = await rejection(() => client.authorizationCodeGrant(rp, callback, checks), 'openid-client on login_required');
  assert(err instanceof client.AuthorizationResponseError && err.error === 'login_required', describe(err));
});

await check('oidcc-prompt-none-logged-in', async () => {
  const { claims } = await codeFlow(rp, user.browser, { extra: { prompt: 'none' } });
  assertEqual(claims.sub, sub, 'sub');
});

await check('oidcc-max-age-1 (max_age=0, real clock)', async () => {
  // max_age=0 asks for a log-in made this very second: wait until the
  // browser's log-in is at least a second old, so it is too old.
  const wait = (authTime + 1) * 1000 - Date.now();
  if (wait > 0) await sleep(wait + 100);
  const { params } = await authorizationRequest({ extra: { max_age: '0' } });
  const answer = await visit(user.browser, client.buildAuthorizationUrl(rp, params));
  assert(
    answer.status === 303 && answer.location?.startsWith('/login?rd='),
    `expected a 303 to /login?rd=…, got ${answer.status} Location=${answer.location}`,
  );
  const rd = new URL(new URLSearchParams(answer.location.slice('/login?'.length)).get('rd'));
  assertEqual(`${rd.origin}${rd.pathname}`, `${base}/oidc/authorize`, 'rd leads back to the authorization request');
  assertEqual(rd.searchParams.get('state'), params.state, "rd keeps the request's state");
  assertEqual(rd.searchParams.get('client_id'), clientId, "rd keeps the request's client_id");
});

await check('oidcc-max-age-10000', async () => {
  const { claims } = await codeFlow(rp, user.browser, { extra: { max_age: '10000' }, checks: { maxAge: 10000 } });
  assertEqual(claims.auth_time, authTime, 'auth_time is the log-in time');
});

await check('oidcc-refresh-token', async () => {
  const { tokens, claims } = await codeFlow(rp, user.browser, { scope: 'openid email offline_access' });
  assert(typeof tokens.refresh_token === 'string', `no refresh token with offline_access: ${Object.keys(tokens)}`);
  const refreshed = await client.refreshTokenGrant(rp, tokens.refresh_token);
  assert(refreshed.refresh_token && refreshed.refresh_token !== tokens.refresh_token, 'the refresh token was rotated');
  assert(refreshed.access_token !== tokens.access_token, 'a new access token');
  const again = refreshed.claims();
  assertEqual(again?.sub, claims.sub, 'sub of the refreshed id token');
  assertEqual(again.email, user.email, 'email claim again in the refreshed id token');
  assertEqual(again.auth_time, claims.auth_time, 'auth_time of the refreshed id token');
  await client.fetchUserInfo(rp, refreshed.access_token, claims.sub);
  // The spent refresh token is refused, and that revokes the whole grant.
  await assertInvalidGrant('the spent refresh token', () => client.refreshTokenGrant(rp, tokens.refresh_token));
  await assertInvalidGrant('the newest refresh token after the reuse', () => client.refreshTokenGrant(rp, refreshed.refresh_token));
  await assertAccessTokenDead(refreshed.access_token, 'the refreshed access token after the reuse');
});

await check('oidcc-ensure-pkce-required-for-public', async () => {
  const { params } = await authorizationRequest({ pkce: false });
  const callback = await authorizeBack(pub, user.browser, params);
  assertEqual(errorAtRedirect(callback, params).error, 'invalid_request', 'error for a public client without PKCE');
  // With S256 the public client (token endpoint auth "none") signs in.
  const { seen, hook } = tokenRequestRecorder();
  const flow = await codeFlow(await relyingParty(clients.public, { fetchHook: hook }), user.browser);
  assertEqual(seen.authorization, null, 'Authorization header of the public client');
  assert(!seen.body.has('client_secret') && seen.body.has('code_verifier'), `public client's token request: ${seen.body}`);
  assertIdToken(flow.claims, clients.public.clientId, { nonce: flow.checks.expectedNonce });
});

await check('oidcc-ensure-plain-pkce-refused', async () => {
  const verifier = client.randomPKCECodeVerifier();
  const extra = { code_challenge: verifier, code_challenge_method: 'plain' };
  const { params } = await authorizationRequest({ pkce: false, extra });
  const callback = await authorizeBack(pub, user.browser, params);
  assertEqual(errorAtRedirect(callback, params).error, 'invalid_request', 'error for code_challenge_method=plain');
});

/** The code flow with this client authentication; the token request's header and body. */
async function signInWith(auth) {
  const { seen, hook } = tokenRequestRecorder();
  const config = await relyingParty(clients.confidential, { auth, fetchHook: hook });
  const { claims, checks } = await codeFlow(config, user.browser);
  assertIdToken(claims, clientId, { nonce: checks.expectedNonce });
  assert(seen.body, 'the token request was seen');
  return seen;
}

await check('oidcc-client-secret-basic', async () => {
  const sent = await signInWith(client.ClientSecretBasic(clients.confidential.clientSecret));
  assert(/^Basic /.test(sent.authorization ?? ''), `Authorization: Basic was sent: ${sent.authorization}`);
  assert(!sent.body.has('client_secret'), 'no client_secret in the body');
});

await check('oidcc-client-secret-post', async () => {
  const sent = await signInWith(client.ClientSecretPost(clients.confidential.clientSecret));
  assertEqual(sent.authorization, null, 'Authorization header');
  assertEqual(sent.body.get('client_secret'), clients.confidential.clientSecret, 'client_secret in the body');
  assertEqual(sent.body.get('client_id'), clientId, 'client_id in the body');
});

await check('oidcc-revocation', async () => {
  const { tokens } = await codeFlow(rp, user.browser, { scope: 'openid offline_access' });
  await client.tokenRevocation(rp, tokens.access_token);
  await assertAccessTokenDead(tokens.access_token, 'the revoked access token');
  await assertInvalidGrant('the refresh token of a revoked grant', () => client.refreshTokenGrant(rp, tokens.refresh_token));
  // RFC 7009 2.2: an unknown token is answered 200 too.
  await client.tokenRevocation(rp, 'not-a-token');
});

await check('oidcc-introspection', async () => {
  const { tokens, claims } = await codeFlow(rp, user.browser, { scope: 'openid email offline_access' });
  const access = await client.tokenIntrospection(rp, tokens.access_token);
  assertEqual(access.active, true, 'active (access token)');
  assertEqual(access.client_id, clientId, 'client_id');
  assertEqual(access.sub, claims.sub, 'sub');
  assertEqual(access.scope, 'openid email offline_access', 'scope');
  assertEqual(access.token_type?.toLowerCase(), 'bearer', 'token_type');
  assert(access.exp > Date.now() / 1000, `exp: ${access.exp}`);
  const refresh = await client.tokenIntrospection(rp, tokens.refresh_token);
  assertEqual(refresh.active, true, 'active (refresh token)');
  assertEqual((await client.tokenIntrospection(rp, 'not-a-token')).active, false, 'active (garbage)');
  await client.tokenRevocation(rp, tokens.refresh_token);
  const after = await client.tokenIntrospection(rp, tokens.access_token);
  assertEqual(after.active, false, 'active (access token after revocation)');
  // Public clients may not introspect.
  const err = await rejection(() => client.tokenIntrospection(pub, 'not-a-token'), 'introspection by a public client');
  assert(err instanceof client.ResponseBodyError && err.error === 'invalid_client', describe(err));
});

await check('oidcc-rp-initiated-logout', async () => {
  // A browser of its own (a recovery code), so the others stay logged in.
  const browser = await logInAgain(user.email, user.recoveryCodes[0]);
  const config = await relyingParty(clients.logout);
  const { tokens } = await codeFlow(config, browser, { scope: 'openid offline_access' });
  const cookiesBefore = new Map(browser.jar);
  const state = client.randomState();
  const url = client.buildEndSessionUrl(config, {
    id_token_hint: tokens.id_token,
    post_logout_redirect_uri: POST_LOGOUT_REDIRECT_URI,
    state,
  });
  const answer = await visit(browser, url);
  assertEqual(answer.status, 303, `end session: ${answer.body.slice(0, 200)}`);
  const back = new URL(answer.location);
  assertEqual(`${back.origin}${back.pathname}`, POST_LOGOUT_REDIRECT_URI, 'sent back to the registered post-logout URI');
  assertEqual(back.searchParams.get('state'), state, 'state');
  assert(!browser.jar.has('access') && !browser.jar.has('refresh'), `cookies left after log-out: ${[...browser.jar.keys()]}`);
  await browser.api('GET', '/api/authentication', { expect: 401 });
  // Not only the cookies: the log-in itself is over.
  browser.jar = cookiesBefore;
  await browser.api('GET', '/api/authentication', { expect: 401 });
  // And the app's sign-in with it (docs/OIDC.md §3).
  await assertAccessTokenDead(tokens.access_token, "the app's access token after the log-out");
  await assertInvalidGrant("the app's refresh token after the log-out", () => client.refreshTokenGrant(config, tokens.refresh_token));
  // The other browser's log-in is untouched.
  await user.browser.api('GET', '/api/authentication');
});

await check('rp-id_token-bad-sig-rs256 (signature checks are on)', async () => {
  /** Flips one bit of a character in the middle of the id token's signature. */
  const tamper = (jwt) => {
    const [h, p, s] = jwt.split('.');
    const i = Math.floor(s.length / 2);
    const flipped = s[i] === 'A' ? 'B' : 'A';
    return `${h}.${p}.${s.slice(0, i)}${flipped}${s.slice(i + 1)}`;
  };
  const tampering = async (url, init) => {
    const res = await fetch(url, init);
    if (String(url) !== rp.serverMetadata().token_endpoint || res.status !== 200) return res;
    const body = await res.json();
    body.id_token = tamper(body.id_token);
    return new Response(JSON.stringify(body), { status: 200, headers: { 'content-type': 'application/json' } });
  };
  const strict = await relyingParty(clients.confidential, { fetchHook: tampering });
  const err = await rejection(() => codeFlow(strict, user.browser), 'a tampered id token');
  const why = err?.cause?.message ?? err?.message;
  assert(/signature verification failed/.test(why), `expected a signature failure, got ${describe(err)}`);
  // The control: the same tampering passes without enableNonRepudiationChecks,
  // so it is that call (and the JWKS) that caught it.
  const lax = await relyingParty(clients.confidential, { fetchHook: tampering, nonRepudiation: false });
  await codeFlow(lax, user.browser);
});

if (failed) {
  console.error(`openid-client: ${failed} check(s) failed`);
  process.exit(1);
}
console.log('openid-client: every check passed');
