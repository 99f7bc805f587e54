//! A TCP proxy in front of a local broker that can cut every connection on demand: the fault injector
//! for "connection lost mid-stream" tests. The broker advertises the proxy's port, so every connection
//! the client opens (bootstrap and leaders) goes through it.
//!
//! It can also *blackhole* the link: the connections open at that moment, and those opened while it
//! lasts, stop forwarding for good but stay open (a NAT that forgot the flows, a host that vanished);
//! after [`FaultyBroker::forward`] new connections work again. And it can *freeze* what clients send
//! ([`FaultyBroker::freeze`]): requests are held in the proxy until it thaws or the connection is cut.
//! It counts the requests clients send, by API key ([`FaultyBroker::requests`]), and keeps the largest
//! of each ([`FaultyBroker::largest_request`]). And it can *swallow* requests of one API key
//! ([`FaultyBroker::swallow`]): the client wrote them, the broker never gets them, the connection stays
//! open. Or it can *lose the answers* to requests of one API key ([`FaultyBroker::lose_answers`]): the
//! broker gets and handles them, the client never sees their responses, the connection stays open.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering},
    },
    time::Duration,
};

use kafka_event_bus::testing::LocalBroker;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpListener,
    sync::watch,
    task::AbortHandle,
};

pub(crate) struct FaultyBroker {
    pub(crate) bootstrap: String,
    pub(crate) broker: LocalBroker,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
    /// One per connection: `true` silences it for good.
    silencers: Arc<Mutex<Vec<watch::Sender<bool>>>>,
    blackholed: Arc<AtomicBool>,
    /// While set, what clients send is held in the proxy (a `cut` then drops it unsent).
    frozen: Arc<AtomicBool>,
    /// Requests sent through the proxy, by API key.
    requests: Arc<RequestCounts>,
    /// Requests to drop unforwarded.
    swallowing: Arc<Swallow>,
    /// Requests whose responses are dropped.
    losing: Arc<Swallow>,
}

/// How many of the next requests with `api_key` the proxy drops instead of forwarding (or whose
/// responses it drops).
#[derive(Default)]
struct Swallow {
    api_key: AtomicI32,
    left: AtomicUsize,
}

impl Swallow {
    /// Picks the next `count` requests with `api_key`.
    fn arm(&self, api_key: i16, count: usize) {
        self.api_key.store(i32::from(api_key), Ordering::Release);
        self.left.store(count, Ordering::Release);
    }

    /// How many of the picked requests are still to come.
    fn left(&self) -> usize {
        self.left.load(Ordering::Acquire)
    }

    /// Whether a request with `api_key` is to be dropped (and counts it as dropped).
    fn take(&self, api_key: i16) -> bool {
        i32::from(api_key) == self.api_key.load(Ordering::Acquire)
            && self
                .left
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                .is_ok()
    }
}

