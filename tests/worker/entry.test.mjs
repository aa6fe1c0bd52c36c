// The module the runtime loads (src/worker.js), against a stand-in for the Wasm bindings: after a
// trap, the next call replaces the instance before it enters Wasm, and a Durable Object makes its
// Wasm object anew in the new instance. (No route of the worker panics, so the end-to-end tests
// cannot make one.)
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

const dir = mkdtempSync(join(tmpdir(), 'session-state-entry-'));
copyFileSync(new URL('../../src/worker.js', import.meta.url), join(dir, 'worker.js'));
// The bindings' surface that src/worker.js uses, as wasm-bindgen makes it: `worker`'s state, the
// reset, and a glue whose objects belong to the instance that made them.
writeFileSync(join(dir, 'index.js'), `
export const log = [];
const state = { criticalError: false, instanceId: 1 };
let instance = 1;
let scheduled = false;
function reset() { instance++; state.instanceId++; scheduled = false; log.push('reset'); }
function guard() { if (scheduled) reset(); }
export function scheduleReset() { scheduled = true; }
export function __worker_init_state() { guard(); return state; }
export function __wbg_reset_state() { reset(); }
export function fetch(request, env, ctx) {
  guard();
  if (request === 'panic') { state.criticalError = true; throw new WebAssembly.RuntimeError('unreachable'); }
  if (request === 'refuse') throw new TypeError('not a request');
  return 'answered by instance ' + instance;
}
function wasmObject(name) {
  return class {
    constructor(state, env) { guard(); this.instance = instance; log.push('made ' + name + ' with ' + state.id + ' ' + env.id); }
    fetch(request) {
      if (this.instance !== instance) throw new Error('Invalid stale object from previous Wasm instance');
      guard();
      if (request === 'trap') throw new WebAssembly.RuntimeError('unreachable');
      return name + ' of instance ' + instance;
    }
    alarm() { return name + ' alarm, instance ' + instance; }
  };
}
export const SessionObject = wasmObject('session');
export const SubjectObject = wasmObject('subject');
`);

const listeners = [];
globalThis.addEventListener = (type, listener) => listeners.push({ type, listener });
const quiet = { log: console.log, error: console.error };
console.log = () => {};
console.error = () => {};
const glue = await import(join(dir, 'index.js'));
const worker = await import(join(dir, 'worker.js'));
test.after(() => Object.assign(console, quiet));

test('the default export is a plain object whose fetch enters Wasm', () => {
  assert.equal(typeof worker.default, 'object');
  assert.equal(worker.default.fetch('GET', {}, {}), 'answered by instance 1');
});

test('after a panic, the next request runs in a fresh instance', () => {
  assert.throws(() => worker.default.fetch('panic', {}, {}), WebAssembly.RuntimeError);
  glue.log.length = 0;
  assert.equal(worker.default.fetch('GET', {}, {}), 'answered by instance 2');
  assert.deepEqual(glue.log, ['reset']);
  assert.equal(worker.default.fetch('GET', {}, {}), 'answered by instance 2', 'and only once');
});

test('an error that is not a trap replaces nothing', () => {
  glue.log.length = 0;
  assert.throws(() => worker.default.fetch('refuse', {}, {}), TypeError);
  assert.equal(worker.default.fetch('GET', {}, {}), 'answered by instance 2');
  assert.deepEqual(glue.log, []);
});

test('a trap in a promise reaction, reported as an error event, is recovered from', () => {
  const onError = listeners.find((l) => l.type === 'error').listener;
  onError({ error: new WebAssembly.RuntimeError('unreachable') });
  glue.log.length = 0;
  assert.equal(worker.default.fetch('GET', {}, {}), 'answered by instance 3');
  assert.deepEqual(glue.log, ['reset']);
});

test('a Durable Object makes its Wasm object again in a new instance, from its state and env', () => {
  const object = new worker.SessionObject({ id: 'state' }, { id: 'env' });
  assert.equal(object.fetch('GET'), 'session of instance 3');
  assert.throws(() => object.fetch('trap'), WebAssembly.RuntimeError);
  glue.log.length = 0;
  assert.equal(object.fetch('GET'), 'session of instance 4');
  assert.deepEqual(glue.log, ['reset', 'made session with state env']);
  assert.equal(object.alarm(), 'session alarm, instance 4');
  assert.equal(new worker.SubjectObject({ id: 's' }, { id: 'e' }).fetch('GET'), 'subject of instance 4');
});

test('a reset the glue scheduled itself happens before a Durable Object uses its Wasm object', () => {
  const object = new worker.SessionObject({ id: 'state' }, { id: 'env' });
  glue.scheduleReset();
  glue.log.length = 0;
  assert.equal(object.fetch('GET'), 'session of instance 5');
  assert.deepEqual(glue.log, ['reset', 'made session with state env']);
});
