// The floor of strong mode: a plain JavaScript Worker and a JavaScript Durable Object (SQLite
// storage) doing per route what session-state's strong mode does, with no validation, no routing
// library, no logging and no events. The Worker derives the session's storage key (SHA-256 of the
// id with its label), names the session's object by it and hands the request on with the id in a
// header; the object keeps the session in one row of the same `record` table, runs the same
// statements, sets its alarm at the session's expiry on every write, and seals as session-state
// seals (bench/sealing.js, through WebCrypto).
//
// Statements per route, as strong mode runs them (docs/operations.md, "Operations per call"):
// create = CREATE TABLE IF NOT EXISTS + INSERT (in a transaction), 1 alarm write;
// get, touch within the renewal interval = SELECT; add = SELECT + UPDATE ... WHERE version = ?
// RETURNING (in a transaction), 1 alarm write; an object's first request in memory asks
// sqlite_master once whether the table exists, and the object keeps the answer. The alarm
// deletes the session once it has expired.
import { DurableObject } from 'cloudflare:workers';
import { hex, keys, lifecycle, open, seal, storageKey } from './sealing.js';

const RECORD_SCHEMA = `CREATE TABLE IF NOT EXISTS record (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    key TEXT NOT NULL,
    sealed BLOB,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    version INTEGER NOT NULL,
    ttl INTEGER,
    subject TEXT,
    kv_deleted_at INTEGER,
    handle TEXT
)`;
const TABLES = "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name IN ('record', 'outbox')";
const COLUMNS = 'sealed, created_at, updated_at, expires_at, version, ttl, subject, kv_deleted_at, handle';
const INSERT = 'INSERT INTO record (one, handle, key, sealed, created_at, updated_at, expires_at, version, ttl, subject) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?)';
const UPDATE = `UPDATE record SET handle = ?, key = ?, sealed = ?, created_at = ?, updated_at = ?, expires_at = ?,
  version = ?, ttl = ?, subject = ? WHERE sealed IS NOT NULL AND version = ? RETURNING version`;

export class SessionObject extends DurableObject {
  /** Whether the record table exists: asked once, then kept, as strong mode keeps it. */
  #record;

  /** The session's row; null when there is none. */
  row() {
    this.#record ??= this.ctx.storage.sql.exec(TABLES).toArray().some((t) => t.name === 'record');
    if (!this.#record) return null;
    return this.ctx.storage.sql.exec(`SELECT ${COLUMNS} FROM record`).toArray()[0] ?? null;
  }

  async write(derived, query, meta, sealed, ...more) {
    const params = ['handle', derived.name, sealed, meta.createdAt, meta.updatedAt, meta.expiresAt, meta.version, null, null, ...more];
    const written = this.ctx.storage.transactionSync(() => {
      const cursor = this.ctx.storage.sql.exec(query, ...params);
      cursor.toArray();
      return cursor.rowsWritten > 0;
    });
    if (written) await this.ctx.storage.setAlarm(meta.expiresAt);
    return written;
  }

  async fetch(request) {
    const id = request.headers.get('session-id');
    const route = new URL(request.url).pathname.slice(1);
    const derived = await keys(id);
    if (route === 'create') {
      this.ctx.storage.sql.exec(RECORD_SCHEMA);
      this.#record = true;
      const meta = lifecycle();
      await this.write(derived, INSERT, meta, await seal(derived, meta, await request.arrayBuffer()));
      return new Response(id, { status: 201 });
    }
    const patch = route === 'add' ? await request.json() : null;
    // A write that lost a race (another request wrote while this one sealed) reads again, as
    // strong mode does.
    for (let attempt = 0; attempt < 5; attempt += 1) {
      const row = this.row();
      if (row === null || row.sealed === null || row.expires_at <= Date.now()) return new Response('not found', { status: 404 });
      const data = await open(derived, new Uint8Array(row.sealed));
      switch (route) {
        case 'get':
          return new Response(data, { headers: { 'content-type': 'application/json', etag: `"${row.version}"` } });
        case 'touch':
          return new Response(null, { status: 204, headers: { 'session-expires': new Date(row.expires_at).toISOString() } });
        case 'add': {
          const merged = JSON.stringify({ ...JSON.parse(new TextDecoder().decode(data)), ...patch });
          const meta = lifecycle({ createdAt: row.created_at, version: row.version });
          const sealed = await seal(derived, meta, new TextEncoder().encode(merged));
          if (await this.write(derived, UPDATE, meta, sealed, row.version)) {
            return new Response(merged, { headers: { 'content-type': 'application/json' } });
          }
          break;
        }
        default:
          return new Response('not found', { status: 404 });
      }
    }
    return new Response('conflict', { status: 409 });
  }

  async alarm() {
    const row = this.row();
    if (row !== null && row.expires_at <= Date.now()) {
      await this.ctx.storage.deleteAll();
      this.#record = false;
    }
  }
}

export default {
  async fetch(request, env) {
    const [, route, param] = new URL(request.url).pathname.split('/');
    if (route === 'health') return new Response('{"status":"ok"}');
    const id = route === 'create' ? crypto.randomUUID() : param;
    const name = `s1:${hex(await storageKey(id))}`;
    const stub = env.sessions.get(env.sessions.idFromName(name));
    return stub.fetch(`https://session/${route}`, { method: request.method, headers: { 'session-id': id }, body: request.body });
  },
};
