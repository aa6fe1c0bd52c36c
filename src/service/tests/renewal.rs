//! Renewal on KV's storage (strong mode's is in `strong`): the old id reaches the successor
//! within its window and names it to nobody; a second renewal answers the same successor;
//! after the window the old id is reuse, which ends the session it was renewed into.

use std::rc::Rc;

use crate::domain::derive::{Handle, StorageKey};
use crate::domain::error::Error;
use crate::domain::id::SessionId;
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

/// `(type, reason, handle)` of each event recorded in `journal`: for sessions KV renewed into,
/// whose ids are derived from their records (see `SessionStore::successor`), not numbered.
fn taken_handles(journal: &Journal) -> Vec<(String, String, String)> {
    journal
        .take()
        .iter()
        .map(|event| {
            let value: serde_json::Value = serde_json::from_str(event.as_str()).unwrap();
            let text = |name: &str| value[name].as_str().unwrap_or_default().to_owned();
            (text("type"), text("reason"), text("handle"))
        })
        .collect()
}

fn event_of(kind: &str, reason: &str, id: &SessionId) -> (String, String, String) {
    (kind.into(), reason.into(), Handle::of(id).to_string())
}

#[test]
fn within_the_window_the_old_id_acts_on_the_successor() {
    let (kv, journal) = (MemoryKv::default(), Rc::new(Journal::default()));
    let store = store(&kv, &journal);
    let sessions = Sessions::new(&store, POLICY);
    run(sessions.create(id(1), &data(), None, None, None, T0)).unwrap();
    let renewed = run(sessions.renew(&id(1), id(2), T0 + S)).unwrap();
    let successor = renewed.id;
    assert_ne!(successor, id(1));
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
    assert_eq!(merged.bytes(), br#"{"user":"ada","a":1}"#);
    let read = run(sessions.get(&successor, T0 + 3 * S)).unwrap();
    assert_eq!(read.data, r#"{"user":"ada","a":1}"#);
    assert_eq!(
        run(sessions.get(&id(1), T0 + 3 * S)).unwrap().data,
        read.data
    );
    run(sessions.touch(&id(1), T0 + 29 * S)).unwrap();
    // The old id's key holds no session the store would give out for it.
    assert_eq!(kv.plain(&id(1)), None);
    let events = taken_handles(&journal);
    assert!(
        events.contains(&event_of("renewed", "", &successor)),
        "{events:?}"
    );
}

#[test]
fn a_second_renewal_within_the_window_answers_the_same_successor() {
    let (kv, journal) = (MemoryKv::default(), Rc::new(Journal::default()));
    let store = store(&kv, &journal);
    let sessions = Sessions::new(&store, POLICY);
    run(sessions.create(id(1), &data(), None, None, None, T0)).unwrap();
    let successor = run(sessions.renew(&id(1), id(2), T0)).unwrap().id;
    assert_eq!(
        run(sessions.renew(&id(1), id(3), T0 + 10 * S)).unwrap().id,
        successor
    );
    assert!(matches!(
        run(sessions.get(&id(3), T0 + 10 * S)),
        Err(Error::SessionNotFound)
    ));
    assert!(run(sessions.get(&successor, T0 + 10 * S)).is_ok());
}

/// KV has no compare-and-swap: two renewals of one id that both read the session before either
/// wrote are both made. Each request here is its own store, as each request is in the worker;
/// the second reads the record as it was before the first renewal (put back, as a location
/// that read it first would have it). Both answer the same successor: one session, not two.
#[test]
fn renewals_that_read_the_same_record_converge_on_one_successor() {
    let (kv, journal) = (MemoryKv::default(), Rc::new(Journal::default()));
    let index = KvIndex::new(&kv, true);
    run(Sessions::new(&store(&kv, &journal), POLICY)
        .indexed(&index, 100)
        .create(id(1), &data(), None, Some(ada()), None, T0))
    .unwrap();
    let key = StorageKey::of(&id(1)).name();
    let before = kv.entries.borrow()[&key].clone();
    let renew = |proposed: u8, now| {
        let request = store(&kv, &journal);
        let sessions = Sessions::new(&request, POLICY).indexed(&index, 100);
        run(sessions.renew(&id(1), id(proposed), now)).unwrap().id
    };
    let first = renew(2, T0 + S);
    assert_ne!(first, id(1));
    assert_ne!(first, id(2), "derived from the record, not the proposal");
    kv.entries.borrow_mut().insert(key.clone(), before.clone());
    let second = renew(3, T0 + S + 5);
    assert_eq!(second, first, "one successor");
    assert_eq!(run(index.members(&ada())).unwrap().len(), 1, "listed once");
    // After a write, the record is another: a later renewal's successor is another id.
    let written = store(&kv, &journal);
    kv.entries.borrow_mut().insert(key.clone(), before);
    let sessions = Sessions::new(&written, POLICY).indexed(&index, 100);
    run(sessions.touch(&id(1), T0 + 120 * S)).unwrap();
    assert_ne!(renew(4, T0 + 121 * S), first);
    // A holder of the old id alone cannot compute it: it comes from the record, whose salt
    // is random.
    let again = MemoryKv::default();
    let other = store(&again, &journal);
    run(Sessions::new(&other, POLICY).create(id(1), &data(), None, None, None, T0)).unwrap();
    let elsewhere =
        run(Sessions::new(&store(&again, &journal), POLICY).renew(&id(1), id(2), T0 + S));
    assert_ne!(elsewhere.unwrap().id, first);
}

#[test]
fn after_the_window_the_old_id_is_reuse_and_ends_the_successor() {
    let (kv, journal) = (MemoryKv::default(), Rc::new(Journal::default()));
    let index = KvIndex::new(&kv, true);
    let store = store(&kv, &journal);
    let sessions = Sessions::new(&store, POLICY).indexed(&index, 100);
    run(sessions.create(id(1), &data(), None, Some(ada()), None, T0)).unwrap();
    let successor = run(sessions.renew(&id(1), id(2), T0 + S)).unwrap().id;
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
    assert!(
        cause.contains(&Handle::of(&successor).to_string()),
        "{cause}"
    );
    assert!(!cause.contains(&successor.to_string()) && !cause.contains(&id(1).to_string()));
    assert!(matches!(
        run(sessions.get(&successor, T0 + 31 * S)),
        Err(Error::SessionNotFound)
    ));
    assert_eq!(
        taken_handles(&journal),
        [event_of("revoked", "reuse", &successor)]
    );
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
    let successor = run(sessions.renew(&id(1), id(2), T0)).unwrap().id;
    let err = run(sessions.get(&id(1), T0 + 31 * S)).unwrap_err();
    assert!(matches!(err, Error::SessionNotFound), "{err:?}");
    assert!(run(sessions.get(&successor, T0 + 31 * S)).is_ok());
}

#[test]
fn an_id_two_renewals_old_is_reuse_at_once() {
    let (kv, journal) = (MemoryKv::default(), Rc::new(Journal::default()));
    let store = store(&kv, &journal);
    let sessions = Sessions::new(&store, POLICY);
    run(sessions.create(id(1), &data(), None, None, None, T0)).unwrap();
    let second = run(sessions.renew(&id(1), id(2), T0)).unwrap().id;
    let third = run(sessions.renew(&second, id(3), T0 + S)).unwrap().id;
    taken(&journal);
    let err = run(sessions.get(&id(1), T0 + 2 * S)).unwrap_err();
    assert!(matches!(err, Error::Reused(_)), "{err:?}");
    assert!(
        run(sessions.get(&third, T0 + 2 * S)).is_err(),
        "the end of the chain ended"
    );
    assert_eq!(
        taken_handles(&journal),
        [event_of("revoked", "reuse", &third)]
    );
}

/// Whoever holds the newest id cannot outrun detection by renewing often: the first id of a
/// chain of 20, presented after its window, ends the session at the end, with the same answer,
/// event and log line as one renewal away.
#[test]
fn reuse_ends_the_end_of_a_chain_of_any_length() {
    let (kv, journal) = (MemoryKv::default(), Rc::new(Journal::default()));
    let index = KvIndex::new(&kv, true);
    let store = store(&kv, &journal);
    let sessions = Sessions::new(&store, POLICY).indexed(&index, 100);
    run(sessions.create(id(1), &data(), None, Some(ada()), None, T0)).unwrap();
    let mut chain = vec![id(1)];
    for n in 1..=20 {
        let last = chain[chain.len() - 1];
        let renewed = run(sessions.renew(&last, id(n + 1), T0 + u64::from(n) * S)).unwrap();
        assert!(!chain.contains(&renewed.id));
        chain.push(renewed.id);
    }
    let end = chain[20];
    taken(&journal);
    let err = run(sessions.get(&id(1), T0 + 60 * S)).unwrap_err();
    assert!(matches!(err, Error::Reused(_)), "{err:?}");
    assert_eq!(err.status(), 404);
    let cause = err.log_cause().unwrap();
    assert_eq!(
        cause,
        format!(
            "reuse: a renewed id was presented after its window; session {} ended",
            Handle::of(&end)
        )
    );
    assert!(matches!(
        run(sessions.get(&end, T0 + 60 * S)),
        Err(Error::SessionNotFound)
    ));
    assert_eq!(
        taken_handles(&journal),
        [event_of("revoked", "reuse", &end)]
    );
    assert!(run(index.members(&ada())).unwrap().is_empty());
}

/// KV's metadata marks a renewed id's record for readers without the id. The mark is not
/// sealed: a renewed id's record unmarked (listed, ended by revocations as a session) or a
/// session marked (skipped by listings, revocations and the bound) is not one this worker
/// wrote, and reads as not found, with an integrity line.
#[test]
fn a_retired_mark_that_disagrees_with_the_record_reads_as_not_found() {
    let (kv, journal) = (MemoryKv::default(), Rc::new(Journal::default()));
    let store = store(&kv, &journal);
    let sessions = Sessions::new(&store, POLICY);
    run(sessions.create(id(1), &data(), None, None, None, T0)).unwrap();
    let successor = run(sessions.renew(&id(1), id(2), T0)).unwrap().id;
    let rewrite = |id: &SessionId, change: &dyn Fn(String) -> String| {
        let key = StorageKey::of(id).name();
        let mut entries = kv.entries.borrow_mut();
        let entry = entries.get_mut(&key).unwrap();
        entry.1 = Some(change(entry.1.take().unwrap()));
    };
    rewrite(&successor, &|meta| meta.replace('}', r#","retired":1}"#));
    let err = run(sessions.get(&successor, T0 + S)).unwrap_err();
    assert_eq!(err.code(), "session_not_found");
    assert!(
        err.log_cause().unwrap().contains("marked other than"),
        "{err:?}"
    );
    rewrite(&successor, &|meta| meta.replace(r#","retired":1}"#, "}"));
    assert!(run(sessions.get(&successor, T0 + S)).is_ok());
    rewrite(&id(1), &|meta| meta.replace(r#","retired":1}"#, "}"));
    let err = run(sessions.get(&id(1), T0 + S)).unwrap_err();
    assert!(
        err.log_cause().unwrap().contains("marked other than"),
        "{err:?}"
    );
}

#[test]
fn a_window_of_zero_ends_the_old_id_at_once_and_keeps_watch() {
    let (kv, journal) = (MemoryKv::default(), Rc::new(Journal::default()));
    let store = store(&kv, &journal);
    let none = Renewal {
        grace_ms: 0,
        reuse_detection: false,
        ..Renewal::default()
    };
    let sessions = Sessions::new(&store, POLICY).renewing(none);
    run(sessions.create(id(1), &data(), None, None, None, T0)).unwrap();
    let successor = run(sessions.renew(&id(1), id(2), T0)).unwrap().id;
    assert!(matches!(
        run(sessions.get(&id(1), T0)),
        Err(Error::SessionNotFound)
    ));
    assert!(run(sessions.get(&successor, T0)).is_ok());
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
    let successor = run(sessions.renew(&id(1), id(2), T0)).unwrap().id;
    run(sessions.delete(&id(1), None, T0 + S)).unwrap();
    assert!(matches!(
        run(sessions.get(&successor, T0 + S)),
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
    // Deleted where it was met, as in strong mode: unsetting the cut-off brings none back.
    for n in 1..=3 {
        assert_eq!(kv.bytes(&StorageKey::of(&id(n)).name()), None);
        let uncut = Sessions::new(&store, POLICY);
        assert!(matches!(
            run(uncut.get(&id(n), T0 + 2 * S)),
            Err(Error::SessionNotFound)
        ));
    }
    // A location that still holds one in its cache tells the same fact: dated at the cut-off,
    // so its `eventId` is the same.
    let stale = Sessions::new(&store, POLICY).indexed(&index, 100);
    run(stale.create(id(5), &data(), None, Some(ada()), None, T0)).unwrap();
    taken(&journal);
    run(sessions.get(&id(5), T0 + 5 * S)).unwrap_err();
    let at = |e: &serde_json::Value| assert_eq!(e["at"], rfc3339(T0 + S));
    assert_eq!(
        fixtures::taken(&journal, at),
        [event("revoked", "global", 5)]
    );
    let subjects = crate::service::subjects::Subjects::new(&index, &store, cut);
    assert!(run(subjects.live(&ada(), T0 + 2 * S)).unwrap().is_empty());
    run(sessions.create(id(4), &data(), None, Some(ada()), None, T0 + 2 * S)).unwrap();
    assert!(run(sessions.get(&id(4), T0 + 3 * S)).is_ok());
    assert_eq!(run(subjects.live(&ada(), T0 + 3 * S)).unwrap().len(), 1);
}
