// The admin page in a browser, with and without JavaScript: an
// administrator (made with `server user groups EMAIL add admins`, two
// factors on) finds a person, opens their account, adds a group, ends a
// log-in, resets their second factors, locks and unlocks, mails a reset
// link and deletes the account; makes, renames and deletes a group; filters
// everyone's activity and downloads it; makes an invitation that a new
// person uses, and revokes another; asks who may reach an address;
// reads the overview; does a
// person's page by keyboard alone. Someone else is turned away.
// axe in every state; screenshots at 375 and 1280 px go to docs/screenshots.
import { test, expect, Browser, Page } from '@playwright/test';

import { uniqueEmail, signUp, enrol, expectAccessible, enrolledAccount, serverCommand, PASSWORD } from './helpers';

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

/** A new administrator (signed up, enrolled, in `admins`) in a browser of
 * their own, with or without JavaScript, logged in. */
async function administrator(browser: Browser, javaScriptEnabled: boolean) {
  const context = await browser.newContext({ baseURL: portal, javaScriptEnabled: true });
  const setup = await context.newPage();
  const boss = uniqueEmail('boss');
  await signUp(setup, boss);
  // Before enrolling: turning two factors on then drops what the server
  // keeps of the session, so the pages read the new group at once.
  addToGroup(boss, 'admins');
  await enrol(setup);
  await setup.close();
  // Keeping the cookies of the log-in just made.
  const state = await context.storageState();
  await context.close();
  const own = await browser.newContext({ baseURL: portal, javaScriptEnabled, storageState: state });
  return { boss, own, page: await own.newPage() };
}

/// With JavaScript, act once the page has hydrated and its data arrived,
/// so that the enhanced forms (in place, no page load) are what is tested.
/// What is typed before that is kept: see the last test.
async function settled(page: Page, javaScriptEnabled: boolean) {
  if (!javaScriptEnabled) return;
  await page.locator('html[data-hydrated]').waitFor({ state: 'attached' });
  await page.waitForLoadState('networkidle');
}

