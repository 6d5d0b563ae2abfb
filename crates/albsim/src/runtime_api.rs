//! The Lambda runtime API, served on a loopback port per function, through which the load
//! balancer's invocations reach a real function process started with
//! `AWS_LAMBDA_RUNTIME_API=127.0.0.1:<port>`
//! (<https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>):
//! `GET /2018-06-01/runtime/invocation/next` hands out the next event,
//! `POST /2018-06-01/runtime/invocation/{id}/response` and `…/{id}/error` answer it.
//! Invocations queue while no function process polls. What the Lambda service needs to scale
//! the function's execution environments is observable: invocations in flight
//! ([`RuntimeApi::concurrency`]) and a signal on every new invocation ([`RuntimeApi::demand`]).
//!
//! With a concurrency limit ([`RuntimeApi::limit_concurrency`]) an invocation that finds as many
//! in flight as the limit is throttled at once, not queued: "Concurrency is the number of
//! in-flight requests that your AWS Lambda function is handling at the same time", and "if
//! your function is invoked synchronously and is throttled, Lambda returns a 429 error and
//! the invoking service is responsible for retries"
//! (<https://docs.aws.amazon.com/lambda/latest/dg/lambda-concurrency.html>,
//! <https://docs.aws.amazon.com/lambda/latest/dg/invocation-sync.html>). An invocation counts
//! from the moment it arrives, waiting for an environment included, until it is answered or
//! its caller gives up.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};
use tokio::task::AbortHandle;

use crate::error::AlbError;

const PREFIX: &str = "/2018-06-01/runtime/";

/// Why an invocation gave no response payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvokeError {
    #[error("no function process took the invocation in time")]
    NotPolled,
    #[error("the function did not answer before its timeout")]
    Timeout,
    #[error("the function returned an error: {0}")]
    Function(String),
    #[error("the function's concurrency is in use: throttled (TooManyRequestsException)")]
    Throttled,
}

struct Pending {
    request_id: String,
    event: Bytes,
    picked: oneshot::Sender<()>,
    result: oneshot::Sender<Result<Bytes, InvokeError>>,
}

/// One function's runtime API endpoint.
pub struct RuntimeApi {
    function_arn: String,
    addr: SocketAddr,
    /// The function's configured timeout, in real time.
    timeout: Duration,
    queue: Mutex<VecDeque<Pending>>,
    available: Notify,
    in_flight: Mutex<HashMap<String, oneshot::Sender<Result<Bytes, InvokeError>>>>,
    server: Mutex<Option<AbortHandle>>,
    /// Notified on every queued invocation.
    demand: Notify,
    /// Invocations in flight at most (`usize::MAX`: no limit).
    limit: AtomicUsize,
    /// Invocations in flight now: arrived, not yet answered or given up.
    concurrent: AtomicUsize,
    /// Invocations throttled so far.
    throttled: AtomicUsize,
    /// The most invocations in flight at once so far.
    peak: AtomicUsize,
}

