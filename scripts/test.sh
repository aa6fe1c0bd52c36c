#!/usr/bin/env bash
# Every check, in order of cost: format, lints, native unit tests, Wasm tests under Node, the
# release build, a deploy dry run, then the end-to-end tests against `wrangler dev`.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

step() { printf '\n\033[1m[test]\033[0m %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --check

step "cargo clippy (wasm32, warnings denied)"
cargo clippy --target wasm32-unknown-unknown --all-targets --locked -- -D warnings

step "native unit tests"
cargo test --locked

step "wasm-bindgen-test under Node"
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
  cargo test --target wasm32-unknown-unknown --locked --test wasm

step "release build"
bash scripts/build.sh

step "wrangler deploy --dry-run"
wrangler deploy --dry-run --env="" --outdir "$(mktemp -d)"

step "end-to-end tests (wrangler dev, local KV)"
# Each test has a time limit, and each file another (tests/e2e/harness.mjs) that also stops its
# servers.
node --test --test-concurrency=1 --test-timeout=900000 tests/e2e/
