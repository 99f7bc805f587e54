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
//! - A caller that is dropped before its answer leaves its correlation id *abandoned*: the response,
//!   when it comes, is read and discarded, and the stream stays in sync.
//! - Every response must answer a request in flight: a correlation id that is neither waited for nor
//!   abandoned (an answer to nothing, or a second answer to one request) poisons the connection with
//!   [`Error::UnexpectedCorrelationId`] instead of being handed to anyone.
//! - A request that times out poisons the connection, as Java's client disconnects on a timed-out
//!   in-flight request: a link that went silent (a dead host, a NAT that forgot the flow) is replaced on
//!   the next request instead of failing requests until TCP gives up. It also poisons every other
//!   connection to the same broker address that has received nothing since the timed-out request was
//!   sent (`silent_links`): they share the silent link, and each would otherwise wait out a request
//!   timeout of its own. A response that does not decode poisons it too (the stream can no longer be
//!   trusted).
//! - When the socket fails (EOF, reset, garbage), the messenger is *poisoned*: every request in flight
//!   and every later request fails at once with the same retriable error, and the socket is closed. A
//!   poisoned messenger is never reused; [`BrokerConnection`](super::BrokerConnection) replaces it.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicI32, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::{Bytes, BytesMut};
use kafka_protocol::{messages::ApiVersionsRequest, protocol::StrBytes};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter, ReadHalf, WriteHalf},
    sync::{mpsc, oneshot},
    task::AbortHandle,
};
use tokio_util::sync::CancellationToken;
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
/// How many abandoned correlation ids a connection remembers; past this the oldest is forgotten (its
/// late answer, if it ever comes, then drops the connection instead of growing the list).
const MAX_ABANDONED: usize = 1024;

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
    /// Cancelled when the connection is poisoned: the reader and writer tasks stop and the socket
    /// closes, even while the broker sends nothing.
    closed: CancellationToken,
    /// When the connection opened or last received a response.
    heard: Mutex<Instant>,
}

#[derive(Debug)]
enum State {
    Open(InFlight),
    Poisoned(Error),
}

/// The correlation ids a response may carry on an open connection.
#[derive(Debug, Default)]
struct InFlight {
    /// Requests whose caller waits for the answer.
    waiting: HashMap<i32, oneshot::Sender<Bytes>>,
    /// Requests that were sent but whose caller went away, oldest first: their answers are discarded.
    abandoned: VecDeque<i32>,
}

impl InFlight {
    fn knows(&self, id: i32) -> bool {
        self.waiting.contains_key(&id) || self.abandoned.contains(&id)
    }

    fn abandon(&mut self, id: i32) {
        if self.waiting.remove(&id).is_some() {
            self.expect_unwaited(id);
        }
    }

    /// A request nobody waits for, which the broker may still answer (an abandoned one, or one the
    /// protocol says goes unanswered, which some brokers answer anyway).
    fn expect_unwaited(&mut self, id: i32) {
        self.abandoned.push_back(id);
        if self.abandoned.len() > MAX_ABANDONED {
            self.abandoned.pop_front();
        }
    }

