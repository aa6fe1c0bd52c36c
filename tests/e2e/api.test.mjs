// The HTTP contract, end to end: the real worker in `wrangler dev` with local KV.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { JSON_HEADERS, UUID_V4, expectProblem, requestLines, startWorker } from './harness.mjs';

let worker;
// Every request logged, for the log assertions below.
before(async () => { worker = await startWorker({ vars: { LOG_REQUESTS: 'all' } }); });
after(async () => { await worker?.stop(); });

const call = (path, init = {}) => fetch(`${worker.url}${path}`, init);
const create = async (data = { user: 'ada' }, headers = {}) => {
  const response = await call('/create', {
    method: 'POST', headers: { ...JSON_HEADERS, ...headers }, body: JSON.stringify(data),
  });
  assert.equal(response.status, 201);
  return response;
};
const createId = async (data) => (await create(data)).text();
const MISSING = '3b241101-e2bb-4255-8caf-4136c566a962';
/** A write to an unknown id answers 404 and leaves it unknown: no session fixation. */
const expectNoFixation = async (path, method) => {
  const response = await call(`${path}/${MISSING}`, { method, headers: JSON_HEADERS, body: '{"a":1}' });
  await expectProblem(assert, response, 404, 'session_not_found');
  await expectProblem(assert, await call(`/get/${MISSING}`), 404, 'session_not_found');
};
/** Sends raw bytes to the worker and reads everything until it closes the connection. */
const rawExchange = (text) => new Promise((resolve, reject) => {
  const { hostname, port } = new URL(worker.url);
  const socket = connect(Number(port), hostname, () => socket.end(text));
  let received = '';
  socket.on('data', (d) => { received += d; });
  socket.on('end', () => resolve(received));
  socket.on('error', reject);
});
const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

describe('POST /create', () => {
  test('answers the bare id as text by default, with Location', async () => {
    const response = await create({ user: 'ada' });
    assert.equal(response.headers.get('content-type'), 'text/plain; charset=utf-8');
    const id = await response.text();
    assert.match(id, UUID_V4);
    assert.equal(response.headers.get('location'), `/get/${id}`);
    assert.equal(response.headers.get('cache-control'), 'no-store');
  });

  test('answers JSON with sessionId and expiresAt when Accept asks for it', async () => {
    const response = await create({ a: 1 }, { accept: 'application/json' });
    assert.equal(response.headers.get('content-type'), 'application/json');
    const body = await response.json();
    assert.deepEqual(Object.keys(body), ['sessionId', 'expiresAt']);
    assert.match(body.sessionId, UUID_V4);
    assert.match(body.expiresAt, RFC3339);
    assert.equal(response.headers.get('location'), `/get/${body.sessionId}`);
    assert.equal(response.headers.get('session-expires'), body.expiresAt);
    assert.equal(response.headers.get('etag'), '"1"');
  });

  test('ids from many creates are distinct valid v4 UUIDs', async () => {
    const ids = await Promise.all(Array.from({ length: 100 }, () => createId({ n: 1 })));
    for (const id of ids) assert.match(id, UUID_V4);
    assert.equal(new Set(ids).size, ids.length);
  });

  test('accepts a body without Content-Type and any application/*+json', async () => {
    let response = await call('/create', { method: 'POST', body: new Blob(['{"a":1}']) });
    assert.equal(response.status, 201);
    response = await call('/create', {
      method: 'POST', headers: { 'content-type': 'application/vnd.app+json; charset=utf-8' }, body: '{}',
    });
    assert.equal(response.status, 201);
  });

  test('?ttl=N sets the session\'s own idle timeout', async () => {
    const response = await call('/create?ttl=600', {
      method: 'POST', headers: { ...JSON_HEADERS, accept: 'application/json' }, body: '{}',
    });
    assert.equal(response.status, 201);
    const { expiresAt } = await response.json();
    const seconds = (Date.parse(expiresAt) - Date.now()) / 1000;
    assert.ok(seconds > 590 && seconds <= 601, `${seconds}`);
  });

  for (const ttl of ['0', '-1', '1.5', 'abc', '', '86401']) {
    test(`?ttl=${ttl} is 400 invalid_ttl`, async () => {
      const response = await call(`/create?ttl=${ttl}`, { method: 'POST', headers: JSON_HEADERS, body: '{}' });
      await expectProblem(assert, response, 400, 'invalid_ttl');
    });
  }
});

