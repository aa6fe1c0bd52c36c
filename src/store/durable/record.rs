//! The one table of a session's object, `record`: its schema, how a row reads and is written,
//! and which of the object's tables exist (the outbox's is [`super::outbox`]). Rows hold the
//! session sealed, its lifecycle readable, its key and its handle: never its id.

use std::cell::Cell;
use std::sync::LazyLock;

use crate::domain::auth::{Auth, Level};
use crate::domain::binding::Binding;
use crate::domain::derive::{Handle, StorageKey};
use crate::domain::error::Error;
use crate::domain::id::SessionId;
use crate::domain::session::Meta;
use crate::domain::subject::Subject;
use crate::domain::time::Millis;
use crate::store::data::Data;
use crate::store::durable::{int, ObjectStorage, Value};
use crate::store::schema::{RECORD_NEW_COLUMNS, RECORD_WRITTEN};
use crate::store::seal::is_retirement;

/// The session row: `sealed` is `None` once a session moved from KV has ended (its marker).
#[derive(Debug)]
pub struct Row {
    pub sealed: Option<Vec<u8>>,
    pub meta: Meta,
    /// When the KV copy of a session moved from KV was deleted.
    pub kv_deleted_at: Option<Millis>,
    /// `None` in a row written before this column, until a request that names the id.
    pub handle: Option<Handle>,
}

impl Row {
    /// The lifecycle of the session held here, if one is: not once it ended, nor in a renewed
    /// id's object, which holds only its retirement.
    pub fn live_meta(&self) -> Option<Meta> {
        self.sealed
            .as_ref()
            .filter(|sealed| !is_retirement(sealed))
            .map(|_| self.meta)
    }

    /// Whether the row holds a renewed id's retirement (until the session's latest end).
    pub fn retired(&self) -> bool {
        self.sealed.as_deref().is_some_and(is_retirement)
    }
}

fn column(row: &[Value], index: usize) -> Result<Option<u64>, Error> {
    match row.get(index) {
        Some(Value::Integer(n)) => Ok(u64::try_from(*n).ok()),
        Some(Value::Null) => Ok(None),
        other => Err(Error::Internal(format!(
            "session row column {index}: {other:?}"
        ))),
    }
}

/// A row as `SELECT {RECORD_COLUMNS}` gives it; the sealed data is moved out, not copied.
pub fn parse_row(mut row: Vec<Value>) -> Result<Row, Error> {
    let sealed = match row.first_mut() {
        Some(Value::Blob(bytes)) => Some(std::mem::take(bytes)),
        _ => None,
    };
    let row = row.as_slice();
    let number = |index| column(row, index)?.ok_or_else(|| Error::Internal("null column".into()));
    let created_at = number(1)?;
    // A row written before the columns: authenticated at creation, as its sealed lifecycle says.
    let auth = match (column(row, 9)?, column(row, 10)?) {
        (Some(at), Some(level)) => Auth {
            at,
            level: u8::try_from(level)
                .ok()
                .and_then(Level::of)
                .ok_or_else(|| Error::Internal(format!("session row auth level {level}")))?,
        },
        _ => Auth::at_creation(created_at),
    };
    Ok(Row {
        sealed,
        meta: Meta {
            created_at,
            updated_at: number(2)?,
            expires_at: number(3)?,
            version: number(4)?,
            ttl: column(row, 5)?,
            subject: match row.get(6) {
                Some(Value::Text(hex)) => Subject::from_hex(hex),
                _ => None,
            },
            auth,
            binding: match row.get(11) {
                Some(Value::Text(text)) => Some(
                    Binding::from_text(text)
                        .ok_or_else(|| Error::Internal("session row binding unreadable".into()))?,
                ),
                _ => None,
            },
        },
        kv_deleted_at: column(row, 7)?,
        handle: match row.get(8) {
            Some(Value::Text(hex)) => Handle::parse(hex),
            _ => None,
        },
    })
}

/// The statements that write the row, made once from [`RECORD_WRITTEN`].
pub struct Writes {
    /// A session moved in from elsewhere: [`row_params`], then `kv_deleted_at`.
    pub moved_in: String,
    /// A new session, unless the row exists.
    pub insert: String,
    /// The session at a version (its one parameter after [`row_params`]), unless ended.
    pub update: String,
    /// Whatever is there.
    pub upsert: String,
}

