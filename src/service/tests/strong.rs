//! The session rules on strong mode's SQLite, natively: the operations through
//! [`SqlSessions`] against real SQLite, the statements, the alarm, and sessions moving in from KV.

use crate::domain::error::Error;
use crate::domain::event::Event;
use crate::domain::id::SessionId;
use crate::domain::json::JsonObject;
use crate::domain::merge::Merge;
use crate::domain::precondition::IfMatch;
use crate::domain::renewal::Retirement;
use crate::domain::session::fixtures::{POLICY, S, T0};
use crate::domain::session::Meta;
use crate::domain::subject::Subject;
use crate::domain::time::Millis;
use crate::service::sessions::Sessions;
use crate::store::durable::{has_table, int, Value};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use crate::domain::derive::{Handle, StorageKey};
use crate::store::data::Plain;
use crate::store::durable::legacy::{self, Held};
use crate::store::durable::record::{row_params, stored_key};
use crate::store::durable::sessions::{LegacyObjects, SqlSessions, KV_STALE_MS};
use crate::store::durable::ObjectStorage;
use crate::store::memory::sqlite::SqliteStorage;
use crate::store::memory::{
    run, sealed, Fault, MemoryKv, Op, RecordingQueue, SoftAead, StrictSessions,
};
use crate::store::schema::{LEGACY_SESSION_SCHEMA, RECORD_SCHEMA};
use crate::store::{Expect, Outcome, SessionRef, SessionStore, Stored};

type Object = SqlSessions<SqliteStorage, MemoryKv, Others, SoftAead>;

fn id(n: u8) -> SessionId {
    SessionId::from_random_bytes([n; 16])
}

/// The other objects a session's object reaches: those of other sessions (with a true
/// compare-and-swap, on one KV), and those of the earlier strong mode, named by id.
#[derive(Default)]
struct Others {
    sessions: StrictSessions,
    old: RefCell<HashMap<SessionId, SqliteStorage>>,
    now: Cell<Millis>,
    fail_empty: Cell<bool>,
}

impl Others {
    fn kv(&self) -> &MemoryKv {
        self.sessions.kv()
    }

    /// An object of the earlier strong mode holding session `id` as that version stored it.
    fn seed_legacy(
        &self,
        id: SessionId,
        data: &str,
        meta: Meta,
        from_kv: bool,
        kv_deleted_at: Option<Millis>,
    ) {
        let storage = SqliteStorage::default();
        storage.exec(LEGACY_SESSION_SCHEMA, vec![]).unwrap();
        storage
            .exec(
                "INSERT INTO session (one, id, data, created_at, updated_at, expires_at, version, \
                 from_kv, kv_deleted_at) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?)",
                vec![
                    Value::Text(id.to_string()),
                    Value::Text(data.into()),
                    int(meta.created_at),
                    int(meta.updated_at),
                    int(meta.expires_at),
                    int(meta.version),
                    int(u64::from(from_kv)),
                    kv_deleted_at.map_or(Value::Null, int),
                ],
            )
            .unwrap();
        self.old.borrow_mut().insert(id, storage);
    }
}

impl SessionStore for Others {
    async fn load(&self, id: &SessionId) -> Result<Option<Stored>, Error> {
        self.sessions.load(id).await
    }

    async fn retire(
        &self,
        id: &SessionId,
        retirement: &Retirement,
        meta: &Meta,
        expect: Expect,
        event: Option<&Event>,
    ) -> Result<Outcome, Error> {
        self.sessions
            .retire(id, retirement, meta, expect, event)
            .await
    }

    async fn save(
        &self,
        id: &SessionId,
        data: Plain<'_>,
        meta: &Meta,
        expect: Expect,
        event: Option<&Event>,
    ) -> Result<Outcome, Error> {
        self.sessions.save(id, data, meta, expect, event).await
    }

    async fn remove(
        &self,
        id: &SessionId,
        expect: Expect,
        event: Option<&Event>,
    ) -> Result<Outcome, Error> {
        self.sessions.remove(id, expect, event).await
    }

    async fn meta_at(&self, at: &SessionRef) -> Result<Option<(Meta, SessionRef)>, Error> {
        self.sessions.meta_at(at).await
    }

    async fn remove_at(&self, at: &SessionRef, event: Option<&Event>) -> Result<bool, Error> {
        self.sessions.remove_at(at, event).await
    }
}

impl LegacyObjects for Others {
    async fn held(&self, id: &SessionId) -> Result<Held, Error> {
        match self.old.borrow().get(id) {
            Some(storage) => legacy::held(storage, self.now.get()),
            None => Ok(Held::Nothing),
        }
    }

    async fn empty(&self, id: &SessionId) -> Result<(), Error> {
        if self.fail_empty.replace(false) {
            return Err(Error::StoreUnavailable("injected".into()));
        }
        self.old.borrow_mut().remove(id);
        Ok(())
    }
}

fn object(n: u8) -> Object {
    SqlSessions::new(
        SqliteStorage::default(),
        sealed(MemoryKv::default()),
        Others::default(),
        SoftAead,
        StorageKey::of(&id(n)),
        Some(id(n)),
        POLICY,
        T0,
        true,
    )
}

