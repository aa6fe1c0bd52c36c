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

use std::borrow::Cow;

/// Objects and arrays nest at most this deep.
pub const MAX_DEPTH: usize = 128;

/// Why a body is not session data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyError {
    /// Not JSON at all (or nested deeper than [`MAX_DEPTH`]).
    NotJson,
    /// JSON, but not an object.
    NotObject,
}

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

/// One member of an object: the key as written (quotes included), the key decoded for
/// comparison, and the value as written.
#[derive(Clone, Debug)]
pub struct Member<'a> {
    pub key: &'a str,
    pub name: Cow<'a, [u8]>,
    pub value: &'a str,
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

/// Members with each name once: the last value at the first position, as `JSON.parse` does.
fn resolve_duplicates<'a>(members: &[Member<'a>]) -> Vec<(&'a str, &'a str)> {
    let mut order: Vec<usize> = (0..members.len()).collect();
    order.sort_by(|&a, &b| members[a].name.cmp(&members[b].name).then(a.cmp(&b)));
    let mut kept: Vec<(usize, usize)> = Vec::with_capacity(members.len());
    for index in order {
        match kept.last_mut() {
            Some((first, last)) if members[*first].name == members[index].name => *last = index,
            _ => kept.push((index, index)),
        }
    }
    kept.sort_unstable_by_key(|&(first, _)| first);
    kept.into_iter()
        .map(|(first, last)| (members[first].key, members[last].value))
        .collect()
}

/// The raw items of an array that passed the grammar.
fn items(text: &str) -> Vec<&str> {
    let mut scanner = Scanner::new(text, false);
    let mut items = Vec::new();
    scanner.pos = 1;
    scanner.skip_whitespace();
    if scanner.peek() == Some(b']') {
        return items;
    }
    loop {
        scanner.skip_whitespace();
        let start = scanner.pos;
        if scanner.value().is_err() {
            return items;
        }
        items.push(&text[start..scanner.pos]);
        scanner.skip_whitespace();
        match scanner.peek() {
            Some(b',') => scanner.pos += 1,
            _ => return items,
        }
    }
}

/// The raw value of the last member named `name`: the one JavaScript sees.
pub fn get<'a>(members: &[Member<'a>], name: &str) -> Option<&'a str> {
    members
        .iter()
        .rev()
        .find(|member| *member.name == *name.as_bytes())
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

fn is_whitespace_char(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

struct Scan<'a> {
    is_object: bool,
    members: Vec<Member<'a>>,
    duplicates: bool,
}

/// Checks that `text` is one JSON value; collects the top-level members if asked and the value
/// is an object.
fn scan(text: &str, collect: bool) -> Result<Scan<'_>, BodyError> {
    let mut scanner = Scanner::new(text, collect);
    scanner.skip_whitespace();
    let is_object = scanner.peek() == Some(b'{');
    scanner.value().map_err(|_| BodyError::NotJson)?;
    scanner.skip_whitespace();
    if scanner.pos != text.len() {
        return Err(BodyError::NotJson);
    }
    Ok(Scan {
        is_object,
        members: scanner.members,
        duplicates: scanner.duplicates,
    })
}

/// Where the text stops being JSON; the reason does not matter to callers.
struct Invalid;

type Step = Result<(), Invalid>;

struct Scanner<'a> {
    text: &'a str,
    pos: usize,
    depth: usize,
    /// Collect the members of the outermost object into `members`.
    collect: bool,
    members: Vec<Member<'a>>,
    /// Hashes of the keys of every object open at this point, innermost last.
    key_hashes: Vec<u64>,
    duplicates: bool,
}

