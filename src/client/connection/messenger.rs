//! One broker connection with many requests in flight (pipelining), matched by correlation id.
//!
//! ```text
//!  request()  ──encode──▶ frames (mpsc) ──▶ writer task ──▶ socket
//!     │ register id → oneshot                                 │
//!     ▼                                                       ▼
//!  await oneshot ◀── route by correlation id ◀── reader task ◀─┘
//! ```
//!
//! Invariants:
//! - A frame is written whole or not at all: requests hand finished frames to the writer task, so a
//!   caller that is cancelled mid-request can never leave half a frame on the socket.
//! - A caller that gives up (timeout, drop) removes its waiter; the response, when it comes, is read
//!   and discarded, and the stream stays in sync.
//! - When the socket fails (EOF, reset, garbage), the messenger is *poisoned*: every request in flight
//!   and every later request fails at once with the same retriable error. A poisoned messenger is never
//!   reused; [`BrokerConnection`](super::BrokerConnection) replaces it.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicI32, Ordering},
    },
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use kafka_protocol::{messages::ApiVersionsRequest, protocol::StrBytes};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter, ReadHalf, WriteHalf},
    sync::{mpsc, oneshot},
    task::AbortHandle,
};
use tracing::{debug, trace};

use self::recv_buffers::RecvBuffers;
use super::{
    error::Error,
    transport::{BoxStream, Stream},
};
use crate::protocol::{self, ApiRequest, ApiVersionTable, ServerError, frame};

/// How many encoded frames may wait for the writer task before `request` waits too.
const WRITE_QUEUE: usize = 256;
/// Read and write buffer sizes: small frames are batched into one syscall.
const IO_BUFFER: usize = 64 * 1024;

/// A connected, version-negotiated broker connection that pipelines requests.
///
/// # Cancel safety
///
/// [`request`](Self::request) is cancel-safe: dropping its future either sends nothing, or lets the
/// whole frame go out and discards the response.
#[derive(Debug)]
pub struct Messenger {
    broker: String,
    client_id: Option<String>,
    versions: ApiVersionTable,
    request_timeout: Duration,
    shared: Arc<Shared>,
    frames: mpsc::Sender<Bytes>,
    tasks: [AbortHandle; 2],
}

#[derive(Debug)]
struct Shared {
    broker: String,
    next_id: AtomicI32,
    state: Mutex<State>,
}

#[derive(Debug)]
enum State {
    Open(HashMap<i32, oneshot::Sender<Bytes>>),
    Poisoned(Error),
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the map inconsistent (every operation on it is a
        // single insert/remove/replace), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Fails every waiter (by dropping its sender) and every later request with `cause`.
    fn poison(&self, cause: Error) {
        let mut state = self.lock();
        if let State::Open(waiters) = &mut *state {
            debug!(broker = %self.broker, error = %cause, in_flight = waiters.len(), "connection poisoned");
            *state = State::Poisoned(cause);
        }
    }

    fn poisoned(&self) -> Option<Error> {
        match &*self.lock() {
            State::Open(_) => None,
            State::Poisoned(e) => Some(e.clone()),
        }
    }
}

/// Removes a waiter that will never be answered (timeout or a dropped caller).
struct Waiter<'a> {
    shared: &'a Shared,
    id: i32,
    armed: bool,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        if self.armed
            && let State::Open(waiters) = &mut *self.shared.lock()
        {
            waiters.remove(&self.id);
        }
    }
}

impl Messenger {
    /// Starts the reader and writer tasks on `stream` and negotiates API versions with the broker.
    ///
    /// `broker` labels errors and logs. The handshake (ApiVersions) must finish within
    /// `handshake_timeout`.
    pub(crate) async fn handshake(
        stream: BoxStream,
        broker: String,
        client_id: Option<String>,
        request_timeout: Duration,
        handshake_timeout: Duration,
        max_response_size: usize,
    ) -> Result<Self, Error> {
        let (read, write) = tokio::io::split(stream);
        let shared = Arc::new(Shared {
            broker: broker.clone(),
            next_id: AtomicI32::new(0),
            state: Mutex::new(State::Open(HashMap::new())),
        });
        let (frames, queue) = mpsc::channel(WRITE_QUEUE);
        let reader = tokio::spawn(read_loop(read, Arc::clone(&shared), max_response_size));
        let writer = tokio::spawn(write_loop(write, queue, Arc::clone(&shared)));
        let mut messenger = Self {
            broker,
            client_id,
            versions: ApiVersionTable::default(),
            request_timeout,
            shared,
            frames,
            tasks: [reader.abort_handle(), writer.abort_handle()],
        };
        messenger.versions = messenger.negotiate_versions(handshake_timeout).await?;
        Ok(messenger)
    }