describe('GET /get/:id', () => {
  test('returns the stored data with lifecycle headers', async () => {
    const id = await createId({ user: 'ada', roles: ['admin'], nested: { deep: [1, 2] } });
    const response = await call(`/get/${id}`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'application/json');
    assert.equal(response.headers.get('cache-control'), 'no-store');
    assert.equal(response.headers.get('etag'), '"1"');
    assert.match(response.headers.get('session-expires'), RFC3339);
    assert.deepEqual(await response.json(), { user: 'ada', roles: ['admin'], nested: { deep: [1, 2] } });
  });

  test('HEAD answers with GET\'s headers and nothing after them on the wire', async () => {
    const id = await createId();
    const get = await call(`/get/${id}`);
    const raw = await rawExchange(`HEAD /get/${id} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    const [head, rest] = raw.split('\r\n\r\n');
    assert.match(head, /^HTTP\/1\.1 200 /);
    const header = (name) => new RegExp(`^${name}: (.*)$`, 'mi').exec(head)?.[1];
    for (const name of ['etag', 'session-expires', 'content-type', 'cache-control']) {
      assert.equal(header(name), get.headers.get(name), name);
    }
    assert.equal(rest, '', 'no body bytes');
  });

  test('an unknown id is 404 session_not_found', async () => {
    await expectProblem(assert, await call(`/get/${MISSING}`), 404, 'session_not_found');
  });

  for (const bad of ['not-a-uuid', '3B241101-E2BB-4255-8CAF-4136C566A962', '3b241101-e2bb-1255-8caf-4136c566a962', '3b241101e2bb42558caf4136c566a962']) {
    test(`a malformed id (${bad}) is 400 invalid_session_id on every id route`, async () => {
      await expectProblem(assert, await call(`/get/${bad}`), 400, 'invalid_session_id');
      await expectProblem(assert, await call(`/update/${bad}`, { method: 'PUT', headers: JSON_HEADERS, body: '{}' }), 400, 'invalid_session_id');
      await expectProblem(assert, await call(`/add/${bad}`, { method: 'PATCH', headers: JSON_HEADERS, body: '{}' }), 400, 'invalid_session_id');
      await expectProblem(assert, await call(`/delete/${bad}`, { method: 'DELETE' }), 400, 'invalid_session_id');
      await expectProblem(assert, await call(`/touch/${bad}`, { method: 'POST' }), 400, 'invalid_session_id');
      await expectProblem(assert, await call(`/rotate/${bad}`, { method: 'POST' }), 400, 'invalid_session_id');
    });
  }
});

describe('PUT /update/:id', () => {
  test('replaces the data and echoes it; the ETag grows by one per write', async () => {
    const id = await createId({ a: 1, b: 2 });
    const response = await call(`/update/${id}`, { method: 'PUT', headers: JSON_HEADERS, body: '{"c":3}' });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'application/json');
    assert.equal(response.headers.get('etag'), '"2"');
    assert.deepEqual(await response.json(), { c: 3 });
    const read = await call(`/get/${id}`);
    assert.deepEqual(await read.json(), { c: 3 });
    assert.equal(read.headers.get('etag'), '"2"');
    const again = await call(`/update/${id}`, { method: 'PUT', headers: JSON_HEADERS, body: '{"d":4}' });
    assert.equal(again.headers.get('etag'), '"3"');
  });

  test('an unknown id is 404 and creates nothing (no session fixation)', () => expectNoFixation('/update', 'PUT'));
});

describe('PATCH /add/:id', () => {
  test('shallow-merges top-level keys with application/json', async () => {
    const id = await createId({ a: 1, p: { x: 1, y: 2 } });
    const response = await call(`/add/${id}`, { method: 'PATCH', headers: JSON_HEADERS, body: '{"p":{"z":3},"b":null}' });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('etag'), '"2"');
    const merged = { a: 1, p: { z: 3 }, b: null };
    assert.deepEqual(await response.json(), merged);
    assert.deepEqual(await (await call(`/get/${id}`)).json(), merged);
  });

  test('applies RFC 7396 with application/merge-patch+json', async () => {
    const id = await createId({ a: 'b', c: { d: 'e', f: 'g' }, keep: true });
    const response = await call(`/add/${id}`, {
      method: 'PATCH', headers: { 'content-type': 'application/merge-patch+json' },
      body: '{"a":"z","c":{"f":null,"h":1}}',
    });
    assert.equal(response.status, 200);
    const merged = { a: 'z', c: { d: 'e', h: 1 }, keep: true };
    assert.deepEqual(await response.json(), merged);
    assert.deepEqual(await (await call(`/get/${id}`)).json(), merged);
  });

  test('an unknown id is 404 and creates nothing (no session fixation)', () => expectNoFixation('/add', 'PATCH'));
});

describe('DELETE /delete/:id', () => {
  test('is 204 and idempotent', async () => {
    const id = await createId();
    let response = await call(`/delete/${id}`, { method: 'DELETE' });
    assert.equal(response.status, 204);
    assert.equal(response.headers.get('cache-control'), 'no-store');
    await expectProblem(assert, await call(`/get/${id}`), 404, 'session_not_found');
    response = await call(`/delete/${id}`, { method: 'DELETE' });
    assert.equal(response.status, 204);
  });
});

describe('bodies', () => {
  const writes = (id) => [
    ['/create', 'POST'], [`/update/${id}`, 'PUT'], [`/add/${id}`, 'PATCH'],
  ];

  test('not JSON is 400 invalid_json, JSON but not an object is 400 invalid_body; KV unchanged', async () => {
    const id = await createId({ keep: 1 });
    for (const [path, method] of writes(id)) {
      for (const body of ['{', 'not json', '', '{"a":1} trailing']) {
        await expectProblem(assert, await call(path, { method, headers: JSON_HEADERS, body }), 400, 'invalid_json');
      }
      for (const body of ['[]', '1', '"text"', 'null', 'true']) {
        await expectProblem(assert, await call(path, { method, headers: JSON_HEADERS, body }), 400, 'invalid_body');
      }
    }
    const read = await call(`/get/${id}`);
    assert.deepEqual(await read.json(), { keep: 1 });
    assert.equal(read.headers.get('etag'), '"1"');
  });

  test('another Content-Type is 415 unsupported_media_type', async () => {
    const id = await createId({ keep: 1 });
    for (const [path, method] of writes(id)) {
      for (const type of ['application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'text/html']) {
        const response = await call(path, { method, headers: { 'content-type': type }, body: '{"a":1}' });
        await expectProblem(assert, response, 415, 'unsupported_media_type');
      }
    }
    assert.deepEqual(await (await call(`/get/${id}`)).json(), { keep: 1 });
  });

  test('above MAX_SESSION_BYTES (65536) is 413 payload_too_large; at the limit is fine', async () => {
    const id = await createId({ keep: 1 });
    const sized = (n) => JSON.stringify({ pad: 'x'.repeat(n - 10) });
    assert.equal(sized(65536).length, 65536);
    assert.equal((await call('/create', { method: 'POST', headers: JSON_HEADERS, body: sized(65536) })).status, 201);
    for (const [path, method] of writes(id)) {
      const response = await call(path, { method, headers: JSON_HEADERS, body: sized(65537) });
      const problem = await expectProblem(assert, response, 413, 'payload_too_large');
      assert.match(problem.detail, /65536/);
    }
    assert.deepEqual(await (await call(`/get/${id}`)).json(), { keep: 1 });
  });
});

describe('routing', () => {
  test('an unknown path is 404 not_found', async () => {
    for (const path of ['/', '/nope', '/get', '/get/', `/get/${MISSING}/extra`]) {
      await expectProblem(assert, await call(path), 404, 'not_found');
    }
  });

  test('a known path with the wrong method is 405 with Allow', async () => {
    const cases = [
      ['/create', 'GET', 'POST'], [`/get/${MISSING}`, 'POST', 'GET, HEAD'],
      [`/update/${MISSING}`, 'PATCH', 'PUT'], [`/add/${MISSING}`, 'PUT', 'PATCH'],
      [`/delete/${MISSING}`, 'GET', 'DELETE'], [`/touch/${MISSING}`, 'GET', 'POST'],
      [`/rotate/${MISSING}`, 'DELETE', 'POST'], ['/cache/k', 'POST', 'GET, HEAD, PUT, DELETE'],
      ['/health', 'POST', 'GET, HEAD'],
    ];
    for (const [path, method, allow] of cases) {
      const response = await call(path, { method });
      await expectProblem(assert, response, 405, 'method_not_allowed');
      assert.equal(response.headers.get('allow'), allow, `${method} ${path}`);
    }
  });
});

describe('sessions written by the previous release', () => {
  test('keep their lifecycle: metadata stored as an object is still read', async () => {
    const id = 'e1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d';
    const now = Date.now();
    const expiresAt = now + 600_000;
    await worker.kvPut(id, '{"v":1}', { createdAt: now - 5000, updatedAt: now - 5000, expiresAt, version: 7, ttl: 600 });
    const read = await call(`/get/${id}`);
    assert.equal(read.status, 200);
    assert.equal(read.headers.get('etag'), '"7"');
    assert.equal(Date.parse(read.headers.get('session-expires')), expiresAt);
    const written = await call(`/add/${id}`, { method: 'PATCH', headers: JSON_HEADERS, body: '{"v":2}' });
    assert.equal(written.headers.get('etag'), '"8"');
    const left = Date.parse(written.headers.get('session-expires')) - Date.now();
    assert.ok(left > 590_000 && left <= 600_000, `its own 600 s timeout is kept: ${left} ms`);
  });
});

describe('legacy sessions written by the old worker', () => {
  test('are read, merged into, replaced and deleted through the API', async () => {
    const id = 'a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d';
    await worker.kvPut(id, JSON.stringify({ username: 'old', firstName: 'Ada' }));
    let response = await call(`/get/${id}`);
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { username: 'old', firstName: 'Ada' });
    assert.equal(response.headers.get('etag'), '"0"');
    response = await call(`/add/${id}`, { method: 'PATCH', headers: JSON_HEADERS, body: '{"lastName":"L"}' });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('etag'), '"1"', 'metadata from the first write');
    assert.deepEqual(await response.json(), { username: 'old', firstName: 'Ada', lastName: 'L' });
    response = await call(`/update/${id}`, { method: 'PUT', headers: JSON_HEADERS, body: '{"username":"new"}' });
    assert.equal(response.headers.get('etag'), '"2"');
    assert.deepEqual(await (await call(`/get/${id}`)).json(), { username: 'new' });
    assert.equal((await call(`/delete/${id}`, { method: 'DELETE' })).status, 204);
    await expectProblem(assert, await call(`/get/${id}`), 404, 'session_not_found');
  });
});

describe('If-Match', () => {
  test('a stale version is 412 and writes nothing; the current one succeeds', async () => {
    const id = await createId({ v: 1 });
    const stale = { ...JSON_HEADERS, 'if-match': '"7"' };
    await expectProblem(assert, await call(`/update/${id}`, { method: 'PUT', headers: stale, body: '{"v":2}' }), 412, 'precondition_failed');
    await expectProblem(assert, await call(`/add/${id}`, { method: 'PATCH', headers: stale, body: '{"v":2}' }), 412, 'precondition_failed');
    await expectProblem(assert, await call(`/delete/${id}`, { method: 'DELETE', headers: { 'if-match': '"7"' } }), 412, 'precondition_failed');
    let read = await call(`/get/${id}`);
    assert.deepEqual(await read.json(), { v: 1 });
    const response = await call(`/update/${id}`, { method: 'PUT', headers: { ...JSON_HEADERS, 'if-match': read.headers.get('etag') }, body: '{"v":2}' });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('etag'), '"2"');
    assert.equal((await call(`/delete/${id}`, { method: 'DELETE', headers: { 'if-match': '"2"' } })).status, 204);
  });
});

describe('cache routes', () => {
  test('put, get, delete; a miss is 404', async () => {
    const key = 'perms:user:42';
    await expectProblem(assert, await call(`/cache/${key}`), 404, 'cache_entry_not_found');
    let response = await call(`/cache/${key}`, { method: 'PUT', headers: JSON_HEADERS, body: JSON.stringify({ data: { roles: ['admin'] }, ttl: 120 }) });
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { key, ttl: 120 });
    response = await call(`/cache/${key}`);
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { roles: ['admin'] });
    response = await call(`/cache/${key}`, { method: 'DELETE' });
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { key });
    await expectProblem(assert, await call(`/cache/${key}`), 404, 'cache_entry_not_found');
    assert.equal((await call(`/cache/${key}`, { method: 'DELETE' })).status, 200, 'missing key too');
  });

  test('the ttl defaults to 300 and must be at least 60', async () => {
    let response = await call('/cache/k1', { method: 'PUT', headers: JSON_HEADERS, body: '{"data":[1]}' });
    assert.deepEqual(await response.json(), { key: 'k1', ttl: 300 });
    for (const ttl of [59, 0, -5, 1.5, '"300"']) {
      response = await call('/cache/k1', { method: 'PUT', headers: JSON_HEADERS, body: `{"data":1,"ttl":${ttl}}` });
      await expectProblem(assert, response, 400, 'invalid_ttl');
    }
    await expectProblem(assert, await call('/cache/k1', { method: 'PUT', headers: JSON_HEADERS, body: '{"ttl":60}' }), 400, 'invalid_body');
    await expectProblem(assert, await call('/cache/k1', { method: 'PUT', headers: JSON_HEADERS, body: '{' }), 400, 'invalid_json');
  });

  test('keys are 1 to 256 bytes of printable ASCII', async () => {
    assert.equal((await call(`/cache/${'k'.repeat(256)}`, { method: 'PUT', headers: JSON_HEADERS, body: '{"data":1}' })).status, 200);
    for (const key of ['k'.repeat(257), 'caf%C3%A9', 'a%0Ab', 'a%7F']) {
      await expectProblem(assert, await call(`/cache/${key}`), 400, 'invalid_cache_key');
    }
  });

  test('a cache key can never read or overwrite a session', async () => {
    const id = await createId({ secret: 1 });
    await expectProblem(assert, await call(`/cache/${id}`), 404, 'cache_entry_not_found');
    const put = await call(`/cache/${id}`, { method: 'PUT', headers: JSON_HEADERS, body: '{"data":"overwritten"}' });
    assert.equal(put.status, 200);
    const cached = await call(`/cache/${id}`);
    assert.deepEqual(await cached.json(), 'overwritten', 'the cache entry has its own key');
    assert.deepEqual(await (await call(`/get/${id}`)).json(), { secret: 1 }, 'the session is untouched');
    const deleted = await call(`/cache/${id}`, { method: 'DELETE' });
    assert.equal(deleted.status, 200);
    assert.deepEqual(await (await call(`/get/${id}`)).json(), { secret: 1 }, 'still untouched');
  });
});

describe('health and contract', () => {
  test('GET /health is 200 {"status":"ok"}', async () => {
    const response = await call('/health');
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { status: 'ok' });
    assert.equal(response.headers.get('cache-control'), 'no-store');
  });

  test('GET /openapi.json serves the OpenAPI 3.1 document', async () => {
    const response = await call('/openapi.json');
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'application/json');
    const doc = await response.json();
    assert.equal(doc.openapi, '3.1.0');
    for (const path of ['/create', '/get/{id}', '/update/{id}', '/add/{id}', '/delete/{id}', '/touch/{id}', '/rotate/{id}', '/cache/{key}', '/health']) {
      assert.ok(doc.paths[path], `${path} is documented`);
    }
  });
});

describe('logs', () => {
  test('one JSON line per request with the route template, never the id or the data', async () => {
    const id = await createId({ secretValue: 'hunter2' });
    await call(`/get/${id}`);
    await expectProblem(assert, await call(`/get/${MISSING}`), 404, 'session_not_found');
    const console = await worker.consoleLines();
    const lines = requestLines(console);
    assert.ok(lines.some((l) => l.route === '/get/:id' && l.status === 200 && typeof l.durationMs === 'number'));
    assert.ok(lines.some((l) => l.route === '/get/:id' && l.status === 404 && l.code === 'session_not_found'));
    const all = console.join('\n');
    assert.ok(!all.includes(id.slice(9)) && !all.includes(MISSING.slice(9)), 'no whole id');
    assert.ok(!all.includes('hunter2'), 'no session data');
  });
});
