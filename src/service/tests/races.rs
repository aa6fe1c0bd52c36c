//! A session that moves to a new id (renewal, rotation, reauthentication) while its subject's
//! sessions are revoked: whichever step of the move the revocation comes between, no live
//! session is left that the revocation should have ended. On KV's storage and on strong mode's
//! (its index, and a store with compare-and-swap), each with the revocation let in by an index
//! that runs it at one step of the move.

use std::cell::RefCell;

use crate::domain::auth::Level;
use crate::domain::derive::Handle;
use crate::domain::error::Error;
use crate::domain::id::SessionId;
use crate::domain::session::fixtures::{POLICY, S, T0};
use crate::domain::subject::Subject;
use crate::domain::time::Millis;
use crate::service::sessions::Sessions;
use crate::service::subjects::Subjects;
use crate::service::tests::fixtures::{ada, data, id};
use crate::store::durable::index::SqlIndex;
use crate::store::kv::KvIndex;
use crate::store::memory::sqlite::SqliteStorage;
use crate::store::memory::{run, sealed, MemoryKv, StrictSessions};
use crate::store::{
    Activity, Choice, DeviceInfo, Entry, EntryKey, NewEntry, SessionStore, SubjectIndex,
};

/// Where in a move the revocation comes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// The new session is written, not yet listed.
    BeforeListing,
    /// The new session is listed; the old id is not yet retired or removed.
    BeforeLeaving,
}

#[derive(Clone, Copy, Debug)]
enum Move {
    Renew,
    Rotate,
    Reauth,
}

/// The index a moving session meets: `inner`, with `revocation` run once at `step`.
struct Racing<'a, I> {
    inner: &'a I,
    step: Step,
    revocation: RefCell<Option<Box<dyn FnOnce() + 'a>>>,
}

impl<I> Racing<'_, I> {
    fn fire(&self, at: Step) {
        if at == self.step {
            if let Some(revoke) = self.revocation.borrow_mut().take() {
                revoke();
            }
        }
    }
}

// Every method forwarded, so that the race runs on the index under test and nothing else.
#[deny(clippy::missing_trait_methods)]
impl<I: SubjectIndex> SubjectIndex for Racing<'_, I> {
    async fn add(&self, subject: &Subject, entry: &NewEntry<'_>, now: Millis) -> Result<(), Error> {
        let moving = matches!(entry.device, DeviceInfo::Like(_));
        if moving {
            self.fire(Step::BeforeListing);
        }
        let added = self.inner.add(subject, entry, now).await;
        if moving && added.is_ok() {
            self.fire(Step::BeforeLeaving);
        }
        added
    }

    async fn remove(&self, subject: &Subject, member: &EntryKey) -> Result<(), Error> {
        self.inner.remove(subject, member).await
    }

    async fn members(&self, subject: &Subject) -> Result<Vec<Entry>, Error> {
        self.inner.members(subject).await
    }

    async fn take(&self, subject: &Subject, choice: &Choice<'_>) -> Result<Vec<Entry>, Error> {
        self.inner.take(subject, choice).await
    }

    async fn upgrade(
        &self,
        subject: &Subject,
        member: &EntryKey,
        until: Millis,
        activity: Activity,
        now: Millis,
    ) -> Result<(), Error> {
        self.inner
            .upgrade(subject, member, until, activity, now)
            .await
    }

    async fn report(
        &self,
        subject: &Subject,
        handle: &Handle,
        activity: Activity,
    ) -> Result<(), Error> {
        self.inner.report(subject, handle, activity).await
    }

    async fn relist(
        &self,
        subject: &Subject,
        entry: &NewEntry<'_>,
        now: Millis,
    ) -> Result<(), Error> {
        self.inner.relist(subject, entry, now).await
    }
}

/// How a revocation names what it ends.
#[derive(Clone, Copy, Debug)]
enum Revoking {
    All,
    /// The moving session's old handle ("sign out that device").
    One,
}

/// Creates session 1 (and 9, another of the subject's), moves 1 with the revocation let in at
/// `step`, and returns what the move answered and the ids it could have left.
fn race<S: SessionStore, I: SubjectIndex>(
    store: &S,
    index: &I,
    step: Step,
    moving: Move,
    revoking: Revoking,
) -> (Result<SessionId, Error>, Vec<SessionId>) {
    let plain = Sessions::new(store, POLICY).indexed(index, 100);
    run(plain.create(id(1), &data(), None, Some(ada()), None, T0)).unwrap();
    run(plain.create(id(9), &data(), None, Some(ada()), None, T0)).unwrap();
    let now = T0 + S;
    let revocation = move || {
        let subjects = Subjects::new(index, store, POLICY);
        match revoking {
            Revoking::All => drop(run(subjects.revoke(&ada(), None, None, now)).unwrap()),
            Revoking::One => run(subjects.revoke_one(&ada(), &Handle::of(&id(1)), now)).unwrap(),
        }
    };
    let racing = Racing {
        inner: index,
        step,
        revocation: RefCell::new(Some(Box::new(revocation))),
    };
    let sessions = Sessions::new(store, POLICY).indexed(&racing, 100);
    let moved = match moving {
        Move::Renew => run(sessions.renew(&id(1), id(2), now)).map(|renewed| renewed.id),
        Move::Rotate => run(sessions.rotate(&id(1), id(2), now)).map(|_| id(2)),
        Move::Reauth => {
            let level = Level::of(2).unwrap();
            run(sessions.reauthenticate(id(1), id(2), level, now)).map(|_| id(2))
        }
    };
    assert!(racing.revocation.borrow().is_none(), "the revocation ran");
    let mut ids = vec![id(1), id(2)];
    ids.extend(moved.as_ref().ok().copied());
    (moved, ids)
}

