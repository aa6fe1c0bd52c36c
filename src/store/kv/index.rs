//! The subject index on Workers KV (see [`KvIndex`]).

use crate::domain::base64;
use crate::domain::derive::{Handle, StorageKey};
use crate::domain::error::Error;
use crate::domain::id::SessionId;
use crate::domain::session::KV_MIN_TTL;
use crate::domain::subject::Subject;
use crate::domain::time::Millis;
use crate::store::schema::index_prefix;
use crate::store::{
    Activity, DeviceInfo, Entry, EntryKey, KeyValue, NewEntry, SessionRef, SubjectIndex,
};

/// The subject index on KV: one entry `sub:<subject hash>:<handle>` per session, empty, with
/// `<created at> <storage key>[ <sealed device, base64>]` as metadata, living until the
/// session's latest end (its absolute lifetime, which no renewal passes). The prefix is neither
/// a storage key nor a `cache:` key. A listing is one `list` per thousand entries, which carries
/// all of that, and one bulk read of the sessions' metadata per hundred, for their lifecycle.
/// Entries written before keys were hashed are `sub:<subject hash>:<session id>` with the
/// creation time alone; they are listed as they are, and go when their session goes.
///
/// KV lists lag writes by up to about a minute: a list (and so a revoke) may miss a session
/// created moments before.
pub struct KvIndex<K> {
    pub kv: K,
    serve_legacy: bool,
}

impl<K: KeyValue> KvIndex<K> {
    pub fn new(kv: K, serve_legacy: bool) -> Self {
        Self { kv, serve_legacy }
    }

    /// The sealed device info of the entry `from`, which a session moving from it (as `to`)
    /// carries over: one read. `SessionNotFound` when `from` is not listed, and neither is `to`:
    /// a revocation took it (see [`SubjectIndex::take`]). `to` listed already is a renewal of
    /// the same record that moved first (KV's renewals converge on one successor, see
    /// `SessionStore::successor`), and its entry carries what `from`'s did. On a miss, one
    /// more read each, for `to` and an entry of `from` written before keys were hashed.
    async fn lineage(
        &self,
        subject: &Subject,
        from: &EntryKey,
        to: &Handle,
    ) -> Result<Option<Vec<u8>>, Error> {
        let prefix = index_prefix(subject);
        for handle in [from.handle, *to] {
            let handle = handle.to_string();
            if let Some((_, metadata)) = self.kv.get(&format!("{prefix}{handle}")).await? {
                let entry = parse_entry(&handle, metadata.as_deref());
                return Ok(entry.and_then(|entry| entry.device));
            }
        }
        if let (true, SessionRef::Id(id)) = (self.serve_legacy, from.at) {
            if self.kv.get(&format!("{prefix}{id}")).await?.is_some() {
                return Ok(None);
            }
        }
        Err(Error::SessionNotFound)
    }
}

/// An entry's metadata: `<created at> <storage key>[ <device>]`.
fn entry_metadata(member: &EntryKey, device: Option<&[u8]>) -> String {
    let mut metadata = format!("{} {}", member.created_at, member.at.storage_key().name());
    if let Some(device) = device {
        metadata.push(' ');
        metadata.push_str(&base64::encode(device));
    }
    metadata
}

/// A listed entry: a handle with `<created at> <storage key>[ <device>]`, or an id with its
/// creation time.
fn parse_entry(name: &str, metadata: Option<&str>) -> Option<Entry> {
    if let Some(handle) = Handle::parse(name) {
        let mut fields = metadata?.split(' ');
        let created_at = fields.next()?.parse().ok()?;
        let key = StorageKey::from_name(fields.next()?)?;
        let device = match fields.next() {
            Some(text) => Some(base64::decode(text)?),
            None => None,
        };
        let member = EntryKey {
            handle,
            at: SessionRef::Key(key),
            created_at,
        };
        return Some(Entry {
            key: member,
            activity: None,
            device,
        });
    }
    let id = SessionId::parse(name)?;
    let created_at = metadata.and_then(|m| m.parse().ok()).unwrap_or(0);
    Some(Entry {
        key: EntryKey::of(id, created_at),
        activity: None,
        device: None,
    })
}

