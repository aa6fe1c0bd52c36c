//! How a session's object ends it and empties itself: removing the session (its row keeps no
//! data, and goes entirely unless a marker or events must wait), the marker of a session moved from
//! KV, and the alarm that ends an expired session, delivers the outbox and sets itself again.

use super::{LegacyObjects, SqlSessions, KV_STALE_MS};
use crate::domain::binding::Binding;
use crate::domain::error::Error;
use crate::domain::event::Event;
use crate::domain::time::Millis;
use crate::store::durable::outbox::{self, Delivery};
use crate::store::durable::record::Row;
use crate::store::durable::ObjectStorage;
use crate::store::events::EventQueue;
use crate::store::seal::Aead;
use crate::store::{Expect, KeyValue, Outcome, Record, SessionStore, Stored};

impl<S: ObjectStorage, K: KeyValue, P: SessionStore + LegacyObjects, A: Aead>
    SqlSessions<S, K, P, A>
{
    /// `event`, when this object commits events.
    pub(super) fn committed<'e>(&self, event: Option<&'e Event>) -> Option<&'e Event> {
        event.filter(|_| self.events)
    }

    /// Leaves the alarm where the object needs it: at `wake` (the session's expiry, or the end
    /// of a moved session's marker) or at the outbox's next delivery, whichever comes first;
    /// with neither, the object holds nothing and all of it goes.
    pub(super) async fn set_next_alarm(&self, wake: Option<Millis>) -> Result<(), Error> {
        let due = match self.events && self.tables()?.outbox {
            true => outbox::earliest(&self.storage)?,
            false => None,
        };
        self.set_next_alarm_at(wake, due).await
    }

    /// [`Self::set_next_alarm`], with the outbox's next delivery known.
    pub(super) async fn set_next_alarm_at(
        &self,
        wake: Option<Millis>,
        due: Option<Millis>,
    ) -> Result<(), Error> {
        match wake.into_iter().chain(due).min() {
            Some(at) => self.storage.set_alarm(at).await,
            None => self.delete_all().await,
        }
    }

    /// Removes the session if it is as `expect` says, and says whether there was one. With the
    /// id known, a session still elsewhere moves in first, so that removing it removes every
    /// copy. `event` is committed with the removal, if there was a session to remove.
    pub(super) async fn remove_own(
        &self,
        expect: Expect,
        event: Option<&Event>,
    ) -> Result<(Outcome, bool), Error> {
        let row = match self.own {
            Some(_) if !self.has_table()? => {
                self.load_own().await?;
                self.row()?
            }
            _ => self.row()?,
        };
        let current = row.as_ref().and_then(Row::live_meta).map(|meta| {
            Stored::Session(Record {
                data: String::new(),
                meta: Some(meta),
            })
        });
        let held = current.is_some();
        if !expect.holds(current.as_ref()) {
            return Ok((Outcome::Conflict, held));
        }
        if let Some(row) = row.filter(|row| row.sealed.is_some()) {
            let event = self.committed(event);
            let wake = self.end(&row, event)?;
            match event {
                // Due at once, which is before anything else.
                Some(_) => self.storage.set_alarm(self.now).await?,
                None => self.set_next_alarm(wake).await?,
            }
        }
        Ok((Outcome::Written, held))
    }

    /// Ends the session, and commits `event` with the end. Nothing stays of the session once
    /// the caller sets the next alarm, but its row without data: while it came from KV, a marker (until the
    /// time returned), and while events wait, what the alarm finds the object by.
    pub(super) fn end(&self, row: &Row, event: Option<&Event>) -> Result<Option<Millis>, Error> {
        let marker = self.marker(row);
        if marker.is_none() && !self.events {
            // Nothing stays and nothing waits: setting no alarm deletes everything at once.
            return Ok(None);
        }
        self.storage.atomically(&mut || {
            self.storage
                .exec("UPDATE record SET sealed = NULL", vec![])?;
            match event {
                Some(event) => self.add_event(event),
                None => Ok(()),
            }
        })?;
        Ok(marker)
    }

    /// Until when the row of a session moved from KV must stay once it ended: a stale KV read
    /// elsewhere must not bring it back.
    pub(super) fn marker(&self, row: &Row) -> Option<Millis> {
        row.kv_deleted_at
            .map(|deleted| deleted + KV_STALE_MS)
            .filter(|until| self.now < *until)
    }

    /// The alarm: ends an expired session (with its `expired` event), or sets the alarm again
    /// for one renewed since; clears the marker of a session moved from KV once KV cannot serve
    /// its copy any more; and delivers what waits in the outbox to `queue`.
    pub async fn on_alarm(&self, queue: Option<&impl EventQueue>) -> Result<Delivery, Error> {
        let wake = match self.row()? {
            None => None,
            // A renewed id's retirement stays until the session's latest end, then goes
            // without an event: the session's own end was reported by its own object.
            Some(row) if row.retired() => {
                (self.now < row.meta.expires_at).then_some(row.meta.expires_at)
            }
            Some(row) => match row.live_meta() {
                Some(meta) if meta.is_alive(self.now) => Some(meta.expires_at),
                Some(meta) => {
                    // A binding's pointer is no session: it ends without an event.
                    let pointer = meta.binding == Some(Binding::Pointer);
                    let expired = row
                        .handle
                        .filter(|_| !pointer)
                        .map(|handle| Event::expired(&meta, self.policy, handle));
                    self.end(&row, self.committed(expired.as_ref()))?
                }
                // Ended already: a marker, or events waiting.
                None => self.marker(&row),
            },
        };
        let tables = self.tables()?;
        let delivery = match (queue, self.events && tables.outbox) {
            (Some(queue), true) => outbox::deliver(&self.storage, queue, self.now).await?,
            _ => Delivery::default(),
        };
        let left = delivery.next.is_some();
        self.storage.known_tables().set_outbox(left);
        self.set_next_alarm_at(wake, delivery.next).await?;
        Ok(delivery)
    }
}
