//! What the operator examples (`publish`, `consume`, `dlq`) share: the seed's `OrderCreated` event,
//! the config from `KAFKA_*` variables, and tiny argument parsing.

#![allow(dead_code, reason = "each example uses part of this module")]

pub(crate) mod log;

use std::{collections::HashMap, error::Error};

use kafka_event_bus::{bus::KafkaEventBusConfig, event::Event, testing::TestBroker};
use serde::{Deserialize, Serialize};

/// An order was placed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct OrderCreated {
    /// Who placed it.
    pub(crate) customer_id: String,
}

impl Event for OrderCreated {
    const EVENT_TYPE: &'static str = "OrderCreated";
    const AGGREGATE_TYPE: &'static str = "Order";
}

/// `--name value` pairs (and bare words, under their position: "0", "1", ...).
pub(crate) fn args() -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut args = std::env::args().skip(1);
    let mut position = 0;
    while let Some(arg) = args.next() {
        match arg.strip_prefix("--") {
            Some(name) => {
                let value = args.next().unwrap_or_default();
                out.insert(name.to_owned(), value);
            }
            None => {
                out.insert(position.to_string(), arg);
                position += 1;
            }
        }
    }
    out
}

/// The value of `--name`, parsed, or `default`.
pub(crate) fn arg<T: std::str::FromStr>(
    args: &HashMap<String, String>,
    name: &str,
    default: T,
) -> Result<T, Box<dyn Error>> {
    match args.get(name) {
        Some(v) => v
            .parse()
            .map_err(|_| format!("--{name}: cannot parse {v:?}").into()),
        None => Ok(default),
    }
}

/// The config from `KAFKA_*` variables, pointed at `broker`, with a short session timeout on the local
/// test broker (it holds a group's first join for half of it).
pub(crate) fn config(
    broker: &TestBroker,
    prefix: Option<&String>,
    group: Option<&String>,
) -> Result<KafkaEventBusConfig, Box<dyn Error>> {
    let mut config = KafkaEventBusConfig::from_env()?;
    config.bootstrap_servers = broker.bootstrap_servers().to_owned();
    if let Some(prefix) = prefix {
        config.topic_prefix = prefix.clone();
    }
    if let Some(group) = group {
        config.consumer_group = group.clone();
    }
    if broker.is_local() {
        config.session_timeout_ms = 6_000;
        config.heartbeat_interval_ms = 1_000;
    }
    config.validate()?;
    Ok(config)
}
