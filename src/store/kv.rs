//! Workers KV: the key-value operations on the `sessionstore` binding, and sessions stored on
//! them.
//!
//! A session's key is derived from its id ([`StorageKey`]), its value the session data sealed
//! ([`super::seal`]), and its lifecycle the entry's metadata, readable, so one `getWithMetadata`
//! reads everything and a listing can judge liveness without the id. Sessions stored before
//! that (the old worker's and earlier versions': the bare id as key, the data as value) are read
//! where they are on a miss and move on their first write ([`KvSessions`]). KV has
//! no compare-and-swap: a conditional write here trusts the read its operation began with, so two
//! writers that read within the same few milliseconds can both write (last write wins). Strong
//! mode ([`super::durable`]) closes that window.

use std::cell::RefCell;

use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use worker::js_sys::{self, Object, Promise, Reflect, Uint8Array};
use worker::wasm_bindgen_futures::JsFuture;
use worker::Env;

use super::seal::{Aead, Opened, Sealer, WebCrypto};
use super::{Expect, KeyValue, Member, Outcome, Record, SessionRef, SessionStore, SubjectIndex};
use crate::domain::derive::{Handle, StorageKey, WrapKey};
use crate::domain::error::Error;
use crate::domain::id::SessionId;
use crate::domain::session::{Meta, KV_MIN_TTL};
use crate::domain::subject::Subject;
use crate::domain::time::Millis;

#[wasm_bindgen]
extern "C" {
    /// A Workers KV namespace, as the runtime hands it to the worker. Bound here directly, not
    /// through `worker::kv`: reads need no options object (the value type is a string argument),
    /// and metadata comes back as one string, so each operation crosses into JavaScript only a
    /// few times.
    pub type KvNamespace;

    #[wasm_bindgen(method, js_name = getWithMetadata)]
    fn get_with_metadata(this: &KvNamespace, key: &str, kind: &str) -> Promise;

    #[wasm_bindgen(method)]
    fn put(this: &KvNamespace, key: &str, value: &Uint8Array, options: &Object) -> Promise;

    #[wasm_bindgen(method, js_name = delete)]
    fn delete_key(this: &KvNamespace, key: &str) -> Promise;

    #[wasm_bindgen(method)]
    fn list(this: &KvNamespace, options: &Object) -> Promise;
}

/// Workers KV, through a binding.
pub struct Kv(pub KvNamespace);

impl Kv {
    /// The namespace bound as `name`.
    pub fn binding(env: &Env, name: &str) -> Result<Self, Error> {
        let binding = Reflect::get(env, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED);
        if binding.is_undefined() {
            return Err(Error::Internal(format!("no KV binding {name}")));
        }
        Ok(Self(binding.unchecked_into()))
    }

    /// `getWithMetadata(key, kind)`: the value (`None` for a missing key) and the metadata.
    async fn get_entry(
        &self,
        key: &str,
        kind: &str,
    ) -> Result<Option<(JsValue, Option<String>)>, Error> {
        let pair = settle(self.0.get_with_metadata(key, kind)).await?;
        let value = field(&pair, "value");
        if value.is_null() || value.is_undefined() {
            return Ok(None);
        }
        Ok(Some((value, metadata_text(&field(&pair, "metadata")))))
    }
}

fn field(object: &JsValue, name: &str) -> JsValue {
    Reflect::get(object, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED)
}

/// Metadata as text: a string as it is (this version writes strings), anything else as JSON
/// (earlier versions wrote objects).
fn metadata_text(metadata: &JsValue) -> Option<String> {
    if metadata.is_null() || metadata.is_undefined() {
        return None;
    }
    metadata.as_string().or_else(|| {
        js_sys::JSON::stringify(metadata)
            .ok()
            .and_then(|text| text.as_string())
    })
}

/// Awaits a KV promise; a rejection is a store failure.
async fn settle(promise: Promise) -> Result<JsValue, Error> {
    JsFuture::from(promise).await.map_err(|err| {
        let message = err
            .dyn_ref::<js_sys::Error>()
            .map(|err| String::from(err.message()))
            .or_else(|| err.as_string())
            .unwrap_or_else(|| "KV operation failed".into());
        store_failure(&message)
    })
}

