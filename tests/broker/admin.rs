//! Admin operations and metadata against a real broker.

use kafka_event_bus::client::{NewTopic, TopicCreation, cluster::Error};

use crate::{support::unique, trial};

pub(crate) fn trials(trials: &mut crate::Trials<'_>) {
    trials.push(trial("create_ensure_describe_delete", |ctx| async move {
        let cluster = ctx.cluster().await;
        let name = unique("admin");
        let created = cluster
            .create_topics(&[NewTopic::new(&name, 4, 1)])
            .await
            .unwrap();
        assert_eq!(created, [TopicCreation::Created { name: name.clone() }]);

        // Ensuring an existing topic is not an error, and leaves it alone.
        let ensured = cluster
            .ensure_topics(&[NewTopic::new(&name, 8, 1)])
            .await
            .unwrap();
        assert_eq!(ensured, [TopicCreation::AlreadyExists { name: name.clone() }]);
        assert_eq!(cluster.partitions(&name).await.unwrap(), [0, 1, 2, 3]);

        // Creating it again reports it as existing.
        let again = cluster
            .create_topics(&[NewTopic::new(&name, 4, 1)])
            .await
            .unwrap();
        assert_eq!(again, [TopicCreation::AlreadyExists { name: name.clone() }]);

        // Every partition has a leader that is a known broker.
        let metadata = cluster.metadata();
        for p in &metadata.topics[&name].partitions {
            let leader = p.leader.unwrap();
            assert!(metadata.brokers.contains_key(&leader));
            let (id, conn) = cluster.leader(&name, p.partition).await.unwrap();
            assert_eq!(id, leader);
            assert_eq!(conn.address(), metadata.brokers[&leader].address());
        }

        cluster.delete_topics(&[&name]).await.unwrap();
        let err = cluster.partitions(&name).await.unwrap_err();
        assert!(matches!(err, Error::UnknownTopic { .. }), "{err}");
        assert!(!cluster.metadata().topics.contains_key(&name));
    }));

    trials.push(trial(
        "unknown_topics_are_typed_errors",
        |ctx| async move {
            let cluster = ctx.cluster().await;
            let name = unique("never-created");
            let err = cluster.partitions(&name).await.unwrap_err();
            assert!(
                matches!(&err, Error::UnknownTopic { topic } if *topic == name),
                "{err}"
            );
            let err = cluster.leader(&name, 0).await.unwrap_err();
            assert!(matches!(err, Error::UnknownTopic { .. }), "{err}");
            let err = cluster.delete_topics(&[&name]).await.unwrap_err();
            let code = err.server_error().map(|e| e.code);
            assert_eq!(
                code,
                Some(kafka_event_bus::protocol::ResponseError::UnknownTopicOrPartition),
                "{err}"
            );
            assert!(err.to_string().contains(&name), "{err}");
        },
    ));

    trials.push(trial(
        "ensure_creates_several_topics_with_leaders",
        |ctx| async move {
            let cluster = ctx.cluster().await;
            let (a, b) = (unique("ensure-a"), unique("ensure-b"));
            let outcomes = cluster
                .ensure_topics(&[
                    NewTopic::new(&a, 3, 1),
                    NewTopic::new(&b, 1, 1).with_config("retention.ms", "60000"),
                ])
                .await
                .unwrap();
            assert!(
                outcomes
                    .iter()
                    .all(|o| matches!(o, TopicCreation::Created { .. })),
                "{outcomes:?}"
            );
            let metadata = cluster.metadata();
            assert!(metadata.topics[&a].is_ready());
            assert_eq!(metadata.topics[&a].partitions.len(), 3);
            assert_eq!(metadata.topics[&b].partitions.len(), 1);
            // A full refresh sees them too.
            let all = cluster.refresh_metadata().await.unwrap();
            assert!(all.topics.contains_key(&a) && all.topics.contains_key(&b));
            assert!(all.generation > metadata.generation);
        },
    ));
}
