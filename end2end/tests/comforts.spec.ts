// The log-in comforts of issue 21 (items 7 and 5): a show-password toggle,
// the code step naming its account and warning before it ends, a wrong
// code emptied and six digits sent by themselves, focus and announcements
// when a step changes in place, the skip link, the dark theme and reduced
// motion, and the recovery codes left after a recovery-code log-in. With
// JavaScript and without it where it applies. Time is the browser's fake
// clock (page.clock): nothing here sleeps.
import { test, expect, Page } from '@playwright/test';

import {
  PASSWORD, uniqueEmail, totp, nextCode, signUp, enrol, logOut, passwordStep, submitRecoveryCode, expectAccessible,
} from './helpers';

async function hydrated(page: Page) {
  await page.locator('html[data-hydrated]').waitFor({ state: 'attached' });
}

/** A code that is not the current one (nor the next). */
function wrongCode(secret: string): string {
  const now = [totp(secret).generate(), nextCode(secret)];
  return ['000000', '111111', '222222'].find((c) => !now.includes(c))!;
}

/** An account with the app set up, logged out, on /login. */
async function enrolledAccount(page: Page, tag: string) {
  const email = uniqueEmail(tag);
  await signUp(page, email);
  const { secret, codes } = await enrol(page);
  await logOut(page);
  return { email, secret, codes };
}

