//! The benchmarks' peer: the same workload as `examples/bench.rs` of kafka-event-bus, with rust-rdkafka
//! (librdkafka, C). Prints one JSON line, `"client":"rust-rdkafka"`.
//!
//! ```text
//! cargo run --release -- [--mode publish|consume|latency] --events 200000 --partitions 6
//!     --compression gzip [--topic NAME] [--batch-size B] [--linger-ms L] [--acks all]
//!     [--bootstrap HOST:PORT] [--api base|future] [--idempotence true|false] [--rate 2000]
//!     [--fetch-max-wait-ms MS] [--rdkafka.SETTING VALUE]... [--fingerprint]
//! ```
//!
//! - `publish`: as described below; `publish_events_per_s`.
//! - `consume`: a `BaseConsumer` in a fresh group reads N events (of `--topic`, else of a fresh topic it
//!   publishes first), decoding each value's JSON (the same `DecodedEvent` as kafka-event-bus) and
//!   storing its offset (`enable.auto.offset.store=false`, auto commit); `consume_events_per_s` from the
//!   first assignment (`post_rebalance`) to the N-th record, `join_ms` from `subscribe` to it.
//! - `latency`: a `BaseProducer` publishes N events at `--rate` per second (send time in a `sent_us`
//!   header) while a `BaseConsumer` on another thread (`fetch.wait.max.ms` 10 unless
//!   `--fetch-max-wait-ms`) decodes them; p50/p99/max publish→consumer latency.
//!
//! The broker is `--bootstrap`, else `KAFKA_BOOTSTRAP_SERVERS`, else 127.0.0.1:9092. Settings are
//! librdkafka's defaults except: acks, `linger.ms`, `batch.size`, `compression.type`, and
//! `partitioner=murmur2_random` (the Java client's, which kafka-event-bus uses: the same key lands on the
//! same partition in both runs, so the batches are alike). The topic is deleted at the end unless
//! `BENCH_KEEP_TOPIC` is set. `--verify TOPIC` reads a topic back instead and checks it holds exactly
//! `--events` distinct events, in per-aggregate order.

use std::{
    process::ExitCode,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use rdkafka::{
    ClientConfig, ClientContext, Message,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance},
    error::{KafkaError, RDKafkaErrorCode},
    message::{Header, Headers, OwnedHeaders},
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
        Ok(measurements) => {
            println!("{}", args.report("rust-rdkafka", &measurements));
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

    use rdkafka::{Offset, TopicPartitionList};

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

type Measurements = Vec<(&'static str, f64)>;
type BoxError = Box<dyn std::error::Error>;

async fn run(args: &Args) -> Result<Measurements, BoxError> {
    let bootstrap = bootstrap(args);
    let admin: AdminClient<DefaultClientContext> = config(args, &bootstrap).create()?;
    let created = match (&args.topic, args.mode.as_str()) {
        (Some(topic), "consume") => {
            eprintln!("topic: {topic}");
            None
        }
        _ => {
            let topic = format!(
                "bench.rdkafka.{}.{}.{}.{}",
                args.mode,
                args.compression,
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)?
                    .as_millis()
            );
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
            Some(topic)
        }
    };
    let topic = created.as_deref().or(args.topic.as_deref()).unwrap_or_default();
    let result = match args.mode.as_str() {
        "publish" => publish(args, &bootstrap, topic)
            .await
            .map(|events_per_s| vec![("publish_events_per_s", events_per_s)]),
        "consume" => match created {
            Some(_) => publish(args, &bootstrap, topic)
                .await
                .and_then(|_| consume(args, &bootstrap, topic)),
            None => consume(args, &bootstrap, topic),
        },
        "latency" => latency(args, &bootstrap, topic),
        other => Err(format!("--mode must be publish, consume or latency, not {other}").into()),
    };
    // Leave the broker as we found it (its memory), unless the topic is to be read back.
    if let Some(topic) = &created
        && std::env::var_os("BENCH_KEEP_TOPIC").is_none()
    {
        admin.delete_topics(&[topic], &AdminOptions::new()).await?;
    }
    result
}

async fn publish(args: &Args, bootstrap: &str, topic: &str) -> Result<f64, BoxError> {
    match args.option("api").unwrap_or("base") {
        "future" => run_future(args, bootstrap, topic).await,
        "base" => run_base(args, bootstrap, topic),
        other => Err(format!("--api must be future or base, not {other}").into()),
    }
}

/// When the consumer got its first assignment (and the CPU time then), and how many revocations followed.
#[derive(Default)]
struct Rebalances {
    assigned: Mutex<Option<(Instant, (f64, f64))>>,
    revoked: AtomicU64,
}

impl Rebalances {
    fn assigned(&self) -> Option<(Instant, (f64, f64))> {
        *self.assigned.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ClientContext for Rebalances {}

impl ConsumerContext for Rebalances {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(_) => {
                self.assigned
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert_with(|| (Instant::now(), cpu_seconds()));
            }
            Rebalance::Revoke(_) => {
                self.revoked.fetch_add(1, Ordering::Relaxed);
            }
            Rebalance::Error(e) => eprintln!("bench-peer-rdkafka: rebalance error: {e}"),
        }
    }
}

/// A consumer in a fresh group: earliest offsets, the test broker's short session timeout, offsets stored
/// by the application and committed automatically.
fn consumer(args: &Args, bootstrap: &str, topic: &str) -> Result<BaseConsumer<Rebalances>, BoxError> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("client.id", "bench-peer-rdkafka")
        .set(
            "group.id",
            format!("bench.rdkafka.{}.{}.{}", args.mode, std::process::id(), now_us()),
        )
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.offset.store", "false")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "1000");
    if let Some(ms) = args.fetch_max_wait_ms() {
        config.set("fetch.wait.max.ms", ms.to_string());
    }
    for (name, value) in &args.rest {
        if let Some(name) = name.strip_prefix("rdkafka.") {
            config.set(name, value);
        }
    }
    let consumer: BaseConsumer<Rebalances> = config.create_with_context(Rebalances::default())?;
    consumer.subscribe(&[topic])?;
    Ok(consumer)
}

/// `--mode consume`: N records of `topic`, each decoded and its offset stored.
fn consume(args: &Args, bootstrap: &str, topic: &str) -> Result<Measurements, BoxError> {
    reset_peak_rss();
    let subscribed = Instant::now();
    let consumer = consumer(args, bootstrap, topic)?;
    let (mut handled, mut failed) = (0_u64, 0_u64);
    let deadline = Instant::now() + Duration::from_secs(120);
    while handled < args.events {
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            if Instant::now() > deadline {
                return Err(format!("timed out: {handled} of {} records", args.events).into());
            }
            continue;
        };
        let message = message?;
        if !matches!(message.payload().map(decode_value), Some(Ok(_))) {
            failed += 1;
        }
        consumer.store_offset_from_message(&message)?;
        handled += 1;
    }
    let last = Instant::now();
    let (assigned_at, cpu_before) = consumer.context().assigned().ok_or("never assigned")?;
    let elapsed = last.duration_since(assigned_at);
    report_cpu("rust-rdkafka", args.events, cpu_before, elapsed);
    let revoked = consumer.context().revoked.load(Ordering::Relaxed);
    let closing = Instant::now();
    drop(consumer); // commits the stored offsets and leaves the group
    let close_ms = closing.elapsed().as_secs_f64() * 1e3;
    if failed > 0 {
        return Err(format!("{failed} records did not decode").into());
    }
    Ok(vec![
        ("consume_events_per_s", args.events as f64 / elapsed.as_secs_f64()),
        (
            "join_ms",
            assigned_at.duration_since(subscribed).as_secs_f64() * 1e3,
        ),
        ("close_ms", close_ms),
        ("rebalances", revoked as f64),
    ])
}

