//! The one JSON grammar of session-state: RFC 8259, strictly, for every body it accepts and for
//! every stored session it merges into. What is accepted can always be merged.
//!
//! - Strings may hold every escape JavaScript's `JSON.parse` accepts, lone surrogates included
//!   (`JSON.stringify` writes one for a string cut inside an emoji). Keys are compared by their
//!   decoded UTF-16 code units: `"\u00e9"` and `"é"` are one key, `"\ud800"` is a key like any
//!   other. For comparison a key is decoded to WTF-8 (UTF-8 that also encodes lone surrogates),
//!   which is equal for two keys exactly when their UTF-16 forms are.
//! - Duplicate keys resolve as `JSON.parse` resolves them: the last value wins, at the first
//!   key's position. Accepted text is rewritten without them, so stored data never holds one.
//! - Nesting deeper than [`MAX_DEPTH`] is refused, as serde_json refuses it.
//!
//! Values stay raw text: nothing is rebuilt that need not be, so numbers, escapes and key
//! spellings come back byte for byte.

mod count;
mod escape;
mod scan;

pub use self::scan::{BodyError, Member, MAX_DEPTH};

use crate::domain::json::escape::unescape;
use crate::domain::json::scan::{is_whitespace_char, items, scan};

/// A JSON object that passed the grammar, with no duplicate key at any depth.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonObject(String);

impl JsonObject {
    /// Checks `bytes` (UTF-8 first: skipping over a string does not validate it) and resolves
    /// duplicate keys. Text without duplicates is kept exactly as it came.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, BodyError> {
        let text = String::from_utf8(bytes).map_err(|_| BodyError::NotJson)?;
        let scan = scan(&text, false)?;
        if !scan.is_object {
            return Err(BodyError::NotObject);
        }
        Ok(Self(if scan.duplicates {
            normalized(&text)
        } else {
            text
        }))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0.into_bytes()
    }
}

/// The members of the object `text`, in document order, after checking the whole text.
/// `NotObject` for valid JSON of another kind. The flag tells whether a duplicate key occurs at
/// any depth (then [`normalized`] gives the text without them).
pub fn members(text: &str) -> Result<(Vec<Member<'_>>, bool), BodyError> {
    let scan = scan(text, true)?;
    if !scan.is_object {
        return Err(BodyError::NotObject);
    }
    Ok((scan.members, scan.duplicates))
}

/// `text` (already checked) rewritten with every duplicate key resolved, at every depth.
pub fn normalized(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    write_normalized(text.trim_matches(is_whitespace_char), &mut out);
    out
}

fn write_normalized(value: &str, out: &mut String) {
    match value.as_bytes().first() {
        Some(b'{') => {
            let members = scan(value, true)
                .map(|scan| scan.members)
                .unwrap_or_default();
            out.push('{');
            for (i, (key, value)) in resolve_duplicates(&members).into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(key);
                out.push(':');
                write_normalized(value, out);
            }
            out.push('}');
        }
        Some(b'[') => {
            let items = items(value);
            out.push('[');
            for (i, item) in items.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_normalized(item, out);
            }
            out.push(']');
        }
        _ => out.push_str(value),
    }
}

/// The positions of `members`, ordered by decoded name, then by position: for finding a name
/// (merge) and for resolving duplicates. One function for both, so one sort in the build.
pub fn by_name(members: &[Member<'_>]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..members.len()).collect();
    order.sort_unstable_by(|&a, &b| members[a].name().cmp(members[b].name()).then(a.cmp(&b)));
    order
}

/// Members with each name once: the last value at the first position, as `JSON.parse` does.
fn resolve_duplicates<'a>(members: &[Member<'a>]) -> Vec<(&'a str, &'a str)> {
    // For each name's first position, its last one: a table by position, so the members come
    // out in order of first appearance without sorting again.
    let mut last_of: Vec<Option<usize>> = vec![None; members.len()];
    let mut first: Option<usize> = None;
    for index in by_name(members) {
        match first {
            Some(at) if members[at].name() == members[index].name() => last_of[at] = Some(index),
            _ => {
                first = Some(index);
                last_of[index] = Some(index);
            }
        }
    }
    last_of
        .into_iter()
        .enumerate()
        .filter_map(|(at, last)| Some((members[at].key, members[last?].value)))
        .collect()
}

/// The raw value of the last member named `name`: the one JavaScript sees.
pub fn get<'a>(members: &[Member<'a>], name: &str) -> Option<&'a str> {
    members
        .iter()
        .rev()
        .find(|member| member.name() == name.as_bytes())
        .map(|member| member.value)
}

/// The bytes of a raw value (already checked) that is a string: its escapes decoded (to WTF-8,
/// so a lone surrogate is kept as its own three bytes). `None` for any other value.
pub fn string_bytes(raw: &str) -> Option<Vec<u8>> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    let mut bytes = Vec::with_capacity(inner.len());
    unescape(inner, |piece| bytes.extend_from_slice(piece));
    Some(bytes)
}

