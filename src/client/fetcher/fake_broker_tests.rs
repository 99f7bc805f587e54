//! The fetch task against an in-process broker that answers ApiVersions, Metadata, ListOffsets and
//! Fetch (one record batch per partition per Fetch): what a real broker will not do on demand (refuse
//! every ListOffsets), and a revoke and reassign in the middle of a stream.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use std::sync::atomic::{AtomicUsize, Ordering};

use kafka_protocol::{
    messages::{
        ApiKey, ApiVersionsResponse, BrokerId, FetchRequest, FetchResponse, ListOffsetsResponse,
        MetadataResponse, TopicName,
        api_versions_response::ApiVersion,
        fetch_response::{FetchableTopicResponse, PartitionData},
        list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse},
        metadata_response::{MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic},
    },
    protocol::{Decodable, StrBytes},
};
use tokio::net::TcpListener;

use super::*;
use crate::client::connection::fake_peer::FakePeer;

/// A broker that leads t-0 and answers every ListOffsets with NOT_LEADER_OR_FOLLOWER.
async fn broker(list_offsets: Arc<AtomicUsize>) -> String {
    fake(list_offsets, 1, 0, 0).await
}

fn batch(base: i64, n: usize) -> bytes::Bytes {
    let mut b = crate::protocol::RecordBatchBuilder::new(crate::protocol::Compression::None);
    for i in 0..n {
        b.append(
            0,
            None,
            Some(format!("v{i}").as_bytes()),
            &crate::protocol::Headers::new(),
        )
        .unwrap();
    }
    let bytes = b.finish().unwrap();
    let mut v = bytes.to_vec();
    v[0..8].copy_from_slice(&base.to_be_bytes());
    bytes::Bytes::from(v)
}

/// `partitions` partitions of t, each with `records` records in batches of `per_batch`; one batch
/// per partition per Fetch. `partitions == 1 && records == 0`: ListOffsets fails.
async fn fake(list_offsets: Arc<AtomicUsize>, partitions: i32, records: i64, per_batch: i64) -> String {
    let fail_resets = records == 0;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let list_offsets = Arc::clone(&list_offsets);
            tokio::spawn(async move {
                let mut peer = FakePeer::new(socket);
                while let Some((header, mut body)) = peer.read_request().await {
                    let (id, version) = (header.correlation_id, header.request_api_version);
                    match ApiKey::try_from(header.request_api_key) {
                        Ok(ApiKey::ApiVersions) => {
                            let keys = [
                                (ApiKey::ApiVersions, 0, 3),
                                (ApiKey::Metadata, 0, 12),
                                (ApiKey::ListOffsets, 1, 7),
                                (ApiKey::Fetch, 4, 12),
                            ]
                            .map(|(api, min, max)| {
                                ApiVersion::default()
                                    .with_api_key(api as i16)
                                    .with_min_version(min)
                                    .with_max_version(max)
                            });
                            let answer = ApiVersionsResponse::default().with_api_keys(keys.to_vec());
                            peer.respond(id, version, &answer).await;
                        }
                        Ok(ApiKey::Metadata) => {
                            let partitions = (0..partitions)
                                .map(|i| {
                                    MetadataResponsePartition::default()
                                        .with_partition_index(i)
                                        .with_leader_id(BrokerId(1))
                                        .with_replica_nodes(vec![BrokerId(1)])
                                        .with_isr_nodes(vec![BrokerId(1)])
                                })
                                .collect();
                            let answer = MetadataResponse::default()
                                .with_cluster_id(Some(StrBytes::from_static_str("c1")))
                                .with_controller_id(BrokerId(1))
                                .with_brokers(vec![
                                    MetadataResponseBroker::default()
                                        .with_node_id(BrokerId(1))
                                        .with_host(StrBytes::from_string(address.ip().to_string()))
                                        .with_port(i32::from(address.port())),
                                ])
                                .with_topics(vec![
                                    MetadataResponseTopic::default()
                                        .with_name(Some(TopicName(StrBytes::from_static_str("t"))))
                                        .with_partitions(partitions),
                                ]);
                            peer.respond(id, version, &answer).await;
                        }
                        Ok(ApiKey::ListOffsets) => {
                            list_offsets.fetch_add(1, Ordering::SeqCst);
                            let partitions = (0..partitions)
                                .map(|i| {
                                    ListOffsetsPartitionResponse::default()
                                        .with_partition_index(i)
                                        .with_error_code(if fail_resets { 6 } else { 0 })
                                        .with_offset(0)
                                })
                                .collect();
                            let answer = ListOffsetsResponse::default().with_topics(vec![
                                ListOffsetsTopicResponse::default()
                                    .with_name(TopicName(StrBytes::from_static_str("t")))
                                    .with_partitions(partitions),
                            ]);
                            peer.respond(id, version, &answer).await;
                        }
                        Ok(ApiKey::Fetch) => {
                            let request = FetchRequest::decode(&mut body, version).unwrap();
                            let answer = fetch_answer(&request, records, per_batch);
                            let any = answer
                                .responses
                                .iter()
                                .flat_map(|t| &t.partitions)
                                .any(|p| p.records.is_some());
                            if !any {
                                let wait = u64::try_from(request.max_wait_ms).unwrap_or(0).min(100);
                                tokio::time::sleep(Duration::from_millis(wait)).await;
                            }
                            peer.respond(id, version, &answer).await;
                        }
                        _ => return,
                    }
                }
            });
        }
    });
    address.to_string()
}

