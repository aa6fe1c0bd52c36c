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
use std::rc::Rc;

use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use worker::js_sys::{self, Object, Promise, Reflect, Uint8Array};
use worker::wasm_bindgen_futures::JsFuture;
use worker::Env;

use super::events::Journal;
use super::schema::index_prefix;
use super::seal::{Aead, Sealer, WebCrypto};
use super::{
    DeviceInfo, Entry, Expect, KeyValue, Member, MetaAt, NewEntry, Outcome, Record, Seen,
    SessionRef, SessionStore, SubjectIndex, BULK_KEYS,
};
use crate::domain::base64;
use crate::domain::derive::{Handle, StorageKey, WrapKey};
use crate::domain::error::Error;
use crate::domain::event::Event;
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

    /// The bulk form: up to 100 keys, answered as a `Map` of key to `{value, metadata}` (or
    /// `null`). Bulk reads take only "text" or "json".
    #[wasm_bindgen(method, js_name = getWithMetadata)]
    fn get_many_with_metadata(this: &KvNamespace, keys: &js_sys::Array, kind: &str) -> Promise;

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
        if absent(&value) {
            return Ok(None);
        }
        Ok(Some((value, metadata_text(&field(&pair, "metadata")))))
    }

    /// Checks what [`KeyValue::metadata_of`] was given: a bulk read takes at most 100 keys.
    fn bulk(keys: &[String]) -> Result<js_sys::Array, Error> {
        if keys.len() > BULK_KEYS {
            return Err(Error::Internal(format!(
                "a bulk read of {} keys",
                keys.len()
            )));
        }
        Ok(keys.iter().map(|key| JsValue::from_str(key)).collect())
    }
}

/// What KV answers for a key it does not hold.
fn absent(value: &JsValue) -> bool {
    value.is_null() || value.is_undefined()
}

fn field(object: &JsValue, name: &str) -> JsValue {
    Reflect::get(object, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED)
}

