//! The storage seam. Sessions are stored as records (the data and its lifecycle metadata), and
//! every write names what it expects to replace, so each backend makes a write as safe as it can:
//! Workers KV, which has no compare-and-swap, relies on the read the operation began with; a
//! Durable Object compares and writes in one step. The rules that decide what to write stay in
//! [`crate::service::sessions`], natively tested against the in-memory stores here.
//!
//! ```text
//! store/mod.rs      the seam: records, expectations, the session store trait
//! store/index.rs    the seam's other half: a subject index's entries and trait
//! store/kv/         Workers KV: key-value operations, and sessions and indexes stored on them
//! store/durable/    a Durable Object's SQLite storage, for strong mode, and calls between objects
//! store/backend.rs  the backend a request meets, behind one type
//! store/bindings.rs the Worker's bindings, looked up once per isolate
//! store/data.rs     session data held in Wasm memory or, a large result, outside it
//! store/events.rs   the lifecycle events' Queue, and a request's journal of events
//! store/memory.rs   in-memory stores, counted, with injected faults, for native tests
//! store/schema.rs   every KV key shape and SQL table the stores write (docs/storage.md)
//! store/seal/       sealed records: the session data encrypted, its lifecycle bound to it
//! store/proof.rs    device-binding proofs checked with the runtime's WebCrypto
//! ```
//!
//! Invariant: the only layer that touches KV or Durable Object storage; it knows nothing of
//! routes or handlers, and imports only `domain`.

pub mod backend;
pub mod bindings;
pub mod data;
pub mod durable;
pub mod events;
mod index;
pub mod kv;
#[cfg(test)]
pub mod memory;
pub mod promise;
pub mod proof;
pub mod schema;
pub mod seal;

use crate::domain::derive::StorageKey;
use crate::domain::error::Error;
use crate::domain::event::Event;
use crate::domain::id::SessionId;
use crate::domain::renewal::Retirement;
use crate::domain::session::Meta;
use data::{Buffer, Plain};
use futures_util::future::join_all;

pub use index::{Activity, Choice, DeviceInfo, Entry, EntryKey, NewEntry, NoIndex, SubjectIndex};

/// A failure of the runtime itself (not of a store, whose failures are mapped where they happen).
impl From<worker::Error> for Error {
    fn from(err: worker::Error) -> Self {
        Error::Internal(err.to_string())
    }
}

/// A stored session: its data exactly as stored, and its metadata (`None` for an entry the old
/// worker wrote, which has none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub data: String,
    pub meta: Option<Meta>,
}

impl Record {
    /// The version a write must expect to replace this record.
    pub fn version(&self) -> u64 {
        self.meta.map_or(0, |meta| meta.version)
    }
}

/// What an id's key holds: a session, or what the id left there when it was renewed away
/// ([`Retirement`], opened with the id: nobody else learns the successor), with the lifecycle of
/// the session at that renewal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stored {
    Session(Record),
    Retired(Retirement, Meta),
}

impl Stored {
    /// The session, if this is one: for what never follows a renewal (moving a session in).
    pub fn session(self) -> Option<Record> {
        match self {
            Stored::Session(record) => Some(record),
            Stored::Retired(..) => None,
        }
    }
}

/// What a write expects to find under the id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Nothing: a new session.
    Absent,
    /// The session at this version (0: an entry the old worker wrote).
    Version(u64),
    /// Whatever is there, if anything.
    Any,
}

impl Expect {
    /// Whether `current` (what is stored, if anything) is what was expected.
    pub fn holds(self, current: Option<&Stored>) -> bool {
        match (self, current) {
            (Expect::Any, _) | (Expect::Absent, None) => true,
            (Expect::Version(version), Some(Stored::Session(record))) => {
                record.version() == version
            }
            _ => false,
        }
    }
}

/// Whether a conditional write was made.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Written,
    /// The session was not as expected: nothing was written.
    Conflict,
}

