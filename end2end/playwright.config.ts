// Playwright drives Debian's Chromium (/usr/bin/chromium): the machines
// cannot download Playwright's own browser builds.
import { defineConfig } from '@playwright/test';

const port = Number(process.env.E2E_PORT ?? 3000);

export default defineConfig({
  testDir: './tests',
  timeout: 60_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  reporter: [['list']],
  outputDir: './test-results',
  use: {
    baseURL: `http://127.0.0.1:${port}`,
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        // The gate tests (gate.spec.ts) reach the portal and an app behind
        // nginx under names of a test domain.
        '--host-resolver-rules=MAP *.example.test 127.0.0.1',
        // Passkeys (passkeys.spec.ts) need a secure context; the portal's
        // test name is served over plain http.
        `--unsafely-treat-insecure-origin-as-secure=http://auth.example.test:${port}`,
      ],
    },
  },
  // The release server is started by scripts/test (or cargo leptos
  // end-to-end); when it is already up it is reused.
  webServer: {
    command: 'target/release/server',
    cwd: '..',
    url: `http://127.0.0.1:${port}/readyz`,
    reuseExistingServer: true,
    timeout: 60_000,
    env: {
      LISTEN_ADDR: `127.0.0.1:${port}`,
      LEPTOS_SITE_ROOT: 'target/site',
      DATA_DIR: process.env.E2E_DATA_DIR ?? 'target/e2e-data',
      RUST_LOG: 'warn',
      // The suite signs up many accounts from one address.
      REGISTRATIONS_PER_HOUR: '100000',
      // Every log-in page offers passkeys in the email field's autofill,
      // which starts a passwordless sign-in: the suite opens more than 30
      // log-in pages a minute from one address.
      PASSKEY_STARTS_PER_MINUTE: '100000',
      // The gate (gate.spec.ts): the portal as the browser reaches it, and
      // the parent domain of the apps behind nginx.
      PUBLIC_URL: `http://auth.example.test:${port}`,
      COOKIE_DOMAINS: 'example.test',
      ACCESS_RULES: 'end2end/gate-rules.toml',
      // The suite signs people up; with COOKIE_DOMAINS set it is closed by default.
      SIGNUP: 'open',
    },
  },
});
