// What only strong mode promises: storage that does not grow with dead sessions, and a switch from
// KV that logs no one out. Runs in the durable_object pass; the KV pass skips it.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { JSON_HEADERS, STRONG, expectProblem, sleep, startWorker } from './harness.mjs';

/**
 * What the local Durable Object storage holds: tables and rows across every object's SQLite file,
 * and pending alarms (read with Python's sqlite3, as the files are SQLite databases).
 */
async function storedRows(state) {
  const root = join(state, 'v3/do');
  const dirs = await readdir(root).catch(() => []);
  const files = [];
  for (const dir of dirs) {
    for (const file of await readdir(join(root, dir))) {
      if (file.endsWith('.sqlite')) files.push(join(root, dir, file));
    }
  }
  const script = `
import json, sqlite3, sys
tables = rows = alarms = 0
for path in sys.argv[1:]:
    db = sqlite3.connect(path)
    for (name,) in db.execute("select name from sqlite_master where type = 'table'"):
        count = db.execute(f'select count(*) from "{name}"').fetchone()[0]
        if name == '_cf_ALARM':
            alarms += count
        elif path.endswith('metadata.sqlite') or name == '__miniflare_do_name':
            # The emulator's record of the name an object was reached by, written whenever one
            # is instantiated: production keeps nothing for an object that stores nothing.
            continue
        else:
            tables += 1
            rows += count
print(json.dumps({"tables": tables, "rows": rows, "alarms": alarms}))`;
  const { stdout } = await promisify(execFile)('python3', ['-c', script, ...files]);
  return JSON.parse(stdout);
}

describe('strong mode', { skip: !STRONG && 'runs with SESSION_BACKEND=durable_object' }, () => {
  describe('expiry', () => {
    let worker;
    // 2 s idle timeout, 5 s lifetime.
    before(async () => { worker = await startWorker({ env: 'test' }); });
    after(async () => { await worker?.stop(); });

    test('an alarm removes an expired session: storage does not grow with dead sessions', async () => {
      const ids = [];
      for (let i = 0; i < 3; i += 1) {
        const response = await fetch(`${worker.url}/create`, { method: 'POST', headers: JSON_HEADERS, body: JSON.stringify({ i }) });
        ids.push(await response.text());
      }
      const live = await storedRows(worker.state);
      assert.ok(live.rows >= 3 && live.alarms === 3, JSON.stringify(live));
      await sleep(2600); // past the idle timeout, and the alarm
      const dead = await storedRows(worker.state);
      assert.deepEqual(dead, { tables: 0, rows: 0, alarms: 0 }, 'nothing stored, nothing scheduled');
      for (const id of ids) await expectProblem(assert, await fetch(`${worker.url}/get/${id}`), 404, 'session_not_found');
      assert.deepEqual(await storedRows(worker.state), dead, 'and reading them back creates nothing');
    });
  });

  describe('switching from KV', () => {
    let worker;
    before(async () => { worker = await startWorker(); });
    after(async () => { await worker?.stop(); });

    test('a session written by KV mode moves into its object on first use; its KV copy goes', async () => {
      const id = 'c1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d';
      const now = Date.now();
      await worker.kvPut(id, '{"from":"kv","n":1}', {
        createdAt: now - 60_000, updatedAt: now - 1000, expiresAt: now + 600_000, version: 3,
      });
      let response = await fetch(`${worker.url}/get/${id}`);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get('etag'), '"3"', 'its version carries over');
      assert.deepEqual(await response.json(), { from: 'kv', n: 1 });
      assert.equal(await worker.kvGet(id), null, 'removed from KV');
      response = await fetch(`${worker.url}/add/${id}`, { method: 'PATCH', headers: JSON_HEADERS, body: '{"n":2}' });
      assert.equal(response.headers.get('etag'), '"4"');
      assert.deepEqual(await response.json(), { from: 'kv', n: 2 });
      assert.equal((await fetch(`${worker.url}/delete/${id}`, { method: 'DELETE' })).status, 204);
      // A stale KV copy (KV can serve one elsewhere for about a minute) never brings it back.
      await worker.kvPut(id, '{"from":"kv","n":1}', {
        createdAt: now - 60_000, updatedAt: now - 1000, expiresAt: now + 600_000, version: 3,
      });
      await expectProblem(assert, await fetch(`${worker.url}/get/${id}`), 404, 'session_not_found');
    });

    test('a session of the old TypeScript worker moves in too, and logs no one out', async () => {
      const id = 'd1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d';
      await worker.kvPut(id, JSON.stringify({ username: 'old' }));
      const response = await fetch(`${worker.url}/get/${id}`);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get('etag'), '"0"');
      assert.deepEqual(await response.json(), { username: 'old' });
      assert.equal(await worker.kvGet(id), null);
      const expires = Date.parse(response.headers.get('session-expires')) - Date.now();
      assert.ok(expires > 1_700_000 && expires <= 1_800_000, `it now expires like any session: ${expires} ms`);
    });
  });

  describe('the largest session', () => {
    // The most strong mode accepts (a SQLite row holds 2 MB), with a subject in the row too.
    const LIMIT = 1_998_000;
    let worker;
    before(async () => { worker = await startWorker({ vars: { MAX_SESSION_BYTES: String(LIMIT) } }); });
    after(async () => { await worker?.stop(); });

    test('a session of MAX_SESSION_BYTES is stored, merged and read back whole; one byte more is 413', async () => {
      const body = (bytes, key = 'pad') => JSON.stringify({ [key]: 'x'.repeat(bytes - key.length - 7) });
      assert.equal(body(LIMIT).length, LIMIT);
      const created = await fetch(`${worker.url}/create`, {
        method: 'POST', headers: { ...JSON_HEADERS, 'session-subject': 'large@example.com' }, body: body(LIMIT),
      });
      assert.equal(created.status, 201, await created.clone().text());
      const id = await created.text();
      // The merged session is exactly at the limit: `pad` shrinks by what `k` adds.
      const patch = JSON.stringify({ pad: 'y'.repeat(LIMIT - 16), k: 1 });
      assert.equal(patch.length, LIMIT);
      const merged = await fetch(`${worker.url}/add/${id}`, { method: 'PATCH', headers: JSON_HEADERS, body: patch });
      assert.equal(merged.status, 200, await merged.clone().text());
      const read = await fetch(`${worker.url}/get/${id}`);
      const text = await read.text();
      assert.equal(text.length, LIMIT);
      assert.equal(text, patch);
      await expectProblem(assert, await fetch(`${worker.url}/update/${id}`, {
        method: 'PUT', headers: JSON_HEADERS, body: body(LIMIT + 1),
      }), 413, 'payload_too_large');
    });
  });
});
