// Upgrading loses no session: storage written by the previous version (tests/e2e/harness.mjs,
// PREVIOUS), served by this version from the same local state. In the KV pass that is bare-id KV
// keys with the data in the clear and index entries holding ids; in the strong pass, objects
// named by the id and subject indexes holding ids. Each
// session is read, listed and written, and once it has moved, the dump holds none of it.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { JSON_HEADERS, expectProblem, handleOf, previousBuild, startWorker } from './harness.mjs';

const CANARY = 'c4n4ry-upgrade-77d1';
const SUBJECT = 'upgrade@example.com';
const list = `/subjects/${encodeURIComponent(SUBJECT)}/sessions`;

describe('upgrading from the previous version', () => {
  let state;
  let worker;
  const ids = {};
  before(async () => {
    state = mkdtempSync(join(tmpdir(), 'session-state-upgrade-'));
    const previous = await startWorker({ configs: [previousBuild()], state });
    const create = async (data, subject) => {
      const headers = subject ? { ...JSON_HEADERS, 'session-subject': subject } : JSON_HEADERS;
      const response = await fetch(`${previous.url}/create`, { method: 'POST', headers, body: JSON.stringify(data) });
      assert.equal(response.status, 201);
      return response.text();
    };
    ids.listed = await create({ n: 1, secret: CANARY }, SUBJECT);
    ids.other = await create({ n: 2, secret: CANARY }, SUBJECT);
    ids.plain = await create({ n: 3, secret: CANARY });
    ids.revoked = await create({ n: 4, secret: CANARY }, SUBJECT);
    const seeded = await previous.dump();
    assert.ok(seeded.includes(ids.listed) && seeded.includes(CANARY), 'the previous version stored them in the clear');
    await previous.stop();
    worker = await startWorker({ state });
  });
  after(async () => {
    await worker?.stop();
    if (state) rmSync(state, { recursive: true, force: true });
  });

  test('every session is served, listed by handle, revoked by handle, written and moved', async () => {
    const call = (route, init) => fetch(`${worker.url}${route}`, init);
    const read = await call(`/get/${ids.listed}`);
    assert.equal(read.status, 200);
    assert.deepEqual(await read.json(), { n: 1, secret: CANARY });
    assert.equal(read.headers.get('etag'), '"1"', 'its version carried over');
    const listed = await (await call(list)).json();
    assert.deepEqual(
      new Set(listed.sessions.map((s) => s.handle)),
      new Set([ids.listed, ids.other, ids.revoked].map(handleOf)),
      'the subject index of the previous version lists them, by handle',
    );
    const revoked = await call(`${list}/${handleOf(ids.revoked)}`, { method: 'DELETE' });
    assert.deepEqual(await revoked.json(), { revoked: 1 });
    await expectProblem(assert, await call(`/get/${ids.revoked}`), 404, 'session_not_found');
    for (const [name, id] of Object.entries({ listed: ids.listed, other: ids.other, plain: ids.plain })) {
      const added = await call(`/add/${id}`, { method: 'PATCH', headers: { ...JSON_HEADERS, 'if-match': '"1"' }, body: '{"upgraded":true}' });
      assert.equal(added.status, 200, name);
      assert.equal(added.headers.get('etag'), '"2"', name);
      assert.equal((await added.json()).secret, CANARY, name);
    }
    // A listing after the moves rewrites the index entries that held ids.
    const relisted = await (await call(list)).json();
    assert.equal(relisted.sessions.length, 2);
    const dump = (await worker.dump()).toLowerCase();
    for (const id of Object.values(ids)) {
      for (const form of [id, id.replaceAll('-', '')]) {
        // Locally an emptied object keeps the name it was reached by (miniflare's own table):
        // production keeps nothing for an object with no storage.
        const rest = dump.split('\n').filter((line) => !line.includes('__miniflare_do_name')).join('\n');
        assert.ok(!rest.includes(form), `${form} still stored:\n${dump}`);
      }
    }
    assert.ok(!dump.includes(CANARY), `data still in the clear:\n${dump}`);
    const again = await (await call(list)).json();
    assert.deepEqual(new Set(again.sessions.map((s) => s.handle)), new Set([ids.listed, ids.other].map(handleOf)));
    assert.equal((await call(`/delete/${ids.other}`, { method: 'DELETE' })).status, 204);
    await expectProblem(assert, await call(`/get/${ids.other}`), 404, 'session_not_found');
  });
});
