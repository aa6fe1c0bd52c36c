#!/usr/bin/env bash
# Builds the release worker into build/ (what wrangler.toml's `main` points at).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
worker-build --release
