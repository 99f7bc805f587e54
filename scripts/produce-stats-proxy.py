#!/usr/bin/env python3
"""A TCP proxy in front of one Kafka broker that describes the Produce traffic of each client id.

    python3 scripts/produce-stats-proxy.py LISTEN_PORT BROKER_PORT

Start the broker so that it advertises the proxy's port (Tansu: `--listener-url tcp://127.0.0.1:BROKER_PORT
--advertised-listener-url tcp://127.0.0.1:LISTEN_PORT`), point the clients at 127.0.0.1:LISTEN_PORT, and
send the proxy SIGUSR1 after each client run: it prints one JSON line per client id seen since the last
signal and starts counting again. Per client id:

- produce_requests, batches, records; records per batch (mean and p10/p50/p90), batches per request
  (mean, p50, max), bytes per batch as sent (compressed);
- rtt_ms: from the proxy reading a Produce request to it reading the answer (the broker's time plus the
  proxy-to-broker hop), mean, p50, p99;
- in_flight_at_send: Produce requests of that connection already waiting for an answer when the next one
  arrives, mean and max.

The proxy only reads the frame sizes, request headers, Produce bodies (v3 to v12, flexible or not) and
the record-batch headers (records count at byte 57); the bytes pass through unchanged. It is Python: it
adds latency and CPU of its own, so compare clients through it, not with runs without it.
"""
import asyncio
import collections
import json
import signal
import struct
import sys
import time


def uvarint(b, i):
    shift = v = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        if not c & 0x80:
            return v, i
        shift += 7


def skip_tagged_fields(b, i):
    n, i = uvarint(b, i)
    for _ in range(n):
        _, i = uvarint(b, i)
        size, i = uvarint(b, i)
        i += size
    return i


def array_len(b, i, flexible):
    if flexible:
        n, i = uvarint(b, i)
        return n - 1, i
    (n,) = struct.unpack_from(">i", b, i)
    return n, i + 4


def skip_string(b, i, flexible):
    if flexible:
        n, i = uvarint(b, i)
        return i + max(n - 1, 0)
    (n,) = struct.unpack_from(">h", b, i)
    return i + 2 + max(n, 0)


def produce_batches(b, version, i):
    """(records, bytes) of each record batch in a Produce request body starting at `i`."""
    flexible = version >= 9
    if version >= 3:
        i = skip_string(b, i, flexible)  # transactional id
    i += 2 + 4  # acks, timeout
    batches = []
    topics, i = array_len(b, i, flexible)
    for _ in range(topics):
        i = skip_string(b, i, flexible)
        partitions, i = array_len(b, i, flexible)
        for _ in range(partitions):
            i += 4  # partition index
            if flexible:
                size, i = uvarint(b, i)
                size -= 1
            else:
                (size,) = struct.unpack_from(">i", b, i)
                i += 4
            records = b[i:i + max(size, 0)]
            i += max(size, 0)
            j = 0
            while j + 61 <= len(records):
                (length,) = struct.unpack_from(">i", records, j + 8)
                (count,) = struct.unpack_from(">i", records, j + 57)
                batches.append((count, length + 12))
                j += 12 + length
            if flexible:
                i = skip_tagged_fields(b, i)
        if flexible:
            i = skip_tagged_fields(b, i)
    return batches


class Stats:
    def __init__(self):
        self.requests = 0
        self.records = 0
        self.bytes = 0
        self.batch_records = collections.Counter()
        self.batches_per_request = []
        self.rtt = []
        self.in_flight = []


stats = collections.defaultdict(Stats)


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))] if values else 0


def counter_percentile(counter, p):
    total, seen = sum(counter.values()), 0
    for value, n in sorted(counter.items()):
        seen += n
        if seen >= p * total:
            return value
    return 0


def report():
    for client, s in stats.items():
        if not s.requests:
            continue
        batches = sum(s.batch_records.values())
        print(json.dumps({
            "client": client,
            "produce_requests": s.requests,
            "batches": batches,
            "records": s.records,
            "records_per_batch": round(s.records / max(batches, 1), 2),
            "records_per_batch_p10_p50_p90": [counter_percentile(s.batch_records, p) for p in (0.1, 0.5, 0.9)],
            "batches_per_request": round(batches / s.requests, 1),
            "batches_per_request_p50_max": [percentile(s.batches_per_request, 0.5), max(s.batches_per_request)],
            "bytes_per_batch": round(s.bytes / max(batches, 1)),
            "rtt_ms_mean_p50_p99": [round(sum(s.rtt) / max(len(s.rtt), 1) * 1e3, 2),
                                    round(percentile(s.rtt, 0.5) * 1e3, 2), round(percentile(s.rtt, 0.99) * 1e3, 2)],
            "in_flight_at_send_mean_max": [round(sum(s.in_flight) / max(len(s.in_flight), 1), 2), max(s.in_flight)],
        }), flush=True)
    stats.clear()


async def requests(reader, writer, connection):
    while True:
        head = await reader.readexactly(4)
        (size,) = struct.unpack(">i", head)
        body = await reader.readexactly(size)
        api_key, version, correlation = struct.unpack_from(">hhi", body, 0)
        (client_len,) = struct.unpack_from(">h", body, 8)
        connection["client"] = body[10:10 + max(client_len, 0)].decode(errors="replace")
        if api_key == 0:
            i = 10 + max(client_len, 0)
            if version >= 9:
                i = skip_tagged_fields(body, i)
            try:
                batches = produce_batches(body, version, i)
            except (struct.error, IndexError) as e:
                print(f"produce-stats-proxy: cannot parse a Produce v{version}: {e}", file=sys.stderr)
                batches = []
            s = stats[connection["client"]]
            s.requests += 1
            s.batches_per_request.append(len(batches))
            for count, length in batches:
                s.records += count
                s.bytes += length
                s.batch_records[count] += 1
            s.in_flight.append(len(connection["waiting"]))
            connection["waiting"][correlation] = time.monotonic()
        writer.write(head + body)
        await writer.drain()


async def responses(reader, writer, connection):
    while True:
        head = await reader.readexactly(4)
        (size,) = struct.unpack(">i", head)
        body = await reader.readexactly(size)
        (correlation,) = struct.unpack_from(">i", body, 0)
        sent = connection["waiting"].pop(correlation, None)
        if sent is not None:
            stats[connection["client"]].rtt.append(time.monotonic() - sent)
        writer.write(head + body)
        await writer.drain()


async def handle(client_reader, client_writer, broker_port):
    broker_reader, broker_writer = await asyncio.open_connection("127.0.0.1", broker_port)
    connection = {"waiting": {}, "client": "-"}
    tasks = [
        asyncio.create_task(requests(client_reader, broker_writer, connection)),
        asyncio.create_task(responses(broker_reader, client_writer, connection)),
    ]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in tasks:
        task.cancel()
    for writer in (client_writer, broker_writer):
        writer.close()


async def main(listen_port, broker_port):
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, report)
    server = await asyncio.start_server(lambda r, w: handle(r, w, broker_port), "127.0.0.1", listen_port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
