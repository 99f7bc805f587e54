#!/usr/bin/env bash
# Fails if the dependency graph (normal, build and dev dependencies, every feature) holds a crate that compiles C:
# a *-sys crate, ring, aws-lc, or cc itself. linux-raw-sys (dev-only, through tempfile) is allowed: it is
# Rust bindings to raw syscalls, with no C and no build script.
set -euo pipefail
cd "$(dirname "$0")/.."
bad=$(cargo tree --all-features --prefix none -e normal,build,dev \
    | sed 's/ (\*)$//' | sort -u | grep -E -- '^([a-z0-9_-]+-sys|ring|aws-lc-rs|aws-lc-sys|cc|cmake|openssl) v' \
    | grep -v -E '^linux-raw-sys v' || true)
if [ -n "$bad" ]; then
    echo "purity: these crates need a C toolchain:"; echo "$bad"; exit 1
fi
echo "purity: no *-sys, ring, aws-lc or cc crate in the dependency graph"
