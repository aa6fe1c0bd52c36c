// Device-bound sessions (W3C DBSC) through the Hono example (examples/hono, `dbsc: true`) in
// front of session-state, in the backend under test: a scripted browser (a cookie jar and a
// Node WebCrypto key, ES256 and RS256) follows the spec: the registration header at login, the
// registration request, the 403 and challenge of a refresh, the signed retry. Bound ids live 2 s
// here (BOUND_SESSION_ID_SECONDS), so the waits are short.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { exampleConfig, sleep, startWorker } from './harness.mjs';
import { challengeOf, device, registration, sfString, unsigned } from './dbsc-device.mjs';

const BOUND_SECONDS = 2;
const RENEW_AFTER_SECONDS = 1;

let worker;
before(async () => {
  worker = await startWorker({
    configs: [exampleConfig(RENEW_AFTER_SECONDS), 'wrangler.toml'],
    vars: { BOUND_SESSION_ID_SECONDS: String(BOUND_SECONDS), SESSION_RENEWAL_GRACE_SECONDS: '1' },
  });
});
after(async () => { await worker?.stop(); });

/** A browser: a cookie jar for the example's origin, and a DBSC key. */
async function browser(alg = 'ES256') {
  const key = await device(alg);
  let cookie = null;
  const jar = {
    key,
    set: [],
    get cookie() { return cookie; },
    adopt(value) { cookie = value; },
    async send(method, path, { json, headers = {} } = {}) {
      const response = await fetch(`${worker.url}${path}`, {
        method,
        redirect: 'manual',
        headers: {
          ...(cookie ? { cookie } : {}),
          ...(method === 'GET' ? {} : { origin: worker.url, 'sec-fetch-site': 'same-origin' }),
          ...(json !== undefined ? { 'content-type': 'application/json' } : {}),
          ...headers,
        },
        ...(json === undefined ? {} : { body: JSON.stringify(json) }),
      });
      const line = response.headers.getSetCookie().find((c) => c.startsWith('__Host-session='));
      if (line) {
        jar.set.push(line);
        cookie = /Max-Age=0/i.test(line) ? null : line.split(';')[0];
      }
      return response;
    },
    /** Logs in; the registration header's parameters. */
    async login(username = `user-${Math.random().toString(36).slice(2)}`) {
      const response = await jar.send('POST', '/login', { json: { username } });
      assert.equal(response.status, 200, await response.clone().text());
      return registration(response.headers.get('secure-session-registration'));
    },
    /** What the browser does with a registration header: its proof, POSTed to `path`. */
    async register(header, proofOptions = {}) {
      const proof = await key.proof(header.challenge, { register: true, ...proofOptions });
      return jar.send('POST', header.path, { headers: { 'secure-session-response': sfString(proof) } });
    },
    /** A refresh as the spec runs it: without a proof, then with one for the 403's challenge. */
    async refresh(instructions, proofOptions = {}) {
      const id = { 'sec-secure-session-id': sfString(instructions.session_identifier) };
      const first = await jar.send('POST', instructions.refresh_url, { headers: id });
      assert.equal(first.status, 403);
      const challenge = challengeOf(first.headers.get('secure-session-challenge'));
      assert.equal(challenge.id, instructions.session_identifier);
      const proof = await key.proof(challenge.challenge, proofOptions);
      const second = await jar.send('POST', instructions.refresh_url, { headers: { ...id, 'secure-session-response': sfString(proof) } });
      return { response: second, proof };
    },
  };
  return jar;
}

const idOf = (cookie) => cookie?.split('=')[1].split('.')[0];
const boundCookie = (line) => /^__Host-session=[^;]+\.b;/.test(line);

async function registered(alg) {
  const jar = await browser(alg);
  const header = await jar.login();
  const response = await jar.register(header);
  assert.equal(response.status, 200, await response.clone().text());
  return { jar, instructions: await response.json() };
}

for (const alg of ['ES256', 'RS256']) {
  test(`${alg}: login offers registration; the browser registers, and refreshes with its proof`, async () => {
    const jar = await browser(alg);
    const header = await jar.login();
    assert.deepEqual(header.algorithms, ['ES256', 'RS256']);
    assert.equal(header.path, '/.session-state/dbsc/register');
    assert.match(header.challenge, /^[A-Za-z0-9_-]{32}$/);
    const unbound = jar.cookie;

    const response = await jar.register(header);
    assert.equal(response.status, 200);
    const instructions = await response.json();
    assert.deepEqual(Object.keys(instructions).sort(), ['credentials', 'refresh_url', 'scope', 'session_identifier']);
    assert.equal(instructions.refresh_url, '/.session-state/dbsc/refresh');
    assert.deepEqual(instructions.scope, { include_site: false });
    assert.deepEqual(instructions.credentials, [
      { type: 'cookie', name: '__Host-session', attributes: 'Path=/; Secure; HttpOnly; SameSite=Lax' },
    ]);
    const set = jar.set.at(-1);
    const sets = jar.set.length;
    assert.ok(boundCookie(set), set);
    // Whole seconds left of the id's life, rounded down: the cookie never outlives the id.
    assert.match(set, new RegExp(`Max-Age=[${BOUND_SECONDS - 1}${BOUND_SECONDS}]; Path=/; HttpOnly; Secure; SameSite=Lax`));
    assert.notEqual(idOf(jar.cookie), idOf(unbound), 'registration moves the session to a new id');
    assert.equal((await jar.send('GET', '/me')).status, 200);

    const { response: refreshed } = await jar.refresh(instructions);
    assert.equal(refreshed.status, 200, await refreshed.clone().text());
    assert.equal((await refreshed.json()).session_identifier, instructions.session_identifier);
    assert.ok(boundCookie(jar.set.at(-1)));
    const me = await jar.send('GET', '/me');
    assert.equal(me.status, 200);
    assert.equal(jar.set.length, sets + 1, 'nothing but registration and refresh set the cookie');
  });
}

