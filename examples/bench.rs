//! The client benchmarks, one JSON line each; `just bench-peers` runs them beside the
//! rust-rdkafka peer (`benches/peers/rdkafka`) on one broker.
//!
//! ```text
//! cargo run --release --example bench -- [--mode publish|consume|bus|slow-bus|latency|latency-raw|delete]
//!     --events 200000 --partitions 6 --compression gzip [--topic NAME.stream]
//!     [--batch-size B] [--linger-ms L] [--acks all] [--bootstrap HOST:PORT]
//!     [--buffer-memory B] [--max-request-size B] [--max-in-flight N] [--idempotence true|false]
//!     [--runtime multi|current] [--stream chunk|next] [--fetch-max-wait-ms MS] [--rate 2000]
//!     [--fetch-max-bytes B] [--max-partition-fetch-bytes B] [--max-buffered-fetches N] [--handler-ms MS] [--seconds S]
//!     [--fingerprint]    (soak: --mode soak --rate 500 --seconds 600)
//! ```
//!
//! - `publish` (issue 4): publishes N events to a fresh topic of P partitions; `publish_events_per_s`
//!   from the first `send` to the last acknowledgement (the topic is created and its metadata fetched
//!   before).
//! - `consume` (issue 5): the raw `Consumer` in a fresh group reads N events (of `--topic`, else of a
//!   fresh topic it publishes first), decoding each value's JSON as a handler would and marking it
//!   done; one task per partition takes `next_chunk()` (`--stream next`: `next()`).
//!   `consume_events_per_s` from the first `Assigned` to the N-th record; `join_ms` from `subscribe`
//!   to the first `Assigned`.
//! - `bus` (issue 7): a `KafkaEventBus` in a fresh group with typed handlers for the workload's five
//!   event types (`{sku, quantity}` payloads) reads the N events of `--topic` (which must be named
//!   `PREFIX.stream`, the bus's topic): fetch, decode into `DomainEvent<T>`, dispatch, commit.
//!   `bus_events_per_s` from the first handled event to the N-th (the bus tells no assignment time);
//!   `first_event_ms` from `start_consuming` to the first handled event; `tasks`, the runtime's alive
//!   tasks once the N-th event was handled (a worker per assigned partition, plus the client's own).
//! - `latency` (issue 7): publishes N events at `--rate` per second through the bus while the same
//!   process's bus consumer handles them; p50/p99/max publish→handler latency, with a 10 ms fetch max
//!   wait (`--fetch-max-wait-ms`); `latency-raw` measures the same with the raw `Producer` and
//!   `Consumer`.
//! - `slow-bus` (issue 7): the bus with handlers that take `--handler-ms` (default 2) per event reads
//!   `--topic` for `--seconds` (default 10): `handled`, the topic's `backlog_mb`, and the peak RSS at half
//!   time and at the end: memory stays bounded by the fetch buffers while the backlog waits in the broker.
//! - `soak`: a bus publishes at `--rate` per second (default 2000) for `--seconds` (default
//!   600) while the same process's bus consumer handles the events, then waits until all were handled:
//!   RSS at start, each quarter and end (its peak is the report's `peak_rss_mb`, VmHWM reset at the
//!   start); the runtime's alive tasks (tokio's `num_alive_tasks`) and the bus's `background_task_count` at start and end and the tasks'
//!   peak; open sockets (`/proc/self/fd`) at start and end and their peak. A bus that leaks shows RSS,
//!   tasks or sockets growing with the duration.
//! - `delete`: deletes `--topic`.
//!
//! Workload (the same as the rust-rdkafka peer's): ~405-byte DomainEvent JSON values, the 7 UTF-8
//! headers eventsource-py's KafkaEventBus writes, key = aggregate id over 1000 aggregates, acks=all,
//! linger 5 ms, batches of 1 MiB without compression and 16 KiB with. Peak RSS is the process's VmHWM,
//! reset before consuming starts. `--fingerprint` prints a hash of the generated events instead (no
//! broker), to check that both programs send the same bytes.
//!
//! The broker is `--bootstrap`, else `KAFKA_BOOTSTRAP_SERVERS`, else a throwaway local Tansu. Topics this
//! program creates are deleted at the end unless `BENCH_KEEP_TOPIC` is set (to read them back, e.g. with
//! `--mode consume --topic NAME` or the peer's `--verify NAME`).

