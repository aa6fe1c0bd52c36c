//! The sessions of a subject: listing them, revoking them ("log out everywhere"), and keeping
//! their number bounded. Generic over the index and the session store, so the same rules run on
//! KV (in the worker) and in strong mode (in the subject's object, reaching each session through
//! its own object), and natively in the tests.
//!
//! An index may list sessions that are gone: one deleted by `DELETE /delete/:id` (which does not
//! read the session, so does not know its subject), one that expired, one rotated away. Whatever
//! reads the index checks each session and removes the entries it finds gone, so the index never
//! holds more than the live sessions and the ones not yet met.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use crate::error::Error;
use crate::id::SessionId;
use crate::session::{Meta, Millis};
use crate::store::{Expect, Member, Record, SessionStore, SubjectIndex};
use crate::subject::Subject;

/// A live session of a subject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listed {
    pub id: SessionId,
    pub meta: Meta,
}

pub struct Subjects<'a, I, S> {
    index: &'a I,
    sessions: &'a S,
}

impl<'a, I: SubjectIndex, S: SessionStore> Subjects<'a, I, S> {
    pub fn new(index: &'a I, sessions: &'a S) -> Self {
        Self { index, sessions }
    }

    /// The live sessions of `subject`, newest first.
    pub async fn live(&self, subject: &Subject, now: Millis) -> Result<Vec<Listed>, Error> {
        let members = self.index.members(subject).await?;
        let mut live = self.check(subject, &members, now).await?;
        live.sort_by_key(|listed| std::cmp::Reverse((listed.meta.created_at, listed.id)));
        Ok(live)
    }

    /// The members whose session is alive and still this subject's; removes the others' entries.
    async fn check(
        &self,
        subject: &Subject,
        members: &[Member],
        now: Millis,
    ) -> Result<Vec<Listed>, Error> {
        let records = join_all(members.iter().map(|m| self.sessions.load(&m.id))).await;
        let mut live = Vec::with_capacity(members.len());
        let mut gone = Vec::new();
        for (member, record) in members.iter().zip(records) {
            match record? {
                Some(Record {
                    meta: Some(meta), ..
                }) if meta.is_alive(now) && meta.subject == Some(*subject) => live.push(Listed {
                    id: member.id,
                    meta,
                }),
                _ => gone.push(member.id),
            }
        }
        // Cleaning up is a courtesy to the next reader: a failure here fails nothing.
        join_all(gone.iter().map(|id| self.index.remove(subject, id))).await;
        Ok(live)
    }

    /// Ends every live session of `subject` but `except`, and returns how many it ended. In
    /// strong mode each one is final everywhere by the time this returns.
    pub async fn revoke(
        &self,
        subject: &Subject,
        except: Option<&SessionId>,
        now: Millis,
    ) -> Result<usize, Error> {
        let live = self.live(subject, now).await?;
        let ending: Vec<&Listed> = live.iter().filter(|l| Some(&l.id) != except).collect();
        self.end(subject, &ending).await?;
        Ok(ending.len())
    }

    /// Ends the sessions `listed`, all at once, and removes their entries.
    async fn end(&self, subject: &Subject, listed: &[&Listed]) -> Result<(), Error> {
        let end = |id| async move {
            let _ = self.sessions.remove(id, Expect::Any).await?;
            self.index.remove(subject, id).await
        };
        let ended = join_all(listed.iter().map(|listed| end(&listed.id))).await;
        ended.into_iter().collect()
    }

    /// Makes room for one more session under `subject`: when `max` live sessions are there
    /// already, ends the least recently written. Reads the sessions only when the index holds
    /// `max` entries or more, so a subject under its bound costs one index read.
    pub async fn make_room(&self, subject: &Subject, max: usize, now: Millis) -> Result<(), Error> {
        let members = self.index.members(subject).await?;
        if members.len() < max {
            return Ok(());
        }
        let mut live = self.check(subject, &members, now).await?;
        if live.len() < max {
            return Ok(());
        }
        live.sort_by_key(|listed| (listed.meta.updated_at, listed.meta.created_at));
        let excess = live.len() + 1 - max;
        let ending: Vec<&Listed> = live[..excess].iter().collect();
        self.end(subject, &ending).await
    }
}

