//! One dispatch for every public route, wherever the request is: the worker, a session's object
//! or a subject's object. The route's row says where it runs ([`Runs`]); [`dispatch`] runs it
//! here with this place's stores, or, at the worker in strong mode, forwards it to the object
//! where it runs ([`super::forward`]), whose class hands it back to [`serve_in_object`] and so
//! to [`dispatch`] again, from the same row. Requests between objects are the protocols of
//! [`protocol`], looked up in their own table; the worker never serves them.
//!
//! `PATCH /add/:id`, in KV mode: `lib.rs` → [`dispatch`] (the row: runs where the session is;
//! here: the worker, on KV) → `handlers::add`. In strong mode: `lib.rs` → [`dispatch`] (here:
//! the worker, strong) → `forward::to_session` → the session's object: `objects.rs` →
//! [`serve_in_object`] → [`dispatch`] (here: the session's object) → `handlers::add`.

use std::rc::Rc;

use worker::Env;

use crate::domain::config::{Config, RequestLog, SessionBackend};
use crate::domain::derive::{DeviceKey, Handle, StorageKey};
use crate::domain::error::Error;
use crate::domain::id::SessionId;
use crate::domain::subject::Subject;
use crate::domain::time::Millis;
use crate::edge::forward::{self, SESSIONS, SUBJECTS};
use crate::edge::handlers::{self, Scope, SessionScope, SubjectScope, KV_BINDING};
use crate::edge::http::{self, Incoming, Passed, Reply, Served};
use crate::edge::log;
use crate::edge::routes::{self, Route, Runs, Target};
use crate::edge::{runtime, settings};
use crate::service::subjects::SubjectStores;
use crate::store::backend::{BackendIndex, BackendStore};
use crate::store::bindings;
use crate::store::durable::index::SqlIndex;
use crate::store::durable::protocol::index::SubjectPeers;
use crate::store::durable::protocol::store::Peers;
use crate::store::durable::protocol::{
    self, Answer, Call, Object, Protocol, CURRENT_HEADER, EXCEPT_HEADER, ID_HEADER, KEY_HEADER,
    SUBJECT_HEADER,
};
use crate::store::durable::sessions::SqlSessions;
use crate::store::durable::storage::DoStorage;
use crate::store::events::{Journal, Queue};
use crate::store::kv::{Kv, KvIndex, KvSessions};
use crate::store::seal::WebCrypto;

/// Where a request is being served.
pub enum Place {
    /// The worker; `journal` collects KV mode's lifecycle events, to be sent after the response.
    Worker { journal: Option<Rc<Journal>> },
    /// A session's object (or one of the earlier strong mode), with its storage.
    Session(DoStorage),
    /// A subject's object, with its storage.
    Subject(DoStorage),
}

/// What every place has: the settings and the time of the request.
pub struct Here<'a> {
    pub env: &'a Env,
    pub config: &'a Config,
    pub now: Millis,
    pub place: Place,
}

