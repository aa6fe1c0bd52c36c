//! Strong mode: each session in a Durable Object of its own, in the object's SQLite storage.
//!
//! The object serves one request at a time (see [`crate::objects`]), so nothing can come
//! between an operation's read and its write. Every write still states the version it replaces
//! and the statement itself checks it (`UPDATE ... WHERE version = ? RETURNING`), so the seam's
//! contract holds as written, not by luck of scheduling.
//!
//! Storage does not grow with dead sessions: an alarm at `expiresAt` ends the session, and an
//! object whose session ended holds nothing at all. The one exception is a session moved here
//! from KV: once it ends, its object keeps a marker for [`KV_STALE_MS`] after the KV copy was
//! deleted, so that a stale KV read cannot bring it back; then that goes too.

use std::cell::Cell;

use crate::domain::error::Error;
use crate::domain::id::SessionId;
use crate::domain::session::{Meta, Policy};
use crate::domain::subject::Subject;
use crate::domain::time::Millis;
use crate::store::durable::{has_table, int, ObjectStorage, Value};
use crate::store::kv::KvSessions;
use crate::store::{Expect, KeyValue, Outcome, Record, SessionStore};

/// How long an ended session that came from KV keeps its marker after its KV copy was deleted:
/// KV can serve a deleted value at other locations for about 60 s.
pub const KV_STALE_MS: Millis = 10 * 60 * 1000;

/// How soon a failed delete of a KV copy is tried again.
pub const KV_RETRY_MS: Millis = 60 * 1000;

/// One row: the object's session. `id` is there for the alarm, which has no request to name it.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS session (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    id TEXT NOT NULL,
    data TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    version INTEGER NOT NULL,
    ttl INTEGER,
    from_kv INTEGER NOT NULL DEFAULT 0,
    kv_deleted_at INTEGER,
    subject TEXT
)";

const COLUMNS: &str =
    "data, created_at, updated_at, expires_at, version, ttl, from_kv, kv_deleted_at, subject";

/// The session row: `record` is `None` once a session moved from KV has ended (its marker).
#[derive(Debug)]
struct Row {
    record: Option<Record>,
    from_kv: bool,
    kv_deleted_at: Option<Millis>,
}

/// The session of one Durable Object (`own`), in its SQLite storage.
pub struct SqlSessions<S, K, P> {
    pub storage: S,
    /// KV, where sessions of KV mode and of the old worker wait for their first use here.
    pub kv: KvSessions<K>,
    /// The other sessions' objects: rotation writes the new id there.
    pub peers: P,
    pub own: SessionId,
    pub policy: Policy,
    pub now: Millis,
    /// Whether the table exists, once known in this request: one statement fewer per write.
    table: Cell<Option<bool>>,
}

