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
        let request = FetchRequest::default()
            .with_max_wait_ms(10)
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
            ]);
        let response = leader.request(&request).await.unwrap();
        let data = &response.responses[0].partitions[0];
        assert_eq!(data.error_code, 0, "fetch {topic}/{partition} at {offset}");
        let high_watermark = data.high_watermark;
        if offset >= high_watermark {
            return out;
        }
        let mut decoder =
            RecordBatchDecoder::new(data.records.clone().unwrap_or_default(), DecodeOptions::default());
        let before = offset;
        for batch in decoder.by_ref() {
            let batch = batch.unwrap();
            for record in &batch.records {
                let at = batch.offset_of(record);
                if at >= offset {
                    out.push((at, record.clone()));
                }
            }
            offset = offset.max(batch.next_offset());
        }
        assert!(
            offset > before,
            "no progress reading {topic}/{partition} at {offset} (hw {high_watermark})"
        );
    }
}