/// Runs `route` (whose first parameter is `param`) where its row says, from `here`.
pub async fn dispatch(
    req: Incoming,
    route: &'static Route,
    param: &str,
    here: Here<'_>,
) -> Result<Served, Error> {
    if !route.accepts(&req.head.method) {
        return Err(Error::MethodNotAllowed { allow: route.allow });
    }
    let Here {
        env,
        config,
        now,
        place,
    } = here;
    let strong = config.backend == SessionBackend::DurableObject;
    let serve_legacy = config.legacy_lookup.at(now);
    match (route.runs, place) {
        (Runs::Worker(handler), Place::Worker { .. }) => {
            let scope = Scope { config, env, param };
            handler(req, &scope).await.map(Served::Here)
        }
        (
            Runs::Session {
                handler,
                target,
                body,
            },
            Place::Worker { journal },
        ) => {
            let id = match target {
                Target::New => handlers::generate_id(config)?,
                Target::Path => SessionId::parse(param).ok_or(Error::InvalidSessionId)?,
            };
            if strong {
                let body = match body {
                    true => http::passed_body(&req, config.policy.max_bytes).await?,
                    false => Passed::None,
                };
                let answer = forward::to_session(&req, env, config, route, &id, body)?;
                return Ok(Served::Object(answer));
            }
            let kv = Kv::binding(env, KV_BINDING)?;
            let store = KvSessions::new(kv, WebCrypto, serve_legacy).with_events(journal);
            let store = BackendStore::Kv(store);
            let index = BackendIndex::Kv(KvIndex::new(Kv::binding(env, KV_BINDING)?, serve_legacy));
            let scope = SessionScope {
                config,
                id,
                store: &store,
                index: &index,
                now,
            };
            handler(req, &scope).await.map(Served::Here)
        }
        (Runs::Session { handler, .. }, Place::Session(storage)) => {
            let id = req.header(ID_HEADER).and_then(|id| SessionId::parse(&id));
            let id = id.ok_or_else(|| Error::Internal("a session route without an id".into()))?;
            let store = session_store(storage, env, config, StorageKey::of(&id), Some(id), now)?;
            let store = BackendStore::Durable(store);
            let index = BackendIndex::Durable(SubjectPeers(bindings::namespace(env, SUBJECTS)?));
            let scope = SessionScope {
                config,
                id,
                store: &store,
                index: &index,
                now,
            };
            handler(req, &scope).await.map(Served::Here)
        }
        (Runs::Subject(handler), Place::Worker { journal }) => {
            let subject = Subject::from_encoded(param, config.subject_key.as_deref())?;
            let except = match (route.pattern, req.head.method.as_str()) {
                (handlers::SUBJECT_SESSIONS, "DELETE") => handlers::kept(&req)?,
                _ => None,
            };
            let current = handlers::current(&req);
            if strong {
                let marks = (except, current);
                let answer = forward::to_subject(&req, env, config, route, &subject, marks)?;
                return Ok(Served::Object(answer));
            }
            let stores = SubjectStores::Kv(
                KvIndex::new(Kv::binding(env, KV_BINDING)?, serve_legacy),
                KvSessions::new(Kv::binding(env, KV_BINDING)?, WebCrypto, serve_legacy)
                    .with_events(journal),
            );
            let scope = SubjectScope {
                subject,
                device_key: DeviceKey::from_encoded(param, config.subject_key.as_deref()),
                stores: &stores,
                policy: config.policy,
                except,
                current,
                now,
            };
            handler(req, &scope).await.map(Served::Here)
        }
        (Runs::Subject(handler), Place::Subject(storage)) => {
            let subject = subject_of(&req)?;
            let except = req.header(EXCEPT_HEADER).and_then(|h| Handle::parse(&h));
            let current = req.header(CURRENT_HEADER).map(|h| Handle::parse(&h));
            let sessions = Peers(bindings::namespace(env, SESSIONS)?);
            let stores = SubjectStores::Durable(SqlIndex(storage), sessions);
            let scope = SubjectScope {
                subject,
                device_key: DeviceKey::from_encoded(param, config.subject_key.as_deref()),
                stores: &stores,
                policy: config.policy,
                except,
                current,
                now,
            };
            handler(req, &scope).await.map(Served::Here)
        }
        // A route that does not run here (an object asked for the worker's own routes).
        _ => Err(Error::NotFound),
    }
}

