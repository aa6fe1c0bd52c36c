// The typed client installs as a package, the two ways a caller gets it: from a folder of a fresh
// clone (`npm install ../session-state/client`, no node_modules or dist/ there yet) and from a
// packed tarball (what `npm install <git url>` and a registry give). Each time a temporary project
// imports it from Node and type-checks against its declarations.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, test } from 'node:test';

const CLIENT = resolve(import.meta.dirname, '../../client');
const TSC = join(CLIENT, 'node_modules/typescript/bin/tsc');
const work = mkdtempSync(join(tmpdir(), 'client-install-'));
after(() => rmSync(work, { recursive: true, force: true }));

const npm = (cwd, ...args) =>
  execFileSync('npm', [...args, '--no-audit', '--no-fund'], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** A project that imports the client, calls it against a fake fetcher, and type-checks. */
function consumer(name) {
  const dir = join(work, name);
  cpSync(join(import.meta.dirname, 'consumer'), dir, { recursive: true });
  return dir;
}

function expectUsable(dir) {
  const out = execFileSync(process.execPath, ['main.mjs'], { cwd: dir, encoding: 'utf8' });
  assert.equal(out.trim(), 'created 3b241101-e2bb-4255-8caf-4136c566a962, then session_not_found');
  // Types come from the package's own declarations: a wrong call is a type error.
  execFileSync(process.execPath, [TSC, '--project', 'tsconfig.json'], { cwd: dir, encoding: 'utf8' });
  writeFileSync(join(dir, 'wrong.ts'), "import { createSessionClient } from '@session-state/client';\nconst n: number = createSessionClient('nope');\nexport { n };\n");
  assert.throws(() => execFileSync(process.execPath, [TSC, '--project', 'tsconfig.json'], { cwd: dir, stdio: 'pipe' }));
  // The Hono middleware ships beside it, as `@session-state/client/hono` (hono is the app's own).
  const installed = join(dir, 'node_modules/@session-state/client');
  const { exports } = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8'));
  for (const file of Object.values(exports['./hono'])) assert.ok(existsSync(join(installed, file)), file);
}

test('npm install <folder> of a fresh clone builds dist/ on prepare and is importable with types', { timeout: 300_000 }, () => {
  // A fresh clone's client/: sources only.
  const clone = join(work, 'clone/client');
  cpSync(CLIENT, clone, { recursive: true, filter: (src) => !/\/(node_modules|dist)(\/|$)/.test(src.slice(CLIENT.length)) });
  assert.ok(!readdirSync(clone).includes('dist'));
  const dir = consumer('from-folder');
  npm(dir, 'install', '../clone/client');
  assert.ok(readdirSync(join(clone, 'dist')).includes('index.d.ts'), 'prepare built the declarations');
  expectUsable(dir);
});

test('npm install <tarball> (as from git or a registry) is importable with types', { timeout: 300_000 }, () => {
  const packed = join(work, 'packed');
  // The client's own dist/ only (its dependencies have dist/ folders of their own, hono's types among them).
  cpSync(CLIENT, packed, { recursive: true, filter: (src) => !/^\/dist(\/|$)/.test(src.slice(CLIENT.length)) });
  const tarball = npm(packed, 'pack', '--silent').trim().split('\n').pop();
  const dir = consumer('from-tarball');
  npm(dir, 'install', join(packed, tarball));
  expectUsable(dir);
});
