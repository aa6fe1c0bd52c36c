//! Percent-decoding (RFC 3986) of path segments and header values: strict for cache keys, where
//! a malformed escape is refused, and lenient for subjects, which are whatever the caller sent.

/// Decodes `%XX` escapes; `None` for a malformed one (a cache key with one is refused).
pub fn percent_decode(text: &str) -> Option<Vec<u8>> {
    decode(text, true)
}

/// Decodes every well-formed `%XX` and keeps any other `%` as the character it is, as a
/// forgiving `decodeURIComponent` would: a subject is whatever the caller sent, and the same
/// subject decodes alike from a path and from a header.
pub fn percent_decode_lenient(text: &str) -> Vec<u8> {
    decode(text, false).unwrap_or_default()
}

fn decode(text: &str, strict: bool) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'%' {
            let escaped = std::str::from_utf8(bytes.get(at + 1..at + 3).unwrap_or_default())
                .ok()
                .filter(|hex| hex.len() == 2)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok());
            match escaped {
                Some(byte) => {
                    out.push(byte);
                    at += 3;
                    continue;
                }
                None if strict => return None,
                None => {}
            }
        }
        out.push(bytes[at]);
        at += 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_strict_and_lenient() {
        assert_eq!(percent_decode("a%20b%2Fc").unwrap(), b"a b/c");
        for malformed in ["%", "%4", "%zz", "a%4g"] {
            assert_eq!(percent_decode(malformed), None, "{malformed}");
        }
        assert_eq!(percent_decode_lenient("zo%C3%AB"), "zoë".as_bytes());
        assert_eq!(percent_decode_lenient("100%"), b"100%");
        assert_eq!(percent_decode_lenient("% M%41"), b"% MA");
        assert_eq!(percent_decode_lenient("%zz%2"), b"%zz%2");
    }
}
