// `npm run bench`: what a request costs session-state, against a plain JavaScript Worker doing
// the same KV operations and the same sealing (bench/baseline.js), all in `wrangler dev` (workerd, local KV and
// Durable Objects) on this machine. Variants run in turn within every round (A, B, C, D, A, ...):
// session-state as shipped, with its request log off, in strong mode, and the baseline.
//
// The figure that matters is the CPU time a request costs inside the runtime (what Workers bill
// and what the CPU limit cuts off): user+system time of the worker's own workerd process, read
// from /proc around each wrk run and divided by the requests served. wrangler's dev proxy runs
// in another process and is not counted. Requests/s and latency are reported too, but they are
// mostly wrangler's proxy on this machine.
//
// Writes bench/results.md. `--smoke` runs one short round (CI), with no thresholds.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import { ROOT, boundFile, startWorker } from '../tests/e2e/harness.mjs';
import { PATCH, session } from './bodies.mjs';
import { configServing } from './builds.mjs';
import { MAXIMA, measureMemory } from './memory.mjs';
import { inTurn, median } from './rounds.mjs';
import { baseline, measureStartup, sessionState } from './startup.mjs';

const smoke = process.argv.includes('--smoke');
const ROUNDS = smoke ? 1 : Number(process.env.BENCH_ROUNDS ?? 5);
const SECONDS = smoke ? 1 : Number(process.env.BENCH_SECONDS ?? 5);
const WARMUP_SECONDS = smoke ? 1 : 2;
const STARTS = smoke ? 2 : Number(process.env.BENCH_STARTS ?? 11);
const CONCURRENCY = 8;
const THREADS = 2;
// The spread scenario's sessions: twice the connections, so that two rarely meet on one.
const SPREAD = 2 * CONCURRENCY;
const TICK_MS = 1000 / Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }));

function ensureWrk() {
  if (spawnSync('wrk', ['-v']).error === undefined) return;
  console.log('[bench] installing wrk from Debian');
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
  execFileSync('apt-get', ['install', '-y', '-qq', 'wrk'], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
}

/** User+system CPU time of a process so far, in milliseconds. */
function cpuMs(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
}

/** A fetch that tries once more when the connection was closed under it (after a wrk run). */
async function call(url, init) {
  try {
    return await fetch(url, init);
  } catch {
    return fetch(url, init);
  }
}

async function post(url, body) {
  const response = await call(`${url}/create`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  if (response.status !== 201) throw new Error(`create: ${response.status} ${await response.text()}`);
  return response.text();
}

/** wrk on `path`, or spread over `paths` (each of its threads going round a share of them). */
function wrk(url, { method, path, paths, body }, seconds) {
  const env = { BENCH_METHOD: method, BENCH_PATH: path ?? '/', BENCH_PATHS: paths?.join(',') ?? '', BENCH_THREADS: String(THREADS), BENCH_BODY: body ?? '' };
  const out = execFileSync('wrk', ['-t', String(THREADS), '-c', String(CONCURRENCY), '-d', `${seconds}s`, '--latency', '-s', join(ROOT, 'bench/wrk.lua'), url], {
    encoding: 'utf8', env: { ...process.env, ...env },
  });
  const line = out.split('\n').find((l) => l.startsWith('BENCH_JSON '));
  const r = JSON.parse(line.slice('BENCH_JSON '.length));
  return { requests: r.requests, rps: r.requests / r.seconds, p50: r.p50_us / 1000, p99: r.p99_us / 1000, errors: r.errors };
}

/** Lost updates out of 50 parallel PATCHes on one session, each adding its own key. */
async function lostUpdates(url) {
  const id = await post(url, '{}');
  const statuses = await Promise.all(Array.from({ length: 50 }, (_, i) => call(`${url}/add/${id}`, {
    method: 'PATCH', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ [`k${i}`]: i }),
  }).then((r) => r.status)));
  const data = await (await call(`${url}/get/${id}`)).json();
  const acknowledged = statuses.map((s, i) => (s === 200 ? `k${i}` : null)).filter(Boolean);
  return { acknowledged: acknowledged.length, lost: acknowledged.filter((k) => !(k in data)).length };
}

ensureWrk();
execFileSync('bash', [join(ROOT, 'scripts/build.sh')], { stdio: 'inherit' });
const wasm = readFileSync(join(ROOT, 'build/index_bg.wasm'));
const size = { raw: wasm.length, gzip: gzipSync(wasm, { level: 9 }).length };