for (const javaScriptEnabled of [true, false]) {
  test(`an administrator finds a person and changes their account (JavaScript ${javaScriptEnabled ? 'on' : 'off'})`, async ({ browser }) => {
    const ann = await enrolledAccount(browser, portal, javaScriptEnabled ? 'ann' : 'annnojs');
    const { boss, own, page } = await administrator(browser, javaScriptEnabled);

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
    await expect(page.getByTestId('admin-log-ins')).toContainText('With the password and a code from the app');
    if (javaScriptEnabled) await expectAccessible(page, 'admin: a person');

    // A group, by keyboard alone: type, then Enter submits the form.
    await page.getByLabel('Add to a group').fill('staff');
    await page.getByLabel('Add to a group').press('Enter');
    await expect(page.getByTestId('admin-said')).toHaveText(`Added ${ann.email} to staff.`);
    await expect(page.getByTestId('groups')).toContainText('staff');
    // Done: the box starts again empty (with JavaScript, in place).
    await expect(page.getByLabel('Add to a group')).toHaveValue('');

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
  await page.goto('/');
  await expect(page.getByTestId('user-email')).toBeVisible();
  await expect(page.getByTestId('admin-link')).toHaveCount(0);
  await page.goto('/admin');
  await expect(page.getByRole('heading', { name: 'Administrators only' })).toBeVisible();
  await expect(page.getByTestId('admin-refused')).toHaveText('This page is for administrators.');
  await expectAccessible(page, 'admin: refused');
  await shoot(page, 'refused');
  await context.close();
});

for (const javaScriptEnabled of [true, false]) {
  test(`groups are made, renamed and deleted, everyone's activity filtered and downloaded, the overview read (JavaScript ${javaScriptEnabled ? 'on' : 'off'})`, async ({ browser }) => {
    const ann = await enrolledAccount(browser, portal, javaScriptEnabled ? 'grp' : 'grpnojs');
    const { own, page } = await administrator(browser, javaScriptEnabled);
    const name = `crew-${Date.now().toString(36)}${javaScriptEnabled ? 'j' : 'n'}`;

    await page.goto('/admin');
    await page.getByRole('navigation', { name: 'Administration' }).getByRole('link', { name: 'Groups' }).click();
    await expect(page.getByRole('heading', { name: 'Groups' })).toBeVisible();
    await expect(page.getByRole('link', { name: 'Groups' })).toHaveAttribute('aria-current', 'page');
    await page.getByLabel('Name', { exact: true }).fill(name);
    await page.getByLabel("First member's address").fill(ann.email);
    await page.getByRole('button', { name: 'Make the group' }).click();
    await expect(page.getByTestId('admin-said')).toHaveText(`Made the group ${name} with ${ann.email} in it.`);
    const line = page.getByTestId('group-list').locator('li').filter({ has: page.getByText(name, { exact: true }) });
    await expect(line).toContainText('1 member · 1 with two factors');
    await expect(page.getByLabel('Name', { exact: true })).toHaveValue('');
    if (javaScriptEnabled) {
      await expectAccessible(page, 'admin: groups');
      await shoot(page, 'groups');
    }
    // A name taken is refused, saying why; then renamed.
    await line.getByLabel('New name').fill('admins');
    await line.getByRole('button', { name: 'Rename' }).click();
    await expect(page.getByRole('alert')).toContainText('add people to it one by one');
    if (javaScriptEnabled) await expectAccessible(page, 'admin: a refused group change');
    const renamed = `${name}-2`;
    const before = page.getByTestId('group-list').locator('li').filter({ has: page.getByText(name, { exact: true }) });
    await before.getByLabel('New name').fill(renamed);
    await before.getByRole('button', { name: 'Rename' }).click();
    await expect(page.getByTestId('admin-said')).toHaveText(`Renamed ${name} to ${renamed} (1 person).`);
    const after = page.getByTestId('group-list').locator('li').filter({ has: page.getByText(renamed, { exact: true }) });
    // Its members are the people list filtered by it.
    await after.getByRole('link', { name: '1 member' }).click();
    await expect(page.getByTestId('person')).toHaveCount(1);
    await expect(page.getByTestId('person')).toContainText(ann.email);
    await page.getByRole('navigation', { name: 'Administration' }).getByRole('link', { name: 'Groups' }).click();
    await page.getByTestId('group-list').locator('li').filter({ has: page.getByText(renamed, { exact: true }) })
      .getByRole('button', { name: 'Delete' }).click();
    await expect(page.getByTestId('admin-said')).toHaveText(`Deleted ${renamed}: 1 person left it.`);
    await expect(page.getByText(renamed, { exact: true })).toHaveCount(0);

    // Everyone's activity: her group events, by filter; then as CSV.
    await page.getByRole('link', { name: 'Activity' }).click();
    await expect(page.getByRole('heading', { name: 'Activity' })).toBeVisible();
    await page.getByLabel("Person's address").fill(ann.email);
    await page.getByLabel('Event').selectOption({ label: 'Taken out of a group by an administrator' });
    await page.getByRole('button', { name: 'Filter' }).click();
    await expect(page).toHaveURL(/kind=group_removed/);
    await expect(page.getByTestId('activity-summary')).toContainText('1 event.');
    await expect(page.getByTestId('all-activity')).toContainText(ann.email);
    if (javaScriptEnabled) {
      await expectAccessible(page, 'admin: activity');
      await shoot(page, 'activity');
    }
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('link', { name: 'Download as CSV' }).click(),
    ]);
    expect(download.suggestedFilename()).toMatch(/^activity-\d{4}-\d{2}-\d{2}\.csv$/);
    const csv = await (await import('node:fs/promises')).readFile(await download.path(), 'utf8');
    const rows = csv.trim().split('\r\n');
    expect(rows[0]).toBe('time,kind,event,person,by,address,user_agent,detail');
    expect(rows).toHaveLength(2);
    expect(rows[1]).toContain(`,group_removed,Taken out of a group by an administrator,${ann.email},`);

    // Who may reach an address: the gate's own rules, for her and for
    // someone not logged in.
    await page.getByRole('link', { name: 'Access rules' }).click();
    await expect(page.getByRole('heading', { name: 'Access rules' })).toBeVisible();
    // The suite's rules file (end2end/gate-rules.toml): five rules, the
    // vault's saying a remembered browser will not do.
    await expect(page.getByTestId('rules').locator('li')).toHaveCount(5);
    await expect(page.getByTestId('rules').locator('li').nth(3)).toContainText('no remembered browser');
    await page.getByLabel('Address', { exact: true }).fill('https://app.example.test/Admin/users');
    await page.getByLabel("Person's address").fill(ann.email);
    await page.getByRole('button', { name: 'Who may reach it?' }).click();
    const answers = page.getByTestId('rule-answers');
    await expect(answers).toContainText('Someone not logged in');
    await expect(answers).toContainText('is sent to log in (rule 2)');
    await expect(answers).toContainText(`${ann.email} with two factors`);
    await expect(answers).toContainText('is refused (403) (rule 3)');
    // Asked from a client's address (for rules limited to networks); one
    // that is not an address is said to be so.
    await expect(page.getByLabel('From the address')).toHaveValue('');
    await page.getByLabel('From the address').fill('192.168.1.20');
    await page.getByRole('button', { name: 'Who may reach it?' }).click();
    await expect(page).toHaveURL(/from=192\.168\.1\.20/);
    await expect(page.getByLabel('From the address')).toHaveValue('192.168.1.20');
    await expect(answers).toContainText('is refused (403) (rule 3)');
    if (javaScriptEnabled) {
      await expectAccessible(page, 'admin: access rules');
      await shoot(page, 'rules');
    }
    await page.getByLabel('From the address').fill('intranet');
    await page.getByRole('button', { name: 'Who may reach it?' }).click();
    await expect(page.getByTestId('admin-refused')).toContainText('IPv4 or IPv6 address');
    await page.goto('/admin?view=rules');

    // The overview: accounts and their protection, the day, the queues.
    await page.getByRole('link', { name: 'Overview' }).click();
    await expect(page.getByRole('heading', { name: 'Overview' })).toBeVisible();
    const sections = page.getByTestId('overview-section');
    await expect(sections.nth(0)).toContainText('With two factors');
    await expect(sections.nth(1)).toContainText('admins');
    await expect(sections.nth(2)).toContainText('Logged in');
    await expect(page.getByTestId('overview-running')).toContainText(/^Version \d+\.\d+\.\d+ on (SQLite|PostgreSQL)\.$/);
    if (javaScriptEnabled) {
      await expectAccessible(page, 'admin: overview');
      await shoot(page, 'overview');
    }
    await own.close();
  });
}

