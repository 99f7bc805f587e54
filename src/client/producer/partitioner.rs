//! Which partition a record goes to: Java's default partitioner, bit for bit.
//!
//! Owns the key hash ([`murmur2`], seed `0x9747b28c`, as `org.apache.kafka.common.utils.Utils.murmur2`),
//! the keyed rule `toPositive(murmur2(key)) % num_partitions`, and sticky partitioning for unkeyed records
//! (KIP-480). May use only the standard library: no I/O, no clock, no global state.
//!
//! # Invariants
//!
//! - A key lands on the partition the Java client, librdkafka's `murmur2_random` partitioner, kafka-python
//!   and aiokafka choose for it, so publishers in any of those languages keep one aggregate's events on one
//!   partition. The hash is computed over **all** partitions of the topic, available or not (as Java does):
//!   a partition without a leader delays its records instead of reordering them onto another partition.
//! - An unkeyed record goes to the topic's current *sticky* partition, which changes only when
//!   [`Partitioner::on_new_batch`] says the batch for it was closed: unkeyed records fill one batch at a time
//!   instead of spreading small batches over every partition (KIP-480, lower latency at the same linger).
//! - Nothing here panics, whatever the partition counts: an empty topic gives `None`.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};

/// Java's `Utils.murmur2`: MurmurHash2, 32-bit, seed `0x9747b28c`, little-endian words.
///
/// The result is a signed Java `int`; negative values are normal (see [`to_positive`]).
///
/// # Example
///
/// ```
/// use kafka_event_bus::client::producer::partitioner::murmur2;
///
/// // Vectors of Apache Kafka's own `UtilsTest.testMurmur2`.
/// assert_eq!(murmur2(b"21"), -973_932_308);
/// assert_eq!(murmur2(b"abc"), 479_470_107);
/// ```
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;

    // Java's `int` arithmetic wraps; `length` is an `int` there too (a key never reaches 2^31 bytes).
    #[allow(clippy::cast_possible_truncation)]
    let mut h: u32 = SEED ^ (data.len() as u32);
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        let mut k = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        // Java's switch falls through: 3 → 2 → 1.
        if let Some(&b) = tail.get(2) {
            h ^= u32::from(b) << 16;
        }
        if let Some(&b) = tail.get(1) {
            h ^= u32::from(b) << 8;
        }
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    i32::from_ne_bytes(h.to_ne_bytes())
}

/// Java's `Utils.toPositive`: clears the sign bit (it is not `abs`: `i32::MIN` becomes 0).
///
/// # Example
///
/// ```
/// use kafka_event_bus::client::producer::partitioner::to_positive;
///
/// assert_eq!(to_positive(-1), i32::MAX);
/// assert_eq!(to_positive(i32::MIN), 0);
/// assert_eq!(to_positive(42), 42);
/// ```
pub fn to_positive(n: i32) -> i32 {
    n & 0x7fff_ffff
}

/// The partition of a keyed record: `toPositive(murmur2(key)) % num_partitions`, as the Java client,
/// kafka-python and aiokafka compute it; `None` when the topic has no partitions.
///
/// An empty key is a key (it hashes); only a *null* key is unkeyed (see [`Partitioner`]).
///
/// # Example
///
/// ```
/// use kafka_event_bus::client::producer::partitioner::partition_for_key;
///
/// assert_eq!(partition_for_key(b"abc", 1000), Some(107));
/// assert_eq!(partition_for_key(b"", 1000), Some(681));
/// assert_eq!(partition_for_key(b"abc", 0), None);
/// ```
pub fn partition_for_key(key: &[u8], num_partitions: i32) -> Option<i32> {
    (num_partitions > 0).then(|| to_positive(murmur2(key)) % num_partitions)
}

