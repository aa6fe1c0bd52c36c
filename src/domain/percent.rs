//! Percent-decoding (RFC 3986) of path segments and header values: strict for cache keys, where
//! a malformed escape is refused, and lenient for subjects, which are whatever the caller sent.

use percent_encoding::percent_decode_str;

/// Decodes `%XX` escapes; `None` for a malformed one (a cache key with one is refused).
pub fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let well_formed = text.split('%').skip(1).all(|after| {
        after
            .as_bytes()
            .get(..2)
            .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    });
    well_formed.then(|| percent_decode_str(text).collect())
}

/// Decodes every well-formed `%XX` and keeps any other `%` as the character it is, as a
/// forgiving `decodeURIComponent` would: a subject is whatever the caller sent, and the same
/// subject decodes alike from a path and from a header.
pub fn percent_decode_lenient(text: &str) -> Vec<u8> {
    percent_decode_str(text).collect()
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
