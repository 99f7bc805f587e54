#!/usr/bin/env bash
# Other Linux targets and CPUs, without a C toolchain: builds the library with `client` and TLS for
# aarch64-unknown-linux-musl, i686-unknown-linux-musl, riscv64gc-unknown-linux-gnu and
# armv7-unknown-linux-gnueabihf (CC=/bin/false), links the quick start statically for the two musl targets
# (rust-lld, self-contained musl), and runs it end to end against a local broker, plaintext and through a
# TLS proxy: aarch64 under qemu, i686 natively, riscv64 and armv7 under qemu when Debian's cross gcc is
# there to link them (as a linker only: no C is compiled), and x86_64 under qemu with a CPU model without
# AVX2/ADX (graviola cannot run there: the RustCrypto provider must take over, not a panic).
# Each result is one "platform:" line, the source of the README's Platforms table.
# Installs what it needs: rustup targets, qemu-user-static and the cross linkers (apt, as root).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never CC=/bin/false CXX=/bin/false
target_dir="$(bash scripts/target-dir.sh)"
export CARGO_TARGET_DIR="$target_dir"   # the probe crate in .ci/cross shares the crate's build cache
step() { printf '\n--> %s\n' "$*"; }

musl_targets="aarch64-unknown-linux-musl i686-unknown-linux-musl"
gnu_targets="riscv64gc-unknown-linux-gnu armv7-unknown-linux-gnueabihf"

step "tools"
rustup target add $musl_targets $gnu_targets >/dev/null
need=()
command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
command -v riscv64-linux-gnu-gcc >/dev/null || need+=(gcc-riscv64-linux-gnu libc6-dev-riscv64-cross)
command -v arm-linux-gnueabihf-gcc >/dev/null || need+=(gcc-arm-linux-gnueabihf libc6-dev-armhf-cross)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null \
            || echo "cross: could not install ${need[*]}; the runs that need them are skipped"
    else
        echo "cross: not root, cannot install ${need[*]}; the runs that need them are skipped"
    fi
fi
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="-C link-self-contained=yes"
export CARGO_TARGET_I686_UNKNOWN_LINUX_MUSL_LINKER=rust-lld
export CARGO_TARGET_I686_UNKNOWN_LINUX_MUSL_RUSTFLAGS="-C link-self-contained=yes"
export CARGO_TARGET_RISCV64GC_UNKNOWN_LINUX_GNU_LINKER=riscv64-linux-gnu-gcc
export CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_LINKER=arm-linux-gnueabihf-gcc

# The probe crate takes the library's exact versions.
cp Cargo.lock .ci/cross/Cargo.lock
probe=(nice cargo build -q --manifest-path .ci/cross/Cargo.toml --bins)

step "brokers (native): plaintext and behind a TLS proxy"
nice cargo build -q --example local_broker --example tls_broker
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
plain_port=$(free_port)
tls_port=$(free_port)
"$target_dir/debug/examples/local_broker" --port "$plain_port" > "$target_dir/cross-broker.log" 2>&1 &
plain_pid=$!
"$target_dir/debug/examples/tls_broker" --port "$tls_port" > "$target_dir/cross-tls-broker.log" 2>&1 &
tls_pid=$!
trap 'kill $plain_pid $tls_pid 2>/dev/null || true; wait $plain_pid $tls_pid 2>/dev/null || true' EXIT
for port in "$plain_port" "$tls_port"; do
    for _ in $(seq 600); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
        sleep 0.1
    done
done
cat "$target_dir/cross-tls-broker.log"

failed=0
summary=()
# run NAME TARGET RUNNER... : the quick start plaintext and over TLS, and the provider this CPU gets.
run() {
    local name=$1 triple=$2; shift 2
    local dir="$target_dir/$triple/debug"
    [ "$triple" = host ] && dir="$target_dir/debug"
    local provider plain=failed tls=failed where
    where=${1:-native}
    provider=$("$@" "$dir/tls_provider" | sed -n 's/^tls provider: //p') || provider="none"
    if env KAFKA_TOPIC_PREFIX="cross-$name-plain" KAFKA_CONSUMER_GROUP="cross-$name-plain" KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:$plain_port" \
        timeout 180 "$@" "$dir/quickstart" > "$target_dir/cross-$name-plain.log" 2>&1; then
        plain=ok
    fi
    if env KAFKA_TOPIC_PREFIX="cross-$name-tls" KAFKA_CONSUMER_GROUP="cross-$name-tls" KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:$tls_port" KAFKA_SECURITY_PROTOCOL=SSL \
        KAFKA_SSL_CAFILE=tests/fixtures/tls/ca.pem \
        timeout 180 "$@" "$dir/quickstart" > "$target_dir/cross-$name-tls.log" 2>&1; then
        tls=ok
    fi
    grep -h '^Order created' "$target_dir/cross-$name-plain.log" "$target_dir/cross-$name-tls.log" || true
    local line="platform: $name target=$triple runs=${where##*/} tls_provider=$provider plaintext=$plain tls=$tls"
    echo "$line"
    summary+=("$line")
    if [ "$plain" != ok ] || [ "$tls" != ok ]; then
        failed=1
        tail -5 "$target_dir/cross-$name-plain.log" "$target_dir/cross-$name-tls.log"
    fi
}

for triple in $musl_targets; do
    step "$triple: build (C-free, static) and run"
    "${probe[@]}" --target "$triple"
    if readelf -l "$target_dir/$triple/debug/quickstart" | grep -q INTERP; then
        echo "$triple: not statically linked"; exit 1
    fi
    case $triple in
        aarch64-*) run aarch64 "$triple" qemu-aarch64-static ;;
        i686-*) run i686 "$triple" ;;
    esac
done

for triple in $gnu_targets; do
    case $triple in
        riscv64gc-*) linker=riscv64-linux-gnu-gcc qemu=qemu-riscv64-static sysroot=/usr/riscv64-linux-gnu name=riscv64 ;;
        armv7-*) linker=arm-linux-gnueabihf-gcc qemu=qemu-arm-static sysroot=/usr/arm-linux-gnueabihf name=armv7 ;;
    esac
    if command -v "$linker" >/dev/null && command -v "$qemu" >/dev/null; then
        # The probe builds the library (with `testing`, a superset of the default features) on the way.
        step "$triple: build (C-free), link with $linker (a linker only) and run under $qemu"
        "${probe[@]}" --target "$triple"
        run "$name" "$triple" "$qemu" -L "$sysroot"
    else
        step "$triple: build the library (C-free)"
        nice cargo build -q --lib --target "$triple"
        line="platform: $name target=$triple builds=ok runs=skipped (no $linker or $qemu)"
        echo "$line"
        summary+=("$line")
    fi
done

step "x86_64 without AVX2/ADX (qemu -cpu Nehalem): TLS through the fallback, no panic"
"${probe[@]}"
run x86_64-nehalem host qemu-x86_64-static -cpu Nehalem

step "summary"
printf '%s\n' "${summary[@]}"
exit $failed
