//! A subject's index in strong mode: the subject's own Durable Object, a row per session, by
//! handle and storage key (no id).

use crate::domain::derive::{Handle, StorageKey};
use crate::domain::error::Error;
use crate::domain::id::SessionId;
use crate::domain::subject::Subject;
use crate::domain::time::Millis;
use crate::store::durable::{int, ObjectStorage, Value};
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

/// Which of the index's tables exist: `entry`, and `member` of the earlier version.
#[derive(Clone, Copy)]
struct Tables {
    entry: bool,
    member: bool,
}

impl<S: ObjectStorage> SqlIndex<S> {
    /// Both tables' existence, in one statement (an operation asks once).
    fn tables(&self) -> Result<Tables, Error> {
        let rows = self.0.exec(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('entry', 'member')",
            vec![],
        )?;
        let has = |table: &str| {
            rows.iter()
                .any(|row| matches!(row.first(), Some(Value::Text(name)) if name == table))
        };
        Ok(Tables {
            entry: has("entry"),
            member: has("member"),
        })
    }

    /// The rows of the earlier version: id and creation.
    fn old_rows(&self, tables: Tables) -> Result<Vec<(SessionId, Millis)>, Error> {
        if !tables.member {
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

    fn delete_old_row(&self, id: &SessionId) -> Result<(), Error> {
        self.0.exec(
            "DELETE FROM member WHERE id = ?",
            vec![Value::Text(id.to_string())],
        )?;
        Ok(())
    }

    /// Lists `member` by handle and key until `until`.
    fn insert(&self, member: &Member, until: Millis) -> Result<(), Error> {
        self.0.exec(INDEX_SCHEMA, vec![])?;
        self.0.exec(
            "INSERT OR REPLACE INTO entry (handle, key, created_at, until) VALUES (?, ?, ?, ?)",
            vec![
                Value::Text(member.handle.to_string()),
                Value::Text(member.at.storage_key().name()),
                int(member.created_at),
                int(until),
            ],
        )?;
        Ok(())
    }

    /// Sets the alarm for the first row to go, or clears the object when none is left; the old
    /// table goes with its last row.
    async fn schedule(&self, tables: Tables) -> Result<(), Error> {
        let mut first: Option<i64> = None;
        for (table, exists) in [("entry", tables.entry), ("member", tables.member)] {
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
        let tables = self.tables()?;
        for (table, exists) in [("entry", tables.entry), ("member", tables.member)] {
            if exists {
                self.0.exec(
                    &format!("DELETE FROM {table} WHERE until <= ?"),
                    vec![int(now)],
                )?;
            }
        }
        self.schedule(tables).await
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
        let tables = self.tables()?;
        self.insert(&member, until)?;
        self.schedule(Tables {
            entry: true,
            ..tables
        })
        .await
    }

    /// Removes the entry with the member's handle, in either form.
    async fn remove(&self, _: &Subject, member: &Member) -> Result<(), Error> {
        let tables = self.tables()?;
        if !tables.entry && !tables.member {
            return Ok(());
        }
        if tables.entry {
            self.0.exec(
                "DELETE FROM entry WHERE handle = ?",
                vec![Value::Text(member.handle.to_string())],
            )?;
        }
        for (id, _) in self.old_rows(tables)? {
            if Handle::of(&id) == member.handle {
                self.delete_old_row(&id)?;
            }
        }
        self.schedule(tables).await
    }

    async fn members(&self, _: &Subject) -> Result<Vec<Member>, Error> {
        let tables = self.tables()?;
        let mut members: Vec<Member> = self
            .old_rows(tables)?
            .into_iter()
            .map(|(id, created_at)| Member::of(id, created_at))
            .collect();
        if !tables.entry {
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
        _: &Subject,
        member: &Member,
        until: Millis,
        _: Millis,
    ) -> Result<(), Error> {
        let SessionRef::Id(id) = member.at else {
            return Ok(());
        };
        let tables = self.tables()?;
        self.insert(member, until)?;
        if tables.member {
            self.delete_old_row(&id)?;
        }
        self.schedule(Tables {
            entry: true,
            ..tables
        })
        .await
    }
}

/// The table an index of the earlier strong mode holds, for tests that seed one.
#[cfg(all(test, not(target_arch = "wasm32")))]
pub const OLD_SCHEMA: &str = "CREATE TABLE member (
    id TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    until INTEGER NOT NULL
)";
