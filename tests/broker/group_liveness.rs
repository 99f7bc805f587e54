//! A member stays a member, and leaves promptly, whatever the rebalance is doing: a revocation slower
//! than the session timeout keeps membership (heartbeats go on) and its commit lands; closing during a
//! join returns at once; a commit cut off by a lost coordinator connection is retried.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use kafka_event_bus::client::{
    consumer::{Consumer, ConsumerEvent},
    subscription::TopicPartition,
};
use libtest_mimic::Trial;

use crate::{
    group_support::{TestMember, create_topic, eventually, fast_config, produce_all},
    support::unique,
    trial,
};

/// Every (partition, offset) a member was handed, with how often.
type Seen = Arc<Mutex<BTreeMap<(i32, i64), usize>>>;

/// A consumer whose workers hold back the last record of each partition until the partition is
/// revoked, then take `hold` more to finish it: a revocation that lasts `hold`.
fn slow_revoker(
    consumer: Consumer,
    last: i64,
    hold: Duration,
    seen: Seen,
) -> tokio::task::JoinHandle<Consumer> {
    tokio::spawn(async move {
        let mut consumer = consumer;
        let deadline = Instant::now() + Duration::from_secs(40);
        let mut revocations = 0;
        while Instant::now() < deadline && revocations < 1 {
            let Ok(Some(event)) =
                tokio::time::timeout(Duration::from_millis(200), consumer.next_event()).await
            else {
                continue;
            };
            match event {
                ConsumerEvent::Assigned(streams) => {
                    for mut stream in streams {
                        let seen = Arc::clone(&seen);
                        tokio::spawn(async move {
                            let p = stream.topic_partition().partition;
                            while let Some(r) = stream.next().await {
                                *seen.lock().unwrap().entry((p, r.offset)).or_insert(0) += 1;
                                if r.offset == last {
                                    while !stream.is_revoked() {
                                        tokio::time::sleep(Duration::from_millis(20)).await;
                                    }
                                    tokio::time::sleep(hold).await;
                                }
                                stream.mark_done(r.offset);
                            }
                        });
                    }
                }
                ConsumerEvent::Revoked { lost, .. } => {
                    assert!(!lost, "the slow revocation lost its generation");
                    revocations += 1;
                }
                ConsumerEvent::Fatal(e) => panic!("fatal: {e}"),
                _ => {}
            }
        }
        consumer
    })
}

pub(crate) fn trials(trials: &mut Vec<Trial>) {
    trials.push(trial(
        "group::a_revocation_slower_than_the_session_keeps_membership_and_commits",
        |ctx| async move {
            let cluster = ctx.cluster().await;
            let (topic, other, group) = (unique("slow-rev"), unique("slow-rev-b"), unique("slow-rev-g"));
            create_topic(&cluster, &topic, 2).await;
            create_topic(&cluster, &other, 1).await;
            produce_all(&cluster, &topic, 2, 10, "v").await;
            let seen: Seen = Arc::default();
            // Revocation waits up to 15 s for the worker, which takes 9 s: longer than the 6 s session.
            let config = fast_config(&group, &topic).with_revoke_timeout(Duration::from_secs(15));
            let a = Consumer::subscribe(&cluster, config).unwrap();
            let a = slow_revoker(a, 9, Duration::from_secs(9), Arc::clone(&seen));
            eventually("A to take every record", Duration::from_secs(30), || {
                seen.lock().unwrap().len() == 20
            })
            .await;
            // B joins the same group for another topic: A revokes its partitions (slowly) and gets
            // them back; nothing of `topic` ever goes to B.
            let b = TestMember::start(&cluster, fast_config(&group, &other));
            let a = a.await.unwrap();
            // Back with A: its revoke commit (offset 10) landed, so nothing is handed out again.
            eventually("A to own its partitions again", Duration::from_secs(30), || {
                a.assignment().len() == 2
            })
            .await;
            let tps = [TopicPartition::new(&topic, 0), TopicPartition::new(&topic, 1)];
            eventually(
                "the committed offsets known to A",
                Duration::from_secs(10),
                || tps.iter().all(|tp| a.committed(tp).is_some()),
            )
            .await;
            for tp in &tps {
                assert_eq!(
                    a.committed(tp),
                    Some(10),
                    "{tp:?}: the revoke commit was lost, so A starts over from the last periodic one"
                );
            }
            a.close().await;
            b.close().await;
        },
    ));

    trials.push(trial(
        "group::close_during_a_join_returns_promptly",
        |ctx| async move {
            let cluster = ctx.cluster().await;
            let (topic, group) = (unique("close-join"), unique("close-join-g"));
            create_topic(&cluster, &topic, 1).await;
            // Tansu holds a new group's first JoinGroup for half the session timeout: 10 s here. (Tansu
            // also re-adds a member on every turn of a held join, so the LeaveGroup sent meanwhile does
            // not stick there: its session expires instead. Only the prompt return is checked.)
            let config = fast_config(&group, &topic).with_session_timeout(Duration::from_secs(20));
            let consumer = Consumer::subscribe(&cluster, config).unwrap();
            tokio::time::sleep(Duration::from_secs(2)).await;
            let start = Instant::now();
            consumer.close().await;
            let took = start.elapsed();
            assert!(
                took < Duration::from_secs(3),
                "close took {took:?} while the coordinator held the join"
            );
        },
    ));
}
