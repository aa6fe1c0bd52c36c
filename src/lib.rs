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

use worker::{
    console_error, console_log, event, Context, Date, Env, Method, Request, Response, Router,
};

use crate::config::{Config, ConfigError};
use crate::error::Error;
use crate::handlers::{Ctx, RequestState};
use crate::routes::ROUTES;

#[event(start)]
fn start() {
    console_error_panic_hook::set_once();
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    let started = Date::now().as_millis();
    let method = req.method();
    let route = routes::template(&req.path());
    let (mut response, code) = match serve(req, env).await {
        Ok(answer) => answer,
        Err(err) => {
            log_internal(route, &err);
            (http::problem(&err), Some(err.code()))
        }
    };
    response.headers_mut().set("cache-control", "no-store")?;
    let line = log::RequestLine {
        method: method.as_ref(),
        route,
        status: response.status_code(),
        duration_ms: Date::now().as_millis().saturating_sub(started),
        code,
    };
    console_log!("{}", line.to_json());
    Ok(response)
}

/// Settings, then authentication, then the route. Returns the response and the error code it
/// carries, if any.
async fn serve(req: Request, env: Env) -> Result<(Response, Option<&'static str>), Error> {
    let config = config(&env)?;
    if let Some(token) = &config.api_token {
        let authorization = http::header(&req, "authorization");
        if req.path() != "/health" && !auth::bearer_matches(authorization.as_deref(), token) {
            return Err(Error::Unauthorized);
        }
    }
    let state = Rc::new(RequestState {
        config,
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

/// Each route once, with its handler; every other method on a known path gets a `405`.
fn router(state: Rc<RequestState>) -> Router<'static, Rc<RequestState>> {
    let router = Router::with_data(state)
        .post_async("/create", |req, ctx| respond(handlers::create, req, ctx))
        .get_async("/get/:id", |req, ctx| respond(handlers::get, req, ctx))
        .head_async("/get/:id", |req, ctx| respond(handlers::get, req, ctx))
        .put_async("/update/:id", |req, ctx| {
            respond(handlers::update, req, ctx)
        })
        .patch_async("/add/:id", |req, ctx| respond(handlers::add, req, ctx))
        .delete_async("/delete/:id", |req, ctx| {
            respond(handlers::delete, req, ctx)
        })
        .post_async("/touch/:id", |req, ctx| respond(handlers::touch, req, ctx))
        .post_async("/rotate/:id", |req, ctx| {
            respond(handlers::rotate, req, ctx)
        })
        .get_async("/cache/*key", |req, ctx| {
            respond(handlers::cache_get, req, ctx)
        })
        .head_async("/cache/*key", |req, ctx| {
            respond(handlers::cache_get, req, ctx)
        })
        .put_async("/cache/*key", |req, ctx| {
            respond(handlers::cache_put, req, ctx)
        })
        .delete_async("/cache/*key", |req, ctx| {
            respond(handlers::cache_delete, req, ctx)
        })
        .get_async("/health", |req, ctx| respond(handlers::health, req, ctx))
        .head_async("/health", |req, ctx| respond(handlers::health, req, ctx))
        .get_async("/openapi.json", |req, ctx| {
            respond(handlers::openapi, req, ctx)
        })
        .head_async("/openapi.json", |req, ctx| {
            respond(handlers::openapi, req, ctx)
        })
        .or_else_any_method_async("/", |req, ctx| respond(handlers::not_found, req, ctx))
        .or_else_any_method_async("/*path", |req, ctx| respond(handlers::not_found, req, ctx));
    ROUTES
        .iter()
        .fold(router, |router, route| refuse_other_methods(router, route))
}

/// Registers a `405` with `Allow` for each method `route` does not accept. The router's own
/// `405` is plain text; registering these keeps every error a problem document.
fn refuse_other_methods<'a>(
    mut router: Router<'a, Rc<RequestState>>,
    route: &routes::Route,
) -> Router<'a, Rc<RequestState>> {
    let allow = route.allow;
    let refuse = move |req, ctx| {
        respond(
            move |_, _| async move { Err(Error::MethodNotAllowed { allow }) },
            req,
            ctx,
        )
    };
    for method in [
        Method::Head,
        Method::Get,
        Method::Post,
        Method::Put,
        Method::Patch,
        Method::Delete,
        Method::Options,
    ] {
        if allow.split(", ").any(|m| m == method.as_ref()) {
            continue;
        }
        router = match method {
            Method::Head => router.head_async(route.pattern, refuse),
            Method::Get => router.get_async(route.pattern, refuse),
            Method::Post => router.post_async(route.pattern, refuse),
            Method::Put => router.put_async(route.pattern, refuse),
            Method::Patch => router.patch_async(route.pattern, refuse),
            Method::Delete => router.delete_async(route.pattern, refuse),
            _ => router.options_async(route.pattern, refuse),
        };
    }
    router
}

/// Runs a handler and turns its error, if any, into a problem response, noting the code for
/// the request log.
async fn respond<F, Fut>(handler: F, req: Request, ctx: Ctx) -> worker::Result<Response>
where
    F: FnOnce(Request, Ctx) -> Fut,
    Fut: Future<Output = Result<Response, Error>>,
{
    let state = Rc::clone(&ctx.data);
    let route = routes::template(&req.path());
    match handler(req, ctx).await {
        Ok(response) => Ok(response),
        Err(err) => {
            log_internal(route, &err);
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
