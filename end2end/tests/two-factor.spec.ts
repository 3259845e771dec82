// The browser flows end to end, against the release build: sign up, enrol
// with the QR code's key, log out, log in with password and code.
import { test, expect } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { PASSWORD, uniqueEmail, totp, nextCode, signUp, saveRecoveryCodes, enrol, logOut, passwordStep, submitRecoveryCode } from './helpers';

test('sign up, enrol, log out, log in with password and code', async ({ page }) => {
  // Everything below runs under the page's CSP; any violation would show here.
  const violations: string[] = [];
  page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) violations.push(m.text()); });
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
  await saveRecoveryCodes(page);
  await expect(page.getByTestId('codes-left')).toHaveText('10 of 10 recovery codes left.');

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
  expect(violations).toEqual([]);
});

test('an expired access token is renewed from the refresh token without logging in again', async ({ page, context }) => {
  const email = uniqueEmail('refresh');
  await signUp(page, email);
  // Drop the access cookie, as if its 15 minutes had passed.
  const cookies = await context.cookies();
  // The device cookie (this browser has logged in to the account before)
  // gives it its own password-guessing budget; the OpenID authorize step
  // has its own (Lax, for /oidc only).
  expect(cookies.map((c) => c.name).sort()).toEqual(['access', 'device', 'oidc_login', 'refresh']);
  for (const c of cookies) expect(c.httpOnly).toBe(true);
  const authorize = cookies.find((c) => c.name === 'oidc_login');
  expect([authorize?.sameSite, authorize?.path]).toEqual(['Lax', '/oidc']);
  await context.clearCookies({ name: 'access' });
  await page.goto('/');
  await expect(page.getByTestId('user-email')).toHaveText(email);
  expect((await context.cookies()).map((c) => c.name).sort()).toEqual(['access', 'device', 'oidc_login', 'refresh']);
  // Without either cookie the page sends the visitor to log in.
  await context.clearCookies();
  await page.goto('/security');
  await expect(page).toHaveURL(/\/login$/);
});

test('a wrong code shows an error and keeps the user on the code step', async ({ page }) => {
  const email = uniqueEmail('wrong');
  await signUp(page, email);
  const { secret } = await enrol(page);
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
  await expect(page.getByRole('alert')).toHaveText('Please correct the highlighted field.');
  await expect(page.getByText('The code is the 6 digits shown in your app.')).toBeVisible();
  await expect(page.getByLabel('Authentication code')).toHaveAttribute('aria-invalid', 'true');

  // The step is server state: a reload lands on the code step again.
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

test('a common password and a look-alike email are refused with the reason, and a strong one then works', async ({ page }) => {
  await page.goto('/signup');
  await page.locator('html[data-hydrated]').waitFor({ state: 'attached' });
  const email = uniqueEmail('weakjs');
  await page.getByLabel('Name').fill('Ann');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill('qwertyuiop123');
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page.getByText('This password is too easy to guess.')).toBeVisible();
  // A look-alike address (a Cyrillic "а") is refused with the reason too.
  await page.getByLabel('Email').fill('\u0430nn@example.com');
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page.getByText('mixes letters from different alphabets')).toBeVisible();
  await page.getByLabel('Email').fill(email);
  await expect(page.getByLabel('Email')).toHaveValue(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page).toHaveURL(/\/security$/);
});