/// One invocation's place in the function's concurrency, given back when it ends.
struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RuntimeApi {
    /// Binds `127.0.0.1:0` and serves the runtime API for `function_arn`.
    pub async fn start(function_arn: String, timeout: Duration) -> Result<Arc<Self>, AlbError> {
        let bind: SocketAddr = ([127, 0, 0, 1], 0).into();
        let listener = TcpListener::bind(bind)
            .await
            .map_err(|source| AlbError::Bind { addr: bind, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| AlbError::Bind { addr: bind, source })?;
        let api = Arc::new(Self {
            function_arn,
            addr,
            timeout,
            queue: Mutex::new(VecDeque::new()),
            available: Notify::new(),
            in_flight: Mutex::new(HashMap::new()),
            server: Mutex::new(None),
            demand: Notify::new(),
            limit: AtomicUsize::new(usize::MAX),
            concurrent: AtomicUsize::new(0),
            throttled: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        });
        let weak = Arc::downgrade(&api);
        let handle = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let Some(api) = weak.upgrade() else { return };
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let api = api.clone();
                        async move { Ok::<_, std::convert::Infallible>(api.handle(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        *lock(&api.server) = Some(handle.abort_handle());
        Ok(api)
    }

    /// The `host:port` to put in `AWS_LAMBDA_RUNTIME_API`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Throttles invocations beyond `limit` in flight (the function's reserved concurrency, or
    /// what the account leaves it).
    pub fn limit_concurrency(&self, limit: usize) {
        self.limit.store(limit.max(1), Ordering::SeqCst);
    }

    /// Invocations in flight now (waiting for an environment, or running).
    pub fn concurrency(&self) -> usize {
        self.concurrent.load(Ordering::SeqCst)
    }

    /// Invocations throttled so far.
    pub fn throttled(&self) -> usize {
        self.throttled.load(Ordering::SeqCst)
    }

    /// The most invocations in flight at once so far: the environments Lambda would have run.
    pub fn peak_concurrency(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    /// A place in the function's concurrency, or `None` when every place is taken.
    fn take_slot(&self) -> Option<Slot<'_>> {
        let limit = self.limit.load(Ordering::SeqCst);
        self.concurrent
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()
            .map(|before| {
                self.peak.fetch_max(before + 1, Ordering::SeqCst);
                Slot(&self.concurrent)
            })
    }

    /// Resolves at the next queued invocation.
    pub async fn demand(&self) {
        self.demand.notified().await
    }

    pub fn stop(&self) {
        if let Some(handle) = lock(&self.server).take() {
            handle.abort();
        }
    }

    /// Queues `event` and waits for the function's answer: at most `wait_for_poll` for a
    /// function process to take it, then at most the function's timeout. Throttled at once when
    /// the function's concurrency is in use.
    pub async fn invoke(
        &self,
        event: Bytes,
        wait_for_poll: Duration,
    ) -> Result<Bytes, InvokeError> {
        let Some(_slot) = self.take_slot() else {
            self.throttled.fetch_add(1, Ordering::SeqCst);
            return Err(InvokeError::Throttled);
        };
        let request_id = new_request_id();
        let (picked_tx, picked_rx) = oneshot::channel();
        let (result_tx, result_rx) = oneshot::channel();
        lock(&self.queue).push_back(Pending {
            request_id: request_id.clone(),
            event,
            picked: picked_tx,
            result: result_tx,
        });
        self.available.notify_one();
        self.demand.notify_waiters();
        match tokio::time::timeout(wait_for_poll, picked_rx).await {
            Ok(Ok(())) => {}
            _ => return Err(InvokeError::NotPolled),
        }
        let outcome = tokio::time::timeout(self.timeout, result_rx).await;
        lock(&self.in_flight).remove(&request_id);
        match outcome {
            Ok(Ok(result)) => result,
            Ok(Err(_)) | Err(_) => Err(InvokeError::Timeout),
        }
    }

    /// The next invocation whose caller still waits, once there is one.
    async fn next(&self) -> Pending {
        loop {
            let notified = self.available.notified();
            {
                let mut queue = lock(&self.queue);
                while let Some(pending) = queue.pop_front() {
                    if pending.picked.is_closed() {
                        continue;
                    }
                    if !queue.is_empty() {
                        self.available.notify_one();
                    }
                    return pending;
                }
            }
            notified.await;
        }
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_string();
        let Some(rest) = path.strip_prefix(PREFIX) else {
            return plain(StatusCode::NOT_FOUND, "unknown path");
        };
        let method = req.method().clone();
        match (method, rest) {
            (Method::GET, "invocation/next") => self.deliver().await,
            (Method::POST, "init/error") => {
                let body = read(req).await;
                tracing::warn!(function = %self.function_arn, error = %String::from_utf8_lossy(&body), "function init error");
                accepted()
            }
            (Method::POST, rest) => {
                let Some(rest) = rest.strip_prefix("invocation/") else {
                    return plain(StatusCode::NOT_FOUND, "unknown path");
                };
                let (id, kind) = match rest.rsplit_once('/') {
                    Some((id, kind @ ("response" | "error"))) => (id.to_string(), kind),
                    _ => return plain(StatusCode::NOT_FOUND, "unknown path"),
                };
                let body = read(req).await;
                let Some(sender) = lock(&self.in_flight).remove(&id) else {
                    return json(
                        StatusCode::BAD_REQUEST,
                        r#"{"errorMessage":"Invalid request ID","errorType":"InvalidRequestID"}"#,
                    );
                };
                let result = if kind == "response" {
                    Ok(body)
                } else {
                    Err(InvokeError::Function(
                        String::from_utf8_lossy(&body).into_owned(),
                    ))
                };
                let _ = sender.send(result);
                accepted()
            }
            _ => plain(StatusCode::NOT_FOUND, "unknown path"),
        }
    }

    async fn deliver(&self) -> Response<Full<Bytes>> {
        loop {
            let pending = self.next().await;
            if pending.picked.send(()).is_err() {
                continue;
            }
            let deadline = SystemTime::now() + self.timeout;
            let deadline_ms = deadline
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or_default();
            lock(&self.in_flight).insert(pending.request_id.clone(), pending.result);
            let response = Response::builder()
                .status(StatusCode::OK)
                .header(http::header::CONTENT_TYPE, "application/json")
                .header("Lambda-Runtime-Aws-Request-Id", &pending.request_id)
                .header("Lambda-Runtime-Deadline-Ms", deadline_ms.to_string())
                .header("Lambda-Runtime-Invoked-Function-Arn", &self.function_arn)
                .header("Lambda-Runtime-Trace-Id", crate::trace_id())
                .body(Full::new(pending.event));
            return response.unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, ""));
        }
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn read(req: Request<Incoming>) -> Bytes {
    req.into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default()
}

fn accepted() -> Response<Full<Bytes>> {
    json(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
}

fn json(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r
}

fn new_request_id() -> String {
    let b: [u8; 16] = rand::random();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        u16::from_be_bytes([b[4], b[5]]),
        u16::from_be_bytes([b[6], b[7]]) & 0x0fff,
        (u16::from_be_bytes([b[8], b[9]]) & 0x3fff) | 0x8000,
        u64::from_be_bytes([0, 0, b[10], b[11], b[12], b[13], b[14], b[15]]),
    )
}
