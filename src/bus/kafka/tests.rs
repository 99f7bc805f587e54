//! Building a [`KafkaEventBus`]: what it logs.

use tracing::Level;

use super::KafkaEventBus;
use crate::bus::{KafkaEventBusConfig, log_capture::LogCapture};

#[test]
fn the_plaintext_warning_is_logged_once_per_bus() {
    let (logs, _guard) = LogCapture::install();
    let config = KafkaEventBusConfig::builder().build().unwrap();
    let _bus = KafkaEventBus::new(config).unwrap();
    let warned = logs.matching(Level::WARN, "PLAINTEXT security protocol");
    assert_eq!(warned.len(), 1, "{:?}", logs.events());
    // A config read from the environment and a bus built from it: once too.
    let (logs, _guard) = LogCapture::install();
    let config = KafkaEventBusConfig::from_lookup(|_| None).unwrap();
    let _bus = KafkaEventBus::new(config).unwrap();
    assert_eq!(
        logs.matching(Level::WARN, "PLAINTEXT security protocol").len(),
        1,
        "{:?}",
        logs.events()
    );
}
