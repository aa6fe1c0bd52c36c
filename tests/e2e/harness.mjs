// Starts the real worker in `wrangler dev` (workerd, local KV and Durable Objects in a fresh
// temporary directory) on free ports, waits until it answers, and stops it afterwards: when the
// file's tests end, when a start fails, on SIGINT/SIGTERM, and when the file runs past its time
// limit. Console output is read from the inspector, so a test can wait until every line logged so
// far has arrived instead of sleeping and hoping.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile, readdir, readlink } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { Miniflare, convertV4MiniflareOptions } from 'miniflare';
import WebSocket from 'ws';

export const ROOT = resolve(import.meta.dirname, '../..');
const WRANGLER = join(ROOT, 'node_modules/.bin/wrangler');

export const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
export const HANDLE = /^[0-9a-f]{32}$/;

const sha256 = (text) => createHash('sha256').update(text).digest('hex');
/** A session's handle, computed here from its id as `src/domain/derive.rs` does. */
export const handleOf = (id) => sha256(`session-state/v1/handle\0${id}`).slice(0, 32);
/** Where a session is stored: its KV key, and the name of its object in strong mode. */
export const storageKeyOf = (id) => `s1:${sha256(`session-state/v1/key\0${id}`)}`;

/** The backend this run tests: `kv` or `durable_object` (`npm test` runs every file with each). */
export const BACKEND = process.env.SESSION_BACKEND ?? 'kv';
export const STRONG = BACKEND === 'durable_object';

// Every test file runs in its own process: this bounds the whole file, servers included.
const FILE_TIMEOUT_MS = Number(process.env.E2E_FILE_TIMEOUT_MS ?? 600_000);
const running = new Set();

function stopAllNow() {
  for (const worker of running) worker.kill();
}
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => { stopAllNow(); process.exit(130); });
}
/** Fixture configs this file wrote (fixtureConfig): they outlive any one start of a worker. */
const fixtureFiles = new Set();
process.once('exit', () => {
  stopAllNow();
  for (const file of fixtureFiles) rmSync(file, { force: true });
});
const arm = (ms) => setTimeout(() => {
  console.error(`[harness] this file ran past ${ms} ms; stopping its servers`);
  stopAllNow();
  process.exit(1);
}, ms).unref();
let fileTimer = arm(FILE_TIMEOUT_MS);

/**
 * Every request this process makes without a signal of its own is bounded: one with no answer
 * within E2E_REQUEST_TIMEOUT_MS (default 120 s) fails, naming its method and route (not the
 * id in it) and, for a worker started here, the end of wrangler's output (its access lines say
 * whether the worker answered). Unbounded, a hung request held its test until the test's or
 * the file's time limit, which cancels it with nothing said (stop 52's CI).
 */
const REQUEST_TIMEOUT_MS = Number(process.env.E2E_REQUEST_TIMEOUT_MS ?? 120_000);
const unboundedFetch = globalThis.fetch;
globalThis.fetch = async (input, init = {}) => {
  if (init.signal) return unboundedFetch(input, init);
  // A Request always has a signal (its own, or one that never aborts): both are kept.
  const timeout = AbortSignal.timeout(REQUEST_TIMEOUT_MS);
  const signal = input instanceof Request ? AbortSignal.any([input.signal, timeout]) : timeout;
  try {
    return await unboundedFetch(input, { ...init, signal });
  } catch (err) {
    if (err?.name !== 'TimeoutError') throw err;
    const url = new URL(input?.url ?? String(input));
    const method = init.method ?? input?.method ?? 'GET';
    const route = url.pathname.split('/').slice(0, 2).join('/');
    const worker = [...running].find((w) => w.url === url.origin);
    const tail = worker ? `; wrangler's last lines:\n${worker.output().split('\n').slice(-40).join('\n')}` : '';
    throw new Error(`${method} ${url.origin}${route} had no answer within ${REQUEST_TIMEOUT_MS} ms${tail}`);
  }
};

