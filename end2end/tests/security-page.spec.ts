// The security page (issue 21): setting up the app on a new phone with a
// code, a recovery code or a passkey, with and without JavaScript; the
// page after the first passkey; one password field and one main action;
// forms without JavaScript land at their section; the mailed pages move
// focus to their result and announce it.
import { test, expect, Page } from '@playwright/test';

import { uniqueEmail, totp, nextCode, signUp, enrol, logOut, passwordStep, expectAccessible, virtualAuthenticator } from './helpers';

const port = Number(process.env.E2E_PORT ?? 3000);

/** Opens "Set up on a new phone" and proves it with `proof`. */
async function startNewPhone(page: Page, proof: string) {
  const panel = page.getByTestId('new-phone');
  if ((await panel.getAttribute('open')) === null) await panel.locator('summary').click();
  await panel.getByLabel('6-digit code or recovery code').fill(proof);
  await panel.getByRole('button', { name: 'Continue' }).click();
}

/** The new key, read off the wizard. */
async function newKey(page: Page): Promise<string> {
  const wizard = page.getByTestId('new-phone-wizard');
  await expect(wizard).toBeVisible();
  const key = (await wizard.getByTestId('manual-key').innerText()).replace(/\s+/g, '');
  expect(key).toMatch(/^[A-Z2-7]{32}$/);
  return key;
}

