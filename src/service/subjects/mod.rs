//! The sessions of a subject: listing them, revoking them ("log out everywhere"), and keeping
//! their number bounded. Generic over the index and the session store, so the same rules run on
//! KV (in the worker) and in strong mode (in the subject's object, reaching each session through
//! its own object), and natively in the tests.
//!
//! An index may list sessions that are gone: one deleted by `DELETE /delete/:id` (which, on KV,
//! does not read the session, so does not know its subject), one that expired, one rotated away.
//! Whatever reads the index checks each session it cannot vouch for and removes the entries it
//! finds gone, so the index never holds more than the live sessions and the ones not yet met.
//! On KV that is every session, read in bulk (one read per hundred); in strong mode, only those
//! whose reported expiry has passed (see [`crate::store::durable::index::SqlIndex`]).

use crate::domain::derive::{DeviceKey, Handle};
use crate::domain::device::Device;
use crate::domain::error::Error;
use crate::domain::event::{Event, Kind, Revocation};
use crate::domain::session::Policy;
use crate::domain::subject::Subject;
use crate::domain::time::Millis;
use crate::store::seal::open_device_anew;
use crate::store::{
    Activity, Choice, DeviceInfo, Entry, EntryKey, NewEntry, SessionRef, SessionStore, SubjectIndex,
};
use futures_util::future::join_all;

mod stores;

pub use stores::SubjectStores;

/// A live session of a subject, as a listing may show it: by its handle, never its id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveEntry {
    pub key: EntryKey,
    /// Its last write or renewing touch, expiry, last authentication and binding.
    pub activity: Activity,
    /// Its device info, sealed under the subject's device key.
    pub device: Option<Vec<u8>>,
}

impl LiveEntry {
    /// The entry that lists this session again, as it was listed, with `device`.
    fn relisted<'d>(&self, policy: Policy, device: DeviceInfo<'d>) -> NewEntry<'d> {
        NewEntry {
            key: self.key,
            until: policy.latest_end(self.key.created_at),
            activity: self.activity,
            device,
        }
    }
}

/// A subject's listing, as the routes show it.
pub struct Listing {
    /// Each live session, newest first, with its device info.
    pub sessions: Vec<(LiveEntry, Device)>,
    /// Why device info sealed the earlier way could not be written back sealed anew: it fails
    /// nothing (it stays readable, and the next listing tries again), and is for the log.
    pub resealing: Option<Error>,
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
    pub async fn live(&self, subject: &Subject, now: Millis) -> Result<Vec<LiveEntry>, Error> {
        let entries = self.index.members(subject).await?;
        let mut live = self.check(subject, entries, now, false).await?;
        // Gone by `SESSIONS_NOT_BEFORE`, whatever the index last heard of them.
        live.retain(|entry| !self.policy.cut_off(Some(entry.key.created_at)));
        sort(&mut live, |a, b| newest(b).cmp(&newest(a)));
        Ok(live)
    }

    /// The entries whose session is alive and still this subject's; removes the others'. An
    /// entry whose reported lifecycle vouches for it (strong mode) is taken as it is, unless
    /// `exact` asks for every session's own; the others' sessions are read, all at once (KV:
    /// in bulk).
    async fn check(
        &self,
        subject: &Subject,
        entries: Vec<Entry>,
        now: Millis,
        exact: bool,
    ) -> Result<Vec<LiveEntry>, Error> {
        let judged = self.judge(subject, entries, now, exact).await?;
        // Cleaning up is a courtesy to the next reader: a failure here fails nothing. So is
        // rewriting an entry that names its session by id, once the session is under its key,
        // and telling an index that keeps lifecycles what was read.
        let gone = judged
            .gone
            .iter()
            .map(|member| self.index.remove(subject, member));
        join_all(gone).await;
        let upgrades = judged.moved.iter().map(|(member, until, activity)| {
            self.index.upgrade(subject, member, *until, *activity, now)
        });
        join_all(upgrades).await;
        let reports = judged
            .heard
            .iter()
            .map(|(handle, activity)| self.index.report(subject, handle, *activity));
        join_all(reports).await;
        Ok(judged.live)
    }

