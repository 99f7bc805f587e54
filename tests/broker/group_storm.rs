//! A rebalance storm: members of one group (`consume` example processes) handle a stream of events while,
//! every `STORM_EVERY_MS`, one of them is killed (SIGKILL, every third time SIGINT) and a new one started.
//! *Consuming again* is when the last pause of a second or more without progress on the backlog (the
//! events published before the last kill and not yet handled) ended: it must stay within the time a
//! rebalance takes (`Storm::rebalance_bound`), and every event is handled (at least once; duplicates are
//! counted). *Recovery*, the time from the last kill until that backlog is handled, includes the drain: it
//! is reported against the drain-inclusive bound below (member logs kept when it is exceeded).
//!
//! # The bound
//!
//! Derived from the members' session timeout `s` (6 s) and heartbeat interval `h` (1 s), Tansu's holds,
//! and the backlog `b` (events published before the last kill and not handled at that instant):
//!
//! ```text
//! bound = s + 0.8 s + h + s/2 + 1 s + b / drain_rate      (15.8 s + b / 2,000 per second here)
//! ```
//!
//! - `s + 0.8 s`: Tansu expires the killed member `s` after its last contact, and a member killed while
//!   the coordinator held its SyncGroup (for want of the leader's assignment, up to 0.8 s) counts as in
//!   contact until that hold ends. Until then the group keeps it, with its partitions.
//! - `h`: the survivors hear REBALANCE_IN_PROGRESS with their next heartbeat.
//! - `s/2`: Tansu holds each JoinGroup about half the session timeout.
//! - `1 s`: the followers' SyncGroup is answered within a second of the leader's.
//! - `b / drain_rate`: the backlog is drained after the last assignment; `DRAIN_RATE` is the slowest
//!   drain over all members the bound allows (`STORM_DRAIN_RATE` changes it, `STORM_BOUND_S` replaces
//!   the whole bound).
//!
//! Every second after the last kill the trial prints how much of that backlog is handled, and when each
//! member first handles again, so that a slow storm shows whether the group or the drain took the time.
//!
//! The short storm runs with the other trials (debug members). `just storm N` runs N full storms (60,000
//! events at 3,000/s, a kill every 2 s for 20 s) with release-built members, so that the drain after the
//! group consumes again is short; the `STORM_*` variables below change any of it. Each member logs its group
//! transitions (`RUST_LOG`) to `member-K.log` in the storm's directory, kept when a storm fails.
//! `STORM_MEMBER` replaces the member program (same arguments), e.g. by librdkafka's, for comparison.
//!
//! Tansu keeps a leader that sent LeaveGroup while the group was rebalancing as the group's leader, so
//! every JoinGroup answer names it, nobody sends the assignment, and every SyncGroup ends in
//! REBALANCE_IN_PROGRESS after 0.8 × the session timeout (the members' logs then show the same
//! generation and leader, round after round). A closing leader therefore completes the rebalance before
//! it leaves (`group_handover::a_leader_closing_during_a_rebalance_does_not_stall_the_group`).

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use kafka_event_bus::{
    bus::{EventBus, KafkaEventBus},
    event::DomainEvent,
};
use uuid::Uuid;

use crate::{
    bus::config,
    bus_crash::example,
    support::{Ctx, OrderCreated, unique},
    trial,
};

/// One storm's shape.
#[derive(Debug, Clone)]
pub(crate) struct Storm {
    events: usize,
    rate: usize,
    members: usize,
    kills: usize,
    every: Duration,
    /// How long after the last kill every event published before it must be handled; `None`: the
    /// derived bound ([`Storm::bound`]).
    bound: Option<Duration>,
    /// The slowest drain of the backlog the bound allows (events a second, over all members).
    drain_rate: usize,
    seed: u64,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

impl Storm {
    /// The storm of `cargo test`: 3 kills, 6,000 events.
    fn short() -> Self {
        Self {
            events: 6_000,
            rate: 1_000,
            members: 3,
            kills: 3,
            every: Duration::from_secs(2),
            bound: None,
            drain_rate: DRAIN_RATE,
            seed: seed(),
        }
    }