for (const javaScriptEnabled of [true, false]) {
  test(`an invitation makes one account in its group, and a revoked one none (JavaScript ${javaScriptEnabled ? 'on' : 'off'})`, async ({ browser }) => {
    const { boss, own, page } = await administrator(browser, javaScriptEnabled);
    const crew = javaScriptEnabled ? 'crew' : 'crewnojs';
    addToGroup(boss, crew);
    const invited = uniqueEmail('invited');

    // The home page leads administrators to their page.
    await page.goto('/');
    await page.getByTestId('admin-link').click();
    await expect(page.getByRole('heading', { name: 'People' })).toBeVisible();
    await page.goto('/admin?view=invitations');
    await expect(page.getByRole('heading', { name: 'Invitations' })).toBeVisible();
    await page.getByLabel('For the address (optional)').fill(invited);
    await page.getByLabel(crew, { exact: true }).check();
    await page.getByRole('button', { name: 'Make the invitation' }).click();
    await expect(page.getByTestId('admin-said')).toContainText(`Invitation made for ${invited}`);
    const link = await page.getByTestId('shown-link').inputValue();
    expect(link).toContain('/signup?invite=');
    await expect(page.getByTestId('invitation-list').locator('li').first()).toContainText(`For ${invited}`);
    await expect(page.getByLabel('For the address (optional)')).toHaveValue('');
    if (javaScriptEnabled) {
      await expectAccessible(page, 'admin: invitation made');
      await shoot(page, 'invitations');
    }

    // The invited person, in a browser of their own: the address is fixed.
    const theirs = await browser.newContext({ baseURL: portal, javaScriptEnabled });
    const newcomer = await theirs.newPage();
    await newcomer.goto(link);
    await expect(newcomer.getByLabel('Email')).toHaveValue(invited);
    await expect(newcomer.getByLabel('Email')).toHaveJSProperty('readOnly', true);
    if (javaScriptEnabled) await expectAccessible(newcomer, 'sign-up with an invitation');
    await newcomer.getByLabel('Name').fill('Invited Person');
    await newcomer.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await newcomer.getByRole('button', { name: 'Create account' }).click();
    await expect(newcomer).toHaveURL(/\/security$/);
    // Used: the link now says so (to a browser not logged in).
    const stranger = await browser.newContext({ baseURL: portal, javaScriptEnabled });
    const late = await stranger.newPage();
    await late.goto(link);
    await expect(late.getByTestId('link-state')).toContainText('used already');

    // The list says who used it; a second invitation, for anyone, revoked.
    await page.goto('/admin?view=invitations');
    await settled(page, javaScriptEnabled);
    await expect(page.getByTestId('invitation-list').locator('li').first()).toContainText(`by ${invited}`);
    await page.getByRole('button', { name: 'Make the invitation' }).click();
    await expect(page.getByTestId('admin-said')).toContainText('Invitation made for any address');
    const second = await page.getByTestId('shown-link').inputValue();
    const row = page.getByTestId('invitation-list').locator('li').filter({ hasText: 'For any address' }).first();
    await row.getByRole('button', { name: 'Revoke' }).click();
    await expect(page.getByTestId('admin-said')).toContainText('Revoked the invitation for any address');
    await expect(page.getByTestId('shown-link')).toHaveCount(0);
    if (javaScriptEnabled) await expectAccessible(page, 'admin: invitation revoked');
    await late.goto(second);
    await expect(late.getByTestId('link-state')).toContainText('revoked');
    if (javaScriptEnabled) await expectAccessible(late, 'a revoked invitation');
    await stranger.close();
    await theirs.close();
    await own.close();
  });
}

