//! One small function per route: parse the request at the edge, call the session or cache
//! operation, shape the response. No KV key and no expiry rule is decided here.

use std::cell::Cell;
use std::rc::Rc;

use serde::Serialize;
use worker::{Date, Request, Response, ResponseBuilder, RouteContext};

use crate::cache::{self, Cache, CacheKey};
use crate::config::Config;
use crate::error::Error;
use crate::http::{self, header, read_object, with_session_headers, JSON, TEXT};
use crate::id::SessionId;
use crate::session::{Meta, Millis};
use crate::sessions::{IfMatch, Sessions};
use crate::store::KvBackend;
use crate::time::rfc3339;

/// What every handler gets beside the request.
pub type Ctx = RouteContext<Rc<RequestState>>;

/// The settings in force, the route, and the error code the request ended with (for the log).
/// Kept per request, not globally: one isolate serves many requests at once.
pub struct RequestState {
    pub config: Rc<Config>,
    /// The route template, for logs.
    pub route: &'static str,
    pub error_code: Cell<Option<&'static str>>,
}

const KV_BINDING: &str = "sessionstore";

/// The embedded OpenAPI document, converted from `openapi.yaml` at build time.
const OPENAPI_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/openapi.json"));

fn now() -> Millis {
    Date::now().as_millis()
}

fn store(ctx: &Ctx) -> Result<KvBackend, Error> {
    Ok(KvBackend(ctx.kv(KV_BINDING)?))
}

fn session_id(ctx: &Ctx) -> Result<SessionId, Error> {
    ctx.param("id")
        .and_then(|id| SessionId::parse(id))
        .ok_or(Error::InvalidSessionId)
}

fn if_match(req: &Request) -> Option<IfMatch> {
    header(req, "if-match").map(|value| IfMatch::parse(&value))
}

