//! Reading an id to its live session: its own, or, for an id renewed away, the successor's
//! within the grace window; after it, reuse, which ends the session at the end of the chain.

use crate::domain::binding::Binding;
use crate::domain::derive::Handle;
use crate::domain::error::Error;
use crate::domain::event::{Kind, Revocation};
use crate::domain::id::SessionId;
use crate::domain::renewal::Presented;
use crate::domain::session::Meta;
use crate::domain::time::Millis;
use crate::store::{EntryKey, Expect, Record, SessionStore, Stored, SubjectIndex};

use super::{Session, Sessions};

impl<'s, S: SessionStore, I: SubjectIndex> Sessions<'s, S, I> {
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
    pub(super) async fn reach(
        &self,
        id: &SessionId,
        now: Millis,
    ) -> Result<(SessionId, Session), Error> {
        let stored = self.store.load(id).await?;
        self.reach_from(id, stored, now).await
    }

    /// [`Sessions::reach`], from what is `stored` under `id`, already read.
    pub(super) async fn reach_from(
        &self,
        id: &SessionId,
        stored: Option<Stored>,
        now: Millis,
    ) -> Result<(SessionId, Session), Error> {
        let (retirement, retired_meta) = match stored {
            None => return Err(Error::SessionNotFound),
            Some(Stored::Session(record)) => {
                return Ok((*id, self.live_session(id, record, now).await?));
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
                let session = self.live_session(&successor, record, now).await?;
                Ok((successor, session))
            }
            (Presented::Grace(_), _) => Err(Error::SessionNotFound),
            (Presented::Reuse(_), _) if !self.renewal.reuse_detection => {
                Err(Error::SessionNotFound)
            }
            (Presented::Reuse(_), stored) => Err(self.end_renewed(successor, stored, now).await),
        }
    }

    /// `record` of the session `id`, if it is live at `now` and meets what the request demands
    /// ([`Sessions::session`]), and was not ended by `SESSIONS_NOT_BEFORE`: one the cut-off
    /// ended is deleted where it was met, on both backends alike, with a `revoked`/`global`
    /// event dated at the cut-off (strong mode commits it in the object; KV records it once
    /// deleted), and is `SessionNotFound`. A session the old worker stored, created at a time
    /// unknown, is cut off too, with no event (it has no subject). So unsetting the variable,
    /// or a rollback, brings back only the sessions nobody presented meanwhile: it must stay set
    /// for one `SESSION_MAX_LIFETIME_SECONDS`.
    pub(super) async fn live_session(
        &self,
        id: &SessionId,
        record: Record,
        now: Millis,
    ) -> Result<Session, Error> {
        match record.meta.and_then(|meta| meta.binding) {
            // The record under a binding identifier: no session, whatever presents its key.
            Some(Binding::Pointer) => return Err(Error::SessionNotFound),
            Some(binding) if !self.proven && binding.id_ended(now, self.renewal.bound_id_ms) => {
                return Err(self.bound_id_ended(*id, record, now).await);
            }
            _ => {}
        }
        if !self.policy.cut_off(record.meta.map(|meta| meta.created_at)) {
            return self.session(id, record, now);
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

    /// A bound session's id presented after its life (`BOUND_SESSION_ID_SECONDS`): it moves
    /// only by a refresh with the device's proof, so a request that presents it holds a copy
    /// the device let go of, as for an id renewed away after its window. With reuse detection
    /// on, the session ends; either way the answer is `404`.
    async fn bound_id_ended(&self, id: SessionId, record: Record, now: Millis) -> Error {
        let alive = record.meta.is_some_and(|meta| meta.is_alive(now));
        if !alive || !self.renewal.reuse_detection {
            return Error::SessionNotFound;
        }
        self.end_reused(id, record, now).await
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
}