/// A Fetch's answer: for each partition asked for below `records`, the batch of `per_batch` records
/// that holds its fetch offset.
fn fetch_answer(request: &FetchRequest, records: i64, per_batch: i64) -> FetchResponse {
    let topics = request
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let data = PartitionData::default()
                        .with_partition_index(p.partition)
                        .with_high_watermark(records)
                        .with_last_stable_offset(records);
                    if p.fetch_offset < records {
                        let base = p.fetch_offset / per_batch * per_batch;
                        data.with_records(Some(batch(base, per_batch as usize)))
                    } else {
                        data
                    }
                })
                .collect();
            FetchableTopicResponse::default()
                .with_topic(t.topic.clone())
                .with_partitions(partitions)
        })
        .collect();
    FetchResponse::default().with_responses(topics)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_offset_reset_waits_the_retry_backoff() {
    let count = Arc::new(AtomicUsize::new(0));
    let address = broker(Arc::clone(&count)).await;
    let cluster = Cluster::connect(crate::client::ClientConfig::new(&address))
        .await
        .unwrap();
    let shared = Arc::new(FetchShared::new(2));
    let tp = TopicPartition::new("t", 0);
    let (_epoch, _rx) = shared.assign(&tp, None, OffsetReset::Earliest);
    let shutdown = CancellationToken::new();
    let config = FetchConfig::default(); // retry_backoff 100 ms
    let task = tokio::spawn(run(cluster, config, Arc::clone(&shared), shutdown.clone()));
    shared.wake();
    tokio::time::sleep(Duration::from_secs(1)).await;
    shutdown.cancel();
    task.await.unwrap();
    let n = count.load(Ordering::SeqCst);
    assert!(
        n <= 12,
        "{n} ListOffsets in 1 s: the failed reset is retried without backoff"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reassigned_partition_gets_only_its_new_assignments_chunks() {
    let address = fake(Arc::new(AtomicUsize::new(0)), 4, 400, 10).await;
    let cluster = Cluster::connect(crate::client::ClientConfig::new(&address))
        .await
        .unwrap();
    let shared = Arc::new(FetchShared::new(2));
    let shutdown = CancellationToken::new();
    let tp = TopicPartition::new("t", 1);
    let mut others = Vec::new();
    for p in [0, 2, 3] {
        others.push(shared.assign(&TopicPartition::new("t", p), Some(0), OffsetReset::Earliest));
    }
    let (e1, mut rx1) = shared.assign(&tp, Some(0), OffsetReset::Earliest);
    let task = tokio::spawn(run(
        cluster,
        FetchConfig::default(),
        Arc::clone(&shared),
        shutdown.clone(),
    ));
    shared.wake();
    // Take two chunks of the first assignment, leave the buffer full-ish, then revoke and reassign.
    for _ in 0..2 {
        let c = rx1.recv().await.unwrap();
        assert_eq!(c.epoch, e1);
        shared.chunk_consumed(&tp, e1);
    }
    shared.revoke(&tp);
    shared.revoked(&tp);
    let (e2, mut rx2) = shared.assign(&tp, Some(55), OffsetReset::Earliest);
    shared.wake();
    // Whatever the old stream still holds was sent before the revoke; nothing after.
    // The old stream ends (its sender is dropped at the revoke).
    while let Some(c) = rx1.recv().await {
        assert_eq!(c.epoch, e1);
    }
    let c = tokio::time::timeout(Duration::from_secs(3), rx2.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.epoch, e2);
    let first = c.into_iter().next().unwrap().unwrap()[0].offset;
    assert_eq!(first, 55);
    // Drain the others so the set stays bounded.
    {
        let state = shared.lock();
        assert_eq!(state.sinks.len(), 4);
    }
    shutdown.cancel();
    task.await.unwrap();
    drop(others);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_failed_reset_of_a_revoked_assignment_holds_nothing() {
    let address = broker(Arc::new(AtomicUsize::new(0))).await;
    let cluster = Cluster::connect(crate::client::ClientConfig::new(&address))
        .await
        .unwrap();
    let shared = Arc::new(FetchShared::new(2));
    let tp = TopicPartition::new("t", 0);
    let (old, _old_rx) = shared.assign(&tp, None, OffsetReset::Earliest);
    let mut f = Fetcher::new(cluster, FetchConfig::default(), Arc::clone(&shared));
    // The partition is revoked and assigned again while its first reset is in flight.
    shared.revoke(&tp);
    shared.revoked(&tp);
    let (new, _new_rx) = shared.assign(&tp, None, OffsetReset::Earliest);
    assert_ne!(old, new);
    f.complete(FetchDone::Resets {
        partitions: vec![(Arc::new(tp.clone()), old)],
        results: vec![Err(partition_reader::ReadError::MissingPartition {
            tp: tp.clone(),
        })],
    });
    assert!(
        !f.held.contains_key(&tp),
        "the old assignment's failure holds the new one's reset back"
    );
    // The current assignment's own failure does hold it.
    f.complete(FetchDone::Resets {
        partitions: vec![(Arc::new(tp.clone()), new)],
        results: vec![Err(partition_reader::ReadError::MissingPartition {
            tp: tp.clone(),
        })],
    });
    assert!(f.held.contains_key(&tp));
    f.tasks.abort_all();
}
