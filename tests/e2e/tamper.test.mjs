// What a writer of the store can and cannot do to a session, on either backend: the lifecycle
// kept beside the sealed value (KV metadata, an object's columns) can be changed, but a session
// never lives longer, moves to another subject or reads as the old worker's for it; each such
// record is 404 with an integrity line in the log, and is served again once put back as it was.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { JSON_HEADERS, STRONG, expectProblem, handleOf, startWorker, storageKeyOf } from './harness.mjs';

const SUBJECT = 'tamper@example.com';
const OTHER_SUBJECT_HASH = 'ab'.repeat(32);
const FAR = 4_102_444_800_000; // 2100-01-01

/** Runs SQL statements on the object of `key` (its SQLite file, found by the key its row holds). */
async function onObject(state, key, sql) {
  const root = join(state, 'v3/do');
  const files = [];
  for (const dir of await readdir(root)) {
    for (const file of await readdir(join(root, dir))) if (file.endsWith('.sqlite')) files.push(join(root, dir, file));
  }
  const script = `
import sqlite3, sys
key, sql = sys.argv[1], sys.argv[2]
found = 0
for path in sys.argv[3:]:
    db = sqlite3.connect(path, timeout=10)
    tables = [n for (n,) in db.execute("select name from sqlite_master where type = 'table'")]
    if 'record' in tables and db.execute('select count(*) from record where key = ?', (key,)).fetchone()[0]:
        if sql:
            db.executescript(sql)
            db.commit()
        found += 1
    db.close()
print(found)`;
  const { stdout } = await promisify(execFile)('python3', ['-c', script, key, sql, ...files]);
  assert.equal(stdout.trim(), '1', `the object of ${key}`);
}

describe('a writer of the store', () => {
  let worker;
  const call = (route, init) => fetch(`${worker.url}${route}`, init);
  before(async () => { worker = await startWorker(); });
  after(async () => { await worker?.stop(); });

  const create = async () => {
    const headers = { ...JSON_HEADERS, 'session-subject': SUBJECT };
    const response = await call('/create', { method: 'POST', headers, body: '{"role":"user"}' });
    assert.equal(response.status, 201);
    return response.text();
  };

  /** Asserts that `id` reads as not found and the log names it by its first 8 characters only. */
  const assertRefused = async (id, why) => {
    await expectProblem(assert, await call(`/get/${id}`), 404, 'session_not_found');
    const touched = await call(`/touch/${id}`, { method: 'POST' });
    await expectProblem(assert, touched, 404, 'session_not_found');
    const lines = await worker.consoleLines();
    const integrity = lines.filter((line) => line.includes(`integrity: session ${id.slice(0, 8)}`));
    assert.ok(integrity.length > 0, `${why}: no integrity line in\n${lines.join('\n')}`);
    assert.ok(!lines.join('\n').includes(id), 'never the whole id');
  };

  test('changing the lifecycle beside the seal makes a session 404, never longer-lived or another subject\'s', async () => {
    const id = await create();
    const key = storageKeyOf(id);
    if (STRONG) {
      for (const [why, sql] of [
        ['a later expiry', `update record set expires_at = ${FAR}`],
        ['a later creation', 'update record set created_at = created_at + 3600000'],
        ['another subject', `update record set subject = '${OTHER_SUBJECT_HASH}'`],
        ['no subject', 'update record set subject = null'],
      ]) {
        await onObject(worker.state, key, `create table saved as select * from record; ${sql}`);
        await assertRefused(id, why);
        await onObject(worker.state, key, 'delete from record; insert into record select * from saved; drop table saved');
      }
    } else {
      const value = await worker.kvBytes(key);
      const { metadata } = (await worker.kvList()).find((entry) => entry.name === key);
      const meta = JSON.parse(metadata);
      for (const [why, forged] of [
        ['a later expiry', { ...meta, expiresAt: FAR }],
        ['a later creation', { ...meta, createdAt: meta.createdAt + 3_600_000 }],
        ['another subject', { ...meta, sub: OTHER_SUBJECT_HASH }],
        ['no lifecycle: not the old worker\'s', null],
      ]) {
        await worker.kvPutBytes(key, value, forged === null ? undefined : JSON.stringify(forged));
        await assertRefused(id, why);
      }
      await worker.kvPutBytes(key, value, metadata);
    }
    const read = await call(`/get/${id}`);
    assert.equal(read.status, 200, 'as it was, it is served');
    assert.deepEqual(await read.json(), { role: 'user' });
  });

  // KV's limit, stated in docs/lifecycle.md: a location that still holds a revoked session in its cache
  // (up to about 60 s) can write it back. Locally there is one location, so the cache's copy is
  // put back by hand; the write then made through the API must list it again.
  test('a revoked session written back is listed again, and the next revocation ends it', { skip: STRONG && 'KV mode' }, async () => {
    const id = await create();
    const key = storageKeyOf(id);
    const value = await worker.kvBytes(key);
    const { metadata } = (await worker.kvList()).find((entry) => entry.name === key);
    const list = `/subjects/${encodeURIComponent(SUBJECT)}/sessions`;
    assert.ok((await (await call(list, { method: 'DELETE' })).json()).revoked >= 1);
    await expectProblem(assert, await call(`/get/${id}`), 404, 'session_not_found');
    await worker.kvPutBytes(key, value, metadata);
    const written = await call(`/add/${id}`, { method: 'PATCH', headers: JSON_HEADERS, body: '{"back":true}' });
    assert.equal(written.status, 200);
    const listed = (await (await call(list)).json()).sessions.map((s) => s.handle);
    assert.deepEqual(listed, [handleOf(id)], 'listed again');
    assert.deepEqual(await (await call(list, { method: 'DELETE' })).json(), { revoked: 1 });
    await expectProblem(assert, await call(`/get/${id}`), 404, 'session_not_found');
  });

  // Strong mode tells an object which session a revocation keeps in an internal header; a caller
  // sending that header itself speaks for nobody, on either backend.
  test('a caller cannot keep a session from a revocation by sending an internal header', async () => {
    const id = await create();
    const list = `/subjects/${encodeURIComponent(SUBJECT)}/sessions`;
    const headers = { 'session-state-except': handleOf(id), 'session-state-subject': 'ab'.repeat(32) };
    const revoked = await (await call(list, { method: 'DELETE', headers })).json();
    assert.ok(revoked.revoked >= 1, JSON.stringify(revoked));
    await expectProblem(assert, await call(`/get/${id}`), 404, 'session_not_found');
  });

  test('a record of the old worker is served only under a bare id, never under a storage key', { skip: STRONG && 'KV mode' }, async () => {
    const id = await create();
    await worker.kvPut(storageKeyOf(id), '{"role":"admin"}');
    await assertRefused(id, 'plain data under the storage key');
  });
});
