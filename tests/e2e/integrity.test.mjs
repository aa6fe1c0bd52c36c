// Data integrity, end to end: what is accepted can always be merged, no session grows past the
// limit, bodies are limited while they stream, and stored data the service cannot merge into is
// kept rather than replaced.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { JSON_HEADERS, expectProblem, requestLines, startWorker } from './harness.mjs';

let worker;
// Every request logged: the streaming test reads the worker's own account of its answer.
before(async () => { worker = await startWorker({ vars: { LOG_REQUESTS: 'all' } }); });
after(async () => { await worker?.stop(); });

const call = (path, init = {}) => fetch(`${worker.url}${path}`, init);
/** Creates a session from raw JSON text (escapes kept as written). */
const createRaw = async (text) => {
  const response = await call('/create', { method: 'POST', headers: JSON_HEADERS, body: text });
  assert.equal(response.status, 201, await response.clone().text());
  return response.text();
};
const patchRaw = (id, text, type = 'application/json') =>
  call(`/add/${id}`, { method: 'PATCH', headers: { 'content-type': type }, body: text });
const stored = async (id) => (await call(`/get/${id}`)).text();

describe('one JSON grammar', () => {
  test('a lone surrogate in a key is kept, and merges keep everything else', async () => {
    const id = await createRaw('{"\\ud800":1,"o":{"k":2}}');
    let response = await patchRaw(id, '{"zz":1}');
    assert.equal(response.status, 200);
    assert.equal(await response.text(), '{"\\ud800":1,"o":{"k":2},"zz":1}');
    response = await patchRaw(id, '{"o":{"j":3},"\\ud800":null}', 'application/merge-patch+json');
    assert.equal(response.status, 200);
    assert.equal(await stored(id), '{"o":{"k":2,"j":3},"zz":1}');
    // JavaScript reads the stored text as the caller wrote it.
    assert.deepEqual(JSON.parse('{"\\ud800":1}'), { '\ud800': 1 });
  });

  test('keys match by their decoded form', async () => {
    const id = await createRaw('{"\\u00e9":1,"k":{"\\ud83d\\ude00":1}}');
    await patchRaw(id, '{"é":2,"k":{"😀":2}}', 'application/merge-patch+json');
    assert.deepEqual(JSON.parse(await stored(id)), { é: 2, k: { '😀': 2 } });
  });

  test('duplicate keys resolve as JSON.parse does, at every depth, and never come back', async () => {
    const text = '{"a":{"x":1},"b":[{"k":1,"k":2}],"a":{"y":2}}';
    const id = await createRaw(text);
    assert.equal(await stored(id), '{"a":{"y":2},"b":[{"k":2}]}');
    assert.deepEqual(JSON.parse(await stored(id)), JSON.parse(text), 'what JavaScript saw');
    const response = await patchRaw(id, '{"a":{"z":3}}', 'application/merge-patch+json');
    assert.equal(await response.text(), '{"a":{"y":2,"z":3},"b":[{"k":2}]}');
    const replaced = await call(`/update/${id}`, { method: 'PUT', headers: JSON_HEADERS, body: '{"c":1,"c":2}' });
    assert.equal(await replaced.text(), '{"c":2}');
  });

  test('invalid JSON is refused the same way on every write route', async () => {
    const id = await createRaw('{}');
    for (const body of ['{"a":01}', '{"a":"\\x"}', '{"a":1,}', '{"a":"\t"}', `{"a":${'['.repeat(200)}${']'.repeat(200)}}`]) {
      for (const [path, method] of [['/create', 'POST'], [`/update/${id}`, 'PUT'], [`/add/${id}`, 'PATCH'], ['/cache/k', 'PUT']]) {
        await expectProblem(assert, await call(path, { method, headers: JSON_HEADERS, body }), 400, 'invalid_json');
      }
    }
  });
});

describe('stored data the service cannot merge into', () => {
  for (const [name, value] of [['not JSON', '{not json'], ['not an object', '[1,2]']]) {
    test(`(${name}) is refused with 409 and kept`, async () => {
      const id = name === 'not JSON' ? 'a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d' : 'b1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d';
      await worker.kvPut(id, value);
      for (const type of ['application/json', 'application/merge-patch+json']) {
        const problem = await expectProblem(assert, await patchRaw(id, '{"a":1}', type), 409, 'session_not_mergeable');
        assert.match(problem.detail, /PUT \/update/);
      }
      assert.equal(await stored(id), value, 'kept byte for byte');
      const replaced = await call(`/update/${id}`, { method: 'PUT', headers: JSON_HEADERS, body: '{"fresh":true}' });
      assert.equal(replaced.status, 200, 'a replace is still possible');
    });
  }
});

