//! A record's bytes: the magics of each format, the sealed lifecycle's fixed layout, the slots,
//! and splitting a stored record into its parts (see the table in [`super`]). No cryptography
//! here: what is encrypted and bound to what is [`super::Sealer`]'s.

use crate::domain::auth::{Auth, Level};
use crate::domain::binding::{Binding, BINDING_BYTES};
use crate::domain::session::Meta;
use crate::domain::subject::Subject;

pub(super) const NONCE: usize = 12;
pub(super) const TAG: usize = 16;
/// At most this many slots are read: a record claiming more is not one of ours.
pub(super) const MAX_SLOTS: usize = 4;

/// The format this version writes.
pub(super) const MAGIC: &[u8; 2] = b"s3";
/// A renewed id's record: the same format, a [`Retirement`] for data.
///
/// [`Retirement`]: crate::domain::renewal::Retirement
pub(super) const RETIRED_MAGIC: &[u8; 2] = b"r3";
/// A record whose lifecycle carries a device binding ([`Binding`]): the same format with the
/// binding's bytes after the lifecycle. Written only for bound sessions and their binding
/// pointers, so every other record stays `s3`, readable by the version before.
pub(super) const BOUND_MAGIC: &[u8; 2] = b"s4";
pub(super) const BOUND_RETIRED_MAGIC: &[u8; 2] = b"r4";
/// The lifecycle of an `s4` or `r4` record.
pub const BOUND_LIFECYCLE: usize = LIFECYCLE + BINDING_BYTES;
pub(super) const SALT: usize = 32;
pub(super) const SLOT: usize = SALT + 32 + TAG;
/// The sealed lifecycle: five numbers, a flag, a subject hash, and the last authentication
/// (an instant and a level).
pub const LIFECYCLE: usize = S2_LIFECYCLE + 8 + 1;
/// The formats of the version before, still read: the same but for a lifecycle without the
/// authentication, which then reads as level 1 at creation.
pub(super) const S2_MAGIC: &[u8; 2] = b"s2";
pub(super) const S2_RETIRED_MAGIC: &[u8; 2] = b"r2";
pub(super) const S2_LIFECYCLE: usize = 5 * 8 + 1 + 32;
/// HMAC message prefix of a slot's key; then the slot's salt.
pub(super) const SLOT_KEY_LABEL: &[u8] = b"session-state/v2/slot-key\0";
/// Associated data of a slot, before the storage key.
pub(super) const SLOT_LABEL: &[u8] = b"session-state/v2/slot\0";
/// Associated data of the data, before the storage key and the record's header.
pub(super) const DATA_LABEL: &[u8] = b"session-state/v2/data\0";
/// HMAC message prefix of a renewal's successor (keyed like a slot's key, by the id's
/// [`WrapKey`]); then the salt of the record's first slot. Neither this label nor
/// [`SLOT_KEY_LABEL`] is a prefix of the other, so no slot key is a successor.
///
/// [`WrapKey`]: crate::domain::derive::WrapKey
pub(super) const SUCCESSOR_LABEL: &[u8] = b"session-state/v2/successor\0";

/// The format of the version before: lifecycle beside the record, one data key per session.
pub(super) const S1_MAGIC: &[u8; 2] = b"s1";
pub(super) const S1_SLOT: usize = NONCE + 32 + TAG;
pub(super) const S1_SLOT_LABEL: &[u8] = b"session-state/v1/slot\0";
pub(super) const S1_DATA_LABEL: &[u8] = b"session-state/v1/data\0";

/// Whether `bytes` are a renewed id's record: readable without the id (the magic is in the
/// clear), for what lists or ends sessions without one.
pub fn is_retirement(bytes: &[u8]) -> bool {
    [RETIRED_MAGIC, BOUND_RETIRED_MAGIC, S2_RETIRED_MAGIC]
        .iter()
        .any(|magic| bytes.starts_with(*magic))
}

/// The magic a record of `meta` is written with: `s3`/`r3`, or `s4`/`r4` with a binding.
pub(super) fn magic_of(meta: &Meta, retired: bool) -> &'static [u8; 2] {
    match (meta.binding.is_some(), retired) {
        (false, false) => MAGIC,
        (false, true) => RETIRED_MAGIC,
        (true, false) => BOUND_MAGIC,
        (true, true) => BOUND_RETIRED_MAGIC,
    }
}

/// The lifecycle as sealed, with the binding's bytes after it when there is one.
pub(super) fn sealed_lifecycle(meta: &Meta) -> Vec<u8> {
    let mut out = lifecycle_bytes(meta).to_vec();
    if let Some(binding) = meta.binding {
        out.extend_from_slice(&binding.to_bytes());
    }
    out
}

/// The lifecycle as sealed: fixed width, so the header has one length.
pub fn lifecycle_bytes(meta: &Meta) -> [u8; LIFECYCLE] {
    let mut out = [0u8; LIFECYCLE];
    let numbers = [
        meta.created_at,
        meta.updated_at,
        meta.expires_at,
        meta.version,
        meta.ttl.unwrap_or(0),
    ];
    for (chunk, number) in out.chunks_mut(8).zip(numbers) {
        chunk.copy_from_slice(&number.to_be_bytes());
    }
    if let Some(subject) = &meta.subject {
        out[40] = 1;
        out[41..S2_LIFECYCLE].copy_from_slice(subject.bytes());
    }
    out[S2_LIFECYCLE..S2_LIFECYCLE + 8].copy_from_slice(&meta.auth.at.to_be_bytes());
    out[LIFECYCLE - 1] = meta.auth.level.get();
    out
}

