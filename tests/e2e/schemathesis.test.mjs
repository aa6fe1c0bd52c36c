// Schema-driven fuzzing: Schemathesis (a tool nobody here wrote) drives every operation of
// openapi.yaml, with every check it has: no 5xx, documented status codes, content types,
// headers and bodies that match the schema. Its stateful phase follows the document's links
// (create, rotate, renew and reauth to every route taking the id) through real sessions. A fixed example
// budget and seed keep it bounded; tests/e2e/schemathesis.toml says why 412 is an answer.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ROOT, boundFile, startWorker } from './harness.mjs';

// The stateful budget (schemathesis.toml) takes about 7 minutes on KV and more in strong mode:
// past the harness's default bound for a file.
boundFile(1_800_000);

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

test('every operation conforms to openapi.yaml under Schemathesis, every link followed', { timeout: 1_500_000 }, async () => {
  const reports = mkdtempSync(join(tmpdir(), 'schemathesis-'));
  const events = join(reports, 'events.ndjson');
  try {
    const { status, output } = await run(join(ROOT, '.venv/bin/schemathesis'), [
      '--config-file', join(ROOT, 'tests/e2e/schemathesis.toml'),
      'run', `${worker.url}/openapi.json`,
      '--checks', 'all',
      '--max-examples', process.env.SCHEMATHESIS_EXAMPLES ?? '25',
      '--seed', '1',
      '--generation-database', 'none',
      '--report', 'ndjson', '--report-ndjson-path', events,
    ], 1_200_000);
    console.log(output.split('\n').filter((l) => /Stateful|API Links|Test cases|generated|passed|failures|Seed/.test(l)).join('\n'));
    assert.equal(status, 0, output);
    assert.match(output, /\d+ generated/);

    // Every link the document declares was followed, from a real 201, at least once.
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
    assert.equal(declared.length, 32, 'create, rotate, renew and reauth, eight links each');
    const followed = readFileSync(events, 'utf8');
    const missing = declared.filter((link) => !followed.includes(link));
    assert.deepEqual(missing, [], `links the stateful phase never followed: ${missing.join(', ')}`);
  } finally {
    rmSync(reports, { recursive: true, force: true });
  }
});
