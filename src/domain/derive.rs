//! What is derived from a session id, one way, each under its own label: the key the session is
//! stored under, the handle a listing shows for it, and the key that wraps its data key. None of
//! them leads back to the id, and none of them is accepted where an id is expected, so storage
//! and listings can hold them without holding a credential.
//!
//! The id is 122 random bits, so a plain hash of it cannot be reversed by trying candidates, and
//! no secret has to be managed for any of this. The labels keep the three apart: knowing a
//! storage key tells nothing of the handle or the wrap key.

use std::fmt;

use crate::domain::digest::{hex, hmac_sha256, sha256, unhex};
use crate::domain::id::SessionId;
use crate::domain::percent::percent_decode_lenient;

const KEY_LABEL: &[u8] = b"session-state/v1/key\0";
const HANDLE_LABEL: &[u8] = b"session-state/v1/handle\0";
const WRAP_LABEL: &[u8] = b"session-state/v1/wrap";

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
        format!("{KEY_PREFIX}{}", hex(&self.0))
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

const DEVICE_LABEL: &[u8] = b"session-state/v1/device\0";

/// The key a subject's device info is sealed under: HMAC-SHA-256 over a label and the subject
/// as given (its bytes, not its hash), keyed by `SUBJECT_KEY` when there is one. Only a caller
/// that names the subject can compute it, and the hash that storage holds does not lead to it;
/// without `SUBJECT_KEY`, whoever guesses a subject (an email) can, as they can test its hash.
pub struct DeviceKey(pub [u8; 32]);

impl DeviceKey {
    pub fn of(subject: &[u8], subject_key: Option<&[u8]>) -> Self {
        let message = [DEVICE_LABEL, subject].concat();
        Self(hmac_sha256(subject_key.unwrap_or_default(), &message))
    }

    /// The key of a subject given percent-encoded, as [`crate::domain::subject::Subject`] reads it.
    pub fn from_encoded(text: &str, subject_key: Option<&[u8]>) -> Self {
        Self::of(&percent_decode_lenient(text), subject_key)
    }
}

impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeviceKey(..)")
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

    /// Python's `hmac.new(b"", b"session-state/v1/device\0ada@example.com", sha256)`, and
    /// `printf ... | openssl dgst -sha256 -mac HMAC -macopt key:secret` for the keyed one.
    #[test]
    fn device_keys_are_fixed_and_keyed() {
        assert_eq!(
            hex(&DeviceKey::of(b"ada@example.com", None).0),
            "48e94e3e2d8fd1883c63aef4a027eee4069c8ba38bf2e844e85757d7da47116d"
        );
        assert_eq!(
            hex(&DeviceKey::from_encoded("ada%40example.com", Some(b"secret")).0),
            "bd7a1a835f3b3da21919cfd8ebfd2246f8f0ae49424f59446d4aec0d0330d4c4"
        );
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
