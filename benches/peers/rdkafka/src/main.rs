//! The publish benchmark's peer: the same workload as `examples/bench.rs` of kafka-event-bus, published
//! with rust-rdkafka (librdkafka, C). Prints one JSON line, `"client":"rust-rdkafka"`.
//!
//! ```text
//! cargo run --release -- --events 200000 --partitions 6 --compression gzip [--batch-size B] [--linger-ms L]
//!     [--acks all] [--bootstrap HOST:PORT] [--api base|future] [--idempotence true|false]
//!     [--rdkafka.SETTING VALUE]... [--fingerprint]
//! ```
//!
//! The broker is `--bootstrap`, else `KAFKA_BOOTSTRAP_SERVERS`, else 127.0.0.1:9092. Settings are
//! librdkafka's defaults except: acks, `linger.ms`, `batch.size`, `compression.type`, and
//! `partitioner=murmur2_random` (the Java client's, which kafka-event-bus uses: the same key lands on the
//! same partition in both runs, so the batches are alike). The topic is deleted at the end unless
//! `BENCH_KEEP_TOPIC` is set. `--verify TOPIC` reads a topic back instead and checks it holds exactly
//! `--events` distinct events, in per-aggregate order.

use std::{
    process::ExitCode,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use rdkafka::{
    ClientConfig, ClientContext,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    error::{KafkaError, RDKafkaErrorCode},
    message::{Header, OwnedHeaders},
    producer::{
        BaseProducer, BaseRecord, DeliveryResult, FutureProducer, FutureRecord, Producer, ProducerContext,
    },
};

fn main() -> ExitCode {
    let args = match Args::parse() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("bench-peer-rdkafka: {e}");
            return ExitCode::from(2);
        }
    };
    if args.fingerprint {
        println!("{}", fingerprint(args.events));
        return ExitCode::SUCCESS;
    }
    if let Some(topic) = args.option("verify") {
        return match verify(&args, topic) {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("bench-peer-rdkafka: verify {topic}: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench-peer-rdkafka: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(events_per_s) => {
            println!("{}", args.report("rust-rdkafka", events_per_s));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench-peer-rdkafka: {e}");
            ExitCode::FAILURE
        }
    }
}

fn bootstrap(args: &Args) -> String {
    args.bootstrap
        .clone()
        .or_else(|| std::env::var("KAFKA_BOOTSTRAP_SERVERS").ok())
        .unwrap_or_else(|| "127.0.0.1:9092".into())
}

/// `--verify TOPIC`: reads `TOPIC` back with a librdkafka consumer (an independent client) and checks that
/// it holds exactly `--events` distinct events (by `event_id` header), each with the 7 headers and its
/// aggregate id as key, and that each aggregate's versions arrive in order.
fn verify(args: &Args, topic: &str) -> Result<String, Box<dyn std::error::Error>> {
    use std::collections::{HashMap, HashSet};

    use rdkafka::{
        Message, Offset, TopicPartitionList,
        consumer::{BaseConsumer, Consumer},
        message::Headers,
    };

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap(args))
        .set("group.id", "bench-verify")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    for p in 0..args.partitions {
        assignment.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let (mut seen, mut versions) = (HashSet::new(), HashMap::<Vec<u8>, u64>::new());
    let (mut total, mut duplicates, mut malformed, mut out_of_order) = (0_u64, 0_u64, 0_u64, 0_u64);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline {
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            if total >= args.events && quiet_since.elapsed() > Duration::from_secs(2) {
                break;
            }
            continue;
        };
        let message = message?;
        quiet_since = Instant::now();
        total += 1;
        let header = |name: &str| {
            message.headers().and_then(|h| {
                h.iter()
                    .find(|h| h.key == name)
                    .and_then(|h| h.value.map(<[u8]>::to_vec))
            })
        };
        let count = message.headers().map_or(0, |h| h.count());
        let (Some(event_id), Some(aggregate), Some(version)) = (
            header("event_id"),
            header("aggregate_id"),
            header("aggregate_version"),
        ) else {
            malformed += 1;
            continue;
        };
        if count != 7 || message.key() != Some(aggregate.as_slice()) {
            malformed += 1;
        }
        if !seen.insert(event_id) {
            duplicates += 1;
        }
        let version: u64 = String::from_utf8_lossy(&version).parse().unwrap_or(0);
        let last = versions.entry(aggregate).or_insert(0);
        if version != *last + 1 {
            out_of_order += 1;
        }
        *last = version;
    }
    let ok = total == args.events
        && seen.len() as u64 == args.events
        && duplicates == 0
        && malformed == 0
        && out_of_order == 0;
    let line = format!(
        r#"{{"verify":"{topic}","ok":{ok},"records":{total},"distinct_events":{},"duplicates":{duplicates},"malformed":{malformed},"out_of_order":{out_of_order}}}"#,
        seen.len()
    );
    if ok { Ok(line) } else { Err(line.into()) }
}

fn config(args: &Args, bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("client.id", "bench-peer-rdkafka")
        .set("acks", &args.acks)
        .set("linger.ms", args.linger_ms.to_string())
        .set("batch.size", args.batch_size().to_string())
        .set("compression.type", &args.compression)
        .set("partitioner", "murmur2_random");
    if let Some(on) = args.option("idempotence") {
        config.set("enable.idempotence", on);
    }
    // Any other librdkafka setting: `--rdkafka.NAME VALUE`.
    for (name, value) in &args.rest {
        if let Some(name) = name.strip_prefix("rdkafka.") {
            config.set(name, value);
        }
    }
    config
}

