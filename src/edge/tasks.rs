//! The futures of requests that wait for I/O, run by hand: a woken future is polled where it
//! is woken (in the JavaScript callback that settled what it awaited) unless another is being
//! polled, and then right after that one. `wasm_bindgen_futures::future_to_promise` instead
//! queues a microtask for every wake and crosses into JavaScript to make and run it; here a
//! wake costs no crossing, and the promise the runtime is given is made and settled in one
//! crossing each.
//!
//! Every future here is polled only from a JavaScript callback or entry point (never inside
//! another future's poll), so a poll never runs within a poll: a wake during one queues the
//! woken task, and the loop that runs tasks takes it next.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;
use worker::js_sys::Promise;

#[wasm_bindgen(inline_js = r#"
const pending = new Map();
export function begin(task) {
  return new Promise((resolve, reject) => pending.set(task, [resolve, reject]));
}
export function end(task, fulfilled, value) {
  const [resolve, reject] = pending.get(task);
  pending.delete(task);
  (fulfilled ? resolve : reject)(value);
}
"#)]
extern "C" {
    /// The promise of task `task`'s outcome.
    fn begin(task: u32) -> Promise;
    /// Settles the promise of `task`: fulfilled with `value`, or rejected with it.
    fn end(task: u32, fulfilled: bool, value: JsValue);
}

type Boxed = Pin<Box<dyn Future<Output = Result<JsValue, JsValue>>>>;

/// A task's future, until it is done, and whether it is queued to be polled.
struct Task {
    future: RefCell<Option<Boxed>>,
    queued: Cell<bool>,
}

thread_local! {
    /// The tasks not yet done, by number (a number is reused once its task is done).
    static TASKS: RefCell<Vec<Option<Rc<Task>>>> = const { RefCell::new(Vec::new()) };
    /// Tasks woken while another was polled, in the order they were woken.
    static READY: RefCell<VecDeque<u32>> = const { RefCell::new(VecDeque::new()) };
    static RUNNING: Cell<bool> = const { Cell::new(false) };
}

/// Wakes a task by number: a waker is `Send`, a task is not, so the waker holds its number.
struct Wakes(u32);

impl Wake for Wakes {
    fn wake(self: Arc<Self>) {
        wake(self.0);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        wake(self.0);
    }
}

/// `future` as a task: the promise of its outcome. It is polled once at once (so that what it
/// awaits knows whom to wake), and again each time it is woken.
pub fn spawn(future: Boxed) -> Promise {
    let task = Rc::new(Task {
        future: RefCell::new(Some(future)),
        queued: Cell::new(false),
    });
    let number = TASKS.with_borrow_mut(|tasks| {
        let free = tasks.iter().position(Option::is_none);
        let at = free.unwrap_or_else(|| {
            tasks.push(None);
            tasks.len() - 1
        });
        tasks[at] = Some(task);
        at as u32
    });
    let promise = begin(number);
    wake(number);
    promise
}

fn wake(number: u32) {
    let task = TASKS.with_borrow(|tasks| tasks.get(number as usize).cloned().flatten());
    let Some(task) = task else {
        return;
    };
    if task.queued.replace(true) {
        return;
    }
    READY.with_borrow_mut(|ready| ready.push_back(number));
    if !RUNNING.replace(true) {
        while let Some(next) = READY.with_borrow_mut(VecDeque::pop_front) {
            poll(next);
        }
        RUNNING.set(false);
    }
}

fn poll(number: u32) {
    let task = TASKS.with_borrow(|tasks| tasks.get(number as usize).cloned().flatten());
    let Some(task) = task else {
        return;
    };
    task.queued.set(false);
    let waker = Waker::from(Arc::new(Wakes(number)));
    let outcome = {
        let mut future = task.future.borrow_mut();
        let Some(running) = future.as_mut() else {
            return;
        };
        match running.as_mut().poll(&mut Context::from_waker(&waker)) {
            Poll::Pending => return,
            Poll::Ready(outcome) => {
                *future = None;
                outcome
            }
        }
    };
    TASKS.with_borrow_mut(|tasks| tasks[number as usize] = None);
    match outcome {
        Ok(value) => end(number, true, value),
        Err(reason) => end(number, false, reason),
    }
}