describe('size', () => {
  test('a merge never grows a session past MAX_SESSION_BYTES', async () => {
    const id = await createRaw('{}');
    const chunk = (n) => JSON.stringify({ [`k${n}`]: 'x'.repeat(20_000) });
    for (let n = 0; n < 3; n += 1) assert.equal((await patchRaw(id, chunk(n))).status, 200);
    const before = await stored(id);
    for (let n = 3; n < 6; n += 1) {
      const problem = await expectProblem(assert, await patchRaw(id, chunk(n)), 413, 'payload_too_large');
      assert.match(problem.detail, /merged session would be larger than the limit of 65536 bytes/);
    }
    assert.equal(await stored(id), before, 'nothing written');
    assert.ok(before.length <= 65_536);
  });

  test('PUT /cache is held to the same limit', async () => {
    const body = JSON.stringify({ data: 'x'.repeat(70_000) });
    await expectProblem(assert, await call('/cache/big', { method: 'PUT', headers: JSON_HEADERS, body }), 413, 'payload_too_large');
    await expectProblem(assert, await call('/cache/big'), 404, 'cache_entry_not_found');
  });
});

/**
 * Sends `total` bytes of a JSON prefix with chunked transfer encoding (no Content-Length), one
 * chunk at a time, straight to the worker's runtime (wrangler's dev proxy mishandles an upload
 * cut short), and stops as soon as the server answers or hangs up. A server that answers early
 * closes with input unread, which resets the connection: the client may then never see the
 * answer, so callers read the worker's own account of it from its log line.
 */
function sendChunked(url, total, method) {
  return new Promise((resolve) => {
    const req = request(url, {
      method, headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
    });
    let sent = 0;
    let done = false;
    const finish = (answer) => { if (!done) { done = true; req.destroy(); resolve({ sent, ...answer }); } };
    req.on('response', (response) => {
      let body = '';
      response.on('data', (d) => { body += d; });
      response.on('end', () => finish({ status: response.statusCode, body }));
    });
    req.on('error', (err) => finish({ status: null, error: err.code }));
    const chunk = Buffer.alloc(64 * 1024, 'x');
    (async () => {
      while (!done && sent < total) {
        const piece = sent === 0 ? Buffer.concat([Buffer.from('{"pad":"'), chunk.subarray(8)]) : chunk;
        sent += piece.length;
        if (!req.write(piece)) await new Promise((r) => req.once('drain', r));
        await new Promise((r) => setImmediate(r));
      }
      if (!done) req.end();
    })();
  });
}

describe('bodies are limited while they stream', () => {
  test('a chunked body far over the limit is refused without being read whole', async () => {
    const direct = await worker.directUrl();
    const total = 24 * 1024 * 1024;
    const rssBefore = await worker.rssKiB();
    for (const [path, method, route] of [['/create', 'POST', '/create'], ['/cache/k', 'PUT', '/cache/*key']]) {
      const answer = await sendChunked(`${direct}${path}`, total, method);
      assert.ok(answer.sent < total, `the server stopped reading at ${answer.sent} of ${total} bytes`);
      if (answer.status !== null) {
        assert.equal(answer.status, 413, answer.body);
        assert.equal(JSON.parse(answer.body).code, 'payload_too_large');
      }
      const lines = requestLines(await worker.consoleLines());
      const last = lines.filter((l) => l.route === route && l.method === method).at(-1);
      assert.equal(last?.status, 413, `the worker answered ${JSON.stringify(last)}`);
    }
    const grownKiB = (await worker.rssKiB()) - rssBefore;
    // Two 24 MiB bodies read whole would grow the runtime by tens of MiB (Wasm memory never
    // shrinks); read to the limit, each costs at most 64 KiB.
    assert.ok(grownKiB < 12 * 1024, `workerd grew by ${grownKiB} KiB`);
  });

  test('a chunked body within the limit is read', async () => {
    const { status } = await sendChunkedJson('{"small":true}');
    assert.equal(status, 201);
  });
});

describe('an early 413 on a chunked upload', () => {
  const createOnce = (base) => fetch(`${base}/create`, { method: 'POST', headers: JSON_HEADERS, body: '{"a":1}' });

  // On the worker's own socket (wrangler's dev proxy answers the request after an early 413 with
  // a 503 of its own, or hangs it, for a plain JavaScript Worker too: that is the proxy's, and
  // production has no such proxy).
  test('is the worker\'s answer, never a 503 of its own, and the next request is served', async () => {
    const direct = await worker.directUrl();
    for (let round = 0; round < 3; round += 1) {
      const before = requestLines(await worker.consoleLines()).length;
      const refused = await sendChunked(`${direct}/create`, 256 * 1024, 'POST');
      // The client may not see the answer (the connection resets with input unread); the
      // worker's own line says what it answered.
      if (refused.status !== null) assert.equal(refused.status, 413, JSON.stringify(refused));
      assert.equal((await createOnce(direct)).status, 201, `round ${round}`);
      const lines = requestLines(await worker.consoleLines()).slice(before);
      const statuses = lines.filter((l) => l.route === '/create').map((l) => l.status);
      assert.deepEqual(statuses, [413, 201], `round ${round}: the worker answered ${statuses}`);
    }
  });
});

