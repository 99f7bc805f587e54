#!/usr/bin/env python3
"""A librdkafka (confluent-kafka) member for the rebalance storm trial (`group::storm_full`).

Same interface as `examples/consume`: `--prefix P --group G --out FILE`, settings from
KAFKA_BOOTSTRAP_SERVERS, KAFKA_SESSION_TIMEOUT_MS and KAFKA_HEARTBEAT_INTERVAL_MS. It reads
`P.stream` in group G with the classic protocol and the range assignor (eager, like the bus's default;
KAFKA_PARTITION_ASSIGNMENT_STRATEGY names another, e.g. cooperative-sticky),
appends `event_id partition offset` per record to FILE (flushed at once), stores the offset after
writing it (at least once) and commits every second; SIGINT or SIGTERM closes the consumer (commit,
LeaveGroup). Rebalance callbacks are logged to stderr with the time, and the first record handled after
each assignment. STORM_RDKAFKA_DEBUG (e.g. `cgrp`) turns on librdkafka's debug contexts (to stderr).

    python3 -m venv target/peers-venv && target/peers-venv/bin/pip install confluent-kafka
    STORM_MEMBER="target/peers-venv/bin/python benches/peers/storm/member.py" STORM_RUNS=5 \
        cargo test --test broker -- --include-ignored --nocapture group::storm_full
"""

import os
import signal
import sys
import time

from confluent_kafka import Consumer, KafkaError


def arg(name):
    argv = sys.argv[1:]
    return argv[argv.index("--" + name) + 1] if "--" + name in argv else None


FIRST = []


def log(what, partitions):
    parts = sorted(p.partition for p in partitions)
    print(f"{time.time():.3f} {what} {parts}", file=sys.stderr, flush=True)
    if what == "assigned":
        FIRST.append(1)


def main():
    prefix, group, out = arg("prefix"), arg("group"), arg("out")
    consumer = Consumer(
        {
            "bootstrap.servers": os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092"),
            "group.id": group,
            "session.timeout.ms": int(os.environ.get("KAFKA_SESSION_TIMEOUT_MS", "6000")),
            "heartbeat.interval.ms": int(os.environ.get("KAFKA_HEARTBEAT_INTERVAL_MS", "1000")),
            "partition.assignment.strategy": os.environ.get("KAFKA_PARTITION_ASSIGNMENT_STRATEGY", "range"),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
            "auto.commit.interval.ms": 1000,
            "enable.auto.offset.store": False,
            **({"debug": os.environ["STORM_RDKAFKA_DEBUG"]} if os.environ.get("STORM_RDKAFKA_DEBUG") else {}),
        }
    )
    stop = []
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    consumer.subscribe(
        [prefix + ".stream"],
        on_assign=lambda c, ps: log("assigned", ps),
        on_revoke=lambda c, ps: log("revoked", ps),
        on_lost=lambda c, ps: log("lost", ps),
    )
    with open(out, "a") as sink:
        while not stop:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    print(f"{time.time():.3f} error {msg.error()}", file=sys.stderr, flush=True)
                continue
            headers = dict(msg.headers() or [])
            event_id = headers.get("event_id", b"").decode()
            sink.write(f"{event_id} {msg.partition()} {msg.offset()}\n")
            sink.flush()
            consumer.store_offsets(msg)
            if FIRST:
                FIRST.clear()
                print(f"{time.time():.3f} first record handled p{msg.partition()}", file=sys.stderr, flush=True)
    consumer.close()


if __name__ == "__main__":
    main()
