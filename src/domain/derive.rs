//! What is derived from a session id, one way, each under its own label: the key the session is
//! stored under, the handle a listing shows for it, and the key that wraps its data key. None of
//! them leads back to the id, and none of them is accepted where an id is expected, so storage
//! and listings can hold them without holding a credential.
//!
//! The id is 122 random bits, so a plain hash of it cannot be reversed by trying candidates, and
//! no secret has to be managed for any of this. The labels keep the three apart: knowing a
//! storage key tells nothing of the handle or the wrap key.

use std::fmt;

use crate::domain::digest::{hex, hmac_sha256, push_hex, sha256, unhex};
use crate::domain::id::SessionId;
use crate::domain::percent::percent_decode_lenient;

const KEY_LABEL: &[u8] = b"session-state/v1/key\0";
const HANDLE_LABEL: &[u8] = b"session-state/v1/handle\0";
const WRAP_LABEL: &[u8] = b"session-state/v1/wrap";
const CHALLENGE_LABEL: &[u8] = b"session-state/v1/dbsc-challenge";

/// Every label this module derives under, for `docs/storage.md`'s derivation table.
#[cfg(test)]
pub const LABELS: &[&[u8]] = &[
    KEY_LABEL,
    HANDLE_LABEL,
    WRAP_LABEL,
    CHALLENGE_LABEL,
    DEVICE_SUBKEY_LABEL,
    LEGACY_DEVICE_LABEL,
];

/// What the session is stored under: SHA-256 of the id under its label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorageKey([u8; 32]);

/// Where a session's name is written as text: KV keys start with it, and strong mode names
/// objects with it. Neither a session id (36 characters with hyphens) nor `sub:` or `cache:`.
pub const KEY_PREFIX: &str = "s1:";

impl StorageKey {
    pub fn of(id: &SessionId) -> Self {
        Self(labelled(KEY_LABEL, id))
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// `s1:` and 64 hex digits: the KV key, and the name of the session's object.
    pub fn name(&self) -> String {
        let mut name = String::with_capacity(KEY_PREFIX.len() + 2 * self.0.len());
        name.push_str(KEY_PREFIX);
        push_hex(&mut name, &self.0);
        name
    }

    pub fn from_name(name: &str) -> Option<Self> {
        unhex(name.strip_prefix(KEY_PREFIX)?).map(Self)
    }
}

/// How a listing names a session: 32 hex digits, stable for the session's life, useless as a
/// credential.
/// Ordered by its bytes, which is the order of its hex text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Handle([u8; 16]);

impl Handle {
    pub fn of(id: &SessionId) -> Self {
        let mut handle = [0; 16];
        handle.copy_from_slice(&labelled(HANDLE_LABEL, id)[..16]);
        Self(handle)
    }

    pub fn parse(text: &str) -> Option<Self> {
        let bytes = unhex(text)?;
        Some(Self(bytes))
    }
}

impl fmt::Display for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

/// The key a session's data key is wrapped under: HMAC-SHA-256 keyed by the id, over a label.
/// Only a holder of the id can compute it, so only a holder of the id can read the data.
pub struct WrapKey(pub [u8; 32]);

impl WrapKey {
    pub fn of(id: &SessionId) -> Self {
        Self(hmac_sha256(id.to_string().as_bytes(), WRAP_LABEL))
    }
}

impl fmt::Debug for WrapKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WrapKey(..)")
    }
}

/// HMAC key of the device subkey derivation; the message is `SUBJECT_KEY` (or nothing).
const DEVICE_SUBKEY_LABEL: &[u8] = b"session-state/v2/device-key";
/// The derivation of the version before: `SUBJECT_KEY` itself keyed it, over this label and the
/// subject, so a subject of the form `label ‖ s` hashed (HMAC under `SUBJECT_KEY`, see
/// [`crate::domain::subject`]) to the device key of `s`.
const LEGACY_DEVICE_LABEL: &[u8] = b"session-state/v1/device\0";

