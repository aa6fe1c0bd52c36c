//! Awaiting a JavaScript promise from Rust for the price of two crossings: one to hand it over,
//! one when it settles. `wasm_bindgen_futures::JsFuture` makes two Rust closures for JavaScript
//! per await (each made, registered for finalization, called or dropped, and destroyed across
//! the boundary); here one closure, made once per isolate, hears every settlement, and each
//! awaited promise has a slot that holds its outcome until its future is polled.
//!
//! Measured with the executor of `edge::tasks`, side by side (`bench/isolate.mjs`,
//! docs/performance.md): the Worker's own time per KV GET 1.17 times less, per KV PATCH 1.15.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;
use worker::js_sys::Promise;

#[wasm_bindgen(inline_js = r#"
export function settle(promise, slot, settled) {
  promise.then((value) => settled(slot, value, true), (error) => settled(slot, error, false));
}
"#)]
extern "C" {
    /// Calls `settled(slot, value, true)` when `promise` fulfils, `settled(slot, error, false)`
    /// when it rejects.
    fn settle(promise: &Promise, slot: u32, settled: &Closure<dyn Fn(u32, JsValue, bool)>);
}

/// An awaited promise's place: its outcome once it settled, and who to wake then.
enum Slot {
    Free,
    Waiting(Option<Waker>),
    Settled(Result<JsValue, JsValue>),
    /// Its future was dropped first: the slot is free once the promise settles.
    Abandoned,
}

thread_local! {
    static SLOTS: RefCell<Vec<Slot>> = const { RefCell::new(Vec::new()) };
    static SETTLED: Closure<dyn Fn(u32, JsValue, bool)> = Closure::new(settled);
}

/// What JavaScript calls when the promise of `slot` settles.
fn settled(slot: u32, value: JsValue, fulfilled: bool) {
    let outcome = match fulfilled {
        true => Ok(value),
        false => Err(value),
    };
    let waker = SLOTS.with_borrow_mut(|slots| {
        let at = slots.get_mut(slot as usize)?;
        match std::mem::replace(at, Slot::Settled(outcome)) {
            Slot::Waiting(waker) => waker,
            _ => {
                *at = Slot::Free;
                None
            }
        }
    });
    // Woken with no slot borrowed: the executor may poll the future from here.
    if let Some(waker) = waker {
        waker.wake();
    }
}

/// `promise`'s outcome, as a future: `Ok` with its value, `Err` with its reason.
pub fn settled_of(promise: &Promise) -> Settled {
    let slot = SLOTS.with_borrow_mut(|slots| {
        let free = slots.iter().position(|slot| matches!(slot, Slot::Free));
        let at = free.unwrap_or_else(|| {
            slots.push(Slot::Free);
            slots.len() - 1
        });
        slots[at] = Slot::Waiting(None);
        at as u32
    });
    SETTLED.with(|then| settle(promise, slot, then));
    Settled { slot, done: false }
}

/// See [`settled_of`].
pub struct Settled {
    slot: u32,
    done: bool,
}

impl Future for Settled {
    type Output = Result<JsValue, JsValue>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let slot = self.slot as usize;
        let outcome = SLOTS.with_borrow_mut(|slots| match &mut slots[slot] {
            Slot::Settled(_) => match std::mem::replace(&mut slots[slot], Slot::Free) {
                Slot::Settled(outcome) => Some(outcome),
                _ => None,
            },
            Slot::Waiting(waker) => {
                *waker = Some(cx.waker().clone());
                None
            }
            Slot::Free | Slot::Abandoned => None,
        });
        match outcome {
            Some(outcome) => {
                self.done = true;
                Poll::Ready(outcome)
            }
            None => Poll::Pending,
        }
    }
}

impl Drop for Settled {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        SLOTS.with_borrow_mut(|slots| {
            let at = &mut slots[self.slot as usize];
            *at = match at {
                Slot::Waiting(_) => Slot::Abandoned,
                _ => Slot::Free,
            };
        });
    }
}