    /// ApiVersions: try v3 (flexible, sends the client software name); a broker that does not speak v3
    /// answers in v0 with UNSUPPORTED_VERSION and its ranges, so fall back to v0.
    async fn negotiate_versions(&self, timeout: Duration) -> Result<ApiVersionTable, Error> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("kafka-event-bus"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let response = match self.send_at(&request, 3, timeout).await {
            Ok(response) if response.error_code == 0 => response,
            Ok(_) | Err(Error::Protocol { .. }) => {
                self.send_at(&ApiVersionsRequest::default(), 0, timeout).await?
            }
            Err(e) => return Err(e),
        };
        if let Some(source) = ServerError::from_code(response.error_code, None) {
            return Err(Error::Handshake {
                broker: self.broker.clone(),
                source,
            });
        }
        let table = ApiVersionTable::from_response(&response);
        debug!(broker = %self.broker, apis = table.iter().count(), "negotiated api versions");
        Ok(table)
    }

    /// The broker this connection goes to.
    pub fn broker(&self) -> &str {
        &self.broker
    }

    /// The versions the broker advertised.
    pub fn versions(&self) -> &ApiVersionTable {
        &self.versions
    }

    /// The version `R` is sent at on this connection.
    ///
    /// # Errors
    ///
    /// [`Error::Protocol`] when the broker and this client share no version of the API.
    pub fn version_for<R: ApiRequest>(&self) -> Result<i16, Error> {
        self.versions.negotiate::<R>().map_err(|e| self.protocol_error(e))
    }

    /// Whether the connection has failed; a failed connection fails every request.
    pub fn is_poisoned(&self) -> bool {
        self.shared.poisoned().is_some()
    }

    /// Sends `request` at the negotiated version and waits for its response, up to the configured
    /// request timeout.
    ///
    /// # Errors
    ///
    /// [`Error::RequestTimeout`] if no answer comes in time (the connection stays usable),
    /// [`Error::Disconnected`] or [`Error::Io`] if the connection fails, [`Error::Protocol`] if the
    /// response does not decode.
    pub async fn request<R: ApiRequest>(&self, request: &R) -> Result<R::Response, Error> {
        self.request_with_timeout(request, self.request_timeout).await
    }

    /// [`request`](Self::request) with its own timeout (e.g. a JoinGroup that the broker may hold for a
    /// whole rebalance).
    ///
    /// # Errors
    ///
    /// As [`request`](Self::request).
    pub async fn request_with_timeout<R: ApiRequest>(
        &self,
        request: &R,
        timeout: Duration,
    ) -> Result<R::Response, Error> {
        let version = self.version_for::<R>()?;
        self.send_at(request, version, timeout).await
    }

    /// Sends a request the broker will not answer (a Produce with acks=0). Returns once the frame is
    /// queued for the socket.
    ///
    /// # Errors
    ///
    /// As [`request`](Self::request), except that no timeout applies.
    pub async fn send_oneway<R: ApiRequest>(&self, request: &R) -> Result<(), Error> {
        let version = self.version_for::<R>()?;
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = self.encode(id, version, request)?;
        if let Some(e) = self.shared.poisoned() {
            return Err(e);
        }
        self.frames.send(frame).await.map_err(|_| self.closed_error())
    }

