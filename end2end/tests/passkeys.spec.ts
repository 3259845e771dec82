// Passkeys in Chromium with its virtual authenticator (DevTools protocol
// WebAuthn domain): add one on the security page, log in with password and
// passkey (this browser remembered on the way), sign in with the passkey alone, a failed user verification,
// removal; axe on each new state (with JavaScript: axe runs in the page);
// what a page without JavaScript says.
import { test, expect, Page } from '@playwright/test';

import { PASSWORD, uniqueEmail, signUp, logOut, expectAccessible, virtualAuthenticator } from './helpers';

// WebAuthn needs the portal's own name (PUBLIC_URL), not an IP address.
const port = Number(process.env.E2E_PORT ?? 3000);
test.use({ baseURL: `http://auth.example.test:${port}` });

async function addPasskey(page: Page, name: string) {
  await page.locator('#passkey-name').fill(name);
  await page.getByRole('button', { name: 'Add a passkey' }).click();
}

async function passwordOnly(page: Page, email: string) {
  await page.goto('/login');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Continue' }).click();
}

for (const width of [1280, 375]) {
  test(`a passkey is added, used after the password and alone, refused without verification, removed (${width} px)`, async ({ page }) => {
    await page.setViewportSize({ width, height: 900 });
    // The buttons, here: Chromium's virtual authenticator would answer the
    // email field's autofill request at once (the next test covers it).
    await page.addInitScript(() => {
      PublicKeyCredential.isConditionalMediationAvailable = async () => false;
    });
    const { cdp, id } = await virtualAuthenticator(page);
    const email = uniqueEmail(`passkey${width}`);
    await signUp(page, email);

    // The security page offers to add one; the first one turns 2FA on and
    // comes with recovery codes.
    const card = page.getByTestId('passkeys');
    await expect(card.getByTestId('no-passkeys')).toBeVisible();
    await expect(page.getByTestId('add-passkey')).toBeVisible();
    await expect(page.getByTestId('passkeys-need-js')).toBeHidden();
    await expectAccessible(page, 'security, no passkey');
    await addPasskey(page, 'Test laptop');
    const codes = page.getByTestId('passkey-recovery-codes');
    await expect(codes.getByRole('heading', { name: 'Save your recovery codes' })).toBeFocused();
    await expect(codes.locator('li code')).toHaveCount(10);
    await expectAccessible(page, 'security, recovery codes of the first passkey');
    await codes.getByRole('button', { name: 'I have saved them' }).click();
    const item = card.getByTestId('passkey');
    await expect(item).toHaveCount(1);
    await expect(item.locator('.passkey-name')).toHaveText('Test laptop');
    await expect(item).toContainText('never used');
    await expect(page.getByTestId('on-with-passkey')).toBeVisible();
    await expect(page.getByRole('button', { name: 'Add an authenticator app' })).toBeVisible();
    await expectAccessible(page, 'security, one passkey');

    // Password, then the passkey.
    await logOut(page);
    await expect(page.getByTestId('passkey-sign-in')).toBeVisible();
    await expectAccessible(page, 'log in with the passkey option');
    await passwordOnly(page, email);
    await expect(page.getByRole('heading', { name: 'Use your passkey' })).toBeVisible();
    await expect(page.getByLabel('Authentication code')).toHaveCount(0);
    await expectAccessible(page, 'code step, passkey');
    // With no app, the "Don't ask again" box stands under the passkey's button.
    await page.getByLabel("Don't ask again on this browser for 30 days").check();
    if (process.env.SCREENSHOTS) {
      await page.screenshot({ path: `../docs/screenshots/passkey-step-remember-${width}.png`, fullPage: true });
    }
    await page.getByRole('button', { name: 'Use your passkey' }).click();
    await expect(page).toHaveURL(/\/$/);
    await expect(page.getByRole('heading', { name: /Welcome/ })).toBeVisible();
    // Remembered: the password alone next time.
    await logOut(page);
    await passwordOnly(page, email);
    await expect(page).toHaveURL(/\/$/);
    await expect(page.getByRole('heading', { name: /Welcome/ })).toBeVisible();

    // The passkey alone.
    await logOut(page);
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await expect(page).toHaveURL(/\/$/);
    await expect(page.getByRole('heading', { name: /Welcome/ })).toBeVisible();

    // The authenticator cannot verify the person: refused, with a reason.
    await logOut(page);
    await cdp.send('WebAuthn.setUserVerified', { authenticatorId: id, isUserVerified: false });
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    const status = page.getByTestId('passkey-sign-in').getByRole('status');
    await expect(status).toHaveClass(/alert-error/);
    await expect(status).not.toBeEmpty();
    await expect(page).toHaveURL(/\/login$/);
    await expectAccessible(page, 'log in, passkey refused');
    await cdp.send('WebAuthn.setUserVerified', { authenticatorId: id, isUserVerified: true });

    // Removed right after a log-in: no password needed; 2FA goes off with it.
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await expect(page).toHaveURL(/\/$/);
    await page.goto('/security');
    await item.getByText('Remove', { exact: true }).click();
    await item.getByRole('button', { name: 'Remove passkey' }).click();
    await expect(card.getByTestId('no-passkeys')).toBeVisible();
    await logOut(page);
    await passwordOnly(page, email);
    await expect(page).toHaveURL(/\/$/);
  });
}

