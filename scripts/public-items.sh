#!/usr/bin/env bash
# Counts the public items per top-level module as rustdoc sees them (every feature on): builds the docs,
# then reads them with scripts/public-items.py. Extra arguments go to `cargo doc`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo doc --no-deps --all-features -q "$@"
target="$(bash scripts/target-dir.sh)"
python3 scripts/public-items.py "$target/doc/kafka_event_bus"
