//! The AWS front: one loopback HTTP endpoint in front of moto. It forwards every request to moto
//! unchanged and streams the answer back, except the calls moto does not implement, which it
//! answers itself from moto's state with AWS's response shapes, recording each for the tests:
//! Auto Scaling's `RecordLifecycleActionHeartbeat` and `CompleteLifecycleAction`
//! ([`lifecycle`]), and ELBv2's `DescribeTargetHealth` from the ALB stand-in's view once one runs
//! ([`target_health`]).
//!
//! Clients reach it through the SDKs' service-specific endpoint variables
//! (`AWS_ENDPOINT_URL_AUTO_SCALING`, see [`crate::sdk`]), so a service is fronted by pointing
//! its variable here while `AWS_ENDPOINT_URL` keeps every other service on moto.
//!
//! ```text
//! SDK client ──▶ front (127.0.0.1:free port) ──▶ moto
//!                  └─ Query API actions moto lacks: answered here, from moto's state
//! ```

pub mod forward;
pub mod lifecycle;
pub mod query;
pub mod target_health;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use tokio::task::JoinHandle;

use crate::error::BedError;
use forward::Forwarder;
use lifecycle::Lifecycle;
pub use lifecycle::{LifecycleAction, LifecycleCall, Refusal};
use query::QueryRequest;
use target_health::TargetHealthView;

/// The largest request body the front reads to look for its own actions (a Query API request is
/// a few hundred bytes; anything larger is moto's).
const BODY_LIMIT: usize = 16 << 20;

/// A running front. Dropping it stops the server.
pub struct AwsFront {
    addr: SocketAddr,
    lifecycle: Arc<Lifecycle>,
    target_health: Arc<TargetHealthView>,
    elbv2_changes: tokio::sync::watch::Receiver<u64>,
    server: JoinHandle<()>,
}

impl std::fmt::Debug for AwsFront {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsFront")
            .field("addr", &self.addr)
            .finish()
    }
}

struct Shared {
    forwarder: Forwarder,
    lifecycle: Arc<Lifecycle>,
    target_health: Arc<TargetHealthView>,
    /// Bumped after every ELBv2 call that may change state (anything but `Describe*`).
    elbv2_changed: tokio::sync::watch::Sender<u64>,
}

impl AwsFront {
    /// Serve on a free loopback port in front of the moto at `moto_url`
    /// (`http://127.0.0.1:PORT`), reading moto's state with `moto_sdk` (an SDK configuration
    /// pointed at moto itself, never at the front).
    pub async fn start(moto_url: &str, moto_sdk: &aws_config::SdkConfig) -> Result<Self, BedError> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|source| BedError::Io {
                what: "bind the AWS front on 127.0.0.1".into(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| BedError::Io {
            what: "read the AWS front's address".into(),
            source,
        })?;
        let lifecycle = Arc::new(Lifecycle::new(aws_sdk_autoscaling::Client::new(moto_sdk)));
        let target_health = Arc::new(TargetHealthView::default());
        let (elbv2_changed, elbv2_changes) = tokio::sync::watch::channel(0);
        let shared = Arc::new(Shared {
            forwarder: Forwarder::new(moto_url)?,
            lifecycle: lifecycle.clone(),
            target_health: target_health.clone(),
            elbv2_changed,
        });
        let app = Router::new().fallback(handle).with_state(shared);
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "the AWS front stopped");
            }
        });
        tracing::info!(%addr, moto = moto_url, "AWS front serving");
        Ok(AwsFront {
            addr,
            lifecycle,
            target_health,
            elbv2_changes,
            server,
        })
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// From now on, `DescribeTargetHealth` of the groups `source` knows is answered from it.
    pub fn answer_target_health(&self, source: target_health::Source) {
        self.target_health.set(source);
    }

    /// Changes whenever an ELBv2 call that may change state went through the front (the ALB
    /// stand-in re-reads moto then).
    pub fn elbv2_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.elbv2_changes.clone()
    }

    /// Every lifecycle call the front answered (accepted or refused), oldest first.
    pub fn lifecycle_calls(&self) -> Vec<LifecycleCall> {
        self.lifecycle.calls()
    }
}

impl Drop for AwsFront {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// One request: the front's own actions are answered here, everything else goes to moto.
async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    if query::signed_for(&request, target_health::ELBV2_SIGNING_NAME) {
        return elbv2(&shared, request).await;
    }
    if !query::may_be_auto_scaling(&request) {
        return shared.forwarder.forward(request).await;
    }
    let (query, request) = match read_query(request).await {
        Ok(read) => read,
        Err(refused) => return refused,
    };
    match query.action().and_then(LifecycleAction::from_name) {
        Some(action) => match shared.lifecycle.answer(action, &query).await {
            Ok(()) => query::success(action.name()),
            Err(refusal) => query::error(&refusal),
        },
        None => shared.forwarder.forward(request).await,
    }
}

/// A Query API request's parameters, which may sit in the body: the body is read, and the
/// request given back as read, to be forwarded unchanged.
async fn read_query(request: Request) -> Result<(QueryRequest, Request), Response> {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, BODY_LIMIT)
        .await
        .map_err(|e| forward::bad_request(&format!("cannot read the request body: {e}")))?;
    let query = QueryRequest::parse(&parts, &body);
    Ok((query, Request::from_parts(parts, Body::from(body))))
}

/// ELBv2: `DescribeTargetHealth` from the ALB stand-in when it knows the group, all else moto.
async fn elbv2(shared: &Shared, request: Request) -> Response {
    let (query, request) = match read_query(request).await {
        Ok(read) => read,
        Err(refused) => return refused,
    };
    if query.action() == Some("DescribeTargetHealth")
        && let Some(answer) = shared.target_health.answer(&query)
    {
        return answer;
    }
    let mutating = !query.action().is_some_and(|a| a.starts_with("Describe"));
    let answer = shared.forwarder.forward(request).await;
    if mutating {
        shared.elbv2_changed.send_modify(|n| *n += 1);
    }
    answer
}