/// The entry of session `n` as an index of this version holds it.
fn body(text: &str) -> JsonObject {
    JsonObject::from_bytes(text.as_bytes().to_vec()).unwrap()
}

/// Runs `f` as one request to the object, with its clock at `now`.
fn at<T>(object: &mut Object, now: Millis, f: impl FnOnce(&Sessions<'_, Object>) -> T) -> T {
    object.next_request(now);
    object.peers.now.set(now);
    f(&Sessions::new(object, POLICY))
}

/// Operations per call in strong mode: requests to Durable Objects (the worker's to the
/// session's object, and rotation's to the new id's object), SQL statements in the object
/// (each reads or writes at most the one row of its table), and alarm writes. Each call here
/// comes to an object that has served one before, and knows its tables (an object's first
/// request asks `sqlite_master` once more).
const OBJECT_OPERATIONS: &[(&str, u32, u32, u32)] = &[
    ("create", 1, 2, 1),
    ("get", 1, 1, 0),
    ("update", 1, 2, 1),
    ("add", 1, 2, 1),
    ("touch (renewing)", 1, 2, 1),
    ("touch (within the interval)", 1, 1, 0),
    ("delete", 1, 2, 1),
    ("delete with If-Match", 1, 2, 1),
    ("rotate", 2, 2, 1),
    ("renew", 2, 2, 1),
    ("get, renewed away, in its window", 2, 1, 0),
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
        run(s.create(id(1), &data, None, None, None, T0)).unwrap();
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
        run(s.create(id(1), &data, None, None, None, T0))
    })
    .unwrap();
    count("delete with If-Match", &mut object, &|s| {
        run(s.delete(&id(1), Some(&IfMatch::Any), now)).unwrap()
    });
    at(&mut object, T0, |s| {
        run(s.create(id(1), &data, None, None, None, T0))
    })
    .unwrap();
    count("rotate", &mut object, &|s| {
        run(s.rotate(&id(1), id(2), now)).unwrap();
    });
    let mut object = self::object(3);
    at(&mut object, T0, |s| {
        run(s.create(id(3), &data, None, None, None, T0))
    })
    .unwrap();
    count("renew", &mut object, &|s| {
        run(s.renew(&id(3), id(4), now)).unwrap();
    });
    count("get, renewed away, in its window", &mut object, &|s| {
        run(s.get(&id(3), now + S)).unwrap();
    });
    assert_eq!(measured, OBJECT_OPERATIONS);
}