for (const javaScriptEnabled of [true, false]) {
  test(`a group's deadline for two factors is set, seen by a member without them, and removed (JavaScript ${javaScriptEnabled ? 'on' : 'off'})`, async ({ browser }) => {
    const { own, page } = await administrator(browser, javaScriptEnabled);
    const crew = javaScriptEnabled ? 'deadlinecrew' : 'deadlinecrewnojs';
    // A member who has not turned two factors on.
    const theirs = await browser.newContext({ baseURL: portal, javaScriptEnabled });
    const member = await theirs.newPage();
    const email = uniqueEmail('late');
    await signUp(member, email);
    addToGroup(email, crew);

    const inTenDays = new Date(Date.now() + 10 * 86_400_000).toISOString().slice(0, 10);
    await page.goto('/admin?view=groups');
    await settled(page, javaScriptEnabled);
    const line = page.getByTestId('group-list').locator('li').filter({ hasText: crew });
    await line.getByLabel('Two factors by').fill(inTenDays);
    await expect(line.getByLabel('Days for who joins later')).toHaveValue('14');
    await line.getByLabel('Days for who joins later').fill('21');
    await line.getByRole('button', { name: 'Set' }).click();
    await expect(page.getByTestId('admin-said')).toContainText(`${crew}: Two factors by`);
    await expect(page.getByTestId('group-list').locator('li').filter({ hasText: crew }).getByTestId('deadline'))
      .toContainText('21 days for those who join later');
    if (javaScriptEnabled) await expectAccessible(page, 'admin: a deadline set');

    await member.goto('/');
    await expect(member.getByTestId('two-factor-due')).toContainText(/asks you to turn on two factors by .*: (10|11) days left/);
    if (javaScriptEnabled) {
      await expectAccessible(member, 'home with a deadline');
      for (const width of [375, 1280]) {
        await member.setViewportSize({ width, height: 900 });
        if (process.env.SCREENSHOTS) await member.screenshot({ path: `../docs/screenshots/deadline-home-${width}.png`, fullPage: true });
      }
    }
    await member.getByRole('link', { name: 'Turn them on' }).click();
    await expect(member).toHaveURL(/\/security\?need=two-factor/);

    await page.goto('/admin?view=groups');
    await page.getByTestId('group-list').locator('li').filter({ hasText: crew })
      .getByRole('button', { name: 'Remove the deadline' }).click();
    await expect(page.getByTestId('admin-said')).toContainText(`${crew} has no deadline for two factors any more.`);
    await member.goto('/');
    await expect(member.getByTestId('user-email')).toBeVisible();
    await expect(member.getByTestId('two-factor-due')).toHaveCount(0);
    await theirs.close();
    await own.close();
  });
}

