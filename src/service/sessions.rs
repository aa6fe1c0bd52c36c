//! The session operations behind the routes: read, check, decide what to write, write if nobody
//! wrote in between. Generic over [`SessionStore`], so every rule here runs natively against the
//! in-memory stores, and the same code runs against KV in the worker and SQLite in a Durable
//! Object.
//!
//! Every write names the version it read ([`Expect`]). A backend with compare-and-swap refuses a
//! write that lost a race; the operation then reads again and recomputes (a merge merges into
//! what the other writer left), up to [`ATTEMPTS`] times, unless `If-Match` pinned the version,
//! in which case the lost race is a failed precondition like any other.

use std::borrow::Cow;

use crate::domain::auth::{Auth, Demand, Level};
use crate::domain::derive::Handle;
use crate::domain::error::Error;
use crate::domain::event::{Event, Kind, Revocation};
use crate::domain::id::SessionId;
use crate::domain::json::JsonObject;
use crate::domain::merge::{merge, Merge};
use crate::domain::precondition::IfMatch;
use crate::domain::renewal::{Presented, Renewal, Retirement};
use crate::domain::session::{Meta, Policy};
use crate::domain::subject::Subject;
use crate::domain::time::Millis;
use crate::service::subjects::Subjects;
use crate::store::{
    Activity, DeviceInfo, EntryKey, Expect, NewEntry, NoIndex, Outcome, Record, SessionStore,
    Stored, SubjectIndex,
};

/// How many times a write is tried against concurrent writers before it answers `store_busy`.
pub const ATTEMPTS: usize = 3;

/// A new session's device info: sealed, for its index entry, and its label in the clear, for
/// the `created` event (the one place a label travels: see [`crate::domain::event`]).
#[derive(Clone, Copy, Debug)]
pub struct NewDevice<'a> {
    pub sealed: &'a [u8],
    pub label: Option<&'a str>,
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
}

impl<'s, S: SessionStore> Sessions<'s, S> {
    pub fn new(store: &'s S, policy: Policy) -> Self {
        Self {
            store,
            policy,
            renewal: Renewal::default(),
            index: None,
            demand: Demand::default(),
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
}

impl<'s, S: SessionStore, I: SubjectIndex> Sessions<'s, S, I> {
    /// [`Sessions::create_at`] at level 1: what the tests create.
    #[cfg(test)]
    pub async fn create(
        &self,
        id: SessionId,
        data: &JsonObject,
        ttl: Option<u64>,
        subject: Option<Subject>,
        device: Option<NewDevice<'_>>,
        now: Millis,
    ) -> Result<Meta, Error> {
        self.create_at(id, data, ttl, Level::ONE, subject, device, now)
            .await
    }

    /// Stores `data` under a new id (chosen by the caller of this function, never by the
    /// client), for a user who authenticated at `level` (`Session-Auth-Level`). With a subject,
    /// the session is listed under it first (an entry whose session failed to be written is
    /// cleaned up when met; a session missing from its index could not be revoked), after
    /// making room when the subject is at its bound.
    ///
    /// `device` is the device info sealed under the subject's device key, listed with the
    /// session; it needs a subject.
    #[allow(
        clippy::too_many_arguments,
        reason = "the parts of POST /create, each its own"
    )]
    pub async fn create_at(
        &self,
        id: SessionId,
        data: &JsonObject,
        ttl: Option<u64>,
        level: Level,
        subject: Option<Subject>,
        device: Option<NewDevice<'_>>,
        now: Millis,
    ) -> Result<Meta, Error> {
        let meta = Meta {
            subject,
            ..Meta::authenticated(now, ttl, level, self.policy)
        };
        if let Some(subject) = &subject {
            let (index, max) = self.index.ok_or_else(|| {
                Error::Internal("a session with a subject, and no index to list it in".into())
            })?;
            Subjects::new(index, self.store, self.policy)
                .make_room(subject, max, now)
                .await?;
            let entry = NewEntry {
                key: EntryKey::of(id, now),
                until: meta.latest_end(self.policy),
                activity: Activity::of(&meta),
                device: device.map_or(DeviceInfo::None, |device| DeviceInfo::Sealed(device.sealed)),
            };
            index.add(subject, &entry, now).await?;
        } else if device.is_some() {
            return Err(Error::Internal("device info without a subject".into()));
        }
        let bytes = data.as_str().as_bytes();
        let label = device.and_then(|device| device.label);
        let event = self.event(Kind::Created, now, &id, &meta, label);
        let saved = self
            .store
            .save(&id, bytes, &meta, Expect::Absent, event.as_ref());
        match saved.await? {
            Outcome::Written => Ok(meta),
            Outcome::Conflict => Err(Error::Internal(format!(
                "new session id {} is taken",
                id.short()
            ))),
        }
    }

    /// The live session `id` reaches, or `SessionNotFound`. Never writes, but for an id
    /// presented after its renewal's window (see [`Sessions::reach`]).
    pub async fn get(&self, id: &SessionId, now: Millis) -> Result<Session, Error> {
        self.reach(id, now).await.map(|(_, session)| session)
    }

    /// The session `id` names, and the id it is stored under: its own, or, for an id renewed
    /// away and presented within its grace window, the successor's, which the caller acts on
    /// and names to nobody. Presented later, or more than one renewal old, the id is reuse:
    /// with detection on, the session it was renewed into ends (and its successors), and the
    /// answer is `404` with one log line naming the ended session's handle.
    async fn reach(&self, id: &SessionId, now: Millis) -> Result<(SessionId, Session), Error> {
        let stored = self.store.load(id).await?;
        self.reach_from(id, stored, now).await
    }

