// The benchmarks' workload, command line, JSON line and measurements, shared by `examples/bench.rs` and
// its rust-rdkafka peer (`benches/peers/rdkafka`), so both publish exactly the same events and decode them
// the same way.

/// The command line shared by both benchmark programs.
struct Args {
    /// publish (default), consume, latency; kafka-event-bus also: bus, latency-raw, delete (drops `--topic`).
    mode: String,
    /// consume and bus: read this existing topic (kept by a publish run with `BENCH_KEEP_TOPIC`) instead
    /// of publishing a fresh one first.
    topic: Option<String>,
    /// latency: events per second published.
    rate: u64,
    events: u64,
    partitions: i32,
    compression: String,
    batch_size: Option<usize>,
    linger_ms: u64,
    acks: String,
    bootstrap: Option<String>,
    fingerprint: bool,
    rest: Vec<(String, String)>,
}

impl Args {
    fn parse() -> Result<Self, String> {
        let mut args = Self {
            mode: "publish".into(),
            topic: None,
            rate: 2000,
            events: 200_000,
            partitions: 6,
            compression: "none".into(),
            batch_size: None,
            linger_ms: 5,
            acks: "all".into(),
            bootstrap: None,
            fingerprint: false,
            rest: Vec::new(),
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            if flag == "--fingerprint" {
                args.fingerprint = true;
                continue;
            }
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let bad = |e: std::num::ParseIntError| format!("{flag} {value}: {e}");
            match flag.as_str() {
                "--mode" => args.mode = value,
                "--topic" => args.topic = Some(value),
                "--rate" => args.rate = value.parse().map_err(bad)?,
                "--events" => args.events = value.parse().map_err(bad)?,
                "--partitions" => args.partitions = value.parse().map_err(bad)?,
                "--compression" => args.compression = value,
                "--batch-size" => args.batch_size = Some(value.parse().map_err(bad)?),
                "--linger-ms" => args.linger_ms = value.parse().map_err(bad)?,
                "--acks" => args.acks = value,
                "--bootstrap" => args.bootstrap = Some(value),
                other if other.starts_with("--") => args.rest.push((other[2..].to_owned(), value)),
                other => return Err(format!("unexpected argument {other:?}")),
            }
        }
        if args.events == 0 || args.partitions <= 0 || args.rate == 0 {
            return Err("--events, --partitions and --rate must be positive".into());
        }
        Ok(args)
    }

    /// The batch size: as given, else the anchors' (1 MiB without compression, 16 KiB with).
    fn batch_size(&self) -> usize {
        self.batch_size.unwrap_or(if self.compression == "none" {
            1 << 20
        } else {
            16 << 10
        })
    }

