//! Strong mode: each session in a Durable Object of its own, named by the session's storage key
//! ([`StorageKey`], never the id), in the object's SQLite storage, its data sealed
//! ([`crate::store::seal`]) as in KV.
//!
//! The object serves one request at a time (see [`crate::objects`]), so nothing can come
//! between an operation's read and its write. Every write still states the version it replaces
//! and the statement itself checks it (`UPDATE ... WHERE version = ? RETURNING`), so the seam's
//! contract holds as written, not by luck of scheduling.
//!
//! A request about the session names its id (the worker passes it along, in a header); the
//! object derives everything else from it and stores no id. Requests that only judge or end the
//! session (a subject's listing and revocation) and the alarm name none: the row's lifecycle
//! columns and its key are readable without it, its data is not.
//!
//! Storage does not grow with dead sessions: an alarm at `expiresAt` ends the session, and an
//! object whose session ended holds nothing at all. The one exception is a session moved here
//! from KV: once it ends, its object keeps a marker for [`KV_STALE_MS`] after the KV copy was
//! deleted, so that a stale KV read cannot bring it back; then that goes too.
//!
//! Sessions stored elsewhere move in on first use, all or nothing: a session in KV (KV mode, or
//! the old worker), or one in an object of the earlier strong mode, named by its id
//! ([`super::legacy`]). The copy here is written first, then the old one deleted; if that fails,
//! the copy here is removed again and the request fails, to be retried.

use crate::domain::derive::{Handle, StorageKey};
use crate::domain::error::Error;
use crate::domain::event::Event;
use crate::domain::id::SessionId;
use crate::domain::renewal::Retirement;
use crate::domain::session::{Meta, Policy};
use crate::domain::time::Millis;
use crate::store::data::{Buffer, Plain};
use crate::store::durable::legacy::Held;
use crate::store::durable::record::{parse_row, tables, Row, Tables};
use crate::store::durable::{ObjectStorage, Value};
use crate::store::kv::KvSessions;
use crate::store::schema::RECORD_COLUMNS;
use crate::store::seal::{Aead, Sealer, WebCrypto};
use crate::store::{Expect, KeyValue, Outcome, SessionRef, SessionStore, Stored};

pub use crate::store::durable::legacy::KV_STALE_MS;

mod end;
mod move_in;
mod write;

/// The objects of the earlier strong mode, named by the bare id, as a session's object empties
/// them: what one holds, and removing it.
#[allow(
    async_fn_in_trait,
    reason = "Workers run single-threaded; futures need not be Send"
)]
pub trait LegacyObjects {
    async fn held(&self, id: &SessionId) -> Result<Held, Error>;
    async fn empty(&self, id: &SessionId) -> Result<(), Error>;
}

/// The session of one Durable Object, in its SQLite storage.
pub struct SqlSessions<S, K, P, A: Aead = WebCrypto> {
    pub storage: S,
    /// KV, where sessions of KV mode and of the old worker wait for their first use here.
    pub kv: KvSessions<K, A>,
    /// The other sessions' objects: rotation writes the new id there; and the objects of the
    /// earlier strong mode.
    pub peers: P,
    /// The object's session: its key, and its id when the request named it.
    pub key: StorageKey,
    pub own: Option<SessionId>,
    pub policy: Policy,
    pub now: Millis,
    /// Whether sessions are looked for in the objects of the earlier strong mode.
    serve_legacy: bool,
    /// Whether lifecycle events are committed to the outbox (the worker has a Queue for them).
    events: bool,
    sealer: Sealer<A>,
}