for (const javaScriptEnabled of [true, false]) {
  test(`an OpenID app is added with its secret shown once, changed, given a new secret and removed (JavaScript ${javaScriptEnabled ? 'on' : 'off'})`, async ({ browser }) => {
    const { own, page } = await administrator(browser, javaScriptEnabled);
    const name = `Wiki ${javaScriptEnabled ? 'js' : 'nojs'} ${Date.now()}`;
    await page.goto('/admin');
    await page.getByRole('navigation', { name: 'Administration' }).getByRole('link', { name: 'Apps' }).click();
    await expect(page.getByRole('heading', { name: 'Apps', level: 1 })).toBeVisible();

    // A bad redirect URI: said, nothing added, the fields kept as typed.
    const form = page.getByRole('form', { name: 'New app' });
    await form.getByLabel('Name').fill(name);
    await form.getByLabel('Redirect URIs, one a line').fill('wiki.example.test/cb');
    await form.getByRole('button', { name: 'Add the app' }).click();
    await expect(page.getByRole('alert')).toContainText('must start with https://');
    await expect(page.getByTestId('app-list')).not.toContainText(name);
    await expect(form.getByLabel('Name')).toHaveValue(name);

    // Added: the client id in the message, the secret shown once.
    await form.getByLabel('Redirect URIs, one a line').fill('https://wiki.example.test/cb\nhttps://wiki.example.test/cb2');
    await form.getByLabel('Ask before the first sign-in').uncheck();
    await form.getByRole('button', { name: 'Add the app' }).click();
    await expect(page.getByTestId('admin-said')).toContainText(`Added ${name}. Its client id is`);
    const said = await page.getByTestId('admin-said').innerText();
    const clientId = said.match(/client id is ([A-Za-z0-9_-]+)\./)![1];
    const secret = await page.getByLabel('Secret', { exact: true }).inputValue();
    expect(secret.length).toBeGreaterThan(30);
    const row = page.getByTestId('app-list').locator('li').filter({ hasText: name });
    await expect(row).toContainText(clientId);
    await expect(row).toContainText('Signs in without asking');
    await expect(row).not.toContainText(secret);
    // The form starts again empty, with the safe defaults.
    await expect(form.getByLabel('Name')).toHaveValue('');
    await expect(form.getByLabel('Ask before the first sign-in')).toBeChecked();
    if (javaScriptEnabled) {
      await expectAccessible(page, 'admin: app added');
      await shoot(page, 'apps');
    }
    // The secret is the app's: the token endpoint knows it (a code never
    // issued is refused as a code, not the client).
    const tokenWith = async (s: string) => {
      // As the app's server would: straight to the portal's port.
      const r = await fetch(`http://127.0.0.1:${portalPort}/oidc/token`, {
        method: 'POST',
        headers: { Authorization: `Basic ${Buffer.from(`${clientId}:${s}`).toString('base64')}` },
        body: new URLSearchParams({ grant_type: 'authorization_code', code: 'never-issued', redirect_uri: 'https://wiki.example.test/cb' }),
      });
      return (await r.json()).error;
    };
    expect(await tokenWith(secret)).toBe('invalid_grant');

    // Changed: one redirect URI left.
    await row.getByText('Change', { exact: true }).click();
    const change = page.getByRole('form', { name: `Change ${name}` });
    await expect(change.getByLabel('Ask before the first sign-in')).not.toBeChecked();
    if (javaScriptEnabled) {
      await expectAccessible(page, 'admin: an app to change');
      await shoot(page, 'app-change');
    }
    // Which second factor will do: a duration that is none is said.
    await change.getByLabel('Second factor shown within (e.g. 15m, 12h; empty: any time)').fill('soon');
    await change.getByRole('button', { name: 'Save' }).click();
    await expect(page.getByRole('alert')).toContainText('is not a duration');
    const again = page.getByRole('form', { name: `Change ${name}` });
    // (Without JavaScript the page is drawn again with the app's form shut.)
    if (!(await again.isVisible())) await row.getByText('Change', { exact: true }).click();
    await again.getByLabel('Redirect URIs, one a line').fill('https://wiki.example.test/cb');
    await again.getByLabel('Second factor shown within (e.g. 15m, 12h; empty: any time)').fill('15m');
    await again.getByLabel('A remembered browser will do for the second factor').uncheck();
    // A network that is none is said too; nothing is saved.
    const networks = 'From these networks the password alone will do (e.g. 192.168.1.0/24; empty: none)';
    await again.getByLabel(networks).fill('192.168.1.0/24, home');
    await again.getByRole('button', { name: 'Save' }).click();
    await expect(page.getByRole('alert')).toContainText('"home" is not an address or address/prefix');
    await expect(row).not.toContainText('A second factor shown within');
    const third = page.getByRole('form', { name: `Change ${name}` });
    if (!(await third.isVisible())) await row.getByText('Change', { exact: true }).click();
    await third.getByLabel('Redirect URIs, one a line').fill('https://wiki.example.test/cb');
    await third.getByLabel('Second factor shown within (e.g. 15m, 12h; empty: any time)').fill('15m');
    await third.getByLabel('A remembered browser will do for the second factor').uncheck();
    await third.getByLabel(networks).fill('192.168.1.0/24, 10.0.0.0/8');
    await third.getByRole('button', { name: 'Save' }).click();
    await expect(page.getByTestId('admin-said')).toContainText(`Saved ${name}.`);
    await expect(row).not.toContainText('cb2');
    await expect(row).toContainText('A second factor shown within 15 minutes');
    await expect(row).toContainText('The password alone from 192.168.1.0/24, 10.0.0.0/8');

    // A new secret; the old one works until it is retired.
    await row.getByRole('button', { name: 'New secret' }).click();
    await expect(page.getByTestId('admin-said')).toContainText(`A new secret for ${name}`);
    const second = await page.getByLabel('Secret', { exact: true }).inputValue();
    expect(second).not.toBe(secret);
    expect(await tokenWith(secret)).toBe('invalid_grant');
    await expect(row).toContainText('The previous secret still works');
    if (javaScriptEnabled) await expectAccessible(page, 'admin: a new app secret');
    await row.getByRole('button', { name: 'Retire the previous secret' }).click();
    await expect(page.getByTestId('admin-said')).toContainText('no longer works');
    expect(await tokenWith(secret)).toBe('invalid_client');
    expect(await tokenWith(second)).toBe('invalid_grant');

    // Removed, once its name is typed as it is.
    await row.getByLabel('Type its name to remove it').fill(name.toUpperCase());
    await row.getByRole('button', { name: 'Remove' }).click();
    await expect(page.getByRole('alert')).toContainText(`type the app's name, ${name}, exactly`);
    await row.getByLabel('Type its name to remove it').fill(name);
    await row.getByRole('button', { name: 'Remove' }).click();
    await expect(page.getByTestId('admin-said')).toContainText(`Removed ${name}`);
    await expect(page.getByTestId('app-list')).not.toContainText(name);
    expect(await tokenWith(second)).toBe('invalid_client');
    if (javaScriptEnabled) await expectAccessible(page, 'admin: app removed');

    // The trail names the app and who did it.
    await page.goto('/admin?view=activity&kind=app_removed');
    await expect(page.getByTestId('all-activity')).toContainText(`App removed: ${name} (client id ${clientId})`);
    await own.close();
  });
}

