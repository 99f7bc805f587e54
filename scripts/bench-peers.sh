#!/usr/bin/env bash
# The peer benchmarks: kafka-event-bus (examples/bench.rs) and rust-rdkafka
# (benches/peers/rdkafka) on one broker, with no compression and with gzip:
#   publish  both publish the same workload to fresh topics (kafka-event-bus's topic is kept for the next steps);
#   consume  both read that topic back in fresh groups (raw Consumer / BaseConsumer), decoding every value;
#   bus      kafka-event-bus's full bus path (decode into typed events, dispatch, commit) over the same topic;
#   slow     kafka-event-bus's bus with 2 ms handlers over the same topic for 10 s: peak RSS vs the backlog;
#   latency  publish -> handler latency at LATENCY_RATE events/s: the bus, the raw client and rust-rdkafka,
#            each with a 10 ms fetch max wait.
# Prints every JSON line, then medians and ratios kafka-event-bus / rust-rdkafka (throughput, peak RSS, client
# CPU time per event from each program's stderr, latency percentiles).
#
#   scripts/bench-peers.sh [EVENTS] [PARTITIONS]
#
# Environment: KAFKA_BOOTSTRAP_SERVERS (use that broker instead of starting a local Tansu),
# BENCH_PORT (the local broker's port, default 19392), RUNS (rounds, default 1; each round runs the
# clients one after the other, alternating which goes first), CODECS (default "none gzip"),
# MODES (default "publish consume bus slow latency"), LATENCY_EVENTS (default 20000), LATENCY_RATE (default 2000),
# RDKAFKA_API (base: BaseProducer and a delivery callback, librdkafka's fastest path, the default; or future:
# FutureProducer, one future per record like kafka-event-bus's send), VERIFY=1 (read every published topic
# back with a librdkafka consumer and check it holds exactly the events sent: distinct, 7 headers,
# per-aggregate order), IDEMPOTENCE (true or false, default false: both producers publish with the same
# setting; kafka-event-bus's default with acks=all is true, librdkafka's is false, and Tansu's idempotent
# path costs the broker more with each run, so true measures the broker more than the clients).
# PARTITIONS="6 100 1000" (a list) runs everything once per partition count, each on a fresh broker, with
# its own summary (and ignores the PARTITIONS argument).
set -euo pipefail
cd "$(dirname "$0")/.."

events=${1:-200000}
partitions=${2:-6}
runs=${RUNS:-1}
codecs=${CODECS:-none gzip}
modes=" ${MODES:-publish consume bus slow latency} "
latency_events=${LATENCY_EVENTS:-20000}
latency_rate=${LATENCY_RATE:-2000}
api=${RDKAFKA_API:-base}
port=${BENCH_PORT:-19392}
idempotence=${IDEMPOTENCE:-false}
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1}
has_mode() { [[ "$modes" == *" $1 "* ]]; }
if [ -n "${PARTITIONS:-}" ]; then
    for count in $PARTITIONS; do
        echo "== $count partitions =="
        PARTITIONS= bash "$0" "$events" "$count"
    done
    exit 0
fi

echo "building (release): examples/bench, examples/local_broker, benches/peers/rdkafka" >&2
cargo build -q --release --example bench --example local_broker
cargo build -q --release --manifest-path benches/peers/rdkafka/Cargo.toml
target="$(bash scripts/target-dir.sh)"   # CARGO_TARGET_DIR when set
ours="$target/release/examples/bench"
peer="$(bash scripts/target-dir.sh --manifest-path benches/peers/rdkafka/Cargo.toml)/release/bench-peer-rdkafka"

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
    "$target/release/examples/local_broker" --port "$port" > "$target/bench-broker.log" 2>&1 &
    broker_pid=$!
    for _ in $(seq 600); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
        if ! kill -0 "$broker_pid" 2>/dev/null; then cat "$target/bench-broker.log" >&2; exit 1; fi
        sleep 0.1
    done
    export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$port
fi
echo "broker: $KAFKA_BOOTSTRAP_SERVERS; $events events, $partitions partitions, $runs run(s), modes${modes% }, rdkafka api $api, idempotence $idempotence" >&2