/// Metadata as text: a string as it is (this version writes strings), anything else as JSON
/// (earlier versions wrote objects).
fn metadata_text(metadata: &JsValue) -> Option<String> {
    if absent(metadata) {
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

    /// One bulk `getWithMetadata`. The values come along (KV has no bulk read of metadata
    /// alone), as text: a sealed value decodes to nonsense, which is dropped unread.
    async fn metadata_of(&self, keys: &[String]) -> Result<Vec<Option<Option<String>>>, Error> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let found = settle(self.0.get_many_with_metadata(&Kv::bulk(keys)?, "text")).await?;
        let found: js_sys::Map = found.unchecked_into();
        Ok(keys
            .iter()
            .map(|key| {
                let entry = found.get(&JsValue::from_str(key));
                if absent(&entry) || absent(&field(&entry, "value")) {
                    return None;
                }
                Some(metadata_text(&field(&entry, "metadata")))
            })
            .collect())
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
    /// Under its storage key, sealed.
    Sealed,
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
///
/// With a [`Journal`], each lifecycle event is recorded there once its write was made, for the
/// worker to send after answering: KV has no transaction to commit one in.
pub struct KvSessions<K, A: Aead = WebCrypto> {
    pub kv: K,
    sealer: Sealer<A>,
    legacy: bool,
    found: RefCell<Vec<(SessionId, Found)>>,
    events: Option<Rc<Journal>>,
}

impl<K: KeyValue, A: Aead> KvSessions<K, A> {
    pub fn new(kv: K, aead: A, legacy: bool) -> Self {
        Self {
            kv,
            sealer: Sealer(aead),
            legacy,
            found: RefCell::new(Vec::new()),
            events: None,
        }
    }

    /// Records `event`, after the write that made it, where this store keeps events.
    fn record(&self, event: Option<&Event>) {
        if let (Some(journal), Some(event)) = (&self.events, event) {
            journal.record(event);
        }
    }

    /// The same store, recording lifecycle events in `journal`.
    pub fn with_events(self, journal: Option<Rc<Journal>>) -> Self {
        Self {
            events: journal,
            ..self
        }
    }

    fn remember(&self, id: &SessionId, found: Found) {
        let mut memo = self.found.borrow_mut();
        memo.retain(|(known, _)| known != id);
        memo.push((*id, found));
    }

    /// Where this request found `id`: `Some(true)` under its bare id (a write moves it),
    /// `Some(false)` sealed under its storage key, `None` when it did not read it.
    fn recall(&self, id: &SessionId) -> Option<bool> {
        let memo = self.found.borrow();
        let found = memo.iter().find(|(known, _)| known == id);
        found.map(|(_, found)| matches!(found, Found::Legacy))
    }
}

impl<K: KeyValue, A: Aead> SessionStore for KvSessions<K, A> {
    /// One read; on a miss, with `legacy` on, a second under the bare id.
    async fn load(&self, id: &SessionId) -> Result<Option<Record>, Error> {
        let key = StorageKey::of(id);
        if let Some((bytes, metadata)) = self.kv.get_bytes(&key.name()).await? {
            let beside = readable(metadata);
            let opened = self
                .sealer
                .open_session(id, &key, &bytes, beside, self.legacy);
            let (data, meta) = opened.await?;
            self.remember(id, Found::Sealed);
            return Ok(Some(Record {
                data,
                meta: Some(meta),
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
        event: Option<&Event>,
    ) -> Result<Outcome, Error> {
        let key = StorageKey::of(id);
        let moving = self.recall(id) == Some(true);
        let sealed = self.sealer.seal(&WrapKey::of(id), &key, meta, data).await?;
        let ttl = meta.kv_ttl(meta.updated_at);
        let metadata = meta.to_json();
        self.kv
            .put(&key.name(), &sealed, Some(&metadata), ttl)
            .await?;
        self.remember(id, Found::Sealed);
        if moving {
            // The sealed copy is written and found first from now on; an old entry left by a
            // failed delete is never read again and ends with its KV expiry.
            let _ = self.kv.delete(&id.to_string()).await;
        }
        self.record(event);
        Ok(Outcome::Written)
    }

    /// One delete; with `legacy` on, one more under the bare id, unless this request found the
    /// session sealed. `expect` as for `save`.
    async fn remove(
        &self,
        id: &SessionId,
        _expect: Expect,
        event: Option<&Event>,
    ) -> Result<Outcome, Error> {
        self.kv.delete(&StorageKey::of(id).name()).await?;
        if self.legacy && self.recall(id) != Some(false) {
            self.kv.delete(&id.to_string()).await?;
        }
        self.found.borrow_mut().retain(|(known, _)| known != id);
        self.record(event);
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
                let now_at = match self.recall(id) {
                    Some(true) => *at,
                    _ => SessionRef::Key(StorageKey::of(id)),
                };
                Ok(Some((meta, now_at)))
            }
        }
    }

    /// One bulk read per [`BULK_KEYS`] keys, of the metadata. A session an entry names by id
    /// is looked for under its storage key and its bare id in the same read, so two keys.
    async fn metas_at(&self, at: &[SessionRef]) -> Result<Vec<MetaAt>, Error> {
        let mut keys = Vec::with_capacity(at.len());
        for at in at {
            keys.push(at.storage_key().name());
            if let SessionRef::Id(id) = at {
                keys.push(id.to_string());
            }
        }
        let mut found = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(BULK_KEYS) {
            found.extend(self.kv.metadata_of(chunk).await?);
        }
        let mut found = found.into_iter();
        let mut metas = Vec::with_capacity(at.len());
        for at in at {
            let keyed = found.next().flatten();
            let bare = match at {
                SessionRef::Id(_) => found.next().flatten(),
                SessionRef::Key(_) => None,
            };
            let meta = match (keyed, bare) {
                (Some(meta), _) => readable(meta).map(|m| (m, SessionRef::Key(at.storage_key()))),
                (None, Some(meta)) if self.legacy => readable(meta).map(|m| (m, *at)),
                _ => None,
            };
            metas.push(Ok(meta));
        }
        Ok(metas)
    }

    /// One delete (KV cannot say whether anything was there: `true`).
    async fn remove_at(&self, at: &SessionRef, event: Option<&Event>) -> Result<bool, Error> {
        match at {
            SessionRef::Key(key) => self.kv.delete(&key.name()).await?,
            SessionRef::Id(id) => drop(self.remove(id, Expect::Any, None).await?),
        }
        self.record(event);
        Ok(true)
    }

    fn records_events(&self) -> bool {
        self.events.is_some()
    }

    /// KV drops an expired entry by itself, silently: a read that meets one before it does is
    /// the only witness, and records it here.
    fn observed(&self, event: &Event) {
        self.record(Some(event));
    }
}

/// The subject index on KV: one entry `sub:<subject hash>:<handle>` per session, empty, with
/// `<created at> <storage key>[ <sealed device, base64>]` as metadata, living until the
/// session's latest end (its absolute lifetime, which no renewal passes). The prefix is neither
/// a storage key nor a `cache:` key. A listing is one `list` per thousand entries, which carries
/// all of that, and one bulk read of the sessions' metadata per hundred, for their lifecycle.
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

    /// The sealed device info of the entry of `handle`: one read.
    async fn device_of(
        &self,
        subject: &Subject,
        handle: &Handle,
    ) -> Result<Option<Vec<u8>>, Error> {
        let name = format!("{}{handle}", index_prefix(subject));
        let Some((_, metadata)) = self.kv.get(&name).await? else {
            return Ok(None);
        };
        Ok(parse_entry(&handle.to_string(), metadata.as_deref()).and_then(|entry| entry.device))
    }
}

/// An entry's metadata: `<created at> <storage key>[ <device>]`.
fn entry_metadata(member: &Member, device: Option<&[u8]>) -> String {
    let mut metadata = format!("{} {}", member.created_at, member.at.storage_key().name());
    if let Some(device) = device {
        metadata.push(' ');
        metadata.push_str(&base64::encode(device));
    }
    metadata
}

/// A listed entry: a handle with `<created at> <storage key>[ <device>]`, or an id with its
/// creation time.
fn parse_entry(name: &str, metadata: Option<&str>) -> Option<Entry> {
    if let Some(handle) = Handle::parse(name) {
        let mut fields = metadata?.split(' ');
        let created_at = fields.next()?.parse().ok()?;
        let key = StorageKey::from_name(fields.next()?)?;
        let device = match fields.next() {
            Some(text) => Some(base64::decode(text)?),
            None => None,
        };
        let member = Member {
            handle,
            at: SessionRef::Key(key),
            created_at,
        };
        return Some(Entry {
            member,
            seen: None,
            device,
        });
    }
    let id = SessionId::parse(name)?;
    let created_at = metadata.and_then(|m| m.parse().ok()).unwrap_or(0);
    Some(Entry {
        member: Member::of(id, created_at),
        seen: None,
        device: None,
    })
}

impl<K: KeyValue> SubjectIndex for KvIndex<K> {
    /// One put (and one read first, for a rotated session's device).
    async fn add(&self, subject: &Subject, entry: &NewEntry<'_>, now: Millis) -> Result<(), Error> {
        let member = entry.member;
        let carried = match entry.device {
            DeviceInfo::None => None,
            DeviceInfo::Sealed(bytes) => Some(bytes.to_vec()),
            DeviceInfo::Like(handle) => self.device_of(subject, &handle).await?,
        };
        let name = format!("{}{}", index_prefix(subject), member.handle);
        let ttl = entry
            .until
            .saturating_sub(now)
            .div_ceil(1000)
            .max(KV_MIN_TTL);
        let metadata = entry_metadata(&member, carried.as_deref());
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

    /// One read of the entry, and one put when it is missing (its device info is gone with it).
    async fn relist(
        &self,
        subject: &Subject,
        entry: &NewEntry<'_>,
        now: Millis,
    ) -> Result<(), Error> {
        let name = format!("{}{}", index_prefix(subject), entry.member.handle);
        if self.kv.get(&name).await?.is_none() {
            let entry = NewEntry {
                device: DeviceInfo::None,
                ..*entry
            };
            self.add(subject, &entry, now).await?;
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
        seen: Seen,
        now: Millis,
    ) -> Result<(), Error> {
        if let SessionRef::Id(id) = member.at {
            let entry = NewEntry {
                member: *member,
                until,
                seen,
                device: DeviceInfo::None,
            };
            self.add(subject, &entry, now).await?;
            self.kv
                .delete(&format!("{}{id}", index_prefix(subject)))
                .await?;
        }
        Ok(())
    }

    /// One list per thousand entries. A session listed twice (an entry written before keys
    /// were hashed, and one a write put back: see [`SubjectIndex::relist`]) is given once, as
    /// the earlier entry, which the listing then rewrites.
    async fn members(&self, subject: &Subject) -> Result<Vec<Entry>, Error> {
        let prefix = index_prefix(subject);
        let keys = self.kv.list(&prefix).await?;
        let mut entries: Vec<Entry> = keys
            .into_iter()
            .filter_map(|(key, metadata)| {
                parse_entry(key.strip_prefix(&prefix)?, metadata.as_deref())
            })
            .collect();
        entries.sort_unstable_by_key(|entry| {
            let keyed = matches!(entry.member.at, SessionRef::Key(_));
            (entry.member.handle, keyed)
        });
        entries.dedup_by_key(|entry| entry.member.handle);
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// KV refuses metadata whose JSON form is over 1024 bytes: the largest entry fits.
    #[test]
    fn the_largest_index_entry_fits_kv_metadata() {
        let id = SessionId::from_random_bytes([1; 16]);
        let member = Member {
            created_at: u64::MAX,
            ..Member::of(id, 0)
        };
        let device = vec![0xff; super::super::seal::MAX_SEALED_DEVICE];
        let metadata = entry_metadata(&member, Some(&device));
        let json = format!("{metadata:?}");
        assert!(json.len() <= 1024, "{} bytes", json.len());
        let entry = parse_entry(&Handle::of(&id).to_string(), Some(&metadata));
        assert_eq!(
            entry.and_then(|e| e.device).map(|d| d.len()),
            Some(super::super::seal::MAX_SEALED_DEVICE)
        );
    }

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
