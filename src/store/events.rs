//! Where lifecycle events ([`crate::domain::event`]) leave the worker: the Queue bound as
//! `SESSION_EVENTS`, when there is one. Without the binding nothing here runs and nothing is
//! recorded: events are opt-in, and a deployment without them pays nothing.
//!
//! Two ways there, one per backend. On KV a request records its events in a [`Journal`] as each
//! write succeeds, and the worker sends them once the response is out (`waitUntil`): best
//! effort, a failed send is logged and lost. In strong mode a session's object commits each
//! event in its own SQLite with the change, and its alarm delivers them
//! ([`super::durable::outbox`]): none is lost.

use std::cell::RefCell;

use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use worker::js_sys::Promise;
use worker::Env;

use crate::domain::error::Error;
use crate::domain::event::Event;
use crate::store::bindings;
use crate::store::promise::settled_of;

/// The binding of the Queue producer, in `wrangler.toml`.
pub const BINDING: &str = "SESSION_EVENTS";

/// The most messages one `sendBatch` takes.
pub const BATCH: usize = 100;

/// The events of one request, each recorded once its write was made, to be sent when the
/// request has been answered.
#[derive(Debug, Default)]
pub struct Journal(RefCell<Vec<Event>>);

impl Journal {
    pub fn record(&self, event: &Event) {
        self.0.borrow_mut().push(event.clone());
    }

    pub fn take(&self) -> Vec<Event> {
        self.0.take()
    }
}

/// Somewhere events can be sent: the Queue in the worker, a recording or failing stand-in in
/// native tests.
#[allow(
    async_fn_in_trait,
    reason = "Workers run single-threaded; futures need not be Send"
)]
pub trait EventQueue {
    /// Sends every event, in order, as one message each, or fails as a whole: a Queue batch is
    /// accepted or refused together.
    async fn send(&self, events: &[&str]) -> Result<(), Error>;
}

#[wasm_bindgen(inline_js = r#"
export function sendEvents(queue, lines) {
  const messages = lines.split('\n').map((text) => ({ body: JSON.parse(text), contentType: 'json' }));
  return queue.sendBatch(messages);
}

export function sendAfter(ctx, queue, lines, failed) {
  const sent = Promise.resolve().then(() => sendEvents(queue, lines));
  ctx.waitUntil(sent.catch((err) => {
    console.error(failed.replace('{}', JSON.stringify(String(err?.message ?? err)).slice(1, -1)));
  }));
}
"#)]
extern "C" {
    /// A Queue producer, as the runtime hands it to the worker.
    pub type QueueBinding;

    /// `sendBatch` of the events given one per line (an event's JSON holds no line break), each
    /// as a JSON message.
    #[wasm_bindgen(catch, js_name = sendEvents)]
    fn send_events(queue: &QueueBinding, lines: &str) -> Result<Promise, JsValue>;

    /// `sendEvents`, finished after the response (`ctx.waitUntil`); if it fails, `failed` is
    /// logged with `{}` replaced by the cause (escaped for the JSON string it stands in).
    #[wasm_bindgen(js_name = sendAfter)]
    fn send_after(ctx: &JsValue, queue: &QueueBinding, lines: &str, failed: &str);
}

/// The `SESSION_EVENTS` Queue.
pub struct Queue(QueueBinding);

impl Queue {
    /// The Queue, when the worker has the binding.
    pub fn binding(env: &Env) -> Option<Self> {
        bindings::binding(env, BINDING).map(|binding| Self(binding.unchecked_into()))
    }
}

fn queue_failure(err: JsValue) -> Error {
    let message = err
        .dyn_ref::<worker::js_sys::Error>()
        .map_or_else(|| format!("{err:?}"), |err| String::from(err.message()));
    Error::StoreUnavailable(format!("queue {BINDING}: {message}"))
}

impl Queue {
    /// Sends `events` once the response is out, as long as that takes (the runtime keeps the
    /// invocation for it: `ctx` is the fetch handler's context). A failure is logged as
    /// `failed` says, with `{}` standing for its cause; nothing tries again.
    pub fn send_after_response(&self, ctx: &JsValue, events: &[Event], failed: &str) {
        let lines: Vec<&str> = events.iter().map(Event::as_str).collect();
        send_after(ctx, &self.0, &lines.join("\n"), failed);
    }
}

impl EventQueue for Queue {
    async fn send(&self, events: &[&str]) -> Result<(), Error> {
        for batch in events.chunks(BATCH) {
            let promise = send_events(&self.0, &batch.join("\n")).map_err(queue_failure)?;
            settled_of(&promise).await.map_err(queue_failure)?;
        }
        Ok(())
    }
}