/// `?ttl=N` on `/create`: the session's own idle timeout.
fn requested_ttl(req: &Request, config: &Config) -> Result<Option<u64>, Error> {
    let url = req.inner().url();
    let Some(raw) = http::query_param(&url, "ttl") else {
        return Ok(None);
    };
    raw.parse::<u64>()
        .ok()
        .and_then(|ttl| config.policy.check_session_ttl(ttl))
        .map(Some)
        .ok_or_else(|| {
            Error::InvalidTtl(format!(
                "ttl must be a whole number of seconds from 1 to {}.",
                config.policy.max_lifetime
            ))
        })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NewSession {
    session_id: String,
    expires_at: String,
}

/// `201` for a session under a new id: the bare id as text (what `user-mgmt` reads with
/// `response.text()`), or JSON when `Accept` asks for it.
fn new_session(req: &Request, id: SessionId, meta: &Meta) -> Result<Response, Error> {
    let id = id.to_string();
    let response = if http::wants_json(header(req, "accept").as_deref()) {
        let body = NewSession {
            session_id: id.clone(),
            expires_at: rfc3339(meta.expires_at),
        };
        http::body(201, JSON, serde_json::to_vec(&body).map_err(internal)?)?
    } else {
        http::body(201, TEXT, id.clone().into_bytes())?
    };
    response.headers().set("location", &format!("/get/{id}"))?;
    with_session_headers(response, meta)
}

fn generate_id() -> Result<SessionId, Error> {
    SessionId::generate().map_err(|err| Error::Internal(format!("no randomness: {err}")))
}

fn internal(err: impl std::fmt::Display) -> Error {
    Error::Internal(err.to_string())
}

pub async fn create(mut req: Request, ctx: Ctx) -> Result<Response, Error> {
    let ttl = requested_ttl(&req, &ctx.data.config)?;
    let (data, _) = read_object(&mut req, ctx.data.config.max_body_bytes).await?;
    let id = generate_id()?;
    let store = store(&ctx)?;
    let meta = Sessions::new(&store, ctx.data.config.policy)
        .create(id, data.as_bytes(), ttl, now())
        .await?;
    new_session(&req, id, &meta)
}

pub async fn get(_req: Request, ctx: Ctx) -> Result<Response, Error> {
    let id = session_id(&ctx)?;
    let store = store(&ctx)?;
    let (body, meta) = Sessions::new(&store, ctx.data.config.policy)
        .read(&id, now())
        .await?;
    let response = ResponseBuilder::new()
        .with_status(200)
        .with_header("content-type", JSON)?;
    with_session_headers(response.stream(body), &meta)
}

pub async fn update(mut req: Request, ctx: Ctx) -> Result<Response, Error> {
    let id = session_id(&ctx)?;
    let (data, _) = read_object(&mut req, ctx.data.config.max_body_bytes).await?;
    let store = store(&ctx)?;
    let sessions = Sessions::new(&store, ctx.data.config.policy);
    let meta = sessions
        .replace(&id, data.as_bytes(), if_match(&req).as_ref(), now())
        .await?;
    with_session_headers(http::body(200, JSON, data.into_bytes())?, &meta)
}

pub async fn add(mut req: Request, ctx: Ctx) -> Result<Response, Error> {
    let id = session_id(&ctx)?;
    let (patch, how) = read_object(&mut req, ctx.data.config.max_body_bytes).await?;
    let store = store(&ctx)?;
    let sessions = Sessions::new(&store, ctx.data.config.policy);
    let (merged, meta) = sessions
        .merge(&id, &patch, how, if_match(&req).as_ref(), now())
        .await?;
    with_session_headers(http::body(200, JSON, merged)?, &meta)
}

pub async fn delete(req: Request, ctx: Ctx) -> Result<Response, Error> {
    let id = session_id(&ctx)?;
    let store = store(&ctx)?;
    Sessions::new(&store, ctx.data.config.policy)
        .delete(&id, if_match(&req).as_ref(), now())
        .await?;
    Ok(http::no_content())
}

pub async fn touch(_req: Request, ctx: Ctx) -> Result<Response, Error> {
    let id = session_id(&ctx)?;
    let store = store(&ctx)?;
    let meta = Sessions::new(&store, ctx.data.config.policy)
        .touch(&id, now())
        .await?;
    with_session_headers(http::no_content(), &meta)
}

pub async fn rotate(req: Request, ctx: Ctx) -> Result<Response, Error> {
    let id = session_id(&ctx)?;
    let new_id = generate_id()?;
    let store = store(&ctx)?;
    let meta = Sessions::new(&store, ctx.data.config.policy)
        .rotate(&id, new_id, now())
        .await?;
    new_session(&req, new_id, &meta)
}

fn cache_key(ctx: &Ctx) -> Result<CacheKey, Error> {
    CacheKey::from_path(ctx.param("key").map_or("", String::as_str))
}

pub async fn cache_get(_req: Request, ctx: Ctx) -> Result<Response, Error> {
    let key = cache_key(&ctx)?;
    let store = store(&ctx)?;
    let data = Cache::new(&store).get(&key).await?;
    http::body(200, JSON, data.into_bytes())
}

pub async fn cache_put(mut req: Request, ctx: Ctx) -> Result<Response, Error> {
    let key = cache_key(&ctx)?;
    let (body, _) = read_object(&mut req, ctx.data.config.max_body_bytes).await?;
    let (data, ttl) = cache::parse_put_body(&body)?;
    let store = store(&ctx)?;
    Cache::new(&store).put(&key, data, ttl).await?;
    let stored = cache::Stored {
        key: key.as_str(),
        ttl,
    };
    http::body(200, JSON, serde_json::to_vec(&stored).map_err(internal)?)
}

pub async fn cache_delete(_req: Request, ctx: Ctx) -> Result<Response, Error> {
    let key = cache_key(&ctx)?;
    let store = store(&ctx)?;
    Cache::new(&store).delete(&key).await?;
    let deleted = cache::Deleted { key: key.as_str() };
    http::body(200, JSON, serde_json::to_vec(&deleted).map_err(internal)?)
}

/// Liveness without touching KV: `200` whenever the worker runs with a valid configuration.
pub async fn health(_req: Request, _ctx: Ctx) -> Result<Response, Error> {
    http::body(200, JSON, br#"{"status":"ok"}"#.to_vec())
}

pub async fn openapi(_req: Request, _ctx: Ctx) -> Result<Response, Error> {
    http::body(200, JSON, OPENAPI_JSON.as_bytes().to_vec())
}

pub async fn not_found(_req: Request, _ctx: Ctx) -> Result<Response, Error> {
    Err(Error::NotFound)
}