/// `--mode latency`: N events published at `--rate` while a consumer thread decodes them.
fn latency(args: &Args, bootstrap: &str, topic: &str) -> Result<Measurements, BoxError> {
    let consumer = consumer(args, bootstrap, topic)?;
    let assigned = Arc::new(std::sync::Barrier::new(2));
    let reader = {
        let (assigned, target) = (Arc::clone(&assigned), args.events);
        std::thread::spawn(move || -> Result<Vec<f64>, String> {
            let mut latencies = Vec::with_capacity(target as usize);
            let mut waiting = true;
            let deadline = Instant::now() + Duration::from_secs(120);
            while (latencies.len() as u64) < target && Instant::now() < deadline {
                let message = consumer.poll(Duration::from_millis(100));
                if waiting && consumer.context().assigned().is_some() {
                    waiting = false;
                    assigned.wait();
                }
                let Some(message) = message else { continue };
                let message = message.map_err(|e| e.to_string())?;
                let sent_us = message.headers().and_then(|h| {
                    h.iter()
                        .find(|h| h.key == "sent_us")
                        .and_then(|h| std::str::from_utf8(h.value?).ok()?.parse::<u64>().ok())
                });
                let _ = consumer.store_offset_from_message(&message);
                if let (Some(sent_us), Some(Ok(_))) = (sent_us, message.payload().map(decode_value)) {
                    latencies.push(now_us().saturating_sub(sent_us) as f64 / 1e3);
                }
            }
            if waiting {
                assigned.wait();
            }
            Ok(latencies)
        })
    };
    assigned.wait();
    let producer: BaseProducer<Counter> = config(args, bootstrap).create_with_context(Counter::default())?;
    producer
        .client()
        .fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut workload = Workload::new();
    let started = Instant::now();
    let mut sent = 0;
    while sent < args.events {
        std::thread::sleep(Duration::from_millis(1));
        let due = ((started.elapsed().as_secs_f64() * args.rate as f64) as u64 + 1).min(args.events);
        while sent < due {
            let event = workload.next_event();
            let sent_us = now_us().to_string();
            let record = BaseRecord::to(topic)
                .key(&event.key)
                .payload(&event.value)
                .headers(headers(&event).insert(Header {
                    key: "sent_us",
                    value: Some(sent_us.as_str()),
                }));
            producer.send(record).map_err(|(e, _)| e)?;
            sent += 1;
        }
        producer.poll(Duration::ZERO);
    }
    let sent_per_s = args.events as f64 / started.elapsed().as_secs_f64();
    producer.flush(Duration::from_secs(30))?;
    let mut latencies = reader.join().map_err(|_| "the consumer thread panicked")??;
    if latencies.len() as u64 != args.events {
        return Err(format!("{} of {} events consumed", latencies.len(), args.events).into());
    }
    let mut measurements = vec![("sent_per_s", sent_per_s)];
    measurements.extend(percentiles(&mut latencies));
    measurements.push((
        "fetch_max_wait_ms",
        args.fetch_max_wait_ms().unwrap_or(500) as f64,
    ));
    Ok(measurements)
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

// The command line, the workload generator and the JSON line: the same code as in kafka-event-bus's
// `examples/bench.rs` (everything from its "The command line shared" comment on), kept identical;
// `scripts/bench-peers.sh` checks that with `diff`.
include!("../../../common/workload.rs");
