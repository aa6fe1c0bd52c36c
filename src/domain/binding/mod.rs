//! Device binding (W3C DBSC, "Device Bound Session Credentials"): a session bound to a key the
//! browser keeps, so that a copied cookie stops working when its short-lived id does.
//!
//! What the domain holds of it, all pure:
//! - [`Binding`], sealed in a session's lifecycle: a bound session names its key's algorithm,
//!   the key's RFC 7638 thumbprint and when its current id was issued; a bound id lives at most
//!   `BOUND_SESSION_ID_SECONDS` from then. The record under a binding identifier is a
//!   [`Binding::Pointer`]: it names the bound session's current id, sealed under the binding
//!   identifier, and is never served as a session.
//! - Challenges ([`mint_challenge`], [`check_challenge`]): an instant and a MAC under a key
//!   derived from the session's current id. Nothing is stored for them: a challenge is good only
//!   for the id it was minted for, and binding or refreshing moves the session to a new id, so
//!   each challenge is spent by the move it allows (see docs/dbsc.md for what KV promises).
//! - Proofs ([`Proof::parse`]): the JWT the browser signs, checked for everything but its
//!   signature (`typ` `dbsc+jwt`, `alg` ES256 or RS256, `jwk` at registration only, `jti`).
//!   The signature is checked where the runtime's WebCrypto is ([`Verify`]).

use std::fmt::Write;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use subtle::ConstantTimeEq;

use crate::domain::derive::ChallengeKey;
use crate::domain::digest::{hex, hmac_sha256, unhex};
use crate::domain::id::SessionId;
use crate::domain::time::{Millis, CLOCK_SKEW_MS};

mod proof;

use proof::Object;
pub use proof::{Jwk, Proof, Refused, Stage, Verify};

/// The default life of a bound id, in seconds (`BOUND_SESSION_ID_SECONDS`).
pub const DEFAULT_BOUND_ID_SECONDS: u64 = 600;
/// The longest: a bound id of a day is a long-lived cookie in all but name.
pub const MAX_BOUND_ID_SECONDS: u64 = 86_400;
/// The longest a challenge is good for; a shorter bound id life shortens it to match.
pub const MAX_CHALLENGE_MS: Millis = 300_000;

/// The signature algorithms a device key may use: what the spec defines besides `none`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alg {
    Es256,
    Rs256,
}

impl Alg {
    pub fn name(self) -> &'static str {
        match self {
            Alg::Es256 => "ES256",
            Alg::Rs256 => "RS256",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "ES256" => Some(Alg::Es256),
            "RS256" => Some(Alg::Rs256),
            _ => None,
        }
    }

    fn code(self) -> u8 {
        match self {
            Alg::Es256 => 1,
            Alg::Rs256 => 2,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Alg::Es256),
            2 => Some(Alg::Rs256),
            _ => None,
        }
    }
}

/// What a record's lifecycle says of device binding (none: a session as every earlier version
/// wrote it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    /// A session bound to a device key: the key's algorithm and RFC 7638 thumbprint, and when
    /// the session's current id was issued.
    Bound {
        alg: Alg,
        key: [u8; 32],
        since: Millis,
    },
    /// The record under a binding identifier, naming the bound session's current id: never a
    /// session, whatever route presents its key.
    Pointer,
}

/// The lifecycle bytes of a binding: tag 1 (bound) or 2 (pointer) | algorithm 1 | since 8 |
/// thumbprint 32.
pub const BINDING_BYTES: usize = 1 + 1 + 8 + 32;

impl Binding {
    /// Whether a bound session's current id has lived its `life_ms` at `now`.
    pub fn id_ended(&self, now: Millis, life_ms: Millis) -> bool {
        match self {
            Binding::Bound { since, .. } => now >= since.saturating_add(life_ms),
            Binding::Pointer => false,
        }
    }