/**
 * Bounds this process at `ms` instead, when that is longer than the default: for the benchmark
 * and the profiler, whose length follows from their rounds and seconds, not from a test's.
 */
export function boundFile(ms) {
  if (ms <= FILE_TIMEOUT_MS) return;
  clearTimeout(fileTimer);
  fileTimer = arm(ms);
}

function freePort() {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => ok(port));
    });
  });
}

/** The TCP ports a process listens on, from /proc (no tools needed). */
async function listeningPorts(pid) {
  const inodes = new Set();
  for (const fd of await readdir(`/proc/${pid}/fd`)) {
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
    const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
    if (inode) inodes.add(inode);
  }
  const ports = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const text = await readFile(table, 'utf8').catch(() => '');
    for (const row of text.split('\n').slice(1)) {
      const cells = row.trim().split(/\s+/);
      if (cells[3] === '0A' && inodes.has(cells[9])) ports.push(parseInt(cells[1].split(':')[1], 16));
    }
  }
  return ports;
}

/** The console of the served worker, through its inspector. */
async function openConsole(port) {
  const socket = new WebSocket(`ws://127.0.0.1:${port}/ws`);
  await new Promise((ok, fail) => { socket.once('open', ok); socket.once('error', fail); });
  const lines = [];
  const contexts = [];
  const waiting = new Map();
  let next = 0;
  socket.on('message', (data) => {
    const message = JSON.parse(data);
    if (message.id !== undefined) waiting.get(message.id)?.(message);
    else if (message.method === 'Runtime.executionContextCreated') contexts.push(message.params.context.id);
    else if (message.method === 'Runtime.consoleAPICalled') {
      lines.push({ type: message.params.type, text: message.params.args.map((a) => a.value ?? a.description).join(' ') });
    }
  });
  const command = (method, params = {}) => new Promise((ok) => {
    next += 1;
    waiting.set(next, ok);
    socket.send(JSON.stringify({ id: next, method, params }));
  });
  await command('Runtime.enable');
  return {
    lines,
    contexts,
    command,
    /** Resolves once every line logged before this call has arrived. */
    flush: () => command('Runtime.enable'),
    close: () => socket.terminate(),
  };
}

let patched = 0;
/**
 * A copy of wrangler.toml (beside it, so its paths still resolve) with `vars` set in the [vars]
 * table of `env`: `--var` reaches only the first worker of a multi-worker `wrangler dev`.
 */
function patchedConfig(vars, env, source = readFileSync(join(ROOT, 'wrangler.toml'), 'utf8')) {
  const table = env ? `[env.${env}.vars]` : '[vars]';
  const lines = source.split('\n');
  const start = lines.indexOf(table);
  if (start < 0) throw new Error(`wrangler.toml has no ${table}`);
  let end = lines.findIndex((line, i) => i > start && line.startsWith('['));
  if (end < 0) end = lines.length;
  for (const [name, value] of Object.entries(vars)) {
    const line = `${name} = ${JSON.stringify(value)}`;
    const at = lines.slice(start, end).findIndex((l) => l.startsWith(`${name} =`));
    if (at >= 0) lines[start + at] = line;
    else { lines.splice(start + 1, 0, line); end += 1; }
  }
  patched += 1;
  const name = `.wrangler-e2e-${process.pid}-${patched}.toml`;
  writeFileSync(join(ROOT, name), lines.join('\n'));
  return name;
}

/**
 * Writes a wrangler config for a fixture Worker into the fixture's folder (so its `main`
 * resolves), removed when this process exits; returns its path from the root.
 */
export function fixtureConfig(folder, text) {
  patched += 1;
  const path = join(folder, `.wrangler-fixture-${process.pid}-${patched}.toml`);
  writeFileSync(join(ROOT, path), text);
  fixtureFiles.add(join(ROOT, path));
  return path;
}

