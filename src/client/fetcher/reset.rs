//! Finding a position for partitions with nothing committed (`auto_offset_reset`), Java's
//! `OffsetFetcher`: **earliest** is the log start, **latest** the log end as a Fetch's high watermark
//! gives it (see [`partition_reader::log_end`] for why not ListOffsets(latest)), so "latest" is exactly
//! "records produced from now on".
//!
//! Partitions waiting for **earliest** are resolved per leader, as Java's `OffsetFetcher` does: one
//! ListOffsets(earliest) per broker carries all its partitions waiting for it ([`batches`], at most
//! [`MAX_BATCH_PARTITIONS`] a request); the positions are applied as soon as it answers, and a
//! partition the answer leaves out or fails waits `retry_backoff` before it is asked again.
//! Partitions waiting for **latest**, and those without a known leader, are resolved one at a time
//! ([`resolve`]): the log end comes from a Fetch at the log start, and a Fetch of many cold partitions
//! would pull up to `fetch_max_bytes` of records just to read their high watermarks (Tansu also leaves
//! out the partitions past its byte budget). Each such partition's position is applied when its own
//! requests answer, so a slow one holds up no other.

use std::{collections::BTreeMap, sync::Arc};

use super::{FetchConfig, partition_reader};
use crate::client::{
    Cluster,
    subscription::{OffsetReset, TopicPartition},
};
use partition_reader::ReadError;

/// The most partitions one reset request carries: a bounded request size at any assignment size.
pub(crate) const MAX_BATCH_PARTITIONS: usize = 2000;

/// A partition waiting for a reset and the assignment epoch it waits under.
type Waiting = (Arc<TopicPartition>, u64);

/// Partitions waiting for the same reset from the same leader (`None`: the metadata knows none), with
/// their assignment epochs: what one request per step resolves.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ResetBatch {
    /// The partitions' leader as the metadata gives it.
    pub(crate) leader: Option<i32>,
    /// The reset they wait for.
    pub(crate) reset: OffsetReset,
    /// The partitions and the assignment epochs they wait under.
    pub(crate) partitions: Vec<Waiting>,
}

/// Groups the partitions waiting for a reset (`(partition, reset, epoch)`) by `leader_of` and reset
/// kind, at most `max` partitions a batch, in a stable order (by leader, earliest first, then as
/// given).
pub(crate) fn batches(
    waiting: Vec<(Arc<TopicPartition>, OffsetReset, u64)>,
    leader_of: impl Fn(&TopicPartition) -> Option<i32>,
    max: usize,
) -> Vec<ResetBatch> {
    let mut groups: BTreeMap<(Option<i32>, bool), Vec<Waiting>> = BTreeMap::new();
    for (tp, reset, epoch) in waiting {
        let latest = reset == OffsetReset::Latest;
        groups
            .entry((leader_of(&tp), latest))
            .or_default()
            .push((tp, epoch));
    }
    let max = max.max(1);
    let mut out = Vec::new();
    for ((leader, latest), partitions) in groups {
        let reset = if latest {
            OffsetReset::Latest
        } else {
            OffsetReset::Earliest
        };
        for chunk in partitions.chunks(max) {
            out.push(ResetBatch {
                leader,
                reset,
                partitions: chunk.to_vec(),
            });
        }
    }
    out
}

/// The log starts of an **earliest** batch's partitions from one ListOffsets to its leader, in the
/// batch's order. A failed request (or an unknown leader) fails each of its partitions; a
/// partition-level error or a partition the answer leaves out fails that partition only.
pub(crate) async fn resolve_batch(
    cluster: &Cluster,
    batch: &ResetBatch,
    config: &FetchConfig,
) -> Vec<Result<i64, ReadError>> {
    let tps: Vec<TopicPartition> = batch
        .partitions
        .iter()
        .map(|(tp, _)| TopicPartition::clone(tp))
        .collect();
    let Some(leader) = batch.leader.and_then(|id| cluster.broker(id).ok()) else {
        let id = batch.leader.unwrap_or(-1);
        let mut out = Vec::with_capacity(tps.len());
        for tp in tps {
            out.push(Err(ReadError::Leader {
                tp,
                source: crate::client::cluster::Error::UnknownBroker { id },
            }));
        }
        return out;
    };
    match partition_reader::log_starts(&leader, &tps, config.isolation_level).await {
        Ok(starts) => starts,
        Err(e) => failed(&tps, &e),
    }
}

