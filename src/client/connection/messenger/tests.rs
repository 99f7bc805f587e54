//! The messenger against a scripted peer over an in-memory duplex pipe: pipelining, cancellation,
//! poisoning and the handshake, without a broker.

use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use kafka_protocol::{
    messages::{
        ApiKey, ApiVersionsResponse, MetadataRequest, MetadataResponse, api_versions_response::ApiVersion,
    },
    protocol::StrBytes,
};
use tokio::io::AsyncWriteExt;

use super::*;
use crate::client::connection::fake_peer::FakePeer as Peer;

/// Answers the ApiVersions handshake, advertising Metadata 0..=12.
async fn handshake(peer: &mut Peer) {
    let header = peer
        .answer_api_versions(&[(ApiKey::ApiVersions, 3), (ApiKey::Metadata, 12)])
        .await;
    assert_eq!(header.request_api_version, 3);
}

/// A broker address of its own per call: connections to one address share their fate when one of
/// them times out, and tests run side by side.
fn unique_address() -> String {
    static NEXT: AtomicI32 = AtomicI32::new(0);
    format!("peer-{}:9092", NEXT.fetch_add(1, Ordering::Relaxed))
}

async fn connect(timeout: Duration) -> (Messenger, Peer) {
    connect_to(unique_address(), timeout).await
}

async fn connect_to(address: String, timeout: Duration) -> (Messenger, Peer) {
    let (client, server) = tokio::io::duplex(1 << 20);
    let mut peer = Peer { io: server };
    let (messenger, ()) = tokio::join!(
        Messenger::handshake(
            Box::new(client),
            address,
            Some("test".into()),
            timeout,
            timeout,
            1 << 20
        ),
        handshake(&mut peer)
    );
    (messenger.unwrap(), peer)
}

/// A Metadata response that says which request it answers.
fn tagged_metadata(tag: i32) -> MetadataResponse {
    MetadataResponse::default()
        .with_throttle_time_ms(tag)
        .with_cluster_id(Some(StrBytes::from_string(format!("req-{tag}"))))
}

#[tokio::test]
async fn handshake_negotiates_per_api() {
    let (messenger, _peer) = connect(Duration::from_secs(5)).await;
    assert_eq!(messenger.version_for::<MetadataRequest>().unwrap(), 12);
    let err = messenger
        .version_for::<kafka_protocol::messages::FetchRequest>()
        .unwrap_err();
    assert!(matches!(err, Error::Protocol { .. }), "{err}");
    assert!(!err.is_retriable());
}

#[tokio::test]
async fn old_brokers_fall_back_to_api_versions_v0() {
    let (client, server) = tokio::io::duplex(1 << 16);
    let mut peer = Peer { io: server };
    let broker = async {
        // v3 is refused the way Kafka does it: a v0 body with UNSUPPORTED_VERSION.
        let (header, _) = peer.read_request().await.unwrap();
        assert_eq!(header.request_api_version, 3);
        peer.respond(
            header.correlation_id,
            0,
            &ApiVersionsResponse::default().with_error_code(35),
        )
        .await;
        let (header, _) = peer.read_request().await.unwrap();
        assert_eq!(header.request_api_version, 0);
        let body = ApiVersionsResponse::default().with_api_keys(vec![
            ApiVersion::default()
                .with_api_key(3)
                .with_min_version(0)
                .with_max_version(7),
        ]);
        peer.respond(header.correlation_id, 0, &body).await;
    };
    let timeout = Duration::from_secs(5);
    let (messenger, ()) = tokio::join!(
        Messenger::handshake(
            Box::new(client),
            "old:9092".into(),
            None,
            timeout,
            timeout,
            1 << 20
        ),
        broker
    );
    assert_eq!(messenger.unwrap().version_for::<MetadataRequest>().unwrap(), 7);
}

