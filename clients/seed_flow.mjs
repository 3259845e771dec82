// The seed's two-factor flow, driven by Node's own `fetch` (undici), the
// way a client written for the NestJS original calls the API (only the
// /api prefix is new).
//
// `fetch(url, { method: 'POST' })` sends `Content-Length: 0`: that is what
// /2fa/generate, /authentication/refresh and /authentication/log-out get
// here, exactly where the seed sends no body. TOTP codes come from the
// `otpauth` package (end2end's devDependency), reading the otpauth:// URI
// the server returns.
//
// Usage: node clients/seed_flow.mjs http://127.0.0.1:PORT
// Exits non-zero, naming the step, on any unexpected answer.

import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';

const require = createRequire(new URL('../end2end/package.json', import.meta.url));
const OTPAuth = require('otpauth');

const base = (process.argv[2] ?? '').replace(/\/$/, '');
if (!base) {
  console.error('usage: node clients/seed_flow.mjs http://127.0.0.1:PORT');
  process.exit(2);
}
const PASSWORD = 'correct horse battery staple';

function fail(message) {
  console.error(`node: ${message}`);
  process.exit(1);
}

function check(condition, message) {
  if (!condition) fail(message);
}

/** A cookie jar: name → value, as the server last set them. */
const jar = new Map();

function remember(res) {
  for (const cookie of res.headers.getSetCookie()) {
    const [pair, ...attributes] = cookie.split(';').map((s) => s.trim());
    const at = pair.indexOf('=');
    const name = pair.slice(0, at);
    const value = pair.slice(at + 1);
    const cleared = attributes.some((a) => /^max-age=0$/i.test(a));
    if (cleared || value === '') jar.delete(name);
    else jar.set(name, value);
  }
}

/**
 * One request; without `body` nothing is sent (fetch then sends
 * Content-Length: 0 for a POST, and no Content-Type).
 */
async function call(step, method, path, { body, expect = 200, raw } = {}) {
  const headers = { accept: 'application/json' };
  if (jar.size) headers.cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  const init = { method, headers };
  if (raw !== undefined) {
    headers['content-type'] = 'application/json';
    init.body = raw;
  } else if (body !== undefined) {
    headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(base + path, init);
  remember(res);
  const text = await res.text();
  if (res.status !== expect) fail(`${step}: ${method} ${path} answered ${res.status}, expected ${expect}: ${text}`);
  console.log(`node: ${step}: ${method} ${path} -> ${res.status}`);
  return text ? JSON.parse(text) : null;
}

const email = `node-${randomBytes(4).toString('hex')}@example.com`;

const user = await call('register', 'POST', '/api/authentication/register', {
  body: { email, name: 'Node Client', password: PASSWORD },
  expect: 201,
});
check(user.email === email && user.isTwoFactorAuthenticationEnabled === false, `register: ${JSON.stringify(user)}`);

let r = await call('log in', 'POST', '/api/authentication/log-in', { body: { email, password: PASSWORD } });
check(r.twoFactorRequired === false, `log in: ${JSON.stringify(r)}`);
check(jar.has('access') && jar.has('refresh'), 'log-in set the session cookies');

// No body, as the seed sends it: fetch makes it Content-Length: 0.
const g = await call('generate (no body)', 'POST', '/api/2fa/generate');
const totp = OTPAuth.URI.parse(g.otpauthUrl);
check(totp instanceof OTPAuth.TOTP, `generate: not a TOTP URI: ${g.otpauthUrl}`);
check(totp.secret.base32 === g.secret, 'generate: the URI carries the secret');
check(totp.algorithm === 'SHA1' && totp.digits === 6 && totp.period === 30, `generate: ${g.otpauthUrl}`);

// The code of the current time step turns 2FA on; that step is now spent.
const enrolledAt = Math.floor(Date.now() / 1000 / 30);
const codeAt = (step) => totp.generate({ timestamp: step * 30_000 });
const on = await call('turn on', 'POST', '/api/2fa/turn-on', {
  body: { twoFactorAuthenticationCode: codeAt(enrolledAt) },
});
check(on.user.isTwoFactorAuthenticationEnabled === true && on.recoveryCodes.length === 10, `turn on: ${JSON.stringify(on)}`);

await call('log out (no body)', 'POST', '/api/authentication/log-out');
check(!jar.has('access'), 'log-out cleared the access cookie');

r = await call('log in again', 'POST', '/api/authentication/log-in', { body: { email, password: PASSWORD } });
check(r.twoFactorRequired === true, `log in again: ${JSON.stringify(r)}`);
await call('current user before the code', 'GET', '/api/authentication', { expect: 401 });

// Codes are single use per time step: the next step's code (accepted within
// the server's one step of clock skew) is fresh, with no waiting.
const code = codeAt(enrolledAt + 1);
check(code !== codeAt(enrolledAt), "the next step's code equals this step's (one in a million): run again");
let me = await call('authenticate', 'POST', '/api/2fa/authenticate', { body: { twoFactorAuthenticationCode: code } });
check(me.email === email && me.isTwoFactorAuthenticationEnabled === true, `authenticate: ${JSON.stringify(me)}`);

me = await call('current user', 'GET', '/api/authentication');
check(me.email === email && !('secret' in me), `current user: ${JSON.stringify(me)}`);

const before = jar.get('refresh');
await call('refresh (no body)', 'POST', '/api/authentication/refresh');
check(jar.get('refresh') && jar.get('refresh') !== before, 'refresh rotated the refresh token');
await call('current user after refresh', 'GET', '/api/authentication');

await call('log out (no body)', 'POST', '/api/authentication/log-out');
await call('current user after log-out', 'GET', '/api/authentication', { expect: 401 });

// The other way past the second step: a recovery code, then log out
// everywhere, again without a body.
await call('log in for a recovery code', 'POST', '/api/authentication/log-in', { body: { email, password: PASSWORD } });
await call('authenticate with a recovery code', 'POST', '/api/2fa/authenticate', {
  body: { recoveryCode: on.recoveryCodes[0] },
});
await call('log out everywhere (no body)', 'POST', '/api/authentication/log-out-everywhere');
await call('current user after log-out-everywhere', 'GET', '/api/authentication', { expect: 401 });

// An endpoint with fields answers a field error for an empty body, and a
// body that is not JSON a clear 400.
const err = await call('log in with no body', 'POST', '/api/authentication/log-in', { expect: 400 });
check(err.fields && 'email' in err.fields, `log in with no body: ${JSON.stringify(err)}`);
await call('log in with malformed JSON', 'POST', '/api/authentication/log-in', { raw: '{not json', expect: 400 });
console.log('node: the seed flow passed');
