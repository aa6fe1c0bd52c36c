//! In-memory stores for native tests: key-value operations counted as the KV bill counts them,
//! failures injected on demand, and sessions with a true compare-and-swap (what a Durable Object
//! gives) to exercise the rules' handling of lost races.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};

use super::kv::KvSessions;
use super::{Expect, KeyValue, Outcome, Record, SessionStore};
use crate::domain::error::Error;
use crate::domain::id::SessionId;
use crate::domain::session::Meta;

/// Which key-value operation a fault hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Get,
    Put,
    Delete,
    List,
}

/// How an injected fault fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// KV's write limit (one write per second per key).
    Busy,
    /// Any other store failure.
    Unavailable,
}

/// Value, metadata and the TTL it was saved with.
type Stored = (String, Option<String>, u64);

#[derive(Default)]
pub struct MemoryKv {
    pub entries: RefCell<HashMap<String, Stored>>,
    operations: Cell<u32>,
    faults: RefCell<VecDeque<(Op, Fault)>>,
}

impl MemoryKv {
    pub fn insert_legacy(&self, key: &str, value: &str) {
        self.entries
            .borrow_mut()
            .insert(key.into(), (value.into(), None, 0));
    }

    pub fn value(&self, key: &str) -> Option<String> {
        self.entries
            .borrow()
            .get(key)
            .map(|(value, _, _)| value.clone())
    }

    pub fn meta(&self, key: &str) -> Option<Meta> {
        let entries = self.entries.borrow();
        Meta::from_json(entries.get(key)?.1.as_deref()?)
    }

    pub fn kv_ttl(&self, key: &str) -> Option<u64> {
        self.entries.borrow().get(key).map(|(_, _, ttl)| *ttl)
    }

    /// Operations since the last call.
    pub fn take_operations(&self) -> u32 {
        self.operations.replace(0)
    }

    /// The next `op` fails with `fault` (faults queue up in order).
    pub fn fail_next(&self, op: Op, fault: Fault) {
        self.faults.borrow_mut().push_back((op, fault));
    }

    fn operate(&self, op: Op) -> Result<(), Error> {
        self.operations.set(self.operations.get() + 1);
        let mut faults = self.faults.borrow_mut();
        let Some(position) = faults.iter().position(|(o, _)| *o == op) else {
            return Ok(());
        };
        let cause = format!("injected {op:?} fault");
        match faults.remove(position).map(|(_, fault)| fault) {
            Some(Fault::Busy) => Err(Error::StoreBusy(cause)),
            _ => Err(Error::StoreUnavailable(cause)),
        }
    }
}

impl KeyValue for MemoryKv {
    type Body = String;

    async fn get(&self, key: &str) -> Result<Option<(String, Option<String>)>, Error> {
        self.operate(Op::Get)?;
        Ok(self
            .entries
            .borrow()
            .get(key)
            .map(|(value, meta, _)| (value.clone(), meta.clone())))
    }

    async fn open(&self, key: &str) -> Result<Option<(String, Option<String>)>, Error> {
        self.get(key).await
    }

    async fn put(
        &self,
        key: &str,
        value: &[u8],
        metadata: Option<&str>,
        ttl_seconds: u64,
    ) -> Result<(), Error> {
        self.operate(Op::Put)?;
        let value =
            String::from_utf8(value.to_vec()).map_err(|_| Error::Internal("not UTF-8".into()))?;
        let metadata = metadata.map(str::to_owned);
        self.entries
            .borrow_mut()
            .insert(key.into(), (value, metadata, ttl_seconds));
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, Option<String>)>, Error> {
        self.operate(Op::List)?;
        let mut keys: Vec<(String, Option<String>)> = self
            .entries
            .borrow()
            .iter()
            .filter(|(key, _)| key.starts_with(prefix))
            .map(|(key, (_, meta, _))| (key.clone(), meta.clone()))
            .collect();
        keys.sort();
        Ok(keys)
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        self.operate(Op::Delete)?;
        self.entries.borrow_mut().remove(key);
        Ok(())
    }
}

/// Sessions with a true compare-and-swap, as a Durable Object keeps them, and a hook that lets
/// another writer in between an operation's read and its write.
#[derive(Default)]
pub struct StrictSessions {
    pub inner: KvSessions<MemoryKv>,
    /// Writes made by "someone else" just before this store's next writes, one per write.
    interleaved: RefCell<VecDeque<(SessionId, String)>>,
}

impl StrictSessions {
    pub fn kv(&self) -> &MemoryKv {
        &self.inner.0
    }

    /// Before the next write, another writer replaces the data of `id` (a new version).
    pub fn interleave(&self, id: SessionId, data: &str) {
        self.interleaved.borrow_mut().push_back((id, data.into()));
    }

    /// The stored record, read without counting an operation.
    fn current(&self, id: &SessionId) -> Option<Record> {
        let entries = self.kv().entries.borrow();
        entries.get(&id.to_string()).map(|(data, meta, _)| Record {
            data: data.clone(),
            meta: meta.as_deref().and_then(Meta::from_json),
        })
    }