pub static WRITES: LazyLock<Writes> = LazyLock::new(|| {
    let insert = |columns: &[&str]| {
        let marks = vec!["?"; columns.len()].join(", ");
        format!(
            "INSERT INTO record (one, {}) VALUES (1, {marks})",
            columns.join(", ")
        )
    };
    let set = |value: &dyn Fn(&str) -> String| {
        let pairs: Vec<String> = RECORD_WRITTEN
            .iter()
            .map(|c| format!("{c} = {}", value(c)))
            .collect();
        pairs.join(", ")
    };
    let moved_in = [&RECORD_WRITTEN[..], &["kv_deleted_at"]].concat();
    Writes {
        moved_in: insert(&moved_in),
        insert: format!(
            "{} ON CONFLICT (one) DO NOTHING RETURNING version",
            insert(&RECORD_WRITTEN)
        ),
        update: format!(
            "UPDATE record SET {} WHERE sealed IS NOT NULL AND version = ? RETURNING version",
            set(&|_| "?".into())
        ),
        upsert: format!(
            "{} ON CONFLICT (one) DO UPDATE SET {} RETURNING version",
            insert(&RECORD_WRITTEN),
            set(&|column| format!("excluded.{column}"))
        ),
    }
});

/// The parameters of an insert or update: handle, key, sealed data, then the lifecycle.
pub fn row_params(id: &SessionId, key: &StorageKey, sealed: Data<'_>, meta: &Meta) -> Vec<Value> {
    let sealed = match sealed {
        Data::Here(bytes) => Value::Blob(bytes.into_owned()),
        Data::Outside(outside) => Value::BlobOutside(outside),
    };
    vec![
        Value::Text(Handle::of(id).to_string()),
        Value::Text(key.name()),
        sealed,
        int(meta.created_at),
        int(meta.updated_at),
        int(meta.expires_at),
        int(meta.version),
        meta.ttl.map_or(Value::Null, int),
        meta.subject
            .map_or(Value::Null, |subject| Value::Text(subject.hex())),
        int(meta.auth.at),
        int(u64::from(meta.auth.level.get())),
        meta.binding
            .map_or(Value::Null, |binding| Value::Text(binding.to_text())),
    ]
}

/// The key of the session an object holds (or held), for its alarm; `None` for an object of
/// the earlier strong mode or an empty one.
pub fn stored_key(storage: &impl ObjectStorage) -> Result<Option<StorageKey>, Error> {
    if !tables(storage)?.record {
        return Ok(None);
    }
    let rows = storage.exec("SELECT key FROM record", vec![])?;
    Ok(match rows.first().and_then(|row| row.first()) {
        Some(Value::Text(name)) => StorageKey::from_name(name),
        _ => None,
    })
}

/// Which of an object's tables exist.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tables {
    pub record: bool,
    pub outbox: bool,
}

/// Which tables an object has, as far as it has learnt, kept by its storage for as long as the
/// object stays in memory: a read then runs its one `SELECT`, without asking `sqlite_master`
/// first on every request. Each table is known or not on its own: creating the record table
/// says nothing of the outbox (events may wait there). Only this object's code changes its
/// tables, and every change passes here: the two that create one ([`super::sessions`]' record
/// and outbox) record it, delivering the outbox records whether it is left, the storage's
/// `delete_all` knows that none is left, and a transaction that failed forgets all.
#[derive(Debug, Default)]
pub struct KnownTables {
    record: Cell<Option<bool>>,
    outbox: Cell<Option<bool>>,
}

impl KnownTables {
    /// Both tables, when both are known.
    pub fn get(&self) -> Option<Tables> {
        Some(Tables {
            record: self.record.get()?,
            outbox: self.outbox.get()?,
        })
    }

    /// Whether the record table exists, if known.
    pub fn record(&self) -> Option<bool> {
        self.record.get()
    }

    pub fn set(&self, tables: Tables) {
        self.record.set(Some(tables.record));
        self.outbox.set(Some(tables.outbox));
    }

    pub fn set_record(&self, exists: bool) {
        self.record.set(Some(exists));
    }

    pub fn set_outbox(&self, exists: bool) {
        self.outbox.set(Some(exists));
    }

    /// Forgets both: the next request looks again.
    pub fn forget(&self) {
        self.record.set(None);
        self.outbox.set(None);
    }
}

/// The tables, in one statement; a record table of an earlier version gets the columns it
/// lacks on sight.
pub fn tables(storage: &impl ObjectStorage) -> Result<Tables, Error> {
    let rows = storage.exec(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name IN ('record', 'outbox')",
        vec![],
    )?;
    let mut tables = Tables::default();
    for row in rows {
        match row.as_slice() {
            [Value::Text(name), Value::Text(sql)] if name == "record" => {
                for (column, statement) in RECORD_NEW_COLUMNS {
                    if !sql.contains(column) {
                        storage.exec(statement, vec![])?;
                    }
                }
                tables.record = true;
            }
            _ => tables.outbox = true,
        }
    }
    Ok(tables)
}
