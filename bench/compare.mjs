// `node bench/compare.mjs <log> <A> <B>`: two variants of one `node bench/run.mjs` run side by
// side, from the log it printed (its `[bench] <scenario> round <n> <variant>: ...` lines). For each
// scenario both ran: A's CPU per request ÷ B's, as the median of the per-round ratios (rounds
// pair the variants: they ran in the same minutes), each round's ratio, and each variant's median
// CPU. ≥ 1 means B costs less. How a change is measured beside the build before it:
//
//   BENCH_BUILDS="before=/tmp/before,after=/tmp/after" BENCH_VARIANTS="before,after" \
//     node bench/run.mjs > /tmp/run.log
//   node bench/compare.mjs /tmp/run.log before after
import { readFileSync } from 'node:fs';
import { median } from './rounds.mjs';

const [log, a, b] = process.argv.slice(2);
if (!log || !a || !b) {
  console.error('usage: node bench/compare.mjs <log> <variant A> <variant B>');
  process.exit(2);
}

const line = /^\[bench\] (.+?) round (\d+) (.+?): .*?([\d.]+) µs CPU\/request/;
const scenarios = new Map();
for (const text of readFileSync(log, 'utf8').split('\n')) {
  const match = line.exec(text);
  if (!match) continue;
  const [, scenario, round, variant, cpu] = match;
  if (!scenarios.has(scenario)) scenarios.set(scenario, new Map());
  const rounds = scenarios.get(scenario);
  if (!rounds.has(round)) rounds.set(round, {});
  rounds.get(round)[variant] = Number(cpu);
}

let shown = 0;
for (const [scenario, rounds] of scenarios) {
  const both = [...rounds.values()].filter((round) => round[a] && round[b]);
  if (both.length === 0) continue;
  shown += 1;
  const ratios = both.map((round) => round[a] / round[b]);
  const cpu = (name) => median(both.map((round) => round[name])).toFixed(0);
  console.log(`${scenario}: ${a} ÷ ${b} = ${median(ratios).toFixed(3)} `
    + `[${ratios.map((r) => r.toFixed(2)).join(' ')}]; `
    + `median µs CPU/request ${a} ${cpu(a)}, ${b} ${cpu(b)}`);
}
if (shown === 0) {
  console.error(`no scenario in ${log} has rounds of both ${a} and ${b}`);
  process.exit(1);
}
