//! Strong mode: each session in a Durable Object of its own, in the object's SQLite storage.
//!
//! The object serves one request at a time (see [`crate::durable_object`]), so nothing can come
//! between an operation's read and its write. Every write still states the version it replaces
//! and the statement itself checks it (`UPDATE ... WHERE version = ? RETURNING`), so the seam's
//! contract holds as written, not by luck of scheduling.
//!
//! Storage does not grow with dead sessions: an alarm at `expiresAt` ends the session, and an
//! object whose session ended holds nothing at all. The one exception is a session moved here
//! from KV: once it ends, its object keeps a marker for [`KV_STALE_MS`] after the KV copy was
//! deleted, so that a stale KV read cannot bring it back; then that goes too.
//!
//! The SQL runs against [`ObjectStorage`]: the Durable Object's storage in the worker, SQLite
//! itself in native tests, so every statement here is tested natively.

use std::cell::Cell;

use worker::js_sys::{Date as JsDate, Uint8Array};
use worker::wasm_bindgen::JsValue;
use worker::{
    web_sys, ObjectNamespace, Request, ScheduledTime, SqlStorage, SqlStorageValue, Storage,
};

use super::kv::KvSessions;
use super::{Expect, KeyValue, Member, Outcome, Record, SessionStore, SubjectIndex};
use crate::error::Error;
use crate::id::SessionId;
use crate::session::{Meta, Millis, Policy};
use crate::subject::Subject;

/// How long an ended session that came from KV keeps its marker after its KV copy was deleted:
/// KV can serve a deleted value at other locations for about 60 s.
pub const KV_STALE_MS: Millis = 10 * 60 * 1000;

/// How soon a failed delete of a KV copy is tried again.
const KV_RETRY_MS: Millis = 60 * 1000;

/// A value in or out of SQLite.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Text(String),
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
}

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

