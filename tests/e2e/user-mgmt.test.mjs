// The main caller: a user-mgmt-like Worker with a service binding `sessionService` to
// session-state, both in one `wrangler dev`. Its old hand-written calls keep working; its new
// "devices" routes use the typed client.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { HANDLE, UUID_V4, handleOf, startWorker } from './harness.mjs';

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
  assert.deepEqual(devices.sessions.map((s) => s.handle), [handleOf(second), handleOf(first)], 'both, newest first');
  for (const session of devices.sessions) {
    assert.match(session.handle, HANDLE);
    assert.equal(session.id, undefined, 'no device sees another one\'s id');
  }

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

test('sign out one device by its handle; a handle of another user\'s session signs out nothing', async () => {
  const login = async (user) => {
    const response = await fetch(`${worker.url}/login`, {
      method: 'POST', body: JSON.stringify({ Username: user, FirstName: 'A', LastName: 'B' }),
    });
    return (await response.json()).sessionId;
  };
  const [laptop, phone, other] = [await login('linus@example.com'), await login('linus@example.com'), await login('mary@example.com')];
  const signOut = async (user, handle) =>
    (await fetch(`${worker.url}/logout-device?user=${user}&handle=${handle}`)).json();
  assert.deepEqual(await signOut('linus@example.com', handleOf(other)), { revoked: false });
  assert.equal((await (await fetch(`${worker.url}/me?session=${other}`)).json()).status, 200, 'mary stays');
  assert.deepEqual(await signOut('linus@example.com', handleOf(phone)), { revoked: true });
  assert.equal((await (await fetch(`${worker.url}/me?session=${phone}`)).json()).status, 404);
  assert.equal((await (await fetch(`${worker.url}/me?session=${laptop}`)).json()).status, 200);
  const devices = await (await fetch(`${worker.url}/devices?user=linus@example.com`)).json();
  assert.deepEqual(devices.sessions.map((s) => s.handle), [handleOf(laptop)]);
});