impl KeyValue for Kv {
    /// One `getWithMetadata`.
    async fn get(&self, key: &str) -> Result<Option<(String, Option<String>)>, Error> {
        let entry = self.get_entry(key, "text").await?;
        Ok(entry.and_then(|(value, meta)| Some((value.as_string()?, meta))))
    }

    /// One `getWithMetadata`.
    async fn get_bytes(&self, key: &str) -> Result<Option<(Vec<u8>, Option<String>)>, Error> {
        let entry = self.get_entry(key, "arrayBuffer").await?;
        Ok(entry.map(|(value, meta)| (Uint8Array::new(&value).to_vec(), meta)))
    }

    async fn put(
        &self,
        key: &str,
        value: &[u8],
        metadata: Option<&str>,
        ttl_seconds: u64,
    ) -> Result<(), Error> {
        let options = Object::new();
        let ttl = JsValue::from_f64(ttl_seconds as f64);
        let _ = Reflect::set(&options, &JsValue::from_str("expirationTtl"), &ttl);
        if let Some(metadata) = metadata {
            let metadata = JsValue::from_str(metadata);
            let _ = Reflect::set(&options, &JsValue::from_str("metadata"), &metadata);
        }
        settle(self.0.put(key, &Uint8Array::from(value), &options)).await?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        settle(self.0.delete_key(key)).await?;
        Ok(())
    }

    /// One `list` per thousand keys.
    async fn list(&self, prefix: &str) -> Result<Vec<(String, Option<String>)>, Error> {
        let mut keys = Vec::new();
        let mut cursor = JsValue::UNDEFINED;
        loop {
            let options = Object::new();
            let _ = Reflect::set(
                &options,
                &JsValue::from_str("prefix"),
                &JsValue::from_str(prefix),
            );
            if !cursor.is_undefined() {
                let _ = Reflect::set(&options, &JsValue::from_str("cursor"), &cursor);
            }
            let page = settle(self.0.list(&options)).await?;
            let listed: js_sys::Array = field(&page, "keys").unchecked_into();
            for key in listed.iter() {
                if let Some(name) = field(&key, "name").as_string() {
                    keys.push((name, metadata_text(&field(&key, "metadata"))));
                }
            }
            if field(&page, "list_complete").is_truthy() {
                return Ok(keys);
            }
            cursor = field(&page, "cursor");
        }
    }
}

/// KV reports a failed operation as `KV <METHOD> failed: <status> <reason>`. Its write limit
/// (one write per second per key) is status 429: the caller may retry in a second. Anything else
/// is the store being unavailable, also worth a retry.
pub fn store_failure(message: &str) -> Error {
    let status = message
        .split_once("failed: ")
        .map(|(_, rest)| rest.trim_start())
        .filter(|rest| rest.bytes().take_while(u8::is_ascii_digit).count() == 3)
        .map(|rest| &rest[..3]);
    let cause = format!("kv: {message}");
    if status == Some("429") || message.contains("Too Many Requests") {
        Error::StoreBusy(cause)
    } else {
        Error::StoreUnavailable(cause)
    }
}

/// The lifecycle in an entry's metadata. Metadata the worker cannot read counts as absent (an
/// entry of the old worker) rather than failing: it is replaced on the next write.
fn readable(metadata: Option<String>) -> Option<Meta> {
    Meta::from_json(&metadata?)
}

/// Where a request found a session, so that its write goes where it should.
enum Found {
    /// Under its storage key, sealed: the next write keeps its data key.
    Sealed(Opened),
    /// Under its bare id, as stored before keys were hashed: the next write moves it.
    Legacy,
}

/// Sessions on key-value storage: sealed under their storage key, with the lifecycle as
/// metadata and KV's own expiry set to the session's.
///
/// With `legacy` on (`SESSION_LEGACY_LOOKUP`, the default), a session missing under its storage
/// key is looked for under its bare id, where the old worker and earlier versions stored it
/// (one more read, on a miss only). It is served from there as it is, and its first write seals
/// it under its storage key and deletes the old entry; a delete removes both. The store lives
/// for one request and remembers what it found, so a write knows where its read found the
/// session.
pub struct KvSessions<K, A: Aead = WebCrypto> {
    pub kv: K,
    sealer: Sealer<A>,
    legacy: bool,
    found: RefCell<Vec<(SessionId, Found)>>,
}