/**
 * An HTTP server on loopback that keeps every JSON body POSTed to it (the events fixture's
 * consumer posts each batch of messages there), until `close`.
 */
/**
 * The Hono example's wrangler config (examples/hono) as shipped but for `RENEW_AFTER_SECONDS`, so
 * that a renewal happens within a test; for `startWorker({ configs: [it, 'wrangler.toml'] })`.
 */
export function exampleConfig(renewAfterSeconds) {
  const text = readFileSync(join(ROOT, 'examples/hono/wrangler.toml'), 'utf8')
    .replace(/^RENEW_AFTER_SECONDS = .*$/m, `RENEW_AFTER_SECONDS = "${renewAfterSeconds}"`);
  return fixtureConfig('examples/hono', text);
}

export async function startSink() {
  const bodies = [];
  const arrivals = [];
  const server = createHttpServer((req, res) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      bodies.push(Buffer.concat(chunks));
      arrivals.push(Date.now());
      res.writeHead(204).end();
    });
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  return {
    url: `http://127.0.0.1:${server.address().port}/`,
    /** Every byte received, as text. */
    text: () => bodies.map((b) => b.toString('utf8')).join('\n'),
    /** Every message received, in order of arrival. */
    messages: () => bodies.flatMap((b) => JSON.parse(b.toString('utf8'))),
    /** When the first message with `eventId` arrived here (ms since the epoch). */
    arrivedAt: (eventId) => arrivals[bodies.findIndex((b) => JSON.parse(b.toString('utf8')).some((m) => m.eventId === eventId))],
    /** Waits until `done(messages)` holds, at most `ms`; returns the messages either way. */
    async until(done, ms = 15_000) {
      const deadline = Date.now() + ms;
      while (!done(this.messages()) && Date.now() < deadline) await sleep(100);
      return this.messages();
    },
    close: () => new Promise((ok) => server.close(ok)),
  };
}

/**
 * @param {object} options
 * @param {string[]} [options.configs] wrangler configs; the first one is served
 * @param {string} [options.env] wrangler environment
 * @param {Record<string,string>} [options.vars] extra vars (and secrets) for session-state; the
 *   backend under test is one of them unless the caller names another
 * @param {string} [options.extra] TOML appended to session-state's config (a binding of `env`)
 * @param {string} [options.state] a directory of local state to start from and keep (default: a
 *   fresh one, removed when the worker stops)
 */
export async function startWorker(options = {}) {
  try {
    return await startWorkerOnce(options);
  } catch (err) {
    // Seen once in a fresh clone: wrangler's watcher reported `src` changed 200 ms after the
    // start (nothing had written it), and its rebuild's restart collided with its own port.
    // A worker that cannot start fails twice; one that tripped over that starts the second time.
    if (!String(err.message).startsWith('wrangler dev exited')) throw err;
    console.error(`[harness] wrangler dev exited while starting; starting it once more:\n${err.message.slice(-1500)}`);
    return startWorkerOnce(options);
  }
}

