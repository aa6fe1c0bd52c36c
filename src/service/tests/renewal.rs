//! Renewal on KV's storage (strong mode's is in `strong`): the old id reaches the successor
//! within its window and names it to nobody; a second renewal answers the same successor;
//! after the window the old id is reuse, which ends the session it was renewed into.

use std::rc::Rc;

use crate::domain::derive::Handle;
use crate::domain::error::Error;
use crate::domain::merge::Merge;
use crate::domain::renewal::Renewal;
use crate::domain::session::fixtures::{POLICY, S, T0};
use crate::domain::time::rfc3339;
use crate::service::sessions::Sessions;
use crate::service::tests::fixtures::{self, ada, data, event, id};
use crate::store::events::Journal;
use crate::store::kv::{KvIndex, KvSessions};
use crate::store::memory::{run, MemoryKv, SoftAead};
use crate::store::SubjectIndex;

fn store<'k>(kv: &'k MemoryKv, journal: &Rc<Journal>) -> KvSessions<&'k MemoryKv, SoftAead> {
    KvSessions::new(kv, SoftAead, false).with_events(Some(journal.clone()))
}

fn patch(text: &str) -> crate::domain::json::JsonObject {
    crate::domain::json::JsonObject::from_bytes(text.as_bytes().to_vec()).unwrap()
}

fn taken(journal: &Journal) -> Vec<(String, String, u8)> {
    fixtures::taken(journal, |_| {})
}

