// Sessions of a user, end to end, on either backend: listing, revoking (all, or all but one),
// the bound per subject, and the subject kept out of keys and logs.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { HANDLE, JSON_HEADERS, ROOT, STRONG, expectProblem, handleOf, sleep, startWorker } from './harness.mjs';

const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const ADA = 'ada@example.com';
const path = (subject) => `/subjects/${encodeURIComponent(subject)}/sessions`;

describe('subjects', () => {
  let worker;
  before(async () => { worker = await startWorker({ vars: { MAX_SESSIONS_PER_SUBJECT: '3', SESSION_SUBJECT_FIELD: 'username' } }); });
  after(async () => { await worker?.stop(); });

  const call = (p, init = {}) => fetch(`${worker.url}${p}`, init);
  const create = async (data, subject) => {
    const headers = { ...JSON_HEADERS, ...(subject ? { 'session-subject': encodeURIComponent(subject) } : {}) };
    const response = await call('/create', { method: 'POST', headers, body: JSON.stringify(data) });
    assert.equal(response.status, 201, await response.clone().text());
    return response.text();
  };
  const list = async (subject) => {
    const response = await call(path(subject));
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('cache-control'), 'no-store');
    return (await response.json()).sessions;
  };
  const revoke = async (subject, except) => {
    const response = await call(`${path(subject)}${except ? `?except=${except}` : ''}`, { method: 'DELETE' });
    assert.equal(response.status, 200);
    return (await response.json()).revoked;
  };

  test('a subject\'s live sessions are listed newest first, with their lifecycle', async () => {
    const first = await create({ n: 1 }, 'list@example.com');
    await sleep(5);
    const second = await create({ n: 2 }, 'list@example.com');
    await create({ n: 3 }, 'someone-else@example.com');
    await create({ n: 4 });
    const sessions = await list('list@example.com');
    assert.deepEqual(sessions.map((s) => s.handle), [second, first].map(handleOf));
    for (const session of sessions) {
      assert.deepEqual(Object.keys(session), ['handle', 'createdAt', 'updatedAt', 'expiresAt', 'lastSeenAt', 'authenticatedAt', 'authLevel', 'bound']);
      assert.match(session.handle, HANDLE);
      for (const key of ['createdAt', 'updatedAt', 'expiresAt', 'lastSeenAt', 'authenticatedAt']) assert.match(session[key], RFC3339);
    }
    assert.deepEqual(await list('nobody@example.com'), [], 'an unknown subject has none');
  });

  test('the subject can come from the data (SESSION_SUBJECT_FIELD), and is kept through writes and rotation', async () => {
    const id = await create({ username: 'field@example.com' });
    await call(`/update/${id}`, { method: 'PUT', headers: JSON_HEADERS, body: '{"username":"other@example.com"}' });
    assert.deepEqual((await list('field@example.com')).map((s) => s.handle), [id].map(handleOf), 'PUT does not move it');
    const rotated = await (await call(`/rotate/${id}`, { method: 'POST' })).text();
    assert.deepEqual((await list('field@example.com')).map((s) => s.handle), [rotated].map(handleOf), 'rotation keeps it');
    assert.deepEqual(await list('other@example.com'), []);
    const explicit = await create({ username: 'field@example.com' }, 'header@example.com');
    assert.deepEqual((await list('header@example.com')).map((s) => s.handle), [explicit].map(handleOf), 'the header wins');
  });

  test('revoking ends every session but the one kept, and says how many', async () => {
    const [a, b, c] = [await create({}, 'revoke@example.com'), await create({}, 'revoke@example.com'), await create({}, 'revoke@example.com')];
    assert.equal(await revoke('revoke@example.com', b), 2);
    for (const id of [a, c]) await expectProblem(assert, await call(`/get/${id}`), 404, 'session_not_found');
    assert.equal((await call(`/get/${b}`)).status, 200, 'the kept one still works');
    assert.deepEqual((await list('revoke@example.com')).map((s) => s.handle), [b].map(handleOf));
    assert.equal(await revoke('revoke@example.com'), 1);
    await expectProblem(assert, await call(`/get/${b}`), 404, 'session_not_found');
    assert.equal(await revoke('revoke@example.com'), 0, 'nothing left');
    assert.equal(await revoke('never-seen@example.com'), 0, 'an unknown subject');
  });

  test('one session is revoked by its handle, only under its own subject', async () => {
    const created = await call('/create', { method: 'POST', headers: { ...JSON_HEADERS, 'session-subject': 'one@example.com' }, body: '{}' });
    const [mine, kept] = [await created.text(), await create({}, 'one@example.com')];
    assert.equal(created.headers.get('session-handle'), handleOf(mine), 'create names the handle');
    const theirs = await create({}, 'two@example.com');
    const one = (subject, handle) => call(`${path(subject)}/${handle}`, { method: 'DELETE' });
    await expectProblem(assert, await one('one@example.com', handleOf(theirs)), 404, 'session_not_found');
    assert.equal((await call(`/get/${theirs}`)).status, 200, 'another subject\'s session stays');
    for (const bad of ['nope', handleOf(mine).toUpperCase(), mine]) {
      await expectProblem(assert, await one('one@example.com', bad), 404, 'session_not_found');
    }
    assert.equal((await call(`/get/${mine}`)).status, 200, 'nothing ended');
    await expectProblem(assert, await call(`/get/${handleOf(mine)}`), 400, 'invalid_session_id');
    const revoked = await one('one@example.com', handleOf(mine));
    assert.equal(revoked.status, 200);
    assert.deepEqual(await revoked.json(), { revoked: 1 });
    await expectProblem(assert, await call(`/get/${mine}`), 404, 'session_not_found');
    await expectProblem(assert, await one('one@example.com', handleOf(mine)), 404, 'session_not_found');
    assert.deepEqual((await list('one@example.com')).map((s) => s.handle), [handleOf(kept)]);
    const rotated = await call(`/rotate/${kept}`, { method: 'POST' });
    assert.equal(rotated.headers.get('session-handle'), handleOf(await rotated.text()), 'so does rotate');
    await expectProblem(assert, await call(`${path('one@example.com')}/${handleOf(kept)}`, { method: 'GET' }), 405, 'method_not_allowed');
  });

  test('a deleted session is not listed', async () => {
    const id = await create({}, 'deleted@example.com');
    assert.equal((await call(`/delete/${id}`, { method: 'DELETE' })).status, 204);
    assert.deepEqual(await list('deleted@example.com'), []);
  });

  test('MAX_SESSIONS_PER_SUBJECT: one more ends the least recently written', async () => {
    const ids = [];
    for (let i = 0; i < 3; i += 1) ids.push(await create({ i }, ADA));
    await call(`/add/${ids[0]}`, { method: 'PATCH', headers: JSON_HEADERS, body: '{"active":true}' });
    const fourth = await create({ i: 3 }, ADA);
    const listed = (await list(ADA)).map((s) => s.handle);
    assert.equal(listed.length, 3);
    assert.deepEqual(new Set(listed), new Set([ids[0], ids[2], fourth].map(handleOf)));
    await expectProblem(assert, await call(`/get/${ids[1]}`), 404, 'session_not_found');
  });

  test('invalid subjects and exceptions are 400, with the problem documents', async () => {
    await expectProblem(assert, await call(path('x'.repeat(257))), 400, 'invalid_subject');
    assert.deepEqual(await list('%zz'), [], 'a stray % is part of the subject, not an error');
    await expectProblem(assert, await call(`${path(ADA)}?except=nope`, { method: 'DELETE' }), 400, 'invalid_session_id');
    const headers = { ...JSON_HEADERS, 'session-subject': 'x'.repeat(257) };
    await expectProblem(assert, await call('/create', { method: 'POST', headers, body: '{}' }), 400, 'invalid_subject');
    await expectProblem(assert, await call('/create', { method: 'POST', headers: JSON_HEADERS, body: '{"username":""}' }), 400, 'invalid_subject');
    await expectProblem(assert, await call(path(ADA), { method: 'POST' }), 405, 'method_not_allowed');
    await expectProblem(assert, await call('/subjects//sessions'), 404, 'not_found');
  });

  test('the subject never appears in the clear in a key or a log', async () => {
    await create({}, 'secret-person@example.com');
    await list('secret-person@example.com');
    assert.ok(!(await worker.consoleLines()).join('\n').includes('secret-person'));
    if (!STRONG) {
      const { stdout } = await promisify(execFile)(`${ROOT}/node_modules/.bin/wrangler`, ['kv', 'key', 'list', '--binding', 'sessionstore', '--local', '--persist-to', worker.state], { cwd: ROOT });
      const keys = JSON.parse(stdout).map((k) => k.name);
      assert.ok(keys.some((k) => /^sub:[0-9a-f]{64}:/.test(k)), 'index entries are keyed by hash');
      assert.ok(!keys.join('\n').includes('secret-person'));
    }
  });
});

describe('subjects and expiry', () => {
  let worker;
  // 2 s idle timeout.
  before(async () => { worker = await startWorker({ env: 'test' }); });
  after(async () => { await worker?.stop(); });

  test('expired sessions never appear in a list', async () => {
    const headers = { ...JSON_HEADERS, 'session-subject': 'expiring' };
    const response = await fetch(`${worker.url}/create`, { method: 'POST', headers, body: '{}' });
    const id = await response.text();
    const listed = await (await fetch(`${worker.url}${path('expiring')}`)).json();
    assert.deepEqual(listed.sessions.map((s) => s.handle), [id].map(handleOf));
    await sleep(2300);
    assert.deepEqual((await (await fetch(`${worker.url}${path('expiring')}`)).json()).sessions, []);
  });
});
