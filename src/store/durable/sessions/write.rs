//! How a session's object writes its session: sealed, at the version it replaces, with its
//! event committed in the same transaction, and the alarm left where the session needs it.

use super::{LegacyObjects, SqlSessions};
use crate::domain::derive::WrapKey;
use crate::domain::error::Error;
use crate::domain::event::Event;
use crate::domain::renewal::Retirement;
use crate::domain::session::Meta;
use crate::store::data::Plain;
use crate::store::durable::record::{row_params, WRITES};
use crate::store::durable::{int, outbox, ObjectStorage, Value};
use crate::store::schema::RECORD_SCHEMA;
use crate::store::seal::Aead;
use crate::store::{Expect, KeyValue, Outcome, SessionStore};

impl<S: ObjectStorage, K: KeyValue, P: SessionStore + LegacyObjects, A: Aead>
    SqlSessions<S, K, P, A>
{
    pub(super) fn create_table(&self) -> Result<(), Error> {
        let known = self.storage.known_tables();
        if known.record() != Some(true) {
            self.storage.exec(RECORD_SCHEMA, vec![])?;
            known.set_record(true);
        }
        Ok(())
    }

    /// Commits `event` to the outbox; run it inside [`ObjectStorage::atomically`] with the
    /// change it reports.
    pub(super) fn add_event(&self, event: &Event) -> Result<(), Error> {
        outbox::add(&self.storage, event, self.now)?;
        self.storage.known_tables().set_outbox(true);
        Ok(())
    }

    /// Writes the session if it is as `expect` says, and `event` with it, in one transaction.
    pub(super) async fn save_own(
        &self,
        data: Plain<'_>,
        meta: &Meta,
        expect: Expect,
        event: Option<&Event>,
    ) -> Result<Outcome, Error> {
        let id = self.id()?;
        let sealed = self
            .sealer
            .seal(&WrapKey::of(&id), &self.key, meta, data)
            .await?;
        let mut params = row_params(&id, &self.key, sealed, meta);
        let query = match expect {
            Expect::Absent => {
                self.create_table()?;
                &WRITES.insert
            }
            Expect::Version(version) => {
                if !self.has_table()? {
                    return Ok(Outcome::Conflict);
                }
                params.push(int(version));
                &WRITES.update
            }
            Expect::Any => {
                self.create_table()?;
                &WRITES.upsert
            }
        };
        self.write(query, params, meta, event).await
    }

    /// Runs the write `query` with `params`, and commits `event` with it when it wrote; then
    /// the alarm goes where `meta` needs it.
    async fn write(
        &self,
        query: &str,
        params: Vec<Value>,
        meta: &Meta,
        event: Option<&Event>,
    ) -> Result<Outcome, Error> {
        let event = self.committed(event);
        let mut written = false;
        let mut params = Some(params);
        self.storage.atomically(&mut || {
            written = !self
                .storage
                .exec(query, params.take().unwrap_or_default())?
                .is_empty();
            match event {
                Some(event) if written => self.add_event(event),
                _ => Ok(()),
            }
        })?;
        if !written {
            return Ok(Outcome::Conflict);
        }
        match event {
            Some(_) => self.storage.set_alarm(self.now).await?,
            None => self.set_next_alarm(Some(meta.expires_at)).await?,
        }
        Ok(Outcome::Written)
    }

    /// Replaces the session at `expect`'s version with the id's `retirement`, and `event` with
    /// it, in one transaction; the alarm then ends the retirement at `meta`'s expiry, silently.
    pub(super) async fn retire_own(
        &self,
        retirement: &Retirement,
        meta: &Meta,
        expect: Expect,
        event: Option<&Event>,
    ) -> Result<Outcome, Error> {
        let id = self.id()?;
        let Expect::Version(version) = expect else {
            return Err(Error::Internal(
                "a retirement replaces a session at a version".into(),
            ));
        };
        if !self.has_table()? {
            return Ok(Outcome::Conflict);
        }
        let sealed = self
            .sealer
            .retire(&WrapKey::of(&id), &self.key, meta, retirement)
            .await?;
        let mut params = row_params(&id, &self.key, sealed, meta);
        params.push(int(version));
        self.write(&WRITES.update, params, meta, event).await
    }
}