/// The default partitioner: keyed records by hash, unkeyed records sticky per topic (KIP-480).
///
/// It keeps one sticky partition per topic. The accumulator calls [`partition`](Self::partition) for
/// each record and, whenever appending an unkeyed record to its partition's batch would need a *new*
/// batch (the previous one is full or on its way), calls [`on_new_batch`](Self::on_new_batch) and asks
/// again, exactly as Java's `KafkaProducer` does with `abortOnNewBatch`.
///
/// `available` lists the partitions that currently have a leader (any order); unkeyed records only go
/// there, unless there are none, in which case any partition is chosen.
///
/// # Example
///
/// ```
/// use kafka_event_bus::client::producer::partitioner::Partitioner;
///
/// let mut p = Partitioner::with_seed(7);
/// let available = [0, 1, 2, 3, 4, 5];
///
/// // Keyed: always the hash partition.
/// assert_eq!(p.partition("orders", Some(b"abc"), 6, &available), Some(3));
///
/// // Unkeyed: one partition until its batch is closed, then a different one.
/// let first = p.partition("orders", None, 6, &available).unwrap();
/// assert_eq!(p.partition("orders", None, 6, &available), Some(first));
/// p.on_new_batch("orders", first, 6, &available);
/// let second = p.partition("orders", None, 6, &available).unwrap();
/// assert_ne!(first, second);
/// ```
#[derive(Debug, Clone)]
pub struct Partitioner {
    sticky: HashMap<String, i32>,
    rng: SplitMix64,
}

impl Default for Partitioner {
    fn default() -> Self {
        Self::new()
    }
}

impl Partitioner {
    /// A partitioner whose unkeyed choices are seeded from the process's random hasher keys.
    pub fn new() -> Self {
        Self::with_seed(RandomState::new().hash_one(0x5eed_u64))
    }

    /// A partitioner with a fixed seed, for reproducible tests.
    pub fn with_seed(seed: u64) -> Self {
        Self {
            sticky: HashMap::new(),
            rng: SplitMix64(seed),
        }
    }

    /// The partition for a record of `topic` with `key` (`None`: unkeyed), or `None` if
    /// `num_partitions <= 0`. Keyed records ignore `available`.
    pub fn partition(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        num_partitions: i32,
        available: &[i32],
    ) -> Option<i32> {
        match key {
            Some(key) => partition_for_key(key, num_partitions),
            None => self.sticky_partition(topic, num_partitions, available),
        }
    }

    /// Tells the partitioner that the batch of `prev_partition` for `topic` was closed and an unkeyed
    /// record needs a new one: if `prev_partition` is still the sticky one, a different partition
    /// becomes sticky (when there is more than one to choose from).
    pub fn on_new_batch(&mut self, topic: &str, prev_partition: i32, num_partitions: i32, available: &[i32]) {
        if self.sticky.get(topic) == Some(&prev_partition) {
            let next = self.choose(Some(prev_partition), num_partitions, available);
            match next {
                Some(next) => {
                    self.sticky.insert(topic.to_owned(), next);
                }
                None => {
                    self.sticky.remove(topic);
                }
            }
        }
    }

    /// The current sticky partition of `topic`, if one was chosen.
    pub fn sticky_partition_of(&self, topic: &str) -> Option<i32> {
        self.sticky.get(topic).copied()
    }

    fn sticky_partition(&mut self, topic: &str, num_partitions: i32, available: &[i32]) -> Option<i32> {
        if num_partitions <= 0 {
            return None;
        }
        if let Some(&p) = self.sticky.get(topic) {
            // Still valid (metadata may have changed since it was chosen)?
            let valid = p < num_partitions && (available.is_empty() || available.contains(&p));
            if valid {
                return Some(p);
            }
        }
        let p = self.choose(None, num_partitions, available)?;
        self.sticky.insert(topic.to_owned(), p);
        Some(p)
    }

