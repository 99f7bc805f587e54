//! A TCP proxy in front of a local broker that can cut every connection on demand: the fault injector
//! for "connection lost mid-stream" tests. The broker advertises the proxy's port, so every connection
//! the client opens (bootstrap and leaders) goes through it.

use std::sync::{Arc, Mutex};

use kafka_event_bus::testing::LocalBroker;
use tokio::{net::TcpListener, task::AbortHandle};

pub(crate) struct FaultyBroker {
    pub(crate) bootstrap: String,
    pub(crate) broker: LocalBroker,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
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
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
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
        }
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
