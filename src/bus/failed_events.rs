//! [`FailedEvents`]: the events of one publish call the broker did not acknowledge, summarised when
//! shown: a call of thousands of events fails with one short line, not one line per event.

use std::{collections::HashMap, fmt, ops::Deref};

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
    /// The failed events of one publish call, each with why, in publish order: what an
    /// [`EventBus`](crate::bus::EventBus) of your own puts in [`Error::Publish`](crate::bus::Error::Publish).
    /// It can also be collected from the pairs.
    ///
    /// ```
    /// use kafka_event_bus::bus::{Error, FailedEvents};
    /// use kafka_event_bus::client::producer;
    ///
    /// let id = uuid::Uuid::new_v4();
    /// let cause = producer::Error::UnknownTopic { topic: "orders.stream".into() };
    /// let failed: FailedEvents = [(id, cause)].into_iter().collect();
    /// let err = Error::Publish { total: 2, failed };
    /// assert!(err.to_string().starts_with("1 of 2 events were not published"));
    /// ```
    pub fn new(failed: Vec<(Uuid, producer::Error)>) -> Self {
        Self(failed)
    }

    /// The pairs, in publish order.
    pub fn into_vec(self) -> Vec<(Uuid, producer::Error)> {
        self.0
    }

    /// The distinct causes (as displayed), in order of first appearance, each with how many events
    /// failed with it.
    ///
    /// Linear in the number of events: each cause is looked up in an index, not in the list.
    pub fn causes(&self) -> Vec<(String, usize)> {
        let mut causes: Vec<(String, usize)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for (_, e) in &self.0 {
            let text = e.to_string();
            match index.get(&text) {
                Some(&at) => {
                    if let Some((_, n)) = causes.get_mut(at) {
                        *n += 1;
                    }
                }
                None => {
                    index.insert(text.clone(), causes.len());
                    causes.push((text, 1));
                }
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

impl From<Vec<(Uuid, producer::Error)>> for FailedEvents {
    fn from(failed: Vec<(Uuid, producer::Error)>) -> Self {
        Self(failed)
    }
}

impl FromIterator<(Uuid, producer::Error)> for FailedEvents {
    fn from_iter<I: IntoIterator<Item = (Uuid, producer::Error)>>(failed: I) -> Self {
        Self(failed.into_iter().collect())
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

    #[test]
    fn many_distinct_causes_keep_first_appearance_order_and_counts() {
        let topic = |i: usize| producer::Error::UnknownTopic {
            topic: format!("t{i}"),
        };
        // 1000 distinct causes, each failing twice, the second round in reverse order.
        let pairs: FailedEvents = (0..1000)
            .chain((0..1000).rev())
            .map(|i| (Uuid::new_v4(), topic(i)))
            .collect();
        let causes = pairs.causes();
        assert_eq!(causes.len(), 1000);
        for (i, (cause, n)) in causes.iter().enumerate() {
            assert_eq!(*cause, topic(i).to_string());
            assert_eq!(*n, 2, "{cause}");
        }
        let shown = pairs.to_string();
        assert!(
            shown.starts_with("unknown topic \"t0\" (2 events); unknown topic \"t1\""),
            "{shown}"
        );
        assert!(shown.contains("and 997 other causes"), "{shown}");
        assert!(format!("{pairs:?}").contains("other_causes: 997"));
    }
}
