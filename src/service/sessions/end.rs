//! Deleting a session: by its id, or by an id renewed away within its window.

use crate::domain::binding::Binding;
use crate::domain::error::Error;
use crate::domain::event::Kind;
use crate::domain::id::SessionId;
use crate::domain::precondition::IfMatch;
use crate::domain::time::Millis;
use crate::store::{EntryKey, Expect, Outcome, Record, SessionStore, Stored, SubjectIndex};

use super::{Deleting, Sessions};

impl<'s, S: SessionStore, I: SubjectIndex> Sessions<'s, S, I> {
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
                let current = self.live_session(id, record, now).await?;
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
                match self.live_session(id, record, now).await {
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
            // A binding's pointer is no session: its key deletes nothing.
            Ok(Some(Stored::Session(record)))
                if record
                    .meta
                    .is_some_and(|meta| meta.binding == Some(Binding::Pointer)) =>
            {
                Ok(Deleting::Gone)
            }
            Ok(stored) => Ok(Deleting::Own(stored)),
            Err(Error::Unreadable(_)) => Ok(Deleting::Own(None)),
            Err(err) => Err(err),
        }
    }
}
