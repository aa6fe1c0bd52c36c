// The variants and scenarios that bench/isolate.mjs and bench/instructions.mjs measure side by
// side, made in one place so that both tools serve the same Workers the same requests.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../tests/e2e/harness.mjs';
import { PATCH, session } from './bodies.mjs';
import { configServing } from './builds.mjs';

export const SCENARIOS = ['health', 'get', 'get-6k', 'get-large', 'patch', 'create', 'touch'];

/**
 * What a tool's command line and environment ask: `[scenario] [variant ...]` (get; shipped and
 * baseline), ISOLATE_BYTES, strong mode (SESSION_BACKEND=durable_object), and the directory its
 * files go in (made).
 */
export function asked() {
  const args = process.argv.slice(2);
  const scenario = SCENARIOS.includes(args[0]) ? args.shift() : 'get';
  const work = join(ROOT, 'bench/.work');
  mkdirSync(work, { recursive: true });
  return {
    scenario,
    names: args.length ? args : ['shipped', 'baseline'],
    bytes: process.env.ISOLATE_BYTES ? Number(process.env.ISOLATE_BYTES) : undefined,
    strong: process.env.SESSION_BACKEND === 'durable_object',
    work,
  };
}

/**
 * The Workers named: `shipped` (build/ as it is), `baseline` (bench/baseline.js), `floor`
 * (bench/strong-floor.js, strong mode's), or `name=dir` (session-state served from the build in
 * `dir`; its wrangler config is written as `.wrangler-<tool>-<dir>.toml`, which `forget` removes).
 */
export function variantsOf(names, tool) {
  return names.map((name) => {
    if (name === 'baseline') return { name, worker: 'session-state-baseline', configs: ['bench/wrangler.toml'] };
    if (name === 'floor') return { name, worker: 'session-state-strong-floor', configs: ['bench/strong-floor.toml'] };
    const dir = name === 'shipped' ? join(ROOT, 'build') : name.split('=')[1];
    return { name: name.split('=')[0], worker: 'session-state', configs: [configServing(dir, `.wrangler-${tool}-${dir.replace(/\W/g, '_')}.toml`)] };
  });
}

/** Removes the configs that `variantsOf` wrote. */
export function forget(variants) {
  for (const v of variants) if (v.configs[0].startsWith('.wrangler-')) rmSync(join(ROOT, v.configs[0]), { force: true });
}

/**
 * The request `scenario` repeats against the Worker at `url` ({ method, path, body: a file or
 * undefined }), with the session it reads made first. `bytes` sets the size of the session
 * get-6k reads and create makes (6 KiB and 200 B); the body files are written in `work`.
 */
export async function target(url, scenario, work, bytes) {
  const post = async (body) => {
    const response = await fetch(`${url}/create`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    if (response.status !== 201) throw new Error(`create: ${response.status}`);
    return response.text();
  };
  writeFileSync(join(work, 'scenario-small.json'), session(bytes ?? 200));
  writeFileSync(join(work, 'scenario-patch.json'), PATCH);
  switch (scenario) {
    case 'health': return { method: 'GET', path: '/health' };
    case 'get': return { method: 'GET', path: `/get/${await post(session(200))}` };
    case 'get-6k': return { method: 'GET', path: `/get/${await post(session(bytes ?? 6 * 1024))}` };
    case 'get-large': return { method: 'GET', path: `/get/${await post(session(58 * 1024))}` };
    case 'patch': return { method: 'PATCH', path: `/add/${await post(session(58 * 1024))}`, body: join(work, 'scenario-patch.json') };
    case 'create': return { method: 'POST', path: '/create', body: join(work, 'scenario-small.json') };
    default: return { method: 'POST', path: `/touch/${await post(session(200))}` };
  }
}