/// What both object classes run for each request: a protocol's server half, or a public route
/// the worker forwarded, whose request line the object logs (the worker passes its response on
/// untouched); a failure is answered as a problem (an `Err` would reset the object).
pub async fn serve_in_object(req: Incoming, env: &Env, place: Place) -> Reply {
    let started = runtime::now();
    let path = req.head.path().to_owned();
    let method = req.head.method.clone();
    let object = match place {
        Place::Subject(_) => Object::Subject,
        _ => Object::Session,
    };
    // Each at its own origin: a protocol's request never reads as a route, nor a forwarded
    // route as a protocol's, whatever its path.
    let forwarded = req.head.url.starts_with(routes::FORWARDED_ORIGIN)
        && req.head.url[routes::FORWARDED_ORIGIN.len()..].starts_with('/');
    let protocol = (!forwarded)
        .then(|| protocol::find(&path, object))
        .flatten();
    let route = forwarded.then(|| routes::find(&path)).flatten();
    let name = match protocol {
        Some(_) => "protocol",
        None => routes::log_name(route.map(|(route, _)| route)),
    };
    let config = settings::config(env);
    // A configuration that cannot be read logs every request, as at the worker.
    let policy = config
        .as_ref()
        .map_or(RequestLog::All, |config| config.log_requests);
    let served = async {
        let config = config?;
        let here = Here {
            env,
            config: &config,
            now: started,
            place,
        };
        match (protocol, route) {
            (Some(protocol), _) => serve_protocol(req, protocol, here).await,
            (None, Some((route, param))) => match dispatch(req, route, param, here).await? {
                Served::Here(reply) => Ok(reply),
                Served::Object(_) => Err(Error::Internal("an object forwarded a route".into())),
            },
            (None, None) => Err(Error::NotFound),
        }
    };
    let reply = match served.await {
        Ok(reply) => reply,
        Err(err) => {
            log::internal(name, &err);
            Reply::problem(&err)
        }
    };
    if forwarded {
        reply.log(policy, &method, name, started);
    }
    reply
}

/// A protocol's server half, with the stores of this object.
async fn serve_protocol(req: Incoming, protocol: Protocol, here: Here<'_>) -> Result<Reply, Error> {
    let header = |name: &str| req.header(name);
    let call = Call {
        method: &req.head.method,
        header: &header,
        body: http::read_all(&req).await?,
    };
    let Here {
        env,
        config,
        now,
        place,
    } = here;
    let answer = match (protocol, place) {
        (Protocol::Store, Place::Session(storage)) => {
            let own = call.header(ID_HEADER).and_then(|id| SessionId::parse(&id));
            let key = match own {
                Some(id) => Some(StorageKey::of(&id)),
                None => call
                    .header(KEY_HEADER)
                    .and_then(|k| StorageKey::from_name(&k)),
            };
            let key = key.ok_or_else(|| {
                Error::Internal("a request reached a session object without an id or key".into())
            })?;
            let store = session_store(storage, env, config, key, own, now)?;
            protocol::store::serve(&call, &store).await?
        }
        (Protocol::Legacy, Place::Session(storage)) => {
            protocol::legacy::serve(&call, &storage, now).await?
        }
        (Protocol::Index, Place::Subject(storage)) => {
            let subject = subject_of(&req)?;
            protocol::index::serve(&call, &SqlIndex(storage), &subject, now).await?
        }
        _ => return Err(Error::NotFound),
    };
    Ok(reply_of(answer))
}

fn reply_of(answer: Answer) -> Reply {
    let reply = Reply::body(answer.status, http::TEXT, answer.body);
    answer
        .headers
        .into_iter()
        .fold(reply, |reply, (name, value)| reply.header(name, value))
}

/// The subject a request to a subject's object is about, as the worker or a session's object
/// named it.
fn subject_of(req: &Incoming) -> Result<Subject, Error> {
    req.header(SUBJECT_HEADER)
        .and_then(|hex| Subject::from_hex(&hex))
        .ok_or_else(|| Error::Internal("a request reached a subject object without one".into()))
}

/// The store of a session object's own session (`key`; `own` when the request named the id),
/// and the objects of the others: for its routes, its protocol, and its alarm.
pub fn session_store(
    storage: DoStorage,
    env: &Env,
    config: &Config,
    key: StorageKey,
    own: Option<SessionId>,
    now: Millis,
) -> Result<SqlSessions<DoStorage, Kv, Peers>, Error> {
    let serve_legacy = config.legacy_lookup.at(now);
    Ok(SqlSessions::new(
        storage,
        KvSessions::new(Kv::binding(env, KV_BINDING)?, WebCrypto, serve_legacy),
        Peers(bindings::namespace(env, SESSIONS)?),
        WebCrypto,
        key,
        own,
        config.policy,
        now,
        serve_legacy,
    )
    .with_events(Queue::binding(env).is_some()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::durable::protocol::PROTOCOLS;

    #[test]
    fn no_public_route_is_a_protocol_path() {
        for row in PROTOCOLS {
            assert!(routes::find(row.path).is_none(), "{}", row.path);
        }
    }
}
