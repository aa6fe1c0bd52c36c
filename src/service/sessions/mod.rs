//! The session operations behind the routes: read, check, decide what to write, write if nobody
//! wrote in between. Generic over [`SessionStore`], so every rule here runs natively against the
//! in-memory stores, and the same code runs against KV in the worker and SQLite in a Durable
//! Object.
//!
//! Every write names the version it read ([`Expect`]). A backend with compare-and-swap refuses a
//! write that lost a race; the operation then reads again and recomputes (a merge merges into
//! what the other writer left), up to [`ATTEMPTS`] times, unless `If-Match` pinned the version,
//! in which case the lost race is a failed precondition like any other.
//!
//! [`Expect`]: crate::store::Expect

use crate::domain::auth::{Demand, Level};
use crate::domain::derive::{DeviceKey, Handle};
use crate::domain::device::Device;
use crate::domain::error::Error;
use crate::domain::event::{Event, Kind};
use crate::domain::id::SessionId;
use crate::domain::json::JsonObject;
use crate::domain::renewal::Renewal;
use crate::domain::session::{Meta, Policy};
use crate::domain::subject::Subject;
use crate::domain::time::Millis;
use crate::store::{
    Activity, DeviceInfo, EntryKey, NewEntry, NoIndex, Record, SessionStore, Stored, SubjectIndex,
};

/// How many times a write is tried against concurrent writers before it answers `store_busy`.
pub const ATTEMPTS: usize = 3;

/// A new session's device info, and the key of its subject's that it is sealed under (see
/// [`DeviceKey`]) before it is listed: the service seals it, the edge never does. Its label
/// travels in the clear in the `created` event (the one place a label travels: see
/// [`crate::domain::event`]).
#[derive(Clone, Copy, Debug)]
pub struct NewDevice<'a> {
    pub device: &'a Device,
    pub key: &'a DeviceKey,
}

/// What `POST /create` makes of a request: the parts of a new session, each its own.
#[derive(Clone, Copy, Debug)]
pub struct NewSession<'a> {
    /// Chosen by the worker, never by the client.
    pub id: SessionId,
    pub data: &'a JsonObject,
    /// Its own idle timeout (`?ttl=`), if it asked for one.
    pub ttl: Option<u64>,
    /// How its user authenticated (`Session-Auth-Level`).
    pub level: Level,
    /// Who it belongs to, fixed for its life.
    pub subject: Option<Subject>,
    /// Its device info; it needs a subject.
    pub device: Option<NewDevice<'a>>,
}

/// What a renewal answers: the successor's id (the same for a second renewal within the
/// window) and its lifecycle.
#[derive(Debug)]
pub struct Renewed {
    pub id: SessionId,
    pub meta: Meta,
}

/// What becomes of a session's old id when it moves to a new one.
#[derive(Clone, Copy)]
enum Leaving {
    /// Removed at once (`/rotate`).
    Removed,
    /// Retired, kept until the session's latest end (`/renew`).
    Retired,
    /// Retired, as by a renewal, by a device binding's registration or refresh: `renewed`
    /// events name what happened instead.
    Proven(Kind),
}

/// What a delete acts on (see [`Sessions::delete`]).
enum Deleting {
    Gone,
    Own(Option<Stored>),
    Successor(SessionId, Session),
}

/// A live session as read.
#[derive(Debug)]
pub struct Session {
    pub data: String,
    pub meta: Meta,
    /// Stored by the old worker, without metadata: its first write or touch gives it some.
    pub without_meta: bool,
}

pub struct Sessions<'s, S, I = NoIndex> {
    store: &'s S,
    policy: Policy,
    /// How long a renewed id keeps working, and what presenting it later does.
    renewal: Renewal,
    /// The subject index, and how many sessions a subject may have.
    index: Option<(&'s I, usize)>,
    /// What this request demands of the session's last authentication.
    demand: Demand,
    /// Whether the request proved possession of the session's device key (a refresh): then a
    /// bound id past its life is the one the proof moves, not reuse.
    proven: bool,
}

impl<'s, S: SessionStore> Sessions<'s, S> {
    pub fn new(store: &'s S, policy: Policy) -> Self {
        Self {
            store,
            policy,
            renewal: Renewal::default(),
            index: None,
            demand: Demand::default(),
            proven: false,
        }
    }

    /// The same operations, with this deployment's renewal rules.
    pub fn renewing(self, renewal: Renewal) -> Self {
        Self { renewal, ..self }
    }

