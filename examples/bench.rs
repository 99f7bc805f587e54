//! The publish benchmark (issue 4's performance bar): publishes N events shaped like the bus's to a
//! fresh topic of P partitions and prints one JSON line,
//! `{"client":"kafka-event-bus","events":N,"partitions":P,"compression":"…","publish_events_per_s":…,"peak_rss_mb":…}`.
//!
//! ```text
//! cargo run --release --example bench -- --events 200000 --partitions 6 --compression gzip
//!     [--batch-size B] [--linger-ms L] [--acks all] [--bootstrap HOST:PORT]
//!     [--buffer-memory B] [--max-request-size B] [--max-in-flight N] [--idempotence true|false]
//!     [--runtime multi|current] [--fingerprint]
//! ```
//!
//! Workload (the same as the rust-rdkafka peer in `benches/peers/rdkafka`, which `just bench-peers` runs
//! beside it): ~405-byte DomainEvent JSON values, the 7 UTF-8 headers eventsource-py's KafkaEventBus
//! writes, key = aggregate id over 1000 aggregates, acks=all, linger 5 ms, batches of 1 MiB without
//! compression and 16 KiB with. The clock runs from the first `send` to the last acknowledgement; the topic
//! is created and its metadata fetched before. Peak RSS is the process's VmHWM. `--fingerprint` prints a
//! hash of the generated events instead (no broker), to check that both programs send the same bytes.
//!
//! The broker is `--bootstrap`, else `KAFKA_BOOTSTRAP_SERVERS`, else a throwaway local Tansu. The topic
//! is deleted at the end unless `BENCH_KEEP_TOPIC` is set (to read it back, e.g. with the peer's
//! `--verify TOPIC`).

use std::{
    error::Error,
    process::ExitCode,
    str::FromStr,
    time::{Duration, Instant},
};

use bytes::Bytes;
use kafka_event_bus::{
    client::{
        ClientConfig, Cluster, NewTopic,
        producer::{Acks, Producer, ProducerConfig, ProducerRecord},
    },
    protocol::{Headers, records::Compression},
    testing::TestBroker,
};

fn main() -> ExitCode {
    let args = match Args::parse() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("bench: {e}");
            return ExitCode::from(2);
        }
    };
    if args.fingerprint {
        println!("{}", fingerprint(args.events));
        return ExitCode::SUCCESS;
    }
    let runtime = match args.option("runtime").unwrap_or("multi") {
        "current" => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        _ => tokio::runtime::Builder::new_multi_thread().enable_all().build(),
    };
    let result = runtime
        .map_err(Box::<dyn Error>::from)
        .and_then(|runtime| runtime.block_on(run(&args)));
    match result {
        Ok(events_per_s) => {
            println!("{}", args.report("kafka-event-bus", events_per_s));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_option<T: FromStr>(args: &Args, name: &str) -> Result<Option<T>, String>
where
    T::Err: std::fmt::Display,
{
    args.option(name)
        .map(|v| v.parse::<T>().map_err(|e| format!("--{name} {v}: {e}")))
        .transpose()
}

fn producer_config(args: &Args) -> Result<ProducerConfig, Box<dyn Error>> {
    let mut config = ProducerConfig::default()
        .with_acks(args.acks.parse::<Acks>()?)
        .with_compression(args.compression.parse::<Compression>()?)
        .with_batch_size(args.batch_size())
        .with_linger(Duration::from_millis(args.linger_ms));
    if let Some(bytes) = parse_option(args, "buffer-memory")? {
        config = config.with_buffer_memory(bytes);
    }
    if let Some(bytes) = parse_option(args, "max-request-size")? {
        config = config.with_max_request_size(bytes);
    }
    if let Some(n) = parse_option(args, "max-in-flight")? {
        config.max_in_flight_per_broker = n;
    }
    if let Some(on) = parse_option(args, "idempotence")? {
        config = config.with_idempotence(on);
    }
    config.validate()?;
    Ok(config)
}

fn record(topic: &str, event: Event) -> ProducerRecord {
    let mut headers = Headers::with_capacity(event.headers.len());
    for (key, value) in event.headers {
        headers.insert(key, value);
    }
    ProducerRecord::new(topic)
        .with_key(Bytes::from(event.key))
        .with_value(Bytes::from(event.value))
        .with_headers(headers)
}

async fn run(args: &Args) -> Result<f64, Box<dyn Error>> {
    let config = producer_config(args)?;
    // Keeps a throwaway broker alive until the end when neither --bootstrap nor the variable names one.
    let (_broker, bootstrap) = match &args.bootstrap {
        Some(bootstrap) => (None, bootstrap.clone()),
        None => {
            let broker = TestBroker::from_env_or_start()?;
            let bootstrap = broker.bootstrap_servers().to_owned();
            (Some(broker), bootstrap)
        }
    };
    let cluster = Cluster::connect(ClientConfig::new(&bootstrap).with_client_id("bench")).await?;
    let topic = format!(
        "bench.keb.{}.{}.{}",
        args.compression,
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis()
    );
    cluster
        .ensure_topics(&[NewTopic::new(&topic, args.partitions, 1)])
        .await?;
    cluster.refresh_topics(&[&topic]).await?;
    eprintln!("topic: {topic}");
    let producer = Producer::new(cluster.clone(), config)?;

    // Delivery futures are awaited in order by a second task, so finished ones do not pile up.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let waiter = tokio::spawn(async move {
        let (mut failed, mut first_error) = (0_u64, None);
        while let Some(delivery) = rx.recv().await {
            let delivery: kafka_event_bus::client::producer::DeliveryFuture = delivery;
            if let Err(e) = delivery.await {
                failed += 1;
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
        (failed, first_error)
    });
    let mut workload = Workload::new();
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    for n in 0..args.events {
        if n % 1024 == 0 {
            tokio::task::yield_now().await; // on a current-thread runtime, let the waiter task run
        }
        let delivery = producer.send(record(&topic, workload.next_event())).await?;
        let _ = tx.send(delivery);
    }
    drop(tx);
    let (failed, first_error) = waiter.await?;
    let elapsed = started.elapsed();
    report_cpu("kafka-event-bus", args.events, cpu_before, elapsed);
    producer.close().await;
    // Leave the broker as we found it (its memory), unless the topic is to be read back.
    if std::env::var_os("BENCH_KEEP_TOPIC").is_none() {
        cluster.delete_topics(&[&topic]).await?;
    }
    if failed > 0 {
        return Err(format!(
            "{failed} records failed, the first: {}",
            first_error.unwrap_or_default()
        )
        .into());
    }
    Ok(args.events as f64 / elapsed.as_secs_f64())
}

/// The command line shared by both benchmark programs.
struct Args {
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
        if args.events == 0 || args.partitions <= 0 {
            return Err("--events and --partitions must be positive".into());
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

    /// The JSON line both programs print.
    fn report(&self, client: &str, events_per_s: f64) -> String {
        format!(
            r#"{{"client":"{client}","events":{},"partitions":{},"compression":"{}","publish_events_per_s":{:.0},"peak_rss_mb":{:.1}}}"#,
            self.events,
            self.partitions,
            self.compression,
            events_per_s,
            peak_rss_mb()
        )
    }
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
