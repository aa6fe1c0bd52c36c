//! The backends a request can meet, behind one type each, so that handlers are written once: the
//! session store (KV in the worker, SQLite in a session's object) and the subject index (KV, or
//! the subject's object).
//!
//! Each forwards every method of its trait to the backend it holds, provided ones included: a
//! provided method left unforwarded would answer with the trait's default instead of the
//! backend's own (it happened once, to the index's relisting). So each impl denies
//! `clippy::missing_trait_methods`, and `npm test` runs clippy with warnings denied: a method
//! this file forgets fails the build.

use crate::domain::derive::Handle;
use crate::domain::error::Error;
use crate::domain::event::Event;
use crate::domain::id::SessionId;
use crate::domain::renewal::Retirement;
use crate::domain::session::Meta;
use crate::domain::subject::Subject;
use crate::domain::time::Millis;
use crate::store::data::{Buffer, Plain};
use crate::store::durable::protocol::index::SubjectPeers;
use crate::store::durable::protocol::store::Peers;
use crate::store::durable::sessions::SqlSessions;
use crate::store::durable::storage::DoStorage;
use crate::store::kv::{Kv, KvIndex, KvSessions};
use crate::store::{
    Activity, Choice, Entry, EntryKey, Expect, MetaAt, NewEntry, Outcome, SessionRef, SessionStore,
    Stored, SubjectIndex,
};

/// The store a request's session lives in: KV, in the worker; SQLite, in the session's object.
pub enum BackendStore {
    Kv(KvSessions<Kv>),
    Durable(SqlSessions<DoStorage, Kv, Peers>),
}

/// Where a session's object or the worker lists the subject of a new session.
pub enum BackendIndex {
    Kv(KvIndex<Kv>),
    Durable(SubjectPeers),
}

#[deny(clippy::missing_trait_methods, reason = "see the module's doc")]
impl SubjectIndex for BackendIndex {
    async fn add(&self, subject: &Subject, entry: &NewEntry<'_>, now: Millis) -> Result<(), Error> {
        match self {
            BackendIndex::Kv(index) => index.add(subject, entry, now).await,
            BackendIndex::Durable(index) => index.add(subject, entry, now).await,
        }
    }

    async fn remove(&self, subject: &Subject, member: &EntryKey) -> Result<(), Error> {
        match self {
            BackendIndex::Kv(index) => index.remove(subject, member).await,
            BackendIndex::Durable(index) => index.remove(subject, member).await,
        }
    }

    async fn members(&self, subject: &Subject) -> Result<Vec<Entry>, Error> {
        match self {
            BackendIndex::Kv(index) => index.members(subject).await,
            BackendIndex::Durable(index) => index.members(subject).await,
        }
    }

    async fn take(&self, subject: &Subject, choice: &Choice<'_>) -> Result<Vec<Entry>, Error> {
        match self {
            BackendIndex::Kv(index) => index.take(subject, choice).await,
            BackendIndex::Durable(index) => index.take(subject, choice).await,
        }
    }

    async fn upgrade(
        &self,
        subject: &Subject,
        member: &EntryKey,
        until: Millis,
        activity: Activity,
        now: Millis,
    ) -> Result<(), Error> {
        match self {
            BackendIndex::Kv(index) => index.upgrade(subject, member, until, activity, now).await,
            BackendIndex::Durable(index) => {
                index.upgrade(subject, member, until, activity, now).await
            }
        }
    }

    async fn report(
        &self,
        subject: &Subject,
        handle: &Handle,
        activity: Activity,
    ) -> Result<(), Error> {
        match self {
            BackendIndex::Kv(index) => index.report(subject, handle, activity).await,
            BackendIndex::Durable(index) => index.report(subject, handle, activity).await,
        }
    }

    async fn relist(
        &self,
        subject: &Subject,
        entry: &NewEntry<'_>,
        now: Millis,
    ) -> Result<(), Error> {
        match self {
            BackendIndex::Kv(index) => index.relist(subject, entry, now).await,
            BackendIndex::Durable(index) => index.relist(subject, entry, now).await,
        }
    }
}

#[deny(clippy::missing_trait_methods, reason = "see the module's doc")]
impl SessionStore for BackendStore {
    async fn load(&self, id: &SessionId) -> Result<Option<Stored>, Error> {
        match self {
            BackendStore::Kv(store) => store.load(id).await,
            BackendStore::Durable(store) => store.load(id).await,
        }
    }

    async fn meta_at(&self, at: &SessionRef) -> Result<Option<(Meta, SessionRef)>, Error> {
        match self {
            BackendStore::Kv(store) => store.meta_at(at).await,
            BackendStore::Durable(store) => store.meta_at(at).await,
        }
    }

    async fn metas_at(&self, at: &[SessionRef]) -> Result<Vec<MetaAt>, Error> {
        match self {
            BackendStore::Kv(store) => store.metas_at(at).await,
            BackendStore::Durable(store) => store.metas_at(at).await,
        }
    }

    async fn remove_at(&self, at: &SessionRef, event: Option<&Event>) -> Result<bool, Error> {
        match self {
            BackendStore::Kv(store) => store.remove_at(at, event).await,
            BackendStore::Durable(store) => store.remove_at(at, event).await,
        }
    }

    fn successor(&self, id: &SessionId, proposed: SessionId) -> SessionId {
        match self {
            BackendStore::Kv(store) => store.successor(id, proposed),
            BackendStore::Durable(store) => store.successor(id, proposed),
        }
    }

    fn reads_are_local(&self) -> bool {
        match self {
            BackendStore::Kv(store) => store.reads_are_local(),
            BackendStore::Durable(store) => store.reads_are_local(),
        }
    }

    fn records_events(&self) -> bool {
        match self {
            BackendStore::Kv(store) => store.records_events(),
            BackendStore::Durable(store) => store.records_events(),
        }
    }

    fn observed(&self, event: &Event) {
        match self {
            BackendStore::Kv(store) => store.observed(event),
            BackendStore::Durable(store) => store.observed(event),
        }
    }

    fn buffer(&self, len: usize) -> Buffer {
        match self {
            BackendStore::Kv(store) => store.buffer(len),
            BackendStore::Durable(store) => store.buffer(len),
        }
    }

    async fn save(
        &self,
        id: &SessionId,
        data: Plain<'_>,
        meta: &Meta,
        expect: Expect,
        event: Option<&Event>,
    ) -> Result<Outcome, Error> {
        match self {
            BackendStore::Kv(store) => store.save(id, data, meta, expect, event).await,
            BackendStore::Durable(store) => store.save(id, data, meta, expect, event).await,
        }
    }

    async fn remove(
        &self,
        id: &SessionId,
        expect: Expect,
        event: Option<&Event>,
    ) -> Result<Outcome, Error> {
        match self {
            BackendStore::Kv(store) => store.remove(id, expect, event).await,
            BackendStore::Durable(store) => store.remove(id, expect, event).await,
        }
    }

    async fn retire(
        &self,
        id: &SessionId,
        retirement: &Retirement,
        meta: &Meta,
        expect: Expect,
        event: Option<&Event>,
    ) -> Result<Outcome, Error> {
        match self {
            BackendStore::Kv(store) => store.retire(id, retirement, meta, expect, event).await,
            BackendStore::Durable(store) => store.retire(id, retirement, meta, expect, event).await,
        }
    }
}
