// kafka-event-bus's latency modes (`--mode latency` through the bus, `--mode latency-raw` through the raw
// producer and consumer), brought into `examples/bench.rs` with `include!`: it uses that file's imports,
// `Args`, `Setup`, `bus_config`, `fetch_config`, `record` and `unique`.

/// The latency probe: its send time and an order payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LatencyProbe {
    sent_us: u64,
    sku: String,
    quantity: u32,
}

impl BusEvent for LatencyProbe {
    const EVENT_TYPE: &'static str = "LatencyProbe";
    const AGGREGATE_TYPE: &'static str = "Order";
}

/// Publish → handler latencies (ms) of the probes handled so far.
type Latencies = Arc<Mutex<Vec<f64>>>;

fn latency_ms(sent_us: u64) -> f64 {
    now_us().saturating_sub(sent_us) as f64 / 1e3
}

/// Calls `send(n)` for n in 0..N at `--rate` per second (on 1 ms ticks).
async fn paced(args: &Args, mut send: impl FnMut(u64) -> Result<(), BoxError>) -> Result<f64, BoxError> {
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let started = Instant::now();
    let mut sent = 0;
    while sent < args.events {
        tick.tick().await;
        let due = ((started.elapsed().as_secs_f64() * args.rate as f64) as u64 + 1).min(args.events);
        while sent < due {
            send(sent)?;
            sent += 1;
        }
    }
    Ok(args.events as f64 / started.elapsed().as_secs_f64())
}

/// Waits until every probe was handled; the measurements.
async fn latency_report(
    latencies: &Latencies,
    done: &Notify,
    sent_per_s: f64,
    fetch_max_wait_ms: f64,
) -> Result<Measurements, BoxError> {
    tokio::time::timeout(Duration::from_secs(60), done.notified())
        .await
        .map_err(|_| "not every probe was handled in 60 s")?;
    let mut latencies = std::mem::take(&mut *latencies.lock().map_err(|_| "poisoned")?);
    let mut measurements = vec![("sent_per_s", sent_per_s)];
    measurements.extend(percentiles(&mut latencies));
    measurements.push(("fetch_max_wait_ms", fetch_max_wait_ms));
    Ok(measurements)
}

/// `--mode latency`: N probes published through the bus at `--rate`, handled by the same bus.
async fn latency_bus(args: &Args, setup: &Setup) -> Result<Measurements, BoxError> {
    let prefix = unique("bench.keb.latency");
    let config = bus_config(args, &setup.bootstrap, &prefix)?;
    let fetch_max_wait_ms = config.fetch_max_wait.as_secs_f64() * 1e3;
    let bus = KafkaEventBus::new(config)?;
    bus.connect().await?;
    bus.ensure_topics(kafka_event_bus::bus::TopicOptions::new().partitions(args.partitions)).await?;
    let (latencies, done) = (Latencies::default(), Arc::new(Notify::new()));
    let (warm, target) = (Arc::new(Notify::new()), args.events);
    {
        let (latencies, done, warm) = (Arc::clone(&latencies), Arc::clone(&done), Arc::clone(&warm));
        bus.subscribe(move |event: Arc<DomainEvent<LatencyProbe>>| {
            if event.payload.quantity == 0 {
                warm.notify_one(); // the warm-up probe: the group is joined
            } else if let Ok(mut latencies) = latencies.lock() {
                latencies.push(latency_ms(event.payload.sent_us));
                if latencies.len() as u64 == target {
                    done.notify_one();
                }
            }
            std::future::ready(Ok(()))
        })?;
    }
    let consuming = bus.start_consuming_in_background()?;
    let probe = |quantity| {
        DomainEvent::new(
            Uuid::new_v4(),
            1,
            LatencyProbe {
                sent_us: now_us(),
                sku: "SKU-00001".into(),
                quantity,
            },
        )
    };
    bus.publish_event(probe(0)).await?;
    tokio::time::timeout(Duration::from_secs(60), warm.notified())
        .await
        .map_err(|_| "the bus did not join its group in 60 s")?;
    let failed = Arc::new(AtomicU64::new(0));
    let sent_per_s = paced(args, |_| {
        let (bus, failed, event) = (bus.clone(), Arc::clone(&failed), probe(1));
        tokio::spawn(async move {
            if bus.publish_event(event).await.is_err() {
                failed.fetch_add(1, Ordering::Relaxed);
            }
        });
        Ok(())
    })
    .await?;
    let measured = latency_report(&latencies, &done, sent_per_s, fetch_max_wait_ms).await;
    bus.shutdown(Duration::from_secs(30)).await?;
    consuming.wait().await?;
    setup.drop_topic(&format!("{prefix}.stream")).await?;
    match failed.load(Ordering::Acquire) {
        0 => measured,
        n => Err(format!("{n} publishes failed").into()),
    }
}

