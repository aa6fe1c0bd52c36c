//! Device info, as a subject's index entry holds it: sealed under the subject's device key
//! (`d2`), or, from the version before, under the earlier one (`d1`), opened and sealed anew on
//! sight.

use crate::domain::derive::DeviceKey;
use crate::domain::device::MAX_ENCODED_BYTES;
use crate::domain::error::Error;
use crate::domain::subject::Subject;
use crate::store::seal::{random, soft_decrypt, soft_encrypt, NONCE, TAG};

/// Associated data of device info, before the subject's hash.
pub(super) const DEVICE_LABEL: &[u8] = b"session-state/v2/device\0";
pub(super) const DEVICE_MAGIC: &[u8; 2] = b"d2";
/// Device info sealed by the version before, under [`DeviceKey::legacy`], with the subject's
/// hash in hex after this label as associated data.
pub(super) const LEGACY_DEVICE_LABEL: &[u8] = b"session-state/v1/device\0";
pub(super) const LEGACY_DEVICE_MAGIC: &[u8; 2] = b"d1";

/// Device info sealed under its subject's [`DeviceKey`]: `"d2" | nonce 12 | ciphertext | tag`,
/// with a label and the subject's hash as associated data, so an entry copied under another
/// subject does not open. Device info is at most [`MAX_ENCODED_BYTES`] (below
/// [`IN_WASM`]), so it is sealed in Wasm, as small session data is. It is not bound to the
/// session's handle: a rotated session's entry carries its device over sealed, without the key.
///
/// [`IN_WASM`]: super::IN_WASM
pub fn seal_device(key: &DeviceKey, subject: &Subject, device: &[u8]) -> Result<Vec<u8>, Error> {
    let nonce = random::<NONCE>()?;
    let aad = [DEVICE_LABEL, subject.bytes()].concat();
    let sealed = soft_encrypt(&key.now, &nonce, &aad, device)?;
    Ok([&DEVICE_MAGIC[..], &nonce, &sealed].concat())
}

/// The device info in `bytes`, or `None` when it does not open (another subject's, altered, or
/// sealed under another `SUBJECT_KEY`). Opens what the version before sealed (`d1`) too.
pub fn open_device(key: &DeviceKey, subject: &Subject, bytes: &[u8]) -> Option<Vec<u8>> {
    let (key, aad, rest) = match bytes.strip_prefix(DEVICE_MAGIC) {
        Some(rest) => (&key.now, [DEVICE_LABEL, subject.bytes()].concat(), rest),
        None => {
            let rest = bytes.strip_prefix(LEGACY_DEVICE_MAGIC)?;
            let aad = [LEGACY_DEVICE_LABEL, subject.hex().as_bytes()].concat();
            (&key.legacy, aad, rest)
        }
    };
    if rest.len() < NONCE + TAG {
        return None;
    }
    let (nonce, sealed) = rest.split_at(NONCE);
    soft_decrypt(key, nonce, &aad, sealed)
}

/// [`open_device`], and, for device info sealed under the earlier device key, the same sealed
/// anew under this version's: what a listing writes back (rewritten on sight).
pub fn open_device_anew(
    key: &DeviceKey,
    subject: &Subject,
    bytes: &[u8],
) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    let plain = open_device(key, subject, bytes)?;
    let anew = match bytes.starts_with(LEGACY_DEVICE_MAGIC) {
        true => seal_device(key, subject, &plain).ok(),
        false => None,
    };
    Some((plain, anew))
}

/// The longest sealed device info: what an index entry must have room for.
pub const MAX_SEALED_DEVICE: usize = 2 + NONCE + MAX_ENCODED_BYTES + TAG;