use std::{
    error::Error,
    process::ExitCode,
    str::FromStr,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use kafka_event_bus::{
    bus::{EventBus, KafkaEventBus, KafkaEventBusConfig},
    client::{
        ClientConfig, Cluster, NewTopic,
        consumer::{Consumer, ConsumerConfig, ConsumerEvent, ConsumerRecord, PartitionStream},
        fetcher::FetchConfig,
        producer::{Acks, Producer, ProducerConfig, ProducerRecord},
    },
    event::{DomainEvent, Event as BusEvent},
    protocol::{Compression, Headers},
    testing::TestBroker,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use uuid::Uuid;

type Measurements = Vec<(&'static str, f64)>;
type BoxError = Box<dyn Error + Send + Sync>;

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
        .map_err(BoxError::from)
        .and_then(|runtime| runtime.block_on(run(&args)));
    match result {
        Ok(measurements) if args.mode == "delete" => {
            let _ = measurements;
            ExitCode::SUCCESS
        }
        Ok(measurements) => {
            println!("{}", args.report("kafka-event-bus", &measurements));
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

fn producer_config(args: &Args) -> Result<ProducerConfig, BoxError> {
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

/// The broker and a connected cluster client.
struct Setup {
    /// Keeps a throwaway broker alive until the end when neither --bootstrap nor the variable names one.
    _broker: Option<TestBroker>,
    bootstrap: String,
    cluster: Cluster,
}

impl Setup {
    async fn new(args: &Args) -> Result<Self, BoxError> {
        let (broker, bootstrap) = match &args.bootstrap {
            Some(bootstrap) => (None, bootstrap.clone()),
            None => {
                let broker = TestBroker::start().await?;
                let bootstrap = broker.bootstrap_servers().to_owned();
                (Some(broker), bootstrap)
            }
        };
        let cluster = Cluster::connect(ClientConfig::new(&bootstrap).with_client_id("bench")).await?;
        Ok(Self {
            _broker: broker,
            bootstrap,
            cluster,
        })
    }

    /// Creates a fresh topic `bench.keb.KIND.CODEC.PID.MS.stream` (a bus's topic name) and fetches its
    /// metadata.
    async fn fresh_topic(&self, args: &Args, kind: &str) -> Result<String, BoxError> {
        let topic = format!(
            "{}.stream",
            unique(&format!("bench.keb.{kind}.{}", args.compression))
        );
        self.cluster
            .ensure_topics(&[NewTopic::new(&topic, args.partitions, 1)])
            .await?;
        self.cluster.refresh_topics(&[&topic]).await?;
        eprintln!("topic: {topic}");
        Ok(topic)
    }

    /// Deletes a topic this run created, unless `BENCH_KEEP_TOPIC` is set.
    async fn drop_topic(&self, topic: &str) -> Result<(), BoxError> {
        if std::env::var_os("BENCH_KEEP_TOPIC").is_none() {
            self.cluster.delete_topics(&[topic]).await?;
        }
        Ok(())
    }
}

/// `PREFIX.PID.MS`: a name no earlier run used.
fn unique(prefix: &str) -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("{prefix}.{}.{ms}", std::process::id())
}

async fn run(args: &Args) -> Result<Measurements, BoxError> {
    let setup = Setup::new(args).await?;
    match args.mode.as_str() {
        "publish" => {
            let topic = setup.fresh_topic(args, "publish").await?;
            let events_per_s = publish_all(args, &setup.cluster, &topic).await?;
            setup.drop_topic(&topic).await?;
            Ok(vec![("publish_events_per_s", events_per_s)])
        }
        "consume" | "bus" | "slow-bus" => {
            let (topic, created) = match &args.topic {
                Some(topic) => (topic.clone(), false),
                None => {
                    let topic = setup.fresh_topic(args, &args.mode).await?;
                    publish_all(args, &setup.cluster, &topic).await?;
                    (topic, true)
                }
            };
            let measured = if args.mode == "bus" {
                bus_consume(args, &setup.bootstrap, &topic).await
            } else if args.mode == "slow-bus" {
                slow_bus(args, &setup.bootstrap, &topic).await
            } else {
                consume(args, &setup.cluster, &topic).await
            };
            if created {
                setup.drop_topic(&topic).await?;
            }
            measured
        }
        "latency" => latency_bus(args, &setup).await,
        "soak" => soak(args, &setup).await,
        "latency-raw" => latency_raw(args, &setup).await,
        "delete" => {
            let topic = args.topic.as_deref().ok_or("--mode delete needs --topic")?;
            setup.cluster.delete_topics(&[topic]).await?;
            Ok(Vec::new())
        }
        other => Err(format!("unknown --mode {other}").into()),
    }
}

/// Publishes the N workload events to `topic`; events per second from the first send to the last
/// acknowledgement.
async fn publish_all(args: &Args, cluster: &Cluster, topic: &str) -> Result<f64, BoxError> {
    let producer = Producer::new(cluster.clone(), producer_config(args)?)?;
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
        let delivery = producer.send(record(topic, workload.next_event())).await?;
        let _ = tx.send(delivery);
    }
    drop(tx);
    let (failed, first_error) = waiter.await?;
    let elapsed = started.elapsed();
    if args.mode == "publish" {
        report_cpu("kafka-event-bus", args.events, cpu_before, elapsed);
    }
    producer.close().await;
    if failed > 0 {
        return Err(format!(
            "{failed} records failed, the first: {}",
            first_error.unwrap_or_default()
        )
        .into());
    }
    Ok(args.events as f64 / elapsed.as_secs_f64())
}

/// Counts what the consuming tasks handled and stamps the N-th.
struct Tally {
    target: u64,
    handled: AtomicU64,
    failed: AtomicU64,
    /// The most records one `next_chunk` returned (one partition's share of one Fetch).
    largest_chunk: AtomicU64,
    first: OnceLock<Instant>,
    last: OnceLock<Instant>,
    done: Notify,
}

impl Tally {
    fn new(target: u64) -> Arc<Self> {
        Arc::new(Self {
            target,
            handled: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            largest_chunk: AtomicU64::new(0),
            first: OnceLock::new(),
            last: OnceLock::new(),
            done: Notify::new(),
        })
    }

    /// `n` more handled (`failed` of them undecodable).
    fn add(&self, n: u64, failed: u64) {
        self.first.get_or_init(Instant::now);
        if failed > 0 {
            self.failed.fetch_add(failed, Ordering::Relaxed);
        }
        if self.handled.fetch_add(n, Ordering::AcqRel) + n >= self.target {
            self.last.get_or_init(Instant::now);
            self.done.notify_one();
        }
    }

    /// Waits for the N-th record, up to `timeout`.
    async fn wait(&self, timeout: Duration) -> Result<Instant, BoxError> {
        tokio::time::timeout(timeout, self.done.notified())
            .await
            .map_err(|_| {
                format!(
                    "only {} of {} events handled in {timeout:?}",
                    self.handled.load(Ordering::Acquire),
                    self.target
                )
            })?;
        self.last.get().copied().ok_or_else(|| "no end time".into())
    }

    fn check(&self) -> Result<(), BoxError> {
        match self.failed.load(Ordering::Acquire) {
            0 => Ok(()),
            n => Err(format!("{n} records did not decode").into()),
        }
    }
}

/// Decodes one record's value as a handler would (a missing value counts as a failure).
fn handle(record: &ConsumerRecord) -> u64 {
    match record.value.as_deref().map(decode_value) {
        Some(Ok(_)) => 0,
        _ => 1,
    }
}

/// One partition's worker in consume mode: decode every record and mark it done.
async fn drain(mut stream: PartitionStream, tally: Arc<Tally>, chunked: bool) {
    let progress = stream.progress();
    if chunked {
        while let Some(records) = stream.next_chunk().await {
            tally
                .largest_chunk
                .fetch_max(records.len() as u64, Ordering::Relaxed);
            let mut failed = 0;
            for record in &records {
                failed += handle(record);
                progress.store_offset(record.offset + 1);
            }
            tally.add(records.len() as u64, failed);
        }
    } else {
        while let Some(record) = stream.next().await {
            let failed = handle(&record);
            progress.store_offset(record.offset + 1);
            tally.add(1, failed);
        }
    }
}

/// The raw consumer's fetch settings: the client's defaults, or `--fetch-max-wait-ms`,
/// `--fetch-max-bytes`, `--max-partition-fetch-bytes`, `--max-buffered-fetches`.
fn fetch_config(args: &Args) -> Result<FetchConfig, BoxError> {
    let mut fetch = FetchConfig::default();
    if let Some(ms) = args.fetch_max_wait_ms() {
        fetch.fetch_max_wait = Duration::from_millis(ms);
    }
    if let Some(bytes) = parse_option(args, "max-partition-fetch-bytes")? {
        fetch.max_partition_fetch_bytes = bytes;
    }
    if let Some(bytes) = parse_option(args, "fetch-max-bytes")? {
        fetch.fetch_max_bytes = bytes;
    }
    if let Some(n) = parse_option(args, "max-buffered-fetches")? {
        fetch.max_buffered_fetches = n;
    }
    Ok(fetch)
}

/// `--mode consume`: the raw consumer reads N records of `topic` in a fresh group.
async fn consume(args: &Args, cluster: &Cluster, topic: &str) -> Result<Measurements, BoxError> {
    reset_peak_rss();
    let config = ConsumerConfig::new(unique("bench.keb.consume"), [topic])
        .with_session_timeout(Duration::from_secs(6))
        .with_heartbeat_interval(Duration::from_secs(1))
        .with_fetch(fetch_config(args)?);
    let chunked = args.option("stream") != Some("next");
    let tally = Tally::new(args.events);
    let subscribed = Instant::now();
    let mut consumer = Consumer::connect(cluster, config)?;
    let (mut assigned_at, mut cpu_before, mut rebalances) = (None, (0.0, 0.0), 0);
    let deadline = tokio::time::sleep(Duration::from_secs(120));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            () = tally.done.notified() => break,
            () = &mut deadline => return Err(format!("timed out: {} of {} records", tally.handled.load(Ordering::Acquire), args.events).into()),
            event = consumer.next_event() => match event {
                Some(ConsumerEvent::Assigned(streams)) => {
                    if assigned_at.is_none() {
                        assigned_at = Some(Instant::now());
                        cpu_before = cpu_seconds();
                    }
                    for stream in streams {
                        tokio::spawn(drain(stream, Arc::clone(&tally), chunked));
                    }
                }
                Some(ConsumerEvent::Revoked { .. }) => rebalances += 1,
                Some(ConsumerEvent::Left(reason)) => eprintln!("bench: left the group: {reason:?}"),
                Some(ConsumerEvent::Fatal(reason)) => return Err(reason.into()),
                None => return Err("the consumer stopped".into()),
                Some(_) => {}
            },
        }
    }
    let last = tally.last.get().copied().ok_or("no end time")?;
    let assigned_at = assigned_at.ok_or("never assigned")?;
    let elapsed = last.duration_since(assigned_at);
    report_cpu("kafka-event-bus", args.events, cpu_before, elapsed);
    let closing = Instant::now();
    consumer.close().await;
    let close_ms = closing.elapsed().as_secs_f64() * 1e3;
    tally.check()?;
    Ok(vec![
        ("consume_events_per_s", args.events as f64 / elapsed.as_secs_f64()),
        (
            "join_ms",
            assigned_at.duration_since(subscribed).as_secs_f64() * 1e3,
        ),
        ("close_ms", close_ms),
        ("rebalances", f64::from(rebalances)),
        (
            "largest_chunk_records",
            tally.largest_chunk.load(Ordering::Relaxed) as f64,
        ),
    ])
}

/// Declares the workload's five event types with the order payload its values carry.
macro_rules! order_events {
    ($($name:ident),*) => {$(
        #[derive(Debug, Clone, Serialize, Deserialize)]
        struct $name {
            sku: String,
            quantity: u32,
        }

        impl BusEvent for $name {
            const EVENT_TYPE: &'static str = stringify!($name);
            const AGGREGATE_TYPE: &'static str = "Order";
        }
    )*};
}
order_events!(
    OrderPlaced,
    OrderItemAdded,
    OrderItemRemoved,
    OrderPaid,
    OrderShipped
);

/// Subscribes a typed handler for `E` that counts it (and fails the run on an empty sku).
fn count<E: BusEvent>(bus: &KafkaEventBus, tally: &Arc<Tally>, sku: fn(&E) -> &str) -> Result<(), BoxError> {
    let tally = Arc::clone(tally);
    bus.subscribe(move |event: Arc<DomainEvent<E>>| {
        tally.add(1, u64::from(sku(&event.payload).is_empty()));
        std::future::ready(Ok(()))
    })?;
    Ok(())
}

/// Subscribes a typed handler for `E` that takes `delay` per event, then counts it.
fn count_slowly<E: BusEvent>(
    bus: &KafkaEventBus,
    tally: &Arc<Tally>,
    delay: Duration,
) -> Result<(), BoxError> {
    let tally = Arc::clone(tally);
    bus.subscribe(move |_: Arc<DomainEvent<E>>| {
        let tally = Arc::clone(&tally);
        async move {
            tokio::time::sleep(delay).await;
            tally.add(1, 0);
            Ok(())
        }
    })?;
    Ok(())
}

/// `--mode slow-bus`: the bus with handlers far slower than the fetcher (`--handler-ms`, default 2, per
/// event, one at a time per partition) over the N events of `--topic` for `--seconds` (default 10):
/// the peak RSS must stay bounded by the fetch buffers, not grow with the backlog (`backlog_mb`, the
/// topic's value bytes, all of which the fetcher could have read in well under a second).
async fn slow_bus(args: &Args, bootstrap: &str, topic: &str) -> Result<Measurements, BoxError> {
    reset_peak_rss();
    let prefix = topic
        .strip_suffix(".stream")
        .ok_or("--mode slow-bus reads a topic named PREFIX.stream")?;
    let delay = Duration::from_millis(parse_option(args, "handler-ms")?.unwrap_or(2));
    let seconds: u64 = parse_option(args, "seconds")?.unwrap_or(10);
    let bus = KafkaEventBus::new(bus_config(args, bootstrap, prefix)?)?;
    bus.connect().await?;
    let tally = Tally::new(args.events);
    count_slowly::<OrderPlaced>(&bus, &tally, delay)?;
    count_slowly::<OrderItemAdded>(&bus, &tally, delay)?;
    count_slowly::<OrderItemRemoved>(&bus, &tally, delay)?;
    count_slowly::<OrderPaid>(&bus, &tally, delay)?;
    count_slowly::<OrderShipped>(&bus, &tally, delay)?;
    let consuming = bus.start_consuming_in_background()?;
    let mut rss_at_half = 0.0;
    for second in 0..seconds {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if second + 1 == seconds / 2 {
            rss_at_half = peak_rss_mb();
        }
    }
    let handled = tally.handled.load(Ordering::Acquire);
    bus.shutdown(Duration::from_secs(30)).await?;
    consuming.wait().await?;
    if handled == 0 || handled >= args.events {
        return Err(format!("handled {handled} of {} events: not a slow run", args.events).into());
    }
    let mut workload = Workload::new();
    let backlog: usize = (0..args.events).map(|_| workload.next_event().value.len()).sum();
    Ok(vec![
        ("handler_ms", delay.as_secs_f64() * 1e3),
        ("seconds", seconds as f64),
        ("handled", handled as f64),
        ("backlog_mb", backlog as f64 / f64::from(1 << 20)),
        ("peak_rss_mb_at_half_time", rss_at_half),
    ])
}

/// A bus config for the benchmark: a fresh group, the test broker's short session timeout, no retries.
fn bus_config(args: &Args, bootstrap: &str, prefix: &str) -> Result<KafkaEventBusConfig, BoxError> {
    let mut config = KafkaEventBusConfig::builder()
        .bootstrap_servers(bootstrap)
        .topic_prefix(prefix)
        .consumer_group(unique("bench.keb.bus"))
        .session_timeout_ms(6_000)
        .heartbeat_interval_ms(1_000)
        .linger_ms(args.linger_ms)
        .max_retries(0)
        .build()?;
    config.compression_type = (args.compression != "none").then(|| args.compression.clone());
    if let Some(ms) = args.fetch_max_wait_ms() {
        config.fetch_max_wait = Duration::from_millis(ms);
    }
    if let Some(bytes) = parse_option(args, "fetch-max-bytes")? {
        config.fetch_max_bytes = bytes;
    }
    // `--telemetry off` measures the bus with metrics and tracing disabled (the default is on).
    if args.option("telemetry") == Some("off") {
        config.enable_metrics = false;
        config.enable_tracing = false;
    }
    Ok(config)
}

/// `--mode bus`: the bus's full consume path over the N events of `topic` (`PREFIX.stream`).
async fn bus_consume(args: &Args, bootstrap: &str, topic: &str) -> Result<Measurements, BoxError> {
    reset_peak_rss();
    let prefix = topic
        .strip_suffix(".stream")
        .ok_or("--mode bus reads a topic named PREFIX.stream")?;
    let bus = KafkaEventBus::new(bus_config(args, bootstrap, prefix)?)?;
    bus.connect().await?;
    let tally = Tally::new(args.events);
    count::<OrderPlaced>(&bus, &tally, |e| &e.sku)?;
    count::<OrderItemAdded>(&bus, &tally, |e| &e.sku)?;
    count::<OrderItemRemoved>(&bus, &tally, |e| &e.sku)?;
    count::<OrderPaid>(&bus, &tally, |e| &e.sku)?;
    count::<OrderShipped>(&bus, &tally, |e| &e.sku)?;
    // The CPU time includes the group join's (a few requests: negligible).
    let (started, cpu_before) = (Instant::now(), cpu_seconds());
    let consuming = bus.start_consuming_in_background()?;
    let last = tally.wait(Duration::from_secs(120)).await?;
    let first = tally.first.get().copied().ok_or("no first event")?;
    let elapsed = last.duration_since(first);
    report_cpu("kafka-event-bus", args.events, cpu_before, elapsed);
    // The runtime's tasks while the bus holds its partitions (a worker each, plus the client's own).
    let tasks = tokio::runtime::Handle::current().metrics().num_alive_tasks();
    bus.shutdown(Duration::from_secs(30)).await?;
    consuming.wait().await?;
    let stats = bus.stats();
    tally.check()?;
    if stats.events_processed_failed > 0 || stats.events_processed_success < args.events {
        return Err(format!("bus stats: {stats:?}").into());
    }
    Ok(vec![
        ("bus_events_per_s", args.events as f64 / elapsed.as_secs_f64()),
        (
            "first_event_ms",
            first.duration_since(started).as_secs_f64() * 1e3,
        ),
        ("tasks", tasks as f64),
    ])
}

/// What a long run must not grow: memory, tasks, sockets.
#[derive(Debug, Clone, Copy)]
struct Footprint {
    rss_mb: f64,
    tasks: usize,
    bus_tasks: usize,
    sockets: usize,
}

impl Footprint {
    fn now(bus: &KafkaEventBus) -> Self {
        Self {
            rss_mb: rss_mb(),
            tasks: tokio::runtime::Handle::current().metrics().num_alive_tasks(),
            bus_tasks: bus.background_task_count(),
            sockets: open_sockets(),
        }
    }
}

/// Resident memory of this process now (VmRSS), in MiB.
fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The sockets this process holds open (its connections to the broker, mostly).
fn open_sockets() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |fds| {
        fds.flatten()
            .filter(|fd| {
                std::fs::read_link(fd.path())
                    .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"))
            })
            .count()
    })
}