/// `--mode latency-raw`: the same with the raw producer and consumer (header `sent_us`), whose
/// fetch max wait can be set (10 ms by default here).
async fn latency_raw(args: &Args, setup: &Setup) -> Result<Measurements, BoxError> {
    let topic = setup.fresh_topic(args, "latency").await?;
    let fetch = fetch_config(args)?;
    let fetch_max_wait_ms = fetch.fetch_max_wait.as_secs_f64() * 1e3;
    let config = ConsumerConfig::new(unique("bench.keb.latency"), [topic.as_str()])
        .with_session_timeout(Duration::from_secs(6))
        .with_heartbeat_interval(Duration::from_secs(1))
        .with_fetch(fetch);
    let mut consumer = Consumer::connect(&setup.cluster, config)?;
    let (latencies, done) = (Latencies::default(), Arc::new(Notify::new()));
    let mut assigned = 0;
    while assigned < args.partitions {
        match tokio::time::timeout(Duration::from_secs(60), consumer.next_event()).await {
            Ok(Some(ConsumerEvent::Assigned(streams))) => {
                for mut stream in streams {
                    assigned += 1;
                    let (latencies, done, target) = (Arc::clone(&latencies), Arc::clone(&done), args.events);
                    tokio::spawn(async move {
                        let progress = stream.progress();
                        while let Some(record) = stream.next().await {
                            let sent_us = record
                                .headers
                                .get_str("sent_us")
                                .and_then(|v| v.parse().ok())
                                .unwrap_or(0);
                            let decoded = record.value.as_deref().map(decode_value);
                            progress.store_offset(record.offset + 1);
                            if let (Some(Ok(_)), Ok(mut latencies)) = (decoded, latencies.lock()) {
                                latencies.push(latency_ms(sent_us));
                                if latencies.len() as u64 == target {
                                    done.notify_one();
                                }
                            }
                        }
                    });
                }
            }
            Ok(Some(ConsumerEvent::Fatal(reason))) => return Err(reason.into()),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return Err("no assignment in 60 s".into()),
        }
    }
    let producer = Producer::new(setup.cluster.clone(), producer_config(args)?)?;
    let mut workload = Workload::new();
    let failed = Arc::new(AtomicU64::new(0));
    let sent_per_s = paced(args, |_| {
        let mut record = record(&topic, workload.next_event());
        record.headers.insert("sent_us", now_us().to_string());
        let (producer, failed) = (producer.clone(), Arc::clone(&failed));
        tokio::spawn(async move {
            let delivered = match producer.send(record).await {
                Ok(delivery) => delivery.await.is_ok(),
                Err(_) => false,
            };
            if !delivered {
                failed.fetch_add(1, Ordering::Relaxed);
            }
        });
        Ok(())
    })
    .await?;
    let measured = latency_report(&latencies, &done, sent_per_s, fetch_max_wait_ms).await;
    producer.close().await;
    consumer.close().await;
    setup.drop_topic(&topic).await?;
    match failed.load(Ordering::Acquire) {
        0 => measured,
        n => Err(format!("{n} publishes failed").into()),
    }
}