/// The keys a subject's device info is sealed under: HMAC-SHA-256 of the subject as given (its
/// bytes, not its hash), keyed by a subkey of `SUBJECT_KEY` that is HMAC-SHA-256 keyed by a
/// label over `SUBJECT_KEY` (HKDF-Extract with the label as salt; an empty key without one).
/// Only a caller that names the subject can compute it, and the hash that storage holds does
/// not lead to it; without `SUBJECT_KEY`, whoever guesses a subject (an email) can, as they
/// can test its hash.
///
/// Why a subkey: the subject hash is HMAC keyed by `SUBJECT_KEY` itself over any subject (1 to
/// 256 arbitrary bytes), so no other value may be HMAC under that key over caller-chosen
/// bytes. This key is HMAC under the subkey, and the subkey is HMAC under the label: neither
/// has an input (key and message) that a subject hash can have, unless `SUBJECT_KEY` were the
/// label itself, which configuration refuses. `legacy` is the derivation of the version
/// before, kept to open device info sealed under it until a listing seals it anew.
pub struct DeviceKey {
    pub now: [u8; 32],
    pub legacy: [u8; 32],
}

impl DeviceKey {
    pub fn of(subject: &[u8], subject_key: Option<&[u8]>) -> Self {
        let key = subject_key.unwrap_or_default();
        let subkey = hmac_sha256(DEVICE_SUBKEY_LABEL, key);
        let legacy = hmac_sha256(key, &[LEGACY_DEVICE_LABEL, subject].concat());
        Self {
            now: hmac_sha256(&subkey, subject),
            legacy,
        }
    }

    /// The key of a subject given percent-encoded, as [`crate::domain::subject::Subject`] reads it.
    pub fn from_encoded(text: &str, subject_key: Option<&[u8]>) -> Self {
        Self::of(&percent_decode_lenient(text), subject_key)
    }
}

/// A `SUBJECT_KEY` that is the label its own device subkey is keyed by would give the subkey an
/// input a subject hash can have: configuration refuses it.
pub fn is_reserved_subject_key(key: &[u8]) -> bool {
    key == DEVICE_SUBKEY_LABEL
}

impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeviceKey(..)")
    }
}

/// What a device-binding challenge of the session is MACed under: only a holder of the id can
/// mint one, and one minted for an id is good for that id alone (see `domain::binding`).
pub struct ChallengeKey([u8; 32]);

