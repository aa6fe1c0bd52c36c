// OWASP ASVS 5.0 V7, end to end, in the backend under test: ids of 256 bits on request
// (`SESSION_ID_FORMAT=token`) beside the UUIDs issued before, and everyone's sessions ended at once
// (`SESSIONS_NOT_BEFORE`), each switch a restart of the same local state with a var changed; and
// the last authentication, recorded at /create and /reauth and demanded by any request.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { JSON_HEADERS, UUID_V4, expectProblem, startWorker } from './harness.mjs';

const TOKEN = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/;

function client(worker) {
  const call = (path, init = {}) => fetch(`${worker.url}${path}`, init);
  const json = (method, body) => ({ method, headers: JSON_HEADERS, body: JSON.stringify(body) });
  return {
    call,
    async create(data = { user: 'ada' }) {
      const response = await call('/create', json('POST', data));
      assert.equal(response.status, 201);
      return response.text();
    },
    json,
  };
}

/**
 * Runs `steps.before` and then `steps.after` over two starts of the worker on one local state,
 * with vars each (the second's may be a function of the time between the two).
 */
async function restarted(firstVars, secondVars, steps) {
  const state = mkdtempSync(join(tmpdir(), 'session-state-asvs-'));
  try {
    const first = await startWorker({ vars: firstVars, state });
    let kept;
    try {
      kept = await steps.before(client(first));
    } finally {
      await first.stop();
    }
    const vars = typeof secondVars === 'function' ? secondVars() : secondVars;
    const second = await startWorker({ vars, state });
    try {
      await steps.after(client(second), kept);
    } finally {
      await second.stop();
    }
  } finally {
    rmSync(state, { recursive: true, force: true });
  }
}

test('token ids work on every route, and a UUID session made before the switch still works', async () => {
  await restarted({}, { SESSION_ID_FORMAT: 'token' }, {
    async before(c) {
      const id = await c.create({ made: 'before' });
      assert.match(id, UUID_V4);
      return id;
    },
    async after(c, uuid) {
      assert.deepEqual(await (await c.call(`/get/${uuid}`)).json(), { made: 'before' });
      const id = await c.create({ user: 'ada' });
      assert.match(id, TOKEN);
      assert.equal((await c.call(`/update/${id}`, c.json('PUT', { v: 1 }))).status, 200);
      assert.equal((await c.call(`/add/${id}`, c.json('PATCH', { w: 2 }))).status, 200);
      assert.equal((await c.call(`/touch/${id}`, { method: 'POST' })).status, 204);
      assert.deepEqual(await (await c.call(`/get/${id}`)).json(), { v: 1, w: 2 });
      const rotated = await (await c.call(`/rotate/${id}`, { method: 'POST' })).text();
      assert.match(rotated, TOKEN);
      const renewed = await (await c.call(`/renew/${rotated}`, { method: 'POST' })).text();
      assert.match(renewed, TOKEN);
      assert.deepEqual(await (await c.call(`/get/${rotated}`)).json(), { v: 1, w: 2 }, 'within the window');
      assert.equal((await c.call(`/delete/${renewed}`, { method: 'DELETE' })).status, 204);
      await expectProblem(assert, await c.call(`/get/${renewed}`), 404, 'session_not_found');
      // Not canonical: the last character carries bits a 32-byte token does not have.
      await expectProblem(assert, await c.call(`/get/${'A'.repeat(42)}B`), 400, 'invalid_session_id');
    },
  });
});

test('SESSIONS_NOT_BEFORE set after three sessions were made: all three are 404, and a new one works', async () => {
  await restarted({}, () => ({ SESSIONS_NOT_BEFORE: new Date().toISOString() }), {
    async before(c) {
      const ids = await Promise.all([c.create(), c.create(), c.create()]);
      for (const id of ids) assert.equal((await c.call(`/get/${id}`)).status, 200);
      await new Promise((r) => setTimeout(r, 20));
      return ids;
    },
    async after(c, ids) {
      for (const id of ids) await expectProblem(assert, await c.call(`/get/${id}`), 404, 'session_not_found');
      for (const id of ids) await expectProblem(assert, await c.call(`/add/${id}`, c.json('PATCH', { a: 1 })), 404, 'session_not_found');
      const fresh = await c.create({ after: 'the cut-off' });
      assert.deepEqual(await (await c.call(`/get/${fresh}`)).json(), { after: 'the cut-off' });
    },
  });
});