    /// A program-specific option (`--name value`), if given.
    fn option(&self, name: &str) -> Option<&str> {
        self.rest.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The JSON line both programs print: the mode's measurements (`name`, value) between the common
    /// fields and the peak RSS. Rates (`…_per_s`) are printed as integers, the rest with 2 decimals.
    fn report(&self, client: &str, measurements: &[(&str, f64)]) -> String {
        use std::fmt::Write as _;
        let mut line = format!(
            r#"{{"client":"{client}","mode":"{}","events":{},"partitions":{},"compression":"{}""#,
            self.mode, self.events, self.partitions, self.compression,
        );
        for (name, value) in measurements {
            let _ = if name.ends_with("_per_s") {
                write!(line, r#","{name}":{value:.0}"#)
            } else {
                write!(line, r#","{name}":{value:.2}"#)
            };
        }
        let _ = write!(line, r#","peak_rss_mb":{:.1}}}"#, peak_rss_mb());
        line
    }

    /// The fetch max wait of the consume and latency modes: `--fetch-max-wait-ms`, else 10 ms for latency
    /// (the test broker answers an empty long-poll only after half of it) and each library's default
    /// otherwise.
    fn fetch_max_wait_ms(&self) -> Option<u64> {
        self.option("fetch-max-wait-ms")
            .and_then(|v| v.parse().ok())
            .or(self.mode.starts_with("latency").then_some(10))
    }
}

/// What a handler decodes from each record's value: the DomainEvent JSON with its order payload (owned
/// strings, as a handler that keeps the event would hold them).
#[derive(serde::Deserialize)]
#[allow(dead_code)] // decoded to be paid for, not read
struct DecodedEvent {
    event_id: String,
    event_type: String,
    event_version: u32,
    occurred_at: String,
    aggregate_id: String,
    aggregate_type: String,
    aggregate_version: u64,
    tenant_id: Option<String>,
    actor_id: Option<String>,
    correlation_id: Option<String>,
    causation_id: Option<String>,
    metadata: serde_json::Map<String, serde_json::Value>,
    sku: String,
    quantity: u32,
}

/// Decodes one record's value as a handler would; the aggregate version, to check order.
fn decode_value(value: &[u8]) -> Result<u64, serde_json::Error> {
    serde_json::from_slice::<DecodedEvent>(value).map(|e| e.aggregate_version)
}

/// Microseconds since the Unix epoch: the send time a latency probe carries.
fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The 50th and 99th percentiles and the maximum of latencies (ms), nearest-rank.
fn percentiles(latencies: &mut [f64]) -> [(&'static str, f64); 3] {
    latencies.sort_by(f64::total_cmp);
    let rank = |q: f64| {
        let n = latencies.len();
        if n == 0 {
            return 0.0;
        }
        latencies[((q * n as f64).ceil() as usize).clamp(1, n) - 1]
    };
    [
        ("p50_ms", rank(0.50)),
        ("p99_ms", rank(0.99)),
        ("max_ms", rank(1.0)),
    ]
}

// ---- The workload: keep identical in examples/bench.rs and benches/peers/rdkafka/src/workload.rs ----
// (`--fingerprint` prints a hash of every generated byte, so the two copies can be checked to match.)

/// A deterministic xorshift64* generator: the same events on every run and in both producers.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A version-4 UUID, lower-case and hyphenated, appended to `out`.
    fn uuid_into(&mut self, out: &mut String) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let hi = (self.next() & !0xf000) | 0x4000; // version 4
        let lo = (self.next() & !(0b11 << 62)) | (0b10 << 62); // RFC 4122 variant
        let bytes = ((u128::from(hi)) << 64) | u128::from(lo);
        for (i, shift) in (0..32).rev().enumerate() {
            if matches!(i, 8 | 12 | 16 | 20) {
                out.push('-');
            }
            out.push(char::from(HEX[((bytes >> (shift * 4)) & 0xf) as usize]));
        }
    }
}

const AGGREGATES: usize = 1000;
const EVENT_TYPES: [&str; 5] = [
    "OrderPlaced",
    "OrderItemAdded",
    "OrderItemRemoved",
    "OrderPaid",
    "OrderShipped",
];

/// One event as the bus publishes it: key = aggregate id, a DomainEvent-shaped JSON value, and the 7
/// headers eventsource-py's KafkaEventBus writes, in its order.
struct Event {
    key: String,
    value: String,
    headers: [(&'static str, String); 7],
}

/// Generates the benchmark's events, one at a time (nothing is pre-generated, so memory stays flat).
struct Workload {
    rng: Rng,
    aggregates: Vec<(String, u64)>,
    n: u64,
}

impl Workload {
    fn new() -> Self {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let aggregates = (0..AGGREGATES)
            .map(|_| {
                let mut id = String::with_capacity(36);
                rng.uuid_into(&mut id);
                (id, 0)
            })
            .collect();
        Self {
            rng,
            aggregates,
            n: 0,
        }
    }

    fn next_event(&mut self) -> Event {
        use std::fmt::Write as _;
        let n = self.n;
        self.n += 1;
        let r = self.rng.next();
        let (aggregate_id, version) = &mut self.aggregates[(r % AGGREGATES as u64) as usize];
        *version += 1;
        let version = *version;
        let event_type = EVENT_TYPES[((r >> 32) % EVENT_TYPES.len() as u64) as usize];
        let mut event_id = String::with_capacity(36);
        self.rng.uuid_into(&mut event_id);
        let mut correlation_id = String::with_capacity(36);
        self.rng.uuid_into(&mut correlation_id);
        // A fixed day, one event per 37 µs: deterministic, and the fraction is never all zeros.
        let micros = 1_000_000 + n * 37;
        let (secs, frac) = (micros / 1_000_000, micros % 1_000_000);
        let (h, m, s) = (10 + secs / 3600 % 12, secs / 60 % 60, secs % 60);
        let mut occurred = String::with_capacity(32);
        let _ = write!(occurred, "2026-11-27T{h:02}:{m:02}:{s:02}.{frac:06}");
        let sku = r % 100_000;
        let quantity = (r >> 20) % 9 + 1;
        let mut value = String::with_capacity(448);
        let _ = write!(
            value,
            concat!(
                r#"{{"event_id":"{}","event_type":"{}","event_version":1,"occurred_at":"{}Z","#,
                r#""aggregate_id":"{}","aggregate_type":"Order","aggregate_version":{},"tenant_id":null,"#,
                r#""actor_id":"user-{}","correlation_id":"{}","causation_id":null,"metadata":{{}},"#,
                r#""sku":"SKU-{:05}","quantity":{}}}"#
            ),
            event_id,
            event_type,
            occurred,
            aggregate_id,
            version,
            r % 5000,
            correlation_id,
            sku,
            quantity,
        );
        occurred.push_str("+00:00");
        Event {
            key: aggregate_id.clone(),
            value,
            headers: [
                ("event_id", event_id),
                ("event_type", event_type.to_owned()),
                ("aggregate_id", aggregate_id.clone()),
                ("aggregate_type", "Order".to_owned()),
                ("aggregate_version", version.to_string()),
                ("occurred_at", occurred),
                ("correlation_id", correlation_id),
            ],
        }
    }
}

/// `--fingerprint`: generates `events` events without a broker and prints their sizes and a hash of
/// every byte (FNV-1a), to check that both producers send the same workload.
fn fingerprint(events: u64) -> String {
    fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
        for b in bytes {
            h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
        h
    }
    let mut workload = Workload::new();
    let (mut hash, mut key_bytes, mut value_bytes, mut header_bytes) = (0xcbf2_9ce4_8422_2325_u64, 0, 0, 0);
    let started = std::time::Instant::now();
    for _ in 0..events {
        let e = workload.next_event();
        hash = fnv(fnv(hash, e.key.as_bytes()), e.value.as_bytes());
        key_bytes += e.key.len();
        value_bytes += e.value.len();
        for (k, v) in &e.headers {
            hash = fnv(fnv(hash, k.as_bytes()), v.as_bytes());
            header_bytes += k.len() + v.len();
        }
    }
    let secs = started.elapsed().as_secs_f64();
    format!(
        r#"{{"events":{events},"fnv1a":"{hash:016x}","avg_key_bytes":{:.1},"avg_value_bytes":{:.1},"avg_header_bytes":{:.1},"generate_and_hash_events_per_s":{:.0}}}"#,
        key_bytes as f64 / events as f64,
        value_bytes as f64 / events as f64,
        header_bytes as f64 / events as f64,
        events as f64 / secs
    )
}

/// Resets the peak resident memory (VmHWM) to the current RSS, so a consume run that published first
/// reports the consuming part's peak (Linux: `echo 5 > /proc/self/clear_refs`).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident memory of this process (VmHWM), in MiB.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
/// User and system CPU time of this process so far, in seconds (`/proc/self/stat`, 100 ticks a second).
fn cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name (which may hold spaces) start at the state, field 3.
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0) / 100.0;
    (ticks(11), ticks(12)) // utime and stime are fields 14 and 15
}

/// Tells (on stderr) the CPU time the timed part took: a measure that a busy machine disturbs less
/// than wall-clock throughput.
fn report_cpu(client: &str, events: u64, before: (f64, f64), wall: std::time::Duration) {
    let after = cpu_seconds();
    let (user, sys) = (after.0 - before.0, after.1 - before.1);
    eprintln!(
        r#"{{"client":"{client}","cpu_user_s":{user:.2},"cpu_sys_s":{sys:.2},"cpu_us_per_event":{:.2},"wall_s":{:.3}}}"#,
        (user + sys) * 1e6 / events as f64,
        wall.as_secs_f64()
    );
}
// ---- end of the shared workload ----
