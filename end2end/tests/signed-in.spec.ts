// Someone already signed in who opens the log-in or sign-up page, or types
// /logout: nothing to fill in, so they go on; /logout asks with a button
// (a log-out is a POST) instead of a browser error page. With and without
// JavaScript, since the answer comes from the server either way.
import { test, expect } from '@playwright/test';

import { uniqueEmail, signUp } from './helpers';

for (const javaScriptEnabled of [true, false]) {
  test.describe(javaScriptEnabled ? 'with JavaScript' : 'without JavaScript', () => {
    test.use({ javaScriptEnabled });

    test('signed in, /login and /signup lead home and /logout asks', async ({ page }) => {
      const email = uniqueEmail(javaScriptEnabled ? 'signed-in-js' : 'signed-in-nojs');
      await signUp(page, email);
      for (const path of ['/login', '/signup']) {
        await page.goto(path);
        await expect(page).toHaveURL(/\/$/);
        await expect(page.getByTestId('user-email')).toHaveText(email);
      }
      await page.goto('/logout');
      await expect(page.getByRole('heading', { name: 'Log out?' })).toBeVisible();
      await expect(page.getByTestId('user-email')).toHaveText(email);
      await page.getByRole('link', { name: 'Stay signed in' }).click();
      await expect(page).toHaveURL(/\/$/);
      await page.goto('/logout');
      await page.getByRole('button', { name: 'Log out' }).click();
      await expect(page).toHaveURL(/\/login$/);
      await expect(page.getByRole('button', { name: 'Continue' })).toBeVisible();
      // Logged out, /logout has nothing to ask: it leads to the log-in page.
      await page.goto('/logout');
      await expect(page).toHaveURL(/\/login$/);
    });
  });
}
