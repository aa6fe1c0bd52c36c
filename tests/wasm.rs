//! Tests of what only runs inside Wasm: ids from the platform's randomness
//! (`crypto.getRandomValues` through getrandom). Run under Node by wasm-bindgen-test-runner.
#![cfg(target_arch = "wasm32")]

use std::collections::HashSet;

use session_state::id::SessionId;
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

#[wasm_bindgen_test]
fn randomness_is_not_constant() {
    // 16 bytes from the platform are not all equal (probability 2^-120 if random).
    let a = SessionId::generate().unwrap();
    let b = SessionId::generate().unwrap();
    assert_ne!(a, b);
    assert_ne!(
        a.to_string()
            .replace('-', "")
            .chars()
            .collect::<HashSet<_>>()
            .len(),
        1
    );
}
