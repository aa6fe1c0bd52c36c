//! One small function per route: parse the request at the edge, call the session or cache
//! operation, shape the response. No storage key and no expiry rule is decided here.

use std::future::Future;
use std::pin::Pin;

use serde::Serialize;
use worker::Env;

use crate::domain::auth::{requested_level, Demand};
use crate::domain::config::Config;
use crate::domain::derive::{DeviceKey, Handle};
use crate::domain::device::{Device, DeviceHeaders};
use crate::domain::error::Error;
use crate::domain::id::SessionId;
use crate::domain::json::{self, JsonObject};
use crate::domain::precondition::IfMatch;
use crate::domain::session::Meta;
use crate::domain::subject::Subject;
use crate::domain::time::{rfc3339, Millis};
use crate::edge::http::{self, read_object, with_session_headers, Incoming, Reply, JSON, TEXT};
use crate::service::cache::{self, Cache, CacheKey};
use crate::service::sessions::{NewDevice, NewSession, Sessions};
use crate::store::backend::{BackendIndex, BackendStore};
use crate::store::kv::Kv;

mod bind;
mod subjects;

pub use bind::{bind, bind_challenge, binding_challenge, binding_refresh};
pub use subjects::{
    current, kept, subject_session, subject_sessions, SubjectScope, SUBJECT_SESSIONS,
};

/// What a handler returns, boxed so that the route table can hold every handler alike.
pub type Answer<'a> = Pin<Box<dyn Future<Output = Result<Reply, Error>> + 'a>>;

/// The KV namespace: sessions in KV mode, the permission cache in every mode.
pub const KV_BINDING: &str = "sessionstore";

/// What a route served by the worker gets beside the request.
pub struct Scope<'a> {
    pub config: &'a Config,
    pub env: &'a Env,
    /// The text the route's `:name` or `*name` stands for.
    pub param: &'a str,
}

/// What a session route gets beside the request, wherever the session lives.
pub struct SessionScope<'a> {
    pub config: &'a Config,
    /// The session the request is about: the id in the path, or the new id for `/create`.
    pub id: SessionId,
    pub store: &'a BackendStore,
    /// Where new sessions with a subject are listed under it.
    pub index: &'a BackendIndex,
    pub now: Millis,
}

impl SessionScope<'_> {
    fn sessions(&self) -> Sessions<'_, BackendStore, BackendIndex> {
        Sessions::new(self.store, self.config.policy)
            .renewing(self.config.renewal)
            .indexed(self.index, self.config.max_sessions_per_subject)
    }

    /// [`SessionScope::sessions`], holding the session to what `req` demands of its last
    /// authentication (`Session-Max-Auth-Age`, `Session-Min-Auth-Level`).
    fn demanded(&self, req: &Incoming) -> Result<Sessions<'_, BackendStore, BackendIndex>, Error> {
        let head = &req.head;
        let demand = Demand::parse(head.max_auth_age.as_deref(), head.min_auth_level.as_deref())?;
        Ok(self.sessions().demanding(demand))
    }
}

/// The embedded OpenAPI document, converted from `openapi.yaml` at build time.
const OPENAPI_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/openapi.json"));

/// The `If-Match` precondition, if the request has one; `400` when it cannot be read.
fn if_match(req: &Incoming) -> Result<Option<IfMatch>, Error> {
    req.head.if_match.as_deref().map(IfMatch::parse).transpose()
}