    /// The full storm (three members, one killed every 2 s for 20 s), or what the `STORM_*` variables say.
    fn from_env() -> Self {
        Self {
            events: env_or("STORM_EVENTS", 60_000),
            rate: env_or("STORM_RATE", 3_000),
            members: env_or("STORM_MEMBERS", 3),
            kills: env_or("STORM_KILLS", 10),
            every: Duration::from_millis(env_or("STORM_EVERY_MS", 2_000)),
            bound: std::env::var("STORM_BOUND_S")
                .ok()
                .and_then(|v| v.parse().ok())
                .map(Duration::from_secs_f64),
            drain_rate: env_or("STORM_DRAIN_RATE", DRAIN_RATE),
            seed: env_or("STORM_SEED", seed()),
        }
    }
}

/// The members' session timeout and heartbeat interval (`spawn` passes them on).
const SESSION: Duration = Duration::from_secs(6);
const HEARTBEAT: Duration = Duration::from_secs(1);
/// The slowest backlog drain the derived bound allows, in events a second over all members. Measured with
/// `examples/consume` built in debug on a loaded 2-core machine: 4,000 to 6,000 a second once every
/// partition is assigned, 2,000 to 4,000 in storms run beside builds.
const DRAIN_RATE: usize = 2_000;

impl Storm {
    /// How long the group may take, after the last kill, to be consuming again on Tansu: the killed
    /// member expires `SESSION` after its last contact, and a member killed while the coordinator held
    /// its SyncGroup counts as alive until that hold ends (0.8 × `SESSION`); the survivors hear of the
    /// rebalance with their next heartbeat (`HEARTBEAT`), their JoinGroup is held `SESSION` / 2, and
    /// the followers' SyncGroup is answered within a second of the leader's.
    fn rebalance_bound() -> Duration {
        SESSION + SESSION.mul_f64(0.8) + HEARTBEAT + SESSION / 2 + Duration::from_secs(1)
    }

    /// The bound of a storm with `backlog` events published before the last kill and not yet handled at
    /// that instant: the rebalance (`rebalance_bound`), then the drain of that backlog at `drain_rate`.
    fn bound(&self, backlog: usize) -> Duration {
        self.bound.unwrap_or_else(|| {
            Self::rebalance_bound() + Duration::from_secs_f64(backlog as f64 / self.drain_rate.max(1) as f64)
        })
    }
}

fn seed() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1
}

/// xorshift64: which member dies next.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

struct Member {
    n: usize,
    child: Child,
    out: PathBuf,
}

impl Drop for Member {
    /// A storm that fails or times out leaves no member behind.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn spawn(bootstrap: &str, prefix: &str, dir: &Path, n: usize) -> Member {
    let out = dir.join(format!("member-{n}.txt"));
    let log = std::fs::File::create(dir.join(format!("member-{n}.log"))).unwrap();
    // `STORM_MEMBER` runs another member program with the same arguments (a command line split on
    // spaces), e.g. the librdkafka member in `benches/peers/storm`.
    let program = std::env::var("STORM_MEMBER").ok();
    let mut words = program.as_deref().unwrap_or_default().split_whitespace();
    let mut command = match words.next() {
        Some(first) => {
            let mut command = Command::new(first);
            command.args(words);
            command
        }
        None => Command::new(example("consume")),
    };
    let child = command
        .args(["--prefix", prefix, "--group", prefix, "--out"])
        .arg(&out)
        .env("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
        .env("KAFKA_SESSION_TIMEOUT_MS", SESSION.as_millis().to_string())
        .env("KAFKA_HEARTBEAT_INTERVAL_MS", HEARTBEAT.as_millis().to_string())
        .env(
            "RUST_LOG",
            std::env::var("STORM_LOG").unwrap_or_else(|_| "info,kafka_event_bus::client::group=debug".into()),
        )
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    eprintln!("storm: member {n} started (pid {})", child.id());
    Member { n, child, out }
}

fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status();
}

