// OWASP ASVS 5.0 V7, end to end, in the backend under test: ids of 256 bits on request
// (`SESSION_ID_FORMAT=token`) beside the UUIDs issued before, and everyone's sessions ended at once
// (`SESSIONS_NOT_BEFORE`). Each switch is a restart of the same local state with a var changed.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
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