test.describe('with JavaScript', () => {
  test('the password can be shown and hidden; what is posted does not change', async ({ page }) => {
    const email = uniqueEmail('reveal');
    await page.goto('/signup');
    await hydrated(page);
    const toggle = page.getByRole('button', { name: 'Show password' });
    await expect(toggle).toHaveAttribute('aria-pressed', 'false');
    await expect(toggle).toHaveAttribute('type', 'button');
    await page.getByLabel('Name').fill('Ann Example');
    await page.getByLabel('Email').fill(email);
    const field = page.getByLabel('Password', { exact: true });
    await field.fill(PASSWORD);
    await toggle.click();
    await expect(toggle).toHaveAttribute('aria-pressed', 'true');
    await expect(field).toHaveAttribute('type', 'text');
    await expect(field).toHaveValue(PASSWORD);
    await toggle.click();
    await expect(field).toHaveAttribute('type', 'password');
    await toggle.click();
    await page.getByRole('button', { name: 'Create account' }).click();
    await expect(page).toHaveURL(/\/security$/);
    await logOut(page);

    // Shown while logging in: the same password logs in.
    await hydrated(page);
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await page.getByRole('button', { name: 'Show password' }).click();
    await expect(page.getByLabel('Password', { exact: true })).toHaveAttribute('type', 'text');
    await page.getByRole('button', { name: 'Continue' }).click();
    await expect(page).toHaveURL(/\/$/);
  });

  test('the code step names the account, a wrong code is emptied, six digits submit by themselves', async ({ page }) => {
    const { email, secret } = await enrolledAccount(page, 'codestep');
    await hydrated(page);
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await page.getByRole('button', { name: 'Continue' }).click();
    await expect(page.getByRole('heading', { name: 'Enter your code' })).toBeVisible();
    await expect(page.getByTestId('login-account')).toHaveText(email);
    await expect(page.getByRole('button', { name: 'Use a different account' })).toBeVisible();
    await expect(page.getByTestId('login-status')).toContainText(`Password accepted. Logging in as ${email}.`);
    await expect(page.getByLabel('Authentication code')).toBeFocused();
    await expect(page.getByTestId('step-ends')).toHaveText(/^This step ends at \d\d:\d\d UTC/);
    expect(page.url()).not.toContain(encodeURIComponent(email));
    expect(page.url()).not.toContain(email);

    // A reload draws the same step: the name comes from the server.
    await page.reload();
    await hydrated(page);
    await expect(page.getByTestId('login-account')).toHaveText(email);
    await expectAccessible(page, 'code step with the account named');

    // A wrong code submits itself, is refused, emptied, and the field has
    // the focus again.
    const field = page.getByLabel('Authentication code');
    const wrong = wrongCode(secret);
    await field.fill(`${wrong.slice(0, 3)} ${wrong.slice(3)}`);
    await expect(page.getByRole('alert')).toBeVisible();
    await expect(field).toHaveValue('');
    await expect(field).toBeFocused();
    await expect(page).toHaveURL(/\/login$/);

    // Five digits wait; the sixth, pasted with a space, logs in.
    const code = nextCode(secret);
    await field.fill(code.slice(0, 5));
    await expect(page.getByRole('heading', { name: 'Enter your code' })).toBeVisible();
    await field.fill(`${code.slice(0, 3)} ${code.slice(3)}`);
    await expect(page).toHaveURL(/\/$/);
    await expect(page.getByTestId('user-email')).toHaveText(email);
  });

  test('a recovery code is not sent by itself', async ({ page }) => {
    await page.clock.install();
    const { email, codes } = await enrolledAccount(page, 'recnoauto');
    await passwordStep(page, email);
    await hydrated(page);
    await page.getByRole('link', { name: 'Lost your phone? Use a recovery code' }).click();
    await page.getByLabel('Recovery code').fill(codes[0]);
    // Nothing happens until the button, however long it waits.
    await page.clock.runFor(5_000);
    await expect(page.getByRole('heading', { name: 'Use a recovery code' })).toBeVisible();
    await page.getByRole('button', { name: 'Verify' }).click();
    await expect(page).toHaveURL(/\/$/);
    // The page it lands on says how many are left and offers new ones.
    const left = page.getByTestId('recovery-codes-left');
    await expect(left).toContainText('You have 9 recovery codes left.');
    await expect(left.getByRole('link', { name: 'Make new recovery codes' })).toHaveAttribute('href', '/security#two-factor');
    await expectAccessible(page, 'home after a recovery code');
  });

  test('a minute before the code step ends it says so, and when it has ended, the way back', async ({ page }) => {
    await page.clock.install();
    const { email } = await enrolledAccount(page, 'timer');
    await passwordStep(page, email);
    await hydrated(page);
    const timer = page.getByTestId('step-timer');
    await expect(timer).toHaveRole('status');
    await expect(timer).toBeEmpty();
    await page.clock.fastForward('04:00');
    await expect(timer).toHaveText('This step ends in 1 minute.');
    await expectAccessible(page, 'code step ending soon');
    await page.clock.fastForward('01:05');
    await expect(timer).toHaveText('This step has ended: log in again to get a new one.');
    await page.getByRole('button', { name: 'Log in again' }).click();
    await expect(page.getByRole('heading', { name: 'Log in' })).toBeVisible();
    await expect(page.getByLabel('Email')).toHaveValue(email);
    await expect(page.getByLabel('Password', { exact: true })).toBeFocused();
    await expect(page.getByTestId('login-status')).toHaveText('Your log-in timed out. Enter your password again.');
  });

  test('"Use a different account" puts focus on the email field and says so', async ({ page }) => {
    const { email } = await enrolledAccount(page, 'switch');
    await passwordStep(page, email);
    await hydrated(page);
    const status = page.getByTestId('login-status');
    await expect(status).toHaveRole('status');
    await page.getByRole('button', { name: 'Use a different account' }).click();
    await expect(page.getByRole('heading', { name: 'Log in' })).toBeVisible();
    await expect(page.getByLabel('Email')).toBeFocused();
    await expect(page.getByLabel('Email')).toHaveValue('');
    await expect(status).toContainText('Enter the email and password of the account to use.');
  });

  test('the skip link moves focus to the content once hydrated', async ({ page }) => {
    await page.goto('/login');
    await hydrated(page);
    await page.keyboard.press('Tab');
    const skip = page.getByRole('link', { name: 'Skip to content' });
    await expect(skip).toBeFocused();
    await page.keyboard.press('Enter');
    await expect(page.locator('main#main')).toBeFocused();
    await page.keyboard.press('Tab');
    await expect(page.getByLabel('Email')).toBeFocused();
  });

  test('dark theme passes axe; reduced motion stops the spinner', async ({ page }) => {
    await page.emulateMedia({ colorScheme: 'dark' });
    const { email, secret } = await enrolledAccount(page, 'dark');
    await hydrated(page);
    const background = await page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor);
    expect(background).toBe('rgb(15, 20, 32)');
    await expectAccessible(page, 'log in, dark');
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password', { exact: true }).fill('not the password at all');
    await page.getByRole('button', { name: 'Continue' }).click();
    await expect(page.getByRole('alert')).toBeVisible();
    await expectAccessible(page, 'log in, error, dark');
    await passwordStep(page, email);
    await expectAccessible(page, 'code step, dark');
    await page.getByLabel('Authentication code').fill(wrongCode(secret));
    await expect(page.getByRole('alert')).toBeVisible();
    await expectAccessible(page, 'code step, wrong code, dark');

    await page.emulateMedia({ colorScheme: 'dark', reducedMotion: 'reduce' });
    const animation = await page.evaluate(() => {
      const s = document.createElement('span');
      s.className = 'spinner';
      document.body.append(s);
      const name = getComputedStyle(s).animationName;
      s.remove();
      return name;
    });
    expect(animation).toBe('none');
  });
});

