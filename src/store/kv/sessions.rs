//! Sessions on Workers KV: each sealed under its storage key, its lifecycle as the entry's
//! metadata, KV's own expiry set to the session's; found under the bare id where earlier versions
//! stored them, and moved on their first write.

use std::cell::RefCell;
use std::rc::Rc;

use crate::domain::derive::{StorageKey, WrapKey};
use crate::domain::error::Error;
use crate::domain::event::Event;
use crate::domain::id::SessionId;
use crate::domain::renewal::Retirement;
use crate::domain::session::Meta;
use crate::store::data::{Buffer, Plain};
use crate::store::events::Journal;
use crate::store::seal::{Aead, Sealer, Successor, WebCrypto};
use crate::store::{
    Expect, KeyValue, MetaAt, Outcome, Record, SessionRef, SessionStore, Stored, BULK_KEYS,
};

/// The lifecycle in an entry's metadata. Metadata the worker cannot read counts as absent (an
/// entry of the old worker) rather than failing: it is replaced on the next write.
fn readable(metadata: Option<String>) -> Option<Meta> {
    Meta::from_json(&metadata?)
}

/// Marks the metadata of a renewed id's record, for readers without ids (listings).
const RETIRED: &str = r#","retired":1}"#;

/// The metadata of a renewed id's record: its lifecycle, marked.
fn retired_metadata(meta: &Meta) -> String {
    let mut json = meta.to_json();
    json.pop();
    json.push_str(RETIRED);
    json
}

/// Whether an entry's metadata marks a renewed id's record. Readers with the id check the mark
/// against the sealed record ([`KvSessions::load`]); readers without one take it as it is.
fn is_marked_retired(metadata: &str) -> bool {
    metadata.ends_with(RETIRED)
}

/// The lifecycle of a session in an entry's metadata, to a reader without its id: a renewed
/// id's record is no session to list or end.
fn listable(metadata: Option<String>) -> Option<Meta> {
    metadata
        .filter(|metadata| !is_marked_retired(metadata))
        .and_then(|metadata| Meta::from_json(&metadata))
}

/// Where a request found a session, so that its write goes where it should.
enum Found {
    /// Under its storage key, sealed; with what its renewal's successor is derived from, for a
    /// session record of this version's formats.
    Sealed(Option<Successor>),
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
    serve_legacy: bool,
    found: RefCell<Vec<(SessionId, Found)>>,
    events: Option<Rc<Journal>>,
}