impl<K: KeyValue, A: Aead> KvSessions<K, A> {
    pub fn new(kv: K, aead: A, legacy: bool) -> Self {
        Self {
            kv,
            sealer: Sealer(aead),
            legacy,
            found: RefCell::new(Vec::new()),
        }
    }

    fn remember(&self, id: &SessionId, found: Found) {
        let mut memo = self.found.borrow_mut();
        memo.retain(|(known, _)| known != id);
        memo.push((*id, found));
    }

    /// Whether this request found `id` under its bare id, and what it opened if sealed.
    fn recall(&self, id: &SessionId) -> (bool, Option<Opened>) {
        let memo = self.found.borrow();
        match memo.iter().find(|(known, _)| known == id) {
            Some((_, Found::Sealed(opened))) => (false, Some(opened.clone())),
            Some((_, Found::Legacy)) => (true, None),
            None => (false, None),
        }
    }
}

impl<K: KeyValue, A: Aead> SessionStore for KvSessions<K, A> {
    /// One read; on a miss, with `legacy` on, a second under the bare id.
    async fn load(&self, id: &SessionId) -> Result<Option<Record>, Error> {
        let key = StorageKey::of(id);
        if let Some((bytes, meta)) = self.kv.get_bytes(&key.name()).await? {
            let (opened, data) = self.sealer.open_session(id, &key, &bytes).await?;
            self.remember(id, Found::Sealed(opened));
            return Ok(Some(Record {
                data,
                meta: readable(meta),
            }));
        }
        if !self.legacy {
            return Ok(None);
        }
        let Some((data, meta)) = self.kv.get(&id.to_string()).await? else {
            return Ok(None);
        };
        self.remember(id, Found::Legacy);
        Ok(Some(Record {
            data,
            meta: readable(meta),
        }))
    }

    /// One put (and, for a session this request found under its bare id, one delete there).
    /// `expect` was checked by the read this operation began with: KV cannot check again at the
    /// moment of writing.
    async fn save(
        &self,
        id: &SessionId,
        data: &[u8],
        meta: &Meta,
        _expect: Expect,
    ) -> Result<Outcome, Error> {
        let key = StorageKey::of(id);
        let (moving, previous) = self.recall(id);
        let (opened, sealed) = self
            .sealer
            .seal(&WrapKey::of(id), &key, data, previous.as_ref())
            .await?;
        let ttl = meta.kv_ttl(meta.updated_at);
        let metadata = meta.to_json();
        self.kv
            .put(&key.name(), &sealed, Some(&metadata), ttl)
            .await?;
        self.remember(id, Found::Sealed(opened));
        if moving {
            // The sealed copy is written and found first from now on; an old entry left by a
            // failed delete is never read again and ends with its KV expiry.
            let _ = self.kv.delete(&id.to_string()).await;
        }
        Ok(Outcome::Written)
    }

    /// One delete; with `legacy` on, one more under the bare id, unless this request found the
    /// session sealed. `expect` as for `save`.
    async fn remove(&self, id: &SessionId, _expect: Expect) -> Result<Outcome, Error> {
        self.kv.delete(&StorageKey::of(id).name()).await?;
        let (_, sealed) = self.recall(id);
        if self.legacy && sealed.is_none() {
            self.kv.delete(&id.to_string()).await?;
        }
        self.found.borrow_mut().retain(|(known, _)| known != id);
        Ok(Outcome::Written)
    }

    /// One read, of the metadata: no id is needed, and none is there to open the data with.
    async fn meta_at(&self, at: &SessionRef) -> Result<Option<(Meta, SessionRef)>, Error> {
        match at {
            SessionRef::Key(key) => {
                let entry = self.kv.get_bytes(&key.name()).await?;
                Ok(entry.and_then(|(_, meta)| Some((readable(meta)?, *at))))
            }
            SessionRef::Id(id) => {
                let Some(meta) = self.load(id).await?.and_then(|record| record.meta) else {
                    return Ok(None);
                };
                let (legacy, _) = self.recall(id);
                let now_at = match legacy {
                    true => *at,
                    false => SessionRef::Key(StorageKey::of(id)),
                };
                Ok(Some((meta, now_at)))
            }
        }
    }

    async fn remove_at(&self, at: &SessionRef) -> Result<(), Error> {
        match at {
            SessionRef::Key(key) => self.kv.delete(&key.name()).await,
            SessionRef::Id(id) => self.remove(id, Expect::Any).await.map(|_| ()),
        }
    }
}

