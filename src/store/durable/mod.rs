//! Strong mode's storage: a Durable Object's SQLite, as the session store
//! ([`sessions`]), as a subject's index ([`index`]), the runtime's storage behind it
//! ([`storage`]; a statement's values cross to it and back in one string each way,
//! [`crossing`]), and the requests between objects, each protocol with both halves
//! ([`protocol`]).
//!
//! The SQL runs against [`ObjectStorage`]: the Durable Object's storage in the worker, SQLite
//! itself in native tests, so every statement here is tested natively.

pub mod crossing;
pub mod index;
pub mod legacy;
pub mod outbox;
pub mod protocol;
pub mod record;
pub mod sessions;
pub mod storage;

use crate::domain::error::Error;
use crate::domain::time::Millis;
use crate::store::data::Outside;
use record::KnownTables;

/// A value in or out of SQLite.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Text(String),
    Blob(Vec<u8>),
    /// A blob held in JavaScript (a large sealed record), bound as it is.
    BlobOutside(Outside),
}

/// A Durable Object's storage, as this store uses it.
#[allow(
    async_fn_in_trait,
    reason = "Workers run single-threaded; futures need not be Send"
)]
pub trait ObjectStorage {
    /// Runs one statement and returns the rows it yields (`RETURNING` rows included).
    fn exec(&self, query: &str, params: Vec<Value>) -> Result<Vec<Vec<Value>>, Error>;
    /// Wakes the object at `at` (milliseconds since the epoch); replaces an earlier alarm.
    async fn set_alarm(&self, at: Millis) -> Result<(), Error>;
    /// Removes everything, the alarm included: the object then costs no storage.
    async fn delete_all(&self) -> Result<(), Error>;
    /// Runs `change` as one transaction: the statements it runs are committed together, or,
    /// when it fails, none of them is. What makes a change and its event one fact (the outbox).
    fn atomically(&self, change: &mut dyn FnMut() -> Result<(), Error>) -> Result<(), Error>;
    /// Which tables the object has, as far as it has learnt ([`KnownTables`]): `delete_all`
    /// knows none is left, and a failed `atomically` forgets.
    fn known_tables(&self) -> &KnownTables;
}

pub fn int(value: u64) -> Value {
    Value::Integer(i64::try_from(value).unwrap_or(i64::MAX))
}

/// Whether the table `name` exists: objects create their tables on first write, so that an
/// object only ever read stays empty.
pub fn has_table(storage: &impl ObjectStorage, name: &str) -> Result<bool, Error> {
    let rows = storage.exec(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
        vec![Value::Text(name.into())],
    )?;
    Ok(!rows.is_empty())
}
