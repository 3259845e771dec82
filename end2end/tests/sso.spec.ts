// Named to run after passkeys.spec.ts and security-page.spec.ts (the
// suite runs one file after another, in name order, against one server):
// every log-in page opened with JavaScript starts a passkey ceremony
// (autofill), and those count against the test machine's one address;
// the passkey tests need that budget.
// Single sign-on in a real browser: two small apps (relying parties
// written here, each a few routes: start a sign-in, receive the code,
// log out) registered with the portal by the operator's CLI. A person
// signs in to the first app with password and code (and agrees to what
// it asks), then to the second without logging in again; prompt=none
// without a log-in comes back as login_required; a password-only account
// is taken to turn on two factors first; the app's log-out ends the
// portal log-in; an app that refuses remembered browsers has a
// remembered log-in show its second factor first. Each with and without
// JavaScript.
import { test, expect, Page } from '@playwright/test';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, Server } from 'node:http';
import { AddressInfo } from 'node:net';

import { uniqueEmail, signUp, enrol, expectAccessible, enrolledAccount, logInHere, passwordHere, serverCommand } from './helpers';

const portalPort = Number(process.env.E2E_PORT ?? 3000);
const portal = `http://auth.example.test:${portalPort}`;

/** `server oidc client add … --json`, with the environment the test
 *  server runs with (playwright.config.ts): the same database. */
function addClient(args: string[]): { clientId: string; clientSecret: string } {
  return JSON.parse(serverCommand(['oidc', 'client', 'add', '--json', ...args]));
}

const b64url = (b: Buffer) => b.toString('base64url');

/** A relying party at http://NAME.example.test:PORT: /login starts a
 *  sign-in (PKCE S256; ?prompt= passed on), /cb takes the code to the
 *  token endpoint and shows who signed in, /logout asks the portal to end
 *  the log-in, /bye is where it comes back. */
class App {
  server!: Server;
  base = '';
  client = { clientId: '', clientSecret: '' };
  pending = new Map<string, string>();
  idToken = '';

  constructor(readonly name: string, readonly consent: 'ask' | 'skip', readonly extra: string[] = []) {}

  async start() {
    this.server = createServer((req, res) => this.handle(req.url ?? '/', res));
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    const port = (this.server.address() as AddressInfo).port;
    this.base = `http://${this.name.toLowerCase()}.example.test:${port}`;
    this.client = addClient([
      '--name', this.name,
      '--redirect-uri', `${this.base}/cb`,
      '--post-logout-redirect-uri', `${this.base}/bye`,
      '--consent', this.consent,
      ...this.extra,
    ]);
  }

  page(res: import('node:http').ServerResponse, status: number, title: string, body: string) {
    res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' });
    res.end(`<!doctype html><html lang="en"><title>${title}</title><main><h1>${title}</h1>${body}</main></html>`);
  }

