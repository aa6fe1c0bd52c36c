//! A subject's sessions as the services keep them: listed at creation, bounded, revoked, moved
//! by rotation, on KV and on strong mode's index.

use crate::domain::derive::{DeviceKey, Handle};
use crate::domain::device::Device;
use crate::domain::id::SessionId;
use crate::domain::session::fixtures::{POLICY, S, T0};
use crate::domain::subject::Subject;
use crate::domain::time::Millis;
use crate::service::sessions::{NewDevice, Sessions};
use crate::service::subjects::Subjects;
use crate::service::tests::fixtures::{ada, data, id};
use crate::store::kv::KvIndex;
use crate::store::memory::{run, sealed, MemoryKv};

/// Sessions and their index on one in-memory KV namespace, as in the worker.
struct Kv {
    kv: MemoryKv,
}

impl Kv {
    fn new() -> Self {
        Self {
            kv: MemoryKv::default(),
        }
    }

    fn create(&self, n: u8, subject: Option<Subject>, now: Millis, max: usize) {
        let (store, index) = (sealed(&self.kv), KvIndex::new(&self.kv, true));
        let sessions = Sessions::new(&store, POLICY).indexed(&index, max);
        run(sessions.create(id(n), &data(), None, subject, None, now)).unwrap();
    }

    /// The handles listed, newest first.
    fn live(&self, now: Millis) -> Vec<Handle> {
        let (store, index) = (sealed(&self.kv), KvIndex::new(&self.kv, true));
        let live = run(Subjects::new(&index, &store, POLICY).live(&ada(), now)).unwrap();
        live.into_iter().map(|listed| listed.key.handle).collect()
    }

    fn index_entries(&self) -> usize {
        self.kv
            .entries
            .borrow()
            .keys()
            .filter(|k| k.starts_with("sub:"))
            .count()
    }
}

#[test]
fn a_subjects_live_sessions_are_listed_newest_first() {
    let kv = Kv::new();
    kv.create(1, Some(ada()), T0, 100);
    kv.create(2, Some(ada()), T0 + S, 100);
    kv.create(3, None, T0 + 2 * S, 100);
    let other = Subject::new(b"bob", None).ok();
    kv.create(4, other, T0 + 3 * S, 100);
    assert_eq!(kv.live(T0 + 4 * S), handles(&[2, 1]));
}

#[test]
fn creating_with_a_subject_costs_a_list_and_one_more_write() {
    let kv = Kv::new();
    kv.kv.take_operations();
    kv.create(1, Some(ada()), T0, 100);
    assert_eq!(kv.kv.take_operations(), 3, "list, index put, session put");
    kv.create(2, None, T0, 100);
    assert_eq!(kv.kv.take_operations(), 1, "without a subject, as before");
}

#[test]
fn rotating_with_a_subject_moves_its_entry() {
    let kv = Kv::new();
    kv.create(1, Some(ada()), T0, 100);
    kv.kv.take_operations();
    let (store, index) = (sealed(&kv.kv), KvIndex::new(&kv.kv, true));
    let sessions = Sessions::new(&store, POLICY).indexed(&index, 100);
    run(sessions.rotate(&id(1), id(2), T0 + S)).unwrap();
    assert_eq!(
        kv.kv.take_operations(),
        7,
        "read, the old entry read (for its device), index put, put, delete, the old entry \
         deleted under its handle and its id"
    );
    assert_eq!(kv.live(T0 + S), handles(&[2]));
}

#[test]
fn gone_sessions_are_not_listed_and_their_entries_are_cleaned_up() {
    let kv = Kv::new();
    kv.create(1, Some(ada()), T0, 100);
    let ttl = Some(2);
    let (store, index) = (sealed(&kv.kv), KvIndex::new(&kv.kv, true));
    let sessions = Sessions::new(&store, POLICY).indexed(&index, 100);
    run(sessions.create(id(2), &data(), ttl, Some(ada()), None, T0)).unwrap();
    kv.create(3, Some(ada()), T0, 100);
    run(sessions.delete(&id(3), None, T0)).unwrap();
    assert_eq!(
        kv.index_entries(),
        3,
        "a delete does not read the session's subject"
    );
    assert_eq!(kv.live(T0 + 2 * S), handles(&[1]), "2 expired, 3 deleted");
    assert_eq!(kv.index_entries(), 1, "their entries went when met");
}