test('the bound cookie is renewed only with a proof: never by the middleware, write or not', async () => {
  const { jar } = await registered();
  const bound = jar.cookie;
  const sets = jar.set.length;
  await sleep(RENEW_AFTER_SECONDS * 1000 + 200);
  const me = await jar.send('GET', '/me');
  assert.equal(me.status, 200);
  const step = await jar.send('POST', '/reauth', { json: {} });
  assert.equal(step.status, 200);
  // Step-up moves a bound session to a new id, still bound, its cookie ending with the id.
  assert.notEqual(jar.cookie, bound);
  assert.ok(boundCookie(jar.set.at(-1)), jar.set.at(-1));
  assert.equal(jar.set.length, sets + 1, jar.set.join('\n'));
});

test('a refresh after a step-up follows the session to its new id', async () => {
  const { jar, instructions } = await registered();
  assert.equal((await jar.send('POST', '/reauth', { json: {} })).status, 200);
  const { response } = await jar.refresh(instructions);
  assert.equal(response.status, 200, await response.clone().text());
  assert.equal((await jar.send('GET', '/me')).status, 200);
});

test('a copied cookie jar stops working with its bound id, and ends the session when used after', async () => {
  const { jar, instructions } = await registered();
  const thief = await browser();
  thief.adopt(jar.cookie);
  assert.equal((await thief.send('GET', '/me')).status, 200, 'a copy works for what is left of the id\'s life');
  // The device refreshes; the thief holds the old id and no key.
  const { response } = await jar.refresh(instructions);
  assert.equal(response.status, 200);
  await sleep(BOUND_SECONDS * 1000 + 200);
  assert.equal((await thief.send('GET', '/me')).status, 401);
  // The copy came back after its life: reuse, and the session it was renewed into ends.
  const refresh = await jar.send('POST', instructions.refresh_url, {
    headers: { 'sec-secure-session-id': sfString(instructions.session_identifier) },
  });
  assert.equal(refresh.status, 401, 'the device\'s refresh finds the session ended');
  assert.equal((await jar.send('GET', '/me')).status, 401);
});

test('refused registrations: another key, alg none or HS256, another session\'s challenge, no proof; no bound cookie', async () => {
  const jar = await browser();
  const header = await jar.login();
  const before = jar.set.length;
  const refused = async (response, status) => {
    assert.equal(response.status, status, await response.clone().text());
    assert.equal((await response.json()).continue, false);
  };
  await refused(await jar.register(header, { signWith: await jar.key.otherKey() }), 403);
  for (const alg of ['none', 'HS256']) {
    const proof = unsigned({ typ: 'dbsc+jwt', alg, jwk: jar.key.jwk }, { jti: header.challenge });
    await refused(await jar.send('POST', header.path, { headers: { 'secure-session-response': sfString(proof) } }), 403);
  }
  const other = await (await browser()).login();
  await refused(await jar.register({ ...header, challenge: other.challenge }), 403);
  await refused(await jar.send('POST', header.path), 400);
  assert.equal(jar.set.length, before, 'no refusal set a cookie');
  // Still unbound, the session registers with its own challenge.
  assert.equal((await jar.register(header)).status, 200);
});

test('refused refreshes: another key, a jwk, a replayed proof; no bound cookie', async () => {
  const { jar, instructions } = await registered();
  const other = await jar.key.otherKey();
  const wrong = await jar.refresh(instructions, { signWith: other });
  assert.equal(wrong.response.status, 401);
  assert.equal((await wrong.response.json()).continue, false);
  assert.ok(!boundCookie(jar.set.at(-1)));

  const { jar: second, instructions: its } = await registered();
  const withKey = await second.refresh(its, { register: true });
  assert.equal(withKey.response.status, 401);

  const { jar: third, instructions: theirs } = await registered();
  const { response, proof } = await third.refresh(theirs);
  assert.equal(response.status, 200);
  const count = third.set.length;
  const replay = await third.send('POST', theirs.refresh_url, {
    headers: { 'sec-secure-session-id': sfString(theirs.session_identifier), 'secure-session-response': sfString(proof) },
  });
  assert.equal(replay.status, 403, 'a spent challenge: a fresh one, for the browser to sign');
  assert.ok(challengeOf(replay.headers.get('secure-session-challenge')));
  assert.equal(third.set.length, count, 'and no cookie');
});

test('a refresh for an unknown binding ends the browser\'s session (401), and Secure-Session-Skipped is recorded', async () => {
  const jar = await browser();
  const response = await jar.send('POST', '/.session-state/dbsc/refresh', {
    headers: { 'sec-secure-session-id': sfString('A'.repeat(43)) },
  });
  assert.equal(response.status, 401);
  const skipped = await jar.send('GET', '/me', {
    headers: { 'secure-session-skipped': 'quota_exceeded;session_identifier="abc"' },
  });
  assert.equal(skipped.status, 401);
  // The example's console, as wrangler prints it.
  const deadline = Date.now() + 5000;
  while (!worker.logs().includes('skipped a DBSC refresh: quota_exceeded') && Date.now() < deadline) await sleep(100);
  const line = worker.logs().split('\n').find((l) => l.includes('skipped a DBSC refresh'));
  assert.ok(line?.includes('quota_exceeded'), worker.logs().slice(-2000));
  assert.ok(!line.includes('abc'), 'the identifier is not logged');
});
