//! Strong mode's Durable Object class: one object per session, named by the session's storage
//! key (never its id), serving that session's routes with the same handlers and rules as the
//! worker, on the object's SQLite storage ([`crate::store::durable`]).
//!
//! The worker forwards each session request here as it came, with the id in [`ID_HEADER`] (for
//! `/create`, the new id): the object needs it to open the data, and keeps it nowhere. The object serves one request at a time: each runs inside
//! `blockConcurrencyWhile`, so not even an await (moving a session in from KV, writing a rotated
//! session into its new object) lets another request in between. That is what makes every
//! operation on a session atomic, `If-Match` a true compare-and-swap, and a `204` to `DELETE`
//! final everywhere: there is only one copy, and it answers every read.

use std::rc::Rc;

use worker::js_sys::Reflect;
use worker::wasm_bindgen::JsValue;
use worker::{durable_object, wasm_bindgen, web_sys, DurableObject, Env, Request, Response, State};

use crate::domain::config::Config;
use crate::domain::derive::{DeviceKey, Handle, StorageKey};
use crate::domain::error::Error;
use crate::domain::event::Event;
use crate::domain::id::SessionId;
use crate::domain::session::Meta;
use crate::domain::subject::Subject;
use crate::edge::handlers::{SessionScope, SubjectScope, KV_BINDING};
use crate::edge::http::{self, Incoming, Reply};
use crate::edge::routes::{self, Handler, Route};
use crate::edge::{log, runtime, settings};
use crate::service::subjects::SubjectStores;
use crate::store::backend::{Backend, IndexBackend};
use crate::store::durable::index::SqlIndex;
use crate::store::durable::legacy;
use crate::store::durable::peers::{
    self, call_object, entries_text, parse_entry_line, parse_member_line, parse_seen_line, peer,
    Peers, SubjectPeers, EXCEPT_HEADER, ID_HEADER, INDEX_PATH, KEY_HEADER, LIKE_HEADER,
    MEMBER_HEADER, OLD_PATH, SUBJECT_HEADER,
};
use crate::store::durable::record::stored_key;
use crate::store::durable::sessions::SqlSessions;
use crate::store::durable::storage::DoStorage;
use crate::store::durable::ObjectStorage;
use crate::store::events::Queue;
use crate::store::kv::{Kv, KvSessions};
use crate::store::seal::WebCrypto;
use crate::store::{DeviceInfo, Expect, NewEntry, Outcome, SessionRef, SessionStore, SubjectIndex};

/// The bindings of the namespaces in `wrangler.toml`: one object per session, one per subject.
const BINDING: &str = "sessions";
const SUBJECT_BINDING: &str = "subjects";

