#!/usr/bin/env bash
# Every check, in order of cost: format, lints, doc links, native unit tests, Wasm tests under
# Node, the release build, a deploy dry run, then the end-to-end tests against `wrangler dev`.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

step() { printf '\n\033[1m[test]\033[0m %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --check

step "layers: imports only downward, the domain and services free of runtime types, no cycles"
node scripts/layers.mjs

step "docs: every relative link and anchor resolves; the configuration table names every variable"
node --test tests/docs/*.test.mjs

step "the module the runtime loads (src/worker.js): recovery from a panic, against stand-in bindings"
node --test tests/worker/*.test.mjs

step "cargo clippy (wasm32 and native, warnings denied)"
cargo clippy --target wasm32-unknown-unknown --all-targets --locked -- -D warnings
cargo clippy --all-targets --locked -- -D warnings

step "cargo doc: every intra-doc link resolves (private items documented, and linked, on purpose)"
RUSTDOCFLAGS="-D warnings -A rustdoc::private_intra_doc_links" \
  cargo doc --no-deps --document-private-items --locked --quiet

step "native unit tests"
cargo test --locked

step "wasm-bindgen-test under Node"
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
  cargo test --target wasm32-unknown-unknown --locked --test wasm

step "typed client: types match openapi.yaml, client and user-mgmt fixture type-check"
generated="$(mktemp --suffix=.ts)"
client/node_modules/.bin/openapi-typescript openapi.yaml --output "$generated" >/dev/null
diff -u client/src/openapi.ts "$generated" \
  || { echo "client/src/openapi.ts is stale: run npm run generate --prefix client" >&2; exit 1; }
rm -f "$generated"
client/node_modules/.bin/tsc --project client/tsconfig.json --noEmit
client/node_modules/.bin/tsc --project tests/fixtures/user-mgmt/tsconfig.json --noEmit

step "Hono middleware: unit tests against a stand-in service; the example type-checks"
npm test --prefix client --silent
client/node_modules/.bin/tsc --project examples/hono/tsconfig.json --noEmit

step "typed client: installs as a package (from a folder of a fresh clone, and packed)"
node --test tests/package/*.test.mjs

step "release build"
bash scripts/build.sh
# Size is reported, not budgeted: a Worker may be 64 MiB, and what users pay is startup and CPU,
# which `npm run bench` measures. This alarm only catches a runaway build (about twice today's).
node -e '
  const gzip = require("node:zlib").gzipSync(require("node:fs").readFileSync("build/index_bg.wasm"), { level: 9 }).length;
  console.log(`build/index_bg.wasm: ${(gzip / 1024).toFixed(1)} KiB gzip -9 (alarm at 450 KiB)`);
  if (gzip > 450 * 1024) { console.error("the Wasm grew past the alarm: find out why before raising it"); process.exit(1); }'

step "wrangler deploy --dry-run"
wrangler deploy --dry-run --env="" --outdir "$(mktemp -d)"

# Every end-to-end file runs against both backends, the two side by side: the tests mostly wait
# on the worker (and on expiries), so two runs on two cores take little longer than one. Each test
# has a time limit, and each file another (tests/e2e/harness.mjs) that also stops its servers.
# The earlier versions the upgrade tests start from build in the background meanwhile
# (scripts/previous-build.sh); those files run last and wait for them if need be.
step "end-to-end tests, both backends side by side (wrangler dev, local KV and Durable Objects)"
previous=$(grep -oP "^export const (PREVIOUS|SEALED_BEFORE|AUTH_BEFORE) = '\\K[0-9a-f]+" tests/e2e/harness.mjs)
mkdir -p target/previous
bash scripts/previous-build.sh $previous > target/previous/build.log 2>&1 &
builds=$!
files=$(ls tests/e2e/*.test.mjs | grep -v '/upgrade')
files="$files $(ls tests/e2e/upgrade*.test.mjs)"
e2e() {
  local backend=$1 label=$2 started=$SECONDS status
  set +e
  SESSION_BACKEND=$backend node --test --test-concurrency=1 --test-timeout=900000 $files 2>&1 \
    | tee "target/e2e-$label.log" | sed -u "s/^/[$label] /"
  status=${PIPESTATUS[0]}
  set -e
  echo "[$label] SESSION_BACKEND=$backend: exit $status after $((SECONDS - started)) s"
  return "$status"
}
e2e kv kv & kv=$!
e2e durable_object strong & strong=$!
failed=0
wait $kv || failed=1
wait $strong || failed=1
wait $builds || { cat target/previous/build.log >&2; failed=1; }
# The two runs' lines interleave, and a long log may be read only by its end: what went wrong in
# either, again, last. A test that timed out counts as cancelled, not failed; its `not ok` names it.
if [ "$failed" != 0 ]; then
  for label in kv strong; do
    step "what went wrong in the $label run (whole log: target/e2e-$label.log)"
    awk '/\[harness\]/ { print; next } /^ *not ok / { on = 1 } on { print } /^ *\.\.\.$/ { on = 0 }' "target/e2e-$label.log"
  done
fi
exit $failed
