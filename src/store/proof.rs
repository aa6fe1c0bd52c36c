//! Device-binding proofs checked with the runtime's WebCrypto (see `domain::binding`).
//!
//! WebCrypto rather than RustCrypto's `p256` and `rsa`: it adds nothing to the Wasm, so nothing
//! to the Worker's startup, and verifies natively; a proof is checked at registration and at
//! each refresh (once per `BOUND_SESSION_ID_SECONDS` per browser), so its one promise and key
//! import per call (about 50 µs here, as for the seal's WebCrypto calls) cost nothing that
//! matters. docs/dbsc.md has the measurement.

use wasm_bindgen::prelude::wasm_bindgen;
use worker::js_sys::Promise;

use crate::domain::binding::{Alg, Jwk, Verify};
use crate::domain::error::Error;
use crate::store::promise::settled_of;

#[wasm_bindgen(inline_js = r#"
const subtle = crypto.subtle;
const IMPORT = {
  ES256: { name: 'ECDSA', namedCurve: 'P-256' },
  RS256: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
};
const CHECK = {
  ES256: { name: 'ECDSA', hash: 'SHA-256' },
  RS256: { name: 'RSASSA-PKCS1-v1_5' },
};
// A key WebCrypto will not import, or a signature of the wrong shape, verifies nothing.
export async function verify(alg, jwk, signed, signature) {
  try {
    const key = await subtle.importKey('jwk', JSON.parse(jwk), IMPORT[alg], false, ['verify']);
    return await subtle.verify(CHECK[alg], key, signature.slice(), signed.slice());
  } catch {
    return false;
  }
}
"#)]
extern "C" {
    /// Import the key and verify, in one promise: `true` or `false`.
    fn verify(alg: &str, jwk: &str, signed: &[u8], signature: &[u8]) -> Promise;
}

/// The runtime's WebCrypto, as a proof checker.
#[derive(Clone, Copy, Default)]
pub struct WebCryptoVerify;

impl Verify for WebCryptoVerify {
    async fn verify(
        &self,
        alg: Alg,
        jwk: &Jwk,
        signed: &[u8],
        signature: &[u8],
    ) -> Result<bool, Error> {
        let promise = verify(alg.name(), jwk.as_str(), signed, signature);
        let verdict = settled_of(&promise)
            .await
            .map_err(|err| Error::Internal(format!("webcrypto verify: {err:?}")))?;
        Ok(verdict.as_bool() == Some(true))
    }
}
