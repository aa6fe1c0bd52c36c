// The typed client (client/), end to end: every method through a Worker's service binding (the
// user-mgmt fixture bundles the client and runs a method by name at /client), error paths
// included; and from Node with a URL and a token, against a worker that requires one.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ROOT, STRONG, UUID_V4, handleOf, startWorker } from './harness.mjs';

const MISSING = '3b241101-e2bb-4255-8caf-4136c566a962';
const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

describe('through a service binding', () => {
  let worker;
  before(async () => {
    worker = await startWorker({ configs: ['tests/fixtures/user-mgmt/wrangler.toml', 'wrangler.toml'] });
  });
  after(async () => { await worker?.stop(); });

  /** Runs `client.<method>(...args)` in the fixture; `{ ok }` or `{ error }`. */
  const client = async (method, ...args) => {
    const response = await fetch(`${worker.url}/client`, { method: 'POST', body: JSON.stringify({ method, args }) });
    assert.equal(response.status, 200, await response.clone().text());
    return response.json();
  };
  const ok = async (method, ...args) => {
    const answer = await client(method, ...args);
    assert.ok('ok' in answer, `${method}: ${JSON.stringify(answer)}`);
    return answer.ok;
  };
  const error = async (method, ...args) => {
    const answer = await client(method, ...args);
    assert.ok('error' in answer, `${method} should have failed: ${JSON.stringify(answer)}`);
    assert.equal(answer.error.name, 'SessionStateError');
    return answer.error;
  };
  const expectMeta = (meta, version) => {
    assert.match(meta.id, UUID_V4);
    assert.equal(meta.version, version);
    assert.equal(meta.etag, `"${version}"`);
    assert.match(meta.expiresAt, RFC3339);
  };

  test('create, get, update, add (both merges), touch, rotate, delete', async () => {
    const created = await ok('create', { user: 'ada', prefs: { theme: 'dark', lang: 'en' } }, { ttl: 600 });
    expectMeta(created, 1);
    assert.equal(created.handle, handleOf(created.id), 'create names the handle');
    const expires = Date.parse(created.expiresAt) - Date.now();
    assert.ok(expires > 590_000 && expires <= 600_000, 'the ttl option');
    const read = await ok('get', created.id);
    assert.deepEqual(read.data, { user: 'ada', prefs: { theme: 'dark', lang: 'en' } });
    expectMeta(read, 1);

    const updated = await ok('update', created.id, { user: 'ada', role: 'user' }, { ifMatch: 1 });
    expectMeta(updated, 2);
    assert.deepEqual(updated.data, { user: 'ada', role: 'user' });
    const shallow = await ok('add', created.id, { role: 'admin' });
    assert.deepEqual(shallow.data, { user: 'ada', role: 'admin' });
    const patched = await ok('add', created.id, { prefs: { theme: 'light' }, role: null }, { mergePatch: true, ifMatch: '"3"' });
    assert.deepEqual(patched.data, { user: 'ada', prefs: { theme: 'light' } });
    expectMeta(patched, 4);

    const touched = await ok('touch', created.id);
    expectMeta(touched, 4);
    const rotated = await ok('rotate', created.id);
    expectMeta(rotated, 5);
    assert.notEqual(rotated.id, created.id);
    assert.equal(await ok('get', created.id), null, 'the old id is gone: get gives null');
    assert.deepEqual((await ok('get', rotated.id)).data, { user: 'ada', prefs: { theme: 'light' } });

    assert.equal(await ok('delete', rotated.id, { ifMatch: 5 }), null);
    assert.equal(await ok('get', rotated.id), null);
    assert.equal(await ok('delete', rotated.id), null, 'deleting a missing session is fine');
  });

  test('renew: a new id, the old one still reaching the session, a second renew the same id', async () => {
    const { id } = await ok('create', { user: 'ada' });
    const renewed = await ok('renew', id);
    assert.match(renewed.id, UUID_V4);
    assert.notEqual(renewed.id, id);
    assert.deepEqual((await ok('get', id)).data, { user: 'ada' });
    assert.equal((await ok('renew', id)).id, renewed.id);
    const missing = await error('renew', MISSING);
    assert.deepEqual([missing.status, missing.code], [404, 'session_not_found']);
  });

  test('authentication: created at a level, demanded by any call, recorded again by reauth under a new id', async () => {
    const created = await ok('create', { user: 'ada' }, { authLevel: 2 });
    assert.equal(created.authLevel, 2);
    assert.match(created.authenticatedAt, RFC3339);
    const read = await ok('get', created.id, { minAuthLevel: 2, maxAuthAge: 60 });
    assert.deepEqual([read.authLevel, read.authenticatedAt], [2, created.authenticatedAt]);
    const weak = await error('add', created.id, { role: 'admin' }, { minAuthLevel: 3 });
    assert.deepEqual([weak.status, weak.code], [403, 'reauthentication_required']);
    assert.deepEqual(weak.authentication.authLevel, 2);
    assert.equal(weak.authentication.authenticatedAt, created.authenticatedAt);
    assert.deepEqual((await ok('get', created.id)).data, { user: 'ada' }, 'unchanged');
    const stepped = await ok('reauth', created.id, { authLevel: 3 });
    assert.notEqual(stepped.id, created.id);
    assert.equal(stepped.authLevel, 3);
    assert.equal(stepped.handle, handleOf(stepped.id));
    assert.deepEqual((await ok('add', stepped.id, { role: 'admin' }, { minAuthLevel: 3 })).data, { user: 'ada', role: 'admin' });
    assert.equal(await ok('get', created.id), null, 'the old id ended');
    const invalid = await error('touch', stepped.id, { maxAuthAge: -1 });
    assert.deepEqual([invalid.status, invalid.code], [400, 'invalid_auth_demand']);
  });

  test('errors carry status, code and detail', async () => {
    const { id } = await ok('create', { v: 1 });
    const stale = await error('update', id, { v: 2 }, { ifMatch: 7 });
    assert.deepEqual([stale.status, stale.code, stale.retryable], [412, 'precondition_failed', false]);
    assert.match(stale.detail, /If-Match/);
    const missing = await error('add', MISSING, { a: 1 });
    assert.deepEqual([missing.status, missing.code], [404, 'session_not_found']);
    assert.deepEqual([(await error('touch', MISSING)).code, (await error('rotate', MISSING)).code], ['session_not_found', 'session_not_found']);
    const invalid = await error('get', 'not-an-id');
    assert.deepEqual([invalid.status, invalid.code], [400, 'invalid_session_id']);
    const large = await error('create', { pad: 'x'.repeat(70_000) });
    assert.deepEqual([large.status, large.code], [413, 'payload_too_large']);
    const ttl = await error('create', {}, { ttl: 0 });
    assert.equal(ttl.code, 'invalid_ttl');
    const subject = await error('create', {}, { subject: 'x'.repeat(257) });
    assert.equal(subject.code, 'invalid_subject');
    const gone = await error('delete', MISSING, { ifMatch: '*' });
    assert.equal(gone.code, 'session_not_found', 'a conditional delete needs the session');
  });

  test('the permission cache', async () => {
    assert.equal(await ok('cache.get', 'perms:user:1'), null, 'a miss is null');
    assert.deepEqual(await ok('cache.put', 'perms:user:1', { roles: ['admin'] }, { ttl: 120 }), { key: 'perms:user:1', ttl: 120 });
    assert.deepEqual(await ok('cache.put', 'perms:user:2', [1]), { key: 'perms:user:2', ttl: 300 });
    assert.deepEqual(await ok('cache.get', 'perms:user:1'), { roles: ['admin'] });
    assert.equal(await ok('cache.delete', 'perms:user:1'), null);
    assert.equal(await ok('cache.get', 'perms:user:1'), null);
    const tooShort = await error('cache.put', 'k', 1, { ttl: 10 });
    assert.deepEqual([tooShort.status, tooShort.code], [400, 'invalid_ttl']);
    assert.equal((await error('cache.get', 'x'.repeat(300))).code, 'invalid_cache_key');
  });

  test('a user\'s sessions: list, revoke all but one, revoke all', async () => {
    const user = `client-${STRONG ? 'strong' : 'kv'}@example.com`;
    const first = await ok('create', { n: 1 }, { subject: user });
    const second = await ok('create', { n: 2 }, { subject: user });
    const listed = await ok('subjects.list', user);
    assert.deepEqual(listed.map((s) => s.handle), [second.handle, first.handle]);
    assert.deepEqual([first.handle, second.handle], [handleOf(first.id), handleOf(second.id)]);
    assert.deepEqual(Object.keys(listed[0]), ['handle', 'createdAt', 'updatedAt', 'expiresAt', 'lastSeenAt', 'authenticatedAt', 'authLevel', 'bound']);
    assert.equal(await ok('subjects.revoke', user, { except: second.id }), 1);
    assert.equal(await ok('get', first.id), null);
    assert.notEqual(await ok('get', second.id), null);
    const third = await ok('create', { n: 3 }, { subject: user });
    assert.equal(await ok('subjects.revokeOne', user, third.handle), true);
    assert.equal(await ok('subjects.revokeOne', user, third.handle), false, 'once');
    assert.equal(await ok('get', third.id), null);
    assert.equal(await ok('subjects.revoke', user), 1);
    assert.deepEqual(await ok('subjects.list', user), []);
    const bad = await error('subjects.revoke', user, { except: 'nope' });
    assert.equal(bad.code, 'invalid_session_id');
  });

  test('devices: label, agent and ip on create, current on list, revokeBefore', async () => {
    const user = `devices-${STRONG ? 'strong' : 'kv'}@example.com`;
    const phone = await ok('create', { n: 1 }, { subject: user, label: 'Ada’s phone', agent: 'Mobile Safari/604.1', ip: '2001:DB8::1' });
    await new Promise((r) => setTimeout(r, 5));
    const laptop = await ok('create', { n: 2 }, { subject: user, label: 'Firefox on Linux' });
    const listed = await ok('subjects.list', user, { current: laptop.id });
    assert.deepEqual(listed.map((s) => [s.handle, s.label, s.agent, s.ip, s.current]), [
      [laptop.handle, 'Firefox on Linux', undefined, undefined, true],
      [phone.handle, 'Ada’s phone', 'Mobile Safari/604.1', '2001:db8::1', false],
    ]);
    const refused = await error('create', {}, { label: 'no subject' });
    assert.deepEqual([refused.status, refused.code], [400, 'invalid_device']);
    const badIp = await error('create', {}, { subject: user, ip: '999.1.1.1' });
    assert.equal(badIp.code, 'invalid_device');
    const before = listed[0].createdAt;
    assert.equal(await ok('subjects.revokeBefore', user, before), 1, 'the phone, created before the laptop');
    assert.equal(await ok('get', phone.id), null);
    assert.notEqual(await ok('get', laptop.id), null);
    assert.equal(await ok('subjects.revokeBefore', user, '2999-01-01T00:00:00Z', { except: laptop.id }), 0);
    const badTime = await error('subjects.revokeBefore', user, 'yesterday');
    assert.deepEqual([badTime.status, badTime.code], [400, 'invalid_before']);
    assert.equal(await ok('subjects.revoke', user, { before: '2999-01-01T00:00:00Z' }), 1);
  });
});

