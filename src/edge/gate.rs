//! How a handler's future runs for the runtime: at once, or, in a session's object, in its turn.
//! Every request and alarm of a session's object is served one at a time, in the order it came,
//! every await included ([`Turns`]): that is what makes each operation on a session atomic.

use std::future::Future;
use std::task::{Context, Poll, Waker};

use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;
use worker::js_sys;
use worker::wasm_bindgen_futures::future_to_promise;

#[wasm_bindgen(inline_js = r#"
function quietly() {}

export function turnIsFree(turns) {
  return turns.last === undefined;
}

export function holdTurn(turns, promise) {
  const settled = promise.then(quietly, quietly);
  turns.last = settled;
  settled.then(() => {
    if (turns.last === settled) turns.last = undefined;
  });
}

export function awaitTurn(turns, run) {
  const out = turns.last.then(run);
  holdTurn(turns, out);
  return out;
}
"#)]
extern "C" {
    /// Whether no call on `turns` is pending.
    #[wasm_bindgen(js_name = turnIsFree)]
    fn turn_is_free(turns: &JsValue) -> bool;

    /// Makes later calls on `turns` wait until `promise` has settled.
    #[wasm_bindgen(js_name = holdTurn)]
    fn hold_turn(turns: &JsValue, promise: &js_sys::Promise);

    /// `run()` once every call before it on `turns` has settled (in the microtask that settles
    /// the last), as a promise that later ones wait for in turn.
    #[wasm_bindgen(js_name = awaitTurn)]
    fn await_turn(turns: &JsValue, run: &JsValue) -> js_sys::Promise;
}

/// What holds other events back while a handler's future runs.
pub enum Gate<'a> {
    /// Nothing: other requests may run between its steps.
    Open,
    /// One at a time, in the order they came: the future runs once every one before it on the
    /// same [`Turns`] is done, and those after it wait for it in turn.
    InTurn(&'a Turns),
}

/// The events of one Durable Object, served one at a time ([`Gate::InTurn`]), in the order
/// they came: what `blockConcurrencyWhile` around each would give, every await included, but a
/// request served in its first poll (a read, a touch within its interval) is answered as it is,
/// with no lock, promise or closure made. Measured side by side against
/// `blockConcurrencyWhile` around every request in strong mode (docs/performance.md): GET 7 %,
/// touch 12 % and create 6 % less CPU; a GET of 58 KiB the same, and PATCH, where the bench's
/// eight connections all wait on one session, about 3 % more.
///
/// A request that waited starts in the microtask that settled the one before it. Started in a
/// task of its own instead (a 0 ms timer, as after `blockConcurrencyWhile`), a PATCH where
/// every request waits cost 1.32 times the CPU side by side (docs/performance.md).
///
/// Unlike `blockConcurrencyWhile`, it sets no deadline: a handler whose I/O never settled would
/// hold the object until the runtime evicts it, where `blockConcurrencyWhile` resets it after
/// 30 s. Every await of ours is a runtime call (storage, KV, WebCrypto, another object) that
/// settles or fails, and no object waits on one that waits on it ([`SqlIndex`] takes no turns).
///
/// [`SqlIndex`]: crate::store::durable::index::SqlIndex
pub struct Turns(JsValue);

impl Turns {
    pub fn new() -> Self {
        Self(js_sys::Object::new().into())
    }
}

impl Default for Turns {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs a handler's `future` for the runtime. It is polled once, in the call (when its turn
/// has come, with [`Gate::InTurn`]), and what needs no I/O (a health check, a refusal, a read
/// that SQL and Wasm serve) is answered from that poll with no Rust task, waker or promise made
/// for it; the rest resolves a promise. An `Err` rejects it.
pub fn run(
    future: impl Future<Output = Result<JsValue, JsValue>> + 'static,
    gate: Gate<'_>,
) -> JsValue {
    match gate {
        Gate::Open => at_once(future),
        Gate::InTurn(turns) if turn_is_free(&turns.0) => match first_poll(future) {
            Ok(answer) => answer,
            Err(pending) => {
                hold_turn(&turns.0, &pending);
                pending.into()
            }
        },
        Gate::InTurn(turns) => {
            let run = Closure::once_into_js(move || at_once(future));
            await_turn(&turns.0, &run).into()
        }
    }
}

/// `future`'s value if its first poll has it, else the promise of it.
fn at_once(future: impl Future<Output = Result<JsValue, JsValue>> + 'static) -> JsValue {
    first_poll(future).unwrap_or_else(JsValue::from)
}

/// What `future`'s first poll answers (a failure as a rejected promise), or the promise of
/// what a later one will.
fn first_poll(
    future: impl Future<Output = Result<JsValue, JsValue>> + 'static,
) -> Result<JsValue, js_sys::Promise> {
    let mut future = Box::pin(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(Ok(value)) => Ok(value),
        Poll::Ready(Err(err)) => Ok(js_sys::Promise::reject(&err).into()),
        // The executor polls it again with a real waker, as futures allow.
        Poll::Pending => Err(future_to_promise(future)),
    }
}
