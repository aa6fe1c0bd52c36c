//! The storage seam. Sessions are stored as records (the data and its lifecycle metadata), and
//! every write names what it expects to replace, so each backend makes a write as safe as it can:
//! Workers KV, which has no compare-and-swap, relies on the read the operation began with; a
//! Durable Object compares and writes in one step. The rules that decide what to write stay in
//! [`crate::sessions`], natively tested against the in-memory stores here.
//!
//! ```text
//! store/kv.rs       Workers KV: key-value operations, and sessions stored on them
//! store/durable.rs  a Durable Object's SQLite storage, for strong mode
//! store/memory.rs   both in memory, with injected faults, for native tests
//! ```

pub mod durable;
pub mod kv;
#[cfg(test)]
pub mod memory;

use worker::web_sys::ReadableStream;

use crate::error::Error;
use crate::id::SessionId;
use crate::session::Meta;

use self::durable::{DoStorage, Peers, SqlSessions};
use self::kv::{Kv, KvSessions};

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
    /// Whether `current` (the stored record, if any) is what was expected.
    pub fn holds(self, current: Option<&Record>) -> bool {
        match (self, current) {
            (Expect::Any, _) | (Expect::Absent, None) => true,
            (Expect::Version(version), Some(record)) => record.version() == version,
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
#[allow(
    async_fn_in_trait,
    reason = "Workers run single-threaded; futures need not be Send"
)]
pub trait SessionStore {
    /// The data in the store's own form, for handing to a response without copying it.
    type Body;

    async fn load(&self, id: &SessionId) -> Result<Option<Record>, Error>;
    async fn open(&self, id: &SessionId) -> Result<Option<(Self::Body, Option<Meta>)>, Error>;
    async fn save(
        &self,
        id: &SessionId,
        data: &[u8],
        meta: &Meta,
        expect: Expect,
    ) -> Result<Outcome, Error>;
    async fn remove(&self, id: &SessionId, expect: Expect) -> Result<Outcome, Error>;
}

/// Key-value storage with per-entry metadata and expiry, as Workers KV offers it: what the KV
/// session store and the permission cache stand on.
///
/// Contract: `get` returns `None` for a key never written, deleted, or expired in the store;
/// `put` replaces value and metadata together and asks the store to drop the entry after
/// `ttl_seconds`; `delete` succeeds for a missing key.
#[allow(
    async_fn_in_trait,
    reason = "Workers run single-threaded; futures need not be Send"
)]
pub trait KeyValue {
    type Body;

    async fn get(&self, key: &str) -> Result<Option<(String, Option<Meta>)>, Error>;
    async fn open(&self, key: &str) -> Result<Option<(Self::Body, Option<Meta>)>, Error>;
    async fn put(
        &self,
        key: &str,
        value: &[u8],
        meta: Option<&Meta>,
        ttl_seconds: u64,
    ) -> Result<(), Error>;
    async fn delete(&self, key: &str) -> Result<(), Error>;
}

/// The store a request's session lives in: KV, in the worker; SQLite, in the session's object.
pub enum Backend {
    Kv(KvSessions<Kv>),
    Durable(SqlSessions<DoStorage, Kv, Peers>),
}

/// Session data as a backend hands it to a response.
pub enum Body {
    /// Straight from KV to the response, never copied into Wasm.
    Stream(ReadableStream),
    Text(String),
}

impl SessionStore for Backend {
    type Body = Body;

    async fn load(&self, id: &SessionId) -> Result<Option<Record>, Error> {
        match self {
            Backend::Kv(store) => store.load(id).await,
            Backend::Durable(store) => store.load(id).await,
        }
    }

    async fn open(&self, id: &SessionId) -> Result<Option<(Body, Option<Meta>)>, Error> {
        match self {
            Backend::Kv(store) => Ok(store
                .open(id)
                .await?
                .map(|(stream, meta)| (Body::Stream(stream), meta))),
            Backend::Durable(store) => Ok(store
                .open(id)
                .await?
                .map(|(text, meta)| (Body::Text(text), meta))),
        }
    }

    async fn save(
        &self,
        id: &SessionId,
        data: &[u8],
        meta: &Meta,
        expect: Expect,
    ) -> Result<Outcome, Error> {
        match self {
            Backend::Kv(store) => store.save(id, data, meta, expect).await,
            Backend::Durable(store) => store.save(id, data, meta, expect).await,
        }
    }

    async fn remove(&self, id: &SessionId, expect: Expect) -> Result<Outcome, Error> {
        match self {
            Backend::Kv(store) => store.remove(id, expect).await,
            Backend::Durable(store) => store.remove(id, expect).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::fixtures::{POLICY, T0};

    #[test]
    fn expectations() {
        let legacy = Record {
            data: "{}".into(),
            meta: None,
        };
        let v3 = Record {
            data: "{}".into(),
            meta: Some(Meta {
                version: 3,
                ..Meta::new(T0, None, POLICY)
            }),
        };
        assert!(Expect::Absent.holds(None));
        assert!(!Expect::Absent.holds(Some(&legacy)));
        assert!(Expect::Version(0).holds(Some(&legacy)));
        assert!(Expect::Version(3).holds(Some(&v3)));
        assert!(!Expect::Version(2).holds(Some(&v3)));
        assert!(!Expect::Version(3).holds(None));
        assert!(Expect::Any.holds(None) && Expect::Any.holds(Some(&v3)));
    }
}
