//! Base64 (RFC 4648, section 4: the standard alphabet), without padding: how sealed device info
//! travels as text, in a KV index entry's metadata and between objects.
//!
//! Hand-written, for size: the `base64` crate's general engine cost 5.7 KiB of Wasm for this one
//! alphabet, a tenth of the room the Wasm budget had left. It encodes ciphertext, so nothing here
//! is secret or needs constant time. Decoding is as strict as the crate's `STANDARD_NO_PAD`
//! (what earlier versions wrote with): no padding, no other characters, no stray bits.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let mut group = [0; 3];
        group[..chunk.len()].copy_from_slice(chunk);
        let bits = u32::from_be_bytes([0, group[0], group[1], group[2]]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(bits >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

pub fn decode(text: &str) -> Option<Vec<u8>> {
    let text = text.as_bytes();
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3 + 2);
    for chunk in text.chunks(4) {
        let mut bits = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            let value = ALPHABET.iter().position(|a| a == c)?;
            bits |= (value as u32) << (18 - 6 * i);
        }
        let bytes = bits.to_be_bytes();
        let kept = chunk.len() - 1;
        // What the last character carries past the last byte must be zero (canonical form).
        if bytes[1 + kept..].iter().any(|&b| b != 0) {
            return None;
        }
        out.extend_from_slice(&bytes[1..=kept]);
    }
    Some(out)
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