impl<'a> Scanner<'a> {
    fn new(text: &'a str, collect: bool) -> Self {
        Self {
            text,
            pos: 0,
            depth: 0,
            collect,
            members: Vec::new(),
            key_hashes: Vec::new(),
            duplicates: false,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Step {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(Invalid)
        }
    }

    fn literal(&mut self, word: &str) -> Step {
        if self.text[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(Invalid)
        }
    }

    /// One value, starting at `pos` (whitespace already skipped).
    fn value(&mut self) -> Step {
        match self.peek().ok_or(Invalid)? {
            b'{' => self.object(),
            b'[' => self.array(),
            b'"' => self.string().map(|_| ()),
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'n' => self.literal("null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(Invalid),
        }
    }

    fn enter(&mut self) -> Step {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Invalid);
        }
        self.pos += 1;
        self.skip_whitespace();
        Ok(())
    }

    fn object(&mut self) -> Step {
        let outermost = self.depth == 0;
        self.enter()?;
        let first_key = self.key_hashes.len();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(());
        }
        loop {
            self.skip_whitespace();
            let key_start = self.pos;
            if self.peek() != Some(b'"') {
                return Err(Invalid);
            }
            let escaped = self.string()?;
            let key = &self.text[key_start..self.pos];
            let inner = &key[1..key.len() - 1];
            let hash = if escaped {
                let mut hash = Fnv::default();
                unescape(inner, |bytes| hash.write(bytes));
                hash.0
            } else {
                Fnv::of(inner.as_bytes())
            };
            self.key_hashes.push(hash);
            self.skip_whitespace();
            self.eat(b':')?;
            self.skip_whitespace();
            let value_start = self.pos;
            self.value()?;
            if outermost && self.collect {
                self.members.push(Member {
                    key,
                    name: decoded_name(inner, escaped),
                    value: &self.text[value_start..self.pos],
                });
            }
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    break;
                }
                _ => return Err(Invalid),
            }
        }
        if !self.duplicates && has_equal(&mut self.key_hashes[first_key..]) {
            self.duplicates = true;
        }
        self.key_hashes.truncate(first_key);
        self.depth -= 1;
        Ok(())
    }

    fn array(&mut self) -> Step {
        self.enter()?;
        if self.peek() == Some(b']') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(());
        }
        loop {
            self.skip_whitespace();
            self.value()?;
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    break;
                }
                _ => return Err(Invalid),
            }
        }
        self.depth -= 1;
        Ok(())
    }

    /// A string, from its opening quote to just past its closing one. Returns whether it holds
    /// an escape. The text is already UTF-8, so only control characters and escapes are checked.
    fn string(&mut self) -> Result<bool, Invalid> {
        let bytes = self.text.as_bytes();
        self.pos += 1;
        let mut escaped = false;
        loop {
            let byte = *bytes.get(self.pos).ok_or(Invalid)?;
            self.pos += 1;
            match byte {
                b'"' => return Ok(escaped),
                b'\\' => {
                    escaped = true;
                    match *bytes.get(self.pos).ok_or(Invalid)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.pos += 1,
                        b'u' => {
                            let hex = bytes.get(self.pos + 1..self.pos + 5).ok_or(Invalid)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return Err(Invalid);
                            }
                            self.pos += 5;
                        }
                        _ => return Err(Invalid),
                    }
                }
                0x00..=0x1f => return Err(Invalid),
                _ => {}
            }
        }
    }

    fn digits(&mut self) -> Step {
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        if self.pos == start {
            Err(Invalid)
        } else {
            Ok(())
        }
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Step {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits()?,
            _ => return Err(Invalid),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            self.digits()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            self.digits()?;
        }
        Ok(())
    }
}

/// Whether two of `hashes` are equal. Reorders them.
fn has_equal(hashes: &mut [u64]) -> bool {
    if hashes.len() <= 16 {
        return hashes
            .iter()
            .enumerate()
            .any(|(i, hash)| hashes[i + 1..].contains(hash));
    }
    hashes.sort_unstable();
    hashes.windows(2).any(|pair| pair[0] == pair[1])
}