test("a person's page works by keyboard alone", async ({ browser }) => {
  const ann = await enrolledAccount(browser, portal, 'keys');
  const { own, page } = await administrator(browser, true);
  await page.goto('/admin');
  await page.getByLabel('Email or name').fill(ann.email);
  await page.getByLabel('Email or name').press('Enter');
  await expect(page.getByTestId('person')).toHaveCount(1);
  // Tab to her name in the list and open it.
  await tabTo(page, page.getByTestId('person').getByRole('link'));
  await page.keyboard.press('Enter');
  await expect(page.getByTestId('person-name')).toBeVisible();
  // Tab to "Lock the account", press it; the answer takes the focus.
  await tabTo(page, page.getByRole('button', { name: 'Lock the account' }));
  await page.keyboard.press('Enter');
  await expect(page.getByTestId('admin-said')).toContainText(`Locked ${ann.email}`);
  await expect(page.getByTestId('admin-said')).toBeFocused();
  await tabTo(page, page.getByRole('button', { name: 'Unlock the account' }));
  await page.keyboard.press('Enter');
  await expect(page.getByTestId('admin-said')).toContainText(`Unlocked ${ann.email}`);
  // Deleting: type her address in its box, then Enter.
  await tabTo(page, page.getByLabel('Their email address, to confirm'));
  await page.keyboard.type(ann.email);
  await page.keyboard.press('Enter');
  await expect(page.getByTestId('admin-said')).toContainText(`Deleted the account of ${ann.email}`);
  await own.close();
});

