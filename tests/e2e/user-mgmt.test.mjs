// The main caller: a user-mgmt-like Worker with a service binding `sessionService` to
// session-state, both in one `wrangler dev`. Its old hand-written calls keep working; its new
// "devices" routes use the typed client.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { HANDLE, STRONG, UUID_V4, handleOf, sleep, startWorker } from './harness.mjs';

let worker;
before(async () => {
  worker = await startWorker({
    configs: ['tests/fixtures/user-mgmt/wrangler.toml', 'wrangler.toml'],
    // user-mgmt stores `username` in its sessions: with this, each user's sessions are listed.
    // A short renewal window, so that a replay after it is seen within the test.
    vars: { SESSION_SUBJECT_FIELD: 'username', SESSION_RENEWAL_GRACE_SECONDS: '2' },
    // Lifecycle events to the queue user-mgmt consumes (its "your devices" history).
    extra: '[[queues.producers]]\nbinding = "SESSION_EVENTS"\nqueue = "session-events"',
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

test('a login passes on the device; "your devices" shows it, marks the current one, and signs another out', async () => {
  const login = async (agent, ip) => {
    const response = await fetch(`${worker.url}/login-device`, {
      method: 'POST',
      headers: { 'user-agent': agent, 'cf-connecting-ip': ip },
      body: JSON.stringify({ Username: 'hedy@example.com', FirstName: 'Hedy', LastName: 'Lamarr' }),
    });
    assert.equal(response.status, 200);
    return response.json();
  };
  const laptop = await login('Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0', '203.0.113.9');
  const phone = await login('Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) Version/18.1 Mobile/15E148 Safari/604.1', '2001:db8::9');
  assert.equal(laptop.handle, handleOf(laptop.sessionId));
  const { sessions } = await (await fetch(`${worker.url}/devices?user=hedy@example.com&session=${laptop.sessionId}`)).json();
  assert.deepEqual(sessions.map((s) => [s.handle, s.label, s.current]), [
    [phone.handle, 'Safari on iPhone', false],
    [laptop.handle, 'Firefox on Linux', true],
  ]);
  assert.ok(sessions[1].agent.includes('Firefox/133.0'));
  const page = await fetch(`${worker.url}/devices?user=hedy@example.com&session=${laptop.sessionId}`, { headers: { accept: 'text/html' } });
  const html = await page.text();
  assert.match(html, /Firefox on Linux<\/strong> <em>\(this device\)<\/em>/);
  assert.match(html, /Last seen <time datetime="[^"]+Z">/);
  const signOut = /<a href="([^"]+)">Sign out this device<\/a>/.exec(html);
  assert.ok(signOut, html);
  assert.ok(signOut[1].includes(phone.handle), 'only the other device has the link');
  assert.deepEqual(await (await fetch(`${worker.url}${signOut[1].replaceAll('&amp;', '&')}`)).json(), { revoked: true });
  assert.equal((await (await fetch(`${worker.url}/me?session=${phone.sessionId}`)).json()).status, 404);
  assert.equal((await (await fetch(`${worker.url}/me?session=${laptop.sessionId}`)).json()).status, 200);
});

test('"your devices" shows the devices signed out and timed out, from session-state\'s events', async () => {
  const login = async (agent, query = '') => {
    const response = await fetch(`${worker.url}/login-device${query}`, {
      method: 'POST',
      headers: { 'user-agent': agent },
      body: JSON.stringify({ Username: 'katherine@example.com', FirstName: 'Katherine', LastName: 'Johnson' }),
    });
    assert.equal(response.status, 200);
    return response.json();
  };
  const laptop = await login('Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0');
  const phone = await login('Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) Version/18.1 Mobile/15E148 Safari/604.1');
  const tablet = await login('Mozilla/5.0 (Linux; Android 15) Chrome/131.0 Safari/537.36', '?ttl=1');
  const signOut = await fetch(`${worker.url}/logout-device?user=katherine@example.com&handle=${phone.handle}`);
  assert.deepEqual(await signOut.json(), { revoked: true });
  await sleep(1500);
  // KV mode learns of an expiry only when a read meets it; strong mode's alarm tells by itself.
  if (!STRONG) assert.equal((await (await fetch(`${worker.url}/me?session=${tablet.sessionId}`)).json()).status, 404);
  let devices;
  for (let tries = 0; tries < 50; tries += 1) {
    devices = await (await fetch(`${worker.url}/devices?user=katherine@example.com&session=${laptop.sessionId}`)).json();
    if (devices.history.length === 2) break;
    await sleep(200);
  }
  assert.deepEqual(devices.sessions.map((s) => s.handle), [laptop.handle]);
  const ended = Object.fromEntries(devices.history.map((e) => [e.handle, [e.label, e.what, e.reason]]));
  assert.deepEqual(ended, {
    [phone.handle]: ['Safari on iPhone', 'revoked', 'one'],
    [tablet.handle]: ['Chrome on Android', 'expired', 'idle'],
  });
  const page = await fetch(`${worker.url}/devices?user=katherine@example.com&session=${laptop.sessionId}`, { headers: { accept: 'text/html' } });
  const html = await page.text();
  assert.match(html, /<h2>History<\/h2>/);
  assert.match(html, /Safari on iPhone<\/strong> signed out from another device <time/);
  assert.match(html, /Chrome on Android<\/strong> timed out after inactivity <time/);
});

test('a page renews its id while its other requests run; a stolen id replayed after the window ends the session', async () => {
  const login = await fetch(`${worker.url}/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ Username: 'renee', FirstName: 'Renée', LastName: 'R' }),
  });
  const { sessionId: old } = await login.json();
  const me = (id) => fetch(`${worker.url}/me?session=${id}`).then((r) => r.json());
  const parallel = Array.from({ length: 10 }, () => me(old));
  const renewal = fetch(`${worker.url}/renew?session=${old}`).then((r) => r.json());
  const [pages, renewed] = await Promise.all([Promise.all(parallel), renewal]);
  assert.equal(renewed.status, 201);
  assert.match(renewed.sessionId, UUID_V4);
  for (const page of pages) assert.deepEqual([page.status, page.session?.username], [200, 'renee'], 'no request logged out');
  assert.equal((await me(renewed.sessionId)).status, 200);
  assert.equal((await me(old)).status, 200, 'the old id still works within the window');
  await sleep(2300);
  assert.equal((await me(renewed.sessionId)).status, 200, 'the new id works on its own');
  // Whoever stole the old id replays it: the session ends for both.
  assert.equal((await me(old)).status, 404);
  assert.equal((await me(renewed.sessionId)).status, 404, 'the session the stolen id was renewed into ended');
});

test('changing the password demands a login within the window: an older one confirms the password again, under a new id', async () => {
  const login = await fetch(`${worker.url}/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ Username: 'carol', FirstName: 'Carol', LastName: 'C' }),
  });
  const { sessionId } = await login.json();
  const change = (id, within) => fetch(`${worker.url}/change-password?session=${id}${within ? `&within=${within}` : ''}`, { method: 'POST' }).then((r) => r.json());
  const fresh = await change(sessionId);
  assert.equal(fresh.status, 200, 'logged in within the last 5 minutes');
  await sleep(2100);
  const stale = await change(sessionId, 1);
  assert.deepEqual([stale.status, stale.code], [403, 'reauthentication_required']);
  assert.match(stale.authenticatedAt, /^\d{4}-\d\d-\d\dT/);
  const me = await (await fetch(`${worker.url}/me?session=${sessionId}`)).json();
  assert.equal(me.session.passwordChangedAt, fresh.changed, 'the refused change changed nothing');
  const confirmed = await (await fetch(`${worker.url}/confirm-password?session=${sessionId}`, { method: 'POST' })).json();
  assert.equal(confirmed.status, 201);
  assert.notEqual(confirmed.sessionId, sessionId);
  assert.ok(Date.parse(confirmed.authenticatedAt) > Date.parse(stale.authenticatedAt));
  const changed = await change(confirmed.sessionId, 1);
  assert.equal(changed.status, 200, 'a fresh authentication passes');
  assert.equal((await (await fetch(`${worker.url}/me?session=${sessionId}`)).json()).status, 404, 'the old id ended');
});
