//! Sealed session records: what both backends store instead of the data itself.
//!
//! A record binds three things together, so that nothing written to the store can change one
//! without the record failing to open: the session's data (encrypted), its lifecycle (in the
//! clear, authenticated) and the storage key it is stored under (authenticated). A store writer
//! can delete a record, or put back one it captured earlier (which then ends at its own sealed
//! expiry, see docs/security.md), but cannot make a session live longer, move it to
//! another subject or another key, or make it read as a session of the old worker.
//!
//! ```text
//! s3 (written): "s3" | lifecycle 82 | n | n × (salt 32 | wrapped data key 32 + tag 16) | nonce 12 | ciphertext | tag 16
//! r3 (written): "r3" and the rest as s3, its data a [`Retirement`]: what a renewed id leaves
//! s2, r2 (read): as s3 and r3, with the lifecycle's first 73 bytes only
//! s1 (read):    "s1" | n | n × (nonce 12 | wrapped data key 32 + tag 16) | nonce 12 | ciphertext | tag 16
//! lifecycle:    created_at | updated_at | expires_at | version | ttl (0: none), each u64 big-endian
//!               | 1 and the subject's hash 32, or 0 and 32 zeros
//!               | authenticated at, u64 big-endian | authentication level 1
//! ```
//!
//! The authentication is sealed like the rest of the lifecycle, so a store writer can no more
//! make a session look freshly or strongly authenticated than make it live longer. An `s2` or
//! `r2` record, written before the authentication was kept, reads as level 1 at its creation;
//! its next write is `s3`. (A rollback to a version before `s3` would not open `s3` records:
//! upgrades lose no session, downgrades may.)
//!
//! **Every AES-GCM key encrypts exactly one message.** Each write draws a fresh data key (256
//! random bits) for the data, and wraps it, per slot, under a key of its own: HMAC-SHA-256 keyed
//! by the id's [`WrapKey`] over a label and 32 random bytes (the slot's salt, whose first 12 are
//! the nonce). So NIST SP 800-38D's bound of 2³² random nonces per key is never approached: a key
//! would encrypt a second message only if two 256-bit random values collided. The data's
//! associated data is a label, the storage key and everything before the data's nonce (the
//! lifecycle and the slots), so the format's magic is bound to the rest; a slot's is a label
//! and the storage key.
//!
//! There are `n` slots so that a later version can let two ids reach one session at once. This
//! version writes one and opens any: a renewed id reaches its successor through the retirement
//! it leaves under its own key (`r3`), sealed under the old id, which names the successor to a
//! holder of the old id and to nobody else.
//!
//! `s1`, the format of the version before, kept its lifecycle beside the record (KV metadata, or
//! the object's columns), where a store writer could change it, and kept one data key for the
//! session's life. It is still opened, while earlier formats are served
//! (`SESSION_LEGACY_LOOKUP`, which ships with an end), and only with its lifecycle beside it,
//! held to the rules, its authentication unknown whatever is beside it; its next write is `s3`.
//!
//! Where the work runs, measured (`npm run bench`): each WebCrypto call costs a promise and a
//! key import, about 50 µs of CPU here, whatever its size, while AES-GCM in Wasm (RustCrypto,
//! constant-time) runs at about 60 MB/s. So the 32-byte data keys are wrapped and unwrapped in
//! Wasm, data up to [`IN_WASM`] bytes is sealed in Wasm too (where that costs less than a call),
//! and larger data goes to the platform's WebCrypto (native AES-GCM) in one call each way. Both
//! make the same bytes: a record sealed by one opens with the other.

use std::borrow::Cow;
use std::future::Future;

