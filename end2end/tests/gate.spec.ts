// The gate in a real browser: nginx (the configuration of docs/PROXIES.md)
// in front of a small app that echoes the headers it gets, Chromium
// resolving *.example.test to this machine. A visitor opening the app is
// sent to the portal, logs in with password and code, and lands back on
// the page they asked for, with the app seeing who they are.
import { test, expect, Browser } from '@playwright/test';
import { ChildProcess, spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  PASSWORD,
  uniqueEmail,
  enrol,
  enrolledAccount,
  expectAccessible,
  freePort,
  logInHere,
  passwordHere,
  serverCommand,
  signUp,
} from './helpers';

const portalPort = Number(process.env.E2E_PORT ?? 3000);
const portal = `http://auth.example.test:${portalPort}`;
let nginx: ChildProcess | undefined;
let echo: Server | undefined;
let app = '';

test.beforeAll(async () => {
  // The app behind the gate: a page listing the Remote-* headers it got.
  echo = createServer((req, res) => {
    const seen = ['remote-user', 'remote-email', 'remote-email-verified', 'remote-name', 'remote-groups']
      .map((h) => `<li data-header="${h}">${String(req.headers[h] ?? '')}</li>`)
      .join('');
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(`<!doctype html><title>Notes</title><h1>Notes app</h1><p>${req.url}</p><ul>${seen}</ul>`);
  });
  await new Promise<void>((resolve) => echo!.listen(0, '127.0.0.1', resolve));
  const upstream = `127.0.0.1:${(echo.address() as AddressInfo).port}`;
  const port = await freePort();
  const prefix = mkdtempSync(join(tmpdir(), 'gate-nginx-'));
  const conf = readFileSync(join(__dirname, '../../server/tests/proxies/nginx.conf'), 'utf8')
    .replaceAll('@PREFIX@', prefix)
    .replaceAll('@PORT@', String(port))
    .replaceAll('@GATE@', `127.0.0.1:${portalPort}`)
    .replaceAll('@UPSTREAM@', upstream);
  writeFileSync(join(prefix, 'nginx.conf'), conf);
  execFileSync('nginx', ['-t', '-p', prefix, '-c', join(prefix, 'nginx.conf')], { stdio: 'ignore' });
  nginx = spawn('nginx', ['-p', prefix, '-c', join(prefix, 'nginx.conf')], { stdio: 'ignore' });
  app = `http://app.example.test:${port}`;
  for (let i = 0; i < 200; i++) {
    try {
      await fetch(`http://127.0.0.1:${port}/`, { redirect: 'manual' });
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  throw new Error('nginx did not start');
});

test.afterAll(async () => {
  nginx?.kill();
  await new Promise<void>((resolve) => (echo ? echo.close(() => resolve()) : resolve()));
});

for (const javaScriptEnabled of [true, false]) {
  test(`opening a protected app asks for password and code, then lands on the page asked for (JavaScript ${javaScriptEnabled ? 'on' : 'off'})`, async ({ browser }) => {
    const { email, secret } = await enrolledAccount(browser, portal, javaScriptEnabled ? 'gate' : 'gatenojs');
    const context = await browser.newContext({ javaScriptEnabled });
    const page = await context.newPage();
    await page.goto(`${app}/notes?id=7`);
    await expect(page).toHaveURL(new RegExp(`^${portal}/login\\?rd=`));
    await logInHere(page, email, secret);
    // Back on the page asked for, and the app knows who this is.
    await expect(page).toHaveURL(`${app}/notes?id=7`);
    await expect(page.getByRole('heading', { name: 'Notes app' })).toBeVisible();
    // Signed up and never confirmed: the address is not vouched for.
    await expect(page.locator('[data-header="remote-email"]')).toHaveText('');
    await expect(page.locator('[data-header="remote-email-verified"]')).toHaveText('false');
    await expect(page.locator('[data-header="remote-user"]')).toHaveText(/^\d+$/);

    // Log-out on the portal closes the app at once.
    await page.goto(`${portal}/`);
    await page.getByRole('button', { name: 'Log out' }).first().click();
    await expect(page).toHaveURL(/\/login$/);
    await page.goto(`${app}/notes`);
    await expect(page).toHaveURL(new RegExp(`^${portal}/login\\?rd=`));
    await context.close();
  });
}

for (const javaScriptEnabled of [true, false]) {
  test(`a password-only account is sent to turn on two-factor authentication (JavaScript ${javaScriptEnabled ? 'on' : 'off'})`, async ({ browser }) => {
    const context = await browser.newContext({ javaScriptEnabled });
    const page = await context.newPage();
    await page.goto(`${app}/`);
    await expect(page).toHaveURL(new RegExp(`^${portal}/login\\?rd=`));
    // Sign up in another tab of the same browser, then log in here.
    const email = uniqueEmail(javaScriptEnabled ? 'gateone' : 'gateonenojs');
    const other = await context.newPage();
    await other.goto(`${portal}/signup`);
    await other.getByLabel('Name').fill('Ann Example');
    await other.getByLabel('Email').fill(email);
    await other.getByLabel('Password').fill(PASSWORD);
    await other.getByRole('button', { name: 'Create account' }).click();
    await expect(other).toHaveURL(/\/security$/);
    await other.close();
    await page.goto(`${app}/`);
    await expect(page).toHaveURL(new RegExp(`^${portal}/security\\?need=two-factor`));
    await expect(page.getByTestId('gate-needs-2fa')).toBeVisible();
    await context.close();
  });
}

for (const javaScriptEnabled of [true, false]) {
  test(`a return address outside the gated domains lands on the portal home (JavaScript ${javaScriptEnabled ? 'on' : 'off'})`, async ({ browser }) => {
    const { email, secret } = await enrolledAccount(browser, portal, javaScriptEnabled ? 'gateevil' : 'gateevilnojs');
    const context = await browser.newContext({ javaScriptEnabled });
    const page = await context.newPage();
    await page.goto(`${portal}/login?rd=${encodeURIComponent('http://example.test.evil.test/steal')}`);
    await logInHere(page, email, secret);
    await expect(page).toHaveURL(`${portal}/`);
    await context.close();
  });
}

test('rules: a bypassed host is open to anyone, admin pages only to the admins group, and a spoofed Remote-User never reaches the app', async ({ browser }) => {
  const { email, secret } = await enrolledAccount(browser, portal, 'gaterules');
  // The client tries to pass as someone else on every request.
  const context = await browser.newContext({
    extraHTTPHeaders: { 'Remote-User': '1', 'Remote-Email': 'boss@example.test', 'Remote-Email-Verified': 'true' },
  });
  const page = await context.newPage();
  const open = app.replace('app.example.test', 'open.example.test');
  await page.goto(`${open}/`);
  await expect(page.getByRole('heading', { name: 'Notes app' })).toBeVisible();
  await expect(page.locator('[data-header="remote-user"]')).toHaveText('');
  await expect(page.locator('[data-header="remote-email"]')).toHaveText('');
  await expect(page.locator('[data-header="remote-email-verified"]')).toHaveText('');

  await page.goto(`${app}/admin/users`);
  await logInHere(page, email, secret);
  // Logged in, but not an admin: nginx answers 403 for the gate.
  await expect(page.getByText('403 Forbidden')).toBeVisible();
  await page.goto(`${app}/notes`);
  await expect(page.locator('[data-header="remote-email"]')).toHaveText('');
  await expect(page.locator('[data-header="remote-email-verified"]')).toHaveText('false');
  await expect(page.locator('[data-header="remote-user"]')).not.toHaveText('1');

  // The operator puts the user in the admins group. The command is another
  // process, which cannot tell this SQLite server's gate cache: the change
  // shows within GATE_CACHE_SECONDS (2).
  serverCommand(['user', 'groups', email, 'add', 'admins']);
  await expect(async () => {
    await page.goto(`${app}/admin/users`);
    await expect(page.getByRole('heading', { name: 'Notes app' })).toBeVisible({ timeout: 500 });
  }).toPass({ timeout: 10_000 });
  await expect(page.locator('[data-header="remote-groups"]')).toHaveText('admins');
  await context.close();
});

for (const javaScriptEnabled of [true, false]) {
  test(`a new person signs up on the way to the app, turns on two-factor authentication and continues to it (JavaScript ${javaScriptEnabled ? 'on' : 'off'})`, async ({ browser }) => {
    const context = await browser.newContext({ javaScriptEnabled });
    const page = await context.newPage();
    await page.goto(`${app}/notes?id=9`);
    await expect(page).toHaveURL(new RegExp(`^${portal}/login\\?rd=`));
    await page.getByRole('link', { name: 'Create an account' }).click();
    await expect(page).toHaveURL(new RegExp(`^${portal}/signup\\?rd=`));
    const email = uniqueEmail(javaScriptEnabled ? 'gatenew' : 'gatenewnojs');
    await page.getByLabel('Name').fill('Nia Example');
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Create account' }).click();
    await expect(page).toHaveURL(new RegExp(`^${portal}/security\\?rd=`));
    await enrol(page);
    await page.getByRole('link', { name: `Continue to ${new URL(app).host}` }).click();
    await expect(page).toHaveURL(`${app}/notes?id=9`);
    await expect(page.locator('[data-header="remote-email-verified"]')).toHaveText('false');
    await context.close();
  });
}

for (const javaScriptEnabled of [true, false]) {
  test(`a remembered browser opens the app without a code, and the vault asks for a second factor shown again (JavaScript ${javaScriptEnabled ? 'on' : 'off'})`, async ({ browser }) => {
    // The account, with its recovery codes (a second code would be of the
    // same step as the log-in's, and refused as a replay).
    const setup = await browser.newContext({ baseURL: portal });
    const setupPage = await setup.newPage();
    const email = uniqueEmail(javaScriptEnabled ? 'gatevault' : 'gatevaultnojs');
    await signUp(setupPage, email);
    const { secret, codes } = await enrol(setupPage);
    await setup.close();

    const context = await browser.newContext({ javaScriptEnabled });
    const page = await context.newPage();
    await page.goto(`${app}/notes`);
    await logInHere(page, email, secret, true);
    await expect(page).toHaveURL(`${app}/notes`);
    // Logged out on the portal; back at the app, the password is enough.
    await page.goto(`${portal}/`);
    await page.getByRole('button', { name: 'Log out' }).first().click();
    await expect(page).toHaveURL(/\/login$/);
    await page.goto(`${app}/notes`);
    await passwordHere(page, email);
    await expect(page).toHaveURL(`${app}/notes`);
    await expect(page.getByRole('heading', { name: 'Notes app' })).toBeVisible();

    // The vault wants a factor shown in this log-in.
    await page.goto(`${app}/vault/keys`);
    await expect(page).toHaveURL(new RegExp(`^${portal}/security\\?need=two-factor&rd=`));
    if (javaScriptEnabled) await page.locator('html[data-hydrated]').waitFor({ state: 'attached' });
    const card = page.getByTestId('step-up');
    await expect(card.getByRole('heading', { name: 'Show your second factor' })).toBeVisible();
    await expect(page.getByTestId('gate-continue')).toHaveCount(0);
    if (process.env.SCREENSHOTS) {
      await page.setViewportSize({ width: 375, height: 800 });
      await page.screenshot({ path: `../docs/screenshots/step-up-375${javaScriptEnabled ? '' : '-nojs'}.png`, fullPage: true });
      await page.setViewportSize({ width: 1280, height: 800 });
      await page.screenshot({ path: `../docs/screenshots/step-up-1280${javaScriptEnabled ? '' : '-nojs'}.png`, fullPage: true });
    }
    // A malformed one is said and changes nothing (refused before any
    // check, so the suite's address keeps its guessing budget; a wrong
    // code's refusal is in server/tests/api/remembered.rs).
    await card.getByLabel('6-digit code or recovery code').fill('12');
    await card.getByRole('button', { name: 'Continue' }).click();
    await expect(page.getByTestId('step-up').getByRole('alert')).toBeVisible();
    if (javaScriptEnabled) await expectAccessible(page, 'step-up, a refused code');
    await page.getByTestId('step-up').getByLabel('6-digit code or recovery code').fill(codes[0]);
    await page.getByTestId('step-up').getByRole('button', { name: 'Continue' }).click();
    await expect(page).toHaveURL(`${app}/vault/keys`);
    await expect(page.getByRole('heading', { name: 'Notes app' })).toBeVisible();
    await context.close();
  });
}