#[tokio::test]
async fn pipelined_responses_reach_their_callers_in_any_order() {
    let (messenger, mut peer) = connect(Duration::from_secs(5)).await;
    const N: usize = 64;
    let broker = async {
        // Read every request before answering any: they are all in flight at once.
        let mut pending = Vec::new();
        for _ in 0..N {
            let (header, mut body) = peer.read_request().await.unwrap();
            let request = <MetadataRequest as kafka_protocol::protocol::Decodable>::decode(
                &mut body,
                header.request_api_version,
            )
            .unwrap();
            let tag: i32 = request.topics.unwrap()[0].name.as_ref().unwrap().parse().unwrap();
            pending.push((header.correlation_id, tag));
        }
        for (id, tag) in pending.into_iter().rev() {
            peer.respond(id, 12, &tagged_metadata(tag)).await;
        }
        peer
    };
    let callers = (0..N as i32).map(|tag| {
        let messenger = &messenger;
        async move {
            let request = MetadataRequest::default().with_topics(Some(vec![
                kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                    .with_name(Some(StrBytes::from_string(tag.to_string()).into())),
            ]));
            let response = messenger.request(&request).await.unwrap();
            assert_eq!(response.throttle_time_ms, tag);
            tag
        }
    });
    let (answered, _peer) = tokio::join!(futures::future::join_all(callers), broker);
    assert_eq!(answered, (0..N as i32).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_timed_out_request_closes_the_connection() {
    let (messenger, mut peer) = connect(Duration::from_millis(100)).await;
    let request = MetadataRequest::default();
    let (slow, timed_out) = tokio::join!(
        messenger.request_with_timeout(&request, Duration::from_secs(30)),
        messenger.request(&request)
    );
    let err = timed_out.unwrap_err();
    assert!(
        matches!(
            err,
            Error::RequestTimeout {
                api: ApiKey::Metadata,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.is_retriable());
    // The other request in flight on the silent link fails with it, and so does every later one.
    let slow = slow.unwrap_err();
    assert!(matches!(slow, Error::RequestTimeout { .. }), "{slow}");
    assert!(messenger.is_poisoned());
    let later = messenger.request(&MetadataRequest::default()).await.unwrap_err();
    assert!(matches!(later, Error::RequestTimeout { .. }), "{later}");
    // The socket is closed: the peer reads the two requests, then end of stream.
    assert!(peer.read_request().await.is_some());
    assert!(peer.read_request().await.is_some());
    let eof = tokio::time::timeout(Duration::from_secs(5), peer.read_request()).await;
    assert!(matches!(eof, Ok(None)), "the client kept the socket open");
}

/// A link that went silent is silent for every connection over it: when a request on one connection
/// times out, the broker's other connections that heard nothing since it was sent are closed at once
/// (requests in flight on them fail, the next one reconnects) instead of each waiting out a timeout of
/// its own. A connection that heard from the broker meanwhile is alive and stays open.
#[tokio::test]
async fn a_timed_out_request_closes_the_brokers_other_silent_connections() {
    let address = unique_address();
    let timeout = Duration::from_millis(200);
    let (idle, _idle_peer) = connect_to(address.clone(), Duration::from_secs(30)).await;
    let (waiting, _waiting_peer) = connect_to(address.clone(), Duration::from_secs(30)).await;
    let (timing_out, _silent_peer) = connect_to(address.clone(), timeout).await;
    let (elsewhere, _elsewhere_peer) = connect(Duration::from_secs(30)).await;
    let request = MetadataRequest::default();
    let in_flight = waiting.request(&request);
    let answered_meanwhile = async {
        tokio::time::sleep(timeout / 2).await;
        connect_to(address.clone(), Duration::from_secs(30)).await
    };
    let (in_flight, timed_out, (alive, _alive_peer)) = tokio::join!(
        tokio::time::timeout(Duration::from_secs(5), in_flight),
        timing_out.request(&request),
        answered_meanwhile
    );
    let timed_out = timed_out.unwrap_err();
    assert!(matches!(timed_out, Error::RequestTimeout { .. }), "{timed_out}");
    let in_flight = in_flight
        .expect("the request in flight on a silent connection failed with the timeout")
        .unwrap_err();
    assert!(in_flight.is_retriable(), "{in_flight}");
    assert!(
        idle.is_poisoned(),
        "an idle connection over the silent link stays open"
    );
    assert!(waiting.is_poisoned());
    assert!(
        !alive.is_poisoned(),
        "a connection that heard from the broker since was closed"
    );
    assert!(
        !elsewhere.is_poisoned(),
        "a connection to another broker was closed"
    );
}

#[tokio::test]
async fn a_response_to_no_request_in_flight_poisons_the_connection() {
    let (messenger, mut peer) = connect(Duration::from_secs(5)).await;
    let broker = async {
        let (header, _) = peer.read_request().await.unwrap();
        // Another request's answer (an id this connection never sent) arrives first.
        peer.respond(header.correlation_id + 1000, 12, &tagged_metadata(9))
            .await;
        peer.respond(header.correlation_id, 12, &tagged_metadata(1)).await;
        peer
    };
    let request = MetadataRequest::default();
    let (result, _peer) = tokio::join!(messenger.request(&request), broker);
    let err = result.unwrap_err();
    assert!(
        matches!(err, Error::UnexpectedCorrelationId { correlation_id, .. } if correlation_id >= 1000),
        "{err}"
    );
    assert!(err.is_retriable());
    assert!(messenger.is_poisoned());
}

#[tokio::test]
async fn a_second_answer_to_one_request_poisons_the_connection() {
    let (messenger, mut peer) = connect(Duration::from_secs(5)).await;
    let request = MetadataRequest::default();
    let broker = async {
        let (header, _) = peer.read_request().await.unwrap();
        peer.respond(header.correlation_id, 12, &tagged_metadata(1)).await;
        peer.respond(header.correlation_id, 12, &tagged_metadata(2)).await;
        header.correlation_id
    };
    let (first, id) = tokio::join!(messenger.request(&request), broker);
    assert_eq!(first.unwrap().throttle_time_ms, 1);
    // The replayed answer must not reach the next caller.
    let second = tokio::time::timeout(Duration::from_secs(5), messenger.request(&request))
        .await
        .unwrap();
    let err = second.unwrap_err();
    assert!(
        matches!(err, Error::UnexpectedCorrelationId { correlation_id, .. } if correlation_id == id),
        "{err}"
    );
    assert!(messenger.is_poisoned());
}

#[tokio::test]
async fn a_response_that_does_not_decode_poisons_the_connection() {
    let (messenger, mut peer) = connect(Duration::from_secs(5)).await;
    let broker = async {
        let (header, _) = peer.read_request().await.unwrap();
        // The right correlation id, then a body cut short.
        let mut frame = BytesMut::new();
        frame.put_i32(6);
        frame.put_i32(header.correlation_id);
        frame.put_u16(0xffff);
        peer.io.write_all(&frame).await.unwrap();
        peer
    };
    let request = MetadataRequest::default();
    let (result, _peer) = tokio::join!(messenger.request(&request), broker);
    let err = result.unwrap_err();
    assert!(matches!(err, Error::Protocol { .. }), "{err}");
    assert!(
        err.is_retriable(),
        "a decode failure is retriable on a new connection"
    );
    assert!(messenger.is_poisoned());
}

#[tokio::test]
async fn a_dropped_caller_does_not_desync_the_stream() {
    let (messenger, mut peer) = connect(Duration::from_secs(5)).await;
    {
        let request = MetadataRequest::default();
        let fut = messenger.request(&request);
        // Poll once so the frame is queued, then drop the caller.
        tokio::select! {
            biased;
            _ = fut => unreachable!("no response was sent"),
            _ = tokio::task::yield_now() => {}
        }
    }
    let (abandoned, _) = peer.read_request().await.unwrap();
    peer.respond(abandoned.correlation_id, 12, &tagged_metadata(1))
        .await;
    let broker = async {
        let (header, _) = peer.read_request().await.unwrap();
        peer.respond(header.correlation_id, 12, &tagged_metadata(7)).await;
    };
    let request = MetadataRequest::default();
    let (response, ()) = tokio::join!(messenger.request(&request), broker);
    assert_eq!(response.unwrap().throttle_time_ms, 7);
}

#[tokio::test]
async fn a_hangup_fails_every_request_in_flight_and_later() {
    let (messenger, mut peer) = connect(Duration::from_secs(30)).await;
    let broker = async {
        for _ in 0..3 {
            peer.read_request().await.unwrap();
        }
        drop(peer); // EOF while three requests wait
    };
    let request = MetadataRequest::default();
    let (a, b, c, ()) = tokio::join!(
        messenger.request(&request),
        messenger.request(&request),
        messenger.request(&request),
        broker
    );
    for result in [a, b, c] {
        let err = result.unwrap_err();
        assert!(matches!(err, Error::Disconnected { .. }), "{err}");
        assert!(err.is_retriable());
    }
    assert!(messenger.is_poisoned());
    let err = messenger.request(&request).await.unwrap_err();
    assert!(matches!(err, Error::Disconnected { .. }), "{err}");
}

#[tokio::test]
async fn a_garbage_frame_size_poisons_with_a_protocol_error() {
    let (messenger, mut peer) = connect(Duration::from_secs(30)).await;
    let broker = async {
        peer.read_request().await.unwrap();
        peer.io.write_all(&(-5i32).to_be_bytes()).await.unwrap();
        peer
    };
    let request = MetadataRequest::default();
    let (result, _peer) = tokio::join!(messenger.request(&request), broker);
    let err = result.unwrap_err();
    assert!(matches!(err, Error::Protocol { .. }), "{err}");
}

#[tokio::test]
async fn oneway_requests_are_written_without_a_waiter() {
    let (messenger, mut peer) = connect(Duration::from_secs(5)).await;
    messenger.send_oneway(&MetadataRequest::default()).await.unwrap();
    let (header, body) = peer.read_request().await.unwrap();
    assert_eq!(header.request_api_key, ApiKey::Metadata as i16);
    assert!(body.remaining() > 0);
    // A broker that answers anyway (Tansu answers acks=0 Produce requests) does not break the stream.
    peer.respond(header.correlation_id, 12, &tagged_metadata(1)).await;
    let broker = async {
        let (header, _) = peer.read_request().await.unwrap();
        peer.respond(header.correlation_id, 12, &tagged_metadata(2)).await;
    };
    let request = MetadataRequest::default();
    let (response, ()) = tokio::join!(messenger.request(&request), broker);
    assert_eq!(response.unwrap().throttle_time_ms, 2);
    assert!(!messenger.is_poisoned());
}

#[tokio::test]
async fn a_response_the_guard_rejects_poisons_the_connection() {
    let (messenger, mut peer) = connect(Duration::from_secs(5)).await;
    let broker = async {
        let (header, _) = peer.read_request().await.unwrap();
        let version = header.request_api_version;
        // The right correlation id, then a broker list claiming 2^28 entries in a few bytes.
        let mut frame = BytesMut::new();
        frame.put_i32(0);
        frame.put_i32(header.correlation_id);
        if version >= 9 {
            frame.put_u8(0); // no tagged fields in the header
        }
        if version >= 3 {
            frame.put_i32(0); // throttle_time_ms
        }
        if version >= 9 {
            frame.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x01]); // compact count 2^28 - 1
        } else {
            frame.put_i32(1 << 28);
        }
        let len = (frame.len() - 4) as i32;
        frame[..4].copy_from_slice(&len.to_be_bytes());
        peer.io.write_all(&frame).await.unwrap();
        peer
    };
    let request = MetadataRequest::default();
    let (result, _peer) = tokio::join!(messenger.request(&request), broker);
    let err = result.unwrap_err();
    assert!(
        matches!(&err, Error::Protocol { source, .. } if matches!(**source, crate::protocol::Error::Malformed { .. })),
        "{err:?}"
    );
    assert!(messenger.is_poisoned(), "the connection is dropped");
}
