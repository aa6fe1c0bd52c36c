//! Creating a session and writing one: replace, merge, touch, each against the version it read.

use crate::domain::error::Error;
use crate::domain::event::Kind;
use crate::domain::id::SessionId;
use crate::domain::json::JsonObject;
use crate::domain::merge::{merge_into, Merge};
use crate::domain::precondition::IfMatch;
use crate::domain::session::Meta;
use crate::domain::time::Millis;
use crate::service::subjects::Subjects;
use crate::store::data::{Buffer, Data};
use crate::store::{
    Activity, DeviceInfo, EntryKey, Expect, NewEntry, Outcome, SessionStore, SubjectIndex,
};

use crate::store::seal::seal_device;

use super::{lost_races, NewSession, Session, Sessions, ATTEMPTS};

impl<'s, S: SessionStore, I: SubjectIndex> Sessions<'s, S, I> {
    /// [`Sessions::create_from`] at level 1: what the tests create.
    #[cfg(test)]
    pub async fn create(
        &self,
        id: SessionId,
        data: &JsonObject,
        ttl: Option<u64>,
        subject: Option<crate::domain::subject::Subject>,
        device: Option<super::NewDevice<'_>>,
        now: Millis,
    ) -> Result<Meta, Error> {
        let level = crate::domain::auth::Level::ONE;
        let new = NewSession {
            id,
            data,
            ttl,
            level,
            subject,
            device,
        };
        self.create_from(new, now).await
    }

    /// Stores a new session. With a subject, the session is listed under it first (an entry
    /// whose session failed to be written is cleaned up when met; a session missing from its
    /// index could not be revoked), after making room when the subject is at its bound.
    pub async fn create_from(&self, new: NewSession<'_>, now: Millis) -> Result<Meta, Error> {
        let NewSession {
            id,
            data,
            ttl,
            level,
            subject,
            device,
        } = new;
        let meta = Meta {
            subject,
            ..Meta::authenticated(now, ttl, level, self.policy)
        };
        let sealed = match (device, &subject) {
            (Some(new), Some(subject)) => {
                Some(seal_device(new.key, subject, &new.device.to_bytes())?)
            }
            (Some(_), None) => return Err(Error::Internal("device info without a subject".into())),
            (None, _) => None,
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
                device: sealed
                    .as_deref()
                    .map_or(DeviceInfo::None, DeviceInfo::Sealed),
            };
            index.add(subject, &entry, now).await?;
        }
        let bytes = data.as_str().as_bytes();
        let label = device.and_then(|new| new.device.label.as_deref());
        let event = self.event(Kind::Created, now, &id, &meta, label);
        let saved = self
            .store
            .save(&id, bytes.into(), &meta, Expect::Absent, event.as_ref());
        match saved.await? {
            Outcome::Written => Ok(meta),
            Outcome::Conflict => Err(Error::Internal(format!(
                "new session id {} is taken",
                id.short()
            ))),
        }
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
            .write(id, if_match, now, |_| Ok(Data::from(bytes)))
            .await?;
        Ok(meta)
    }

    /// Merges `patch` into an existing session and returns the merged data, written where the
    /// store seals it from ([`SessionStore::buffer`]: a large result outside Wasm memory). Stored
    /// data that is not a JSON object (the old worker stored anything) is `SessionNotMergeable`,
    /// and stays.
    pub async fn merge(
        &self,
        id: &SessionId,
        patch: &JsonObject,
        how: Merge,
        if_match: Option<&IfMatch>,
        now: Millis,
    ) -> Result<(Data<'static>, Meta), Error> {
        let (merged, meta) = self
            .write(id, if_match, now, |current| {
                merge_into(&current.data, patch, how, |len| self.store.buffer(len))
                    .map(Buffer::into_data)
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
        change: impl Fn(&Session) -> Result<Data<'d>, Error>,
    ) -> Result<(Data<'d>, Meta), Error> {
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
            match self
                .store
                .save(id, data.plain(), &meta, expect, None)
                .await?
            {
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
            if self
                .store
                .save(id, data.into(), &meta, expect, None)
                .await?
                == Outcome::Written
            {
                self.report(id, &current.meta, &meta, now).await;
                return Ok(meta);
            }
        }
        Err(lost_races())
    }
}
