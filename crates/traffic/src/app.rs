//! The workload each pod runs on the bed: a small HTTP/1 service (reads and writes of items kept
//! in the service's shared [`Store`]) whose lifecycle follows the pod's, driven by the bed.
//!
//! Lifecycle, as the kubelet drives a container
//! (<https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-termination> and
//! <https://kubernetes.io/docs/concepts/containers/container-lifecycle-hooks/>):
//!
//! - [`App::start`] is the container starting: the process reserves its address (bound, not yet
//!   listening, so a connection is refused) and initialises.
//! - [`AppHandle::set_ready`]`(true)` is the process finishing its start-up: it listens and
//!   `/healthz` answers 200, so the pod turns Ready when the readiness probe against `/healthz`
//!   next succeeds. Before it the probe's connection is refused and the pod stays not Ready.
//!   `set_ready(false)` afterwards keeps serving but answers `/healthz` with 503, as an app failing
//!   its readiness probe does.
//! - [`AppHandle::terminate`]`(pre_stop, grace)` is pod deletion: the preStop hook runs first (a
//!   sleep, during which the app serves normally); then SIGTERM. A graceful app closes its
//!   listener (new connections are refused), answers `Connection: close` on kept-alive
//!   connections and closes the idle ones, finishes every request in flight or queued, and exits.
//!   Whatever still runs when the grace period, counted from the start of termination with the
//!   preStop hook included, ends is killed (SIGKILL): its connections are reset. The kubelet's
//!   one-off 2 s extension for a preStop hook that outlives the grace period is not modelled; the
//!   bed may add it to `grace`. A non-graceful app exits at SIGTERM at once, resetting its
//!   connections.
//! - [`AppHandle::kill`] is the node vanishing: every connection reset at once, nothing more
//!   answered.
//!
//! Writes honour `Idempotency-Key`: a write whose key the service applied before is answered
//! with the first write's id and not applied again, so replaying a queued write at least once is
//! safe.
//!
//! Capacity: `workers` requests are served at a time, each taking `service_time`; up to `queue`
//! more wait (first come, first served); beyond that a request is answered 503 at once.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Semaphore, watch};

use crate::store::Store;

/// The largest write body accepted; a workload item, not a file upload.
const MAX_BODY: usize = 64 * 1024;
/// The longest `X-Request-Id` accepted.
const MAX_ID: usize = 128;
/// The header a client names a write's idempotency with.
const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The longest `Idempotency-Key` accepted.
const MAX_KEY: usize = 255;
/// Pending connections the kernel holds before the app accepts them.
const BACKLOG: u32 = 1024;

/// What one pod's app is and how much it can serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSpec {
    /// The loopback address to serve at (port 0 picks a free port; see [`AppHandle::addr`]).
    pub addr: SocketAddr,
    /// Requests served at a time.
    pub workers: usize,
    /// Time one request takes once a worker has it (already scaled to the bed's clock).
    pub service_time: Duration,
    /// Requests that may wait for a worker; beyond them a request is answered 503 at once.
    pub queue: usize,
    /// Whether the app drains at SIGTERM (true) or exits at once (false).
    pub graceful: bool,
}

/// Why the app could not start or change state.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The address is not loopback: the bed serves only on 127.0.0.0/8.
    #[error("the app must serve on a loopback address (127.0.0.0/8), not {addr}")]
    NotLoopback { addr: SocketAddr },
    /// A spec with no workers could never answer.
    #[error("an app needs at least one worker")]
    NoWorkers,
    /// `App::start` was called outside a Tokio runtime.
    #[error("the app must be started inside a Tokio runtime")]
    NoRuntime(#[source] tokio::runtime::TryCurrentError),
    /// The address could not be bound (usually: another app serves there).
    #[error("binding {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    /// Listening on the bound address failed.
    #[error("listening on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    /// The app has been terminated or killed; it cannot become ready again.
    #[error("the app at {addr} is terminating or gone")]
    Gone { addr: SocketAddr },
}

/// How the app's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Exit {
    /// Drained after SIGTERM and exited within the grace period.
    Graceful,
    /// A non-graceful app exited at SIGTERM, resetting its connections.
    AtSigterm,
    /// Still running when the grace period ended: killed, connections reset.
    KilledAtGracePeriod,
    /// The node went away ([`AppHandle::kill`]).
    Killed,
}

