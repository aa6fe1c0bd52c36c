//! Sealed session data: what both backends store instead of the data itself.
//!
//! Each session has a random data key. Its data is encrypted under that key with AES-256-GCM,
//! with a fresh nonce on every write and the session's storage key as associated data, so a
//! value altered, or copied onto another session's key, does not open. The data key is stored
//! wrapped (AES-256-GCM again) under the session's [`WrapKey`], which only a holder of the id can
//! compute: a dump of the store holds no key that opens anything.
//!
//! ```text
//! "s1" | n | n × (nonce 12 | wrapped data key 32 + tag 16) | nonce 12 | ciphertext | tag 16
//! ```
//!
//! There are `n` slots so that a later version can let two ids reach one session for a while (a
//! rotation grace window: the data key wrapped under each id's key). This version writes one
//! and opens any. A write keeps the data key and slots of the record it read and only
//! re-encrypts the data, so a session's data key lives as long as the session.
//!
//! Where the work runs, measured (`npm run bench`): each WebCrypto call costs a promise and a
//! key import, about 50 µs of CPU here, whatever its size, while AES-GCM in Wasm (RustCrypto,
//! constant-time) runs at about 60 MB/s. So the 32-byte data keys are wrapped and unwrapped in
//! Wasm, data up to [`IN_WASM`] bytes is sealed in Wasm too (about 30 µs at the limit), and
//! larger data goes to the platform's WebCrypto (native AES-GCM) in one call each way. Both
//! make the same bytes: a record sealed by one opens with the other.

use aes_gcm::aead::{Aead as _, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;
use worker::js_sys::{ArrayBuffer, Promise, Uint8Array};
use worker::wasm_bindgen_futures::JsFuture;

use crate::domain::derive::{DeviceKey, StorageKey, WrapKey};
use crate::domain::device::MAX_ENCODED_BYTES;
use crate::domain::error::Error;
use crate::domain::id::SessionId;
use crate::domain::subject::Subject;

const MAGIC: &[u8; 2] = b"s1";
const NONCE: usize = 12;
const TAG: usize = 16;
const SLOT: usize = NONCE + 32 + TAG;
/// At most this many slots are read: a record claiming more is not one of ours.
const MAX_SLOTS: usize = 4;
const SLOT_LABEL: &[u8] = b"session-state/v1/slot\0";
const DATA_LABEL: &[u8] = b"session-state/v1/data\0";

/// Data up to this many bytes is sealed and opened in Wasm; larger, by [`Aead`].
pub const IN_WASM: usize = 2048;

/// AES-256-GCM on data larger than [`IN_WASM`], as a platform offers it: raw keys in, one call
/// per operation.
#[allow(
    async_fn_in_trait,
    reason = "Workers run single-threaded; futures need not be Send"
)]
pub trait Aead {
    /// Ciphertext and tag.
    async fn encrypt(
        &self,
        key: &[u8; 32],
        nonce: &[u8],
        aad: &[u8],
        plain: &[u8],
    ) -> Result<Vec<u8>, Error>;
    /// `None` when the tag does not match (the wrong key, or altered bytes).
    async fn decrypt(
        &self,
        key: &[u8; 32],
        nonce: &[u8],
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Option<Vec<u8>>, Error>;
}

/// AES-256-GCM in Wasm (or natively), from RustCrypto.
pub fn soft_encrypt(
    key: &[u8; 32],
    nonce: &[u8],
    aad: &[u8],
    plain: &[u8],
) -> Result<Vec<u8>, Error> {
    let payload = Payload { msg: plain, aad };
    Aes256Gcm::new(key.into())
        .encrypt(Nonce::from_slice(nonce), payload)
        .map_err(|_| Error::Internal("aes-gcm: data too large to seal".into()))
}

pub fn soft_decrypt(key: &[u8; 32], nonce: &[u8], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    let payload = Payload { msg: sealed, aad };
    Aes256Gcm::new(key.into())
        .decrypt(Nonce::from_slice(nonce), payload)
        .ok()
}

/// What opening a record learnt, for sealing its next version: the data key, and the slots as
/// stored.
#[derive(Clone)]
pub struct Opened {
    key: [u8; 32],
    slots: Vec<u8>,
}

/// Seals and opens session records, large data through an [`Aead`].
#[derive(Clone, Copy, Default)]
pub struct Sealer<A>(pub A);

fn associated(label: &[u8], key: &StorageKey) -> Vec<u8> {
    [label, key.bytes()].concat()
}

fn random<const N: usize>() -> Result<[u8; N], Error> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)
        .map_err(|err| Error::Internal(format!("no randomness for a seal: {err}")))?;
    Ok(bytes)
}