/// Runs futures concurrently and gives their outputs in order (a session's reads of its subject's
/// other sessions go out together rather than one after another).
pub async fn join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::JsonObject;
    use crate::session::fixtures::{POLICY, S, T0};
    use crate::sessions::Sessions;
    use crate::store::kv::{KvIndex, KvSessions};
    use crate::store::memory::{run, MemoryKv};

    fn id(n: u8) -> SessionId {
        SessionId::from_random_bytes([n; 16])
    }

    fn ada() -> Subject {
        Subject::new(b"ada@example.com", None).unwrap()
    }

    fn data() -> JsonObject {
        JsonObject::from_bytes(br#"{"user":"ada"}"#.to_vec()).unwrap()
    }

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
            let (store, index) = (KvSessions(&self.kv), KvIndex(&self.kv));
            let sessions = Sessions::new(&store, POLICY).indexed(&index, max);
            run(sessions.create(id(n), &data(), None, subject, now)).unwrap();
        }

        fn live(&self, now: Millis) -> Vec<SessionId> {
            let (store, index) = (KvSessions(&self.kv), KvIndex(&self.kv));
            let live = run(Subjects::new(&index, &store).live(&ada(), now)).unwrap();
            live.into_iter().map(|listed| listed.id).collect()
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
        assert_eq!(kv.live(T0 + 4 * S), vec![id(2), id(1)]);
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
    fn gone_sessions_are_not_listed_and_their_entries_are_cleaned_up() {
        let kv = Kv::new();
        kv.create(1, Some(ada()), T0, 100);
        let ttl = Some(2);
        let (store, index) = (KvSessions(&kv.kv), KvIndex(&kv.kv));
        let sessions = Sessions::new(&store, POLICY).indexed(&index, 100);
        run(sessions.create(id(2), &data(), ttl, Some(ada()), T0)).unwrap();
        kv.create(3, Some(ada()), T0, 100);
        run(sessions.delete(&id(3), None, T0)).unwrap();
        assert_eq!(
            kv.index_entries(),
            3,
            "a delete does not read the session's subject"
        );
        assert_eq!(kv.live(T0 + 2 * S), vec![id(1)], "2 expired, 3 deleted");
        assert_eq!(kv.index_entries(), 1, "their entries went when met");
    }

    #[test]
    fn revoking_ends_every_session_but_the_one_kept() {
        let kv = Kv::new();
        for n in 1..=3 {
            kv.create(n, Some(ada()), T0 + u64::from(n) * S, 100);
        }
        kv.create(9, None, T0, 100);
        let (store, index) = (KvSessions(&kv.kv), KvIndex(&kv.kv));
        let subjects = Subjects::new(&index, &store);
        assert_eq!(
            run(subjects.revoke(&ada(), Some(&id(2)), T0 + 5 * S)).unwrap(),
            2
        );
        assert_eq!(kv.live(T0 + 5 * S), vec![id(2)]);
        assert_eq!(kv.kv.value(&id(1).to_string()), None);
        assert!(
            kv.kv.value(&id(9).to_string()).is_some(),
            "other sessions stay"
        );
        assert_eq!(run(subjects.revoke(&ada(), None, T0 + 5 * S)).unwrap(), 1);
        assert_eq!(run(subjects.revoke(&ada(), None, T0 + 5 * S)).unwrap(), 0);
        assert_eq!(kv.index_entries(), 0);
    }

    #[test]
    fn one_more_than_the_bound_ends_the_least_recently_written() {
        let kv = Kv::new();
        for n in 1..=3 {
            kv.create(n, Some(ada()), T0 + u64::from(n) * S, 3);
        }
        // Session 1 is written last: 2 is now the least recently written.
        let (store, index) = (KvSessions(&kv.kv), KvIndex(&kv.kv));
        let sessions = Sessions::new(&store, POLICY).indexed(&index, 3);
        run(sessions.replace(&id(1), &data(), None, T0 + 10 * S)).unwrap();
        kv.create(4, Some(ada()), T0 + 11 * S, 3);
        assert_eq!(kv.live(T0 + 12 * S), vec![id(4), id(3), id(1)]);
        assert_eq!(
            kv.kv.value(&id(2).to_string()),
            None,
            "ended, not just unlisted"
        );
    }

    #[test]
    fn rotation_moves_the_index_entry_with_the_session() {
        let kv = Kv::new();
        kv.create(1, Some(ada()), T0, 100);
        let (store, index) = (KvSessions(&kv.kv), KvIndex(&kv.kv));
        let sessions = Sessions::new(&store, POLICY).indexed(&index, 100);
        let meta = run(sessions.rotate(&id(1), id(2), T0 + S)).unwrap();
        assert_eq!(meta.subject, Some(ada()), "the subject is kept");
        assert_eq!(kv.live(T0 + S), vec![id(2)]);
        assert_eq!(kv.index_entries(), 1);
    }

    #[test]
    #[cfg(not(target_arch = "wasm32"))]
    fn the_same_rules_hold_on_the_strong_mode_index() {
        use crate::store::durable::SqlIndex;
        use crate::store::memory::sqlite::SqliteStorage;
        use crate::store::memory::StrictSessions;
        let (store, index) = (
            StrictSessions::default(),
            SqlIndex(SqliteStorage::default()),
        );
        let sessions = Sessions::new(&store, POLICY).indexed(&index, 2);
        for n in 1..=3 {
            let now = T0 + u64::from(n) * S;
            run(sessions.create(id(n), &data(), None, Some(ada()), now)).unwrap();
        }
        let subjects = Subjects::new(&index, &store);
        let live = run(subjects.live(&ada(), T0 + 4 * S)).unwrap();
        assert_eq!(
            live.iter().map(|l| l.id).collect::<Vec<_>>(),
            vec![id(3), id(2)]
        );
        assert_eq!(run(subjects.revoke(&ada(), None, T0 + 4 * S)).unwrap(), 2);
        assert!(index.0.is_empty(), "an empty index leaves nothing behind");
    }

    #[test]
    fn join_all_keeps_order() {
        let outputs = run(join_all((0..5).map(|n| async move { n * 2 })));
        assert_eq!(outputs, vec![0, 2, 4, 6, 8]);
    }
}