/// How often each event id was handled, over every output file in a storm's directory, read as the
/// files grow (only what was appended since the last look is parsed, so that watching a storm costs
/// the machine little CPU beside the members).
#[derive(Default)]
struct Tally {
    /// Per output file: how far it was read, and an unfinished last line.
    read: HashMap<PathBuf, (u64, String)>,
    counts: HashMap<String, usize>,
    /// Output files that grew since [`Tally::grown`] was last asked.
    grew: Vec<PathBuf>,
    /// Ids handled for the first time since [`Tally::first_handled`] was last asked.
    fresh: Vec<String>,
}

impl Tally {
    /// Reads what the members appended since the last call.
    fn update(&mut self, dir: &Path) -> &HashMap<String, usize> {
        use std::io::{Read, Seek, SeekFrom};
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "txt") {
                continue;
            }
            let (offset, partial) = self.read.entry(path.clone()).or_default();
            let Ok(mut file) = std::fs::File::open(&path) else {
                continue;
            };
            let mut text = String::new();
            if file.seek(SeekFrom::Start(*offset)).is_err() || file.read_to_string(&mut text).is_err() {
                continue;
            }
            if !text.is_empty() {
                self.grew.push(path.clone());
            }
            *offset += text.len() as u64;
            partial.push_str(&text);
            let Some(end) = partial.rfind('\n') else {
                continue;
            };
            let rest = partial.split_off(end + 1);
            for id in partial.lines().filter_map(|l| l.split(' ').next()) {
                let n = self.counts.entry(id.to_owned()).or_insert(0);
                *n += 1;
                if *n == 1 {
                    self.fresh.push(id.to_owned());
                }
            }
            *partial = rest;
        }
        &self.counts
    }

    /// The ids handled for the first time since the last call.
    fn first_handled(&mut self) -> Vec<String> {
        std::mem::take(&mut self.fresh)
    }

    /// The output files that grew since the last call.
    fn grown(&mut self) -> Vec<PathBuf> {
        std::mem::take(&mut self.grew)
    }
}

fn epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// What one storm measured.
#[derive(Debug)]
pub(crate) struct StormOutcome {
    /// From the last kill until every event was handled.
    pub(crate) recovery: Duration,
    pub(crate) handled: usize,
    pub(crate) duplicates: usize,
    /// Why the storm failed (its member logs are kept).
    pub(crate) failure: Option<String>,
}