// The merge itself, natively: 8,000 keys into 8,000, and ten times fewer.
const merges = execFileSync('cargo', ['bench', '--quiet', '--bench', 'merge'], { cwd: ROOT, encoding: 'utf8' })
  .split('\n').filter((l) => l.startsWith('MERGE_BENCH ')).map((l) => JSON.parse(l.slice('MERGE_BENCH '.length)));

const VARIANTS = [
  { name: 'as shipped', start: () => startWorker({ vars: { SESSION_BACKEND: 'kv' } }) },
  { name: 'log off', start: () => startWorker({ vars: { SESSION_BACKEND: 'kv', LOG_REQUESTS: 'off' } }) },
  { name: 'strong mode', start: () => startWorker({ vars: { SESSION_BACKEND: 'durable_object' } }) },
  // The same build and configuration as strong mode, served a second time: how far apart two
  // identical servers read in the same rounds is the run's spread, the margin its ratios have.
  { name: 'strong again', start: () => startWorker({ vars: { SESSION_BACKEND: 'durable_object' } }) },
  { name: 'strong floor', start: () => startWorker({ configs: ['bench/strong-floor.toml'] }) },
  { name: 'JS baseline', start: () => startWorker({ configs: ['bench/wrangler.toml'] }) },
];
// BENCH_BUILDS="name=dir,...": more variants, session-state as shipped but served from another
// build in `dir` (say, another opt-level), measured side by side with the others in every round;
// in strong mode with SESSION_BACKEND=durable_object, and then in the floor table too.
for (const entry of (process.env.BENCH_BUILDS ?? '').split(',').filter(Boolean)) {
  const [name, dir] = entry.split('=');
  const config = configServing(dir, `.wrangler-bench-${name.replace(/\W/g, '_')}.toml`);
  VARIANTS.splice(1, 0, { name, start: () => startWorker({ configs: [config] }), config, dir });
}
// BENCH_VARIANTS="as shipped,JS baseline": only these (the baseline always runs).
const only = process.env.BENCH_VARIANTS?.split(',');
if (only) VARIANTS.splice(0, VARIANTS.length, ...VARIANTS.filter((v) => only.includes(v.name) || v.name === 'JS baseline'));
// The harness stops a test file after 10 minutes; a full run takes longer. Bound it by its own
// length instead: every wrk run twice over, plus a quarter of an hour for builds and starts.
boundFile(2 * 5 * VARIANTS.length * (ROUNDS * SECONDS + WARMUP_SECONDS) * 1000 + 15 * 60_000);
// BENCH_SCENARIOS="GET /get/:id, 200 B;POST /create, 200 B": only these ("startup" is one); "GET
// /get/:id, 6 KiB" runs only when named here.
const chosen = process.env.BENCH_SCENARIOS?.split(';');
const MIDDLE = 'GET /get/:id, 6 KiB';

// Cold starts first, on a quiet machine: no wrangler runs yet.
// Strong mode and log off start the same bundle as shipped.
const bundles = {};
for (const v of VARIANTS) {
  if (v.name === 'as shipped') bundles[v.name] = sessionState(join(ROOT, 'build'));
  else if (v.dir) bundles[v.name] = sessionState(v.dir);
}
bundles['JS baseline'] = baseline(ROOT);
const startup = !chosen || chosen.includes('startup') ? await measureStartup(ROOT, bundles, STARTS) : null;

// The Worker's own share of a cold start, well above today's (+13 ms): an alarm, even in --smoke.
const STARTUP_ALARM_MS = 50;
if (startup) {
  const own = median(startup['as shipped']?.map((r, i) => r.cpuMs - startup['JS baseline'][i].cpuMs) ?? [0]);
  if (own > STARTUP_ALARM_MS) throw new Error(`a cold start costs the Worker ${own.toFixed(1)} ms of CPU, above the ${STARTUP_ALARM_MS} ms alarm`);
}
// Memory at each backend's largest session, each in a fresh worker.
const memory = !chosen || chosen.includes('memory') ? [await measureMemory('kv'), await measureMemory('durable_object')] : [];

const workers = {};
const served = !chosen || chosen.some((c) => c !== 'startup' && c !== 'memory');
for (const variant of served ? VARIANTS : []) workers[variant.name] = await variant.start();
const pids = Object.fromEntries(await Promise.all(Object.entries(workers).map(async ([name, w]) => [name, await w.workerdPid()])));