async function startWorkerOnce({ configs = ['wrangler.toml'], env, vars = {}, extra, state: kept } = {}) {
  // The legacy lookup on unless a test says otherwise: the shipped wrangler.toml turns it on only
  // until a date, and the tests must not change behaviour the day it passes.
  vars = { SESSION_BACKEND: BACKEND, SESSION_LEGACY_LOOKUP: 'on', ...vars };
  let temporaryConfig = null;
  if (configs[0] !== 'wrangler.toml' || extra) {
    // session-state is not the first worker, or needs more than vars: its vars go into a copy
    // of its config.
    const source = readFileSync(join(ROOT, 'wrangler.toml'), 'utf8') + (extra ? `\n${extra}\n` : '');
    temporaryConfig = patchedConfig(vars, env, source);
    configs = configs.map((c) => (c === 'wrangler.toml' ? temporaryConfig : c));
    vars = {};
  }
  const port = await freePort();
  const inspector = await freePort();
  const state = kept ?? mkdtempSync(join(tmpdir(), 'session-state-e2e-'));
  // An empty env file: a developer's .dev.vars (say, with API_TOKEN) must not leak into tests.
  const envFile = join(state, 'empty.env');
  writeFileSync(envFile, '');
  const args = ['dev', ...configs.flatMap((c) => ['-c', c]), '--port', String(port),
    '--inspector-port', String(inspector), '--ip', '127.0.0.1', '--persist-to', state,
    '--env-file', envFile, '--show-interactive-dev-session=false'];
  if (env) args.push('--env', env);
  for (const [name, value] of Object.entries(vars)) args.push('--var', `${name}:${value}`);
  const child = spawn(WRANGLER, args, {
    cwd: ROOT,
    env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CI: 'true' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  child.stdout.on('data', (d) => { output += d; });
  child.stderr.on('data', (d) => { output += d; });
  let console_ = null;
  const url = `http://127.0.0.1:${port}`;
  const handle = {
    url,
    output: () => output,
    kill() {
      console_?.close();
      try { process.kill(-child.pid, 'SIGKILL'); } catch { /* already gone */ }
      if (!kept) rmSync(state, { recursive: true, force: true });
      if (temporaryConfig) rmSync(join(ROOT, temporaryConfig), { force: true });
      for (const c of configs) if (basename(c).startsWith('.wrangler-e2e-')) rmSync(join(ROOT, c), { force: true });
      running.delete(handle);
    },
  };
  running.add(handle);
  const deadline = Date.now() + 180_000;
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`wrangler dev exited:\n${output}`);
      try {
        await fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) });
        break;
      } catch {
        if (Date.now() > deadline) throw new Error(`wrangler dev did not answer on ${url} within 180 s:\n${output}`);
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    // The inspector's proxy can reset a connection made just as the worker starts answering
    // (seen once in a fresh clone: `read ECONNRESET`): a few more tries, a moment apart.
    for (let attempt = 1; ; attempt += 1) {
      try {
        console_ = await openConsole(inspector);
        break;
      } catch (err) {
        if (attempt === 5 || !['ECONNRESET', 'ECONNREFUSED'].includes(err.code)) throw err;
        await new Promise((r) => setTimeout(r, 250 * attempt));
      }
    }
  } catch (err) {
    handle.kill();
    throw err;
  }
  /**
   * `wrangler kv key <args>` on this worker's local KV (its binding, state, config and env). The
   * running worker holds the same SQLite: a read can meet its lock (`SQLITE_BUSY`, seen once in
   * a fresh clone), and is then tried again, a few times.
   */
  const wranglerKv = async (args, options = {}) => {
    const run = () => promisify(execFile)(WRANGLER, ['kv', 'key', ...args,
      '--binding', 'sessionstore', '--local', '--persist-to', state,
      ...configs.slice(-1).flatMap((c) => ['-c', c]), ...(env ? ['--env', env] : [])], { cwd: ROOT, ...options });
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await run();
      } catch (err) {
        if (attempt === 5 || !/SQLITE_BUSY/.test(`${err.stderr ?? ''}${err.stdout ?? ''}${err.message}`)) throw err;
        await sleep(250 * attempt);
      }
    }
  };
  /**
   * Puts `value` under `key` in this worker's local KV with `metadata` exactly as given (an object,
   * or, as the old worker and KV mode before hashing wrote them, a number or a string), as
   * `wrangler kv key put --local` does it: a Miniflare of its own on the same storage. The CLI
   * (since wrangler 4.1xx) refuses metadata that is not an object, so it cannot seed those.
   */
  const localKvPut = async (key, value, metadata) => {
    for (let attempt = 1; ; attempt += 1) {
      const mf = new Miniflare(convertV4MiniflareOptions({
        script: 'addEventListener("fetch", (e) => e.respondWith(new Response(null, { status: 404 })))',
        resourcePersistencePath: join(state, 'v3'),
        kvNamespaces: { NAMESPACE: KV_NAMESPACE_ID },
      }));
      try {
        const namespace = await mf.getKVNamespace('NAMESPACE');
        await namespace.put(key, value, metadata ? { metadata } : {});
        return;
      } catch (err) {
        if (attempt === 5 || !/SQLITE_BUSY/.test(String(err))) throw err;
        await sleep(250 * attempt);
      } finally {
        await mf.dispose();
      }
    }
  };
  return {
    url,
    state,
    /**
     * Sends a command to the worker's V8 inspector (wrangler's proxy to it takes one client at a
     * time, and this harness is it) and resolves with the answer.
     */
    inspect: (method, params) => console_.command(method, params),
    /**
     * The byte length of the worker isolate's Wasm memory, read through the inspector. Linear
     * memory only grows, so this is the most any request so far has held in it.
     */
    async wasmMemoryBytes() {
      const inspect = async (method, params) => {
        const answer = await console_.command(method, params);
        if (answer.error) throw new Error(`${method}: ${answer.error.message}`);
        return answer.result;
      };
      const contextId = console_.contexts.at(-1);
      const proto = await inspect('Runtime.evaluate', { expression: 'WebAssembly.Memory.prototype', contextId });
      const found = await inspect('Runtime.queryObjects', { prototypeObjectId: proto.result.objectId });
      const sizes = await inspect('Runtime.callFunctionOn', {
        objectId: found.objects.objectId, returnByValue: true,
        functionDeclaration: 'function () { return this.map((m) => m.buffer.byteLength); }',
      });
      return Math.max(0, ...sizes.result.value);
    },
    /** wrangler's own output (its access lines, and console lines as it prints them). */
    logs: () => output,
    /** Every console line of the worker so far, once all of them have arrived. */
    async consoleLines() {
      await console_.flush();
      return console_.lines.map((line) => line.text);
    },
    /**
     * The workerd process running the worker itself (for memory and CPU readings). wrangler runs
     * two: one for its own dev proxy, on our port, and one for the worker, on a port it picks.
     */
    async workerdPid() {
      const { stdout } = await promisify(execFile)('ps', ['-o', 'pid=,args=', '-g', String(child.pid)]);
      const line = stdout.split('\n').find((l) => l.includes('workerd serve') && !l.includes(`:${port} `));
      return Number(line.trim().split(/\s+/)[0]);
    },
    async rssKiB() {
      const status = await readFile(`/proc/${await this.workerdPid()}/status`, 'utf8');
      return Number(/VmRSS:\s+(\d+)/.exec(status)[1]);
    },
    /** The worker's own socket, behind wrangler's dev proxy. */
    async directUrl() {
      for (const candidate of await listeningPorts(await this.workerdPid())) {
        const answer = await fetch(`http://127.0.0.1:${candidate}/health`).then((r) => r.text()).catch(() => '');
        if (answer === '{"status":"ok"}') return `http://127.0.0.1:${candidate}`;
      }
      throw new Error('no socket of the worker answers /health');
    },
    /**
     * Writes straight into this worker's local KV, as the old TypeScript worker did (no
     * metadata) or as KV mode does (with it).
     */
    async kvPut(key, value, metadata) {
      await localKvPut(key, value, metadata);
    },
    /** Every key of this worker's local KV, with its metadata (what `wrangler kv key list` shows). */
    async kvList() {
      return JSON.parse((await wranglerKv(['list'])).stdout);
    },
    /** A value of this worker's local KV as bytes (a Buffer), `null` when the key is absent. */
    async kvBytes(key) {
      const { stdout } = await wranglerKv(['get', key], { encoding: 'buffer' });
      return stdout.toString('latin1').trim() === 'Value not found' ? null : stdout;
    },
    /** Writes bytes into this worker's local KV, through a file (`kv key put --path`). */
    async kvPutBytes(key, bytes, metadata) {
      await localKvPut(key, new Uint8Array(bytes), metadata);
    },
    /**
     * A dump of everything this worker stores, as an administrator with the account could read
     * it: every KV key with its metadata and value, and every row of every table of every
     * Durable Object's SQLite database (including `__miniflare_do_name`, the name each object
     * was reached by, which production hands to the object too). Values as latin1 text.
     */
    async dump() {
      const lines = [];
      for (const { name, metadata } of await this.kvList()) {
        const value = await this.kvBytes(name);
        lines.push(`kv ${name} ${JSON.stringify(metadata ?? null)} ${value?.toString('latin1')}`);
      }
      const { stdout } = await promisify(execFile)('python3', ['-c', DUMP_OBJECTS, join(state, 'v3/do')]);
      return `${lines.join('\n')}\n${stdout}`;
    },
    /** Reads this worker's local KV directly; `null` when the key is absent. */
    async kvGet(key) {
      const { stdout } = await wranglerKv(['get', key, '--text']);
      return stdout.trim() === 'Value not found' ? null : stdout.trim();
    },
    async stop() {
      console_?.close();
      try { process.kill(-child.pid, 'SIGTERM'); } catch { /* already gone */ }
      await new Promise((r) => { if (child.exitCode !== null) r(); else child.once('exit', r); setTimeout(r, 5000); });
      handle.kill();
    },
  };
}