    /// [`Sessions::reach`], from what is `stored` under `id`, already read.
    async fn reach_from(
        &self,
        id: &SessionId,
        stored: Option<Stored>,
        now: Millis,
    ) -> Result<(SessionId, Session), Error> {
        let (retirement, retired_meta) = match stored {
            None => return Err(Error::SessionNotFound),
            Some(Stored::Session(record)) => {
                self.end_if_cut_off(id, &record, now).await?;
                return Ok((*id, self.session(id, record, now)?));
            }
            Some(Stored::Retired(retirement, meta)) => (retirement, meta),
        };
        if self.policy.cut_off(Some(retired_meta.created_at)) {
            return Err(Error::SessionNotFound);
        }
        if !retired_meta.within_rules(now, self.policy) || now >= retired_meta.expires_at {
            // Kept no longer than the session could live: whatever it names has ended.
            return Err(Error::SessionNotFound);
        }
        let successor = retirement.successor;
        let stored = self.store.load(&successor).await?;
        let twice = matches!(stored, Some(Stored::Retired(..)));
        match (retirement.presented(now, twice), stored) {
            (Presented::Grace(_), Some(Stored::Session(record))) => {
                self.end_if_cut_off(&successor, &record, now).await?;
                Ok((successor, self.session(&successor, record, now)?))
            }
            (Presented::Grace(_), _) => Err(Error::SessionNotFound),
            (Presented::Reuse(_), _) if !self.renewal.reuse_detection => {
                Err(Error::SessionNotFound)
            }
            (Presented::Reuse(_), stored) => Err(self.end_renewed(successor, stored, now).await),
        }
    }

    /// Ends the session `id` when `SESSIONS_NOT_BEFORE` does, on both backends alike: it is
    /// deleted where it was met, with a `revoked`/`global` event dated at the cut-off (strong
    /// mode commits it in the object; KV records it once deleted). A session the old worker
    /// stored, created at a time unknown, is cut off too, with no event (it has no subject).
    /// So unsetting the variable, or a rollback, brings back only the sessions nobody presented
    /// meanwhile: it must stay set for one `SESSION_MAX_LIFETIME_SECONDS`.
    /// `SessionNotFound` when it was cut off.
    async fn end_if_cut_off(
        &self,
        id: &SessionId,
        record: &Record,
        now: Millis,
    ) -> Result<(), Error> {
        if !self.policy.cut_off(record.meta.map(|meta| meta.created_at)) {
            return Ok(());
        }
        // Dated at the cut-off, when it ended: a KV location that meets it again from its cache
        // tells the same fact, with the same `eventId`, for consumers to drop.
        let ended = self.policy.not_before.unwrap_or(now);
        let global = Kind::Revoked(Revocation::Global);
        let event = record
            .meta
            .and_then(|meta| self.event(global, ended, id, &meta, None));
        let _ = self.store.remove(id, Expect::Any, event.as_ref()).await?;
        Err(Error::SessionNotFound)
    }

    /// `record` of the session `id`, if it is live at `now`.
    fn session(&self, id: &SessionId, record: Record, now: Millis) -> Result<Session, Error> {
        if self.policy.cut_off(record.meta.map(|meta| meta.created_at)) {
            return Err(Error::SessionNotFound);
        }
        let meta = self.live(id, record.meta, now)?;
        self.demand.check(&meta.auth, now)?;
        Ok(Session {
            data: record.data,
            meta,
            without_meta: record.meta.is_none(),
        })
    }

    /// Ends the session an id renewed away was renewed into (`successor`, as `stored`), or
    /// the session at the end of its renewals, however many there were, for reuse; the error
    /// that answers the reuse, the same at every depth.
    ///
    /// Each link is one read. A chain this worker made cannot loop (every successor is a
    /// fresh id, and a retired id is never renewed again); one a store writer made up could,
    /// and a link met twice ends the walk as the end of the chain would.
    async fn end_renewed(
        &self,
        mut successor: SessionId,
        mut stored: Option<Stored>,
        now: Millis,
    ) -> Error {
        let mut followed = vec![successor];
        loop {
            match stored {
                // Ended already (by an earlier reuse, a delete, a revocation): nothing to do.
                None => return Error::SessionNotFound,
                Some(Stored::Retired(retirement, _)) => {
                    successor = retirement.successor;
                    if followed.contains(&successor) {
                        return Error::SessionNotFound;
                    }
                    followed.push(successor);
                    stored = match self.store.load(&successor).await {
                        Ok(stored) => stored,
                        Err(err) => return err,
                    };
                }
                Some(Stored::Session(record)) => {
                    return self.end_reused(successor, record, now).await;
                }
            }
        }
    }