test('passkeys are offered in the email field\'s autofill; picking one signs in, and the button still works beside it', async ({ page }) => {
  // The browser's autofill list cannot be clicked from a test: a waiting
  // conditional request is kept here, and "picking" the passkey answers it
  // with the virtual authenticator, as the list would.
  await page.addInitScript(() => {
    const w = window as unknown as { conditional: number; pick?: () => void };
    w.conditional = 0;
    PublicKeyCredential.isConditionalMediationAvailable = async () => true;
    const original = navigator.credentials.get.bind(navigator.credentials);
    navigator.credentials.get = (options?: CredentialRequestOptions) => {
      if (options?.mediation !== 'conditional') return original(options);
      w.conditional += 1;
      return new Promise((resolve, reject) => {
        options.signal?.addEventListener('abort', () => reject(new DOMException('cancelled', 'AbortError')));
        w.pick = () => void original({ publicKey: options.publicKey }).then(resolve, reject);
      });
    };
  });
  await virtualAuthenticator(page);
  const email = uniqueEmail('passkey-autofill');
  await signUp(page, email);
  await addPasskey(page, 'Autofill laptop');
  await page.getByTestId('passkeys').getByRole('button', { name: 'I have saved them' }).click();

  await logOut(page);
  await expect(page.getByLabel('Email')).toHaveAttribute('autocomplete', 'username webauthn');
  await page.waitForFunction(() => typeof (window as unknown as { pick?: () => void }).pick === 'function');
  await page.evaluate(() => (window as unknown as { pick: () => void }).pick());
  await expect(page).toHaveURL(/\/$/);
  await expect(page.getByRole('heading', { name: /Welcome/ })).toBeVisible();

  // The button cancels the waiting request first, quietly, and signs in.
  await logOut(page);
  await page.waitForFunction(() => (window as unknown as { conditional: number }).conditional > 0);
  await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
  await expect(page).toHaveURL(/\/$/);
  await expect(page.getByRole('heading', { name: /Welcome/ })).toBeVisible();
});