export const JSON_HEADERS = { 'content-type': 'application/json' };

/** The local id of the `sessionstore` namespace, as wrangler.toml gives it (every environment). */
const KV_NAMESPACE_ID = '00000000000000000000000000000000';
if (!readFileSync(join(ROOT, 'wrangler.toml'), 'utf8').includes(`id = "${KV_NAMESPACE_ID}"`)) {
  throw new Error('wrangler.toml names another sessionstore id: update KV_NAMESPACE_ID in the harness');
}

/** The last commit before sessions were stored under hashed keys, sealed: the upgrade's source. */
export const PREVIOUS = '82fa173';
/** The last commit before lifecycles were sealed with the data (records `s1`, device info `d1`). */
export const SEALED_BEFORE = '32e2f06';
/** The last commit before the last authentication was kept (records `s2`/`r2`, no auth columns). */
export const AUTH_BEFORE = '11e65c3';

/**
 * session-state as it was at `commit` (`PREVIOUS` unless given), built once
 * (scripts/previous-build.sh: kept in target/previous-<commit>; `npm test` starts these builds
 * in the background, and this waits for one under way), and a wrangler config serving it with
 * `vars`, for tests that seed storage the way that version wrote it. The config is removed with
 * the worker started from it.
 */
export function previousBuild(vars = {}, commit = PREVIOUS) {
  const dir = join(ROOT, `target/previous-${commit}`);
  const built = join(dir, 'build/index.js');
  execFileSync('bash', [join(ROOT, 'scripts/previous-build.sh'), commit], { cwd: ROOT, stdio: 'inherit', timeout: 1_200_000 });
  const toml = readFileSync(join(dir, 'wrangler.toml'), 'utf8')
    .replace(/^main = .*$/m, `main = ${JSON.stringify(built)}`)
    .replace(/^\[build\]\ncommand = .*$/m, '');
  return patchedConfig({ SESSION_BACKEND: BACKEND, ...vars }, undefined, toml);
}

