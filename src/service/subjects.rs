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

use crate::domain::derive::Handle;
use crate::domain::error::Error;
use crate::domain::id::SessionId;
use crate::domain::session::{Meta, Policy};
use crate::domain::subject::Subject;
use crate::domain::time::Millis;
use crate::store::durable::index::SqlIndex;
use crate::store::durable::peers::Peers;
use crate::store::durable::storage::DoStorage;
use crate::store::kv::{Kv, KvIndex, KvSessions};
use crate::store::{Member, SessionStore, SubjectIndex};

/// A live session of a subject, as a listing may show it: by its handle, never its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listed {
    pub member: Member,
    pub meta: Meta,
}

pub struct Subjects<'a, I, S> {
    index: &'a I,
    sessions: &'a S,
    policy: Policy,
}

impl<'a, I: SubjectIndex, S: SessionStore> Subjects<'a, I, S> {
    pub fn new(index: &'a I, sessions: &'a S, policy: Policy) -> Self {
        Self {
            index,
            sessions,
            policy,
        }
    }

    /// The live sessions of `subject`, newest first.
    pub async fn live(&self, subject: &Subject, now: Millis) -> Result<Vec<Listed>, Error> {
        let members = self.index.members(subject).await?;
        let mut live = self.check(subject, &members, now).await?;
        live.sort_by_key(|listed| {
            std::cmp::Reverse((listed.meta.created_at, listed.member.handle.to_string()))
        });
        Ok(live)
    }

    /// The members whose session is alive and still this subject's; removes the others' entries.
    async fn check(
        &self,
        subject: &Subject,
        members: &[Member],
        now: Millis,
    ) -> Result<Vec<Listed>, Error> {
        let metas = join_all(members.iter().map(|m| self.sessions.meta_at(&m.at))).await;
        let mut live = Vec::with_capacity(members.len());
        let mut gone = Vec::new();
        let mut moved = Vec::new();
        for (member, meta) in members.iter().zip(metas) {
            match meta {
                Ok(Some((meta, at))) if meta.is_alive(now) && meta.subject == Some(*subject) => {
                    if at != member.at {
                        moved.push((*member, meta.latest_end(self.policy)));
                    }
                    live.push(Listed {
                        member: Member { at, ..*member },
                        meta,
                    })
                }
                // A session that does not open is gone for the caller, as for everyone.
                Ok(_) | Err(Error::Unreadable(_)) => gone.push(member),
                Err(err) => return Err(err),
            }
        }
        // Cleaning up is a courtesy to the next reader: a failure here fails nothing. So is
        // rewriting an entry that names its session by id, once the session is under its key.
        join_all(gone.iter().map(|member| self.index.remove(subject, member))).await;
        let upgrades = moved
            .iter()
            .map(|(member, until)| self.index.upgrade(subject, member, *until, now));
        join_all(upgrades).await;
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
        let kept = except.map(Handle::of);
        let ending: Vec<&Listed> = live
            .iter()
            .filter(|l| Some(l.member.handle) != kept)
            .collect();
        self.end(subject, &ending).await?;
        Ok(ending.len())
    }

    /// Ends the live session of `subject` listed as `handle`: `SessionNotFound` when none is,
    /// so a handle of another subject's session ends nothing.
    pub async fn revoke_one(
        &self,
        subject: &Subject,
        handle: &Handle,
        now: Millis,
    ) -> Result<(), Error> {
        let live = self.live(subject, now).await?;
        let listed = live.iter().find(|l| l.member.handle == *handle);
        let listed = listed.ok_or(Error::SessionNotFound)?;
        self.end(subject, &[listed]).await
    }

    /// Ends the sessions `listed`, all at once, and removes their entries.
    async fn end(&self, subject: &Subject, listed: &[&'a Listed]) -> Result<(), Error> {
        let end = |member: &'a Member| async move {
            self.sessions.remove_at(&member.at).await?;
            self.index.remove(subject, member).await
        };
        let ended = join_all(listed.iter().map(|listed| end(&listed.member))).await;
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

/// What the subject routes work on: the index and the sessions, on KV in the worker, or in the
/// subject's object reaching each session through its own object.
pub enum SubjectStores {
    Kv(KvIndex<Kv>, KvSessions<Kv>),
    Durable(SqlIndex<DoStorage>, Peers),
}

impl SubjectStores {
    pub async fn live(
        &self,
        subject: &Subject,
        policy: Policy,
        now: Millis,
    ) -> Result<Vec<Listed>, Error> {
        match self {
            SubjectStores::Kv(index, sessions) => {
                Subjects::new(index, sessions, policy)
                    .live(subject, now)
                    .await
            }
            SubjectStores::Durable(index, sessions) => {
                Subjects::new(index, sessions, policy)
                    .live(subject, now)
                    .await
            }
        }
    }

    pub async fn revoke(
        &self,
        subject: &Subject,
        policy: Policy,
        except: Option<&SessionId>,
        now: Millis,
    ) -> Result<usize, Error> {
        match self {
            SubjectStores::Kv(index, sessions) => {
                Subjects::new(index, sessions, policy)
                    .revoke(subject, except, now)
                    .await
            }
            SubjectStores::Durable(index, sessions) => {
                Subjects::new(index, sessions, policy)
                    .revoke(subject, except, now)
                    .await
            }
        }
    }

    pub async fn revoke_one(
        &self,
        subject: &Subject,
        policy: Policy,
        handle: &Handle,
        now: Millis,
    ) -> Result<(), Error> {
        match self {
            SubjectStores::Kv(index, sessions) => {
                Subjects::new(index, sessions, policy)
                    .revoke_one(subject, handle, now)
                    .await
            }
            SubjectStores::Durable(index, sessions) => {
                Subjects::new(index, sessions, policy)
                    .revoke_one(subject, handle, now)
                    .await
            }
        }
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
    use crate::store::memory::run;

    #[test]
    fn join_all_keeps_order() {
        let outputs = run(join_all((0..5).map(|n| async move { n * 2 })));
        assert_eq!(outputs, vec![0, 2, 4, 6, 8]);
    }
}
