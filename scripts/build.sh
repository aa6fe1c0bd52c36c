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
