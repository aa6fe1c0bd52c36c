// `node bench/instructions.mjs [scenario] [variant ...]`: the instructions a request costs the
// process that serves it, counted by valgrind (callgrind), for machines where time cannot say.
//
// bench/isolate.mjs reads the Worker's own time to 1-2 % on a quiet machine. On a noisy one it
// cannot: on 2026-12-07 (2 × AMD EPYC) the same build's KV GET of 200 B held 205 µs a request in
// one round and 415 in another, and workerd's whole CPU per request moved between 2,000 and
// 2,660 µs from one 5 s window to the next with nothing else running. What moved was the time an
// instruction takes (the machine's caches, shared with its neighbours), not how many there are:
// counted here, the same build read 4,571,406 and 4,569,769 instructions a request in two runs
// (0.04 % apart), while that machine's other work ran beside them.
//
// Each variant's workerd runs under callgrind with its instrumentation off (V8 runs as it would,
// only slower) for INSTR_WARMUP requests (default 2,000: enough for V8 to have compiled the hot
// Wasm and JavaScript with TurboFan), then counts every instruction any of its threads runs over
// INSTR_REQUESTS requests (default 1,000), sent one after another by curl on one kept-alive
// connection. The count is the whole process's: miniflare's entry Worker, its local KV and log
// collector are in it, the same for every variant; the difference between two variants is
// theirs alone. An instruction is not a unit of time (a cache miss costs many), so a change
// that this counts as cheaper is then one to confirm on a quiet machine, and a change that moves
// memory (copies, allocation) is one it may undercount.
//
// Variants and scenarios as in bench/isolate.mjs (bench/scenarios.mjs); SESSION_BACKEND and
// ISOLATE_BYTES as there. INSTR_ROUNDS (default 1) repeats each variant. Needs valgrind
// (`apt-get install valgrind`); about 3 minutes a variant.
//
// V8 runs with `--predictable` (INSTR_V8_FLAGS, given to workerd through miniflare's
// MINIFLARE_WORKERD_V8_FLAGS; empty for none): no compilation or collection on other threads,
// no timing-dependent choices. Without it the same build read 0.04-3 % from itself (JavaScript
// still interpreted in one run and compiled in another, collections at other moments); with
// it, 4,500,429, 4,500,527, 4,500,937 and 4,500,659 instructions a request in four windows of
// one run (0.01 %); across runs, or with other work beside it (the log collector batches by the
// clock), up to 0.5-0.7 %: compare variants within one run. Under it V8 compiles on the thread
// it runs on, so the counts are for comparing builds under the same flags, not for what a
// request costs in production.
//
// INSTR_KEEP=<dir> keeps each variant's counts there (`<variant>.<round>.<thread>`), by
// function, for `callgrind_annotate`: the runtime's own functions (its Headers, SQL, crypto, V8's
// builtins and collector) are named; code V8 generated (the Worker's JavaScript and Wasm) is not.
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { ROOT, startWorker } from '../tests/e2e/harness.mjs';
import { inTurn, median } from './rounds.mjs';
import { asked, forget, target, variantsOf } from './scenarios.mjs';

const WARMUP = Number(process.env.INSTR_WARMUP ?? 2000);
const REQUESTS = Number(process.env.INSTR_REQUESTS ?? 1000);
const ROUNDS = Number(process.env.INSTR_ROUNDS ?? 1);
const V8_FLAGS = process.env.INSTR_V8_FLAGS ?? '--predictable';
const KEEP = process.env.INSTR_KEEP;
const { scenario, names, bytes: BYTES, strong: STRONG, work } = asked();

for (const tool of ['valgrind', 'callgrind_control']) {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
  } catch {
    throw new Error(`${tool} is not installed: apt-get install valgrind`);
  }
}

// workerd as miniflare would run it, under callgrind: miniflare takes the binary it runs from
// MINIFLARE_WORKERD_PATH.
const workerd = createRequire(join(ROOT, 'node_modules/miniflare/package.json'))('workerd').default;
const counts = join(work, 'callgrind');
const wrapper = join(work, 'workerd-callgrind.sh');
writeFileSync(wrapper, `#!/bin/sh\nif [ "$1" = serve ]; then exec valgrind --tool=callgrind --instr-atstart=no --collect-atstart=yes --callgrind-out-file="${counts}.%p" "${workerd}" "$@" 2>/dev/null; fi\nexec "${workerd}" "$@"\n`);
chmodSync(wrapper, 0o755);

