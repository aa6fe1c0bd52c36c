//! Session data on its way to a seal and to the caller: held in Wasm memory, or, when the worker
//! makes a large session itself (a merge's result), in a JavaScript buffer. Wasm memory only
//! grows, so what a request once holds there stays the isolate's for its life; a merge already
//! holds the body and the stored session there, and writing its result outside keeps the largest
//! merge from holding the session a third time (`bench/memory.mjs`, docs/performance.md). The
//! result is sealed from there by WebCrypto and answered from there, never copied in.

use std::borrow::Cow;

use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;
use worker::js_sys::Uint8Array;

use crate::domain::merge::Sink;

#[wasm_bindgen(inline_js = r#"
export function fill(array, at, bytes) {
  array.set(bytes, at);
}
"#)]
extern "C" {
    /// Copies `bytes` (a view of Wasm memory) into `array` from `at`.
    fn fill(array: &Uint8Array, at: u32, bytes: &[u8]);
}

/// Bytes in a JavaScript buffer.
#[derive(Clone, Debug)]
pub struct Outside(pub Uint8Array);

/// The same buffer (not equal contents).
impl PartialEq for Outside {
    fn eq(&self, other: &Self) -> bool {
        JsValue::from(&self.0) == JsValue::from(&other.0)
    }
}

impl Outside {
    fn len(&self) -> usize {
        self.0.length() as usize
    }
}

/// Session data to seal or answer, wherever it is held.
#[derive(Debug)]
pub enum Data<'d> {
    Here(Cow<'d, [u8]>),
    Outside(Outside),
}

#[allow(
    clippy::len_without_is_empty,
    reason = "a length for the size limit; nothing asks whether data is empty"
)]
impl<'d> Data<'d> {
    pub fn len(&self) -> usize {
        self.plain().len()
    }

    pub fn plain(&self) -> Plain<'_> {
        match self {
            Data::Here(bytes) => Plain::Here(bytes),
            Data::Outside(outside) => Plain::Outside(outside),
        }
    }

    /// The bytes in Wasm memory: copied in, if they are outside.
    pub fn into_vec(self) -> Vec<u8> {
        match self {
            Data::Here(bytes) => bytes.into_owned(),
            Data::Outside(outside) => outside.0.to_vec(),
        }
    }

    pub fn into_owned(self) -> Data<'static> {
        match self {
            Data::Here(bytes) => Data::Here(Cow::Owned(bytes.into_owned())),
            Data::Outside(outside) => Data::Outside(outside),
        }
    }
}

impl<'d> From<&'d [u8]> for Data<'d> {
    fn from(bytes: &'d [u8]) -> Self {
        Data::Here(Cow::Borrowed(bytes))
    }
}

/// A view of [`Data`], as a store takes it to seal.
#[derive(Clone, Copy, Debug)]
pub enum Plain<'a> {
    Here(&'a [u8]),
    Outside(&'a Outside),
}

#[allow(
    clippy::len_without_is_empty,
    reason = "a length for the size limit; nothing asks whether data is empty"
)]
impl Plain<'_> {
    pub fn len(&self) -> usize {
        match self {
            Plain::Here(bytes) => bytes.len(),
            Plain::Outside(outside) => outside.len(),
        }
    }

    /// The bytes, in Wasm memory: copied in, if they are outside.
    pub fn here(&self) -> Cow<'_, [u8]> {
        match self {
            Plain::Here(bytes) => Cow::Borrowed(bytes),
            Plain::Outside(outside) => Cow::Owned(outside.0.to_vec()),
        }
    }
}

impl<'a> From<&'a [u8]> for Plain<'a> {
    fn from(bytes: &'a [u8]) -> Self {
        Plain::Here(bytes)
    }
}

/// Where a result of a known length is written, in Wasm memory or outside it.
pub enum Buffer {
    Here(Vec<u8>),
    Outside(Filling),
}

/// A JavaScript buffer of the result's length, filled in order, small pieces gathered first so
/// that each crossing into JavaScript copies at least [`Filling::PIECE`] bytes.
pub struct Filling {
    array: Uint8Array,
    at: u32,
    pending: Vec<u8>,
}

impl Filling {
    const PIECE: usize = 16 * 1024;

    fn flush(&mut self) {
        if !self.pending.is_empty() {
            fill(&self.array, self.at, &self.pending);
            self.at += self.pending.len() as u32;
            self.pending.clear();
        }
    }
}

impl Buffer {
    /// A buffer for `len` bytes in Wasm memory.
    pub fn here(len: usize) -> Self {
        Buffer::Here(Vec::with_capacity(len))
    }

    /// A buffer for `len` bytes outside Wasm memory.
    pub fn outside(len: usize) -> Self {
        Buffer::Outside(Filling {
            array: Uint8Array::new_with_length(len as u32),
            at: 0,
            pending: Vec::with_capacity(Filling::PIECE.min(len)),
        })
    }

    /// What was written.
    pub fn into_data(self) -> Data<'static> {
        match self {
            Buffer::Here(bytes) => Data::Here(Cow::Owned(bytes)),
            Buffer::Outside(mut filling) => {
                filling.flush();
                Data::Outside(Outside(filling.array))
            }
        }
    }
}

impl Sink for Buffer {
    fn put(&mut self, bytes: &[u8]) {
        match self {
            Buffer::Here(out) => out.extend_from_slice(bytes),
            Buffer::Outside(filling) => {
                if filling.pending.len() + bytes.len() > Filling::PIECE {
                    filling.flush();
                }
                if bytes.len() >= Filling::PIECE {
                    fill(&filling.array, filling.at, bytes);
                    filling.at += bytes.len() as u32;
                } else {
                    filling.pending.extend_from_slice(bytes);
                }
            }
        }
    }
}

impl<'a, const N: usize> From<&'a [u8; N]> for Plain<'a> {
    fn from(bytes: &'a [u8; N]) -> Self {
        Plain::Here(bytes)
    }
}

#[cfg(test)]
impl Data<'_> {
    /// The bytes of data held in Wasm memory, as every native test holds them.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Data::Here(bytes) => bytes,
            Data::Outside(_) => panic!("data outside Wasm memory in a native test"),
        }
    }
}