impl<K: KeyValue> SubjectIndex for KvIndex<K> {
    /// One put (and one read first, for a moved session's device and lineage: its entry must
    /// still be listed, else a revocation took it; an entry written before keys were hashed
    /// is one more read, on a miss).
    async fn add(&self, subject: &Subject, entry: &NewEntry<'_>, now: Millis) -> Result<(), Error> {
        let member = entry.key;
        let carried = match entry.device {
            DeviceInfo::None => None,
            DeviceInfo::Sealed(bytes) => Some(bytes.to_vec()),
            DeviceInfo::Like(from) => self.lineage(subject, &from, &member.handle).await?,
        };
        let name = format!("{}{}", index_prefix(subject), member.handle);
        let ttl = entry
            .until
            .saturating_sub(now)
            .div_ceil(1000)
            .max(KV_MIN_TTL);
        let metadata = entry_metadata(&member, carried.as_deref());
        self.kv
            .put(&name, b"".as_slice().into(), Some(&metadata), ttl)
            .await
    }

    /// One delete; with `legacy` on and the id known, one more for an entry written before
    /// keys were hashed.
    async fn remove(&self, subject: &Subject, member: &EntryKey) -> Result<(), Error> {
        let prefix = index_prefix(subject);
        self.kv
            .delete(&format!("{prefix}{}", member.handle))
            .await?;
        if let (true, SessionRef::Id(id)) = (self.serve_legacy, member.at) {
            self.kv.delete(&format!("{prefix}{id}")).await?;
        }
        Ok(())
    }

    /// One read of the entry, and one put when it is missing (its device info is gone with it).
    async fn relist(
        &self,
        subject: &Subject,
        entry: &NewEntry<'_>,
        now: Millis,
    ) -> Result<(), Error> {
        let name = format!("{}{}", index_prefix(subject), entry.key.handle);
        if self.kv.get(&name).await?.is_none() {
            let entry = NewEntry {
                device: DeviceInfo::None,
                ..*entry
            };
            self.add(subject, &entry, now).await?;
        }
        Ok(())
    }

    /// An entry written before keys were hashed holds the id in its key: one put of the new
    /// entry, one delete of the old.
    async fn upgrade(
        &self,
        subject: &Subject,
        member: &EntryKey,
        until: Millis,
        activity: Activity,
        now: Millis,
    ) -> Result<(), Error> {
        if let SessionRef::Id(id) = member.at {
            let entry = NewEntry {
                key: *member,
                until,
                activity,
                device: DeviceInfo::None,
            };
            self.add(subject, &entry, now).await?;
            self.kv
                .delete(&format!("{}{id}", index_prefix(subject)))
                .await?;
        }
        Ok(())
    }

    /// One list per thousand entries. A session listed twice (an entry written before keys
    /// were hashed, and one a write put back: see [`SubjectIndex::relist`]) is given once, as
    /// the earlier entry, which the listing then rewrites.
    async fn members(&self, subject: &Subject) -> Result<Vec<Entry>, Error> {
        let prefix = index_prefix(subject);
        let keys = self.kv.list(&prefix).await?;
        let mut entries: Vec<Entry> = keys
            .into_iter()
            .filter_map(|(key, metadata)| {
                parse_entry(key.strip_prefix(&prefix)?, metadata.as_deref())
            })
            .collect();
        entries.sort_unstable_by_key(|entry| {
            let keyed = matches!(entry.key.at, SessionRef::Key(_));
            (entry.key.handle, keyed)
        });
        entries.dedup_by_key(|entry| entry.key.handle);
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// KV refuses metadata whose JSON form is over 1024 bytes: the largest entry fits.
    #[test]
    fn the_largest_index_entry_fits_kv_metadata() {
        let id = SessionId::from_random_bytes([1; 16]);
        let member = EntryKey {
            created_at: u64::MAX,
            ..EntryKey::of(id, 0)
        };
        let device = vec![0xff; crate::store::seal::MAX_SEALED_DEVICE];
        let metadata = entry_metadata(&member, Some(&device));
        let json = format!("{metadata:?}");
        assert!(json.len() <= 1024, "{} bytes", json.len());
        let entry = parse_entry(&Handle::of(&id).to_string(), Some(&metadata));
        assert_eq!(
            entry.and_then(|e| e.device).map(|d| d.len()),
            Some(crate::store::seal::MAX_SEALED_DEVICE)
        );
    }
}