/// Whether `id` reaches a live session (within the grace window, an old id does).
fn alive<S: SessionStore>(store: &S, id: &SessionId) -> bool {
    run(Sessions::new(store, POLICY).get(id, T0 + 2 * S)).is_ok()
}

/// Every move, at every step, on both backends: nothing the revocation should have ended lives.
fn nothing_outlives<S: SessionStore, I: SubjectIndex>(
    backend: &str,
    store: impl Fn() -> (S, I),
    revoking: Revoking,
) {
    for step in [Step::BeforeListing, Step::BeforeLeaving] {
        for moving in [Move::Renew, Move::Rotate, Move::Reauth] {
            let (store, index) = store();
            let (moved, ids) = race(&store, &index, step, moving, revoking);
            let case = format!("{backend}, {moving:?} with {revoking:?} {step:?}: {moved:?}");
            for id in &ids {
                assert!(!alive(&store, id), "{case}: a session lives on");
            }
            let listed = run(Subjects::new(&index, &store, POLICY).live(&ada(), T0 + 2 * S));
            let listed: Vec<Handle> = listed.unwrap().iter().map(|l| l.key.handle).collect();
            match revoking {
                Revoking::All => assert_eq!(listed, [], "{case}"),
                Revoking::One => {
                    assert_eq!(listed, [Handle::of(&id(9))], "{case}: the others stay");
                    assert!(alive(&store, &id(9)), "{case}");
                }
            }
            if step == Step::BeforeListing {
                let refused = matches!(moved, Err(Error::SessionNotFound));
                assert!(
                    refused,
                    "{case}: the move is refused, as for a revoked session"
                );
            }
        }
    }
}

/// KV's sessions and index on one namespace, as in the worker (leaked: one per case, in a test).
fn shared_kv() -> (
    crate::store::kv::KvSessions<&'static MemoryKv, crate::store::memory::SoftAead>,
    KvIndex<&'static MemoryKv>,
) {
    let kv: &'static MemoryKv = Box::leak(Box::default());
    (sealed(kv), KvIndex::new(kv, true))
}

#[test]
fn a_move_racing_a_revocation_of_all_leaves_nothing_alive_on_kv() {
    nothing_outlives("kv", shared_kv, Revoking::All);
}

#[test]
fn a_move_racing_a_revocation_of_all_leaves_nothing_alive_in_strong_mode() {
    nothing_outlives("strong", strong, Revoking::All);
}

/// Signing out one device follows the session where it moved meanwhile: strong mode's index
/// keeps each entry's lineage. (KV keeps none: there the move escapes if it is listed between
/// the listing and the removal of its old entry, a window docs/lifecycle.md states.)
#[test]
fn a_move_racing_a_revocation_of_its_device_leaves_it_ended_in_strong_mode() {
    nothing_outlives("strong", strong, Revoking::One);
}

/// Logging out the others while the session that asked renews: it keeps its successor, and
/// the others end.
#[test]
fn the_session_a_revocation_keeps_keeps_its_successor_in_strong_mode() {
    let (store, index) = strong();
    let sessions = Sessions::new(&store, POLICY).indexed(&index, 100);
    for n in [1, 9] {
        run(sessions.create(id(n), &data(), None, Some(ada()), None, T0)).unwrap();
    }
    let now = T0 + S;
    let revocation = || {
        let subjects = Subjects::new(&index, &store, POLICY);
        let kept = Some(Handle::of(&id(1)));
        assert_eq!(run(subjects.revoke(&ada(), kept, None, now)).unwrap(), 1);
    };
    let racing = Racing {
        inner: &index,
        step: Step::BeforeLeaving,
        revocation: RefCell::new(Some(Box::new(revocation))),
    };
    let moving = Sessions::new(&store, POLICY).indexed(&racing, 100);
    let renewed = run(moving.renew(&id(1), id(2), now)).unwrap();
    assert!(alive(&store, &renewed.id));
    assert!(!alive(&store, &id(9)));
    let listed = run(Subjects::new(&index, &store, POLICY).live(&ada(), now)).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key.handle, Handle::of(&renewed.id));
}

fn strong() -> (StrictSessions, SqlIndex<SqliteStorage>) {
    (
        StrictSessions::default(),
        SqlIndex(SqliteStorage::default()),
    )
}