test('a passkey is renamed, new recovery codes are made without an app, and one authenticator is not registered twice', async ({ page }) => {
  await virtualAuthenticator(page);
  await signUp(page, uniqueEmail('pkrename'));
  await addPasskey(page, 'Phone');
  await page.getByTestId('passkey-recovery-codes').getByRole('button', { name: 'I have saved them' }).click();
  const item = page.getByTestId('passkey');
  await item.getByText('Rename', { exact: true }).click();
  await item.getByLabel('New name').fill('Old phone');
  await item.getByRole('button', { name: 'Save name' }).click();
  await expect(page.getByTestId('passkey').locator('.passkey-name')).toHaveText('Old phone');
  // No app: new recovery codes are made here (the log-in is fresh: no password).
  const panel = page.getByTestId('passkey-new-codes');
  await panel.getByText('Make new recovery codes').click();
  await panel.getByRole('button', { name: 'Make new codes' }).click();
  await expect(page.getByTestId('recovery-codes').locator('li code')).toHaveCount(10);
  await page.getByTestId('recovery-codes').getByRole('button', { name: 'I have saved them' }).click();
  // The same authenticator again: the browser is told it is already
  // registered (excludeCredentials) and the page says so.
  await addPasskey(page, 'Same laptop');
  const status = page.getByTestId('add-passkey').getByRole('status');
  await expect(status).toContainText('already holds a passkey');
  await expect(status).toHaveClass(/alert-error/);
  await expect(page.getByTestId('passkey')).toHaveCount(1);
});

test('without JavaScript the pages say passkeys need it and offer the other factors', async ({ browser }) => {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  await page.goto('/login');
  await expect(page.getByTestId('passkey-sign-in')).toBeHidden();
  await page.goto('/signup');
  await page.getByLabel('Name').fill('Ann Example');
  await page.getByLabel('Email').fill(uniqueEmail('pknojs'));
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page).toHaveURL(/\/security$/);
  await expect(page.getByTestId('add-passkey')).toBeHidden();
  await expect(page.getByTestId('passkeys-need-js')).toBeVisible();
  await context.close();
});

test('passkeys.js is served from this origin, revalidated (its name does not change between releases)', async ({ request }) => {
  // The API client resolves names itself: the address, not the test name.
  const res = await request.get(`http://127.0.0.1:${port}/passkeys.js`);
  expect(res.status()).toBe(200);
  expect(res.headers()['content-type']).toContain('javascript');
  expect(res.headers()['cache-control']).toBe('no-cache');
});

test('a passkey added with JavaScript is renamed and removed without it', async ({ browser }) => {
  const withJs = await browser.newContext();
  const page = await withJs.newPage();
  await virtualAuthenticator(page);
  await signUp(page, uniqueEmail('pkforms'));
  await addPasskey(page, 'Tablet');
  await page.getByTestId('passkey-recovery-codes').getByRole('button', { name: 'I have saved them' }).click();
  await expect(page.getByTestId('passkey')).toHaveCount(1);
  // The same browser session, JavaScript off: the forms are plain posts.
  const noJs = await browser.newContext({ javaScriptEnabled: false, storageState: await withJs.storageState() });
  const plain = await noJs.newPage();
  await plain.goto('/security');
  const item = plain.getByTestId('passkey');
  await item.getByText('Rename', { exact: true }).click();
  await item.getByLabel('New name').fill(' ');
  await item.getByRole('button', { name: 'Save name' }).click();
  await expect(plain.getByTestId('passkey').getByRole('alert')).toContainText('Give the passkey a name');
  await expect(plain.getByTestId('passkey').locator('.passkey-name')).toHaveText('Tablet');
  await plain.getByTestId('passkey').getByLabel('New name').fill('Kitchen tablet');
  await plain.getByTestId('passkey').getByRole('button', { name: 'Save name' }).click();
  await expect(plain.getByTestId('passkey').locator('.passkey-name')).toHaveText('Kitchen tablet');
  await plain.getByTestId('passkey').getByText('Remove', { exact: true }).click();
  await plain.getByTestId('passkey').getByRole('button', { name: 'Remove passkey' }).click();
  await expect(plain.getByTestId('no-passkeys')).toBeVisible();
  await noJs.close();
  await withJs.close();
});