impl<A: Aead> Sealer<A> {
    /// The data of the record `bytes` stored under `key`, opened with `wrap`, or `None` when it
    /// does not open: not sealed by this worker, altered, moved from another key, or another
    /// session's.
    pub async fn open(
        &self,
        wrap: &WrapKey,
        key: &StorageKey,
        bytes: &[u8],
    ) -> Result<Option<(Opened, Vec<u8>)>, Error> {
        let Some((slots, nonce, sealed)) = split(bytes) else {
            return Ok(None);
        };
        let slot_aad = associated(SLOT_LABEL, key);
        let data_key = slots.chunks(SLOT).find_map(|slot| {
            let (slot_nonce, wrapped) = slot.split_at(NONCE);
            let raw = soft_decrypt(&wrap.0, slot_nonce, &slot_aad, wrapped)?;
            <[u8; 32]>::try_from(raw.as_slice()).ok()
        });
        let Some(data_key) = data_key else {
            return Ok(None);
        };
        let aad = associated(DATA_LABEL, key);
        let data = if sealed.len() - TAG <= IN_WASM {
            soft_decrypt(&data_key, nonce, &aad, sealed)
        } else {
            self.0.decrypt(&data_key, nonce, &aad, sealed).await?
        };
        let Some(data) = data else {
            return Ok(None);
        };
        let opened = Opened {
            key: data_key,
            slots: slots.to_vec(),
        };
        Ok(Some((opened, data)))
    }

    /// The session data of `id` in the record `bytes` stored under its `key`, or
    /// [`Error::Unreadable`] (404 to the caller, an integrity line in the log) when the record
    /// does not open or is not text.
    pub async fn open_session(
        &self,
        id: &SessionId,
        key: &StorageKey,
        bytes: &[u8],
    ) -> Result<(Opened, String), Error> {
        let unreadable =
            || Error::Unreadable(format!("integrity: session {} does not open", id.short()));
        let opened = self.open(&WrapKey::of(id), key, bytes).await?;
        let (opened, data) = opened.ok_or_else(unreadable)?;
        let data = String::from_utf8(data).map_err(|_| unreadable())?;
        Ok((opened, data))
    }

    /// `data` sealed for `key`: under the data key of `previous` (the record this write
    /// replaces), or a new one wrapped under `wrap`.
    pub async fn seal(
        &self,
        wrap: &WrapKey,
        key: &StorageKey,
        data: &[u8],
        previous: Option<&Opened>,
    ) -> Result<(Opened, Vec<u8>), Error> {
        let opened = match previous {
            Some(previous) => previous.clone(),
            None => {
                let raw = random::<32>()?;
                let slot_nonce = random::<NONCE>()?;
                let slot_aad = associated(SLOT_LABEL, key);
                let wrapped = soft_encrypt(&wrap.0, &slot_nonce, &slot_aad, &raw)?;
                Opened {
                    key: raw,
                    slots: [&slot_nonce[..], &wrapped].concat(),
                }
            }
        };
        let nonce = random::<NONCE>()?;
        let aad = associated(DATA_LABEL, key);
        let sealed = if data.len() <= IN_WASM {
            soft_encrypt(&opened.key, &nonce, &aad, data)?
        } else {
            self.0.encrypt(&opened.key, &nonce, &aad, data).await?
        };
        let count = (opened.slots.len() / SLOT) as u8;
        let mut bytes = Vec::with_capacity(3 + opened.slots.len() + NONCE + sealed.len());
        bytes.extend_from_slice(MAGIC);
        bytes.push(count);
        bytes.extend_from_slice(&opened.slots);
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&sealed);
        Ok((opened, bytes))
    }
}

const DEVICE_LABEL: &[u8] = b"session-state/v1/device\0";