/** The first two bytes of every session record and every sealed device info, as stored. */
export async function storedFormats(worker) {
  if (!STRONG) {
    const formats = { records: [], devices: [] };
    for (const { name, metadata } of await worker.kvList()) {
      if (name.startsWith('s1:')) formats.records.push((await worker.kvBytes(name)).subarray(0, 2).toString('latin1'));
      const device = name.startsWith('sub:') ? metadata?.split(' ')[2] : undefined;
      if (device) formats.devices.push(Buffer.from(device, 'base64').subarray(0, 2).toString('latin1'));
    }
    return formats;
  }
  const root = join(worker.state, 'v3/do');
  const files = [];
  for (const dir of await readdir(root)) {
    for (const file of await readdir(join(root, dir))) if (file.endsWith('.sqlite')) files.push(join(root, dir, file));
  }
  const script = `
import json, sqlite3, sys
records, devices = [], []
for path in sys.argv[1:]:
    db = sqlite3.connect(path)
    tables = [n for (n,) in db.execute("select name from sqlite_master where type = 'table'")]
    if 'record' in tables:
        records += [bytes(s[:2]).decode('latin1') for (s,) in db.execute('select sealed from record where sealed is not null')]
    if 'entry' in tables:
        devices += [bytes(d[:2]).decode('latin1') for (d,) in db.execute('select device from entry where device is not null')]
print(json.dumps({"records": sorted(records), "devices": sorted(devices)}))`;
  const { stdout } = await promisify(execFile)('python3', ['-c', script, ...files]);
  return JSON.parse(stdout);
}

