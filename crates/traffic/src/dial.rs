//! The dial guard: the only way the bed opens a TCP connection. Cluster addresses are 10.x (pods
//! and nodes in kubesim); the bed serves each one at the loopback address with the same last three
//! octets (10.a.b.c at 127.a.b.c: Linux answers the whole of 127.0.0.0/8 on `lo`), so no packet
//! ever leaves the machine. Any other destination is refused before a socket is created.

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// A destination outside the bed: neither a cluster address (10.0.0.0/8) nor loopback
/// (127.0.0.0/8).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refusing to dial {addr}: {reason}")]
pub struct DialRefused {
    /// The address that was asked for.
    pub addr: IpAddr,
    /// Why it is outside the bed.
    pub reason: &'static str,
}

/// Why [`connect`] or the [`LoopbackConnector`] opened no connection.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// The destination is outside the bed; no socket was created.
    #[error(transparent)]
    Refused(#[from] DialRefused),
    /// The URI names no IP address (the bed has no DNS: every destination is an address literal).
    #[error("refusing to dial {uri}: the host is not an IP address literal")]
    NotAnAddress { uri: String },
    /// The URI's scheme is not `http` (the bed serves plain HTTP/1 only).
    #[error("refusing to dial {uri}: only http:// is served on the bed")]
    Scheme { uri: String },
    /// The loopback address was dialled and the connection failed (usually refused: nothing
    /// listens there).
    #[error("connecting to {addr} (dialled at {dialled})")]
    Connect {
        addr: SocketAddr,
        dialled: SocketAddr,
        #[source]
        source: io::Error,
    },
}

/// Maps a bed address to the loopback address it is served at: 10.a.b.c becomes 127.a.b.c,
/// 127.0.0.0/8 passes through, an IPv4-mapped IPv6 address (::ffff:a.b.c.d) is judged as its IPv4
/// address, and anything else is refused.
pub fn to_loopback(addr: IpAddr) -> Result<Ipv4Addr, DialRefused> {
    let v4 = match addr {
        IpAddr::V4(v4) => v4,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4,
            None => {
                return Err(DialRefused {
                    addr,
                    reason: "the bed dials IPv4 loopback only",
                });
            }
        },
    };
    match v4.octets() {
        [10, b, c, d] => Ok(Ipv4Addr::new(127, b, c, d)),
        [127, ..] => Ok(v4),
        _ => Err(DialRefused {
            addr,
            reason: "neither a cluster address (10.0.0.0/8) nor loopback (127.0.0.0/8)",
        }),
    }
}

/// Maps a socket address with [`to_loopback`], keeping the port.
pub fn to_loopback_socket(addr: SocketAddr) -> Result<SocketAddr, DialRefused> {
    Ok(SocketAddr::new(
        IpAddr::V4(to_loopback(addr.ip())?),
        addr.port(),
    ))
}

/// Opens a TCP connection to `addr` after mapping it with [`to_loopback`]; a refused destination
/// fails before any socket exists.
pub async fn connect(addr: SocketAddr) -> Result<TcpStream, DialError> {
    let dialled = to_loopback_socket(addr)?;
    let stream = TcpStream::connect(dialled)
        .await
        .map_err(|source| DialError::Connect {
            addr,
            dialled,
            source,
        })?;
    // Requests are small; waiting for Nagle would add latency the measurement would blame on the
    // interruption.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// The socket address an `http://` URI names, before mapping. Only IP literals are accepted.
pub fn uri_addr(uri: &Uri) -> Result<SocketAddr, DialError> {
    if uri.scheme_str() != Some("http") {
        return Err(DialError::Scheme {
            uri: uri.to_string(),
        });
    }
    let host = uri.host().ok_or_else(|| DialError::NotAnAddress {
        uri: uri.to_string(),
    })?;
    let literal = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let ip: IpAddr = literal.parse().map_err(|_| DialError::NotAnAddress {
        uri: uri.to_string(),
    })?;
    Ok(SocketAddr::new(ip, uri.port_u16().unwrap_or(80)))
}

/// A hyper-util client connector that dials through [`connect`], so a
/// `hyper_util::client::legacy::Client` built on it reaches only 127.0.0.0/8.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoopbackConnector;

impl tower_service::Service<Uri> for LoopbackConnector {
    type Response = TokioIo<TcpStream>;
    type Error = DialError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        Box::pin(async move {
            let addr = uri_addr(&uri)?;
            Ok(TokioIo::new(connect(addr).await?))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    #[test]
    fn a_cluster_address_maps_to_the_loopback_address_with_the_same_last_octets() {
        let addr: SocketAddr = "10.64.0.2:8080".parse().unwrap();
        assert_eq!(
            to_loopback_socket(addr).unwrap(),
            "127.64.0.2:8080".parse::<SocketAddr>().unwrap()
        );
    }

    #[test]
    fn a_loopback_address_passes_through_unchanged() {
        let ip = Ipv4Addr::new(127, 3, 4, 5);
        assert_eq!(to_loopback(IpAddr::V4(ip)).unwrap(), ip);
    }

    #[test]
    fn private_and_public_addresses_are_refused_naming_the_address() {
        for raw in [
            "192.168.1.1",
            "8.8.8.8",
            "172.16.0.1",
            "0.0.0.0",
            "11.0.0.1",
        ] {
            let ip: IpAddr = raw.parse().unwrap();
            let err = to_loopback(ip).unwrap_err();
            assert_eq!(err.addr, ip);
            assert!(err.to_string().contains(raw), "{err}");
        }
    }

    #[test]
    fn ipv6_is_refused_unless_it_maps_an_ipv4_bed_address() {
        assert!(to_loopback(IpAddr::V6(Ipv6Addr::LOCALHOST)).is_err());
        let elsewhere: IpAddr = "::ffff:8.8.8.8".parse().unwrap();
        assert_eq!(to_loopback(elsewhere).unwrap_err().addr, elsewhere);
        let pod: IpAddr = "::ffff:10.64.0.2".parse().unwrap();
        assert_eq!(to_loopback(pod).unwrap(), Ipv4Addr::new(127, 64, 0, 2));
    }

    #[test]
    fn a_uri_must_be_http_with_an_address_literal() {
        let ok: Uri = "http://10.1.2.3:81/x".parse().unwrap();
        assert_eq!(
            uri_addr(&ok).unwrap(),
            "10.1.2.3:81".parse::<SocketAddr>().unwrap()
        );
        let default_port: Uri = "http://127.0.0.1/".parse().unwrap();
        assert_eq!(uri_addr(&default_port).unwrap().port(), 80);
        let name: Uri = "http://example.com/".parse().unwrap();
        assert!(matches!(
            uri_addr(&name),
            Err(DialError::NotAnAddress { .. })
        ));
        let tls: Uri = "https://127.0.0.1/".parse().unwrap();
        assert!(matches!(uri_addr(&tls), Err(DialError::Scheme { .. })));
    }
}
