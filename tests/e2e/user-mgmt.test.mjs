// The main caller: a user-mgmt-like Worker with a service binding `sessionService` to
// session-state, both in one `wrangler dev`. Its old hand-written calls keep working; its new
// "devices" routes use the typed client.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { UUID_V4, startWorker } from './harness.mjs';

let worker;
before(async () => {
  worker = await startWorker({
    configs: ['tests/fixtures/user-mgmt/wrangler.toml', 'wrangler.toml'],
    // user-mgmt stores `username` in its sessions: with this, each user's sessions are listed.
    vars: { SESSION_SUBJECT_FIELD: 'username' },
  });
});
after(async () => { await worker?.stop(); });

test('register/login, load, logout through the service binding', async () => {
  const login = await fetch(`${worker.url}/login`, {
    method: 'POST', body: JSON.stringify({ Username: 'ada', FirstName: 'Ada', LastName: 'Lovelace' }),
  });
  const { status, sessionId } = await login.json();
  assert.equal(status, 201);
  assert.match(sessionId, UUID_V4, 'response.text() is the bare id');

  const me = await (await fetch(`${worker.url}/me?session=${sessionId}`)).json();
  assert.deepEqual(me, { status: 200, session: { username: 'ada', firstName: 'Ada', lastName: 'Lovelace' } });

  const logout = await (await fetch(`${worker.url}/logout?session=${sessionId}`)).json();
  assert.equal(logout.status, 204);
  const gone = await (await fetch(`${worker.url}/me?session=${sessionId}`)).json();
  assert.deepEqual(gone, { status: 404, session: null });
});

test('log in twice, list both, sign out the other device, then everywhere', async () => {
  const login = async () => {
    const response = await fetch(`${worker.url}/login`, {
      method: 'POST', body: JSON.stringify({ Username: 'grace@example.com', FirstName: 'Grace', LastName: 'Hopper' }),
    });
    return (await response.json()).sessionId;
  };
  const first = await login();
  const second = await login();
  const devices = await (await fetch(`${worker.url}/devices?user=grace@example.com`)).json();
  assert.deepEqual(devices.sessions.map((s) => s.id), [second, first], 'both, newest first');

  const others = await (await fetch(`${worker.url}/logout-everywhere?user=grace@example.com&keep=${second}`)).json();
  assert.deepEqual(others, { revoked: 1 });
  assert.equal((await (await fetch(`${worker.url}/me?session=${first}`)).json()).status, 404);
  const kept = await (await fetch(`${worker.url}/me?session=${second}`)).json();
  assert.equal(kept.status, 200);
  assert.equal(kept.session.username, 'grace@example.com');

  const everywhere = await (await fetch(`${worker.url}/logout-everywhere?user=grace@example.com`)).json();
  assert.deepEqual(everywhere, { revoked: 1 });
  for (const id of [first, second]) {
    assert.equal((await (await fetch(`${worker.url}/me?session=${id}`)).json()).status, 404);
  }
  assert.deepEqual((await (await fetch(`${worker.url}/devices?user=grace@example.com`)).json()).sessions, []);
});
