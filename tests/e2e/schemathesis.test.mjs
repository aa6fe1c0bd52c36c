// Schema-driven fuzzing: Schemathesis (a tool nobody here wrote) drives every operation of
// openapi.yaml, with every check it has: no 5xx, documented status codes, content types,
// headers and bodies that match the schema. A fixed example budget and seed keep it bounded.
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

test('every operation conforms to openapi.yaml under Schemathesis', async () => {
  const { status, output } = await run(join(ROOT, '.venv/bin/schemathesis'), [
    'run', `${worker.url}/openapi.json`,
    '--checks', 'all',
    '--max-examples', process.env.SCHEMATHESIS_EXAMPLES ?? '25',
    '--seed', '1',
    '--generation-database', 'none',
  ], 600_000);
  console.log(output.split('\n').filter((l) => /SUMMARY|Test cases|generated|passed|failures|Seed/.test(l)).join('\n'));
  assert.equal(status, 0, output);
  assert.match(output, /\d+ generated/);
});
