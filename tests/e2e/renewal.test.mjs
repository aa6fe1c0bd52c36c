// Renewal end to end (`POST /renew/:id`), in the backend under test: the old id keeps working for
// the grace window without ever naming the new one, a second renewal answers the same new id, and
// the old id presented after the window ends the session (reuse), unless detection is off.
// Rotation stays what it was. A 2 s window keeps the waits short.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { JSON_HEADERS, STRONG, UUID_V4, expectProblem, handleOf, sleep, startWorker } from './harness.mjs';

const GRACE_SECONDS = 2;

function client(worker) {
  const call = (path, init = {}) => fetch(`${worker.url}${path}`, init);
  return {
    call,
    async create(data = { user: 'ada' }) {
      const response = await call('/create', { method: 'POST', headers: JSON_HEADERS, body: JSON.stringify(data) });
      assert.equal(response.status, 201);
      return response.text();
    },
    renew: (id) => call(`/renew/${id}`, { method: 'POST' }),
    patch: (id, body) => call(`/add/${id}`, { method: 'PATCH', headers: JSON_HEADERS, body: JSON.stringify(body) }),
  };
}

/** Whether a response names `id` anywhere: a header or the body. */
async function names(response, id) {
  const headers = [...response.headers].map(([name, value]) => `${name}: ${value}`).join('\n');
  return headers.includes(id) || (await response.text()).includes(id);
}

describe('renewal, with reuse detection on', () => {
  let worker;
  let c;
  before(async () => {
    worker = await startWorker({ vars: { SESSION_RENEWAL_GRACE_SECONDS: String(GRACE_SECONDS) } });
    c = client(worker);
  });
  after(async () => { await worker?.stop(); });

  test('requests in flight with the old id all reach the renewed session, and none names it', async () => {
    const old = await c.create({ user: 'ada' });
    const inFlight = Array.from({ length: 20 }, () => c.call(`/get/${old}`));
    const renewal = c.renew(old);
    const responses = await Promise.all(inFlight);
    const renewed = await renewal;
    assert.equal(renewed.status, 201);
    const successor = await renewed.text();
    assert.match(successor, UUID_V4);
    assert.notEqual(successor, old);
    assert.equal(renewed.headers.get('session-id'), successor);
    assert.equal(renewed.headers.get('session-handle'), handleOf(successor));
    for (const response of responses) {
      assert.equal(response.status, 200);
      assert.equal(response.headers.get('session-id'), null);
      assert.equal(response.headers.get('location'), null);
      assert.equal(await names(response.clone(), successor), false, 'an answer to the old id never names the new one');
      assert.deepEqual(await response.json(), { user: 'ada' });
    }
    // After the renewal, the old id still reads the renewed session, and writes into it.
    const written = await c.patch(old, { after: 1 });
    assert.equal(written.status, 200);
    assert.equal(await names(written.clone(), successor), false);
    assert.deepEqual(await (await c.call(`/get/${successor}`)).json(), { user: 'ada', after: 1 });
    const read = await c.call(`/get/${old}`);
    assert.equal(read.status, 200);
    assert.equal(await names(read.clone(), successor), false);
    assert.deepEqual(await read.json(), { user: 'ada', after: 1 });
  });

  test('writes in flight with the old id while it is renewed', { skip: !STRONG && 'KV has no compare-and-swap: a write that read the session before the renewal lands on the old id, as with /rotate (docs/lifecycle.md)' }, async () => {
    const old = await c.create({ user: 'ada' });
    const inFlight = Array.from({ length: 20 }, (_, i) => c.patch(old, { [`k${i}`]: i }));
    const renewal = c.renew(old);
    const responses = await Promise.all(inFlight);
    const successor = await (await renewal).text();
    for (const response of responses) assert.equal(response.status, 200, await response.clone().text());
    const data = await (await c.call(`/get/${successor}`)).json();
    // One copy, every write on it: nothing acknowledged is lost, before or after the renewal.
    for (let i = 0; i < 20; i += 1) assert.equal(data[`k${i}`], i, `k${i} was acknowledged and lost`);
  });

  test('a second renewal of the old id within the window answers the same new id', async () => {
    const old = await c.create();
    const first = await (await c.renew(old)).text();
    const second = await c.renew(old);
    assert.equal(second.status, 201);
    assert.equal(await second.text(), first);
    assert.equal((await c.call(`/get/${first}`)).status, 200);
  });

  test('after the window, the old id is reuse: both ids are 404 and the log names the session by handle', async () => {
    const old = await c.create();
    const successor = await (await c.renew(old)).text();
    await sleep(GRACE_SECONDS * 1000 + 300);
    assert.equal((await c.call(`/get/${successor}`)).status, 200, 'the new id works on its own');
    const before = (await worker.consoleLines()).length;
    await expectProblem(assert, await c.call(`/get/${old}`), 404, 'session_not_found');
    await expectProblem(assert, await c.call(`/get/${successor}`), 404, 'session_not_found');
    await expectProblem(assert, await c.call(`/get/${old}`), 404, 'session_not_found');
    const lines = (await worker.consoleLines()).slice(before).filter((line) => line.includes('reuse'));
    assert.equal(lines.length, 1, lines.join('\n'));
    assert.ok(lines[0].includes(handleOf(successor)), lines[0]);
    assert.ok(!lines[0].includes(successor) && !lines[0].includes(old), lines[0]);
  });

  test('an id two renewals old is reuse at once', async () => {
    const first = await c.create();
    const second = await (await c.renew(first)).text();
    const third = await (await c.renew(second)).text();
    await expectProblem(assert, await c.call(`/get/${first}`), 404, 'session_not_found');
    await expectProblem(assert, await c.call(`/get/${third}`), 404, 'session_not_found');
  });

  test('rotation ends the old id at once and never triggers reuse detection', async () => {
    const old = await c.create();
    const rotated = await c.call(`/rotate/${old}`, { method: 'POST' });
    assert.equal(rotated.status, 201);
    const successor = await rotated.text();
    await expectProblem(assert, await c.call(`/get/${old}`), 404, 'session_not_found');
    await sleep(GRACE_SECONDS * 1000 + 300);
    await expectProblem(assert, await c.call(`/get/${old}`), 404, 'session_not_found');
    assert.equal((await c.call(`/get/${successor}`)).status, 200);
  });

  test('a renewal of an unknown id is 404', async () => {
    await expectProblem(assert, await c.renew('3b241101-e2bb-4255-8caf-4136c566a962'), 404, 'session_not_found');
    await expectProblem(assert, await c.renew('not-an-id'), 400, 'invalid_session_id');
  });
});

