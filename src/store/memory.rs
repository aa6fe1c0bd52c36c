//! In-memory stores for native tests: key-value operations counted as the KV bill counts them,
//! failures injected on demand, and sessions with a true compare-and-swap (what a Durable Object
//! gives) to exercise the rules' handling of lost races.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};

#[cfg(not(target_arch = "wasm32"))]
use super::events::EventQueue;
use super::kv::KvSessions;
use std::future::Future;

use super::data::{Data, Plain};
use super::seal::{soft_decrypt, soft_encrypt, Aead};
use super::{Expect, KeyValue, MetaAt, Outcome, SessionRef, SessionStore, Stored};
use crate::domain::error::Error;
use crate::domain::event::Event;
use crate::domain::id::SessionId;
use crate::domain::renewal::Retirement;
use crate::domain::session::Meta;

/// Which key-value operation a fault hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Get,
    Put,
    Delete,
    List,
    /// A bulk read of up to 100 keys.
    GetBulk,
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
type Entry = (Vec<u8>, Option<String>, u64);

/// AES-256-GCM from RustCrypto for data of any size: the envelope of [`super::seal`] natively,
/// byte for byte what WebCrypto makes of it (`tests/wasm.rs` checks one against the other).
#[derive(Clone, Copy, Default)]
pub struct SoftAead;

impl Aead for SoftAead {
    async fn encrypt(
        &self,
        key: &[u8; 32],
        nonce: &[u8],
        aad: &[u8],
        plain: Plain<'_>,
        mut record: Vec<u8>,
    ) -> Result<Data<'static>, Error> {
        let sealed = soft_encrypt(key, nonce, aad, &plain.here())?;
        record.reserve_exact(sealed.len());
        record.extend_from_slice(&sealed);
        Ok(Data::Here(record.into()))
    }

    fn decrypt(
        &self,
        key: &[u8; 32],
        nonce: &[u8],
        aad: &[u8],
        sealed: &[u8],
    ) -> impl Future<Output = Result<Option<Vec<u8>>, Error>> + 'static {
        std::future::ready(Ok(soft_decrypt(key, nonce, aad, sealed)))
    }
}

/// Sessions on `kv` as the worker keeps them, sealed natively, with the legacy lookup on.
pub fn sealed<K: KeyValue>(kv: K) -> KvSessions<K, SoftAead> {
    KvSessions::new(kv, SoftAead, true)
}

#[derive(Default)]
pub struct MemoryKv {
    pub entries: RefCell<HashMap<String, Entry>>,
    operations: Cell<u32>,
    faults: RefCell<VecDeque<(Op, Fault)>>,
}

impl MemoryKv {
    /// An entry as the old worker wrote it: the data under the bare id, no metadata.
    pub fn insert_legacy(&self, key: &str, value: &str) {
        self.insert(key, value, None);
    }

    pub fn insert(&self, key: &str, value: &str, metadata: Option<String>) {
        self.entries
            .borrow_mut()
            .insert(key.into(), (value.into(), metadata, 0));
    }

    /// The value as stored (sealed, for a session of this version).
    pub fn bytes(&self, key: &str) -> Option<Vec<u8>> {
        self.entries
            .borrow()
            .get(key)
            .map(|(value, _, _)| value.clone())
    }

    /// Every key, value and metadata, as one text: what a dump of the namespace shows.
    pub fn dump(&self) -> String {
        let entries = self.entries.borrow();
        let mut dump = String::new();
        for (key, (value, meta, _)) in entries.iter() {
            let value = String::from_utf8_lossy(value);
            dump.push_str(&format!("{key}\t{value}\t{meta:?}\n"));
        }
        dump
    }

    pub fn meta(&self, key: &str) -> Option<Meta> {
        let entries = self.entries.borrow();
        Meta::from_json(entries.get(key)?.1.as_deref()?)
    }

    pub fn kv_ttl(&self, key: &str) -> Option<u64> {
        self.entries.borrow().get(key).map(|(_, _, ttl)| *ttl)
    }

    /// `f`, its operations left uncounted: a test's own look at the store.
    pub fn uncounted<T>(&self, f: impl FnOnce() -> T) -> T {
        let counted = self.operations.get();
        let out = f();
        self.operations.set(counted);
        out
    }

