//! The scanner: checks that a text is one JSON value by RFC 8259, no deeper than [`MAX_DEPTH`],
//! and on the way collects the members of the outermost object and spots duplicate keys.

use std::borrow::Cow;

use crate::domain::json::count::{outer_members, COUNTED_FIRST};
use crate::domain::json::escape::{decoded_name, unescape};

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

/// One member of an object: the key as written (quotes included), the key decoded for
/// comparison ([`Member::name`]), and the value as written. 24 bytes in wasm32: the largest
/// session's table has one per member.
#[derive(Clone, Debug)]
pub struct Member<'a> {
    pub key: &'a str,
    /// The name, when its key has escapes; otherwise the key without its quotes is the name.
    decoded: Option<Box<[u8]>>,
    pub value: &'a str,
}

#[cfg(target_pointer_width = "32")]
const _: () = assert!(std::mem::size_of::<Member<'_>>() == 24);

impl Member<'_> {
    /// The key decoded, for comparison.
    pub fn name(&self) -> &[u8] {
        match &self.decoded {
            Some(name) => name,
            None => &self.key.as_bytes()[1..self.key.len() - 1],
        }
    }
}

pub fn is_whitespace_char(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

pub struct Scan<'a> {
    pub is_object: bool,
    pub members: Vec<Member<'a>>,
    pub duplicates: bool,
}

/// Checks that `text` is one JSON value; collects the top-level members if asked and the value
/// is an object.
pub fn scan(text: &str, collect: bool) -> Result<Scan<'_>, BodyError> {
    let mut scanner = Scanner::new(text, collect);
    if collect && text.len() > COUNTED_FIRST {
        // Made at their size, not grown by doubling: growing holds the old table and one twice
        // its size at once, for the largest session the session's size again in memory.
        let count = outer_members(text);
        scanner.members.reserve_exact(count);
        scanner.key_hashes.reserve_exact(count);
    }
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
                    decoded: match decoded_name(inner, escaped) {
                        Cow::Borrowed(_) => None,
                        Cow::Owned(name) => Some(name.into_boxed_slice()),
                    },
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

/// The raw items of an array that passed the grammar.
pub fn items(text: &str) -> Vec<&str> {
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

    #[test]
    fn outer_members_counts_what_the_scan_collects() {
        for text in [
            "{}",
            " { } ",
            r#"{"a":1}"#,
            r#"{"a":1,"b":[1,2,{"c":3,"d":4}],"e":"x,y","f\",":{"g":[],"h":{}}}"#,
            r#"{ "a" : "\\" , "b" : "\"," }"#,
        ] {
            let collected = scan(text, true).unwrap().members.len();
            assert_eq!(outer_members(text), collected, "{text}");
        }
    }

    #[test]
    fn a_large_objects_table_is_made_at_its_size() {
        let members: Vec<String> = (0..5000)
            .map(|i| format!(r#""k{i}":"{}""#, "v".repeat(60)))
            .collect();
        let text = format!("{{{}}}", members.join(","));
        assert!(text.len() > COUNTED_FIRST);
        let table = scan(&text, true).unwrap().members;
        assert_eq!((table.len(), table.capacity()), (5000, 5000));
    }
}