try {
  const dir = mkdtempSync(join(tmpdir(), 'bench-'));
  const small = session(200);
  const large = session(58 * 1024);
  writeFileSync(join(dir, 'small.json'), small);
  writeFileSync(join(dir, 'patch.json'), PATCH);
  const ids = {};
  for (const [name, w] of Object.entries(workers)) {
    ids[name] = { small: await post(w.url, small), large: await post(w.url, large), patched: await post(w.url, large) };
    if (chosen?.includes(MIDDLE)) ids[name].middle = await post(w.url, session(6 * 1024));
    ids[name].spread = [];
    for (let i = 0; i < SPREAD; i += 1) ids[name].spread.push(await post(w.url, large));
  }
  const everyone = VARIANTS.map((v) => v.name);
  const extras = VARIANTS.filter((v) => v.config).map((v) => v.name);
  const scenarios = [
    { name: 'GET /health (no KV)', variants: ['as shipped', ...extras, 'log off', 'JS baseline'].filter((n) => everyone.includes(n)), req: () => ({ method: 'GET', path: '/health' }) },
    { name: 'GET /get/:id, 200 B', variants: everyone, req: (id) => ({ method: 'GET', path: `/get/${id.small}` }) },
    { name: 'GET /get/:id, 58 KiB', variants: everyone, req: (id) => ({ method: 'GET', path: `/get/${id.large}` }) },
    // Between what is opened in Wasm and what WebCrypto opens (IN_WASM): only when named.
    { name: MIDDLE, optional: true, variants: everyone, req: (id) => ({ method: 'GET', path: `/get/${id.middle}` }) },
    { name: 'PATCH /add/:id, 10 keys into 58 KiB', variants: everyone, req: (id) => ({ method: 'PATCH', path: `/add/${id.patched}`, body: join(dir, 'patch.json') }) },
    // The same, spread over sessions as a service's users spread: in strong mode each session's
    // object serves its requests one at a time, so the scenario above, eight connections on one
    // session, measures that queue, and this one what requests cost without it.
    { name: `PATCH /add/:id, 10 keys into 58 KiB, ${SPREAD} sessions`, variants: everyone, req: (id) => ({ method: 'PATCH', paths: id.spread.map((s) => `/add/${s}`), body: join(dir, 'patch.json') }) },
    { name: 'POST /create, 200 B', variants: everyone, req: () => ({ method: 'POST', path: '/create', body: join(dir, 'small.json') }) },
    // Within the renewal interval (60 s by default): one read, the record opened, nothing written.
    { name: 'POST /touch/:id, 200 B', variants: everyone, req: (id) => ({ method: 'POST', path: `/touch/${id.small}` }) },
  ];
  const results = [];
  for (const scenario of scenarios.filter((s) => (chosen ? chosen.includes(s.name) : !s.optional))) {
    const runs = Object.fromEntries(scenario.variants.map((name) => [name, []]));
    for (const name of scenario.variants) wrk(workers[name].url, scenario.req(ids[name]), WARMUP_SECONDS);
    for (let round = 0; round < ROUNDS; round += 1) {
      const order = inTurn(scenario.variants, round);
      for (const name of order) {
        const before = cpuMs(pids[name]);
        const r = wrk(workers[name].url, scenario.req(ids[name]), SECONDS);
        const cpuUs = ((cpuMs(pids[name]) - before) * 1000) / r.requests;
        if (r.errors > 0) throw new Error(`${scenario.name} on ${name}: ${r.errors} errors`);
        runs[name].push({ ...r, cpuUs });
        console.log(`[bench] ${scenario.name} round ${round + 1} ${name}: ${r.rps.toFixed(0)} req/s, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms, ${cpuUs.toFixed(0)} µs CPU/request`);
      }
    }
    const base = runs['JS baseline'];
    const rows = scenario.variants.map((name) => {
      const own = runs[name];
      return {
        name,
        rps: median(own.map((r) => r.rps)),
        p50: median(own.map((r) => r.p50)),
        p99: median(own.map((r) => r.p99)),
        cpuUs: median(own.map((r) => r.cpuUs)),
        // Per-round ratios, then their median: ≥ 1.0 means at least as good as the baseline.
        cpuRatio: median(own.map((r, i) => base[i].cpuUs / r.cpuUs)),
        rpsRatio: median(own.map((r, i) => r.rps / base[i].rps)),
      };
    });
    results.push({ name: scenario.name, rows, runs });
  }
  // Strong mode against its own floor: the same ratio, with the strong floor as the baseline.
  // Builds of BENCH_BUILDS run in strong mode too when SESSION_BACKEND=durable_object.
  const strongs = ['strong mode', 'strong again', ...(process.env.SESSION_BACKEND === 'durable_object' ? extras : [])];
  const floorRows = results.flatMap((scenario) => strongs.flatMap((name) => {
    const strong = scenario.runs?.[name];
    const floor = scenario.runs?.['strong floor'];
    if (!strong || !floor) return [];
    const ratios = strong.map((r, i) => floor[i].cpuUs / r.cpuUs);
    const label = name === 'strong mode' ? scenario.name : `${scenario.name} (${name})`;
    return [`| ${label} | **${median(strong.map((r) => r.cpuUs)).toFixed(0)}** | **${median(floor.map((r) => r.cpuUs)).toFixed(0)}** | **${median(ratios).toFixed(2)}** (${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}) |`];
  }));
  const concurrency = {
    kv: workers['as shipped'] && served ? await lostUpdates(workers['as shipped'].url) : { acknowledged: '-', lost: '-' },
    strong: workers['strong mode'] && served ? await lostUpdates(workers['strong mode'].url) : { acknowledged: '-', lost: '-' },
  };

  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  const range = (xs) => `${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)}`;
  const startupTable = startup && Object.entries(startup).map(([name, own]) => {
    const base = startup['JS baseline'];
    const cell = (key) => `**${median(own.map((r) => r[key])).toFixed(1)}** (${range(own.map((r) => r[key]))})`;
    const extra = (key) => (name === 'JS baseline' ? '' : `+${median(own.map((r, i) => r[key] - base[i][key])).toFixed(1)}`);
    return `| ${name} | ${cell('loadedMs')} | ${cell('loadedCpuMs')} | ${extra('loadedCpuMs')} | ${cell('ms')} | ${cell('cpuMs')} | ${extra('cpuMs')} |`;
  }).join('\n');
  const table = results.flatMap((scenario) => scenario.rows.map((r, i) => `| ${i === 0 ? scenario.name : ''} | ${r.name} | **${r.cpuUs.toFixed(0)}** | ${r.name === 'JS baseline' ? '' : `**${r.cpuRatio.toFixed(2)}**`} | ${r.rps.toFixed(0)} | ${r.name === 'JS baseline' ? '' : r.rpsRatio.toFixed(2)} | ${r.p50.toFixed(1)} / ${r.p99.toFixed(1)} |`)).join('\n');
  const md = `# Benchmark results

${smoke ? '**Smoke run (one short round): not a measurement.**\n\n' : ''}Produced by \`npm run bench\` on ${new Date().toISOString().slice(0, 10)}: ${cpus().length} × ${cpu}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB,
Node ${process.version}. Every Worker runs in its own \`wrangler dev\` (workerd, local KV and Durable Objects) on this
machine; wrk with ${CONCURRENCY} connections, ${SECONDS} s per run after ${WARMUP_SECONDS} s of warm-up, ${ROUNDS} round(s), each running the
variants in turn, each round starting one variant later. Figures are medians over rounds; a ratio is the median of per-round ratios against the baseline.

- **CPU µs/request**: user+system time of the worker's own workerd process over the run, divided by the requests
  it served (wrangler's dev proxy is another process and is not counted). CPU ratio = baseline ÷ variant: ≥ 1.0
  means it costs no more than the baseline.
- **as shipped**: the default configuration (KV; request log lines for errors and slow requests only).
  **log off**: \`LOG_REQUESTS=off\` (the same code path: no line is logged for a successful request either way, so
  how far it reads from as shipped is the run's spread). **strong mode**: \`SESSION_BACKEND=durable_object\` (its
  CPU includes the session's Durable Object, which runs in the same process locally). **strong again**: strong mode
  served a second time, the same build and configuration, for the same spread. **strong floor**: \`bench/strong-floor.js\`
  (below). **JS baseline**: \`bench/baseline.js\`, the same
  KV operations (getWithMetadata, metadata on writes) and the same sealing (hashed key, AES-256-GCM through WebCrypto)
  with no validation, routing or logging. Other variants are builds given in \`BENCH_BUILDS\`.
- Requests/s and latency are mostly wrangler's dev proxy on this machine; the rps ratio is variant ÷ baseline.

${startupTable ? `## Cold start

\`bench/startup.mjs\`: workerd (the binary wrangler ships) started ${STARTS} times with each bundle alone, in turn
(A, B, A, B, ...), after one unmeasured start each. **Listening**: from its start until its socket accepts, by
which time the Worker's modules are compiled and their top level has run. **First answer**: until the answer to
\`GET /health\`, the first request. CPU is every workerd thread's run time until then
(\`/proc/<pid>/task/*/schedstat\`), so workerd's own start is in every figure alike. Medians (range); **+CPU** is
the median of each start's difference from the baseline start beside it: the Worker's own share.

| bundle | listening, ms | CPU, ms | +CPU | first answer, ms | CPU, ms | +CPU |
|---|---:|---:|---:|---:|---:|---:|
${startupTable}

` : ''}## Per request

