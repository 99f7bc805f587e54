//! A member stays a member, and leaves promptly, whatever the rebalance is doing: a revocation slower
//! than the session timeout keeps membership (heartbeats go on) and its commit lands; closing during a
//! join returns at once; a commit cut off by a lost coordinator connection is retried.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use kafka_event_bus::client::{
    ClientConfig, Cluster,
    consumer::{Consumer, ConsumerEvent},
    TopicPartition,
};

use crate::{
    fault_proxy::FaultyBroker,
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
                                stream.store_offset(r.offset + 1);
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

pub(crate) fn trials(trials: &mut crate::Trials<'_>) {
    trials.push(trial(
        "a_revocation_slower_than_the_session_keeps_membership_and_commits",
        |ctx| async move {
            let cluster = ctx.cluster().await;
            let (topic, other, group) = (unique("slow-rev"), unique("slow-rev-b"), unique("slow-rev-g"));
            create_topic(&cluster, &topic, 2).await;
            create_topic(&cluster, &other, 1).await;
            produce_all(&cluster, &topic, 2, 10, "v").await;
            let seen: Seen = Arc::default();
            // Revocation waits up to 15 s for the worker, which takes 9 s: longer than the 6 s session.
            let config = fast_config(&group, &topic).with_revoke_timeout(Duration::from_secs(15));
            let a = Consumer::connect(&cluster, config).unwrap();
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
        "close_during_a_join_returns_promptly",
        |ctx| async move {
            let cluster = ctx.cluster().await;
            let (topic, group) = (unique("close-join"), unique("close-join-g"));
            create_topic(&cluster, &topic, 1).await;
            // Tansu holds a new group's first JoinGroup for half the session timeout: 10 s here. (Tansu
            // also re-adds a member on every turn of a held join, so the LeaveGroup sent meanwhile does
            // not stick there: its session expires instead. Only the prompt return is checked.)
            let config = fast_config(&group, &topic).with_session_timeout(Duration::from_secs(20));
            let consumer = Consumer::connect(&cluster, config).unwrap();
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

    trials.push(trial(
        "a_close_commit_cut_off_from_the_coordinator_is_retried",
        |_ctx| async move {
            let broker = FaultyBroker::start().await;
            let cluster = Cluster::connect(ClientConfig::new(&broker.bootstrap))
                .await
                .unwrap();
            let (topic, group) = (unique("close-cut"), unique("close-cut-g"));
            create_topic(&cluster, &topic, 2).await;
            produce_all(&cluster, &topic, 2, 10, "v").await;
            // No periodic commit: only the close commits what was handled.
            let config = fast_config(&group, &topic).with_commit_interval(Duration::from_secs(3600));
            let member = TestMember::start(&cluster, config.clone());
            eventually("every record handled", Duration::from_secs(30), || {
                member.records().len() == 20
            })
            .await;
            // The close's OffsetCommit is held in the proxy, then every connection is cut: the commit
            // never reaches the broker and fails with a transport error.
            broker.freeze(true);
            let closing = tokio::spawn(member.close());
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert!(broker.cut() > 0, "no connection to cut");
            broker.freeze(false);
            tokio::time::timeout(Duration::from_secs(20), closing)
                .await
                .expect("close to return")
                .unwrap();
            // The close commit landed: the next member of the group starts after the last record.
            let next = Consumer::connect(&cluster, config).unwrap();
            eventually("the next member's assignment", Duration::from_secs(30), || {
                next.assignment().len() == 2
            })
            .await;
            for p in 0..2 {
                let tp = TopicPartition::new(&topic, p);
                assert_eq!(next.committed(&tp), Some(10), "{tp:?}: the close commit was lost");
            }
            next.close().await;
        },
    ));

    trials.push(trial(
        "a_saturated_runtime_does_not_starve_heartbeats",
        |ctx| async move {
            let bootstrap = ctx.bootstrap.clone();
            // The members live on a runtime of their own, whose two workers the test then blocks for
            // longer than the session timeout, as a burst of CPU-bound handlers would.
            tokio::task::spawn_blocking(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async move {
                    let cluster = Cluster::connect(ClientConfig::new(&bootstrap)).await.unwrap();
                    let (topic, group) = (unique("busy"), unique("busy-g"));
                    create_topic(&cluster, &topic, 2).await;
                    let a = TestMember::start(&cluster, fast_config(&group, &topic));
                    let b = TestMember::start(&cluster, fast_config(&group, &topic));
                    eventually("one partition each", Duration::from_secs(30), || {
                        a.assignment().len() == 1 && b.assignment().len() == 1
                    })
                    .await;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    let before = (a.event_counts(), b.event_counts());
                    let hogs: Vec<_> = (0..2)
                        .map(|_| tokio::spawn(async { std::thread::sleep(Duration::from_secs(9)) }))
                        .collect();
                    for hog in hogs {
                        hog.await.unwrap();
                    }
                    tokio::time::sleep(Duration::from_secs(4)).await;
                    assert_eq!(
                        (a.event_counts(), b.event_counts()),
                        before,
                        "a member was evicted while its runtime was busy: (assigned, revoked) events changed"
                    );
                    a.close().await;
                    b.close().await;
                });
            })
            .await
            .unwrap();
        },
    ));
}