results=$(mktemp)
log=$(mktemp)
trap 'stop_broker; rm -f "$results" "$log"' EXIT
# Runs one program (stderr to $log), prints its JSON line and records it with its CPU time per event.
measure() {
    local line cpu
    line=$("$@" 2> "$log") || { cat "$log" >&2; exit 1; }
    echo "$line"
    cpu=$(grep -F '"cpu_us_per_event"' "$log" | tail -1 | sed -n 's/.*"cpu_us_per_event":\([0-9.]*\).*/\1/p' || true)
    echo "${line%\}},\"cpu_us_per_event\":${cpu:-0}}" >> "$results"
}
# Runs "ours" and "peer" commands (the arrays ours_cmd and peer_cmd) in the round's order.
both() {
    local who
    if [ $((run % 2)) -eq 1 ]; then order=(ours peer); else order=(peer ours); fi
    for who in "${order[@]}"; do
        if [ "$who" = ours ]; then measure "${ours_cmd[@]}"; else measure "${peer_cmd[@]}"; fi
    done
}

for run in $(seq "$runs"); do
    for codec in $codecs; do
        common=(--events "$events" --partitions "$partitions" --compression "$codec")
        topic=
        if has_mode publish || has_mode consume || has_mode bus || has_mode slow; then
            # kafka-event-bus's topic is kept for the consume and bus runs (and named PREFIX.stream for the bus).
            ours_cmd=(env BENCH_KEEP_TOPIC=1 "$ours" --mode publish "${common[@]}" --idempotence "$idempotence")
            peer_cmd=("$peer" --mode publish "${common[@]}" --api "$api" --idempotence "$idempotence")
            if [ "${VERIFY:-0}" = 1 ]; then peer_cmd=(env BENCH_KEEP_TOPIC=1 "${peer_cmd[@]}"); fi
            if has_mode publish; then
                if [ $((run % 2)) -eq 1 ]; then order=(ours peer); else order=(peer ours); fi
                for who in "${order[@]}"; do
                    if [ "$who" = ours ]; then measure "${ours_cmd[@]}"; topic=$(sed -n 's/^topic: //p' "$log");
                    else measure "${peer_cmd[@]}"; fi
                    if [ "${VERIFY:-0}" = 1 ]; then
                        "$peer" "${common[@]}" --verify "$(sed -n 's/^topic: //p' "$log")" >&2
                    fi
                done
            else
                "${ours_cmd[@]}" > /dev/null 2> "$log" || { cat "$log" >&2; exit 1; }
                topic=$(sed -n 's/^topic: //p' "$log")
            fi
        fi
        if has_mode consume; then
            ours_cmd=("$ours" --mode consume --topic "$topic" "${common[@]}")
            peer_cmd=("$peer" --mode consume --topic "$topic" "${common[@]}")
            both
        fi
        if has_mode bus; then
            measure "$ours" --mode bus --topic "$topic" "${common[@]}"
        fi
        if has_mode slow; then
            # No peer: the bus's memory with handlers far slower than the fetcher (the backlog stays in
            # the broker; peak RSS is bounded by the fetch buffers, not by the backlog).
            measure "$ours" --mode slow-bus --topic "$topic" "${common[@]}"
        fi
        if [ -n "$topic" ] && [ "${VERIFY:-0}" != 1 ]; then
            "$ours" --mode delete --topic "$topic" "${common[@]}"
        fi
    done
    if has_mode latency; then
        common=(--events "$latency_events" --partitions "$partitions" --compression none --rate "$latency_rate")
        ours_cmd=("$ours" --mode latency "${common[@]}")
        peer_cmd=("$peer" --mode latency "${common[@]}")
        both
        measure "$ours" --mode latency-raw "${common[@]}"
    fi
done

