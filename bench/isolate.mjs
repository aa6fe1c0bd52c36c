// `node bench/isolate.mjs [scenario] [variant ...]`: what a request costs the Worker itself, apart
// from everything else `wrangler dev` runs in the same workerd process.
//
// `npm run bench` reads the CPU of the whole workerd process, where the Worker's own turns are a
// fifth or less: the rest is miniflare's entry Worker, its local KV and its local log collector,
// the same for every variant but not the same from one run to the next, so a change of a few
// percent of the Worker's own work is lost in it. This reads the Worker's share alone: workerd's
// async trace (`serve --async-trace`) records every turn a context runs, with the moment it took
// the isolate's lock and the moment it let go, on the machine's clock (the isolate's own clocks
// stand still while code runs). Summed over the turns of the Worker's contexts (and, in strong
// mode, of its Durable Objects) and divided by the requests it served between two marked
// requests, that is the time the Worker held its isolate per request: its own JavaScript and
// Wasm, and the runtime calls they make. Tracing writes a line per event, which costs a little
// in every variant alike: compare variants side by side, as here, not with `npm run bench`.
//
// wrk (one thread, ISOLATE_CONNECTIONS connections, default 2) calls the Worker's own workerd
// directly, not through wrangler's proxy, and runs on the first core with that workerd pinned to
// the second: what else the machine runs stays out of the turns, and the same build reads within
// 1-2 % from round to round. ISOLATE_HEADERS ('name: value' lines) adds headers to every request,
// as a real caller's would carry.
//
// Each variant is warmed up for ISOLATE_WARMUP seconds (default 10) before its window: V8 runs a
// Wasm function first as Liftoff's quick code and compiles it again with TurboFan once it is hot,
// on a background thread, which here shares the pinned core with the turns. Measured warm for 2 s
// (this tool's default until 2026-12-07), a KV GET of 200 B read 326-345 µs held; warm for 6, 10
// and 20 s, 308, 292 and 289; with V8 told to compile every function with TurboFan at the start
// (`MINIFLARE_WORKERD_V8_FLAGS=--no-wasm-dynamic-tiering`), 272 after 2 s; and with Liftoff only,
// 394. The JavaScript baseline reads the same after 2 s or 15 s (279, 287). An isolate serves
// long after its first seconds: the steady state is what a request costs.
//
// Variants: `shipped` (build/ as it is), `baseline` (bench/baseline.js), `floor`
// (bench/strong-floor.js, strong mode's), or `name=dir` (session-state served from the build in
// `dir`). SESSION_BACKEND=durable_object serves session-state in strong mode. Scenarios: health,
// get (200 B), get-6k (6 KiB), get-large (58 KiB), patch (10 keys into 58 KiB), create, touch;
// ISOLATE_BYTES sets the size of the session get-6k reads and create makes (6 KiB and 200 B).
// ISOLATE_ROUNDS rounds (default 5) of ISOLATE_SECONDS (default 3) each, the variants in turn,
// each round starting one later. Prints each round, then per variant the medians over rounds of
// the mean per request and of the median request (the worker's stateless part), and the first
// variant ÷ this one, by round.
import { execFileSync } from 'node:child_process';
import { chmodSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { ROOT, startWorker } from '../tests/e2e/harness.mjs';
import { inTurn, median } from './rounds.mjs';
import { asked, forget, target, variantsOf } from './scenarios.mjs';
import { threadsMs } from './startup.mjs';

const ROUNDS = Number(process.env.ISOLATE_ROUNDS ?? 5);
const WARMUP = Number(process.env.ISOLATE_WARMUP ?? 10);
const SECONDS = Number(process.env.ISOLATE_SECONDS ?? 3);
const { scenario, names, bytes: BYTES, strong: STRONG, work } = asked();

// workerd as miniflare would run it, with the trace on: miniflare takes the binary it runs from
// MINIFLARE_WORKERD_PATH.
const workerd = createRequire(join(ROOT, 'node_modules/miniflare/package.json'))('workerd').default;
const wrapper = join(work, 'workerd-traced.sh');
writeFileSync(wrapper, `#!/bin/sh\nif [ "$1" = serve ]; then shift; exec "${workerd}" serve --async-trace "$ISOLATE_TRACE.$$" "$@"; fi\nexec "${workerd}" "$@"\n`);
chmodSync(wrapper, 0o755);

const variants = variantsOf(names, 'isolate');
const request = (url) => target(url, scenario, work, BYTES);

function wrk(url, { method, path, body }, seconds) {
  // ISOLATE_HEADERS ('name: value' lines): headers every request carries besides wrk's own
  // (Host), as a caller's would (what strong mode passes on to the object grows with them).
  const headers = (process.env.ISOLATE_HEADERS ?? '').split('\n').filter(Boolean).flatMap((line) => ['-H', line]);
  execFileSync('taskset', ['-c', '0', 'wrk', '-t', '1', '-c', String(process.env.ISOLATE_CONNECTIONS ?? 2), '-d', `${seconds}s`, ...headers, '-s', join(ROOT, 'bench/wrk.lua'), url], {
    encoding: 'utf8', env: { ...process.env, BENCH_METHOD: method, BENCH_PATH: path, BENCH_BODY: body ?? '', BENCH_PATHS: '' },
  });
}

/**
 * The Worker's turns in the window between the two marks: µs held per request (all its
 * contexts, objects included, over the requests its stateless contexts served), the median
 * request's (stateless part), and how many requests.
 */
function read(files, worker) {
  const text = files.map((f) => readFileSync(f, 'utf8')).find((t) => t.includes(`"worker":"core:user:${worker}"`));
  if (!text) throw new Error(`no trace holds core:user:${worker}`);
  const contexts = new Map(); // ctx id → { worker, actor, generation }
  const generation = new Map();
  const events = [];
  const marks = [];
  const lastAt = new Map(); // ctx → the time of its last event so far (the file is not in time order)
  for (const line of text.split('\n')) {
    if (!line) continue;
    let e;
    try { e = JSON.parse(line); } catch { continue; }
    if (e.e === 'ctx') generation.set(e.ctx, (generation.get(e.ctx) ?? 0) + 1);
    if (e.ctx === undefined) continue;
    const key = `${e.ctx}/${generation.get(e.ctx) ?? 0}`;
    if (e.at !== undefined) lastAt.set(key, e.at);
    if (e.e === 'ctx') contexts.set(key, { worker: e.worker, actor: e.actor !== null });
    if (e.e === 'annotate' && e.k === 'url.full' && e.v.includes('isolate-mark')) marks.push(lastAt.get(key));
    if (e.e === 'turn' || (e.e === 'init' && e.kind === 'request')) events.push({ ...e, key });
  }
  if (marks.length < 2) throw new Error(`the window's marks are not in the trace of core:user:${worker} (was it flushed?)`);
  const [from, to] = [Math.min(...marks), Math.max(...marks)];
  const ours = (key) => contexts.get(key)?.worker === `core:user:${worker}`;
  const perRequest = new Map();
  let held = 0;
  let objects = 0;
  let requests = 0;
  for (const e of events) {
    if (!ours(e.key)) continue;
    if (e.e === 'init') {
      if (e.at > from && e.at < to && !contexts.get(e.key).actor) { requests++; perRequest.set(e.key, 0); }
      continue;
    }
    if (e.locked <= from || e.locked >= to) continue;
    held += e.end - e.locked;
    if (contexts.get(e.key).actor) objects += e.end - e.locked;
    if (perRequest.has(e.key)) perRequest.set(e.key, perRequest.get(e.key) + e.end - e.locked);
  }
  return { mean: held / requests / 1e3, objects: objects / requests / 1e3, median: median([...perRequest.values()]) / 1e3, requests };
}

const results = Object.fromEntries(variants.map((v) => [v.name, []]));
for (let round = 0; round < ROUNDS; round++) {
  const order = inTurn(variants, round);
  for (const variant of order) {
    const trace = join(work, `isolate-${variant.name.replace(/\W/g, '_')}.trace`);
    // One file per workerd process (wrangler runs its proxy in one and the Worker in another).
    const traces = () => readdirSync(work).filter((f) => f.startsWith(`${trace.split('/').at(-1)}.`)).map((f) => join(work, f));
    for (const f of traces()) rmSync(f);
    process.env.MINIFLARE_WORKERD_PATH = wrapper;
    process.env.ISOLATE_TRACE = trace;
    const worker = await startWorker({ configs: variant.configs });
    let processMs = 0;
    try {
      // Straight to the Worker's own workerd, not through wrangler's proxy, with that process on
      // the second core and wrk on the first: less of the machine's other work in the turns.
      const url = await worker.directUrl();
      execFileSync('taskset', ['-a', '-cp', '1', String(await worker.workerdPid())], { stdio: 'ignore' });
      const target = await request(url);
      wrk(url, target, WARMUP);
      const pid = await worker.workerdPid();
      await fetch(`${url}/health?isolate-mark`).then((r) => r.text());
      const before = threadsMs(pid);
      wrk(url, target, SECONDS);
      processMs = threadsMs(pid) - before;
      await fetch(`${url}/health?isolate-mark`).then((r) => r.text());
      // The trace is written behind: enough traffic after the window pushes it all out.
      wrk(url, { method: 'GET', path: '/health' }, 3);
    } finally {
      await worker.stop();
      delete process.env.MINIFLARE_WORKERD_PATH;
    }
    const r = read(traces(), variant.worker);
    r.process = (processMs * 1e3) / r.requests;
    results[variant.name].push(r);
    console.log(`round ${round + 1} ${variant.name.padEnd(12)} ${r.mean.toFixed(1).padStart(7)} µs/request held (objects ${r.objects.toFixed(1)}; median request ${r.median.toFixed(1)}), ${r.requests} requests; process CPU ${r.process.toFixed(0)} µs/request`);
    if (!process.env.ISOLATE_KEEP) for (const f of traces()) rmSync(f);
  }
}
const first = variants[0].name;
console.log(`\n${scenario}${STRONG ? ', strong mode' : ''}: µs the Worker held its isolate per request, median of ${ROUNDS} rounds of ${SECONDS} s, each after ${WARMUP} s of warm-up`);
for (const { name } of variants) {
  const rs = results[name];
  const ratios = rs.map((r, i) => results[first][i].mean / r.mean);
  console.log(`${name.padEnd(12)} mean ${median(rs.map((r) => r.mean)).toFixed(1).padStart(7)}  median request ${median(rs.map((r) => r.median)).toFixed(1).padStart(7)}` +
    (name === first ? '' : `  ${first} ÷ ${name}: ${median(ratios).toFixed(3)} (${ratios.map((x) => x.toFixed(2)).join(' ')}); median requests: ${median(rs.map((r, i) => results[first][i].median / r.median)).toFixed(3)}`));
}
forget(variants);
