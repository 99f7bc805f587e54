# Day-to-day tasks. The README's two commands (`cargo run --example quickstart`, `cargo test`) need none of this.

musl := "x86_64-unknown-linux-musl"
port := env_var_or_default("KAFKA_PORT", "9092")
# Where cargo builds (CARGO_TARGET_DIR when set), asked of cargo.
target := `bash scripts/target-dir.sh`

# List the recipes.
default:
    @just --list

# Start a local broker (Tansu, in-memory) on 127.0.0.1:{{port}} in the background.
broker-up:
    #!/usr/bin/env bash
    set -euo pipefail
    cargo build -q --example local_broker
    nohup "{{target}}/debug/examples/local_broker" --port {{port}} > "{{target}}/local-broker.log" 2>&1 &
    echo $! > "{{target}}/local-broker.pid"
    for _ in $(seq 100); do
        if (exec 3<>/dev/tcp/127.0.0.1/{{port}}) 2>/dev/null; then
            echo "broker up: export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:{{port}}"; exit 0
        fi
        sleep 0.1
    done
    cat "{{target}}/local-broker.log"; exit 1

# Stop the broker started by broker-up.
broker-down:
    #!/usr/bin/env bash
    pid="{{target}}/local-broker.pid"
    if [ -f "$pid" ]; then kill "$(cat "$pid")" 2>/dev/null || true; rm -f "$pid"; fi

# The quick start, end to end (on a throwaway broker unless KAFKA_BOOTSTRAP_SERVERS is set).
demo:
    cargo run --example quickstart

# Every test, against a real broker.
test:
    cargo test

# The public API per module as rustdoc documents it: the semver surface (no `unstable`), then everything.
api:
    bash scripts/public-items.sh --features client,testing,tls-graviola,tls-rustcrypto
    bash scripts/public-items.sh

# Formatting, clippy with warnings as errors, and rustdoc with warnings as errors: with every feature, and
# as docs.rs and users see it (without `unstable`, where a link to an internal item is an error).
lint:
    cargo fmt --all -- --check
    cargo clippy --all-targets --all-features -- -D warnings
    RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --all-features
    RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --features client,testing,serde,tls-graviola,tls-rustcrypto

# No C toolchain: build with CC=/bin/false, no *-sys/ring/aws-lc crate, and a static musl quickstart that runs.
pure:
    CC=/bin/false CXX=/bin/false cargo build --all-features --all-targets
    bash .ci/purity.sh
    rustup target add {{musl}}
    CC=/bin/false CXX=/bin/false CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld \
        CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="-C link-self-contained=yes" \
        cargo build --example quickstart --target {{musl}}
    readelf -l "{{target}}/{{musl}}/debug/examples/quickstart" | grep -q INTERP && { echo 'not statically linked'; exit 1; } || echo 'static binary: no program interpreter'
    "{{target}}/{{musl}}/debug/examples/quickstart"

# Other Linux targets and CPUs, C-free, end to end plaintext and TLS, native or under qemu (README: Platforms).
cross:
    bash .ci/cross.sh

# The core (events, codec, in-memory bus; no sockets) for wasm32-wasip1, run under wasmtime.
wasm:
    bash .ci/wasi.sh

# Criterion benchmarks (the record-batch encode/decode path per codec).
bench:
    cargo bench --bench encode

# The peer benchmarks: publish, consume, the bus path and publish->handler latency of
# kafka-event-bus and rust-rdkafka (librdkafka built from source with the system C compiler, outside the
# library's tree) on one local broker, none and gzip; JSON lines + medians and ratios. RUNS=3 for medians.
# PARTITIONS="6 100 1000" MODES="publish consume bus": one summary per partition count (the curve).
bench-peers events="200000" partitions="6":
    bash scripts/bench-peers.sh {{events}} {{partitions}}

# The group benchmark: MEMBERS member processes on a PARTITIONS-partition topic at 1,000 events/s, through
# the first assignment, a join, a clean leave and a kill -9: settle times and events handled again, for
# kafka-event-bus and librdkafka (confluent-kafka from PyPI), eager range and cooperative-sticky.
bench-group members="10" partitions="60":
    bash scripts/bench-group.sh {{members}} {{partitions}}

# N full consumer-group rebalance storms, member logs kept when one fails. The members are the release
# build of `examples/consume` (a debug member handles ~50x fewer events per CPU second, so on a loaded
# machine its drain, not the group, would take the time); `STORM_MEMBER` names another member program.
storm N="10":
    cargo build --release --example consume
    STORM_MEMBER="${STORM_MEMBER:-{{target}}/release/examples/consume}" STORM_RUNS={{N}} cargo test --test broker -- --include-ignored --nocapture group_storm::storm_full

# The persistent broker (Tansu on a local S3 server) killed -9 and frozen, a blackholed link; the first
# run installs the S3 server (PyPI moto[server]) under the target directory.
# The fault trials (about a minute on two cores).
faults:
    KAFKA_EVENT_BUS_FAULTS=1 cargo test --test broker -- faults_

# One bus publishes and consumes at RATE events/s; RSS, tasks and sockets at start, quarters and end.
# The soak: SECONDS of steady load, one JSON line.
soak seconds="600" rate="500":
    cargo run --release --example bench -- --mode soak --seconds {{seconds}} --rate {{rate}} --partitions 3

# Coverage-guided fuzzing (libFuzzer via libfuzzer-sys, built on stable rustc: cargo-fuzz is not needed)
# of the response decoders (every API and version), frames, record batches and event JSON, `seconds` per
# target. A counting allocator fails a run that holds more than 64x its input. Needs a C++ compiler (for
# libFuzzer, outside the library's tree). Corpus in fuzz/corpus, crashes in fuzz/artifacts.
fuzz seconds="60" targets="responses frames record_batches event_json":
    #!/usr/bin/env bash
    set -euo pipefail
    # Seeds for the responses target: every API and version, rich and empty (from the guard's tests).
    KAFKA_EVENT_BUS_FUZZ_SEEDS="$PWD/fuzz/corpus/responses" \
        cargo test -q --lib protocol::guard::tests::write_fuzz_seeds
    cd fuzz
    export RUSTFLAGS="--cfg fuzzing -Cdebug-assertions -Coverflow-checks -Cpasses=sancov-module \
        -Cllvm-args=-sanitizer-coverage-level=4 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
        -Cllvm-args=-sanitizer-coverage-pc-table -Cllvm-args=-sanitizer-coverage-trace-compares"
    # An explicit --target keeps the coverage flags off build scripts and proc macros.
    host="$(rustc -vV | sed -n 's/^host: //p')"
    cargo build --release --bins --target "$host"
    for target in {{targets}}; do
        mkdir -p corpus/$target artifacts/$target
        "target/$host/release/$target" corpus/$target -max_total_time={{seconds}} -rss_limit_mb=2048 \
            -artifact_prefix=artifacts/$target/ -print_final_stats=1
    done
