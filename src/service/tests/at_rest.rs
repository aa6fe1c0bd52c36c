//! What a dump of the store shows, and the ways into it that must stay shut: no id and no data
//! at rest or in a listing, values that do not open when altered or moved, and every older form
//! of a session still served and moved on its first write. On KV, as the worker keeps it.

use crate::domain::auth::{Auth, Level};
use crate::domain::derive::{Handle, StorageKey};
use crate::domain::error::Error;
use crate::domain::id::SessionId;
use crate::domain::json::JsonObject;
use crate::domain::merge::Merge;
use crate::domain::session::fixtures::{POLICY, S, T0};
use crate::domain::session::Meta;
use crate::domain::subject::Subject;
use crate::service::sessions::Sessions;
use crate::service::subjects::Subjects;
use crate::store::kv::{KvIndex, KvSessions};
use crate::store::memory::{run, sealed, MemoryKv, SoftAead};

const CANARY: &str = "c4n4ry-8b1f";

fn id(n: u8) -> SessionId {
    SessionId::from_random_bytes([n; 16])
}

fn ada() -> Subject {
    Subject::new(b"ada@example.com", None).unwrap()
}

fn body(text: &str) -> JsonObject {
    JsonObject::from_bytes(text.as_bytes().to_vec()).unwrap()
}

/// Every form an id can be written in: hyphenated, bare hex, either case.
fn forms(id: &SessionId) -> Vec<String> {
    let text = id.to_string();
    let simple = text.replace('-', "");
    vec![text.to_uppercase(), simple.to_uppercase(), text, simple]
}

fn assert_reveals_nothing(kv: &MemoryKv, ids: &[SessionId]) {
    let dump = kv.dump().to_lowercase();
    for id in ids {
        for form in forms(id) {
            assert!(!dump.contains(&form.to_lowercase()), "{form} in\n{dump}");
        }
    }
    assert!(!dump.contains(CANARY), "data in\n{dump}");
}

/// One request's stores on `kv`.
fn with<T>(
    kv: &MemoryKv,
    serve_legacy: bool,
    f: impl FnOnce(&Sessions<KvSessions<&MemoryKv, SoftAead>, KvIndex<&MemoryKv>>) -> T,
) -> T {
    let store = KvSessions::new(kv, SoftAead, serve_legacy);
    let index = KvIndex::new(kv, serve_legacy);
    let sessions = Sessions::new(&store, POLICY).indexed(&index, 100);
    f(&sessions)
}

fn listed(kv: &MemoryKv, now: u64) -> Vec<Handle> {
    let (store, index) = (sealed(kv), KvIndex::new(kv, true));
    let live = run(Subjects::new(&index, &store, POLICY).live(&ada(), now)).unwrap();
    live.iter().map(|listed| listed.key.handle).collect()
}