    /// A random partition among `available` (or all if none is available), different from `avoid`
    /// when there is another one to pick.
    fn choose(&mut self, avoid: Option<i32>, num_partitions: i32, available: &[i32]) -> Option<i32> {
        let candidates: Vec<i32> = if available.is_empty() {
            (0..num_partitions.max(0)).collect()
        } else {
            available
                .iter()
                .copied()
                .filter(|&p| p >= 0 && p < num_partitions)
                .collect()
        };
        let pool: Vec<i32> = match avoid {
            Some(a) if candidates.len() > 1 => candidates.iter().copied().filter(|&p| p != a).collect(),
            _ => candidates,
        };
        if pool.is_empty() {
            return None;
        }
        let idx = self.rng.below(pool.len());
        pool.get(idx).copied()
    }
}

/// A tiny non-cryptographic generator (SplitMix64): unkeyed placement and retry jitter only need to be
/// spread out.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator seeded from the process's random hasher keys and the clock.
    pub(crate) fn from_entropy() -> Self {
        Self(RandomState::new().hash_one(std::time::Instant::now()))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (`n > 0`); the modulo bias is irrelevant for partition counts.
    fn below(&mut self, n: usize) -> usize {
        #[allow(clippy::cast_possible_truncation)]
        let r = (self.next() % (n.max(1) as u64)) as usize;
        r
    }

    /// A number in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// Apache Kafka's `UtilsTest.testMurmur2` (clients/src/test/java/org/apache/kafka/common/utils).
    #[test]
    fn murmur2_matches_java_utils_test() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
            (b"abc", 479_470_107),
        ];
        for (key, want) in cases {
            assert_eq!(murmur2(key), want, "{}", String::from_utf8_lossy(key));
        }
    }

    /// Computed with kafka-python 3.0.12 (`kafka.partitioner.default.murmur2`) and aiokafka 0.14.0
    /// (`aiokafka.partitioner.DefaultPartitioner()(key, range(n), range(n))`), which agreed on every
    /// row, for 1, 3, 6, 7, 100 and 1000 partitions. The 1000-partition column for the first six keys is
    /// also what kafka-python's own `test_murmur2_java_compatibility` pins (from the Java partitioner).
    #[test]
    fn partitions_match_kafka_python_and_aiokafka() {
        let all: Vec<u8> = (0..=255).collect();
        let cases: [(&[u8], i32, [i32; 6]); 10] = [
            (b"", 275_646_681, [0, 0, 3, 2, 81, 681]),
            (b"a", -1_563_381_124, [0, 1, 4, 5, 24, 524]),
            (b"ab", 316_155_434, [0, 2, 2, 0, 34, 434]),
            (b"abc", 479_470_107, [0, 0, 3, 4, 7, 107]),
            (b"123456789", -1_822_237_082, [0, 0, 0, 1, 66, 566]),
            (b"\x00 ", 1_121_897_742, [0, 0, 0, 0, 42, 742]),
            (b"order-42", 501_153_024, [0, 0, 0, 1, 24, 24]),
            (b"customer:7f3c", 1_320_275_339, [0, 2, 5, 5, 39, 339]),
            ("Ünïcödé-キー".as_bytes(), 1_842_077_217, [0, 0, 3, 1, 17, 217]),
            (&all, -1_948_347_274, [0, 1, 4, 3, 74, 374]),
        ];
        for (key, hash, parts) in cases {
            assert_eq!(murmur2(key), hash, "{key:?}");
            for (n, want) in [1, 3, 6, 7, 100, 1000].into_iter().zip(parts) {
                assert_eq!(partition_for_key(key, n), Some(want), "{key:?} over {n}");
            }
        }
    }

    #[test]
    fn to_positive_masks_not_abs() {
        assert_eq!(to_positive(i32::MIN), 0);
        assert_eq!(to_positive(-973_932_308), -973_932_308 & 0x7fff_ffff);
        assert_ne!(to_positive(-973_932_308), 973_932_308);
    }

    #[test]
    fn no_partitions_no_answer() {
        let mut p = Partitioner::with_seed(1);
        assert_eq!(partition_for_key(b"k", 0), None);
        assert_eq!(partition_for_key(b"k", -3), None);
        assert_eq!(p.partition("t", None, 0, &[]), None);
        assert_eq!(p.partition("t", Some(b"k"), 0, &[]), None);
    }

    #[test]
    fn keyed_ignores_availability() {
        let mut p = Partitioner::with_seed(1);
        // "abc" → 3 of 6 even when only partition 0 has a leader.
        assert_eq!(p.partition("t", Some(b"abc"), 6, &[0]), Some(3));
        assert_eq!(p.sticky_partition_of("t"), None);
    }

    #[test]
    fn unkeyed_sticks_until_new_batch() {
        let mut p = Partitioner::with_seed(42);
        let avail: Vec<i32> = (0..6).collect();
        let first = p.partition("t", None, 6, &avail).unwrap();
        for _ in 0..100 {
            assert_eq!(p.partition("t", None, 6, &avail), Some(first));
        }
        // A new batch on some other partition does not move the sticky one.
        p.on_new_batch("t", (first + 1) % 6, 6, &avail);
        assert_eq!(p.partition("t", None, 6, &avail), Some(first));
        // A new batch on the sticky partition does, always to a different one.
        let mut seen = HashSet::from([first]);
        let mut prev = first;
        for _ in 0..200 {
            p.on_new_batch("t", prev, 6, &avail);
            let next = p.partition("t", None, 6, &avail).unwrap();
            assert_ne!(next, prev);
            assert!((0..6).contains(&next));
            seen.insert(next);
            prev = next;
        }
        assert_eq!(seen.len(), 6, "every partition gets a turn");
    }

    #[test]
    fn unkeyed_prefers_available_partitions() {
        let mut p = Partitioner::with_seed(3);
        for _ in 0..50 {
            let got = p.partition("t", None, 6, &[2, 4]).unwrap();
            assert!(got == 2 || got == 4);
            p.on_new_batch("t", got, 6, &[2, 4]);
        }
        // Only one available: it stays there even after a new batch.
        p.on_new_batch("t", p.sticky_partition_of("t").unwrap(), 6, &[5]);
        assert_eq!(p.partition("t", None, 6, &[5]), Some(5));
        p.on_new_batch("t", 5, 6, &[5]);
        assert_eq!(p.partition("t", None, 6, &[5]), Some(5));
        // Nothing available: any partition of the topic.
        let any = p.partition("u", None, 3, &[]).unwrap();
        assert!((0..3).contains(&any));
    }

    #[test]
    fn sticky_partition_revalidated_against_metadata() {
        let mut p = Partitioner::with_seed(9);
        let first = p.partition("t", None, 6, &[0, 1, 2, 3, 4, 5]).unwrap();
        // The sticky partition lost its leader: another one is chosen.
        let others: Vec<i32> = (0..6).filter(|&x| x != first).collect();
        let next = p.partition("t", None, 6, &others).unwrap();
        assert_ne!(next, first);
        // Topics are independent.
        let a = p.partition("a", None, 100, &[]).unwrap();
        p.on_new_batch("b", a, 100, &[]);
        assert_eq!(p.partition("a", None, 100, &[]), Some(a));
    }

    proptest::proptest! {
        #[test]
        fn keyed_partition_in_range_and_stable(key in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64), n in 1i32..10_000) {
            let p = partition_for_key(&key, n).unwrap();
            proptest::prop_assert!((0..n).contains(&p));
            proptest::prop_assert_eq!(Partitioner::with_seed(5).partition("t", Some(&key), n, &[]), Some(p));
        }
    }

    #[test]
    fn seeds_spread_first_choice() {
        let firsts: HashSet<i32> = (0..64)
            .map(|s| Partitioner::with_seed(s).partition("t", None, 6, &[]).unwrap())
            .collect();
        assert!(firsts.len() >= 4, "{firsts:?}");
    }
}
