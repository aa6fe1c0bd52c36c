//! session-state: session storage for serverless applications, as a Cloudflare Worker on
//! Workers KV. This file is the entry point: settings, authentication, the router and the
//! request log. Everything else lives in the module named for it.

mod auth;
mod cache;
mod config;
mod error;
mod handlers;
mod http;
pub mod id;
mod log;
mod object;
mod routes;
mod session;
mod sessions;
mod store;
mod time;

use std::cell::{Cell, OnceCell};
use std::future::Future;
use std::rc::Rc;

use worker::{console_error, console_log, event, Context, Date, Env, Request, Response, Router};

use crate::config::{Config, ConfigError};
use crate::error::Error;
use crate::handlers::{Ctx, RequestState};
use crate::routes::Route;

#[event(start)]
fn start() {
    console_error_panic_hook::set_once();
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    let started = Date::now().as_millis();
    // The raw method: `worker::Method` reads unknown ones (QUERY, say) as GET.
    let method = req.inner().method();
    let matched = routes::find(&req.path());
    let route = routes::log_name(matched);
    let config = config(&env);
    let log_request = config.as_ref().map_or(true, |config| config.log_requests);
    let (mut response, code) = match serve(req, env, &method, matched, config).await {
        Ok(answer) => answer,
        Err(err) => {
            log_internal(route, &err);
            (http::problem(&err), Some(err.code()))
        }
    };
    response.headers_mut().set("cache-control", "no-store")?;
    if log_request {
        let line = log::RequestLine {
            method: &method,
            route,
            status: response.status_code(),
            duration_ms: Date::now().as_millis().saturating_sub(started),
            code,
        };
        console_log!("{}", line.to_json());
    }
    Ok(response)
}

/// The settings (already read: an error here fails the request), then authentication, then
/// the method, then the route. Returns the response and the error code it carries, if any.
async fn serve(
    req: Request,
    env: Env,
    method: &str,
    matched: Option<&'static Route>,
    config: Result<Rc<Config>, Error>,
) -> Result<(Response, Option<&'static str>), Error> {
    let config = config?;
    if let Some(token) = &config.api_token {
        let authorization = http::header(&req, "authorization");
        let open = matched.is_some_and(|route| route.pattern == "/health");
        if !open && !auth::bearer_matches(authorization.as_deref(), token) {
            return Err(Error::Unauthorized);
        }
    }
    if let Some(route) = matched {
        if !route.accepts(method) {
            return Err(Error::MethodNotAllowed { allow: route.allow });
        }
    }
    let state = Rc::new(RequestState {
        config,
        route: routes::log_name(matched),
        error_code: Cell::new(None),
    });
    let response = router(Rc::clone(&state)).run(req, env).await?;
    Ok((response, state.error_code.get()))
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

/// Each route once, with its handler. Methods a path does not accept never get here (see
/// `serve`), so the router's own plain-text `405` never answers.
fn router(state: Rc<RequestState>) -> Router<'static, Rc<RequestState>> {
    /// The router's handler for one of ours: errors become problem responses.
    macro_rules! to {
        ($handler:path) => {
            |req, ctx| respond($handler, req, ctx)
        };
    }
    Router::with_data(state)
        .post_async("/create", to!(handlers::create))
        .get_async("/get/:id", to!(handlers::get))
        .head_async("/get/:id", to!(handlers::get))
        .put_async("/update/:id", to!(handlers::update))
        .patch_async("/add/:id", to!(handlers::add))
        .delete_async("/delete/:id", to!(handlers::delete))
        .post_async("/touch/:id", to!(handlers::touch))
        .post_async("/rotate/:id", to!(handlers::rotate))
        .get_async("/cache/*key", to!(handlers::cache_get))
        .head_async("/cache/*key", to!(handlers::cache_get))
        .put_async("/cache/*key", to!(handlers::cache_put))
        .delete_async("/cache/*key", to!(handlers::cache_delete))
        .get_async("/health", to!(handlers::health))
        .head_async("/health", to!(handlers::health))
        .get_async("/openapi.json", to!(handlers::openapi))
        .head_async("/openapi.json", to!(handlers::openapi))
        .or_else_any_method_async("/", to!(handlers::not_found))
        .or_else_any_method_async("/*path", to!(handlers::not_found))
}

/// Runs a handler and turns its error, if any, into a problem response, noting the code for
/// the request log.
async fn respond<F, Fut>(handler: F, req: Request, ctx: Ctx) -> worker::Result<Response>
where
    F: FnOnce(Request, Ctx) -> Fut,
    Fut: Future<Output = Result<Response, Error>>,
{
    let state = Rc::clone(&ctx.data);
    match handler(req, ctx).await {
        Ok(response) => Ok(response),
        Err(err) => {
            log_internal(state.route, &err);
            state.error_code.set(Some(err.code()));
            Ok(http::problem(&err))
        }
    }
}

fn log_internal(route: &str, err: &Error) {
    if let Some(cause) = err.log_cause() {
        console_error!("{}", log::error_line(route, err.code(), &cause));
    }
}
