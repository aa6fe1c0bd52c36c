//! session-state: session storage for serverless applications, as a Cloudflare Worker on
//! Workers KV (or Durable Objects, in strong mode). This file is the worker's entry point:
//! settings, authentication, the route lookup, events sent after the response, and the request
//! log; the route runs from its row ([`edge::dispatch`]). Everything else lives in the module
//! named for it.

pub mod domain;
mod edge;
mod objects;
mod service;
mod store;

/// The sealing envelope, for `tests/wasm.rs` to check WebCrypto against RustCrypto, data held
/// outside Wasm memory, for it to check what is written there, the objects' order, for it to
/// check who waits for whom, promises awaited from Rust, for it to check what each await gets,
/// the bindings, for it to check each is read once, requests, for it to check when a body
/// is read, and an object's storage, for it to check what crosses to SQL and back.
#[doc(hidden)]
pub use edge::{gate, http};
#[doc(hidden)]
pub use store::durable::{storage as object_storage, ObjectStorage, Value};
#[doc(hidden)]
pub use store::{bindings, data, promise, seal};

use std::rc::Rc;

use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;
use worker::{event, web_sys, Env};

use crate::domain::config::{Config, RequestLog, SessionBackend};
use crate::domain::error::Error;
use crate::domain::time::Millis;
use crate::edge::dispatch::{dispatch, Here, Place};
use crate::edge::gate::Gate;
use crate::edge::http::{Incoming, Reply, Served};
use crate::edge::log;
use crate::edge::routes::{self, Route};
use crate::edge::runtime;
use crate::edge::settings;
use crate::store::events::{self, Journal, Queue};

#[event(start)]
fn start() {
    edge::heap::keep_room_low();
    console_error_panic_hook::set_once();
}

/// The fetch handler. It takes the runtime's request as it is (no conversion into `worker`
/// types) and answers at once when no I/O is needed (`/health`, every refusal made before any
/// I/O, and, in strong mode, a request without a body: the promise of its object's response);
/// the rest resolve a promise.
#[wasm_bindgen]
pub fn fetch(req: web_sys::Request, env: Env, ctx: JsValue) -> JsValue {
    let answered = async move { Ok(answer(req, env, ctx).await) };
    gate::run(answered, Gate::Open)
}

/// The response, or (strong mode) the promise of the object's.
async fn answer(req: web_sys::Request, env: Env, ctx: JsValue) -> JsValue {
    let started = runtime::now();
    let req = Incoming::new(req);
    let method = req.head.method.clone();
    let matched = routes::find(req.head.path()).map(|(route, param)| (route, param.to_owned()));
    let route = routes::log_name(matched.as_ref().map(|(route, _)| *route));
    let config = settings::config(&env);
    // Lifecycle events, when the worker has a Queue for them: on KV, recorded by the stores as
    // each write succeeds and sent once the response is out (strong mode's objects send their
    // own, so the worker keeps no journal there).
    let kv = config
        .as_ref()
        .is_ok_and(|config| config.backend == SessionBackend::Kv);
    let queue = kv.then(|| Queue::binding(&env)).flatten();
    let journal = queue.as_ref().map(|_| Rc::new(Journal::default()));
    // A configuration that cannot be read logs every request: it is an outage.
    let log = config
        .as_ref()
        .map_or(RequestLog::All, |config| config.log_requests);
    let reply = match serve(req, &env, matched, config, started, journal.clone()).await {
        Ok(Served::Here(reply)) => reply,
        // The object logs the request; KV's journal is not kept in strong mode.
        Ok(Served::Object(response)) => return response.into(),
        Err(err) => {
            log::internal(route, &err);
            Reply::problem(&err)
        }
    };
    let events = journal.map(|journal| journal.take()).unwrap_or_default();
    if let (Some(queue), false) = (queue, events.is_empty()) {
        let cause = format!("queue {}: {{}}; {} lost", events::BINDING, events.len());
        let failed = log::error_line("events", "store_unavailable", &cause);
        queue.send_after_response(&ctx, &events, &failed);
    }
    reply.log(log, &method, route, started);
    reply.into_response().into()
}

/// Authentication, then the settings (already read: an error here fails the request), then the
/// route, dispatched from its row.
async fn serve(
    req: Incoming,
    env: &Env,
    matched: Option<(&'static Route, String)>,
    config: Result<Rc<Config>, Error>,
    now: Millis,
    journal: Option<Rc<Journal>>,
) -> Result<Served, Error> {
    // Authentication first: a caller without the token learns nothing of the other settings,
    // not even on the one open route: there a configuration it cannot read is a bare 500, and
    // only the log says which variable is wrong.
    let mut admitted = true;
    if let Some(token) = settings::token(env)? {
        let open = matched
            .as_ref()
            .is_some_and(|(route, _)| route.pattern == "/health");
        admitted = token.admits(req.head.authorization.as_deref());
        if !open && !admitted {
            return Err(Error::Unauthorized);
        }
    }
    let checked = config.and_then(|config| Ok(config.check_at(now).map(|()| config)?));
    let config = checked.map_err(|err| match admitted {
        true => err,
        false => Error::Internal(err.log_cause().unwrap_or_default()),
    })?;
    let (route, param) = matched.ok_or(Error::NotFound)?;
    let here = Here {
        env,
        config: &config,
        now,
        place: Place::Worker { journal },
    };
    dispatch(req, route, &param, here).await
}
