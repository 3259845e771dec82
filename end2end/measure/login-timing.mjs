// Loads /login in Chromium on a slow phone connection (1.6 Mbit/s down,
// 750 kbit/s up, 150 ms round trip, CPU 4x slower) and reports what the
// page costs: bytes over the wire, when the form is drawn (it works from
// then on: it is a real POST), and when the WebAssembly has hydrated it.
// A measurement, not a test: run by scripts/measure-login, written up in
// BENCHMARKS.md. Usage: node measure/login-timing.mjs http://127.0.0.1:3000 [runs]
import { chromium } from '@playwright/test';

const base = process.argv[2] ?? 'http://127.0.0.1:3000';
const runs = Number(process.argv[3] ?? 5);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});

const results = [];
for (let i = 0; i < runs; i++) {
  // A new context each run: nothing cached.
  const context = await browser.newContext();
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
  await cdp.send('Network.emulateNetworkConditions', {
    offline: false,
    latency: 150,
    downloadThroughput: (1.6 * 1024 * 1024) / 8,
    uploadThroughput: (750 * 1024) / 8,
  });
  await cdp.send('Emulation.setCPUThrottlingRate', { rate: 4 });
  let bytes = 0;
  cdp.on('Network.loadingFinished', (e) => { bytes += e.encodedDataLength; });
  const start = Date.now();
  await page.goto(`${base}/login`, { waitUntil: 'commit' });
  await page.getByRole('button', { name: 'Continue' }).waitFor();
  const formShown = Date.now() - start;
  await page.locator('html[data-hydrated]').waitFor({ state: 'attached', timeout: 60_000 });
  const hydrated = Date.now() - start;
  await page.waitForLoadState('networkidle');
  results.push({ formShown, hydrated, kb: Math.round(bytes / 1000) });
  await context.close();
}
await browser.close();

const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
for (const r of results) console.log(`run: form drawn ${r.formShown} ms, hydrated ${r.hydrated} ms, ${r.kb} KB transferred`);
console.log(`median of ${runs}: form drawn (and working) ${median(results.map((r) => r.formShown))} ms, ` +
  `hydrated ${median(results.map((r) => r.hydrated))} ms, ${median(results.map((r) => r.kb))} KB transferred`);
