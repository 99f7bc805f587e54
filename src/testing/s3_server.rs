//! One local S3 server (`moto.server`) on a loopback port, with one bucket, stopped on drop.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    path::PathBuf,
    process::{Child, ChildStdin, Command, Stdio},
    time::{Duration, Instant},
};

use snafu::ResultExt;

use super::{
    Error, SpawnSnafu,
    local::{free_port, signal},
    s3_install::s3_python,
};

/// How long the S3 server may take to answer (a Python start: about two seconds here).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The region the bucket is created in and the broker is told.
pub(crate) const REGION: &str = "eu-west-2";

/// Like the broker's: the shell starts the server, prints its PID, and kills it when its standard input
/// closes (on drop, or when the owning process dies in any way).
const WATCHDOG: &str = r#""$1" -m moto.server -H 127.0.0.1 -p "$2" >"$3" 2>&1 &
pid=$!
echo "$pid"
read _ignored
kill "$pid" 2>/dev/null
wait "$pid""#;

pub(crate) struct S3Server {
    port: u16,
    log: PathBuf,
    watchdog: Child,
    stdin: Option<ChildStdin>,
    pid: Option<u32>,
}

impl S3Server {
    /// Installs and starts the server on a free port, and creates `bucket` in it.
    pub(crate) fn start(bucket: &str) -> Result<Self, Error> {
        let python = s3_python()?;
        let port = free_port()?;
        let log = std::env::temp_dir().join(format!("kafka-event-bus-s3-{port}.log"));
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(WATCHDOG)
            .arg("s3-watchdog")
            .arg(&python.python)
            .arg(port.to_string())
            .arg(&log)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(path) = &python.python_path {
            command.env("PYTHONPATH", path);
        }
        let mut watchdog = command.spawn().context(SpawnSnafu {
            binary: python.python.clone(),
        })?;
        let stdin = watchdog.stdin.take();
        let mut line = String::new();
        if let Some(stdout) = watchdog.stdout.take() {
            // The PID line: the server runs once it is printed (the watchdog kills it by that PID).
            let _ = BufReader::new(stdout).read_line(&mut line);
        }
        let server = Self {
            port,
            log,
            watchdog,
            stdin,
            pid: line.trim().parse().ok(),
        };
        server.create_bucket(bucket)?;
        Ok(server)
    }

    /// The endpoint URL clients of the server use.
    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates the bucket, retrying until the server answers: the first success also says it is ready.
    fn create_bucket(&self, bucket: &str) -> Result<(), Error> {
        let address = SocketAddr::from(([127, 0, 0, 1], self.port));
        let body = format!(
            "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
             <LocationConstraint>{REGION}</LocationConstraint></CreateBucketConfiguration>"
        );
        let request = format!(
            "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/xml\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        );
        let start = Instant::now();
        let mut last = String::new();
        while start.elapsed() < READY_TIMEOUT {
            match put(&address, &request) {
                Ok(status) if status.starts_with("HTTP/1.1 200") || status.starts_with("HTTP/1.0 200") => {
                    return Ok(());
                }
                Ok(status) => last = status,
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(Error::StorageNotReady {
            address: address.to_string(),
            seconds: READY_TIMEOUT.as_secs(),
            message: format!(
                "{last}; its output:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            ),
        })
    }
}

/// Sends one HTTP request and returns the status line of the answer.
fn put(address: &SocketAddr, request: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(address, Duration::from_millis(200))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(request.as_bytes())?;
    let mut answer = Vec::new();
    // A bounded read: the status line is all that matters.
    let _ = stream.take(64 << 10).read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

impl Drop for S3Server {
    fn drop(&mut self) {
        // Closing the watchdog's stdin makes it kill the server and wait for it.
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.watchdog.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if let Some(pid) = self.pid {
            signal(pid, "-KILL");
        }
        let _ = self.watchdog.kill();
        let _ = self.watchdog.wait();
    }
}