    pub fn to_bytes(self) -> [u8; BINDING_BYTES] {
        let mut out = [0; BINDING_BYTES];
        match self {
            Binding::Bound { alg, key, since } => {
                out[0] = 1;
                out[1] = alg.code();
                out[2..10].copy_from_slice(&since.to_be_bytes());
                out[10..].copy_from_slice(&key);
            }
            Binding::Pointer => out[0] = 2,
        }
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; BINDING_BYTES] = bytes.try_into().ok()?;
        match bytes[0] {
            1 => Some(Binding::Bound {
                alg: Alg::from_code(bytes[1])?,
                since: u64::from_be_bytes(bytes[2..10].try_into().ok()?),
                key: bytes[10..].try_into().ok()?,
            }),
            2 if bytes[1..].iter().all(|b| *b == 0) => Some(Binding::Pointer),
            _ => None,
        }
    }

    /// As readers without the id see it (KV metadata, strong mode's column):
    /// `ES256:<since>:<thumbprint hex>`, or `pointer`.
    pub fn to_text(self) -> String {
        match self {
            Binding::Bound { alg, key, since } => format!("{}:{since}:{}", alg.name(), hex(&key)),
            Binding::Pointer => "pointer".into(),
        }
    }

    pub fn from_text(text: &str) -> Option<Self> {
        if text == "pointer" {
            return Some(Binding::Pointer);
        }
        let mut parts = text.splitn(3, ':');
        let alg = Alg::from_name(parts.next()?)?;
        let since = parts.next()?.parse().ok()?;
        let key = unhex::<32>(parts.next()?)?;
        Some(Binding::Bound { alg, key, since })
    }
}

/// What a challenge is for: registering a key, or refreshing a bound session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    Register,
    Refresh,
}

/// The bytes a challenge's MAC covers.
fn challenge_mac(key: &ChallengeKey, purpose: Purpose, issued_at: Millis) -> [u8; 16] {
    let tag: &[u8] = match purpose {
        Purpose::Register => b"register\0",
        Purpose::Refresh => b"refresh\0",
    };
    let mac = hmac_sha256(key.bytes(), &[tag, &issued_at.to_be_bytes()].concat());
    let mut out = [0; 16];
    out.copy_from_slice(&mac[..16]);
    out
}

/// A challenge for `purpose` on the session `id`, minted at `now`: 32 base64url characters.
pub fn mint_challenge(id: &SessionId, purpose: Purpose, now: Millis) -> String {
    let mac = challenge_mac(&ChallengeKey::of(id), purpose, now);
    URL_SAFE_NO_PAD.encode([&now.to_be_bytes()[..], &mac].concat())
}

/// How long a challenge is good for, given the bound id life: that life, at most
/// [`MAX_CHALLENGE_MS`]. A proof comes back within a round trip of its challenge.
pub fn challenge_life(bound_id_ms: Millis) -> Millis {
    bound_id_ms.min(MAX_CHALLENGE_MS)
}

/// Whether `challenge` was minted for `purpose` on the session `id` within `life_ms` of `now`
/// (and not after it, allowing another isolate's clock a minute ahead).
pub fn check_challenge(
    challenge: &str,
    id: &SessionId,
    purpose: Purpose,
    now: Millis,
    life_ms: Millis,
) -> bool {
    let Ok(bytes) = URL_SAFE_NO_PAD.decode(challenge) else {
        return false;
    };
    let Ok(bytes) = <[u8; 24]>::try_from(bytes.as_slice()) else {
        return false;
    };
    let issued_at = u64::from_be_bytes([
        bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
    ]);
    let expected = challenge_mac(&ChallengeKey::of(id), purpose, issued_at);
    let genuine: bool = expected.ct_eq(&bytes[8..]).into();
    genuine
        && issued_at <= now.saturating_add(CLOCK_SKEW_MS)
        && now < issued_at.saturating_add(life_ms)
}

