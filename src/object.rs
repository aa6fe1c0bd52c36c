//! Session data: a JSON object, handled as text wherever possible.
//!
//! Reads return the stored text untouched, and replacing data stores the validated request body
//! as it came. Only merges parse, and only one level deep at a time: an [`Object`] keeps its
//! members in document order with every value left as raw JSON, so merging ten keys into a 60 KiB
//! session scans the session once and copies it once, and key order is kept as JavaScript keeps it.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

/// Why a body is not session data.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    /// Not JSON at all.
    NotJson,
    /// JSON, but not an object.
    NotObject,
}

/// Checks that `body` is one JSON object, without building it, and hands it back as text.
/// UTF-8 is checked first: skipping over a string does not validate it.
pub fn validate_object(body: Vec<u8>) -> Result<String, BodyError> {
    let text = String::from_utf8(body).map_err(|_| BodyError::NotJson)?;
    serde_json::from_str::<IgnoredAny>(&text).map_err(|_| BodyError::NotJson)?;
    match text.trim_start().as_bytes().first() {
        Some(b'{') => Ok(text),
        _ => Err(BodyError::NotObject),
    }
}

/// A JSON object's members in document order, values as raw JSON text.
#[derive(Debug, Default)]
pub struct Object<'a> {
    members: Vec<(String, &'a RawValue)>,
}

impl<'a> Object<'a> {
    /// Parses an object; anything else (including valid JSON that is not an object) is an error.
    pub fn parse(text: &'a str) -> Result<Self, BodyError> {
        let raw: &RawValue = serde_json::from_str(text).map_err(|_| BodyError::NotJson)?;
        Self::from_raw(raw).ok_or(BodyError::NotObject)
    }

    /// Parses stored data to merge into. Data that is valid JSON but not an object (the old
    /// worker stored any JSON) counts as `{}`, as RFC 7396 treats a non-object target.
    pub fn parse_or_empty(text: &'a str) -> Result<Self, BodyError> {
        match Self::parse(text) {
            Err(BodyError::NotObject) => Ok(Self::default()),
            other => other,
        }
    }

    /// The members of `raw` if it is an object.
    fn from_raw(raw: &'a RawValue) -> Option<Self> {
        if !raw.get().starts_with('{') {
            return None;
        }
        let mut de = serde_json::Deserializer::from_str(raw.get());
        de.deserialize_map(MembersVisitor).ok()
    }

    /// The shallow merge `user-mgmt` relies on: each top-level key of `patch` replaces the one
    /// in `self`, as `{...session, ...patch}` does in JavaScript.
    pub fn merge_shallow(&mut self, patch: &Object<'a>) {
        for (key, value) in &patch.members {
            upsert(&mut self.members, key, *value);
        }
    }

    /// JSON Merge Patch (RFC 7396) of an object patch: nested objects merge recursively and
    /// `null` removes a key. Returns the merged object as JSON text.
    pub fn merge_patch(&self, patch: &Object<'_>) -> Vec<u8> {
        let mut merged: Vec<(String, Member)> = self
            .members
            .iter()
            .map(|(k, v)| (k.clone(), Member::Raw(v)))
            .collect();
        for (key, value) in &patch.members {
            let position = merged.iter().position(|(k, _)| k == key);
            if value.get() == "null" {
                merged.retain(|(k, _)| k != key);
                continue;
            }
            let new = match Object::from_raw(value) {
                Some(nested_patch) => {
                    let target = position
                        .and_then(|i| match &merged[i].1 {
                            Member::Raw(raw) => Object::from_raw(raw),
                            Member::Owned(_) => None,
                        })
                        .unwrap_or_default();
                    Member::Owned(target.merge_patch(&nested_patch))
                }
                None => Member::Raw(value),
            };
            upsert(&mut merged, key, new);
        }
        write_members(merged.iter().map(|(k, m)| (k.as_str(), m.json())))
    }
}

impl<'a> Object<'a> {
    /// The raw value of the last member named `key` (the one JavaScript would see).
    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.members
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| *v)
    }

    /// The object as compact JSON text (values byte for byte as they came).
    pub fn to_json(&self) -> Vec<u8> {
        write_members(
            self.members
                .iter()
                .map(|(k, v)| (k.as_str(), v.get().as_bytes())),
        )
    }
}

