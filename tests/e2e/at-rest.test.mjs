// What an administrator with a full dump of the store sees, on either backend: no id in any form
// and none of the data, after every kind of write; values that do not open when moved or altered;
// and sessions stored before this version still served, listed, and moved on their first write.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { JSON_HEADERS, STRONG, expectProblem, handleOf, startWorker, storageKeyOf } from './harness.mjs';

const CANARY = 'c4n4ry-e2e-0f1e';
const path = (subject) => `/subjects/${encodeURIComponent(subject)}/sessions`;

/** Every way an id could be written: hyphenated or not, either case. */
const forms = (id) => {
  const simple = id.replaceAll('-', '');
  return [id, simple, id.toUpperCase(), simple.toUpperCase()];
};

function assertNothingUsable(dump, ids) {
  const lower = dump.toLowerCase();
  for (const id of ids) {
    for (const form of forms(id)) assert.ok(!lower.includes(form.toLowerCase()), `${form} in the dump:\n${dump}`);
  }
  assert.ok(!dump.includes(CANARY), `session data in the dump:\n${dump}`);
}

describe('at rest', () => {
  let worker;
  let call;
  before(async () => {
    // The renewed-away id is read after the dump, which takes tens of seconds on a loaded
    // machine (34 s in a CI run beside other work): the longest window, not the 30 s default,
    // keeps that read within it.
    worker = await startWorker({ vars: { SESSION_RENEWAL_GRACE_SECONDS: '300' } });
    call = (route, init) => fetch(`${worker.url}${route}`, init);
  });
  after(async () => { await worker?.stop(); });

  const create = async (data, subject) => {
    const headers = subject ? { ...JSON_HEADERS, 'session-subject': subject } : JSON_HEADERS;
    const response = await call('/create', { method: 'POST', headers, body: JSON.stringify(data) });
    assert.equal(response.status, 201);
    return response.text();
  };

  test('a dump of KV and of every object shows no issued id and none of the data', async () => {
    const ids = [];
    const a = await create({ user: 'ada', secret: CANARY }, 'dump@example.com');
    const b = await create({ secret: CANARY }, 'dump@example.com');
    const c = await create({ secret: CANARY });
    ids.push(a, b, c);
    await call(`/add/${a}`, { method: 'PATCH', headers: JSON_HEADERS, body: JSON.stringify({ more: CANARY }) });
    await call(`/update/${c}`, { method: 'PUT', headers: JSON_HEADERS, body: JSON.stringify({ replaced: CANARY }) });
    await call(`/touch/${b}`, { method: 'POST' });
    const rotated = await (await call(`/rotate/${b}`, { method: 'POST' })).text();
    ids.push(rotated);
    // A renewal leaves the old id's retirement at rest: it names the successor to nobody.
    const renewed = await (await call(`/renew/${a}`, { method: 'POST' })).text();
    ids.push(renewed);
    const listed = await (await call(path('dump@example.com'))).json();
    assert.deepEqual(listed.sessions.map((s) => s.handle).sort(), [rotated, renewed].map(handleOf).sort());
    assert.ok(!ids.some((id) => JSON.stringify(listed).includes(id)), 'no id in a listing');

    const dump = await worker.dump();
    assertNothingUsable(dump, ids);
    if (!STRONG) {
      assert.ok(dump.includes(`kv ${storageKeyOf(a)} `), 'stored under its derived key');
    } else {
      assert.ok(dump.includes('__miniflare_do_name'), 'the dump reads the names objects were reached by');
      assert.ok(dump.includes(storageKeyOf(a)), 'objects are named by the derived key');
    }
    assert.match(JSON.stringify(await (await call(`/get/${renewed}`)).json()), new RegExp(CANARY), 'each still opens with its id');
    assert.match(JSON.stringify(await (await call(`/get/${a}`)).json()), new RegExp(CANARY), 'and the renewed-away id, within its window');
    const lines = (await worker.consoleLines()).join('\n');
    for (const id of ids) assert.ok(!lines.includes(id), 'nor in a log line');
  });

  test('a value copied onto another session\'s key, or altered, reads as not found', { skip: STRONG && 'KV: the values are reachable from outside the worker here' }, async () => {
    const [source, target, altered] = [await create({ secret: CANARY }), await create({ n: 2 }), await create({ n: 3 })];
    const value = await worker.kvBytes(storageKeyOf(source));
    const { metadata } = (await worker.kvList()).find((k) => k.name === storageKeyOf(target));
    await worker.kvPutBytes(storageKeyOf(target), value, metadata);
    const flipped = Buffer.from(value);
    flipped[flipped.length - 1] ^= 1;
    await worker.kvPutBytes(storageKeyOf(altered), flipped, metadata);
    for (const id of [target, altered]) {
      await expectProblem(assert, await call(`/get/${id}`), 404, 'session_not_found');
      await expectProblem(assert, await call(`/add/${id}`, { method: 'PATCH', headers: JSON_HEADERS, body: '{}' }), 404, 'session_not_found');
    }
    assert.equal((await call(`/get/${source}`)).status, 200, 'the original still opens');
    const lines = (await worker.consoleLines()).join('\n');
    assert.match(lines, new RegExp(`integrity: session ${target.slice(0, 8)} does not open`));
    assert.ok(!lines.includes(target) && !lines.includes(altered), 'ids cut to 8 characters');
  });

  test('a session of KV mode before hashing (bare-id key, index by id) is served, listed and moved', { skip: STRONG && 'KV mode\'s own upgrade' }, async () => {
    const id = '6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f';
    const subject = createHash('sha256').update('legacy@example.com').digest('hex');
    const now = Date.now();
    const meta = { createdAt: now, updatedAt: now, expiresAt: now + 1_800_000, version: 3, sub: subject };
    await worker.kvPut(id, JSON.stringify({ secret: CANARY }), meta);
    await worker.kvPutBytes(`sub:${subject}:${id}`, Buffer.alloc(0), String(now));
    const read = await call(`/get/${id}`);
    assert.equal(read.status, 200);
    assert.equal(read.headers.get('etag'), '"3"');
    assert.deepEqual(await read.json(), { secret: CANARY });
    const listed = await (await call(path('legacy@example.com'))).json();
    assert.deepEqual(listed.sessions.map((s) => s.handle), [handleOf(id)]);
    const added = await call(`/add/${id}`, { method: 'PATCH', headers: JSON_HEADERS, body: '{"b":1}' });
    assert.equal(added.headers.get('etag'), '"4"');
    assert.equal(await worker.kvGet(id), null, 'the bare-id entry is gone');
    const relisted = await (await call(path('legacy@example.com'))).json();
    assert.deepEqual(relisted.sessions.map((s) => s.handle), [handleOf(id)]);
    assert.equal(await worker.kvGet(`sub:${subject}:${id}`), null, 'the listing after the move rewrote its index entry');
    assertNothingUsable(await worker.dump(), [id]);
    assert.deepEqual(await (await call(`/get/${id}`)).json(), { secret: CANARY, b: 1 });
    const revoked = await call(`${path('legacy@example.com')}/${handleOf(id)}`, { method: 'DELETE' });
    assert.deepEqual(await revoked.json(), { revoked: 1 });
    await expectProblem(assert, await call(`/get/${id}`), 404, 'session_not_found');
  });
});