test('log in with a recovery code when the phone is lost', async ({ page }) => {
  const email = uniqueEmail('recovery');
  await signUp(page, email);
  const { codes } = await enrol(page);
  await logOut(page);
  await passwordStep(page, email);

  await page.getByRole('link', { name: 'Lost your phone? Use a recovery code' }).click();
  await expect(page.getByRole('heading', { name: 'Use a recovery code' })).toBeVisible();
  await expect(page.getByLabel('Recovery code')).toBeFocused();
  await page.getByLabel('Recovery code').fill(codes[0].toUpperCase());
  await page.getByRole('button', { name: 'Verify' }).click();
  await expect(page).toHaveURL(/\/$/);
  await expect(page.getByTestId('user-email')).toHaveText(email);

  // The same code does not work twice.
  await logOut(page);
  await passwordStep(page, email);
  await submitRecoveryCode(page, codes[0]);
  await expect(page.getByRole('alert')).toContainText('not valid or was already used');
  await page.getByLabel('Recovery code').fill(codes[1]);
  await page.getByRole('button', { name: 'Verify' }).click();
  await expect(page).toHaveURL(/\/$/);

  // The security page counts what is left and lists the events.
  await page.goto('/security');
  await expect(page.getByTestId('codes-left')).toHaveText('8 of 10 recovery codes left.');
  const activity = page.getByTestId('activity');
  await expect(activity).toContainText('Recovery code used');
  await expect(activity).toContainText('Wrong two-factor code');
  await expect(activity).toContainText('Logged in');
  await expect(page.getByTestId('changes')).toContainText('Two-factor authentication turned on');
});

test('turn two-factor authentication off with password and code', async ({ page }) => {
  const email = uniqueEmail('off');
  await signUp(page, email);
  const { secret } = await enrol(page);

  const panel = page.getByTestId('turn-off');
  await panel.locator('summary').click();
  await panel.getByLabel('Password').fill('not my password at all');
  await panel.getByLabel('6-digit code or recovery code').fill(nextCode(secret));
  await panel.getByRole('button', { name: 'Turn off two-factor authentication' }).click();
  await expect(panel.locator('#off-password-error')).toHaveText('That is not your current password.');

  await panel.getByLabel('Password').fill(PASSWORD);
  await panel.getByRole('button', { name: 'Turn off two-factor authentication' }).click();
  await expect(page.getByRole('button', { name: 'Set up two-factor authentication' })).toBeVisible();
  await expect(page.getByTestId('changes')).toContainText('Two-factor authentication turned off');

  // Logging in now takes the password only.
  await logOut(page);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Continue' }).click();
  await expect(page).toHaveURL(/\/$/);
  await expect(page.getByTestId('twofa-status')).toHaveText('Off');
});

test('too many wrong passwords are slowed down with a clear message', async ({ page }) => {
  const email = uniqueEmail('throttle');
  await signUp(page, email);
  await page.getByRole('button', { name: 'Log out' }).first().click();
  await expect(page).toHaveURL(/\/login$/);
  await page.getByLabel('Email').fill(email);
  // Five free failures, then a delay that doubles (1 s, 2 s, 4 s…): within
  // a few quick attempts the answer turns into "too many".
  let slowed = false;
  for (let i = 0; i < 9 && !slowed; i++) {
    await page.getByLabel('Password').fill(`wrong password number ${i}`);
    await page.getByRole('button', { name: 'Continue' }).click();
    await expect(page.getByRole('button', { name: 'Continue' })).not.toHaveAttribute('aria-disabled', 'true');
    await expect(page.getByRole('alert')).toBeVisible();
    slowed = (await page.getByRole('alert').innerText()).includes('Too many attempts');
  }
  expect(slowed).toBe(true);
  await expect(page.getByRole('alert')).toContainText(/Too many attempts\. Try again in (1 second|\d+ seconds)\./);
});

test('a new set-up replaces the key of an unfinished one, and the key copies', async ({ page, context }) => {
  await context.grantPermissions(['clipboard-read', 'clipboard-write']);
  await signUp(page, uniqueEmail('reload'));
  await page.getByRole('button', { name: 'Set up two-factor authentication' }).click();
  const first = (await page.getByTestId('manual-key').innerText()).replace(/\s+/g, '');

  // The pending key is never kept in the browser: after a reload the
  // set-up starts again and makes a new one.
  await page.reload();
  await page.getByRole('button', { name: 'Set up two-factor authentication' }).click();
  const key = page.getByTestId('manual-key');
  await expect(key).toBeVisible();
  const second = (await key.innerText()).replace(/\s+/g, '');
  expect(second).not.toEqual(first);

  await page.getByRole('button', { name: 'Copy key' }).click();
  await expect(page.getByRole('button', { name: 'Copied' })).toBeVisible();
  expect(await page.evaluate(() => navigator.clipboard.readText())).toEqual(second);

  // The first key was replaced: only the new one confirms.
  await page.getByLabel('6-digit code').fill(totp(first).generate());
  await page.getByRole('button', { name: 'Turn on' }).click();
  await expect(page.getByRole('alert')).toContainText('Check that you scanned the QR code shown now');
  await page.getByLabel('6-digit code').fill(totp(second).generate());
  await page.getByRole('button', { name: 'Turn on' }).click();
  await saveRecoveryCodes(page);
});

