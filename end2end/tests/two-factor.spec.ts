// The browser flows end to end, against the release build: sign up, enrol
// with the QR code's key, log out, log in with password and code.
import { test, expect, Page } from '@playwright/test';
import * as OTPAuth from 'otpauth';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const PASSWORD = 'correct horse battery staple';

function uniqueEmail(tag: string): string {
  return `${tag}-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.com`;
}

function totp(secret: string): OTPAuth.TOTP {
  return new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret), algorithm: 'SHA1', digits: 6, period: 30 });
}

/** The code for the step after the current one: the server allows one step
 *  of skew, and it is later than any step accepted so far, so no waiting. */
function nextCode(secret: string): string {
  return totp(secret).generate({ timestamp: Date.now() + 30_000 });
}

async function signUp(page: Page, email: string) {
  await page.goto('/signup');
  await page.getByLabel('Name').fill('Ann Example');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page).toHaveURL(/\/security$/);
}

/** Runs the enrolment wizard; returns the base32 secret read from the page. */
async function enrol(page: Page): Promise<string> {
  await page.getByRole('button', { name: 'Set up two-factor authentication' }).click();
  const key = page.getByTestId('manual-key');
  await expect(key).toBeVisible();
  const secret = (await key.innerText()).replace(/\s+/g, '');
  expect(secret).toMatch(/^[A-Z2-7]{32}$/);
  await page.getByLabel('6-digit code').fill(totp(secret).generate());
  await page.getByRole('button', { name: 'Turn on' }).click();
  await expect(page.getByTestId('twofa-on')).toBeVisible();
  return secret;
}

async function logOut(page: Page) {
  await page.getByRole('button', { name: 'Log out' }).first().click();
  await expect(page).toHaveURL(/\/login$/);
}

async function passwordStep(page: Page, email: string) {
  await page.goto('/login');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Continue' }).click();
  await expect(page.getByRole('heading', { name: 'Enter your code' })).toBeVisible();
}

test('sign up, enrol, log out, log in with password and code', async ({ page }) => {
  const email = uniqueEmail('flow');
  await signUp(page, email);

  // The QR code is drawn in the browser and decodes to the same secret.
  await page.getByRole('button', { name: 'Set up two-factor authentication' }).click();
  const qr = page.locator('.qr svg');
  await expect(qr).toBeVisible();
  const secret = (await page.getByTestId('manual-key').innerText()).replace(/\s+/g, '');
  const dir = mkdtempSync(join(tmpdir(), 'qr-'));
  const shot = join(dir, 'qr.png');
  writeFileSync(shot, await page.locator('.qr').screenshot());
  const decoded = execFileSync('zbarimg', ['--raw', '-q', shot]).toString().trim();
  expect(decoded).toContain('otpauth://totp/');
  expect(decoded).toContain(`secret=${secret}`);
  expect(decoded).toContain(encodeURIComponent(email));

  // Confirm with a code computed from the key shown on the page.
  await page.getByLabel('6-digit code').fill(totp(secret).generate());
  await page.getByRole('button', { name: 'Turn on' }).click();
  await expect(page.getByTestId('twofa-on')).toBeVisible();

  await page.goto('/');
  await expect(page.getByTestId('twofa-status')).toHaveText('On');
  await logOut(page);

  // Home is protected.
  await page.goto('/');
  await expect(page).toHaveURL(/\/login$/);

  await passwordStep(page, email);
  const code = page.getByLabel('Authentication code');
  await expect(code).toHaveAttribute('autocomplete', 'one-time-code');
  await expect(code).toHaveAttribute('inputmode', 'numeric');
  // Pasted with a space, the way apps display it.
  const c = nextCode(secret);
  await code.fill(`${c.slice(0, 3)} ${c.slice(3)}`);
  await page.getByRole('button', { name: 'Verify' }).click();
  await expect(page).toHaveURL(/\/$/);
  await expect(page.getByTestId('user-email')).toHaveText(email);
  await expect(page.getByTestId('twofa-status')).toHaveText('On');
});

test('a wrong code shows an error and keeps the user on the code step', async ({ page }) => {
  const email = uniqueEmail('wrong');
  await signUp(page, email);
  const secret = await enrol(page);
  await logOut(page);
  await passwordStep(page, email);

  const right = nextCode(secret);
  const wrong = right === '000000' ? '111111' : '000000';
  await page.getByLabel('Authentication code').fill(wrong);
  await page.getByRole('button', { name: 'Verify' }).click();
  await expect(page.getByRole('alert')).toContainText('That code is not valid');
  await expect(page).toHaveURL(/\/login$/);

  // Letters are refused in the browser before any request.
  await page.getByLabel('Authentication code').fill('12ab56');
  await page.getByRole('button', { name: 'Verify' }).click();
  await expect(page.getByRole('alert')).toContainText('6 digits');

  // The wizard survives a reload: still on the code step, email kept.
  await page.reload();
  await expect(page.getByRole('heading', { name: 'Enter your code' })).toBeVisible();
  await page.getByLabel('Authentication code').fill(right);
  await page.getByRole('button', { name: 'Verify' }).click();
  await expect(page).toHaveURL(/\/$/);
  await expect(page.getByTestId('user-email')).toHaveText(email);
});

test('wrong password shows one generic error', async ({ page }) => {
  await page.goto('/login');
  await page.getByLabel('Email').fill(uniqueEmail('nobody'));
  await page.getByLabel('Password').fill('not the password at all');
  await page.getByRole('button', { name: 'Continue' }).click();
  await expect(page.getByRole('alert')).toHaveText('Wrong email or password.');
});

test('sign-up form shows field errors', async ({ page }) => {
  await page.goto('/signup');
  await page.getByLabel('Name').fill('Ann');
  await page.getByLabel('Email').fill('not-an-email');
  await page.getByLabel('Password').fill('short');
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page.getByText('That does not look like an email address.')).toBeVisible();
  await expect(page.getByText('Use at least 12 characters.')).toBeVisible();
});
