// Lockdown closes the loop (issue 21, item 9) and times in the person's
// time zone (item 7), with and without JavaScript: a stranger logs in from
// a new browser; the notice (read from the outbox) gives the facts before
// its button; the owner locks the account; the done page's main action is
// the password reset; after the reset the security page names the log-in
// that set the lockdown off, marks it, and says what to do next. Once a
// page is hydrated the browser's zone (Playwright's `timezoneId`) is
// learned and the times are written in it; without JavaScript they stay in
// UTC, said as such.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test, expect, Browser, Page } from '@playwright/test';

import { PASSWORD, uniqueEmail, signUp, expectAccessible } from './helpers';

const port = Number(process.env.E2E_PORT ?? 3000);
const baseURL = `http://auth.example.test:${port}`;
test.use({ baseURL });
const outbox = path.resolve(process.env.E2E_DATA_DIR ?? '../target/e2e-data', 'outbox');
const NEW_PASSWORD = 'a completely different passphrase 42';
const CHROME_ON_LINUX =
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';

function unquote(s: string): string {
  return s.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16)));
}

/** The plain-text part of the newest message of `kind` to `email`. */
async function messageFromOutbox(email: string, kind: string): Promise<string> {
  let found = '';
  await expect
    .poll(
      () => {
        const names = fs.existsSync(outbox) ? fs.readdirSync(outbox).filter((n) => n.endsWith(`-${kind}.eml`)) : [];
        for (const name of names.sort().reverse()) {
          const text = unquote(fs.readFileSync(path.join(outbox, name), 'utf8'));
          if (!text.includes(`To: ${email}`) && !text.includes(`<${email}>`)) continue;
          found = text.split('Content-Type: text/html')[0];
          return true;
        }
        return false;
      },
      { message: `a ${kind} message to ${email} in ${outbox}` },
    )
    .toBe(true);
  return found;
}

function linkIn(text: string, linkPath: string): string {
  const match = text.match(new RegExp(`https?://[^\\s"<]+${linkPath}\\?token=[A-Za-z0-9_-]+`));
  expect(match, `a ${linkPath} link in:\n${text}`).not.toBeNull();
  return match![0];
}

async function logIn(page: Page, email: string, password: string) {
  await page.goto('/login');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Continue' }).click();
  await expect(page.getByTestId('user-email')).toHaveText(email);
}

/** A stranger with the password logs in from a browser the account has
 *  never seen (without JavaScript: no page of theirs tells a zone). */
async function strangerLogsIn(browser: Browser, email: string) {
  const stranger = await browser.newContext({ baseURL, userAgent: CHROME_ON_LINUX, javaScriptEnabled: false });
  await logIn(await stranger.newPage(), email, PASSWORD);
  await stranger.close();
}

