// `node bench/profile.mjs [scenario] [seconds]`: a CPU profile of session-state under load.
// Starts the worker in `wrangler dev`, drives the V8 profiler through the inspector while wrk
// runs one scenario, saves `bench/.work/<scenario>.cpuprofile` (open it in Chrome DevTools, or
// any .cpuprofile viewer) and prints where the time went: self time by function, JavaScript glue
// and Wasm functions by name, and by group (our Rust, the worker crate, wasm-bindgen glue, the
// runtime).
//
// Scenarios: health, get (200 B), get-large (58 KiB), patch (10 keys into 58 KiB), create.
// Set SESSION_BACKEND=durable_object to profile strong mode; `--baseline` profiles the JS
// baseline (bench/baseline.js) instead, and `--floor` strong mode's floor (bench/strong-floor.js),
// for a side-by-side reading. The objects run in the worker's isolate locally, so one profile
// holds both halves of a strong-mode request.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, startWorker } from '../tests/e2e/harness.mjs';
import { PATCH, session } from './bodies.mjs';

const baseline = process.argv.includes('--baseline');
const floor = process.argv.includes('--floor');
const [scenario = 'get', seconds = 5] = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const prefix = baseline ? 'baseline-' : floor ? 'floor-' : '';

// Wasm functions by name: a build with the names section, kept aside. The worker then serves the
// usual stripped build (wrangler's build step makes it), which differs only in that section, so
// function indices are the same.
const dir = join(ROOT, 'bench/.work');
mkdirSync(dir, { recursive: true });
execFileSync('bash', [join(ROOT, 'scripts/build.sh'), '--keep-names'], { stdio: 'inherit' });
const named = readFileSync(join(ROOT, 'build/index_bg.wasm'));
const worker = baseline || floor
  ? await startWorker({ configs: [baseline ? 'bench/wrangler.toml' : 'bench/strong-floor.toml'] })
  : await startWorker({ vars: process.env.LOG_REQUESTS ? { LOG_REQUESTS: process.env.LOG_REQUESTS } : {} });
