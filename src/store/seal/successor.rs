//! The successor of a renewal on KV, derived from the record the renewal read: KV has no
//! compare-and-swap, so renewals racing on one id must agree on where the session goes without
//! talking to each other.

use super::layout::{is_retirement, split, SALT, SUCCESSOR_LABEL};
use crate::domain::derive::WrapKey;
use crate::domain::digest::hmac_sha256;

/// What the successor of a renewal of the session in a record (an `s3` or `s2`) is derived
/// from: the salt of the record's first slot, which every write draws afresh. Every renewal
/// that read this very record derives the same successor from it ([`Successor::seed`]), so
/// renewals racing on KV, which has no compare-and-swap, converge on one successor instead of
/// forking the session. Kept from the read and derived only by a renewal: a read that renews
/// nothing (almost every one) pays no HMAC for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Successor([u8; SALT]);

impl Successor {
    /// `None` for any record but a session of this version's formats: renewals of those take
    /// a fresh random id.
    pub fn of(bytes: &[u8]) -> Option<Self> {
        let parts = split(bytes)?;
        if parts.lifecycle.is_none() || is_retirement(bytes) {
            return None;
        }
        Some(Self(parts.slots.get(..SALT)?.try_into().ok()?))
    }

    /// The seed of the successor's id, for the id of `wrap`. Nobody computes it without both
    /// the old id and the record, and whoever has both can open the retirement the renewal
    /// leaves, which names the successor anyway.
    pub fn seed(&self, wrap: &WrapKey) -> [u8; 32] {
        hmac_sha256(&wrap.0, &[SUCCESSOR_LABEL, &self.0].concat())
    }
}
