// The module the runtime loads: the Worker's fetch handler and its two Durable Object classes,
// each a few lines around the Wasm exports that wasm-bindgen makes of src/lib.rs and
// src/objects.rs (bundled with them into build/index.js by scripts/build.sh).
//
// The handler is a plain object, not a class: the runtime calls its `fetch` as it is, where a
// class entrypoint (what worker-build's own module exports, behind a `Proxy` for its panic
// recovery) is constructed anew, through the proxy's traps, for every request.
// `node bench/isolate.mjs` measured that construction at about 30 µs of the Worker's own time
// per request (docs/performance.md).
//
// Recovery from a panic is kept. The release build aborts on a panic (`panic = "abort"`): the
// Wasm instance traps and cannot be entered again. `worker`'s panic hook marks that in
// `criticalError` (and wasm-bindgen's glue marks a trap of any other kind, which is caught
// here too); the next call, in any request, replaces the instance with a fresh one
// (`__wbg_reset_state`) before it enters Wasm. An object made by the instance that trapped
// cannot be used in the new one: each Durable Object class here makes its Wasm object again
// after a reset, from the state and environment it was given.
import * as wasm from './index.js';

// `worker`'s state: `criticalError`, and `instanceId`, which counts the instances made.
const init = wasm.__worker_init_state();

/** Replaces a Wasm instance that trapped with a fresh one, before anything enters it. */
function recover() {
  if (init.criticalError) {
    console.log('Reinitializing Wasm application');
    wasm.__wbg_reset_state();
    init.criticalError = false;
  }
}

/** Marks the instance as trapped when `error` is a Wasm trap (a panic, an abort). */
function noteTrap(error) {
  if (error instanceof WebAssembly.RuntimeError) {
    console.error('Critical', error);
    init.criticalError = true;
  }
}

// A trap in a promise's reaction (a panic while a request awaited) reaches no caller here.
addEventListener('error', (event) => noteTrap(event.error));

/** Runs `call` (which enters Wasm, after `recover`), noting a trap. */
function enter(call) {
  try {
    return call();
  } catch (error) {
    noteTrap(error);
    throw error;
  }
}

export default {
  fetch(request, env, ctx) {
    recover();
    return enter(() => wasm.fetch(request, env, ctx));
  },
};

/**
 * A Durable Object class of the runtime around the Wasm class `Inner`: the Wasm object is made
 * with the object, and made again when the instance was replaced since.
 */
function durableObject(Inner) {
  return class {
    #state;
    #env;
    #inner;
    #instance;

    constructor(state, env) {
      this.#state = state;
      this.#env = env;
      this.#current();
    }

    #current() {
      recover();
      // A call through wasm-bindgen's guard, which makes any reset it has scheduled (after a
      // trap of a kind not marked above) now, before the Wasm object is used, not inside a
      // call on it.
      wasm.__worker_init_state();
      if (this.#instance !== init.instanceId) {
        this.#inner = enter(() => new Inner(this.#state, this.#env));
        this.#instance = init.instanceId;
      }
      return this.#inner;
    }

    fetch(request) {
      const inner = this.#current();
      return enter(() => inner.fetch(request));
    }

    alarm() {
      const inner = this.#current();
      return enter(() => inner.alarm());
    }
  };
}

export const SessionObject = durableObject(wasm.SessionObject);
export const SubjectObject = durableObject(wasm.SubjectObject);