/// Where sessions live.
///
/// Contract: `load` and `open` return `None` for an id never written, removed, or dropped by the
/// store's own expiry; they do not judge whether a session is still alive (that is
/// [`Meta::is_alive`]). `save` stores data and metadata together, and `remove` removes, only if
/// the session is as `expect` says; otherwise they return [`Outcome::Conflict`] and change
/// nothing. Removing a missing session under [`Expect::Any`] is `Written`. A failure leaves the
/// previous record as it was.
///
/// Every write takes the lifecycle event it makes, if any: a store that keeps events commits it
/// with the write (strong mode's outbox: in the same transaction) or records it once the write
/// was made (KV). A write refused or failed makes no event; so does a removal where the store
/// can tell nothing was there (KV cannot: its callers read first). A store that keeps no events
/// ignores them.
#[allow(
    async_fn_in_trait,
    reason = "Workers run single-threaded; futures need not be Send"
)]
pub trait SessionStore {
    async fn load(&self, id: &SessionId) -> Result<Option<Stored>, Error>;
    async fn save(
        &self,
        id: &SessionId,
        data: Plain<'_>,
        meta: &Meta,
        expect: Expect,
        event: Option<&Event>,
    ) -> Result<Outcome, Error>;
    /// Where data of `len` bytes this store is to save is best written (see [`Aead::buffer`]).
    ///
    /// [`Aead::buffer`]: seal::Aead::buffer
    fn buffer(&self, len: usize) -> Buffer {
        Buffer::here(len)
    }
    async fn remove(
        &self,
        id: &SessionId,
        expect: Expect,
        event: Option<&Event>,
    ) -> Result<Outcome, Error>;
    /// Replaces the session `id` (as `expect` says) with `retirement`, kept until `meta`'s
    /// latest end, and commits `event` with it: what a renewal leaves under the old id.
    async fn retire(
        &self,
        id: &SessionId,
        retirement: &Retirement,
        meta: &Meta,
        expect: Expect,
        event: Option<&Event>,
    ) -> Result<Outcome, Error>;

    /// The metadata of the session `at` names (`None`: gone, or without metadata), and where
    /// the session is now: under its storage key, or still under its id where an earlier
    /// version stored it. What a listing needs, and all it can have: an index holds no id to
    /// open the data with.
    async fn meta_at(&self, at: &SessionRef) -> Result<Option<(Meta, SessionRef)>, Error> {
        match at {
            SessionRef::Id(id) => {
                let record = self.load(id).await?.and_then(Stored::session);
                Ok(record
                    .and_then(|record| record.meta)
                    .map(|meta| (meta, *at)))
            }
            SessionRef::Key(_) => Err(Error::Internal("a store without hashed keys".into())),
        }
    }

    /// [`SessionStore::meta_at`] of many sessions, in order, each with its own outcome; a store
    /// that can read many at once does (KV: one bulk read per [`BULK_KEYS`]).
    async fn metas_at(&self, at: &[SessionRef]) -> Result<Vec<MetaAt>, Error> {
        Ok(join_all(at.iter().map(|at| self.meta_at(at))).await)
    }

    /// Removes the session `at` names, whatever it holds; `false` when nothing was there.
    async fn remove_at(&self, at: &SessionRef, event: Option<&Event>) -> Result<bool, Error> {
        match at {
            SessionRef::Id(id) => self.remove(id, Expect::Any, event).await.map(|_| true),
            SessionRef::Key(_) => Err(Error::Internal("a store without hashed keys".into())),
        }
    }

    /// The id a renewal of `id` moves the session to: `proposed`, a fresh random id, where
    /// renewals of one id take turns (strong mode: the object serves one request at a time, and
    /// the second renewal meets the first one's retirement). A store where two renewals that
    /// read the same record can both be made (KV) answers instead one that every renewal of that
    /// record computes alike, so they converge on one successor.
    fn successor(&self, _id: &SessionId, proposed: SessionId) -> SessionId {
        proposed
    }

    /// Whether reading a session costs no operation (a Durable Object's own row): then a delete
    /// reads first, to take the session off its subject's index at once.
    fn reads_are_local(&self) -> bool {
        false
    }

    /// Whether this store passes lifecycle events on (the worker has a `SESSION_EVENTS`
    /// binding): without it, callers need not build events, nor read what only an event needs.
    fn records_events(&self) -> bool {
        false
    }

    /// Takes `event`, which happened without a write of this store's (KV: a read met an
    /// expired session). A store whose own clock reports expiry (strong mode's alarm) ignores
    /// it, as does one that records no events.
    fn observed(&self, _event: &Event) {}
}

/// What [`SessionStore::meta_at`] answers for one session.
pub type MetaAt = Result<Option<(Meta, SessionRef)>, Error>;

