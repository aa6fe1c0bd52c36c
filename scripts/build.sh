#!/usr/bin/env bash
# Builds the release worker into build/ (what wrangler.toml's `main` points at). Skips the build
# when build/ is newer than every input, so each `wrangler dev` start in the tests is quick.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
if [ -f build/index.js ] && [ -z "$(find src Cargo.toml Cargo.lock build.rs openapi.yaml -newer build/index.js -print -quit)" ]; then
  echo "build/ is up to date"
  exit 0
fi
worker-build --release

# worker-build keeps the Wasm names section (~90 KiB) for readable stack traces; a deployed worker
# does not need it. Strip it (and the producers section) with the same feature set it uses.
features=(mutable-globals sign-ext nontrapping-float-to-int bulk-memory multivalue reference-types exception-handling)
"$WASM_OPT_BIN" build/index_bg.wasm "${features[@]/#/--enable-}" --strip-debug --strip-producers \
  -o build/index_bg.wasm
