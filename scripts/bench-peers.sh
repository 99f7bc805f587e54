#!/usr/bin/env bash
# The publish benchmark of issue 4: kafka-event-bus (examples/bench.rs) and rust-rdkafka
# (benches/peers/rdkafka) publish the same workload to one broker, with no compression and with gzip.
# Prints every JSON line, then the ratios kafka-event-bus / rust-rdkafka (medians when RUNS > 1) of
# throughput, peak RSS and client CPU time per event (user + system, from each program's stderr).
#
#   scripts/bench-peers.sh [EVENTS] [PARTITIONS]
#
# Environment: KAFKA_BOOTSTRAP_SERVERS (use that broker instead of starting a local Tansu),
# BENCH_PORT (the local broker's port, default 19392), RUNS (rounds, default 1; each round runs the two
# clients one after the other, alternating which goes first), CODECS (default "none gzip"),
# RDKAFKA_API (base: BaseProducer and a delivery callback, librdkafka's fastest path, the default; or future:
# FutureProducer, one future per record like kafka-event-bus's send), VERIFY=1 (read every topic back with a librdkafka consumer
# and check it holds exactly the events sent: distinct, 7 headers, per-aggregate order).
set -euo pipefail
cd "$(dirname "$0")/.."

events=${1:-200000}
partitions=${2:-6}
runs=${RUNS:-1}
codecs=${CODECS:-none gzip}
api=${RDKAFKA_API:-base}
port=${BENCH_PORT:-19392}
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1}

echo "building (release): examples/bench, examples/local_broker, benches/peers/rdkafka" >&2
cargo build -q --release --example bench --example local_broker
cargo build -q --release --manifest-path benches/peers/rdkafka/Cargo.toml
ours=target/release/examples/bench
peer=benches/peers/rdkafka/target/release/bench-peer-rdkafka

# Both programs include benches/common/workload.rs; check they also generate the same bytes.
if [ "$("$ours" --fingerprint --events "$events" | sed 's/,"generate.*//')" != \
     "$("$peer" --fingerprint --events "$events" | sed 's/,"generate.*//')" ]; then
    echo "the two workloads differ: compare --fingerprint of both programs" >&2; exit 1
fi

broker_pid=
stop_broker() {
    if [ -n "$broker_pid" ]; then kill "$broker_pid" 2>/dev/null || true; wait "$broker_pid" 2>/dev/null || true; fi
}
trap stop_broker EXIT
if [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
    target/release/examples/local_broker --port "$port" > target/bench-broker.log 2>&1 &
    broker_pid=$!
    for _ in $(seq 600); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
        if ! kill -0 "$broker_pid" 2>/dev/null; then cat target/bench-broker.log >&2; exit 1; fi
        sleep 0.1
    done
    export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$port
fi
echo "broker: $KAFKA_BOOTSTRAP_SERVERS; $events events, $partitions partitions, $runs run(s), rdkafka api $api" >&2

if [ "${VERIFY:-0}" = 1 ]; then export BENCH_KEEP_TOPIC=1; fi
results=$(mktemp)
log=$(mktemp)
for run in $(seq "$runs"); do
    for codec in $codecs; do
        ours_cmd=("$ours" --events "$events" --partitions "$partitions" --compression "$codec")
        peer_cmd=("$peer" --events "$events" --partitions "$partitions" --compression "$codec" --api "$api")
        if [ $((run % 2)) -eq 1 ]; then order=(ours peer); else order=(peer ours); fi
        for who in "${order[@]}"; do
            if [ "$who" = ours ]; then line=$("${ours_cmd[@]}" 2> "$log"); else line=$("${peer_cmd[@]}" 2> "$log"); fi || { cat "$log" >&2; exit 1; }
            echo "$line"
            cpu=$(grep -F '"cpu_us_per_event"' "$log" | sed -n 's/.*"cpu_us_per_event":\([0-9.]*\).*/\1/p')
            echo "${line%\}},\"cpu_us_per_event\":${cpu:-0}}" >> "$results"
            if [ "${VERIFY:-0}" = 1 ]; then
                "$peer" --events "$events" --partitions "$partitions" --verify "$(sed -n 's/^topic: //p' "$log")" >&2
            fi
        done
    done
done

# Medians per client and codec, and the ratios.
awk '
    function field(name,   m) { if (match($0, "\"" name "\":\"?[^,\"}]*")) { m = substr($0, RSTART, RLENGTH); sub(/.*:"?/, "", m); return m } }
    { c = field("client"); z = field("compression"); key = c SUBSEP z
      n[key]++; eps[key, n[key]] = field("publish_events_per_s") + 0; rss[key, n[key]] = field("peak_rss_mb") + 0
      cpu[key, n[key]] = field("cpu_us_per_event") + 0
      if (!(z in seen)) { seen[z] = 1; codecs[++nc] = z } }
    function median(arr, key, count,   i, j, t, v) {
        for (i = 1; i <= count; i++) v[i] = arr[key, i]
        for (i = 1; i <= count; i++) for (j = i + 1; j <= count; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
        return count % 2 ? v[(count + 1) / 2] : (v[count / 2] + v[count / 2 + 1]) / 2
    }
    END {
        for (i = 1; i <= nc; i++) {
            z = codecs[i]; a = "kafka-event-bus" SUBSEP z; b = "rust-rdkafka" SUBSEP z
            if (!n[a] || !n[b]) continue
            ea = median(eps, a, n[a]); eb = median(eps, b, n[b]); ra = median(rss, a, n[a]); rb = median(rss, b, n[b])
            ca = median(cpu, a, n[a]); cb = median(cpu, b, n[b])
            printf "%s: kafka-event-bus %.0f ev/s, rust-rdkafka %.0f ev/s, ratio %.2f; peak RSS %.1f / %.1f MiB (ratio %.2f); client CPU %.2f / %.2f us per event (ratio %.2f)\n", z, ea, eb, ea / eb, ra, rb, ra / rb, ca, cb, ca / cb
        }
    }' "$results"
rm -f "$results" "$log"
