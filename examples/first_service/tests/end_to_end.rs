//! The whole service against a local broker (or `KAFKA_BOOTSTRAP_SERVERS`), through the `testing`
//! feature of the dev-dependency.

use kafka_event_bus::testing::TestBroker;

#[tokio::test(flavor = "multi_thread")]
async fn the_service_runs_end_to_end() -> Result<(), Box<dyn std::error::Error>> {
    let broker = TestBroker::start().await?;
    let prefix = format!("first-service-{}", uuid::Uuid::new_v4().simple());
    let config = first_service::config(broker.bootstrap_servers(), &prefix, &prefix)?;
    let report = first_service::run(config, 1_000).await?;

    assert_eq!(report.stats.events_published, 1_001 + report.replayed as u64);
    assert_eq!(report.dead_letters_before_replay, 1, "{report:?}");
    assert_eq!(report.replayed, 1);
    assert_eq!(report.charges, 1_000, "{report:?}"); // 999 at once or after a retry, 1 after the replay
    assert_eq!(report.refunds, 1);
    assert_eq!(report.timeouts, 10);
    assert_eq!(report.stats.messages_sent_to_dlq, 1);
    Ok(())
}
