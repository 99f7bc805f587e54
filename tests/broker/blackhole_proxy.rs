//! A TCP proxy in front of a local broker that can blackhole the link: while blackholed, bytes in both
//! directions are read and dropped and the sockets stay open (no reset, no EOF), as behind a NAT that
//! forgot the connection or a dead host. After [`resume`](BlackholeProxy::resume) new connections work
//! again, while those opened before stay silent forever: a client recovers only by giving up on them.

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicU64, Ordering},
};

use kafka_event_bus::testing::LocalBroker;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream, tcp::OwnedReadHalf, tcp::OwnedWriteHalf},
    task::JoinSet,
};

#[derive(Default)]
struct Link {
    blackholed: AtomicBool,
    /// Bumped on every blackhole and resume: a connection forwards only in the epoch it was opened in.
    epoch: AtomicU64,
}

impl Link {
    fn forwards(&self, born: u64) -> bool {
        !self.blackholed.load(Ordering::SeqCst) && self.epoch.load(Ordering::SeqCst) == born
    }
}

pub(crate) struct BlackholeProxy {
    pub(crate) bootstrap: String,
    _broker: LocalBroker,
    link: Arc<Link>,
    tasks: JoinSet<()>,
}

impl BlackholeProxy {
    pub(crate) async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let broker = tokio::task::spawn_blocking(move || LocalBroker::start_behind(port))
            .await
            .unwrap()
            .unwrap();
        let upstream = format!("127.0.0.1:{}", broker.port());
        let link = Arc::new(Link::default());
        let mut tasks = JoinSet::new();
        let l = Arc::clone(&link);
        tasks.spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let born = l.epoch.load(Ordering::SeqCst);
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                connections.spawn(pump(client_read, server_write, Arc::clone(&l), born));
                connections.spawn(pump(server_read, client_write, Arc::clone(&l), born));
            }
        });
        Self {
            bootstrap: format!("127.0.0.1:{port}"),
            _broker: broker,
            link,
            tasks,
        }
    }

    /// From now on nothing is forwarded on any connection; sockets stay open.
    pub(crate) fn blackhole(&self) {
        self.link.blackholed.store(true, Ordering::SeqCst);
        self.link.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// New connections forward again; the ones opened before stay blackholed.
    pub(crate) fn resume(&self) {
        self.link.epoch.fetch_add(1, Ordering::SeqCst);
        self.link.blackholed.store(false, Ordering::SeqCst);
    }
}

/// Copies `from` to `to` while the link forwards for this connection, and drops the bytes otherwise.
#[expect(
    clippy::disallowed_methods,
    reason = "a byte pump: it forwards bytes, it reads no frames"
)]
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, link: Arc<Link>, born: u64) {
    let mut buffer = vec![0; 64 << 10];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if link.forwards(born) && to.write_all(&buffer[..n]).await.is_err() {
            break;
        }
    }
    if link.forwards(born) {
        let _ = to.shutdown().await;
    } else {
        // A blackholed link tells nothing, not even that the other side closed: hold the socket open.
        std::future::pending::<()>().await;
    }
}

impl Drop for BlackholeProxy {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}