/// `?ttl=N` on `/create`: the session's own idle timeout.
fn requested_ttl(req: &Incoming, config: &Config) -> Result<Option<u64>, Error> {
    let Some(raw) = http::query_param(&req.head.url, "ttl") else {
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

/// The JSON answer for a session under a new id.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Created {
    session_id: String,
    expires_at: String,
}

/// `201` for a session under a new id: the bare id as text (what `user-mgmt` reads with
/// `response.text()`), or JSON when `Accept` asks for it.
fn new_session(
    req: &Incoming,
    id: SessionId,
    meta: &Meta,
    config: &Config,
) -> Result<Reply, Error> {
    let handle = Handle::of(&id);
    let id = id.to_string();
    let reply = if http::wants_json(req.head.accept.as_deref()) {
        let body = Created {
            session_id: id.clone(),
            expires_at: rfc3339(meta.expires_at),
        };
        Reply::body(201, JSON, serde_json::to_vec(&body).map_err(internal)?)
    } else {
        Reply::body(201, TEXT, id.clone().into_bytes())
    };
    let reply = reply
        .header("location", format!("/get/{id}"))
        .header("session-id", id)
        .header("session-handle", handle.to_string());
    Ok(with_session_headers(
        bind::with_id_end(reply, meta, config),
        meta,
    ))
}

/// A new id in the form this deployment issues (`SESSION_ID_FORMAT`).
pub fn generate_id(config: &Config) -> Result<SessionId, Error> {
    SessionId::generate_as(config.id_format)
        .map_err(|err| Error::Internal(format!("no randomness: {err}")))
}

fn internal(err: impl std::fmt::Display) -> Error {
    Error::Internal(err.to_string())
}

/// The subject of a new session: the `Session-Subject` header (percent-encoded), or else the
/// string in the data's field named by `SESSION_SUBJECT_FIELD`. Any other value of that field, or
/// none, means no subject; an empty or over-long subject is refused.
fn new_subject(
    req: &Incoming,
    data: &JsonObject,
    config: &Config,
) -> Result<Option<Subject>, Error> {
    let key = config.subject_key.as_deref();
    if let Some(header) = &req.head.subject {
        return Subject::from_encoded(header, key).map(Some);
    }
    match subject_field(data, config)? {
        Some(bytes) => Subject::new(&bytes, key).map(Some),
        None => Ok(None),
    }
}

/// The string in the data's field named by `SESSION_SUBJECT_FIELD`, as bytes.
fn subject_field(data: &JsonObject, config: &Config) -> Result<Option<Vec<u8>>, Error> {
    let Some(field) = &config.subject_field else {
        return Ok(None);
    };
    let (members, _) = json::members(data.as_str())?;
    Ok(json::get(&members, field).and_then(json::string_bytes))
}

/// The device info of a new session (`Session-Label`, `Session-Agent`, `Session-IP`), with the
/// key of its subject's it is to be sealed under; checked before anything is stored, so a
/// refusal stores nothing. The subject's key needs the subject as given: the header, or the
/// data's field.
fn new_device(
    req: &Incoming,
    data: &JsonObject,
    subject: Option<&Subject>,
    config: &Config,
) -> Result<Option<(Device, DeviceKey)>, Error> {
    let (label, agent, ip) = (
        req.header("session-label"),
        req.header("session-agent"),
        req.header("session-ip"),
    );
    let headers = DeviceHeaders {
        label: label.as_deref(),
        agent: agent.as_deref(),
        ip: ip.as_deref(),
    };
    // Device info without a subject is refused here, so there is none to keep without one.
    let Some(device) = Device::from_headers(headers, subject.is_some())? else {
        return Ok(None);
    };
    let key = config.subject_key.as_deref();
    let device_key = match &req.head.subject {
        Some(header) => DeviceKey::from_encoded(header, key),
        None => {
            let bytes = subject_field(data, config)?.unwrap_or_default();
            DeviceKey::of(&bytes, key)
        }
    };
    Ok(Some((device, device_key)))
}

pub async fn create(req: Incoming, scope: &SessionScope<'_>) -> Result<Reply, Error> {
    let ttl = requested_ttl(&req, scope.config)?;
    let level = requested_level(req.header("session-auth-level").as_deref())?;
    let (data, _) = read_object(&req, scope.config.policy.max_bytes).await?;
    let subject = new_subject(&req, &data, scope.config)?;
    let device = new_device(&req, &data, subject.as_ref(), scope.config)?;
    let device = device
        .as_ref()
        .map(|(device, key)| NewDevice { device, key });
    let meta = scope
        .sessions()
        .create_from(
            NewSession {
                id: scope.id,
                data: &data,
                ttl,
                level,
                subject,
                device,
            },
            scope.now,
        )
        .await?;
    new_session(&req, scope.id, &meta, scope.config)
}

pub async fn get(req: Incoming, scope: &SessionScope<'_>) -> Result<Reply, Error> {
    let session = scope.demanded(&req)?.get(&scope.id, scope.now).await?;
    let reply = Reply::body(200, JSON, session.data.into_bytes());
    Ok(with_session_headers(reply, &session.meta))
}

pub async fn update(req: Incoming, scope: &SessionScope<'_>) -> Result<Reply, Error> {
    let if_match = if_match(&req)?;
    let (data, _) = read_object(&req, scope.config.policy.max_bytes).await?;
    let meta = scope
        .demanded(&req)?
        .replace(&scope.id, &data, if_match.as_ref(), scope.now)
        .await?;
    Ok(with_session_headers(
        Reply::body(200, JSON, data.into_bytes()),
        &meta,
    ))
}

pub async fn add(req: Incoming, scope: &SessionScope<'_>) -> Result<Reply, Error> {
    let if_match = if_match(&req)?;
    let (patch, how) = read_object(&req, scope.config.policy.max_bytes).await?;
    let (merged, meta) = scope
        .demanded(&req)?
        .merge(&scope.id, &patch, how, if_match.as_ref(), scope.now)
        .await?;
    Ok(with_session_headers(Reply::data(200, JSON, merged), &meta))
}

pub async fn delete(req: Incoming, scope: &SessionScope<'_>) -> Result<Reply, Error> {
    let if_match = if_match(&req)?;
    scope
        .sessions()
        .delete(&scope.id, if_match.as_ref(), scope.now)
        .await?;
    Ok(Reply::no_content())
}

pub async fn touch(req: Incoming, scope: &SessionScope<'_>) -> Result<Reply, Error> {
    let meta = scope.demanded(&req)?.touch(&scope.id, scope.now).await?;
    Ok(with_session_headers(Reply::no_content(), &meta))
}

pub async fn rotate(req: Incoming, scope: &SessionScope<'_>) -> Result<Reply, Error> {
    let new_id = generate_id(scope.config)?;
    let meta = scope
        .demanded(&req)?
        .rotate(&scope.id, new_id, scope.now)
        .await?;
    new_session(&req, new_id, &meta, scope.config)
}

/// `POST /reauth/:id`: the user authenticated again (at `Session-Auth-Level`, 1 by default, as
/// at `/create`); the session gets a new id as at `/rotate`, answered as `/create` is.
pub async fn reauth(req: Incoming, scope: &SessionScope<'_>) -> Result<Reply, Error> {
    let level = requested_level(req.header("session-auth-level").as_deref())?;
    let new_id = generate_id(scope.config)?;
    let meta = scope
        .sessions()
        .reauthenticate(scope.id, new_id, level, scope.now)
        .await?;
    new_session(&req, new_id, &meta, scope.config)
}

/// `POST /renew/:id`: answered as `/rotate` is, with the successor's id; within the grace
/// window, a second renewal of the same id answers the same successor.
pub async fn renew(req: Incoming, scope: &SessionScope<'_>) -> Result<Reply, Error> {
    let new_id = generate_id(scope.config)?;
    let renewed = scope
        .demanded(&req)?
        .renew(&scope.id, new_id, scope.now)
        .await?;
    new_session(&req, renewed.id, &renewed.meta, scope.config)
}

/// `GET`, `PUT` and `DELETE /cache/:key`: the permission cache, on KV in every mode.
pub async fn cache(req: Incoming, scope: &Scope<'_>) -> Result<Reply, Error> {
    let key = CacheKey::from_path(scope.param)?;
    let store = Kv::binding(scope.env, KV_BINDING)?;
    let cache = Cache::new(&store);
    let body = match req.head.method.as_str() {
        "PUT" => {
            let (body, _) = read_object(&req, scope.config.policy.max_bytes).await?;
            let (data, ttl) = cache::parse_put_body(&body)?;
            cache.put(&key, data, ttl).await?;
            let stored = cache::Stored {
                key: key.as_str(),
                ttl,
            };
            serde_json::to_vec(&stored).map_err(internal)?
        }
        "DELETE" => {
            cache.delete(&key).await?;
            let deleted = cache::Deleted { key: key.as_str() };
            serde_json::to_vec(&deleted).map_err(internal)?
        }
        _ => cache.get(&key).await?.into_bytes(),
    };
    Ok(Reply::body(200, JSON, body))
}

/// Liveness without touching storage: `200` whenever the worker runs with a valid configuration.
pub async fn health(_req: Incoming, _scope: &Scope<'_>) -> Result<Reply, Error> {
    Ok(Reply::body(200, JSON, br#"{"status":"ok"}"#.to_vec()))
}

pub async fn openapi(_req: Incoming, _scope: &Scope<'_>) -> Result<Reply, Error> {
    Ok(Reply::body(200, JSON, OPENAPI_JSON.as_bytes().to_vec()))
}
