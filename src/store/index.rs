//! The subject index's side of the seam: what an index holds of each session (an entry, by
//! handle, never by id), what is added and taken out, and the trait every index keeps.

use crate::domain::auth::Auth;
use crate::domain::binding::{Alg, Binding};
use crate::domain::derive::Handle;
use crate::domain::error::Error;
use crate::domain::id::SessionId;
use crate::domain::session::Meta;
use crate::domain::subject::Subject;
use crate::domain::time::Millis;
use crate::store::SessionRef;
use futures_util::future::join_all;

/// One word for a subject's index row: an *entry*. Its key says which session it lists: the
/// handle (unique in the index), where the session is stored, and when it was created (the
/// listing's order). A [`NewEntry`] is what is added, an [`Entry`] what a listing gives back,
/// with the session's [`Activity`] as the index last heard it; the service judges each into a
/// live entry (`service::subjects::LiveEntry`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryKey {
    pub handle: Handle,
    pub at: SessionRef,
    pub created_at: Millis,
}

impl EntryKey {
    /// The entry of the session `id`, as a session's own operations know it; an index stores
    /// what it may of it.
    pub fn of(id: SessionId, created_at: Millis) -> Self {
        Self {
            handle: Handle::of(&id),
            at: SessionRef::Id(id),
            created_at,
        }
    }
}

/// A session's activity, as an index knows it without asking the session: its last write or
/// renewing touch, and its expiry (strong mode: what
/// the session's object told it at a write, at most one renewal interval old, never later than
/// the truth). KV's index knows none of it: a listing reads each session's metadata in bulk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Activity {
    pub updated_at: Millis,
    pub expires_at: Millis,
    /// The last authentication, which a listing shows.
    pub auth: Auth,
    /// The algorithm of the device key the session is bound to, if it is (DBSC).
    pub bound: Option<Alg>,
}

impl Activity {
    pub fn of(meta: &Meta) -> Self {
        Self {
            updated_at: meta.updated_at,
            expires_at: meta.expires_at,
            auth: meta.auth,
            bound: match meta.binding {
                Some(Binding::Bound { alg, .. }) => Some(alg),
                _ => None,
            },
        }
    }
}

/// What a new entry says of the session's device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceInfo<'a> {
    None,
    /// Sealed under the subject's device key (see [`crate::store::seal::seal_device`]).
    Sealed(&'a [u8]),
    /// Whatever the entry of the session it moved from says (a renewal, rotation or
    /// reauthentication keeps the device): the new entry's lineage. Refused when that lineage was
    /// ended (see [`SubjectIndex::add`]).
    Like(EntryKey),
}

/// Which entries a revocation takes out of an index ([`SubjectIndex::take`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice<'a> {
    /// Every entry created before `before` (every one, without it), but `except`'s.
    All {
        except: Option<Handle>,
        before: Option<Millis>,
    },
    /// The entries of these handles.
    Handles(&'a [Handle]),
}

impl Choice<'_> {
    /// Whether the entry `key` is chosen, by itself (an index that keeps lineages also takes
    /// what moved from a chosen entry, and keeps what moved from `except`).
    pub fn picks(&self, key: &EntryKey) -> bool {
        match self {
            Choice::All { except, before } => {
                Some(key.handle) != *except && before.is_none_or(|before| key.created_at < before)
            }
            Choice::Handles(handles) => handles.contains(&key.handle),
        }
    }
}

/// A new entry in a subject's index.
#[derive(Clone, Copy, Debug)]
pub struct NewEntry<'a> {
    pub key: EntryKey,
    /// The session's latest possible end: the entry may vanish by itself after that.
    pub until: Millis,
    pub activity: Activity,
    pub device: DeviceInfo<'a>,
}

/// A session's entry, as an index gives it back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub key: EntryKey,
    pub activity: Option<Activity>,
    /// The sealed device info, if any was given.
    pub device: Option<Vec<u8>>,
}

