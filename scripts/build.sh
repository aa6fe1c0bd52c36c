#!/usr/bin/env bash
# Builds the release worker into build/ (what wrangler.toml's `main` points at): the crate to
# Wasm (cargo), its JavaScript bindings (wasm-bindgen), the module the runtime loads
# (src/worker.js, bundled with the bindings by esbuild) and the Wasm optimised for size
# (wasm-opt). Skips the build when build/ is newer than every input and was built the same way,
# so each `wrangler dev` start in the tests is quick; concurrent starts build once.
# `--keep-names` keeps the Wasm names section, for readable profiles (bench/profile.mjs); the
# default strips it (about 90 KiB that a deployed worker does not need).
#
# worker-build made these steps until 2026-12-07; its module's entry (a class behind a `Proxy`,
# constructed for every request) cost about 30 µs of the Worker's own time per request, which
# src/worker.js does not (docs/performance.md). The wasm-bindgen flags are the ones it passed.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
mode=stripped
[ "${1:-}" = "--keep-names" ] && mode=named
up_to_date() {
  [ -f build/index.js ] && [ "$(cat build/.mode 2>/dev/null)" = "$mode" ] \
    && [ -z "$(find src Cargo.toml Cargo.lock build.rs openapi.yaml .cargo scripts/build.sh -newer build/index.js -print -quit)" ]
}
if up_to_date; then
  echo "build/ is up to date ($mode)"
  exit 0
fi
target="${CARGO_TARGET_DIR:-target}"
mkdir -p "$target"
exec 9>"$target/.build.lock"
flock 9
if up_to_date; then
  echo "build/ is up to date ($mode)"
  exit 0
fi

cargo build --lib --release --target wasm32-unknown-unknown
glue="$target/glue"
rm -rf "$glue"
# Recovery from a panic (src/worker.js): a function that replaces the instance, and the abort
# handler that schedules it.
"$WASM_BINDGEN_BIN" "$target/wasm32-unknown-unknown/release/session_state.wasm" --out-dir "$glue" \
  --target module --out-name index --no-typescript \
  --experimental-reset-state-function --force-enable-abort-handler
# The runtime takes a Wasm module as a plain import (a compiled module), not a source-phase one.
sed -i 's/^import source wasmModule from/import wasmModule from/' "$glue/index.js"
cp src/worker.js "$glue/worker.js"

mkdir -p build
rm -rf build/worker build/package.json
# The features the runtime supports, named rather than `--all-features`, so that no newer
# encoding is emitted before it does.
features=(mutable-globals sign-ext nontrapping-float-to-int bulk-memory multivalue reference-types exception-handling)
flags=("${features[@]/#/--enable-}")
"$WASM_OPT_BIN" "$glue/index_bg.wasm" -Os "${flags[@]}" --debuginfo -o "$glue/optimized.wasm"
# The stripped build differs from the named one in those sections only (the same function
# indices, which bench/profile.mjs relies on).
if [ "$mode" = stripped ]; then
  "$WASM_OPT_BIN" "$glue/optimized.wasm" "${flags[@]}" --strip-debug --strip-producers -o build/index_bg.wasm
else
  cp "$glue/optimized.wasm" build/index_bg.wasm
fi
"$ESBUILD_BIN" "$glue/worker.js" --bundle --format=esm --minify --log-level=warning \
  '--external:./index_bg.wasm' '--external:cloudflare:*' --outfile=build/index.js
echo "$mode" > build/.mode
echo "built build/ ($mode)"