const variants = variantsOf(names, 'instructions');

/** Sends `target` `n` times, one after another, and checks each answer's status. */
function send(url, { method, path, body }, n) {
  const options = ['-s', '-X', method, '-w', '%{http_code}\n'];
  if (body) options.push('-H', 'content-type: application/json', '--data-binary', `@${body}`);
  for (let sent = 0; sent < n; sent += 50) {
    const batch = Math.min(50, n - sent);
    const urls = Array.from({ length: batch }, () => ['-o', '/dev/null', `${url}${path}`]).flat();
    const codes = execFileSync('curl', [...options, ...urls], { encoding: 'utf8' }).trim().split('\n');
    const failed = codes.find((code) => !code.startsWith('2'));
    if (failed || codes.length !== batch) throw new Error(`${method} ${path}: answered ${failed ?? `${codes.length} of ${batch}`}`);
  }
}

/**
 * The instructions callgrind dumped for `pid` since it was last zeroed (every thread's); the
 * counts are kept as `keep` names them when INSTR_KEEP is set.
 */
function dumped(pid, keep) {
  let total = 0;
  for (const f of readdirSync(work).filter((f) => f.startsWith(`callgrind.${pid}.`))) {
    const summary = readFileSync(join(work, f), 'utf8').match(/^(?:summary|totals): (\d+)/m);
    if (summary) total += Number(summary[1]);
    if (summary && KEEP) copyFileSync(join(work, f), join(KEEP, `${keep}.${f.split('.').at(-1)}`));
  }
  return total;
}

const results = Object.fromEntries(variants.map((v) => [v.name, []]));
if (KEEP) mkdirSync(KEEP, { recursive: true });
try {
  for (let round = 0; round < ROUNDS; round++) {
    for (const variant of inTurn(variants, round)) {
      for (const f of readdirSync(work).filter((f) => f.startsWith('callgrind.'))) rmSync(join(work, f));
      process.env.MINIFLARE_WORKERD_PATH = wrapper;
      if (V8_FLAGS) process.env.MINIFLARE_WORKERD_V8_FLAGS = V8_FLAGS;
      let worker;
      try {
        worker = await startWorker({ configs: variant.configs });
      } finally {
        delete process.env.MINIFLARE_WORKERD_PATH;
        delete process.env.MINIFLARE_WORKERD_V8_FLAGS;
      }
      try {
        const url = await worker.directUrl();
        const pid = String(await worker.workerdPid());
        const request = await target(url, scenario, work, BYTES);
        send(url, request, WARMUP);
        execFileSync('callgrind_control', ['-z', pid], { stdio: 'ignore' });
        execFileSync('callgrind_control', ['-i', 'on', pid], { stdio: 'ignore' });
        send(url, request, REQUESTS);
        execFileSync('callgrind_control', ['-d', pid], { stdio: 'ignore' });
        const perRequest = dumped(pid, `${variant.name}.${round + 1}`) / REQUESTS;
        if (!perRequest) throw new Error(`no instructions counted for ${variant.name}`);
        results[variant.name].push(perRequest);
        console.log(`round ${round + 1} ${variant.name.padEnd(12)} ${Math.round(perRequest).toLocaleString('en').padStart(11)} instructions/request`);
      } finally {
        await worker.stop();
      }
    }
  }
} finally {
  forget(variants);
  for (const f of readdirSync(work).filter((f) => f.startsWith('callgrind.'))) rmSync(join(work, f));
}

const first = variants[0].name;
console.log(`\n${scenario}${STRONG ? ', strong mode' : ''}: instructions the workerd process ran per request, over ${REQUESTS} requests after ${WARMUP}, median of ${ROUNDS} round(s), V8 flags: ${V8_FLAGS || 'none'}`);
for (const { name } of variants) {
  const mine = median(results[name]);
  const ratio = name === first ? '' : `  ${first} ÷ ${name}: ${(median(results[first]) / mine).toFixed(4)} (${(median(results[first]) - mine).toLocaleString('en', { maximumFractionDigits: 0 })} a request)`;
  console.log(`${name.padEnd(12)} ${Math.round(mine).toLocaleString('en').padStart(11)}${ratio}`);
}