fn int(value: u64) -> Value {
    Value::Integer(i64::try_from(value).unwrap_or(i64::MAX))
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

/// Whether the table `name` exists: objects create their tables on first write, so that an
/// object only ever read stays empty.
fn has_table(storage: &impl ObjectStorage, name: &str) -> Result<bool, Error> {
    let rows = storage.exec(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
        vec![Value::Text(name.into())],
    )?;
    Ok(!rows.is_empty())
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

/// A Durable Object's own storage: SQL, alarm and all.
pub struct DoStorage {
    storage: Storage,
    sql: SqlStorage,
}

impl DoStorage {
    pub fn new(storage: Storage) -> Self {
        let sql = storage.sql();
        Self { storage, sql }
    }
}

fn storage_failure(err: worker::Error) -> Error {
    Error::StoreUnavailable(format!("durable object storage: {err}"))
}

impl ObjectStorage for DoStorage {
    fn exec(&self, query: &str, params: Vec<Value>) -> Result<Vec<Vec<Value>>, Error> {
        let bindings = params
            .into_iter()
            .map(|value| match value {
                Value::Null => SqlStorageValue::Null,
                Value::Integer(n) => SqlStorageValue::Integer(n),
                Value::Text(text) => SqlStorageValue::String(text),
            })
            .collect::<Vec<_>>();
        let cursor = self.sql.exec(query, bindings).map_err(storage_failure)?;
        cursor
            .raw()
            .map(|row| {
                let row = row.map_err(storage_failure)?;
                Ok(row
                    .into_iter()
                    .map(|value| match value {
                        SqlStorageValue::Integer(n) => Value::Integer(n),
                        // Whole numbers past 2^53 come back as floats; ours never get there.
                        SqlStorageValue::Float(f) => Value::Integer(f as i64),
                        SqlStorageValue::String(text) => Value::Text(text),
                        _ => Value::Null,
                    })
                    .collect())
            })
            .collect()
    }

    async fn set_alarm(&self, at: Millis) -> Result<(), Error> {
        let at = ScheduledTime::new(JsDate::new(&JsValue::from_f64(at as f64)));
        self.storage.set_alarm(at).await.map_err(storage_failure)
    }

    async fn delete_all(&self) -> Result<(), Error> {
        self.storage.delete_alarm().await.map_err(storage_failure)?;
        self.storage.delete_all().await.map_err(storage_failure)
    }
}

/// How objects ask one another to store or remove a session (rotation writes the new id into its
/// own object). Never reachable from outside: only a stub of the namespace can send it.
pub mod peer {
    use super::Expect;

    pub const PATH: &str = "/store";
    pub const META: &str = "session-state-meta";
    pub const EXPECT: &str = "session-state-expect";

    pub fn expect_header(expect: Expect) -> String {
        match expect {
            Expect::Absent => "absent".into(),
            Expect::Any => "any".into(),
            Expect::Version(version) => version.to_string(),
        }
    }

    pub fn parse_expect(header: &str) -> Option<Expect> {
        match header {
            "absent" => Some(Expect::Absent),
            "any" => Some(Expect::Any),
            version => version.parse().ok().map(Expect::Version),
        }
    }
}

/// The name under which a session's object lives, and the header that tells an object which
/// session a request is about.
pub const ID_HEADER: &str = "session-state-id";

/// A failed call to a Durable Object: an overloaded object is busy, anything else unavailable.
pub fn object_failure(err: worker::Error) -> Error {
    let message = err.to_string();
    let cause = format!("durable object: {message}");
    if message.contains("overloaded") {
        Error::StoreBusy(cause)
    } else {
        Error::StoreUnavailable(cause)
    }
}

/// Sends a request to the object named `name` in `namespace`: the one way the worker and the
/// objects reach an object.
pub async fn call_object(
    namespace: &ObjectNamespace,
    name: &str,
    url: &str,
    method: &str,
    headers: &web_sys::Headers,
    body: Option<&JsValue>,
) -> Result<worker::Response, Error> {
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    init.set_headers(headers);
    if let Some(body) = body {
        init.set_body(body);
    }
    let request = web_sys::Request::new_with_str_and_init(url, &init)
        .map_err(|err| Error::Internal(format!("a request to an object: {err:?}")))?;
    let stub = namespace
        .id_from_name(name)
        .and_then(|object| object.get_stub())
        .map_err(object_failure)?;
    stub.fetch_with_request(Request::from(request))
        .await
        .map_err(object_failure)
}

/// The objects of other sessions.
pub struct Peers(pub ObjectNamespace);

impl Peers {
    async fn send(
        &self,
        id: &SessionId,
        method: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<worker::Response, Error> {
        let id_text = id.to_string();
        let js = |err: JsValue| Error::StoreUnavailable(format!("durable object: {err:?}"));
        let request_headers = web_sys::Headers::new().map_err(js)?;
        request_headers.set(ID_HEADER, &id_text).map_err(js)?;
        for (name, value) in headers {
            request_headers.set(name, value).map_err(js)?;
        }
        let url = format!("https://session{}", peer::PATH);
        let body = body.map(Uint8Array::from);
        let body = body.as_ref().map(AsRef::as_ref);
        call_object(&self.0, &id_text, &url, method, &request_headers, body).await
    }

    fn outcome(response: &worker::Response) -> Result<Outcome, Error> {
        match response.status_code() {
            204 => Ok(Outcome::Written),
            409 => Ok(Outcome::Conflict),
            status => Err(Error::StoreUnavailable(format!(
                "a peer object answered {status}"
            ))),
        }
    }
}

impl SessionStore for Peers {
    type Body = String;

    async fn load(&self, id: &SessionId) -> Result<Option<Record>, Error> {
        let mut response = self.send(id, "GET", &[], None).await?;
        if response.status_code() == 404 {
            return Ok(None);
        }
        let meta = response.headers().get(peer::META).ok().flatten();
        let meta = meta.and_then(|meta| Meta::from_json(&meta));
        let data = response.text().await.map_err(object_failure)?;
        Ok(Some(Record { data, meta }))
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
        let headers = [
            (peer::META, meta.to_json()),
            (peer::EXPECT, peer::expect_header(expect)),
        ];
        let headers = headers
            .each_ref()
            .map(|(name, value)| (*name, value.as_str()));
        let response = self.send(id, "PUT", &headers, Some(data)).await?;
        Self::outcome(&response)
    }

    async fn remove(&self, id: &SessionId, expect: Expect) -> Result<Outcome, Error> {
        let expect = peer::expect_header(expect);
        let response = self
            .send(id, "DELETE", &[(peer::EXPECT, &expect)], None)
            .await?;
        Self::outcome(&response)
    }
}

/// The sessions of one subject, in its own Durable Object's SQLite storage: a row per session,
/// until the session's latest end. An alarm drops rows past it; an object with no rows left holds
/// nothing. Every operation is one synchronous statement or two, so the object needs no
/// `blockConcurrencyWhile`: session objects call it from inside theirs, and must never wait on
/// an object that waits on them.
pub struct SqlIndex<S>(pub S);

const INDEX_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS member (
    id TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    until INTEGER NOT NULL
)";

impl<S: ObjectStorage> SqlIndex<S> {
    fn has_table(&self) -> Result<bool, Error> {
        has_table(&self.0, "member")
    }

    /// Sets the alarm for the first row to go, or clears the object when none is left.
    async fn schedule(&self) -> Result<(), Error> {
        let rows = self.0.exec("SELECT min(until) FROM member", vec![])?;
        match rows.first().and_then(|row| row.first()) {
            Some(Value::Integer(until)) => {
                self.0.set_alarm(u64::try_from(*until).unwrap_or(0)).await
            }
            _ => self.0.delete_all().await,
        }
    }

    /// The alarm: drops the rows whose session cannot be alive any more.
    pub async fn on_alarm(&self, now: Millis) -> Result<(), Error> {
        if !self.has_table()? {
            return self.0.delete_all().await;
        }
        self.0
            .exec("DELETE FROM member WHERE until <= ?", vec![int(now)])?;
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
        self.0.exec(
            "INSERT OR REPLACE INTO member (id, created_at, until) VALUES (?, ?, ?)",
            vec![
                Value::Text(member.id.to_string()),
                int(member.created_at),
                int(until),
            ],
        )?;
        self.schedule().await
    }

    async fn remove(&self, _: &Subject, id: &SessionId) -> Result<(), Error> {
        if !self.has_table()? {
            return Ok(());
        }
        self.0.exec(
            "DELETE FROM member WHERE id = ?",
            vec![Value::Text(id.to_string())],
        )?;
        self.schedule().await
    }

    async fn members(&self, _: &Subject) -> Result<Vec<Member>, Error> {
        if !self.has_table()? {
            return Ok(Vec::new());
        }
        let rows = self.0.exec(
            "SELECT id, created_at FROM member ORDER BY created_at",
            vec![],
        )?;
        Ok(rows
            .iter()
            .filter_map(|row| match (row.first(), row.get(1)) {
                (Some(Value::Text(id)), Some(Value::Integer(created_at))) => Some(Member {
                    id: SessionId::parse(id)?,
                    created_at: u64::try_from(*created_at).ok()?,
                }),
                _ => None,
            })
            .collect())
    }
}

/// The header naming the subject a request to a subject's object is about (its hash).
pub const SUBJECT_HEADER: &str = "session-state-subject";
/// The member a session's object adds to or removes from its subject's index:
/// `<id> <created_at> <until>`, or `<id>` alone to remove.
pub const MEMBER_HEADER: &str = "session-state-member";
/// Where a subject's object keeps its index for session objects.
pub const INDEX_PATH: &str = "/index";

/// The subjects' objects, as a session's object reaches its own subject's: the index of strong
/// mode. Members travel as text lines, `<id> <created_at>`.
pub struct SubjectPeers(pub ObjectNamespace);

impl SubjectPeers {
    async fn send(
        &self,
        subject: &Subject,
        method: &str,
        member: Option<String>,
    ) -> Result<worker::Response, Error> {
        let hex = subject.hex();
        let js = |err: JsValue| Error::StoreUnavailable(format!("subject object: {err:?}"));
        let headers = web_sys::Headers::new().map_err(js)?;
        headers.set(SUBJECT_HEADER, &hex).map_err(js)?;
        if let Some(member) = member {
            headers.set(MEMBER_HEADER, &member).map_err(js)?;
        }
        let url = format!("https://subject{INDEX_PATH}");
        let response = call_object(&self.0, &hex, &url, method, &headers, None).await?;
        match response.status_code() {
            200 | 204 => Ok(response),
            status => Err(Error::StoreUnavailable(format!(
                "the subject object answered {status}"
            ))),
        }
    }
}

impl SubjectIndex for SubjectPeers {
    async fn add(
        &self,
        subject: &Subject,
        member: Member,
        until: Millis,
        _: Millis,
    ) -> Result<(), Error> {
        let line = format!("{} {} {until}", member.id, member.created_at);
        self.send(subject, "PUT", Some(line)).await.map(drop)
    }

    async fn remove(&self, subject: &Subject, id: &SessionId) -> Result<(), Error> {
        self.send(subject, "DELETE", Some(id.to_string()))
            .await
            .map(drop)
    }

    async fn members(&self, subject: &Subject) -> Result<Vec<Member>, Error> {
        let mut response = self.send(subject, "GET", None).await?;
        let text = response.text().await.map_err(object_failure)?;
        Ok(parse_members(&text))
    }
}

/// Members as text lines, `<id> <created_at>`: what a subject's object answers.
pub fn members_text(members: &[Member]) -> String {
    members
        .iter()
        .map(|member| format!("{} {}\n", member.id, member.created_at))
        .collect()
}

pub fn parse_members(text: &str) -> Vec<Member> {
    text.lines()
        .filter_map(|line| {
            let (id, created_at) = line.split_once(' ')?;
            Some(Member {
                id: SessionId::parse(id)?,
                created_at: created_at.parse().ok()?,
            })
        })
        .collect()
}

/// A member line a session's object sent: `<id> <created_at> <until>`.
pub fn parse_member_line(line: &str) -> Option<(Member, Millis)> {
    let mut parts = line.split(' ');
    let id = SessionId::parse(parts.next()?)?;
    let created_at = parts.next()?.parse().ok()?;
    let until = parts.next()?.parse().ok()?;
    Some((Member { id, created_at }, until))
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::json::JsonObject;
    use crate::merge::Merge;
    use crate::session::fixtures::{POLICY, S, T0};
    use crate::sessions::{IfMatch, Sessions};
    use crate::store::kv::KvSessions;
    use crate::store::memory::sqlite::SqliteStorage;
    use crate::store::memory::{run, Fault, MemoryKv, Op, StrictSessions};
    use crate::store::{Member, SubjectIndex};
    use crate::subject::Subject;

    type Object = SqlSessions<SqliteStorage, MemoryKv, StrictSessions>;

    fn id(n: u8) -> SessionId {
        SessionId::from_random_bytes([n; 16])
    }

    fn object(n: u8) -> Object {
        SqlSessions::new(
            SqliteStorage::default(),
            MemoryKv::default(),
            StrictSessions::default(),
            id(n),
            POLICY,
            T0,
        )
    }

    fn body(text: &str) -> JsonObject {
        JsonObject::from_bytes(text.as_bytes().to_vec()).unwrap()
    }

    /// Runs `f` as one request to the object, with its clock at `now`.
    fn at<T>(object: &mut Object, now: Millis, f: impl FnOnce(&Sessions<'_, Object>) -> T) -> T {
        object.now = now;
        object.table.set(None);
        f(&Sessions::new(object, POLICY))
    }

    /// Operations per call in strong mode: requests to Durable Objects (the worker's to the
    /// session's object, and rotation's to the new id's object), SQL statements in the object
    /// (each reads or writes at most the one row of its table), and alarm writes.
    const OBJECT_OPERATIONS: &[(&str, u32, u32, u32)] = &[
        ("create", 1, 2, 1),
        ("get", 1, 2, 0),
        ("update", 1, 3, 1),
        ("add", 1, 3, 1),
        ("touch (renewing)", 1, 3, 1),
        ("touch (within the interval)", 1, 2, 0),
        ("delete", 1, 2, 1),
        ("delete with If-Match", 1, 3, 1),
        ("rotate", 2, 3, 1),
    ];

    #[test]
    fn object_operations_per_call_are_the_documented_ones() {
        let mut object = object(1);
        let mut measured = Vec::new();
        let mut count = |name, object: &mut Object, call: &dyn Fn(&Sessions<'_, Object>)| {
            object.storage.take_operations();
            object.peers.kv().take_operations();
            at(object, T0 + 60 * S, |s| call(s));
            let (statements, alarm_writes) = object.storage.take_operations();
            let requests = 1 + object.peers.kv().take_operations().min(1);
            measured.push((name, requests, statements, alarm_writes));
        };
        let data = body(r#"{"a":1}"#);
        let now = T0 + 60 * S;
        count("create", &mut object, &|s| {
            run(s.create(id(1), &data, None, None, T0)).unwrap();
        });
        count("get", &mut object, &|s| {
            run(s.get(&id(1), now)).unwrap();
        });
        count("update", &mut object, &|s| {
            run(s.replace(&id(1), &data, None, now)).unwrap();
        });
        count("add", &mut object, &|s| {
            run(s.merge(&id(1), &data, Merge::Shallow, None, now)).unwrap();
        });
        count("touch (renewing)", &mut object, &|s| {
            run(s.touch(&id(1), now + 120 * S)).unwrap();
        });
        count("touch (within the interval)", &mut object, &|s| {
            run(s.touch(&id(1), now + 121 * S)).unwrap();
        });
        count("delete", &mut object, &|s| {
            run(s.delete(&id(1), None, now)).unwrap()
        });
        at(&mut object, T0, |s| {
            run(s.create(id(1), &data, None, None, T0))
        })
        .unwrap();
        count("delete with If-Match", &mut object, &|s| {
            run(s.delete(&id(1), Some(&IfMatch::Any), now)).unwrap()
        });
        at(&mut object, T0, |s| {
            run(s.create(id(1), &data, None, None, T0))
        })
        .unwrap();
        count("rotate", &mut object, &|s| {
            run(s.rotate(&id(1), id(2), now)).unwrap();
        });
        assert_eq!(measured, OBJECT_OPERATIONS);
    }

    #[test]
    fn the_session_rules_hold_on_sqlite() {
        let mut object = object(1);
        at(&mut object, T0, |s| {
            run(s.create(id(1), &body(r#"{"a":1}"#), None, None, T0))
        })
        .unwrap();
        let (merged, meta) = at(&mut object, T0 + S, |s| {
            run(s.merge(&id(1), &body(r#"{"b":2}"#), Merge::Shallow, None, T0 + S))
        })
        .unwrap();
        assert_eq!(
            (merged.as_slice(), meta.version),
            (&br#"{"a":1,"b":2}"#[..], 2)
        );
        let replaced = at(&mut object, T0 + 2 * S, |s| {
            run(s.replace(
                &id(1),
                &body("{}"),
                Some(&IfMatch::parse("\"2\"")),
                T0 + 2 * S,
            ))
        })
        .unwrap();
        assert_eq!(replaced.version, 3);
        assert_eq!(
            object.storage.alarm.get(),
            Some(replaced.expires_at),
            "alarm at expiry"
        );
        let session = at(&mut object, T0 + 3 * S, |s| run(s.get(&id(1), T0 + 3 * S))).unwrap();
        assert_eq!((session.data.as_str(), session.meta), ("{}", replaced));
        let touched = at(&mut object, T0 + 100 * S, |s| {
            run(s.touch(&id(1), T0 + 100 * S))
        });
        assert_eq!(touched.unwrap().version, 3);
    }

    #[test]
    fn the_index_protocol_round_trips_members() {
        let members = vec![
            Member {
                id: id(1),
                created_at: T0,
            },
            Member {
                id: id(2),
                created_at: T0 + S,
            },
        ];
        assert_eq!(parse_members(&members_text(&members)), members);
        let line = format!("{} {T0} {}", id(3), T0 + 5 * S);
        assert_eq!(
            parse_member_line(&line),
            Some((
                Member {
                    id: id(3),
                    created_at: T0
                },
                T0 + 5 * S
            ))
        );
        assert_eq!(parse_member_line("nope 1 2"), None);
    }

    #[test]
    fn the_sql_index_keeps_members_until_their_end_and_then_nothing() {
        let index = SqlIndex(SqliteStorage::default());
        let subject = Subject::new(b"ada", None).unwrap();
        assert_eq!(run(index.members(&subject)).unwrap(), vec![]);
        assert!(index.0.is_empty(), "reading creates nothing");
        let first = Member {
            id: id(1),
            created_at: T0,
        };
        let second = Member {
            id: id(2),
            created_at: T0 + S,
        };
        run(index.add(&subject, first, T0 + 10 * S, T0)).unwrap();
        run(index.add(&subject, second, T0 + 20 * S, T0)).unwrap();
        assert_eq!(run(index.members(&subject)).unwrap(), vec![first, second]);
        assert_eq!(
            index.0.alarm.get(),
            Some(T0 + 10 * S),
            "for the first to go"
        );
        run(index.on_alarm(T0 + 10 * S)).unwrap();
        assert_eq!(run(index.members(&subject)).unwrap(), vec![second]);
        assert_eq!(index.0.alarm.get(), Some(T0 + 20 * S));
        run(index.remove(&subject, &id(2))).unwrap();
        assert!(index.0.is_empty(), "the last one leaves nothing behind");
    }

    #[test]
    fn the_peer_protocol_round_trips_every_expectation() {
        for expect in [
            Expect::Absent,
            Expect::Any,
            Expect::Version(0),
            Expect::Version(42),
        ] {
            assert_eq!(
                peer::parse_expect(&peer::expect_header(expect)),
                Some(expect)
            );
        }
        assert_eq!(peer::parse_expect("-1"), None);
        assert_eq!(peer::parse_expect(""), None);
    }

    #[test]
    fn the_statement_refuses_a_stale_version() {
        let object = object(1);
        let meta = Meta::new(T0, None, POLICY);
        let save = |expect| run(object.save(&id(1), b"{}", &meta, expect)).unwrap();
        assert_eq!(
            save(Expect::Version(1)),
            Outcome::Conflict,
            "nothing to replace"
        );
        assert_eq!(save(Expect::Absent), Outcome::Written);
        assert_eq!(save(Expect::Absent), Outcome::Conflict, "already there");
        let newer = Meta { version: 2, ..meta };
        let save = |expect| run(object.save(&id(1), b"{\"v\":2}", &newer, expect)).unwrap();
        assert_eq!(save(Expect::Version(7)), Outcome::Conflict);
        assert_eq!(save(Expect::Version(1)), Outcome::Written);
        assert_eq!(
            save(Expect::Version(1)),
            Outcome::Conflict,
            "now at version 2"
        );
        assert_eq!(
            run(object.remove(&id(1), Expect::Version(1))).unwrap(),
            Outcome::Conflict
        );
        let record = run(object.load(&id(1))).unwrap().unwrap();
        assert_eq!((record.data.as_str(), record.version()), ("{\"v\":2}", 2));
    }

    #[test]
    fn reading_an_unknown_session_creates_no_storage() {
        let mut object = object(1);
        let result = at(&mut object, T0, |s| run(s.get(&id(1), T0)));
        assert!(matches!(result, Err(Error::SessionNotFound)));
        let result = at(&mut object, T0, |s| run(s.delete(&id(1), None, T0)));
        assert!(result.is_ok());
        assert!(object.storage.is_empty());
    }

    #[test]
    fn the_alarm_at_expiry_leaves_nothing_behind() {
        let mut object = object(1);
        let meta = at(&mut object, T0, |s| {
            run(s.create(id(1), &body("{}"), Some(2), None, T0))
        })
        .unwrap();
        assert_eq!(object.storage.alarm.get(), Some(meta.expires_at));
        assert_eq!(
            stored_id(&object.storage).unwrap(),
            Some(id(1)),
            "the alarm finds the id"
        );
        object.now = meta.expires_at;
        run(object.on_alarm()).unwrap();
        assert!(object.storage.is_empty(), "no table, no alarm");
    }

    #[test]
    fn an_alarm_for_a_renewed_session_is_set_again() {
        let mut object = object(1);
        at(&mut object, T0, |s| {
            run(s.create(id(1), &body("{}"), Some(2), None, T0))
        })
        .unwrap();
        let renewed = at(&mut object, T0 + S, |s| run(s.touch(&id(1), T0 + S))).unwrap();
        object.now = T0 + 2 * S;
        run(object.on_alarm()).unwrap();
        assert_eq!(object.storage.alarm.get(), Some(renewed.expires_at));
        assert!(at(&mut object, T0 + 2 * S, |s| run(s.get(&id(1), T0 + 2 * S))).is_ok());
    }

    #[test]
    fn a_deleted_session_leaves_nothing_behind() {
        let mut object = object(1);
        at(&mut object, T0, |s| {
            run(s.create(id(1), &body("{}"), None, None, T0))
        })
        .unwrap();
        at(&mut object, T0, |s| run(s.delete(&id(1), None, T0))).unwrap();
        assert!(object.storage.is_empty());
    }

    #[test]
    fn rotation_writes_the_new_id_into_its_own_object() {
        let mut object = object(1);
        at(&mut object, T0, |s| {
            run(s.create(id(1), &body(r#"{"a":1}"#), None, None, T0))
        })
        .unwrap();
        at(&mut object, T0 + S, |s| {
            run(s.rotate(&id(1), id(2), T0 + S))
        })
        .unwrap();
        assert!(object.storage.is_empty(), "the old object holds nothing");
        assert_eq!(
            object.peers.kv().value(&id(2).to_string()).unwrap(),
            r#"{"a":1}"#
        );
    }

    /// A session written by KV mode, in KV.
    fn in_kv(object: &Object, data: &str, ttl: Option<u64>) -> Meta {
        let kv = KvSessions(MemoryKv::default());
        let sessions = Sessions::new(&kv, POLICY);
        let meta = run(sessions.create(object.own, &body(data), ttl, None, T0)).unwrap();
        let key = object.own.to_string();
        object.kv.0.entries.borrow_mut().insert(
            key.clone(),
            kv.0.entries.borrow().get(&key).cloned().unwrap(),
        );
        meta
    }

    #[test]
    fn a_kv_session_moves_in_on_first_use_and_never_comes_back() {
        let mut object = object(1);
        let key = id(1).to_string();
        let meta = in_kv(&object, r#"{"from":"kv"}"#, None);
        let session = at(&mut object, T0 + S, |s| run(s.get(&id(1), T0 + S))).unwrap();
        assert_eq!(
            (session.data.as_str(), session.meta),
            (r#"{"from":"kv"}"#, meta)
        );
        assert_eq!(object.kv.0.value(&key), None, "the KV copy is deleted");
        assert_eq!(object.storage.alarm.get(), Some(meta.expires_at));
        let stale = object.kv.0.entries.borrow().clone();
        in_kv(&object, r#"{"from":"kv"}"#, None);
        let stale_copy = object.kv.0.entries.borrow().clone();
        object.kv.0.entries.replace(stale);
        at(&mut object, T0 + 2 * S, |s| {
            run(s.delete(&id(1), None, T0 + 2 * S))
        })
        .unwrap();
        assert!(!object.storage.is_empty(), "a marker stays");
        object.kv.0.entries.replace(stale_copy);
        let result = at(&mut object, T0 + 3 * S, |s| run(s.get(&id(1), T0 + 3 * S)));
        assert!(
            matches!(result, Err(Error::SessionNotFound)),
            "a stale KV copy is ignored"
        );
        object.now = T0 + S + KV_STALE_MS;
        run(object.on_alarm()).unwrap();
        assert!(
            object.storage.is_empty(),
            "the marker goes once KV cannot serve the copy"
        );
    }

    #[test]
    fn a_session_of_the_old_worker_moves_in_with_a_lifecycle() {
        let mut object = object(1);
        object
            .kv
            .0
            .insert_legacy(&id(1).to_string(), r#"{"userId":42}"#);
        let session = at(&mut object, T0, |s| run(s.get(&id(1), T0))).unwrap();
        assert_eq!(session.data, r#"{"userId":42}"#);
        assert_eq!(session.meta.version, 0);
        assert_eq!(object.storage.alarm.get(), Some(T0 + POLICY.idle_ttl * S));
        let (merged, meta) = at(&mut object, T0 + S, |s| {
            run(s.merge(
                &id(1),
                &body(r#"{"b":1}"#),
                Merge::Shallow,
                Some(&IfMatch::parse("\"0\"")),
                T0 + S,
            ))
        })
        .unwrap();
        assert_eq!(
            (merged.as_slice(), meta.version),
            (&br#"{"userId":42,"b":1}"#[..], 1)
        );
    }

    #[test]
    fn an_expired_kv_entry_does_not_move_in() {
        let mut object = object(1);
        in_kv(&object, "{}", Some(2));
        let result = at(&mut object, T0 + 2 * S, |s| run(s.get(&id(1), T0 + 2 * S)));
        assert!(matches!(result, Err(Error::SessionNotFound)));
        assert!(object.storage.is_empty());
    }

    #[test]
    fn a_failed_delete_of_the_kv_copy_is_tried_again() {
        let mut object = object(1);
        let key = id(1).to_string();
        in_kv(&object, "{}", None);
        object.kv.0.fail_next(Op::Delete, Fault::Unavailable);
        assert!(at(&mut object, T0, |s| run(s.get(&id(1), T0))).is_ok());
        assert!(object.kv.0.value(&key).is_some(), "the delete failed");
        assert!(at(&mut object, T0 + S, |s| run(s.get(&id(1), T0 + S))).is_ok());
        assert_eq!(object.kv.0.value(&key), None, "and was tried again");
    }

    #[test]
    fn an_ended_kv_session_whose_copy_is_not_yet_deleted_keeps_its_marker() {
        let mut object = object(1);
        in_kv(&object, "{}", None);
        object.kv.0.fail_next(Op::Delete, Fault::Unavailable);
        at(&mut object, T0, |s| run(s.get(&id(1), T0))).unwrap();
        at(&mut object, T0, |s| run(s.delete(&id(1), None, T0))).unwrap();
        assert_eq!(
            object.storage.alarm.get(),
            Some(T0 + KV_RETRY_MS),
            "retry soon"
        );
        object.kv.0.fail_next(Op::Delete, Fault::Unavailable);
        object.now = T0 + KV_RETRY_MS;
        run(object.on_alarm()).unwrap();
        assert_eq!(
            object.storage.alarm.get(),
            Some(T0 + 2 * KV_RETRY_MS),
            "failed again"
        );
        object.now = T0 + 2 * KV_RETRY_MS;
        run(object.on_alarm()).unwrap();
        assert_eq!(
            object.kv.0.value(&id(1).to_string()),
            None,
            "deleted at last"
        );
        assert_eq!(
            object.storage.alarm.get(),
            Some(T0 + 2 * KV_RETRY_MS + KV_STALE_MS),
            "the marker stays for the stale window from the delete"
        );
        assert!(!object.storage.is_empty());
    }
}
