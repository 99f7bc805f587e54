//! At least once, end to end: the `consume` example is killed (SIGKILL) mid-stream and restarted; every
//! published event id must appear in its output files.

use std::{
    collections::HashSet,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use kafka_event_bus::{
    bus::{EventBus, KafkaEventBus},
    event::DomainEvent,
};
use uuid::Uuid;

use crate::{bus::config, group_support::eventually, support::OrderCreated, support::unique, trial};

/// `target/<profile>/examples/<name>`, built by `cargo test` alongside this binary.
pub(crate) fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name)
}

fn spawn_consumer(bootstrap: &str, prefix: &str, out: &PathBuf) -> Child {
    Command::new(example("consume"))
        .args(["--prefix", prefix, "--group", prefix, "--out"])
        .arg(out)
        .env("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn handled(files: &[&PathBuf]) -> HashSet<String> {
    files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|text| {
            text.lines()
                .filter_map(|l| l.split(' ').next().map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .collect()
}

pub(crate) fn trials(trials: &mut crate::Trials<'_>) {
    trials.push(trial("a_killed_consumer_loses_nothing", |ctx| async move {
        let prefix = unique("crash");
        let bus = KafkaEventBus::new(config(ctx, &prefix, &prefix)).unwrap();
        bus.connect().await.unwrap();
        bus.ensure_topics(kafka_event_bus::bus::TopicOptions::new().partitions(6))
            .await
            .unwrap();
        const N: usize = 3000;
        let events: Vec<_> = (0..N)
            .map(|i| {
                let e = OrderCreated {
                    customer_id: format!("c{i}"),
                };
                DomainEvent::new(Uuid::new_v4(), 1, e).into_any().unwrap()
            })
            .collect();
        let published: HashSet<String> = events.iter().map(|e| e.meta().event_id.to_string()).collect();
        bus.publish(events).await.unwrap();

        let dir = std::env::temp_dir().join(unique("crash-out"));
        std::fs::create_dir_all(&dir).unwrap();
        let (first, second) = (dir.join("first.txt"), dir.join("second.txt"));
        let mut consumer = spawn_consumer(&ctx.bootstrap, &prefix, &first);
        eventually(
            "the first consumer to handle some events",
            Duration::from_secs(60),
            || handled(&[&first]).len() >= 50,
        )
        .await;
        consumer.kill().unwrap(); // SIGKILL: no commit, no LeaveGroup
        consumer.wait().unwrap();
        let before_restart = handled(&[&first]).len();

        let mut consumer = spawn_consumer(&ctx.bootstrap, &prefix, &second);
        eventually("every event to be handled", Duration::from_secs(90), || {
            handled(&[&first, &second]).is_superset(&published)
        })
        .await;
        // Graceful stop this time.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(consumer.id().to_string())
            .status();
        let status = consumer.wait().unwrap();
        assert!(status.success(), "consume exited with {status}");
        let redelivered = handled(&[&first]).intersection(&handled(&[&second])).count();
        eprintln!("{before_restart} handled before the kill, {redelivered} redelivered after it");
        bus.shutdown(Duration::from_secs(5)).await.unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }));
}