    /// The data of session `id` as the worker would read it, uncounted.
    pub fn plain(&self, id: &SessionId) -> Option<String> {
        let stored = self.uncounted(|| run(sealed(self).load(id)).ok().flatten());
        stored.and_then(Stored::session).map(|record| record.data)
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
    async fn get(&self, key: &str) -> Result<Option<(String, Option<String>)>, Error> {
        let entry = self.get_bytes(key).await?;
        entry
            .map(|(value, meta)| {
                let text = String::from_utf8(value);
                Ok((text.map_err(|_| Error::Internal("not UTF-8".into()))?, meta))
            })
            .transpose()
    }

    async fn get_bytes(&self, key: &str) -> Result<Option<(Vec<u8>, Option<String>)>, Error> {
        self.operate(Op::Get)?;
        Ok(self
            .entries
            .borrow()
            .get(key)
            .map(|(value, meta, _)| (value.clone(), meta.clone())))
    }

    async fn put(
        &self,
        key: &str,
        value: Plain<'_>,
        metadata: Option<&str>,
        ttl_seconds: u64,
    ) -> Result<(), Error> {
        self.operate(Op::Put)?;
        let value = value.here().into_owned();
        let metadata = metadata.map(str::to_owned);
        self.entries
            .borrow_mut()
            .insert(key.into(), (value, metadata, ttl_seconds));
        Ok(())
    }

    /// One operation per thousand keys listed, as KV pages them.
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
        let pages = keys.len().div_ceil(1000).max(1) as u32;
        self.operations.set(self.operations.get() + pages - 1);
        Ok(keys)
    }

    async fn metadata_of(&self, keys: &[String]) -> Result<Vec<Option<Option<String>>>, Error> {
        if keys.len() > super::BULK_KEYS {
            return Err(Error::Internal(format!(
                "a bulk read of {} keys",
                keys.len()
            )));
        }
        self.operate(Op::GetBulk)?;
        let entries = self.entries.borrow();
        Ok(keys
            .iter()
            .map(|key| entries.get(key).map(|(_, meta, _)| meta.clone()))
            .collect())
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        self.operate(Op::Delete)?;
        self.entries.borrow_mut().remove(key);
        Ok(())
    }
}

/// Sessions with a true compare-and-swap, as a Durable Object keeps them, and a hook that lets
/// another writer in between an operation's read and its write.
pub struct StrictSessions {
    pub inner: KvSessions<MemoryKv, SoftAead>,
    /// Writes made by "someone else" just before this store's next writes, one per write.
    interleaved: RefCell<VecDeque<(SessionId, String)>>,
}

impl Default for StrictSessions {
    fn default() -> Self {
        Self {
            inner: sealed(MemoryKv::default()),
            interleaved: RefCell::default(),
        }
    }
}

impl StrictSessions {
    pub fn kv(&self) -> &MemoryKv {
        &self.inner.kv
    }

    /// Before the next write, another writer replaces the data of `id` (a new version).
    pub fn interleave(&self, id: SessionId, data: &str) {
        self.interleaved.borrow_mut().push_back((id, data.into()));
    }

    /// The stored record, read without counting an operation.
    fn current(&self, id: &SessionId) -> Option<Stored> {
        self.kv()
            .uncounted(|| run(self.inner.load(id)).ok().flatten())
    }

    /// Lets the writers waiting to interleave write, then whether `id` is as `expect` says:
    /// the compare of a compare-and-swap, as a Durable Object's statement makes it.
    async fn admits(&self, id: &SessionId, expect: Expect) -> Result<bool, Error> {
        self.let_others_write().await?;
        Ok(expect.holds(self.current(id).as_ref()))
    }

    async fn let_others_write(&self) -> Result<(), Error> {
        let next = self.interleaved.borrow_mut().pop_front();
        if let Some((id, data)) = next {
            let current = self.inner.load(&id).await?.and_then(Stored::session);
            if let Some(meta) = current.and_then(|record| record.meta) {
                let meta = Meta {
                    version: meta.version + 1,
                    ..meta
                };
                let _ = self
                    .inner
                    .save(&id, data.as_bytes().into(), &meta, Expect::Any, None)
                    .await?;
            }
        }
        Ok(())
    }
}

impl SessionStore for StrictSessions {
    async fn load(&self, id: &SessionId) -> Result<Option<Stored>, Error> {
        self.inner.load(id).await
    }

    async fn retire(
        &self,
        id: &SessionId,
        retirement: &Retirement,
        meta: &Meta,
        expect: Expect,
        event: Option<&Event>,
    ) -> Result<Outcome, Error> {
        if !self.admits(id, expect).await? {
            return Ok(Outcome::Conflict);
        }
        self.inner.retire(id, retirement, meta, expect, event).await
    }

    async fn save(
        &self,
        id: &SessionId,
        data: Plain<'_>,
        meta: &Meta,
        expect: Expect,
        event: Option<&Event>,
    ) -> Result<Outcome, Error> {
        if !self.admits(id, expect).await? {
            return Ok(Outcome::Conflict);
        }
        self.inner.save(id, data, meta, expect, event).await
    }

    async fn remove(
        &self,
        id: &SessionId,
        expect: Expect,
        event: Option<&Event>,
    ) -> Result<Outcome, Error> {
        if !self.admits(id, expect).await? {
            return Ok(Outcome::Conflict);
        }
        self.inner.remove(id, expect, event).await
    }

    async fn meta_at(&self, at: &SessionRef) -> Result<Option<(Meta, SessionRef)>, Error> {
        self.inner.meta_at(at).await
    }

    async fn metas_at(&self, at: &[SessionRef]) -> Result<Vec<MetaAt>, Error> {
        self.inner.metas_at(at).await
    }