# Medians per client, mode and codec, and the ratios.
awk '
    function field(name,   m) { if (match($0, "\"" name "\":\"?[^,\"}]*")) { m = substr($0, RSTART, RLENGTH); sub(/.*:"?/, "", m); return m } return "" }
    {
        key = field("client") SUBSEP field("mode") SUBSEP field("compression")
        i = ++n[key]
        split("publish_events_per_s consume_events_per_s bus_events_per_s p50_ms p99_ms max_ms peak_rss_mb cpu_us_per_event join_ms first_event_ms backlog_mb handled", names, " ")
        for (f in names) { v = field(names[f]); if (v != "") val[key, names[f], i] = v + 0 }
        z = field("compression"); if (!(z in seen)) { seen[z] = 1; codecs[++nc] = z }
    }
    function median(key, name,   count, i, j, t, v, m) {
        count = n[key]; m = 0
        for (i = 1; i <= count; i++) if ((key, name, i) in val) v[++m] = val[key, name, i]
        if (!m) return 0
        for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
        return m % 2 ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2
    }
    function ratio(a, b) { return b ? a / b : 0 }
    function compare(label, a, b, metric,   ea, eb, ra, rb, ca, cb) {
        if (!n[a] || !n[b]) return
        ea = median(a, metric); eb = median(b, metric); ra = median(a, "peak_rss_mb"); rb = median(b, "peak_rss_mb")
        ca = median(a, "cpu_us_per_event"); cb = median(b, "cpu_us_per_event")
        printf "%s: kafka-event-bus %.0f ev/s, rust-rdkafka %.0f ev/s, ratio %.2f; peak RSS %.1f / %.1f MiB (ratio %.2f)", label, ea, eb, ratio(ea, eb), ra, rb, ratio(ra, rb)
        if (ca && cb) printf "; client CPU %.2f / %.2f us per event (ratio %.2f)", ca, cb, ratio(ca, cb)
        printf "\n"
    }
    function latency(label, a, b,   pa, pb, qa, qb) {
        if (!n[a] || !n[b]) return
        pa = median(a, "p50_ms"); pb = median(b, "p50_ms"); qa = median(a, "p99_ms"); qb = median(b, "p99_ms")
        printf "%s: p50 %.1f / %.1f ms, p99 %.1f / %.1f ms (p99 ratio %.2f); peak RSS %.1f / %.1f MiB\n", label, pa, pb, qa, qb, ratio(qa, qb), median(a, "peak_rss_mb"), median(b, "peak_rss_mb")
    }
    END {
        o = "kafka-event-bus"; r = "rust-rdkafka"
        for (i = 1; i <= nc; i++) {
            z = codecs[i]
            compare("publish " z, o SUBSEP "publish" SUBSEP z, r SUBSEP "publish" SUBSEP z, "publish_events_per_s")
            compare("consume " z, o SUBSEP "consume" SUBSEP z, r SUBSEP "consume" SUBSEP z, "consume_events_per_s")
            if (n[o SUBSEP "bus" SUBSEP z] && n[r SUBSEP "consume" SUBSEP z]) {
                a = o SUBSEP "bus" SUBSEP z; b = r SUBSEP "consume" SUBSEP z
                printf "bus %s (vs rust-rdkafka consume): %.0f / %.0f ev/s, ratio %.2f; peak RSS %.1f / %.1f MiB (ratio %.2f)\n", z, median(a, "bus_events_per_s"), median(b, "consume_events_per_s"), ratio(median(a, "bus_events_per_s"), median(b, "consume_events_per_s")), median(a, "peak_rss_mb"), median(b, "peak_rss_mb"), ratio(median(a, "peak_rss_mb"), median(b, "peak_rss_mb"))
            }
            a = o SUBSEP "consume" SUBSEP z; b = r SUBSEP "consume" SUBSEP z
            if (n[a] && n[b]) printf "join (subscribe -> first assignment) %s: %.0f / %.0f ms\n", z, median(a, "join_ms"), median(b, "join_ms")
            a = o SUBSEP "slow-bus" SUBSEP z
            if (n[a]) printf "slow bus %s (2 ms handlers, 10 s): %.0f events handled, backlog %.1f MiB, peak RSS %.1f MiB\n", z, median(a, "handled"), median(a, "backlog_mb"), median(a, "peak_rss_mb")
        }
        latency("latency bus (10 ms fetch wait) vs rust-rdkafka (10 ms)", o SUBSEP "latency" SUBSEP "none", r SUBSEP "latency" SUBSEP "none")
        latency("latency raw client (10 ms) vs rust-rdkafka (10 ms)", o SUBSEP "latency-raw" SUBSEP "none", r SUBSEP "latency" SUBSEP "none")
    }' "$results"