for (const javaScriptEnabled of [true, false]) {
  const how = javaScriptEnabled ? 'with' : 'without';
  test(`the notice, the lockdown, the reset and the marked log-in (${how} JavaScript)`, async ({ browser }) => {
    const context = await browser.newContext({ javaScriptEnabled, baseURL, timezoneId: 'Europe/Berlin' });
    const page = await context.newPage();
    const email = uniqueEmail(`loop-${how}`);
    await signUp(page, email);
    if (javaScriptEnabled) {
      // Hydrated and logged in: the zone is learned.
      await expect(page.getByTestId('activity-zone')).toContainText('Europe/Berlin');
    }
    // The owner's own browser has logged in before the stranger does.
    await page.getByRole('button', { name: 'Log out' }).first().click();
    await expect(page).toHaveURL(/\/login$/);
    await logIn(page, email, PASSWORD);
    await strangerLogsIn(browser, email);

    // The notice: what, then browser in words, address and time, then the button.
    const notice = await messageFromOutbox(email, 'notice-new_browser');
    const zone = javaScriptEnabled ? 'CET|CEST' : 'UTC';
    const facts = new RegExp(`Chrome on Linux, from 127\\.0\\.0\\.1, on \\d{1,2} \\w{3} \\d{4}, \\d\\d:\\d\\d (${zone})\\.`);
    expect(notice).toMatch(facts);
    const factsAt = notice.search(facts);
    expect(factsAt).toBeGreaterThan(notice.indexOf('Someone logged in to your account'));
    expect(factsAt).toBeLessThan(notice.indexOf('/lockdown?token='));
    expect(notice).not.toContain('KHTML');

    // The owner locks the account from the notice.
    await page.goto(linkIn(notice, '/lockdown'));
    await page.getByRole('button', { name: 'Lock my account' }).click();
    await expect(page.getByRole('heading', { name: 'Your account is locked' })).toBeVisible();
    await expect(page.getByRole('status')).toContainText('every session has ended');
    // The main action is the reset, not a log-in that would be refused.
    const next = page.getByTestId('lockdown-next');
    await expect(next).toHaveText('Set a new password');
    await expect(next).toHaveClass(/btn-primary/);
    await expect(page.locator('main .btn-primary')).toHaveCount(1);
    await expect(page.getByRole('link', { name: 'Go to log in' })).toHaveCount(0);
    if (javaScriptEnabled) await expectAccessible(page, 'lockdown done');

    // The "locked" mail leads with what happened, then the reset link.
    const locked = await messageFromOutbox(email, 'locked');
    const what = locked.indexOf('of our notice about a log-in from a new browser: Chrome on Linux, from 127.0.0.1');
    expect(what).toBeGreaterThan(0);
    expect(what).toBeLessThan(locked.indexOf('/reset-password?token='));

    // The primary action: a fresh link (as if the first were lost), then the reset.
    await next.click();
    await expect(page.getByRole('heading', { name: 'Forgot your password?' })).toBeVisible();
    await page.getByLabel('Email').fill(email);
    await page.getByRole('button', { name: 'Email me a link' }).click();
    await expect(page.getByRole('status')).toContainText('If an account has that address');
    const reset = await messageFromOutbox(email, 'reset');
    await page.goto(linkIn(reset, '/reset-password'));
    await page.getByLabel('New password').fill(NEW_PASSWORD);
    await page.getByRole('button', { name: 'Set the new password' }).click();
    await expect(page.getByRole('status')).toContainText('Your new password is set');

    // Back in: the security page names what set the lockdown off and marks it.
    await logIn(page, email, NEW_PASSWORD);
    await page.goto('/security');
    const after = page.getByTestId('after-lockdown');
    await expect(after).toContainText('You locked your account on');
    await expect(after).toContainText('What to do next');
    await expect(after).toContainText('passkeys');
    const cause = page.getByTestId('lockdown-cause');
    await expect(cause).toHaveText(
      new RegExp(`^Locked down from this notice: Chrome on Linux from 127\\.0\\.0\\.1, .+ (${zone})$`),
    );
    await expect(page.getByTestId('set-off-lockdown')).toHaveCount(1);
    const marked = page.getByTestId('activity').locator('li.set-off-row');
    await expect(marked).toHaveCount(1);
    await expect(marked).toContainText('127.0.0.1 · Chrome');
    await expect(page.getByTestId('activity-zone')).toContainText(
      javaScriptEnabled ? 'Times are in your time zone, Europe/Berlin.' : 'Times are UTC.',
    );
    if (javaScriptEnabled) await expectAccessible(page, 'security after a lockdown');
    await context.close();
  });
}

test('the time zone is learned once hydrated and the times are written in it', async ({ browser }) => {
  const context = await browser.newContext({ baseURL, timezoneId: 'Asia/Tokyo' });
  const page = await context.newPage();
  const email = uniqueEmail('zone');
  const learned = page.waitForResponse(
    (r) => r.url().endsWith('/api/account/time-zone') && r.request().method() === 'POST',
  );
  await signUp(page, email);
  const answer = await learned;
  expect(answer.status()).toBe(200);
  expect(await answer.json()).toEqual({ timeZone: 'Asia/Tokyo' });
  // The activity is read again in the learned zone, without a reload.
  await expect(page.getByTestId('activity-zone')).toContainText('Times are in your time zone, Asia/Tokyo.');
  await expect(page.getByTestId('activity').locator('.when').first()).toHaveText(/ JST$/);
  // Next time, the zone is known: nothing is sent again.
  let sent = 0;
  page.on('request', (r) => {
    if (r.url().endsWith('/api/account/time-zone')) sent += 1;
  });
  await page.reload();
  await expect(page.getByTestId('activity').locator('.when').first()).toHaveText(/ JST$/);
  await page.goto('/');
  await expect(page.getByTestId('user-email')).toHaveText(email);
  expect(sent).toBe(0);
  await context.close();
});

test('without JavaScript no zone is learned and times say UTC', async ({ browser }) => {
  const context = await browser.newContext({ javaScriptEnabled: false, baseURL, timezoneId: 'Asia/Tokyo' });
  const page = await context.newPage();
  await signUp(page, uniqueEmail('zone-nojs'));
  await expect(page.getByTestId('activity-zone')).toContainText('Times are UTC.');
  await expect(page.getByTestId('activity').locator('.when').first()).toHaveText(/ UTC$/);
  await context.close();
});