impl<K: KeyValue, A: Aead> KvSessions<K, A> {
    pub fn new(kv: K, aead: A, serve_legacy: bool) -> Self {
        Self {
            kv,
            sealer: Sealer(aead),
            serve_legacy,
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

    /// Puts `sealed` under `key` with `metadata`, until `meta`'s expiry; for a session this
    /// request found under its bare id, deletes it there; then records `event`.
    async fn put(
        &self,
        id: &SessionId,
        key: &StorageKey,
        sealed: Plain<'_>,
        metadata: &str,
        meta: &Meta,
        event: Option<&Event>,
    ) -> Result<Outcome, Error> {
        let moving = self.recall(id) == Some(true);
        let ttl = meta.kv_ttl(meta.updated_at);
        self.kv
            .put(&key.name(), sealed, Some(metadata), ttl)
            .await?;
        self.remember(id, Found::Sealed(None));
        if moving {
            // The sealed copy is written and found first from now on; an old entry left by a
            // failed delete is never read again and ends with its KV expiry.
            let _ = self.kv.delete(&id.to_string()).await;
        }
        self.record(event);
        Ok(Outcome::Written)
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
    async fn load(&self, id: &SessionId) -> Result<Option<Stored>, Error> {
        let key = StorageKey::of(id);
        if let Some((bytes, metadata)) = self.kv.get_bytes(&key.name()).await? {
            let successor = Successor::of(&bytes);
            let marked = metadata.as_deref().is_some_and(is_marked_retired);
            let beside = readable(metadata);
            let opened = self
                .sealer
                .open_session(id, &key, bytes, beside, self.serve_legacy);
            let stored = opened.await?;
            // The mark is not sealed, and readers without the id (listings, revocations, the
            // per-subject bound) trust it: a session marked retired, or a retirement unmarked,
            // was not written by this worker.
            if marked != matches!(stored, Stored::Retired(..)) {
                return Err(Error::Unreadable(format!(
                    "integrity: session {} is marked other than its sealed record",
                    id.short()
                )));
            }
            self.remember(id, Found::Sealed(successor));
            return Ok(Some(stored));
        }
        // Only UUIDs were ever stored under their bare id.
        if !self.serve_legacy || !id.is_uuid() {
            return Ok(None);
        }
        let Some((data, meta)) = self.kv.get(&id.to_string()).await? else {
            return Ok(None);
        };
        self.remember(id, Found::Legacy);
        Ok(Some(Stored::Session(Record {
            data,
            meta: readable(meta),
        })))
    }

    fn buffer(&self, len: usize) -> Buffer {
        self.sealer.0.buffer(len)
    }

    /// One put (and, for a session this request found under its bare id, one delete there).
    /// `expect` was checked by the read this operation began with: KV cannot check again at the
    /// moment of writing.
    async fn save(
        &self,
        id: &SessionId,
        data: Plain<'_>,
        meta: &Meta,
        _expect: Expect,
        event: Option<&Event>,
    ) -> Result<Outcome, Error> {
        let key = StorageKey::of(id);
        let sealed = self.sealer.seal(&WrapKey::of(id), &key, meta, data).await?;
        self.put(id, &key, sealed.plain(), &meta.to_json(), meta, event)
            .await
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
        if self.serve_legacy && id.is_uuid() && self.recall(id) != Some(false) {
            self.kv.delete(&id.to_string()).await?;
        }
        self.found.borrow_mut().retain(|(known, _)| known != id);
        self.record(event);
        Ok(Outcome::Written)
    }

    /// One put, under the old id's storage key (its bare-id entry, if this request found the
    /// session there, goes as on a write). `expect` as for `save`.
    async fn retire(
        &self,
        id: &SessionId,
        retirement: &Retirement,
        meta: &Meta,
        _expect: Expect,
        event: Option<&Event>,
    ) -> Result<Outcome, Error> {
        let key = StorageKey::of(id);
        let wrap = WrapKey::of(id);
        let sealed = self.sealer.retire(&wrap, &key, meta, retirement).await?;
        let metadata = retired_metadata(meta);
        self.put(id, &key, sealed.plain(), &metadata, meta, event)
            .await
    }

    /// One read, of the metadata: no id is needed, and none is there to open the data with.
    async fn meta_at(&self, at: &SessionRef) -> Result<Option<(Meta, SessionRef)>, Error> {
        match at {
            SessionRef::Key(key) => {
                let entry = self.kv.get_bytes(&key.name()).await?;
                Ok(entry.and_then(|(_, meta)| Some((listable(meta)?, *at))))
            }
            SessionRef::Id(id) => {
                let record = self.load(id).await?.and_then(Stored::session);
                let Some(meta) = record.and_then(|record| record.meta) else {
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
                (Some(meta), _) => listable(meta).map(|m| (m, SessionRef::Key(at.storage_key()))),
                (None, Some(meta)) if self.serve_legacy => readable(meta).map(|m| (m, *at)),
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

    /// KV cannot make two renewals of one id take turns: each that read the same sealed record
    /// moves the session to the same successor, derived from it ([`Successor`]), so
    /// parallel renewals (a browser's parallel requests, a middleware renewing per request)
    /// converge on one session instead of forking it. A session this request read in no such
    /// record (the old worker's) takes `proposed`.
    fn successor(&self, id: &SessionId, proposed: SessionId) -> SessionId {
        let memo = self.found.borrow();
        match memo.iter().find(|(known, _)| known == id) {
            Some((_, Found::Sealed(Some(successor)))) => {
                SessionId::like_from_seed(&proposed, successor.seed(&WrapKey::of(id)))
            }
            _ => proposed,
        }
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
