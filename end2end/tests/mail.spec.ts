// Mail in the browser: "Forgot your password?" → the message (read from
// the outbox the server writes without SMTP_URL) → a new password → log in
// with the password and the code; the lockdown link of a security notice;
// the same reset without JavaScript at 375 px. Axe on each new page.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test, expect, Page } from '@playwright/test';

import { PASSWORD, uniqueEmail, signUp, enrol, logOut, nextCode, expectAccessible } from './helpers';

// Links in mail are built from PUBLIC_URL: the portal's test name.
const port = Number(process.env.E2E_PORT ?? 3000);
test.use({ baseURL: `http://auth.example.test:${port}` });
const outbox = path.resolve(process.env.E2E_DATA_DIR ?? '../target/e2e-data', 'outbox');
const NEW_PASSWORD = 'a completely different passphrase 42';

/** Undoes quoted-printable, so a long link reads whole. */
function unquote(s: string): string {
  return s.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16)));
}

/** The link to `linkPath` in the newest message of `kind` to `email`,
 *  waiting for the server's worker to write it. */
async function linkFromOutbox(email: string, kind: string, linkPath: string): Promise<string> {
  let found = '';
  await expect
    .poll(
      () => {
        const names = fs.existsSync(outbox) ? fs.readdirSync(outbox).filter((n) => n.endsWith(`-${kind}.eml`)) : [];
        for (const name of names.sort().reverse()) {
          const text = unquote(fs.readFileSync(path.join(outbox, name), 'utf8'));
          if (!text.includes(`To: ${email}`) && !text.includes(`<${email}>`)) continue;
          const match = text.match(new RegExp(`https?://[^\\s"<]+${linkPath}\\?token=[A-Za-z0-9_-]+`));
          if (match) {
            found = match[0];
            return true;
          }
        }
        return false;
      },
      { message: `a ${kind} message to ${email} in ${outbox}` },
    )
    .toBe(true);
  return found;
}

async function askForReset(page: Page, email: string) {
  await page.goto('/login');
  await page.getByRole('link', { name: 'Forgot your password?' }).click();
  await expect(page.getByRole('heading', { name: 'Forgot your password?' })).toBeVisible();
  await page.getByLabel('Email').fill(email);
  await page.getByRole('button', { name: 'Email me a link' }).click();
  await expect(page.getByRole('status')).toContainText('If an account has that address');
}

test('forgot password: the mailed link sets a new password, and log-in still asks for the code', async ({ page }) => {
  const email = uniqueEmail('reset');
  await signUp(page, email);
  const { secret } = await enrol(page);
  await logOut(page);

  await askForReset(page, email);
  await expectAccessible(page, 'forgot password: sent');
  const link = await linkFromOutbox(email, 'reset', '/reset-password');
  await page.goto(link);
  await expect(page.getByRole('heading', { name: 'Set a new password' })).toBeVisible();
  await expectAccessible(page, 'reset password');
  // A weak password is refused, and the link still works.
  await page.getByLabel('New password').fill('password1234');
  await page.getByRole('button', { name: 'Set the new password' }).click();
  await expect(page.locator('#newPassword-error')).toContainText('too easy');
  await page.getByLabel('New password').fill(NEW_PASSWORD);
  await page.getByRole('button', { name: 'Set the new password' }).click();
  await expect(page.getByRole('status')).toContainText('Your new password is set');

  // Not logged in: the log-in asks for the new password, then the code.
  await page.getByRole('link', { name: 'Go to log in' }).click();
  await expect(page).toHaveURL(/\/login$/);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(NEW_PASSWORD);
  await page.getByRole('button', { name: 'Continue' }).click();
  await expect(page.getByRole('heading', { name: 'Enter your code' })).toBeVisible();
  await page.getByLabel('Authentication code').fill(nextCode(secret));
  await page.getByRole('button', { name: 'Verify' }).click();
  await expect(page.getByTestId('user-email')).toHaveText(email);

  // The link was single-use: opened again, it says what it did, before
  // anything is typed.
  await page.goto(link);
  await expect(page.getByTestId('link-state')).toContainText('This link already set a new password');
  await expect(page.getByLabel('New password')).toHaveCount(0);
  // (Signed in here, so the log-in page would lead home: the link is enough.)
  await expect(page.getByRole('link', { name: 'Go to log in' })).toHaveAttribute('href', '/login');
});