use aes_gcm::aead::{Aead as _, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

use crate::domain::auth::Auth;
use crate::domain::derive::{StorageKey, WrapKey};
use crate::domain::digest::hmac_sha256;
use crate::domain::error::Error;
use crate::domain::id::SessionId;
use crate::domain::renewal::Retirement;
#[cfg(test)]
use crate::domain::renewal::{RETIREMENT_BYTES, TOKEN_RETIREMENT_BYTES};
use crate::domain::session::Meta;
use crate::store::data::{Buffer, Data, Plain};
use crate::store::{Record, Stored};

mod device;
mod layout;
mod successor;
mod webcrypto;

pub use device::{open_device, open_device_anew, seal_device, MAX_SEALED_DEVICE};
pub use layout::{is_retirement, lifecycle_bytes, LIFECYCLE};
use layout::{
    magic_of, sealed_lifecycle, split, DATA_LABEL, MAX_SLOTS, NONCE, S1_DATA_LABEL, S1_SLOT,
    S1_SLOT_LABEL, SALT, SLOT, SLOT_KEY_LABEL, SLOT_LABEL, TAG,
};
#[cfg(test)]
use layout::{
    BOUND_LIFECYCLE, BOUND_MAGIC, BOUND_RETIRED_MAGIC, MAGIC, RETIRED_MAGIC, S1_MAGIC,
    S2_LIFECYCLE, S2_MAGIC, S2_RETIRED_MAGIC, SUCCESSOR_LABEL,
};
pub use successor::Successor;
pub use webcrypto::{WebCrypto, OUTSIDE};

/// Data up to this many bytes is sealed and opened in Wasm; larger, by [`Aead`]. Where the two
/// cost the same, measured warm with the Worker's own time (`node bench/isolate.mjs`,
/// docs/performance.md): a KV read of 1,300 or 1,536 bytes cost the same either way, one of
/// 2,000 bytes 8 % more opened in Wasm (a create 11 % more), one of 6 KiB 45 % more. In strong
/// mode a read of 2,000 bytes cost about 1 % less in Wasm (answered from the object's first poll).
pub const IN_WASM: usize = 1024;

/// AES-256-GCM on data larger than [`IN_WASM`], as a platform offers it: raw keys in, one call
/// per operation.
#[allow(
    async_fn_in_trait,
    reason = "Workers run single-threaded; futures need not be Send"
)]
pub trait Aead {
    /// The whole record: `record` (its header, all that is built of it so far), then
    /// ciphertext and tag. `plain` may be held outside Wasm memory (see [`Aead::buffer`]); the
    /// record may be answered outside it too, where a large one is not held there once more.
    async fn encrypt(
        &self,
        key: &[u8; 32],
        nonce: &[u8],
        aad: &[u8],
        plain: Plain<'_>,
        record: Vec<u8>,
    ) -> Result<Data<'static>, Error>;
    /// `None` when the tag does not match (the wrong key, or altered bytes). The call is made
    /// when this is called, not when its future is first polled, and borrows nothing past it:
    /// the caller may free `sealed` before the plaintext comes back, so that a large session's
    /// record and its plaintext are not held in Wasm memory at once.
    fn decrypt(
        &self,
        key: &[u8; 32],
        nonce: &[u8],
        aad: &[u8],
        sealed: &[u8],
    ) -> impl Future<Output = Result<Option<Vec<u8>>, Error>> + 'static;
    /// Where data of `len` bytes that is to be sealed is best written: in Wasm memory, or
    /// outside it, where a large session is not held once more (WebCrypto seals it from there).
    fn buffer(&self, len: usize) -> Buffer {
        Buffer::here(len)
    }
}

/// AES-256-GCM in Wasm (or natively), from RustCrypto.
pub fn soft_encrypt(
    key: &[u8; 32],
    nonce: &[u8],
    aad: &[u8],
    plain: &[u8],
) -> Result<Vec<u8>, Error> {
    let payload = Payload { msg: plain, aad };
    let nonce = Nonce::try_from(nonce)
        .map_err(|_| Error::Internal("aes-gcm: a nonce not of 12 bytes".into()))?;
    Aes256Gcm::new(key.into())
        .encrypt(&nonce, payload)
        .map_err(|_| Error::Internal("aes-gcm: data too large to seal".into()))
}

pub fn soft_decrypt(key: &[u8; 32], nonce: &[u8], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    let payload = Payload { msg: sealed, aad };
    let nonce = Nonce::try_from(nonce).ok()?;
    Aes256Gcm::new(key.into()).decrypt(&nonce, payload).ok()
}

/// What a record holds, once opened.
#[derive(Debug, PartialEq, Eq)]
pub struct Opened {
    pub data: Vec<u8>,
    /// The sealed lifecycle; `None` in an `s1` record, whose lifecycle is kept beside it.
    pub lifecycle: Option<Meta>,
    /// An `r3` (or `r2`) record: `data` is a [`Retirement`].
    pub retired: bool,
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

/// The key a slot's data key is wrapped under: used for that one slot only.
fn slot_key(wrap: &WrapKey, salt: &[u8]) -> [u8; 32] {
    hmac_sha256(&wrap.0, &[SLOT_KEY_LABEL, salt].concat())
}

impl<A: Aead> Sealer<A> {
    /// The record `bytes` stored under `key`, opened with `wrap`, or `None` when it does not
    /// open: not sealed by this worker, altered, moved from another key, or another session's.
    /// The record is freed once its ciphertext is handed to the [`Aead`], before the plaintext
    /// comes back.
    pub async fn open(
        &self,
        wrap: &WrapKey,
        key: &StorageKey,
        bytes: Vec<u8>,
    ) -> Result<Option<Opened>, Error> {
        let Some(parts) = split(&bytes) else {
            return Ok(None);
        };
        let s2 = parts.lifecycle.is_some();
        let (slot_size, slot_label) = match s2 {
            true => (SLOT, SLOT_LABEL),
            false => (S1_SLOT, S1_SLOT_LABEL),
        };
        let slot_aad = associated(slot_label, key);
        let data_key = parts.slots.chunks(slot_size).find_map(|slot| {
            let raw = match s2 {
                true => {
                    let (salt, wrapped) = slot.split_at(SALT);
                    let own = slot_key(wrap, salt);
                    soft_decrypt(&own, &salt[..NONCE], &slot_aad, wrapped)?
                }
                false => {
                    let (nonce, wrapped) = slot.split_at(NONCE);
                    soft_decrypt(&wrap.0, nonce, &slot_aad, wrapped)?
                }
            };
            <[u8; 32]>::try_from(raw.as_slice()).ok()
        });
        let Some(data_key) = data_key else {
            return Ok(None);
        };
        let aad = match s2 {
            true => [DATA_LABEL, key.bytes(), parts.header].concat(),
            false => associated(S1_DATA_LABEL, key),
        };
        let (nonce, sealed) = (parts.nonce, parts.sealed);
        let (lifecycle, retired) = (parts.lifecycle, is_retirement(&bytes));
        let data = if sealed.len() - TAG <= IN_WASM {
            soft_decrypt(&data_key, nonce, &aad, sealed)
        } else {
            let opening = self.0.decrypt(&data_key, nonce, &aad, sealed);
            drop(bytes);
            opening.await?
        };
        Ok(data.map(|data| Opened {
            data,
            lifecycle,
            retired,
        }))
    }

