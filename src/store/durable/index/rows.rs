//! A subject index's rows, read as entries: those of `entry`, each with the handle its session
//! moved from (its lineage), and those of the earlier version's `member`, by id.

use crate::domain::auth::{Auth, Level};
use crate::domain::binding::Alg;
use crate::domain::derive::{Handle, StorageKey};
use crate::domain::error::Error;
use crate::domain::id::SessionId;
use crate::domain::time::Millis;
use crate::store::durable::index::{SqlIndex, Tables};
use crate::store::durable::{ObjectStorage, Value};
use crate::store::{Activity, Entry, EntryKey, SessionRef};

impl<S: ObjectStorage> SqlIndex<S> {
    /// The rows of the earlier version: id and creation.
    pub(super) fn legacy_rows(&self, tables: Tables) -> Result<Vec<(SessionId, Millis)>, Error> {
        if !tables.key {
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

    pub(super) fn delete_legacy_row(&self, id: &SessionId) -> Result<(), Error> {
        self.0.exec(
            "DELETE FROM member WHERE id = ?",
            vec![Value::Text(id.to_string())],
        )?;
        Ok(())
    }

    /// Every entry, in either form, each with the handle its session moved from, if any.
    pub(super) fn entries(&self, tables: Tables) -> Result<Vec<(Entry, Option<Handle>)>, Error> {
        let mut entries: Vec<(Entry, Option<Handle>)> = self
            .legacy_rows(tables)?
            .into_iter()
            .map(|(id, created_at)| {
                let entry = Entry {
                    key: EntryKey::of(id, created_at),
                    activity: None,
                    device: None,
                };
                (entry, None)
            })
            .collect();
        if !tables.entry {
            return Ok(entries);
        }
        let rows = self.0.exec(
            "SELECT handle, key, created_at, updated_at, expires_at, auth_at, auth_level, bound, \
             device, moved_from FROM entry \
             ORDER BY created_at",
            vec![],
        )?;
        entries.extend(rows.into_iter().filter_map(|mut row| {
            let moved_from = match row.pop()? {
                Value::Text(handle) => Handle::parse(&handle),
                _ => None,
            };
            Some((parse_entry(row)?, moved_from))
        }));
        Ok(entries)
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
    let number = |value: Value| match value {
        Value::Integer(n) => u64::try_from(n).ok(),
        _ => None,
    };
    // A row without the authentication (written before it) lists nothing of its own: its
    // session is asked, and its next report fills it in.
    let (updated_at, expires_at) = (number(row.next()?), number(row.next()?));
    let (auth_at, auth_level) = (number(row.next()?), number(row.next()?));
    let bound = match row.next()? {
        Value::Text(alg) => Alg::from_name(&alg),
        _ => None,
    };
    let activity = (|| {
        Some(Activity {
            updated_at: updated_at?,
            expires_at: expires_at?,
            auth: Auth {
                at: auth_at?,
                level: Level::of(u8::try_from(auth_level?).ok()?)?,
            },
            bound,
        })
    })();
    let device = match row.next()? {
        Value::Blob(bytes) => Some(bytes),
        _ => None,
    };
    let member = EntryKey {
        handle: Handle::parse(&handle)?,
        at: SessionRef::Key(StorageKey::from_name(&key)?),
        created_at: u64::try_from(created_at).ok()?,
    };
    Some(Entry {
        key: member,
        activity,
        device,
    })
}