/// Device info sealed under its subject's [`DeviceKey`]: `"d1" | nonce 12 | ciphertext | tag`,
/// with the subject's hash as associated data, so an entry copied under another subject does
/// not open. Device info is at most [`MAX_ENCODED_BYTES`] (far below [`IN_WASM`]), so it is
/// sealed in Wasm, as small session data is. It is not bound to the session's handle: a
/// rotated session's entry carries its device over sealed, without the key.
pub fn seal_device(key: &DeviceKey, subject: &Subject, device: &[u8]) -> Result<Vec<u8>, Error> {
    let nonce = random::<NONCE>()?;
    let aad = [DEVICE_LABEL, subject.hex().as_bytes()].concat();
    let sealed = soft_encrypt(&key.0, &nonce, &aad, device)?;
    Ok([&DEVICE_MAGIC[..], &nonce, &sealed].concat())
}

/// The device info in `bytes`, or `None` when it does not open (another subject's, altered, or
/// sealed under another `SUBJECT_KEY`).
pub fn open_device(key: &DeviceKey, subject: &Subject, bytes: &[u8]) -> Option<Vec<u8>> {
    let rest = bytes.strip_prefix(DEVICE_MAGIC)?;
    if rest.len() < NONCE + TAG {
        return None;
    }
    let (nonce, sealed) = rest.split_at(NONCE);
    let aad = [DEVICE_LABEL, subject.hex().as_bytes()].concat();
    soft_decrypt(&key.0, nonce, &aad, sealed)
}

const DEVICE_MAGIC: &[u8; 2] = b"d1";

/// The longest sealed device info: what an index entry must have room for.
pub const MAX_SEALED_DEVICE: usize = 2 + NONCE + MAX_ENCODED_BYTES + TAG;

