//! [`AssignmentStrategy`]: one entry of `partition_assignment_strategy`, Kafka's
//! `partition.assignment.strategy`, and the parsing of the comma-separated list.

use std::{fmt, str::FromStr};

use super::{ConfigError, KafkaEventBusConfig};

/// A partition assignor the consumer can offer to its group, by Kafka's protocol name.
///
/// ```
/// use kafka_event_bus::bus::AssignmentStrategy;
///
/// let s: AssignmentStrategy = "cooperative-sticky".parse()?;
/// assert_eq!(s, AssignmentStrategy::CooperativeSticky);
/// assert_eq!(AssignmentStrategy::RoundRobin.to_string(), "roundrobin");
/// # Ok::<(), kafka_event_bus::bus::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AssignmentStrategy {
    /// `range`: each topic's partitions split in contiguous ranges (Java's default).
    Range,
    /// `roundrobin`: partitions dealt out one by one (the only one aiokafka speaks).
    RoundRobin,
    /// `cooperative-sticky`: keeps partitions where they are and rebalances incrementally.
    CooperativeSticky,
}

impl AssignmentStrategy {
    /// Every strategy.
    pub const ALL: [AssignmentStrategy; 3] = [Self::Range, Self::RoundRobin, Self::CooperativeSticky];

    /// Kafka's protocol name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Range => "range",
            Self::RoundRobin => "roundrobin",
            Self::CooperativeSticky => "cooperative-sticky",
        }
    }
}

impl fmt::Display for AssignmentStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for AssignmentStrategy {
    type Err = ConfigError;

    /// The protocol name, case-insensitive; Java's class names (`...RangeAssignor`,
    /// `...RoundRobinAssignor`, `...CooperativeStickyAssignor`) are accepted too.
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        let name = s.trim();
        let short = name.rsplit('.').next().unwrap_or(name);
        Self::ALL
            .into_iter()
            .find(|strategy| {
                strategy.name().eq_ignore_ascii_case(name)
                    || java_class(*strategy).eq_ignore_ascii_case(short)
            })
            .ok_or_else(|| ConfigError::InvalidAssignmentStrategy { value: s.to_owned() })
    }
}

fn java_class(strategy: AssignmentStrategy) -> &'static str {
    match strategy {
        AssignmentStrategy::Range => "RangeAssignor",
        AssignmentStrategy::RoundRobin => "RoundRobinAssignor",
        AssignmentStrategy::CooperativeSticky => "CooperativeStickyAssignor",
    }
}

impl KafkaEventBusConfig {
    /// The parsed [`partition_assignment_strategy`](Self::partition_assignment_strategy), preferred
    /// first.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidAssignmentStrategy`] for an unknown or repeated name, or an empty list.
    ///
    /// ```
    /// use kafka_event_bus::bus::{AssignmentStrategy, KafkaEventBusConfig};
    ///
    /// let config = KafkaEventBusConfig::default();
    /// assert_eq!(
    ///     config.assignment_strategies()?,
    ///     [AssignmentStrategy::Range, AssignmentStrategy::RoundRobin]
    /// );
    /// # Ok::<(), kafka_event_bus::bus::ConfigError>(())
    /// ```
    pub fn assignment_strategies(&self) -> Result<Vec<AssignmentStrategy>, ConfigError> {
        let mut out = Vec::new();
        for entry in self.partition_assignment_strategy.split(',') {
            if entry.trim().is_empty() {
                continue;
            }
            let strategy: AssignmentStrategy = entry.parse()?;
            if out.contains(&strategy) {
                return Err(ConfigError::InvalidAssignmentStrategy {
                    value: format!("{} (listed twice)", entry.trim()),
                });
            }
            out.push(strategy);
        }
        if out.is_empty() {
            return Err(ConfigError::InvalidAssignmentStrategy {
                value: self.partition_assignment_strategy.clone(),
            });
        }
        Ok(out)
    }
}
