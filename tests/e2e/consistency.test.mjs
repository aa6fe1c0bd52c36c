// Concurrent writers on one session, against either backend. Strong mode must keep every
// acknowledged write. KV promises less, and each test asserts what it does promise: the last
// write wins, so what a read finds is what acknowledged writes left (never a refused write's
// data, never nothing), and versions only grow; the lost writes are counted and reported (a fact
// of KV, printed for bench/results.md and docs/operations.md, not hidden).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { JSON_HEADERS, STRONG, BACKEND, assertNoRequestLine, sleep, startWorker } from './harness.mjs';

let worker;
// Touches renew once a second, so that concurrent touches do write.
before(async () => { worker = await startWorker({ vars: { SESSION_TOUCH_INTERVAL_SECONDS: '1' } }); });
after(async () => { await worker?.stop(); });

const call = (path, init = {}) => fetch(`${worker.url}${path}`, init);
const create = async (data = {}) => {
  const response = await call('/create', { method: 'POST', headers: JSON_HEADERS, body: JSON.stringify(data) });
  assert.equal(response.status, 201);
  return response.text();
};
const patch = (id, data) => call(`/add/${id}`, { method: 'PATCH', headers: JSON_HEADERS, body: JSON.stringify(data) });
const read = async (id) => {
  const response = await call(`/get/${id}`);
  return { status: response.status, etag: response.headers.get('etag'), data: response.status === 200 ? await response.json() : null };
};
const report = (what, figure) => console.log(`[${BACKEND}] ${what}: ${figure}`);
const version = (etag) => Number(/^"(\d+)"$/.exec(etag ?? '')?.[1]);
// What KV promises whatever the interleaving: every key found was written by an acknowledged
// write, with the value it wrote, and the start is never lost.
const onlyAcknowledged = (data, acknowledged, values) => {
  for (const [key, value] of Object.entries(data)) {
    if (key in values) {
      assert.ok(acknowledged.includes(key), `${key} was not acknowledged`);
      assert.equal(value, values[key]);
    }
  }
};

