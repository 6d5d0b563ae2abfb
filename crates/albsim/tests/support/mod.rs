//! Test targets (HTTP servers and misbehaving sockets on loopback), a small HTTP client and
//! configuration helpers. Every server is stopped when its handle drops.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use albsim::{
    Action, Alb, AlbConfig, AlbOptions, HealthCheck, HealthState, Listener, Resolver, Target,
    TargetGroup, TargetType,
};
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::AbortHandle;

/// Simulated seconds per real second in tests: 1 simulated second is 50 ms.
pub const SCALE: f64 = 20.0;

/// An HTTP target: `/health` answers `health_status` (after `health_delay`), `/hold` waits for
/// `release()`, `/slow` sleeps `slow`, anything else answers the target's name.
pub struct TestTarget {
    pub name: String,
    pub addr: SocketAddr,
    pub served: Arc<AtomicUsize>,
    pub health_status: Arc<AtomicU16>,
    pub health_delay_ms: Arc<AtomicU64>,
    release: watch::Sender<bool>,
    task: AbortHandle,
}

impl TestTarget {
    pub async fn start(name: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let served = Arc::new(AtomicUsize::new(0));
        let health_status = Arc::new(AtomicU16::new(200));
        let health_delay_ms = Arc::new(AtomicU64::new(0));
        let (release, release_rx) = watch::channel(false);
        let (n, s, hs, hd) = (
            name.to_string(),
            served.clone(),
            health_status.clone(),
            health_delay_ms.clone(),
        );
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (n, s, hs, hd, rx) = (
                    n.clone(),
                    s.clone(),
                    hs.clone(),
                    hd.clone(),
                    release_rx.clone(),
                );
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let (n, s, hs, hd, mut rx) =
                                (n.clone(), s.clone(), hs.clone(), hd.clone(), rx.clone());
                            async move {
                                let path = req.uri().path().to_string();
                                let (status, body) = match path.as_str() {
                                    "/health" => {
                                        let delay = hd.load(Ordering::SeqCst);
                                        if delay > 0 {
                                            tokio::time::sleep(Duration::from_millis(delay)).await;
                                        }
                                        (hs.load(Ordering::SeqCst), "health".to_string())
                                    }
                                    "/hold" => {
                                        s.fetch_add(1, Ordering::SeqCst);
                                        let _ = rx.wait_for(|r| *r).await;
                                        (200, format!("{n} held"))
                                    }
                                    "/slow" => {
                                        s.fetch_add(1, Ordering::SeqCst);
                                        tokio::time::sleep(Duration::from_secs(2)).await;
                                        (200, n.clone())
                                    }
                                    _ => {
                                        s.fetch_add(1, Ordering::SeqCst);
                                        (200, n.clone())
                                    }
                                };
                                let mut r = http::Response::new(Full::new(Bytes::from(body)));
                                *r.status_mut() =
                                    StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                                Ok::<_, std::convert::Infallible>(r)
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            name: name.to_string(),
            addr,
            served,
            health_status,
            health_delay_ms,
            release,
            task: task.abort_handle(),
        }
    }

    pub fn served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }

    pub fn set_health(&self, status: u16) {
        self.health_status.store(status, Ordering::SeqCst);
    }

    pub fn release(&self) {
        let _ = self.release.send(true);
    }
}

impl Drop for TestTarget {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A socket that misbehaves after reading the request.
pub enum Misbehaviour {
    /// Closes with a RST.
    Reset,
    /// Closes with a FIN, no response.
    Close,
    /// Answers bytes that are not HTTP.
    Garbage,
}

pub struct BadTarget {
    pub addr: SocketAddr,
    task: AbortHandle,
}

impl BadTarget {
    pub async fn start(how: Misbehaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let how = Arc::new(how);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                let how = how.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = stream.read(&mut buf).await;
                    match *how {
                        Misbehaviour::Reset => {
                            #[allow(deprecated)]
                            let _ = stream.set_linger(Some(Duration::ZERO));
                            drop(stream);
                        }
                        Misbehaviour::Close => {
                            let _ = stream.shutdown().await;
                        }
                        Misbehaviour::Garbage => {
                            let _ = stream.write_all(b"THIS IS NOT HTTP\r\n\r\n").await;
                            let _ = stream.shutdown().await;
                        }
                    }
                });
            }
        });
        Self {
            addr,
            task: task.abort_handle(),
        }
    }
}

