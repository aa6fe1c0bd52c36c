//! The session operations on KV's storage, with the in-memory stores: what each costs, and what
//! each does when a write fails or races.

use super::*;
use crate::domain::derive::StorageKey;
use crate::domain::json::JsonObject;
use crate::domain::merge::Merge;
use crate::domain::precondition::IfMatch;
use crate::domain::session::fixtures::{POLICY, S, T0};
use crate::store::kv::KvSessions;
use crate::store::memory::{run, sealed, Fault, MemoryKv, Op, SoftAead, StrictSessions};

fn id(n: u8) -> SessionId {
    SessionId::from_random_bytes([n; 16])
}

/// Where session `n` is stored.
fn key(n: u8) -> String {
    StorageKey::of(&id(n)).name()
}

/// Where the old worker and earlier versions stored it.
fn bare(n: u8) -> String {
    id(n).to_string()
}

fn object(text: &str) -> JsonObject {
    JsonObject::from_bytes(text.as_bytes().to_vec()).unwrap()
}

fn kv() -> KvSessions<MemoryKv, SoftAead> {
    sealed(MemoryKv::default())
}

/// Store operations per call on Workers KV, the least each can do, as measured below on the
/// counting in-memory store, each call with a store of its own (as each request has). The
/// docs/operations.md quotes this table. The last rows are sessions stored before keys were hashed,
/// with the legacy lookup on.
const KV_OPERATIONS: &[(&str, u32)] = &[
    ("create", 1),
    ("get", 1),
    ("update", 2),
    ("add", 2),
    ("touch (renewing)", 2),
    ("touch (within the interval)", 1),
    ("delete", 2),
    ("delete with If-Match", 2),
    ("rotate", 3),
    ("renew", 3),
    ("get, renewed away, in its window", 2),
    ("get, missing", 2),
    ("get, legacy", 2),
    ("add, legacy (moves it)", 4),
    ("delete, legacy lookup off", 2),
];

/// The sessions one request sees.
type Request<'s> = Sessions<'s, KvSessions<&'s MemoryKv, SoftAead>>;