    /// The session `id` in the record `bytes` stored under its `key`, with `beside`, the
    /// lifecycle the store keeps beside the record (KV metadata, an object's columns) for
    /// readers without the id. The sealed lifecycle is the session's: `beside` must say the
    /// same, or the record was altered. An `s1` record has only `beside`, and is read only
    /// while `earlier` formats are.
    ///
    /// A renewed id's record (`r3`, or `r2`) opens the same way, to its [`Retirement`]: what
    /// the store holds under the key, as the store's readers take it.
    ///
    /// [`Error::Unreadable`] (404 to the caller, an integrity line in the log) when the record
    /// does not open, is not text, or disagrees with what is beside it.
    pub async fn open_session(
        &self,
        id: &SessionId,
        key: &StorageKey,
        bytes: Vec<u8>,
        beside: Option<Meta>,
        serve_legacy: bool,
    ) -> Result<Stored, Error> {
        let unreadable =
            |why: &str| Error::Unreadable(format!("integrity: session {} {why}", id.short()));
        let opened = self.open(&WrapKey::of(id), key, bytes).await?;
        let opened = opened.ok_or_else(|| unreadable("does not open"))?;
        let meta = match opened.lifecycle {
            Some(sealed) if beside == Some(sealed) => sealed,
            Some(_) => return Err(unreadable("has a lifecycle other than its sealed one")),
            None if !serve_legacy => {
                return Err(unreadable("is of an earlier format, no longer read"))
            }
            // Nothing of an `s1` lifecycle is sealed, so nothing beside it may make the session
            // look authenticated: its authentication is unknown (never fresh, level 1) until a
            // `/reauth`, whatever the metadata claims. What else a writer could change beside it
            // is held to the rules ([`Meta::within_rules`]), and ends with the lookup.
            None => Meta {
                auth: Auth::UNKNOWN,
                ..beside.ok_or_else(|| unreadable("has no lifecycle"))?
            },
        };
        if opened.retired {
            let retirement = Retirement::from_bytes(&opened.data)
                .ok_or_else(|| unreadable("has a retirement this worker did not write"))?;
            return Ok(Stored::Retired(retirement, meta));
        }
        let data = String::from_utf8(opened.data).map_err(|_| unreadable("is not text"))?;
        Ok(Stored::Session(Record {
            data,
            meta: Some(meta),
        }))
    }

    /// What the id of `wrap` leaves under its `key` when renewed: `retirement`, sealed under
    /// it with the session's lifecycle `meta` (`r3`).
    pub async fn retire(
        &self,
        wrap: &WrapKey,
        key: &StorageKey,
        meta: &Meta,
        retirement: &Retirement,
    ) -> Result<Data<'static>, Error> {
        let data = retirement.to_bytes();
        self.seal_as(
            magic_of(meta, true),
            &[wrap],
            key,
            meta,
            data.as_slice().into(),
        )
        .await
    }

    /// `data` of a session with the lifecycle `meta`, sealed for `key` under a fresh data key
    /// wrapped under `wrap`: the record, in Wasm memory or (large) outside it.
    pub async fn seal(
        &self,
        wrap: &WrapKey,
        key: &StorageKey,
        meta: &Meta,
        data: Plain<'_>,
    ) -> Result<Data<'static>, Error> {
        self.seal_as(magic_of(meta, false), &[wrap], key, meta, data)
            .await
    }

    /// [`Sealer::seal`], with the data key wrapped in a slot for each of `wraps`.
    #[cfg(all(test, not(target_arch = "wasm32")))]
    async fn seal_for(
        &self,
        wraps: &[&WrapKey],
        key: &StorageKey,
        meta: &Meta,
        data: &[u8],
    ) -> Result<Data<'static>, Error> {
        self.seal_as(MAGIC, wraps, key, meta, data.into()).await
    }

    /// A record of the format `magic` (`s3` or `r3`).
    async fn seal_as(
        &self,
        magic: &[u8; 2],
        wraps: &[&WrapKey],
        key: &StorageKey,
        meta: &Meta,
        data: Plain<'_>,
    ) -> Result<Data<'static>, Error> {
        if wraps.is_empty() || wraps.len() > MAX_SLOTS {
            return Err(Error::Internal(format!(
                "a record of {} slots",
                wraps.len()
            )));
        }
        let data_key = random::<32>()?;
        let slot_aad = associated(SLOT_LABEL, key);
        // Room for the ciphertext only when it is made here: the platform's answers the record
        // where it says (a large one outside Wasm memory, never held in it).
        let sealed_here = match data.len() <= IN_WASM {
            true => data.len() + TAG,
            false => 0,
        };
        let mut bytes =
            Vec::with_capacity(3 + LIFECYCLE + wraps.len() * SLOT + NONCE + sealed_here);
        bytes.extend_from_slice(magic);
        bytes.extend_from_slice(&sealed_lifecycle(meta));
        bytes.push(wraps.len() as u8);
        for wrap in wraps {
            let salt = random::<SALT>()?;
            let own = slot_key(wrap, &salt);
            let wrapped = soft_encrypt(&own, &salt[..NONCE], &slot_aad, &data_key)?;
            bytes.extend_from_slice(&salt);
            bytes.extend_from_slice(&wrapped);
        }
        let aad = [DATA_LABEL, key.bytes(), &bytes].concat();
        let nonce = random::<NONCE>()?;
        bytes.extend_from_slice(&nonce);
        if data.len() <= IN_WASM {
            bytes.extend_from_slice(&soft_encrypt(&data_key, &nonce, &aad, &data.here())?);
            return Ok(Data::Here(Cow::Owned(bytes)));
        }
        self.0.encrypt(&data_key, &nonce, &aad, data, bytes).await
    }
}

