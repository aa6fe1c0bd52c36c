//! Strong mode's Durable Object classes: one object per session, named by the session's storage
//! key (never its id), and one per subject, named by its hash. Each class hands every request to
//! the one dispatch ([`dispatch::serve_in_object`]): a public route the worker forwarded, served
//! with the same handlers and rules as the worker, on the object's SQLite storage
//! ([`crate::store::durable`]), or a request of another object's ([`protocol`]).
//!
//! The worker forwards each session request here as it came, with the id in a header (for
//! `/create`, the new id): the object needs it to open the data, and keeps it nowhere. A
//! session's object serves one request at a time, in the order they came ([`Turns`]), so not
//! even an await (moving a session in from KV, writing a rotated session into its new object)
//! lets another request or its alarm in between. That is what makes every operation on a
//! session atomic, `If-Match` a true compare-and-swap, and a `204` to `DELETE` final
//! everywhere: there is only one copy, and it answers every read. A request's body is read from
//! the moment it arrives ([`Incoming::arriving`]), so that no turn is held waiting for one.
//!
//! [`protocol`]: crate::store::durable::protocol

use wasm_bindgen::prelude::wasm_bindgen;
use worker::js_sys::Reflect;
use worker::wasm_bindgen::JsValue;
use worker::worker_sys::DurableObjectState;
use worker::{web_sys, Env, State};

use crate::domain::error::Error;
use crate::edge::dispatch::{self, session_store, Place};
use crate::edge::gate::{self, Gate, Turns};
use crate::edge::handlers::KV_BINDING;
use crate::edge::http::Incoming;
use crate::edge::runtime;
use crate::edge::{log, settings};
use crate::store::durable::index::SqlIndex;
use crate::store::durable::legacy;
use crate::store::durable::record::stored_key;
use crate::store::durable::storage::DoStorage;
use crate::store::durable::ObjectStorage;
use crate::store::events::Queue;
use crate::store::kv::{Kv, KvSessions};
use crate::store::seal::WebCrypto;
use crate::store::{Expect, SessionStore};

/// A session's object. Its class is bound by hand rather than through `worker`'s
/// `#[durable_object]`, whose `fetch` is a Rust task with its promise, around a second task and
/// promise inside `blockConcurrencyWhile`: here the request runs in its turn ([`Turns`]), and
/// one served without waiting on anything (a read, a touch within its interval) while no other
/// is under way is done in its first poll, with no task, lock or promise at all (see
/// [`gate::run`]).
#[wasm_bindgen]
pub struct SessionObject {
    storage: DoStorage,
    env: Env,
    turns: Turns,
}

/// The object's storage.
fn opened(state: DurableObjectState) -> DoStorage {
    let raw = Reflect::get(&state, &JsValue::from_str("storage")).unwrap_or(JsValue::UNDEFINED);
    DoStorage::new(State::from(state).storage(), raw)
}

#[wasm_bindgen]
impl SessionObject {
    #[wasm_bindgen(constructor)]
    pub fn new(state: DurableObjectState, env: Env) -> Self {
        let storage = opened(state);
        Self {
            storage,
            env,
            turns: Turns::new(),
        }
    }

    /// A `Response`, or the promise of one.
    pub fn fetch(&self, req: web_sys::Request) -> JsValue {
        let place = Place::Session(self.storage.clone());
        serve(req, self.env.clone(), place, Gate::InTurn(&self.turns))
    }

    pub fn alarm(&self) -> JsValue {
        let (storage, env) = (self.storage.clone(), self.env.clone());
        let done = async move { alarm_done(on_alarm(storage, env).await) };
        gate::run(done, Gate::InTurn(&self.turns))
    }
}

/// A subject's index, one object per subject (named by its hash): the sessions of the subject,
/// for session objects to add to and remove from, and the subject routes, served here with each
/// session reached through its own object. It serves requests as they come, taking no turns
/// (see [`SqlIndex`]).
#[wasm_bindgen]
pub struct SubjectObject {
    storage: DoStorage,
    env: Env,
}

#[wasm_bindgen]
impl SubjectObject {
    #[wasm_bindgen(constructor)]
    pub fn new(state: DurableObjectState, env: Env) -> Self {
        let storage = opened(state);
        Self { storage, env }
    }

    /// A `Response`, or the promise of one.
    pub fn fetch(&self, req: web_sys::Request) -> JsValue {
        serve(
            req,
            self.env.clone(),
            Place::Subject(self.storage.clone()),
            Gate::Open,
        )
    }

    pub fn alarm(&self) -> JsValue {
        let index = SqlIndex(self.storage.clone());
        let done = async move { alarm_done(index.on_alarm(runtime::now()).await) };
        gate::run(done, Gate::Open)
    }
}

/// A request to either class, served by the one dispatch at `place`, behind `gate`.
fn serve(req: web_sys::Request, env: Env, place: Place, gate: Gate<'_>) -> JsValue {
    // Its body is read from now on, before its turn comes.
    let req = Incoming::arriving(req);
    let served = async move {
        let reply = dispatch::serve_in_object(req, &env, place).await;
        Ok(reply.into_response().into())
    };
    gate::run(served, gate)
}

/// What an alarm handler gives the runtime: a failure is thrown, and the runtime tries the
/// alarm again, with backoff.
fn alarm_done(done: Result<(), Error>) -> Result<JsValue, JsValue> {
    match done {
        Ok(()) => Ok(JsValue::UNDEFINED),
        Err(err) => {
            log::internal("alarm", &err);
            Err(JsValue::from_str(err.code()))
        }
    }
}

/// The alarm: expiry, the end of a moved session's marker, and the delivery of lifecycle
/// events; in an object of the earlier strong mode, the end of what it holds. A failed delivery
/// is logged and tried again by the object's own next alarm (the runtime's retries of a failed
/// alarm are few), so it does not fail the alarm.
async fn on_alarm(storage: DoStorage, env: Env) -> Result<(), Error> {
    let config = settings::config(&env)?;
    let now = runtime::now();
    if let Some(key) = stored_key(&storage)? {
        let store = session_store(storage, &env, &config, key, None, now)?;
        let delivery = store.on_alarm(Queue::binding(&env).as_ref()).await?;
        if let Some(failed) = delivery.failed {
            log::internal("alarm", &failed);
        }
        return Ok(());
    }
    let Some(id) = legacy::on_alarm(&storage, now).await? else {
        return Ok(());
    };
    // The old object's session ended before its KV copy could be deleted: delete it now.
    let kv = KvSessions::new(Kv::binding(&env, KV_BINDING)?, WebCrypto, true);
    match kv.remove(&id, Expect::Any, None).await {
        Ok(_) => {
            legacy::kv_copy_deleted(&storage, now)?;
            storage.set_alarm(now + legacy::KV_STALE_MS).await
        }
        Err(_) => storage.set_alarm(now + 60_000).await,
    }
}
