// The Hono middleware against a stand-in for session-state (fake-service.mjs): the cookie, the
// id's life (login, renewal, reuse, logout), the guards, cross-site refusals and retryable
// problems. The real service, both backends, and a real browser are in tests/e2e/hono.test.mjs
// and tests/browser/.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Hono } from 'hono';
import { requireAuth, requireSession, sessionState } from '../dist/hono/index.js';
import { fakeService } from './fake-service.mjs';

const ORIGIN = 'https://app.example';

function appWith(service, options = {}) {
  const app = new Hono();
  app.use(sessionState({ service: () => service.binding, ...options }));
  app.post('/login', async (c) => {
    const { username, level } = await c.req.json();
    await c.var.session.login(username, { name: username }, level ? { level } : {});
    return c.json({ ok: true });
  });
  app.get('/me', requireSession(), async (c) => c.json((await c.var.session.get()).data));
  app.get('/public', (c) => c.text('hello'));
  app.post('/hook', (c) => c.text('ok'));
  app.get('/broken', (c) => c.text('no', 500));
  app.post('/note', requireSession(), async (c) => c.json((await c.var.session.merge(await c.req.json())).data));
  app.put('/replace', requireSession(), async (c) => c.json((await c.var.session.set(await c.req.json())).data));
  app.get('/sensitive', requireAuth({ maxAge: 300, minLevel: 2 }), (c) => c.text('secret'));
  app.post('/reauth', async (c) => c.json(await c.var.session.reauth(2)));
  app.post('/logout', async (c) => { await c.var.session.logout(); return c.body(null, 204); });
  app.post('/everywhere', async (c) => c.json({ ended: await c.var.session.logoutEverywhere() }));
  app.get('/devices', async (c) => c.json(await c.var.session.devices()));
  app.onError((err, c) => c.text(String(err), 500));
  return app;
}