| scenario | variant | CPU µs/request | CPU ratio | req/s | rps ratio | p50 / p99 ms |
|---|---|---:|---:|---:|---:|---:|
${table}

${memory.length ? `## Memory at the largest session

\`bench/memory.mjs\`: each backend's worker started afresh with \`MAX_SESSION_BYTES\` at its documented maximum
(${MAXIMA.kv} bytes on KV, ${MAXIMA.durable_object} in strong mode), then a create of that size, a read, a PUT of that
size and a PATCH of that size replacing every member, in turn. **Wasm memory**: the isolate's linear memory after
the request (it only grows: the peak so far). **JS heap**: V8's used heap after it. **process peak**: workerd's
peak resident memory during the request above its memory before (it also runs the local KV or SQLite serving it).

| backend | request | Wasm memory, MiB | JS heap, MiB | process peak, MiB |
|---|---|---:|---:|---:|
${memory.flatMap((m) => m.rows.map((r, i) => `| ${i === 0 ? m.backend : ''} | ${r.name} | ${(r.wasm / 2 ** 20).toFixed(1)} | ${(r.heap / 2 ** 20).toFixed(1)} | +${(r.peak / 2 ** 20).toFixed(1)} |`)).join('\n')}

` : ''}${floorRows.length ? `## Strong mode against its floor

\`bench/strong-floor.js\`: a JavaScript Worker and a JavaScript Durable Object (SQLite storage) doing per route what
strong mode does (the same statements, the alarm at expiry on every write, the same sealing through WebCrypto), with
no validation, routing or logging. Measured in the same rounds as the table above. Ratio = floor ÷ strong mode, the
median of per-round ratios (range): ≥ 1.0 means strong mode costs no more than its floor. The rows marked
*(strong again)* are the same build served a second time: how far they read from strong mode's is the run's spread.

| scenario | strong mode CPU µs/request | strong floor CPU µs/request | ratio |
|---|---:|---:|---:|
${floorRows.join('\n')}

` : ''}## Concurrent writers