    /// Where the response with correlation id `id` goes: `Some(Some(tx))` to a waiting caller,
    /// `Some(None)` nowhere (abandoned), `None` if no request in flight has the id.
    fn route(&mut self, id: i32) -> Option<Option<oneshot::Sender<Bytes>>> {
        if let Some(tx) = self.waiting.remove(&id) {
            return Some(Some(tx));
        }
        let position = self.abandoned.iter().position(|&a| a == id)?;
        self.abandoned.remove(position);
        Some(None)
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the map inconsistent (every operation on it is a
        // single insert/remove/replace), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Fails every waiter (by dropping its sender) and every later request with `cause`, and closes
    /// the socket.
    fn poison(&self, cause: Error) {
        let mut state = self.lock();
        if let State::Open(in_flight) = &mut *state {
            debug!(broker = %self.broker, error = %cause, in_flight = in_flight.waiting.len(), "connection poisoned");
            *state = State::Poisoned(cause);
        }
        drop(state);
        self.closed.cancel();
    }

    fn last_heard(&self) -> Instant {
        *self.heard.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn heard_now(&self) {
        *self.heard.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    fn poisoned(&self) -> Option<Error> {
        match &*self.lock() {
            State::Open(_) => None,
            State::Poisoned(e) => Some(e.clone()),
        }
    }
}

/// Settles a waiter whose caller stops waiting before the answer (timeout or a dropped caller): a
/// request never queued for the socket is forgotten, one that was queued is abandoned.
struct Waiter<'a> {
    shared: &'a Shared,
    id: i32,
    armed: bool,
    /// The frame was handed to the writer task, so the broker may answer it.
    queued: AtomicBool,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        if self.armed
            && let State::Open(in_flight) = &mut *self.shared.lock()
        {
            if self.queued.load(Ordering::Relaxed) {
                in_flight.abandon(self.id);
            } else {
                in_flight.waiting.remove(&self.id);
            }
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
            state: Mutex::new(State::Open(InFlight::default())),
            closed: CancellationToken::new(),
            heard: Mutex::new(Instant::now()),
        });
        silent_links::register(&shared);
        let (frames, queue) = mpsc::channel(WRITE_QUEUE);
        // Poisoning stops both tasks wherever they wait; dropping both halves closes the socket.
        let reader = tokio::spawn(until_closed(
            Arc::clone(&shared),
            read_loop(read, Arc::clone(&shared), max_response_size),
        ));
        let writer = tokio::spawn(until_closed(
            Arc::clone(&shared),
            write_loop(write, queue, Arc::clone(&shared)),
        ));
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
        // A broker without v3 may answer in a layout the v3 decoder rejects: that is not a broken stream.
        let v3 = self.exchange(&request, 3, timeout).await?;
        let response = match frame::decode_response::<ApiVersionsRequest>(v3, 3) {
            Ok(response) if response.error_code == 0 => response,
            Ok(_) | Err(_) => self.send_at(&ApiVersionsRequest::default(), 0, timeout).await?,
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
    /// [`Error::RequestTimeout`] if no answer comes in time (the connection is then closed, failing the
    /// other requests in flight on it with the same error), [`Error::Disconnected`] or [`Error::Io`] if
    /// the connection fails, [`Error::Protocol`] if the response does not decode (the connection is
    /// closed too), [`Error::UnexpectedCorrelationId`] if the broker answered a request that is not in
    /// flight.
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
        // Kafka never answers an acks=0 Produce; Tansu does: its answer is discarded like an abandoned one.
        let id = match &mut *self.shared.lock() {
            State::Open(in_flight) => {
                let id = self.next_id(in_flight);
                in_flight.expect_unwaited(id);
                id
            }
            State::Poisoned(e) => return Err(e.clone()),
        };
        let frame = self.encode(id, version, request)?;
        self.frames.send(frame).await.map_err(|_| self.closed_error())
    }

    /// A correlation id no request in flight carries (ids wrap after 2³² requests).
    fn next_id(&self, in_flight: &InFlight) -> i32 {
        loop {
            let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
            if !in_flight.knows(id) {
                return id;
            }
        }
    }

    async fn send_at<R: ApiRequest>(
        &self,
        request: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response, Error> {
        let response = self.exchange(request, version, timeout).await?;
        frame::decode_response::<R>(response, version).map_err(|e| {
            let e = self.protocol_error(e);
            self.shared.poison(e.clone());
            e
        })
    }

    /// Sends `request` and waits for the raw response frame. A timeout poisons the connection.
    async fn exchange<R: ApiRequest>(
        &self,
        request: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<Bytes, Error> {
        let sent_at = Instant::now();
        let (tx, rx) = oneshot::channel();
        let id = match &mut *self.shared.lock() {
            State::Open(in_flight) => {
                let id = self.next_id(in_flight);
                in_flight.waiting.insert(id, tx);
                id
            }
            State::Poisoned(e) => return Err(e.clone()),
        };
        let mut waiter = Waiter {
            shared: &self.shared,
            id,
            armed: true,
            queued: AtomicBool::new(false),
        };
        let frame = self.encode(id, version, request)?;
        trace!(broker = %self.broker, api = ?R::KEY, version, id, "request");
        let exchange = async {
            self.frames.send(frame).await.map_err(|_| self.closed_error())?;
            waiter.queued.store(true, Ordering::Relaxed);
            rx.await.map_err(|_| self.closed_error())
        };
        let response = match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                let e = Error::RequestTimeout {
                    broker: self.broker.clone(),
                    api: R::KEY,
                    timeout,
                };
                // The link may be dead without TCP knowing: drop it, the next request reconnects.
                self.shared.poison(e.clone());
                // The other connections to this broker that heard nothing since are as silent.
                silent_links::close_silent(&self.broker, sent_at, &e);
                return Err(e);
            }
        };
        waiter.armed = false;
        Ok(response)
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

/// Runs `task` until it ends or the connection is poisoned.
async fn until_closed(shared: Arc<Shared>, task: impl Future<Output = ()>) {
    tokio::select! {
        () = task => {}
        () = shared.closed.cancelled() => {}
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
        shared.heard_now();
        let route = match &mut *shared.lock() {
            State::Open(in_flight) => in_flight.route(id),
            State::Poisoned(_) => return,
        };
        match route {
            // A send error means the caller went away between our lookup and now: same as abandoned.
            Some(Some(tx)) => drop(tx.send(buf)),
            Some(None) => debug!(broker = %shared.broker, id, "discarding a response nobody waits for"),
            None => {
                break Error::UnexpectedCorrelationId {
                    broker: shared.broker.clone(),
                    correlation_id: id,
                };
            }
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
mod silent_links;
#[cfg(test)]
mod tests;
