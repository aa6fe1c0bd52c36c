// The largest session the configuration allows is served: a create, a read, a replacement and a
// merge at the documented
// maximum of MAX_SESSION_BYTES (10 MiB on KV, 1,998,000 bytes in strong mode), within a Worker
// isolate's 128 MB. Locally nothing enforces that limit, so the test reads the Wasm memory itself.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { JSON_HEADERS, STRONG, expectProblem, jsonOfSize, startWorker } from './harness.mjs';

const MAX = STRONG ? 1_998_000 : 10_485_760;
// What Wasm memory may reach, leaving an isolate's 128 MB room for what JavaScript holds: 3 times
// the session, in both backends. `node bench/memory.mjs` read 27.9 MiB on KV (2.8 times) and
// 5,963,776 bytes in strong mode (2.98 times) on 2026-12-06; 52.7 and 10.4 MiB before a merge's
// result was written, sealed and answered outside Wasm memory, a record freed before its
// plaintext comes in, member tables made at their size and the stack cut to 256 KiB, so a budget
// under the earlier figures catches the return of any of those. The read and the replacement
// come first, as in `bench/memory.mjs`: in strong mode, small allocations kept above the create's
// body once left its block short of the next session-sized buffer, and memory grew by a session
// (6.75 MiB; src/edge/heap.rs).
const WASM_BUDGET = 3 * MAX;
// A create holds its body, and a large record is sealed and stored from outside Wasm: 14.7 MiB
// on KV and 2.9 MiB in strong mode on 2026-12-06, 24.8 and 4.8 when the record was made in Wasm.
const CREATE_BUDGET = 1.75 * MAX;

describe(`MAX_SESSION_BYTES=${MAX}, the documented maximum`, () => {
  let worker;
  let url;
  before(async () => {
    worker = await startWorker({ vars: { MAX_SESSION_BYTES: String(MAX) } });
    url = await worker.directUrl();
  });
  after(async () => { await worker?.stop(); });

  test('a create, a read, a replacement and a merge of that size answer, and the Wasm memory stays in budget', async () => {
    const created = await fetch(`${url}/create`, { method: 'POST', headers: JSON_HEADERS, body: jsonOfSize(MAX, 'a') });
    assert.equal(created.status, 201, await created.clone().text());
    const id = await created.text();
    const afterCreate = await worker.wasmMemoryBytes();
    assert.ok(afterCreate <= CREATE_BUDGET, `Wasm memory after the create ${(afterCreate / 2 ** 20).toFixed(1)} MiB, budget ${(CREATE_BUDGET / 2 ** 20).toFixed(1)} MiB`);
    assert.equal((await (await fetch(`${url}/get/${id}`)).text()).length, MAX);
    const replaced = await fetch(`${url}/update/${id}`, { method: 'PUT', headers: JSON_HEADERS, body: jsonOfSize(MAX, 'b') });
    assert.equal(replaced.status, 200, await replaced.clone().text());
    // Every member replaced: the heaviest merge the limit lets through.
    const merged = await fetch(`${url}/add/${id}`, { method: 'PATCH', headers: JSON_HEADERS, body: jsonOfSize(MAX, 'c') });
    assert.equal(merged.status, 200);
    const data = await merged.json();
    assert.equal(data.k0, 'c'.repeat(64));
    const read = await (await fetch(`${url}/get/${id}`)).json();
    assert.deepEqual(read, data);
    const wasm = await worker.wasmMemoryBytes();
    assert.ok(wasm > MAX, `the inspector reads the Wasm memory (${wasm} bytes)`);
    assert.ok(wasm <= WASM_BUDGET, `Wasm memory ${(wasm / 2 ** 20).toFixed(1)} MiB, budget ${(WASM_BUDGET / 2 ** 20).toFixed(1)} MiB`);
    const over = await fetch(`${url}/create`, { method: 'POST', headers: JSON_HEADERS, body: jsonOfSize(MAX + 1, 'a') });
    await expectProblem(assert, over, 413, 'payload_too_large');
  });

  test('a large merge patch, its result written outside Wasm memory, answers what is stored', async () => {
    const stored = { keep: 'k'.repeat(200_000), nested: { drop: 1, stay: 's'.repeat(100_000) }, gone: [1] };
    const created = await fetch(`${url}/create`, { method: 'POST', headers: JSON_HEADERS, body: JSON.stringify(stored) });
    assert.equal(created.status, 201);
    const id = await created.text();
    const patch = { nested: { drop: null, added: 'a'.repeat(50_000) }, gone: null };
    const merged = await fetch(`${url}/add/${id}`, { method: 'PATCH', headers: { 'content-type': 'application/merge-patch+json' }, body: JSON.stringify(patch) });
    assert.equal(merged.status, 200);
    const expected = { keep: stored.keep, nested: { stay: stored.nested.stay, added: patch.nested.added } };
    const text = await merged.text();
    assert.equal(text, JSON.stringify(expected));
    assert.equal(await (await fetch(`${url}/get/${id}`)).text(), text);
  });

  // The scan, the resolution of duplicate keys and the merge patch recurse once per level: at
  // the deepest nesting allowed they must fit the module's stack (the stack is sized in
  // .cargo/config.toml; a stack overflow in Wasm traps).
  test('nesting at the deepest allowed runs every recursive path; one level more is 400 invalid_json', async () => {
    const deep = (depth, leaf) => '{"d":'.repeat(depth - 1) + leaf + '}'.repeat(depth - 1);
    // 128 levels, with a duplicate key at the deepest object: resolved at every depth on the way.
    const body = deep(128, '{"x":1,"x":2,"y":1}');
    const created = await fetch(`${url}/create`, { method: 'POST', headers: JSON_HEADERS, body });
    assert.equal(created.status, 201, await created.clone().text());
    const id = await created.text();
    const patch = deep(128, '{"y":null,"z":3}');
    const merged = await fetch(`${url}/add/${id}`, { method: 'PATCH', headers: { 'content-type': 'application/merge-patch+json' }, body: patch });
    assert.equal(merged.status, 200, await merged.clone().text());
    assert.equal(await merged.text(), deep(128, '{"x":2,"z":3}'));
    assert.equal(await (await fetch(`${url}/get/${id}`)).text(), deep(128, '{"x":2,"z":3}'));
    const over = await fetch(`${url}/create`, { method: 'POST', headers: JSON_HEADERS, body: deep(129, '{}') });
    await expectProblem(assert, over, 400, 'invalid_json');
  });
});