test('SESSIONS_NOT_BEFORE deletes each session it meets, so unsetting it brings back only those never presented', async () => {
  const state = mkdtempSync(join(tmpdir(), 'session-state-asvs-'));
  const run = async (vars, steps) => {
    const worker = await startWorker({ vars, state });
    try {
      return await steps(client(worker));
    } finally {
      await worker.stop();
    }
  };
  try {
    const ids = await run({}, (c) => Promise.all([c.create(), c.create(), c.create()]));
    await new Promise((r) => setTimeout(r, 20));
    const cutOff = new Date().toISOString();
    await run({ SESSIONS_NOT_BEFORE: cutOff }, async (c) => {
      for (const id of ids.slice(0, 2)) await expectProblem(assert, await c.call(`/get/${id}`), 404, 'session_not_found');
    });
    await run({}, async (c) => {
      for (const id of ids.slice(0, 2)) await expectProblem(assert, await c.call(`/get/${id}`), 404, 'session_not_found');
      assert.equal((await c.call(`/get/${ids[2]}`)).status, 200, 'never met while it was set: it must stay set one lifetime');
    });
  } finally {
    rmSync(state, { recursive: true, force: true });
  }
});

// ASVS 7.5.1 / 7.5.3: the last authentication, recorded by the caller and demanded by a request.
describe('authentication freshness and level', () => {
  let worker;
  let c;
  before(async () => {
    worker = await startWorker();
    c = client(worker);
  });
  after(async () => { await worker?.stop(); });

  const demand = (headers) => ({ headers });

  test('a session older than Session-Max-Auth-Age answers 403 and is unchanged; after POST /reauth the new id passes', async () => {
    const created = await c.call('/create', { ...c.json('POST', { user: 'ada' }), headers: { ...JSON_HEADERS, 'session-auth-level': '2' } });
    assert.equal(created.status, 201);
    const id = await created.text();
    const at = created.headers.get('session-authenticated-at');
    assert.equal(created.headers.get('session-auth-level'), '2');
    assert.ok(Math.abs(Date.parse(at) - Date.now()) < 60_000, at);
    await new Promise((r) => setTimeout(r, 2100));
    const stale = { 'session-max-auth-age': '1' };
    const refusals = [
      c.call(`/get/${id}`, demand(stale)),
      c.call(`/add/${id}`, { ...c.json('PATCH', { changed: true }), headers: { ...JSON_HEADERS, ...stale } }),
      c.call(`/update/${id}`, { ...c.json('PUT', { replaced: true }), headers: { ...JSON_HEADERS, ...stale } }),
      c.call(`/touch/${id}`, { method: 'POST', headers: stale }),
      c.call(`/rotate/${id}`, { method: 'POST', headers: stale }),
      c.call(`/renew/${id}`, { method: 'POST', headers: stale }),
    ];
    for (const response of await Promise.all(refusals)) {
      const problem = await expectProblem(assert, response, 403, 'reauthentication_required');
      assert.equal(problem.authenticatedAt, at);
      assert.ok(problem.authAge >= 2, `${problem.authAge}`);
      assert.equal(problem.authLevel, 2);
    }
    const unchanged = await c.call(`/get/${id}`);
    assert.deepEqual(await unchanged.json(), { user: 'ada' });
    assert.equal(unchanged.headers.get('etag'), '"1"', 'nothing written');
    assert.equal(unchanged.headers.get('session-expires'), created.headers.get('session-expires'), 'nothing renewed');
    assert.equal(unchanged.headers.get('session-authenticated-at'), at);

    const reauth = await c.call(`/reauth/${id}`, { method: 'POST', headers: { 'session-auth-level': '2', accept: 'application/json' } });
    assert.equal(reauth.status, 201);
    const { sessionId } = await reauth.json();
    assert.notEqual(sessionId, id);
    assert.ok(Date.parse(reauth.headers.get('session-authenticated-at')) > Date.parse(at));
    const fresh = await c.call(`/get/${sessionId}`, demand({ ...stale, 'session-min-auth-level': '2' }));
    assert.equal(fresh.status, 200);
    assert.deepEqual(await fresh.json(), { user: 'ada' });
    assert.equal(fresh.headers.get('session-auth-level'), '2');
    await expectProblem(assert, await c.call(`/get/${id}`), 404, 'session_not_found');
  });

  test('a level-1 session fails Session-Min-Auth-Level: 2 until it reauthenticates at level 2', async () => {
    const id = await c.create({ user: 'bob' });
    const weak = await c.call(`/get/${id}`, demand({ 'session-min-auth-level': '2' }));
    const problem = await expectProblem(assert, weak, 403, 'reauthentication_required');
    assert.equal(problem.authLevel, 1);
    const plain = await c.call(`/get/${id}`);
    assert.equal(plain.headers.get('session-auth-level'), '1');
    const stepped = await (await c.call(`/reauth/${id}`, { method: 'POST', headers: { 'session-auth-level': '2' } })).text();
    assert.equal((await c.call(`/get/${stepped}`, demand({ 'session-min-auth-level': '2' }))).status, 200);
    const again = await (await c.call(`/reauth/${stepped}`, { method: 'POST' })).text();
    await expectProblem(assert, await c.call(`/get/${again}`, demand({ 'session-min-auth-level': '2' })), 403, 'reauthentication_required');
  });

  test('a demand or a level that cannot be read is 400 invalid_auth_demand, never ignored', async () => {
    const id = await c.create();
    for (const headers of [{ 'session-max-auth-age': '5m' }, { 'session-max-auth-age': '-1' }, { 'session-min-auth-level': '4' }]) {
      await expectProblem(assert, await c.call(`/get/${id}`, demand(headers)), 400, 'invalid_auth_demand');
    }
    await expectProblem(assert, await c.call('/create', { ...c.json('POST', {}), headers: { ...JSON_HEADERS, 'session-auth-level': '0' } }), 400, 'invalid_auth_demand');
    await expectProblem(assert, await c.call(`/reauth/${id}`, { method: 'POST', headers: { 'session-auth-level': 'two' } }), 400, 'invalid_auth_demand');
    assert.equal((await c.call(`/get/${id}`)).status, 200, 'the session is still there');
    await expectProblem(assert, await c.call(`/reauth/${'0'.repeat(8)}-0000-4000-8000-${'0'.repeat(12)}`, { method: 'POST' }), 404, 'session_not_found');
  });

  test("the subject's listing shows each session's last authentication", async () => {
    const subject = `fresh-${Date.now()}@example.com`;
    const create = (level) => c.call('/create', { ...c.json('POST', {}), headers: { ...JSON_HEADERS, 'session-subject': encodeURIComponent(subject), 'session-auth-level': level } });
    const strong = await create('3');
    const weak = await create('1');
    const list = async () => {
      const { sessions } = await (await c.call(`/subjects/${encodeURIComponent(subject)}/sessions`)).json();
      return Object.fromEntries(sessions.map((s) => [s.handle, s]));
    };
    const listed = await eventually(async () => {
      const sessions = await list();
      return Object.keys(sessions).length === 2 ? sessions : null;
    });
    const byHandle = (response) => listed[response.headers.get('session-handle')];
    assert.equal(byHandle(strong).authLevel, 3);
    assert.equal(byHandle(strong).authenticatedAt, strong.headers.get('session-authenticated-at'));
    assert.equal(byHandle(weak).authLevel, 1);
  });
});

/** `probe()`'s first truthy answer, asked again for up to 70 s (KV lists lag writes by up to a minute). */
async function eventually(probe) {
  for (let tries = 0; tries < 70; tries += 1) {
    const found = await probe();
    if (found) return found;
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw new Error('never listed');
}