/// Every label this module seals under, for `docs/storage.md`'s derivation table.
#[cfg(test)]
pub const LABELS: &[&[u8]] = &[
    SLOT_KEY_LABEL,
    SUCCESSOR_LABEL,
    SLOT_LABEL,
    DATA_LABEL,
    S1_SLOT_LABEL,
    S1_DATA_LABEL,
    device::DEVICE_LABEL,
    device::LEGACY_DEVICE_LABEL,
];

/// The byte layouts `docs/storage.md` shows, made from the sizes this module uses.
#[cfg(test)]
pub fn layouts() -> Vec<String> {
    let magic = |magic: &[u8; 2]| String::from_utf8_lossy(magic).into_owned();
    let wrapped = SLOT - SALT - TAG;
    assert_eq!(S1_SLOT - NONCE, wrapped + TAG, "both formats wrap one key");
    let lifecycle = [
        ("created_at", 8),
        ("updated_at", 8),
        ("expires_at", 8),
        ("version", 8),
        ("ttl", 8),
        ("subject flag", 1),
        ("subject hash", 32),
        ("auth_at", 8),
        ("auth level", 1),
    ];
    assert_eq!(lifecycle.iter().map(|(_, n)| n).sum::<usize>(), LIFECYCLE);
    assert_eq!(
        lifecycle[..7].iter().map(|(_, n)| n).sum::<usize>(),
        S2_LIFECYCLE
    );
    let lifecycle = lifecycle.map(|(name, n)| format!("{name} {n}")).join(" | ");
    let sealed = |magic: String| format!("\"{magic}\" 2 | nonce {NONCE} | ciphertext | tag {TAG}");
    vec![
        format!(
            "\"{}\" 2 | lifecycle {LIFECYCLE} | n 1 | n × (salt {SALT} | wrapped data key \
             {wrapped} | tag {TAG}) | nonce {NONCE} | ciphertext | tag {TAG}",
            magic(MAGIC)
        ),
        format!(
            "\"{}\" 2 | n 1 | n × (nonce {NONCE} | wrapped data key {wrapped} | tag {TAG}) | \
             nonce {NONCE} | ciphertext | tag {TAG}",
            magic(S1_MAGIC)
        ),
        format!(
            "\"{}\" 2 | lifecycle {LIFECYCLE} | n 1 | n × (salt {SALT} | wrapped data key \
             {wrapped} | tag {TAG}) | nonce {NONCE} | sealed retirement {} ({} for a token \
             successor) | tag {TAG}",
            magic(RETIRED_MAGIC),
            RETIREMENT_BYTES,
            TOKEN_RETIREMENT_BYTES
        ),
        format!(
            "successor id {} ({} for a token) | renewed_at 8 | grace_until 8",
            RETIREMENT_BYTES - 16,
            TOKEN_RETIREMENT_BYTES - 16
        ),
        format!(
            "\"{}\", \"{}\": as \"{}\", \"{}\", with a lifecycle of {S2_LIFECYCLE}",
            magic(S2_MAGIC),
            magic(S2_RETIRED_MAGIC),
            magic(MAGIC),
            magic(RETIRED_MAGIC)
        ),
        format!(
            "\"{}\", \"{}\": as \"{}\", \"{}\", with a lifecycle of {BOUND_LIFECYCLE}: the \
             lifecycle, then binding 1 (1 bound, 2 pointer) | alg 1 | since 8 | thumbprint 32",
            magic(BOUND_MAGIC),
            magic(BOUND_RETIRED_MAGIC),
            magic(MAGIC),
            magic(RETIRED_MAGIC)
        ),
        lifecycle,
        sealed(magic(device::DEVICE_MAGIC)),
        sealed(magic(device::LEGACY_DEVICE_MAGIC)),
    ]
}

/// A record of the version before, for tests of what still reads it.
#[cfg(test)]
pub(crate) mod fixtures {
    use crate::domain::digest::unhex;
    use crate::domain::id::SessionId;