/// Slots, nonce and sealed data, if `bytes` has the shape of a record.
fn split(bytes: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let rest = bytes.strip_prefix(MAGIC)?;
    let (&count, rest) = rest.split_first()?;
    let count = usize::from(count);
    if count == 0 || count > MAX_SLOTS || rest.len() < count * SLOT + NONCE + TAG {
        return None;
    }
    let (slots, rest) = rest.split_at(count * SLOT);
    let (nonce, sealed) = rest.split_at(NONCE);
    Some((slots, nonce, sealed))
}

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
        plain: &[u8],
    ) -> Result<Vec<u8>, Error> {
        Ok(bytes_of(settle(seal(key, nonce, aad, plain)).await?))
    }

    async fn decrypt(
        &self,
        key: &[u8; 32],
        nonce: &[u8],
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Option<Vec<u8>>, Error> {
        let plain = settle(open(key, nonce, aad, sealed)).await?;
        Ok((!plain.is_null()).then(|| bytes_of(plain)))
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::domain::id::SessionId;
    use crate::store::memory::{run, SoftAead};

    fn id(n: u8) -> SessionId {
        SessionId::from_random_bytes([n; 16])
    }

    fn sealed(n: u8, data: &[u8]) -> Vec<u8> {
        let (wrap, key) = (WrapKey::of(&id(n)), StorageKey::of(&id(n)));
        run(Sealer(SoftAead).seal(&wrap, &key, data, None))
            .unwrap()
            .1
    }

    fn open(n: u8, key: u8, bytes: &[u8]) -> Option<Vec<u8>> {
        let (wrap, key) = (WrapKey::of(&id(n)), StorageKey::of(&id(key)));
        let opened = run(Sealer(SoftAead).open(&wrap, &key, bytes)).unwrap();
        opened.map(|(_, data)| data)
    }

    #[test]
    fn a_sealed_record_opens_with_its_id_under_its_key_only() {
        let bytes = sealed(1, br#"{"canary":"c4n4ry"}"#);
        assert_eq!(
            open(1, 1, &bytes).as_deref(),
            Some(&br#"{"canary":"c4n4ry"}"#[..])
        );
        assert!(!bytes.windows(6).any(|w| w == b"c4n4ry"), "no plaintext");
        assert_eq!(open(2, 1, &bytes), None, "another id's wrap key");
        assert_eq!(open(1, 2, &bytes), None, "moved onto another session's key");
        assert_eq!(open(2, 2, &bytes), None, "moved, opened as that session");
        for at in [0, 2, 3, 20, 3 + SLOT, bytes.len() - 1] {
            let mut altered = bytes.clone();
            altered[at] ^= 1;
            assert_eq!(open(1, 1, &altered), None, "byte {at} altered");
        }
        for len in [0, 2, 3, 3 + SLOT + NONCE + TAG - 1] {
            assert_eq!(open(1, 1, &bytes[..len]), None, "cut to {len}");
        }
        assert_eq!(open(1, 1, br#"{"a":1}"#), None, "plain data");
    }

    #[test]
    fn every_write_has_a_fresh_nonce_and_keeps_the_data_key() {
        let (wrap, key) = (WrapKey::of(&id(1)), StorageKey::of(&id(1)));
        let sealer = Sealer(SoftAead);
        let (opened, first) = run(sealer.seal(&wrap, &key, b"{}", None)).unwrap();
        let (_, second) = run(sealer.seal(&wrap, &key, b"{}", Some(&opened))).unwrap();
        let (_, third) = run(sealer.seal(&wrap, &key, b"{}", None)).unwrap();
        let slots = 3..3 + SLOT;
        assert_eq!(first[slots.clone()], second[slots.clone()], "same slot");
        assert_ne!(
            first[slots.clone()],
            third[slots],
            "a new session's own key"
        );
        assert_ne!(first[3 + SLOT..], second[3 + SLOT..], "a fresh nonce");
        assert_eq!(open(1, 1, &second).as_deref(), Some(&b"{}"[..]));
        assert_eq!(first.len(), 3 + SLOT + NONCE + 2 + TAG);
    }

    /// Large data goes through the platform's AES-GCM, and opens the same way.
    #[test]
    fn data_past_the_wasm_limit_seals_and_opens_alike() {
        for len in [IN_WASM - 1, IN_WASM, IN_WASM + 1, 60_000] {
            let data = vec![b'x'; len];
            let bytes = sealed(1, &data);
            assert_eq!(bytes.len(), 3 + SLOT + NONCE + len + TAG);
            assert_eq!(open(1, 1, &bytes), Some(data), "{len}");
            assert_eq!(open(1, 2, &bytes), None, "{len}, moved");
        }
    }

    #[test]
    fn device_info_opens_with_its_subjects_key_only() {
        let ada = Subject::new(b"ada", None).unwrap();
        let bob = Subject::new(b"bob", None).unwrap();
        let key = DeviceKey::of(b"ada", None);
        let sealed = seal_device(&key, &ada, b"Ada's phone").unwrap();
        assert_eq!(sealed.len(), 2 + NONCE + 11 + TAG);
        assert!(!sealed.windows(5).any(|w| w == b"phone"), "no plaintext");
        assert_eq!(
            open_device(&key, &ada, &sealed).as_deref(),
            Some(&b"Ada's phone"[..])
        );
        assert_eq!(
            open_device(&DeviceKey::of(b"bob", None), &ada, &sealed),
            None
        );
        assert_eq!(
            open_device(&key, &bob, &sealed),
            None,
            "copied under another subject"
        );
        assert_eq!(
            open_device(&DeviceKey::of(b"ada", Some(b"k")), &ada, &sealed),
            None
        );
        let mut altered = sealed.clone();
        altered[20] ^= 1;
        assert_eq!(open_device(&key, &ada, &altered), None);
        assert_eq!(
            open_device(&key, &ada, &sealed[..2 + NONCE + TAG - 1]),
            None
        );
        assert_ne!(
            seal_device(&key, &ada, b"x").unwrap(),
            seal_device(&key, &ada, b"x").unwrap()
        );
    }

    #[test]
    fn any_slot_that_opens_gives_the_data_key() {
        let bytes = sealed(1, b"{}");
        let (_, slot) = split(&bytes)
            .map(|(slots, _, _)| ((), slots.to_vec()))
            .unwrap();
        // A slot another id wrapped comes first: it does not open, the next one does.
        let other = split(&sealed(2, b"{}")).unwrap().0.to_vec();
        let two = [&b"s1\x02"[..], &other, &slot, &bytes[3 + SLOT..]].concat();
        assert_eq!(open(1, 1, &two).as_deref(), Some(&b"{}"[..]));
        let claims_too_many = [&b"s1\x05"[..], &bytes[3..]].concat();
        assert_eq!(open(1, 1, &claims_too_many), None);
    }
}
