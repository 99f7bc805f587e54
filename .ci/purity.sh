#!/usr/bin/env bash
# Fails if the dependency graph (normal, build and dev dependencies, every feature) holds a crate that compiles C:
# a *-sys crate, ring, aws-lc, or cc itself. linux-raw-sys (dev-only, through tempfile) is allowed: it is
# Rust bindings to raw syscalls, with no C and no build script. Checked for every target of the README's
# Platforms table (dependencies differ per target: graviola exists only for x86_64 and aarch64).
set -euo pipefail
cd "$(dirname "$0")/.."
targets="$(rustc -vV | sed -n 's/^host: //p') x86_64-unknown-linux-musl aarch64-unknown-linux-musl
    i686-unknown-linux-musl riscv64gc-unknown-linux-gnu armv7-unknown-linux-gnueabihf wasm32-wasip1"
status=0
for target in $targets; do
    bad=$(cargo tree --all-features --prefix none -e normal,build,dev --target "$target" \
        | sed 's/ (\*)$//' | sort -u | grep -E -- '^([a-z0-9_-]+-sys|ring|aws-lc-rs|aws-lc-sys|cc|cmake|openssl) v' \
        | grep -v -E '^linux-raw-sys v' || true)
    if [ -n "$bad" ]; then
        echo "purity: $target: these crates need a C toolchain:"; echo "$bad"; status=1
    else
        echo "purity: $target: no *-sys, ring, aws-lc or cc crate in the dependency graph"
    fi
done
exit $status
