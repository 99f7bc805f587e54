#!/usr/bin/env bash
# Counts the public items per top-level module as rustdoc sees them: builds the docs, then reads them
# with scripts/public-items.py. Arguments go to `cargo doc` in place of the default `--all-features`;
# the stable surface (no `unstable` feature): --features client,testing,tls-graviola,tls-rustcrypto
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$#" -eq 0 ]; then set -- --all-features; fi
target="$(bash scripts/target-dir.sh)"
rm -rf "$target/doc/kafka_event_bus"
cargo doc --no-deps -q "$@"
python3 scripts/public-items.py "$target/doc/kafka_event_bus"
