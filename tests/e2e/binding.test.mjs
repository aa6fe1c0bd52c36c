// Device binding (W3C DBSC) at the service, in the backend under test: `/bind` and `/binding`
// driven by a scripted device (Node WebCrypto, ES256 and RS256) that signs what a browser signs.
// Registration and refresh move the session to new ids; every refusal is asserted by status and
// problem; a bound id lives BOUND_SESSION_ID_SECONDS (2 s here), after which presenting it is
// reuse; in strong mode a refresh proof is good once, however many race with it.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { JSON_HEADERS, STRONG, expectProblem, handleOf, sleep, startWorker } from './harness.mjs';
import { device, sfString, unsigned } from './dbsc-device.mjs';

const BOUND_SECONDS = 2;

let worker;
before(async () => {
  worker = await startWorker({ vars: { BOUND_SESSION_ID_SECONDS: String(BOUND_SECONDS), SESSION_RENEWAL_GRACE_SECONDS: '1' } });
});
after(async () => { await worker?.stop(); });

const call = (path, init = {}) => fetch(`${worker.url}${path}`, init);
const post = (path, headers = {}) => call(path, { method: 'POST', headers });

async function create(subject = `u-${Math.random().toString(36).slice(2)}`) {
  const response = await call('/create', {
    method: 'POST',
    headers: { ...JSON_HEADERS, 'session-subject': subject },
    body: JSON.stringify({ sub: subject }),
  });
  assert.equal(response.status, 201);
  return { id: await response.text(), subject };
}

async function challenge(path) {
  const response = await post(path);
  assert.equal(response.status, 200, await response.clone().text());
  assert.equal(response.headers.get('cache-control'), 'no-store');
  const { challenge: value } = await response.json();
  assert.match(value, /^[A-Za-z0-9_-]{32}$/);
  return value;
}

/** Registers `key` for the session `id`: the bound answer. */
async function bind(id, key) {
  const proof = await key.proof(await challenge(`/bind/${id}/challenge`), { register: true });
  const response = await post(`/bind/${id}`, { 'secure-session-response': sfString(proof) });
  assert.equal(response.status, 201, await response.clone().text());
  return { response, body: await response.json() };
}

async function refresh(binding, key, options) {
  const proof = await key.proof(await challenge(`/binding/${binding}/challenge`), options);
  return post(`/binding/${binding}/refresh`, { 'secure-session-response': sfString(proof) });
}

for (const alg of ['ES256', 'RS256']) {
  test(`${alg}: a session binds, refreshes with the device's proof, and each move is a new id`, async () => {
    const key = await device(alg);
    const { id, subject } = await create();
    const listed = async () => (await (await call(`/subjects/${subject}/sessions`)).json()).sessions;
    assert.deepEqual((await listed()).map((s) => s.bound), [null]);
    const { response, body } = await bind(id, key);
    const sessions = await listed();
    assert.deepEqual(sessions.map((s) => [s.handle, s.bound]), [[handleOf(body.sessionId), alg]], 'listed once, bound');
    assert.deepEqual(Object.keys(body).sort(), ['alg', 'binding', 'expiresAt', 'idExpiresAt', 'sessionId']);
    assert.equal(body.alg, alg);
    assert.notEqual(body.sessionId, id);
    assert.notEqual(body.binding, id);
    assert.equal(response.headers.get('session-id'), body.sessionId);
    assert.equal(response.headers.get('session-handle'), handleOf(body.sessionId));
    assert.equal(response.headers.get('session-id-expires'), body.idExpiresAt);
    const life = Date.parse(body.idExpiresAt) - Date.now();
    assert.ok(life > 0 && life <= BOUND_SECONDS * 1000, `the bound id lives ${life} ms`);
    // The bound id reads the session; the id it was bound from reaches it for the grace window.
    assert.equal((await call(`/get/${body.sessionId}`)).status, 200);
    assert.equal((await call(`/get/${id}`)).status, 200);

    const refreshed = await refresh(body.binding, key);
    assert.equal(refreshed.status, 201, await refreshed.clone().text());
    const next = await refreshed.json();
    assert.equal(next.binding, body.binding, 'the binding identifier is the browser\'s session_identifier: it stays');
    assert.notEqual(next.sessionId, body.sessionId);
    assert.equal((await call(`/get/${next.sessionId}`)).status, 200);
  });
}

test('a bound session is not renewed without a proof, nor bound twice', async () => {
  const { body } = await bind((await create()).id, await device());
  await expectProblem(assert, await post(`/renew/${body.sessionId}`), 403, 'proof_required');
  await expectProblem(assert, await post(`/bind/${body.sessionId}/challenge`), 409, 'session_bound');
});

