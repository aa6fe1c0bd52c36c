//! A subject's index in strong mode: the subject's own Durable Object, a row per session, by
//! handle and storage key (no id).

use crate::domain::derive::{Handle, StorageKey};
use crate::domain::error::Error;
use crate::domain::id::SessionId;
use crate::domain::subject::Subject;
use crate::domain::time::Millis;
use crate::store::durable::{has_table, int, ObjectStorage, Value};
use crate::store::{Member, SessionRef, SubjectIndex};

/// The sessions of one subject, in its own Durable Object's SQLite storage: a row per session,
/// until the session's latest end. An alarm drops rows past it; an object with no rows left holds
/// nothing. Every operation is a few synchronous statements, so the object needs no
/// `blockConcurrencyWhile`: session objects call it from inside theirs, and must never wait on
/// an object that waits on them.
///
/// Indexes of the earlier strong mode hold ids (table `member`). Those rows are listed as they
/// are, by id, until their session has moved under its storage key (a listing then rewrites
/// each by handle and key, [`SubjectIndex::upgrade`]); the table goes with its last row.
pub struct SqlIndex<S>(pub S);

const INDEX_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS entry (
    handle TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    until INTEGER NOT NULL
)";

impl<S: ObjectStorage> SqlIndex<S> {
    fn has_entries(&self) -> Result<bool, Error> {
        has_table(&self.0, "entry")
    }

    fn has_old_rows(&self) -> Result<bool, Error> {
        has_table(&self.0, "member")
    }

    /// The rows of the earlier version: id, creation, end.
    fn old_rows(&self) -> Result<Vec<(SessionId, Millis)>, Error> {
        if !self.has_old_rows()? {
            return Ok(Vec::new());
        }
        let rows = self.0.exec(
            "SELECT id, created_at FROM member ORDER BY created_at",
            vec![],
        )?;
        Ok(rows
            .iter()
            .filter_map(|row| match &row[..] {
                [Value::Text(id), Value::Integer(created_at)] => {
                    Some((SessionId::parse(id)?, u64::try_from(*created_at).ok()?))
                }
                _ => None,
            })
            .collect())
    }

    fn delete_old_row(&self, handle: &Handle) -> Result<(), Error> {
        for (id, _) in self.old_rows()? {
            if Handle::of(&id) == *handle {
                self.0.exec(
                    "DELETE FROM member WHERE id = ?",
                    vec![Value::Text(id.to_string())],
                )?;
            }
        }
        Ok(())
    }

    /// Sets the alarm for the first row to go, or clears the object when none is left.
    async fn schedule(&self) -> Result<(), Error> {
        let mut first: Option<i64> = None;
        for (table, exists) in [
            ("entry", self.has_entries()?),
            ("member", self.has_old_rows()?),
        ] {
            if !exists {
                continue;
            }
            let rows = self
                .0
                .exec(&format!("SELECT min(until) FROM {table}"), vec![])?;
            match rows.first().and_then(|row| row.first()) {
                Some(Value::Integer(until)) => {
                    first = Some(first.map_or(*until, |known| known.min(*until)))
                }
                _ if table == "member" => {
                    self.0.exec("DROP TABLE member", vec![])?;
                }
                _ => {}
            }
        }
        match first {
            Some(until) => self.0.set_alarm(u64::try_from(until).unwrap_or(0)).await,
            None => self.0.delete_all().await,
        }
    }

    /// The alarm: drops the rows whose session cannot be alive any more.
    pub async fn on_alarm(&self, now: Millis) -> Result<(), Error> {
        for (table, exists) in [
            ("entry", self.has_entries()?),
            ("member", self.has_old_rows()?),
        ] {
            if exists {
                self.0.exec(
                    &format!("DELETE FROM {table} WHERE until <= ?"),
                    vec![int(now)],
                )?;
            }
        }
        self.schedule().await
    }
}

impl<S: ObjectStorage> SubjectIndex for SqlIndex<S> {
    async fn add(
        &self,
        _: &Subject,
        member: Member,
        until: Millis,
        _: Millis,
    ) -> Result<(), Error> {
        self.0.exec(INDEX_SCHEMA, vec![])?;
        let key = match member.at {
            SessionRef::Key(key) => key,
            SessionRef::Id(id) => StorageKey::of(&id),
        };
        self.0.exec(
            "INSERT OR REPLACE INTO entry (handle, key, created_at, until) VALUES (?, ?, ?, ?)",
            vec![
                Value::Text(member.handle.to_string()),
                Value::Text(key.name()),
                int(member.created_at),
                int(until),
            ],
        )?;
        self.schedule().await
    }

    /// Removes the entry with the member's handle, in either form.
    async fn remove(&self, _: &Subject, member: &Member) -> Result<(), Error> {
        if !self.has_entries()? && !self.has_old_rows()? {
            return Ok(());
        }
        if self.has_entries()? {
            self.0.exec(
                "DELETE FROM entry WHERE handle = ?",
                vec![Value::Text(member.handle.to_string())],
            )?;
        }
        self.delete_old_row(&member.handle)?;
        self.schedule().await
    }

    async fn members(&self, _: &Subject) -> Result<Vec<Member>, Error> {
        let mut members: Vec<Member> = self
            .old_rows()?
            .into_iter()
            .map(|(id, created_at)| Member::of(id, created_at))
            .collect();
        if !self.has_entries()? {
            return Ok(members);
        }
        let rows = self.0.exec(
            "SELECT handle, key, created_at FROM entry ORDER BY created_at",
            vec![],
        )?;
        members.extend(rows.iter().filter_map(|row| match &row[..] {
            [Value::Text(handle), Value::Text(key), Value::Integer(created_at)] => Some(Member {
                handle: Handle::parse(handle)?,
                at: SessionRef::Key(StorageKey::from_name(key)?),
                created_at: u64::try_from(*created_at).ok()?,
            }),
            _ => None,
        }));
        Ok(members)
    }

    /// An old row whose session has moved: rewritten by handle and key.
    async fn upgrade(
        &self,
        subject: &Subject,
        member: &Member,
        until: Millis,
        now: Millis,
    ) -> Result<(), Error> {
        if let SessionRef::Id(id) = member.at {
            self.add(subject, Member::of(id, member.created_at), until, now)
                .await?;
            self.0.exec(
                "DELETE FROM member WHERE id = ?",
                vec![Value::Text(id.to_string())],
            )?;
            self.schedule().await?;
        }
        Ok(())
    }
}

/// The table an index of the earlier strong mode holds, for tests that seed one.
#[cfg(all(test, not(target_arch = "wasm32")))]
pub const OLD_SCHEMA: &str = "CREATE TABLE member (
    id TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    until INTEGER NOT NULL
)";