/// Sets `key`, keeping its position if present. Later duplicates of the key, which JSON allows
/// and JavaScript resolves to the last one, are dropped so that the new value wins.
fn upsert<V>(members: &mut Vec<(String, V)>, key: &str, value: V) {
    match members.iter().position(|(k, _)| k == key) {
        Some(first) => {
            members[first].1 = value;
            let mut index = 0;
            members.retain(|(k, _)| {
                index += 1;
                index - 1 <= first || k != key
            });
        }
        None => members.push((key.to_owned(), value)),
    }
}

/// A member value during a merge patch: untouched raw text, or a merged object built anew.
enum Member<'a> {
    Raw(&'a RawValue),
    Owned(Vec<u8>),
}

impl Member<'_> {
    fn json(&self) -> &[u8] {
        match self {
            Member::Raw(raw) => raw.get().as_bytes(),
            Member::Owned(json) => json,
        }
    }
}

fn write_members<'m>(members: impl Iterator<Item = (&'m str, &'m [u8])>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.push(b'{');
    for (i, (key, value)) in members.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // Serializing a string into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, key);
        out.push(b':');
        out.extend_from_slice(value);
    }
    out.push(b'}');
    out
}

struct MembersVisitor;

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = Object<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some((key, value)) = map.next_entry::<String, &'de RawValue>()? {
            members.push((key, value));
        }
        Ok(Object { members })
    }
}

