// Schema-driven fuzzing: Schemathesis (a tool nobody here wrote) drives every operation of
// openapi.yaml, with every check it has: no 5xx, documented status codes, content types,
// headers and bodies that match the schema. A fixed example budget and seed keep it bounded.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ROOT, startWorker } from './harness.mjs';

let worker;
before(async () => { worker = await startWorker(); });
after(async () => { await worker?.stop(); });

test('every operation conforms to openapi.yaml under Schemathesis', () => {
  const run = spawnSync(join(ROOT, '.venv/bin/schemathesis'), [
    'run', `${worker.url}/openapi.json`,
    '--checks', 'all',
    '--max-examples', process.env.SCHEMATHESIS_EXAMPLES ?? '25',
    '--seed', '1',
    '--generation-database', 'none',
  ], { encoding: 'utf8', timeout: 600_000, env: { ...process.env, NO_COLOR: '1' } });
  const output = `${run.stdout}\n${run.stderr}`;
  console.log(output.split('\n').filter((l) => /SUMMARY|Test cases|generated|passed|failures|Seed/.test(l)).join('\n'));
  assert.equal(run.status, 0, output);
  assert.match(output, /\d+ generated/);
});
