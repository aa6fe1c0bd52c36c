//! The session rules on strong mode's SQLite, natively: the operations through
//! [`SqlSessions`] against real SQLite, the statements, the alarm, and sessions moving in from KV.

use crate::domain::error::Error;
use crate::domain::id::SessionId;
use crate::domain::json::JsonObject;
use crate::domain::merge::Merge;
use crate::domain::precondition::IfMatch;
use crate::domain::session::fixtures::{POLICY, S, T0};
use crate::domain::session::Meta;
use crate::domain::subject::Subject;
use crate::domain::time::Millis;
use crate::service::sessions::Sessions;
use crate::store::durable::index::SqlIndex;
use crate::store::durable::peers::{members_text, parse_member_line, parse_members, peer};
use crate::store::durable::sessions::{stored_id, SqlSessions, KV_RETRY_MS, KV_STALE_MS};
use crate::store::kv::KvSessions;
use crate::store::memory::sqlite::SqliteStorage;
use crate::store::memory::{run, Fault, MemoryKv, Op, StrictSessions};
use crate::store::{Expect, Outcome, SessionStore};
use crate::store::{Member, SubjectIndex};

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
    object.next_request(now);
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
            Some(&IfMatch::parse("\"0\"").unwrap()),
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