    /// As a Durable Object's own row is.
    fn reads_are_local(&self) -> bool {
        true
    }

    async fn remove_at(&self, at: &SessionRef, event: Option<&Event>) -> Result<bool, Error> {
        self.inner.remove_at(at, event).await
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

/// A Queue for native tests: what was sent, in order, and a number of sends still to fail.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Default)]
pub struct RecordingQueue {
    pub sent: RefCell<Vec<String>>,
    pub failures: Cell<u32>,
}

#[cfg(not(target_arch = "wasm32"))]
impl RecordingQueue {
    /// The events sent so far, parsed.
    pub fn events(&self) -> Vec<serde_json::Value> {
        let sent = self.sent.borrow();
        sent.iter()
            .map(|text| serde_json::from_str(text).expect("an event is JSON"))
            .collect()
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl EventQueue for RecordingQueue {
    async fn send(&self, events: &[&str]) -> Result<(), Error> {
        if self.failures.get() > 0 {
            self.failures.set(self.failures.get() - 1);
            return Err(Error::StoreUnavailable("queue: injected".into()));
        }
        let mut sent = self.sent.borrow_mut();
        sent.extend(events.iter().map(|event| (*event).to_owned()));
        Ok(())
    }
}

/// A Durable Object's storage for native tests: SQLite itself, an alarm clock to read, and a
/// count of statements.
#[cfg(not(target_arch = "wasm32"))]
pub mod sqlite {
    use std::cell::Cell;

    use rusqlite::types::{Value as SqliteValue, ValueRef};

    use super::super::durable::record::{KnownTables, Tables};
    use super::super::durable::{ObjectStorage, Value};
    use crate::domain::error::Error;
    use crate::domain::time::Millis;

    pub struct SqliteStorage {
        connection: rusqlite::Connection,
        pub alarm: Cell<Option<Millis>>,
        statements: Cell<u32>,
        alarm_writes: Cell<u32>,
        /// A statement that starts with this fails, once: an injected storage fault.
        pub fail_once: Cell<Option<&'static str>>,
        known: KnownTables,
    }

    impl Default for SqliteStorage {
        fn default() -> Self {
            Self {
                connection: rusqlite::Connection::open_in_memory().expect("in-memory SQLite"),
                alarm: Cell::new(None),
                statements: Cell::new(0),
                alarm_writes: Cell::new(0),
                fail_once: Cell::new(None),
                known: KnownTables::default(),
            }
        }
    }

    fn sqlite_error(err: rusqlite::Error) -> Error {
        Error::Internal(format!("sqlite: {err}"))
    }

    impl SqliteStorage {
        /// Every row of every table a session's or a subject's object may hold, as text in
        /// lowercase: what a test searches for an id or data that must not be there.
        pub fn dump(&self) -> String {
            let mut out = String::new();
            for table in ["record", "session", "entry", "member"] {
                if let Ok(rows) = self.exec(&format!("SELECT * FROM {table}"), vec![]) {
                    for row in rows {
                        for value in row {
                            let text = match value {
                                Value::Blob(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                                other => format!("{other:?}"),
                            };
                            out.push_str(&text);
                            out.push(' ');
                        }
                        out.push('\n');
                    }
                }
            }
            out.to_lowercase()
        }

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
            if let Some(prefix) = self.fail_once.get().filter(|p| query.starts_with(p)) {
                self.fail_once.set(None);
                return Err(Error::StoreUnavailable(format!("injected: {prefix}")));
            }
            let mut statement = self.connection.prepare(query).map_err(sqlite_error)?;
            let columns = statement.column_count();
            let params = params.into_iter().map(|value| match value {
                Value::Null => SqliteValue::Null,
                Value::Integer(n) => SqliteValue::Integer(n),
                Value::Text(text) => SqliteValue::Text(text),
                Value::Blob(bytes) => SqliteValue::Blob(bytes),
                Value::BlobOutside(outside) => SqliteValue::Blob(outside.0.to_vec()),
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
                                ValueRef::Blob(bytes) => Value::Blob(bytes.to_vec()),
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
            self.known.forget();
            for table in self.tables() {
                self.connection
                    .execute(&format!("DROP TABLE {table}"), [])
                    .map_err(sqlite_error)?;
            }
            self.alarm_writes.set(self.alarm_writes.get() + 1);
            self.alarm.set(None);
            self.known.set(Tables::default());
            Ok(())
        }

        /// A savepoint, as `transactionSync` is one (it nests).
        fn atomically(&self, change: &mut dyn FnMut() -> Result<(), Error>) -> Result<(), Error> {
            let run = |sql: &str| self.connection.execute_batch(sql).map_err(sqlite_error);
            run("SAVEPOINT atomically")?;
            match change() {
                Ok(()) => run("RELEASE atomically"),
                Err(err) => {
                    self.known.forget();
                    run("ROLLBACK TO atomically; RELEASE atomically")?;
                    Err(err)
                }
            }
        }

        fn known_tables(&self) -> &KnownTables {
            &self.known
        }
    }
}