#[test]
fn revoking_ends_every_session_but_the_one_kept() {
    let kv = Kv::new();
    for n in 1..=3 {
        kv.create(n, Some(ada()), T0 + u64::from(n) * S, 100);
    }
    kv.create(9, None, T0, 100);
    let (store, index) = (sealed(&kv.kv), KvIndex::new(&kv.kv, true));
    let subjects = Subjects::new(&index, &store, POLICY);
    assert_eq!(
        run(subjects.revoke(&ada(), Some(Handle::of(&id(2))), None, T0 + 5 * S)).unwrap(),
        2
    );
    assert_eq!(kv.live(T0 + 5 * S), handles(&[2]));
    assert_eq!(kv.kv.plain(&id(1)), None);
    assert!(kv.kv.plain(&id(9)).is_some(), "other sessions stay");
    assert_eq!(
        run(subjects.revoke(&ada(), None, None, T0 + 5 * S)).unwrap(),
        1
    );
    assert_eq!(
        run(subjects.revoke(&ada(), None, None, T0 + 5 * S)).unwrap(),
        0
    );
    assert_eq!(kv.index_entries(), 0);
}

#[test]
fn one_more_than_the_bound_ends_the_least_recently_written() {
    let kv = Kv::new();
    for n in 1..=3 {
        kv.create(n, Some(ada()), T0 + u64::from(n) * S, 3);
    }
    // Session 1 is written last: 2 is now the least recently written.
    let (store, index) = (sealed(&kv.kv), KvIndex::new(&kv.kv, true));
    let sessions = Sessions::new(&store, POLICY).indexed(&index, 3);
    run(sessions.replace(&id(1), &data(), None, T0 + 10 * S)).unwrap();
    kv.create(4, Some(ada()), T0 + 11 * S, 3);
    assert_eq!(kv.live(T0 + 12 * S), handles(&[4, 3, 1]));
    assert_eq!(kv.kv.plain(&id(2)), None, "ended, not just unlisted");
}

#[test]
fn rotation_moves_the_index_entry_with_the_session() {
    let kv = Kv::new();
    kv.create(1, Some(ada()), T0, 100);
    let (store, index) = (sealed(&kv.kv), KvIndex::new(&kv.kv, true));
    let sessions = Sessions::new(&store, POLICY).indexed(&index, 100);
    let meta = run(sessions.rotate(&id(1), id(2), T0 + S)).unwrap();
    assert_eq!(meta.subject, Some(ada()), "the subject is kept");
    assert_eq!(kv.live(T0 + S), handles(&[2]));
    assert_eq!(kv.index_entries(), 1);
}

#[test]
#[cfg(not(target_arch = "wasm32"))]
fn the_same_rules_hold_on_the_strong_mode_index() {
    let (store, index) = strong();
    let sessions = Sessions::new(&store, POLICY).indexed(&index, 2);
    for n in 1..=3 {
        let now = T0 + u64::from(n) * S;
        run(sessions.create(id(n), &data(), None, Some(ada()), None, now)).unwrap();
    }
    let subjects = Subjects::new(&index, &store, POLICY);
    let live = run(subjects.live(&ada(), T0 + 4 * S)).unwrap();
    assert_eq!(
        live.iter().map(|l| l.key.handle).collect::<Vec<_>>(),
        handles(&[3, 2])
    );
    assert_eq!(
        run(subjects.revoke(&ada(), None, None, T0 + 4 * S)).unwrap(),
        2
    );
    assert!(run(crate::store::SubjectIndex::members(&index, &ada()))
        .unwrap()
        .is_empty());
    // The lineages it ended are kept until the sessions' latest end, then nothing is.
    let latest = POLICY.latest_end(T0 + 3 * S);
    run(index.on_alarm(latest - 1)).unwrap();
    assert!(!index.0.is_empty(), "the ended lineages, until their end");
    run(index.on_alarm(latest)).unwrap();
    assert!(index.0.is_empty(), "an empty index leaves nothing behind");
}

/// Ids past 255: the listing tests need a thousand sessions.
fn many(n: u16) -> SessionId {
    let mut bytes = [7; 16];
    bytes[..2].copy_from_slice(&n.to_be_bytes());
    SessionId::from_random_bytes(bytes)
}

#[test]
fn a_listing_costs_one_list_per_thousand_and_one_bulk_read_per_hundred() {
    for (n, expected) in [(1u16, 2), (100, 2), (300, 4), (1000, 11)] {
        let kv = MemoryKv::default();
        let (store, index) = (sealed(&kv), KvIndex::new(&kv, true));
        let sessions = Sessions::new(&store, POLICY).indexed(&index, 5000);
        kv.uncounted(|| {
            for k in 0..n {
                let now = T0 + u64::from(k);
                run(sessions.create(many(k), &data(), None, Some(ada()), None, now)).unwrap();
            }
        });
        let live = run(Subjects::new(&index, &store, POLICY).live(&ada(), T0 + S)).unwrap();
        assert_eq!(live.len(), usize::from(n));
        assert_eq!(kv.take_operations(), expected, "{n} sessions");
        assert_eq!(live[0].key.handle, Handle::of(&many(n - 1)), "newest first");
    }
}

