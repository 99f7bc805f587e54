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

// The workload and command line shared with the rust-rdkafka peer (benches/peers/rdkafka).
include!("../benches/common/workload.rs");
