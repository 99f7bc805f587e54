#!/usr/bin/env python3
"""The group benchmark's driver: one consumer group of separate member processes on one topic, under a
steady stream of events, through four changes; one JSON line per measurement on stdout.

    bench_group.py --client kafka-event-bus|librdkafka --strategy range|cooperative-sticky \
        --member "PROGRAM ARGS" --publisher PROGRAM [--members 10] [--partitions 60] [--rate 1000] \
        [--dir DIR]

Members are `examples/consume` (kafka-event-bus) or `benches/peers/storm/member.py` (librdkafka, through
confluent-kafka): `--prefix P --group G --out FILE`, each handled event appended to FILE as
`event_id partition offset`. The driver creates `P.stream` with `--partitions` partitions, starts
`examples/publish` at `--rate` events/s (keys spread over 6,000 aggregates, so every partition gets a
steady share), and watches every member's FILE every 20 ms: a line is stamped with the time it was seen.

The changes, one after the other, each once the group has settled and then held for `--hold` seconds:
  first_assignment  `--members` members start at once;
  member_join       one more member starts;
  member_leave      one member is stopped with SIGINT (a clean close: commit, LeaveGroup);
  member_kill       another member is killed with SIGKILL (its partitions move after the session timeout).

A change has settled when every partition is consuming (an event handled within the last `--gap` seconds;
default max(1, 5 × partitions / rate), several of a partition's gaps between events)
by a live member, the joining member has handled events (member_join), and this has held for
`--stable` seconds. Its `settle_ms` runs from the change to the last partition's resumption: the first
event handled on a partition by another member than before the change, or after a gap of at least
`--gap` seconds (a partition that stopped for less than that and came back to the same member is not
counted). `redelivered` counts events handled a second (third...) time while the change was settling.
The last line sums the run: events handled, distinct, handled more than once, and offsets never handled
below each partition's highest handled offset (`missing`: should be 0).
"""

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import uuid

POLL = 0.02


