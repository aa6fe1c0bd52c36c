//! Tests of what only runs inside Wasm: ids from the platform's randomness
//! (`crypto.getRandomValues` through getrandom). Run under Node by wasm-bindgen-test-runner.
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
