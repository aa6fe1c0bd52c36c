//! AES-256-GCM through the platform's WebCrypto, for data larger than what is sealed in Wasm:
//! one call each way, the key imported in the same promise.

use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;
use worker::js_sys::{ArrayBuffer, Promise, Uint8Array};

use std::future::Future;

use crate::domain::error::Error;
use crate::store::data::{Buffer, Data, Outside, Plain};
use crate::store::promise::settled_of;
use crate::store::seal::Aead;

/// From this size on, data to seal is written outside Wasm memory ([`Aead::buffer`]): where
/// holding it there once more would count (Wasm memory only grows). Smaller data is written in
/// Wasm, with no crossing per piece written.
pub const OUTSIDE: usize = 256 * 1024;

#[wasm_bindgen(inline_js = r#"
const subtle = crypto.subtle;
// `raw`, `iv`, `additionalData` and `head` are views of Wasm memory, copied before any await.
// `data` is the caller's to give (a copy of Wasm memory, or a buffer made outside it) and is not
// read again after the call: WebCrypto copies it.
export async function seal(raw, iv, additionalData, data) {
  const key = subtle.importKey('raw', raw, 'AES-GCM', false, ['encrypt']);
  const params = { name: 'AES-GCM', iv: iv.slice(), additionalData: additionalData.slice() };
  return subtle.encrypt(params, await key, data);
}
// The same, answering the record: `head`, then ciphertext and tag.
export async function sealRecord(raw, iv, additionalData, data, head) {
  const start = head.slice();
  const sealed = new Uint8Array(await seal(raw, iv, additionalData, data));
  const record = new Uint8Array(start.length + sealed.length);
  record.set(start);
  record.set(sealed, start.length);
  return record;
}
export async function open(raw, iv, additionalData, data) {
  const key = subtle.importKey('raw', raw, 'AES-GCM', false, ['decrypt']);
  const params = { name: 'AES-GCM', iv: iv.slice(), additionalData: additionalData.slice() };
  const copy = data.slice();
  return subtle.decrypt(params, await key, copy).catch(() => null);
}
"#)]
extern "C" {
    /// Import and encrypt, in one promise.
    fn seal(raw: &[u8], iv: &[u8], aad: &[u8], data: &Uint8Array) -> Promise;
    /// [`seal`], answering the whole record (`head`, then ciphertext and tag) as a
    /// `Uint8Array`.
    #[wasm_bindgen(js_name = sealRecord)]
    fn seal_record(raw: &[u8], iv: &[u8], aad: &[u8], data: &Uint8Array, head: &[u8]) -> Promise;
    /// Import and decrypt, in one promise; `null` when the tag does not match.
    fn open(raw: &[u8], iv: &[u8], aad: &[u8], data: &[u8]) -> Promise;
}

/// The runtime's WebCrypto.
#[derive(Clone, Copy, Default)]
pub struct WebCrypto;

async fn settle(promise: Promise) -> Result<JsValue, Error> {
    settled_of(&promise)
        .await
        .map_err(|err| Error::Internal(format!("webcrypto: {err:?}")))
}

fn bytes_of(buffer: JsValue) -> Vec<u8> {
    Uint8Array::new(&ArrayBuffer::from(buffer)).to_vec()
}

impl Aead for WebCrypto {
    /// A record of data from [`OUTSIDE`] bytes on is made and answered outside Wasm memory.
    async fn encrypt(
        &self,
        key: &[u8; 32],
        nonce: &[u8],
        aad: &[u8],
        plain: Plain<'_>,
        mut record: Vec<u8>,
    ) -> Result<Data<'static>, Error> {
        let whole = plain.len() >= OUTSIDE;
        let sealing = {
            // Data in Wasm is copied out for the call (the JavaScript copied it from a view
            // before); data outside is handed over as it is.
            let copy;
            let data = match plain {
                Plain::Here(bytes) => {
                    copy = Uint8Array::from(bytes);
                    &copy
                }
                Plain::Outside(outside) => &outside.0,
            };
            match whole {
                true => seal_record(key, nonce, aad, data, &record),
                false => seal(key, nonce, aad, data),
            }
        };
        if whole {
            drop(record);
            return Ok(Data::Outside(Outside(settle(sealing).await?.into())));
        }
        let sealed = Uint8Array::new(&ArrayBuffer::from(settle(sealing).await?));
        let at = record.len();
        record.reserve_exact(sealed.length() as usize);
        record.resize(at + sealed.length() as usize, 0);
        sealed.copy_to(&mut record[at..]);
        Ok(Data::Here(record.into()))
    }

    fn decrypt(
        &self,
        key: &[u8; 32],
        nonce: &[u8],
        aad: &[u8],
        sealed: &[u8],
    ) -> impl Future<Output = Result<Option<Vec<u8>>, Error>> + 'static {
        let opening = open(key, nonce, aad, sealed);
        async move {
            let plain = settle(opening).await?;
            Ok((!plain.is_null()).then(|| bytes_of(plain)))
        }
    }

    /// Outside Wasm memory from [`OUTSIDE`] bytes on.
    fn buffer(&self, len: usize) -> Buffer {
        match len >= OUTSIDE {
            true => Buffer::outside(len),
            false => Buffer::here(len),
        }
    }
}
