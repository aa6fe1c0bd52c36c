//! session-state: session storage for serverless applications, as a Cloudflare Worker on
//! Workers KV (or Durable Objects, in strong mode). This file is the entry point: settings,
//! authentication, the route lookup and the request log. Everything else lives in the module
//! named for it.

mod auth;
mod cache;
mod config;
mod durable_object;
mod error;
mod handlers;
mod http;
pub mod id;
pub mod json;
mod log;
pub mod merge;
mod routes;
mod runtime;
mod session;
mod sessions;
mod store;
mod subject;
mod subjects;
mod time;

use std::cell::OnceCell;
use std::future::Future;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;
use worker::wasm_bindgen_futures::future_to_promise;
use worker::{console_error, console_log, event, web_sys, Env};

use crate::config::{Config, ConfigError, SessionBackend};
use crate::durable_object::{BINDING, SUBJECT_BINDING};
use crate::error::Error;
use crate::handlers::{Scope, SessionScope, SubjectScope, KV_BINDING};
use crate::http::{Incoming, Reply};
use crate::id::SessionId;
use crate::log::RequestLog;
use crate::routes::{Handler, Route, Target};
use crate::session::Millis;
use crate::store::durable::{ID_HEADER, SUBJECT_HEADER};
use crate::store::kv::{Kv, KvIndex, KvSessions};
use crate::store::{Backend, IndexBackend, SubjectStores};
use crate::subject::Subject;

#[event(start)]
fn start() {
    console_error_panic_hook::set_once();
}

/// The fetch handler. It takes the runtime's request as it is (no conversion into `worker`
/// types) and answers at once when no I/O is needed (`/health`, and every refusal made before
/// any I/O); the rest resolve a promise.
#[wasm_bindgen]
pub fn fetch(req: web_sys::Request, env: Env, _ctx: JsValue) -> JsValue {
    let mut answer = Box::pin(answer(req, env));
    let mut cx = Context::from_waker(Waker::noop());
    match answer.as_mut().poll(&mut cx) {
        Poll::Ready(response) => response.into(),
        // The executor polls it again with a real waker, as futures allow.
        Poll::Pending => future_to_promise(async move { Ok(answer.await.into()) }).into(),
    }
}

async fn answer(req: web_sys::Request, env: Env) -> web_sys::Response {
    let started = runtime::now();
    let req = Incoming::new(req);
    let method = req.head.method.clone();
    let matched = routes::find(req.head.path()).map(|(route, param)| (route, param.to_owned()));
    let route = routes::log_name(matched.as_ref().map(|(route, _)| *route));
    let config = config(&env);
    // A configuration that cannot be read logs every request: it is an outage.
    let log = config
        .as_ref()
        .map_or(RequestLog::All, |config| config.log_requests);
    let reply = match serve(req, &env, matched, config, started).await {
        Ok(reply) => reply,
        Err(err) => {
            log_internal(route, &err);
            Reply::problem(&err)
        }
    };
    let duration_ms = runtime::now().saturating_sub(started);
    if log.wants(reply.status, duration_ms) {
        let line = log::RequestLine {
            method: &method,
            route,
            status: reply.status,
            duration_ms,
            code: reply.code.as_deref(),
        };
        console_log!("{}", line.to_json());
    }
    reply.into_response()
}

/// The settings (already read: an error here fails the request), then authentication, then the
/// route and its method, then the route's handler.
async fn serve(
    req: Incoming,
    env: &Env,
    matched: Option<(&'static Route, String)>,
    config: Result<Rc<Config>, Error>,
    now: Millis,
) -> Result<Reply, Error> {
    let config = config?;
    if let Some(token) = &config.api_token {
        let open = matched
            .as_ref()
            .is_some_and(|(route, _)| route.pattern == "/health");
        if !open && !auth::bearer_matches(req.head.authorization.as_deref(), token) {
            return Err(Error::Unauthorized);
        }
    }
    let (route, param) = matched.ok_or(Error::NotFound)?;
    if !route.accepts(&req.head.method) {
        return Err(Error::MethodNotAllowed { allow: route.allow });
    }
    let strong = config.backend == SessionBackend::DurableObject;
    match route.handler {
        Handler::Worker(handler) => {
            let scope = Scope {
                config: &config,
                env,
                param: &param,
            };
            handler(req, &scope).await
        }
        Handler::Session {
            handler,
            target,
            body,
        } => {
            let id = match target {
                Target::New => handlers::generate_id()?,
                Target::Path => SessionId::parse(&param).ok_or(Error::InvalidSessionId)?,
            };
            if strong {
                let body = match body {
                    true => http::read_blob(&req, config.policy.max_bytes).await?,
                    false => None,
                };
                let name = id.to_string();
                let header = (ID_HEADER, name.as_str());
                return durable_object::forward(req, env, BINDING, &name, header, body).await;
            }
            let store = Backend::Kv(KvSessions(Kv::binding(env, KV_BINDING)?));
            let index = IndexBackend::Kv(KvIndex(Kv::binding(env, KV_BINDING)?));
            let scope = SessionScope {
                config: &config,
                id,
                store: &store,
                index: &index,
                now,
            };
            handler(req, &scope).await
        }
        Handler::Subject(handler) => {
            let subject = Subject::from_encoded(&param, config.subject_key.as_deref())?;
            if strong {
                let name = subject.hex();
                let header = (SUBJECT_HEADER, name.as_str());
                return durable_object::forward(req, env, SUBJECT_BINDING, &name, header, None)
                    .await;
            }
            let stores = SubjectStores::Kv(
                KvIndex(Kv::binding(env, KV_BINDING)?),
                KvSessions(Kv::binding(env, KV_BINDING)?),
            );
            let scope = SubjectScope {
                subject,
                stores: &stores,
                now,
            };
            handler(req, &scope).await
        }
    }
}

thread_local! {
    /// Settings are read once per isolate: vars and secrets only change with a new deployment.
    static CONFIG: OnceCell<Result<Rc<Config>, ConfigError>> = const { OnceCell::new() };
}

fn config(env: &Env) -> Result<Rc<Config>, Error> {
    let config = CONFIG.with(|cell| {
        cell.get_or_init(|| {
            Config::from_lookup(|name| {
                let value = env.secret(name).or_else(|_| env.var(name)).ok()?;
                Some(value.to_string())
            })
            .map(Rc::new)
        })
        .clone()
    });
    Ok(config?)
}

fn log_internal(route: &str, err: &Error) {
    if let Some(cause) = err.log_cause() {
        console_error!("{}", log::error_line(route, err.code(), &cause));
    }
}
