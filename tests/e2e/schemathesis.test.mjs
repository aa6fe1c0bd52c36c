// Schema-driven fuzzing: Schemathesis (a tool nobody here wrote) drives every operation of
// openapi.yaml, with every check it has: no 5xx, documented status codes, content types,
// headers and bodies that match the schema. Every link the document declares (create, rotate,
// renew and reauth to every route taking the id) is walked once, explicitly
// (schemathesis_links.py, through the same checks); the CLI's stateful phase then searches chains
// of links at random, with a small budget. A fixed example budget and seed keep it bounded;
// tests/e2e/schemathesis.toml says why 412 is an answer.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ROOT, startWorker } from './harness.mjs';

let worker;
before(async () => { worker = await startWorker(); });
after(async () => { await worker?.stop(); });

/**
 * Runs a command without blocking this process, so that wrangler's output keeps being read while
 * it runs (a blocking spawn stalls wrangler once its pipe fills, and the run hangs).
 */
function run(command, args, timeoutMs) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { env: { ...process.env, NO_COLOR: '1' } });
    let output = '';
    child.stdout.on('data', (d) => { output += d; });
    child.stderr.on('data', (d) => { output += d; });
    const timer = setTimeout(() => { output += `\n[timed out after ${timeoutMs} ms]`; child.kill('SIGKILL'); }, timeoutMs);
    child.on('close', (status) => { clearTimeout(timer); resolve({ status, output }); });
  });
}

/** Every link openapi.json declares, named as schemathesis_links.py prints it. */
async function declaredLinks() {
  const doc = await (await fetch(`${worker.url}/openapi.json`)).json();
  const declared = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, operation] of Object.entries(item)) {
      for (const [code, response] of Object.entries(operation.responses ?? {})) {
        const links = (response.$ref ? doc.components.responses[response.$ref.split('/').pop()] : response).links ?? {};
        for (const name of Object.keys(links)) declared.push(`${method.toUpperCase()} ${path} -> [${code}] ${name}`);
      }
    }
  }
  return declared;
}

test('every declared link, followed once from a real 201, conforms under Schemathesis\' checks', async () => {
  const declared = await declaredLinks();
  assert.equal(declared.length, 32, 'create, rotate, renew and reauth, eight links each');
  const { status, output } = await run(join(ROOT, '.venv/bin/python'), [
    join(ROOT, 'tests/e2e/schemathesis_links.py'), worker.url, join(ROOT, 'tests/e2e/schemathesis.toml'),
  ], 120_000);
  assert.equal(status, 0, output);
  const walked = output.split('\n').filter((line) => line.includes(' -> ['));
  assert.deepEqual(walked.sort(), [...declared].sort());
});

test('every operation conforms to openapi.yaml under Schemathesis, with chains of links searched at random', { timeout: 600_000 }, async () => {
  const { status, output } = await run(join(ROOT, '.venv/bin/schemathesis'), [
    '--config-file', join(ROOT, 'tests/e2e/schemathesis.toml'),
    'run', `${worker.url}/openapi.json`,
    '--checks', 'all',
    '--max-examples', process.env.SCHEMATHESIS_EXAMPLES ?? '25',
    '--seed', '1',
    '--generation-database', 'none',
  ], 540_000);
  console.log(output.split('\n').filter((l) => /Stateful|API Links|Test cases|generated|passed|failures|Seed/.test(l)).join('\n'));
  assert.equal(status, 0, output);
  assert.match(output, /\d+ generated/);
  // The random phase reaches links (beyond the walk above): a budget that follows none is no search.
  const covered = Number(/API Links:\s+(\d+) covered/.exec(output)?.[1] ?? 0);
  assert.ok(covered >= 10, `the stateful phase followed ${covered} links`);
});
