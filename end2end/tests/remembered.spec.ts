// Remembered browsers (issue 24): "Don't ask again on this browser" at the
// code step. A browser with a profile on disk (a persistent context) ticks
// it, is closed and opened again, and logs in with the password alone;
// the security page lists it as this browser and forgets it, after which
// the code is asked again. Without JavaScript the box is a plain checkbox
// of the form and the list's buttons are forms.
import { test, expect, chromium, BrowserContext, Page } from '@playwright/test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { PASSWORD, uniqueEmail, signUp, enrol, nextCode, expectAccessible } from './helpers';

const port = Number(process.env.E2E_PORT ?? 3000);
const baseURL = `http://127.0.0.1:${port}`;

/** A browser with its profile in `dir`: what it remembers survives a close. */
async function browserAt(dir: string, javaScriptEnabled: boolean): Promise<BrowserContext> {
  const launch = test.info().project.use.launchOptions ?? {};
  return chromium.launchPersistentContext(dir, {
    executablePath: launch.executablePath,
    args: launch.args,
    baseURL,
    javaScriptEnabled,
    viewport: { width: 375, height: 800 },
  });
}

async function hydrated(page: Page, javaScriptEnabled: boolean) {
  if (javaScriptEnabled) await page.locator('html[data-hydrated]').waitFor({ state: 'attached' });
}

async function password(page: Page, email: string) {
  await page.goto('/login');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByRole('button', { name: 'Continue' }).click();
}

async function logOutHere(page: Page) {
  await page.goto('/');
  await page.getByRole('button', { name: 'Log out' }).first().click();
  await expect(page).toHaveURL(/\/login$/);
}

for (const javaScriptEnabled of [true, false]) {
  const how = javaScriptEnabled ? 'with' : 'without';
  test(`a remembered browser logs in with the password alone after a restart, until forgotten (${how} JavaScript)`, async ({ browser }) => {
    // The account, made in a browser of its own.
    const setup = await browser.newContext({ baseURL });
    const setupPage = await setup.newPage();
    const email = uniqueEmail(`remember-${how}`);
    await signUp(setupPage, email);
    const { secret } = await enrol(setupPage);
    await setup.close();

    const dir = mkdtempSync(join(tmpdir(), 'remembered-'));
    try {
      let context = await browserAt(dir, javaScriptEnabled);
      let page = context.pages()[0] ?? (await context.newPage());
      await password(page, email);
      await expect(page.getByRole('heading', { name: 'Enter your code' })).toBeVisible();
      await hydrated(page, javaScriptEnabled);
      const box = page.getByLabel("Don't ask again on this browser for 30 days");
      await expect(box).not.toBeChecked();
      await box.check();
      await page.getByLabel('Authentication code').fill(nextCode(secret));
      await page.getByRole('button', { name: 'Verify' }).click();
      await expect(page).toHaveURL(/\/$/);
      const cookie = (await context.cookies()).find((c) => c.name === 'remember');
      expect(cookie?.httpOnly).toBe(true);
      expect(cookie?.sameSite).toBe('Strict');
      // Logged out, the browser closed and opened again.
      await logOutHere(page);
      await context.close();
      context = await browserAt(dir, javaScriptEnabled);
      page = context.pages()[0] ?? (await context.newPage());
      await password(page, email);
      await expect(page).toHaveURL(/\/$/);
      await expect(page.getByRole('heading', { name: 'Enter your code' })).toHaveCount(0);

      // Listed on the security page as this browser; forgotten there.
      await page.goto('/security#remembered');
      await hydrated(page, javaScriptEnabled);
      const card = page.getByTestId('remembered-browsers');
      await expect(card.getByRole('heading', { name: 'Remembered browsers' })).toBeVisible();
      await expect(card.getByTestId('remembered-browser')).toHaveCount(1);
      await expect(card.getByTestId('remembered-browser')).toContainText('This browser');
      await expect(card.getByTestId('remembered-browser')).toContainText(/Remembered from 127\.0\.0\.1/);
      if (javaScriptEnabled) await expectAccessible(page, 'security page with a remembered browser');
      if (process.env.SCREENSHOTS) {
        await page.screenshot({ path: `../docs/screenshots/remembered-375${javaScriptEnabled ? '' : '-nojs'}.png`, fullPage: true });
      }
      await card.getByRole('button', { name: 'Forget this browser' }).click();
      await expect(page.getByTestId('remembered-said')).toHaveText(
        /^Forgot .+: it will be asked for a second factor at its next log-in\.$/,
      );
      await expect(card.getByTestId('remembered-browser')).toHaveCount(0);
      // With JavaScript the card is drawn again in place; the focus goes to
      // its new heading (without, the page loads at #remembered).
      if (javaScriptEnabled) await expect(card.getByRole('heading', { name: 'Remembered browsers' })).toBeFocused();
      expect((await context.cookies()).find((c) => c.name === 'remember')).toBeUndefined();
      await expect(page.getByTestId('changes')).toContainText('Remembered browsers forgotten');

      // The code is asked again.
      await logOutHere(page);
      await password(page, email);
      await expect(page.getByRole('heading', { name: 'Enter your code' })).toBeVisible();
      await context.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
