//! A tiny HTTP server on loopback standing in for a service's surviving capacity, as the
//! fallback's upstream in tests: it answers each request with the status its script gives for
//! that request (by arrival number) and keeps every request it saw. Dropping it stops it.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;

/// One request the upstream saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query.
    pub target: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// The status for the `n`-th request (from 0).
pub type Script = Arc<dyn Fn(usize, &Seen) -> u16 + Send + Sync>;

#[derive(Clone)]
struct Shared {
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Mutex<Script>>,
}

/// See the module docs.
pub struct TestUpstream {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl TestUpstream {
    /// Serve on a free loopback port, answering as `script` says.
    pub async fn start(script: impl Fn(usize, &Seen) -> u16 + Send + Sync + 'static) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let shared = Shared {
            seen: Arc::default(),
            script: Arc::new(Mutex::new(Arc::new(script))),
        };
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TestUpstream { url, shared, task }
    }

    /// Answer from now on as `script` says (arrival numbers keep counting).
    pub fn set(&self, script: impl Fn(usize, &Seen) -> u16 + Send + Sync + 'static) {
        *self.shared.script.lock().unwrap() = Arc::new(script);
    }

    /// Every request so far, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }
}

impl Drop for TestUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(State(shared): State<Shared>, request: Request) -> impl IntoResponse {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 2 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let seen = Seen {
        method: parts.method.to_string(),
        target: parts
            .uri
            .path_and_query()
            .map_or("/".into(), |pq| pq.to_string()),
        headers: parts.headers,
        body,
    };
    let status = {
        let script = shared.script.lock().unwrap().clone();
        let mut all = shared.seen.lock().unwrap();
        let status = script(all.len(), &seen);
        all.push(seen);
        status
    };
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        format!("answered {status}"),
    )
}
