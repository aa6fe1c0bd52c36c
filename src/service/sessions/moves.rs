//! A session's new id: rotation and reauthentication end the old one at once, renewal retires it
//! with a grace window; one move, written first under the new id, then listed, then left.

use crate::domain::auth::{Auth, Demand, Level};
use crate::domain::binding::Binding;
use crate::domain::derive::Handle;
use crate::domain::error::Error;
use crate::domain::event::Kind;
use crate::domain::id::SessionId;
use crate::domain::renewal::{Renewal, Retirement};
use crate::domain::session::Meta;
use crate::domain::time::Millis;
use crate::store::{
    Activity, DeviceInfo, EntryKey, Expect, NewEntry, Outcome, SessionStore, Stored, SubjectIndex,
};

use super::{lost_races, Leaving, Renewed, Session, Sessions};

impl<'s, S: SessionStore, I: SubjectIndex> Sessions<'s, S, I> {
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
            Some(Stored::Session(record)) => self.live_session(id, record, now).await?,
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
        if matches!(current.meta.binding, Some(Binding::Bound { .. })) {
            return Err(Error::ProofRequired);
        }
        let new_id = self.store.successor(id, new_id);
        let meta = self
            .move_to(id, new_id, &current, Leaving::Retired, now)
            .await?;
        Ok(Renewed { id: new_id, meta })
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
    pub(super) async fn move_to(
        &self,
        id: &SessionId,
        new_id: SessionId,
        current: &Session,
        leaving: Leaving,
        now: Millis,
    ) -> Result<Meta, Error> {
        let mut meta = current.meta.written(now, self.policy);
        if let Some(Binding::Bound { alg, key, .. }) = meta.binding {
            // A bound session's new id lives its own `BOUND_SESSION_ID_SECONDS`.
            meta.binding = Some(Binding::Bound {
                alg,
                key,
                since: now,
            });
        }
        let data = current.data.as_bytes();
        let saved = self
            .store
            .save(&new_id, data.into(), &meta, Expect::Absent, None)
            .await?;
        if saved == Outcome::Conflict {
            return Err(Error::Internal(format!(
                "new session id {} is taken",
                new_id.short()
            )));
        }
        let what = match leaving {
            Leaving::Removed => "rotation",
            Leaving::Retired | Leaving::Proven(_) => "renewal",
        };
        let index = self.index.map(|(index, _)| index);
        let listed = meta.subject.as_ref().zip(index);
        let old_entry = EntryKey::of(*id, meta.created_at);
        let new_entry = EntryKey::of(new_id, meta.created_at);
        if let Some((subject, index)) = listed {
            let entry = NewEntry {
                key: new_entry,
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
        // A bound session's old id is retired even by a rotation, with no window: its binding
        // pointer may still name it, and a refresh follows it to the session (see `bind.rs`).
        let bound = matches!(current.meta.binding, Some(Binding::Bound { .. }));
        let (kind, renewal) = match leaving {
            Leaving::Removed => (Kind::Rotated { from }, None),
            Leaving::Retired => (Kind::Renewed { from }, Some(self.renewal)),
            Leaving::Proven(kind) => (kind, Some(self.renewal)),
        };
        let renewal = renewal.or(bound.then_some(Renewal {
            grace_ms: 0,
            ..self.renewal
        }));
        let left = match renewal {
            None => {
                let event = self.event(kind, now, &new_id, &meta, None);
                self.store.remove(id, expect, event.as_ref()).await
            }
            Some(renewal) => {
                let retirement = Retirement::new(new_id, now, renewal);
                // Kept until the session's latest end: whenever the old id shows up, it is known.
                let retired = Meta {
                    updated_at: now,
                    expires_at: meta.latest_end(self.policy),
                    version: current.meta.version.saturating_add(1),
                    ..current.meta
                };
                let event = self.event(kind, now, &new_id, &meta, None);
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
            let _ = index.remove(subject, &new_entry).await;
        }
        Err(self.undo(what, id, &new_id, failure).await)
    }

    /// Removes the copy a failed move (`what`) of `id` wrote under `new_id`, and answers
    /// `failure`. The new id was never disclosed: should the removal fail too, nobody can use the
    /// copy; it expires with the session, and the failure is logged.
    pub(super) async fn undo(
        &self,
        what: &str,
        id: &SessionId,
        new_id: &SessionId,
        failure: Error,
    ) -> Error {
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
}