test('make new recovery codes with a current code', async ({ page }) => {
  await signUp(page, uniqueEmail('regen'));
  const { secret, codes } = await enrol(page);
  const panel = page.locator('details', { hasText: 'Make new recovery codes' });
  await panel.locator('summary').click();
  await panel.getByLabel('6-digit code').fill('12345');
  await panel.getByRole('button', { name: 'Make new codes' }).click();
  await expect(panel.getByText('The code is the 6 digits shown in your app.')).toBeVisible();
  await panel.getByLabel('6-digit code').fill(nextCode(secret));
  await panel.getByRole('button', { name: 'Make new codes' }).click();
  const fresh = await saveRecoveryCodes(page);
  expect(fresh.filter((c) => codes.includes(c))).toEqual([]);
  await expect(page.getByTestId('codes-left')).toHaveText('10 of 10 recovery codes left.');
  await expect(page.getByTestId('changes')).toContainText('New recovery codes made');
});

test('changing the password ends the other sessions', async ({ page, browser }) => {
  const email = uniqueEmail('password');
  await signUp(page, email);
  const other = await browser.newContext();
  const phone = await other.newPage();
  await phone.goto('/login');
  await phone.getByLabel('Email').fill(email);
  await phone.getByLabel('Password').fill(PASSWORD);
  await phone.getByRole('button', { name: 'Continue' }).click();
  await expect(phone.getByTestId('user-email')).toHaveText(email);

  await page.locator('summary', { hasText: 'Change password' }).click();
  await page.getByLabel('Current password').fill('not the current password');
  await page.getByLabel('New password').fill('an entirely new passphrase');
  await page.getByRole('button', { name: 'Change password' }).click();
  await expect(page.locator('#current-password-error')).toHaveText('That is not your current password.');
  await page.getByLabel('Current password').fill(PASSWORD);
  await page.getByLabel('New password').fill('too short');
  await page.getByRole('button', { name: 'Change password' }).click();
  await expect(page.getByRole('alert')).toHaveText('Please correct the highlighted field.');
  await expect(page.getByText('Use at least 12 characters.')).toBeVisible();
  // Neither attempt changed anything: the phone is still logged in.
  await phone.reload();
  await expect(phone.getByTestId('user-email')).toHaveText(email);

  await page.getByLabel('New password').fill('an entirely new passphrase');
  await page.getByRole('button', { name: 'Change password' }).click();
  await expect(page.getByRole('status')).toHaveText('Password changed. Other devices were logged out.');
  await expect(page.getByTestId('changes')).toContainText('Password changed');

  await phone.goto('/');
  await expect(phone).toHaveURL(/\/login$/);
  await phone.getByLabel('Email').fill(email);
  await phone.getByLabel('Password').fill('an entirely new passphrase');
  await phone.getByRole('button', { name: 'Continue' }).click();
  await expect(phone.getByTestId('user-email')).toHaveText(email);
  await other.close();
});

test('log out everywhere ends every session', async ({ page, browser }) => {
  const email = uniqueEmail('everywhere');
  await signUp(page, email);
  const other = await browser.newContext();
  const laptop = await other.newPage();
  await laptop.goto('/login');
  await laptop.getByLabel('Email').fill(email);
  await laptop.getByLabel('Password').fill(PASSWORD);
  await laptop.getByRole('button', { name: 'Continue' }).click();
  await expect(laptop.getByTestId('user-email')).toHaveText(email);

  await page.getByRole('button', { name: 'Log out everywhere' }).click();
  await expect(page).toHaveURL(/\/login$/);
  await laptop.goto('/security');
  await expect(laptop).toHaveURL(/\/login$/);
  await other.close();
});
