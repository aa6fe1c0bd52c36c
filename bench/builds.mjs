// session-state served from another build than build/ (a variant measured side by side).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../tests/e2e/harness.mjs';

/**
 * Writes `config` (a file name in the repository's root, which .gitignore leaves out) as
 * wrangler.toml with `main` in `dir`, no build step, and SESSION_BACKEND from the environment's
 * (strong mode with SESSION_BACKEND=durable_object); returns its name.
 */
export function configServing(dir, config) {
  const backend = process.env.SESSION_BACKEND === 'durable_object' ? 'durable_object' : 'kv';
  const toml = readFileSync(join(ROOT, 'wrangler.toml'), 'utf8')
    .replace(/^main = .*$/m, `main = ${JSON.stringify(join(dir, 'index.js'))}`)
    .replace(/^\[build\]\ncommand = .*$/m, '')
    .replace(/^SESSION_BACKEND = "kv"$/m, `SESSION_BACKEND = "${backend}"`);
  writeFileSync(join(ROOT, config), toml);
  return config;
}
