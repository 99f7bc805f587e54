//! Waiting on the consumer: for its first assignment, and until it has caught up with the topic.

use std::time::Duration;

use tokio::time::Instant;

use super::KafkaEventBus;
use crate::bus::Error;
use crate::dlq::{AdminError, LogBounds, log_bounds};

/// How often a wait looks at the consumer again.
const POLL: Duration = Duration::from_millis(10);

/// How far ahead a deadline may lie: a timeout beyond it (such as `Duration::MAX`) waits this long,
/// as good as for ever, instead of overflowing the clock.
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// The instant `timeout` from now, or as far ahead as the clock goes when that overflows.
fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .or_else(|| now.checked_add(FOREVER))
        .unwrap_or(now)
}

impl KafkaEventBus {
    /// Waits until the consume loop holds at least one partition of the main topic (it joined the
    /// group and got an assignment) and knows where it starts reading in every partition it holds
    /// (its committed offset, or the log end or start `auto_offset_reset` picks), and returns them. Call it after
    /// [`start_consuming_in_background`](Self::start_consuming_in_background): events published from
    /// then on are handled by this member or another member of its group, and, with
    /// `auto_offset_reset = "latest"`, none is skipped by a late join.
    ///
    /// A member of a group with more members than partitions may never get one: it then times out.
    ///
    /// # Errors
    ///
    /// [`Error::WaitTimeout`] when no partition was assigned within `timeout`;
    /// [`Error::NotConsuming`] at once when the consume loop is not running (never started, or
    /// stopped); [`Error::ShutDown`].
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
        let deadline = deadline_after(timeout);
        loop {
            self.connected()?;
            self.consuming_now()?;
            // Every partition held, each positioned: none of them can skip an event published next.
            let reaches: Vec<_> = self
                .inner
                .assignment
                .probes()
                .iter()
                .map(|p| (p.partition(), p.reach()))
                .filter(|(_, reach)| !reach.revoked)
                .collect();
            if !reaches.is_empty() && reaches.iter().all(|(_, reach)| reach.position.is_some()) {
                return Ok(reaches.into_iter().map(|(partition, _)| partition).collect());
            }
            if Instant::now() >= deadline {
                return Err(Error::WaitTimeout {
                    waiting_for: "a partition assignment",
                    timeout,
                    state: "no partition assigned (and positioned) yet".into(),
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
    /// fetch. With `acks = "all"` (the default) an event acknowledged by
    /// [`publish`](crate::bus::EventBus::publish) before the call is below the high watermark, so it
    /// is always waited for. With `acks = "0"` or `"1"` the leader acknowledges before the high
    /// watermark covers the record: such an event may not be waited for.
    ///
    /// # Errors
    ///
    /// [`Error::WaitTimeout`] when the member has not caught up within `timeout` (the message lists the
    /// partitions still behind), or the log ends could not be read in time;
    /// [`Error::LogEnds`] when the cluster refused to give the log ends (unknown topic, not
    /// authorized, ...), with that error's retriability; [`Error::NotConsuming`] at once when the
    /// consume loop is not running, or when it stops during the wait; [`Error::ShutDown`],
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
        let deadline = deadline_after(timeout);
        let connection = self.connected()?;
        self.consuming_now()?;
        let topic = self.inner.config.topic_name();
        let ends = log_bounds(&connection.cluster, &topic, deadline)
            .await
            .map_err(|e| match e {
                AdminError::Timeout { .. } | AdminError::ReadTimeout { .. } => Error::WaitTimeout {
                    waiting_for: "the log ends",
                    timeout,
                    state: e.to_string(),
                },
                other => Error::LogEnds {
                    source: Box::new(other),
                },
            })?;
        let end_of = |partition: i32| {
            ends.iter()
                .find(|b| b.partition == partition)
                .filter(|b| b.end > b.start)
                .map(|b: &LogBounds| b.end)
        };
        loop {
            self.connected()?;
            self.consuming_now()?;
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

    /// `Ok` while the consume loop runs; [`Error::NotConsuming`] otherwise.
    fn consuming_now(&self) -> Result<(), Error> {
        if self.is_consuming() {
            Ok(())
        } else {
            Err(Error::NotConsuming)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_timeout_gives_a_far_deadline_instead_of_overflowing() {
        let now = Instant::now();
        assert!(deadline_after(Duration::MAX) >= now + Duration::from_secs(365 * 24 * 60 * 60));
        let short = deadline_after(Duration::from_secs(1));
        assert!(short >= now + Duration::from_secs(1));
        assert!(short <= Instant::now() + Duration::from_secs(1));
    }
}
