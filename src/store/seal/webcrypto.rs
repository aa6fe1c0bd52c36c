//! AES-256-GCM through the platform's WebCrypto, for data larger than what is sealed in Wasm:
//! one call each way, the key imported in the same promise.

use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;
use worker::js_sys::{ArrayBuffer, Promise, Uint8Array};
use worker::wasm_bindgen_futures::JsFuture;

use std::future::Future;

use crate::domain::error::Error;
use crate::store::data::{Buffer, Plain};
use crate::store::seal::Aead;

/// From this size on, data to seal is written outside Wasm memory ([`Aead::buffer`]): where
/// holding it there once more would count (Wasm memory only grows). Smaller data is written in
/// Wasm, with no crossing per piece written.
pub const OUTSIDE: usize = 256 * 1024;

#[wasm_bindgen(inline_js = r#"
const subtle = crypto.subtle;
// Each takes views of Wasm memory: WebCrypto copies them when called, before any await.
export async function seal(raw, iv, additionalData, data) {
  const key = subtle.importKey('raw', raw, 'AES-GCM', false, ['encrypt']);
  const params = { name: 'AES-GCM', iv: iv.slice(), additionalData: additionalData.slice() };
  const copy = data.slice();
  return subtle.encrypt(params, await key, copy);
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
    fn seal(raw: &[u8], iv: &[u8], aad: &[u8], data: &[u8]) -> Promise;
    /// The same, of data held in JavaScript.
    #[wasm_bindgen(js_name = seal)]
    fn seal_outside(raw: &[u8], iv: &[u8], aad: &[u8], data: &Uint8Array) -> Promise;
    /// Import and decrypt, in one promise; `null` when the tag does not match.
    fn open(raw: &[u8], iv: &[u8], aad: &[u8], data: &[u8]) -> Promise;
}

/// The runtime's WebCrypto.
#[derive(Clone, Copy, Default)]
pub struct WebCrypto;

async fn settle(promise: Promise) -> Result<JsValue, Error> {
    JsFuture::from(promise)
        .await
        .map_err(|err| Error::Internal(format!("webcrypto: {err:?}")))
}

fn bytes_of(buffer: JsValue) -> Vec<u8> {
    Uint8Array::new(&ArrayBuffer::from(buffer)).to_vec()
}

impl Aead for WebCrypto {
    async fn encrypt(
        &self,
        key: &[u8; 32],
        nonce: &[u8],
        aad: &[u8],
        plain: Plain<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let sealing = match plain {
            Plain::Here(bytes) => seal(key, nonce, aad, bytes),
            Plain::Outside(outside) => seal_outside(key, nonce, aad, &outside.0),
        };
        let sealed = Uint8Array::new(&ArrayBuffer::from(settle(sealing).await?));
        let at = out.len();
        out.resize(at + sealed.length() as usize, 0);
        sealed.copy_to(&mut out[at..]);
        Ok(())
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
