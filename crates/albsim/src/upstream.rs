//! The load balancer's side of its connections to targets: dialing with the connection
//! timeout, sending one request, reading the whole response within the idle timeout, and
//! keeping idle connections for reuse as the ALB does ("the load balancer … reuses
//! connections to the targets";
//! <https://docs.aws.amazon.com/elasticloadbalancing/latest/application/edit-load-balancer-attributes.html#connection-idle-timeout>).
//! A failure is classified so the proxy can answer with the status the ALB documents.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Why no complete response came back from a target.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("connecting to the target failed")]
    Connect(#[source] std::io::Error),
    #[error("connecting to the target timed out")]
    ConnectTimeout,
    #[error("the target did not answer within the idle timeout")]
    Timeout,
    #[error("the target closed or reset the connection, or answered malformed HTTP")]
    Broken(#[source] hyper::Error),
    #[error("the HTTP handshake with the target failed")]
    Handshake(#[source] hyper::Error),
}

impl UpstreamError {
    pub fn is_timeout(&self) -> bool {
        matches!(self, UpstreamError::Timeout | UpstreamError::ConnectTimeout)
    }

    /// The access log's `error_reason`-like tag for the failure.
    pub fn tag(&self) -> &'static str {
        match self {
            UpstreamError::Connect(_) => "TargetConnectionError",
            UpstreamError::ConnectTimeout => "TargetConnectionTimeout",
            UpstreamError::Timeout => "TargetResponseTimeout",
            UpstreamError::Broken(e) if e.is_parse() => "TargetResponseMalformed",
            UpstreamError::Broken(_) | UpstreamError::Handshake(_) => "TargetConnectionClosed",
        }
    }
}

type Sender = SendRequest<Full<Bytes>>;

/// Idle connections to targets, kept at most for the load balancer's idle timeout.
#[derive(Default)]
pub struct Pool {
    idle: Mutex<HashMap<SocketAddr, Vec<(Sender, Instant)>>>,
}

impl Pool {
    fn take(&self, addr: SocketAddr, max_idle: Duration) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let list = idle.get_mut(&addr)?;
        while let Some((sender, since)) = list.pop() {
            if !sender.is_closed() && since.elapsed() < max_idle {
                return Some(sender);
            }
        }
        None
    }

    fn put(&self, addr: SocketAddr, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(addr)
            .or_default()
            .push((sender, Instant::now()));
    }

    /// Sends `request` on an idle connection to `addr` or a new one.
    pub async fn send(
        &self,
        addr: SocketAddr,
        request: http::Request<Full<Bytes>>,
        connect_timeout: Duration,
        idle_timeout: Duration,
    ) -> Result<http::Response<Bytes>, UpstreamError> {
        let mut reused = None;
        while let Some(mut sender) = self.take(addr, idle_timeout) {
            // A kept connection is ready once its previous exchange has wound down; one the
            // target closed meanwhile answers an error and is dropped.
            if let Ok(Ok(())) = tokio::time::timeout(idle_timeout, sender.ready()).await {
                reused = Some(sender);
                break;
            }
        }
        let sender = match reused {
            Some(sender) => sender,
            None => connect(addr, connect_timeout).await?,
        };
        let (response, sender) = exchange(sender, request, idle_timeout).await?;
        if let Some(sender) = sender {
            self.put(addr, sender);
        }
        Ok(response)
    }
}

/// One request on a connection of its own, closed afterwards.
pub async fn send_once(
    addr: SocketAddr,
    request: http::Request<Full<Bytes>>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    total: Duration,
) -> Result<http::Response<Bytes>, UpstreamError> {
    let work = async {
        let sender = connect(addr, connect_timeout).await?;
        exchange(sender, request, idle_timeout)
            .await
            .map(|(r, _)| r)
    };
    tokio::time::timeout(total, work)
        .await
        .unwrap_or(Err(UpstreamError::Timeout))
}

async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Sender, UpstreamError> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| UpstreamError::ConnectTimeout)?
        .map_err(UpstreamError::Connect)?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(UpstreamError::Handshake)?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(%addr, error = %e, "target connection ended");
        }
    });
    Ok(sender)
}

/// Sends and reads the whole response; the sender comes back when the connection may be reused.
async fn exchange(
    mut sender: Sender,
    request: http::Request<Full<Bytes>>,
    idle_timeout: Duration,
) -> Result<(http::Response<Bytes>, Option<Sender>), UpstreamError> {
    let response = tokio::time::timeout(idle_timeout, sender.send_request(request))
        .await
        .map_err(|_| UpstreamError::Timeout)?
        .map_err(UpstreamError::Broken)?;
    let (parts, mut body) = response.into_parts();
    let mut buf = BytesMut::new();
    loop {
        match tokio::time::timeout(idle_timeout, body.frame()).await {
            Err(_) => return Err(UpstreamError::Timeout),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(UpstreamError::Broken(e)),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                }
            }
        }
    }
    let reusable = !parts
        .headers
        .get_all(http::header::CONNECTION)
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
    Ok((
        http::Response::from_parts(parts, buf.freeze()),
        reusable.then_some(sender),
    ))
}