for (const javaScriptEnabled of [true, false]) {
  const how = javaScriptEnabled ? 'with' : 'without';
  test(`a new phone: proof, the same wizard, the old phone works until the new one is confirmed (${how} JavaScript)`, async ({ browser }) => {
    const context = await browser.newContext({ javaScriptEnabled });
    const page = await context.newPage();
    const email = uniqueEmail(`phone-${how}`);
    await signUp(page, email);
    if (javaScriptEnabled) await expect(page.locator('html[data-hydrated]')).toHaveCount(1);
    const { secret: old } = await enrol(page);

    // A wrong proof is refused where it was typed; without JavaScript the
    // page opens at that panel, not 1,000 px above it.
    await page.setViewportSize({ width: 375, height: 700 });
    await startNewPhone(page, '000000');
    const error = page.getByTestId('new-phone').locator('.alert-error');
    await expect(error).toBeVisible();
    if (!javaScriptEnabled) {
      await expect(page).toHaveURL(/\/security#new-phone$/);
      await expect(error).toBeInViewport();
    }
    await page.setViewportSize({ width: 1280, height: 900 });

    // A current code from the old phone: the wizard with a new key.
    await startNewPhone(page, nextCode(old));
    const key = await newKey(page);
    expect(key).not.toBe(old);
    await expect(page.getByRole('button', { name: 'Use the new phone' })).toBeVisible();
    if (javaScriptEnabled) {
      await expect(page.getByRole('heading', { name: '1. Scan this QR code' })).toBeFocused();
      await expectAccessible(page, 'security, new phone wizard');
    }

    // A wrong code changes nothing: the same key is still the one to scan.
    await page.getByLabel('6-digit code').fill('000000');
    await page.getByRole('button', { name: 'Use the new phone' }).click();
    await expect(page.getByTestId('new-phone-wizard').locator('.alert-error')).toBeVisible();
    expect(await newKey(page)).toBe(key);

    await page.getByLabel('6-digit code').fill(totp(key).generate());
    await page.getByRole('button', { name: 'Use the new phone' }).click();
    const moved = page.getByTestId('moved-status');
    await expect(moved).toContainText('Your new phone is set up');
    if (javaScriptEnabled) await expect(moved.locator('p')).toBeFocused();
    await expect(page.getByTestId('twofa-on')).toContainText('10 of 10 recovery codes left');
    await expect(page.getByTestId('changes')).toContainText('Authenticator app moved to a new phone');
    if (javaScriptEnabled) await expectAccessible(page, 'security, moved to a new phone');

    // Still logged in; the next log-in takes the new phone's code.
    await page.goto('/');
    await expect(page.getByTestId('user-email')).toHaveText(email);
    await logOut(page);
    await passwordStep(page, email);
    await page.getByLabel('Authentication code').fill(nextCode(key));
    await page.getByRole('button', { name: 'Verify' }).click();
    await expect(page.getByTestId('user-email')).toHaveText(email);
    await context.close();
  });
}

test('a recovery code proves it is you when the old phone is gone, and is used up', async ({ page }) => {
  const email = uniqueEmail('phone-recovery');
  await signUp(page, email);
  const { codes } = await enrol(page);
  await startNewPhone(page, codes[0]);
  const key = await newKey(page);
  // Cancelling keeps the old phone; the recovery code is spent.
  await page.getByRole('link', { name: 'Cancel and keep the old phone' }).click();
  await expect(page.getByTestId('new-phone-wizard')).toHaveCount(0);
  await expect(page.getByTestId('twofa-on')).toContainText('9 of 10 recovery codes left');
  await startNewPhone(page, codes[0]);
  await expect(page.getByTestId('new-phone').locator('.alert-error')).toContainText('recovery code');
  expect(key).toMatch(/^[A-Z2-7]{32}$/);
});

test.describe('with passkeys', () => {
  test.use({ baseURL: `http://auth.example.test:${port}` });

  for (const width of [1280, 375]) {
    test(`after the first passkey the page agrees with itself, and the codes can be copied (${width} px)`, async ({ page }) => {
      await page.setViewportSize({ width, height: 900 });
      await virtualAuthenticator(page);
      await signUp(page, uniqueEmail(`first-passkey-${width}`));
      await expect(page.locator('html[data-hydrated]')).toHaveCount(1);
      // Logged in a moment ago: no password asked for, one main action.
      await expect(page.getByLabel('Your password')).toBeHidden();
      await expect(page.locator('.btn-primary:visible')).toHaveCount(1);
      await page.locator('#passkey-name').fill('Laptop');
      await page.getByRole('button', { name: 'Add a passkey' }).click();
      const codes = page.getByTestId('passkey-recovery-codes');
      await expect(codes.getByRole('heading', { name: 'Save your recovery codes' })).toBeFocused();
      await expect(codes.getByRole('button', { name: 'Copy codes' })).toBeVisible();
      await expect(codes.getByRole('link', { name: 'Download .txt' })).toBeVisible();
      // Above them, the page already says protection is on.
      await expect(page.getByTestId('on-with-passkey')).toBeVisible();
      await expect(page.locator('.badge-off')).toHaveCount(0);
      await expectAccessible(page, 'security, codes of the first passkey');
      await codes.getByRole('button', { name: 'I have saved them' }).click();
      await expect(codes).toHaveCount(0);
      await expect(page.getByTestId('passkey')).toHaveCount(1);
      await expect(page.locator('.btn-primary:visible')).toHaveCount(1);
    });
  }

  test('a passkey proves it is you for a new phone', async ({ page }) => {
    await virtualAuthenticator(page);
    await signUp(page, uniqueEmail('phone-passkey'));
    await expect(page.locator('html[data-hydrated]')).toHaveCount(1);
    await enrol(page);
    await page.locator('#passkey-name').fill('Laptop');
    await page.getByRole('button', { name: 'Add a passkey' }).click();
    await expect(page.getByTestId('passkey')).toHaveCount(1);
    await page.getByTestId('new-phone').locator('summary').click();
    await page.getByRole('button', { name: 'Use a passkey instead' }).click();
    const key = await newKey(page);
    await page.getByLabel('6-digit code').fill(totp(key).generate());
    await page.getByRole('button', { name: 'Use the new phone' }).click();
    await expect(page.getByTestId('moved-status')).toContainText('Your new phone is set up');
  });
});

test('a mailed page moves focus to its result, announced in a region drawn before it', async ({ page }) => {
  await page.goto('/forgot-password');
  await expect(page.locator('html[data-hydrated]')).toHaveCount(1);
  const status = page.getByTestId('mailed-status');
  await expect(status).toHaveAttribute('role', 'status');
  await expect(status).toHaveText('');
  await page.getByLabel('Email').fill(uniqueEmail('focus'));
  await page.getByRole('button', { name: 'Email me a link' }).click();
  await expect(page.getByRole('heading', { name: 'Check your email' })).toBeFocused();
  await expect(status).toContainText('If an account has that address');
});