/// What an object learns of its tables outlives the request: its first read asks
/// `sqlite_master`, later ones only read the row; once everything is deleted it knows it holds
/// nothing (a read then runs no statement at all), and a session created again is read back.
#[test]
fn an_object_asks_which_tables_it_has_once_and_knows_when_it_has_none() {
    let mut object = object(1);
    let data = body(r#"{"a":1}"#);
    let statements = |object: &mut Object, call: &dyn Fn(&Sessions<'_, Object>)| {
        object.storage.take_operations();
        at(object, T0 + S, |s| call(s));
        object.storage.take_operations().0
    };
    let read = |s: &Sessions<'_, Object>| drop(run(s.get(&id(1), T0 + S)));
    assert_eq!(statements(&mut object, &read), 1, "an empty object, asked");
    assert_eq!(statements(&mut object, &read), 0, "known empty");
    let create = |s: &Sessions<'_, Object>| {
        run(s.create(id(1), &data, None, None, None, T0)).unwrap();
    };
    assert_eq!(statements(&mut object, &create), 2, "the table and the row");
    object.storage.known_tables().forget();
    assert_eq!(
        statements(&mut object, &read),
        2,
        "first read in a new isolate"
    );
    assert_eq!(statements(&mut object, &read), 1, "the row alone");
    let delete = |s: &Sessions<'_, Object>| run(s.delete(&id(1), None, T0 + S)).unwrap();
    statements(&mut object, &delete);
    assert!(object.storage.is_empty());
    assert_eq!(statements(&mut object, &read), 0, "known empty again");
    statements(&mut object, &create);
    let got = at(&mut object, T0 + S, |s| run(s.get(&id(1), T0 + S))).unwrap();
    assert_eq!(got.data, r#"{"a":1}"#);
}

#[test]
fn the_session_rules_hold_on_sqlite() {
    let mut object = object(1);
    at(&mut object, T0, |s| {
        run(s.create(id(1), &body(r#"{"a":1}"#), None, None, None, T0))
    })
    .unwrap();
    let (merged, meta) = at(&mut object, T0 + S, |s| {
        run(s.merge(&id(1), &body(r#"{"b":2}"#), Merge::Shallow, None, T0 + S))
    })
    .unwrap();
    assert_eq!(
        (merged.bytes(), meta.version),
        (&br#"{"a":1,"b":2}"#[..], 2)
    );
    let replaced = at(&mut object, T0 + 2 * S, |s| {
        run(s.replace(
            &id(1),
            &body("{}"),
            Some(&IfMatch::parse("\"2\"").unwrap()),
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
fn the_statement_refuses_a_stale_version() {
    let object = object(1);
    let meta = Meta::new(T0, None, POLICY);
    let save = |expect| run(object.save(&id(1), b"{}".into(), &meta, expect, None)).unwrap();
    assert_eq!(
        save(Expect::Version(1)),
        Outcome::Conflict,
        "nothing to replace"
    );
    assert_eq!(save(Expect::Absent), Outcome::Written);
    assert_eq!(save(Expect::Absent), Outcome::Conflict, "already there");
    let newer = Meta { version: 2, ..meta };
    let save =
        |expect| run(object.save(&id(1), b"{\"v\":2}".into(), &newer, expect, None)).unwrap();
    assert_eq!(save(Expect::Version(7)), Outcome::Conflict);
    assert_eq!(save(Expect::Version(1)), Outcome::Written);
    assert_eq!(
        save(Expect::Version(1)),
        Outcome::Conflict,
        "now at version 2"
    );
    assert_eq!(
        run(object.remove(&id(1), Expect::Version(1), None)).unwrap(),
        Outcome::Conflict
    );
    let record = run(object.load(&id(1)))
        .unwrap()
        .and_then(Stored::session)
        .unwrap();
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
        run(s.create(id(1), &body("{}"), Some(2), None, None, T0))
    })
    .unwrap();
    assert_eq!(object.storage.alarm.get(), Some(meta.expires_at));
    assert_eq!(
        stored_key(&object.storage).unwrap(),
        Some(StorageKey::of(&id(1))),
        "the alarm finds the key"
    );
    object.own = None;
    object.now = meta.expires_at;
    run(object.on_alarm(None::<&RecordingQueue>)).unwrap();
    assert!(object.storage.is_empty(), "no table, no alarm");
}

#[test]
fn an_alarm_for_a_renewed_session_is_set_again() {
    let mut object = object(1);
    at(&mut object, T0, |s| {
        run(s.create(id(1), &body("{}"), Some(2), None, None, T0))
    })
    .unwrap();
    let renewed = at(&mut object, T0 + S, |s| run(s.touch(&id(1), T0 + S))).unwrap();
    object.now = T0 + 2 * S;
    run(object.on_alarm(None::<&RecordingQueue>)).unwrap();
    assert_eq!(object.storage.alarm.get(), Some(renewed.expires_at));
    assert!(at(&mut object, T0 + 2 * S, |s| run(s.get(&id(1), T0 + 2 * S))).is_ok());
}

#[test]
fn a_deleted_session_leaves_nothing_behind() {
    let mut object = object(1);
    at(&mut object, T0, |s| {
        run(s.create(id(1), &body("{}"), None, None, None, T0))
    })
    .unwrap();
    at(&mut object, T0, |s| run(s.delete(&id(1), None, T0))).unwrap();
    assert!(object.storage.is_empty());
}

#[test]
fn rotation_writes_the_new_id_into_its_own_object() {
    let mut object = object(1);
    at(&mut object, T0, |s| {
        run(s.create(id(1), &body(r#"{"a":1}"#), None, None, None, T0))
    })
    .unwrap();
    at(&mut object, T0 + S, |s| {
        run(s.rotate(&id(1), id(2), T0 + S))
    })
    .unwrap();
    assert!(object.storage.is_empty(), "the old object holds nothing");
    assert_eq!(object.peers.kv().plain(&id(2)).unwrap(), r#"{"a":1}"#);
}

/// Renewal in the old id's object: the successor is written into its own object, the old
/// id's object keeps only the retirement (no id, no data), a write with the old id within the
/// window is a write of the successor's object, and after it the old id ends the successor.
#[test]
fn renewal_leaves_a_retirement_and_reuse_ends_the_successor() {
    let mut object = object(1);
    at(&mut object, T0, |s| {
        run(s.create(id(1), &body(r#"{"a":1}"#), None, None, None, T0))
    })
    .unwrap();
    let renewed = at(&mut object, T0 + S, |s| run(s.renew(&id(1), id(2), T0 + S))).unwrap();
    assert_eq!(renewed.id, id(2));
    let rows = object.storage.dump();
    assert!(
        !reveals(&rows, 1) && !reveals(&rows, 2) && !rows.contains("\"a\""),
        "{rows}"
    );
    at(&mut object, T0 + 2 * S, |s| {
        run(s.merge(
            &id(1),
            &body(r#"{"b":2}"#),
            Merge::Shallow,
            None,
            T0 + 2 * S,
        ))
    })
    .unwrap();
    assert_eq!(object.peers.kv().plain(&id(2)).unwrap(), r#"{"a":1,"b":2}"#);
    let again = at(&mut object, T0 + 3 * S, |s| {
        run(s.renew(&id(1), id(3), T0 + 3 * S))
    })
    .unwrap();
    assert_eq!(again.id, id(2), "the same successor");
    let late = T0 + 40 * S;
    let err = at(&mut object, late, |s| run(s.get(&id(1), late))).unwrap_err();
    assert!(matches!(err, Error::Reused(_)), "{err:?}");
    assert_eq!(object.peers.kv().plain(&id(2)), None, "the successor ended");
    // The retirement stays until the session's latest end, then the alarm drops it.
    assert!(!object.storage.is_empty());
    let end = T0 + POLICY.max_lifetime * 1000;
    object.next_request(end);
    run(object.on_alarm(None::<&RecordingQueue>)).unwrap();
    assert!(object.storage.is_empty(), "{}", object.storage.dump());
}

/// A session written by KV mode, in KV.
fn in_kv(object: &Object, data: &str, ttl: Option<u64>) -> Meta {
    let kv = sealed(MemoryKv::default());
    let sessions = Sessions::new(&kv, POLICY);
    let own = object.own.unwrap();
    let meta = run(sessions.create(own, &body(data), ttl, None, None, T0)).unwrap();
    let written = kv.kv.entries.borrow().clone();
    object.kv.kv.entries.borrow_mut().extend(written);
    meta
}

#[test]
fn a_kv_session_moves_in_on_first_use_and_never_comes_back() {
    let mut object = object(1);
    let meta = in_kv(&object, r#"{"from":"kv"}"#, None);
    let session = at(&mut object, T0 + S, |s| run(s.get(&id(1), T0 + S))).unwrap();
    assert_eq!(
        (session.data.as_str(), session.meta),
        (r#"{"from":"kv"}"#, meta)
    );
    assert_eq!(object.kv.kv.plain(&id(1)), None, "the KV copy is deleted");
    assert_eq!(object.storage.alarm.get(), Some(meta.expires_at));
    let stale = object.kv.kv.entries.borrow().clone();
    in_kv(&object, r#"{"from":"kv"}"#, None);
    let stale_copy = object.kv.kv.entries.borrow().clone();
    object.kv.kv.entries.replace(stale);
    at(&mut object, T0 + 2 * S, |s| {
        run(s.delete(&id(1), None, T0 + 2 * S))
    })
    .unwrap();
    assert!(!object.storage.is_empty(), "a marker stays");
    object.kv.kv.entries.replace(stale_copy);
    let result = at(&mut object, T0 + 3 * S, |s| run(s.get(&id(1), T0 + 3 * S)));
    assert!(
        matches!(result, Err(Error::SessionNotFound)),
        "a stale KV copy is ignored"
    );
    object.now = T0 + S + KV_STALE_MS;
    run(object.on_alarm(None::<&RecordingQueue>)).unwrap();
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
        .kv
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
            Some(&IfMatch::parse("\"0\"").unwrap()),
            T0 + S,
        ))
    })
    .unwrap();
    assert_eq!(
        (merged.bytes(), meta.version),
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
fn a_move_whose_old_copy_cannot_be_deleted_is_undone_and_tried_again() {
    let mut object = object(1);
    in_kv(&object, "{}", None);
    object.kv.kv.fail_next(Op::Delete, Fault::Unavailable);
    let failed = at(&mut object, T0, |s| run(s.get(&id(1), T0)));
    assert_eq!(failed.unwrap_err().code(), "store_unavailable", "retryable");
    assert!(object.storage.is_empty(), "nothing moved");
    assert!(object.kv.kv.plain(&id(1)).is_some(), "still in KV");
    assert!(at(&mut object, T0 + S, |s| run(s.get(&id(1), T0 + S))).is_ok());
    assert_eq!(object.kv.kv.plain(&id(1)), None, "moved");
    at(&mut object, T0 + S, |s| run(s.delete(&id(1), None, T0 + S))).unwrap();
    assert_eq!(
        object.storage.alarm.get(),
        Some(T0 + S + KV_STALE_MS),
        "the marker stays for the stale window from the delete"
    );
}

/// Every row of every table, as text: what a dump of the object shows.
fn reveals(dump: &str, n: u8) -> bool {
    let text = id(n).to_string();
    dump.contains(&text) || dump.contains(&text.replace('-', ""))
}

#[test]
fn an_object_holds_no_id_and_no_data_after_every_operation() {
    let mut object = object(1);
    let canary = "c4n4ry-sql";
    at(&mut object, T0, |s| {
        run(s.create(
            id(1),
            &body(&format!(r#"{{"s":"{canary}"}}"#)),
            None,
            None,
            None,
            T0,
        ))
    })
    .unwrap();
    at(&mut object, T0 + S, |s| {
        run(s.merge(
            &id(1),
            &body(&format!(r#"{{"t":"{canary}"}}"#)),
            Merge::Shallow,
            None,
            T0 + S,
        ))
    })
    .unwrap();
    at(&mut object, T0 + 100 * S, |s| {
        run(s.touch(&id(1), T0 + 100 * S))
    })
    .unwrap();
    let rows = object.storage.dump();
    assert!(!reveals(&rows, 1) && !rows.contains(canary), "{rows}");
    assert!(
        rows.contains(&StorageKey::of(&id(1)).name()),
        "the key is there, for the alarm"
    );
    let session = at(&mut object, T0 + 101 * S, |s| {
        run(s.get(&id(1), T0 + 101 * S))
    })
    .unwrap();
    assert!(session.data.contains(canary));
}

#[test]
fn a_sealed_row_that_does_not_open_reads_as_not_found() {
    let mut first = object(1);
    at(&mut first, T0, |s| {
        run(s.create(id(1), &body("{}"), None, None, None, T0))
    })
    .unwrap();
    let rows = first
        .storage
        .exec("SELECT sealed FROM record", vec![])
        .unwrap();
    let Some(Value::Blob(mut sealed)) = rows.into_iter().flatten().next() else {
        panic!("a sealed row")
    };
    *sealed.last_mut().unwrap() ^= 1;
    first
        .storage
        .exec("UPDATE record SET sealed = ?", vec![Value::Blob(sealed)])
        .unwrap();
    let read = at(&mut first, T0, |s| run(s.get(&id(1), T0)));
    let err = read.unwrap_err();
    assert_eq!((err.status(), err.code()), (404, "session_not_found"));
    assert!(err.log_cause().unwrap().contains(&id(1).short()));
    // The same row under another session's key (its object named by that key): does not open.
    let mut other = object(2);
    at(&mut other, T0, |s| {
        run(s.create(id(2), &body("{}"), None, None, None, T0))
    })
    .unwrap();
    let sealed = other
        .storage
        .exec("SELECT sealed FROM record", vec![])
        .unwrap();
    let mut third = object(3);
    at(&mut third, T0, |s| {
        run(s.create(id(3), &body("{}"), None, None, None, T0))
    })
    .unwrap();
    third
        .storage
        .exec(
            "UPDATE record SET sealed = ?",
            sealed.into_iter().next().unwrap(),
        )
        .unwrap();
    let moved = at(&mut third, T0, |s| run(s.get(&id(3), T0)));
    assert_eq!(moved.unwrap_err().code(), "session_not_found");
}

#[test]
fn a_session_of_the_earlier_strong_mode_moves_in_and_its_object_is_emptied() {
    let mut object = object(1);
    let meta = Meta {
        version: 4,
        ..Meta::new(T0, None, POLICY)
    };
    object
        .peers
        .seed_legacy(id(1), r#"{"old":"c4n4ry"}"#, meta, false, None);
    let session = at(&mut object, T0 + S, |s| run(s.get(&id(1), T0 + S))).unwrap();
    assert_eq!(
        (session.data.as_str(), session.meta),
        (r#"{"old":"c4n4ry"}"#, meta)
    );
    assert!(
        object.peers.old.borrow().is_empty(),
        "the old object is emptied"
    );
    let rows = object.storage.dump();
    assert!(!reveals(&rows, 1) && !rows.contains("c4n4ry"), "{rows}");
    let (_, written) = at(&mut object, T0 + 2 * S, |s| {
        run(s.merge(
            &id(1),
            &body(r#"{"b":1}"#),
            Merge::Shallow,
            Some(&IfMatch::parse("\"4\"").unwrap()),
            T0 + 2 * S,
        ))
    })
    .unwrap();
    assert_eq!(written.version, 5);
}

#[test]
fn a_move_from_an_old_object_that_cannot_be_emptied_is_undone() {
    let mut object = object(1);
    object
        .peers
        .seed_legacy(id(1), "{}", Meta::new(T0, None, POLICY), false, None);
    object.peers.fail_empty.set(true);
    let failed = at(&mut object, T0, |s| run(s.get(&id(1), T0)));
    assert_eq!(failed.unwrap_err().code(), "store_unavailable");
    assert!(object.storage.is_empty());
    assert!(
        at(&mut object, T0, |s| run(s.get(&id(1), T0))).is_ok(),
        "the retry moves it"
    );
    assert!(object.peers.old.borrow().is_empty());
}

#[test]
fn an_old_object_of_a_session_ended_moments_ago_keeps_kv_from_bringing_it_back() {
    let mut object = object(1);
    in_kv(&object, r#"{"stale":true}"#, None);
    let ended = Meta::new(T0, None, POLICY);
    object.peers.seed_legacy(id(1), "{}", ended, true, Some(T0));
    object.peers.old.borrow()[&id(1)]
        .exec("UPDATE session SET data = NULL", vec![])
        .unwrap();
    let read = at(&mut object, T0 + S, |s| run(s.get(&id(1), T0 + S)));
    assert!(
        matches!(read, Err(Error::SessionNotFound)),
        "the stale KV copy stays out"
    );
    let later = T0 + KV_STALE_MS;
    assert!(
        at(&mut object, later, |s| run(s.get(&id(1), later))).is_ok(),
        "after the window, KV is KV"
    );
}

/// The types and reasons of what `queue` received, in order, with the handle each names.
fn received(queue: &RecordingQueue) -> Vec<(String, String, String)> {
    let text = |value: &serde_json::Value| value.as_str().unwrap_or_default().to_owned();
    queue
        .events()
        .iter()
        .map(|e| (text(&e["type"]), text(&e["reason"]), text(&e["handle"])))
        .collect()
}

fn event(kind: &str, reason: &str, n: u8) -> (String, String, String) {
    let handle = Handle::of(&id(n)).to_string();
    (kind.into(), reason.into(), handle)
}

/// Runs the object's alarm at `now`, as the runtime does (no id), delivering to `queue`.
fn ring(object: &mut Object, now: Millis, queue: &RecordingQueue) -> Option<Error> {
    object.own = None;
    object.next_request(now);
    run(object.on_alarm(Some(queue))).unwrap().failed
}

/// An object met by a new isolate with events waiting in its outbox: a write that creates the
/// record table if need be (here a create that finds the session there) learns nothing of the
/// outbox, and the alarm still delivers what waits.
#[test]
fn knowing_the_record_table_says_nothing_of_the_outbox() {
    let queue = RecordingQueue::default();
    let mut object = object_of(1);
    at(&mut object, T0, |s| {
        run(s.create(id(1), &body("{}"), None, None, None, T0))
    })
    .unwrap();
    object.storage.known_tables().forget();
    let again = at(&mut object, T0 + S, |s| {
        run(s.create(id(1), &body("{}"), None, None, None, T0 + S))
    });
    assert!(again.is_err(), "the id is taken");
    assert!(ring(&mut object, T0 + S, &queue).is_none());
    assert_eq!(received(&queue), [event("created", "", 1)]);
}

#[test]
fn each_event_is_committed_with_its_change_and_the_alarm_delivers_it() {
    let queue = RecordingQueue::default();
    let mut object = object_of(1);
    at(&mut object, T0, |s| {
        run(s.create(id(1), &body("{}"), None, None, None, T0))
    })
    .unwrap();
    assert_eq!(object.storage.alarm.get(), Some(T0), "due at once");
    assert!(ring(&mut object, T0, &queue).is_none());
    assert_eq!(received(&queue), [event("created", "", 1)]);
    let expires_at = T0 + POLICY.idle_ttl * S;
    assert_eq!(object.storage.alarm.get(), Some(expires_at), "then expiry");
    object.own = Some(id(1));
    at(&mut object, T0 + S, |s| {
        run(s.merge(&id(1), &body(r#"{"a":1}"#), Merge::Shallow, None, T0 + S))
    })
    .unwrap();
    at(&mut object, T0 + 2 * S, |s| {
        run(s.rotate(&id(1), id(2), T0 + 2 * S))
    })
    .unwrap();
    assert_eq!(object.storage.alarm.get(), Some(T0 + 2 * S));
    assert!(ring(&mut object, T0 + 2 * S, &queue).is_none());
    let rotated = &queue.events()[1];
    assert_eq!(rotated["type"], "rotated");
    assert_eq!(rotated["handle"], Handle::of(&id(2)).to_string());
    assert_eq!(rotated["from"], Handle::of(&id(1)).to_string());
    assert!(
        object.storage.is_empty(),
        "delivered: the object holds nothing"
    );

    let mut object = object_of(3);
    at(&mut object, T0, |s| {
        run(s.create(id(3), &body("{}"), None, None, None, T0))
    })
    .unwrap();
    at(&mut object, T0 + S, |s| run(s.delete(&id(3), None, T0 + S))).unwrap();
    assert_eq!(
        stored_key(&object.storage).unwrap(),
        Some(StorageKey::of(&id(3))),
        "while events wait, the alarm finds the object as this version's"
    );
    assert!(at(&mut object, T0 + S, |s| run(s.get(&id(3), T0 + S))).is_err());
    assert!(ring(&mut object, T0 + S, &queue).is_none());
    assert!(object.storage.is_empty());

    let mut object = object_of(4);
    let meta = at(&mut object, T0, |s| {
        run(s.create(id(4), &body("{}"), Some(2), None, None, T0))
    })
    .unwrap();
    ring(&mut object, T0, &queue);
    assert_eq!(object.storage.alarm.get(), Some(meta.expires_at));
    ring(&mut object, meta.expires_at, &queue);
    assert!(object.storage.is_empty());
    let expired = queue.events().pop().unwrap();
    assert_eq!(expired["at"], crate::domain::time::rfc3339(meta.expires_at));
    assert_eq!(
        received(&queue)[2..],
        [
            event("created", "", 3),
            event("deleted", "", 3),
            event("created", "", 4),
            event("expired", "idle", 4),
        ]
    );
}

fn object_of(n: u8) -> Object {
    object(n).with_events(true)
}

#[test]
fn a_failed_send_is_tried_again_later_and_each_event_arrives_once() {
    let queue = RecordingQueue::default();
    let mut object = object_of(1);
    at(&mut object, T0, |s| {
        run(s.create(id(1), &body("{}"), None, None, None, T0))
    })
    .unwrap();
    queue.failures.set(2);
    assert!(
        ring(&mut object, T0, &queue).is_some(),
        "the failure is told"
    );
    assert_eq!(
        object.storage.alarm.get(),
        Some(T0 + S),
        "tried again in 1 s"
    );
    object.own = Some(id(1));
    at(&mut object, T0 + 500, |s| {
        run(s.delete(&id(1), None, T0 + 500))
    })
    .unwrap();
    assert_eq!(
        object.storage.alarm.get(),
        Some(T0 + 500),
        "a new event is due at once"
    );
    assert!(ring(&mut object, T0 + 500, &queue).is_some());
    assert_eq!(
        object.storage.alarm.get(),
        Some(T0 + 500 + 2 * S),
        "backs off"
    );
    assert!(!object.storage.is_empty(), "what waits is kept");
    assert!(stored_key(&object.storage).unwrap().is_some());
    assert!(ring(&mut object, T0 + 2500, &queue).is_none());
    assert_eq!(
        received(&queue),
        [event("created", "", 1), event("deleted", "", 1)]
    );
    assert!(object.storage.is_empty());
    ring(&mut object, T0 + 3000, &queue);
    assert_eq!(queue.events().len(), 2, "nothing twice");
}

#[test]
fn a_refused_or_failed_change_commits_no_event() {
    let queue = RecordingQueue::default();
    let mut object = object_of(1);
    at(&mut object, T0, |s| {
        run(s.create(id(1), &body("{}"), None, None, None, T0))
    })
    .unwrap();
    ring(&mut object, T0, &queue);
    object.own = Some(id(1));
    let stale = IfMatch::parse("\"7\"").unwrap();
    let refused = at(&mut object, T0 + S, |s| {
        run(s.delete(&id(1), Some(&stale), T0 + S))
    });
    assert!(matches!(refused, Err(Error::PreconditionFailed)));
    object.storage.fail_once.set(Some("INSERT INTO outbox"));
    let failed = at(&mut object, T0 + S, |s| run(s.delete(&id(1), None, T0 + S)));
    assert!(
        failed.is_err(),
        "the event could not be written: nor is the change"
    );
    assert!(at(&mut object, T0 + S, |s| run(s.get(&id(1), T0 + S))).is_ok());
    ring(&mut object, T0 + 2 * S, &queue);
    assert_eq!(received(&queue), [event("created", "", 1)]);
    object.own = Some(id(1));
    at(&mut object, T0 + 3 * S, |s| {
        run(s.delete(&id(1), None, T0 + 3 * S))
    })
    .unwrap();
    at(&mut object, T0 + 3 * S, |s| {
        run(s.delete(&id(1), None, T0 + 3 * S))
    })
    .unwrap();
    ring(&mut object, T0 + 3 * S, &queue);
    assert_eq!(
        received(&queue),
        [event("created", "", 1), event("deleted", "", 1)],
        "deleting what is gone is no event"
    );
}

#[test]
fn without_events_an_object_writes_none() {
    let mut object = object(1);
    at(&mut object, T0, |s| {
        run(s.create(id(1), &body("{}"), None, None, None, T0))
    })
    .unwrap();
    assert!(!has_table(&object.storage, "outbox").unwrap());
    assert_eq!(object.storage.alarm.get(), Some(T0 + POLICY.idle_ttl * S));
}

#[test]
fn a_row_of_the_version_before_handles_gets_one_and_reports_its_expiry() {
    let queue = RecordingQueue::default();
    let mut object = object_of(1);
    let meta = at(&mut object, T0, |s| {
        run(s.create(id(1), &body("{}"), Some(2), None, None, T0))
    })
    .unwrap();
    ring(&mut object, T0, &queue);
    // As the previous version left it: no handle column.
    let storage = &object.storage;
    storage
        .exec("ALTER TABLE record DROP COLUMN handle", vec![])
        .unwrap();
    // This version meets it in a new isolate: nothing the object learnt of its tables is kept.
    storage.known_tables().forget();
    object.own = Some(id(1));
    at(&mut object, T0 + 100, |s| run(s.get(&id(1), T0 + 100))).unwrap();
    ring(&mut object, meta.expires_at, &queue);
    assert_eq!(
        received(&queue),
        [event("created", "", 1), event("expired", "idle", 1)]
    );
}

/// Operations per call in strong mode with events on (docs/operations.md, "Operations per call"): SQL
/// statements and alarm writes in the session's object, and the alarm that delivers each event
/// (one `sendBatch`).
const OBJECT_OPERATIONS_WITH_EVENTS: &[(&str, u32, u32)] = &[
    ("create", 4, 1),
    ("its delivery (the alarm)", 3, 1),
    ("update", 2, 1),
    ("touch (renewing)", 2, 1),
    ("delete", 5, 1),
    ("its delivery (the alarm)", 3, 1),
];

#[test]
fn object_operations_with_events_are_the_documented_ones() {
    let queue = RecordingQueue::default();
    let mut object = object_of(1);
    let mut measured = Vec::new();
    let mut count = |name, object: &mut Object, call: &dyn Fn(&mut Object)| {
        object.storage.take_operations();
        call(object);
        let (statements, alarm_writes) = object.storage.take_operations();
        measured.push((name, statements, alarm_writes));
    };
    let data = body(r#"{"a":1}"#);
    let now = T0 + 60 * S;
    let request = |object: &mut Object, call: &dyn Fn(&Sessions<'_, Object>)| {
        object.own = Some(id(1));
        at(object, now, |s| call(s));
    };
    count("create", &mut object, &|o| {
        request(o, &|s| {
            drop(run(s.create(id(1), &data, None, None, None, T0)))
        })
    });
    count("its delivery (the alarm)", &mut object, &|o| {
        assert!(ring(o, now, &queue).is_none())
    });
    count("update", &mut object, &|o| {
        request(o, &|s| drop(run(s.replace(&id(1), &data, None, now))))
    });
    count("touch (renewing)", &mut object, &|o| {
        request(o, &|s| drop(run(s.touch(&id(1), now + 120 * S))))
    });
    count("delete", &mut object, &|o| {
        request(o, &|s| run(s.delete(&id(1), None, now)).unwrap())
    });
    count("its delivery (the alarm)", &mut object, &|o| {
        assert!(ring(o, now, &queue).is_none())
    });
    assert_eq!(queue.events().len(), 2);
    assert!(object.storage.is_empty());
    assert_eq!(measured, OBJECT_OPERATIONS_WITH_EVENTS);
}

/// An object of session `id`, reading earlier formats or not.
fn object_reading(id: SessionId, serve_legacy: bool) -> Object {
    SqlSessions::new(
        SqliteStorage::default(),
        sealed(MemoryKv::default()),
        Others::default(),
        SoftAead,
        StorageKey::of(&id),
        Some(id),
        POLICY,
        T0,
        serve_legacy,
    )
}

/// The row's lifecycle columns are there for SQL (the version a write expects, the alarm, a
/// listing without the id); the sealed lifecycle is the session's. A row whose columns were
/// changed to extend the session, move it to another subject or roll its version reads as not
/// found, whatever it says.
#[test]
fn columns_altered_beside_the_seal_read_as_not_found() {
    let mut object = object(1);
    let bob = Subject::new(b"bob", None).unwrap();
    at(&mut object, T0, |s| {
        run(s.create(id(1), &body(r#"{"role":"user"}"#), None, None, None, T0))
    })
    .unwrap();
    for (column, value) in [
        ("expires_at", int(u64::MAX / 2)),
        ("created_at", int(T0 + 3600 * S)),
        ("subject", Value::Text(bob.hex())),
        ("version", int(7)),
        ("ttl", int(31_536_000)),
    ] {
        let saved = object.storage.exec("SELECT * FROM record", vec![]).unwrap();
        let sql = format!("UPDATE record SET {column} = ?");
        object.storage.exec(&sql, vec![value]).unwrap();
        let read = at(&mut object, T0 + S, |s| run(s.get(&id(1), T0 + S)));
        let err = read.unwrap_err();
        assert_eq!(
            (err.status(), err.code()),
            (404, "session_not_found"),
            "{column}"
        );
        assert!(
            err.log_cause().unwrap().starts_with("integrity: session "),
            "{column}"
        );
        object.storage.exec("DELETE FROM record", vec![]).unwrap();
        let columns = vec!["?"; saved[0].len()].join(", ");
        let insert = format!("INSERT INTO record VALUES ({columns})");
        object.storage.exec(&insert, saved[0].clone()).unwrap();
    }
    let session = at(&mut object, T0 + S, |s| run(s.get(&id(1), T0 + S))).unwrap();
    assert_eq!(session.data, r#"{"role":"user"}"#, "as it was");
}

/// A row the version before sealed (`s1`) is read with its columns while earlier formats are,
/// sealed anew on its first write, and gone once they are not.
#[test]
fn a_row_of_the_version_before_is_read_with_its_columns_then_sealed_anew() {
    let (old, bytes) = crate::store::seal::fixtures::s1();
    let meta = Meta::new(T0, None, POLICY);
    let seed = |object: &Object| {
        // The table as the version before the authentication made it: the columns come on sight.
        let before = RECORD_SCHEMA.replace(",\n    auth_at INTEGER,\n    auth_level INTEGER", "");
        assert!(!before.contains("auth"), "{before}");
        object.storage.exec(&before, vec![]).unwrap();
        let mut params = row_params(&old, &StorageKey::of(&old), bytes.as_slice().into(), &meta);
        params.truncate(9);
        params.push(Value::Null);
        let insert = "INSERT INTO record (one, handle, key, sealed, created_at, updated_at, \
                      expires_at, version, ttl, subject, kv_deleted_at) \
                      VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
        object.storage.exec(insert, params).unwrap();
    };
    let mut off = object_reading(old, false);
    seed(&off);
    let read = at(&mut off, T0 + S, |s| run(s.get(&old, T0 + S)));
    let cause = read.unwrap_err().log_cause().unwrap();
    assert!(cause.contains("earlier format"), "{cause}");
    let mut object = object_reading(old, true);
    seed(&object);
    let session = at(&mut object, T0 + S, |s| run(s.get(&old, T0 + S))).unwrap();
    // Nothing of an `s1` lifecycle is sealed: its authentication is unknown, whatever the
    // columns say.
    let unknown = Meta {
        auth: crate::domain::auth::Auth::UNKNOWN,
        ..meta
    };
    assert_eq!(
        (session.data.as_str(), session.meta),
        (r#"{"pinned":"s1"}"#, unknown)
    );
    at(&mut object, T0 + 100 * S, |s| {
        run(s.touch(&old, T0 + 100 * S))
    })
    .unwrap();
    let rows = object
        .storage
        .exec("SELECT sealed FROM record", vec![])
        .unwrap();
    assert!(
        matches!(&rows[0][0], Value::Blob(b) if b.starts_with(b"s3")),
        "sealed anew"
    );
}

/// `SESSIONS_NOT_BEFORE` in strong mode: the session's object ends it when met, leaving nothing.
#[test]
fn a_session_created_before_the_cut_off_ends_in_its_object() {
    let mut object = object(1);
    at(&mut object, T0, |s| {
        run(s.create(id(1), &body("{}"), None, None, None, T0))
    })
    .unwrap();
    let cut = crate::domain::session::Policy {
        not_before: Some(T0 + S),
        ..POLICY
    };
    object.next_request(T0 + 2 * S);
    let err = run(Sessions::new(&object, cut).get(&id(1), T0 + 2 * S)).unwrap_err();
    assert!(matches!(err, Error::SessionNotFound), "{err:?}");
    assert!(object.storage.is_empty(), "{}", object.storage.dump());
}
