// Memory at the largest session each backend allows: what a create, a read, a replacement and
// a merge of a session of `MAX_SESSION_BYTES` hold, against a Worker isolate's 128 MB.
//
// Each backend's worker starts afresh with `MAX_SESSION_BYTES` at its maximum, then serves, in
// turn: a create of that size, a read of it, a replacement (PUT) of that size, and a merge (PATCH)
// whose body is that size and replaces every key (the heaviest merge the limit lets through: the
// body, the stored record, its plaintext, both parsed, the result and its sealed form). After
// each, through the worker's V8 inspector:
// - **Wasm memory**: the byte length of the isolate's `WebAssembly.Memory`. Linear memory only
//   grows, so this is the peak of every request so far, the figure that counts against 128 MB.
// - **JS heap**: V8's used heap after the request (`Runtime.getHeapUsage`), before any GC that
//   would free what the request left; buffers outside the heap are in the next figure.
// - **process peak**: workerd's peak resident memory during the request above its resident
//   memory before it (`VmHWM` after `/proc/<pid>/clear_refs` = 5). Locally that process also runs
//   the local KV or SQLite serving the request, so this bounds the isolate's share from above.
import { readFileSync, writeFileSync } from 'node:fs';
import { jsonOfSize, startWorker } from '../tests/e2e/harness.mjs';

// The documented maxima (src/domain/config.rs).
export const MAXIMA = { kv: 10_485_760, durable_object: 1_998_000 };

function status(pid) {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(text)[1]);
  return { rss: kib('VmRSS') * 1024, hwm: kib('VmHWM') * 1024 };
}

/** Runs `request` and gives what it held; throws unless it answers `expected`. */
async function measured(worker, pid, name, expected, request) {
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
  const before = status(pid).rss;
  const response = await request();
  const body = await response.text();
  if (response.status !== expected) throw new Error(`${name}: ${response.status} ${body.slice(0, 200)}`);
  const peak = status(pid).hwm - before;
  const heap = await worker.inspect('Runtime.getHeapUsage', {});
  return { name, wasm: await worker.wasmMemoryBytes(), heap: heap.result.usedSize, peak, body };
}

/** The four requests at `backend`'s maximum (or `max`), in one fresh worker. */
export async function measureMemory(backend, max = MAXIMA[backend]) {
  const worker = await startWorker({ vars: { SESSION_BACKEND: backend, MAX_SESSION_BYTES: String(max) } });
  try {
    const url = await worker.directUrl();
    const pid = await worker.workerdPid();
    const json = { 'content-type': 'application/json' };
    const first = jsonOfSize(max, 'a');
    const rows = [];
    const created = await measured(worker, pid, 'create', 201, () => fetch(`${url}/create`, { method: 'POST', headers: json, body: first }));
    rows.push(created);
    const id = created.body;
    rows.push(await measured(worker, pid, 'get', 200, () => fetch(`${url}/get/${id}`)));
    rows.push(await measured(worker, pid, 'PUT', 200, () => fetch(`${url}/update/${id}`, { method: 'PUT', headers: json, body: jsonOfSize(max, 'b') })));
    rows.push(await measured(worker, pid, 'PATCH', 200, () => fetch(`${url}/add/${id}`, { method: 'PATCH', headers: json, body: jsonOfSize(max, 'c') })));
    return { backend, max, rows: rows.map(({ body, ...row }) => row) };
  } finally {
    await worker.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const backend of Object.keys(MAXIMA)) {
    const { max, rows } = await measureMemory(backend);
    for (const r of rows) console.log(`${backend} max ${max}: ${r.name} wasm ${(r.wasm / 2 ** 20).toFixed(1)} MiB, heap ${(r.heap / 2 ** 20).toFixed(1)} MiB, process peak +${(r.peak / 2 ** 20).toFixed(1)} MiB`);
  }
}