// The lookup of earlier forms ends: at a time (here one already past), or with "off". A bare-id
// entry (what the old worker, still bound to the namespace, would write for an id of anyone's
// choosing) is then no session, on either backend.
describe('with SESSION_LEGACY_LOOKUP at a time already past', () => {
  let worker;
  before(async () => { worker = await startWorker({ vars: { SESSION_LEGACY_LOOKUP: '2026-01-01T00:00:00Z' } }); });
  after(async () => { await worker?.stop(); });

  test('an id written under its bare form by someone else is not a session', async () => {
    const id = 'c1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d';
    await worker.kvPut(id, '{"planted":true}');
    await expectProblem(assert, await fetch(`${worker.url}/get/${id}`), 404, 'session_not_found');
    const update = await fetch(`${worker.url}/update/${id}`, { method: 'PUT', headers: JSON_HEADERS, body: '{}' });
    await expectProblem(assert, update, 404, 'session_not_found');
    assert.equal(await worker.kvGet(id), '{"planted":true}', 'left where it was, unread');
    const created = await (await fetch(`${worker.url}/create`, { method: 'POST', headers: JSON_HEADERS, body: '{}' })).text();
    assert.equal((await fetch(`${worker.url}/get/${created}`)).status, 200, 'new sessions work as ever');
  });
});

describe('with SESSION_LEGACY_LOOKUP=off', { skip: STRONG && 'KV mode' }, () => {
  let worker;
  before(async () => { worker = await startWorker({ vars: { SESSION_LEGACY_LOOKUP: 'off' } }); });
  after(async () => { await worker?.stop(); });

  test('a session under its bare id is not looked for', async () => {
    const id = 'a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d';
    await worker.kvPut(id, '{"old":true}');
    await expectProblem(assert, await fetch(`${worker.url}/get/${id}`), 404, 'session_not_found');
    const created = await (await fetch(`${worker.url}/create`, { method: 'POST', headers: JSON_HEADERS, body: '{}' })).text();
    assert.equal((await fetch(`${worker.url}/get/${created}`)).status, 200, 'new sessions work as ever');
  });
});
