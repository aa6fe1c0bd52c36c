//! session-state: session storage for serverless applications, as a Cloudflare Worker on
//! Workers KV. This file is the entry point: settings, authentication, the router and the
//! request log. Everything else lives in the module named for it.

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
mod session;
mod sessions;
mod store;
mod subject;
mod subjects;
mod time;

use std::borrow::Cow;
use std::cell::OnceCell;
use std::rc::Rc;

use worker::{console_error, console_log, event, Context, Date, Env, Request, Response};

use crate::config::{Config, ConfigError, SessionBackend};
use crate::durable_object::{BINDING, CODE_HEADER, SUBJECT_BINDING};
use crate::error::Error;
use crate::handlers::{Scope, SessionScope, SubjectScope, KV_BINDING};
use crate::id::SessionId;
use crate::log::RequestLog;
use crate::routes::{Handler, Route, Target};
use crate::store::durable::{ID_HEADER, SUBJECT_HEADER};
use crate::store::kv::{Kv, KvIndex, KvSessions};
use crate::store::{Backend, IndexBackend, SubjectStores};
use crate::subject::Subject;

#[event(start)]
fn start() {
    console_error_panic_hook::set_once();
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    let started = Date::now().as_millis();
    // The raw method: `worker::Method` reads unknown ones (QUERY, say) as GET.
    let method = req.inner().method();
    let path = req.path();
    let matched = routes::find(&path);
    let route = routes::log_name(matched.map(|(route, _)| route));
    let config = config(&env);
    // A configuration that cannot be read logs every request: it is an outage.
    let log = config
        .as_ref()
        .map_or(RequestLog::All, |config| config.log_requests);
    let (mut response, code) = match serve(req, &env, &method, matched, config).await {
        Ok(response) => {
            // A problem a session's object answered names its code for this log.
            let code = response.headers().get(CODE_HEADER).ok().flatten();
            (response, code.map(Cow::Owned))
        }
        Err(err) => {
            log_internal(route, &err);
            (http::problem(&err), Some(Cow::Borrowed(err.code())))
        }
    };
    let headers = response.headers_mut();
    headers.delete(CODE_HEADER)?;
    headers.set("cache-control", "no-store")?;
    let status = response.status_code();
    let duration_ms = Date::now().as_millis().saturating_sub(started);
    if log.wants(status, duration_ms) {
        let line = log::RequestLine {
            method: &method,
            route,
            status,
            duration_ms,
            code: code.as_deref(),
        };
        console_log!("{}", line.to_json());
    }
    Ok(response)
}

/// The settings (already read: an error here fails the request), then authentication, then the
/// route and its method, then the route's handler.
async fn serve(
    req: Request,
    env: &Env,
    method: &str,
    matched: Option<(&'static Route, &str)>,
    config: Result<Rc<Config>, Error>,
) -> Result<Response, Error> {
    let config = config?;
    if let Some(token) = &config.api_token {
        let authorization = http::header(&req, "authorization");
        let open = matched.is_some_and(|(route, _)| route.pattern == "/health");
        if !open && !auth::bearer_matches(authorization.as_deref(), token) {
            return Err(Error::Unauthorized);
        }
    }
    let (route, param) = matched.ok_or(Error::NotFound)?;
    if !route.accepts(method) {
        return Err(Error::MethodNotAllowed { allow: route.allow });
    }
    match route.handler {
        Handler::Worker(handler) => {
            let scope = Scope {
                config: &config,
                env,
                param,
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
                Target::Path => SessionId::parse(param).ok_or(Error::InvalidSessionId)?,
            };
            if config.backend == SessionBackend::DurableObject {
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
                now: Date::now().as_millis(),
            };
            handler(req, &scope).await
        }
        Handler::Subject(handler) => {
            let subject = Subject::from_encoded(param, config.subject_key.as_deref())?;
            if config.backend == SessionBackend::DurableObject {
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
                now: Date::now().as_millis(),
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
