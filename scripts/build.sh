#!/usr/bin/env bash
# Builds the release worker into build/ (what wrangler.toml's `main` points at). Skips the build
# when build/ is newer than every input and was built the same way, so each `wrangler dev` start
# in the tests is quick. `--keep-names` keeps the Wasm names section, for readable profiles
# (bench/profile.mjs); the default strips it.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
mode=stripped
[ "${1:-}" = "--keep-names" ] && mode=named
if [ -f build/index.js ] && [ "$(cat build/.mode 2>/dev/null)" = "$mode" ] \
  && [ -z "$(find src Cargo.toml Cargo.lock build.rs openapi.yaml .cargo -newer build/index.js -print -quit)" ]; then
  echo "build/ is up to date ($mode)"
  exit 0
fi
# worker-build's own entry, as it makes it. A patch of its minified output into an object entry
# was measured side by side with it (docs/performance.md): its gain was inside the spread.
worker-build --release

# worker-build keeps the Wasm names section (~90 KiB) for readable stack traces; a deployed worker
# does not need it. Strip it (and the producers section) with the same feature set it uses.
if [ "$mode" = stripped ]; then
  features=(mutable-globals sign-ext nontrapping-float-to-int bulk-memory multivalue reference-types exception-handling)
  "$WASM_OPT_BIN" build/index_bg.wasm "${features[@]/#/--enable-}" --strip-debug --strip-producers \
    -o build/index_bg.wasm
fi
echo "$mode" > build/.mode
