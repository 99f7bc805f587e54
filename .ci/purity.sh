#!/usr/bin/env bash
# Fails if the dependency graph (normal and build dependencies, every feature) holds a crate that compiles C:
# a *-sys crate, ring, aws-lc, or cc itself.
set -euo pipefail
cd "$(dirname "$0")/.."
bad=$(cargo tree --all-features --prefix none -e normal,build \
    | sed 's/ (\*)$//' | sort -u | grep -E -- '^([a-z0-9_-]+-sys|ring|aws-lc-rs|aws-lc-sys|cc|cmake|openssl) v' || true)
if [ -n "$bad" ]; then
    echo "purity: these crates need a C toolchain:"; echo "$bad"; exit 1
fi
echo "purity: no *-sys, ring, aws-lc or cc crate in the dependency graph"
