//! Test helpers: a raw HTTP/1.1 exchange over one TCP connection, so tests see exactly what the
//! app does with the connection (kept alive, closed, reset, refused).

#![allow(dead_code)]

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use costop_traffic::{App, AppHandle, AppSpec, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One answer as read off the wire.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Answer {
    pub fn closes(&self) -> bool {
        self.headers
            .get("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

pub fn spec(ip: &str, workers: usize, service_ms: u64, queue: usize, graceful: bool) -> AppSpec {
    AppSpec {
        addr: format!("{ip}:0").parse().unwrap(),
        workers,
        service_time: Duration::from_millis(service_ms),
        queue,
        graceful,
    }
}

/// Starts an app and makes it ready.
pub fn serving(spec: AppSpec) -> (AppHandle, Arc<Store>) {
    let store = Arc::new(Store::new());
    let app = App::start(spec, store.clone()).unwrap();
    app.set_ready(true).unwrap();
    (app, store)
}

pub async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    TcpStream::connect(addr).await
}

/// Sends a request on `stream` (kept alive) and reads the answer.
pub async fn exchange(
    stream: &mut TcpStream,
    method: &str,
    path: &str,
    id: Option<&str>,
    body: &str,
) -> io::Result<Answer> {
    send(stream, method, path, id, body).await?;
    read_answer(stream).await
}

pub async fn send(
    stream: &mut TcpStream,
    method: &str,
    path: &str,
    id: Option<&str>,
    body: &str,
) -> io::Result<()> {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nhost: test\r\ncontent-length: {}\r\n",
        body.len()
    );
    if let Some(id) = id {
        req.push_str(&format!("x-request-id: {id}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).await
}

pub async fn read_answer(stream: &mut TcpStream) -> io::Result<Answer> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or(io::ErrorKind::InvalidData)?;
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).to_string(),
    })
}

/// Whether a fresh connection to `addr` is refused.
pub async fn refused(addr: SocketAddr) -> bool {
    matches!(connect(addr).await, Err(e) if e.kind() == io::ErrorKind::ConnectionRefused)
}

/// Whether the peer ended the connection: EOF or reset on the next read.
pub async fn closed(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match tokio::time::timeout(Duration::from_secs(2), stream.read(&mut byte)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) | Err(_) => false,
    }
}