impl<S: ObjectStorage, K: KeyValue, P: SessionStore + LegacyObjects, A: Aead>
    SqlSessions<S, K, P, A>
{
    /// The store for one request to the object of `key`, at `now`; `own` is the session's id
    /// when the request named it (and then `key` is its key).
    #[allow(
        clippy::too_many_arguments,
        reason = "one object's whole context, named"
    )]
    pub fn new(
        storage: S,
        kv: KvSessions<K, A>,
        peers: P,
        aead: A,
        key: StorageKey,
        own: Option<SessionId>,
        policy: Policy,
        now: Millis,
        serve_legacy: bool,
    ) -> Self {
        Self {
            storage,
            kv,
            peers,
            key,
            own,
            policy,
            now,
            serve_legacy,
            events: false,
            sealer: Sealer(aead),
        }
    }

    /// The same store, committing lifecycle events to the object's outbox.
    pub fn with_events(self, events: bool) -> Self {
        Self { events, ..self }
    }

    fn is_own(&self, at: &SessionRef) -> bool {
        match at {
            SessionRef::Key(key) => *key == self.key,
            SessionRef::Id(id) => Some(*id) == self.own,
        }
    }

    /// The same object as a later request about `own` meets it, at `now`: what its storage
    /// has learnt of its tables carries over ([`KnownTables`]), as it does while the object
    /// stays in memory.
    #[cfg(all(test, not(target_arch = "wasm32")))]
    pub fn next_request(&mut self, now: Millis) {
        self.now = now;
    }

    fn id(&self) -> Result<SessionId, Error> {
        self.own
            .ok_or_else(|| Error::Internal("a session object asked for data without an id".into()))
    }

    /// Which tables the object has: asked of `sqlite_master` while either is not known, then
    /// known ([`KnownTables`]).
    ///
    /// [`KnownTables`]: crate::store::durable::record::KnownTables
    fn tables(&self) -> Result<Tables, Error> {
        let known = self.storage.known_tables();
        if let Some(tables) = known.get() {
            return Ok(tables);
        }
        let tables = tables(&self.storage)?;
        known.set(tables);
        Ok(tables)
    }

    fn has_table(&self) -> Result<bool, Error> {
        match self.storage.known_tables().record() {
            Some(exists) => Ok(exists),
            None => Ok(self.tables()?.record),
        }
    }

    async fn delete_all(&self) -> Result<(), Error> {
        self.storage.delete_all().await
    }

    /// The row, without looking anywhere else. Reads create no storage: an object asked about
    /// an unknown id stays empty.
    fn row(&self) -> Result<Option<Row>, Error> {
        if !self.has_table()? {
            return Ok(None);
        }
        let rows = self
            .storage
            .exec(&format!("SELECT {RECORD_COLUMNS} FROM record"), vec![])?;
        rows.into_iter().next().map(parse_row).transpose()
    }

    /// The session (or the id's retirement), opened with its id; moved in from wherever it
    /// was on first use.
    async fn load_own(&self) -> Result<Option<Stored>, Error> {
        let id = self.id()?;
        let Some(row) = self.row()? else {
            return Ok(self.move_in(&id).await?.map(Stored::Session));
        };
        let Some(sealed) = row.sealed else {
            return Ok(None);
        };
        let opened =
            self.sealer
                .open_session(&id, &self.key, sealed, Some(row.meta), self.serve_legacy);
        let stored = opened.await?;
        if row.handle.is_none() {
            // A row of the version before handles: its alarm will need one to report expiry.
            let handle = Value::Text(Handle::of(&id).to_string());
            self.storage
                .exec("UPDATE record SET handle = ?", vec![handle])?;
        }
        Ok(Some(stored))
    }
}

impl<S: ObjectStorage, K: KeyValue, P: SessionStore + LegacyObjects, A: Aead> SessionStore
    for SqlSessions<S, K, P, A>
{
    async fn load(&self, id: &SessionId) -> Result<Option<Stored>, Error> {
        if Some(*id) == self.own {
            self.load_own().await
        } else {
            self.peers.load(id).await
        }
    }

    fn buffer(&self, len: usize) -> Buffer {
        self.sealer.0.buffer(len)
    }

    async fn save(
        &self,
        id: &SessionId,
        data: Plain<'_>,
        meta: &Meta,
        expect: Expect,
        event: Option<&Event>,
    ) -> Result<Outcome, Error> {
        if Some(*id) == self.own {
            self.save_own(data, meta, expect, event).await
        } else {
            self.peers.save(id, data, meta, expect, event).await
        }
    }

    async fn remove(
        &self,
        id: &SessionId,
        expect: Expect,
        event: Option<&Event>,
    ) -> Result<Outcome, Error> {
        if Some(*id) == self.own {
            let (outcome, _) = self.remove_own(expect, event).await?;
            Ok(outcome)
        } else {
            self.peers.remove(id, expect, event).await
        }
    }

    /// A renewal runs in the old id's own object (the worker forwards `/renew/:id` there); a
    /// bound session's refresh runs in its binding's object and retires the old id in the id's
    /// object, at the version it read.
    async fn retire(
        &self,
        id: &SessionId,
        retirement: &Retirement,
        meta: &Meta,
        expect: Expect,
        event: Option<&Event>,
    ) -> Result<Outcome, Error> {
        if Some(*id) != self.own {
            return self.peers.retire(id, retirement, meta, expect, event).await;
        }
        self.retire_own(retirement, meta, expect, event).await
    }

    fn records_events(&self) -> bool {
        self.events
    }

    async fn meta_at(&self, at: &SessionRef) -> Result<Option<(Meta, SessionRef)>, Error> {
        let here = SessionRef::Key(self.key);
        match at {
            SessionRef::Key(key) if *key == self.key => {
                Ok(self.row()?.and_then(|row| Some((row.live_meta()?, here))))
            }
            SessionRef::Id(id) if Some(*id) == self.own => {
                let record = self.load_own().await?.and_then(Stored::session);
                Ok(record
                    .and_then(|record| record.meta)
                    .map(|meta| (meta, here)))
            }
            _ => self.peers.meta_at(at).await,
        }
    }

    async fn remove_at(&self, at: &SessionRef, event: Option<&Event>) -> Result<bool, Error> {
        if self.is_own(at) {
            let (_, held) = self.remove_own(Expect::Any, event).await?;
            Ok(held)
        } else {
            self.peers.remove_at(at, event).await
        }
    }

    /// The object's own row is in its own SQLite.
    fn reads_are_local(&self) -> bool {
        true
    }
}