try {
  const post = async (body) => (await fetch(`${worker.url}/create`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })).text();
  writeFileSync(join(dir, 'small.json'), session(200));
  writeFileSync(join(dir, 'patch.json'), PATCH);
  const requests = {
    health: { method: 'GET', path: '/health' },
    get: { method: 'GET', path: `/get/${await post(session(200))}` },
    'get-large': { method: 'GET', path: `/get/${await post(session(58 * 1024))}` },
    patch: { method: 'PATCH', path: `/add/${await post(session(58 * 1024))}`, body: join(dir, 'patch.json') },
    create: { method: 'POST', path: '/create', body: join(dir, 'small.json') },
  };
  const request = requests[scenario];
  if (!request) throw new Error(`no scenario ${scenario}: one of ${Object.keys(requests).join(', ')}`);

  const send = worker.inspect;

  const wrk = (duration) => execFileSync('wrk', ['-t', '2', '-c', '8', '-d', `${duration}s`, '-s', join(ROOT, 'bench/wrk.lua'), worker.url], {
    encoding: 'utf8', env: { ...process.env, BENCH_METHOD: request.method, BENCH_PATH: request.path, BENCH_BODY: request.body ?? '' },
  });
  wrk(2);
  await send('Profiler.enable');
  await send('Profiler.setSamplingInterval', { interval: 100 });
  await send('Profiler.start');
  const out = wrk(seconds);
  const { result } = await send('Profiler.stop');
  const file = join(dir, `${prefix}${scenario}.cpuprofile`);
  writeFileSync(file, JSON.stringify(result.profile));

  // The source the runtime ran, from the runtime itself, for naming anonymous JavaScript
  // functions (wrangler's bundle on disk may be gone or another one).
  await send('Debugger.enable');
  const sources = new Map();
  for (const { callFrame } of result.profile.nodes) {
    if (!callFrame.url.endsWith('.js') || sources.has(callFrame.scriptId)) continue;
    const script = await send('Debugger.getScriptSource', { scriptId: callFrame.scriptId }).catch(() => null);
    const text = script?.result?.scriptSource ?? '';
    sources.set(callFrame.scriptId, text.split('\n'));
    if (text) writeFileSync(join(dir, `${prefix}${scenario}.script-${callFrame.scriptId}.js`), text);
  }
  const served = JSON.parse(out.split('\n').find((l) => l.startsWith('BENCH_JSON ')).slice(11)).requests;
  const { nodes, samples, timeDeltas } = result.profile;
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const self = new Map();
  samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (timeDeltas[i] ?? 0)));
  const wasmNames = functionNames(named);
  const byFunction = new Map();
  for (const [id, us] of self) {
    const { functionName, url } = byId.get(id).callFrame;
    const index = /^wasm-function\[(\d+)\]$/.exec(functionName)?.[1];
    const { lineNumber, columnNumber, scriptId } = byId.get(id).callFrame;
    const line = sources.get(scriptId)?.[lineNumber];
    // wasm-bindgen's imports are anonymous functions under a `__wbg_<name>_<hash>` key.
    const glue = line && [...line.slice(0, columnNumber + 1).matchAll(/(__wbg_\w+?)_[0-9a-f]{16}: /g)].pop()?.[1];
    const anonymous = glue
      ? `${glue} (index.js:${lineNumber + 1})`
      : line
        ? `(${url.split('/').pop()}:${lineNumber + 1} ${line.slice(columnNumber, columnNumber + 70).trim()})`
        : `(anonymous ${url.split('/').pop()})`;
    const name = (index && wasmNames.get(Number(index))) || functionName || anonymous;
    byFunction.set(name, (byFunction.get(name) ?? 0) + us);
  }
  const group = (name) => {
    if (/^\((idle|program|garbage collector|root)\)$/.test(name)) return name;
    if (name.includes('session_state')) return 'session-state (Rust)';
    if (/\bworker(_sys)?::|worker\[/.test(name)) return 'worker crate (Rust)';
    // An import's self time includes the platform call it makes when V8 shows no frame for it.
    if (/^__wbg|^__wbindgen/.test(name)) return 'wasm-bindgen imports (and platform calls inside them)';
    if (/wasm_bindgen|js_sys|web_sys/.test(name)) return 'wasm-bindgen glue (Rust side)';
    if (/core::|alloc::|dlmalloc|std::/.test(name)) return 'Rust std';
    return 'JavaScript and runtime';
  };
  const groups = new Map();
  for (const [name, us] of byFunction) groups.set(group(name), (groups.get(group(name)) ?? 0) + us);
  const perRequest = (us) => (us / served).toFixed(1).padStart(8);
  console.log(`\n${scenario}: ${served} requests; profile in ${file}\n\nself time per request (µs), by group:`);
  for (const [name, us] of [...groups].sort((a, b) => b[1] - a[1])) console.log(`${perRequest(us)}  ${name}`);
  console.log('\ntop functions by self time per request (µs):');
  for (const [name, us] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, 40)) console.log(`${perRequest(us)}  ${name.slice(0, 150)}`);
} finally {
  await worker.stop();
}


/** Function names by index, from a Wasm module's `name` section (V8's profile gives indices). */
function functionNames(wasm) {
  const names = new Map();
  let at = 8;
  const leb = () => {
    let result = 0;
    let shift = 0;
    for (;;) {
      const byte = wasm[at++];
      result += (byte & 0x7f) * 2 ** shift;
      shift += 7;
      if (byte < 0x80) return result;
    }
  };
  const text = () => { const length = leb(); const value = wasm.subarray(at, at + length).toString('utf8'); at += length; return value; };
  while (at < wasm.length) {
    const id = wasm[at++];
    const size = leb();
    const end = at + size;
    if (id === 0 && text() === 'name') {
      while (at < end) {
        const sub = wasm[at++];
        const subSize = leb();
        const subEnd = at + subSize;
        if (sub === 1) for (let count = leb(); count > 0; count -= 1) { const index = leb(); names.set(index, text()); }
        at = subEnd;
      }
    }
    at = end;
  }
  return names;
}