/// Runs one storm and asserts it recovered within its bound with every event handled.
pub(crate) async fn storm(ctx: &Ctx, storm: Storm) -> StormOutcome {
    let prefix = unique("storm");
    let dir = std::env::temp_dir().join(&prefix);
    std::fs::create_dir_all(&dir).unwrap();
    eprintln!("storm: {storm:?} in {}", dir.display());
    let bus = KafkaEventBus::new(config(ctx, &prefix, &prefix)).unwrap();
    bus.connect().await.unwrap();
    bus.ensure_topics(kafka_event_bus::bus::TopicOptions::new().partitions(6))
        .await
        .unwrap();

    let mut members: Vec<Member> = Vec::new();
    let mut started = 0;
    for _ in 0..storm.members {
        members.push(spawn(&ctx.bootstrap, &prefix, &dir, started));
        started += 1;
    }

    // The stream: `rate` events a second in ten slices.
    let (events, rate) = (storm.events, storm.rate.max(10));
    // Every published id with when its publish returned.
    let log: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let publisher = {
        let (bus, log) = (bus.clone(), Arc::clone(&log));
        tokio::spawn(async move {
            let mut ids = Vec::with_capacity(events);
            let slice = (rate / 10).max(1);
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            while ids.len() < events {
                tick.tick().await;
                let batch: Vec<_> = (0..slice.min(events - ids.len()))
                    .map(|i| {
                        let e = OrderCreated {
                            customer_id: format!("c{i}"),
                        };
                        DomainEvent::new(Uuid::new_v4(), 1, e).into_any().unwrap()
                    })
                    .collect();
                let batch_ids: Vec<String> = batch.iter().map(|e| e.meta().event_id.to_string()).collect();
                bus.publish(batch).await.unwrap();
                let at = Instant::now();
                log.lock()
                    .unwrap()
                    .extend(batch_ids.iter().map(|id| (id.clone(), at)));
                ids.extend(batch_ids);
            }
            ids
        })
    };

    let mut stopping: Vec<Member> = Vec::new();
    let mut rng = storm.seed;
    let mut last_kill = Instant::now();
    for k in 0..storm.kills {
        tokio::time::sleep(storm.every).await;
        let victim = members.remove((next(&mut rng) % members.len() as u64) as usize);
        let pid = victim.child.id();
        if (k + 1) % 3 == 0 {
            eprintln!("storm: {:.3} SIGINT member {} (pid {pid})", epoch(), victim.n);
            signal(pid, "INT");
            stopping.push(victim);
        } else {
            eprintln!("storm: {:.3} SIGKILL member {} (pid {pid})", epoch(), victim.n);
            drop(victim);
        }
        last_kill = Instant::now();
        members.push(spawn(&ctx.bootstrap, &prefix, &dir, started));
        started += 1;
    }

    // Recovered: every event published before the last kill is handled (the stream goes on meanwhile).
    let before_last_kill: Vec<String> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, at)| *at <= last_kill)
        .map(|(id, _)| id.clone())
        .collect();
    let mut tally = Tally::default();
    tally.update(&dir);
    tally.grown();
    let mut waiting: std::collections::HashSet<&str> = before_last_kill.iter().map(String::as_str).collect();
    for id in tally.first_handled() {
        waiting.remove(id.as_str());
    }
    let backlog = waiting.len();
    let bound = storm.bound(backlog);
    eprintln!(
        "storm: at the last kill {backlog} of {} published events wait; bound {bound:?}",
        before_last_kill.len()
    );
    let deadline = last_kill + bound.max(Duration::from_secs(60));
    // When each member first handled something after the last kill.
    let mut first_after_kill: Vec<PathBuf> = Vec::new();
    // Once a second: how many of the events published before the last kill are handled (the drain).
    let mut next_report = last_kill + Duration::from_secs(1);
    // The group consumes again once the last pause of a second or more without progress ended.
    let (mut last_done, mut last_progress, mut consuming) =
        (before_last_kill.len() - backlog, last_kill, Duration::ZERO);
    let recovery = loop {
        tally.update(&dir);
        for id in tally.first_handled() {
            waiting.remove(id.as_str());
        }
        let done = before_last_kill.len() - waiting.len();
        let now = Instant::now();
        if done > last_done {
            if now - last_progress >= Duration::from_secs(1) {
                consuming = now - last_kill;
            }
            (last_done, last_progress) = (done, now);
        }
        for path in tally.grown() {
            if !first_after_kill.contains(&path) {
                eprintln!(
                    "storm: +{:.1} s: {} handles again",
                    last_kill.elapsed().as_secs_f64(),
                    path.file_stem().and_then(|s| s.to_str()).unwrap_or_default()
                );
                first_after_kill.push(path);
            }
        }
        if Instant::now() >= next_report {
            eprintln!(
                "storm: +{:.0} s: {done} of {} handled",
                last_kill.elapsed().as_secs_f64(),
                before_last_kill.len()
            );
            next_report += Duration::from_secs(1);
        }
        if done == before_last_kill.len() {
            break last_kill.elapsed();
        }
        if Instant::now() > deadline {
            break Duration::MAX;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let published = publisher.await.unwrap();
    let publish_end = last_kill.elapsed();
    let all_handled = eventually_all(&mut tally, &dir, &published, Duration::from_secs(60)).await;
    let seen = tally.update(&dir);
    let missing = published.iter().filter(|id| !seen.contains_key(*id)).count();
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    let alive: Vec<usize> = members.iter().map(|m| m.n).collect();

    for m in &members {
        signal(m.child.id(), "INT");
    }
    for mut m in members {
        let lines = std::fs::read_to_string(&m.out).map_or(0, |t| t.lines().count());
        eprintln!("storm: member {} handled {lines}", m.n);
        wait_or_kill(&mut m.child, Duration::from_secs(40));
    }
    for mut m in stopping {
        wait_or_kill(&mut m.child, Duration::from_secs(40));
    }
    bus.shutdown(Duration::from_secs(5)).await.unwrap();

    let outcome = StormOutcome {
        recovery,
        handled: published.len() - missing,
        duplicates,
        failure: None,
    };
    eprintln!(
        "storm: seed {} recovery {:?} (consuming again {consuming:?}; bound {bound:?}; {} events \
         published before the last kill, {backlog} of them not handled at the kill; publishing ended \
         {publish_end:?} after it, everything handled {all_handled:?} after that); handled {} of {}, \
         {} duplicates; survivors {alive:?}; load {}",
        storm.seed,
        outcome.recovery,
        before_last_kill.len(),
        outcome.handled,
        published.len(),
        outcome.duplicates,
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );
    // The requirement: the group consumes again within a rebalance, and every event is handled. The
    // drain after it is the bus's handling rate on a loaded machine, reported against its bound only.
    let failure = if missing > 0 {
        Some(format!(
            "{missing} events never handled; member logs in {}",
            dir.display()
        ))
    } else if recovery == Duration::MAX {
        Some(format!(
            "the backlog was not handled within {:?} of the last kill; member logs in {}",
            deadline - last_kill,
            dir.display()
        ))
    } else if consuming > Storm::rebalance_bound() {
        Some(format!(
            "the group consumed again only {consuming:?} after the last kill (a rebalance takes at most \
             {:?}); member logs in {}",
            Storm::rebalance_bound(),
            dir.display()
        ))
    } else {
        if recovery > bound {
            // Consuming again in time, but the drain was slower than the bound assumes: the logs say why.
            eprintln!(
                "storm: the backlog took {recovery:?} after the last kill (drain bound {bound:?}); member \
                 logs kept in {}",
                dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&dir);
        }
        None
    };
    StormOutcome { failure, ..outcome }
}

/// Waits until every id in `published` is handled; how long that took.
async fn eventually_all(tally: &mut Tally, dir: &Path, published: &[String], timeout: Duration) -> Duration {
    let start = Instant::now();
    while start.elapsed() < timeout {
        let seen = tally.update(dir);
        if published.iter().all(|id| seen.contains_key(id)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    start.elapsed()
}

fn wait_or_kill(child: &mut Child, timeout: Duration) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

pub(crate) fn trials(trials: &mut crate::Trials<'_>) {
    trials.push(trial(
        "storm_short_recovers_and_handles_everything",
        |ctx| async move {
            if let Some(failure) = storm(ctx, Storm::short()).await.failure {
                panic!("{failure}");
            }
        },
    ));
    // `just storm N`: N full storms, one after the other (ignored otherwise: minutes each).
    let runs: usize = env_or("STORM_RUNS", 1);
    trials.push(
        crate::sync_trial("storm_full", move || {
            crate::support::run_for(Duration::from_secs(240) * runs as u32, move |ctx| async move {
                let mut recoveries = Vec::new();
                let mut failures = Vec::new();
                for run in 0..runs {
                    eprintln!("storm: run {} of {runs}", run + 1);
                    let outcome = storm(ctx, Storm::from_env()).await;
                    recoveries.push(outcome.recovery);
                    failures.extend(outcome.failure);
                }
                recoveries.sort();
                eprintln!(
                    "storm: {} of {runs} runs green; recovery min {:?} median {:?} max {:?}",
                    runs - failures.len(),
                    recoveries[0],
                    recoveries[runs / 2],
                    recoveries[runs - 1]
                );
                assert!(failures.is_empty(), "{failures:#?}");
            })
        })
        .with_ignored_flag(std::env::var_os("STORM_RUNS").is_none()),
    );
}