impl<'de> de::Deserialize<'de> for Object<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(MembersVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shallow(target: &str, patch: &str) -> String {
        let mut target = Object::parse(target).unwrap();
        target.merge_shallow(&Object::parse(patch).unwrap());
        String::from_utf8(target.to_json()).unwrap()
    }

    fn merge_patch(target: &str, patch: &str) -> serde_json::Value {
        let merged = Object::parse(target)
            .unwrap()
            .merge_patch(&Object::parse(patch).unwrap());
        serde_json::from_slice(&merged).unwrap()
    }

    #[test]
    fn validates_bodies() {
        let check = |body: &[u8]| validate_object(body.to_vec());
        let object = " {\"a\": [1, {\"b\": null}]} ";
        assert_eq!(check(object.as_bytes()).as_deref(), Ok(object));
        assert_eq!(check(b"{}").as_deref(), Ok("{}"));
        assert_eq!(check(b""), Err(BodyError::NotJson));
        assert_eq!(check(b"{\"a\":"), Err(BodyError::NotJson));
        assert_eq!(check(b"{} {}"), Err(BodyError::NotJson));
        assert_eq!(check(b"\xff"), Err(BodyError::NotJson));
        assert_eq!(check(b"{\"a\":\"\xff\"}"), Err(BodyError::NotJson));
        for not_object in ["[]", "1", "\"{}\"", "null", "true"] {
            assert_eq!(check(not_object.as_bytes()), Err(BodyError::NotObject));
        }
    }

    #[test]
    fn parse_refuses_non_objects() {
        assert!(matches!(Object::parse("[1]"), Err(BodyError::NotObject)));
        assert!(matches!(Object::parse("{"), Err(BodyError::NotJson)));
    }

    #[test]
    fn shallow_merge_replaces_top_level_keys_in_place_and_appends_new_ones() {
        assert_eq!(
            shallow(r#"{"a":1,"b":{"x":1},"c":3}"#, r#"{"b":{"y":2},"d":4}"#),
            r#"{"a":1,"b":{"y":2},"c":3,"d":4}"#
        );
    }

    #[test]
    fn shallow_merge_keeps_null_values_like_object_spread() {
        assert_eq!(shallow(r#"{"a":1}"#, r#"{"a":null}"#), r#"{"a":null}"#);
    }

    #[test]
    fn shallow_merge_resolves_duplicate_keys_to_the_new_value() {
        assert_eq!(
            shallow(r#"{"a":1,"b":2,"a":3}"#, r#"{"a":9}"#),
            r#"{"a":9,"b":2}"#
        );
    }

    #[test]
    fn raw_values_are_kept_byte_for_byte() {
        assert_eq!(
            shallow(r#"{ "k" : [1, 2.50, "\u00e9"] }"#, r#"{"n":"\"q\""}"#),
            r#"{"k":[1, 2.50, "\u00e9"],"n":"\"q\""}"#
        );
    }

    #[test]
    fn keys_are_escaped_when_written() {
        assert_eq!(shallow(r#"{"a\"b\\c":1}"#, "{}"), r#"{"a\"b\\c":1}"#);
    }

    /// RFC 7396 on any two JSON documents, built from the parts the API uses: a patch that is
    /// not an object replaces the target (the API refuses such bodies before this point).
    fn merge_patch_documents(target: &str, patch: &str) -> Vec<u8> {
        let raw: &RawValue = serde_json::from_str(patch).unwrap();
        match Object::from_raw(raw) {
            Some(patch) => Object::parse_or_empty(target).unwrap().merge_patch(&patch),
            None => raw.get().as_bytes().to_vec(),
        }
    }

    /// RFC 7396, Appendix A: every example, in order.
    #[test]
    fn rfc7396_appendix_a() {
        let cases = [
            (r#"{"a":"b"}"#, r#"{"a":"c"}"#, r#"{"a":"c"}"#),
            (r#"{"a":"b"}"#, r#"{"b":"c"}"#, r#"{"a":"b","b":"c"}"#),
            (r#"{"a":"b"}"#, r#"{"a":null}"#, r#"{}"#),
            (r#"{"a":"b","b":"c"}"#, r#"{"a":null}"#, r#"{"b":"c"}"#),
            (r#"{"a":["b"]}"#, r#"{"a":"c"}"#, r#"{"a":"c"}"#),
            (r#"{"a":"c"}"#, r#"{"a":["b"]}"#, r#"{"a":["b"]}"#),
            (
                r#"{"a":{"b":"c"}}"#,
                r#"{"a":{"b":"d","c":null}}"#,
                r#"{"a":{"b":"d"}}"#,
            ),
            (r#"{"a":[{"b":"c"}]}"#, r#"{"a":[1]}"#, r#"{"a":[1]}"#),
            (r#"["a","b"]"#, r#"["c","d"]"#, r#"["c","d"]"#),
            (r#"{"a":"b"}"#, r#"["c"]"#, r#"["c"]"#),
            (r#"{"a":"foo"}"#, "null", "null"),
            (r#"{"a":"foo"}"#, r#""bar""#, r#""bar""#),
            (r#"{"e":null}"#, r#"{"a":1}"#, r#"{"e":null,"a":1}"#),
            (r#"[1,2]"#, r#"{"a":"b","c":null}"#, r#"{"a":"b"}"#),
            (
                r#"{}"#,
                r#"{"a":{"bb":{"ccc":null}}}"#,
                r#"{"a":{"bb":{}}}"#,
            ),
        ];
        for (target, patch, expected) in cases {
            let merged = merge_patch_documents(target, patch);
            let merged: serde_json::Value = serde_json::from_slice(&merged).unwrap();
            let expected: serde_json::Value = serde_json::from_str(expected).unwrap();
            assert_eq!(merged, expected, "{target} + {patch}");
        }
    }

    #[test]
    fn merge_patch_keeps_order_and_merges_deeply() {
        let target =
            r#"{"z":1,"user":{"name":"a","roles":["x"],"prefs":{"t":"dark","l":"en"}},"a":2}"#;
        let patch = r#"{"user":{"prefs":{"l":null,"tz":"UTC"},"roles":["y"]},"z":null}"#;
        let merged = Object::parse(target)
            .unwrap()
            .merge_patch(&Object::parse(patch).unwrap());
        assert_eq!(
            String::from_utf8(merged).unwrap(),
            r#"{"user":{"name":"a","roles":["y"],"prefs":{"t":"dark","tz":"UTC"}},"a":2}"#
        );
    }

    #[test]
    fn merge_patch_replaces_a_non_object_with_the_patched_empty_object() {
        assert_eq!(
            merge_patch(r#"{"a":5}"#, r#"{"a":{"b":null,"c":1}}"#),
            serde_json::json!({"a": {"c": 1}})
        );
    }
}