/// A key's comparison form: the text itself unless it holds an escape.
fn decoded_name(inner: &str, escaped: bool) -> Cow<'_, [u8]> {
    if !escaped {
        return Cow::Borrowed(inner.as_bytes());
    }
    let mut name = Vec::with_capacity(inner.len());
    unescape(inner, |bytes| name.extend_from_slice(bytes));
    Cow::Owned(name)
}

/// Decodes the inside of a checked string to WTF-8, handing it to `emit` piece by piece: a
/// surrogate pair becomes its code point, a lone surrogate its own three bytes.
fn unescape(inner: &str, mut emit: impl FnMut(&[u8])) {
    let bytes = inner.as_bytes();
    let mut pos = 0;
    while pos < bytes.len() {
        let run = bytes[pos..]
            .iter()
            .position(|&b| b == b'\\')
            .unwrap_or(bytes.len() - pos);
        emit(&bytes[pos..pos + run]);
        pos += run;
        if pos == bytes.len() {
            break;
        }
        let simple = match bytes[pos + 1] {
            b'b' => Some(b'\x08'),
            b'f' => Some(b'\x0c'),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'u' => None,
            other => Some(other),
        };
        if let Some(byte) = simple {
            emit(&[byte]);
            pos += 2;
            continue;
        }
        let unit = hex4(&bytes[pos + 2..pos + 6]);
        pos += 6;
        let mut code_point = u32::from(unit);
        if (0xd800..0xdc00).contains(&unit) && bytes[pos..].starts_with(b"\\u") {
            let low = hex4(&bytes[pos + 2..pos + 6]);
            if (0xdc00..0xe000).contains(&low) {
                code_point = 0x10000 + ((code_point - 0xd800) << 10) + (u32::from(low) - 0xdc00);
                pos += 6;
            }
        }
        let mut buffer = [0u8; 4];
        emit(encode_wtf8(code_point, &mut buffer));
    }
}

fn hex4(hex: &[u8]) -> u16 {
    hex.iter().fold(0, |acc, &digit| {
        let value = (digit as char).to_digit(16).unwrap_or(0) as u16;
        acc << 4 | value
    })
}

/// UTF-8 encoding of any code point up to U+10FFFF, surrogates included (WTF-8).
fn encode_wtf8(code_point: u32, buffer: &mut [u8; 4]) -> &[u8] {
    let cp = code_point;
    if cp < 0x80 {
        buffer[0] = cp as u8;
        &buffer[..1]
    } else if cp < 0x800 {
        buffer[0] = 0xc0 | (cp >> 6) as u8;
        buffer[1] = 0x80 | (cp & 0x3f) as u8;
        &buffer[..2]
    } else if cp < 0x10000 {
        buffer[0] = 0xe0 | (cp >> 12) as u8;
        buffer[1] = 0x80 | ((cp >> 6) & 0x3f) as u8;
        buffer[2] = 0x80 | (cp & 0x3f) as u8;
        &buffer[..3]
    } else {
        buffer[0] = 0xf0 | (cp >> 18) as u8;
        buffer[1] = 0x80 | ((cp >> 12) & 0x3f) as u8;
        buffer[2] = 0x80 | ((cp >> 6) & 0x3f) as u8;
        buffer[3] = 0x80 | (cp & 0x3f) as u8;
        &buffer[..4]
    }
}

/// FNV-1a: a fast hash for spotting duplicate keys. A collision only costs a rewrite that
/// compares keys exactly, so it needs no resistance to crafted input.
#[derive(Clone, Copy)]
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn of(bytes: &[u8]) -> u64 {
        let mut hash = Self::default();
        hash.write(bytes);
        hash.0
    }
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
        assert_eq!(*members[0].name, [0xed, 0xa0, 0x80]);
        assert_eq!(members[0].key, r#""\ud800""#);
    }

    #[test]
    fn keys_compare_by_their_decoded_form() {
        let name = |text: &str| members(text).unwrap().0[0].name.to_vec();
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