/// Reads what [`sealed_lifecycle`] wrote for an `s4` or `r4` record.
fn bound_lifecycle_of(bytes: &[u8]) -> Option<Meta> {
    let (lifecycle, binding) = bytes.split_at_checked(LIFECYCLE)?;
    Some(Meta {
        binding: Some(Binding::from_bytes(binding)?),
        ..lifecycle_of(lifecycle)?
    })
}

/// Reads what [`lifecycle_bytes`] wrote (or, for an `s2` record, what it wrote before the
/// authentication was added: `bytes` end there); `None` for anything else.
pub(super) fn lifecycle_of(bytes: &[u8]) -> Option<Meta> {
    let number = |at: usize| {
        let chunk = bytes.get(at * 8..at * 8 + 8)?;
        Some(u64::from_be_bytes(chunk.try_into().ok()?))
    };
    let hash: [u8; 32] = bytes.get(41..S2_LIFECYCLE)?.try_into().ok()?;
    let created_at = number(0)?;
    let auth = match bytes.get(S2_LIFECYCLE..) {
        Some([]) => Auth::at_creation(created_at),
        Some(auth) => Auth {
            at: u64::from_be_bytes(auth.get(..8)?.try_into().ok()?),
            level: Level::of(*auth.get(8).filter(|_| auth.len() == 9)?)?,
        },
        None => return None,
    };
    let subject = match bytes.get(40)? {
        0 if hash == [0; 32] => None,
        1 => Some(Subject::from_bytes(hash)),
        _ => return None,
    };
    let ttl = number(4)?;
    Some(Meta {
        created_at,
        updated_at: number(1)?,
        expires_at: number(2)?,
        version: number(3)?,
        ttl: (ttl != 0).then_some(ttl),
        subject,
        auth,
        binding: None,
    })
}

/// A record's parts, as stored.
pub(super) struct Parts<'a> {
    /// Everything before the data's nonce: bound to the data as associated data (`s2` and later).
    pub(super) header: &'a [u8],
    pub(super) lifecycle: Option<Meta>,
    pub(super) slots: &'a [u8],
    pub(super) nonce: &'a [u8],
    pub(super) sealed: &'a [u8],
}

/// The parts of an `s3`, `s2` or `s1` record; `None` for anything else.
pub(super) fn split(bytes: &[u8]) -> Option<Parts<'_>> {
    let strip = |one: &[u8; 2], other: &[u8; 2]| {
        bytes
            .strip_prefix(one)
            .or_else(|| bytes.strip_prefix(other))
    };
    let current = match strip(MAGIC, RETIRED_MAGIC) {
        Some(rest) => Some((rest, LIFECYCLE)),
        None => match strip(BOUND_MAGIC, BOUND_RETIRED_MAGIC) {
            Some(rest) => Some((rest, BOUND_LIFECYCLE)),
            None => strip(S2_MAGIC, S2_RETIRED_MAGIC).map(|rest| (rest, S2_LIFECYCLE)),
        },
    };
    let (lifecycle, rest, slot) = if let Some((rest, length)) = current {
        let (lifecycle, rest) = rest.split_at_checked(length)?;
        let meta = match length {
            BOUND_LIFECYCLE => bound_lifecycle_of(lifecycle)?,
            _ => lifecycle_of(lifecycle)?,
        };
        (Some(meta), rest, SLOT)
    } else {
        (None, bytes.strip_prefix(S1_MAGIC)?, S1_SLOT)
    };
    let (&count, rest) = rest.split_first()?;
    let count = usize::from(count);
    if count == 0 || count > MAX_SLOTS || rest.len() < count * slot + NONCE + TAG {
        return None;
    }
    let (slots, rest) = rest.split_at(count * slot);
    let (nonce, sealed) = rest.split_at(NONCE);
    let header = &bytes[..bytes.len() - rest.len()];
    Some(Parts {
        header,
        lifecycle,
        slots,
        nonce,
        sealed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::session::fixtures::{POLICY, T0};

    #[test]
    fn lifecycles_round_trip_with_and_without_ttl_and_subject() {
        let full = Meta {
            subject: Some(Subject::new(b"ada", None).unwrap()),
            auth: Auth {
                at: T0 + 5,
                level: Level::of(2).unwrap(),
            },
            ..Meta::new(T0, Some(600), POLICY)
        };
        let bare = Meta::new(T0, None, POLICY);
        for meta in [full, bare] {
            assert_eq!(lifecycle_of(&lifecycle_bytes(&meta)), Some(meta));
        }
        let mut flagged = lifecycle_bytes(&bare);
        flagged[40] = 2;
        assert_eq!(lifecycle_of(&flagged), None);
        flagged[40] = 0;
        flagged[50] = 1;
        assert_eq!(lifecycle_of(&flagged), None, "no subject, yet a hash");
        let mut level = lifecycle_bytes(&bare);
        level[LIFECYCLE - 1] = 4;
        assert_eq!(lifecycle_of(&level), None, "no such level");
        assert!(
            lifecycle_of(&level[..S2_LIFECYCLE]).is_some(),
            "an s2 lifecycle"
        );
    }
}