/// The error code of a problem the object answered, for the worker's request log.
pub const CODE_HEADER: &str = "session-state-code";

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
        // An `Err` here would reset the object: every failure is answered as a problem instead.
        let response = self
            .state
            .block_concurrency_while(async move { Ok(answer(req, storage, env).await) })
            .await?;
        Ok(Response::from(response))
    }

    async fn alarm(&self) -> worker::Result<Response> {
        let (storage, env) = (self.storage(), self.env.clone());
        let rung = self
            .state
            .block_concurrency_while(async move { Ok(ring(storage, env).await) })
            .await?;
        match rung {
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
        let path = req.head.path().to_owned();
        let route = routes::log_name(routes::find(&path).map(|(route, _)| route));
        let reply = match serve_subject(req, &path, self.storage(), &self.env).await {
            Ok(reply) => reply,
            Err(err) => problem(route, &err),
        };
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

async fn serve_subject(
    req: Incoming,
    path: &str,
    storage: DoStorage,
    env: &Env,
) -> Result<Reply, Error> {
    // A misconfigured deployment fails here as everywhere else.
    let config = settings::config(env)?;
    let subject = req
        .header(SUBJECT_HEADER)
        .and_then(|hex| Subject::from_hex(&hex))
        .ok_or_else(|| Error::Internal("a request reached a subject object without one".into()))?;
    let index = SqlIndex(storage);
    let now = runtime::now();
    if path == INDEX_PATH {
        return serve_index(&req, &index, &subject, now).await;
    }
    let Some((route, param)) = routes::find(path) else {
        return Err(Error::NotFound);
    };
    let device_key = DeviceKey::from_encoded(param, config.subject_key.as_deref());
    let except = req.header(EXCEPT_HEADER).and_then(|h| Handle::parse(&h));
    let Handler::Subject(handler) = route.handler else {
        return Err(Error::NotFound);
    };
    let sessions = Peers(env.durable_object(BINDING)?);
    let stores = SubjectStores::Durable(index, sessions);
    let scope = SubjectScope {
        subject,
        device_key,
        stores: &stores,
        policy: config.policy,
        except,
        now,
    };
    handler(req, &scope).await
}

/// A session's object adding its entry (`PUT`), removing it (`DELETE`), reporting its
/// lifecycle (`PATCH`), or reading the index to make room (`GET`); see [`MEMBER_HEADER`].
async fn serve_index(
    req: &Incoming,
    index: &SqlIndex<DoStorage>,
    subject: &Subject,
    now: u64,
) -> Result<Reply, Error> {
    let line = req.header(MEMBER_HEADER).unwrap_or_default();
    let malformed = || Error::Internal("a malformed index request".into());
    match req.head.method.as_str() {
        "GET" => {
            let entries = index.members(subject).await?;
            let text = entries_text(&entries).into_bytes();
            Ok(Reply::body(200, http::TEXT, text))
        }
        "PUT" => {
            let (member, until, seen) = parse_entry_line(&line).ok_or_else(malformed)?;
            let sealed = http::read_all(req).await?;
            let like = req.header(LIKE_HEADER).and_then(|h| Handle::parse(&h));
            let device = match (like, sealed.is_empty()) {
                (Some(handle), _) => DeviceInfo::Like(handle),
                (None, false) => DeviceInfo::Sealed(&sealed),
                (None, true) => DeviceInfo::None,
            };
            let entry = NewEntry {
                member,
                until,
                seen,
                device,
            };
            index.add(subject, &entry, now).await?;
            Ok(Reply::no_content())
        }
        "PATCH" => {
            let (handle, seen) = parse_seen_line(&line).ok_or_else(malformed)?;
            index.seen(subject, &handle, seen).await?;
            Ok(Reply::no_content())
        }
        "DELETE" => {
            let member = parse_member_line(&line).ok_or_else(malformed)?;
            index.remove(subject, &member).await?;
            Ok(Reply::no_content())
        }
        _ => Err(Error::NotFound),
    }
}

/// The problem document for an error an object answers, with its code for the worker's log.
fn problem(route: &str, err: &Error) -> Reply {
    log::internal(route, err);
    Reply::problem(err).header(CODE_HEADER, err.code().into())
}

/// The store of the object's own session (`key`; `own` when the request named the id), and the
/// objects of the others.
fn sessions(
    storage: DoStorage,
    env: &Env,
    config: &Config,
    key: StorageKey,
    own: Option<SessionId>,
    now: u64,
) -> Result<SqlSessions<DoStorage, Kv, Peers>, Error> {
    let legacy = config.legacy_lookup.at(now);
    Ok(SqlSessions::new(
        storage,
        KvSessions::new(Kv::binding(env, KV_BINDING)?, WebCrypto, legacy),
        Peers(env.durable_object(BINDING)?),
        WebCrypto,
        key,
        own,
        config.policy,
        now,
        legacy,
    )
    .with_events(Queue::binding(env).is_some()))
}

async fn answer(req: Incoming, storage: DoStorage, env: Env) -> web_sys::Response {
    let path = req.head.path().to_owned();
    let route = routes::log_name(routes::find(&path).map(|(route, _)| route));
    let reply = match serve(req, &path, storage, &env).await {
        Ok(reply) => reply,
        Err(err) => problem(route, &err),
    };
    reply.into_response()
}

async fn serve(req: Incoming, path: &str, storage: DoStorage, env: &Env) -> Result<Reply, Error> {
    let config: Rc<Config> = settings::config(env)?;
    let now = runtime::now();
    if path == OLD_PATH {
        return serve_old(&req, &storage, now).await;
    }
    let own = req.header(ID_HEADER).and_then(|id| SessionId::parse(&id));
    let key = match own {
        Some(id) => Some(StorageKey::of(&id)),
        None => req
            .header(KEY_HEADER)
            .and_then(|k| StorageKey::from_name(&k)),
    };
    let key = key.ok_or_else(|| {
        Error::Internal("a request reached a session object without an id or key".into())
    })?;
    let store = sessions(storage, env, &config, key, own, now)?;
    if path == peer::PATH {
        return serve_peer(req, &store).await;
    }
    let id = own.ok_or_else(|| Error::Internal("a session route without an id".into()))?;
    let Some((route, _)) = routes::find(path) else {
        return Err(Error::NotFound);
    };
    let Handler::Session { handler, .. } = route.handler else {
        return Err(Error::NotFound);
    };
    let store = Backend::Durable(store);
    let subjects = env.durable_object(SUBJECT_BINDING)?;
    let index = IndexBackend::Durable(SubjectPeers(subjects));
    let scope = SessionScope {
        config: &config,
        id,
        store: &store,
        index: &index,
        now,
    };
    handler(req, &scope).await
}

/// Another object storing, judging or removing this object's session (see [`Peers`]): by id,
/// or, from a subject's object, by key alone (`HEAD` for the metadata, `DELETE` to end it).
async fn serve_peer(
    req: Incoming,
    store: &SqlSessions<DoStorage, Kv, Peers>,
) -> Result<Reply, Error> {
    let expect = req
        .header(peer::EXPECT)
        .and_then(|h| peer::parse_expect(&h));
    let event = req.header(peer::EVENT).and_then(Event::from_wire);
    let at = match store.own {
        Some(id) => SessionRef::Id(id),
        None => SessionRef::Key(store.key),
    };
    let outcome = match (req.head.method.as_str(), store.own) {
        ("HEAD", _) => {
            let Some((meta, _)) = store.meta_at(&at).await? else {
                return Err(Error::SessionNotFound);
            };
            return Ok(Reply::no_content().header(peer::META, meta.to_json()));
        }
        ("DELETE", None) => match store.remove_at(&at, event.as_ref()).await? {
            true => Outcome::Written,
            false => return Err(Error::SessionNotFound),
        },
        ("GET", Some(id)) => {
            let Some(record) = store.load(&id).await? else {
                return Err(Error::SessionNotFound);
            };
            let reply = Reply::body(200, http::JSON, record.data.into_bytes());
            return Ok(match record.meta {
                Some(meta) => reply.header(peer::META, meta.to_json()),
                None => reply,
            });
        }
        ("PUT", Some(id)) => {
            let meta = req
                .header(peer::META)
                .and_then(|meta| Meta::from_json(&meta))
                .ok_or_else(|| Error::Internal("a peer sent no metadata".into()))?;
            let data = http::read_all(&req).await?;
            let expect =
                expect.ok_or_else(|| Error::Internal("a peer sent no expectation".into()))?;
            store
                .save(&id, &data, &meta, expect, event.as_ref())
                .await?
        }
        ("DELETE", Some(id)) => {
            let expect =
                expect.ok_or_else(|| Error::Internal("a peer sent no expectation".into()))?;
            store.remove(&id, expect, event.as_ref()).await?
        }
        _ => return Err(Error::NotFound),
    };
    Ok(match outcome {
        Outcome::Written => Reply::no_content(),
        Outcome::Conflict => Reply::body(409, http::JSON, b"{}".to_vec()),
    })
}

/// An object of the earlier strong mode, named by the bare id, asked by the session's object of
/// this version for its session (`GET`) and then emptied (`DELETE`).
async fn serve_old(req: &Incoming, storage: &DoStorage, now: u64) -> Result<Reply, Error> {
    match req.head.method.as_str() {
        "GET" => {
            let (status, record, kv_copy) = peers::old_answer(legacy::held(storage, now)?);
            let Some(record) = record else {
                return Ok(Reply::body(status, http::JSON, b"{}".to_vec()));
            };
            let mut reply = Reply::body(status, http::JSON, record.data.into_bytes());
            if let Some(meta) = record.meta {
                reply = reply.header(peer::META, meta.to_json());
            }
            if kv_copy {
                reply = reply.header(peer::KV_COPY, "1".into());
            }
            Ok(reply)
        }
        "DELETE" => {
            storage.delete_all().await?;
            Ok(Reply::no_content())
        }
        _ => Err(Error::NotFound),
    }
}

/// The alarm: expiry, the end of a moved session's marker, and the delivery of lifecycle
/// events; in an object of the earlier strong mode, the end of what it holds. A failed delivery
/// is logged and tried again by the object's own next alarm (the runtime's retries of a failed
/// alarm are few), so it does not fail the alarm.
async fn ring(storage: DoStorage, env: Env) -> Result<(), Error> {
    let config = settings::config(&env)?;
    let now = runtime::now();
    if let Some(key) = stored_key(&storage)? {
        let store = sessions(storage, &env, &config, key, None, now)?;
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

/// The worker's side of a session route in strong mode: the request goes to the session's
/// object, the id in a header (never in the URL: see [`routes::forwarded_url`]).
pub async fn forward_session(
    req: Incoming,
    env: &Env,
    route: &Route,
    id: &SessionId,
    body: Option<web_sys::Blob>,
) -> Result<Reply, Error> {
    let name = StorageKey::of(id).name();
    let id = id.to_string();
    let url = routes::forwarded_url(route, &req.head.url);
    forward(req, env, BINDING, &name, &url, &[(ID_HEADER, &id)], body).await
}

/// The worker's side of a subject route in strong mode: the request goes to the subject's
/// object, with the session a revocation keeps as a handle, in a header.
pub async fn forward_subject(
    req: Incoming,
    env: &Env,
    route: &Route,
    subject: &Subject,
    except: Option<Handle>,
) -> Result<Reply, Error> {
    let name = subject.hex();
    let url = routes::forwarded_url(route, &req.head.url);
    let except = except.map(|handle| handle.to_string());
    let mut headers = vec![(SUBJECT_HEADER, name.as_str())];
    headers.extend(except.as_deref().map(|handle| (EXCEPT_HEADER, handle)));
    forward(req, env, SUBJECT_BINDING, &name, &url, &headers, None).await
}

/// Hands a request to the object named `name` in the namespace `binding`, at `url`,
/// marked with `marks` (which session or subject it is about), and gives back its answer with
/// headers the worker may still change. A body is passed as already read (see
/// [`http::read_blob`]): a body streamed on to the object would still be pumped after the object
/// answered early without reading it, which the runtime refuses.
async fn forward(
    req: Incoming,
    env: &Env,
    binding: &str,
    name: &str,
    url: &str,
    marks: &[(&str, &str)],
    body: Option<web_sys::Blob>,
) -> Result<Reply, Error> {
    let namespace = env.durable_object(binding)?;
    let headers = web_sys::Headers::new_with_headers(&req.raw.headers()).map_err(js)?;
    // What only the worker may tell an object, whatever the caller sent under those names.
    for header in peers::FROM_THE_WORKER {
        headers.delete(header).map_err(js)?;
    }
    for (header, value) in marks {
        headers.set(header, value).map_err(js)?;
    }
    let body = body.as_ref().map(AsRef::as_ref);
    let method = &req.head.method;
    let response = call_object(&namespace, name, url, method, &headers, body).await?;
    Ok(Reply::forwarded(response.into(), CODE_HEADER))
}

/// The runtime's request under `worker`'s (the handle, not JavaScript's `Request.clone()`).
fn handle(req: &Request) -> web_sys::Request {
    Clone::clone(req.inner())
}

fn js(err: wasm_bindgen::JsValue) -> Error {
    Error::Internal(format!("{err:?}"))
}