#[test]
fn within_the_window_the_old_id_acts_on_the_successor() {
    let (kv, journal) = (MemoryKv::default(), Rc::new(Journal::default()));
    let store = store(&kv, &journal);
    let sessions = Sessions::new(&store, POLICY);
    run(sessions.create(id(1), &data(), None, None, None, T0)).unwrap();
    let renewed = run(sessions.renew(&id(1), id(2), T0 + S)).unwrap();
    assert_eq!(renewed.id, id(2));
    assert_eq!(renewed.meta.created_at, T0, "no longer a lifetime");
    // A write with the old id is a write of the successor.
    let (merged, _) = run(sessions.merge(
        &id(1),
        &patch(r#"{"a":1}"#),
        Merge::MergePatch,
        None,
        T0 + 2 * S,
    ))
    .unwrap();
    assert_eq!(merged, br#"{"user":"ada","a":1}"#);
    let read = run(sessions.get(&id(2), T0 + 3 * S)).unwrap();
    assert_eq!(read.data, r#"{"user":"ada","a":1}"#);
    assert_eq!(
        run(sessions.get(&id(1), T0 + 3 * S)).unwrap().data,
        read.data
    );
    run(sessions.touch(&id(1), T0 + 29 * S)).unwrap();
    // The old id's key holds no session the store would give out for it.
    assert_eq!(kv.plain(&id(1)), None);
    let events = taken(&journal);
    assert!(events.contains(&event("renewed", "", 2)), "{events:?}");
}

#[test]
fn a_second_renewal_within_the_window_answers_the_same_successor() {
    let (kv, journal) = (MemoryKv::default(), Rc::new(Journal::default()));
    let store = store(&kv, &journal);
    let sessions = Sessions::new(&store, POLICY);
    run(sessions.create(id(1), &data(), None, None, None, T0)).unwrap();
    assert_eq!(run(sessions.renew(&id(1), id(2), T0)).unwrap().id, id(2));
    assert_eq!(
        run(sessions.renew(&id(1), id(3), T0 + 10 * S)).unwrap().id,
        id(2)
    );
    assert!(matches!(
        run(sessions.get(&id(3), T0 + 10 * S)),
        Err(Error::SessionNotFound)
    ));
    assert!(run(sessions.get(&id(2), T0 + 10 * S)).is_ok());
}

#[test]
fn after_the_window_the_old_id_is_reuse_and_ends_the_successor() {
    let (kv, journal) = (MemoryKv::default(), Rc::new(Journal::default()));
    let index = KvIndex::new(&kv, true);
    let store = store(&kv, &journal);
    let sessions = Sessions::new(&store, POLICY).indexed(&index, 100);
    run(sessions.create(id(1), &data(), None, Some(ada()), None, T0)).unwrap();
    run(sessions.renew(&id(1), id(2), T0 + S)).unwrap();
    let listed = run(index.members(&ada())).unwrap();
    assert_eq!(
        listed.len(),
        1,
        "the successor, once; no entry for the old id"
    );
    taken(&journal);
    let err = run(sessions.get(&id(1), T0 + 31 * S)).unwrap_err();
    assert!(matches!(err, Error::Reused(_)), "{err:?}");
    assert_eq!(err.status(), 404);
    let cause = err.log_cause().unwrap();
    assert!(cause.contains(&Handle::of(&id(2)).to_string()), "{cause}");
    assert!(!cause.contains(&id(2).to_string()) && !cause.contains(&id(1).to_string()));
    assert!(matches!(
        run(sessions.get(&id(2), T0 + 31 * S)),
        Err(Error::SessionNotFound)
    ));
    assert_eq!(taken(&journal), [event("revoked", "reuse", 2)]);
}

#[test]
fn with_detection_off_reuse_is_only_a_404() {
    let (kv, journal) = (MemoryKv::default(), Rc::new(Journal::default()));
    let store = store(&kv, &journal);
    let off = Renewal {
        reuse_detection: false,
        ..Renewal::default()
    };
    let sessions = Sessions::new(&store, POLICY).renewing(off);
    run(sessions.create(id(1), &data(), None, None, None, T0)).unwrap();
    run(sessions.renew(&id(1), id(2), T0)).unwrap();
    let err = run(sessions.get(&id(1), T0 + 31 * S)).unwrap_err();
    assert!(matches!(err, Error::SessionNotFound), "{err:?}");
    assert!(run(sessions.get(&id(2), T0 + 31 * S)).is_ok());
}

#[test]
fn an_id_two_renewals_old_is_reuse_at_once() {
    let (kv, journal) = (MemoryKv::default(), Rc::new(Journal::default()));
    let store = store(&kv, &journal);
    let sessions = Sessions::new(&store, POLICY);
    run(sessions.create(id(1), &data(), None, None, None, T0)).unwrap();
    run(sessions.renew(&id(1), id(2), T0)).unwrap();
    run(sessions.renew(&id(2), id(3), T0 + S)).unwrap();
    taken(&journal);
    let err = run(sessions.get(&id(1), T0 + 2 * S)).unwrap_err();
    assert!(matches!(err, Error::Reused(_)), "{err:?}");
    assert!(
        run(sessions.get(&id(3), T0 + 2 * S)).is_err(),
        "the end of the chain ended"
    );
    assert_eq!(taken(&journal), [event("revoked", "reuse", 3)]);
}

#[test]
fn a_window_of_zero_ends_the_old_id_at_once_and_keeps_watch() {
    let (kv, journal) = (MemoryKv::default(), Rc::new(Journal::default()));
    let store = store(&kv, &journal);
    let none = Renewal {
        grace_ms: 0,
        reuse_detection: false,
    };
    let sessions = Sessions::new(&store, POLICY).renewing(none);
    run(sessions.create(id(1), &data(), None, None, None, T0)).unwrap();
    run(sessions.renew(&id(1), id(2), T0)).unwrap();
    assert!(matches!(
        run(sessions.get(&id(1), T0)),
        Err(Error::SessionNotFound)
    ));
    assert!(run(sessions.get(&id(2), T0)).is_ok());
}

#[test]
fn rotation_never_triggers_reuse_detection() {
    let (kv, journal) = (MemoryKv::default(), Rc::new(Journal::default()));
    let store = store(&kv, &journal);
    let sessions = Sessions::new(&store, POLICY);
    run(sessions.create(id(1), &data(), None, None, None, T0)).unwrap();
    run(sessions.rotate(&id(1), id(2), T0)).unwrap();
    assert!(matches!(
        run(sessions.get(&id(1), T0 + 60 * S)),
        Err(Error::SessionNotFound)
    ));
    assert!(run(sessions.get(&id(2), T0 + 60 * S)).is_ok());
}

#[test]
fn a_delete_with_the_old_id_deletes_the_successor() {
    let (kv, journal) = (MemoryKv::default(), Rc::new(Journal::default()));
    let store = store(&kv, &journal);
    let sessions = Sessions::new(&store, POLICY);
    run(sessions.create(id(1), &data(), None, None, None, T0)).unwrap();
    run(sessions.renew(&id(1), id(2), T0)).unwrap();
    run(sessions.delete(&id(1), None, T0 + S)).unwrap();
    assert!(matches!(
        run(sessions.get(&id(2), T0 + S)),
        Err(Error::SessionNotFound)
    ));
    // Deleting again is a delete of nothing.
    run(sessions.delete(&id(1), None, T0 + 2 * S)).unwrap();
}

/// `SESSIONS_NOT_BEFORE`: every session created before it is gone, listed nowhere, its end
/// reported once as `revoked`/`global`; a session created from then on lives.
#[test]
fn sessions_created_before_the_cut_off_are_gone_everywhere() {
    let (kv, journal) = (MemoryKv::default(), Rc::new(Journal::default()));
    let index = KvIndex::new(&kv, true);
    let store = store(&kv, &journal);
    let sessions = Sessions::new(&store, POLICY).indexed(&index, 100);
    for n in 1..=3 {
        run(sessions.create(id(n), &data(), None, Some(ada()), None, T0)).unwrap();
    }
    taken(&journal);
    let cut = crate::domain::session::Policy {
        not_before: Some(T0 + S),
        ..POLICY
    };
    let sessions = Sessions::new(&store, cut).indexed(&index, 100);
    for n in 1..=3 {
        let err = run(sessions.get(&id(n), T0 + 2 * S)).unwrap_err();
        assert!(matches!(err, Error::SessionNotFound), "{err:?}");
    }
    assert_eq!(
        taken(&journal),
        [1, 2, 3].map(|n| event("revoked", "global", n))
    );
    // Met again later, the same fact: dated at the cut-off, so its `eventId` is the same.
    let dated = |now| {
        run(sessions.get(&id(1), now)).unwrap_err();
        let at = |e: &serde_json::Value| assert_eq!(e["at"], rfc3339(T0 + S));
        fixtures::taken(&journal, at);
    };
    dated(T0 + 5 * S);
    let subjects = crate::service::subjects::Subjects::new(&index, &store, cut);
    assert!(run(subjects.live(&ada(), T0 + 2 * S)).unwrap().is_empty());
    run(sessions.create(id(4), &data(), None, Some(ada()), None, T0 + 2 * S)).unwrap();
    assert!(run(sessions.get(&id(4), T0 + 3 * S)).is_ok());
    assert_eq!(run(subjects.live(&ada(), T0 + 3 * S)).unwrap().len(), 1);
}
