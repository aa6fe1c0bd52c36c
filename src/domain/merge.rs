//! Merging a patch into session data, both raw JSON text held to [`crate::domain::json`]'s grammar.
//!
//! A merge finds each target member's name among the patch's: the patch's names are sorted once
//! and looked up by binary search, so merging m keys into n costs (n + m) log m, and no input can
//! make it slower (there is no hash table to flood). Members the patch does not name are copied
//! as written, in their order; new keys follow in the patch's order.

use crate::domain::json::{self, BodyError, JsonObject, Member};

/// How `PATCH /add` combines the body with the stored data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Merge {
    /// Top-level keys replace top-level keys (`{...session, ...body}`), as the old worker did.
    Shallow,
    /// RFC 7396 JSON Merge Patch (`application/merge-patch+json`).
    MergePatch,
}

/// Merges `patch` into the stored object `target`. `target` is checked here: stored data that is
/// not an object under the grammar is an error, never merged into as if it were empty. Duplicate
/// keys it holds (the old worker stored anything) are resolved first, at every depth.
pub fn merge(target: &str, patch: &JsonObject, how: Merge) -> Result<Vec<u8>, BodyError> {
    merge_into(target, patch, how, Vec::with_capacity)
}

/// [`merge`], written to the sink `output` makes for the result's length. The result is written
/// twice: a first pass counts its bytes, so that the output is made once at its exact size, never
/// at the size of both inputs, and may be made outside Wasm memory (for the largest session, each
/// of those is the session's size again in memory).
pub fn merge_into<S: Sink>(
    target: &str,
    patch: &JsonObject,
    how: Merge,
    output: impl FnOnce(usize) -> S,
) -> Result<S, BodyError> {
    let (members, duplicates) = json::members(target)?;
    if duplicates {
        return merge_into(&json::normalized(target), patch, how, output);
    }
    Ok(match how {
        Merge::Shallow => {
            let (patch, _) = json::members(patch.as_str())?;
            let names = Names::of(&patch);
            let mut length = Length(0);
            shallow(&members, &patch, &names, &mut length);
            let mut out = output(length.0);
            shallow(&members, &patch, &names, &mut out);
            out
        }
        Merge::MergePatch => {
            let mut length = Length(0);
            patch_object(&members, patch.as_str(), &mut length);
            let mut out = output(length.0);
            patch_object(&members, patch.as_str(), &mut out);
            out
        }
    })
}

/// Where a merge writes: the output, or a count of its bytes.
pub trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// The length of what would be written.
struct Length(usize);

impl Sink for Length {
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }
}

/// `{...target, ...patch}`.
fn shallow(
    target: &[Member<'_>],
    patch: &[Member<'_>],
    names: &Names<'_, '_>,
    out: &mut impl Sink,
) {
    let mut used = vec![false; patch.len()];
    let mut members = Writer::open(out);
    for member in target {
        let value = match names.find(member.name()) {
            Some(index) => {
                used[index] = true;
                patch[index].value
            }
            None => member.value,
        };
        members.member(member.key).put(value.as_bytes());
    }
    for (member, _) in patch.iter().zip(&used).filter(|(_, used)| !**used) {
        members.member(member.key).put(member.value.as_bytes());
    }
    members.close();
}

/// RFC 7396 `MergePatch(Target, Patch)` on raw values, written to `out`. `target` is `None` for
/// a member that does not exist; any value may be given, as the RFC defines it for any: a patch
/// that is not an object replaces the target, a target that is not an object counts as `{}`.
/// Both must already be checked and free of duplicates.
fn merge_patch(target: Option<&str>, patch: &str, out: &mut impl Sink) {
    if !json::is_object(patch) {
        out.put(patch.as_bytes());
        return;
    }
    let target = target
        .filter(|target| json::is_object(target))
        .and_then(|target| json::members(target).ok())
        .map(|(members, _)| members)
        .unwrap_or_default();
    patch_object(&target, patch, out);
}

/// `MergePatch` of an object patch into the members of an object target.
fn patch_object(target: &[Member<'_>], patch: &str, out: &mut impl Sink) {
    let patch = json::members(patch)
        .map(|(members, _)| members)
        .unwrap_or_default();
    let names = Names::of(&patch);
    let mut used = vec![false; patch.len()];
    let mut members = Writer::open(out);
    for member in target {
        match names.find(member.name()) {
            None => members.member(member.key).put(member.value.as_bytes()),
            Some(index) => {
                used[index] = true;
                if patch[index].value != "null" {
                    merge_patch(
                        Some(member.value),
                        patch[index].value,
                        members.member(member.key),
                    );
                }
            }
        }
    }
    for (member, _) in patch.iter().zip(&used).filter(|(_, used)| !**used) {
        if member.value != "null" {
            merge_patch(None, member.value, members.member(member.key));
        }
    }
    members.close();
}

/// The names of a patch, sorted for lookups. Names are unique (the patch is a [`JsonObject`]).
struct Names<'m, 'a> {
    members: &'m [Member<'a>],
    sorted: Vec<usize>,
}

impl<'m, 'a> Names<'m, 'a> {
    fn of(members: &'m [Member<'a>]) -> Self {
        let sorted = json::by_name(members);
        Self { members, sorted }
    }

    /// The index of the member named `name`.
    fn find(&self, name: &[u8]) -> Option<usize> {
        self.sorted
            .binary_search_by(|&index| self.members[index].name().cmp(name))
            .ok()
            .map(|position| self.sorted[position])
    }
}

/// Writes an object member by member.
struct Writer<'o, S: Sink> {
    out: &'o mut S,
    empty: bool,
}