class Member:
    def __init__(self, n, args, prefix, env):
        self.n = n
        self.out = os.path.join(args.dir, f"member-{n}.txt")
        self.log = open(os.path.join(args.dir, f"member-{n}.log"), "w")
        command = shlex.split(args.member) + ["--prefix", prefix, "--group", prefix, "--out", self.out]
        self.started = time.time()
        self.proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=self.log)
        self.offset = 0
        self.partial = b""
        self.alive = True

    def read(self):
        """The lines appended since the last call."""
        try:
            with open(self.out, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        data = self.partial + data
        lines = data.split(b"\n")
        self.partial = lines.pop()
        return [line.decode() for line in lines if line]


class Watch:
    """Every handled event, stamped with when it was seen, per partition and per event id."""

    def __init__(self, partitions):
        self.partitions = partitions
        self.members = []
        self.by_partition = {p: [] for p in range(partitions)}  # (time, member, offset)
        self.by_id = {}  # event id -> times handled
        self.handled = 0

    def poll(self):
        now = time.time()
        for m in self.members:
            for line in m.read():
                words = line.split(" ")
                if len(words) < 3:
                    continue
                event_id, partition, offset = words[0], int(words[1]), int(words[2])
                self.handled += 1
                self.by_id.setdefault(event_id, []).append(now)
                if partition in self.by_partition:
                    self.by_partition[partition].append((now, m.n, offset))

    def sleep(self, seconds):
        end = time.time() + seconds
        while time.time() < end:
            self.poll()
            time.sleep(POLL)

    def consuming(self, now, gap, alive):
        """Partitions not consuming now: no event in the last `gap` s, or last handled by a dead member."""
        out = []
        for p, events in self.by_partition.items():
            if not events or now - events[-1][0] > gap or events[-1][1] not in alive:
                out.append(p)
        return out


def settle(watch, change_at, args, alive, joiner=None):
    """Waits until the group has settled after a change at `change_at`; returns the measurement."""
    stable_since = None
    deadline = change_at + args.timeout
    while True:
        watch.poll()
        now = time.time()
        live = {m.n for m in watch.members if m.alive and m.n in alive}
        not_consuming = watch.consuming(now, args.gap, live)
        joined = joiner is None or any(e[1] == joiner for ev in watch.by_partition.values() for e in ev if e[0] >= change_at)
        if not not_consuming and joined:
            stable_since = stable_since or now
            if now - stable_since >= args.stable:
                break
        else:
            stable_since = None
        if now > deadline:
            return {"at": round(change_at, 3), "settle_ms": None, "not_consuming": not_consuming, "joined": joined}
        time.sleep(POLL)
    end = time.time()
    # The last resumption after the change, per partition.
    resumed, moved, stalled, max_stall = change_at, 0, [], 0.0
    for p, events in watch.by_partition.items():
        before = [e for e in events if e[0] < change_at]
        prev_t, prev_member = (before[-1][0], before[-1][1]) if before else (None, None)
        last_resume, did_move, did_stall = None, False, False
        for t, member, _ in (e for e in events if change_at <= e[0] <= end):
            gap = t - (prev_t if prev_t is not None else change_at)
            if prev_member is not None and member != prev_member:
                last_resume, did_move = t, True
                max_stall = max(max_stall, gap)
            elif gap >= args.gap:
                last_resume, did_stall = t, True
                max_stall = max(max_stall, gap)
            prev_t, prev_member = t, member
        if last_resume is not None:
            resumed = max(resumed, last_resume)
        moved += did_move
        if did_stall and not did_move:
            stalled.append(p)
    redelivered = sum(
        1 for times in watch.by_id.values() for t in times[1:] if change_at <= t <= end
    )
    return {
        "at": round(change_at, 3),
        "settle_ms": round((resumed - change_at) * 1000),
        "partitions_moved": moved,
        "partitions_stalled_same_owner": len(stalled),
        "stalled_same_owner": stalled,
        "max_partition_stall_ms": round(max_stall * 1000),
        "redelivered": redelivered,
        "observed_ms": round((end - change_at) * 1000),
    }


def create_topic(bootstrap, topic, partitions):
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        future.result(30)


def table(lines):
    """Medians per client, strategy and change, as a Markdown table (from the JSON lines of the runs)."""
    rows = {}
    for line in lines:
        m = json.loads(line)
        if m["change"] != "run":
            rows.setdefault((m["client"], m["strategy"], m["change"]), []).append(m)

    def median(values):
        values = sorted(v for v in values if v is not None)
        if not values:
            return None
        mid = len(values) // 2
        return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2

    def cell(ms, key):
        v = median(m.get(key) for m in ms)
        failed = sum(1 for m in ms if m.get("settle_ms") is None)
        text = "-" if v is None else f"{v:,.0f}"
        return text + (f" ({failed} unsettled)" if failed and key == "settle_ms" else "")

    print("| client | strategy | change | settle ms | partitions moved | max partition stall ms | redelivered | runs |")
    print("|---|---|---|---|---|---|---|---|")
    for (client, strategy, change), ms in rows.items():
        cells = [cell(ms, k) for k in ("settle_ms", "partitions_moved", "max_partition_stall_ms", "redelivered")]
        print(f"| {client} | {strategy} | {change} | " + " | ".join(cells) + f" | {len(ms)} |")


def main():
    if sys.argv[1:] == ["--table"]:
        return table(sys.stdin)
    parser = argparse.ArgumentParser()
    parser.add_argument("--client", required=True)
    parser.add_argument("--strategy", default="range")
    parser.add_argument("--member", required=True)
    parser.add_argument("--publisher", required=True)
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--partitions", type=int, default=60)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--session-ms", type=int, default=6000)
    parser.add_argument("--heartbeat-ms", type=int, default=1000)
    parser.add_argument("--gap", type=float, default=None)
    parser.add_argument("--stable", type=float, default=3.0)
    parser.add_argument("--hold", type=float, default=3.0)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()
    # A partition gets rate / partitions events a second: "consuming" must allow several of its gaps, or a
    # wide topic never looks settled.
    args.gap = args.gap or max(1.0, 5.0 * args.partitions / args.rate)
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    prefix = f"group-bench-{uuid.uuid4().hex[:8]}"
    args.dir = args.dir or os.path.join("/tmp", prefix)
    os.makedirs(args.dir, exist_ok=True)
    print(f"{prefix}: member logs in {args.dir}", file=sys.stderr, flush=True)
    create_topic(bootstrap, prefix + ".stream", args.partitions)

    env = dict(os.environ)
    env.update(
        {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "KAFKA_SESSION_TIMEOUT_MS": str(args.session_ms),
            "KAFKA_HEARTBEAT_INTERVAL_MS": str(args.heartbeat_ms),
            "KAFKA_PARTITION_ASSIGNMENT_STRATEGY": args.strategy,
            "KAFKA_AUTO_OFFSET_RESET": "earliest",
            # Both clients commit every second (member.py does), so redeliveries compare like for like.
            "KAFKA_COMMIT_INTERVAL": "1",
        }
    )
    env.setdefault("RUST_LOG", "info,kafka_event_bus::client::group=debug")
    publisher_log = open(os.path.join(args.dir, "publisher.log"), "w")
    publisher = subprocess.Popen(
        shlex.split(args.publisher)
        + ["--prefix", prefix, "--count", str(args.rate * 600), "--rate", str(args.rate), "--aggregates", "6000"],
        env=env,
        stdout=publisher_log,
        stderr=publisher_log,
    )
    watch = Watch(args.partitions)
    base = {
        "client": args.client,
        "strategy": args.strategy,
        "members": args.members,
        "partitions": args.partitions,
        "rate": args.rate,
        "session_ms": args.session_ms,
    }

    def report(change, member, measured):
        line = dict(base, change=change, member=member, **measured)
        print(json.dumps(line), flush=True)

    try:
        time.sleep(0.5)  # the stream is flowing before the group starts
        change_at = time.time()
        for n in range(args.members):
            watch.members.append(Member(n, args, prefix, env))
        alive = set(range(args.members))
        report("first_assignment", None, settle(watch, change_at, args, alive))
        watch.sleep(args.hold)

        change_at = time.time()
        joiner = args.members
        watch.members.append(Member(joiner, args, prefix, env))
        alive.add(joiner)
        report("member_join", joiner, settle(watch, change_at, args, alive, joiner=joiner))
        watch.sleep(args.hold)

        leaver = watch.members[1]
        change_at = time.time()
        leaver.proc.send_signal(signal.SIGINT)
        leaver.alive = False
        alive.discard(leaver.n)
        report("member_leave", leaver.n, settle(watch, change_at, args, alive))
        watch.sleep(args.hold)

        victim = watch.members[2]
        change_at = time.time()
        victim.proc.kill()
        victim.alive = False
        alive.discard(victim.n)
        report("member_kill", victim.n, settle(watch, change_at, args, alive))
    finally:
        publisher.terminate()
        watch.sleep(3.0)
        for m in watch.members:
            if m.proc.poll() is None:
                m.proc.send_signal(signal.SIGINT)
        for m in watch.members:
            try:
                m.proc.wait(30)
            except subprocess.TimeoutExpired:
                m.proc.kill()
                m.proc.wait()
        watch.poll()
        publisher.wait()

    # Every handled event with when it was seen, for a closer look at a change.
    with open(os.path.join(args.dir, "seen.txt"), "w") as f:
        for p, events in watch.by_partition.items():
            for t, member, offset in events:
                f.write(f"{t:.3f} {member} {p} {offset}\n")
    missing = 0
    for events in watch.by_partition.values():
        offsets = {e[2] for e in events}
        if offsets:
            missing += max(offsets) + 1 - len(offsets)
    report(
        "run",
        None,
        {
            "handled": watch.handled,
            "distinct": len(watch.by_id),
            "handled_more_than_once": sum(1 for t in watch.by_id.values() if len(t) > 1),
            "missing": missing,
            "dir": args.dir,
        },
    )


if __name__ == "__main__":
    main()