#[test]
fn a_dump_of_every_operation_shows_no_id_and_no_data() {
    let kv = MemoryKv::default();
    let data = body(&format!(r#"{{"user":"ada","secret":"{CANARY}"}}"#));
    let patch = body(&format!(r#"{{"more":"{CANARY}"}}"#));
    with(&kv, true, |s| {
        run(s.create(id(1), &data, None, Some(ada()), None, T0)).unwrap();
        run(s.create(id(2), &data, None, Some(ada()), None, T0 + S)).unwrap();
        run(s.create(id(3), &data, None, None, None, T0)).unwrap();
        run(s.merge(&id(1), &patch, Merge::Shallow, None, T0 + S)).unwrap();
        run(s.replace(&id(3), &data, None, T0 + S)).unwrap();
        run(s.touch(&id(2), T0 + 100 * S)).unwrap();
        run(s.rotate(&id(2), id(4), T0 + 101 * S)).unwrap();
    });
    assert_reveals_nothing(&kv, &[id(1), id(2), id(3), id(4)]);
    assert_eq!(
        listed(&kv, T0 + 102 * S),
        vec![Handle::of(&id(4)), Handle::of(&id(1))]
    );
    let session = with(&kv, true, |s| run(s.get(&id(1), T0 + 102 * S))).unwrap();
    assert!(
        session.data.contains(CANARY),
        "and each still opens with its id"
    );
}

#[test]
fn a_value_altered_or_moved_onto_another_key_reads_as_not_found() {
    let kv = MemoryKv::default();
    with(&kv, true, |s| {
        for n in 1..=3 {
            run(s.create(id(n), &body(r#"{"a":1}"#), None, Some(ada()), None, T0)).unwrap();
        }
    });
    let key = |n| StorageKey::of(&id(n)).name();
    let (value, meta, ttl) = kv.entries.borrow()[&key(1)].clone();
    kv.entries
        .borrow_mut()
        .insert(key(2), (value.clone(), meta.clone(), ttl));
    let mut altered = value;
    let last = altered.len() - 1;
    altered[last] ^= 1;
    kv.entries.borrow_mut().insert(key(3), (altered, meta, ttl));
    for n in [2, 3] {
        let read = with(&kv, true, |s| run(s.get(&id(n), T0)));
        let err = read.unwrap_err();
        assert_eq!((err.status(), err.code()), (404, "session_not_found"));
        let cause = err.log_cause().unwrap();
        assert!(cause.contains(&id(n).short()) && !cause.contains(&id(n).to_string()));
        let write = with(&kv, true, |s| run(s.replace(&id(n), &body("{}"), None, T0)));
        assert_eq!(write.unwrap_err().code(), "session_not_found");
    }
    // A listing reads metadata only (it has no id to open anything with), so it still shows
    // both; each is gone for whoever holds its id.
    assert_eq!(listed(&kv, T0).len(), 3);
    assert_eq!(kv.plain(&id(1)).as_deref(), Some(r#"{"a":1}"#));
}

#[test]
fn a_session_of_kv_mode_before_hashing_is_served_listed_and_moved() {
    let kv = MemoryKv::default();
    let meta = Meta {
        subject: Some(ada()),
        ..Meta::new(T0, None, POLICY)
    };
    let bare = id(1).to_string();
    kv.insert(
        &bare,
        &format!(r#"{{"secret":"{CANARY}"}}"#),
        Some(meta.to_json()),
    );
    let entry = format!("sub:{}:{bare}", ada().hex());
    kv.insert(&entry, "", Some(T0.to_string()));
    let session = with(&kv, true, |s| run(s.get(&id(1), T0 + S))).unwrap();
    assert_eq!((session.meta, session.data.contains(CANARY)), (meta, true));
    assert_eq!(listed(&kv, T0 + S), vec![Handle::of(&id(1))]);
    assert!(
        kv.bytes(&entry).is_some(),
        "kept while the session is under its id"
    );
    let patch = body(r#"{"b":2}"#);
    let (merged, written) = with(&kv, true, |s| {
        run(s.merge(&id(1), &patch, Merge::Shallow, None, T0 + 2 * S))
    })
    .unwrap();
    assert!(String::from_utf8(merged.bytes().to_vec())
        .unwrap()
        .contains(CANARY));
    assert_eq!((written.version, written.subject), (2, Some(ada())));
    assert_eq!(kv.bytes(&bare), None, "moved");
    assert_eq!(listed(&kv, T0 + 3 * S), vec![Handle::of(&id(1))]);
    assert!(
        kv.bytes(&entry).is_none(),
        "the next listing rewrote its entry"
    );
    assert_reveals_nothing(&kv, &[id(1)]);
    assert_eq!(listed(&kv, T0 + 3 * S), vec![Handle::of(&id(1))]);
}

#[test]
fn a_session_of_the_old_worker_is_served_then_sealed_and_deleted_everywhere() {
    let kv = MemoryKv::default();
    kv.insert_legacy(&id(1).to_string(), &format!(r#"{{"s":"{CANARY}"}}"#));
    kv.insert_legacy(&id(2).to_string(), "{}");
    let touched = with(&kv, true, |s| run(s.touch(&id(1), T0))).unwrap();
    assert_eq!(touched.version, 0, "a touch keeps the version");
    assert_eq!(kv.meta(&StorageKey::of(&id(1)).name()), Some(touched));
    with(&kv, true, |s| run(s.delete(&id(2), None, T0))).unwrap();
    assert_reveals_nothing(&kv, &[id(1), id(2)]);
    assert_eq!(kv.entries.borrow().len(), 1);
}

#[test]
fn with_the_legacy_lookup_off_an_old_entry_is_not_found() {
    let kv = MemoryKv::default();
    kv.insert_legacy(&id(1).to_string(), "{}");
    let read = with(&kv, false, |s| run(s.get(&id(1), T0)));
    assert!(matches!(read, Err(Error::SessionNotFound)));
    assert_eq!(kv.take_operations(), 1, "one read, under the storage key");
}

#[test]
fn a_handle_revokes_only_its_own_subjects_session() {
    let kv = MemoryKv::default();
    let bob = Subject::new(b"bob", None).unwrap();
    with(&kv, true, |s| {
        run(s.create(id(1), &body("{}"), None, Some(ada()), None, T0)).unwrap();
        run(s.create(id(2), &body("{}"), None, Some(ada()), None, T0)).unwrap();
        run(s.create(id(3), &body("{}"), None, Some(bob), None, T0)).unwrap();
    });
    let (store, index) = (sealed(&kv), KvIndex::new(&kv, true));
    let subjects = Subjects::new(&index, &store, POLICY);
    let bobs = Handle::of(&id(3));
    let refused = run(subjects.revoke_one(&ada(), &bobs, T0 + S));
    assert!(matches!(refused, Err(Error::SessionNotFound)));
    assert!(kv.plain(&id(3)).is_some(), "bob's session stays");
    run(subjects.revoke_one(&ada(), &Handle::of(&id(1)), T0 + S)).unwrap();
    assert_eq!(kv.plain(&id(1)), None);
    assert_eq!(listed(&kv, T0 + S), vec![Handle::of(&id(2))]);
    let again = run(subjects.revoke_one(&ada(), &Handle::of(&id(1)), T0 + S));
    assert!(matches!(again, Err(Error::SessionNotFound)), "once");
}

/// What a writer of the KV namespace can do to a sealed session's lifecycle, which KV keeps
/// beside the value as metadata for listings: push its expiry or its creation later, move it
/// to another subject or to none, or drop it, so that it would read as the old worker's.
/// The sealed lifecycle is the session's: each of these reads as not found, and says so in
/// the log.
#[test]
fn a_lifecycle_altered_beside_the_seal_reads_as_not_found() {
    let kv = MemoryKv::default();
    with(&kv, true, |s| {
        run(s.create(
            id(1),
            &body(r#"{"role":"user"}"#),
            None,
            Some(ada()),
            None,
            T0,
        ))
    })
    .unwrap();
    let key = StorageKey::of(&id(1)).name();
    let (value, metadata, ttl) = kv.entries.borrow()[&key].clone();
    let meta = Meta::from_json(metadata.as_deref().unwrap()).unwrap();
    let bob = Subject::new(b"bob", None).unwrap();
    let forged = [
        Some(
            Meta {
                expires_at: u64::MAX,
                ..meta
            }
            .to_json(),
        ),
        Some(
            Meta {
                created_at: T0 + 3600 * S,
                ..meta
            }
            .to_json(),
        ),
        Some(
            Meta {
                subject: Some(bob),
                ..meta
            }
            .to_json(),
        ),
        Some(
            Meta {
                subject: None,
                ..meta
            }
            .to_json(),
        ),
        Some(Meta { version: 0, ..meta }.to_json()),
        // Marked as a renewed id's record, which readers without the id skip.
        Some(meta.to_json().replace('}', r#","retired":1}"#)),
        Some("{}".into()),
        None,
    ];
    for metadata in forged {
        let entry = (value.clone(), metadata.clone(), ttl);
        kv.entries.borrow_mut().insert(key.clone(), entry);
        let read = with(&kv, true, |s| run(s.get(&id(1), T0 + S)));
        let err = read.unwrap_err();
        assert_eq!(
            (err.status(), err.code()),
            (404, "session_not_found"),
            "{metadata:?}"
        );
        let cause = err.log_cause().unwrap();
        assert!(cause.starts_with(&format!("integrity: session {}", id(1).short())));
        let touch = with(&kv, true, |s| run(s.touch(&id(1), T0 + 100 * S)));
        assert_eq!(touch.unwrap_err().code(), "session_not_found");
    }
    kv.entries.borrow_mut().insert(key, (value, metadata, ttl));
    let session = with(&kv, true, |s| run(s.get(&id(1), T0 + S))).unwrap();
    assert_eq!((session.meta, session.without_meta), (meta, false));
}

/// KV keeps no history to compare with: a value captured earlier and put back is served (the
/// docs/security.md says so), but only as what it was sealed as, so it ends at its own expiry.
#[test]
fn an_earlier_value_put_back_ends_at_its_own_sealed_expiry() {
    let kv = MemoryKv::default();
    let admin = body(r#"{"role":"admin"}"#);
    let created = with(&kv, true, |s| {
        run(s.create(id(1), &admin, None, None, None, T0))
    })
    .unwrap();
    let key = StorageKey::of(&id(1)).name();
    let captured = kv.entries.borrow()[&key].clone();
    let user = body(r#"{"role":"user"}"#);
    let demoted = with(&kv, true, |s| {
        run(s.replace(&id(1), &user, None, T0 + 100 * S))
    })
    .unwrap();
    kv.entries
        .borrow_mut()
        .insert(key.clone(), captured.clone());
    let read = with(&kv, true, |s| run(s.get(&id(1), T0 + 101 * S))).unwrap();
    assert_eq!(
        (read.data.as_str(), read.meta),
        (r#"{"role":"admin"}"#, created)
    );
    assert!(created.expires_at < demoted.expires_at);
    let at_its_end = with(&kv, true, |s| run(s.get(&id(1), created.expires_at)));
    assert!(matches!(at_its_end, Err(Error::SessionNotFound)));
    let (value, _, ttl) = captured;
    let later = Meta {
        expires_at: demoted.expires_at,
        ..created
    }
    .to_json();
    kv.entries
        .borrow_mut()
        .insert(key, (value, Some(later), ttl));
    let extended = with(&kv, true, |s| run(s.get(&id(1), created.expires_at)));
    assert_eq!(extended.unwrap_err().code(), "session_not_found");
}

/// Sessions the version before sealed (`s1`, lifecycle beside the value) stay readable, with
/// their metadata, and are sealed anew on their first write; without metadata one is not the
/// old worker's but altered; with earlier formats no longer read, it is gone.
#[test]
fn a_record_of_the_version_before_is_read_with_its_metadata_then_sealed_anew() {
    let (old, bytes) = crate::store::seal::fixtures::s1();
    let key = StorageKey::of(&old).name();
    let meta = Meta::new(T0, None, POLICY);
    let kv = MemoryKv::default();
    let put = |metadata: Option<String>| {
        let ttl = meta.kv_ttl(T0);
        kv.entries
            .borrow_mut()
            .insert(key.clone(), (bytes.clone(), metadata, ttl));
    };
    put(None);
    let read = with(&kv, true, |s| run(s.get(&old, T0 + S)));
    let cause = read.unwrap_err().log_cause().unwrap();
    assert!(
        cause.contains("has no lifecycle"),
        "not read as the old worker's: {cause}"
    );
    put(Some(meta.to_json()));
    let read = with(&kv, false, |s| run(s.get(&old, T0 + S)));
    assert_eq!(
        read.unwrap_err().code(),
        "session_not_found",
        "earlier formats off"
    );
    // Nothing of its lifecycle is sealed: its authentication is unknown, whatever is beside
    // it, so no metadata can make it fresher or stronger, now or once it is sealed anew.
    let unknown = Meta {
        auth: Auth::UNKNOWN,
        ..meta
    };
    let session = with(&kv, true, |s| run(s.get(&old, T0 + S))).unwrap();
    assert_eq!(
        (session.data.as_str(), session.meta),
        (r#"{"pinned":"s1"}"#, unknown)
    );
    let stepped_up = Meta {
        auth: Auth {
            at: T0 + S,
            level: Level::of(3).unwrap(),
        },
        updated_at: T0 + S,
        ..meta
    };
    put(Some(stepped_up.to_json()));
    let session = with(&kv, true, |s| run(s.get(&old, T0 + S))).unwrap();
    assert_eq!(session.meta.auth, Auth::UNKNOWN);
    with(&kv, true, |s| run(s.touch(&old, T0 + 100 * S))).unwrap();
    let sealed = with(&kv, true, |s| run(s.get(&old, T0 + 101 * S))).unwrap();
    assert_eq!(sealed.meta.auth, Auth::UNKNOWN, "sealed as unknown");
    assert!(kv.bytes(&key).unwrap().starts_with(b"s3"), "sealed anew");
    let session = with(&kv, false, |s| run(s.get(&old, T0 + 101 * S))).unwrap();
    assert_eq!(session.data, r#"{"pinned":"s1"}"#);
}

/// Sealing needs no secret, only the id: a writer of the store who picks an id can seal a
/// record for it (docs/security.md). Such a record is held to the same rules as any: one that
/// would live past its creation plus the lifetime, or was created in the future, is not a
/// session; one the rules could have made is served, which is what docs/security.md says.
#[test]
fn a_record_sealed_by_whoever_knows_the_id_is_held_to_the_rules() {
    use crate::domain::derive::WrapKey;
    use crate::store::seal::Sealer;
    let kv = MemoryKv::default();
    let plant = |meta: &Meta| {
        let (wrap, key) = (WrapKey::of(&id(9)), StorageKey::of(&id(9)));
        let value = run(Sealer(SoftAead).seal(&wrap, &key, meta, b"{}".into()))
            .unwrap()
            .into_vec();
        let entry = (value, Some(meta.to_json()), 60);
        kv.entries.borrow_mut().insert(key.name(), entry);
    };
    let year = 365 * 86_400 * S;
    let forged = [
        Meta {
            expires_at: T0 + year,
            ..Meta::new(T0, None, POLICY)
        },
        Meta::new(T0 + 86_400 * S, None, POLICY),
    ];
    for meta in forged {
        plant(&meta);
        let err = with(&kv, true, |s| run(s.get(&id(9), T0 + S))).unwrap_err();
        assert_eq!(err.code(), "session_not_found", "{meta:?}");
        assert!(
            err.log_cause().unwrap().contains("outside the rules"),
            "{meta:?}"
        );
    }
    plant(&Meta::new(T0, None, POLICY));
    assert!(with(&kv, true, |s| run(s.get(&id(9), T0 + S))).is_ok());
}