/// The most keys one bulk read of Workers KV takes.
pub const BULK_KEYS: usize = 100;

/// Key-value storage with per-entry metadata and expiry, as Workers KV offers it: what the KV
/// session store, the subject index and the permission cache stand on.
///
/// Contract: `get` (a text value) and `get_bytes` return `None` for a key never written,
/// deleted, or expired in the store;
/// `put` replaces value (in Wasm memory or outside it) and metadata (a string) together and asks
/// the store to drop the entry after `ttl_seconds`; `delete` succeeds for a missing key; `list`
/// gives every key under a prefix with its metadata, in key order (a store may lag writes: KV
/// lists can be up to a minute old).
#[allow(
    async_fn_in_trait,
    reason = "Workers run single-threaded; futures need not be Send"
)]
pub trait KeyValue {
    async fn get(&self, key: &str) -> Result<Option<(String, Option<String>)>, Error>;
    async fn get_bytes(&self, key: &str) -> Result<Option<(Vec<u8>, Option<String>)>, Error>;
    async fn put(
        &self,
        key: &str,
        value: Plain<'_>,
        metadata: Option<&str>,
        ttl_seconds: u64,
    ) -> Result<(), Error>;
    async fn delete(&self, key: &str) -> Result<(), Error>;
    async fn list(&self, prefix: &str) -> Result<Vec<(String, Option<String>)>, Error>;
    /// One bulk read of up to [`BULK_KEYS`] keys: for each, in order, `None` when it is
    /// missing, else its metadata. The values are not needed, and not returned.
    async fn metadata_of(&self, keys: &[String]) -> Result<Vec<Option<Option<String>>>, Error>;
}

/// One store, shared: the KV session store and the subject index stand on the same namespace.
#[deny(clippy::missing_trait_methods, reason = "every method forwarded")]
impl<K: KeyValue> KeyValue for &K {
    async fn get(&self, key: &str) -> Result<Option<(String, Option<String>)>, Error> {
        (**self).get(key).await
    }

    async fn get_bytes(&self, key: &str) -> Result<Option<(Vec<u8>, Option<String>)>, Error> {
        (**self).get_bytes(key).await
    }

    async fn put(
        &self,
        key: &str,
        value: Plain<'_>,
        metadata: Option<&str>,
        ttl_seconds: u64,
    ) -> Result<(), Error> {
        (**self).put(key, value, metadata, ttl_seconds).await
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        (**self).delete(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, Option<String>)>, Error> {
        (**self).list(prefix).await
    }

    async fn metadata_of(&self, keys: &[String]) -> Result<Vec<Option<Option<String>>>, Error> {
        (**self).metadata_of(keys).await
    }
}

/// How an index entry names its session: by the key it is stored under, or, in entries written
/// before keys were hashed (and in strong mode's indexes, for now), by its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionRef {
    Key(StorageKey),
    Id(SessionId),
}

impl SessionRef {
    /// The key the session is (or, still under its id, will be) stored under.
    pub fn storage_key(&self) -> StorageKey {
        match self {
            SessionRef::Key(key) => *key,
            SessionRef::Id(id) => StorageKey::of(id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::session::fixtures::{POLICY, T0};

    #[test]
    fn expectations() {
        let legacy = Stored::Session(Record {
            data: "{}".into(),
            meta: None,
        });
        let meta = Meta {
            version: 3,
            ..Meta::new(T0, None, POLICY)
        };
        let v3 = Stored::Session(Record {
            data: "{}".into(),
            meta: Some(meta),
        });
        let successor = crate::domain::id::SessionId::from_random_bytes([2; 16]);
        let retirement = Retirement::new(successor, T0, Default::default());
        let retired = Stored::Retired(retirement, meta);
        assert!(Expect::Absent.holds(None));
        assert!(!Expect::Absent.holds(Some(&legacy)));
        assert!(Expect::Version(0).holds(Some(&legacy)));
        assert!(Expect::Version(3).holds(Some(&v3)));
        assert!(!Expect::Version(2).holds(Some(&v3)));
        assert!(!Expect::Version(3).holds(None));
        assert!(Expect::Any.holds(None) && Expect::Any.holds(Some(&v3)));
        // A renewed id's key is neither free nor a session to write over.
        assert!(!Expect::Absent.holds(Some(&retired)));
        assert!(!Expect::Version(3).holds(Some(&retired)));
    }
}
