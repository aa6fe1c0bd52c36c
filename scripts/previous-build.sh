#!/usr/bin/env bash
# Builds session-state as it was at each given commit into target/previous-<commit>/build, once:
# the upgrade tests (tests/e2e/upgrade*.test.mjs) seed storage the way those versions wrote it.
#
# The builds share one Cargo target directory (target/previous/cargo), so the dependencies are
# compiled once for all of them (about 70 s for the first build, 15-25 s for each next one, against
# about 115 s each with a target directory apiece). One build at a time, under a lock: `npm test`
# starts these in the background while the end-to-end tests begin, and a test that needs a build
# before it is done waits here for it instead of starting a second one.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
mkdir -p target/previous
exec 9>target/previous/.lock
flock 9
for commit in "$@"; do
  dir="target/previous-$commit"
  [ -f "$dir/build/index.js" ] && continue
  rm -rf "$dir"
  mkdir -p "$dir"
  git archive "$commit" | tar -x -C "$dir"
  ln -s "$ROOT/node_modules" "$dir/node_modules"
  echo "[previous-build] building $commit" >&2
  (cd "$dir" && CARGO_TARGET_DIR="$ROOT/target/previous/cargo" bash scripts/build.sh) >&2
done