/// Where the app is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Started, address bound, not listening: connections are refused.
    Starting,
    /// Listening and serving.
    Serving,
    /// Terminating, in the preStop hook: still serving normally.
    PreStop,
    /// SIGTERM received by a graceful app: listener closed, finishing what it holds.
    Draining,
    /// The process ended.
    Exited(Exit),
}

/// Counters of what the app has done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct AppStats {
    /// Item requests (reads and writes) answered by a worker.
    pub served: u64,
    /// Item requests answered 503 at once because the queue was full.
    pub rejected_503: u64,
    /// Item requests admitted and not yet answered (being served or queued).
    pub in_flight: usize,
}

/// What the connections are told to do; it only moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Signal {
    Run,
    Drain,
    Reset,
}

struct Shared {
    spec: AppSpec,
    addr: SocketAddr,
    store: Arc<Store>,
    runtime: tokio::runtime::Handle,
    /// Bound and not listening until the app is ready.
    socket: Mutex<Option<TcpSocket>>,
    ready: AtomicBool,
    phase: watch::Sender<Phase>,
    signal: watch::Sender<Signal>,
    /// The accept loop plus every open connection; the process has ended when it is 0.
    live: watch::Sender<usize>,
    /// Read by every connection's socket as it closes: set, the close resets the connection.
    reset_on_close: Arc<AtomicBool>,
    exit: OnceLock<Exit>,
    workers: Semaphore,
    admitted: AtomicUsize,
    served: AtomicU64,
    rejected: AtomicU64,
}

/// The app; see the module documentation for its lifecycle.
pub struct App;

impl App {
    /// Starts the app's process: binds `spec.addr` (not yet listening: see
    /// [`AppHandle::set_ready`]). Must be called inside a Tokio runtime, whose tasks then serve.
    pub fn start(spec: AppSpec, store: Arc<Store>) -> Result<AppHandle, AppError> {
        if !spec.addr.ip().is_loopback() || spec.addr.is_ipv6() {
            return Err(AppError::NotLoopback { addr: spec.addr });
        }
        if spec.workers == 0 {
            return Err(AppError::NoWorkers);
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(AppError::NoRuntime)?;
        let bind_err = |source| AppError::Bind {
            addr: spec.addr,
            source,
        };
        let socket = TcpSocket::new_v4().map_err(bind_err)?;
        // A pod replaced at the same address must not wait out TIME_WAIT of its predecessor.
        socket.set_reuseaddr(true).map_err(bind_err)?;
        socket.bind(spec.addr).map_err(bind_err)?;
        let addr = socket.local_addr().map_err(bind_err)?;
        let shared = Arc::new(Shared {
            workers: Semaphore::new(spec.workers),
            spec,
            addr,
            store,
            runtime,
            socket: Mutex::new(Some(socket)),
            ready: AtomicBool::new(false),
            phase: watch::Sender::new(Phase::Starting),
            signal: watch::Sender::new(Signal::Run),
            live: watch::Sender::new(0),
            reset_on_close: Arc::new(AtomicBool::new(false)),
            exit: OnceLock::new(),
            admitted: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        });
        Ok(AppHandle {
            _kill_on_drop: Arc::new(KillOnDrop(shared.clone())),
            shared,
        })
    }
}

/// Drives and observes one app. Clones share the app; when the last clone is dropped the app is
/// killed, so an app never outlives whoever drives it.
#[derive(Clone)]
pub struct AppHandle {
    shared: Arc<Shared>,
    _kill_on_drop: Arc<KillOnDrop>,
}

struct KillOnDrop(Arc<Shared>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.0.reset(Exit::Killed);
    }
}

impl std::fmt::Debug for AppHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppHandle")
            .field("addr", &self.shared.addr)
            .field("phase", &self.phase())
            .finish()
    }
}

impl AppHandle {
    /// The address the app serves at (with the port chosen when the spec said 0).
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// Where the app is in its lifecycle.
    pub fn phase(&self) -> Phase {
        *self.shared.phase.borrow()
    }