/// What the record under a binding identifier holds, sealed: the bound session's current id and
/// its device key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pointer {
    pub current: SessionId,
    pub alg: Alg,
    pub jwk: Jwk,
}

impl Pointer {
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(160 + self.jwk.as_str().len());
        let _ = write!(
            out,
            r#"{{"current":"{}","alg":"{}","jwk":{}}}"#,
            self.current,
            self.alg.name(),
            self.jwk.as_str()
        );
        out
    }

    pub fn from_json(text: &str) -> Option<Self> {
        let pointer = Object::parse(text.to_owned())?;
        let alg = Alg::from_name(&pointer.text("alg")?)?;
        let jwk = Jwk::for_alg(&pointer.object("jwk")?, alg).ok()?;
        Some(Self {
            current: SessionId::parse(&pointer.text("current")?)?,
            alg,
            jwk,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Millis = 1_764_000_000_000;

    fn ec_jwk() -> String {
        format!(
            r#"{{"kty":"EC","crv":"P-256","x":"{}","y":"{}"}}"#,
            URL_SAFE_NO_PAD.encode([1; 32]),
            URL_SAFE_NO_PAD.encode([2; 32])
        )
    }

    fn id() -> SessionId {
        SessionId::from_random_bytes([7; 16])
    }

    #[test]
    fn a_challenge_is_good_for_its_id_purpose_and_life_only() {
        let challenge = mint_challenge(&id(), Purpose::Refresh, T0);
        assert_eq!(challenge.len(), 32);
        let life = challenge_life(600_000);
        assert_eq!(life, MAX_CHALLENGE_MS);
        assert!(check_challenge(
            &challenge,
            &id(),
            Purpose::Refresh,
            T0,
            life
        ));
        assert!(check_challenge(
            &challenge,
            &id(),
            Purpose::Refresh,
            T0 + life - 1,
            life
        ));
        assert!(!check_challenge(
            &challenge,
            &id(),
            Purpose::Refresh,
            T0 + life,
            life
        ));
        assert!(!check_challenge(
            &challenge,
            &id(),
            Purpose::Register,
            T0,
            life
        ));
        let other = SessionId::from_random_bytes([8; 16]);
        assert!(!check_challenge(
            &challenge,
            &other,
            Purpose::Refresh,
            T0,
            life
        ));
        let mut altered = challenge.into_bytes();
        altered[31] = if altered[31] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).unwrap();
        assert!(!check_challenge(
            &altered,
            &id(),
            Purpose::Refresh,
            T0,
            life
        ));
        assert!(!check_challenge("short", &id(), Purpose::Refresh, T0, life));
        assert_eq!(challenge_life(3_000), 3_000);
    }

    #[test]
    fn a_binding_reads_back_as_bytes_and_as_text_and_a_bound_id_ends() {
        let bound = Binding::Bound {
            alg: Alg::Rs256,
            key: [9; 32],
            since: T0,
        };
        for binding in [bound, Binding::Pointer] {
            assert_eq!(Binding::from_bytes(&binding.to_bytes()), Some(binding));
            assert_eq!(Binding::from_text(&binding.to_text()), Some(binding));
        }
        assert_eq!(Binding::from_bytes(&[0; BINDING_BYTES]), None);
        assert_eq!(Binding::from_text("HS256:1:00"), None);
        assert!(!bound.id_ended(T0 + 599_999, 600_000));
        assert!(bound.id_ended(T0 + 600_000, 600_000));
        assert!(!Binding::Pointer.id_ended(u64::MAX, 1));
    }

    #[test]
    fn a_pointer_reads_back() {
        let pointer = Pointer {
            current: id(),
            alg: Alg::Es256,
            jwk: Jwk::from_kept(&ec_jwk()).unwrap(),
        };
        assert_eq!(Pointer::from_json(&pointer.to_json()), Some(pointer));
        assert_eq!(Pointer::from_json("{}"), None);
    }
}
