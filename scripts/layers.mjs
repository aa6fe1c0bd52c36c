// The layering of src/, checked: each layer imports only the layers below it (domain → store →
// service → edge → entry points), and the domain and the services touch no runtime types. Reads
// the `crate::` paths and runtime crate names in each file's code (comments left out, tests
// included: a test that drives a higher layer belongs to that layer). Exits 1 on a violation.
// `python3 ../shared/tools/imports.py` checks the other half, that no files import each other in
// a cycle; it runs too when the workplace's copy of it is there.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

const ROOT = join(import.meta.dirname, '..');
const SRC = join(ROOT, 'src');
const ORDER = ['domain', 'store', 'service', 'edge'];
const RUNTIME = /\b(worker|wasm_bindgen|js_sys|web_sys|wasm_bindgen_futures)::/;
const PURE = new Set(['domain', 'service']);

const files = (dir) => readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
  entry.isDirectory() ? files(join(dir, entry.name)) : entry.name.endsWith('.rs') ? [join(dir, entry.name)] : []);

const violations = [];
for (const file of files(SRC)) {
  const path = relative(SRC, file);
  const layer = path.split('/')[0];
  const rank = ORDER.indexOf(layer);
  if (rank < 0) continue; // lib.rs and objects.rs: the entry points may import every layer
  const code = readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/[^\n]*/g, '');
  for (const [, target] of code.matchAll(/crate::(\w+)/g)) {
    const to = ORDER.indexOf(target);
    if (to > rank || (to < 0 && target !== layer)) violations.push(`${path}: imports crate::${target}, above ${layer}`);
  }
  if (PURE.has(layer) && RUNTIME.test(code)) violations.push(`${path}: uses ${RUNTIME.exec(code)[1]}, a runtime crate, in ${layer}`);
}
for (const v of violations) console.error(`layers: ${v}`);

const imports = join(ROOT, '../shared/tools/imports.py');
let cycles = 'not checked (no ../shared/tools/imports.py here)';
if (existsSync(imports)) {
  for (const flag of [[], ['--no-tests']]) {
    try {
      cycles = execFileSync('python3', [imports, ...flag, SRC], { encoding: 'utf8' }).trim().split('\n').pop();
    } catch (err) {
      violations.push(`import cycles${flag.length ? ' (without tests)' : ''}:\n${err.stdout}`);
      console.error(err.stdout);
    }
  }
}
console.log(`layers: ${violations.length} violations; ${cycles}`);
process.exit(violations.length ? 1 : 0);