/// Every partition of `tps` failed with the request's `error`.
fn failed(tps: &[TopicPartition], error: &crate::client::connection::Error) -> Vec<Result<i64, ReadError>> {
    let mut out = Vec::with_capacity(tps.len());
    for tp in tps {
        out.push(Err(ReadError::Connection {
            tp: tp.clone(),
            source: error.clone(),
        }));
    }
    out
}

/// The position `reset` gives `tp`, resolved alone.
pub(crate) async fn resolve(
    cluster: &Cluster,
    tp: &TopicPartition,
    reset: OffsetReset,
    config: &FetchConfig,
) -> Result<i64, ReadError> {
    match reset {
        OffsetReset::Latest => partition_reader::log_end(cluster, tp, config).await,
        _ => partition_reader::log_start(cluster, tp, config.isolation_level).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(
        topic: &str,
        partitions: i32,
        reset: OffsetReset,
    ) -> Vec<(Arc<TopicPartition>, OffsetReset, u64)> {
        (0..partitions)
            .map(|p| {
                (
                    Arc::new(TopicPartition::new(topic, p)),
                    reset,
                    u64::try_from(p).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn a_new_group_on_one_leader_lists_its_earliest_offsets_in_one_request() {
        let earliest = batches(
            waiting("t", 1000, OffsetReset::Earliest),
            |_| Some(1),
            MAX_BATCH_PARTITIONS,
        );
        assert_eq!(earliest.len(), 1, "one ListOffsets, not one per partition");
        assert_eq!(earliest[0].partitions.len(), 1000);
        assert_eq!(earliest[0].leader, Some(1));
        assert_eq!(
            earliest[0].partitions[7],
            (Arc::new(TopicPartition::new("t", 7)), 7),
            "each partition keeps its assignment epoch"
        );
    }

    #[test]
    fn partitions_are_grouped_by_leader_and_reset_kind() {
        let mut all = waiting("a", 6, OffsetReset::Latest);
        all.extend(waiting("b", 4, OffsetReset::Earliest));
        // a-0, a-2, a-4 and b-0, b-2 on broker 0; the others on broker 1; a-5 without a leader.
        let leader = |tp: &TopicPartition| (tp.topic != "a" || tp.partition != 5).then_some(tp.partition % 2);
        let got: Vec<(Option<i32>, OffsetReset, Vec<String>)> = batches(all, leader, 100)
            .into_iter()
            .map(|b| {
                (
                    b.leader,
                    b.reset,
                    b.partitions.iter().map(|(tp, _)| tp.to_string()).collect(),
                )
            })
            .collect();
        let names = |s: &[&str]| s.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            got,
            vec![
                (None, OffsetReset::Latest, names(&["a-5"])),
                (Some(0), OffsetReset::Earliest, names(&["b-0", "b-2"])),
                (Some(0), OffsetReset::Latest, names(&["a-0", "a-2", "a-4"])),
                (Some(1), OffsetReset::Earliest, names(&["b-1", "b-3"])),
                (Some(1), OffsetReset::Latest, names(&["a-1", "a-3"])),
            ]
        );
    }

    #[test]
    fn a_batch_carries_a_bounded_number_of_partitions() {
        let sizes: Vec<usize> = batches(waiting("t", 5000, OffsetReset::Earliest), |_| Some(3), 2000)
            .iter()
            .map(|b| b.partitions.len())
            .collect();
        assert_eq!(sizes, vec![2000, 2000, 1000]);
        let one = batches(waiting("t", 3, OffsetReset::Earliest), |_| Some(3), 0);
        assert_eq!(one.len(), 3, "a zero bound still makes progress");
        assert!(batches(Vec::new(), |_| Some(3), 10).is_empty());
    }
}
