//! Subjects: the user a session belongs to, kept only as a hash.
//!
//! A subject (an email, a user id) is personal data, so the service never stores or logs it in
//! the clear: it keeps SHA-256 of it, or HMAC-SHA-256 under the secret `SUBJECT_KEY` when that is
//! set (a plain hash of a guessable subject can be reversed by trying candidates; a keyed one
//! cannot without the key). Changing or adding the key later orphans existing indexes: sessions
//! stay valid, but are no longer listed under their subject.
//!
//! The subject is bytes: percent-decoded from a path or header, or a JSON string decoded from
//! the session data. The same subject hashes the same whichever way it arrives.

use crate::domain::digest::{hex, hmac_sha256, sha256, unhex};
use crate::domain::error::Error;
use crate::domain::percent::percent_decode_lenient;

/// The longest subject accepted, in bytes.
pub const MAX_SUBJECT_BYTES: usize = 256;

/// What no subject may begin with: the labels this service derives keys under begin so. The
/// version before derived device keys as HMAC under `SUBJECT_KEY` of a label and the subject,
/// the same function as a subject's hash, so the subject `session-state/v1/device\0` ‖ `s`
/// would reach the device key of `s`; no subject of this form is taken, so none can.
pub const RESERVED_PREFIX: &[u8] = b"session-state/";

/// A subject's hash: what indexes and metadata hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Subject([u8; 32]);

impl Subject {
    /// The subject `bytes` (1 to 256 of them, not beginning with [`RESERVED_PREFIX`]), hashed
    /// under `key` if there is one.
    pub fn new(bytes: &[u8], key: Option<&[u8]>) -> Result<Self, Error> {
        if bytes.is_empty() || bytes.len() > MAX_SUBJECT_BYTES || bytes.starts_with(RESERVED_PREFIX)
        {
            return Err(Error::InvalidSubject);
        }
        Ok(Self(match key {
            Some(key) => hmac_sha256(key, bytes),
            None => sha256(bytes),
        }))
    }

    /// A subject given percent-encoded (a path segment, or the `Session-Subject` header).
    pub fn from_encoded(text: &str, key: Option<&[u8]>) -> Result<Self, Error> {
        Self::new(&percent_decode_lenient(text), key)
    }

    /// The hash in lowercase hex: 64 characters.
    pub fn hex(&self) -> String {
        hex(&self.0)
    }

    pub fn from_hex(text: &str) -> Option<Self> {
        unhex(text).map(Self)
    }

    /// The hash itself, as a sealed lifecycle holds it.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn from_bytes(hash: [u8; 32]) -> Self {
        Self(hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_one_to_256_bytes_and_hash_alike_however_encoded() {
        let plain = Subject::new("ada@example.com".as_bytes(), None).unwrap();
        assert_eq!(
            Subject::from_encoded("ada%40example.com", None).unwrap(),
            plain
        );
        assert_eq!(
            Subject::from_encoded("ada@example.com", None).unwrap(),
            plain
        );
        let accented = Subject::new("zoë".as_bytes(), None).unwrap();
        assert_eq!(Subject::from_encoded("zo%C3%AB", None).unwrap(), accented);
        assert!(Subject::new(&[b'x'; 256], None).is_ok());
        for bad in [&b""[..], &[b'x'; 257][..]] {
            assert!(matches!(
                Subject::new(bad, None),
                Err(Error::InvalidSubject)
            ));
        }
        assert!(matches!(
            Subject::from_encoded("", None),
            Err(Error::InvalidSubject)
        ));
        // The labels' prefix, however it arrives: the earlier device key of `ada` is not
        // reachable as a subject.
        for reserved in [
            "session-state/v1/device%00ada",
            "session-state%2Fx",
            "session-state/",
        ] {
            assert!(matches!(
                Subject::from_encoded(reserved, Some(b"k")),
                Err(Error::InvalidSubject)
            ));
        }
        assert!(Subject::new(b"session-state", None).is_ok());
        assert!(Subject::new(b"x/session-state/", None).is_ok());
        let literal = Subject::new(b"%zz", None).unwrap();
        assert_eq!(
            Subject::from_encoded("%zz", None).unwrap(),
            literal,
            "a stray % is kept"
        );
    }

    #[test]
    fn a_key_changes_every_hash_and_hex_round_trips() {
        let plain = Subject::new(b"ada", None).unwrap();
        let keyed = Subject::new(b"ada", Some(b"secret")).unwrap();
        assert_ne!(plain, keyed);
        assert_eq!(Subject::from_hex(&keyed.hex()), Some(keyed));
        assert_eq!(Subject::from_hex("ABC"), None);
        assert_eq!(Subject::from_hex(&"G".repeat(64)), None);
    }
}