/// The subject index on KV: one entry `sub:<subject hash>:<handle>` per session, empty, with
/// `<created at> <storage key>` as metadata, living until the session's latest end (its absolute
/// lifetime, which no renewal passes). The prefix is neither a storage key nor a `cache:` key.
/// Entries written before keys were hashed are `sub:<subject hash>:<session id>` with the
/// creation time alone; they are listed as they are, and go when their session goes.
///
/// KV lists lag writes by up to about a minute: a list (and so a revoke) may miss a session
/// created moments before.
pub struct KvIndex<K> {
    pub kv: K,
    legacy: bool,
}

impl<K: KeyValue> KvIndex<K> {
    pub fn new(kv: K, legacy: bool) -> Self {
        Self { kv, legacy }
    }
}

fn index_prefix(subject: &Subject) -> String {
    format!("sub:{}:", subject.hex())
}

/// A listed entry: a handle with `<created at> <storage key>`, or an id with its creation time.
fn parse_entry(name: &str, metadata: Option<&str>) -> Option<Member> {
    if let Some(handle) = Handle::parse(name) {
        let (created_at, key) = metadata?.split_once(' ')?;
        return Some(Member {
            handle,
            at: SessionRef::Key(StorageKey::from_name(key)?),
            created_at: created_at.parse().ok()?,
        });
    }
    let id = SessionId::parse(name)?;
    let created_at = metadata.and_then(|m| m.parse().ok()).unwrap_or(0);
    Some(Member::of(id, created_at))
}

impl<K: KeyValue> SubjectIndex for KvIndex<K> {
    /// One put.
    async fn add(
        &self,
        subject: &Subject,
        member: Member,
        until: Millis,
        now: Millis,
    ) -> Result<(), Error> {
        let key = member.at.storage_key();
        let name = format!("{}{}", index_prefix(subject), member.handle);
        let ttl = until.saturating_sub(now).div_ceil(1000).max(KV_MIN_TTL);
        let metadata = format!("{} {}", member.created_at, key.name());
        self.kv.put(&name, b"", Some(&metadata), ttl).await
    }

    /// One delete; with `legacy` on and the id known, one more for an entry written before
    /// keys were hashed.
    async fn remove(&self, subject: &Subject, member: &Member) -> Result<(), Error> {
        let prefix = index_prefix(subject);
        self.kv
            .delete(&format!("{prefix}{}", member.handle))
            .await?;
        if let (true, SessionRef::Id(id)) = (self.legacy, member.at) {
            self.kv.delete(&format!("{prefix}{id}")).await?;
        }
        Ok(())
    }

    /// An entry written before keys were hashed holds the id in its key: one put of the new
    /// entry, one delete of the old.
    async fn upgrade(
        &self,
        subject: &Subject,
        member: &Member,
        until: Millis,
        now: Millis,
    ) -> Result<(), Error> {
        if let SessionRef::Id(id) = member.at {
            self.add(subject, *member, until, now).await?;
            self.kv
                .delete(&format!("{}{id}", index_prefix(subject)))
                .await?;
        }
        Ok(())
    }

    /// One list.
    async fn members(&self, subject: &Subject) -> Result<Vec<Member>, Error> {
        let prefix = index_prefix(subject);
        let keys = self.kv.list(&prefix).await?;
        Ok(keys
            .into_iter()
            .filter_map(|(key, metadata)| {
                parse_entry(key.strip_prefix(&prefix)?, metadata.as_deref())
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_write_limit_is_busy_and_everything_else_unavailable() {
        for busy in [
            "js error: JsValue(Error: KV PUT failed: 429 Too Many Requests)",
            "KV PUT failed: 429",
            "KV DELETE failed: 429 Too Many Requests\n    at ...",
        ] {
            assert_eq!(store_failure(busy).code(), "store_busy", "{busy}");
        }
        for unavailable in [
            "js error: JsValue(Error: KV GET failed: 503 Service Unavailable)",
            "KV PUT failed: 500 Internal Server Error",
            "Network connection lost.",
            "KV GET failed: 4290",
        ] {
            assert_eq!(
                store_failure(unavailable).code(),
                "store_unavailable",
                "{unavailable}"
            );
        }
        assert!(store_failure("KV PUT failed: 429")
            .log_cause()
            .unwrap()
            .contains("429"));
    }
}