impl ChallengeKey {
    pub fn of(id: &SessionId) -> Self {
        Self(labelled(CHALLENGE_LABEL, id))
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

fn labelled(label: &[u8], id: &SessionId) -> [u8; 32] {
    let mut message = Vec::with_capacity(label.len() + 36);
    message.extend_from_slice(label);
    message.extend_from_slice(id.to_string().as_bytes());
    sha256(&message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> SessionId {
        SessionId::parse("0f9c4a8e-2b1d-4c3e-9a7f-6d5e4c3b2a19").unwrap()
    }

    /// Fixed values, computed once with `printf 'session-state/v1/key\0%s' ID | sha256sum` and
    /// `openssl dgst -sha256 -mac HMAC -macopt key:ID`: a change of derivation would orphan
    /// every stored session, so it must fail here first.
    #[test]
    fn derivations_are_fixed() {
        assert_eq!(
            StorageKey::of(&id()).name(),
            "s1:29c20072ced6c811b8466962dca9bf2a6ec470bb0a9db608e8d32089ceb14b8c"
        );
        assert_eq!(
            Handle::of(&id()).to_string(),
            "55ebb915ec6a4601ebe842c7e657aaff"
        );
        assert_eq!(
            hex(&WrapKey::of(&id()).0),
            "c5435f47116037ce157fde7fcb9441f0a7b611b0ce8eeb1c3d9eef5d3e3768fe"
        );
    }

    const PLAIN_DEVICE_KEY: &str =
        "097888ab59e2ddf7edaa659731849994d60915f3915d61490e79dfdf8299c09c";
    const KEYED_DEVICE_KEY: &str =
        "0c07113e0a7ee09a2db6c674629661267b3e25851be5cb8f7e1f19c36ab92a2e";

    /// The earlier keys: Python's `hmac.new(b"", b"session-state/v1/device\0ada@example.com",
    /// sha256)`, and `printf ... | openssl dgst -sha256 -mac HMAC -macopt key:secret` for the
    /// keyed one. This version's: `sub = hmac.new(b"session-state/v2/device-key", key,
    /// sha256).digest()`, then `hmac.new(sub, b"ada@example.com", sha256)`, with `key` empty and
    /// `b"secret"`.
    #[test]
    fn device_keys_are_fixed_and_keyed() {
        let plain = DeviceKey::of(b"ada@example.com", None);
        let keyed = DeviceKey::from_encoded("ada%40example.com", Some(b"secret"));
        assert_eq!(
            hex(&plain.legacy),
            "48e94e3e2d8fd1883c63aef4a027eee4069c8ba38bf2e844e85757d7da47116d"
        );
        assert_eq!(
            hex(&keyed.legacy),
            "bd7a1a835f3b3da21919cfd8ebfd2246f8f0ae49424f59446d4aec0d0330d4c4"
        );
        assert_eq!(hex(&plain.now), PLAIN_DEVICE_KEY);
        assert_eq!(hex(&keyed.now), KEYED_DEVICE_KEY);
    }

    /// The construction the security read found: with `SUBJECT_KEY` set, the subject
    /// `session-state/v1/device\0ada@example.com` hashed to Ada's device key, which storage then
    /// held in the clear. No subject's hash is this version's device key of another: not that
    /// one, nor one built the same way on the new label.
    #[test]
    fn no_subject_hashes_to_another_subjects_device_key() {
        use crate::domain::subject::Subject;
        for key in [Some(&b"secret"[..]), None] {
            let ada = DeviceKey::of(b"ada@example.com", key);
            for crafted in [
                &b"x-session-state/v1/device\0ada@example.com"[..],
                b"x-session-state/v2/device-keyada@example.com",
                b"ada@example.com",
            ] {
                let hash = *Subject::new(crafted, key).unwrap().bytes();
                assert_ne!(hash, ada.now, "{}", String::from_utf8_lossy(crafted));
            }
        }
        let key = Some(&b"secret"[..]);
        let crafted = b"session-state/v1/device\0ada@example.com";
        let legacy = DeviceKey::of(b"ada@example.com", key).legacy;
        // The earlier derivation had the flaw: the subject `label ‖ s` hashed to the earlier
        // device key of `s`. Such a subject is refused, so it reaches none.
        assert_eq!(
            crate::domain::digest::hmac_sha256(b"secret", crafted),
            legacy,
            "the flaw the reserved prefix closes"
        );
        assert!(Subject::new(crafted, key).is_err());
        assert!(is_reserved_subject_key(DEVICE_SUBKEY_LABEL));
    }

    #[test]
    fn nothing_derived_holds_the_id() {
        let id = id();
        let simple = id.to_string().replace('-', "");
        let derived = [
            StorageKey::of(&id).name(),
            Handle::of(&id).to_string(),
            hex(&WrapKey::of(&id).0),
        ];
        for text in &derived {
            assert!(!text.contains(&id.to_string()) && !text.contains(&simple[..12]));
        }
        assert_ne!(&StorageKey::of(&id).bytes()[..16], &Handle::of(&id).0);
    }

    #[test]
    fn names_and_handles_parse_back() {
        let key = StorageKey::of(&id());
        assert_eq!(StorageKey::from_name(&key.name()), Some(key));
        assert_eq!(StorageKey::from_name(&key.name()[3..]), None);
        assert_eq!(StorageKey::from_name(&key.name().to_uppercase()), None);
        let handle = Handle::of(&id());
        assert_eq!(Handle::parse(&handle.to_string()), Some(handle));
        for bad in [
            "",
            "0f9c",
            &id().to_string(),
            &"g".repeat(32),
            &"A".repeat(32),
        ] {
            assert_eq!(Handle::parse(bad), None, "{bad}");
        }
    }
}
