// `npm run bench`: session-state against a plain JavaScript Worker doing the same KV operations,
// both in `wrangler dev` (workerd, local KV) on this machine, driven by wrk with A, B, A, B
// alternation. Writes bench/results.md. `--smoke` runs one short round (CI), with no thresholds.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { ROOT, startWorker } from '../tests/e2e/harness.mjs';

const smoke = process.argv.includes('--smoke');
const ROUNDS = smoke ? 1 : Number(process.env.BENCH_ROUNDS ?? 5);
const SECONDS = smoke ? 1 : Number(process.env.BENCH_SECONDS ?? 5);
const WARMUP_SECONDS = smoke ? 1 : 2;
const CONCURRENCY = 8;

function ensureWrk() {
  if (spawnSync('wrk', ['-v']).error === undefined) return;
  console.log('[bench] installing wrk from Debian');
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
  execFileSync('apt-get', ['install', '-y', '-qq', 'wrk'], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };

function session(bytes) {
  const data = { user: 'ada', roles: ['admin', 'editor'], createdBy: 'bench' };
  let i = 0;
  while (JSON.stringify(data).length < bytes - 40) data[`k${i++}`] = 'x'.repeat(Math.min(64, bytes - JSON.stringify(data).length - 48));
  return JSON.stringify(data);
}

async function post(url, body) {
  const response = await fetch(`${url}/create`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  if (response.status !== 201) throw new Error(`create: ${response.status}`);
  return response.text();
}

function wrk(url, { method, path, body }, seconds) {
  const out = execFileSync('wrk', ['-t', '2', '-c', String(CONCURRENCY), '-d', `${seconds}s`, '--latency', '-s', join(ROOT, 'bench/wrk.lua'), url], {
    encoding: 'utf8', env: { ...process.env, BENCH_METHOD: method, BENCH_PATH: path, BENCH_BODY: body ?? '' },
  });
  const line = out.split('\n').find((l) => l.startsWith('BENCH_JSON '));
  const r = JSON.parse(line.slice('BENCH_JSON '.length));
  return { rps: r.requests / r.seconds, p50: r.p50_us / 1000, p99: r.p99_us / 1000, errors: r.errors };
}

ensureWrk();
execFileSync('bash', [join(ROOT, 'scripts/build.sh')], { stdio: 'inherit' });

// The merge itself, natively: 8,000 keys into 8,000, and ten times fewer.
const merges = execFileSync('cargo', ['bench', '--quiet', '--bench', 'merge'], { cwd: ROOT, encoding: 'utf8' })
  .split('\n').filter((l) => l.startsWith('MERGE_BENCH ')).map((l) => JSON.parse(l.slice('MERGE_BENCH '.length)));
const wasm = readFileSync(join(ROOT, 'build/index_bg.wasm'));
const size = { raw: wasm.length, gzip: gzipSync(wasm, { level: 9 }).length };

// session-state as shipped (a JSON log line per request), session-state with LOG_REQUESTS=false
// (the baseline logs nothing), and the baseline.
const VARIANTS = ['session-state', 'session-state (no request log)', 'baseline'];
const workers = {
  [VARIANTS[0]]: await startWorker(),
  [VARIANTS[1]]: await startWorker({ vars: { LOG_REQUESTS: 'false' } }),
  [VARIANTS[2]]: await startWorker({ configs: ['bench/wrangler.toml'] }),
};
try {
  const dir = mkdtempSync(join(tmpdir(), 'bench-'));
  const small = session(200);
  const large = session(60 * 1024);
  const patch = JSON.stringify(Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`p${i}`, `value-${i}`])));
  writeFileSync(join(dir, 'small.json'), small);
  writeFileSync(join(dir, 'patch.json'), patch);
  const ids = {};
  for (const [name, w] of Object.entries(workers)) {
    ids[name] = { small: await post(w.url, small), large: await post(w.url, large), patched: await post(w.url, large) };
  }
  const scenarios = [
    { name: 'GET /get/:id (200 B session)', req: (id) => ({ method: 'GET', path: `/get/${id.small}` }) },
    { name: 'GET /get/:id (60 KiB session)', req: (id) => ({ method: 'GET', path: `/get/${id.large}` }) },
    { name: 'PATCH /add/:id (10 keys into 60 KiB)', req: (id) => ({ method: 'PATCH', path: `/add/${id.patched}`, body: join(dir, 'patch.json') }) },
    { name: 'POST /create (200 B)', req: () => ({ method: 'POST', path: '/create', body: join(dir, 'small.json') }) },
  ];
  const results = [];
  for (const scenario of scenarios) {
    const runs = Object.fromEntries(VARIANTS.map((name) => [name, []]));
    for (const [name, w] of Object.entries(workers)) wrk(w.url, scenario.req(ids[name]), WARMUP_SECONDS);
    for (let round = 0; round < ROUNDS; round += 1) {
      for (const name of VARIANTS) {
        const r = wrk(workers[name].url, scenario.req(ids[name]), SECONDS);
        if (r.errors > 0) throw new Error(`${scenario.name} on ${name}: ${r.errors} errors`);
        runs[name].push(r);
        console.log(`[bench] ${scenario.name} round ${round + 1} ${name}: ${r.rps.toFixed(0)} req/s p50 ${r.p50.toFixed(2)} ms p99 ${r.p99.toFixed(2)} ms`);
      }
    }
    const summary = (name) => ({
      rps: median(runs[name].map((r) => r.rps)), p50: median(runs[name].map((r) => r.p50)), p99: median(runs[name].map((r) => r.p99)),
    });
    const ratio = (name) => median(runs[name].map((r, i) => r.rps / runs.baseline[i].rps));
    results.push({
      name: scenario.name, ours: summary(VARIANTS[0]), quiet: summary(VARIANTS[1]), base: summary('baseline'),
      ratio: ratio(VARIANTS[0]), quietRatio: ratio(VARIANTS[1]),
    });
  }

  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  const kvOps = [['create', 1], ['get', 1], ['update', 2], ['add', 2], ['touch', 2], ['delete', 1, '2 with If-Match'], ['rotate', 3]];
  const ms = (x) => `${x.p50.toFixed(1)} / ${x.p99.toFixed(1)}`;
  const table = results.map((r) => `| ${r.name} | ${r.ours.rps.toFixed(0)} | ${r.quiet.rps.toFixed(0)} | ${r.base.rps.toFixed(0)} | **${r.ratio.toFixed(2)}** | **${r.quietRatio.toFixed(2)}** | ${ms(r.ours)} | ${ms(r.quiet)} | ${ms(r.base)} |`).join('\n');
  const md = `# Benchmark results

${smoke ? '**Smoke run (one short round): not a measurement.**\n\n' : ''}Produced by \`npm run bench\` on ${new Date().toISOString().slice(0, 10)}: ${cpus().length} × ${cpu}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB,
Node ${process.version}. Both Workers run in \`wrangler dev\` (workerd, local KV on disk) on this machine;
wrk with ${CONCURRENCY} connections, ${SECONDS} s per run after ${WARMUP_SECONDS} s of warm-up, ${ROUNDS} round(s), each running
A (session-state as shipped), B (session-state with \`LOG_REQUESTS=false\`), C (baseline) in turn. Figures are
medians over rounds; a ratio is the median of per-round ratios of requests/s against the baseline (≥ 1.0: at
least as fast). The baseline is \`bench/baseline.js\`: the same KV operations with no validation, routing,
metadata or logging.

| scenario | A req/s | B req/s | baseline req/s | A ÷ base | B ÷ base | A p50 / p99 ms | B p50 / p99 ms | base p50 / p99 ms |
|---|---:|---:|---:|---:|---:|---:|---:|---:|
${table}

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

## KV operations per call

Asserted by the native unit tests in \`src/sessions.rs\` (an in-memory store that counts operations).

| route | KV operations |
|---|---|
${kvOps.map(([r, n, note]) => `| ${r} | ${n}${note ? ` (${note})` : ''} |`).join('\n')}
`;
  writeFileSync(join(ROOT, smoke ? 'bench/.work-smoke-results.md' : 'bench/results.md'), md);
  console.log(md);
} finally {
  await Promise.all(Object.values(workers).map((w) => w.stop()));
}
