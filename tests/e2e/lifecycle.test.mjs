// Expiry, renewal, touch and rotation, end to end. Runs the test environment of wrangler.toml:
// a 2 s idle timeout and a 5 s absolute lifetime, so expiry is watched in seconds.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { JSON_HEADERS, UUID_V4, expectProblem, sleep, startWorker } from './harness.mjs';

let worker;
before(async () => { worker = await startWorker({ env: 'test' }); });
after(async () => { await worker?.stop(); });

const call = (path, init = {}) => fetch(`${worker.url}${path}`, init);
const createId = async (data = { user: 'ada' }) => {
  const response = await call('/create', { method: 'POST', headers: JSON_HEADERS, body: JSON.stringify(data) });
  assert.equal(response.status, 201);
  return response.text();
};
const expiresAt = (response) => Date.parse(response.headers.get('session-expires'));
const patch = (id, body) => call(`/add/${id}`, { method: 'PATCH', headers: JSON_HEADERS, body: JSON.stringify(body) });

test('a session is readable at once and 404 once its idle timeout passes', async () => {
  const id = await createId();
  const read = await call(`/get/${id}`);
  assert.equal(read.status, 200);
  const left = expiresAt(read) - Date.now();
  assert.ok(left > 1000 && left <= 2100, `${left} ms left`);
  await sleep(2300);
  await expectProblem(assert, await call(`/get/${id}`), 404, 'session_not_found');
  await expectProblem(assert, await patch(id, { a: 1 }), 404, 'session_not_found');
});

test('a write renews the idle timeout; a read does not', async () => {
  const id = await createId();
  await sleep(1200);
  const first = expiresAt(await call(`/get/${id}`));
  const second = expiresAt(await call(`/get/${id}`));
  assert.equal(second, first, 'reads never renew');
  const written = await patch(id, { step: 1 });
  assert.equal(written.status, 200);
  assert.ok(expiresAt(written) > first + 1000, 'the write moved expiry forward');
  await sleep(1200); // 2.4 s after creation: past the first expiry, within the renewed one
  const read = await call(`/get/${id}`);
  assert.equal(read.status, 200);
  assert.deepEqual(await read.json(), { user: 'ada', step: 1 });
});

test('a touch renews without changing data or ETag', async () => {
  const id = await createId({ keep: 'me' });
  const before = await call(`/get/${id}`);
  await sleep(1200);
  const touched = await call(`/touch/${id}`, { method: 'POST' });
  assert.equal(touched.status, 204);
  assert.equal(touched.headers.get('etag'), before.headers.get('etag'));
  assert.ok(expiresAt(touched) > expiresAt(before) + 1000);
  await sleep(1200);
  const read = await call(`/get/${id}`);
  assert.equal(read.status, 200, 'alive past the original expiry');
  assert.equal(read.headers.get('etag'), '"1"');
  assert.deepEqual(await read.json(), { keep: 'me' });
  const unknown = await call('/touch/3b241101-e2bb-4255-8caf-4136c566a962', { method: 'POST' });
  await expectProblem(assert, unknown, 404, 'session_not_found');
});

test('the absolute lifetime wins over renewals', async () => {
  const id = await createId();
  const created = Date.now();
  const expiries = [];
  for (let i = 0; i < 3; i += 1) {
    await sleep(1300);
    const written = await patch(id, { i });
    assert.equal(written.status, 200, `write ${i} within the idle timeout`);
    expiries.push(expiresAt(written));
  }
  // The third write, 3.9 s in, would renew to 5.9 s; the 5 s cap holds it back.
  assert.ok(expiries[2] - created <= 5100, `capped: ${expiries[2] - created} ms after creation`);
  assert.ok(expiries[2] - expiries[1] < 1300, 'the last renewal was cut short');
  await sleep(Math.max(0, created + 5300 - Date.now()));
  await expectProblem(assert, await call(`/get/${id}`), 404, 'session_not_found');
});

test('rotation moves data to a new id, the old id is 404, createdAt survives', async () => {
  const id = await createId({ role: 'user' });
  const created = Date.now();
  await sleep(1000);
  const rotated = await call(`/rotate/${id}`, { method: 'POST', headers: { accept: 'application/json' } });
  assert.equal(rotated.status, 201);
  const { sessionId, expiresAt: rotatedExpiry } = await rotated.json();
  assert.match(sessionId, UUID_V4);
  assert.notEqual(sessionId, id);
  assert.equal(rotated.headers.get('location'), `/get/${sessionId}`);
  await expectProblem(assert, await call(`/get/${id}`), 404, 'session_not_found');
  const read = await call(`/get/${sessionId}`);
  assert.deepEqual(await read.json(), { role: 'user' });
  assert.ok(Date.parse(rotatedExpiry) - created <= 5100);
  // createdAt survived: renewals keep the new id under the original 5 s cap.
  for (let i = 0; i < 3; i += 1) {
    await sleep(1300);
    if ((await patch(sessionId, { i })).status !== 200) break;
  }
  await sleep(Math.max(0, created + 5300 - Date.now()));
  await expectProblem(assert, await call(`/get/${sessionId}`), 404, 'session_not_found');
  await expectProblem(assert, await call(`/rotate/${id}`, { method: 'POST' }), 404, 'session_not_found');
});

test('rotation answers the bare id as text by default', async () => {
  const id = await createId();
  const rotated = await call(`/rotate/${id}`, { method: 'POST' });
  assert.equal(rotated.status, 201);
  assert.equal(rotated.headers.get('content-type'), 'text/plain; charset=utf-8');
  assert.match(await rotated.text(), UUID_V4);
});

test('?ttl=N gives one session its own idle timeout, kept on renewal', async () => {
  const response = await call('/create?ttl=4', { method: 'POST', headers: JSON_HEADERS, body: '{}' });
  const id = await response.text();
  await sleep(2300);
  const written = await patch(id, { a: 1 });
  assert.equal(written.status, 200, 'alive after 2.3 s with its own 4 s timeout');
  const left = expiresAt(written) - Date.now();
  assert.ok(left > 2000, `renewed with 4 s, capped by the lifetime: ${left} ms left`);
  await expectProblem(assert, await call('/create?ttl=6', { method: 'POST', headers: JSON_HEADERS, body: '{}' }), 400, 'invalid_ttl');
});