impl Drop for BadTarget {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A loopback port nothing listens on.
pub async fn refusing_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    drop(l);
    addr
}

/// A resolver from target id to address.
pub fn resolver(map: &[(&str, SocketAddr)]) -> Resolver {
    let map: HashMap<String, SocketAddr> = map.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    let map = Arc::new(Mutex::new(map));
    Arc::new(move |_g: &TargetGroup, t: &Target| map.lock().ok()?.get(&t.id).copied())
}

/// Fast options: scaled time, a propagation delay of 2 simulated seconds (100 ms).
pub fn options(resolver: Resolver) -> AlbOptions {
    let mut o = AlbOptions::new(resolver);
    o.time_scale = SCALE;
    o.propagation_delay = Duration::from_secs(2);
    o
}

/// An ip target group on the traffic port with fast health checks on `/health`.
pub fn ip_group(arn: &str, targets: &[&str]) -> TargetGroup {
    let mut tg = TargetGroup::new(arn, TargetType::Ip, Some(8080));
    tg.health_check = HealthCheck {
        path: Some("/health".into()),
        interval_seconds: Some(1),
        timeout_seconds: Some(1),
        healthy_threshold: Some(2),
        unhealthy_threshold: Some(2),
        ..HealthCheck::default()
    };
    tg.attributes.deregistration_delay_seconds = 10;
    tg.targets = targets.iter().map(|id| Target::new(*id, None)).collect();
    tg
}

/// One listener on ALB port 80 with the given default action.
pub fn config(groups: Vec<TargetGroup>, default: Action) -> AlbConfig {
    AlbConfig {
        listeners: vec![Listener {
            port: 80,
            rules: vec![],
            default_actions: vec![default],
        }],
        target_groups: groups,
        attributes: Default::default(),
    }
}

pub fn addr(alb: &Alb) -> SocketAddr {
    alb.local_addr(80).expect("listener 80")
}

/// One request on a connection of its own.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> (StatusCode, HeaderMap, Bytes) {
    let stream = TcpStream::connect(addr).await.expect("connect to the alb");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "app.example.com");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let response = sender
        .send_request(req.body(Full::new(body)).expect("request"))
        .await
        .expect("a response");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, headers, body)
}

pub async fn get(addr: SocketAddr, path: &str) -> (StatusCode, Bytes) {
    let (s, _, b) = send(addr, "GET", path, &[], Bytes::new()).await;
    (s, b)
}

/// A keep-alive client for many requests.
pub struct Client(hyper::client::conn::http1::SendRequest<Full<Bytes>>);

impl Client {
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        Self(sender)
    }

    pub async fn get(&mut self, path: &str) -> (StatusCode, Bytes) {
        self.0.ready().await.expect("ready");
        let req = Request::get(path)
            .header("host", "app.example.com")
            .body(Full::new(Bytes::new()))
            .expect("request");
        let r = self.0.send_request(req).await.expect("response");
        let status = r.status();
        (
            status,
            r.into_body().collect().await.expect("body").to_bytes(),
        )
    }
}

/// Polls `cond` every 10 ms for up to `secs` real seconds.
pub async fn eventually(secs: f64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
    while tokio::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

/// The state of target `id` in `arn`, if listed.
pub fn state_of(alb: &Alb, arn: &str, id: &str) -> Option<(HealthState, Option<String>)> {
    alb.target_health(arn)?
        .into_iter()
        .find(|d| d.target.id == id)
        .map(|d| {
            let reason = d.target_health.reason.map(|r| {
                serde_json::to_value(r)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default()
            });
            (d.target_health.state, reason)
        })
}

/// Waits until every listed target of `arn` is healthy.
pub async fn all_healthy(alb: &Alb, arn: &str, ids: &[&str]) {
    let ok = eventually(5.0, || {
        ids.iter()
            .all(|id| matches!(state_of(alb, arn, id), Some((HealthState::Healthy, _))))
    })
    .await;
    assert!(
        ok,
        "targets of {arn} never became healthy: {:?}",
        alb.target_health(arn)
    );
}