impl FaultyBroker {
    pub(crate) async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let broker = tokio::task::spawn_blocking(move || LocalBroker::start_behind(port))
            .await
            .unwrap()
            .unwrap();
        let upstream = format!("127.0.0.1:{}", broker.port());
        let connections: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let registry = Arc::clone(&connections);
        let silencers: Arc<Mutex<Vec<watch::Sender<bool>>>> = Arc::default();
        let blackholed = Arc::new(AtomicBool::new(false));
        let frozen: Arc<AtomicBool> = Arc::default();
        let hold = Arc::clone(&frozen);
        let requests: Arc<RequestCounts> = Arc::default();
        let counts = Arc::clone(&requests);
        let swallowing: Arc<Swallow> = Arc::default();
        let swallow = Arc::clone(&swallowing);
        let losing: Arc<Swallow> = Arc::default();
        let lose = Arc::clone(&losing);
        let (silencer_registry, blackholed_now) = (Arc::clone(&silencers), Arc::clone(&blackholed));
        let accept = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let upstream = upstream.clone();
                let hold = Arc::clone(&hold);
                let counts = Arc::clone(&counts);
                let swallow = Arc::clone(&swallow);
                let lose = Arc::clone(&lose);
                let (silencer, silent) = watch::channel(blackholed_now.load(Ordering::SeqCst));
                silencer_registry.lock().unwrap().push(silencer);
                let task = tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    // Correlation ids of this connection's requests whose responses are dropped.
                    let unanswered: Arc<Mutex<HashSet<i32>>> = Arc::default();
                    let requests = Requests {
                        hold,
                        counts,
                        swallow,
                        lose,
                        unanswered: Arc::clone(&unanswered),
                    };
                    tokio::join!(
                        pump(client_read, server_write, silent.clone(), Side::Client(requests)),
                        pump(server_read, client_write, silent, Side::Broker(unanswered)),
                    );
                });
                registry.lock().unwrap().push(task.abort_handle());
            }
        })
        .abort_handle();
        Self {
            bootstrap: format!("127.0.0.1:{port}"),
            broker,
            connections,
            accept,
            silencers,
            blackholed,
            frozen,
            requests,
            swallowing,
            losing,
        }
    }

    /// Drops the next `count` requests with `api_key` that clients send, on any connection: they were
    /// written by the client and never reach the broker, and the connection stays open.
    pub(crate) fn swallow(&self, api_key: i16, count: usize) {
        self.swallowing.arm(api_key, count);
    }

    /// How many of the requests [`swallow`](Self::swallow) asked for are still to be dropped.
    pub(crate) fn left_to_swallow(&self) -> usize {
        self.swallowing.left()
    }

    /// Forwards the next `count` requests with `api_key` that clients send, on any connection, and
    /// drops their responses: the broker handles them, the client never hears back, the connection
    /// stays open.
    pub(crate) fn lose_answers(&self, api_key: i16, count: usize) {
        self.losing.arm(api_key, count);
    }

    /// How many of the requests [`lose_answers`](Self::lose_answers) asked for are still to be sent.
    pub(crate) fn answers_left_to_lose(&self) -> usize {
        self.losing.left()
    }

    /// How many requests with `api_key` clients sent through the proxy so far.
    pub(crate) fn requests(&self, api_key: i16) -> usize {
        self.requests
            .lock()
            .unwrap()
            .get(&api_key)
            .map_or(0, |seen| seen.count)
    }

    /// The largest request with `api_key` clients sent through the proxy so far, in bytes (the size
    /// prefix excluded).
    pub(crate) fn largest_request(&self, api_key: i16) -> usize {
        self.requests
            .lock()
            .unwrap()
            .get(&api_key)
            .map_or(0, |seen| seen.largest)
    }

    /// Holds (or, with `false`, forwards again) what clients send: requests sent meanwhile reach the
    /// broker only if the connection is not [`cut`](Self::cut) first.
    pub(crate) fn freeze(&self, on: bool) {
        self.frozen.store(on, Ordering::Release);
    }

    /// Stops forwarding on every open connection for good, and on every connection accepted until
    /// [`forward`](Self::forward), without closing any: the client sees a silent link, not a reset.
    pub(crate) fn blackhole(&self) {
        self.blackholed.store(true, Ordering::SeqCst);
        for silencer in self.silencers.lock().unwrap().iter() {
            let _ = silencer.send(true);
        }
    }

    /// Connections accepted from now on forward again; the silenced ones stay silent.
    pub(crate) fn forward(&self) {
        self.blackholed.store(false, Ordering::SeqCst);
    }

    /// Drops every open connection (both directions, mid-request or not); new ones are accepted.
    pub(crate) fn cut(&self) -> usize {
        let mut connections = self.connections.lock().unwrap();
        let n = connections.len();
        for c in connections.drain(..) {
            c.abort();
        }
        n
    }
}