impl<'o, S: Sink> Writer<'o, S> {
    fn open(out: &'o mut S) -> Self {
        out.put(b"{");
        Self { out, empty: true }
    }

    /// Writes `key:` (the key as written, quotes included) and hands back the output for the value.
    fn member(&mut self, key: &str) -> &mut S {
        if !self.empty {
            self.out.put(b",");
        }
        self.empty = false;
        self.out.put(key.as_bytes());
        self.out.put(b":");
        self.out
    }

    fn close(self) {
        self.out.put(b"}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch(text: &str) -> JsonObject {
        JsonObject::from_bytes(text.as_bytes().to_vec()).unwrap()
    }

    fn merged(target: &str, body: &str, how: Merge) -> String {
        String::from_utf8(merge(target, &patch(body), how).unwrap()).unwrap()
    }

    #[test]
    fn shallow_merge_replaces_top_level_keys_in_place_and_appends_new_ones() {
        assert_eq!(
            merged(
                r#"{"a":1,"b":{"x":1},"c":3}"#,
                r#"{"b":{"y":2},"d":4}"#,
                Merge::Shallow
            ),
            r#"{"a":1,"b":{"y":2},"c":3,"d":4}"#
        );
    }

    #[test]
    fn the_output_is_allocated_at_its_exact_size() {
        let target = r#"{"a":"0123456789","b":{"x":[1,2]},"c":3}"#;
        for (body, how) in [
            (r#"{"b":1,"d":"new"}"#, Merge::Shallow),
            (r#"{"b":{"y":2,"x":null},"a":null}"#, Merge::MergePatch),
        ] {
            let out = merge(target, &patch(body), how).unwrap();
            assert_eq!(out.capacity(), out.len(), "{body}");
        }
    }

    #[test]
    fn shallow_merge_keeps_null_values_like_object_spread() {
        assert_eq!(
            merged(r#"{"a":1}"#, r#"{"a":null}"#, Merge::Shallow),
            r#"{"a":null}"#
        );
    }

    #[test]
    fn raw_values_are_kept_byte_for_byte() {
        assert_eq!(
            merged(
                r#"{ "k" : [1, 2.50, "\u00e9"] }"#,
                r#"{"n":"\"q\""}"#,
                Merge::Shallow
            ),
            r#"{"k":[1, 2.50, "\u00e9"],"n":"\"q\""}"#
        );
    }

    #[test]
    fn a_lone_surrogate_key_is_merged_not_lost() {
        let target = r#"{"\ud800":1,"o":{"k":2}}"#;
        assert_eq!(
            merged(target, r#"{"zz":1}"#, Merge::Shallow),
            r#"{"\ud800":1,"o":{"k":2},"zz":1}"#
        );
        assert_eq!(
            merged(target, r#"{"\ud800":2,"o":{"j":3}}"#, Merge::MergePatch),
            r#"{"\ud800":2,"o":{"k":2,"j":3}}"#
        );
    }

    #[test]
    fn keys_match_by_their_decoded_form() {
        assert_eq!(
            merged("{\"é\":1}", r#"{"\u00e9":2}"#, Merge::Shallow),
            "{\"é\":2}"
        );
        assert_eq!(
            merged(
                r#"{"\ud83d\ude00":{"a":1}}"#,
                "{\"\u{1F600}\":{\"b\":2}}",
                Merge::MergePatch
            ),
            r#"{"\ud83d\ude00":{"a":1,"b":2}}"#
        );
    }

    #[test]
    fn duplicate_keys_in_stored_data_resolve_as_javascript_reads_them() {
        let target = r#"{"a":{"x":1},"a":{"y":2}}"#;
        assert_eq!(
            merged(target, r#"{"a":{"z":3}}"#, Merge::MergePatch),
            r#"{"a":{"y":2,"z":3}}"#
        );
        assert_eq!(
            merged(target, r#"{"b":1}"#, Merge::Shallow),
            r#"{"a":{"y":2},"b":1}"#
        );
        assert_eq!(
            merged(r#"{"n":{"k":1,"k":2}}"#, r#"{"m":1}"#, Merge::Shallow),
            r#"{"n":{"k":2},"m":1}"#,
            "nested duplicates go too: the output never holds one"
        );
    }

    #[test]
    fn stored_data_that_is_not_an_object_is_refused_not_replaced() {
        for target in ["{not json", "", "[1,2]", "\"text\"", "null", "{\"a\":1}}"] {
            assert!(
                merge(target, &patch("{\"a\":1}"), Merge::Shallow).is_err(),
                "{target}"
            );
            assert!(
                merge(target, &patch("{\"a\":1}"), Merge::MergePatch).is_err(),
                "{target}"
            );
        }
    }

    fn rfc7396(target: &str, patch: &str) -> serde_json::Value {
        let mut out = Vec::new();
        merge_patch(Some(target), patch, &mut out);
        serde_json::from_slice(&out).unwrap()
    }

    /// RFC 7396, Appendix A: every example, in order, through the production function.
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
            let expected: serde_json::Value = serde_json::from_str(expected).unwrap();
            assert_eq!(rfc7396(target, patch), expected, "{target} + {patch}");
        }
    }

    #[test]
    fn merge_patch_keeps_order_and_merges_deeply() {
        let target =
            r#"{"z":1,"user":{"name":"a","roles":["x"],"prefs":{"t":"dark","l":"en"}},"a":2}"#;
        let body = r#"{"user":{"prefs":{"l":null,"tz":"UTC"},"roles":["y"]},"z":null}"#;
        assert_eq!(
            merged(target, body, Merge::MergePatch),
            r#"{"user":{"name":"a","roles":["y"],"prefs":{"t":"dark","tz":"UTC"}},"a":2}"#
        );
    }

    #[test]
    fn merge_patch_replaces_a_non_object_with_the_patched_empty_object() {
        assert_eq!(
            merged(r#"{"a":5}"#, r#"{"a":{"b":null,"c":1}}"#, Merge::MergePatch),
            r#"{"a":{"c":1}}"#
        );
    }

    #[test]
    fn large_merges_match_a_reference_merge() {
        let object = |prefix: &str, n: usize| {
            let members: Vec<String> = (0..n).map(|i| format!("\"{prefix}{i}\":{i}")).collect();
            format!("{{{}}}", members.join(","))
        };
        let target = object("k", 3000);
        let body = object("k", 2000).replace("\"k1\":1", "\"k1\":null") + "";
        let body = body.trim_end_matches('}').to_string() + ",\"new\":true}";
        let ours: serde_json::Value =
            serde_json::from_slice(&merge(&target, &patch(&body), Merge::MergePatch).unwrap())
                .unwrap();
        let mut reference: serde_json::Value = serde_json::from_str(&target).unwrap();
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        for (key, value) in body.as_object().unwrap() {
            let map = reference.as_object_mut().unwrap();
            if value.is_null() {
                map.remove(key);
            } else {
                map.insert(key.clone(), value.clone());
            }
        }
        assert_eq!(ours, reference);
    }
}