/// The operations each call costs on KV, measured on the counting store.
fn measured_kv_operations() -> Vec<(&'static str, u32)> {
    let kv = MemoryKv::default();
    let count = |name, call: &dyn Fn(&Request) -> Result<(), Error>| {
        kv.take_operations();
        let store = sealed(&kv);
        call(&Sessions::new(&store, POLICY)).unwrap();
        (name, kv.take_operations())
    };
    let body = object(r#"{"a":1}"#);
    let create = |n| {
        kv.uncounted(|| {
            run(Sessions::new(&sealed(&kv), POLICY).create(id(n), &body, None, None, None, T0))
        })
        .unwrap();
    };
    let table = vec![
        count("create", &|s| {
            run(s.create(id(1), &body, None, None, None, T0)).map(drop)
        }),
        count("get", &|s| run(s.get(&id(1), T0)).map(drop)),
        count("update", &|s| {
            run(s.replace(&id(1), &body, None, T0)).map(drop)
        }),
        count("add", &|s| {
            run(s.merge(&id(1), &body, Merge::Shallow, None, T0)).map(drop)
        }),
        count("touch (renewing)", &|s| {
            run(s.touch(&id(1), T0 + 60 * S)).map(drop)
        }),
        count("touch (within the interval)", &|s| {
            run(s.touch(&id(1), T0 + 61 * S)).map(drop)
        }),
        count("delete", &|s| run(s.delete(&id(1), None, T0))),
        {
            create(2);
            count("delete with If-Match", &|s| {
                run(s.delete(&id(2), Some(&IfMatch::Any), T0))
            })
        },
        {
            create(3);
            count("rotate", &|s| run(s.rotate(&id(3), id(4), T0)).map(drop))
        },
        {
            create(6);
            count("renew", &|s| run(s.renew(&id(6), id(7), T0)).map(drop))
        },
        count("get, renewed away, in its window", &|s| {
            run(s.get(&id(6), T0)).map(drop)
        }),
        count("get, missing", &|s| match run(s.get(&id(9), T0)) {
            Err(Error::SessionNotFound) => Ok(()),
            other => other.map(drop),
        }),
        {
            kv.insert_legacy(&bare(5), "{}");
            count("get, legacy", &|s| run(s.get(&id(5), T0)).map(drop))
        },
        count("add, legacy (moves it)", &|s| {
            run(s.merge(&id(5), &body, Merge::Shallow, None, T0)).map(drop)
        }),
    ];
    create(6);
    kv.take_operations();
    let store = KvSessions::new(&kv, SoftAead, false);
    run(Sessions::new(&store, POLICY).delete(&id(6), None, T0)).unwrap();
    let off = ("delete, legacy lookup off", kv.take_operations());
    table.into_iter().chain([off]).collect()
}

#[test]
fn kv_operations_per_call_are_the_documented_ones() {
    assert_eq!(measured_kv_operations(), KV_OPERATIONS);
}

#[test]
fn a_token_id_works_and_is_never_looked_for_under_its_bare_id() {
    let kv = MemoryKv::default();
    let store = sealed(&kv);
    let sessions = Sessions::new(&store, POLICY);
    let token = SessionId::token_from_random_bytes([3; 32]);
    kv.take_operations();
    let missing = run(sessions.get(&token, T0));
    assert!(
        matches!(missing, Err(Error::SessionNotFound)),
        "{missing:?}"
    );
    assert_eq!(kv.take_operations(), 1, "the storage key only");
    run(sessions.create(token, &object(r#"{"a":1}"#), None, None, None, T0)).unwrap();
    assert_eq!(run(sessions.get(&token, T0)).unwrap().data, r#"{"a":1}"#);
    let successor = run(sessions.renew(&token, id(2), T0)).unwrap().id;
    assert!(successor.is_uuid(), "in the form proposed");
    assert_eq!(
        run(sessions.get(&token, T0 + S)).unwrap().data,
        r#"{"a":1}"#
    );
    kv.take_operations();
    run(sessions.delete(&successor, None, T0 + S)).unwrap();
    assert!(matches!(
        run(sessions.get(&token, T0 + S)),
        Err(Error::SessionNotFound)
    ));
}

#[test]
fn create_then_get() {
    let store = kv();
    let sessions = Sessions::new(&store, POLICY);
    let meta =
        run(sessions.create(id(1), &object(r#"{"user":"ada"}"#), None, None, None, T0)).unwrap();
    assert_eq!(meta.version, 1);
    assert_eq!(store.kv.kv_ttl(&key(1)), Some(1800));
    let session = run(sessions.get(&id(1), T0 + S)).unwrap();
    assert_eq!(session.data, r#"{"user":"ada"}"#);
    assert_eq!(session.meta, meta, "a read does not renew");
}

#[test]
fn an_expired_session_is_gone_before_the_store_drops_it() {
    let store = kv();
    let sessions = Sessions::new(&store, POLICY);
    run(sessions.create(id(1), &object("{}"), Some(2), None, None, T0)).unwrap();
    assert!(run(sessions.get(&id(1), T0 + 2 * S - 1)).is_ok());
    assert!(matches!(
        run(sessions.get(&id(1), T0 + 2 * S)),
        Err(Error::SessionNotFound)
    ));
    assert_eq!(
        store.kv.kv_ttl(&key(1)),
        Some(60),
        "KV keeps it at least 60 s"
    );
    assert!(matches!(
        run(sessions.replace(&id(1), &object("{}"), None, T0 + 3 * S)),
        Err(Error::SessionNotFound)
    ));
}

#[test]
fn writes_renew_and_count_versions() {
    let store = kv();
    let sessions = Sessions::new(&store, POLICY);
    run(sessions.create(id(1), &object(r#"{"a":1}"#), None, None, None, T0)).unwrap();
    let meta = run(sessions.replace(&id(1), &object(r#"{"b":2}"#), None, T0 + 100 * S));
    let meta = meta.unwrap();
    assert_eq!((meta.version, meta.expires_at), (2, T0 + 1900 * S));
    let patch = object(r#"{"c":3}"#);
    let (merged, meta) =
        run(sessions.merge(&id(1), &patch, Merge::Shallow, None, T0 + 200 * S)).unwrap();
    assert_eq!(merged.bytes(), br#"{"b":2,"c":3}"#);
    assert_eq!(meta.version, 3);
    assert_eq!(store.kv.plain(&id(1)).unwrap(), r#"{"b":2,"c":3}"#);
}

#[test]
fn merge_patch_goes_deep() {
    let store = kv();
    let sessions = Sessions::new(&store, POLICY);
    run(sessions.create(
        id(1),
        &object(r#"{"p":{"a":1,"b":2}}"#),
        None,
        None,
        None,
        T0,
    ))
    .unwrap();
    let patch = object(r#"{"p":{"a":null,"c":3}}"#);
    let (merged, _) = run(sessions.merge(&id(1), &patch, Merge::MergePatch, None, T0)).unwrap();
    assert_eq!(merged.bytes(), br#"{"p":{"b":2,"c":3}}"#);
}

#[test]
fn a_merge_never_grows_a_session_past_the_limit() {
    let store = kv();
    let sessions = Sessions::new(&store, POLICY);
    run(sessions.create(id(1), &object("{}"), None, None, None, T0)).unwrap();
    let chunk = |n: usize| object(&format!(r#"{{"k{n}":"{}"}}"#, "x".repeat(20_000)));
    for n in 0..3 {
        run(sessions.merge(&id(1), &chunk(n), Merge::Shallow, None, T0)).unwrap();
    }
    let before = store.kv.plain(&id(1)).unwrap();
    store.kv.take_operations();
    let err = run(sessions.merge(&id(1), &chunk(3), Merge::Shallow, None, T0)).unwrap_err();
    assert!(
        matches!(err, Error::SessionTooLarge { limit: 65_536 }),
        "{err:?}"
    );
    assert_eq!(store.kv.take_operations(), 1, "read, nothing written");
    assert_eq!(store.kv.plain(&id(1)).unwrap(), before);
}

#[test]
fn touch_renews_without_changing_data_or_version() {
    let store = kv();
    let sessions = Sessions::new(&store, POLICY);
    run(sessions.create(id(1), &object(r#"{"a":1}"#), None, None, None, T0)).unwrap();
    let meta = run(sessions.touch(&id(1), T0 + 1000 * S)).unwrap();
    assert_eq!((meta.version, meta.expires_at), (1, T0 + 2800 * S));
    assert_eq!(store.kv.plain(&id(1)).unwrap(), r#"{"a":1}"#);
}

#[test]
fn a_touch_within_the_interval_writes_nothing() {
    let store = kv();
    let sessions = Sessions::new(&store, POLICY);
    let created = run(sessions.create(id(1), &object("{}"), None, None, None, T0)).unwrap();
    store.kv.take_operations();
    assert_eq!(run(sessions.touch(&id(1), T0 + 59 * S)).unwrap(), created);
    assert_eq!(store.kv.take_operations(), 1, "read only");
    let renewed = run(sessions.touch(&id(1), T0 + 60 * S)).unwrap();
    assert_eq!(renewed.expires_at, T0 + 1860 * S);
    assert_eq!(store.kv.take_operations(), 2);
}

#[test]
fn a_touch_gives_a_legacy_entry_its_metadata() {
    let store = kv();
    let sessions = Sessions::new(&store, POLICY);
    store.kv.insert_legacy(&bare(1), "{}");
    run(sessions.touch(&id(1), T0)).unwrap();
    let meta = store.kv.meta(&key(1)).expect("written");
    assert_eq!((meta.version, meta.created_at), (0, T0));
}

#[test]
fn rotation_moves_the_data_and_keeps_the_creation_time() {
    let store = kv();
    let sessions = Sessions::new(&store, POLICY);
    run(sessions.create(id(1), &object(r#"{"a":1}"#), Some(600), None, None, T0)).unwrap();
    let meta = run(sessions.rotate(&id(1), id(2), T0 + 10 * S)).unwrap();
    assert_eq!(meta.created_at, T0);
    assert_eq!(meta.ttl, Some(600));
    assert_eq!(store.kv.plain(&id(1)), None);
    let moved = run(sessions.get(&id(2), T0 + 10 * S)).unwrap();
    assert_eq!(moved.data, r#"{"a":1}"#);
    assert!(matches!(
        run(sessions.rotate(&id(1), id(3), T0 + 10 * S)),
        Err(Error::SessionNotFound)
    ));
}

#[test]
fn unknown_ids_are_never_created_by_writes() {
    let store = kv();
    let sessions = Sessions::new(&store, POLICY);
    let body = object("{}");
    for result in [
        run(sessions.replace(&id(9), &body, None, T0)).map(drop),
        run(sessions.merge(&id(9), &body, Merge::Shallow, None, T0)).map(drop),
        run(sessions.touch(&id(9), T0)).map(drop),
    ] {
        assert!(matches!(result, Err(Error::SessionNotFound)));
    }
    assert!(store.kv.entries.borrow().is_empty());
}

#[test]
fn delete_is_idempotent() {
    let store = kv();
    let sessions = Sessions::new(&store, POLICY);
    run(sessions.create(id(1), &object("{}"), None, None, None, T0)).unwrap();
    run(sessions.delete(&id(1), None, T0)).unwrap();
    run(sessions.delete(&id(1), None, T0)).unwrap();
    assert!(store.kv.entries.borrow().is_empty());
}

#[test]
fn if_match_guards_every_write() {
    let store = kv();
    let sessions = Sessions::new(&store, POLICY);
    run(sessions.create(id(1), &object(r#"{"a":1}"#), None, None, None, T0)).unwrap();
    let stale = IfMatch::parse("\"7\"").unwrap();
    let current = IfMatch::parse("W/\"0\", \"1\"").unwrap();
    let body = object(r#"{"b":1}"#);
    assert!(matches!(
        run(sessions.replace(&id(1), &body, Some(&stale), T0)),
        Err(Error::PreconditionFailed)
    ));
    assert!(matches!(
        run(sessions.merge(&id(1), &body, Merge::Shallow, Some(&stale), T0)),
        Err(Error::PreconditionFailed)
    ));
    assert!(matches!(
        run(sessions.delete(&id(1), Some(&stale), T0)),
        Err(Error::PreconditionFailed)
    ));
    assert_eq!(
        store.kv.plain(&id(1)).unwrap(),
        r#"{"a":1}"#,
        "nothing written"
    );
    let meta = run(sessions.replace(&id(1), &body, Some(&current), T0)).unwrap();
    assert_eq!(meta.version, 2);
    run(sessions.delete(&id(1), Some(&IfMatch::Any), T0)).unwrap();
    assert!(matches!(
        run(sessions.delete(&id(1), Some(&IfMatch::Any), T0)),
        Err(Error::SessionNotFound)
    ));
}

#[test]
fn legacy_entries_are_read_merged_replaced_and_deleted() {
    let store = kv();
    let sessions = Sessions::new(&store, POLICY);
    store.kv.insert_legacy(&bare(5), r#"{"userId":42}"#);
    let session = run(sessions.get(&id(5), T0)).unwrap();
    assert_eq!(session.data, r#"{"userId":42}"#);
    assert_eq!(session.meta.version, 0);
    let patch = object(r#"{"role":"admin"}"#);
    let (merged, meta) = run(sessions.merge(&id(5), &patch, Merge::Shallow, None, T0)).unwrap();
    assert_eq!(merged.bytes(), br#"{"userId":42,"role":"admin"}"#);
    assert_eq!(
        (meta.version, meta.created_at),
        (1, T0),
        "metadata from the first write"
    );
    run(sessions.delete(&id(5), None, T0)).unwrap();
    assert!(store.kv.entries.borrow().is_empty());
}

#[test]
fn stored_data_that_is_not_a_json_object_is_never_merged_away() {
    let store = kv();
    let sessions = Sessions::new(&store, POLICY);
    for (n, stored) in ["{not json", "[1,2]", "\"text\"", "{\"a\":1}x"]
        .iter()
        .enumerate()
    {
        let n = n as u8;
        store.kv.insert_legacy(&bare(n), stored);
        for how in [Merge::Shallow, Merge::MergePatch] {
            let result = run(sessions.merge(&id(n), &object(r#"{"a":1}"#), how, None, T0));
            assert!(
                matches!(result, Err(Error::SessionNotMergeable)),
                "{stored}"
            );
        }
        assert_eq!(store.kv.plain(&id(n)).as_deref(), Some(*stored), "kept");
    }
}

#[test]
fn a_failed_write_leaves_the_previous_data_and_says_retry() {
    let store = kv();
    let sessions = Sessions::new(&store, POLICY);
    run(sessions.create(id(1), &object(r#"{"a":1}"#), None, None, None, T0)).unwrap();
    store.kv.fail_next(Op::Put, Fault::Busy);
    let err = run(sessions.merge(&id(1), &object(r#"{"b":2}"#), Merge::Shallow, None, T0));
    assert_eq!(err.unwrap_err().code(), "store_busy");
    store.kv.fail_next(Op::Put, Fault::Unavailable);
    let err = run(sessions.touch(&id(1), T0 + 100 * S)).unwrap_err();
    assert_eq!(err.code(), "store_unavailable");
    store.kv.fail_next(Op::Get, Fault::Unavailable);
    let err = run(sessions.get(&id(1), T0)).unwrap_err();
    assert_eq!(err.code(), "store_unavailable");
    let session = run(sessions.get(&id(1), T0)).unwrap();
    assert_eq!(
        (session.data.as_str(), session.meta.version),
        (r#"{"a":1}"#, 1)
    );
}

#[test]
fn a_rotation_whose_old_id_cannot_be_removed_is_undone() {
    let store = kv();
    let sessions = Sessions::new(&store, POLICY);
    run(sessions.create(id(1), &object(r#"{"a":1}"#), None, None, None, T0)).unwrap();
    store.kv.fail_next(Op::Delete, Fault::Busy);
    let err = run(sessions.rotate(&id(1), id(2), T0 + S)).unwrap_err();
    assert_eq!(err.code(), "store_busy");
    assert_eq!(
        store.kv.plain(&id(1)).as_deref(),
        Some(r#"{"a":1}"#),
        "old id kept"
    );
    assert_eq!(store.kv.plain(&id(2)), None, "new copy removed");
}

#[test]
fn a_rotation_that_cannot_be_undone_either_is_logged() {
    let store = kv();
    let sessions = Sessions::new(&store, POLICY);
    run(sessions.create(id(1), &object(r#"{"a":1}"#), None, None, None, T0)).unwrap();
    store.kv.fail_next(Op::Delete, Fault::Unavailable);
    store.kv.fail_next(Op::Delete, Fault::Unavailable);
    let err = run(sessions.rotate(&id(1), id(2), T0 + S)).unwrap_err();
    assert_eq!(err.code(), "store_unavailable");
    let cause = err.log_cause().unwrap();
    assert!(
        cause.contains("unused copy") && cause.contains(&id(2).short()),
        "{cause}"
    );
    assert!(!cause.contains(&key(2)), "never a whole id: {cause}");
    assert_eq!(
        store.kv.plain(&id(1)).as_deref(),
        Some(r#"{"a":1}"#),
        "old id kept"
    );
}

#[test]
fn a_lost_race_is_merged_again_into_what_the_other_writer_left() {
    let store = StrictSessions::default();
    let sessions = Sessions::new(&store, POLICY);
    run(sessions.create(id(1), &object(r#"{"a":1}"#), None, None, None, T0)).unwrap();
    store.interleave(id(1), r#"{"a":1,"other":true}"#);
    let (merged, meta) =
        run(sessions.merge(&id(1), &object(r#"{"b":2}"#), Merge::Shallow, None, T0)).unwrap();
    assert_eq!(
        merged.bytes(),
        br#"{"a":1,"other":true,"b":2}"#,
        "both writes kept"
    );
    assert_eq!(meta.version, 3, "one version per acknowledged write");
}

#[test]
fn with_if_match_a_lost_race_is_a_failed_precondition() {
    let store = StrictSessions::default();
    let sessions = Sessions::new(&store, POLICY);
    run(sessions.create(id(1), &object(r#"{"a":1}"#), None, None, None, T0)).unwrap();
    store.interleave(id(1), r#"{"other":true}"#);
    let result = run(sessions.replace(
        &id(1),
        &object("{}"),
        Some(&IfMatch::parse("\"1\"").unwrap()),
        T0,
    ));
    assert!(matches!(result, Err(Error::PreconditionFailed)));
    assert_eq!(store.kv().plain(&id(1)).unwrap(), r#"{"other":true}"#);
}

#[test]
fn endless_races_end_in_store_busy() {
    let store = StrictSessions::default();
    let sessions = Sessions::new(&store, POLICY);
    run(sessions.create(id(1), &object("{}"), None, None, None, T0)).unwrap();
    for n in 0..ATTEMPTS {
        store.interleave(id(1), &format!(r#"{{"n":{n}}}"#));
    }
    let err = run(sessions.merge(&id(1), &object(r#"{"b":2}"#), Merge::Shallow, None, T0));
    assert_eq!(err.unwrap_err().code(), "store_busy");
}

#[test]
fn a_touch_never_undoes_a_concurrent_write() {
    let store = StrictSessions::default();
    let sessions = Sessions::new(&store, POLICY);
    run(sessions.create(id(1), &object(r#"{"a":1}"#), None, None, None, T0)).unwrap();
    store.interleave(id(1), r#"{"a":2}"#);
    run(sessions.touch(&id(1), T0 + 100 * S)).unwrap();
    assert_eq!(store.kv().plain(&id(1)).unwrap(), r#"{"a":2}"#);
}

#[test]
fn a_rotation_racing_a_write_is_undone_and_the_write_kept() {
    let store = StrictSessions::default();
    let sessions = Sessions::new(&store, POLICY);
    run(sessions.create(id(1), &object(r#"{"a":1}"#), None, None, None, T0)).unwrap();
    store.interleave(id(2), "{}");
    store.interleave(id(1), r#"{"a":2}"#);
    let err = run(sessions.rotate(&id(1), id(2), T0)).unwrap_err();
    assert_eq!(err.code(), "store_busy");
    assert_eq!(
        store.kv().plain(&id(1)).unwrap(),
        r#"{"a":2}"#,
        "the write survives"
    );
    assert_eq!(store.kv().plain(&id(2)), None);
}
