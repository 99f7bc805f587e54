//! A TCP proxy in front of a local broker that can cut every connection on demand: the fault injector
//! for "connection lost mid-stream" tests. The broker advertises the proxy's port, so every connection
//! the client opens (bootstrap and leaders) goes through it.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use kafka_event_bus::testing::LocalBroker;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    task::AbortHandle,
};

pub(crate) struct FaultyBroker {
    pub(crate) bootstrap: String,
    pub(crate) broker: LocalBroker,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
    /// While set, what clients send is held in the proxy (a `cut` then drops it unsent).
    frozen: Arc<AtomicBool>,
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
        let frozen: Arc<AtomicBool> = Arc::default();
        let hold = Arc::clone(&frozen);
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let upstream = upstream.clone();
                let hold = Arc::clone(&hold);
                let task = tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let (mut client_read, mut client_write) = client.split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let up = async {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            #[allow(
                                clippy::disallowed_methods,
                                reason = "a proxy forwards bytes as they come, frames or not"
                            )]
                            let n = client_read.read(&mut buf).await?;
                            if n == 0 {
                                return Ok::<(), std::io::Error>(());
                            }
                            while hold.load(Ordering::Acquire) {
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                            server_write.write_all(&buf[..n]).await?;
                        }
                    };
                    let down = tokio::io::copy(&mut server_read, &mut client_write);
                    tokio::select! {
                        _ = up => {}
                        _ = down => {}
                    }
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
            frozen,
        }
    }

    /// Holds (or, with `false`, forwards again) what clients send: requests sent meanwhile reach the
    /// broker only if the connection is not [`cut`](Self::cut) first.
    pub(crate) fn freeze(&self, on: bool) {
        self.frozen.store(on, Ordering::Release);
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
