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

use crate::error::Error;
use crate::http::percent_decode_lenient;

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

const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// SHA-256 (FIPS 180-4) of `parts`, taken as one message.
fn sha256_of(parts: &[&[u8]]) -> [u8; 32] {
    let mut state: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let length: usize = parts.iter().map(|part| part.len()).sum();
    let mut message: Vec<u8> = Vec::with_capacity(length + 72);
    for part in parts {
        message.extend_from_slice(part);
    }
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&((length as u64) * 8).to_be_bytes());
    for block in message.chunks_exact(64) {
        let mut w = [0u32; 64];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = state;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let choice = (e & f) ^ (!e & g);
            let t1 = h
                .wrapping_add(s1)
                .wrapping_add(choice)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let majority = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(majority);
            h = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (word, add) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
            *word = word.wrapping_add(add);
        }
    }
    let mut out = [0u8; 32];
    for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

pub fn sha256(message: &[u8]) -> [u8; 32] {
    sha256_of(&[message])
}

/// HMAC-SHA-256 (RFC 2104).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&sha256(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let inner_pad = block.map(|b| b ^ 0x36);
    let outer_pad = block.map(|b| b ^ 0x5c);
    let inner = sha256_of(&[&inner_pad, message]);
    sha256_of(&[&outer_pad, &inner])
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
