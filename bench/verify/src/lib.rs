//! RustCrypto's ES256 and RS256 verification behind two exports, for `run.mjs` to measure
//! against WebCrypto. Inputs are written into the module's memory by the caller; nothing here is
//! part of the worker.

use p256::ecdsa::{signature::Verifier, Signature, VerifyingKey};
use rsa::{pkcs1v15, BigUint, RsaPublicKey};

#[no_mangle]
pub extern "C" fn verify_es256(ptr: *const u8, len: usize) -> u32 {
    let b = unsafe { core::slice::from_raw_parts(ptr, len) };
    let (key, rest) = b.split_at(65);
    let (sig, msg) = rest.split_at(64);
    let Ok(key) = VerifyingKey::from_sec1_bytes(key) else { return 2 };
    let Ok(sig) = Signature::from_slice(sig) else { return 3 };
    key.verify(msg, &sig).is_ok() as u32
}

#[no_mangle]
pub extern "C" fn verify_rs256(ptr: *const u8, len: usize) -> u32 {
    let b = unsafe { core::slice::from_raw_parts(ptr, len) };
    let (n, rest) = b.split_at(256);
    let (sig, msg) = rest.split_at(256);
    let Ok(key) = RsaPublicKey::new(BigUint::from_bytes_be(n), BigUint::from(65537u32)) else { return 2 };
    let vk = pkcs1v15::VerifyingKey::<sha2::Sha256>::new(key);
    let Ok(sig) = pkcs1v15::Signature::try_from(sig) else { return 3 };
    use rsa::signature::Verifier as _;
    vk.verify(msg, &sig).is_ok() as u32
}