/** Presses Tab until `target` has the focus (at most 80 times). */
async function tabTo(page: Page, target: ReturnType<Page['getByRole']>) {
  for (let i = 0; i < 80; i++) {
    if (await target.evaluate((el) => el === document.activeElement)) return;
    await page.keyboard.press('Tab');
  }
  throw new Error('Tab never reached the element');
}

test('what an administrator types and ticks before the page hydrates is kept and sent (JavaScript on)', async ({ browser }) => {
  const { boss, own, page } = await administrator(browser, true);
  const crew = 'earlycrew';
  addToGroup(boss, crew);
  // The page's WebAssembly is held back until the form is filled in, as
  // on a slow phone where the person is quicker than the download.
  let release = () => {};
  const held = new Promise<void>((resolve) => (release = resolve));
  await page.route(/\.wasm$/, async (route) => {
    await held;
    await route.continue();
  });
  await page.goto('/admin?view=invitations');
  await expect(page.locator('html[data-hydrated]')).toHaveCount(0);
  const invited = uniqueEmail('early');
  await page.getByLabel('For the address (optional)').fill(invited);
  await page.getByLabel(crew, { exact: true }).check();
  await page.getByLabel('Works for (days)').fill('3');
  release();
  await settled(page, true);
  // Hydrated: nothing typed or ticked was taken back.
  await expect(page.getByLabel('For the address (optional)')).toHaveValue(invited);
  await expect(page.getByLabel(crew, { exact: true })).toBeChecked();
  await expect(page.getByLabel('Works for (days)')).toHaveValue('3');
  await page.getByRole('button', { name: 'Make the invitation' }).click();
  await expect(page.getByTestId('admin-said')).toContainText(`Invitation made for ${invited}`);
  // Made in place (no page load), with the group ticked before hydration.
  await expect(page).toHaveURL(/view=invitations$/);
  const line = page.getByTestId('invitation-list').locator('li').filter({ hasText: invited });
  await expect(line).toContainText(`into ${crew}`);
  await expect(page.getByLabel('For the address (optional)')).toHaveValue('');
  await expect(page.getByLabel('Works for (days)')).toHaveValue('7');
  await own.close();
});