async fn run(args: &Args) -> Result<f64, Box<dyn std::error::Error>> {
    let bootstrap = bootstrap(args);
    let topic = format!(
        "bench.rdkafka.{}.{}.{}",
        args.compression,
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis()
    );
    let admin: AdminClient<DefaultClientContext> = config(args, &bootstrap).create()?;
    for result in admin
        .create_topics(
            &[NewTopic::new(&topic, args.partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await?
    {
        result.map_err(|(name, code)| format!("creating {name}: {code}"))?;
    }
    eprintln!("topic: {topic}");
    let result = match args.option("api").unwrap_or("base") {
        "future" => run_future(args, &bootstrap, &topic).await,
        "base" => run_base(args, &bootstrap, &topic),
        other => Err(format!("--api must be future or base, not {other}").into()),
    };
    // Leave the broker as we found it (its memory), unless the topic is to be read back.
    if std::env::var_os("BENCH_KEEP_TOPIC").is_none() {
        admin.delete_topics(&[&topic], &AdminOptions::new()).await?;
    }
    result
}

fn headers(event: &Event) -> OwnedHeaders {
    event
        .headers
        .iter()
        .fold(OwnedHeaders::new_with_capacity(7), |h, (key, value)| {
            h.insert(Header {
                key,
                value: Some(value.as_str()),
            })
        })
}

/// `FutureProducer`: one delivery future per record, as kafka-event-bus's `send` returns. Futures are
/// awaited in order by a second task, so finished ones do not pile up.
async fn run_future(args: &Args, bootstrap: &str, topic: &str) -> Result<f64, Box<dyn std::error::Error>> {
    let producer: FutureProducer = config(args, bootstrap).create()?;
    let mut workload = Workload::new();
    // Connect and fetch the topic's metadata before the clock starts, as kafka-event-bus does.
    producer
        .client()
        .fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let waiter = tokio::spawn(async move {
        let mut failed = 0_u64;
        let mut first_error = None;
        while let Some(delivery) = rx.recv().await {
            let delivery: rdkafka::producer::DeliveryFuture = delivery;
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => {
                    failed += 1;
                    first_error.get_or_insert_with(|| e.to_string());
                }
                Err(_) => {
                    failed += 1;
                    first_error.get_or_insert_with(|| "delivery canceled".to_owned());
                }
            }
        }
        (failed, first_error)
    });
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    for n in 0..args.events {
        if n % 1024 == 0 {
            tokio::task::yield_now().await; // let the waiter task drain finished deliveries
        }
        let event = workload.next_event();
        let mut record = FutureRecord::to(topic)
            .key(&event.key)
            .payload(&event.value)
            .headers(headers(&event));
        let delivery = loop {
            match producer.send_result(record) {
                Ok(delivery) => break delivery,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err((e, _)) => return Err(e.into()),
            }
        };
        let _ = tx.send(delivery);
    }
    drop(tx);
    let (failed, first_error) = waiter.await?;
    let elapsed = started.elapsed();
    report_cpu("rust-rdkafka", args.events, cpu_before, elapsed);
    if failed > 0 {
        return Err(format!(
            "{failed} records failed, the first: {}",
            first_error.unwrap_or_default()
        )
        .into());
    }
    Ok(args.events as f64 / elapsed.as_secs_f64())
}

/// Counts deliveries (the `BaseProducer`'s callback).
#[derive(Default)]
struct Counter {
    acked: AtomicU64,
    failed: AtomicU64,
}

impl ClientContext for Counter {}

impl ProducerContext for Counter {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.acked.fetch_add(1, Ordering::Relaxed),
            Err((e, _)) => {
                if self.failed.fetch_add(1, Ordering::Relaxed) == 0 {
                    eprintln!("bench-peer-rdkafka: delivery failed: {e}");
                }
                0
            }
        };
    }
}

/// `BaseProducer`: a delivery callback instead of futures, polled from this thread (librdkafka's fastest
/// path).
fn run_base(args: &Args, bootstrap: &str, topic: &str) -> Result<f64, Box<dyn std::error::Error>> {
    let producer: BaseProducer<Counter> = config(args, bootstrap).create_with_context(Counter::default())?;
    let mut workload = Workload::new();
    producer
        .client()
        .fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    for n in 0..args.events {
        if n % 1024 == 0 {
            producer.poll(Duration::ZERO);
        }
        let event = workload.next_event();
        let mut record = BaseRecord::to(topic)
            .key(&event.key)
            .payload(&event.value)
            .headers(headers(&event));
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(1));
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }
    producer.flush(Duration::from_secs(120))?;
    let elapsed = started.elapsed();
    report_cpu("rust-rdkafka", args.events, cpu_before, elapsed);
    let context = producer.context();
    let (acked, failed) = (
        context.acked.load(Ordering::Relaxed),
        context.failed.load(Ordering::Relaxed),
    );
    if acked != args.events || failed > 0 {
        return Err(format!("{acked} of {} records acknowledged, {failed} failed", args.events).into());
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

// ---- The workload: keep identical in examples/bench.rs and benches/peers/rdkafka/src/main.rs ----
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