    /// Which of `entries` name a live session of `subject`, and what the index should learn of
    /// the rest; reads, and writes nothing (a revocation judges entries it has taken out).
    async fn judge(
        &self,
        subject: &Subject,
        entries: Vec<Entry>,
        now: Millis,
        exact: bool,
    ) -> Result<Judged, Error> {
        let (vouched, unsure): (Vec<Entry>, Vec<Entry>) = entries.into_iter().partition(|entry| {
            !exact
                && entry
                    .activity
                    .is_some_and(|activity| now < activity.expires_at)
        });
        let live = vouched
            .into_iter()
            .filter_map(|entry| {
                let activity = entry.activity?;
                Some(LiveEntry {
                    key: entry.key,
                    activity,
                    device: entry.device,
                })
            })
            .collect();
        let mut judged = Judged {
            live,
            ..Judged::default()
        };
        if unsure.is_empty() {
            return Ok(judged);
        }
        let refs: Vec<SessionRef> = unsure.iter().map(|entry| entry.key.at).collect();
        let metas = self.sessions.metas_at(&refs).await?;
        for (entry, meta) in unsure.into_iter().zip(metas) {
            let member = entry.key;
            match meta {
                Ok(Some((meta, at))) if meta.is_alive(now) && meta.subject == Some(*subject) => {
                    let activity = Activity::of(&meta);
                    if at != member.at {
                        judged
                            .moved
                            .push((member, meta.latest_end(self.policy), activity));
                    } else if entry.activity != Some(activity) {
                        judged.heard.push((member.handle, activity));
                    }
                    judged.live.push(LiveEntry {
                        key: EntryKey {
                            at,
                            created_at: meta.created_at,
                            ..member
                        },
                        activity,
                        device: entry.device,
                    });
                }
                // KV's only witness of an expiry is a read that meets it before KV drops it.
                Ok(Some((meta, _))) if meta.subject == Some(*subject) && !meta.is_alive(now) => {
                    if self.sessions.records_events() {
                        let event = Event::expired(&meta, self.policy, member.handle);
                        self.sessions.observed(&event);
                    }
                    judged.gone.push(member);
                }
                // A session that does not open is gone for the caller, as for everyone.
                Ok(_) | Err(Error::Unreadable(_)) => judged.gone.push(member),
                Err(err) => return Err(err),
            }
        }
        Ok(judged)
    }

    /// Ends every live session of `subject` created before `before` (all, without it) but
    /// the one listed as `except`, and returns how many it ended. Their entries are taken out
    /// of the index first ([`SubjectIndex::take`]), so a session that moves to a new id
    /// meanwhile is ended too. In strong mode each one is final everywhere by the time this
    /// returns, and only sessions that were there to end are counted.
    pub async fn revoke(
        &self,
        subject: &Subject,
        except: Option<Handle>,
        before: Option<Millis>,
        now: Millis,
    ) -> Result<usize, Error> {
        let taken = self
            .index
            .take(subject, &Choice::All { except, before })
            .await?;
        let why = Revocation::of(except.is_some(), before.is_some());
        self.end_taken(subject, taken, why, now).await
    }

    /// Ends the live session of `subject` listed as `handle` (and where it moved meanwhile):
    /// `SessionNotFound` when none is, so a handle of another subject's session ends nothing.
    pub async fn revoke_one(
        &self,
        subject: &Subject,
        handle: &Handle,
        now: Millis,
    ) -> Result<(), Error> {
        let handles = [*handle];
        let taken = self.index.take(subject, &Choice::Handles(&handles)).await?;
        match self.end_taken(subject, taken, Revocation::One, now).await? {
            0 => Err(Error::SessionNotFound),
            _ => Ok(()),
        }
    }

    /// Ends the sessions of the entries a revocation took out of the index: the live ones
    /// (not those `SESSIONS_NOT_BEFORE` ended already), counted.
    async fn end_taken(
        &self,
        subject: &Subject,
        taken: Vec<Entry>,
        why: Revocation,
        now: Millis,
    ) -> Result<usize, Error> {
        let mut live = self.judge(subject, taken, now, false).await?.live;
        live.retain(|entry| !self.policy.cut_off(Some(entry.key.created_at)));
        self.end(subject, &live, why, now).await
    }

    /// Ends the sessions `listed`, whose entries were taken out of the index, all at once, and
    /// counts the sessions that were there to end. Each end commits its `revoked` event, for
    /// `why`, where the session's store keeps events (it is built either way: the store
    /// decides, and strong mode's stores are the sessions' objects). A session that could not
    /// be ended is listed again, so that the revocation can be tried again.
    async fn end(
        &self,
        subject: &Subject,
        listed: &[LiveEntry],
        why: Revocation,
        now: Millis,
    ) -> Result<usize, Error> {
        let ended = join_all(
            listed
                .iter()
                .map(|listed| self.end_one(subject, listed, why, now)),
        )
        .await;
        let mut count = 0;
        for held in ended {
            count += usize::from(held?);
        }
        Ok(count)
    }