/// Whether a raw value (already checked) is an object.
pub fn is_object(value: &str) -> bool {
    value.starts_with('{')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(text: &str) -> Result<String, BodyError> {
        JsonObject::from_bytes(text.as_bytes().to_vec()).map(|o| o.0)
    }

    #[test]
    fn objects_are_kept_exactly_as_they_came() {
        for text in [
            "{}",
            " {\"a\": [1, {\"b\": null}]} ",
            r#"{"k":[1, 2.50, -0, 1e-7, 1E+2, "\u00e9\n\/"],"n":{"":true}}"#,
            "{\"\u{1F600}\":\"\u{e9}\"}",
        ] {
            assert_eq!(object(text).as_deref(), Ok(text));
        }
    }

    #[test]
    fn the_grammar_is_rfc_8259() {
        for bad in [
            "",
            "{",
            "{\"a\":}",
            "{\"a\" 1}",
            "{\"a\":1,}",
            "{,}",
            "{} {}",
            "{\"a\":01}",
            "{\"a\":1.}",
            "{\"a\":.5}",
            "{\"a\":+1}",
            "{\"a\":1e}",
            "{\"a\":-}",
            "{\"a\":NaN}",
            "{\"a\":tru}",
            "{\"a\":'x'}",
            "{a:1}",
            "{\"a\":[1,]}",
            "{\"a\":\"\\x\"}",
            "{\"a\":\"\\u12\"}",
            "{\"a\":\"\\u12g4\"}",
            "{\"a\":\"tab\there\"}",
            "{\"a\":\"\n\"}",
            "\u{feff}{}",
            "{\"a\":1}\u{0}",
            "{\"a\":[}",
        ] {
            assert_eq!(object(bad), Err(BodyError::NotJson), "{bad:?}");
        }
        for not_object in ["[]", "1", "\"{}\"", "null", "true", " [1] "] {
            assert_eq!(
                object(not_object),
                Err(BodyError::NotObject),
                "{not_object:?}"
            );
        }
        assert_eq!(
            JsonObject::from_bytes(b"{\"a\":\"\xff\"}".to_vec()),
            Err(BodyError::NotJson),
            "not UTF-8"
        );
    }

    #[test]
    fn nesting_is_limited() {
        let nested = |depth: usize| {
            let mut text = "[".repeat(depth - 1) + &"]".repeat(depth - 1);
            text = format!("{{\"a\":{text}}}");
            text
        };
        assert!(object(&nested(MAX_DEPTH)).is_ok());
        assert_eq!(object(&nested(MAX_DEPTH + 1)), Err(BodyError::NotJson));
    }

    #[test]
    fn lone_surrogates_are_accepted_and_kept() {
        let text = r#"{"\ud800":1,"o":{"k":"\udfff\ud83d"},"pair":"\ud83d\ude00"}"#;
        assert_eq!(object(text).as_deref(), Ok(text));
        let (members, duplicates) = members(text).unwrap();
        assert!(!duplicates);
        assert_eq!(members.len(), 3);
        assert_eq!(members[0].name(), [0xed, 0xa0, 0x80]);
        assert_eq!(members[0].key, r#""\ud800""#);
    }

    #[test]
    fn keys_compare_by_their_decoded_form() {
        let name = |text: &str| members(text).unwrap().0[0].name().to_vec();
        assert_eq!(name(r#"{"\u00e9":1}"#), name("{\"é\":1}"));
        assert_eq!(name(r#"{"\ud83d\ude00":1}"#), name("{\"\u{1F600}\":1}"));
        assert_eq!(
            name(r#"{"\"\\\/\b\f\n\r\t":1}"#),
            b"\"\\/\x08\x0c\n\r\t".to_vec()
        );
        assert_ne!(name(r#"{"\ud83d":1}"#), name(r#"{"\ude00":1}"#));
        assert!(
            members(r#"{"\u00e9":1,"é":2}"#).unwrap().1,
            "one key, twice"
        );
    }

    #[test]
    fn duplicates_resolve_last_value_first_position_at_every_depth() {
        assert_eq!(
            object(r#"{"a":{"x":1},"b":2,"a":{"y":2}}"#).unwrap(),
            r#"{"a":{"y":2},"b":2}"#
        );
        assert_eq!(
            object(r#"{"l":[{"k":1,"k":2}, 3],"o":{"p":{"q":1,"q":[ ]}}}"#).unwrap(),
            r#"{"l":[{"k":2},3],"o":{"p":{"q":[]}}}"#
        );
        assert_eq!(object(r#"{"\u0061":1,"a":2}"#).unwrap(), r#"{"\u0061":2}"#);
        let many: String = (0..40).map(|i| format!("\"k{i}\":{i},")).collect();
        let text = format!("{{{many}\"k7\":\"last\"}}");
        let resolved = object(&text).unwrap();
        assert!(resolved.contains(r#""k7":"last""#) && !resolved.contains(r#""k7":7"#));
        assert_eq!(members(&resolved).unwrap().0.len(), 40);
    }

    #[test]
    fn string_values_decode_to_their_bytes() {
        assert_eq!(string_bytes(r#""ada""#).as_deref(), Some(&b"ada"[..]));
        assert_eq!(
            string_bytes(r#""zo\u00eb""#).as_deref(),
            Some("zoë".as_bytes())
        );
        assert_eq!(
            string_bytes(r#""\ud800""#).as_deref(),
            Some(&[0xed, 0xa0, 0x80][..])
        );
        assert_eq!(string_bytes("42"), None);
        assert_eq!(string_bytes("null"), None);
    }

    #[test]
    fn get_reads_the_last_member_of_a_name() {
        let (members, _) = members(r#"{"data":1,"ttl":60,"data":[2]}"#).unwrap();
        assert_eq!(get(&members, "data"), Some("[2]"));
        assert_eq!(get(&members, "ttl"), Some("60"));
        assert_eq!(get(&members, "nope"), None);
    }
}