/// The sessions of each subject.
///
/// Contract: `add` lists an entry under `subject` until its `until`; `remove` removes the
/// entry with the member's handle, and succeeds for an entry that is not there; `members` gives
/// what was added and not removed, with what `seen` told it since. An index may still list a
/// session that is gone (it ended, or was deleted without its subject being known): callers
/// check each entry they cannot vouch for and remove what they find gone.
///
/// A session that moves to a new id (renewal, rotation, reauthentication) is written under the
/// new id first, then listed there with [`DeviceInfo::Like`] the entry it moved from. `add`
/// refuses such an entry with [`Error::SessionNotFound`] when a revocation has ended that
/// lineage ([`SubjectIndex::take`]): the move is then undone, and the revocation, which also
/// ends the old id, wins. So a move racing a revocation never leaves a live, unlisted session.
#[allow(
    async_fn_in_trait,
    reason = "Workers run single-threaded; futures need not be Send"
)]
pub trait SubjectIndex {
    async fn add(&self, subject: &Subject, entry: &NewEntry<'_>, now: Millis) -> Result<(), Error>;
    async fn remove(&self, subject: &Subject, member: &EntryKey) -> Result<(), Error>;
    async fn members(&self, subject: &Subject) -> Result<Vec<Entry>, Error>;

    /// Takes the entries `choice` names out of the index, and returns them: what a revocation
    /// ends, taken before it ends anything, so that a session moving meanwhile from one of them
    /// is refused its new entry (see above). Strong mode's index does it in one step, with the
    /// entries that moved from a chosen one (and without those that moved from `except`), and
    /// remembers the lineages it ended. By default (KV): the entries listed, each removed; a
    /// move whose entry is added between the listing and the removal escapes, a window of
    /// milliseconds in one location, and of KV's list lag (about a minute) across locations.
    async fn take(&self, subject: &Subject, choice: &Choice<'_>) -> Result<Vec<Entry>, Error> {
        let chosen: Vec<Entry> = self
            .members(subject)
            .await?
            .into_iter()
            .filter(|entry| choice.picks(&entry.key))
            .collect();
        let removed = join_all(chosen.iter().map(|entry| self.remove(subject, &entry.key)));
        for done in removed.await {
            done?;
        }
        Ok(chosen)
    }

    /// Rewrites the entry of a live `member` that names its session by id into the form that
    /// does not, where the index has one. Nothing to do by default.
    async fn upgrade(
        &self,
        _subject: &Subject,
        _member: &EntryKey,
        _until: Millis,
        _activity: Activity,
        _now: Millis,
    ) -> Result<(), Error> {
        Ok(())
    }

    /// Tells the index of a later lifecycle of the session listed as `handle`, where the index
    /// keeps one (strong mode). Nothing to do by default: KV's index reads it from the session.
    async fn report(
        &self,
        _subject: &Subject,
        _handle: &Handle,
        _activity: Activity,
    ) -> Result<(), Error> {
        Ok(())
    }

    /// Lists again a session just written whose entry is gone, where a write can meet one that
    /// was ended (KV: a location that still holds a revoked session in its cache can write it
    /// back, and unlisted it would escape the next revocation). Nothing to do by default:
    /// strong mode's ends are final.
    async fn relist(
        &self,
        _subject: &Subject,
        _entry: &NewEntry<'_>,
        _now: Millis,
    ) -> Result<(), Error> {
        Ok(())
    }
}

/// For stores that keep no subjects: nothing is ever listed, and adding is a mistake.
pub struct NoIndex;

impl SubjectIndex for NoIndex {
    async fn add(&self, _: &Subject, _: &NewEntry<'_>, _: Millis) -> Result<(), Error> {
        Err(Error::Internal(
            "a subject given where no index is kept".into(),
        ))
    }

    async fn remove(&self, _: &Subject, _: &EntryKey) -> Result<(), Error> {
        Ok(())
    }

    async fn members(&self, _: &Subject) -> Result<Vec<Entry>, Error> {
        Ok(Vec::new())
    }
}
