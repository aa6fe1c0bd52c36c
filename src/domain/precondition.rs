//! Versions as entity tags: the `ETag` of a session version, and the `If-Match` precondition of
//! a write, read by the grammar of RFC 9110 (section 13.1.1).
//!
//! A value that does not follow the grammar is refused (`400 invalid_if_match`) rather than read
//! as "matches nothing": a precondition that cannot be read must never be ignored, and must not
//! look like a lost race either. Comparison is strong: a weak tag never matches, and a version
//! is matched by its exact tag only, so `"01"` and `"+1"` do not match version 1.

use crate::domain::error::Error;

/// The `If-Match` precondition of a write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IfMatch {
    /// `*`: any current version.
    Any,
    /// The versions named by strong tags; tags in any other form are well-formed but never match.
    Versions(Vec<u64>),
}

impl IfMatch {
    /// Parses the header: `"*"` or a comma-separated list of entity tags (`"3"`, `W/"x"`), empty
    /// list elements allowed as RFC 9110 asks of recipients (section 5.6.1).
    pub fn parse(header: &str) -> Result<Self, Error> {
        let value = header.trim_matches(is_ows);
        if value == "*" {
            return Ok(IfMatch::Any);
        }
        let mut versions = Vec::new();
        let mut rest = value;
        loop {
            rest = rest.trim_start_matches(is_ows);
            if rest.is_empty() {
                return Ok(IfMatch::Versions(versions));
            }
            if let Some(after) = rest.strip_prefix(',') {
                rest = after;
                continue;
            }
            let (weak, tag) = match rest.strip_prefix("W/") {
                Some(tag) => (true, tag),
                None => (false, rest),
            };
            let opaque = tag.strip_prefix('"').ok_or(Error::InvalidIfMatch)?;
            let end = opaque
                .find(|c: char| !is_etagc(c))
                .ok_or(Error::InvalidIfMatch)?;
            if !opaque[end..].starts_with('"') {
                return Err(Error::InvalidIfMatch);
            }
            if let Some(version) = (!weak).then(|| version(&opaque[..end])).flatten() {
                versions.push(version);
            }
            rest = opaque[end + 1..].trim_start_matches(is_ows);
            match rest.strip_prefix(',') {
                Some(after) => rest = after,
                None if rest.is_empty() => {}
                None => return Err(Error::InvalidIfMatch),
            }
        }
    }

    pub fn allows(&self, version: u64) -> bool {
        match self {
            IfMatch::Any => true,
            IfMatch::Versions(versions) => versions.contains(&version),
        }
    }
}

/// The version an opaque tag names, if it is one in the form [`etag`] writes.
fn version(opaque: &str) -> Option<u64> {
    let canonical = !opaque.is_empty()
        && opaque.bytes().all(|b| b.is_ascii_digit())
        && (opaque == "0" || !opaque.starts_with('0'));
    canonical.then(|| opaque.parse().ok()).flatten()
}

/// `OWS`: optional whitespace, spaces and tabs.
fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// `etagc = %x21 / %x23-7E / obs-text`. Header bytes reach the worker as Latin-1, so obs-text
/// (bytes 0x80 to 0xFF) arrives as U+0080 to U+00FF.
fn is_etagc(c: char) -> bool {
    matches!(c, '\u{21}' | '\u{23}'..='\u{7e}' | '\u{80}'..='\u{ff}')
}

/// The `ETag` of a session version.
pub fn etag(version: u64) -> String {
    format!("\"{version}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(header: &str) -> IfMatch {
        IfMatch::parse(header).unwrap_or_else(|err| panic!("{header:?}: {err:?}"))
    }

    #[test]
    fn strong_tags_name_versions() {
        assert_eq!(parse(" * "), IfMatch::Any);
        assert_eq!(parse("\"3\""), IfMatch::Versions(vec![3]));
        assert_eq!(parse("\"3\", \"4\""), IfMatch::Versions(vec![3, 4]));
        assert_eq!(parse("\"3\",\t\"4\""), IfMatch::Versions(vec![3, 4]));
        assert_eq!(parse("\"0\""), IfMatch::Versions(vec![0]));
        assert_eq!(parse("W/\"0\", \"1\""), IfMatch::Versions(vec![1]));
        assert_eq!(etag(12), "\"12\"");
        assert!(parse("\"12\"").allows(12) && !parse("\"12\"").allows(1));
        assert!(IfMatch::Any.allows(7));
    }

    #[test]
    fn well_formed_tags_of_other_forms_never_match() {
        for never in [
            "W/\"3\"",
            "\"01\"",
            "\"+1\"",
            "\"\"",
            "\"-1\"",
            "\"1e0\"",
            "\"a,b\"",
            "\"é\"",
            "\"99999999999999999999999\"",
            "",
            ",",
            " , ,",
        ] {
            assert_eq!(parse(never), IfMatch::Versions(vec![]), "{never:?}");
        }
        assert_eq!(parse("\"x,1\", \"2\""), IfMatch::Versions(vec![2]));
        assert_eq!(parse(", \"1\",, \"2\" ,"), IfMatch::Versions(vec![1, 2]));
    }

    #[test]
    fn values_outside_the_grammar_are_refused() {
        for bad in [
            "cYD5,",
            "}",
            "3",
            "\"3",
            "3\"",
            "\"3\"x",
            "\"3\" \"4\"",
            "w/\"3\"",
            "W/3",
            "W/",
            "**",
            "*, \"1\"",
            "\"1\", *",
            "\"a\"b\"",
            "\"a b\"",
            "\"1 \"",
            "\"\u{7f}\"",
            "\"\u{100}\"",
            "\"\t\"",
        ] {
            assert!(
                matches!(IfMatch::parse(bad), Err(Error::InvalidIfMatch)),
                "{bad:?} was read"
            );
        }
    }
}
