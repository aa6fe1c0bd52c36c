//! Tests of what only runs inside Wasm: ids from the platform's randomness
//! (`crypto.getRandomValues` through getrandom), and sealing with WebCrypto (`crypto.subtle`).
//! Run under Node by wasm-bindgen-test-runner.
#![cfg(target_arch = "wasm32")]

use std::collections::HashSet;

use session_state::domain::id::SessionId;
use wasm_bindgen_test::wasm_bindgen_test;

#[wasm_bindgen_test]
fn generated_ids_are_canonical_v4_uuids() {
    for _ in 0..1000 {
        let id = SessionId::generate().expect("the platform has randomness");
        let text = id.to_string();
        assert_eq!(SessionId::parse(&text), Some(id), "{text}");
        assert_eq!(&text[14..15], "4");
    }
}

#[wasm_bindgen_test]
fn generated_ids_are_distinct() {
    let ids: HashSet<String> = (0..10_000)
        .map(|_| SessionId::generate().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 10_000);
}

/// Every random hex digit of 10,000 ids takes each of its values close to equally often: a
/// constant, biased or low-entropy source fails this (each count is expected near 625, with a
/// standard deviation near 24; the bounds are five deviations).
#[wasm_bindgen_test]
fn every_random_digit_is_uniform() {
    const IDS: usize = 10_000;
    let mut counts = [[0usize; 16]; 36];
    for _ in 0..IDS {
        let text = SessionId::generate().unwrap().to_string();
        for (position, digit) in text.chars().enumerate() {
            if let Some(value) = digit.to_digit(16) {
                counts[position][value as usize] += 1;
            }
        }
    }
    for (position, values) in counts.iter().enumerate() {
        match position {
            8 | 13 | 18 | 23 => continue, // hyphens
            14 => assert_eq!(values[4], IDS, "the version digit is always 4"),
            19 => {
                // The variant digit: 8, 9, a or b, each a quarter of the time.
                for (value, &count) in values.iter().enumerate() {
                    let expected = if (8..12).contains(&value) { 2500 } else { 0 };
                    assert!(
                        count.abs_diff(expected) <= 220,
                        "digit 19 = {value:x}: {count}"
                    );
                }
            }
            _ => {
                for (value, &count) in values.iter().enumerate() {
                    assert!(
                        (505..=745).contains(&count),
                        "digit {position} = {value:x}: {count}"
                    );
                }
            }
        }
    }
}

mod sealing {
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    use aes_gcm::{Aes256Gcm, Nonce};
    use session_state::domain::derive::{StorageKey, WrapKey};
    use session_state::domain::id::SessionId;
    use session_state::seal::{Sealer, WebCrypto};
    use wasm_bindgen_test::wasm_bindgen_test;

    fn open_with_rustcrypto(id: &SessionId, bytes: &[u8]) -> Option<Vec<u8>> {
        let key = StorageKey::of(id);
        let (magic, rest) = bytes.split_at(3);
        assert_eq!(magic, b"s1\x01");
        let (slot, rest) = rest.split_at(60);
        let (nonce, sealed) = rest.split_at(12);
        let aad = |label: &[u8]| [label, key.bytes()].concat();
        let wrap = Aes256Gcm::new((&WrapKey::of(id).0).into());
        let slot_aad = aad(b"session-state/v1/slot\0");
        let payload = Payload {
            msg: &slot[12..],
            aad: &slot_aad,
        };
        let data_key = wrap.decrypt(Nonce::from_slice(&slot[..12]), payload).ok()?;
        let cipher = Aes256Gcm::new_from_slice(&data_key).ok()?;
        let data_aad = aad(b"session-state/v1/data\0");
        let payload = Payload {
            msg: sealed,
            aad: &data_aad,
        };
        cipher.decrypt(Nonce::from_slice(nonce), payload).ok()
    }

    /// What the worker seals (small data in Wasm, large through WebCrypto) is AES-256-GCM as
    /// RustCrypto reads it, byte for byte, and opens only for the same id and key.
    #[wasm_bindgen_test]
    async fn records_are_the_envelope_the_native_tests_check() {
        let id = SessionId::generate().unwrap();
        let other = SessionId::generate().unwrap();
        let (wrap, key) = (WrapKey::of(&id), StorageKey::of(&id));
        let sealer = Sealer(WebCrypto);
        for len in [20, 2048, 2049, 60_000] {
            let data = vec![b'c'; len];
            let (opened, bytes) = sealer.seal(&wrap, &key, &data, None).await.unwrap();
            assert_eq!(
                open_with_rustcrypto(&id, &bytes).as_deref(),
                Some(&data[..]),
                "{len}"
            );
            assert_eq!(open_with_rustcrypto(&other, &bytes), None, "{len}");
            let (_, again) = sealer
                .seal(&wrap, &key, &data, Some(&opened))
                .await
                .unwrap();
            assert_eq!(bytes[..63], again[..63], "the data key stays");
            let (_, read) = sealer.open(&wrap, &key, &again).await.unwrap().unwrap();
            assert_eq!(read, data, "{len}");
            let moved = sealer
                .open(&wrap, &StorageKey::of(&other), &bytes)
                .await
                .unwrap();
            assert!(moved.is_none(), "{len}");
            let mut altered = bytes.clone();
            altered[70] ^= 1;
            assert!(
                sealer.open(&wrap, &key, &altered).await.unwrap().is_none(),
                "{len}"
            );
        }
    }
}