#[test]
fn revoking_before_a_time_ends_the_older_sessions_and_keeps_the_excepted_one() {
    let kv = Kv::new();
    for n in 1..=4 {
        kv.create(n, Some(ada()), T0 + u64::from(n) * S, 100);
    }
    let (store, index) = (sealed(&kv.kv), KvIndex::new(&kv.kv, true));
    let subjects = Subjects::new(&index, &store, POLICY);
    let before = Some(T0 + 3 * S);
    let revoked =
        run(subjects.revoke(&ada(), Some(Handle::of(&id(1))), before, T0 + 5 * S)).unwrap();
    assert_eq!(revoked, 1, "2 only: 1 is kept, 3 is not older");
    assert_eq!(kv.live(T0 + 5 * S), handles(&[4, 3, 1]));
    assert_eq!(
        run(subjects.revoke(&ada(), None, Some(T0), T0 + 5 * S)).unwrap(),
        0
    );
}

#[test]
fn device_info_is_listed_as_sealed_and_kept_by_rotation() {
    let kv = Kv::new();
    let (store, index) = (sealed(&kv.kv), KvIndex::new(&kv.kv, true));
    let sessions = Sessions::new(&store, POLICY).indexed(&index, 100);
    let device = Device {
        label: Some("Firefox on Linux".into()),
        ..Device::default()
    };
    let key = DeviceKey::of(b"ada@example.com", None);
    let new = NewDevice {
        device: &device,
        key: &key,
    };
    run(sessions.create(id(1), &data(), None, Some(ada()), Some(new), T0)).unwrap();
    kv.create(2, Some(ada()), T0 + S, 100);
    run(sessions.rotate(&id(1), id(3), T0 + 2 * S)).unwrap();
    let subjects = Subjects::new(&index, &store, POLICY);
    let live = run(subjects.live(&ada(), T0 + 3 * S)).unwrap();
    let sealed = live[1].device.clone().unwrap();
    assert!(
        !String::from_utf8_lossy(&sealed).contains("Firefox"),
        "sealed at rest"
    );
    let listing = run(subjects.listing(&ada(), &key, T0 + 3 * S)).unwrap();
    let listed: Vec<_> = listing
        .sessions
        .iter()
        .map(|(l, device)| (l.key.handle, device.clone()))
        .collect();
    assert_eq!(
        listed,
        vec![
            (Handle::of(&id(2)), Device::default()),
            (Handle::of(&id(3)), device.clone())
        ],
        "the rotated session keeps its creation time and its device"
    );
    let other = DeviceKey::of(b"bob@example.com", None);
    let listing = run(subjects.listing(&ada(), &other, T0 + 3 * S)).unwrap();
    assert_eq!(
        listing.sessions[1].1,
        Device::default(),
        "another key opens nothing"
    );
    let new = NewDevice {
        device: &device,
        key: &key,
    };
    let no_subject = run(sessions.create(id(4), &data(), None, None, Some(new), T0));
    assert!(no_subject.is_err(), "device info needs a subject");
}