/** Every row of every table of every object's database under the directory given, as text. */
const DUMP_OBJECTS = `
import os, sqlite3, sys
for root, _, files in os.walk(sys.argv[1]):
    for file in sorted(files):
        if not file.endswith('.sqlite'):
            continue
        db = sqlite3.connect(os.path.join(root, file))
        for (table,) in db.execute("select name from sqlite_master where type = 'table'"):
            for row in db.execute(f'select * from "{table}"'):
                cells = [c.decode('latin1') if isinstance(c, bytes) else str(c) for c in row]
                print('do', file, table, ' '.join(cells))
`;

/** Asserts a problem document: status, media type, code and the RFC 9457 members. */
export async function expectProblem(assert, response, status, code) {
  assert.equal(response.status, status);
  assert.equal(response.headers.get('content-type'), 'application/problem+json');
  assert.equal(response.headers.get('cache-control'), 'no-store');
  const body = await response.json();
  assert.equal(body.status, status);
  assert.equal(body.code, code);
  assert.equal(body.type, `urn:session-state:problem:${code}`);
  assert.equal(typeof body.title, 'string');
  assert.equal(typeof body.detail, 'string');
  return body;
}

/** A JSON object of exactly `bytes` bytes: members `k0`, `k1`, ... of 64 `fill` characters. */
export function jsonOfSize(bytes, fill = 'x') {
  const parts = [];
  let size = 2;
  for (let i = 0; ; i += 1) {
    const name = `k${i}`;
    const room = bytes - size - (parts.length ? 1 : 0) - name.length - 5;
    if (room < 1) break;
    const length = Math.min(64, room);
    parts.push(`"${name}":"${fill.repeat(length)}"`);
    size += (parts.length > 1 ? 1 : 0) + name.length + 5 + length;
  }
  const text = `{${parts.join(',')}}`;
  return text + ' '.repeat(bytes - text.length);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * The worker's request log lines among console lines: each line that parses as a JSON object
 * naming a route and a status, whatever the order of its fields.
 */
export function requestLines(lines) {
  return lines.flatMap((line) => {
    try {
      const value = JSON.parse(line);
      const isRequest = typeof value?.route === 'string' && Number.isInteger(value?.status);
      return isRequest ? [value] : [];
    } catch {
      return [];
    }
  });
}

/**
 * Asserts that no console line logs a request to any of `routes`: neither a parsed request line
 * nor any other line naming the route, so that a change of the line's format cannot make the
 * check pass by matching nothing.
 */
export function assertNoRequestLine(assert, lines, routes) {
  const logged = requestLines(lines).filter((line) => routes.includes(line.route));
  assert.deepEqual(logged, [], 'no request line');
  const named = lines.filter((line) => routes.some((route) => line.includes(`"${route}"`)));
  assert.deepEqual(named, [], 'no line naming the route');
}