    async fn send_at<R: ApiRequest>(
        &self,
        request: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response, Error> {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = self.encode(id, version, request)?;
        let (tx, rx) = oneshot::channel();
        match &mut *self.shared.lock() {
            State::Open(waiters) => {
                waiters.insert(id, tx);
            }
            State::Poisoned(e) => return Err(e.clone()),
        }
        let mut waiter = Waiter {
            shared: &self.shared,
            id,
            armed: true,
        };
        trace!(broker = %self.broker, api = ?R::KEY, version, id, "request");
        let exchange = async {
            self.frames.send(frame).await.map_err(|_| self.closed_error())?;
            rx.await.map_err(|_| self.closed_error())
        };
        let response = match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(Error::RequestTimeout {
                    broker: self.broker.clone(),
                    api: R::KEY,
                    timeout,
                });
            }
        };
        waiter.armed = false;
        frame::decode_response::<R>(response, version).map_err(|e| self.protocol_error(e))
    }

    fn encode<R: ApiRequest>(&self, id: i32, version: i16, request: &R) -> Result<Bytes, Error> {
        let mut buf = BytesMut::new();
        frame::encode_request(&mut buf, id, self.client_id.as_deref(), version, request)
            .map_err(|e| self.protocol_error(e))?;
        Ok(buf.freeze())
    }

    /// Why requests can no longer be answered: the poison cause, or a plain close.
    fn closed_error(&self) -> Error {
        self.shared.poisoned().unwrap_or_else(|| Error::Closed {
            broker: self.broker.clone(),
        })
    }

    fn protocol_error(&self, source: protocol::Error) -> Error {
        Error::Protocol {
            broker: self.broker.clone(),
            source: Arc::new(source),
        }
    }
}

impl Drop for Messenger {
    fn drop(&mut self) {
        self.shared.poison(Error::Closed {
            broker: self.broker.clone(),
        });
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn read_loop<S: Stream>(read: ReadHalf<S>, shared: Arc<Shared>, max_response_size: usize) {
    let mut read = BufReader::with_capacity(IO_BUFFER, read);
    let buffers = RecvBuffers::new(RecvBuffers::IDLE);
    let cause = loop {
        // Wait for the next response (`fill_buf` is cancel-safe), unmapping a spare buffer that goes
        // unused for too long meanwhile.
        let ready = tokio::select! {
            ready = read.fill_buf() => ready.map(|_| ()),
            never = buffers.expire_idle() => match never {},
        };
        if let Err(e) = ready {
            break io_error(&shared.broker, e);
        }
        let mut prefix = [0u8; frame::SIZE_PREFIX];
        if let Err(e) = read.read_exact(&mut prefix).await {
            break io_error(&shared.broker, e);
        }
        let len = match frame::frame_len(prefix, max_response_size) {
            Ok(len) => len,
            Err(e) => {
                break Error::Protocol {
                    broker: shared.broker.clone(),
                    source: Arc::new(e),
                };
            }
        };
        let buf = match buffers.read(&mut read, len).await {
            Ok(buf) => buf,
            Err(e) => break io_error(&shared.broker, e),
        };
        let id = match frame::correlation_id(&buf) {
            Ok(id) => id,
            Err(e) => {
                break Error::Protocol {
                    broker: shared.broker.clone(),
                    source: Arc::new(e),
                };
            }
        };
        let waiter = match &mut *shared.lock() {
            State::Open(waiters) => waiters.remove(&id),
            State::Poisoned(_) => return,
        };
        match waiter {
            // A send error means the caller went away between our lookup and now: same as no waiter.
            Some(tx) => drop(tx.send(buf)),
            None => debug!(broker = %shared.broker, id, "discarding a response nobody waits for"),
        }
    };
    shared.poison(cause);
}

async fn write_loop<S: Stream>(write: WriteHalf<S>, mut queue: mpsc::Receiver<Bytes>, shared: Arc<Shared>) {
    let mut write = BufWriter::with_capacity(IO_BUFFER, write);
    while let Some(frame) = queue.recv().await {
        let mut result = write.write_all(&frame).await;
        // Coalesce whatever else is already queued into the same flush.
        while result.is_ok() {
            match queue.try_recv() {
                Ok(frame) => result = write.write_all(&frame).await,
                Err(_) => break,
            }
        }
        if let Err(e) = match result {
            Ok(()) => write.flush().await,
            Err(e) => Err(e),
        } {
            shared.poison(io_error(&shared.broker, e));
            return;
        }
    }
}

fn io_error(broker: &str, e: std::io::Error) -> Error {
    use std::io::ErrorKind::*;
    match e.kind() {
        UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe => Error::Disconnected {
            broker: broker.to_owned(),
        },
        // Only the TLS layer reports InvalidData: a fatal alert (e.g. the broker wanted a client
        // certificate, which TLS 1.3 reports after the handshake) or a corrupt record.
        InvalidData => Error::Tls {
            broker: broker.to_owned(),
            source: Arc::new(e),
        },
        _ => Error::Io {
            broker: broker.to_owned(),
            source: Arc::new(e),
        },
    }
}

mod recv_buffers;
#[cfg(test)]
mod tests;