    /// The same operations, keeping `index` of each subject's sessions, at most `max` each.
    pub fn indexed<J: SubjectIndex>(self, index: &'s J, max: usize) -> Sessions<'s, S, J> {
        Sessions {
            store: self.store,
            policy: self.policy,
            renewal: self.renewal,
            index: Some((index, max)),
            demand: self.demand,
            proven: self.proven,
        }
    }
}

// By hand: a derive would ask the store and the index to be `Copy`, not the references to them.
impl<S, I> Clone for Sessions<'_, S, I> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S, I> Copy for Sessions<'_, S, I> {}

impl<S, I> Sessions<'_, S, I> {
    /// The same operations, each refused with `403 reauthentication_required`, before anything
    /// is changed or renewed, unless the session's last authentication meets `demand`.
    pub fn demanding(self, demand: Demand) -> Self {
        Self { demand, ..self }
    }

    /// The same operations for a request that proved possession of the session's device key
    /// (a refresh): a bound id past its life is then the one the proof moves, not reuse.
    fn proven(self) -> Self {
        Self {
            proven: true,
            ..self
        }
    }
}

mod bind;

pub use bind::BoundSession;
mod end;
mod moves;
mod reach;
mod write;

#[cfg(test)]
mod tests;

impl<'s, S: SessionStore, I: SubjectIndex> Sessions<'s, S, I> {
    /// `record` of the session `id`, if it is live at `now` and meets what the request demands
    /// (the cut-off is [`Sessions::live_session`]'s, which calls this).
    pub(super) fn session(
        &self,
        id: &SessionId,
        record: Record,
        now: Millis,
    ) -> Result<Session, Error> {
        let meta = self.live(id, record.meta, now)?;
        self.demand.check(&meta.auth, now)?;
        Ok(Session {
            data: record.data,
            meta,
            without_meta: record.meta.is_none(),
        })
    }

    /// The metadata of a stored session that is still alive at `now`. A session met after its
    /// expiry is reported as expired, for a store that learns of expiry no other way (KV); one
    /// whose lifecycle the rules could not have made (see [`Meta::within_rules`]) is not one.
    fn live(&self, id: &SessionId, meta: Option<Meta>, now: Millis) -> Result<Meta, Error> {
        match meta {
            Some(meta) if !meta.within_rules(now, self.policy) => Err(Error::Unreadable(format!(
                "integrity: session {} has a lifecycle outside the rules",
                id.short()
            ))),
            Some(meta) if meta.is_alive(now) => Ok(meta),
            Some(meta) => {
                if let Some(event) = self.expired(id, &meta) {
                    self.store.observed(&event);
                }
                Err(Error::SessionNotFound)
            }
            None => Ok(Meta::legacy(now, self.policy)),
        }
    }

    /// The event of `kind` for the session `id`, when the store passes events on.
    pub(super) fn event(
        &self,
        kind: Kind,
        at: Millis,
        id: &SessionId,
        meta: &Meta,
        label: Option<&str>,
    ) -> Option<Event> {
        self.store.records_events().then(|| {
            let subject = meta.subject.as_ref();
            Event::new(kind, at, Handle::of(id), subject, label)
        })
    }

    /// The `expired` event of the session `id`, when the store passes events on.
    pub(super) fn expired(&self, id: &SessionId, meta: &Meta) -> Option<Event> {
        let event = || Event::expired(meta, self.policy, Handle::of(id));
        self.store.records_events().then(event)
    }

    /// Tells the subject's index of a write: that the session is listed (KV, where a write can
    /// bring back a session whose entry a revocation removed), and its lifecycle, where the
    /// index keeps one (strong mode), at the first write of each renewal interval. A failure
    /// fails nothing, the write being made: an index that missed a lifecycle asks the session
    /// itself once the one it knows has expired, and one that missed a relisting is told again
    /// at the next write.
    pub(super) async fn report(&self, id: &SessionId, previous: &Meta, meta: &Meta, now: Millis) {
        let (Some(subject), Some((index, _))) = (meta.subject, self.index) else {
            return;
        };
        let entry = NewEntry {
            key: EntryKey::of(*id, meta.created_at),
            until: meta.latest_end(self.policy),
            activity: Activity::of(meta),
            device: DeviceInfo::None,
        };
        let _ = index.relist(&subject, &entry, now).await;
        if meta.opens_interval(previous, self.policy) {
            let _ = index
                .report(&subject, &Handle::of(id), Activity::of(meta))
                .await;
        }
    }
}

pub(super) fn lost_races() -> Error {
    Error::StoreBusy(format!(
        "{ATTEMPTS} writes in a row lost a race to other writers"
    ))
}
