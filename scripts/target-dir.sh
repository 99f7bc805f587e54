#!/usr/bin/env bash
# Prints the directory cargo builds into (CARGO_TARGET_DIR, build.target-dir or ./target), asked of cargo
# itself. Extra arguments go to `cargo metadata` (e.g. --manifest-path for another workspace).
set -euo pipefail
cargo metadata --format-version 1 --no-deps "$@" \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
