//! Publishing with [`PublishOptions`] on the Kafka bus: the options are checked before anything is
//! sent, then every record carries their extra headers.

use super::{Connection, KafkaEventBus};
use crate::bus::{Error, PublishOptions};
use crate::event::AnyEvent;

impl KafkaEventBus {
    /// Publishes `events` on the current connection with `options`' extra headers.
    pub(super) async fn publish_records_with(
        &self,
        events: Vec<AnyEvent>,
        options: PublishOptions,
    ) -> Result<(), Error> {
        options.check()?;
        let connection = self.connected()?;
        self.publish_on_with(&connection, events, &options).await
    }

    /// Publishes `events` with `connection`'s producer, with no extra header.
    pub(super) async fn publish_on(
        &self,
        connection: &Connection,
        events: Vec<AnyEvent>,
    ) -> Result<(), Error> {
        self.publish_on_with(connection, events, &PublishOptions::new())
            .await
    }
}
