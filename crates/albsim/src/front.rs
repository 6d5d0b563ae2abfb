//! The client side of a listener: accepting connections and speaking HTTP/1.1 to clients.
//! A request head that does not parse is answered with the ALB's own 400 page and the
//! connection closed: "The client sent a malformed request that does not meet the HTTP
//! specification" (load-balancer-troubleshooting.html, HTTP 400). The listener goes on serving.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::alb::Shared;

/// The largest request head read before it is judged: ALB limits a request line to 16 K and
/// all headers to 64 K
/// (<https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-limits.html>).
const HEAD_LIMIT: usize = 80 * 1024;

pub async fn accept_loop(shared: Weak<Shared>, listener_port: u16, tcp: TcpListener) {
    loop {
        let (stream, peer) = match tcp.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::debug!(error = %e, "accept failed");
                continue;
            }
        };
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let mut shutdown = shared.shutdown.clone();
            tokio::select! {
                () = serve(shared, listener_port, stream, peer) => {}
                _ = shutdown.wait_for(|stopped| *stopped) => {}
            }
        });
    }
}

async fn serve(shared: Arc<Shared>, listener_port: u16, mut stream: TcpStream, peer: SocketAddr) {
    let idle = shared.idle_timeout();
    let head = match tokio::time::timeout(idle, read_first_head(&mut stream)).await {
        Ok(Ok(Some(head))) => head,
        Ok(Ok(None)) | Ok(Err(_)) | Err(_) => return,
    };
    if !head_parses(&head) {
        tracing::debug!(%peer, "malformed request head");
        crate::proxy::record_bad_request(&shared, listener_port, peer);
        let _ = stream.write_all(&crate::responses::raw_bad_request()).await;
        let _ = stream.shutdown().await;
        return;
    }
    let io = Rewind {
        prefix: head.freeze(),
        inner: stream,
    };
    let service = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        async move {
            Ok::<_, std::convert::Infallible>(
                crate::proxy::handle(&shared, listener_port, peer, req).await,
            )
        }
    });
    let result = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(idle)
        .serve_connection(TokioIo::new(io), service)
        .await;
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "client connection ended");
    }
}

/// Reads until the first request head is complete (or the limit or end of stream).
async fn read_first_head(stream: &mut TcpStream) -> io::Result<Option<BytesMut>> {
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.len() >= HEAD_LIMIT {
            return Ok(Some(buf));
        }
        if stream.read_buf(&mut buf).await? == 0 {
            return Ok((!buf.is_empty()).then_some(buf));
        }
    }
}

fn head_parses(head: &[u8]) -> bool {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => true,
        // A head cut short by the client closing is left to the HTTP layer.
        Ok(httparse::Status::Partial) => head.len() < HEAD_LIMIT,
        Err(_) => false,
    }
}

/// A stream with bytes already read put back in front.
struct Rewind {
    prefix: Bytes,
    inner: TcpStream,
}

impl AsyncRead for Rewind {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.prefix.has_remaining() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
