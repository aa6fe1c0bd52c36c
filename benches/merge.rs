//! `cargo bench --bench merge`: merging a 64 KiB patch of 8,000 keys into a 64 KiB session of
//! 8,000 keys, natively, both ways; half of the patch's keys are in the session. Prints the median
//! and the slowest of 50 runs, and the same for ten times fewer keys: a merge linear in its input
//! takes about ten times less. `npm run bench` copies these lines into `bench/results.md`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use session_state::domain::json::JsonObject;
use session_state::domain::merge::{merge, Merge};

/// `n` members with three-character keys, offset by `first`: `{"a00":0,"a01":1,...}`.
fn object(first: usize, n: usize) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let members: Vec<String> = (first..first + n)
        .map(|i| {
            let key: String = [i / 1296, i / 36 % 36, i % 36]
                .iter()
                .map(|&d| DIGITS[d] as char)
                .collect();
            format!("\"{key}\":{}", i % 10)
        })
        .collect();
    format!("{{{}}}", members.join(","))
}

fn time(runs: usize, mut f: impl FnMut()) -> (Duration, Duration) {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    (times[runs / 2], times[runs - 1])
}

fn main() {
    for keys in [8_000, 800] {
        let target = object(0, keys);
        let patch = JsonObject::from_bytes(object(keys / 2, keys).into_bytes()).expect("valid");
        for how in [Merge::Shallow, Merge::MergePatch] {
            let (median, slowest) = time(50, || {
                black_box(merge(black_box(&target), &patch, how).expect("merges"));
            });
            println!(
                "MERGE_BENCH {{\"keys\":{keys},\"targetBytes\":{},\"patchBytes\":{},\"how\":\"{how:?}\",\"medianMs\":{:.3},\"maxMs\":{:.3}}}",
                target.len(),
                patch.as_str().len(),
                median.as_secs_f64() * 1e3,
                slowest.as_secs_f64() * 1e3,
            );
        }
    }
}
