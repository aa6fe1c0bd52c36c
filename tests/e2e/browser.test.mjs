// The Hono example in a real browser: Debian's Chromium, headless, driven through the page with
// puppeteer-core (no browser download: scripts/setup.sh installs `chromium` with apt-get). The
// browser keeps the cookie itself, so what is checked is what a user gets: the cookie the browser
// accepted, forms that post from the page (Origin and Sec-Fetch-Site as a browser sends them), a
// burst of fetch() across a renewal, two devices, signing one out, logging out.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import puppeteer from 'puppeteer-core';
import { exampleConfig, sleep, startWorker } from './harness.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const RENEW_AFTER_SECONDS = 1;

let worker;
let browser;
let origin;
before(async () => {
  worker = await startWorker({ configs: [exampleConfig(RENEW_AFTER_SECONDS), 'wrangler.toml'] });
  // localhost, not 127.0.0.1: Chrome treats http://localhost as secure, so it keeps a `Secure`,
  // `__Host-` cookie there as it would on https.
  origin = worker.url.replace('127.0.0.1', 'localhost');
  browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
  });
});
after(async () => {
  await browser?.close();
  await worker?.stop();
});

/** The session cookie as the browser keeps it (`null` without one). */
async function sessionCookie(page) {
  const cookies = await page.browserContext().cookies();
  return cookies.find((c) => c.name === '__Host-session') ?? null;
}

async function signIn(page, username) {
  await page.goto(`${origin}/`);
  await page.type('input[name=username]', username);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  assert.equal(await page.$eval('#user', (e) => e.textContent), username);
}

test('login form, the page, a burst of fetch across a renewal, signing out a device, logging out', async () => {
  const laptop = await (await browser.createBrowserContext()).newPage();
  await laptop.goto(`${origin}/`);
  assert.ok(await laptop.$('form[action="/login"]'), 'the login form');
  await signIn(laptop, 'ada');

  const cookie = await sessionCookie(laptop);
  assert.ok(cookie, 'the browser kept the session cookie');
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.secure, true);
  assert.equal(cookie.sameSite, 'Lax');
  assert.equal(cookie.path, '/');
  assert.ok(cookie.expires > Date.now() / 1000 + 1700, 'it expires with the session, not with the browser');
  assert.equal(await laptop.evaluate(() => document.cookie), '', 'no script reads it');
  const devices = await laptop.$$eval('#devices li', (items) => items.map((li) => li.textContent.trim()));
  assert.equal(devices.length, 1);
  assert.match(devices[0], /^Chrome on Linux \(this device\)/);

  // Past renewAfter, twenty requests at once from the page: all logged in, one new id.
  await sleep(RENEW_AFTER_SECONDS * 1000 + 200);
  const statuses = await laptop.evaluate(() =>
    Promise.all(Array.from({ length: 20 }, () => fetch('/me').then((r) => r.status))));
  assert.deepEqual(statuses, Array(20).fill(200));
  const renewed = await sessionCookie(laptop);
  assert.notEqual(renewed.value.split('.')[0], cookie.value.split('.')[0], 'the id was renewed');
  assert.equal(await laptop.evaluate(() => fetch('/me').then((r) => r.status)), 200);

  // A second device, then signed out from the first one's page.
  const phone = await (await browser.createBrowserContext()).newPage();
  await signIn(phone, 'ada');
  await laptop.reload();
  const rows = await laptop.$$('#devices li');
  assert.equal(rows.length, 2);
  const other = await laptop.$('#devices li[data-current="no"] button');
  await Promise.all([laptop.waitForNavigation(), other.click()]);
  assert.equal(await laptop.$$eval('#devices li', (items) => items.length), 1);
  assert.equal(await phone.evaluate(() => fetch('/me').then((r) => r.status)), 401);
  await phone.reload();
  assert.ok(await phone.$('form[action="/login"]'), 'the phone is signed out');
  assert.equal(await sessionCookie(phone), null, 'and its cookie cleared');

  // Step-up from the page, then log out.
  assert.equal(await laptop.evaluate(() => fetch('/sensitive').then((r) => r.status)), 403);
  const stepUp = await laptop.evaluate(() => fetch('/reauth', {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}',
  }).then((r) => r.status));
  assert.equal(stepUp, 200);
  assert.equal(await laptop.evaluate(() => fetch('/sensitive').then((r) => r.status)), 200);
  await Promise.all([laptop.waitForNavigation(), laptop.click('#logout')]);
  assert.ok(await laptop.$('form[action="/login"]'), 'logged out');
  assert.equal(await sessionCookie(laptop), null);
});

test('a page on another site cannot post to the app with its cookie', async () => {
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  await signIn(page, 'bob');
  // Another origin (127.0.0.1 is another site than localhost): a form posting cross-site.
  const attacker = worker.url;
  await page.goto(`${attacker}/me`);
  const status = await page.evaluate((target) => new Promise((resolve) => {
    const frame = document.createElement('iframe');
    frame.name = 'sink';
    document.body.append(frame);
    const form = Object.assign(document.createElement('form'), { method: 'POST', action: `${target}/logout-everywhere`, target: 'sink' });
    document.body.append(form);
    frame.onload = () => resolve('posted');
    form.submit();
  }), origin);
  assert.equal(status, 'posted');
  await page.goto(`${origin}/`);
  assert.equal(await page.$eval('#user', (e) => e.textContent), 'bob', 'still signed in');
});