/// The parameters of an insert or update: id, data, then the lifecycle.
fn row_params(id: &SessionId, data: &[u8], meta: &Meta) -> Result<Vec<Value>, Error> {
    let data = std::str::from_utf8(data)
        .map_err(|_| Error::Internal("session data is not UTF-8".into()))?;
    Ok(vec![
        Value::Text(id.to_string()),
        Value::Text(data.to_owned()),
        int(meta.created_at),
        int(meta.updated_at),
        int(meta.expires_at),
        int(meta.version),
        meta.ttl.map_or(Value::Null, int),
        meta.subject
            .map_or(Value::Null, |subject| Value::Text(subject.hex())),
    ])
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

/// A row as `SELECT {COLUMNS}` gives it; the data is moved out, not copied.
fn parse_row(mut row: Vec<Value>) -> Result<Row, Error> {
    let data = match row.first_mut() {
        Some(Value::Text(text)) => Some(std::mem::take(text)),
        _ => None,
    };
    let row = row.as_slice();
    let number = |index| column(row, index)?.ok_or_else(|| Error::Internal("null column".into()));
    let meta = Meta {
        created_at: number(1)?,
        updated_at: number(2)?,
        expires_at: number(3)?,
        version: number(4)?,
        ttl: column(row, 5)?,
        subject: match row.get(8) {
            Some(Value::Text(hex)) => Subject::from_hex(hex),
            _ => None,
        },
    };
    Ok(Row {
        record: data.map(|data| Record {
            data,
            meta: Some(meta),
        }),
        from_kv: number(6)? == 1,
        kv_deleted_at: column(row, 7)?,
    })
}

/// The id of the session an object holds (or held), for its alarm; `None` for an empty object.
pub fn stored_id(storage: &impl ObjectStorage) -> Result<Option<SessionId>, Error> {
    if !has_table(storage, "session")? {
        return Ok(None);
    }
    let rows = storage.exec("SELECT id FROM session", vec![])?;
    Ok(match rows.first().and_then(|row| row.first()) {
        Some(Value::Text(id)) => SessionId::parse(id),
        _ => None,
    })
}

impl<S: ObjectStorage, K: KeyValue, P: SessionStore> SqlSessions<S, K, P> {
    /// The store for one request (or one alarm) to the object of `own`, at `now`.
    pub fn new(storage: S, kv: K, peers: P, own: SessionId, policy: Policy, now: Millis) -> Self {
        Self {
            storage,
            kv: KvSessions(kv),
            peers,
            own,
            policy,
            now,
            table: Cell::new(None),
        }
    }

    /// The same object as a later request meets it, at `now`: nothing this request learnt of
    /// its storage carries over.
    #[cfg(all(test, not(target_arch = "wasm32")))]
    pub fn next_request(&mut self, now: Millis) {
        self.now = now;
        self.table.set(None);
    }

    fn has_table(&self) -> Result<bool, Error> {
        if let Some(known) = self.table.get() {
            return Ok(known);
        }
        let exists = has_table(&self.storage, "session")?;
        self.table.set(Some(exists));
        Ok(exists)
    }

    fn create_table(&self) -> Result<(), Error> {
        if self.table.get() != Some(true) {
            self.storage.exec(SCHEMA, vec![])?;
            self.table.set(Some(true));
        }
        Ok(())
    }

    async fn delete_all(&self) -> Result<(), Error> {
        self.table.set(Some(false));
        self.storage.delete_all().await
    }

    /// The row, without asking KV. Reads create no storage: an object asked about an unknown id
    /// stays empty.
    fn row(&self) -> Result<Option<Row>, Error> {
        if !self.has_table()? {
            return Ok(None);
        }
        let rows = self
            .storage
            .exec(&format!("SELECT {COLUMNS} FROM session"), vec![])?;
        rows.into_iter().next().map(parse_row).transpose()
    }

    /// The session, read through from KV on first use: a session that exists only in KV (KV mode,
    /// or the old worker) moves here and its KV copy is deleted.
    async fn load_own(&self) -> Result<Option<Record>, Error> {
        match self.row()? {
            Some(row) => {
                if row.from_kv && row.kv_deleted_at.is_none() && row.record.is_some() {
                    self.delete_kv_copy().await;
                }
                Ok(row.record)
            }
            None => self.move_from_kv().await,
        }
    }

    async fn move_from_kv(&self) -> Result<Option<Record>, Error> {
        let Some(Record { data, meta }) = self.kv.load(&self.own).await? else {
            return Ok(None);
        };
        // Entries of the old worker have no lifecycle: moving counts as their first write of
        // metadata, so they expire like any other session from now on.
        let meta = meta.unwrap_or_else(|| Meta::legacy(self.now, self.policy));
        if !meta.is_alive(self.now) {
            return Ok(None);
        }
        self.create_table()?;
        let mut params = row_params(&self.own, data.as_bytes(), &meta)?;
        params.push(Value::Integer(1));
        self.storage.exec(
            "INSERT INTO session (one, id, data, created_at, updated_at, expires_at, version, ttl, \
             subject, from_kv) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            params,
        )?;
        self.storage.set_alarm(meta.expires_at).await?;
        self.delete_kv_copy().await;
        Ok(Some(Record {
            data,
            meta: Some(meta),
        }))
    }

    /// Deletes the KV copy of a session moved here. A failure is retried later (on the next
    /// request, or by the alarm), never fatal: the session is already served from here.
    async fn delete_kv_copy(&self) -> bool {
        if self.kv.remove(&self.own, Expect::Any).await.is_err() {
            return false;
        }
        self.storage
            .exec("UPDATE session SET kv_deleted_at = ?", vec![int(self.now)])
            .is_ok()
    }

    async fn save_own(&self, data: &[u8], meta: &Meta, expect: Expect) -> Result<Outcome, Error> {
        let mut params = row_params(&self.own, data, meta)?;
        let query = match expect {
            Expect::Absent => {
                self.create_table()?;
                "INSERT INTO session (one, id, data, created_at, updated_at, expires_at, version, \
                 ttl, subject) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (one) DO NOTHING \
                 RETURNING version"
            }
            Expect::Version(version) => {
                if !self.has_table()? {
                    return Ok(Outcome::Conflict);
                }
                params.push(int(version));
                "UPDATE session SET id = ?, data = ?, created_at = ?, updated_at = ?, \
                 expires_at = ?, version = ?, ttl = ?, subject = ? WHERE data IS NOT NULL \
                 AND version = ? RETURNING version"
            }
            Expect::Any => {
                self.create_table()?;
                "INSERT INTO session (one, id, data, created_at, updated_at, expires_at, version, \
                 ttl, subject) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (one) DO UPDATE SET \
                 data = excluded.data, created_at = excluded.created_at, \
                 updated_at = excluded.updated_at, expires_at = excluded.expires_at, \
                 version = excluded.version, ttl = excluded.ttl, subject = excluded.subject \
                 RETURNING version"
            }
        };
        if self.storage.exec(query, params)?.is_empty() {
            return Ok(Outcome::Conflict);
        }
        self.storage.set_alarm(meta.expires_at).await?;
        Ok(Outcome::Written)
    }

    async fn remove_own(&self, expect: Expect) -> Result<Outcome, Error> {
        let row = self.row()?;
        if !expect.holds(row.as_ref().and_then(|row| row.record.as_ref())) {
            return Ok(Outcome::Conflict);
        }
        if let Some(row) = row.filter(|row| row.record.is_some()) {
            self.end(&row).await?;
        }
        Ok(Outcome::Written)
    }

    /// Ends the session: nothing stays, unless it came from KV (then a marker, for a while).
    async fn end(&self, row: &Row) -> Result<(), Error> {
        if !row.from_kv {
            return self.delete_all().await;
        }
        self.storage
            .exec("UPDATE session SET data = NULL", vec![])?;
        let at = match row.kv_deleted_at {
            Some(deleted) => deleted + KV_STALE_MS,
            None => self.now + KV_RETRY_MS,
        };
        self.storage.set_alarm(at).await
    }

    /// The alarm: ends an expired session, or sets the alarm again for one renewed since, and
    /// clears the marker of a session moved from KV once KV cannot serve its copy any more.
    pub async fn on_alarm(&self) -> Result<(), Error> {
        let Some(row) = self.row()? else {
            return self.delete_all().await;
        };
        if let Some(meta) = row.record.as_ref().and_then(|record| record.meta) {
            return if meta.is_alive(self.now) {
                self.storage.set_alarm(meta.expires_at).await
            } else {
                self.end(&row).await
            };
        }
        let deleted = match row.kv_deleted_at {
            Some(deleted) => deleted,
            None if self.delete_kv_copy().await => self.now,
            None => return self.storage.set_alarm(self.now + KV_RETRY_MS).await,
        };
        if self.now >= deleted + KV_STALE_MS {
            self.delete_all().await
        } else {
            self.storage.set_alarm(deleted + KV_STALE_MS).await
        }
    }
}

impl<S: ObjectStorage, K: KeyValue, P: SessionStore> SessionStore for SqlSessions<S, K, P> {
    type Body = String;

    async fn load(&self, id: &SessionId) -> Result<Option<Record>, Error> {
        if *id == self.own {
            self.load_own().await
        } else {
            self.peers.load(id).await
        }
    }

    async fn open(&self, id: &SessionId) -> Result<Option<(String, Option<Meta>)>, Error> {
        let record = self.load(id).await?;
        Ok(record.map(|record| (record.data, record.meta)))
    }

    async fn save(
        &self,
        id: &SessionId,
        data: &[u8],
        meta: &Meta,
        expect: Expect,
    ) -> Result<Outcome, Error> {
        if *id == self.own {
            self.save_own(data, meta, expect).await
        } else {
            self.peers.save(id, data, meta, expect).await
        }
    }

    async fn remove(&self, id: &SessionId, expect: Expect) -> Result<Outcome, Error> {
        if *id == self.own {
            self.remove_own(expect).await
        } else {
            self.peers.remove(id, expect).await
        }
    }
}
