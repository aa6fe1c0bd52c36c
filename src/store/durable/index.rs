//! A subject's index in strong mode: the subject's own Durable Object, a row per session, by
//! handle and storage key (no id), with what a listing shows of it: the lifecycle its object
//! reports, and its device info, sealed.

use crate::domain::derive::{Handle, StorageKey};
use crate::domain::error::Error;
use crate::domain::id::SessionId;
use crate::domain::subject::Subject;
use crate::domain::time::Millis;
use crate::store::durable::{int, ObjectStorage, Value};
use crate::store::schema::{INDEX_NEW_COLUMNS, INDEX_SCHEMA};
use crate::store::{DeviceInfo, Entry, Member, NewEntry, Seen, SessionRef, SubjectIndex};

/// The sessions of one subject, in its own Durable Object's SQLite storage: a row per session,
/// until the session's latest end. An alarm drops rows past it; an object with no rows left holds
/// nothing. Every operation is a few synchronous statements, so the object needs no
/// `blockConcurrencyWhile`: session objects call it from inside theirs, and must never wait on
/// an object that waits on them.
///
/// A listing is answered from the rows alone, without calling the sessions' objects: each session's
/// object reports its lifecycle at creation and at its first write in every renewal interval
/// ([`SubjectIndex::seen`]), so a row's `expires_at` is never later than the session's own, and
/// at most an interval earlier. Only a row whose reported expiry has passed, but whose latest
/// end has not, is checked with its object (it may have been renewed since, or have ended).
///
/// Indexes of the earlier strong mode hold ids (table `member`). Those rows are listed as they
/// are, by id, until their session has moved under its storage key (a listing then rewrites
/// each by handle and key, [`SubjectIndex::upgrade`]); the table goes with its last row.
pub struct SqlIndex<S>(pub S);

/// Which of the index's tables exist: `entry`, and `member` of the earlier version.
#[derive(Clone, Copy)]
struct Tables {
    entry: bool,
    member: bool,
}

impl<S: ObjectStorage> SqlIndex<S> {
    /// Both tables' existence, in one statement (an operation asks once); a table `entry` of
    /// the previous version gets its new columns on sight.
    fn tables(&self) -> Result<Tables, Error> {
        let rows = self.0.exec(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table' \
             AND name IN ('entry', 'member')",
            vec![],
        )?;
        let schema = |table: &str| {
            rows.iter().find_map(|row| match &row[..] {
                [Value::Text(name), Value::Text(sql)] if name == table => Some(sql.as_str()),
                _ => None,
            })
        };
        if schema("entry").is_some_and(|sql| !sql.contains("device")) {
            for statement in INDEX_NEW_COLUMNS {
                self.0.exec(statement, vec![])?;
            }
        }
        Ok(Tables {
            entry: schema("entry").is_some(),
            member: schema("member").is_some(),
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

    /// Lists the entry's member by handle and key until its `until`.
    fn insert(&self, entry: &NewEntry<'_>) -> Result<(), Error> {
        self.0.exec(INDEX_SCHEMA, vec![])?;
        let member = &entry.member;
        let mut params = vec![
            Value::Text(member.handle.to_string()),
            Value::Text(member.at.storage_key().name()),
            int(member.created_at),
            int(entry.until),
            int(entry.seen.updated_at),
            int(entry.seen.expires_at),
        ];
        let device = match entry.device {
            DeviceInfo::None => "NULL",
            DeviceInfo::Sealed(bytes) => {
                params.push(Value::Blob(bytes.to_vec()));
                "?"
            }
            DeviceInfo::Like(handle) => {
                params.push(Value::Text(handle.to_string()));
                "(SELECT device FROM entry WHERE handle = ?)"
            }
        };
        self.0.exec(
            &format!(
                "INSERT OR REPLACE INTO entry (handle, key, created_at, until, updated_at, \
                 expires_at, device) VALUES (?, ?, ?, ?, ?, ?, {device})"
            ),
            params,
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
    async fn add(&self, _: &Subject, entry: &NewEntry<'_>, _: Millis) -> Result<(), Error> {
        let tables = self.tables()?;
        self.insert(entry)?;
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

    async fn members(&self, _: &Subject) -> Result<Vec<Entry>, Error> {
        let tables = self.tables()?;
        let mut entries: Vec<Entry> = self
            .old_rows(tables)?
            .into_iter()
            .map(|(id, created_at)| Entry {
                member: Member::of(id, created_at),
                seen: None,
                device: None,
            })
            .collect();
        if !tables.entry {
            return Ok(entries);
        }
        let rows = self.0.exec(
            "SELECT handle, key, created_at, updated_at, expires_at, device FROM entry \
             ORDER BY created_at",
            vec![],
        )?;
        entries.extend(rows.into_iter().filter_map(parse_entry));
        Ok(entries)
    }

    /// Keeps the latest lifecycle reported: reports may arrive out of order.
    async fn seen(&self, _: &Subject, handle: &Handle, seen: Seen) -> Result<(), Error> {
        if !self.tables()?.entry {
            return Ok(());
        }
        self.0.exec(
            "UPDATE entry SET updated_at = ?, expires_at = ? WHERE handle = ? \
             AND (updated_at IS NULL OR updated_at <= ?)",
            vec![
                int(seen.updated_at),
                int(seen.expires_at),
                Value::Text(handle.to_string()),
                int(seen.updated_at),
            ],
        )?;
        Ok(())
    }

    /// An old row whose session has moved: rewritten by handle and key.
    async fn upgrade(
        &self,
        _: &Subject,
        member: &Member,
        until: Millis,
        seen: Seen,
        _: Millis,
    ) -> Result<(), Error> {
        let SessionRef::Id(id) = member.at else {
            return Ok(());
        };
        let tables = self.tables()?;
        self.insert(&NewEntry {
            member: *member,
            until,
            seen,
            device: DeviceInfo::None,
        })?;
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

/// A row as `members` selects it.
fn parse_entry(row: Vec<Value>) -> Option<Entry> {
    let mut row = row.into_iter();
    let (Value::Text(handle), Value::Text(key), Value::Integer(created_at)) =
        (row.next()?, row.next()?, row.next()?)
    else {
        return None;
    };
    let seen = match (row.next()?, row.next()?) {
        (Value::Integer(updated_at), Value::Integer(expires_at)) => Some(Seen {
            updated_at: u64::try_from(updated_at).ok()?,
            expires_at: u64::try_from(expires_at).ok()?,
        }),
        _ => None,
    };
    let device = match row.next()? {
        Value::Blob(bytes) => Some(bytes),
        _ => None,
    };
    let member = Member {
        handle: Handle::parse(&handle)?,
        at: SessionRef::Key(StorageKey::from_name(&key)?),
        created_at: u64::try_from(created_at).ok()?,
    };
    Some(Entry {
        member,
        seen,
        device,
    })
}