describe('from Node, with a URL and a token', () => {
  const TOKEN = 'client-token-0123456789';
  let worker;
  let createSessionClient;
  before(async () => {
    // The client as published: compiled to client/dist.
    execFileSync(join(ROOT, 'client/node_modules/.bin/tsc'), ['--project', join(ROOT, 'client/tsconfig.build.json')]);
    ({ createSessionClient } = await import(join(ROOT, 'client/dist/index.js')));
    worker = await startWorker({ vars: { API_TOKEN: TOKEN } });
  });
  after(async () => { await worker?.stop(); });

  test('the token is sent, and a wrong one is a 401 SessionStateError', async () => {
    const sessions = createSessionClient({ baseUrl: `${worker.url}/`, token: TOKEN });
    const { id } = await sessions.create({ from: 'node' });
    assert.deepEqual((await sessions.get(id)).data, { from: 'node' });
    const intruder = createSessionClient({ baseUrl: worker.url, token: 'wrong' });
    await assert.rejects(intruder.get(id), (err) => err.name === 'SessionStateError' && err.status === 401 && err.code === 'unauthorized' && !err.retryable);
  });

  test('retryable failures say so, with Retry-After', async () => {
    // A store failure cannot be caused locally: a fetch that answers as the service does.
    const busy = async () => new Response(JSON.stringify({ type: 'urn:session-state:problem:store_busy', title: 'Too Many Requests', status: 429, detail: 'busy', code: 'store_busy' }), {
      status: 429, headers: { 'content-type': 'application/problem+json', 'retry-after': '1' },
    });
    const sessions = createSessionClient({ baseUrl: worker.url, fetch: busy });
    await assert.rejects(sessions.touch(MISSING), (err) => err.code === 'store_busy' && err.retryable && err.retryAfter === 1);
  });
});
