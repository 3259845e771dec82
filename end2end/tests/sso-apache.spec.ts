// Named to run after passkeys.spec.ts and security-page.spec.ts (the
// suite runs one file after another, in name order, against one server):
// every log-in page opened with JavaScript starts a passkey ceremony
// (autofill), and those count against the test machine's one address;
// the passkey tests need that budget.
// A real OpenID Connect app: Apache with Debian's mod_auth_openidc
// (end2end/apache-oidc/) protects /protected/ and signs people in through
// the portal's provider (docs/OIDC.md). A visitor opening it logs in on the
// portal with password and code and lands on a page listing the claims
// Apache received; Apache's log-out ends the portal log-in too
// (RP-Initiated Logout with id_token_hint) and comes back to the app.
import { test, expect, Browser, BrowserContext, Page } from '@playwright/test';
import { ChildProcess, spawn, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request as forward, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { enrolledAccount, freePort, logInHere, serverCommand } from './helpers';

const portalPort = Number(process.env.E2E_PORT ?? 3000);
const portal = `http://auth.example.test:${portalPort}`;
const repo = join(__dirname, '../..');
const apacheBin = process.env.APACHE_BIN ?? '/usr/sbin/apache2';
const apacheModules = process.env.APACHE_MODULES ?? '/usr/lib/apache2/modules';
const installed = existsSync(apacheBin) && existsSync(join(apacheModules, 'mod_auth_openidc.so'));
// scripts/setup --browser installs both; scripts/test sets CI_REQUIRE_PROXIES
// so that a missing Apache fails there instead of skipping.
test.skip(!installed && !process.env.CI_REQUIRE_PROXIES, 'apache2 or mod_auth_openidc is missing: run ./scripts/setup --browser');

let apache: ChildProcess | undefined;
let resolver: Server | undefined;
let serverRoot = '';
let app = '';
let clientId = '';
/** The calls Apache made to the portal itself, with the answers' status
 *  ("GET /oidc/jwks 200", …), in order. */
const backChannel: string[] = [];

test.beforeAll(async () => {
  if (!installed) throw new Error(`${apacheBin} or mod_auth_openidc.so is missing: run ./scripts/setup --browser`);
  const port = await freePort();
  app = `http://app.example.test:${port}`;
  const client = JSON.parse(
    serverCommand([
      'oidc', 'client', 'add', '--name', 'Reports',
      '--redirect-uri', `${app}/protected/redirect_uri`,
      '--post-logout-redirect-uri', `${app}/`,
      '--consent', 'skip', '--json',
    ]),
  ) as { clientId: string; clientSecret: string };
  clientId = client.clientId;

  // Chromium maps *.example.test to this machine; Apache's own calls to
  // the portal (discovery, JWKS, token, userinfo, revocation) get the same
  // through this forward proxy (OIDCOutgoingProxy), which also notes them.
  resolver = createServer((req, res) => {
    let target: URL;
    try {
      target = new URL(req.url ?? '');
    } catch {
      res.writeHead(400).end();
      return;
    }
    if (target.protocol !== 'http:' || !target.hostname.endsWith('.example.test')) {
      res.writeHead(403).end();
      return;
    }
    const headers = { ...req.headers };
    delete headers['proxy-connection'];
    const upstream = forward(
      { host: '127.0.0.1', port: Number(target.port || 80), method: req.method, path: target.pathname + target.search, headers },
      (answer) => {
        backChannel.push(`${req.method} ${target.pathname} ${answer.statusCode}`);
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => {
      backChannel.push(`${req.method} ${target.pathname} unreachable`);
      res.writeHead(502).end();
    });
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => resolver!.listen(0, '127.0.0.1', resolve));

  serverRoot = mkdtempSync(join(tmpdir(), 'oidc-apache-'));
  // Apache started as root serves as www-data, which must read the pages.
  chmodSync(serverRoot, 0o755);
  cpSync(join(__dirname, '../apache-oidc/htdocs'), join(serverRoot, 'htdocs'), { recursive: true });
  const asRoot = process.getuid?.() === 0;
  const conf = readFileSync(join(__dirname, '../apache-oidc/httpd.conf'), 'utf8')
    .replaceAll('@ROOT@', serverRoot)
    .replaceAll('@MODULES@', apacheModules)
    .replaceAll('@USER@', asRoot ? 'www-data' : `#${process.getuid?.()}`)
    .replaceAll('@GROUP@', asRoot ? 'www-data' : `#${process.getgid?.()}`)
    .replaceAll('@PORT@', String(port))
    .replaceAll('@PORTAL@', portal)
    .replaceAll('@RESOLVER@', `127.0.0.1:${(resolver.address() as AddressInfo).port}`)
    .replaceAll('@CLIENT_ID@', client.clientId)
    .replaceAll('@CLIENT_SECRET@', client.clientSecret)
    .replaceAll('@PASSPHRASE@', randomBytes(24).toString('hex'));
  const confPath = join(serverRoot, 'httpd.conf');
  writeFileSync(confPath, conf);
  // A bare environment: curl inside mod_auth_openidc would honour a
  // no_proxy or http_proxy of the machine.
  const env = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C' };
  execFileSync(apacheBin, ['-t', '-f', confPath], { env, stdio: 'ignore' });
  apache = spawn(apacheBin, ['-f', confPath, '-DFOREGROUND'], { env, stdio: 'ignore' });
  for (let i = 0; i < 200; i++) {
    try {
      await fetch(`http://127.0.0.1:${port}/`);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  throw new Error('Apache did not start');
});

test.afterAll(async () => {
  if (apache && apache.exitCode === null) {
    const stopped = new Promise((resolve) => apache!.once('exit', resolve));
    apache.kill('SIGTERM');
    await stopped;
  }
  await new Promise<void>((resolve) => (resolver ? resolver.close(() => resolve()) : resolve()));
  if (clientId) serverCommand(['oidc', 'client', 'remove', clientId]);
  if (serverRoot) rmSync(serverRoot, { recursive: true, force: true });
});

test.afterEach(async ({}, testInfo) => {
  if (testInfo.status === testInfo.expectedStatus || !serverRoot) return;
  for (const log of ['error.log', 'access.log']) {
    const path = join(serverRoot, log);
    if (existsSync(path)) await testInfo.attach(`apache ${log}`, { path, contentType: 'text/plain' });
  }
  await testInfo.attach('apache back channel', { body: backChannel.join('\n'), contentType: 'text/plain' });
});

/** An account with 2FA on, in a group. */
async function accountInGroup(browser: Browser, tag: string): Promise<{ email: string; secret: string }> {
  const account = await enrolledAccount(browser, portal, tag);
  serverCommand(['user', 'groups', account.email, 'add', 'reporters']);
  return account;
}

/** What the protected page shows for one claim. */
function claim(page: Page, name: string) {
  return page.locator(`[data-claim="${name}"]`);
}

/** The portal's answer about this browser's log-in (200 or 401), asked in
 *  a tab of the same browser: the API request context would resolve
 *  auth.example.test without Chromium's mapping. */
async function portalSession(context: BrowserContext): Promise<number> {
  const tab = await context.newPage();
  const answer = await tab.goto(`${portal}/api/authentication`);
  await tab.close();
  return answer?.status() ?? 0;
}

for (const javaScriptEnabled of [true, false]) {
  test(`Apache with mod_auth_openidc signs in through the portal with password and code, and its log-out ends the portal log-in (JavaScript ${javaScriptEnabled ? 'on' : 'off'})`, async ({ browser }) => {
    const { email, secret } = await accountInGroup(browser, javaScriptEnabled ? 'apache' : 'apachenojs');
    const context = await browser.newContext({ javaScriptEnabled });
    const page = await context.newPage();
    const callsBefore = backChannel.length;

    // Apache sends the browser to the portal, which asks for the log-in.
    const authorize = page.waitForRequest((r) => r.url().startsWith(`${portal}/oidc/authorize?`));
    await page.goto(`${app}/protected/`);
    const request = new URL((await authorize).url()).searchParams;
    expect(request.get('client_id')).toBe(clientId);
    expect(request.get('response_type')).toBe('code');
    expect(request.get('scope')).toBe('openid email profile groups');
    expect(request.get('code_challenge_method')).toBe('S256');
    expect(request.get('redirect_uri')).toBe(`${app}/protected/redirect_uri`);
    await expect(page).toHaveURL(new RegExp(`^${portal}/login\\?rd=`));
    await logInHere(page, email, secret);

    // Back on the page asked for, with the claims Apache received.
    await expect(page).toHaveURL(`${app}/protected/`);
    await expect(page.getByRole('heading', { name: 'Signed in to the reports app' })).toBeVisible();
    await expect(claim(page, 'email')).toHaveText(email);
    const sub = (await claim(page, 'sub').innerText()).trim();
    expect(sub).toMatch(/^[A-Za-z0-9_-]{16,}$/);
    expect(sub).not.toContain(email);
    await expect(claim(page, 'REMOTE_USER')).toHaveText(sub);
    await expect(claim(page, 'iss')).toHaveText(portal);
    await expect(claim(page, 'aud')).toHaveText(clientId);
    // Signed up and never confirmed.
    await expect(claim(page, 'email_verified')).toHaveText('0');
    await expect(claim(page, 'name')).toHaveText('Ann Example');
    await expect(claim(page, 'preferred_username')).toHaveText(email);
    await expect(claim(page, 'groups')).toHaveText('reporters');
    await expect(claim(page, 'acr')).toHaveText('mfa');
    expect((await claim(page, 'amr').innerText()).split(',').sort()).toEqual(['mfa', 'otp', 'pwd']);
    const idToken = JSON.parse(await page.locator('[data-json="id_token"]').innerText());
    expect(idToken).toMatchObject({ iss: portal, aud: clientId, azp: clientId, sub, email, acr: 'mfa' });
    expect(idToken.nonce).toBe(request.get('nonce'));
    expect(typeof idToken.sid).toBe('string');
    const userinfo = JSON.parse(await page.locator('[data-json="userinfo"]').innerText());
    expect(userinfo).toMatchObject({ sub, email, email_verified: false, name: 'Ann Example', groups: ['reporters'] });
    // Apache did the back-channel part itself. It keeps discovery and the
    // JWKS for a while, so the second test may not fetch them again.
    expect(backChannel).toEqual(expect.arrayContaining(['GET /.well-known/openid-configuration 200', 'GET /oidc/jwks 200']));
    expect(backChannel.slice(callsBefore)).toEqual(expect.arrayContaining(['POST /oidc/token 200', 'GET /oidc/userinfo 200']));
    expect(await portalSession(context)).toBe(200);

    // Apache's log-out: the portal's end_session_endpoint with the id token
    // as hint ends the log-in at once (no question) and sends the browser
    // back to the address registered for after log-out.
    const endSession = page.waitForRequest((r) => r.url().startsWith(`${portal}/oidc/logout?`));
    await page.getByRole('link', { name: 'Log out' }).click();
    const asked = new URL((await endSession).url());
    expect(asked.searchParams.get('post_logout_redirect_uri')).toBe(`${app}/`);
    expect(asked.searchParams.get('id_token_hint')).toBeTruthy();
    await expect(page).toHaveURL(`${app}/`);
    await expect(page.getByRole('heading', { name: 'Reports app' })).toBeVisible();
    // It also revoked its access token (revocation_endpoint).
    expect(backChannel.slice(callsBefore)).toContain('POST /oidc/revoke 200');
    expect(await portalSession(context)).toBe(401);
    await page.goto(`${portal}/`);
    await expect(page).toHaveURL(new RegExp(`^${portal}/login`));
    await expect(page.getByLabel('Password')).toBeVisible();

    // Both log-ins are over: the app asks for a new one.
    await page.goto(`${app}/protected/`);
    await expect(page).toHaveURL(new RegExp(`^${portal}/login\\?rd=`));
    await context.close();
  });
}
