// Invalid configuration fails loudly: a 500 naming the variable, and a log line, never a default.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { JSON_HEADERS, expectProblem, startWorker } from './harness.mjs';

let worker;
before(async () => { worker = await startWorker({ vars: { SESSION_TTL_SECONDS: 'abc' } }); });
after(async () => { await worker?.stop(); });

test('every request is a 500 whose detail names the variable', async () => {
  for (const [path, method] of [['/create', 'POST'], ['/health', 'GET'], ['/get/x', 'GET']]) {
    const response = await fetch(`${worker.url}${path}`, { method, headers: JSON_HEADERS, body: method === 'POST' ? '{}' : undefined });
    const problem = await expectProblem(assert, response, 500, 'invalid_configuration');
    assert.match(problem.detail, /SESSION_TTL_SECONDS/);
  }
  await new Promise((r) => setTimeout(r, 300));
  assert.match(worker.logs(), /"code":"invalid_configuration","cause":"invalid configuration: SESSION_TTL_SECONDS/);
});
