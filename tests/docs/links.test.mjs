// The documentation holds together: every relative link of the README and docs/ names a file that
// exists and, with an anchor, a heading that is there (as GitHub makes anchors of headings); and
// the README's configuration table names every variable the worker reads (src/domain/config.rs),
// and nothing it does not, but the bindings the code looks up.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';

const ROOT = resolve(import.meta.dirname, '../..');
const PAGES = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

/** GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to hyphens. */
function slug(heading) {
  return heading.trim().toLowerCase().replace(/[`*_]/g, '').replace(/[^\p{L}\p{N} -]/gu, '').replace(/ /g, '-');
}

/** The anchors of a Markdown page: one per heading, outside fenced code. */
function anchors(text) {
  const found = new Set();
  let fenced = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    const heading = !fenced && /^#{1,6} (.+)$/.exec(line);
    if (heading) found.add(slug(heading[1]));
  }
  return found;
}

/** `[text](target)` links outside fenced code and code spans, but for absolute URLs. */
function links(text) {
  const found = [];
  let fenced = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    if (fenced) continue;
    for (const [, target] of line.replace(/`[^`]*`/g, '').matchAll(/\]\(([^)\s]+)\)/g)) {
      if (!/^[a-z]+:/.test(target)) found.push(target);
    }
  }
  return found;
}

test('every relative link and anchor in the README and docs/ resolves', () => {
  const broken = [];
  for (const page of PAGES) {
    const text = readFileSync(join(ROOT, page), 'utf8');
    for (const link of links(text)) {
      const [path, anchor] = link.split('#');
      const target = path ? join(dirname(join(ROOT, page)), path) : join(ROOT, page);
      if (!existsSync(target)) {
        broken.push(`${page}: ${link} (no such file)`);
      } else if (anchor && !anchors(readFileSync(target, 'utf8')).has(anchor)) {
        broken.push(`${page}: ${link} (no such heading)`);
      }
    }
  }
  assert.deepEqual(broken, []);
});

test('the configuration table names every variable the worker reads, and only those', () => {
  const code = readFileSync(join(ROOT, 'src/domain/config.rs'), 'utf8');
  const read = [...code.matchAll(/^pub const [A-Z_]+: &str = "([A-Z_]+)";$/gm)].map((m) => m[1]);
  assert.ok(read.length >= 10, `the variables config.rs reads: ${read}`);
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const table = readme.split('\n## Configuration\n')[1].split('\n## ')[0];
  const rows = [...table.matchAll(/^\| `([A-Z_]+)` \| ([^|]+?) \|/gm)].map((m) => [m[1], m[2]]);
  const binding = ([, kind]) => kind.endsWith('binding');
  const named = rows.filter((row) => !binding(row)).map(([name]) => name);
  assert.deepEqual([...named].sort(), [...read].sort());
  // A binding the table names is one the code looks up.
  const sources = readdirSync(join(ROOT, 'src'), { recursive: true }).filter((f) => f.endsWith('.rs'));
  const all = sources.map((f) => readFileSync(join(ROOT, 'src', f), 'utf8')).join('\n');
  assert.ok(rows.some(binding), 'the table names the bindings too');
  for (const [name] of rows.filter(binding)) {
    assert.ok(all.includes(`"${name}"`), `${name} is bound by no code`);
  }
});

test('the anchors are made as GitHub makes them', () => {
  assert.equal(slug('OWASP ASVS 5.0 V7: Session Management'), 'owasp-asvs-50-v7-session-management');
  assert.equal(slug("Ending everyone's sessions"), 'ending-everyones-sessions');
  assert.equal(slug('What is hashed, sealed or in the clear'), 'what-is-hashed-sealed-or-in-the-clear');
});