/** A request from the app's own pages, with `cookie` if given. */
function send(app, method, path, { cookie, body, headers = {} } = {}) {
  const all = {
    ...(cookie ? { cookie } : {}),
    ...(method === 'GET' ? {} : { origin: ORIGIN, 'sec-fetch-site': 'same-origin' }),
    ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    ...headers,
  };
  return app.request(`${ORIGIN}${path}`, {
    method,
    // A header given as undefined is left out.
    headers: Object.fromEntries(Object.entries(all).filter(([, v]) => v !== undefined)),
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

/** `name=value` of the response's session cookie, and its attributes; `null` when none was set. */
function sessionCookie(response) {
  const line = response.headers.getSetCookie().find((c) => /^(__Host-)?session=/.test(c));
  if (!line) return null;
  const [pair, ...attributes] = line.split(/;\s*/);
  return { pair, value: pair.slice(pair.indexOf('=') + 1), attributes };
}

async function loggedIn(app, username = 'ada', level) {
  const response = await send(app, 'POST', '/login', { body: { username, ...(level ? { level } : {}) } });
  assert.equal(response.status, 200);
  return sessionCookie(response).pair;
}

test('login sets a __Host- cookie: Secure, HttpOnly, SameSite=Lax, Path=/, no Domain, expiring with the session', async () => {
  const service = fakeService();
  const response = await send(appWith(service), 'POST', '/login', { body: { username: 'ada' } });
  const cookie = sessionCookie(response);
  assert.match(cookie.pair, /^__Host-session=[0-9a-f-]{36}\.\d+$/);
  assert.deepEqual(cookie.attributes.filter((a) => !a.startsWith('Expires=')).sort(), ['HttpOnly', 'Path=/', 'SameSite=Lax', 'Secure']);
  const [session] = [...service.sessions.values()];
  const expires = cookie.attributes.find((a) => a.startsWith('Expires='));
  assert.equal(Date.parse(expires.slice(8)), Math.floor(session.expiresAt / 1000) * 1000);
  assert.equal(response.headers.get('cache-control'), 'no-store');
  assert.equal(session.subject, 'ada');
});

test('with cookie.secure false, the cookie has no prefix and no Secure (plain http in development)', async () => {
  const app = appWith(fakeService(), { cookie: { secure: false } });
  const cookie = sessionCookie(await send(app, 'POST', '/login', { body: { username: 'ada' } }));
  assert.match(cookie.pair, /^session=/);
  assert.ok(!cookie.attributes.includes('Secure'));
});

test('a login never keeps the id the request carried: a new id, and the old session deleted', async () => {
  const service = fakeService();
  const app = appWith(service);
  const before = await loggedIn(app, 'mallory');
  const response = await send(app, 'POST', '/login', { cookie: before, body: { username: 'ada' } });
  const after = sessionCookie(response).pair;
  assert.notEqual(after.split('.')[0], before.split('.')[0]);
  assert.equal((await send(app, 'GET', '/me', { cookie: before })).status, 401);
  assert.deepEqual(await (await send(app, 'GET', '/me', { cookie: after })).json(), { name: 'ada', sub: 'ada' });
});

test('without a live session the guard answers 401, and a dead id\'s cookie is cleared', async () => {
  const app = appWith(fakeService());
  assert.equal((await send(app, 'GET', '/me')).status, 401);
  const response = await send(app, 'GET', '/me', { cookie: `__Host-session=${crypto.randomUUID()}.${Math.floor(Date.now() / 1000)}` });
  assert.equal(response.status, 401);
  assert.deepEqual(await response.json(), { code: 'unauthenticated', detail: 'This needs a live session.' });
  assert.match(sessionCookie(response).attributes.join(';'), /Max-Age=0/);
});

test('twenty parallel requests with an id due for renewal cause one renewal, and all are answered logged in', async () => {
  const service = fakeService();
  const app = appWith(service, { renewAfter: 60 });
  const [pair] = (await loggedIn(app)).split('.');
  const old = `${pair}.${Math.floor(Date.now() / 1000) - 61}`;
  const responses = await Promise.all(Array.from({ length: 20 }, () => send(app, 'GET', '/me', { cookie: old })));
  assert.deepEqual(responses.map((r) => r.status), Array(20).fill(200));
  assert.equal(service.count('POST /renew'), 1);
  const renewed = new Set(responses.map((r) => sessionCookie(r).value.split('.')[0]));
  assert.equal(renewed.size, 1, 'every response carries the same new id');
  assert.notEqual([...renewed][0], pair.split('=')[1]);
  // A fresh id is not renewed again.
  const fresh = sessionCookie(responses[0]).pair;
  assert.equal(sessionCookie(await send(app, 'GET', '/me', { cookie: fresh })), null);
  assert.equal(service.count('POST /renew'), 1);
});

test('a write with an id due for renewal renews it too, and a fresh id\'s write moves the cookie\'s expiry on', async () => {
  const service = fakeService();
  const app = appWith(service, { renewAfter: 60 });
  const fresh = await loggedIn(app);
  service.advance(60_000);
  let response = await send(app, 'POST', '/note', { cookie: fresh, body: { n: 1 } });
  assert.equal(response.status, 200);
  const moved = sessionCookie(response);
  assert.equal(moved.value, fresh.split('=')[1], 'the same id, issued at the same time');
  const [session] = [...service.sessions.values()];
  assert.equal(Date.parse(moved.attributes.find((a) => a.startsWith('Expires=')).slice(8)), Math.floor(session.expiresAt / 1000) * 1000);
  const old = `${fresh.split('.')[0]}.${Math.floor(Date.now() / 1000) - 61}`;
  response = await send(app, 'POST', '/note', { cookie: old, body: { n: 2 } });
  assert.equal(response.status, 200);
  assert.notEqual(sessionCookie(response).value.split('.')[0], old.split('=')[1].split('.')[0], 'renewed');
  assert.equal(service.count('POST /renew'), 1);
});

test('no renewal on a failed response, nor on a request that does not need the session loaded to fail', async () => {
  const service = fakeService();
  const app = appWith(service, { renewAfter: 60 });
  const [pair] = (await loggedIn(app)).split('.');
  const old = `${pair}.${Math.floor(Date.now() / 1000) - 61}`;
  assert.equal((await send(app, 'GET', '/broken', { cookie: old })).status, 500);
  assert.equal(service.count('POST /renew'), 0);
  const response = await send(app, 'GET', '/public', { cookie: old });
  assert.equal(response.status, 200);
  assert.equal(service.count('POST /renew'), 1, 'an old id is renewed on any successful response');
});

test('a renewal the store is too busy for leaves the successful answer and the id as they were', async () => {
  const service = fakeService();
  const app = appWith(service, { renewAfter: 60 });
  const [pair] = (await loggedIn(app)).split('.');
  const old = `${pair}.${Math.floor(Date.now() / 1000) - 61}`;
  const get = send(app, 'GET', '/public', { cookie: old });
  service.failNext(503, 'store_busy'); // the next call is the renewal: /public loads nothing
  const response = await get;
  assert.equal(response.status, 200);
  assert.equal(await response.text(), 'hello');
  assert.equal(sessionCookie(response), null);
  assert.equal(service.count('POST /renew'), 1);
  assert.ok(sessionCookie(await send(app, 'GET', '/public', { cookie: old })), 'the next request renews it');
});

test('a copy of the cookie used after the grace window ends the session (reuse)', async () => {
  const service = fakeService({ graceMs: 1000 });
  const app = appWith(service, { renewAfter: 60 });
  const [pair] = (await loggedIn(app)).split('.');
  const copied = `${pair}.${Math.floor(Date.now() / 1000) - 61}`;
  const renewed = sessionCookie(await send(app, 'GET', '/me', { cookie: copied })).pair;
  assert.equal((await send(app, 'GET', '/me', { cookie: renewed })).status, 200);
  service.advance(1001);
  const thief = await send(app, 'GET', '/me', { cookie: copied });
  assert.equal(thief.status, 401);
  assert.equal((await send(app, 'GET', '/me', { cookie: renewed })).status, 401, 'the session ended for its holder too');
});

test('a state-changing request with the cookie, or a login, from another site is refused; without the cookie, or same-origin, it is not', async () => {
  const app = appWith(fakeService());
  const cookie = await loggedIn(app);
  const crossSite = { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' };
  let response = await send(app, 'POST', '/note', { cookie, body: { a: 1 }, headers: crossSite });
  assert.equal(response.status, 403);
  assert.deepEqual(await response.json(), { code: 'cross_site_request', detail: 'A state-changing request from another site.' });
  response = await send(app, 'POST', '/note', { cookie, body: { a: 1 }, headers: { 'sec-fetch-site': 'same-site', origin: 'https://x.app.example' } });
  assert.equal(response.status, 403, 'a sibling site is another site');
  response = await send(app, 'POST', '/note', { cookie, body: { a: 1 }, headers: { origin: 'https://evil.example', 'sec-fetch-site': undefined } });
  assert.equal(response.status, 403, 'by Origin when Sec-Fetch-Site is absent');
  assert.equal((await send(app, 'POST', '/hook', { body: { a: 1 }, headers: crossSite })).status, 200, 'no cookie, no check');
  response = await send(app, 'POST', '/login', { body: { username: 'mallory' }, headers: crossSite });
  assert.equal(response.status, 403, 'login CSRF: no cookie, yet a login from another site');
  assert.equal(sessionCookie(response), null);
  assert.equal((await send(app, 'POST', '/note', { cookie, body: { a: 1 } })).status, 200);
  const allowing = appWith(fakeService(), { csrf: { origin: ['https://admin.example'] } });
  const theirs = await loggedIn(allowing);
  response = await send(allowing, 'POST', '/note', { cookie: theirs, body: { a: 1 }, headers: { origin: 'https://admin.example', 'sec-fetch-site': 'cross-site' } });
  assert.equal(response.status, 200, 'an origin the app allows');
});

test('a retryable problem of the service is a 503 with Retry-After, and the cookie stays', async () => {
  const service = fakeService();
  const app = appWith(service);
  const cookie = await loggedIn(app);
  service.failNext(503, 'store_unavailable');
  const response = await send(app, 'GET', '/me', { cookie });
  assert.equal(response.status, 503);
  assert.equal(response.headers.get('retry-after'), '2');
  assert.equal(sessionCookie(response), null, 'not a logout');
  assert.equal((await send(app, 'GET', '/me', { cookie })).status, 200);
});

test('requireAuth: 403 reauthentication_required when the authentication is too old or too weak, until reauth', async () => {
  const service = fakeService();
  const app = appWith(service);
  service.advance(-600_000);
  let cookie = await loggedIn(app, 'ada', 2);
  service.advance(600_000);
  let response = await send(app, 'GET', '/sensitive', { cookie });
  assert.equal(response.status, 403);
  const body = await response.json();
  assert.equal(body.code, 'reauthentication_required');
  assert.equal(body.authLevel, 2);
  assert.ok(body.authAge >= 600, `authAge ${body.authAge}`);
  response = await send(app, 'POST', '/reauth', { cookie });
  cookie = sessionCookie(response).pair;
  assert.equal((await send(app, 'GET', '/sensitive', { cookie })).status, 200);
  const weak = await loggedIn(app, 'bob', 1);
  assert.equal((await send(app, 'GET', '/sensitive', { cookie: weak })).status, 403, 'fresh but level 1');
});

test('set and merge write with the loaded version and keep the subject', async () => {
  const service = fakeService();
  const app = appWith(service);
  const cookie = await loggedIn(app);
  assert.deepEqual(await (await send(app, 'PUT', '/replace', { cookie, body: { theme: 'dark' } })).json(), { theme: 'dark', sub: 'ada' });
  assert.deepEqual(await (await send(app, 'POST', '/note', { cookie, body: { n: 1 } })).json(), { theme: 'dark', sub: 'ada', n: 1 });
  const response = await send(app, 'POST', '/note', { cookie, body: { sub: 'mallory' } });
  assert.equal(response.status, 500);
  assert.match(await response.text(), /cannot change the session's subject/);
});

test('logout clears the cookie; log out everywhere ends the other sessions of the subject too', async () => {
  const service = fakeService();
  const app = appWith(service);
  const laptop = await loggedIn(app);
  const phone = await loggedIn(app);
  const devices = await (await send(app, 'GET', '/devices', { cookie: laptop })).json();
  assert.equal(devices.length, 2);
  assert.equal(devices.filter((d) => d.current).length, 1);
  const response = await send(app, 'POST', '/everywhere', { cookie: laptop });
  assert.deepEqual(await response.json(), { ended: 2 });
  assert.match(sessionCookie(response).attributes.join(';'), /Max-Age=0/);
  assert.equal((await send(app, 'GET', '/me', { cookie: phone })).status, 401);
  const other = await loggedIn(app, 'bob');
  assert.equal((await send(app, 'POST', '/logout', { cookie: other })).status, 204);
  assert.equal((await send(app, 'GET', '/me', { cookie: other })).status, 401);
});

test('dbsc: a login offers registration; without the option, nothing', async () => {
  const service = fakeService();
  const bound = await send(appWith(service, { dbsc: true }), 'POST', '/login', { body: { username: 'ada' } });
  const id = sessionCookie(bound).value.split('.')[0];
  assert.equal(
    bound.headers.get('secure-session-registration'),
    `(ES256 RS256);path="/.session-state/dbsc/register";challenge="c-${id}"`,
  );
  const custom = appWith(service, { dbsc: { registrationPath: '/reg', algorithms: ['RS256'] } });
  const other = await send(custom, 'POST', '/login', { body: { username: 'bob' } });
  assert.match(other.headers.get('secure-session-registration'), /^\(RS256\);path="\/reg";challenge="c-/);
  const plain = await send(appWith(service), 'POST', '/login', { body: { username: 'eve' } });
  assert.equal(plain.headers.get('secure-session-registration'), null);
});

test('dbsc: a bound cookie is never renewed nor rewritten by the middleware, however old', async () => {
  const service = fakeService();
  const app = appWith(service, { dbsc: true, renewAfter: 0 });
  const pair = await loggedIn(app);
  const bound = `${pair.slice(0, pair.lastIndexOf('.'))}.0.b`;
  const read = await send(app, 'GET', '/me', { cookie: bound });
  assert.equal(read.status, 200);
  const written = await send(app, 'POST', '/note', { cookie: bound, body: { note: 1 } });
  assert.equal(written.status, 200);
  assert.equal(sessionCookie(read), null);
  assert.equal(sessionCookie(written), null);
  assert.equal(service.count('POST /renew'), 0);
  // The same cookie unbound is renewed.
  const unbound = bound.slice(0, -2);
  assert.ok(sessionCookie(await send(app, 'GET', '/me', { cookie: unbound })));
  assert.equal(service.count('POST /renew'), 1);
});

test('dbsc: the endpoints refuse what they cannot serve, and Secure-Session-Skipped is reported', async () => {
  const service = fakeService();
  const skipped = [];
  const app = appWith(service, { dbsc: { onSkipped: (reports) => skipped.push(...reports) } });
  const noCookie = await send(app, 'POST', '/.session-state/dbsc/register', { headers: { 'secure-session-response': '"x.y.z"' } });
  assert.equal(noCookie.status, 400);
  assert.deepEqual(await noCookie.json(), { code: 'no_session', detail: 'The request carries no unbound session.', continue: false });
  const pair = await loggedIn(app);
  const noProof = await send(app, 'POST', '/.session-state/dbsc/register', { cookie: pair });
  assert.equal((await noProof.json()).code, 'no_proof');
  const noId = await send(app, 'POST', '/.session-state/dbsc/refresh');
  assert.equal(noId.status, 400);
  assert.equal((await noId.json()).code, 'no_binding');
  assert.equal(sessionCookie(noId), null);
  await send(app, 'GET', '/public', { headers: { 'secure-session-skipped': 'unreachable;session_identifier="s1", quota_exceeded' } });
  assert.deepEqual(skipped, [{ reason: 'unreachable', sessionIdentifier: 's1' }, { reason: 'quota_exceeded' }]);
});

test('dbsc: a service that cannot offer binding leaves the login unbound, never failed', async () => {
  // A version of session-state without `/bind`.
  const older = await send(appWith(fakeService({ binding: false }), { dbsc: true }), 'POST', '/login', { body: { username: 'bob' } });
  assert.equal(older.status, 200);
  assert.equal(older.headers.get('secure-session-registration'), null);
  assert.ok(sessionCookie(older), 'logged in, unbound');
  // A store too busy to mint a challenge.
  const busy = fakeService();
  const fetchOf = busy.binding.fetch;
  busy.binding.fetch = (input, init) => (String(input).includes('/bind/')
    ? Promise.resolve(new Response(JSON.stringify({ code: 'store_busy', status: 429 }), {
      status: 429, headers: { 'content-type': 'application/problem+json', 'retry-after': '1' },
    }))
    : fetchOf(input, init));
  const response = await send(appWith(busy, { dbsc: true }), 'POST', '/login', { body: { username: 'ada' } });
  assert.equal(response.status, 200);
  assert.equal(response.headers.get('secure-session-registration'), null);
  assert.ok(sessionCookie(response), 'logged in, unbound');
});