impl Drop for FaultyBroker {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// What a client's side of a connection does with its requests.
struct Requests {
    /// While set, what was read waits in the proxy.
    hold: Arc<AtomicBool>,
    counts: Arc<RequestCounts>,
    /// Requests dropped unforwarded.
    swallow: Arc<Swallow>,
    /// Requests whose responses are dropped: their correlation ids go to `unanswered`.
    lose: Arc<Swallow>,
    unanswered: Arc<Mutex<HashSet<i32>>>,
}

/// Which end of a connection a pump reads.
enum Side {
    /// The client's: requests.
    Client(Requests),
    /// The broker's: responses, the ones whose correlation id is listed dropped.
    Broker(Arc<Mutex<HashSet<i32>>>),
}

/// Copies `from` to `to` until EOF, or, once `silent` turns true, holds everything and never returns.
/// From a client's side, while its hold flag is set what was read waits in the proxy, and its requests
/// are counted (and dropped while `Swallow` asks for them); from the broker's side, the responses to
/// requests whose answers are to be lost are dropped.
// A byte pump forwards whatever arrives (frames are only followed to be counted): short reads are what
// it wants.
#[allow(clippy::disallowed_methods)]
async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    mut silent: watch::Receiver<bool>,
    side: Side,
) {
    let mut frames = FrameFilter::new(match side {
        Side::Client(_) => REQUEST_HEAD,
        Side::Broker(_) => RESPONSE_HEAD,
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let read = tokio::select! {
            read = from.read(&mut buf) => Some(read),
            silenced = silent.wait_for(|s| *s) => {
                drop(silenced);
                None
            }
        };
        let silenced = *silent.borrow();
        let n = match read {
            Some(Ok(n)) if n > 0 && !silenced => n,
            None | Some(Ok(_)) if silenced => return std::future::pending().await,
            _ => break,
        };
        let forward = match &side {
            Side::Client(requests) => frames.pass(&buf[..n], |head| request_dropped(head, requests)),
            Side::Broker(unanswered) => frames.pass(&buf[..n], |head| response_dropped(head, unanswered)),
        };
        while matches!(&side, Side::Client(r) if r.hold.load(Ordering::Acquire)) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if to.write_all(&forward).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// Requests sent through the proxy, by API key.
type RequestCounts = Mutex<HashMap<i16, Seen>>;

/// The requests of one API key: how many, and the largest (bytes after the size prefix).
#[derive(Default)]
struct Seen {
    count: usize,
    largest: usize,
}

/// The bytes of a request frame the proxy reads before deciding: size prefix, then the request
/// header's API key, API version and correlation id.
const REQUEST_HEAD: usize = 12;

/// The bytes of a response frame the proxy reads before deciding: size prefix and correlation id.
const RESPONSE_HEAD: usize = 8;

/// Follows a byte stream frame by frame: reads each frame's first `head` bytes (size prefix included),
/// asks `drop` whether the frame goes, and forwards the rest of the frame or drops it.
struct FrameFilter {
    /// How many bytes of a frame are read before deciding.
    head_len: usize,
    /// The first bytes of the frame being read (forwarded once the frame is kept).
    head: Vec<u8>,
    /// Bytes of the current frame still to pass.
    skip: usize,
    /// The current frame is dropped, not forwarded.
    dropping: bool,
}

impl FrameFilter {
    fn new(head_len: usize) -> Self {
        Self {
            head_len,
            head: Vec::with_capacity(head_len),
            skip: 0,
            dropping: false,
        }
    }

    /// Returns what of `bytes` to forward: all of it but the frames `drop` picks from their heads.
    fn pass(&mut self, mut bytes: &[u8], mut drop: impl FnMut(&[u8]) -> bool) -> Vec<u8> {
        let mut forward = Vec::with_capacity(bytes.len());
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                if !self.dropping {
                    forward.extend_from_slice(&bytes[..n]);
                }
                bytes = &bytes[n..];
                continue;
            }
            self.head.push(bytes[0]);
            bytes = &bytes[1..];
            if self.head.len() == self.head_len {
                let size = i32::from_be_bytes([self.head[0], self.head[1], self.head[2], self.head[3]]);
                self.skip = usize::try_from(size)
                    .unwrap_or(0)
                    .saturating_sub(self.head_len - 4);
                self.dropping = drop(&self.head);
                if !self.dropping {
                    forward.extend_from_slice(&self.head);
                }
                self.head.clear();
            }
        }
        forward
    }
}

/// A request's head: counts it, and says whether it is swallowed (dropped unforwarded); a request
/// whose answer is to be lost has its correlation id listed in `unanswered`.
fn request_dropped(head: &[u8], requests: &Requests) -> bool {
    let size = i32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let api_key = i16::from_be_bytes([head[4], head[5]]);
    let correlation_id = i32::from_be_bytes([head[8], head[9], head[10], head[11]]);
    let mut counts = requests.counts.lock().unwrap();
    let seen = counts.entry(api_key).or_default();
    seen.count += 1;
    seen.largest = seen.largest.max(usize::try_from(size).unwrap_or(0));
    let dropping = requests.swallow.take(api_key);
    if !dropping && requests.lose.take(api_key) {
        requests.unanswered.lock().unwrap().insert(correlation_id);
    }
    dropping
}

/// A response's head: dropped when its correlation id is listed in `unanswered`.
fn response_dropped(head: &[u8], unanswered: &Mutex<HashSet<i32>>) -> bool {
    let correlation_id = i32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    unanswered.lock().unwrap().remove(&correlation_id)
}
