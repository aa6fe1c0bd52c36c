// "Your devices", end to end, on either backend: device info given at login and listed with
// last use and the caller's own session marked; revoking one, or every session created before a
// time; malformed device info refused with nothing stored; none of it in a dump of the store.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { JSON_HEADERS, STRONG, expectProblem, handleOf, sleep, startWorker } from './harness.mjs';

const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const path = (subject) => `/subjects/${encodeURIComponent(subject)}/sessions`;
const DEVICES = [
  { label: 'Firefox on Linux', agent: 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0', ip: '203.0.113.7' },
  { label: 'Ada’s phone', agent: 'Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) Mobile/15E148', ip: '2001:db8::17' },
  { label: 'Work laptop', agent: 'curl/8.11.0 devices-e2e', ip: '198.51.100.23' },
];

describe('devices', () => {
  let worker;
  let call;
  before(async () => {
    worker = await startWorker({ vars: { MAX_SESSIONS_PER_SUBJECT: '1000', SESSION_TOUCH_INTERVAL_SECONDS: '1' } });
    call = (route, init) => fetch(`${worker.url}${route}`, init);
  });
  after(async () => { await worker?.stop(); });

  const deviceHeaders = (device = {}) => Object.fromEntries(
    [['session-label', device.label], ['session-agent', device.agent], ['session-ip', device.ip]]
      .filter(([, value]) => value !== undefined)
      .map(([name, value]) => [name, encodeURIComponent(value)]),
  );
  const login = (subject, device, data = { user: subject }) => call('/create', {
    method: 'POST',
    headers: { ...JSON_HEADERS, ...(subject ? { 'session-subject': encodeURIComponent(subject) } : {}), ...deviceHeaders(device) },
    body: JSON.stringify(data),
  });
  const created = async (subject, device) => {
    const response = await login(subject, device);
    assert.equal(response.status, 201, await response.clone().text());
    return response.text();
  };
  const list = async (subject, current) => {
    const response = await call(path(subject), { headers: current ? { 'session-id': current } : {} });
    assert.equal(response.status, 200);
    return (await response.json()).sessions;
  };
  const status = async (id) => (await call(`/get/${id}`)).status;
  /** One login per device in DEVICES, a few ms apart so that their creation times differ. */
  const threeLogins = async (subject) => {
    const ids = [];
    for (const device of DEVICES) {
      ids.push(await created(subject, device));
      await sleep(5);
    }
    return ids;
  };

  test('three logins list their devices, newest first, the caller\'s own marked current', async () => {
    const subject = 'three@example.com';
    const ids = await threeLogins(subject);
    const sessions = await list(subject, ids[1]);
    assert.deepEqual(sessions.map((s) => s.handle), ids.map(handleOf).reverse());
    for (const [session, device, id] of [...sessions].reverse().map((s, i) => [s, DEVICES[i], ids[i]])) {
      assert.deepEqual(Object.keys(session), ['handle', 'createdAt', 'updatedAt', 'expiresAt', 'lastSeenAt', 'authenticatedAt', 'authLevel', 'bound', 'label', 'agent', 'ip', 'current']);
      assert.equal(session.label, device.label);
      assert.equal(session.agent, device.agent);
      assert.equal(session.ip, device.ip);
      assert.equal(session.current, id === ids[1]);
      for (const key of ['createdAt', 'updatedAt', 'expiresAt', 'lastSeenAt', 'authenticatedAt']) assert.match(session[key], RFC3339);
    }
    const unmarked = await list(subject);
    assert.ok(unmarked.every((s) => !('current' in s)), 'no Session-Id, no current field');
    const foreign = await created('someone-else@example.com', DEVICES[0]);
    assert.ok((await list(subject, foreign)).every((s) => s.current === false), 'another subject\'s session marks nothing');
    assert.ok((await list(subject, 'not-an-id')).every((s) => s.current === false), 'nor does a malformed one');
  });

  test('a write moves lastSeenAt; rotation keeps device info; PUT and PATCH leave it', async () => {
    const subject = 'seen@example.com';
    const id = await created(subject, DEVICES[1]);
    const [first] = await list(subject);
    assert.equal(first.lastSeenAt, first.createdAt);
    await sleep(1100);
    await call(`/add/${id}`, { method: 'PATCH', headers: JSON_HEADERS, body: '{"label":"not a device label"}' });
    await call(`/update/${id}`, { method: 'PUT', headers: { ...JSON_HEADERS, ...deviceHeaders(DEVICES[2]) }, body: '{"n":2}' });
    const [written] = await list(subject);
    assert.ok(written.lastSeenAt > first.lastSeenAt, `${written.lastSeenAt} after ${first.lastSeenAt}`);
    assert.equal(written.lastSeenAt, written.updatedAt);
    assert.equal(written.label, DEVICES[1].label, 'PUT does not change device info');
    const rotated = await (await call(`/rotate/${id}`, { method: 'POST' })).text();
    const [after] = await list(subject, rotated);
    assert.equal(after.handle, handleOf(rotated));
    assert.deepEqual([after.label, after.agent, after.ip, after.current], [DEVICES[1].label, DEVICES[1].agent, DEVICES[1].ip, true]);
    assert.equal(after.createdAt, first.createdAt);
  });

  test('revoke one by handle, then every session created before a time', async () => {
    const subject = 'revoke@example.com';
    const ids = await threeLogins(subject);
    const one = await call(`${path(subject)}/${handleOf(ids[1])}`, { method: 'DELETE' });
    assert.equal(one.status, 200);
    assert.deepEqual(await one.json(), { revoked: 1 });
    assert.deepEqual(await Promise.all(ids.map(status)), [200, 404, 200]);
    const fourth = await created(subject, DEVICES[0]);
    const third = (await list(subject)).find((s) => s.handle === handleOf(ids[2]));
    const before = encodeURIComponent(third.createdAt);
    const kept = await call(`${path(subject)}?before=${before}&except=${ids[0]}`, { method: 'DELETE' });
    assert.deepEqual(await kept.json(), { revoked: 0 }, 'the first is excepted, the third is not before itself');
    const revoked = await call(`${path(subject)}?before=${before}`, { method: 'DELETE' });
    assert.equal(revoked.status, 200);
    assert.deepEqual(await revoked.json(), { revoked: 1 });
    assert.deepEqual(await Promise.all([...ids, fourth].map(status)), [404, 404, 200, 200]);
    assert.deepEqual((await list(subject)).map((s) => s.handle), [fourth, ids[2]].map(handleOf));
    const offset = await call(`${path(subject)}?before=${encodeURIComponent('2000-01-01T01:00:00+01:00')}`, { method: 'DELETE' });
    assert.deepEqual(await offset.json(), { revoked: 0 });
    const ancient = await call(`${path(subject)}?before=${encodeURIComponent('0245-04-10T14:09:25.6-17:10')}`, { method: 'DELETE' });
    assert.deepEqual(await ancient.json(), { revoked: 0 }, 'a valid time before 1970 ends nothing');
    for (const bad of ['yesterday', '2026-13-01T00:00:00Z', '1764100824', '2026-12-01T09:30:00', '']) {
      const response = await call(`${path(subject)}?before=${encodeURIComponent(bad)}`, { method: 'DELETE' });
      await expectProblem(assert, response, 400, 'invalid_before');
    }
    assert.equal((await list(subject)).length, 2, 'a refused revocation ends nothing');
  });

  test('malformed device info, or device info without a subject, is refused and nothing stored', async () => {
    const subject = 'refused@example.com';
    const before = (await worker.kvList()).length;
    const cases = [
      [subject, { ip: '999.1.1.1' }],
      [subject, { ip: 'localhost' }],
      [subject, { label: 'x'.repeat(129) }],
      [subject, { label: 'é'.repeat(65) }],
      [subject, { label: 'tab\there' }],
      [subject, { agent: 'a'.repeat(513) }],
      [subject, { label: '' }],
      [undefined, { label: 'Firefox on Linux' }],
      [undefined, { ip: '203.0.113.7' }],
    ];
    for (const [who, device] of cases) {
      const response = await login(who, device);
      await expectProblem(assert, response, 400, 'invalid_device');
    }
    assert.deepEqual(await list(subject), []);
    assert.equal((await worker.kvList()).length, before, 'no KV entry was written');
    const edge = await created(subject, { label: 'x'.repeat(128), agent: 'a'.repeat(512), ip: '::ffff:192.0.2.1' });
    const [listed] = await list(subject);
    assert.equal(listed.handle, handleOf(edge));
    assert.deepEqual([listed.label.length, listed.agent.length, listed.ip], [128, 512, '::ffff:192.0.2.1']);
  });

  test('a dump of KV and of the objects holds no label, agent or address', async () => {
    const subject = 'dump-devices@example.com';
    const secret = { label: 'L4bel-c4n4ry phone', agent: 'Ag3nt-c4n4ry/1.0', ip: '192.0.2.201' };
    const id = await created(subject, secret);
    await call(`/rotate/${id}`, { method: 'POST' });
    await created(subject, { ...secret, ip: '2001:db8::c4:1' });
    assert.equal((await list(subject))[0].label, secret.label, 'listed in the clear to the caller');
    const dump = await worker.dump();
    for (const text of [secret.label, 'L4bel', 'c4n4ry', secret.agent, secret.ip, '2001:db8::c4:1', encodeURIComponent(secret.label)]) {
      assert.ok(!dump.includes(text), `${text} in the dump:\n${dump}`);
    }
    const logs = (await worker.consoleLines()).join('\n');
    assert.ok(!logs.includes('c4n4ry') && !logs.includes(secret.ip), 'nor in the log');
  });

  test('300 sessions of one subject are listed in one answer', { timeout: 300_000 }, async () => {
    const subject = 'many@example.com';
    const ids = [];
    for (let batch = 0; batch < 30; batch += 1) {
      ids.push(...await Promise.all(Array.from({ length: 10 }, (_, n) => created(subject, { label: `device ${batch * 10 + n}` }))));
    }
    const started = performance.now();
    const sessions = await list(subject, ids[7]);
    const ms = performance.now() - started;
    assert.equal(sessions.length, 300);
    assert.deepEqual(new Set(sessions.map((s) => s.handle)), new Set(ids.map(handleOf)));
    assert.equal(sessions.filter((s) => s.current).length, 1);
    assert.equal(sessions.find((s) => s.current).handle, handleOf(ids[7]));
    assert.ok(sessions.every((s) => s.label.startsWith('device ')));
    console.log(`listing 300 sessions (${STRONG ? 'strong mode' : 'KV'}): ${ms.toFixed(0)} ms`);
  });
});