50 parallel \`PATCH /add/:id\` on one session, each adding its own key:

| backend | acknowledged | lost |
|---|---:|---:|
| KV | ${concurrency.kv.acknowledged} | ${concurrency.kv.lost} |
| strong mode (Durable Objects) | ${concurrency.strong.acknowledged} | ${concurrency.strong.lost} |

## Merging, natively

\`cargo bench --bench merge\`: a patch merged into a session, both of \`keys\` members (half of the
patch's keys already in the session); median and slowest of 50 runs.

| keys | session bytes | patch bytes | merge | median ms | max ms |
|---:|---:|---:|---|---:|---:|
${merges.map((m) => `| ${m.keys} | ${m.targetBytes} | ${m.patchBytes} | ${m.how} | ${m.medianMs.toFixed(2)} | ${m.maxMs.toFixed(2)} |`).join('\n')}

## Size

| build/index_bg.wasm | bytes | KiB |
|---|---:|---:|
| raw | ${size.raw} | ${(size.raw / 1024).toFixed(1)} |
| gzip -9 | ${size.gzip} | ${(size.gzip / 1024).toFixed(1)} |
`;
  // BENCH_OUT: where the table goes instead (relative to the repository, or absolute).
  const out = process.env.BENCH_OUT ?? (smoke ? 'bench/.work-smoke-results.md' : 'bench/results.md');
  writeFileSync(resolve(ROOT, out), md);
  console.log(md);
} finally {
  await Promise.all(Object.values(workers).map((w) => w.stop()));
  for (const v of VARIANTS) if (v.config) rmSync(join(ROOT, v.config), { force: true });
}
