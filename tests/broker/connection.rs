//! The connection layer against a real broker: negotiation, pipelining, bad addresses, a broker that
//! dies or freezes mid-test.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use kafka_event_bus::{
    client::{
        ClientConfig, Cluster, NewTopic,
        cluster::Error as ClusterError,
        connection::{BrokerConnection, Error},
        producer::{Producer, ProducerConfig, ProducerRecord},
    },
    protocol::{ApiKey, ApiRequest, StrBytes},
    testing::LocalBroker,
};
use kafka_protocol::messages::{
    CreateTopicsRequest, FetchRequest, FindCoordinatorRequest, JoinGroupRequest, MetadataRequest,
    OffsetCommitRequest, ProduceRequest, TopicName, metadata_request::MetadataRequestTopic,
};

use crate::{fault_proxy::FaultyBroker, support::unique, trial};

pub(crate) fn trials(trials: &mut crate::Trials<'_>) {
    trials.push(trial(
        "negotiates_versions_per_api",
        |ctx| async move {
            let broker = BrokerConnection::new(ctx.bootstrap.split(',').next().unwrap(), ctx.config().into());
            let messenger = broker.messenger().await.unwrap();
            let versions = messenger.versions();
            assert!(
                versions.iter().count() > 10,
                "the broker advertised {} APIs",
                versions.iter().count()
            );
            let chosen = [
                (
                    ApiKey::Metadata,
                    messenger.version_for::<MetadataRequest>().unwrap(),
                    MetadataRequest::VERSIONS,
                ),
                (
                    ApiKey::Produce,
                    messenger.version_for::<ProduceRequest>().unwrap(),
                    ProduceRequest::VERSIONS,
                ),
                (
                    ApiKey::Fetch,
                    messenger.version_for::<FetchRequest>().unwrap(),
                    FetchRequest::VERSIONS,
                ),
                (
                    ApiKey::CreateTopics,
                    messenger.version_for::<CreateTopicsRequest>().unwrap(),
                    CreateTopicsRequest::VERSIONS,
                ),
                (
                    ApiKey::FindCoordinator,
                    messenger.version_for::<FindCoordinatorRequest>().unwrap(),
                    FindCoordinatorRequest::VERSIONS,
                ),
                (
                    ApiKey::JoinGroup,
                    messenger.version_for::<JoinGroupRequest>().unwrap(),
                    JoinGroupRequest::VERSIONS,
                ),
                (
                    ApiKey::OffsetCommit,
                    messenger.version_for::<OffsetCommitRequest>().unwrap(),
                    OffsetCommitRequest::VERSIONS,
                ),
            ];
            for (api, version, ours) in chosen {
                let theirs = versions.broker_range(api).unwrap();
                // The highest version both sides speak.
                assert_eq!(
                    version,
                    ours.max.min(theirs.max),
                    "{api:?}: ours {ours}, broker {theirs}"
                );
                eprintln!("{api:?}: v{version} (client {ours}, broker {theirs})");
            }
        },
    ));

    trials.push(trial(
        "pipelines_many_requests_on_one_connection",
        |ctx| async move {
            let broker = Arc::new(BrokerConnection::new(
                ctx.bootstrap.split(',').next().unwrap(),
                ctx.config().into(),
            ));
            let first = broker.messenger().await.unwrap();
            // 200 requests in flight at once, each asking about its own (missing) topic: every response must
            // be the answer to its own request.
            let tasks: Vec<_> = (0..200)
                .map(|i| {
                    let broker = Arc::clone(&broker);
                    tokio::spawn(async move {
                        let name = format!("missing-{i}-{}", unique("t"));
                        let request = MetadataRequest::default().with_topics(Some(vec![
                            MetadataRequestTopic::default()
                                .with_name(Some(TopicName(StrBytes::from_string(name.clone())))),
                        ]));
                        let response = broker.request(&request).await.unwrap();
                        let names: Vec<String> = response
                            .topics
                            .iter()
                            .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
                            .collect();
                        assert_eq!(names, [name]);
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
            // ...and all of it on the one connection.
            assert!(Arc::ptr_eq(&first, &broker.messenger().await.unwrap()));
        },
    ));

    trials.push(trial(
        "bad_addresses_give_clear_errors",
        |_ctx| async move {
            let err = Cluster::connect(ClientConfig::new("localhost"))
                .await
                .unwrap_err();
            assert!(matches!(err, ClusterError::InvalidConfig { .. }), "{err}");
            assert!(err.to_string().contains("missing :port"), "{err}");
            assert!(!err.is_retriable());

            let err = Cluster::connect(ClientConfig::new(" , ")).await.unwrap_err();
            assert!(err.to_string().contains("bootstrap_servers is empty"), "{err}");

            let config = ClientConfig::new("no-such-host.invalid:9092")
                .with_reconnect_deadline(Duration::from_millis(500));
            let err = Cluster::connect(config).await.unwrap_err();
            assert!(matches!(err, ClusterError::NoBrokerReachable { .. }), "{err}");
            let message = err.to_string();
            assert!(message.contains("no-such-host.invalid:9092"), "{message}");
            assert!(message.contains("cannot resolve"), "{message}");
        },
    ));

    trials.push(trial(
        "a_dead_first_bootstrap_server_is_skipped",
        |ctx| async move {
            let dead = format!("127.0.0.1:{}", free_port());
            let config = ClientConfig::new(&format!("{dead},{}", ctx.bootstrap));
            let cluster = Cluster::connect(config).await.unwrap();
            assert!(!cluster.metadata().brokers.is_empty());
            // With only dead servers, the error lists them, after the deadline, without hanging.
            let config = ClientConfig::new(&dead).with_reconnect_deadline(Duration::from_millis(300));
            let started = std::time::Instant::now();
            let err = Cluster::connect(config).await.unwrap_err();
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "took {:?}",
                started.elapsed()
            );
            assert!(err.is_retriable());
            assert!(err.to_string().contains(&dead), "{err}");
        },
    ));

    trials.push(trial(
        "a_hung_first_bootstrap_server_leaves_time_for_the_next",
        |ctx| async move {
            // The first server accepts TCP and never answers; the live broker comes second. Each
            // bootstrap attempt gets a share of the time left, so the broker is reached well inside
            // bootstrap_timeout even though connect_timeout alone would outlast it.
            let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let hung_address = hung.local_addr().unwrap();
            let held = tokio::spawn(async move {
                let mut open = Vec::new();
                while let Ok((socket, _)) = hung.accept().await {
                    open.push(socket);
                }
            });
            let bootstrap_timeout = Duration::from_secs(4);
            let config = ClientConfig::new(&format!("{hung_address},{}", ctx.bootstrap))
                .with_connect_timeout(Duration::from_secs(10))
                .with_request_timeout(Duration::from_secs(10))
                .with_bootstrap_timeout(bootstrap_timeout);
            let started = Instant::now();
            let cluster = Cluster::connect(config).await.unwrap();
            let took = started.elapsed();
            assert!(!cluster.metadata().brokers.is_empty());
            assert!(took < bootstrap_timeout, "took {took:?}");
            eprintln!("connected past a hung first server in {took:?}");
            held.abort();
        },
    ));

    trials.push(trial(
        "a_stopped_broker_fails_requests_then_recovers",
        |_ctx| async move {
            let mut broker = tokio::task::spawn_blocking(LocalBroker::start)
                .await
                .unwrap()
                .unwrap();
            let config = ClientConfig::new(broker.bootstrap_servers())
                .with_reconnect_deadline(Duration::from_secs(1))
                .with_reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200));
            let connection = BrokerConnection::new(broker.bootstrap_servers(), config.into());
            let request = MetadataRequest::default().with_topics(Some(vec![]));
            connection.request(&request).await.unwrap();

            // Requests in flight when the broker goes away fail with a typed, retriable error; so does the
            // next one (after the reconnect deadline), instead of hanging.
            let in_flight: Vec<_> = (0..5).map(|_| connection.request(&request)).collect();
            let (results, ()) = tokio::join!(futures::future::join_all(in_flight), async {
                tokio::task::block_in_place(|| broker.stop());
            });
            for result in results {
                if let Err(err) = result {
                    assert!(err.is_retriable(), "{err}");
                }
            }
            let started = std::time::Instant::now();
            let err = connection.request(&request).await.unwrap_err();
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "took {:?}",
                started.elapsed()
            );
            assert!(
                matches!(err, Error::ReconnectDeadline { .. } | Error::Disconnected { .. }),
                "{err}"
            );

            // The broker comes back on the same address: the same handle reconnects by itself.
            tokio::task::block_in_place(|| broker.restart()).unwrap();
            let response = connection.request(&request).await.unwrap();
            assert!(!response.brokers.is_empty());
        },
    ));

    trials.push(trial(
        "a_frozen_broker_times_out_instead_of_hanging",
        |_ctx| async move {
            let broker = tokio::task::spawn_blocking(LocalBroker::start)
                .await
                .unwrap()
                .unwrap();
            let config = ClientConfig::new(broker.bootstrap_servers())
                .with_request_timeout(Duration::from_millis(500));
            let connection = BrokerConnection::new(broker.bootstrap_servers(), config.into());
            let request = MetadataRequest::default().with_topics(Some(vec![]));
            connection.request(&request).await.unwrap();

            broker.pause();
            let err = connection.request(&request).await.unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::RequestTimeout {
                        api: ApiKey::Metadata,
                        ..
                    }
                ),
                "{err}"
            );
            assert!(err.is_retriable());

            // The timed-out connection was closed; once the broker thaws, the next request reconnects.
            broker.resume();
            let response = connection.request(&request).await.unwrap();
            assert!(!response.brokers.is_empty());
        },
    ));

    trials.push(trial(
        "a_blackholed_link_is_replaced_after_the_request_timeout",
        |_ctx| async move {
            let broker = FaultyBroker::start().await;
            let request_timeout = Duration::from_secs(2);
            let config = ClientConfig::new(&broker.bootstrap)
                .with_request_timeout(request_timeout)
                .with_connect_timeout(Duration::from_secs(2))
                .with_reconnect_backoff(Duration::from_millis(50), Duration::from_millis(500))
                .with_reconnect_deadline(Duration::from_secs(60));
            let cluster = Cluster::connect(config).await.unwrap();
            let topic = unique("blackhole");
            cluster
                .ensure_topics(&[NewTopic::new(&topic, 1, 1)])
                .await
                .unwrap();
            // The producer waits its request timeout plus 5 s for a Produce answer.
            let producer_timeout = Duration::from_secs(1);
            let producer = Producer::new(
                cluster.clone(),
                ProducerConfig::default()
                    .with_linger(Duration::from_millis(1))
                    .with_request_timeout(producer_timeout)
                    .with_retry_backoff(Duration::from_millis(50))
                    .with_delivery_timeout(Duration::from_secs(120)),
            )
            .unwrap();
            let record = |i: usize| {
                ProducerRecord::new(&topic)
                    .with_key("k")
                    .with_value(i.to_string())
            };
            producer.send_and_wait(record(0)).await.unwrap();
            let (leader, connection) = cluster.leader(&topic, 0).await.unwrap();
            let metadata = MetadataRequest::default().with_topics(Some(vec![]));
            connection.request(&metadata).await.unwrap();

            // The link goes silent (sockets stay open): requests on it and connects through it hang.
            broker.blackhole();
            let delivery = producer.send(record(1)).await.unwrap();
            let refresh = tokio::spawn({
                let cluster = cluster.clone();
                async move { cluster.refresh_metadata().await }
            });
            tokio::time::sleep(Duration::from_secs(4)).await;
            broker.forward();
            let healed = Instant::now();

            // Worst case: an attempt that started just before the link healed waits out its timeout,
            // then the backoff and a fresh connect.
            let bound = producer_timeout + Duration::from_secs(5) + Duration::from_secs(4);
            let written = tokio::time::timeout(bound, delivery)
                .await
                .expect("the producer kept using the dead connection")
                .unwrap();
            assert_eq!(written.offset, 1);
            let produce_recovery = healed.elapsed();
            let refreshed = tokio::time::timeout(bound, refresh)
                .await
                .expect("metadata kept going to the dead connection")
                .unwrap()
                .unwrap();
            assert!(refreshed.brokers.contains_key(&leader));
            let metadata_recovery = healed.elapsed();
            let answered = tokio::time::timeout(
                request_timeout * 2 + Duration::from_secs(4),
                connection.request(&metadata),
            )
            .await
            .expect("the leader connection was not replaced")
            .unwrap();
            assert!(!answered.brokers.is_empty());
            eprintln!(
                "recovered after the link healed: produce in {produce_recovery:?}, metadata in \
                 {metadata_recovery:?}, a request on the leader connection in {:?}",
                healed.elapsed()
            );
            producer.close().await;
        },
    ));
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
