// Upgrading from the version before the last authentication was kept (AUTH_BEFORE): its records
// (`s2`, and a renewed id's retirement `r2`), its KV metadata and its objects' tables without the
// authentication columns are served by this version from the same local state, on either backend.
// Each session reads as level 1, authenticated at its creation; the renewed id still reaches its
// successor within its window; a write seals the record as `s3`; a reauthentication records a
// new level under a new id.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AUTH_BEFORE, JSON_HEADERS, expectProblem, handleOf, previousBuild, startWorker, storedFormats } from './harness.mjs';

const SUBJECT = 'auth-upgrade@example.com';
// A window that outlasts the restart, so that the renewed id is still within it.
const VARS = { SESSION_RENEWAL_GRACE_SECONDS: '300' };
const list = `/subjects/${encodeURIComponent(SUBJECT)}/sessions`;

describe(`upgrading from ${AUTH_BEFORE} (no authentication kept)`, () => {
  let state;
  let worker;
  const ids = {};
  const call = (route, init) => fetch(`${worker.url}${route}`, init);
  before(async () => {
    state = mkdtempSync(join(tmpdir(), 'session-state-upgrade-auth-'));
    const previous = await startWorker({ configs: [previousBuild(VARS, AUTH_BEFORE)], state });
    const create = async (data, headers = {}) => {
      const response = await fetch(`${previous.url}/create`, { method: 'POST', headers: { ...JSON_HEADERS, ...headers }, body: JSON.stringify(data) });
      assert.equal(response.status, 201, await response.clone().text());
      return response.text();
    };
    ids.listed = await create({ n: 1 }, { 'session-subject': SUBJECT });
    ids.plain = await create({ n: 2 });
    ids.old = await create({ n: 3 }, { 'session-subject': SUBJECT });
    ids.renewed = await (await fetch(`${previous.url}/renew/${ids.old}`, { method: 'POST' })).text();
    // The previous version's index learns each session's lifecycle as it lists it.
    assert.equal((await (await fetch(`${previous.url}${list}`)).json()).sessions.length, 2);
    await previous.stop();
    worker = await startWorker({ state, vars: VARS });
    const seeded = await storedFormats(worker);
    assert.deepEqual(seeded.records.sort(), ['r2', 's2', 's2', 's2'], 'the version before sealed s2 records and an r2 retirement');
  });
  after(async () => {
    await worker?.stop();
    if (state) rmSync(state, { recursive: true, force: true });
  });

  test('every session reads as level 1 at its creation, is listed so, written as s3, and reauthenticated', async () => {
    const listed = (await (await call(list)).json()).sessions;
    assert.deepEqual(new Set(listed.map((s) => s.handle)), new Set([ids.listed, ids.renewed].map(handleOf)));
    for (const session of listed) {
      assert.equal(session.authLevel, 1, 'level 1');
      assert.equal(session.authenticatedAt, session.createdAt, 'authenticated at its creation');
    }
    for (const name of ['listed', 'plain', 'renewed', 'old']) {
      const read = await call(`/get/${ids[name]}`, { headers: { 'session-max-auth-age': '3600' } });
      assert.equal(read.status, 200, name);
      assert.equal(read.headers.get('session-auth-level'), '1', name);
      const weak = await call(`/get/${ids[name]}`, { headers: { 'session-min-auth-level': '2' } });
      await expectProblem(assert, weak, 403, 'reauthentication_required');
    }
    assert.deepEqual(await (await call(`/get/${ids.old}`)).json(), { n: 3 }, 'the renewed id still reaches its successor');

    const added = await call(`/add/${ids.plain}`, { method: 'PATCH', headers: { ...JSON_HEADERS, 'if-match': '"1"' }, body: '{"upgraded":true}' });
    assert.equal(added.status, 200);
    assert.equal(added.headers.get('session-auth-level'), '1', 'a write keeps the authentication');
    assert.deepEqual((await storedFormats(worker)).records.sort(), ['r2', 's2', 's2', 's3'], 'the write sealed its record as s3');

    const stepped = await call(`/reauth/${ids.listed}`, { method: 'POST', headers: { 'session-auth-level': '2' } });
    assert.equal(stepped.status, 201);
    const id = await stepped.text();
    assert.equal((await call(`/get/${id}`, { headers: { 'session-min-auth-level': '2' } })).status, 200);
    await expectProblem(assert, await call(`/get/${ids.listed}`), 404, 'session_not_found');
    const after = (await (await call(list)).json()).sessions;
    const entry = after.find((s) => s.handle === handleOf(id));
    assert.equal(entry.authLevel, 2, 'the listing shows the new authentication');
    assert.equal(entry.authenticatedAt, stepped.headers.get('session-authenticated-at'));
  });
});
