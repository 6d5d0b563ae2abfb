//! A tiny HTTP server on loopback standing in for a service's surviving capacity, as the
//! fallback's upstream in tests: it answers each request with the status its script gives for
//! that request (by arrival number) and keeps every request it saw, optionally after a delay
//! (a slow service), counting how many it held at once. Dropping it stops it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    delay: Arc<Mutex<Duration>>,
    held: Arc<Mutex<Held>>,
}

/// Requests being answered: now and at most, in all and per path.
#[derive(Debug, Default, Clone)]
pub struct Held {
    now: usize,
    now_on: BTreeMap<String, usize>,
    /// The most held at once.
    pub most: usize,
    /// The most held at once on one path (query left out).
    pub most_on: BTreeMap<String, usize>,
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
            delay: Arc::default(),
            held: Arc::default(),
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

    /// Hold each request this long before answering it.
    pub fn set_delay(&self, delay: Duration) {
        *self.shared.delay.lock().unwrap() = delay;
    }

    /// How many requests were held at once, in all and per path.
    pub fn held(&self) -> Held {
        self.shared.held.lock().unwrap().clone()
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
    let path = parts.uri.path().to_owned();
    {
        let mut h = shared.held.lock().unwrap();
        h.now += 1;
        h.most = h.most.max(h.now);
        let on = h.now_on.entry(path.clone()).or_default();
        *on += 1;
        let on = *on;
        let most = h.most_on.entry(path.clone()).or_default();
        *most = (*most).max(on);
    }
    let delay = *shared.delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    {
        let mut h = shared.held.lock().unwrap();
        h.now -= 1;
        if let Some(on) = h.now_on.get_mut(&path) {
            *on -= 1;
        }
    }
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