    async fn let_others_write(&self) -> Result<(), Error> {
        let next = self.interleaved.borrow_mut().pop_front();
        if let Some((id, data)) = next {
            let current = self.inner.load(&id).await?;
            if let Some(meta) = current.and_then(|record| record.meta) {
                let meta = Meta {
                    version: meta.version + 1,
                    ..meta
                };
                let _ = self
                    .inner
                    .save(&id, data.as_bytes(), &meta, Expect::Any)
                    .await?;
            }
        }
        Ok(())
    }
}

impl SessionStore for StrictSessions {
    type Body = String;

    async fn load(&self, id: &SessionId) -> Result<Option<Record>, Error> {
        self.inner.load(id).await
    }

    async fn open(&self, id: &SessionId) -> Result<Option<(String, Option<Meta>)>, Error> {
        self.inner.open(id).await
    }

    async fn save(
        &self,
        id: &SessionId,
        data: &[u8],
        meta: &Meta,
        expect: Expect,
    ) -> Result<Outcome, Error> {
        self.let_others_write().await?;
        if !expect.holds(self.current(id).as_ref()) {
            return Ok(Outcome::Conflict);
        }
        self.inner.save(id, data, meta, expect).await
    }

    async fn remove(&self, id: &SessionId, expect: Expect) -> Result<Outcome, Error> {
        self.let_others_write().await?;
        if !expect.holds(self.current(id).as_ref()) {
            return Ok(Outcome::Conflict);
        }
        self.inner.remove(id, expect).await
    }
}

/// Runs a future whose I/O is all in memory, hence ready at once.
pub fn run<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("an in-memory future was pending"),
    }
}

/// A Durable Object's storage for native tests: SQLite itself, an alarm clock to read, and a
/// count of statements.
#[cfg(not(target_arch = "wasm32"))]
pub mod sqlite {
    use std::cell::Cell;

    use rusqlite::types::{Value as SqliteValue, ValueRef};

    use super::super::durable::{ObjectStorage, Value};
    use crate::domain::error::Error;
    use crate::domain::time::Millis;

    pub struct SqliteStorage {
        connection: rusqlite::Connection,
        pub alarm: Cell<Option<Millis>>,
        statements: Cell<u32>,
        alarm_writes: Cell<u32>,
    }

    impl Default for SqliteStorage {
        fn default() -> Self {
            Self {
                connection: rusqlite::Connection::open_in_memory().expect("in-memory SQLite"),
                alarm: Cell::new(None),
                statements: Cell::new(0),
                alarm_writes: Cell::new(0),
            }
        }
    }

    fn sqlite_error(err: rusqlite::Error) -> Error {
        Error::Internal(format!("sqlite: {err}"))
    }

    impl SqliteStorage {
        /// Whether the object holds nothing (what an object costs nothing for).
        pub fn is_empty(&self) -> bool {
            self.tables().is_empty() && self.alarm.get().is_none()
        }

        fn tables(&self) -> Vec<String> {
            let mut statement = self
                .connection
                .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
                .expect("prepares");
            let names = statement.query_map([], |row| row.get(0)).expect("runs");
            names.map(|name| name.expect("a name")).collect()
        }

        /// SQL statements and alarm writes since the last call.
        pub fn take_operations(&self) -> (u32, u32) {
            (self.statements.replace(0), self.alarm_writes.replace(0))
        }
    }

    impl ObjectStorage for SqliteStorage {
        fn exec(&self, query: &str, params: Vec<Value>) -> Result<Vec<Vec<Value>>, Error> {
            self.statements.set(self.statements.get() + 1);
            let mut statement = self.connection.prepare(query).map_err(sqlite_error)?;
            let columns = statement.column_count();
            let params = params.into_iter().map(|value| match value {
                Value::Null => SqliteValue::Null,
                Value::Integer(n) => SqliteValue::Integer(n),
                Value::Text(text) => SqliteValue::Text(text),
            });
            let rows = statement
                .query_map(rusqlite::params_from_iter(params), |row| {
                    (0..columns)
                        .map(|i| {
                            Ok(match row.get_ref(i)? {
                                ValueRef::Integer(n) => Value::Integer(n),
                                ValueRef::Text(text) => {
                                    Value::Text(String::from_utf8_lossy(text).into_owned())
                                }
                                _ => Value::Null,
                            })
                        })
                        .collect()
                })
                .map_err(sqlite_error)?;
            rows.collect::<Result<_, _>>().map_err(sqlite_error)
        }

        async fn set_alarm(&self, at: Millis) -> Result<(), Error> {
            self.alarm_writes.set(self.alarm_writes.get() + 1);
            self.alarm.set(Some(at));
            Ok(())
        }

        async fn delete_all(&self) -> Result<(), Error> {
            for table in self.tables() {
                self.connection
                    .execute(&format!("DROP TABLE {table}"), [])
                    .map_err(sqlite_error)?;
            }
            self.alarm_writes.set(self.alarm_writes.get() + 1);
            self.alarm.set(None);
            Ok(())
        }
    }
}