test.describe('without JavaScript', () => {
  test.use({ javaScriptEnabled: false });

  test('a plain password field, the account named, the end time stated, a recovery log-in counts what is left', async ({ page }) => {
    const email = uniqueEmail('comfortsnojs');
    await page.goto('/login');
    await expect(page.getByRole('button', { name: 'Show password' })).toHaveCount(0);
    await expect(page.getByLabel('Password', { exact: true })).toHaveAttribute('type', 'password');
    // The skip link is an ordinary anchor to a focusable <main>.
    await page.keyboard.press('Tab');
    await expect(page.getByRole('link', { name: 'Skip to content' })).toBeFocused();
    await page.keyboard.press('Enter');
    await expect(page.locator('main#main')).toBeFocused();
    await signUp(page, email);
    const { secret, codes } = await enrol(page);
    await logOut(page);

    await passwordStep(page, email);
    await expect(page.getByTestId('login-account')).toHaveText(email);
    await expect(page.getByRole('button', { name: 'Use a different account' })).toBeVisible();
    await expect(page.getByTestId('step-ends')).toHaveText(/^This step ends at \d\d:\d\d UTC, 5 minutes after your password\.$/);
    await expect(page.getByTestId('step-timer')).toBeEmpty();
    await expect(page.getByRole('button', { name: 'Log in again' })).toHaveCount(0);
    await expect(page).toHaveURL(/\/login$/);

    // A wrong code: the page again, the field empty and focused.
    await page.getByLabel('Authentication code').fill(wrongCode(secret));
    await page.getByRole('button', { name: 'Verify' }).click();
    await expect(page.getByRole('alert')).toBeVisible();
    await expect(page.getByLabel('Authentication code')).toHaveValue('');
    await expect(page.getByLabel('Authentication code')).toBeFocused();

    await submitRecoveryCode(page, codes[0]);
    await expect(page).toHaveURL(/\/$/);
    await expect(page.getByTestId('recovery-codes-left')).toContainText('You have 9 recovery codes left.');
    await page.goto('/security');
    await logOut(page);

    // Logged in with the app's code, the home page says nothing of it.
    await passwordStep(page, email);
    await page.getByLabel('Authentication code').fill(nextCode(secret));
    await page.getByRole('button', { name: 'Verify' }).click();
    await expect(page).toHaveURL(/\/$/);
    await expect(page.getByTestId('user-email')).toHaveText(email);
    await expect(page.getByTestId('recovery-codes-left')).toHaveCount(0);
  });
});
