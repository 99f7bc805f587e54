//! One Tansu process on a loopback port.

use std::{
    fmt,
    io::{BufRead, BufReader},
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, ChildStdin, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use snafu::ResultExt;

use super::{Error, PortSnafu, SpawnSnafu, tansu_binary};

/// How long a fresh broker may take to accept connections (it usually takes ~30 ms).
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// The shell that owns the broker: it starts Tansu, prints its PID, and kills it by that PID when its
/// standard input closes, which happens when [`LocalBroker`] is dropped *or* when the owning process dies
/// in any way (the pipe closes with it).
const WATCHDOG: &str = r#""$1" broker --listener-url "tcp://127.0.0.1:$2" --advertised-listener-url "tcp://127.0.0.1:$4" --storage-engine "$5" >"$3" 2>&1 &
pid=$!
echo "$pid"
read _ignored
kill -s "$6" "$pid" 2>/dev/null
wait "$pid""#;

/// A Tansu broker with in-memory storage on `127.0.0.1:<port>`, stopped on drop.
///
/// # Example
///
/// ```no_run
/// use kafka_event_bus::testing::LocalBroker;
///
/// let mut broker = LocalBroker::start()?;
/// println!("bootstrap: {}", broker.bootstrap_servers());
/// broker.restart()?; // same port, empty storage
/// # Ok::<(), kafka_event_bus::testing::Error>(())
/// ```
pub struct LocalBroker {
    port: u16,
    advertised_port: u16,
    bootstrap_servers: String,
    log: PathBuf,
    /// Tansu's `--storage-engine` URL.
    storage: String,
    /// Extra environment for the broker process (the S3 endpoint and credentials of persistent storage).
    env: Vec<(&'static str, String)>,
    /// The signal the watchdog stops the broker with: `TERM`, or `KILL` for one whose graceful shutdown
    /// may wait on its storage (which may be gone when the owning process died).
    stop_signal: &'static str,
    process: Option<Process>,
    /// The broker failed (it did not come up, or it exited by itself): its log is kept for a look.
    failed: bool,
}

struct Process {
    watchdog: Child,
    stdin: Option<ChildStdin>,
    pid: u32,
}

impl LocalBroker {
    /// Installs Tansu if needed and starts it on a free port.
    ///
    /// # Errors
    ///
    /// When installing or starting fails, or the broker does not accept connections in time.
    pub fn start() -> Result<Self, Error> {
        Self::start_on(free_port()?)
    }

    /// Starts a broker on a free port that tells clients (in its metadata) to connect to
    /// `127.0.0.1:<advertised_port>` instead: the port of a proxy in front of it (a TLS terminator, a
    /// fault injector).
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start).
    pub fn start_behind(advertised_port: u16) -> Result<Self, Error> {
        Self::launch(free_port()?, advertised_port)
    }

    /// Starts a broker on `port`.
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start).
    pub fn start_on(port: u16) -> Result<Self, Error> {
        Self::launch(port, port)
    }

    fn launch(port: u16, advertised_port: u16) -> Result<Self, Error> {
        Self::launch_on(
            port,
            advertised_port,
            "memory://tansu/".into(),
            Vec::new(),
            "TERM",
        )
    }

    /// Starts a broker on `port` with the given `--storage-engine`, extra environment, and the signal that
    /// stops it.
    pub(crate) fn launch_on(
        port: u16,
        advertised_port: u16,
        storage: String,
        env: Vec<(&'static str, String)>,
        stop_signal: &'static str,
    ) -> Result<Self, Error> {
        let log = std::env::temp_dir().join(log_file_name(port));
        let mut broker = Self {
            port,
            advertised_port,
            bootstrap_servers: format!("127.0.0.1:{advertised_port}"),
            log,
            storage,
            env,
            stop_signal,
            process: None,
            failed: false,
        };
        broker.spawn()?;
        Ok(broker)
    }

    fn spawn(&mut self) -> Result<(), Error> {
        let binary = tansu_binary()?;
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("tansu-watchdog")
            .arg(&binary)
            .arg(self.port.to_string())
            .arg(&self.log)
            .arg(self.advertised_port.to_string())
            .arg(&self.storage)
            .arg(self.stop_signal)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context(SpawnSnafu {
                binary: binary.clone(),
            })?;
        let stdin = watchdog.stdin.take();
        let mut line = String::new();
        if let Some(stdout) = watchdog.stdout.take() {
            let _ = BufReader::new(stdout).read_line(&mut line);
        }
        let pid = line.trim().parse().map_err(|_| Error::Spawn {
            binary: binary.clone(),
            source: std::io::Error::other(format!("the watchdog printed {line:?} instead of a PID")),
        })?;
        self.process = Some(Process { watchdog, stdin, pid });
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<(), Error> {
        let address = SocketAddr::from(([127, 0, 0, 1], self.port));
        let start = Instant::now();
        while start.elapsed() < READY_TIMEOUT {
            if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.failed = true;
        Err(Error::NotReady {
            address: address.to_string(),
            seconds: READY_TIMEOUT.as_secs(),
            log: std::fs::read_to_string(&self.log).unwrap_or_default(),
        })
    }

    /// The bootstrap address clients should use: `127.0.0.1:<advertised port>`.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap_servers
    }

    /// The port it listens on (differs from the advertised one behind a proxy).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The broker's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|p| p.pid)
    }

    /// Stops the broker (its in-memory data is lost). Connections to it see EOF.
    pub fn stop(&mut self) {
        if self.halt() {
            self.failed = true;
            eprintln!(
                "kafka-event-bus: the local broker on port {} had exited by itself; its log: {}",
                self.port,
                self.log.display()
            );
        }
    }

    /// Stops the broker process, if any; returns whether it had already exited by itself.
    fn halt(&mut self) -> bool {
        self.resume(); // a stopped process would not act on SIGTERM
        let Some(mut process) = self.process.take() else {
            return false;
        };
        let died = !is_alive(process.pid);
        // Closing the watchdog's stdin makes it kill the broker by PID and wait for it.
        drop(process.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = process.watchdog.try_wait() {
                return died;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        signal(process.pid, "-KILL");
        let _ = process.watchdog.kill();
        let _ = process.watchdog.wait();
        died
    }

    /// Kills the broker with `SIGKILL` (no shutdown of any kind), then reaps its watchdog.
    pub(crate) fn kill(&mut self) {
        if let Some(p) = &self.process {
            signal(p.pid, "-KILL");
        }
        self.halt();
    }

    /// Starts the broker again after [`stop`](Self::stop) or [`kill`](Self::kill) (it must not be running).
    pub(crate) fn start_again(&mut self) -> Result<(), Error> {
        self.spawn()
    }

    /// The broker's log file (its standard output and error), in the system's temporary directory: removed
    /// when the handle is dropped, unless the broker failed (did not come up, or exited by itself).
    pub fn log(&self) -> &std::path::Path {
        &self.log
    }

    /// Stops the broker and starts a new one on the same port, with empty storage.
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start).
    pub fn restart(&mut self) -> Result<(), Error> {
        self.stop();
        self.spawn()
    }

    /// Freezes the broker (`SIGSTOP`): connections stay open but nothing is answered.
    pub fn pause(&self) {
        if let Some(p) = &self.process {
            signal(p.pid, "-STOP");
        }
    }

    /// Unfreezes a [`pause`](Self::pause)d broker.
    pub fn resume(&self) {
        if let Some(p) = &self.process {
            signal(p.pid, "-CONT");
        }
    }
}

pub(super) fn free_port() -> Result<u16, Error> {
    Ok(TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context(PortSnafu)?
        .port())
}

/// The broker's log file name, unique to this process and broker: `kafka-event-bus-tansu-<port>-<pid>-<n>.log`
/// (a later broker on the same port, in this process or another, never overwrites a kept log).
fn log_file_name(port: u16) -> String {
    static STARTED: AtomicU32 = AtomicU32::new(0);
    let n = STARTED.fetch_add(1, Ordering::Relaxed);
    format!("kafka-event-bus-tansu-{port}-{}-{n}.log", std::process::id())
}

/// Whether process `pid` still runs and is not a zombie (a broker that exited stays one until its
/// watchdog reaps it). Where `/proc` exists (Linux, BusyBox included) its stat file tells; elsewhere
/// `kill -0` does (a zombie then counts as running). Without either it is taken to run.
fn is_alive(pid: u32) -> bool {
    let proc = std::path::Path::new("/proc");
    if proc.join("self").exists() {
        return match std::fs::read_to_string(proc.join(pid.to_string()).join("stat")) {
            // `pid (comm) S ...`: the state follows the last `)` (comm may hold one).
            Ok(stat) => stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next())
                .is_none_or(|state| state != 'Z' && state != 'X'),
            Err(_) => false,
        };
    }
    match Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(status) => status.success(),
        Err(_) => true,
    }
}

pub(super) fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(signal)
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

impl Drop for LocalBroker {
    fn drop(&mut self) {
        self.stop();
        if self.failed {
            eprintln!(
                "kafka-event-bus: the local broker's log is kept at {}",
                self.log.display()
            );
        } else {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

impl fmt::Debug for LocalBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalBroker")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("pid", &self.pid())
            .field("log", &self.log)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn two_brokers_on_one_port_get_two_log_files() {
        let (a, b) = (log_file_name(9092), log_file_name(9092));
        assert_ne!(a, b);
        assert!(a.starts_with("kafka-event-bus-tansu-9092-"), "{a}");
        assert!(a.contains(&std::process::id().to_string()), "{a}");
    }

    #[test]
    fn a_running_process_is_alive_an_exited_one_is_not() {
        assert!(is_alive(std::process::id()));
        let mut child = Command::new("sh").args(["-c", "exit 0"]).spawn().unwrap();
        let pid = child.id();
        // Exited and not reaped yet (a zombie) or reaped: not alive either way.
        let until = Instant::now() + Duration::from_secs(10);
        while is_alive(pid) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!is_alive(pid));
        child.wait().unwrap();
        assert!(!is_alive(pid));
    }
}
