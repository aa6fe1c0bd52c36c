//! Base64 (RFC 4648, section 4: the standard alphabet), without padding: how sealed device info
//! travels as text, in a KV index entry's metadata and between objects. Decoding is strict
//! (`STANDARD_NO_PAD`, what every version wrote with): no padding, no other characters, no stray
//! bits. It encodes ciphertext, so nothing here is secret or needs constant time.

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;

pub fn encode(bytes: &[u8]) -> String {
    STANDARD_NO_PAD.encode(bytes)
}

pub fn decode(text: &str) -> Option<Vec<u8>> {
    STANDARD_NO_PAD.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4648, section 10, without the padding.
    const VECTORS: &[(&str, &str)] = &[
        ("", ""),
        ("f", "Zg"),
        ("fo", "Zm8"),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg"),
        ("fooba", "Zm9vYmE"),
        ("foobar", "Zm9vYmFy"),
    ];

    #[test]
    fn the_rfc_vectors() {
        for (plain, encoded) in VECTORS {
            assert_eq!(encode(plain.as_bytes()), *encoded);
            assert_eq!(
                decode(encoded).as_deref(),
                Some(plain.as_bytes()),
                "{encoded}"
            );
        }
    }

    #[test]
    fn every_byte_round_trips_and_uses_the_whole_alphabet() {
        let bytes: Vec<u8> = (0..=255).chain((0..=255).rev()).collect();
        for len in 0..bytes.len() {
            assert_eq!(
                decode(&encode(&bytes[..len])).as_deref(),
                Some(&bytes[..len])
            );
        }
        assert_eq!(encode(&[0xfb, 0xff]), "+/8");
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "Z", "Zm9vY", "Zg==", "Zm8=", "Zm 9v", "Zm9v\n", "Zh", "Zm9", "Zm-_", "é",
        ] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
    }
}