    /// `true`: the app has finished starting; it listens (the first call) and `/healthz` answers
    /// 200. `false`: it keeps serving but `/healthz` answers 503.
    pub fn set_ready(&self, ready: bool) -> Result<(), AppError> {
        let shared = &self.shared;
        if !ready {
            shared.ready.store(false, Ordering::SeqCst);
            return Ok(());
        }
        let mut slot = shared.socket.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(socket) = slot.take() {
            if *shared.signal.borrow() != Signal::Run {
                return Err(AppError::Gone { addr: shared.addr });
            }
            let listener = socket.listen(BACKLOG).map_err(|source| AppError::Listen {
                addr: shared.addr,
                source,
            })?;
            shared.live.send_modify(|n| *n += 1);
            shared
                .runtime
                .spawn(accept_loop(self.shared.clone(), listener));
            shared.phase.send_if_modified(|p| {
                let starting = *p == Phase::Starting;
                if starting {
                    *p = Phase::Serving;
                }
                starting
            });
        } else if !matches!(self.phase(), Phase::Serving | Phase::PreStop) {
            return Err(AppError::Gone { addr: shared.addr });
        }
        shared.ready.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Starts the pod's termination (returns at once; [`AppHandle::wait`] tells how it ended):
    /// the preStop sleep, SIGTERM, then the kill when `grace` (counted from now) runs out. A
    /// second call while terminating is ignored.
    pub fn terminate(&self, pre_stop: Duration, grace: Duration) {
        let began = self.shared.phase.send_if_modified(|p| {
            let can = matches!(p, Phase::Starting | Phase::Serving);
            if can {
                *p = Phase::PreStop;
            }
            can
        });
        if began {
            let shared = self.shared.clone();
            self.shared
                .runtime
                .spawn(async move { shared.terminate(pre_stop, grace).await });
        }
    }

    /// The node is gone: every connection reset at once, nothing more answered.
    pub fn kill(&self) {
        self.shared.reset(Exit::Killed);
    }

    /// Waits until the process has ended (every connection closed or reset) and tells how.
    pub async fn wait(&self) -> Exit {
        let mut phase = self.shared.phase.subscribe();
        loop {
            if let Phase::Exited(exit) = *phase.borrow_and_update() {
                return exit;
            }
            // The sender lives in `Shared`, which this handle keeps alive.
            if phase.changed().await.is_err() {
                return self.shared.exit.get().copied().unwrap_or(Exit::Killed);
            }
        }
    }

    /// What the app has served so far.
    pub fn stats(&self) -> AppStats {
        let s = &self.shared;
        AppStats {
            served: s.served.load(Ordering::SeqCst),
            rejected_503: s.rejected.load(Ordering::SeqCst),
            in_flight: s.admitted.load(Ordering::SeqCst),
        }
    }

    /// The store the app writes to.
    pub fn store(&self) -> &Arc<Store> {
        &self.shared.store
    }
}

impl Shared {
    async fn terminate(self: Arc<Self>, pre_stop: Duration, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        let mut signal = self.signal.subscribe();
        // The preStop hook: the app serves normally meanwhile. The grace period runs from the
        // start of termination, so a hook longer than it is cut short by the kill.
        tokio::select! {
            _ = tokio::time::sleep(pre_stop.min(grace)) => {}
            _ = signal.wait_for(|s| *s == Signal::Reset) => return,
        }
        if pre_stop >= grace {
            self.reset(Exit::KilledAtGracePeriod);
            return;
        }
        // SIGTERM.
        if !self.spec.graceful {
            self.reset(Exit::AtSigterm);
            return;
        }
        self.phase.send_if_modified(|p| {
            let pre = *p == Phase::PreStop;
            if pre {
                *p = Phase::Draining;
            }
            pre
        });
        self.signal.send_if_modified(|s| {
            let run = *s == Signal::Run;
            if run {
                *s = Signal::Drain;
            }
            run
        });
        // The bound socket of an app that never listened goes with the process.
        drop(self.socket.lock().unwrap_or_else(|e| e.into_inner()).take());
        let mut live = self.live.subscribe();
        tokio::select! {
            _ = live.wait_for(|n| *n == 0) => self.finish(Exit::Graceful),
            _ = tokio::time::sleep_until(deadline) => self.reset(Exit::KilledAtGracePeriod),
        }
    }

