//! Waiting on the consumer: for its first assignment, and until it has caught up with the topic.

use std::time::Duration;

use tokio::time::Instant;

use super::KafkaEventBus;
use crate::bus::Error;
use crate::dlq::{LogBounds, log_bounds};

/// How often a wait looks at the consumer again.
const POLL: Duration = Duration::from_millis(10);

impl KafkaEventBus {
    /// Waits until the consume loop holds at least one partition of the main topic (it joined the
    /// group and got an assignment) and returns the partitions it holds. Call it after
    /// [`start_consuming_in_background`](Self::start_consuming_in_background): events published from
    /// then on are handled by this member or another member of its group, and, with
    /// `auto_offset_reset = "latest"`, none is skipped by a late join.
    ///
    /// A member of a group with more members than partitions may never get one: it then times out.
    ///
    /// # Errors
    ///
    /// [`Error::WaitTimeout`] when no partition was assigned within `timeout`; [`Error::ShutDown`].
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn example(bus: kafka_event_bus::bus::KafkaEventBus) -> Result<(), kafka_event_bus::bus::Error> {
    /// use std::time::Duration;
    ///
    /// let consuming = bus.start_consuming_in_background()?;
    /// let partitions = bus.wait_for_assignment(Duration::from_secs(30)).await?;
    /// println!("consuming partitions {partitions:?}");
    /// # Ok(()) }
    /// ```
    pub async fn wait_for_assignment(&self, timeout: Duration) -> Result<Vec<i32>, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            self.connected()?;
            let held: Vec<i32> = self
                .inner
                .assignment
                .probes()
                .iter()
                .filter(|p| !p.reach().revoked)
                .map(|p| p.partition())
                .collect();
            if !held.is_empty() {
                return Ok(held);
            }
            if Instant::now() >= deadline {
                let state = if self.is_consuming() {
                    "no partition assigned yet"
                } else {
                    "the bus is not consuming"
                };
                return Err(Error::WaitTimeout {
                    waiting_for: "a partition assignment",
                    timeout,
                    state: state.into(),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until this member has caught up: every record the main topic held when the call was made
    /// in the partitions this member holds was handled, or dead-lettered and acknowledged (what the
    /// consumer will commit), so its lag is 0 as of the call. Records published later are not waited
    /// for. It first waits for an assignment, like [`wait_for_assignment`](Self::wait_for_assignment).
    ///
    /// In a group of several members each one waits for its own partitions. A partition that paused
    /// (a dead letter the DLQ refused for good) never catches up, so the wait then times out, naming it.
    ///
    /// The log ends come from Fetch high watermarks read by this call, not from the consumer's last
    /// fetch, so an event acknowledged by [`publish`](crate::bus::EventBus::publish) before the call is
    /// always waited for.
    ///
    /// # Errors
    ///
    /// [`Error::WaitTimeout`] when the member has not caught up within `timeout` (the message lists the
    /// partitions still behind), or the log ends could not be read in time; [`Error::ShutDown`],
    /// [`Error::NotConnected`].
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn example(bus: kafka_event_bus::bus::KafkaEventBus, events: Vec<kafka_event_bus::event::AnyEvent>) -> Result<(), kafka_event_bus::bus::Error> {
    /// use std::time::Duration;
    /// use kafka_event_bus::bus::EventBus;
    ///
    /// let consuming = bus.start_consuming_in_background()?;
    /// bus.publish(events).await?;
    /// bus.wait_caught_up(Duration::from_secs(60)).await?; // every event handled or dead-lettered
    /// println!("{}", bus.stats());
    /// # Ok(()) }
    /// ```
    pub async fn wait_caught_up(&self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        let connection = self.connected()?;
        let topic = self.inner.config.topic_name();
        let ends = log_bounds(&connection.cluster, &topic, deadline)
            .await
            .map_err(|e| Error::WaitTimeout {
                waiting_for: "the log ends",
                timeout,
                state: e.to_string(),
            })?;
        let end_of = |partition: i32| {
            ends.iter()
                .find(|b| b.partition == partition)
                .filter(|b| b.end > b.start)
                .map(|b: &LogBounds| b.end)
        };
        loop {
            self.connected()?;
            let probes = self.inner.assignment.probes();
            let behind: Vec<String> = probes
                .iter()
                .filter_map(|probe| {
                    let end = end_of(probe.partition())?;
                    let reach = probe.reach();
                    (!reach.reached(end)).then(|| {
                        let at = reach.done.or(reach.position).unwrap_or(-1);
                        format!("partition {} at {at} of {end}", probe.partition())
                    })
                })
                .collect();
            if !probes.is_empty() && behind.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let state = if probes.is_empty() {
                    "no partition assigned yet".to_owned()
                } else {
                    behind.join(", ")
                };
                return Err(Error::WaitTimeout {
                    waiting_for: "the consumer to catch up",
                    timeout,
                    state,
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }
}
