//! The dial guard against real sockets: a cluster address is dialled at its loopback twin, and a
//! refused destination creates no socket at all.

use std::net::SocketAddr;

use costop_traffic::{DialError, connect};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Sockets and other descriptors this process holds.
fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[tokio::test]
async fn a_server_bound_on_127_64_0_2_answers_a_dial_to_10_64_0_2() {
    let listener = TcpListener::bind("127.64.0.2:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (mut s, peer) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await.unwrap();
        s.write_all(b"pong").await.unwrap();
        (buf, peer)
    });
    let cluster: SocketAddr = format!("10.64.0.2:{port}").parse().unwrap();
    let mut stream = connect(cluster).await.unwrap();
    assert_eq!(
        stream.peer_addr().unwrap(),
        format!("127.64.0.2:{port}").parse::<SocketAddr>().unwrap()
    );
    stream.write_all(b"ping").await.unwrap();
    let mut answer = [0u8; 4];
    stream.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"pong");
    let (got, peer) = server.await.unwrap();
    assert_eq!(&got, b"ping");
    assert!(peer.ip().is_loopback());
}

#[tokio::test]
async fn refused_destinations_fail_without_creating_a_socket() {
    // One test per process under nextest, and a current-thread runtime: nothing else opens
    // descriptors while this runs.
    let before = open_descriptors();
    for raw in [
        "192.168.1.1:80",
        "8.8.8.8:53",
        "[::1]:80",
        "[::ffff:8.8.8.8]:80",
        "[2001:db8::1]:80",
    ] {
        let addr: SocketAddr = raw.parse().unwrap();
        let err = connect(addr).await.unwrap_err();
        match &err {
            DialError::Refused(refused) => assert_eq!(refused.addr, addr.ip()),
            other => panic!("{raw}: expected a refusal, got {other}"),
        }
        assert!(err.to_string().contains(&addr.ip().to_string()), "{err}");
    }
    assert_eq!(open_descriptors(), before);
}

#[tokio::test]
async fn a_cluster_address_with_nothing_listening_is_a_connect_error_naming_both_addresses() {
    // Bind then drop to find a port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.64.0.3:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = connect(format!("10.64.0.3:{port}").parse().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, DialError::Connect { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("10.64.0.3") && text.contains("127.64.0.3"),
        "{text}"
    );
}