    /// Ends the process abruptly: the listener closes and every connection is reset.
    fn reset(self: &Arc<Self>, exit: Exit) {
        let _ = self.exit.set(exit);
        self.reset_on_close.store(true, Ordering::SeqCst);
        self.signal.send_if_modified(|s| {
            let moved = *s != Signal::Reset;
            *s = Signal::Reset;
            moved
        });
        drop(self.socket.lock().unwrap_or_else(|e| e.into_inner()).take());
        let shared = self.clone();
        // Recording the end waits for the tasks to notice; the runtime may already be gone when
        // the last handle is dropped at shutdown, and then there is nobody left to tell.
        self.runtime.spawn(async move {
            let _ = shared.live.subscribe().wait_for(|n| *n == 0).await;
            shared.finish(exit);
        });
    }

    /// Records the end (the first reason recorded stands).
    fn finish(&self, exit: Exit) {
        let exit = *self.exit.get_or_init(|| exit);
        self.ready.store(false, Ordering::SeqCst);
        self.phase.send_if_modified(|p| {
            let running = !matches!(p, Phase::Exited(_));
            if running {
                *p = Phase::Exited(exit);
            }
            running
        });
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    let mut signal = shared.signal.subscribe();
    loop {
        if *signal.borrow_and_update() != Signal::Run {
            break;
        }
        tokio::select! {
            changed = signal.changed() => if changed.is_err() { break },
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    shared.live.send_modify(|n| *n += 1);
                    tokio::spawn(serve_connection(shared.clone(), stream));
                }
                Err(e) => {
                    // Out of file descriptors or similar: back off rather than spin.
                    tracing::warn!(addr = %shared.addr, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
        }
    }
    // Closing the listener: new connections, and those the kernel held unaccepted, are refused.
    drop(listener);
    shared.live.send_modify(|n| *n -= 1);
}

async fn serve_connection(shared: Arc<Shared>, stream: TcpStream) {
    let io = TokioIo::new(ResettingStream {
        inner: stream,
        reset: shared.reset_on_close.clone(),
    });
    let svc_shared = shared.clone();
    let service = service_fn(move |req| {
        let shared = svc_shared.clone();
        async move { Ok::<_, Infallible>(handle(&shared, req).await) }
    });
    // Boxed so it can be dropped (closing or resetting the socket) before the count goes down.
    let mut conn = Box::pin(
        http1::Builder::new()
            .timer(TokioTimer::new())
            .serve_connection(io, service),
    );
    let mut signal = shared.signal.subscribe();
    signal.mark_changed();
    loop {
        tokio::select! {
            _ = conn.as_mut() => break,
            changed = signal.changed() => {
                if changed.is_err() {
                    // Nobody can signal any more: let the connection run its course.
                    let _ = conn.as_mut().await;
                    break;
                }
                match *signal.borrow_and_update() {
                    Signal::Run => {}
                    // Finishes the request in progress (answered `Connection: close`) and closes
                    // an idle kept-alive connection. The signal only moves forward, so this runs
                    // once.
                    Signal::Drain => conn.as_mut().graceful_shutdown(),
                    // Dropping the connection drops its socket, which the reset flag turns into
                    // a reset; a request being served is abandoned unanswered.
                    Signal::Reset => break,
                }
            }
        }
    }
    drop(conn);
    shared.live.send_modify(|n| *n -= 1);
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let mut response = route(shared, req).await;
    if *shared.signal.borrow() != Signal::Run {
        // After SIGTERM a kept-alive client must open its next request elsewhere.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

async fn route(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    if path == "/healthz" {
        if req.method() != Method::GET {
            return text(StatusCode::METHOD_NOT_ALLOWED, "GET only");
        }
        let serving = matches!(*shared.phase.borrow(), Phase::Serving | Phase::PreStop);
        return if serving && shared.ready.load(Ordering::SeqCst) {
            text(StatusCode::OK, "ok")
        } else {
            text(StatusCode::SERVICE_UNAVAILABLE, "not ready")
        };
    }
    let Some(key) = path.strip_prefix("/items/") else {
        return text(StatusCode::NOT_FOUND, "no such path");
    };
    if key.is_empty() || key.contains('/') {
        return text(StatusCode::NOT_FOUND, "no such item path");
    }
    match *req.method() {
        Method::GET => {
            let Some(_admitted) = admit(shared) else {
                return text(StatusCode::SERVICE_UNAVAILABLE, "queue full");
            };
            work(shared).await;
            shared.served.fetch_add(1, Ordering::SeqCst);
            match shared.store.latest(&path) {
                Some(write) => {
                    let mut r = Response::new(Full::new(write.body));
                    if let Ok(v) = HeaderValue::from_str(&write.id) {
                        r.headers_mut().insert("x-request-id", v);
                    }
                    r
                }
                None => text(StatusCode::NOT_FOUND, "no such item"),
            }
        }
        Method::POST => {
            let id = match request_id(&req) {
                Ok(id) => id,
                Err(why) => return text(StatusCode::BAD_REQUEST, why),
            };
            let key = match idempotency_key(&req) {
                Ok(key) => key,
                Err(why) => return text(StatusCode::BAD_REQUEST, why),
            };
            let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
                Ok(body) => body.to_bytes(),
                Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                    return text(StatusCode::PAYLOAD_TOO_LARGE, "body too large");
                }
                Err(_) => return text(StatusCode::BAD_REQUEST, "unreadable body"),
            };
            let Some(_admitted) = admit(shared) else {
                return text(StatusCode::SERVICE_UNAVAILABLE, "queue full");
            };
            work(shared).await;
            // Stored before the acknowledgement: an acknowledged write is always in the store.
            let id = shared
                .store
                .put_keyed(&id, key.as_deref(), &path, body)
                .await;
            shared.served.fetch_add(1, Ordering::SeqCst);
            let mut r = text(StatusCode::CREATED, &id);
            if let Ok(v) = HeaderValue::from_str(&id) {
                r.headers_mut().insert("x-request-id", v);
            }
            r
        }
        _ => text(StatusCode::METHOD_NOT_ALLOWED, "GET or POST only"),
    }
}

/// The request's write id: present, short, printable ASCII.
fn request_id(req: &Request<Incoming>) -> Result<String, &'static str> {
    let value = req
        .headers()
        .get("x-request-id")
        .ok_or("a write needs an X-Request-Id header")?;
    let id = value
        .to_str()
        .map_err(|_| "X-Request-Id must be printable ASCII")?;
    if id.is_empty() || id.len() > MAX_ID || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("X-Request-Id must be 1 to 128 printable ASCII characters");
    }
    Ok(id.to_owned())
}

/// The request's `Idempotency-Key`, if it has one: short, printable ASCII.
fn idempotency_key(req: &Request<Incoming>) -> Result<Option<String>, &'static str> {
    let Some(value) = req.headers().get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(k) if !k.is_empty() && k.len() <= MAX_KEY && k.bytes().all(|b| b.is_ascii_graphic()) => {
            Ok(Some(k.to_owned()))
        }
        _ => Err("Idempotency-Key must be 1 to 255 printable ASCII characters"),
    }
}

