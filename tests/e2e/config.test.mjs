// Invalid configuration fails loudly: a 500 naming the variable, and a log line, never a default.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { JSON_HEADERS, expectProblem, startWorker } from './harness.mjs';

const INVALID = [
  ['SESSION_TTL_SECONDS', 'abc'],
  ['SESSION_MAX_LIFETIME_SECONDS', '31536001'],
  ['SESSION_RENEWAL_GRACE_SECONDS', '301'],
  ['SESSION_REUSE_DETECTION', 'yes'],
  ['SESSION_ID_FORMAT', 'uuid7'],
  ['SESSIONS_NOT_BEFORE', 'yesterday'],
  // Later than now: every session created until then would be 404 the moment after its 201.
  ['SESSIONS_NOT_BEFORE', '2999-01-01T00:00:00Z'],
];
for (const [variable, value] of INVALID) {
  describe(`${variable}=${value}`, () => {
    let worker;
    before(async () => { worker = await startWorker({ vars: { [variable]: value } }); });
    after(async () => { await worker?.stop(); });

    test('every request is a 500 whose detail names the variable, and the log says why', async () => {
      for (const [path, method] of [['/create', 'POST'], ['/health', 'GET'], ['/get/x', 'GET']]) {
        const response = await fetch(`${worker.url}${path}`, { method, headers: JSON_HEADERS, body: method === 'POST' ? '{}' : undefined });
        const problem = await expectProblem(assert, response, 500, 'invalid_configuration');
        assert.match(problem.detail, new RegExp(variable));
      }
      const lines = await worker.consoleLines();
      assert.ok(lines.some((l) => l.includes(`"code":"invalid_configuration","cause":"invalid configuration: ${variable}`)), lines.join('\n'));
    });
  });
}

// With API_TOKEN set, a caller is authenticated before any other setting is judged: without the
// token it learns nothing of the configuration, not even that a variable is wrong.
describe('an invalid variable behind API_TOKEN', () => {
  const TOKEN = 'config-token-9876543210';
  let worker;
  before(async () => { worker = await startWorker({ vars: { API_TOKEN: TOKEN, SESSION_TTL_SECONDS: 'abc' } }); });
  after(async () => { await worker?.stop(); });

  test('is 401 without the token and 500 naming the variable with it', async () => {
    for (const headers of [{}, { authorization: 'Bearer wrong' }]) {
      const response = await fetch(`${worker.url}/create`, { method: 'POST', headers: { ...JSON_HEADERS, ...headers }, body: '{}' });
      const problem = await expectProblem(assert, response, 401, 'unauthorized');
      assert.doesNotMatch(JSON.stringify(problem), /SESSION_TTL_SECONDS/);
    }
    const response = await fetch(`${worker.url}/create`, {
      method: 'POST', headers: { ...JSON_HEADERS, authorization: `Bearer ${TOKEN}` }, body: '{}',
    });
    const problem = await expectProblem(assert, response, 500, 'invalid_configuration');
    assert.match(problem.detail, /SESSION_TTL_SECONDS/);
  });

  test('/health, open without the token, is a bare 500 without it: no variable, no value', async () => {
    for (const headers of [{}, { authorization: 'Bearer wrong' }]) {
      const response = await fetch(`${worker.url}/health`, { headers });
      const problem = await expectProblem(assert, response, 500, 'internal');
      assert.equal(problem.detail, 'The service met an unexpected error.');
      assert.doesNotMatch(JSON.stringify(problem), /SESSION_TTL_SECONDS|abc|configur/i);
    }
    const response = await fetch(`${worker.url}/health`, { headers: { authorization: `Bearer ${TOKEN}` } });
    const problem = await expectProblem(assert, response, 500, 'invalid_configuration');
    assert.match(problem.detail, /SESSION_TTL_SECONDS/);
    // The log still says which variable is wrong.
    const lines = await worker.consoleLines();
    assert.ok(lines.some((l) => l.includes('"route":"/health"') && l.includes('invalid configuration: SESSION_TTL_SECONDS')), lines.join('\n'));
  });
});
