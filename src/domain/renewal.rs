//! Renewal: a new id for the same session and the same privilege (`POST /renew/:id`), as
//! opposed to rotation (`POST /rotate/:id`), which follows a privilege change and ends the old id
//! at once.
//!
//! A renewed id is not forgotten. Its storage key keeps a [`Retirement`] until the session's
//! latest end, sealed under the old id (only a holder of the old id can open it), naming the
//! successor. For [`Renewal::grace_ms`] the old id keeps reaching the successor (the tabs and
//! requests still in flight with it are not logged out); after that, presenting it is **reuse**:
//! two parties held the id, and with detection on, the session it was renewed into ends.
//! An id more than one renewal old is reuse at once, whatever its own window says.
//!
//! Pure: the settings, the retirement's bytes and the judgement of an old id at `now`.

use crate::domain::id::SessionId;
use crate::domain::session::MS_PER_SECOND;
use crate::domain::time::Millis;

/// The longest grace window: SuperTokens and Ory Hydra stop at five minutes too; a longer one
/// is a second session in all but name.
pub const MAX_GRACE_SECONDS: u64 = 300;
/// The default window: long enough for requests in flight and a retry, short enough that a
/// stolen id is reuse within half a minute of the next renewal.
pub const DEFAULT_GRACE_SECONDS: u64 = 30;

/// The renewal rules of this deployment (`SESSION_RENEWAL_GRACE_SECONDS`,
/// `SESSION_REUSE_DETECTION`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Renewal {
    /// How long an old id keeps reaching its successor; 0: not at all (a renewal is then a
    /// rotation that keeps watch on the old id).
    pub grace_ms: Millis,
    /// Whether an old id presented after its window ends the session it was renewed into.
    pub reuse_detection: bool,
    /// How long an id of a session bound to a device key lives (`BOUND_SESSION_ID_SECONDS`):
    /// after that it moves only by a refresh with a proof, and presenting it is reuse.
    pub bound_id_ms: Millis,
}

impl Default for Renewal {
    fn default() -> Self {
        Self {
            grace_ms: DEFAULT_GRACE_SECONDS * MS_PER_SECOND,
            reuse_detection: true,
            bound_id_ms: crate::domain::binding::DEFAULT_BOUND_ID_SECONDS * MS_PER_SECOND,
        }
    }
}

/// What an id renewed away leaves under its storage key: which session it was renewed into,
/// and until when it still reaches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retirement {
    pub successor: SessionId,
    pub renewed_at: Millis,
    /// The end of the grace window, fixed at renewal: a later change of the setting does not
    /// reopen or shorten the window of an id already renewed.
    pub grace_until: Millis,
}

/// The retirement's bytes: the successor's (16 for a UUID, 32 for a token), then two instants,
/// big-endian. Its length tells the successor's form.
pub const RETIREMENT_BYTES: usize = 16 + 8 + 8;
/// The same, for a token successor.
pub const TOKEN_RETIREMENT_BYTES: usize = 32 + 8 + 8;

/// What presenting a renewed id means at some instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presented {
    /// Within its window: the request acts on the successor, and names it to nobody.
    Grace(SessionId),
    /// After its window, or more than one renewal old: two parties held it.
    Reuse(SessionId),
}

impl Retirement {
    pub fn new(successor: SessionId, renewed_at: Millis, renewal: Renewal) -> Self {
        Self {
            successor,
            renewed_at,
            grace_until: renewed_at.saturating_add(renewal.grace_ms),
        }
    }

    /// The old id presented at `now`. `successor_retired`: the successor was renewed in turn,
    /// so this id is two renewals old.
    pub fn presented(&self, now: Millis, successor_retired: bool) -> Presented {
        if now < self.grace_until && !successor_retired {
            Presented::Grace(self.successor)
        } else {
            Presented::Reuse(self.successor)
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.successor.to_bytes();
        out.extend_from_slice(&self.renewed_at.to_be_bytes());
        out.extend_from_slice(&self.grace_until.to_be_bytes());
        out
    }

    /// Reads what [`Retirement::to_bytes`] wrote; `None` for anything else.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != RETIREMENT_BYTES && bytes.len() != TOKEN_RETIREMENT_BYTES {
            return None;
        }
        let (successor, instants) = bytes.split_at(bytes.len() - 16);
        let successor = SessionId::from_bytes(successor)?;
        let renewed_at = u64::from_be_bytes(instants[..8].try_into().ok()?);
        let grace_until = u64::from_be_bytes(instants[8..].try_into().ok()?);
        (grace_until >= renewed_at).then_some(Self {
            successor,
            renewed_at,
            grace_until,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Millis = 1_700_000_000_000;

    fn id(n: u8) -> SessionId {
        SessionId::from_random_bytes([n; 16])
    }

    #[test]
    fn an_old_id_reaches_its_successor_until_the_window_ends_then_is_reuse() {
        let retired = Retirement::new(id(2), T0, Renewal::default());
        assert_eq!(retired.presented(T0, false), Presented::Grace(id(2)));
        assert_eq!(
            retired.presented(T0 + 29_999, false),
            Presented::Grace(id(2))
        );
        assert_eq!(
            retired.presented(T0 + 30_000, false),
            Presented::Reuse(id(2))
        );
    }

    #[test]
    fn an_id_two_renewals_old_is_reuse_inside_its_window() {
        let retired = Retirement::new(id(2), T0, Renewal::default());
        assert_eq!(retired.presented(T0 + 1, true), Presented::Reuse(id(2)));
    }

    #[test]
    fn a_window_of_zero_is_reuse_at_once() {
        let renewal = Renewal {
            grace_ms: 0,
            ..Renewal::default()
        };
        let retired = Retirement::new(id(2), T0, renewal);
        assert_eq!(retired.presented(T0, false), Presented::Reuse(id(2)));
    }

    #[test]
    fn a_retirement_reads_back_and_nothing_else_does() {
        let retired = Retirement::new(id(7), T0, Renewal::default());
        let bytes = retired.to_bytes();
        assert_eq!(Retirement::from_bytes(&bytes), Some(retired));
        assert_eq!(Retirement::from_bytes(&bytes[1..]), None);
        // A window ending before the renewal is not one this worker wrote.
        let mut backwards = bytes.clone();
        backwards[24..].copy_from_slice(&(T0 - 1).to_be_bytes());
        assert_eq!(Retirement::from_bytes(&backwards), None);
        // Nor is a successor that is not a v4 id.
        let mut not_v4 = bytes;
        not_v4[6] = 0x10;
        assert_eq!(Retirement::from_bytes(&not_v4), None);
        // A token successor: the longer form.
        let token = SessionId::token_from_random_bytes([9; 32]);
        let retired = Retirement::new(token, T0, Renewal::default());
        assert_eq!(retired.to_bytes().len(), TOKEN_RETIREMENT_BYTES);
        assert_eq!(Retirement::from_bytes(&retired.to_bytes()), Some(retired));
    }
}
