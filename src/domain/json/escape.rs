//! String escapes: a JSON string's inside decoded to WTF-8 (UTF-8 that also encodes lone
//! surrogates), the form in which two keys are equal exactly when their UTF-16 forms are.

use std::borrow::Cow;

/// A key's comparison form: the text itself unless it holds an escape.
pub fn decoded_name(inner: &str, escaped: bool) -> Cow<'_, [u8]> {
    if !escaped {
        return Cow::Borrowed(inner.as_bytes());
    }
    let mut name = Vec::with_capacity(inner.len());
    unescape(inner, |bytes| name.extend_from_slice(bytes));
    Cow::Owned(name)
}

/// Decodes the inside of a checked string to WTF-8, handing it to `emit` piece by piece: a
/// surrogate pair becomes its code point, a lone surrogate its own three bytes.
pub fn unescape(inner: &str, mut emit: impl FnMut(&[u8])) {
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
