// Starts the real worker in `wrangler dev` (workerd, local KV in a fresh temporary directory) on
// a free port, waits until it answers, and stops it afterwards.
import { spawn, execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

export const ROOT = resolve(import.meta.dirname, '../..');
const WRANGLER = join(ROOT, 'node_modules/.bin/wrangler');

export const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

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

/**
 * @param {object} options
 * @param {string[]} [options.configs] wrangler configs; the first one is served
 * @param {string} [options.env] wrangler environment
 * @param {Record<string,string>} [options.vars] extra vars (and secrets) for this run
 */
export async function startWorker({ configs = ['wrangler.toml'], env, vars = {} } = {}) {
  const port = await freePort();
  const inspector = await freePort();
  const state = await mkdtemp(join(tmpdir(), 'session-state-kv-'));
  // An empty env file: a developer's .dev.vars (say, with API_TOKEN) must not leak into tests.
  const envFile = join(state, 'empty.env');
  await import('node:fs/promises').then((fs) => fs.writeFile(envFile, ''));
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
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 180_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`wrangler dev exited:\n${output}`);
    try {
      await fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) });
      break;
    } catch {
      if (Date.now() > deadline) {
        process.kill(-child.pid, 'SIGKILL');
        throw new Error(`wrangler dev did not answer on ${url} within 180 s:\n${output}`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  return {
    url,
    state,
    logs: () => output,
    /** Writes straight into this worker's local KV, as the old TypeScript worker did. */
    async kvPut(key, value) {
      const kvArgs = ['kv', 'key', 'put', key, value, '--binding', 'sessionstore', '--local',
        '--persist-to', state, ...configs.slice(0, 1).flatMap((c) => ['-c', c])];
      if (env) kvArgs.push('--env', env);
      await promisify(execFile)(WRANGLER, kvArgs, { cwd: ROOT });
    },
    async stop() {
      try { process.kill(-child.pid, 'SIGTERM'); } catch { /* already gone */ }
      await new Promise((r) => { if (child.exitCode !== null) r(); else child.once('exit', r); setTimeout(r, 5000); });
      try { process.kill(-child.pid, 'SIGKILL'); } catch { /* already gone */ }
      await rm(state, { recursive: true, force: true });
    },
  };
}

export const JSON_HEADERS = { 'content-type': 'application/json' };

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

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
