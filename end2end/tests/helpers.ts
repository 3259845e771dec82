// Shared steps of the browser suites: a user signs up, enrols, logs in.
import { expect, Browser, Page, CDPSession } from '@playwright/test';
import AxeBuilder from '@axe-core/playwright';
import * as OTPAuth from 'otpauth';
import { createServer } from 'node:http';
import { execFileSync } from 'node:child_process';
import { AddressInfo } from 'node:net';

export const PASSWORD = 'correct horse battery staple';

export function uniqueEmail(tag: string): string {
  return `${tag}-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.com`;
}

export function totp(secret: string): OTPAuth.TOTP {
  return new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret), algorithm: 'SHA1', digits: 6, period: 30 });
}

/** The code for the step after the current one: the server allows one step
 *  of skew, and it is later than any step accepted so far, so no waiting. */
export function nextCode(secret: string): string {
  return totp(secret).generate({ timestamp: Date.now() + 30_000 });
}

export async function signUp(page: Page, email: string) {
  await page.goto('/signup');
  await page.getByLabel('Name').fill('Ann Example');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page).toHaveURL(/\/security$/);
}

/** Reads the recovery codes shown after turning 2FA on and dismisses them. */
export async function saveRecoveryCodes(page: Page): Promise<string[]> {
  const panel = page.getByTestId('recovery-codes');
  await expect(panel).toBeVisible();
  const codes = (await panel.locator('li code').allInnerTexts()).map((c) => c.trim());
  expect(codes).toHaveLength(10);
  for (const c of codes) expect(c).toMatch(/^[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}$/);
  await expect(panel.getByRole('link', { name: 'Download .txt' })).toHaveAttribute('download', 'twofactor-recovery-codes.txt');
  await panel.getByRole('button', { name: 'I have saved them' }).click();
  await expect(page.getByTestId('twofa-on')).toBeVisible();
  return codes;
}

/** Runs the enrolment wizard; returns the secret read from the page and the recovery codes. */
export async function enrol(page: Page): Promise<{ secret: string; codes: string[] }> {
  await page.getByRole('button', { name: 'Set up two-factor authentication' }).click();
  const key = page.getByTestId('manual-key');
  await expect(key).toBeVisible();
  const secret = (await key.innerText()).replace(/\s+/g, '');
  expect(secret).toMatch(/^[A-Z2-7]{32}$/);
  await page.getByLabel('6-digit code').fill(totp(secret).generate());
  await page.getByRole('button', { name: 'Turn on' }).click();
  const codes = await saveRecoveryCodes(page);
  return { secret, codes };
}

export async function logOut(page: Page) {
  await page.getByRole('button', { name: 'Log out' }).first().click();
  await expect(page).toHaveURL(/\/login$/);
}

export async function passwordStep(page: Page, email: string) {
  await page.goto('/login');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Continue' }).click();
  await expect(page.getByRole('heading', { name: 'Enter your code' })).toBeVisible();
}

/** On the code step: switches to the recovery-code path and submits `code`. */
export async function submitRecoveryCode(page: Page, code: string) {
  await page.getByRole('link', { name: 'Lost your phone? Use a recovery code' }).click();
  await page.getByLabel('Recovery code').fill(code);
  await page.getByRole('button', { name: 'Verify' }).click();
}

/** WCAG 2.2 AA with axe-core, and nothing scrolling sideways. */
export async function expectAccessible(page: Page, state: string) {
  const result = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21aa', 'wcag22aa']).analyze();
  const found = result.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  expect(found, `axe violations in "${state}"`).toEqual([]);
  // Nothing scrolls sideways, however long the email.
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow, `sideways scroll in "${state}"`).toBeLessThanOrEqual(0);
}

/** A platform authenticator that keeps discoverable credentials and
 *  verifies the person (as a fingerprint reader would). */
export async function virtualAuthenticator(page: Page): Promise<{ cdp: CDPSession; id: string }> {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return { cdp, id: authenticatorId };
}

/** An account with 2FA on, made in a browser context of its own on the
 *  portal at `portal` (the gate's and the apps' tests reach it by name). */
export async function enrolledAccount(browser: Browser, portal: string, tag: string): Promise<{ email: string; secret: string }> {
  const context = await browser.newContext({ baseURL: portal });
  const page = await context.newPage();
  const email = uniqueEmail(tag);
  await signUp(page, email);
  const { secret } = await enrol(page);
  await context.close();
  return { email, secret };
}

/** On the log-in page already open: the password step alone. */
export async function passwordHere(page: Page, email: string) {
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Continue' }).click();
}

/** On the log-in page already open: password, then the next code, this
 *  browser remembered on the way when `remember`. */
export async function logInHere(page: Page, email: string, secret: string, remember = false) {
  await passwordHere(page, email);
  await expect(page.getByRole('heading', { name: 'Enter your code' })).toBeVisible();
  if (remember) await page.getByLabel("Don't ask again on this browser for 30 days").check();
  await page.getByLabel('Authentication code').fill(nextCode(secret));
  await page.getByRole('button', { name: 'Verify' }).click();
}

/** A port nothing listens on now (for the proxies and apps the tests start). */
export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** Runs `target/release/server ARGS…` (an operator command) on the test
 *  server's database, with the environment it runs with
 *  (playwright.config.ts); returns what it printed. */
export function serverCommand(args: string[]): string {
  const port = Number(process.env.E2E_PORT ?? 3000);
  return execFileSync('target/release/server', args, {
    cwd: '..',
    env: {
      ...process.env,
      DATA_DIR: process.env.E2E_DATA_DIR ?? 'target/e2e-data',
      PUBLIC_URL: `http://auth.example.test:${port}`,
      COOKIE_DOMAINS: 'example.test',
      ACCESS_RULES: 'end2end/gate-rules.toml',
      SIGNUP: 'open',
      RUST_LOG: 'error',
    },
  }).toString();
}
