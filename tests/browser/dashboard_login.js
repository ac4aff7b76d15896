#!/usr/bin/env node
// tests/browser/dashboard_login.js - signing in to a dashboard that has an
// --auth-file, in Debian's headless Chromium (playwright-core), under the
// dashboard's Content-Security-Policy.
//
//   node dashboard_login.js URL USER PASSWORD
// An https:// URL is opened without checking the certificate (the suite
// checks it with curl --cacert); then the session cookie must be Secure
// and the WebSocket is wss://.
// Prints one line per check, "PASS what" or "FAIL what: why"
// (tests/e2e/test_dashboard_auth.sh turns them into TAP).
'use strict';
const path = require('path');
const { chromium } = require(path.join(__dirname, '..', '..', 'node_modules', 'playwright-core'));

const [url, user, password] = process.argv.slice(2);
const check = (what, ok, why) => console.log(ok ? `PASS ${what}` : `FAIL ${what}: ${why || ''}`);
// Polls fn in the page.  Not page.waitForFunction: Playwright rebuilds its
// predicate with eval() inside the page, which the dashboard's CSP forbids.
async function waitUntil(page, fn, timeoutMs) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await page.evaluate(fn)) return;
    if (Date.now() > end) throw new Error(`not true within ${timeoutMs} ms: ${fn}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'],
  });
  const https = url.startsWith('https:');
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, ignoreHTTPSErrors: https });
  const page = await context.newPage();
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));

  await page.goto(url, { waitUntil: 'load' });
  check('without a session the page sends the browser to /login', new URL(page.url()).pathname === '/login', page.url());

  await page.fill('input[name=user]', user);
  await page.fill('input[name=password]', 'not-' + password);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  const wrong = await page.textContent('.error').catch(() => null);
  check('a wrong password shows an error on the sign-in page', /wrong user or password/i.test(wrong || ''), wrong);

  await page.fill('input[name=user]', user);
  await page.fill('input[name=password]', password);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  check('the right password opens the map', new URL(page.url()).pathname === '/', page.url());
  const signIn = errors.splice(0); /* the refused attempt's 401 is logged as a failed load */
  check('the sign-in page itself raised no error but the refused attempt', signIn.every((e) => /status of 401/.test(e)),
    signIn.join(' | '));
  try {
    await page.waitForSelector('#conn.connected', { timeout: 10000 });
    check(`the page connects its WebSocket (${https ? 'wss' : 'ws'}) with the session cookie`, true);
  } catch (e) { check(`the page connects its WebSocket (${https ? 'wss' : 'ws'}) with the session cookie`, false, e.message); }
  const cookies = await context.cookies();
  const s = cookies.find((c) => c.name === 'fs_session');
  check('the session cookie is HttpOnly and SameSite=Strict', s && s.httpOnly && s.sameSite === 'Strict', JSON.stringify(s));
  if (https) check('over https the session cookie is Secure', s && s.secure === true, JSON.stringify(s));
  const fromJs = await page.evaluate(() => document.cookie);
  check('scripts cannot read the session cookie', !/fs_session/.test(fromJs), fromJs);
  try {
    await waitUntil(page, () => document.querySelectorAll('.leaflet-overlay-pane svg path').length > 50, 10000);
    check('the basemap draws under the Content-Security-Policy', true);
  } catch (e) { check('the basemap draws under the Content-Security-Policy', false, e.message); }
  try {
    await waitUntil(page, () => document.querySelectorAll('.truck [data-id]').length > 0, 10000);
    const tr = await page.getAttribute('.truck [data-id] svg path', 'transform');
    check('the truck is drawn, its arrow rotated by an SVG attribute', tr === 'rotate(90)', tr);
  } catch (e) { check('the truck is drawn, its arrow rotated by an SVG attribute', false, e.message); }
  await page.waitForTimeout(1000);
  check('no console errors (no CSP violation)', errors.length === 0, errors.slice(0, 5).join(' | '));
  const logout = await page.isVisible('#logout button');
  check('a sign-out button is shown', logout);
  if (logout) {
    await Promise.all([page.waitForNavigation(), page.click('#logout button')]);
    check('signing out returns to /login', new URL(page.url()).pathname === '/login', page.url());
    const r = await page.evaluate(async () => (await fetch('/api/fleet')).status);
    check('after signing out the API answers 401', r === 401, String(r));
  }
  await browser.close();
}
main().then(() => process.exit(0),
  (e) => { console.log(`FAIL browser test: ${e.stack || e}`); process.exit(1); });
