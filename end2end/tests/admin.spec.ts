// The admin page in a browser, with and without JavaScript: an
// administrator (made with `server user groups EMAIL add admins`, two
// factors on) finds a person, opens their account, adds a group, ends a
// log-in, resets their second factors, locks and unlocks, mails a reset
// link and deletes the account; someone else is turned away.
// axe in every state; screenshots at 375 and 1280 px go to docs/screenshots.
import { test, expect, Page } from '@playwright/test';

import { uniqueEmail, signUp, enrol, expectAccessible, enrolledAccount, serverCommand } from './helpers';

const portalPort = Number(process.env.E2E_PORT ?? 3000);
const portal = `http://auth.example.test:${portalPort}`;

/** `server user groups EMAIL add GROUP` on the test server's database. */
function addToGroup(email: string, group: string) {
  serverCommand(['user', 'groups', email, 'add', group]);
}

async function shoot(page: Page, name: string) {
  if (!process.env.SCREENSHOTS) return;
  for (const width of [375, 1280]) {
    await page.setViewportSize({ width, height: 900 });
    await page.screenshot({ path: `../docs/screenshots/admin-${name}-${width}.png`, fullPage: true });
  }
  await page.setViewportSize({ width: 1280, height: 720 });
}

for (const javaScriptEnabled of [true, false]) {
  test(`an administrator finds a person and changes their account (JavaScript ${javaScriptEnabled ? 'on' : 'off'})`, async ({ browser }) => {
    const ann = await enrolledAccount(browser, portal, javaScriptEnabled ? 'ann' : 'annnojs');
    const context = await browser.newContext({ baseURL: portal, javaScriptEnabled: true });
    const setup = await context.newPage();
    const boss = uniqueEmail('boss');
    await signUp(setup, boss);
    await enrol(setup);
    addToGroup(boss, 'admins');
    await setup.close();
    // The administrator's own browser, with or without JavaScript, keeping
    // the cookies of the log-in just made.
    const state = await context.storageState();
    await context.close();
    const own = await browser.newContext({ baseURL: portal, javaScriptEnabled, storageState: state });
    const page = await own.newPage();

    await page.goto('/admin');
    await expect(page.getByRole('heading', { name: 'People' })).toBeVisible();
    await page.getByLabel('Email or name').fill(ann.email.slice(0, 12));
    await page.getByRole('button', { name: 'Search' }).click();
    await expect(page).toHaveURL(/search=/);
    const found = page.getByTestId('person').filter({ hasText: ann.email });
    await expect(found).toHaveCount(1);
    await expect(found.getByText('Two factors')).toBeVisible();
    if (javaScriptEnabled) {
      await expectAccessible(page, 'admin: people');
      await shoot(page, 'people');
    }

    await found.getByRole('link').click();
    await expect(page.getByTestId('person-name')).toBeVisible();
    await expect(page.getByTestId('factors')).toHaveText('an authenticator app');
    await expect(page.getByTestId('admin-log-ins').locator('li')).toHaveCount(1);
    if (javaScriptEnabled) await expectAccessible(page, 'admin: a person');

    // A group, by keyboard alone: type, then Enter submits the form.
    await page.getByLabel('Add to a group').fill('staff');
    await page.getByLabel('Add to a group').press('Enter');
    await expect(page.getByTestId('admin-said')).toHaveText(`Added ${ann.email} to staff.`);
    await expect(page.getByTestId('groups')).toContainText('staff');

    // End her one log-in.
    await page.getByTestId('admin-log-ins').getByRole('button').click();
    await expect(page.getByTestId('admin-said')).toContainText(`Ended the log-in of ${ann.email}`);
    await expect(page.getByText('Nowhere right now.')).toBeVisible();

    // She lost her phone: reset her second factors.
    await page.getByRole('button', { name: 'Reset second factors' }).click();
    await expect(page.getByTestId('admin-said')).toContainText(`Reset the second factors of ${ann.email}`);
    await expect(page.getByTestId('factors')).toHaveText('none: they log in with the password alone');
    // Lock the account, then unlock it.
    await page.getByRole('button', { name: 'Lock the account' }).click();
    await expect(page.getByTestId('admin-said')).toContainText(`Locked ${ann.email}`);
    await page.getByRole('button', { name: 'Unlock the account' }).click();
    await expect(page.getByTestId('admin-said')).toContainText(`Unlocked ${ann.email}`);
    await expect(page.getByRole('button', { name: 'Lock the account' })).toBeVisible();
    const activity = page.getByTestId('admin-activity');
    await expect(activity).toContainText(`by ${boss}`);
    await expect(activity).toContainText('Two-factor authentication reset by an administrator');
    if (javaScriptEnabled) {
      await expectAccessible(page, 'admin: after changes');
      await shoot(page, 'person');
    }
    // She forgot her password: a reset link goes to her address.
    await page.getByRole('button', { name: 'Mail a password-reset link' }).click();
    await expect(page.getByTestId('admin-said')).toContainText(`Mailed a password-reset link to ${ann.email}`);

    // Deleting asks for her address, typed: a wrong one changes nothing.
    const confirm = page.getByLabel('Their email address, to confirm');
    await confirm.fill('someone@else.example');
    await page.getByRole('button', { name: 'Delete the account' }).click();
    await expect(page.getByRole('alert')).toContainText(`type its email address (${ann.email})`);
    await expect(page.getByTestId('person-name')).toBeVisible();
    if (javaScriptEnabled) await expectAccessible(page, 'admin: a refused deletion');
    await page.getByLabel('Their email address, to confirm').fill(ann.email);
    await page.getByRole('button', { name: 'Delete the account' }).click();
    await expect(page.getByTestId('admin-said')).toContainText(`Deleted the account of ${ann.email}`);
    await expect(page.getByRole('heading', { name: 'No such person' })).toBeVisible();
    if (javaScriptEnabled) await expectAccessible(page, 'admin: deleted');
    await page.getByRole('link', { name: 'Back to people' }).click();
    await page.getByLabel('Email or name').fill(ann.email);
    await page.getByRole('button', { name: 'Search' }).click();
    await expect(page.getByTestId('people-summary')).toHaveText('Nobody matches.');
    await own.close();
  });
}

test('someone who is not an administrator is turned away, saying why', async ({ browser }) => {
  const context = await browser.newContext({ baseURL: portal });
  const page = await context.newPage();
  await signUp(page, uniqueEmail('notadmin'));
  await enrol(page);
  await page.goto('/admin');
  await expect(page.getByRole('heading', { name: 'Administrators only' })).toBeVisible();
  await expect(page.getByTestId('admin-refused')).toHaveText('This page is for administrators.');
  await expectAccessible(page, 'admin: refused');
  await shoot(page, 'refused');
  await context.close();
});
