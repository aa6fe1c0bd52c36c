// The main caller, unchanged: a user-mgmt-like Worker with a service binding `sessionService`
// to session-state, both in one `wrangler dev`.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { STRONG, UUID_V4, startWorker } from './harness.mjs';

let worker;
before(async () => {
  worker = await startWorker({
    configs: ['tests/fixtures/user-mgmt/wrangler.toml', 'wrangler.toml'],
    env: STRONG ? 'strong' : undefined,
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
