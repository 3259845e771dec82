// The whole product in a browser without JavaScript, and in one whose
// WebAssembly has not arrived yet: every form is a real POST, the server
// answers with a redirect or the page again, and no password or code ever
// travels in a URL.
import { test, expect, Page, Route } from '@playwright/test';

import { PASSWORD, uniqueEmail, totp, nextCode, signUp, enrol, logOut, passwordStep, submitRecoveryCode } from './helpers';

/** Every URL the page requests, to check none carries a secret. */
function recordRequests(page: Page): string[] {
  const urls: string[] = [];
  page.on('request', (r) => urls.push(r.url()));
  return urls;
}

/** The only query string any page uses is the recovery-code switch. */
function expectNoSecretsInUrls(urls: string[], secrets: string[]) {
  expect(urls.length).toBeGreaterThan(3);
  for (const u of urls) {
    const { search } = new URL(u);
    expect(['', '?with=recovery'], u).toContain(search);
    for (const s of secrets) expect(u, `a secret in ${u}`).not.toContain(s);
  }
}

test.describe('without JavaScript', () => {
  test.use({ javaScriptEnabled: false });

  test('a common password and a look-alike email are refused, saying why', async ({ page }) => {
    await page.goto('/signup');
    await page.getByLabel('Name').fill('Ann');
    // A Cyrillic "а" among Latin letters prints like another account.
    await page.getByLabel('Email').fill('\u0430nn@example.com');
    await page.getByLabel('Password').fill('password1234');
    await page.getByRole('button', { name: 'Create account' }).click();
    await expect(page.getByText('mixes letters from different alphabets')).toBeVisible();
    await expect(page.getByLabel('Email')).toHaveAttribute('aria-invalid', 'true');
    await page.getByLabel('Email').fill(uniqueEmail('weak'));
    await page.getByLabel('Password').fill('password1234');
    await page.getByRole('button', { name: 'Create account' }).click();
    await expect(page.getByText('This password is too easy to guess.')).toBeVisible();
    await expect(page.getByLabel('Password')).toHaveAttribute('aria-invalid', 'true');
    await expect(page).toHaveURL(/\/signup$/);
  });

  test('sign up, enrol, log in with code and recovery code, turn off', async ({ page }) => {
    const urls = recordRequests(page);
    const posts: string[] = [];
    page.on('request', (r) => { if (r.method() === 'POST') posts.push(new URL(r.url()).pathname); });
    const email = uniqueEmail('nojs');
    await signUp(page, email);
    await expect(page.locator('.qr svg')).toHaveCount(0);

    // The server draws the QR code; the key is read off the page.
    const { secret, codes } = await enrol(page);
    const used = [totp(secret).generate()];
    await logOut(page);

    await passwordStep(page, email);
    // A reload stays on the code step: the step is server state.
    await page.reload();
    await expect(page.getByRole('heading', { name: 'Enter your code' })).toBeVisible();
    await expect(page.locator('li[aria-current="step"]')).toHaveText('Code');
    const code = nextCode(secret);
    used.push(code);
    await page.getByLabel('Authentication code').fill(`${code.slice(0, 3)}-${code.slice(3)}`);
    await page.getByRole('button', { name: 'Verify' }).click();
    await expect(page).toHaveURL(/\/$/);
    await expect(page.getByTestId('user-email')).toHaveText(email);
    await logOut(page);

    // The recovery-code path is a link, so it needs no script either.
    await passwordStep(page, email);
    await submitRecoveryCode(page, codes[0]);
    await expect(page).toHaveURL(/\/$/);

    // A wrong password is answered by the page again, email kept.
    await page.goto('/security');
    const panel = page.getByTestId('turn-off');
    await panel.locator('summary').click();
    await panel.getByLabel('Password').fill('not my password at all');
    await panel.getByLabel('6-digit code or recovery code').fill(codes[1]);
    await panel.getByRole('button', { name: 'Turn off two-factor authentication' }).click();
    await expect(page.locator('#off-password-error')).toHaveText('That is not your current password.');
    await expect(page.getByTestId('turn-off')).toHaveAttribute('open', '');
    await page.getByTestId('turn-off').getByLabel('Password').fill(PASSWORD);
    await page.getByTestId('turn-off').getByLabel('6-digit code or recovery code').fill(codes[1]);
    await page.getByTestId('turn-off').getByRole('button', { name: 'Turn off two-factor authentication' }).click();
    await expect(page.getByRole('button', { name: 'Set up two-factor authentication' })).toBeVisible();

    await logOut(page);
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill('wrong password entirely');
    await page.getByRole('button', { name: 'Continue' }).click();
    await expect(page.getByRole('alert')).toHaveText('Wrong email or password.');
    await expect(page.getByLabel('Email')).toHaveValue(email);
    await expect(page.getByLabel('Password')).toHaveValue('');
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Continue' }).click();
    await expect(page).toHaveURL(/\/$/);
    await expect(page.getByTestId('twofa-status')).toHaveText('Off');

    expect(posts).toContain('/signup');
    expect(posts).toContain('/login');
    expect(posts).toContain('/security');
    expect(posts).toContain('/logout');
    expectNoSecretsInUrls(urls, [PASSWORD, 'password=', secret, ...used, ...codes.slice(0, 2)]);
  });

  test('the enrolment self-test explains a wrong code', async ({ page }) => {
    await signUp(page, uniqueEmail('nojs-selftest'));
    await page.getByRole('button', { name: 'Set up two-factor authentication' }).click();
    const secret = (await page.getByTestId('manual-key').innerText()).replace(/\s+/g, '');
    await page.getByLabel('6-digit code').fill(totp(secret).generate({ timestamp: Date.now() + 150_000 }));
    await page.getByRole('button', { name: 'Turn on' }).click();
    // Five steps ahead, or four if a step ended between typing and the
    // server's check (then "about 2 minutes").
    await expect(page.getByRole('alert')).toContainText(/your phone's clock is about (150 seconds|2 minutes) fast/);
    // The same key is still there to scan.
    await expect(page.getByTestId('manual-key')).toHaveText(/.+/);
    expect((await page.getByTestId('manual-key').innerText()).replace(/\s+/g, '')).toEqual(secret);
  });
});

test('a form submitted before the WebAssembly loads still posts, and typing is kept when it arrives', async ({ page }) => {
  const urls = recordRequests(page);
  const held: Route[] = [];
  await page.route(/\.wasm$/, (route) => { held.push(route); });
  const email = uniqueEmail('early');
  await page.goto('/signup');
  await page.getByLabel('Name').fill('Early Bird');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill('short');
  await page.getByRole('button', { name: 'Create account' }).click();
  // The server answered the POST with the page and the errors.
  await expect(page.getByText('Use at least 12 characters.')).toBeVisible();
  await expect(page.getByLabel('Email')).toHaveValue(email);
  await expect(page.getByLabel('Password')).toHaveValue('');
  expectNoSecretsInUrls(urls, ['short', 'password=']);

  // Typed while the WebAssembly is still on its way...
  await page.getByLabel('Name').fill('Early Bird Again');
  await page.getByLabel('Password').fill(PASSWORD);
  // ...and kept when it arrives and hydrates the page.
  await page.unroute(/\.wasm$/);
  for (const r of held) await r.continue().catch(() => {});
  await page.locator('html[data-hydrated]').waitFor({ state: 'attached' });
  await expect(page.getByLabel('Name')).toHaveValue('Early Bird Again');
  await expect(page.getByLabel('Email')).toHaveValue(email);
  await expect(page.getByLabel('Password')).toHaveValue(PASSWORD);
  // The page now sends through the API, in place.
  const call = page.waitForRequest('**/api/authentication/register');
  await page.getByRole('button', { name: 'Create account' }).click();
  expect((await call).method()).toBe('POST');
  await expect(page).toHaveURL(/\/security$/);
  await page.goto('/');
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Welcome, Early Bird Again');
  expectNoSecretsInUrls(urls, [PASSWORD, 'password=']);
});
