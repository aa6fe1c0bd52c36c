// Caller authentication with the API_TOKEN secret set (and request logs turned off, to check
// LOG_REQUESTS on the same worker).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { JSON_HEADERS, assertNoRequestLine, expectProblem, startWorker } from './harness.mjs';

const TOKEN = 'test-token-0123456789';
let worker;
// Set with a trailing newline, as `echo token | wrangler secret put` does: it is trimmed.
before(async () => { worker = await startWorker({ vars: { API_TOKEN: `${TOKEN}\n`, LOG_REQUESTS: 'false' } }); });
after(async () => { await worker?.stop(); });

const call = (path, init = {}) => fetch(`${worker.url}${path}`, init);
const bearer = (token) => ({ authorization: `Bearer ${token}` });

test('missing and wrong tokens are 401 with WWW-Authenticate on every route', async () => {
  const routes = [['/create', 'POST'], ['/get/3b241101-e2bb-4255-8caf-4136c566a962', 'GET'],
    ['/cache/k', 'GET'], ['/openapi.json', 'GET'], ['/nope', 'GET']];
  for (const [path, method] of routes) {
    for (const headers of [{}, bearer('wrong'), bearer(`${TOKEN}x`), { authorization: TOKEN }, { authorization: `Basic ${TOKEN}` }]) {
      const response = await call(path, { method, headers: { ...JSON_HEADERS, ...headers }, body: method === 'POST' ? '{}' : undefined });
      await expectProblem(assert, response, 401, 'unauthorized');
      assert.equal(response.headers.get('www-authenticate'), 'Bearer');
    }
  }
});

test('the right token works', async () => {
  const created = await call('/create', { method: 'POST', headers: { ...JSON_HEADERS, ...bearer(TOKEN) }, body: '{"a":1}' });
  assert.equal(created.status, 201);
  const id = await created.text();
  const read = await call(`/get/${id}`, { headers: bearer(TOKEN) });
  assert.equal(read.status, 200);
  assert.deepEqual(await read.json(), { a: 1 });
});

test('/health stays open', async () => {
  const response = await call('/health');
  assert.equal(response.status, 200);
  assert.deepEqual(await response.json(), { status: 'ok' });
});

test('the token never reaches the logs', async () => {
  await call('/health', { headers: bearer(TOKEN) });
  assert.ok(!(await worker.consoleLines()).join('\n').includes(TOKEN.slice(4)));
});

test('LOG_REQUESTS=false turns the request lines off', async () => {
  assert.equal((await call('/health')).status, 200);
  const lines = await worker.consoleLines();
  assertNoRequestLine(assert, lines, ['/health']);
});
