#!/usr/bin/env bash
# The group benchmark: a consumer group of MEMBERS separate processes on a PARTITIONS-partition topic,
# under a steady stream of RATE events/s, through four changes (the first assignment, a member joining,
# a member closing cleanly, a member killed -9): how long each takes to settle (every partition consumed
# again) and how many events are handled again. kafka-event-bus (examples/consume) and librdkafka
# (confluent-kafka, benches/peers/storm/member.py), each with the eager range assignor and with
# cooperative-sticky, on one local broker. The driver is benches/peers/group/bench_group.py.
# Prints one JSON line per measurement, then a table per client and strategy (medians over RUNS).
#
#   scripts/bench-group.sh [MEMBERS] [PARTITIONS]
#
# Environment: KAFKA_BOOTSTRAP_SERVERS (use that broker instead of starting a local Tansu), BENCH_PORT
# (the local broker's port, default 19393), RUNS (default 1), RATE (default 1000), CLIENTS (default
# "kafka-event-bus librdkafka"), STRATEGIES (default "range cooperative-sticky"), PEERS_VENV (a Python
# venv with confluent-kafka; default: one made under the target directory on first use), GROUP_LOGS (a
# directory to keep the member logs and handled-event files in; default: a fresh temporary directory).
set -euo pipefail
cd "$(dirname "$0")/.."

members=${1:-10}
partitions=${2:-60}
runs=${RUNS:-1}
rate=${RATE:-1000}
clients=${CLIENTS:-kafka-event-bus librdkafka}
strategies=${STRATEGIES:-range cooperative-sticky}
port=${BENCH_PORT:-19393}
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1}

echo "building (release): examples/consume, examples/publish, examples/local_broker" >&2
cargo build -q --release --example consume --example publish --example local_broker
target="$(bash scripts/target-dir.sh)"   # CARGO_TARGET_DIR when set
venv=${PEERS_VENV:-$target/peers-venv}
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import confluent_kafka' 2>/dev/null; then
    echo "installing confluent-kafka (PyPI) into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q confluent-kafka
fi
python="$venv/bin/python"

broker_pid=
stop_broker() {
    if [ -n "$broker_pid" ]; then kill "$broker_pid" 2>/dev/null || true; wait "$broker_pid" 2>/dev/null || true; fi
}
trap stop_broker EXIT
if [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
    "$target/release/examples/local_broker" --port "$port" > "$target/bench-group-broker.log" 2>&1 &
    broker_pid=$!
    for _ in $(seq 600); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
        if ! kill -0 "$broker_pid" 2>/dev/null; then cat "$target/bench-group-broker.log" >&2; exit 1; fi
        sleep 0.1
    done
    export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$port
fi
logs=${GROUP_LOGS:-$(mktemp -d)}
echo "broker: $KAFKA_BOOTSTRAP_SERVERS; $members members, $partitions partitions, $rate events/s, $runs run(s); logs in $logs" >&2

results=$(mktemp)
trap 'stop_broker; rm -f "$results"' EXIT
for run in $(seq "$runs"); do
    for strategy in $strategies; do
        for client in $clients; do
            case $client in
                kafka-event-bus) member="$target/release/examples/consume" ;;
                librdkafka) member="$python benches/peers/storm/member.py" ;;
                *) echo "unknown client $client" >&2; exit 1 ;;
            esac
            "$python" benches/peers/group/bench_group.py --client "$client" --strategy "$strategy" \
                --members "$members" --partitions "$partitions" --rate "$rate" \
                --member "$member" --publisher "$target/release/examples/publish" \
                --dir "$logs/$client-$strategy-$run" | tee -a "$results"
        done
    done
done

"$python" benches/peers/group/bench_group.py --table < "$results"
