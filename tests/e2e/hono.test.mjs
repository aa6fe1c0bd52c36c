// The Hono example (examples/hono) in front of session-state, over the service binding, in one
// `wrangler dev`: the middleware of `@session-state/client/hono` against the real service, on the
// backend under test. Each "browser" here is a cookie jar that keeps what Set-Cookie says.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { exampleConfig, sleep, startWorker } from './harness.mjs';

const GRACE_SECONDS = 2;
const RENEW_AFTER_SECONDS = 1;

let worker;
before(async () => {
  worker = await startWorker({
    configs: [exampleConfig(RENEW_AFTER_SECONDS), 'wrangler.toml'],
    vars: { SESSION_RENEWAL_GRACE_SECONDS: String(GRACE_SECONDS) },
  });
});
after(async () => { await worker?.stop(); });

/** A browser's cookie jar for the example's origin: sends the session cookie, keeps what is set. */
function browser() {
  let cookie = null;
  const jar = {
    set: [],
    get cookie() { return cookie; },
    copy() { const other = browser(); other.adopt(cookie); return other; },
    adopt(value) { cookie = value; },
    async send(method, path, { json, form, headers = {} } = {}) {
      const body = json !== undefined ? JSON.stringify(json) : form !== undefined ? new URLSearchParams(form).toString() : undefined;
      const response = await fetch(`${worker.url}${path}`, {
        method,
        redirect: 'manual',
        headers: {
          ...(cookie ? { cookie } : {}),
          ...(method === 'GET' ? {} : { origin: worker.url, 'sec-fetch-site': 'same-origin' }),
          ...(json !== undefined ? { 'content-type': 'application/json' } : {}),
          ...(form !== undefined ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
          ...headers,
        },
        ...(body === undefined ? {} : { body }),
      });
      const line = response.headers.getSetCookie().find((c) => c.startsWith('__Host-session='));
      if (line) {
        jar.set.push(line);
        const pair = line.split(';')[0];
        cookie = /Max-Age=0/i.test(line) ? null : pair;
      }
      return response;
    },
  };
  return jar;
}

const idOf = (cookie) => cookie?.split('=')[1].split('.')[0];

async function login(jar, username = `user-${Math.random().toString(36).slice(2)}`) {
  const response = await jar.send('POST', '/login', { json: { username } });
  assert.equal(response.status, 200, await response.clone().text());
  return username;
}

test('login sets the session cookie: __Host-, Secure, HttpOnly, SameSite=Lax, Path=/, no Domain, expiring with the session', async () => {
  const jar = browser();
  await login(jar);
  const [line] = jar.set;
  const [pair, ...attributes] = line.split(/;\s*/);
  assert.match(pair, /^__Host-session=[0-9a-f-]{36}\.\d+$/);
  assert.deepEqual(attributes.filter((a) => !a.startsWith('Expires=')).sort(), ['HttpOnly', 'Path=/', 'SameSite=Lax', 'Secure']);
  const me = await jar.send('GET', '/me');
  assert.equal(me.status, 200);
  const expires = Date.parse(attributes.find((a) => a.startsWith('Expires=')).slice(8));
  assert.ok(Math.abs(expires - (Date.now() + 1800_000)) < 60_000, 'the idle timeout, 30 minutes');

  const form = browser();
  const response = await form.send('POST', '/login', { form: { username: 'ada' } });
  assert.equal(response.status, 303);
  assert.equal(response.headers.get('location'), '/');
  assert.match(await (await form.send('GET', '/')).text(), /Signed in as <span id="user">ada<\/span>/);
});

test('a pre-login cookie never survives login', async () => {
  const jar = browser();
  await login(jar, 'mallory');
  const planted = jar.cookie;
  await login(jar, 'ada');
  assert.notEqual(idOf(jar.cookie), idOf(planted));
  assert.equal((await jar.copy().send('GET', '/me')).status, 200);
  const old = browser();
  old.adopt(planted);
  const response = await old.send('GET', '/me');
  assert.equal(response.status, 401);
  assert.deepEqual(await response.json(), { code: 'unauthenticated', detail: 'This needs a live session.' });
});

test('twenty parallel requests across a renewal are all answered logged in, and one session stays', async () => {
  const jar = browser();
  const username = await login(jar);
  await sleep(RENEW_AFTER_SECONDS * 1000 + 100);
  const before = jar.cookie;
  const responses = await Promise.all(Array.from({ length: 20 }, () => jar.copy().send('GET', '/me')));
  assert.deepEqual(responses.map((r) => r.status), Array(20).fill(200));
  for (const response of responses) assert.equal((await response.json()).username, username);
  const renewed = new Set(responses.map((r) => idOf(r.headers.getSetCookie()[0]?.split(';')[0])));
  assert.equal(renewed.size, 1, `every response carries the same new id: ${[...renewed]}`);
  assert.notEqual([...renewed][0], idOf(before));
  jar.adopt(`__Host-session=${[...renewed][0]}.${Math.floor(Date.now() / 1000)}`);
  const page = await (await jar.send('GET', '/')).text();
  assert.equal(page.match(/data-handle=/g).length, 1, 'the renewals made no second session');
});

test('a copy of the cookie jar used after the grace window ends the session (reuse)', async () => {
  const jar = browser();
  await login(jar);
  const stolen = jar.copy();
  await sleep(RENEW_AFTER_SECONDS * 1000 + 100);
  assert.equal((await jar.send('GET', '/me')).status, 200);
  assert.notEqual(idOf(jar.cookie), idOf(stolen.cookie), 'renewed');
  await sleep(GRACE_SECONDS * 1000 + 500);
  const thief = await stolen.send('GET', '/me');
  assert.equal(thief.status, 401);
  assert.equal(stolen.cookie, null, 'the thief\'s cookie is cleared');
  assert.equal((await jar.send('GET', '/me')).status, 401, 'the session ended for its holder too');
});

test('log out everywhere from one jar ends the other; log out ends one', async () => {
  const laptop = browser();
  const username = await login(laptop);
  const phone = browser();
  await login(phone, username);
  const page = await (await laptop.send('GET', '/')).text();
  assert.equal(page.match(/data-handle=/g).length, 2);
  assert.equal(page.match(/data-current="yes"/g).length, 1);
  const response = await laptop.send('POST', '/logout-everywhere', { json: {} });
  assert.deepEqual(await response.json(), { ended: 2 });
  assert.equal(laptop.cookie, null);
  assert.equal((await phone.send('GET', '/me')).status, 401);

  const one = browser();
  await login(one);
  assert.equal((await one.send('POST', '/logout', { json: {} })).status, 200);
  assert.equal(one.cookie, null);
  assert.equal((await one.send('GET', '/me')).status, 401);
});

test('sign out another device from the page', async () => {
  const laptop = browser();
  const username = await login(laptop);
  const phone = browser();
  await login(phone, username);
  const page = await (await laptop.send('GET', '/')).text();
  const other = /data-handle="([0-9a-f]{32})" data-current="no"/.exec(page)[1];
  const response = await laptop.send('POST', `/devices/${other}/sign-out`, { form: {} });
  assert.equal(response.status, 303);
  assert.equal((await phone.send('GET', '/me')).status, 401);
  assert.equal((await laptop.send('GET', '/me')).status, 200);
});

test('a cross-site POST with the cookie, or a cross-site login, is refused, and changes nothing', async () => {
  const jar = browser();
  await login(jar);
  for (const headers of [
    { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' },
    { origin: 'https://evil.example', 'sec-fetch-site': 'same-site' },
  ]) {
    const response = await jar.send('POST', '/logout-everywhere', { form: {}, headers });
    assert.equal(response.status, 403);
    assert.deepEqual(await response.json(), { code: 'cross_site_request', detail: 'A state-changing request from another site.' });
  }
  assert.equal((await jar.send('GET', '/me')).status, 200);
  const stranger = browser();
  const response = await stranger.send('POST', '/login', { form: { username: 'mallory' }, headers: { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' } });
  assert.equal(response.status, 403, 'a login from another site (login CSRF), with no cookie');
  assert.equal(stranger.cookie, null);
});

test('step-up: /sensitive needs an authentication at level 2 in the last 300 s', async () => {
  const jar = browser();
  await login(jar);
  let response = await jar.send('GET', '/sensitive');
  assert.equal(response.status, 403);
  const problem = await response.json();
  assert.equal(problem.code, 'reauthentication_required');
  assert.equal(problem.authLevel, 1);
  const before = jar.cookie;
  response = await jar.send('POST', '/reauth', { json: {} });
  assert.equal(response.status, 200);
  assert.equal((await response.json()).authLevel, 2);
  assert.notEqual(idOf(jar.cookie), idOf(before), 'a new id');
  response = await jar.send('GET', '/sensitive');
  assert.equal(response.status, 200);
  assert.deepEqual(await response.json(), { secret: 'the launch codes' });
});

test('without a session: the login form, and 401 from /me', async () => {
  const jar = browser();
  assert.match(await (await jar.send('GET', '/')).text(), /<form method="post" action="\/login">/);
  assert.equal((await jar.send('GET', '/me')).status, 401);
  assert.equal((await jar.send('POST', '/login', { json: { username: '' } })).status, 400);
});