  async handle(url: string, res: import('node:http').ServerResponse) {
    const u = new URL(url, this.base);
    if (u.pathname === '/login') {
      const state = b64url(randomBytes(16));
      const verifier = b64url(randomBytes(32));
      this.pending.set(state, verifier);
      const q = new URLSearchParams({
        client_id: this.client.clientId,
        redirect_uri: `${this.base}/cb`,
        response_type: 'code',
        scope: 'openid email profile',
        state,
        code_challenge: b64url(createHash('sha256').update(verifier).digest()),
        code_challenge_method: 'S256',
      });
      const prompt = u.searchParams.get('prompt');
      if (prompt) q.set('prompt', prompt);
      res.writeHead(302, { location: `${portal}/oidc/authorize?${q}` });
      return res.end();
    }
    if (u.pathname === '/cb') {
      const error = u.searchParams.get('error');
      if (error) return this.page(res, 200, `${this.name}: not signed in`, `<p data-testid="error">${error}</p>`);
      const verifier = this.pending.get(u.searchParams.get('state') ?? '');
      if (!verifier) return this.page(res, 400, 'Unknown state', '');
      // The back channel goes to the portal directly (this process does
      // not resolve example.test).
      const answer = await fetch(`http://127.0.0.1:${portalPort}/oidc/token`, {
        method: 'POST',
        headers: {
          authorization: `Basic ${Buffer.from(`${this.client.clientId}:${this.client.clientSecret}`).toString('base64')}`,
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: new URLSearchParams({
          grant_type: 'authorization_code',
          code: u.searchParams.get('code') ?? '',
          redirect_uri: `${this.base}/cb`,
          code_verifier: verifier,
        }),
      });
      const tokens = await answer.json();
      if (!answer.ok) return this.page(res, 500, 'Token refused', `<p>${JSON.stringify(tokens)}</p>`);
      this.idToken = tokens.id_token;
      const claims = JSON.parse(Buffer.from(tokens.id_token.split('.')[1], 'base64url').toString());
      return this.page(
        res,
        200,
        `Signed in to ${this.name}`,
        `<p data-testid="email">${claims.email}</p><p data-testid="acr">${claims.acr}</p>`,
      );
    }
    if (u.pathname === '/logout') {
      const q = new URLSearchParams({ id_token_hint: this.idToken, post_logout_redirect_uri: `${this.base}/bye`, state: 'bye' });
      res.writeHead(302, { location: `${portal}/oidc/logout?${q}` });
      return res.end();
    }
    if (u.pathname === '/bye') return this.page(res, 200, `Logged out of ${this.name}`, `<p>${u.search}</p>`);
    this.page(res, 404, 'Not found', '');
  }
}

const wiki = new App('Wiki', 'ask');
const photos = new App('Photos', 'skip');
// Wants the second factor shown in the log-in: a remembered browser will
// not do for it.
const bank = new App('Bank', 'skip', ['--remembered', 'refused']);

test.beforeAll(async () => {
  await wiki.start();
  await photos.start();
  await bank.start();
});

test.afterAll(async () => {
  for (const app of [wiki, photos, bank]) await new Promise<void>((resolve) => app.server.close(() => resolve()));
});

async function logIn(page: Page, email: string, secret: string) {
  await expect(page).toHaveURL(new RegExp(`^${portal}/login\\?rd=`));
  await logInHere(page, email, secret);
}

for (const javaScriptEnabled of [true, false]) {
  const js = `JavaScript ${javaScriptEnabled ? 'on' : 'off'}`;

  test(`one log-in signs in to two apps, with consent asked once, and the app's log-out ends it (${js})`, async ({ browser }) => {
    const { email, secret } = await enrolledAccount(browser, portal, javaScriptEnabled ? 'sso' : 'ssonojs');
    const context = await browser.newContext({ javaScriptEnabled });
    const page = await context.newPage();
    await page.goto(`${wiki.base}/login`);
    await logIn(page, email, secret);
    // Wiki asks what it may know, once.
    await expect(page).toHaveURL(new RegExp(`^${portal}/consent\\?`));
    await expect(page.getByRole('heading', { name: 'Allow Wiki to sign you in?' })).toBeVisible();
    await expect(page.getByTestId('consent-scopes')).toContainText('Your email address');
    // axe runs as a script in the page: with JavaScript on only.
    if (javaScriptEnabled) await expectAccessible(page, 'consent');
    await page.getByRole('button', { name: 'Allow' }).click();
    await expect(page.getByRole('heading', { name: 'Signed in to Wiki' })).toBeVisible();
    await expect(page.getByTestId('email')).toHaveText(email);
    await expect(page.getByTestId('acr')).toHaveText('mfa');
    // Photos: no log-in, no question (it skips consent).
    await page.goto(`${photos.base}/login`);
    await expect(page.getByRole('heading', { name: 'Signed in to Photos' })).toBeVisible();
    await expect(page.getByTestId('email')).toHaveText(email);
    // Wiki again: no question this time.
    await page.goto(`${wiki.base}/login`);
    await expect(page.getByRole('heading', { name: 'Signed in to Wiki' })).toBeVisible();
    // The security page lists both.
    await page.goto(`${portal}/security`);
    await expect(page.getByTestId('connected-app')).toHaveCount(2);
    // Log out through Wiki: back there, and the portal log-in is over.
    await page.goto(`${wiki.base}/logout`);
    await expect(page.getByRole('heading', { name: 'Logged out of Wiki' })).toBeVisible();
    await expect(page.locator('main p')).toHaveText('?state=bye');
    await page.goto(`${photos.base}/login`);
    await expect(page).toHaveURL(new RegExp(`^${portal}/login\\?rd=`));
    await context.close();
  });

  test(`someone already logged in is asked once by an app that wants consent, then signed in (${js})`, async ({ browser }) => {
    const { email, secret } = await enrolledAccount(browser, portal, javaScriptEnabled ? 'ssoasked' : 'ssoaskednojs');
    const context = await browser.newContext({ javaScriptEnabled, baseURL: portal });
    const page = await context.newPage();
    await page.goto('/login');
    await logInHere(page, email, secret);
    await expect(page).toHaveURL(`${portal}/`);
    // From the app's page: a cross-site start, which carries only the
    // authorize cookie; the consent page still knows who this is.
    await page.goto(`${wiki.base}/login`);
    await expect(page.getByRole('heading', { name: 'Allow Wiki to sign you in?' })).toBeVisible();
    await page.getByRole('button', { name: 'Deny' }).click();
    await expect(page.getByTestId('error')).toHaveText('access_denied');
    await page.goto(`${wiki.base}/login`);
    await page.getByRole('button', { name: 'Allow' }).click();
    await expect(page.getByRole('heading', { name: 'Signed in to Wiki' })).toBeVisible();
    await context.close();
  });

  test(`a log-out request without a hint asks first, and the answer is a plain form (${js})`, async ({ browser }) => {
    const { email, secret } = await enrolledAccount(browser, portal, javaScriptEnabled ? 'ssobye' : 'ssobyenojs');
    const context = await browser.newContext({ javaScriptEnabled, baseURL: portal });
    const page = await context.newPage();
    await page.goto('/login');
    await logInHere(page, email, secret);
    await expect(page).toHaveURL(`${portal}/`);
    const q = new URLSearchParams({ client_id: photos.client.clientId, post_logout_redirect_uri: `${photos.base}/bye`, state: 'ask' });
    await page.goto(`/oidc/logout?${q}`);
    await expect(page.getByRole('heading', { name: 'Log out?' })).toBeVisible();
    await expect(page.locator('main p').first()).toContainText('Photos asks to log you out.');
    if (javaScriptEnabled) await expectAccessible(page, 'log-out question');
    await page.getByRole('button', { name: 'Log out' }).click();
    await expect(page.getByRole('heading', { name: 'Logged out of Photos' })).toBeVisible();
    await page.goto(`${portal}/`);
    await expect(page).toHaveURL(/\/login$/);
    await context.close();
  });

  test(`a request from an unknown app gets a page, never a redirect (${js})`, async ({ browser }) => {
    const context = await browser.newContext({ javaScriptEnabled, baseURL: portal });
    const page = await context.newPage();
    const q = new URLSearchParams({ client_id: 'nobody', redirect_uri: `${wiki.base}/cb`, response_type: 'code', scope: 'openid' });
    const answer = await page.goto(`/oidc/authorize?${q}`);
    expect(answer?.status()).toBe(400);
    await expect(page.getByRole('heading', { name: 'This sign-in request cannot be answered' })).toBeVisible();
    await expect(page.locator('main p').first()).toContainText('not registered');
    if (javaScriptEnabled) await expectAccessible(page, 'authorize error page');
    await context.close();
  });

  test(`prompt=none without a log-in comes back as login_required (${js})`, async ({ browser }) => {
    const context = await browser.newContext({ javaScriptEnabled });
    const page = await context.newPage();
    await page.goto(`${photos.base}/login?prompt=none`);
    await expect(page.getByRole('heading', { name: 'Photos: not signed in' })).toBeVisible();
    await expect(page.getByTestId('error')).toHaveText('login_required');
    await context.close();
  });

  test(`a password-only account turns on two factors first, then goes on to the app (${js})`, async ({ browser }) => {
    const context = await browser.newContext({ javaScriptEnabled, baseURL: portal });
    const page = await context.newPage();
    await signUp(page, uniqueEmail(javaScriptEnabled ? 'ssoenrol' : 'ssoenrolnojs'));
    await page.goto(`${photos.base}/login`);
    await expect(page).toHaveURL(new RegExp(`^${portal}/security\\?rd=`));
    await enrol(page);
    await page.getByRole('link', { name: /^Continue to / }).click();
    await expect(page.getByRole('heading', { name: 'Signed in to Photos' })).toBeVisible();
    await expect(page.getByTestId('acr')).toHaveText('mfa');
    await context.close();
  });
}

for (const javaScriptEnabled of [true, false]) {
  const js = `JavaScript ${javaScriptEnabled ? 'on' : 'off'}`;

  test(`an app that refuses remembered browsers has the second factor shown, then signs in (${js})`, async ({ browser }) => {
    // Recovery codes: a second code in the same 30 seconds would be refused
    // as a replay.
    const setup = await browser.newContext({ baseURL: portal });
    const setupPage = await setup.newPage();
    const email = uniqueEmail(javaScriptEnabled ? 'ssobank' : 'ssobanknojs');
    await signUp(setupPage, email);
    const { secret, codes } = await enrol(setupPage);
    await setup.close();

    const context = await browser.newContext({ javaScriptEnabled });
    const page = await context.newPage();
    // Photos, this browser remembered on the way.
    await page.goto(`${photos.base}/login`);
    await expect(page).toHaveURL(new RegExp(`^${portal}/login\\?rd=`));
    await logInHere(page, email, secret, true);
    await expect(page.getByRole('heading', { name: 'Signed in to Photos' })).toBeVisible();
    // Logged out on the portal; Photos again takes the password alone.
    await page.goto(`${portal}/`);
    await page.getByRole('button', { name: 'Log out' }).first().click();
    await expect(page).toHaveURL(/\/login$/);
    await page.goto(`${photos.base}/login`);
    await passwordHere(page, email);
    await expect(page.getByRole('heading', { name: 'Signed in to Photos' })).toBeVisible();
    // The Bank wants the factor shown: asked for it, then on to the Bank.
    await page.goto(`${bank.base}/login`);
    await expect(page).toHaveURL(new RegExp(`^${portal}/security\\?need=two-factor&rd=`));
    if (javaScriptEnabled) await page.locator('html[data-hydrated]').waitFor({ state: 'attached' });
    const card = page.getByTestId('step-up');
    await expect(card.getByRole('heading', { name: 'Show your second factor' })).toBeVisible();
    await card.getByLabel('6-digit code or recovery code').fill(codes[0]);
    await card.getByRole('button', { name: 'Continue' }).click();
    await expect(page.getByRole('heading', { name: 'Signed in to Bank' })).toBeVisible();
    await expect(page.getByTestId('email')).toHaveText(email);
    await expect(page.getByTestId('acr')).toHaveText('mfa');
    await context.close();
  });
}
