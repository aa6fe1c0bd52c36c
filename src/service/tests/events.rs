//! Lifecycle events on KV: recorded as each write succeeds, for the worker to send after
//! answering; an expiry only when a read meets it. Strong mode's outbox is tested in `strong`.

use std::rc::Rc;

use crate::domain::derive::Handle;
use crate::domain::error::Error;
use crate::domain::session::fixtures::{POLICY, S, T0};
use crate::service::sessions::{NewDevice, Sessions};
use crate::service::subjects::Subjects;
use crate::service::tests::fixtures::{self, ada, data, event, id};
use crate::store::events::Journal;
use crate::store::kv::{KvIndex, KvSessions};
use crate::store::memory::run;
use crate::store::memory::{MemoryKv, SoftAead};

/// One request's store, recording into `journal`.
fn store<'k>(kv: &'k MemoryKv, journal: &Rc<Journal>) -> KvSessions<&'k MemoryKv, SoftAead> {
    KvSessions::new(kv, SoftAead, true).with_events(Some(journal.clone()))
}

/// `(type, reason, handle number)` of each event recorded, each of ada's.
fn taken(journal: &Journal) -> Vec<(String, String, u8)> {
    fixtures::taken(journal, |value| {
        assert_eq!(value["subject"], ada().hex(), "{value}")
    })
}

#[test]
fn kv_records_each_event_once_its_write_was_made() {
    let (kv, journal) = (MemoryKv::default(), Rc::new(Journal::default()));
    let index = KvIndex::new(&kv, true);
    let (store1, store2) = (store(&kv, &journal), store(&kv, &journal));
    let sessions = Sessions::new(&store1, POLICY).indexed(&index, 100);
    let (device, key) = (
        crate::domain::device::Device {
            label: Some("Firefox".into()),
            ..Default::default()
        },
        crate::domain::derive::DeviceKey::of(b"ada@example.com", None),
    );
    let device = NewDevice {
        device: &device,
        key: &key,
    };
    run(sessions.create(id(1), &data(), None, Some(ada()), Some(device), T0)).unwrap();
    let created = journal.take();
    assert!(created[0].as_str().contains(r#""label":"Firefox""#));
    journal.record(&created[0]);
    run(sessions.rotate(&id(1), id(2), T0 + S)).unwrap();
    let sessions = Sessions::new(&store2, POLICY).indexed(&index, 100);
    run(sessions.delete(&id(2), None, T0 + 2 * S)).unwrap();
    run(sessions.delete(&id(2), None, T0 + 2 * S)).unwrap();
    run(sessions.delete(&id(9), None, T0 + 2 * S)).unwrap();
    assert_eq!(
        taken(&journal),
        [
            event("created", "", 1),
            event("rotated", "", 2),
            event("deleted", "", 2),
        ],
        "deleting what is not there is no event"
    );
}

#[test]
fn kv_reports_an_expiry_when_a_read_meets_it() {
    let (kv, journal) = (MemoryKv::default(), Rc::new(Journal::default()));
    let index = KvIndex::new(&kv, true);
    let store = store(&kv, &journal);
    let sessions = Sessions::new(&store, POLICY).indexed(&index, 100);
    let meta = run(sessions.create(id(1), &data(), Some(2), Some(ada()), None, T0)).unwrap();
    journal.take();
    let late = meta.expires_at + S;
    assert!(matches!(
        run(sessions.get(&id(1), late)),
        Err(Error::SessionNotFound)
    ));
    assert!(matches!(
        run(sessions.touch(&id(1), late)),
        Err(Error::SessionNotFound)
    ));
    let events = journal.take();
    assert_eq!(events.len(), 2);
    assert_eq!(
        events[0], events[1],
        "the same fact, the same eventId, to drop"
    );
    journal.record(&events[0]);
    assert_eq!(taken(&journal), [event("expired", "idle", 1)]);
    let listed = run(Subjects::new(&index, &store, POLICY).live(&ada(), late)).unwrap();
    assert!(listed.is_empty());
    assert_eq!(
        journal.take(),
        [events[0].clone()],
        "a listing that meets it, too"
    );
    run(sessions.delete(&id(1), None, late)).unwrap();
    assert_eq!(taken(&journal), [event("expired", "idle", 1)], "no deleted");
}

#[test]
fn kv_revocations_say_why() {
    let (kv, journal) = (MemoryKv::default(), Rc::new(Journal::default()));
    let index = KvIndex::new(&kv, true);
    let store = store(&kv, &journal);
    let sessions = Sessions::new(&store, POLICY).indexed(&index, 2);
    for n in 1..=3 {
        let now = T0 + u64::from(n) * S;
        run(sessions.create(id(n), &data(), None, Some(ada()), None, now)).unwrap();
    }
    let subjects = Subjects::new(&index, &store, POLICY);
    run(subjects.revoke_one(&ada(), &Handle::of(&id(2)), T0 + 4 * S)).unwrap();
    for n in 4..=6 {
        let now = T0 + u64::from(n) * S;
        run(sessions.create(id(n), &data(), None, Some(ada()), None, now)).unwrap();
    }
    let before = run(subjects.revoke(
        &ada(),
        Some(Handle::of(&id(6))),
        Some(T0 + 6 * S),
        T0 + 7 * S,
    ));
    assert_eq!(before.unwrap(), 1);
    let others = run(subjects.revoke(&ada(), Some(Handle::of(&id(6))), None, T0 + 8 * S)).unwrap();
    let all = run(subjects.revoke(&ada(), None, None, T0 + 9 * S)).unwrap();
    assert_eq!((others, all), (0, 1));
    assert_eq!(
        taken(&journal),
        [
            event("created", "", 1),
            event("created", "", 2),
            event("revoked", "limit", 1),
            event("created", "", 3),
            event("revoked", "one", 2),
            event("created", "", 4),
            event("revoked", "limit", 3),
            event("created", "", 5),
            event("revoked", "limit", 4),
            event("created", "", 6),
            event("revoked", "before", 5),
            event("revoked", "all", 6),
        ]
    );
}

/// The sessions one request sees.
type Request<'s> = Sessions<'s, KvSessions<&'s MemoryKv, SoftAead>>;

#[test]
fn with_events_a_kv_call_costs_what_it_costs_without() {
    let (kv, journal) = (MemoryKv::default(), Rc::new(Journal::default()));
    let count = |call: &dyn Fn(&Request)| {
        kv.take_operations();
        let store = store(&kv, &journal);
        call(&Sessions::new(&store, POLICY));
        kv.take_operations()
    };
    let create = count(&|s| drop(run(s.create(id(1), &data(), None, None, None, T0))));
    let update = count(&|s| drop(run(s.replace(&id(1), &data(), None, T0 + S))));
    let rotate = count(&|s| drop(run(s.rotate(&id(1), id(2), T0 + 2 * S))));
    let delete = count(&|s| run(s.delete(&id(2), None, T0 + 3 * S)).unwrap());
    assert_eq!(
        (create, update, rotate, delete),
        (1, 2, 3, 2),
        "as without events; a delete reads first, which tells it the bare id holds nothing"
    );
    assert_eq!(journal.take().len(), 3);
}
