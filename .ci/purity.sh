#!/usr/bin/env bash
# Fails if the dependency graph (normal, build and dev dependencies, every feature, every target of the
# README's Platforms table) holds a crate that compiles C, or a license outside the allow-list, or if it
# turns on a serde_json feature that would change the user's whole program (`preserve_order`,
# `float_roundtrip`, `arbitrary_precision`: features unify).
#
# With cargo-deny (installed by .ci/run; on PATH or under the target directory's ci-tools), the check is
# `cargo deny check bans licenses` with deny.toml: a deny-list of C crates, only reviewed crates may have a
# build script (every crate that compiles C has one), the serde_json feature ban, the license allow-list.
# It runs offline once the registry has the crates (`cargo fetch` first).
#
# Without cargo-deny (a platform the pinned binary does not exist for), a fallback greps `cargo tree` per
# target for *-sys, ring, aws-lc, cc, cmake or openssl crates and the serde_json features; it cannot check
# licenses or build scripts. linux-raw-sys (dev-only, through tempfile) is allowed there: Rust bindings to
# raw syscalls, no C, no build script.
set -euo pipefail
cd "$(dirname "$0")/.."

deny=""
if command -v cargo-deny >/dev/null 2>&1; then
    deny=cargo-deny
else
    tools="$(bash scripts/target-dir.sh)/ci-tools/bin/cargo-deny"
    if [ -x "$tools" ]; then deny="$tools"; fi
fi

if [ -n "$deny" ]; then
    cargo fetch --quiet
    echo "purity: $("$deny" --version): bans and licenses (deny.toml)"
    exec "$deny" --offline --log-level error check bans licenses
fi

echo "purity: cargo-deny not found; falling back to cargo tree (no license or build-script check)"
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
    forced=$(cargo tree --all-features --prefix none -e normal,build,dev,features --target "$target" -i serde_json \
        | grep -o -E 'serde_json feature "(preserve_order|float_roundtrip|arbitrary_precision)"' | sort -u || true)
    if [ -n "$forced" ]; then
        echo "purity: $target: serde_json features that would change the user's program:"; echo "$forced"; status=1
    fi
done
exit $status
