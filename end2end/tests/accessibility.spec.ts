// WCAG 2.2 AA with axe-core in every page state, at 1280 and 375 px; focus
// that follows the wizards; titles; no sideways scrolling on a phone.
import { test, expect, Page } from '@playwright/test';
import * as OTPAuth from 'otpauth';

import { PASSWORD, uniqueEmail, totp, nextCode, signUp, saveRecoveryCodes, logOut, passwordStep, expectAccessible } from './helpers';

async function hydrated(page: Page) {
  await page.locator('html[data-hydrated]').waitFor({ state: 'attached' });
}

for (const width of [1280, 375]) {
  test(`every page state passes axe at ${width} px`, async ({ page }) => {
    await page.setViewportSize({ width, height: 900 });
    // A long address: the security page must wrap it, not overflow.
    const email = uniqueEmail(`a-rather-long-mailbox-name-for-testing-wrapping-${width}`);

    await page.goto('/login');
    await hydrated(page);
    await expect(page).toHaveTitle('Log in · Two-Factor Login');
    await expectAccessible(page, 'log in');
    await page.getByRole('button', { name: 'Continue' }).click();
    await expect(page.getByRole('alert')).toBeVisible();
    await expectAccessible(page, 'log in, errors');

    await page.goto('/signup');
    await hydrated(page);
    await expect(page).toHaveTitle('Create your account · Two-Factor Login');
    await page.getByLabel('Email').fill('not-an-email');
    await page.getByLabel('Password').fill('short');
    await page.getByRole('button', { name: 'Create account' }).click();
    await expect(page.getByLabel('Email')).toHaveAttribute('aria-invalid', 'true');
    await expect(page.getByLabel('Email')).toHaveAttribute('aria-describedby', 'email-error');
    await expect(page.getByLabel('Password')).toHaveAttribute('aria-describedby', 'password-hint password-error');
    await expectAccessible(page, 'sign up, errors');

    await signUp(page, email);
    await hydrated(page);
    await expect(page).toHaveTitle('Security · Two-Factor Login');
    await expectAccessible(page, 'security, 2FA off');
    await page.getByRole('button', { name: 'Set up two-factor authentication' }).click();
    await expect(page.getByTestId('manual-key')).toBeVisible();
    await expectAccessible(page, 'enrolment, QR shown');
    const secret = (await page.getByTestId('manual-key').innerText()).replace(/\s+/g, '');
    await page.getByLabel('6-digit code').fill('000000' === totp(secret).generate() ? '111111' : '000000');
    await page.getByRole('button', { name: 'Turn on' }).click();
    await expect(page.getByRole('alert')).toBeVisible();
    await expectAccessible(page, 'enrolment, wrong code');
    await page.getByLabel('6-digit code').fill(totp(secret).generate());
    await page.getByRole('button', { name: 'Turn on' }).click();
    await expect(page.getByTestId('recovery-codes')).toBeVisible();
    await expectAccessible(page, 'recovery codes shown');
    await saveRecoveryCodes(page);
    for (const summary of await page.locator('details summary').all()) await summary.click();
    await expectAccessible(page, 'security, 2FA on, panels open');

    await page.goto('/');
    await hydrated(page);
    await expect(page).toHaveTitle('Home · Two-Factor Login');
    await expectAccessible(page, 'home');
    await logOut(page);
    await passwordStep(page, email);
    await expect(page).toHaveTitle('Enter your code · Two-Factor Login');
    await expect(page.locator('li[aria-current="step"]')).toHaveText('Code');
    await expectAccessible(page, 'code step');
    await page.getByRole('link', { name: 'Lost your phone? Use a recovery code' }).click();
    await expect(page).toHaveTitle('Use a recovery code · Two-Factor Login');
    await expectAccessible(page, 'recovery-code step');

    await page.goto('/nowhere');
    await expectAccessible(page, 'not found');
  });
}

test('focus follows the wizards and route changes', async ({ page }) => {
  const email = uniqueEmail('focus');
  await signUp(page, email);
  await hydrated(page);
  await page.getByRole('button', { name: 'Set up two-factor authentication' }).click();
  await expect(page.getByRole('heading', { name: '1. Scan this QR code' })).toBeFocused();
  const secret = (await page.getByTestId('manual-key').innerText()).replace(/\s+/g, '');
  await page.getByLabel('6-digit code').fill(totp(secret).generate());
  await page.getByLabel('6-digit code').press('Enter');
  await expect(page.getByRole('heading', { name: 'Save your recovery codes' })).toBeFocused();
  await page.getByRole('button', { name: 'I have saved them' }).click();
  await expect(page.getByRole('heading', { name: 'Two-factor authentication', level: 1 })).toBeFocused();

  // A route change puts focus on the new page's heading, not on <body>.
  await page.getByRole('link', { name: 'Back to home' }).click();
  await expect(page.getByRole('heading', { level: 1 })).toBeFocused();
  await expect(page.getByRole('heading', { level: 1 })).toContainText('Welcome');

  // Keyboard only: log out, log in, the code step takes focus.
  await page.getByRole('button', { name: 'Log out' }).focus();
  await page.keyboard.press('Enter');
  await expect(page).toHaveURL(/\/login$/);
  await page.getByLabel('Email').focus();
  await page.keyboard.type(email);
  await page.keyboard.press('Tab');
  await expect(page.getByLabel('Password')).toBeFocused();
  await page.keyboard.type(PASSWORD);
  await page.keyboard.press('Enter');
  await expect(page.getByLabel('Authentication code')).toBeFocused();
  await page.keyboard.type(nextCode(secret));
  await page.keyboard.press('Enter');
  await expect(page).toHaveURL(/\/$/);
});

test('the same error twice is announced twice', async ({ page }) => {
  await page.goto('/login');
  await hydrated(page);
  await page.getByLabel('Email').fill(uniqueEmail('twice'));
  await page.getByLabel('Password').fill('not the password at all');
  await page.getByRole('button', { name: 'Continue' }).click();
  const first = await page.getByRole('alert').elementHandle();
  await page.getByRole('button', { name: 'Continue' }).click();
  // A new alert node: screen readers announce an inserted alert again.
  await expect.poll(() => first!.evaluate((n) => n.isConnected)).toBe(false);
  await expect(page.getByRole('alert')).toHaveText('Wrong email or password.');
});

test('the enrolment self-test explains a clock off or an 8-digit app', async ({ page }) => {
  await signUp(page, uniqueEmail('selftest'));
  await hydrated(page);
  await page.getByRole('button', { name: 'Set up two-factor authentication' }).click();
  const secret = (await page.getByTestId('manual-key').innerText()).replace(/\s+/g, '');
  const field = page.getByLabel('6-digit code');
  await field.fill(totp(secret).generate({ timestamp: Date.now() - 90_000 }));
  await page.getByRole('button', { name: 'Turn on' }).click();
  // Three steps behind, or four when a 30-second step ends between making
  // the code and the server reading it.
  await expect(page.getByRole('alert')).toContainText(/about (90 seconds|2 minutes) slow/);
  const eight = new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret), digits: 8, period: 30, algorithm: 'SHA1' });
  await field.fill(eight.generate());
  await page.getByRole('button', { name: 'Turn on' }).click();
  await expect(page.getByRole('alert')).toContainText('Your app shows 8-digit codes');
  const sha256 = new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret), digits: 6, period: 30, algorithm: 'SHA256' });
  await field.fill(sha256.generate());
  await page.getByRole('button', { name: 'Turn on' }).click();
  await expect(page.getByRole('alert')).toContainText('made with SHA-256');
});