    /// An `s1` record, for session `0f9c4a8e-2b1d-4c3e-9a7f-6d5e4c3b2a19` with
    /// `{"pinned":"s1"}`, made by the code of the version before (at 32e2f06): sessions it
    /// stored must still open, and only with their lifecycle beside them, while earlier formats
    /// are read.
    const S1_RECORD: &str = "733101cd5963f38e4dffde0c1fb01746a70f348f0fd0690f4dc29207f71571c862a9c\
        32017aad39e203814b4af78632dccb1bc50713ad5856dbb0b36ded275a1c624731b2599a98043dc36c51b4f3dec\
        3eb28859a3cb203a4b001f87b112c03c732a55515a196cb091f8";

    /// The session's id and its `s1` record.
    pub fn s1() -> (SessionId, Vec<u8>) {
        let id = SessionId::parse("0f9c4a8e-2b1d-4c3e-9a7f-6d5e4c3b2a19");
        let bytes: Option<[u8; 106]> = unhex(S1_RECORD);
        (id.unwrap(), bytes.unwrap().to_vec())
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::fixtures;
    use super::*;
    use crate::domain::auth::Level;
    use crate::domain::derive::DeviceKey;
    use crate::domain::id::SessionId;
    use crate::domain::session::fixtures::{POLICY, T0};
    use crate::domain::subject::Subject;
    use crate::store::memory::{run, SoftAead};

    fn id(n: u8) -> SessionId {
        SessionId::from_random_bytes([n; 16])
    }

    fn meta() -> Meta {
        Meta {
            subject: Some(Subject::new(b"ada", None).unwrap()),
            ttl: Some(600),
            ..Meta::new(T0, Some(600), POLICY)
        }
    }

    fn sealed(n: u8, data: &[u8]) -> Vec<u8> {
        let (wrap, key) = (WrapKey::of(&id(n)), StorageKey::of(&id(n)));
        run(Sealer(SoftAead).seal(&wrap, &key, &meta(), data.into()))
            .unwrap()
            .into_vec()
    }

    fn open(n: u8, key: u8, bytes: &[u8]) -> Option<Vec<u8>> {
        let (wrap, key) = (WrapKey::of(&id(n)), StorageKey::of(&id(key)));
        let opened = run(Sealer(SoftAead).open(&wrap, &key, bytes.to_vec())).unwrap();
        opened.map(|opened| opened.data)
    }

    fn open_session(
        bytes: &[u8],
        beside: Option<Meta>,
        serve_legacy: bool,
    ) -> Result<Meta, String> {
        let (id, key) = (id(1), StorageKey::of(&id(1)));
        run(Sealer(SoftAead).open_session(&id, &key, bytes.to_vec(), beside, serve_legacy))
            .map(|unsealed| match unsealed {
                Stored::Session(record) => record.meta.unwrap(),
                Stored::Retired(_, meta) => meta,
            })
            .map_err(|err| err.log_cause().unwrap_or_default())
    }

    /// The successor a KV renewal derives, pinned by a vector computed outside the code
    /// (Python: `hmac.new(hmac.new(b"01010101-0101-4101-8101-010101010101",
    /// b"session-state/v1/wrap", sha256).digest(), b"session-state/v2/successor\0" +
    /// bytes([7]) * 32, sha256)`): the same for every read of one record, another for another
    /// record, and none for a record that is not a session of this version's formats.
    #[test]
    fn a_renewal_successor_is_derived_from_the_record_read() {
        let successor_seed =
            |wrap: &WrapKey, bytes: &[u8]| Successor::of(bytes).map(|of| of.seed(wrap));
        let mut record = b"s3".to_vec();
        record.extend_from_slice(&lifecycle_bytes(&meta()));
        record.push(1);
        record.extend_from_slice(&[7; SALT]);
        record.extend_from_slice(&[0; SLOT - SALT + NONCE + TAG]);
        let seed = successor_seed(&WrapKey::of(&id(1)), &record).unwrap();
        assert_eq!(
            crate::domain::digest::hex(&seed),
            "609116e2d2e8dff11b702dce6620bc0c0e14486b7dd11edb9a2afa44505c8a2d"
        );
        let successor = SessionId::like_from_seed(&id(9), seed);
        assert_eq!(
            successor.to_string(),
            "609116e2-d2e8-4ff1-9b70-2dce6620bc0c"
        );
        let token = SessionId::token_from_random_bytes([9; 32]);
        assert_eq!(SessionId::like_from_seed(&token, seed).to_bytes(), seed);
        // Another id, or another record of the same session: another successor.
        assert_ne!(successor_seed(&WrapKey::of(&id(2)), &record), Some(seed));
        let (one, other) = (sealed(1, b"{}"), sealed(1, b"{}"));
        let wrap = WrapKey::of(&id(1));
        assert_ne!(successor_seed(&wrap, &one), successor_seed(&wrap, &other));
        // A renewed id's record, or an `s1`, is renewed with a fresh id.
        record[..2].copy_from_slice(RETIRED_MAGIC);
        assert_eq!(successor_seed(&wrap, &record), None);
        let (_, s1) = fixtures::s1();
        assert_eq!(successor_seed(&wrap, &s1), None);
    }

    /// A renewed id's record names its successor to a holder of the old id only, and cannot
    /// pass for a session (nor a session for one): the magic is bound to the rest.
    #[test]
    fn a_retirement_opens_with_the_old_id_only_and_is_never_a_session() {
        use crate::domain::renewal::{Renewal, RETIREMENT_BYTES};
        let (wrap, key) = (WrapKey::of(&id(1)), StorageKey::of(&id(1)));
        let retirement = Retirement::new(id(2), T0, Renewal::default());
        let sealer = Sealer(SoftAead);
        let bytes = run(sealer.retire(&wrap, &key, &meta(), &retirement))
            .unwrap()
            .into_vec();
        assert!(is_retirement(&bytes));
        assert!(!is_retirement(&sealed(1, b"{}")));
        assert_eq!(
            bytes.len(),
            3 + LIFECYCLE + SLOT + NONCE + RETIREMENT_BYTES + TAG
        );
        let successor = id(2).to_bytes();
        assert!(
            !bytes.windows(16).any(|w| w == successor),
            "the successor is sealed"
        );
        let opened = run(sealer.open_session(&id(1), &key, bytes.to_vec(), Some(meta()), false));
        assert_eq!(opened.unwrap(), Stored::Retired(retirement, meta()));
        assert_eq!(open(2, 1, &bytes), None, "another id cannot open it");
        let mut as_session = bytes.clone();
        as_session[..2].copy_from_slice(MAGIC);
        assert_eq!(open(1, 1, &as_session), None, "a retirement relabelled");
        let mut as_retirement = sealed(1, b"{}");
        as_retirement[..2].copy_from_slice(RETIRED_MAGIC);
        assert_eq!(open(1, 1, &as_retirement), None, "a session relabelled");
    }

    /// Where the sealed lifecycle sits in an `s3` record.
    const AT: std::ops::Range<usize> = 2..2 + LIFECYCLE;

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
        for at in 0..bytes.len() {
            let mut altered = bytes.clone();
            altered[at] ^= 1;
            assert_eq!(open(1, 1, &altered), None, "byte {at} altered");
        }
        for len in [0, 2, 3, 3 + LIFECYCLE + SLOT + NONCE + TAG - 1] {
            assert_eq!(open(1, 1, &bytes[..len]), None, "cut to {len}");
        }
        assert_eq!(open(1, 1, br#"{"a":1}"#), None, "plain data");
    }

    /// A bound session's binding is sealed like the rest of its lifecycle (`s4`), its
    /// retirement too (`r4`); an unbound session stays `s3`, readable by the version before.
    #[test]
    fn a_binding_is_sealed_with_the_lifecycle() {
        use crate::domain::binding::{Alg, Binding, BINDING_BYTES};
        let bound = Meta {
            binding: Some(Binding::Bound {
                alg: Alg::Es256,
                key: [5; 32],
                since: T0,
            }),
            ..meta()
        };
        let (wrap, key) = (WrapKey::of(&id(1)), StorageKey::of(&id(1)));
        let sealer = Sealer(SoftAead);
        let bytes = run(sealer.seal(&wrap, &key, &bound, b"{}".into()))
            .unwrap()
            .into_vec();
        assert_eq!(&bytes[..2], BOUND_MAGIC);
        assert_eq!(bytes.len(), sealed(1, b"{}").len() + BINDING_BYTES);
        assert_eq!(&sealed(1, b"{}")[..2], MAGIC);
        assert_eq!(open_session(&bytes, Some(bound), false), Ok(bound));
        // Beside it, a lifecycle without the binding (or another one) is an altered record.
        assert!(open_session(&bytes, Some(meta()), false).is_err());
        for at in 2 + LIFECYCLE..2 + BOUND_LIFECYCLE {
            let mut altered = bytes.clone();
            altered[at] ^= 1;
            assert_eq!(open(1, 1, &altered), None, "binding byte {at} altered");
        }
        let retirement = Retirement::new(id(2), T0, Default::default());
        let retired = run(sealer.retire(&wrap, &key, &bound, &retirement))
            .unwrap()
            .into_vec();
        assert_eq!(&retired[..2], BOUND_RETIRED_MAGIC);
        assert!(is_retirement(&retired));
        assert_eq!(open_session(&retired, Some(bound), false), Ok(bound));
    }

    /// The lifecycle is authenticated with the data: no byte of it can change, so a store
    /// writer can neither extend a session nor move it to another subject.
    #[test]
    fn the_lifecycle_is_sealed_with_the_data() {
        let bytes = sealed(1, b"{}");
        assert_eq!(open_session(&bytes, Some(meta()), false), Ok(meta()));
        assert_eq!(&bytes[AT], &lifecycle_bytes(&meta())[..]);
        let immortal = Meta {
            expires_at: u64::MAX,
            ..meta()
        };
        let mut extended = bytes.clone();
        extended[AT].copy_from_slice(&lifecycle_bytes(&immortal));
        assert_eq!(open(1, 1, &extended), None, "a later expiry");
        let bob = Meta {
            subject: Some(Subject::new(b"bob", None).unwrap()),
            ..meta()
        };
        let mut moved = bytes.clone();
        moved[AT].copy_from_slice(&lifecycle_bytes(&bob));
        assert_eq!(open(1, 1, &moved), None, "another subject");
        let stepped_up = Meta {
            auth: Auth {
                at: T0 + 1,
                level: Level::of(3).unwrap(),
            },
            ..meta()
        };
        let mut fresher = bytes.clone();
        fresher[AT].copy_from_slice(&lifecycle_bytes(&stepped_up));
        assert_eq!(
            open(1, 1, &fresher),
            None,
            "a later, stronger authentication"
        );
        let mut as_s2 = bytes.clone();
        as_s2[..2].copy_from_slice(S2_MAGIC);
        assert_eq!(open(1, 1, &as_s2), None, "relabelled as the format before");
        let cause = open_session(&bytes, Some(immortal), false).unwrap_err();
        assert!(cause.contains("other than its sealed one"), "{cause}");
        let cause = open_session(&bytes, None, true).unwrap_err();
        assert!(cause.contains("integrity: session 01010101"), "{cause}");
    }

    /// An `s2` record, made by the code of the version before (at 11e65c3) for session
    /// `0f9c4a8e-2b1d-4c3e-9a7f-6d5e4c3b2a19` (subject "ada", ttl 600, created at T0) with
    /// `{"pinned":"s2"}`: every session it stored must still open, authenticated at level 1 at
    /// its creation.
    const S2_RECORD: &str = "73320000019ab697e8000000019ab697e8000000019ab6a10fc00000000000000001\
        000000000000025801fdee430d40bd57deeac186cd9790033d0f06f909a8806e7ce6e717ab7c7d5029010e4d1f69\
        5b4924db17d72013a0469da38f764665ff724e3c7601b4d1cbe23571c505159a6d8ead1f1250cd459317deae84ea\
        3b554d09793c89554692573bfa33b5e3b105676c4d3bba49e17a4e625115223a768dd07249fa8c4cd645b10fe7e3\
        1aba8af51579764bc71b232c0eecafbfc3529c6b0f11bbfb3df0e2";

    #[test]
    fn a_record_of_the_version_before_opens_as_level_one_at_its_creation() {
        let id = SessionId::parse("0f9c4a8e-2b1d-4c3e-9a7f-6d5e4c3b2a19").unwrap();
        let bytes: [u8; 199] = crate::domain::digest::unhex(S2_RECORD).unwrap();
        let key = StorageKey::of(&id);
        let beside = Meta {
            subject: Some(Subject::new(b"ada", None).unwrap()),
            ..Meta::new(T0, Some(600), POLICY)
        };
        let opened =
            run(Sealer(SoftAead).open_session(&id, &key, bytes.to_vec(), Some(beside), false));
        let Ok(Stored::Session(record)) = opened else {
            panic!("{opened:?}");
        };
        assert_eq!(record.data, r#"{"pinned":"s2"}"#);
        let meta = record.meta.unwrap();
        assert_eq!(meta, beside);
        assert_eq!(meta.auth, Auth::at_creation(T0));
        let mut as_s3 = bytes.to_vec();
        as_s3[..2].copy_from_slice(MAGIC);
        assert_eq!(
            run(Sealer(SoftAead).open(&WrapKey::of(&id), &key, as_s3.to_vec())).unwrap(),
            None,
            "relabelled as this version's format"
        );
    }

    /// Every write seals under a fresh data key, wrapped under a key of that slot's own: no
    /// AES-GCM key ever encrypts a second message.
    #[test]
    fn every_write_has_its_own_data_key_and_slot_key() {
        let (wrap, key) = (WrapKey::of(&id(1)), StorageKey::of(&id(1)));
        let sealer = Sealer(SoftAead);
        let data_key = |bytes: &[u8]| {
            let parts = split(bytes).unwrap();
            let (salt, wrapped) = parts.slots.split_at(SALT);
            let slot_aad = associated(SLOT_LABEL, &key);
            let own = slot_key(&wrap, salt);
            (
                salt.to_vec(),
                soft_decrypt(&own, &salt[..NONCE], &slot_aad, wrapped).unwrap(),
            )
        };
        let mut seen = Vec::new();
        for _ in 0..16 {
            let bytes = run(sealer.seal(&wrap, &key, &meta(), b"{}".into()))
                .unwrap()
                .into_vec();
            assert_eq!(bytes.len(), 3 + LIFECYCLE + SLOT + NONCE + 2 + TAG);
            let (salt, raw) = data_key(&bytes);
            assert!(!seen.contains(&salt) && !seen.contains(&raw));
            seen.extend([salt, raw]);
        }
        let (salt, _) = data_key(
            &run(sealer.seal(&wrap, &key, &meta(), b"{}".into()))
                .unwrap()
                .into_vec(),
        );
        assert_ne!(
            slot_key(&wrap, &salt),
            wrap.0,
            "the wrap key itself encrypts nothing"
        );
    }

    /// Large data goes through the platform's AES-GCM, and opens the same way.
    #[test]
    fn data_past_the_wasm_limit_seals_and_opens_alike() {
        for len in [IN_WASM - 1, IN_WASM, IN_WASM + 1, 60_000] {
            let data = vec![b'x'; len];
            let bytes = sealed(1, &data);
            assert_eq!(bytes.len(), 3 + LIFECYCLE + SLOT + NONCE + len + TAG);
            assert_eq!(open(1, 1, &bytes), Some(data), "{len}");
            assert_eq!(open(1, 2, &bytes), None, "{len}, moved");
        }
    }

    #[test]
    fn records_of_the_version_before_open_with_their_lifecycle_beside_them() {
        let (id, bytes) = fixtures::s1();
        let key = StorageKey::of(&id);
        let sealer = Sealer(SoftAead);
        let opened = run(sealer.open(&WrapKey::of(&id), &key, bytes.to_vec())).unwrap();
        assert_eq!(
            opened,
            Some(Opened {
                data: br#"{"pinned":"s1"}"#.to_vec(),
                lifecycle: None,
                retired: false,
            })
        );
        let beside = Meta::new(T0, None, POLICY);
        let read = |beside, serve_legacy| {
            run(sealer.open_session(&id, &key, bytes.to_vec(), beside, serve_legacy))
                .map_err(|err| err.log_cause().unwrap_or_default())
        };
        assert_eq!(
            read(Some(beside), true),
            Ok(Stored::Session(Record {
                data: r#"{"pinned":"s1"}"#.to_string(),
                meta: Some(Meta {
                    auth: Auth::UNKNOWN,
                    ..beside
                })
            }))
        );
        let cause = read(None, true).unwrap_err();
        assert!(
            cause.contains("has no lifecycle"),
            "never the old worker's: {cause}"
        );
        let cause = read(Some(beside), false).unwrap_err();
        assert!(cause.contains("earlier format"), "{cause}");
        let mut altered = bytes.clone();
        altered[100] ^= 1;
        let opened = run(sealer.open(&WrapKey::of(&id), &key, altered.to_vec())).unwrap();
        assert_eq!(opened, None);
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
        let earlier = DeviceKey {
            now: key.legacy,
            legacy: key.now,
        };
        assert_eq!(
            open_device(&earlier, &ada, &sealed),
            None,
            "only under this version's key"
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

    const D1_DEVICE: &str =
        "643140fe0e1e4b8aabd9c149523a91126f11569d2e8d2849e51c91ef13a36bf3a1fd0b99b5358a4d0b";

    /// Device info the version before sealed (`d1`: under the earlier device key, the subject's
    /// hash in hex as associated data), made by its code at 32e2f06 for `ada` without
    /// `SUBJECT_KEY`: it still opens, and only for its subject, until a listing seals it anew.
    #[test]
    fn device_info_of_the_version_before_still_opens() {
        let sealed: [u8; 41] = crate::domain::digest::unhex(D1_DEVICE).unwrap();
        let ada = Subject::new(b"ada", None).unwrap();
        let key = DeviceKey::of(b"ada", None);
        let (plain, anew) = open_device_anew(&key, &ada, &sealed).unwrap();
        assert_eq!(plain, b"Ada's phone");
        let anew = anew.expect("sealed anew");
        assert!(anew.starts_with(b"d2"));
        assert_eq!(open_device_anew(&key, &ada, &anew), Some((plain, None)));
        let legacy_only = DeviceKey {
            now: [0; 32],
            legacy: key.legacy,
        };
        assert_eq!(
            open_device(&legacy_only, &ada, &anew),
            None,
            "not under the earlier key"
        );
        let bob = Subject::new(b"bob", None).unwrap();
        assert_eq!(
            open_device(&DeviceKey::of(b"bob", None), &bob, &sealed),
            None
        );
    }

    #[test]
    fn any_slot_that_opens_gives_the_data_key() {
        let (one, two) = (WrapKey::of(&id(1)), WrapKey::of(&id(2)));
        let key = StorageKey::of(&id(1));
        let sealer = Sealer(SoftAead);
        let both = run(sealer.seal_for(&[&two, &one], &key, &meta(), b"{}"))
            .unwrap()
            .into_vec();
        assert_eq!(both.len(), 3 + LIFECYCLE + 2 * SLOT + NONCE + 2 + TAG);
        for wrap in [&one, &two] {
            let opened = run(sealer.open(wrap, &key, both.to_vec())).unwrap();
            assert_eq!(opened.map(|o| o.data).as_deref(), Some(&b"{}"[..]));
        }
        let third = WrapKey::of(&id(3));
        assert_eq!(run(sealer.open(&third, &key, both.to_vec())).unwrap(), None);
        // The slots are bound to the data: one cannot be dropped, added or swapped.
        let head = 2 + LIFECYCLE;
        let dropped = [&both[..head], &[1], &both[head + 1 + SLOT..]].concat();
        assert_eq!(
            run(sealer.open(&one, &key, dropped.to_vec())).unwrap(),
            None
        );
        let claims_too_many = [&both[..head], &[5], &both[head + 1..]].concat();
        assert_eq!(
            run(sealer.open(&one, &key, claims_too_many.to_vec())).unwrap(),
            None
        );
        let five: Vec<&WrapKey> = vec![&one; 5];
        assert!(run(sealer.seal_for(&five, &key, &meta(), b"{}")).is_err());
    }
}