test('refused registrations: another key, no key, alg none or HS256, another session\'s challenge, no proof', async () => {
  const key = await device();
  const { id } = await create();
  const own = await challenge(`/bind/${id}/challenge`);
  const send = (proof) => post(`/bind/${id}`, { 'secure-session-response': sfString(proof) });
  const problem = async (proof, code, why) => {
    const body = await expectProblem(assert, await send(proof), 403, code);
    if (why) assert.match(body.detail, why);
  };
  await problem(await key.proof(own, { register: true, signWith: await key.otherKey() }), 'proof_refused', /does not verify/);
  await problem(await key.proof(own), 'proof_refused', /jwk/);
  await problem(unsigned({ typ: 'dbsc+jwt', alg: 'none', jwk: key.jwk }, { jti: own }), 'proof_refused', /alg/);
  await problem(unsigned({ typ: 'dbsc+jwt', alg: 'HS256', jwk: key.jwk }, { jti: own }), 'proof_refused', /alg/);
  await problem(await key.proof(own, { register: true, header: { typ: 'JWT' } }), 'proof_refused', /typ/);
  const other = await challenge(`/bind/${(await create()).id}/challenge`);
  await problem(await key.proof(other, { register: true }), 'challenge_refused');
  await expectProblem(assert, await post(`/bind/${id}`), 403, 'proof_refused');
  // Nothing refused bound it: the session binds with its own challenge still.
  const proof = await key.proof(own, { register: true });
  assert.equal((await send(proof)).status, 201);
  // And that registration spent the challenge: the id it was minted for has moved on.
  assert.notEqual((await send(proof)).status, 201);
});

test('refused refreshes: a replayed proof, a jwk, another key, another alg, an expired challenge', async () => {
  const key = await device();
  const { body } = await bind((await create()).id, key);
  const path = `/binding/${body.binding}/refresh`;
  const send = (proof) => post(path, { 'secure-session-response': sfString(proof) });
  const first = await key.proof(await challenge(`/binding/${body.binding}/challenge`));
  assert.equal((await send(first)).status, 201);
  await expectProblem(assert, await send(first), 403, 'challenge_refused');

  const fresh = await challenge(`/binding/${body.binding}/challenge`);
  await expectProblem(assert, await send(await key.proof(fresh, { register: true })), 403, 'proof_refused');
  await expectProblem(assert, await send(await key.proof(fresh, { signWith: await key.otherKey() })), 403, 'proof_refused');
  const rsa = await device('RS256');
  await expectProblem(assert, await send(await rsa.proof(fresh)), 403, 'proof_refused');
  await expectProblem(assert, await send(unsigned({ typ: 'dbsc+jwt', alg: 'none' }, { jti: fresh })), 403, 'proof_refused');
  await sleep(BOUND_SECONDS * 1000 + 100);
  await expectProblem(assert, await send(await key.proof(fresh)), 403, 'challenge_refused');
  // Refreshing after the bound id's life is what a refresh is for.
  assert.equal((await refresh(body.binding, key)).status, 201);
});

test('a bound id presented after its life is reuse: the session ends, refresh included', async () => {
  const key = await device();
  const { body } = await bind((await create()).id, key);
  await sleep(BOUND_SECONDS * 1000 + 100);
  await expectProblem(assert, await call(`/get/${body.sessionId}`), 404, 'session_not_found');
  await expectProblem(assert, await post(`/binding/${body.binding}/challenge`), 404, 'session_not_found');
});

test('a binding identifier is no session id: no session route reads or ends what it names', async () => {
  const key = await device();
  const { body } = await bind((await create()).id, key);
  await expectProblem(assert, await call(`/get/${body.binding}`), 404, 'session_not_found');
  await expectProblem(assert, await post(`/renew/${body.binding}`), 404, 'session_not_found');
  assert.equal((await call(`/delete/${body.binding}`, { method: 'DELETE' })).status, 204);
  assert.equal((await refresh(body.binding, key)).status, 201, 'the binding survives a delete of its identifier');
  await expectProblem(assert, await post(`/binding/${body.sessionId}/challenge`), 404, 'session_not_found');
});

test(STRONG
  ? 'strong mode: of ten refreshes racing with one proof, exactly one moves the session'
  : 'KV: refreshes racing with one proof converge on one new id', async () => {
  const key = await device();
  const { body } = await bind((await create()).id, key);
  const proof = await key.proof(await challenge(`/binding/${body.binding}/challenge`));
  const responses = await Promise.all(Array.from({ length: 10 }, () =>
    post(`/binding/${body.binding}/refresh`, { 'secure-session-response': sfString(proof) })));
  const moved = responses.filter((r) => r.status === 201);
  const ids = new Set(await Promise.all(moved.map(async (r) => (await r.json()).sessionId)));
  for (const refused of responses.filter((r) => r.status !== 201)) {
    await expectProblem(assert, refused, 403, 'challenge_refused');
  }
  if (STRONG) assert.equal(moved.length, 1, 'one proof, one refresh');
  assert.ok(moved.length >= 1);
  assert.equal(ids.size, 1, 'every refresh that passed moved the session to one id');
});
