// Upgrading from the version before lifecycles were sealed with the data (SEALED_BEFORE): its
// records (s1, lifecycle beside them) and device info (d1, under the earlier device key), with
// SUBJECT_KEY set, are served by this version from the same local state, on either backend. Each
// session is read, listed with its device, revoked or written; a listing seals device info anew,
// a write seals the record anew, and the dump holds no id and none of the data throughout.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { JSON_HEADERS, SEALED_BEFORE, STRONG, expectProblem, handleOf, previousBuild, startWorker, storageKeyOf, storedFormats } from './harness.mjs';

const CANARY = 'c4n4ry-sealed-5e1d';
const SUBJECT = 'sealed@example.com';
const VARS = { SUBJECT_KEY: 'upgrade-subject-key' };
const list = `/subjects/${encodeURIComponent(SUBJECT)}/sessions`;
const DEVICE = { 'session-label': 'Firefox%20on%20Linux', 'session-agent': 'Mozilla%2F5.0', 'session-ip': '203.0.113.7' };

describe(`upgrading from ${SEALED_BEFORE} (lifecycles beside the seal)`, () => {
  let state;
  let worker;
  const ids = {};
  const call = (route, init) => fetch(`${worker.url}${route}`, init);
  before(async () => {
    state = mkdtempSync(join(tmpdir(), 'session-state-upgrade-sealed-'));
    const previous = await startWorker({ configs: [previousBuild(VARS, SEALED_BEFORE)], state });
    const create = async (data, headers = {}) => {
      const response = await fetch(`${previous.url}/create`, { method: 'POST', headers: { ...JSON_HEADERS, ...headers }, body: JSON.stringify(data) });
      assert.equal(response.status, 201, await response.clone().text());
      return response.text();
    };
    ids.device = await create({ n: 1, secret: CANARY }, { 'session-subject': SUBJECT, ...DEVICE });
    ids.listed = await create({ n: 2, secret: CANARY }, { 'session-subject': SUBJECT });
    ids.plain = await create({ n: 3, secret: CANARY });
    await previous.stop();
    worker = await startWorker({ state, vars: VARS });
    const seeded = await storedFormats(worker);
    assert.deepEqual(seeded.records.sort(), ['s1', 's1', 's1'], 'the version before sealed s1 records');
    assert.deepEqual(seeded.devices, ['d1'], 'and d1 device info');
  });
  after(async () => {
    await worker?.stop();
    if (state) rmSync(state, { recursive: true, force: true });
  });

  test('every session is served, listed with its device, written, and sealed anew', async () => {
    for (const [name, id] of Object.entries(ids)) {
      const read = await call(`/get/${id}`);
      assert.equal(read.status, 200, name);
      assert.equal((await read.json()).secret, CANARY, name);
      assert.equal(read.headers.get('etag'), '"1"', `${name}: its lifecycle carried over`);
    }
    const listed = (await (await call(list)).json()).sessions;
    assert.deepEqual(new Set(listed.map((s) => s.handle)), new Set([ids.device, ids.listed].map(handleOf)));
    const withDevice = listed.find((s) => s.handle === handleOf(ids.device));
    assert.deepEqual([withDevice.label, withDevice.agent, withDevice.ip], ['Firefox on Linux', 'Mozilla/5.0', '203.0.113.7']);
    assert.deepEqual((await storedFormats(worker)).devices, ['d2'], 'the listing sealed the device info anew');
    const again = (await (await call(list)).json()).sessions.find((s) => s.handle === handleOf(ids.device));
    assert.equal(again.label, 'Firefox on Linux', 'and it opens under the new key');

    for (const name of ['device', 'plain']) {
      const added = await call(`/add/${ids[name]}`, { method: 'PATCH', headers: { ...JSON_HEADERS, 'if-match': '"1"' }, body: '{"upgraded":true}' });
      assert.equal(added.status, 200, name);
      assert.equal(added.headers.get('etag'), '"2"', name);
    }
    assert.deepEqual((await storedFormats(worker)).records.sort(), ['s1', 's3', 's3'], 'each write seals its record anew, in this version\'s format');
    const revoked = await call(`${list}/${handleOf(ids.listed)}`, { method: 'DELETE' });
    assert.deepEqual(await revoked.json(), { revoked: 1 });
    await expectProblem(assert, await call(`/get/${ids.listed}`), 404, 'session_not_found');

    const rotated = await (await call(`/rotate/${ids.device}`, { method: 'POST' })).text();
    const after = (await (await call(list)).json()).sessions;
    assert.deepEqual(after.map((s) => [s.handle, s.label]), [[handleOf(rotated), 'Firefox on Linux']]);
    const dump = (await worker.dump()).toLowerCase();
    for (const id of [...Object.values(ids), rotated]) {
      const rest = dump.split('\n').filter((line) => !line.includes('__miniflare_do_name')).join('\n');
      assert.ok(!rest.includes(id) && !rest.includes(id.replaceAll('-', '')), `${id} stored`);
    }
    assert.ok(!dump.includes(CANARY), 'no data in the clear');
    if (!STRONG) assert.ok(dump.includes(`kv ${storageKeyOf(rotated)} `));
  });
});