describe('renewal, with reuse detection off', () => {
  let worker;
  let c;
  before(async () => {
    worker = await startWorker({ vars: { SESSION_RENEWAL_GRACE_SECONDS: String(GRACE_SECONDS), SESSION_REUSE_DETECTION: 'off' } });
    c = client(worker);
  });
  after(async () => { await worker?.stop(); });

  test('the old id after the window is only a 404; the renewed session survives', async () => {
    const old = await c.create();
    const successor = await (await c.renew(old)).text();
    await sleep(GRACE_SECONDS * 1000 + 300);
    await expectProblem(assert, await c.call(`/get/${old}`), 404, 'session_not_found');
    assert.equal((await c.call(`/get/${successor}`)).status, 200);
  });
});

describe('renewal with a window of 0', () => {
  let worker;
  let c;
  before(async () => {
    worker = await startWorker({ vars: { SESSION_RENEWAL_GRACE_SECONDS: '0', SESSION_REUSE_DETECTION: 'off' } });
    c = client(worker);
  });
  after(async () => { await worker?.stop(); });

  test('behaves like /rotate: the old id is 404 at once', async () => {
    const old = await c.create();
    const successor = await (await c.renew(old)).text();
    await expectProblem(assert, await c.call(`/get/${old}`), 404, 'session_not_found');
    assert.equal((await c.call(`/get/${successor}`)).status, 200);
  });
});
