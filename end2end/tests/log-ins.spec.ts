// "Where you're logged in" on the security page (issue 21, item 7), with
// and without JavaScript: two browsers log in to one account; the first
// sees both in words ("Firefox on Windows", "Chrome on Linux") with their
// address, this one marked, and logs the other out from the list. With
// JavaScript the row goes in place and a status line says so; without it
// the form posts and the page comes back saying the same. The other
// browser is logged out at once; the first one goes on, and "Log out"
// beside its own row is a log-out.
import { test, expect, Page } from '@playwright/test';

import { PASSWORD, uniqueEmail, signUp, expectAccessible } from './helpers';

const port = Number(process.env.E2E_PORT ?? 3000);
const baseURL = `http://127.0.0.1:${port}`;
const FIREFOX_ON_WINDOWS = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0';
const CHROME_ON_LINUX =
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';

async function hydrated(page: Page) {
  await page.locator('html[data-hydrated]').waitFor({ state: 'attached' });
}

async function logIn(page: Page, email: string) {
  await page.goto('/login');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByRole('button', { name: 'Continue' }).click();
  await expect(page).toHaveURL(/\/$/);
}

for (const javaScriptEnabled of [true, false]) {
  const how = javaScriptEnabled ? 'with' : 'without';
  test(`log out another browser from the list of log-ins (${how} JavaScript)`, async ({ browser }) => {
    const first = await browser.newContext({ javaScriptEnabled, baseURL, userAgent: FIREFOX_ON_WINDOWS });
    const second = await browser.newContext({ javaScriptEnabled, baseURL, userAgent: CHROME_ON_LINUX });
    const page = await first.newPage();
    const other = await second.newPage();
    const email = uniqueEmail(`log-ins-${how}`);
    await signUp(page, email);
    await logIn(other, email);

    // (Not a hash change on the page sign-up left: a new load.)
    await page.goto('/');
    await page.goto('/security#log-ins');
    if (javaScriptEnabled) await hydrated(page);
    const card = page.getByTestId('log-ins');
    await expect(card.getByRole('heading', { name: "Where you're logged in" })).toBeVisible();
    const rows = card.getByTestId('log-in');
    await expect(rows).toHaveCount(2);
    const theirs = rows.filter({ hasText: 'Chrome on Linux' });
    const mine = rows.filter({ has: page.getByTestId('this-browser') });
    await expect(theirs).toContainText('from 127.0.0.1');
    await expect(theirs).not.toContainText('This browser');
    await expect(mine).toContainText('Firefox on Windows');
    await expect(mine.getByTestId('this-browser')).toHaveText('This browser');
    await expect(mine).toContainText(/First seen .+ · last seen .+/);
    // Each button says which browser it logs out.
    await expect(card.getByRole('button', { name: 'Log out this browser' })).toBeVisible();
    // The page stays (no load) when enhanced: a mark left on it survives.
    if (javaScriptEnabled) await page.evaluate(() => ((window as unknown as { stayed: boolean }).stayed = true));

    await card.getByRole('button', { name: 'Log out Chrome on Linux' }).click();
    await expect(card.getByTestId('log-ins-said')).toHaveText('Logged out Chrome on Linux.');
    // A live region drawn with the page (a polite one, not a second
    // `status` beside the page's own), so the words put in it are read.
    await expect(card.getByTestId('log-ins-said')).toHaveAttribute('aria-live', 'polite');
    await expect(theirs).toHaveCount(0);
    await expect(rows).toHaveCount(1);
    if (javaScriptEnabled) {
      expect(await page.evaluate(() => (window as unknown as { stayed?: boolean }).stayed)).toBe(true);
      await expect(page).toHaveURL(/\/security/);
      // The button is gone with its row: focus goes to the card's heading.
      await expect(card.getByRole('heading', { name: "Where you're logged in" })).toBeFocused();
      // The activity, read again, says what happened.
      await expect(page.getByTestId('changes')).toContainText('Logged out one device');
      await expectAccessible(page, 'log-ins, one logged out');
    } else {
      await expect(page.getByTestId('changes')).toContainText('Logged out one device');
    }

    // The other browser is logged out at once.
    await other.goto('/security');
    await expect(other).toHaveURL(/\/login/);
    const r = await second.request.get('/api/authentication');
    expect(r.status()).toBe(401);

    // This one goes on; its own "Log out" is a log-out.
    await page.goto('/');
    await page.goto('/security#log-ins');
    if (javaScriptEnabled) await hydrated(page);
    await expect(rows).toHaveCount(1);
    await card.getByRole('button', { name: 'Log out this browser' }).click();
    await expect(page).toHaveURL(/\/login$/);
    expect((await first.request.get('/api/authentication')).status()).toBe(401);
    await first.close();
    await second.close();
  });
}