    /// Ends the session `id` (stored as `record`) at the end of a renewed id's chain.
    async fn end_reused(&self, id: SessionId, record: Record, now: Millis) -> Error {
        let handle = Handle::of(&id);
        let meta = record
            .meta
            .unwrap_or_else(|| Meta::legacy(now, self.policy));
        let reuse = Kind::Revoked(Revocation::Reuse);
        let event = self.event(reuse, now, &id, &meta, None);
        let removed = self.store.remove(&id, Expect::Any, event.as_ref());
        if let Err(err) = removed.await {
            return err.with_cause(format!(
                "reuse: a renewed id was presented after its window, and session {handle} could \
                 not be ended"
            ));
        }
        if let (Some(subject), Some((index, _))) = (meta.subject, self.index) {
            // Left behind on failure, the entry is cleaned up when met.
            let entry = EntryKey::of(id, meta.created_at);
            let _ = index.remove(&subject, &entry).await;
        }
        Error::Reused(format!(
            "reuse: a renewed id was presented after its window; session {handle} ended"
        ))
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
    fn event(
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
    fn expired(&self, id: &SessionId, meta: &Meta) -> Option<Event> {
        let event = || Event::expired(meta, self.policy, Handle::of(id));
        self.store.records_events().then(event)
    }

    /// Replaces the data of an existing session.
    pub async fn replace(
        &self,
        id: &SessionId,
        data: &JsonObject,
        if_match: Option<&IfMatch>,
        now: Millis,
    ) -> Result<Meta, Error> {
        let bytes = data.as_str().as_bytes();
        let (_, meta) = self
            .write(id, if_match, now, |_| Ok(Cow::Borrowed(bytes)))
            .await?;
        Ok(meta)
    }

    /// Merges `patch` into an existing session and returns the merged data. Stored data that is
    /// not a JSON object (the old worker stored anything) is `SessionNotMergeable`, and stays.
    pub async fn merge(
        &self,
        id: &SessionId,
        patch: &JsonObject,
        how: Merge,
        if_match: Option<&IfMatch>,
        now: Millis,
    ) -> Result<(Vec<u8>, Meta), Error> {
        let (merged, meta) = self
            .write(id, if_match, now, |current| {
                merge(&current.data, patch, how)
                    .map(Cow::Owned)
                    .map_err(|_| Error::SessionNotMergeable)
            })
            .await?;
        Ok((merged.into_owned(), meta))
    }

    /// The write path of `PUT` and `PATCH`: read, check `If-Match`, compute the new data from the
    /// current session, and store it if the session is still at the version read.
    async fn write<'d>(
        &self,
        id: &SessionId,
        if_match: Option<&IfMatch>,
        now: Millis,
        change: impl Fn(&Session) -> Result<Cow<'d, [u8]>, Error>,
    ) -> Result<(Cow<'d, [u8]>, Meta), Error> {
        for _ in 0..ATTEMPTS {
            let (target, current) = self.reach(id, now).await?;
            let id = &target;
            if if_match.is_some_and(|condition| !condition.allows(current.meta.version)) {
                return Err(Error::PreconditionFailed);
            }
            let data = change(&current)?;
            if data.len() > self.policy.max_bytes {
                return Err(Error::SessionTooLarge {
                    limit: self.policy.max_bytes,
                });
            }
            let before = current.meta;
            // The stored data is not needed past here: a large session is not held once more
            // while the new one is sealed.
            drop(current);
            let meta = before.written(now, self.policy);
            let expect = Expect::Version(before.version);
            match self.store.save(id, &data, &meta, expect, None).await? {
                Outcome::Written => {
                    self.report(id, &before, &meta, now).await;
                    return Ok((data, meta));
                }
                Outcome::Conflict if if_match.is_some() => return Err(Error::PreconditionFailed),
                Outcome::Conflict => {}
            }
        }
        Err(lost_races())
    }

    /// Renews the expiry; data and version stay as they are. A touch within the renewal
    /// interval (see [`Meta::renewal_due`]) writes nothing and answers the expiry in force.
    pub async fn touch(&self, id: &SessionId, now: Millis) -> Result<Meta, Error> {
        for _ in 0..ATTEMPTS {
            let (target, current) = self.reach(id, now).await?;
            let id = &target;
            if !current.without_meta && !current.meta.renewal_due(now, self.policy) {
                return Ok(current.meta);
            }
            let meta = current.meta.touched(now, self.policy);
            let expect = Expect::Version(current.meta.version);
            let data = current.data.as_bytes();
            // A conflict means a write landed in between; it renewed the session, and the next
            // round reads its expiry.
            if self.store.save(id, data, &meta, expect, None).await? == Outcome::Written {
                self.report(id, &current.meta, &meta, now).await;
                return Ok(meta);
            }
        }
        Err(lost_races())
    }

    /// Records a fresh authentication at `level` (`POST /reauth/:id`), and moves the session to
    /// `new_id` as [`Sessions::rotate`] does: a privilege changed (ASVS 7.2.4), so the old id
    /// ends at once. What the request demands is not asked: this is how a session meets it.
    pub async fn reauthenticate(
        &self,
        id: SessionId,
        new_id: SessionId,
        level: Level,
        now: Millis,
    ) -> Result<Meta, Error> {
        let fresh = self.demanding(Demand::default());
        let (target, mut current) = fresh.reach(&id, now).await?;
        current.meta.auth = Auth { at: now, level };
        fresh
            .move_to(&target, new_id, &current, Leaving::Removed, now)
            .await
    }

    /// Moves the session to `new_id` and removes the old one. `createdAt` is kept, so rotating
    /// never extends the absolute lifetime.
    ///
    /// If the old id cannot be removed (a store failure, or a write that landed on it meanwhile),
    /// the copy under the new id is removed again and the rotation fails as a whole: the caller
    /// keeps the old id, with its data, and may retry. The new id was never disclosed, so even if
    /// that removal fails too, nobody can use the copy; it expires with the session, and the
    /// failure is logged.
    pub async fn rotate(
        &self,
        id: &SessionId,
        new_id: SessionId,
        now: Millis,
    ) -> Result<Meta, Error> {
        let (target, current) = self.reach(id, now).await?;
        self.move_to(&target, new_id, &current, Leaving::Removed, now)
            .await
    }

    /// Writes the session `current` of `id` under `new_id`, lists it in its place (with the same
    /// device), then ends or retires it under `id`; undone if any of that fails (see
    /// [`Sessions::rotate`]).
    ///
    /// The order is what makes a move racing a revocation exact: the new session exists before
    /// it is listed, so a revocation that lists it ends it; and it is listed `Like` the entry it
    /// moves from, which the index refuses once a revocation has taken that entry
    /// ([`SubjectIndex::take`]): the move is undone and answered `404`, and the revocation ends
    /// the old id once this object is free (strong mode), or has already (KV).
    async fn move_to(
        &self,
        id: &SessionId,
        new_id: SessionId,
        current: &Session,
        leaving: Leaving,
        now: Millis,
    ) -> Result<Meta, Error> {
        let meta = current.meta.written(now, self.policy);
        let data = current.data.as_bytes();
        let saved = self
            .store
            .save(&new_id, data, &meta, Expect::Absent, None)
            .await?;
        if saved == Outcome::Conflict {
            return Err(Error::Internal(format!(
                "new session id {} is taken",
                new_id.short()
            )));
        }
        let what = match leaving {
            Leaving::Removed => "rotation",
            Leaving::Retired => "renewal",
        };
        let index = self.index.map(|(index, _)| index);
        let listed = meta.subject.as_ref().zip(index);
        let old_entry = EntryKey::of(*id, meta.created_at);
        if let Some((subject, index)) = listed {
            let entry = NewEntry {
                key: EntryKey::of(new_id, meta.created_at),
                until: meta.latest_end(self.policy),
                activity: Activity::of(&meta),
                device: DeviceInfo::Like(old_entry),
            };
            if let Err(err) = index.add(subject, &entry, now).await {
                return Err(self.undo(what, id, &new_id, err).await);
            }
        }
        let expect = Expect::Version(current.meta.version);
        let from = Handle::of(id);
        let left = match leaving {
            Leaving::Removed => {
                let event = self.event(Kind::Rotated { from }, now, &new_id, &meta, None);
                self.store.remove(id, expect, event.as_ref()).await
            }
            Leaving::Retired => {
                let retirement = Retirement::new(new_id, now, self.renewal);
                // Kept until the session's latest end: whenever the old id shows up, it is known.
                let retired = Meta {
                    updated_at: now,
                    expires_at: meta.latest_end(self.policy),
                    version: current.meta.version.saturating_add(1),
                    ..current.meta
                };
                let event = self.event(Kind::Renewed { from }, now, &new_id, &meta, None);
                let retire = self
                    .store
                    .retire(id, &retirement, &retired, expect, event.as_ref());
                retire.await
            }
        };
        let failure = match left {
            Ok(Outcome::Written) => {
                if let Some((subject, index)) = listed {
                    // Left behind on failure, the old entry is cleaned up when met.
                    let _ = index.remove(subject, &old_entry).await;
                }
                return Ok(meta);
            }
            Ok(Outcome::Conflict) => lost_races(),
            Err(err) => err,
        };
        if let Some((subject, index)) = listed {
            // Left behind on failure, the new entry is cleaned up when met: its session is gone.
            let _ = index
                .remove(subject, &EntryKey::of(new_id, meta.created_at))
                .await;
        }
        Err(self.undo(what, id, &new_id, failure).await)
    }

    /// Removes the copy a failed move (`what`) of `id` wrote under `new_id`, and answers
    /// `failure`. The new id was never disclosed: should the removal fail too, nobody can use the
    /// copy; it expires with the session, and the failure is logged.
    async fn undo(&self, what: &str, id: &SessionId, new_id: &SessionId, failure: Error) -> Error {
        match self.store.remove(new_id, Expect::Any, None).await {
            Ok(_) => failure,
            Err(undo) => failure.with_cause(format!(
                "{what} of {} left an unused copy under {}: {}",
                id.short(),
                new_id.short(),
                undo.log_cause().unwrap_or_default()
            )),
        }
    }

    /// Deletes the session; a missing one is already deleted. With `If-Match`, the session must
    /// exist at a matching version: a missing one is `404`, as for the other conditional writes.
    ///
    /// The `deleted` event needs the session's subject, and only a session that was there has
    /// one: so with events on, a delete reads first (free in strong mode; one more read on KV).
    pub async fn delete(
        &self,
        id: &SessionId,
        if_match: Option<&IfMatch>,
        now: Millis,
    ) -> Result<(), Error> {
        let local = self.store.reads_are_local();
        let events = self.store.records_events();
        // Every delete reads first: an id renewed away deletes the session it reaches. The read
        // also gives `If-Match` its version and the event and the index their subject.
        let (id, stored) = match self.deleting(id, now).await? {
            Deleting::Gone => return Ok(()),
            Deleting::Own(stored) => (*id, stored),
            Deleting::Successor(target, session) => (
                target,
                Some(Stored::Session(Record {
                    data: session.data,
                    meta: Some(session.meta),
                })),
            ),
        };
        let id = &id;
        let (expect, known) = match (if_match, stored) {
            (Some(condition), stored) => {
                let record = stored
                    .and_then(Stored::session)
                    .ok_or(Error::SessionNotFound)?;
                let current = self.session(id, record, now)?;
                if !condition.allows(current.meta.version) {
                    return Err(Error::PreconditionFailed);
                }
                (Expect::Version(current.meta.version), Some(current.meta))
            }
            // Where reading is free (strong mode), the session's subject is known, and its
            // entry goes at once: an index that lists from its own rows must not list it any
            // more.
            (None, Some(Stored::Session(record))) if local => (Expect::Any, record.meta),
            // An expired session is reported as such by the read, and deleting it is no event.
            (None, Some(Stored::Session(record))) if events => {
                match self.session(id, record, now) {
                    Ok(current) => (Expect::Any, Some(current.meta)),
                    Err(Error::SessionNotFound) => (Expect::Any, None),
                    Err(err) => return Err(err),
                }
            }
            (None, _) => (Expect::Any, None),
        };
        // Strong mode's alarm may not have ended an expired session yet: its end is its expiry.
        let event = known.and_then(|meta| match meta.is_alive(now) {
            true => self.event(Kind::Deleted, now, id, &meta, None),
            false => self.expired(id, &meta),
        });
        match self.store.remove(id, expect, event.as_ref()).await? {
            Outcome::Written => {
                let listed = known
                    .filter(|_| local)
                    .and_then(|meta| meta.subject.map(|s| (s, meta)));
                if let (Some((subject, meta)), Some((index, _))) = (listed, self.index) {
                    // Left behind on failure, the entry is cleaned up when met.
                    let member = EntryKey::of(*id, meta.created_at);
                    let _ = index.remove(&subject, &member).await;
                }
                Ok(())
            }
            Outcome::Conflict => Err(Error::PreconditionFailed),
        }
    }

    /// What a delete of `id` deletes: the session stored under it (as read: `None` when
    /// nothing is, or what is there does not open, which the delete removes all the same), or
    /// the one an id renewed away reaches within its window; or nothing, for an id renewed away
    /// whose session has ended.
    async fn deleting(&self, id: &SessionId, now: Millis) -> Result<Deleting, Error> {
        match self.store.load(id).await {
            Ok(stored @ Some(Stored::Retired(..))) => {
                match self.reach_from(id, stored, now).await {
                    Ok((target, session)) => Ok(Deleting::Successor(target, session)),
                    Err(Error::SessionNotFound) => Ok(Deleting::Gone),
                    Err(err) => Err(err),
                }
            }
            Ok(stored) => Ok(Deleting::Own(stored)),
            Err(Error::Unreadable(_)) => Ok(Deleting::Own(None)),
            Err(err) => Err(err),
        }
    }

    /// A new id for the session `id` reaches, with the same privilege: the session moves to
    /// `new_id` as in [`Sessions::rotate`], and `id` is retired, not removed. For the grace
    /// window it still reaches the session (see [`Sessions::reach`]); after it, it is reuse.
    ///
    /// A second renewal of `id` within its window answers the same successor (two tabs that
    /// renew at once end up with one id), named in the answer: it is the renewal's own answer.
    /// The renewal carries no privilege, so a holder of `id` gains nothing it did not have.
    pub async fn renew(
        &self,
        id: &SessionId,
        new_id: SessionId,
        now: Millis,
    ) -> Result<Renewed, Error> {
        let current = match self.store.load(id).await? {
            Some(Stored::Session(record)) => self.session(id, record, now)?,
            // An id renewed away: within its window, the successor it reaches (the same for
            // every renewal of it); after it, reuse.
            stored => {
                let (successor, session) = self.reach_from(id, stored, now).await?;
                return Ok(Renewed {
                    id: successor,
                    meta: session.meta,
                });
            }
        };
        let new_id = self.store.successor(id, new_id);
        let meta = self
            .move_to(id, new_id, &current, Leaving::Retired, now)
            .await?;
        Ok(Renewed { id: new_id, meta })
    }

    /// Tells the subject's index of a write: that the session is listed (KV, where a write can
    /// bring back a session whose entry a revocation removed), and its lifecycle, where the
    /// index keeps one (strong mode), at the first write of each renewal interval. A failure
    /// fails nothing, the write being made: an index that missed a lifecycle asks the session
    /// itself once the one it knows has expired, and one that missed a relisting is told again
    /// at the next write.
    async fn report(&self, id: &SessionId, previous: &Meta, meta: &Meta, now: Millis) {
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

fn lost_races() -> Error {
    Error::StoreBusy(format!(
        "{ATTEMPTS} writes in a row lost a race to other writers"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::derive::StorageKey;
    use crate::domain::session::fixtures::{POLICY, S, T0};
    use crate::store::kv::KvSessions;
    use crate::store::memory::{run, sealed, Fault, MemoryKv, Op, SoftAead, StrictSessions};

    fn id(n: u8) -> SessionId {
        SessionId::from_random_bytes([n; 16])
    }

    /// Where session `n` is stored.
    fn key(n: u8) -> String {
        StorageKey::of(&id(n)).name()
    }

    /// Where the old worker and earlier versions stored it.
    fn bare(n: u8) -> String {
        id(n).to_string()
    }

    fn object(text: &str) -> JsonObject {
        JsonObject::from_bytes(text.as_bytes().to_vec()).unwrap()
    }

    fn kv() -> KvSessions<MemoryKv, SoftAead> {
        sealed(MemoryKv::default())
    }

    /// Store operations per call on Workers KV, the least each can do, as measured below on the
    /// counting in-memory store, each call with a store of its own (as each request has). The
    /// README quotes this table. The last rows are sessions stored before keys were hashed,
    /// with the legacy lookup on.
    const KV_OPERATIONS: &[(&str, u32)] = &[
        ("create", 1),
        ("get", 1),
        ("update", 2),
        ("add", 2),
        ("touch (renewing)", 2),
        ("touch (within the interval)", 1),
        ("delete", 2),
        ("delete with If-Match", 2),
        ("rotate", 3),
        ("renew", 3),
        ("get, renewed away, in its window", 2),
        ("get, missing", 2),
        ("get, legacy", 2),
        ("add, legacy (moves it)", 4),
        ("delete, legacy lookup off", 2),
    ];

    /// The sessions one request sees.
    type Request<'s> = Sessions<'s, KvSessions<&'s MemoryKv, SoftAead>>;

    /// The operations each call costs on KV, measured on the counting store.
    fn measured_kv_operations() -> Vec<(&'static str, u32)> {
        let kv = MemoryKv::default();
        let count = |name, call: &dyn Fn(&Request) -> Result<(), Error>| {
            kv.take_operations();
            let store = sealed(&kv);
            call(&Sessions::new(&store, POLICY)).unwrap();
            (name, kv.take_operations())
        };
        let body = object(r#"{"a":1}"#);
        let create = |n| {
            kv.uncounted(|| {
                run(Sessions::new(&sealed(&kv), POLICY).create(id(n), &body, None, None, None, T0))
            })
            .unwrap();
        };
        let table = vec![
            count("create", &|s| {
                run(s.create(id(1), &body, None, None, None, T0)).map(drop)
            }),
            count("get", &|s| run(s.get(&id(1), T0)).map(drop)),
            count("update", &|s| {
                run(s.replace(&id(1), &body, None, T0)).map(drop)
            }),
            count("add", &|s| {
                run(s.merge(&id(1), &body, Merge::Shallow, None, T0)).map(drop)
            }),
            count("touch (renewing)", &|s| {
                run(s.touch(&id(1), T0 + 60 * S)).map(drop)
            }),
            count("touch (within the interval)", &|s| {
                run(s.touch(&id(1), T0 + 61 * S)).map(drop)
            }),
            count("delete", &|s| run(s.delete(&id(1), None, T0))),
            {
                create(2);
                count("delete with If-Match", &|s| {
                    run(s.delete(&id(2), Some(&IfMatch::Any), T0))
                })
            },
            {
                create(3);
                count("rotate", &|s| run(s.rotate(&id(3), id(4), T0)).map(drop))
            },
            {
                create(6);
                count("renew", &|s| run(s.renew(&id(6), id(7), T0)).map(drop))
            },
            count("get, renewed away, in its window", &|s| {
                run(s.get(&id(6), T0)).map(drop)
            }),
            count("get, missing", &|s| match run(s.get(&id(9), T0)) {
                Err(Error::SessionNotFound) => Ok(()),
                other => other.map(drop),
            }),
            {
                kv.insert_legacy(&bare(5), "{}");
                count("get, legacy", &|s| run(s.get(&id(5), T0)).map(drop))
            },
            count("add, legacy (moves it)", &|s| {
                run(s.merge(&id(5), &body, Merge::Shallow, None, T0)).map(drop)
            }),
        ];
        create(6);
        kv.take_operations();
        let store = KvSessions::new(&kv, SoftAead, false);
        run(Sessions::new(&store, POLICY).delete(&id(6), None, T0)).unwrap();
        let off = ("delete, legacy lookup off", kv.take_operations());
        table.into_iter().chain([off]).collect()
    }

    #[test]
    fn kv_operations_per_call_are_the_documented_ones() {
        assert_eq!(measured_kv_operations(), KV_OPERATIONS);
    }

    #[test]
    fn a_token_id_works_and_is_never_looked_for_under_its_bare_id() {
        let kv = MemoryKv::default();
        let store = sealed(&kv);
        let sessions = Sessions::new(&store, POLICY);
        let token = SessionId::token_from_random_bytes([3; 32]);
        kv.take_operations();
        let missing = run(sessions.get(&token, T0));
        assert!(
            matches!(missing, Err(Error::SessionNotFound)),
            "{missing:?}"
        );
        assert_eq!(kv.take_operations(), 1, "the storage key only");
        run(sessions.create(token, &object(r#"{"a":1}"#), None, None, None, T0)).unwrap();
        assert_eq!(run(sessions.get(&token, T0)).unwrap().data, r#"{"a":1}"#);
        let successor = run(sessions.renew(&token, id(2), T0)).unwrap().id;
        assert!(successor.is_uuid(), "in the form proposed");
        assert_eq!(
            run(sessions.get(&token, T0 + S)).unwrap().data,
            r#"{"a":1}"#
        );
        kv.take_operations();
        run(sessions.delete(&successor, None, T0 + S)).unwrap();
        assert!(matches!(
            run(sessions.get(&token, T0 + S)),
            Err(Error::SessionNotFound)
        ));
    }

    #[test]
    fn create_then_get() {
        let store = kv();
        let sessions = Sessions::new(&store, POLICY);
        let meta = run(sessions.create(id(1), &object(r#"{"user":"ada"}"#), None, None, None, T0))
            .unwrap();
        assert_eq!(meta.version, 1);
        assert_eq!(store.kv.kv_ttl(&key(1)), Some(1800));
        let session = run(sessions.get(&id(1), T0 + S)).unwrap();
        assert_eq!(session.data, r#"{"user":"ada"}"#);
        assert_eq!(session.meta, meta, "a read does not renew");
    }

    #[test]
    fn an_expired_session_is_gone_before_the_store_drops_it() {
        let store = kv();
        let sessions = Sessions::new(&store, POLICY);
        run(sessions.create(id(1), &object("{}"), Some(2), None, None, T0)).unwrap();
        assert!(run(sessions.get(&id(1), T0 + 2 * S - 1)).is_ok());
        assert!(matches!(
            run(sessions.get(&id(1), T0 + 2 * S)),
            Err(Error::SessionNotFound)
        ));
        assert_eq!(
            store.kv.kv_ttl(&key(1)),
            Some(60),
            "KV keeps it at least 60 s"
        );
        assert!(matches!(
            run(sessions.replace(&id(1), &object("{}"), None, T0 + 3 * S)),
            Err(Error::SessionNotFound)
        ));
    }

    #[test]
    fn writes_renew_and_count_versions() {
        let store = kv();
        let sessions = Sessions::new(&store, POLICY);
        run(sessions.create(id(1), &object(r#"{"a":1}"#), None, None, None, T0)).unwrap();
        let meta = run(sessions.replace(&id(1), &object(r#"{"b":2}"#), None, T0 + 100 * S));
        let meta = meta.unwrap();
        assert_eq!((meta.version, meta.expires_at), (2, T0 + 1900 * S));
        let patch = object(r#"{"c":3}"#);
        let (merged, meta) =
            run(sessions.merge(&id(1), &patch, Merge::Shallow, None, T0 + 200 * S)).unwrap();
        assert_eq!(merged, br#"{"b":2,"c":3}"#);
        assert_eq!(meta.version, 3);
        assert_eq!(store.kv.plain(&id(1)).unwrap(), r#"{"b":2,"c":3}"#);
    }

    #[test]
    fn merge_patch_goes_deep() {
        let store = kv();
        let sessions = Sessions::new(&store, POLICY);
        run(sessions.create(
            id(1),
            &object(r#"{"p":{"a":1,"b":2}}"#),
            None,
            None,
            None,
            T0,
        ))
        .unwrap();
        let patch = object(r#"{"p":{"a":null,"c":3}}"#);
        let (merged, _) = run(sessions.merge(&id(1), &patch, Merge::MergePatch, None, T0)).unwrap();
        assert_eq!(merged, br#"{"p":{"b":2,"c":3}}"#);
    }

    #[test]
    fn a_merge_never_grows_a_session_past_the_limit() {
        let store = kv();
        let sessions = Sessions::new(&store, POLICY);
        run(sessions.create(id(1), &object("{}"), None, None, None, T0)).unwrap();
        let chunk = |n: usize| object(&format!(r#"{{"k{n}":"{}"}}"#, "x".repeat(20_000)));
        for n in 0..3 {
            run(sessions.merge(&id(1), &chunk(n), Merge::Shallow, None, T0)).unwrap();
        }
        let before = store.kv.plain(&id(1)).unwrap();
        store.kv.take_operations();
        let err = run(sessions.merge(&id(1), &chunk(3), Merge::Shallow, None, T0)).unwrap_err();
        assert!(
            matches!(err, Error::SessionTooLarge { limit: 65_536 }),
            "{err:?}"
        );
        assert_eq!(store.kv.take_operations(), 1, "read, nothing written");
        assert_eq!(store.kv.plain(&id(1)).unwrap(), before);
    }

    #[test]
    fn touch_renews_without_changing_data_or_version() {
        let store = kv();
        let sessions = Sessions::new(&store, POLICY);
        run(sessions.create(id(1), &object(r#"{"a":1}"#), None, None, None, T0)).unwrap();
        let meta = run(sessions.touch(&id(1), T0 + 1000 * S)).unwrap();
        assert_eq!((meta.version, meta.expires_at), (1, T0 + 2800 * S));
        assert_eq!(store.kv.plain(&id(1)).unwrap(), r#"{"a":1}"#);
    }

    #[test]
    fn a_touch_within_the_interval_writes_nothing() {
        let store = kv();
        let sessions = Sessions::new(&store, POLICY);
        let created = run(sessions.create(id(1), &object("{}"), None, None, None, T0)).unwrap();
        store.kv.take_operations();
        assert_eq!(run(sessions.touch(&id(1), T0 + 59 * S)).unwrap(), created);
        assert_eq!(store.kv.take_operations(), 1, "read only");
        let renewed = run(sessions.touch(&id(1), T0 + 60 * S)).unwrap();
        assert_eq!(renewed.expires_at, T0 + 1860 * S);
        assert_eq!(store.kv.take_operations(), 2);
    }

    #[test]
    fn a_touch_gives_a_legacy_entry_its_metadata() {
        let store = kv();
        let sessions = Sessions::new(&store, POLICY);
        store.kv.insert_legacy(&bare(1), "{}");
        run(sessions.touch(&id(1), T0)).unwrap();
        let meta = store.kv.meta(&key(1)).expect("written");
        assert_eq!((meta.version, meta.created_at), (0, T0));
    }

    #[test]
    fn rotation_moves_the_data_and_keeps_the_creation_time() {
        let store = kv();
        let sessions = Sessions::new(&store, POLICY);
        run(sessions.create(id(1), &object(r#"{"a":1}"#), Some(600), None, None, T0)).unwrap();
        let meta = run(sessions.rotate(&id(1), id(2), T0 + 10 * S)).unwrap();
        assert_eq!(meta.created_at, T0);
        assert_eq!(meta.ttl, Some(600));
        assert_eq!(store.kv.plain(&id(1)), None);
        let moved = run(sessions.get(&id(2), T0 + 10 * S)).unwrap();
        assert_eq!(moved.data, r#"{"a":1}"#);
        assert!(matches!(
            run(sessions.rotate(&id(1), id(3), T0 + 10 * S)),
            Err(Error::SessionNotFound)
        ));
    }

    #[test]
    fn unknown_ids_are_never_created_by_writes() {
        let store = kv();
        let sessions = Sessions::new(&store, POLICY);
        let body = object("{}");
        for result in [
            run(sessions.replace(&id(9), &body, None, T0)).map(drop),
            run(sessions.merge(&id(9), &body, Merge::Shallow, None, T0)).map(drop),
            run(sessions.touch(&id(9), T0)).map(drop),
        ] {
            assert!(matches!(result, Err(Error::SessionNotFound)));
        }
        assert!(store.kv.entries.borrow().is_empty());
    }

    #[test]
    fn delete_is_idempotent() {
        let store = kv();
        let sessions = Sessions::new(&store, POLICY);
        run(sessions.create(id(1), &object("{}"), None, None, None, T0)).unwrap();
        run(sessions.delete(&id(1), None, T0)).unwrap();
        run(sessions.delete(&id(1), None, T0)).unwrap();
        assert!(store.kv.entries.borrow().is_empty());
    }

    #[test]
    fn if_match_guards_every_write() {
        let store = kv();
        let sessions = Sessions::new(&store, POLICY);
        run(sessions.create(id(1), &object(r#"{"a":1}"#), None, None, None, T0)).unwrap();
        let stale = IfMatch::parse("\"7\"").unwrap();
        let current = IfMatch::parse("W/\"0\", \"1\"").unwrap();
        let body = object(r#"{"b":1}"#);
        assert!(matches!(
            run(sessions.replace(&id(1), &body, Some(&stale), T0)),
            Err(Error::PreconditionFailed)
        ));
        assert!(matches!(
            run(sessions.merge(&id(1), &body, Merge::Shallow, Some(&stale), T0)),
            Err(Error::PreconditionFailed)
        ));
        assert!(matches!(
            run(sessions.delete(&id(1), Some(&stale), T0)),
            Err(Error::PreconditionFailed)
        ));
        assert_eq!(
            store.kv.plain(&id(1)).unwrap(),
            r#"{"a":1}"#,
            "nothing written"
        );
        let meta = run(sessions.replace(&id(1), &body, Some(&current), T0)).unwrap();
        assert_eq!(meta.version, 2);
        run(sessions.delete(&id(1), Some(&IfMatch::Any), T0)).unwrap();
        assert!(matches!(
            run(sessions.delete(&id(1), Some(&IfMatch::Any), T0)),
            Err(Error::SessionNotFound)
        ));
    }

    #[test]
    fn legacy_entries_are_read_merged_replaced_and_deleted() {
        let store = kv();
        let sessions = Sessions::new(&store, POLICY);
        store.kv.insert_legacy(&bare(5), r#"{"userId":42}"#);
        let session = run(sessions.get(&id(5), T0)).unwrap();
        assert_eq!(session.data, r#"{"userId":42}"#);
        assert_eq!(session.meta.version, 0);
        let patch = object(r#"{"role":"admin"}"#);
        let (merged, meta) = run(sessions.merge(&id(5), &patch, Merge::Shallow, None, T0)).unwrap();
        assert_eq!(merged, br#"{"userId":42,"role":"admin"}"#);
        assert_eq!(
            (meta.version, meta.created_at),
            (1, T0),
            "metadata from the first write"
        );
        run(sessions.delete(&id(5), None, T0)).unwrap();
        assert!(store.kv.entries.borrow().is_empty());
    }

    #[test]
    fn stored_data_that_is_not_a_json_object_is_never_merged_away() {
        let store = kv();
        let sessions = Sessions::new(&store, POLICY);
        for (n, stored) in ["{not json", "[1,2]", "\"text\"", "{\"a\":1}x"]
            .iter()
            .enumerate()
        {
            let n = n as u8;
            store.kv.insert_legacy(&bare(n), stored);
            for how in [Merge::Shallow, Merge::MergePatch] {
                let result = run(sessions.merge(&id(n), &object(r#"{"a":1}"#), how, None, T0));
                assert!(
                    matches!(result, Err(Error::SessionNotMergeable)),
                    "{stored}"
                );
            }
            assert_eq!(store.kv.plain(&id(n)).as_deref(), Some(*stored), "kept");
        }
    }

    #[test]
    fn a_failed_write_leaves_the_previous_data_and_says_retry() {
        let store = kv();
        let sessions = Sessions::new(&store, POLICY);
        run(sessions.create(id(1), &object(r#"{"a":1}"#), None, None, None, T0)).unwrap();
        store.kv.fail_next(Op::Put, Fault::Busy);
        let err = run(sessions.merge(&id(1), &object(r#"{"b":2}"#), Merge::Shallow, None, T0));
        assert_eq!(err.unwrap_err().code(), "store_busy");
        store.kv.fail_next(Op::Put, Fault::Unavailable);
        let err = run(sessions.touch(&id(1), T0 + 100 * S)).unwrap_err();
        assert_eq!(err.code(), "store_unavailable");
        store.kv.fail_next(Op::Get, Fault::Unavailable);
        let err = run(sessions.get(&id(1), T0)).unwrap_err();
        assert_eq!(err.code(), "store_unavailable");
        let session = run(sessions.get(&id(1), T0)).unwrap();
        assert_eq!(
            (session.data.as_str(), session.meta.version),
            (r#"{"a":1}"#, 1)
        );
    }

    #[test]
    fn a_rotation_whose_old_id_cannot_be_removed_is_undone() {
        let store = kv();
        let sessions = Sessions::new(&store, POLICY);
        run(sessions.create(id(1), &object(r#"{"a":1}"#), None, None, None, T0)).unwrap();
        store.kv.fail_next(Op::Delete, Fault::Busy);
        let err = run(sessions.rotate(&id(1), id(2), T0 + S)).unwrap_err();
        assert_eq!(err.code(), "store_busy");
        assert_eq!(
            store.kv.plain(&id(1)).as_deref(),
            Some(r#"{"a":1}"#),
            "old id kept"
        );
        assert_eq!(store.kv.plain(&id(2)), None, "new copy removed");
    }

    #[test]
    fn a_rotation_that_cannot_be_undone_either_is_logged() {
        let store = kv();
        let sessions = Sessions::new(&store, POLICY);
        run(sessions.create(id(1), &object(r#"{"a":1}"#), None, None, None, T0)).unwrap();
        store.kv.fail_next(Op::Delete, Fault::Unavailable);
        store.kv.fail_next(Op::Delete, Fault::Unavailable);
        let err = run(sessions.rotate(&id(1), id(2), T0 + S)).unwrap_err();
        assert_eq!(err.code(), "store_unavailable");
        let cause = err.log_cause().unwrap();
        assert!(
            cause.contains("unused copy") && cause.contains(&id(2).short()),
            "{cause}"
        );
        assert!(!cause.contains(&key(2)), "never a whole id: {cause}");
        assert_eq!(
            store.kv.plain(&id(1)).as_deref(),
            Some(r#"{"a":1}"#),
            "old id kept"
        );
    }

    #[test]
    fn a_lost_race_is_merged_again_into_what_the_other_writer_left() {
        let store = StrictSessions::default();
        let sessions = Sessions::new(&store, POLICY);
        run(sessions.create(id(1), &object(r#"{"a":1}"#), None, None, None, T0)).unwrap();
        store.interleave(id(1), r#"{"a":1,"other":true}"#);
        let (merged, meta) =
            run(sessions.merge(&id(1), &object(r#"{"b":2}"#), Merge::Shallow, None, T0)).unwrap();
        assert_eq!(merged, br#"{"a":1,"other":true,"b":2}"#, "both writes kept");
        assert_eq!(meta.version, 3, "one version per acknowledged write");
    }

    #[test]
    fn with_if_match_a_lost_race_is_a_failed_precondition() {
        let store = StrictSessions::default();
        let sessions = Sessions::new(&store, POLICY);
        run(sessions.create(id(1), &object(r#"{"a":1}"#), None, None, None, T0)).unwrap();
        store.interleave(id(1), r#"{"other":true}"#);
        let result = run(sessions.replace(
            &id(1),
            &object("{}"),
            Some(&IfMatch::parse("\"1\"").unwrap()),
            T0,
        ));
        assert!(matches!(result, Err(Error::PreconditionFailed)));
        assert_eq!(store.kv().plain(&id(1)).unwrap(), r#"{"other":true}"#);
    }

    #[test]
    fn endless_races_end_in_store_busy() {
        let store = StrictSessions::default();
        let sessions = Sessions::new(&store, POLICY);
        run(sessions.create(id(1), &object("{}"), None, None, None, T0)).unwrap();
        for n in 0..ATTEMPTS {
            store.interleave(id(1), &format!(r#"{{"n":{n}}}"#));
        }
        let err = run(sessions.merge(&id(1), &object(r#"{"b":2}"#), Merge::Shallow, None, T0));
        assert_eq!(err.unwrap_err().code(), "store_busy");
    }

    #[test]
    fn a_touch_never_undoes_a_concurrent_write() {
        let store = StrictSessions::default();
        let sessions = Sessions::new(&store, POLICY);
        run(sessions.create(id(1), &object(r#"{"a":1}"#), None, None, None, T0)).unwrap();
        store.interleave(id(1), r#"{"a":2}"#);
        run(sessions.touch(&id(1), T0 + 100 * S)).unwrap();
        assert_eq!(store.kv().plain(&id(1)).unwrap(), r#"{"a":2}"#);
    }

    #[test]
    fn a_rotation_racing_a_write_is_undone_and_the_write_kept() {
        let store = StrictSessions::default();
        let sessions = Sessions::new(&store, POLICY);
        run(sessions.create(id(1), &object(r#"{"a":1}"#), None, None, None, T0)).unwrap();
        store.interleave(id(2), "{}");
        store.interleave(id(1), r#"{"a":2}"#);
        let err = run(sessions.rotate(&id(1), id(2), T0)).unwrap_err();
        assert_eq!(err.code(), "store_busy");
        assert_eq!(
            store.kv().plain(&id(1)).unwrap(),
            r#"{"a":2}"#,
            "the write survives"
        );
        assert_eq!(store.kv().plain(&id(2)), None);
    }
}
