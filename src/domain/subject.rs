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

use std::fmt::Write;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::domain::error::Error;
use crate::domain::percent::percent_decode_lenient;

/// The longest subject accepted, in bytes.
pub const MAX_SUBJECT_BYTES: usize = 256;

/// A subject's hash: what indexes and metadata hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Subject([u8; 32]);

impl Subject {
    /// The subject `bytes` (1 to 256 of them), hashed under `key` if there is one.
    pub fn new(bytes: &[u8], key: Option<&[u8]>) -> Result<Self, Error> {
        if bytes.is_empty() || bytes.len() > MAX_SUBJECT_BYTES {
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
        let mut out = String::with_capacity(64);
        for byte in self.0 {
            let _ = write!(out, "{byte:02x}");
        }
        out
    }

    pub fn from_hex(text: &str) -> Option<Self> {
        if text.len() != 64 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let mut hash = [0u8; 32];
        for (i, byte) in hash.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Self(hash))
    }
}

/// SHA-256 (FIPS 180-4), from RustCrypto.
pub fn sha256(message: &[u8]) -> [u8; 32] {
    Sha256::digest(message).into()
}

/// HMAC-SHA-256 (RFC 2104), from RustCrypto. Any key length is valid for HMAC.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(message);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: [u8; 32]) -> String {
        Subject(bytes).hex()
    }

    #[test]
    fn sha256_matches_the_fips_180_examples() {
        assert_eq!(
            hex(sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex(sha256(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex(sha256(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
        assert_eq!(
            hex(sha256(&[b'a'; 1_000_000])),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        );
    }

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        assert_eq!(
            hex(hmac_sha256(&[0x0b; 20], b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            hex(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

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