describe(`concurrent writers (${BACKEND})`, () => {
  test('50 parallel PATCHes on one session, each adding its own key', async () => {
    const id = await create();
    const statuses = await Promise.all(Array.from({ length: 50 }, (_, i) => patch(id, { [`k${i}`]: i }).then((r) => r.status)));
    const acknowledged = statuses.map((status, i) => [status, `k${i}`]).filter(([status]) => status === 200).map(([, key]) => key);
    for (const status of statuses) assert.ok(status === 200 || status === 429, `status ${status}`);
    const { data, etag } = await read(id);
    const lost = acknowledged.filter((key) => !(key in data));
    report('lost updates out of 50 parallel PATCHes', `${lost.length} (acknowledged ${acknowledged.length}, version ${etag})`);
    if (STRONG) {
      assert.deepEqual(lost, [], 'every acknowledged write is kept');
      assert.deepEqual(Object.keys(data).sort(), acknowledged.sort(), 'and nothing else');
      assert.equal(etag, `"${1 + acknowledged.length}"`, 'one version per acknowledged write');
    } else {
      assert.ok(acknowledged.length > 0, 'some write was acknowledged');
      const values = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`k${i}`, i]));
      onlyAcknowledged(data, acknowledged, values);
      assert.ok(Object.keys(data).length > 0, 'the last write is there');
      assert.ok(version(etag) >= 2, `a version past the first: ${etag}`);
    }
  });

  test('parallel PUTs with the same If-Match: a compare-and-swap', async () => {
    const id = await create({ v: 0 });
    const statuses = await Promise.all(Array.from({ length: 20 }, (_, i) => call(`/update/${id}`, {
      method: 'PUT', headers: { ...JSON_HEADERS, 'if-match': '"1"' }, body: JSON.stringify({ v: i }),
    }).then((r) => r.status)));
    const winners = statuses.filter((s) => s === 200).length;
    report('successes out of 20 parallel PUTs with If-Match: "1"', winners);
    if (STRONG) {
      assert.equal(winners, 1, `statuses: ${statuses}`);
      assert.equal(statuses.filter((s) => s === 412).length, 19);
      assert.equal((await read(id)).etag, '"2"');
    } else {
      // KV checks If-Match against the read it began with: at least one PUT wins, each refused
      // one is a 412 (or a 429 when KV refused the write), and the session holds a winner's data.
      for (const status of statuses) assert.ok([200, 412, 429].includes(status), `status ${status}`);
      assert.ok(winners >= 1, `statuses: ${statuses}`);
      const { data, etag } = await read(id);
      assert.equal(statuses[data.v], 200, `the session holds {v: ${data.v}}, which was refused`);
      assert.ok(version(etag) >= 2, etag);
    }
  });

  test('a touch never undoes a concurrent write', async () => {
    const id = await create();
    await sleep(1100); // past the renewal interval: every touch writes
    const writes = Array.from({ length: 20 }, (_, i) => patch(id, { [`w${i}`]: i }).then((r) => [r.status, `w${i}`]));
    const touches = Array.from({ length: 20 }, () => call(`/touch/${id}`, { method: 'POST' }).then((r) => [r.status]));
    const results = await Promise.all(writes.flatMap((w, i) => [w, touches[i]]));
    const acknowledged = results.filter(([status, key]) => key && status === 200).map(([, key]) => key);
    const { data } = await read(id);
    const undone = acknowledged.filter((key) => !(key in data));
    report('writes undone by 20 concurrent touches, out of 20', undone.length);
    for (const [status, key] of results) {
      const expected = key ? [200, 429] : [204, 429];
      assert.ok(expected.includes(status), `${key ?? 'touch'}: ${status}`);
    }
    if (STRONG) {
      assert.deepEqual(undone, []);
    } else {
      // A touch on KV writes back the data it read, so it may undo a write; it never adds any.
      const values = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`w${i}`, i]));
      onlyAcknowledged(data, acknowledged, values);
      assert.ok(acknowledged.length > 0, 'some write was acknowledged');
    }
  });

  test('rotation keeps every write acknowledged before it answered; then the old id is gone', async () => {
    const id = await create({ start: true });
    const writes = Array.from({ length: 30 }, (_, i) => patch(id, { [`r${i}`]: i }).then((r) => [r.status, `r${i}`]));
    await sleep(5);
    const rotation = call(`/rotate/${id}`, { method: 'POST' });
    const rotated = await rotation;
    assert.equal(rotated.status, 201);
    const newId = await rotated.text();
    const results = await Promise.all(writes);
    const { data } = await read(newId);
    // A write that was acknowledged on the old id either moved with the rotation or came after
    // it, when the old id no longer existed: then it cannot have been acknowledged.
    const lost = results.filter(([status, key]) => status === 200 && !(key in data)).map(([, key]) => key);
    report('acknowledged writes on the old id lost by a concurrent rotation, out of 30', lost.length);
    if (STRONG) {
      assert.deepEqual(lost, []);
      for (const [status] of results) assert.ok(status === 200 || status === 404, `status ${status}`);
    } else {
      for (const [status] of results) assert.ok([200, 404, 429].includes(status), `status ${status}`);
      const values = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`r${i}`, i]));
      const acknowledged = results.filter(([status]) => status === 200).map(([, key]) => key);
      onlyAcknowledged(data, acknowledged, values);
    }
    assert.equal(data.start, true, 'the session moved with its data');
    assert.equal((await read(id)).status, 404, 'the old id is gone once rotation answered');
  });

  test('by default, a request that went well leaves no log line', async () => {
    const before = (await worker.consoleLines()).length;
    const id = await create({ quiet: true });
    await read(id);
    await read('3b241101-e2bb-4255-8caf-4136c566a962');
    assertNoRequestLine(assert, (await worker.consoleLines()).slice(before), ['/create', '/get/:id']);
  });

  test('after a DELETE answered 204, every read is 404', async () => {
    const id = await create({ secret: 1 });
    const readers = Array.from({ length: 20 }, () => read(id));
    const deleted = await call(`/delete/${id}`, { method: 'DELETE' });
    assert.equal(deleted.status, 204);
    await Promise.all(readers);
    const after = await Promise.all(Array.from({ length: 20 }, () => read(id)));
    assert.deepEqual(after.map((r) => r.status), Array(20).fill(404));
  });
});