function sendChunkedJson(text) {
  return new Promise((resolve, reject) => {
    const req = request(`${worker.url}/create`, {
      method: 'POST', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
    }, (response) => { response.resume(); response.on('end', () => resolve({ status: response.statusCode })); });
    req.on('error', reject);
    for (const piece of text.match(/.{1,4}/g)) req.write(piece);
    req.end();
  });
}

describe('media types', () => {
  test('text/plain bodies are JSON, as fetch sends a string body without headers', async () => {
    const created = await call('/create', { method: 'POST', body: '{"a":1}' });
    assert.equal(created.status, 201);
    const id = await created.text();
    const patched = await call(`/add/${id}`, { method: 'PATCH', headers: { 'content-type': 'text/plain;charset=UTF-8' }, body: '{"b":2}' });
    assert.equal(patched.status, 200);
    assert.deepEqual(await patched.json(), { a: 1, b: 2 });
  });

  test('forms, multipart and other types are still 415', async () => {
    const form = new FormData();
    form.set('a', '1');
    await expectProblem(assert, await call('/create', { method: 'POST', body: form }), 415, 'unsupported_media_type');
    await expectProblem(assert, await call('/create', { method: 'POST', body: new URLSearchParams({ a: '1' }) }), 415, 'unsupported_media_type');
    await expectProblem(assert, await call('/create', { method: 'POST', headers: { 'content-type': 'text/html' }, body: '{}' }), 415, 'unsupported_media_type');
  });
});

describe('touch', () => {
  test('a touch within the renewal interval writes nothing and answers the expiry in force', async () => {
    const created = await call('/create', { method: 'POST', headers: JSON_HEADERS, body: '{}' });
    const id = await created.text();
    const touched = await call(`/touch/${id}`, { method: 'POST' });
    assert.equal(touched.status, 204);
    assert.equal(touched.headers.get('session-expires'), created.headers.get('session-expires'));
    assert.equal(touched.headers.get('etag'), '"1"');
  });
});

describe('If-Match', () => {
  test('is a strong comparison: only the exact tag matches', async () => {
    const id = await createRaw('{"v":1}');
    for (const tag of ['"01"', '"+1"', 'W/"1"', '"1,"', '"2", W/"1"', ', ,']) {
      const response = await call(`/update/${id}`, { method: 'PUT', headers: { ...JSON_HEADERS, 'if-match': tag }, body: '{"v":2}' });
      await expectProblem(assert, response, 412, 'precondition_failed');
    }
    const response = await call(`/update/${id}`, { method: 'PUT', headers: { ...JSON_HEADERS, 'if-match': ', "1" ,' }, body: '{"v":2}' });
    assert.equal(response.status, 200);
  });

  test('a value outside the RFC 9110 grammar is 400 invalid_if_match on every write, and nothing changes', async () => {
    const id = await createRaw('{"v":1}');
    const writes = [
      ['PUT', `/update/${id}`, '{"v":2}'],
      ['PATCH', `/add/${id}`, '{"w":2}'],
      ['DELETE', `/delete/${id}`, undefined],
    ];
    for (const tag of ['cYD5,', '}', '1', '"1 "', '"1" "2"', '*, "1"', 'w/"1"', '"1']) {
      for (const [method, path, body] of writes) {
        const response = await call(path, { method, headers: { ...JSON_HEADERS, 'if-match': tag }, body });
        const problem = await expectProblem(assert, response, 400, 'invalid_if_match');
        assert.match(problem.detail, /If-Match/, `${method} ${tag}`);
      }
    }
    const read = await call(`/get/${id}`);
    assert.equal(read.headers.get('etag'), '"1"');
    assert.equal(await read.text(), '{"v":1}');
  });

  test('is read before the body: a malformed precondition on a malformed body is about the precondition', async () => {
    const id = await createRaw('{"v":1}');
    const response = await call(`/update/${id}`, { method: 'PUT', headers: { ...JSON_HEADERS, 'if-match': '}' }, body: 'not json' });
    await expectProblem(assert, response, 400, 'invalid_if_match');
  });
});