/// `--mode soak`: publish and consume at `--rate` for `--seconds` (default 600) through one bus; the
/// footprint at start, each quarter and end.
async fn soak(args: &Args, setup: &Setup) -> Result<Measurements, BoxError> {
    let seconds: u64 = parse_option(args, "seconds")?.unwrap_or(600);
    let prefix = unique("bench.keb.soak");
    let bus = KafkaEventBus::new(bus_config(args, &setup.bootstrap, &prefix)?)?;
    bus.connect().await?;
    bus.ensure_topics(kafka_event_bus::bus::TopicOptions::new().partitions(args.partitions))
        .await?;
    let handled = Arc::new(AtomicU64::new(0));
    {
        let handled = Arc::clone(&handled);
        bus.subscribe(move |_: Arc<DomainEvent<OrderPlaced>>| {
            handled.fetch_add(1, Ordering::Relaxed);
            std::future::ready(Ok(()))
        })?;
    }
    let consuming = bus.start_consuming_in_background()?;
    let order = |n: u64| {
        DomainEvent::new(
            Uuid::new_v4(),
            1,
            OrderPlaced {
                sku: format!("SKU-{:05}", n % 1000),
                quantity: 1,
            },
        )
    };
    // Warm up: the group is joined and the first event handled before the footprint is taken.
    bus.publish_event(order(0)).await?;
    let joined = Instant::now();
    while handled.load(Ordering::Acquire) == 0 {
        if joined.elapsed() > Duration::from_secs(60) {
            return Err("the bus did not handle its warm-up event in 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    reset_peak_rss();
    let start = Footprint::now(&bus);
    let (mut half, mut peak_tasks, mut peak_sockets) = (start, start.tasks, start.sockets);
    let (mut first_quarter, mut third_quarter) = (start, start);
    let (mut published, mut failed) = (0_u64, 0_u64);
    let started = Instant::now();
    let duration = Duration::from_secs(seconds);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut next_sample = Duration::from_secs(1);
    while started.elapsed() < duration {
        tick.tick().await;
        let due = (started.elapsed().as_secs_f64() * args.rate as f64) as u64;
        if due > published {
            let batch: Vec<_> = (published..due)
                .map(|n| order(n).into_any())
                .collect::<Result<_, _>>()?;
            if bus.publish(batch).await.is_err() {
                failed += due - published;
            }
            published = due;
        }
        if started.elapsed() >= next_sample {
            next_sample += Duration::from_secs(1);
            let now = Footprint::now(&bus);
            peak_tasks = peak_tasks.max(now.tasks);
            peak_sockets = peak_sockets.max(now.sockets);
            let elapsed = started.elapsed();
            if elapsed <= duration / 4 {
                first_quarter = now;
            }
            if elapsed <= duration / 2 {
                half = now;
            }
            if elapsed <= duration * 3 / 4 {
                third_quarter = now;
            }
        }
    }
    let publish_seconds = started.elapsed().as_secs_f64();
    let target = published - failed + 1;
    let draining = Instant::now();
    while handled.load(Ordering::Acquire) < target && draining.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drain_ms = draining.elapsed().as_secs_f64() * 1e3;
    let end = Footprint::now(&bus);
    let handled = handled.load(Ordering::Acquire) - 1;
    bus.shutdown(Duration::from_secs(30)).await?;
    consuming.wait().await?;
    setup.drop_topic(&format!("{prefix}.stream")).await?;
    if failed > 0 || handled < published {
        return Err(format!("published {published} ({failed} failed), handled {handled}").into());
    }
    Ok(vec![
        ("seconds", publish_seconds),
        ("rate", args.rate as f64),
        ("published", published as f64),
        ("handled", handled as f64),
        ("drain_ms", drain_ms),
        ("rss_mb_start", start.rss_mb),
        ("rss_mb_q1", first_quarter.rss_mb),
        ("rss_mb_half", half.rss_mb),
        ("rss_mb_q3", third_quarter.rss_mb),
        ("rss_mb_end", end.rss_mb),
        ("tasks_start", start.tasks as f64),
        ("tasks_half", half.tasks as f64),
        ("tasks_end", end.tasks as f64),
        ("tasks_peak", peak_tasks as f64),
        ("bus_tasks_start", start.bus_tasks as f64),
        ("bus_tasks_end", end.bus_tasks as f64),
        ("sockets_start", start.sockets as f64),
        ("sockets_half", half.sockets as f64),
        ("sockets_end", end.sockets as f64),
        ("sockets_peak", peak_sockets as f64),
    ])
}

// The latency modes (the bus, and the raw producer and consumer).
include!("../benches/common/keb_latency.rs");

// The workload and command line shared with the rust-rdkafka peer (benches/peers/rdkafka).
include!("../benches/common/workload.rs");