/// A place among the admitted requests (served or queued), held until the answer; `None` when
/// the queue is full.
fn admit(shared: &Shared) -> Option<Admitted<'_>> {
    let capacity = shared.spec.workers + shared.spec.queue;
    if shared.admitted.fetch_add(1, Ordering::SeqCst) >= capacity {
        shared.admitted.fetch_sub(1, Ordering::SeqCst);
        shared.rejected.fetch_add(1, Ordering::SeqCst);
        return None;
    }
    Some(Admitted(&shared.admitted))
}

/// Released on drop, so a request abandoned by a reset leaves the count right.
struct Admitted<'a>(&'a AtomicUsize);

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Waits for a worker (first come, first served), then takes the service time.
async fn work(shared: &Shared) {
    // The semaphore is never closed, so acquiring only waits.
    let _worker = shared.workers.acquire().await;
    tokio::time::sleep(shared.spec.service_time).await;
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::copy_from_slice(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// A served connection's socket. When the app is killed, closing it sends a reset (`SO_LINGER`
/// 0) instead of the orderly FIN, as the peer of a vanished process or node sees.
struct ResettingStream {
    inner: TcpStream,
    reset: Arc<AtomicBool>,
}

impl Drop for ResettingStream {
    fn drop(&mut self) {
        if self.reset.load(Ordering::SeqCst) {
            let _ = self.inner.set_zero_linger();
        }
    }
}

impl AsyncRead for ResettingStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResettingStream {
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

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