    /// Ends the session of one entry taken out of the index: whether it was there to end. On
    /// failure its entry goes back, with all it listed.
    async fn end_one(
        &self,
        subject: &Subject,
        listed: &LiveEntry,
        why: Revocation,
        now: Millis,
    ) -> Result<bool, Error> {
        let member = listed.key;
        let event = Event::new(Kind::Revoked(why), now, member.handle, Some(subject), None);
        let failure = match self.sessions.remove_at(&member.at, Some(&event)).await {
            Ok(held) => return Ok(held),
            Err(err) => err,
        };
        let device = listed.device.as_deref();
        let device = device.map_or(DeviceInfo::None, DeviceInfo::Sealed);
        let entry = listed.relisted(self.policy, device);
        let _ = self.index.add(subject, &entry, now).await;
        Err(failure)
    }

    /// The live sessions of `subject`, newest first, each with its device info opened under
    /// the subject's device `key` (none for a session without, or whose device info does not
    /// open). Device info the version before sealed is sealed anew as it is listed.
    pub async fn listing(
        &self,
        subject: &Subject,
        key: &DeviceKey,
        now: Millis,
    ) -> Result<Listing, Error> {
        let live = self.live(subject, now).await?;
        let mut anew = Vec::new();
        let devices: Vec<Device> = live
            .iter()
            .map(|listed| {
                let sealed = listed.device.as_deref()?;
                let (plain, resealed) = open_device_anew(key, subject, sealed)?;
                anew.extend(resealed.map(|resealed| (listed, resealed)));
                Device::from_bytes(&plain)
            })
            .map(Option::unwrap_or_default)
            .collect();
        let resealing = match anew.is_empty() {
            true => None,
            false => self.reseal(subject, &anew, now).await.err(),
        };
        Ok(Listing {
            sessions: live.into_iter().zip(devices).collect(),
            resealing,
        })
    }

    /// Writes the entries of `listed` again, each with its device info as `devices` gives it
    /// (sealed anew under this version's device key by [`Subjects::listing`], whose caller
    /// names the subject and so holds the key): device info the version before sealed moves on
    /// sight. One write per entry, one after the other (it happens once per entry); a failure
    /// leaves the entry as it was, still readable.
    pub async fn reseal(
        &self,
        subject: &Subject,
        listed: &[(&LiveEntry, Vec<u8>)],
        now: Millis,
    ) -> Result<(), Error> {
        for (listed, device) in listed {
            let entry = listed.relisted(self.policy, DeviceInfo::Sealed(device));
            self.index.add(subject, &entry, now).await?;
        }
        Ok(())
    }

    /// Makes room for one more session under `subject`: when `max` live sessions are there
    /// already, ends the least recently written. Reads the sessions only when the index holds
    /// `max` entries or more, so a subject under its bound costs one index read; then it reads
    /// every one, since what strong mode's index knows is only as fine as the renewal interval.
    pub async fn make_room(&self, subject: &Subject, max: usize, now: Millis) -> Result<(), Error> {
        let entries = self.index.members(subject).await?;
        if entries.len() < max {
            return Ok(());
        }
        let mut live = self.check(subject, entries, now, true).await?;
        if live.len() < max {
            return Ok(());
        }
        sort(&mut live, |a, b| written(a).cmp(&written(b)));
        let excess = live.len() + 1 - max;
        let handles: Vec<Handle> = live[..excess].iter().map(|l| l.key.handle).collect();
        let taken = self.index.take(subject, &Choice::Handles(&handles)).await?;
        self.end_taken(subject, taken, Revocation::Limit, now)
            .await
            .map(drop)
    }
}

/// What [`Subjects::judge`] found: the live entries, and what the index should learn of the
/// rest (entries whose session is gone, entries to rewrite by key, lifecycles to note).
#[derive(Default)]
struct Judged {
    live: Vec<LiveEntry>,
    gone: Vec<EntryKey>,
    moved: Vec<(EntryKey, Millis, Activity)>,
    heard: Vec<(Handle, Activity)>,
}

/// Sorts a listing. Each order is total (handles are unique), so an unstable sort gives the
/// same list as a stable one; and one comparator type for every order makes one sort in the
/// build (each is several KiB of Wasm).
fn sort(live: &mut [LiveEntry], order: fn(&LiveEntry, &LiveEntry) -> std::cmp::Ordering) {
    live.sort_unstable_by(order);
}

/// Newest first: creation, then handle.
fn newest(listed: &LiveEntry) -> (Millis, Handle) {
    (listed.key.created_at, listed.key.handle)
}

/// Least recently written first.
fn written(listed: &LiveEntry) -> (Millis, Millis, Handle) {
    (
        listed.activity.updated_at,
        listed.key.created_at,
        listed.key.handle,
    )
}