for (const javaScriptEnabled of [true, false]) {
  test(`a dead link says so at once, with a new one as the way on (${javaScriptEnabled ? 'with' : 'without'} JavaScript)`, async ({ browser }) => {
    const context = await browser.newContext({ javaScriptEnabled, baseURL: `http://auth.example.test:${port}` });
    const page = await context.newPage();
    await page.goto('/reset-password?token=copied-incompletely');
    await expect(page.getByRole('heading', { name: 'Set a new password' })).toBeVisible();
    await expect(page.getByTestId('link-state')).toContainText('This password link is not valid');
    await expect(page.getByLabel('New password')).toHaveCount(0);
    if (javaScriptEnabled) await expectAccessible(page, 'dead reset link');
    await page.getByRole('link', { name: 'Send a new password link' }).click();
    await expect(page.getByRole('heading', { name: 'Forgot your password?' })).toBeVisible();
    await page.goto('/verify-email?token=copied-incompletely');
    await expect(page.getByTestId('link-state')).toContainText('This confirmation link is not valid');
    await page.getByRole('link', { name: 'Send a new link' }).click();
    await expect(page.getByRole('button', { name: 'Send it again' })).toBeVisible();
    await context.close();
  });
}

test("a notice's lockdown link ends every session and log-in waits for a reset", async ({ page }) => {
  const email = uniqueEmail('lockdown');
  await signUp(page, email);
  await enrol(page);
  const link = await linkFromOutbox(email, 'notice-two_factor_on', '/lockdown');

  // Opening the link changes nothing; the button does.
  await page.goto(link);
  await expect(page.getByRole('heading', { name: 'Lock your account?' })).toBeVisible();
  await expectAccessible(page, 'lockdown');
  await page.goto('/');
  await expect(page.getByTestId('user-email')).toHaveText(email);
  await page.goto(link);
  await page.getByRole('button', { name: 'Lock my account' }).click();
  await expect(page.getByRole('status')).toContainText('Your account is locked');

  await page.goto('/');
  await expect(page).toHaveURL(/\/login/);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Continue' }).click();
  await expect(page.getByRole('alert')).toContainText('This account is locked');
  // The locked message carries a fresh reset link.
  expect(await linkFromOutbox(email, 'locked', '/reset-password')).toContain('/reset-password?token=');
  // Opened again, the lockdown link says what is true.
  await page.goto(link);
  await expect(page.getByTestId('link-state')).toContainText('This account is already locked');
  await expect(page.getByRole('link', { name: 'Send a new password link' })).toBeVisible();
});

test.describe('without JavaScript, on a phone', () => {
  test.use({ javaScriptEnabled: false, viewport: { width: 375, height: 740 } });

  test('forgot password and a new password with plain forms', async ({ page }) => {
    const email = uniqueEmail('nojs-reset');
    await page.goto('/signup');
    await page.getByLabel('Name').fill('No Script');
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Create account' }).click();
    await expect(page).toHaveURL(/\/security$/);
    await page.getByRole('button', { name: 'Log out' }).first().click();

    await askForReset(page, email);
    await expect(page).toHaveURL(/\/forgot-password\?done=1$/);
    const link = await linkFromOutbox(email, 'reset', '/reset-password');
    await page.goto(link);
    await page.getByLabel('New password').fill(NEW_PASSWORD);
    await page.getByRole('button', { name: 'Set the new password' }).click();
    await expect(page).toHaveURL(/\/reset-password\?done=1$/);
    await expect(page.getByRole('status')).toContainText('Your new password is set');
    await page.getByRole('link', { name: 'Go to log in' }).click();
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill(NEW_PASSWORD);
    await page.getByRole('button', { name: 'Continue' }).click();
    await expect(page.getByTestId('user-email')).toHaveText(email);
    // The home page asks for the address to be confirmed... unless the
    // reset proved it, as here.
    await expect(page.getByTestId('verify-email')).toHaveCount(0);
  });
});
