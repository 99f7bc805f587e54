//! [`FailedEvents`]: the events of one publish call the broker did not acknowledge, summarised when
//! shown: a call of thousands of events fails with one short line, not one line per event.

use std::{fmt, ops::Deref};

use uuid::Uuid;

use crate::client::producer;

/// How many event ids a summary names.
const IDS_SHOWN: usize = 3;
/// How many distinct causes a summary names.
const CAUSES_SHOWN: usize = 3;

/// The events of one publish call that were not acknowledged, each with why, in publish order.
///
/// It reads as a slice of `(event id, error)` pairs (`failed[0].0`, `failed.iter()`, `failed.len()`);
/// its `Display` and `Debug` summarise: the count, the first few ids, and the distinct causes with how
/// many events each failed.
///
/// # Example
///
/// ```
/// # fn example(err: kafka_event_bus::bus::Error) {
/// if let kafka_event_bus::bus::Error::Publish { failed, total } = &err {
///     eprintln!("{} of {total} failed: {failed}", failed.len());
///     for (id, cause) in failed.iter() {
///         eprintln!("{id}: {cause}"); // every one, when you need them
///     }
/// }
/// # }
/// ```
#[derive(Clone)]
pub struct FailedEvents(Vec<(Uuid, producer::Error)>);

impl FailedEvents {
    pub(crate) fn new(failed: Vec<(Uuid, producer::Error)>) -> Self {
        Self(failed)
    }

    /// The pairs, in publish order.
    pub fn into_vec(self) -> Vec<(Uuid, producer::Error)> {
        self.0
    }

    /// The distinct causes (as displayed), in order of first appearance, each with how many events
    /// failed with it.
    pub fn causes(&self) -> Vec<(String, usize)> {
        let mut causes: Vec<(String, usize)> = Vec::new();
        for (_, e) in &self.0 {
            let text = e.to_string();
            match causes.iter_mut().find(|(c, _)| *c == text) {
                Some((_, n)) => *n += 1,
                None => causes.push((text, 1)),
            }
        }
        causes
    }

    fn first_ids(&self) -> impl Iterator<Item = &Uuid> {
        self.0.iter().map(|(id, _)| id).take(IDS_SHOWN)
    }
}

impl Deref for FailedEvents {
    type Target = [(Uuid, producer::Error)];

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<'a> IntoIterator for &'a FailedEvents {
    type Item = &'a (Uuid, producer::Error);
    type IntoIter = std::slice::Iter<'a, (Uuid, producer::Error)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// `unknown topic "orders.stream" (100 events); first ids: a, b, c (and 97 more)`.
impl fmt::Display for FailedEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let causes = self.causes();
        for (i, (cause, n)) in causes.iter().take(CAUSES_SHOWN).enumerate() {
            let sep = if i == 0 { "" } else { "; " };
            let events = if *n == 1 { "event" } else { "events" };
            write!(f, "{sep}{cause} ({n} {events})")?;
        }
        if causes.len() > CAUSES_SHOWN {
            write!(f, "; and {} other causes", causes.len() - CAUSES_SHOWN)?;
        }
        let ids: Vec<String> = self.first_ids().map(Uuid::to_string).collect();
        write!(f, "; first ids: {}", ids.join(", "))?;
        if self.0.len() > IDS_SHOWN {
            write!(f, " (and {} more)", self.0.len() - IDS_SHOWN)?;
        }
        Ok(())
    }
}

impl fmt::Debug for FailedEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let causes = self.causes();
        f.debug_struct("FailedEvents")
            .field("count", &self.0.len())
            .field("first_ids", &self.first_ids().collect::<Vec<_>>())
            .field("causes", &causes.iter().take(CAUSES_SHOWN).collect::<Vec<_>>())
            .field("other_causes", &causes.len().saturating_sub(CAUSES_SHOWN))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::Error;

    fn failed(n: usize) -> Vec<(Uuid, producer::Error)> {
        (0..n)
            .map(|_| {
                let cause = producer::Error::UnknownTopic {
                    topic: "orders.stream".into(),
                };
                (Uuid::new_v4(), cause)
            })
            .collect()
    }

    #[test]
    fn a_failed_publish_of_100_events_shows_as_one_short_summary() {
        let failed = failed(100);
        let first = failed[0].0;
        let err = Error::Publish {
            total: 100,
            failed: FailedEvents::new(failed),
        };
        for shown in [err.to_string(), format!("{err:?}"), format!("{err:#?}")] {
            assert!(shown.len() < 600, "{} bytes: {shown}", shown.len());
            assert!(shown.contains(&first.to_string()), "{shown}");
            assert!(shown.contains("unknown topic"), "{shown}");
            assert!(shown.contains("100"), "{shown}");
        }
        assert!(
            err.to_string()
                .starts_with("100 of 100 events were not published: unknown topic")
        );
    }

    #[test]
    fn distinct_causes_are_counted_and_all_pairs_stay_readable() {
        let mut pairs = failed(2);
        pairs.push((
            Uuid::new_v4(),
            producer::Error::RecordTooLarge { size: 10, max: 5 },
        ));
        let failed = FailedEvents::new(pairs);
        assert_eq!(failed.len(), 3);
        assert_eq!(
            failed.causes(),
            [
                ("unknown topic \"orders.stream\"".to_owned(), 2),
                ("record of 10 bytes exceeds the limit of 5 bytes".to_owned(), 1)
            ]
        );
        assert_eq!(failed.iter().count(), 3);
        assert!(!failed.to_string().contains("more"));
    }
}