#[test]
#[cfg(not(target_arch = "wasm32"))]
fn a_strong_listing_reads_no_session_until_a_reported_expiry_has_passed() {
    let (store, index) = strong();
    let sessions = Sessions::new(&store, POLICY).indexed(&index, 100);
    for n in 1..=3 {
        run(sessions.create(id(n), &data(), None, Some(ada()), None, T0)).unwrap();
    }
    let subjects = Subjects::new(&index, &store, POLICY);
    let kv = store.kv();
    kv.take_operations();
    let listed = |now| run(subjects.live(&ada(), now)).unwrap();
    index.0.take_operations();
    assert_eq!(listed(T0 + S).len(), 3);
    assert_eq!(index.0.take_operations().0, 2, "the tables, then the rows");
    assert_eq!(
        kv.take_operations(),
        0,
        "every entry vouched for by its report"
    );
    // A write a minute on opens a renewal interval: reported, listed as it is.
    run(sessions.replace(&id(1), &data(), None, T0 + 1000 * S)).unwrap();
    kv.take_operations();
    let one = listed(T0 + 2000 * S);
    assert_eq!(
        kv.take_operations(),
        1,
        "2 and 3, past their reported expiry, read once"
    );
    assert_eq!(one.len(), 1, "2 and 3 expired, and their entries left");
    assert_eq!(one[0].activity.updated_at, T0 + 1000 * S);
    // A write whose report was lost (no index here): the entry's expiry passes first.
    let unreported = Sessions::new(&store, POLICY);
    run(unreported.replace(&id(1), &data(), None, T0 + 2500 * S)).unwrap();
    kv.take_operations();
    let checked = listed(T0 + 3000 * S);
    assert_eq!(kv.take_operations(), 1, "1 is read");
    assert_eq!(checked.len(), 1);
    assert_eq!(
        checked[0].activity.updated_at,
        T0 + 2500 * S,
        "the session's own lifecycle"
    );
    assert_eq!(listed(T0 + 3000 * S).len(), 1);
    assert_eq!(kv.take_operations(), 0, "what was read is remembered");
    run(sessions.delete(&id(1), None, T0 + 3000 * S)).unwrap();
    assert!(
        listed(T0 + 3000 * S).is_empty(),
        "a delete takes the entry at once"
    );
}

/// Sessions with compare-and-swap, and strong mode's index on SQLite itself.
#[cfg(not(target_arch = "wasm32"))]
fn strong() -> (
    crate::store::memory::StrictSessions,
    crate::store::durable::index::SqlIndex<crate::store::memory::sqlite::SqliteStorage>,
) {
    use crate::store::durable::index::SqlIndex;
    use crate::store::memory::sqlite::SqliteStorage;
    use crate::store::memory::StrictSessions;
    (
        StrictSessions::default(),
        SqlIndex(SqliteStorage::default()),
    )
}

fn handles(ns: &[u8]) -> Vec<Handle> {
    ns.iter().map(|&n| Handle::of(&id(n))).collect()
}

/// KV can serve a revoked session from a location's cache for about a minute, and a write made
/// there puts it back. The write lists it again, so the next revocation ends it again: one read
/// of the entry per write of a session with a subject, and one put when it was missing.
#[test]
fn on_kv_a_session_written_back_after_its_revocation_is_listed_and_revoked_again() {
    let kv = Kv::new();
    kv.create(1, Some(ada()), T0, 100);
    kv.create(2, Some(ada()), T0, 100);
    let key = crate::domain::derive::StorageKey::of(&id(1)).name();
    let cached = kv.kv.entries.borrow()[&key].clone();
    let (store, index) = (sealed(&kv.kv), KvIndex::new(&kv.kv, true));
    let subjects = Subjects::new(&index, &store, POLICY);
    assert_eq!(run(subjects.revoke(&ada(), None, None, T0 + S)).unwrap(), 2);
    assert_eq!(kv.index_entries(), 0);
    // A location still holding session 1 reads it from its cache, and writes.
    kv.kv.entries.borrow_mut().insert(key, cached);
    kv.kv.take_operations();
    let (store, index) = (sealed(&kv.kv), KvIndex::new(&kv.kv, true));
    let sessions = Sessions::new(&store, POLICY).indexed(&index, 100);
    let patch = crate::domain::json::JsonObject::from_bytes(br#"{"b":1}"#.to_vec()).unwrap();
    let how = crate::domain::merge::Merge::Shallow;
    run(sessions.merge(&id(1), &patch, how, None, T0 + 2 * S)).unwrap();
    assert_eq!(
        kv.kv.take_operations(),
        4,
        "read, write, the entry's read and put"
    );
    assert_eq!(kv.live(T0 + 3 * S), handles(&[1]), "listed again");
    let (store, index) = (sealed(&kv.kv), KvIndex::new(&kv.kv, true));
    let subjects = Subjects::new(&index, &store, POLICY);
    assert_eq!(
        run(subjects.revoke(&ada(), None, None, T0 + 4 * S)).unwrap(),
        1
    );
    assert_eq!(kv.kv.plain(&id(1)), None, "and ended again");
    kv.create(3, Some(ada()), T0 + 5 * S, 100);
    kv.kv.take_operations();
    let (store, index) = (sealed(&kv.kv), KvIndex::new(&kv.kv, true));
    let sessions = Sessions::new(&store, POLICY).indexed(&index, 100);
    run(sessions.merge(&id(3), &patch, how, None, T0 + 6 * S)).unwrap();
    assert_eq!(
        kv.kv.take_operations(),
        3,
        "listed: read, write, the entry's read"
    );
}
