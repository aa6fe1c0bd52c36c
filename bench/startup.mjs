// Cold start: the time and the CPU from starting workerd with a Worker's bundle to that Worker's
// first answer (`GET /health`), for session-state and for the JS baseline, started in turn.
//
// It runs workerd itself (the binary wrangler ships), not `wrangler dev`: wrangler's own start
// (Node, esbuild, Miniflare's helper services) takes seconds and would bury a difference of
// milliseconds. workerd compiles and instantiates each Worker's modules before it opens its
// socket, so the figure holds the Wasm compile, the module's top level and the first request.
// The CPU is the sum of every workerd thread's run time (`/proc/<pid>/task/*/schedstat`, in
// nanoseconds); workerd's own start is in both figures alike, so the difference is the Worker's.
import { spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const WORKERD = 'node_modules/@cloudflare/workerd-linux-64/bin/workerd';
const COMPATIBILITY_DATE = '2025-11-01';

/** A bundle to start: its modules (name → file) and the vars it is given. */
export const sessionState = (dir) => ({
  modules: [['index.js', join(dir, 'index.js'), 'esModule'], ['index_bg.wasm', join(dir, 'index_bg.wasm'), 'wasm']],
  vars: { SESSION_BACKEND: 'kv', SESSION_TTL_SECONDS: '1800', SESSION_MAX_LIFETIME_SECONDS: '86400' },
});
export const baseline = (root) => ({
  modules: ['baseline.js', 'sealing.js'].map((name) => [name, join(root, 'bench', name), 'esModule']),
  vars: {},
});

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    }).on('error', reject);
  });
}

/**
 * workerd's config for `bundle` alone (its modules copied beside it: `embed` reads paths relative
 * to the config), its KV binding served by a stub that is never called.
 */
function config(bundle, port) {
  const modules = bundle.modules.map(([name, , kind]) => `(name = ${JSON.stringify(name)}, ${kind} = embed ${JSON.stringify(name)})`);
  const vars = Object.entries(bundle.vars).map(([name, value]) => `(name = ${JSON.stringify(name)}, text = ${JSON.stringify(value)})`);
  return `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "main", worker = (modules = [${modules.join(', ')}], compatibilityDate = "${COMPATIBILITY_DATE}",
      bindings = [(name = "sessionstore", kvNamespace = "kv"), ${vars.join(', ')}])),
    (name = "kv", worker = (modules = [(name = "kv.js", esModule = "export default { fetch() { return new Response(null, { status: 500 }); } };")],
      compatibilityDate = "${COMPATIBILITY_DATE}")),
  ],
  sockets = [(name = "http", address = "127.0.0.1:${port}", http = (), service = "main")],
);
`;
}

/** Run time of every thread of `pid` so far, in milliseconds. */
export function threadsMs(pid) {
  let ns = 0;
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return ns / 1e6;
}

function listening(port) {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}

/** One cold start of `bundle`: milliseconds to the first answer, and workerd's CPU until then. */
async function once(root, bundle) {
  const dir = mkdtempSync(join(tmpdir(), 'startup-'));
  const port = await freePort();
  for (const [name, file] of bundle.modules) copyFileSync(file, join(dir, name));
  writeFileSync(join(dir, 'config.capnp'), config(bundle, port));
  const started = performance.now();
  const child = spawn(join(root, WORKERD), ['serve', join(dir, 'config.capnp'), '--experimental'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk) => { stderr += chunk; });
  try {
    // Listening means the Worker is compiled and its top level has run; then the first request.
    while (!(await listening(port))) {
      if (child.exitCode !== null) throw new Error(`workerd exited ${child.exitCode}: ${stderr}`);
      if (performance.now() - started > 30_000) throw new Error(`workerd did not listen within 30 s: ${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    const loaded = { ms: performance.now() - started, cpuMs: threadsMs(child.pid) };
    const answer = await fetch(`http://127.0.0.1:${port}/health`);
    const ms = performance.now() - started;
    const cpuMs = threadsMs(child.pid);
    const body = await answer.text();
    if (answer.status !== 200) throw new Error(`first answer ${answer.status}: ${body}`);
    return { ms, cpuMs, loadedMs: loaded.ms, loadedCpuMs: loaded.cpuMs };
  } finally {
    child.kill('SIGKILL');
    await new Promise((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', resolve)));
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * `starts` cold starts of each bundle, in turn (A, B, A, B, ...), after one unmeasured start each
 * (the page cache). Returns, per name, every start's figures.
 */
export async function measureStartup(root, bundles, starts) {
  const runs = Object.fromEntries(Object.keys(bundles).map((name) => [name, []]));
  for (const bundle of Object.values(bundles)) await once(root, bundle);
  for (let i = 0; i < starts; i += 1) {
    for (const [name, bundle] of Object.entries(bundles)) {
      const run = await once(root, bundle);
      runs[name].push(run);
      console.log(`[startup] ${name} ${i + 1}: listening after ${run.loadedMs.toFixed(1)} ms (${run.loadedCpuMs.toFixed(1)} ms CPU), first answer after ${run.ms.toFixed(1)} ms (${run.cpuMs.toFixed(1)} ms CPU)`);
    }
  }
  return runs;
}
