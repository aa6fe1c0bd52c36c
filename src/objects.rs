//! Strong mode's Durable Object classes: one object per session, named by the session's storage
//! key (never its id), and one per subject, named by its hash. Each class hands every request to
//! the one dispatch ([`dispatch::serve_in_object`]): a public route the worker forwarded, served
//! with the same handlers and rules as the worker, on the object's SQLite storage
//! ([`crate::store::durable`]), or a request of another object's ([`protocol`]).
//!
//! The worker forwards each session request here as it came, with the id in a header (for
//! `/create`, the new id): the object needs it to open the data, and keeps it nowhere. A
//! session's object serves one request at a time: each runs inside `blockConcurrencyWhile`, so
//! not even an await (moving a session in from KV, writing a rotated session into its new
//! object) lets another request in between. That is what makes every operation on a session
//! atomic, `If-Match` a true compare-and-swap, and a `204` to `DELETE` final everywhere: there
//! is only one copy, and it answers every read.
//!
//! [`protocol`]: crate::store::durable::protocol

use worker::js_sys::Reflect;
use worker::wasm_bindgen::JsValue;
use worker::{durable_object, wasm_bindgen, web_sys, DurableObject, Env, Request, Response, State};

use crate::domain::error::Error;
use crate::edge::dispatch::{self, session_store, Place};
use crate::edge::handlers::KV_BINDING;
use crate::edge::http::Incoming;
use crate::edge::{log, runtime, settings};
use crate::store::durable::index::SqlIndex;
use crate::store::durable::legacy;
use crate::store::durable::record::stored_key;
use crate::store::durable::storage::DoStorage;
use crate::store::durable::ObjectStorage;
use crate::store::events::Queue;
use crate::store::kv::{Kv, KvSessions};
use crate::store::seal::WebCrypto;
use crate::store::{Expect, SessionStore};

#[durable_object]
pub struct SessionObject {
    state: State,
    env: Env,
    /// `state.storage` as JavaScript holds it (see [`DoStorage`]).
    raw: JsValue,
}

/// The object's state, and its storage as JavaScript holds it, for what `worker` does not bind.
fn with_raw_storage(state: State) -> (State, JsValue) {
    let inner = state._inner();
    let raw = Reflect::get(&inner, &JsValue::from_str("storage")).unwrap_or(JsValue::UNDEFINED);
    (State::from(inner), raw)
}

impl SessionObject {
    fn storage(&self) -> DoStorage {
        DoStorage::new(self.state.storage(), self.raw.clone())
    }
}

impl DurableObject for SessionObject {
    fn new(state: State, env: Env) -> Self {
        let (state, raw) = with_raw_storage(state);
        Self { state, env, raw }
    }

    async fn fetch(&self, req: Request) -> worker::Result<Response> {
        let (storage, env) = (self.storage(), self.env.clone());
        let req = Incoming::new(handle(&req));
        let served = async move {
            let reply = dispatch::serve_in_object(req, &env, Place::Session(storage)).await;
            Ok(reply.into_response())
        };
        let response = self.state.block_concurrency_while(served).await?;
        Ok(Response::from(response))
    }

    async fn alarm(&self) -> worker::Result<Response> {
        let (storage, env) = (self.storage(), self.env.clone());
        let done = self
            .state
            .block_concurrency_while(async move { Ok(on_alarm(storage, env).await) })
            .await?;
        match done {
            Ok(()) => Response::empty(),
            Err(err) => {
                log::internal("alarm", &err);
                // The runtime tries a failed alarm again, with backoff.
                Err(worker::Error::RustError(err.code().into()))
            }
        }
    }
}

/// A subject's index, one object per subject (named by its hash): the sessions of the subject,
/// for session objects to add to and remove from, and the subject routes, served here with each
/// session reached through its own object. It serves requests as they come, without
/// `blockConcurrencyWhile` (see [`SqlIndex`]).
#[durable_object]
pub struct SubjectObject {
    state: State,
    env: Env,
    raw: JsValue,
}

impl SubjectObject {
    fn storage(&self) -> DoStorage {
        DoStorage::new(self.state.storage(), self.raw.clone())
    }
}

impl DurableObject for SubjectObject {
    fn new(state: State, env: Env) -> Self {
        let (state, raw) = with_raw_storage(state);
        Self { state, env, raw }
    }

    async fn fetch(&self, req: Request) -> worker::Result<Response> {
        let req = Incoming::new(handle(&req));
        let place = Place::Subject(self.storage());
        let reply = dispatch::serve_in_object(req, &self.env, place).await;
        Ok(Response::from(reply.into_response()))
    }

    async fn alarm(&self) -> worker::Result<Response> {
        let index = SqlIndex(self.storage());
        match index.on_alarm(runtime::now()).await {
            Ok(()) => Response::empty(),
            Err(err) => {
                log::internal("alarm", &err);
                Err(worker::Error::RustError(err.code().into()))
            }
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

/// The runtime's request under `worker`'s (the handle, not JavaScript's `Request.clone()`).
fn handle(req: &Request) -> web_sys::Request {
    Clone::clone(req.inner())
}
