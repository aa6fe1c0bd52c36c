//! A statement's parameters and rows as they cross between Wasm and JavaScript: in one string
//! each way, with the blobs beside it, rather than a call across the boundary for every value
//! (and several for each value's type).
//!
//! Each value is written as:
//! - `n`: null;
//! - `i<digits>;`: an integer;
//! - `t<length>:<text>`: text, its length in UTF-16 code units (what JavaScript's `length`
//!   counts), so that neither side escapes anything;
//! - `b`: the next of the blobs given beside the string.
//!
//! Each row of an answer ends with a newline. The JavaScript half is in
//! [`crate::store::durable::storage`].

use crate::domain::error::Error;
use crate::store::data::Outside;

use super::Value;

/// A blob parameter, given beside the string.
#[derive(Debug, PartialEq)]
pub enum Blob {
    Here(Vec<u8>),
    Outside(Outside),
}

/// `params` as one string, and their blobs in order, for the JavaScript half to bind.
pub fn params(params: Vec<Value>) -> (String, Vec<Blob>) {
    let mut text = String::new();
    let mut blobs = Vec::new();
    for value in params {
        match value {
            Value::Null => text.push('n'),
            Value::Integer(n) => {
                text.push('i');
                text.push_str(&n.to_string());
                text.push(';');
            }
            Value::Text(value) => {
                text.push('t');
                text.push_str(&value.encode_utf16().count().to_string());
                text.push(':');
                text.push_str(&value);
            }
            Value::Blob(bytes) => {
                text.push('b');
                blobs.push(Blob::Here(bytes));
            }
            Value::BlobOutside(outside) => {
                text.push('b');
                blobs.push(Blob::Outside(outside));
            }
        }
    }
    (text, blobs)
}

fn garbled(what: &str) -> Error {
    Error::Internal(format!(
        "durable object storage: a row that does not read: {what}"
    ))
}

/// The rows the JavaScript half wrote, each blob taken from `blob` in order.
pub fn rows(
    text: &str,
    mut blob: impl FnMut() -> Result<Vec<u8>, Error>,
) -> Result<Vec<Vec<Value>>, Error> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut rest = text;
    while let Some(tag) = rest.chars().next() {
        rest = &rest[tag.len_utf8()..];
        match tag {
            '\n' => rows.push(std::mem::take(&mut row)),
            'n' => row.push(Value::Null),
            'b' => row.push(Value::Blob(blob()?)),
            'i' => {
                let (digits, after) = rest.split_once(';').ok_or_else(|| garbled("integer"))?;
                row.push(Value::Integer(digits.parse().map_err(|_| garbled(digits))?));
                rest = after;
            }
            't' => {
                let (length, after) = rest.split_once(':').ok_or_else(|| garbled("text"))?;
                let units: usize = length.parse().map_err(|_| garbled("text's length"))?;
                let end = utf16_end(after, units).ok_or_else(|| garbled("text's length"))?;
                row.push(Value::Text(after[..end].to_owned()));
                rest = &after[end..];
            }
            _ => return Err(garbled("a value of no known kind")),
        }
    }
    match row.is_empty() {
        true => Ok(rows),
        false => Err(garbled("a row without its end")),
    }
}

/// The byte offset in `text` after its first `units` UTF-16 code units, if that falls between
/// characters.
fn utf16_end(text: &str, units: usize) -> Option<usize> {
    let mut counted = 0;
    for (at, c) in text.char_indices() {
        if counted == units {
            return Some(at);
        }
        counted += c.len_utf16();
    }
    (counted == units).then_some(text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str, blobs: &[&[u8]]) -> Result<Vec<Vec<Value>>, Error> {
        let mut blobs = blobs.iter();
        rows(text, || {
            blobs
                .next()
                .map(|b| b.to_vec())
                .ok_or_else(|| garbled("no blob"))
        })
    }

    #[test]
    fn parameters_are_written_each_by_its_kind() {
        let (text, blobs) = params(vec![
            Value::Null,
            Value::Integer(-42),
            Value::Text("a:b;c\nd".into()),
            Value::Blob(vec![1, 2]),
            Value::Text("é😀".into()),
            Value::Integer(i64::MAX),
        ]);
        assert_eq!(text, "ni-42;t7:a:b;c\ndbt3:é😀i9223372036854775807;");
        assert_eq!(blobs, vec![Blob::Here(vec![1, 2])]);
        assert_eq!(params(vec![]), (String::new(), vec![]));
    }

    #[test]
    fn rows_read_back_what_javascript_writes() {
        // What the JavaScript half writes for two rows, texts with the separators in them and
        // characters of one, two and four bytes (one and two UTF-16 units).
        let text = "i1;t5:a;b:\n\nbn\nt4:é😀xi-7;\nbbt0:\n";
        let rows = read(text, &[b"one", b"", b"three"]).expect("reads");
        assert_eq!(
            rows,
            vec![
                vec![Value::Integer(1), Value::Text("a;b:\n".into())],
                vec![Value::Blob(b"one".to_vec()), Value::Null],
                vec![Value::Text("é😀x".into()), Value::Integer(-7)],
                vec![
                    Value::Blob(vec![]),
                    Value::Blob(b"three".to_vec()),
                    Value::Text(String::new())
                ],
            ]
        );
        assert_eq!(read("", &[]).expect("no rows"), Vec::<Vec<Value>>::new());
        assert_eq!(read("\n", &[]).expect("a row"), vec![vec![]]);
    }

    #[test]
    fn what_does_not_read_is_an_error_not_a_guess() {
        for text in [
            "i1",       // no end of the integer
            "i1.5;\n",  // not an integer
            "t9:abc\n", // longer than what is left
            "t1:😀\n",  // ends inside a character of two units
            "tx:a\n",   // no length
            "x\n",      // no such kind
            "é\n",      // nor one of two bytes
            "n",        // no end of the row
            "b\n",      // a blob not given
            "i99999999999999999999;\n",
        ] {
            assert!(
                matches!(read(text, &[]), Err(Error::Internal(_))),
                "{text:?}"
            );
        }
    }

    #[test]
    fn what_is_written_reads_back() {
        let values = vec![
            Value::Integer(0),
            Value::Text("🚀 x\n".into()),
            Value::Null,
            Value::Blob(vec![9; 3]),
            Value::Integer(i64::MIN),
        ];
        let (mut text, blobs) = params(values.clone());
        text.push('\n');
        let blobs: Vec<&[u8]> = blobs
            .iter()
            .map(|b| match b {
                Blob::Here(bytes) => bytes.as_slice(),
                Blob::Outside(_) => unreachable!("no data outside Wasm natively"),
            })
            .collect();
        assert_eq!(read(&text, &blobs).expect("reads"), vec![values]);
    }
}
