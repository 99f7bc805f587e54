//! Reading a partition back with plain Fetch requests, to check what producers wrote (independent of the
//! consumer under test elsewhere).

use kafka_event_bus::{
    client::Cluster,
    protocol::{
        StrBytes,
        records::{DecodeOptions, Record, RecordBatchDecoder},
    },
};
use kafka_protocol::messages::{
    FetchRequest, TopicName,
    fetch_request::{FetchPartition, FetchTopic},
};

/// One record as read back: its offset and the record.
pub(crate) type ReadRecord = (i64, Record);

/// Every record of `topic`/`partition` from offset 0 to the high watermark.
pub(crate) async fn read_partition(cluster: &Cluster, topic: &str, partition: i32) -> Vec<ReadRecord> {
    let (_, leader) = cluster.leader(topic, partition).await.unwrap();
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let request = fetch_request(topic, partition, offset, 10);
        let response = leader.request(&request).await.unwrap();
        let data = &response.responses[0].partitions[0];
        assert_eq!(data.error_code, 0, "fetch {topic}/{partition} at {offset}");
        let high_watermark = data.high_watermark;
        if offset >= high_watermark {
            return out;
        }
        let before = offset;
        append_records(data.records.clone().unwrap_or_default(), &mut offset, &mut out);
        assert!(
            offset > before,
            "no progress reading {topic}/{partition} at {offset} (hw {high_watermark})"
        );
    }
}

/// A Fetch of `topic`/`partition` from `offset` (read uncommitted, up to 4 MiB of the partition).
pub(crate) fn fetch_request(topic: &str, partition: i32, offset: i64, max_wait_ms: i32) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(8 << 20)
        .with_isolation_level(0)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(partition)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(4 << 20),
                ]),
        ])
}

/// Appends the records of fetched `records` at or past `offset` to `out`, and moves `offset` past the
/// last batch.
pub(crate) fn append_records(records: bytes::Bytes, offset: &mut i64, out: &mut Vec<ReadRecord>) {
    for batch in RecordBatchDecoder::new(records, DecodeOptions::default()) {
        let batch = batch.unwrap();
        for record in &batch.records {
            let at = batch.offset_of(record);
            if at >= *offset {
                out.push((at, record.clone()));
            }
        }
        *offset = (*offset).max(batch.next_offset());
    }
}
