//! The load generator: an open-loop load (each request leaves at its scheduled time whatever
//! happened to the earlier ones, so a slow or dying server does not slow the offered load) of
//! reads and writes against one base URL, dialled through the [`dial`] guard; one
//! [`Record`] per request; [`Summary`] figures over any time window; and the check that every
//! acknowledged write is in the service's [`Store`].

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::dial::{self, DialError, LoopbackConnector};
use crate::store::Store;

/// More requests than this in one run is a mistake in the spec, not a load test of this machine.
const MAX_REQUESTS: u64 = 1_000_000;

/// What load to offer.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadSpec {
    /// `http://` and an address literal (a cluster 10.x address or loopback), e.g.
    /// `http://10.64.0.2:8080`. Items are under `{base_url}/items/{key}`.
    pub base_url: String,
    /// Requests per second offered, on schedule.
    pub rate: f64,
    /// How long to offer it; `rate × duration` requests are scheduled.
    pub duration: Duration,
    /// Share of requests that are writes (0.0 to 1.0); the rest are reads.
    pub write_ratio: f64,
    /// Items are keys `k0 … k{keys-1}`, chosen uniformly.
    pub keys: usize,
    /// A request not answered in full by then is recorded as a timeout.
    pub timeout: Duration,
    /// At most this many requests outstanding; a request due while that many are is not sent and
    /// is recorded as dropped by the client.
    pub max_in_flight: usize,
    /// Size of each write's body.
    pub body_bytes: usize,
    /// Seeds the choice of kinds and keys, so a run's request sequence can be repeated.
    pub seed: u64,
}

impl LoadSpec {
    /// A load of `rate` requests per second for `duration` against `base_url`, with a quarter of
    /// writes over 16 keys, a 2 s timeout, at most 256 outstanding and 64-byte bodies.
    pub fn new(base_url: impl Into<String>, rate: f64, duration: Duration) -> Self {
        Self {
            base_url: base_url.into(),
            rate,
            duration,
            write_ratio: 0.25,
            keys: 16,
            timeout: Duration::from_secs(2),
            max_in_flight: 256,
            body_bytes: 64,
            seed: 0,
        }
    }
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The base URL does not parse.
    #[error("the base URL {url:?} does not parse")]
    BadUrl {
        url: String,
        #[source]
        source: http::uri::InvalidUri,
    },
    /// The base URL names a destination the dial guard refuses.
    #[error("the base URL {url:?} is not dialable on the bed")]
    Dial {
        url: String,
        #[source]
        source: DialError,
    },
    /// A spec value out of range.
    #[error("invalid load spec: {0}")]
    Invalid(&'static str),
}

/// A read (`GET /items/{key}`) or a write (`POST /items/{key}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Read,
    Write,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "status")]
pub enum Outcome {
    /// Answered in full with this status.
    Status(u16),
    /// No connection could be opened (refused: nothing listens there).
    ConnectError,
    /// The connection was reset or closed before the answer was complete.
    Reset,
    /// Not answered in full within the spec's timeout.
    Timeout,
    /// Not sent: `max_in_flight` requests were already outstanding when it was due.
    DroppedByClient,
    /// Any other client-side failure (a malformed answer, say).
    OtherError,
}

/// One request of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Its `X-Request-Id`, unique to the request.
    pub id: String,
    pub kind: Kind,
    pub key: String,
    /// When it was due, from the start of the run.
    #[serde(with = "millis", rename = "scheduled_at_ms")]
    pub scheduled_at: Duration,
    /// When it was sent (or dropped), from the start of the run.
    #[serde(with = "millis", rename = "sent_at_ms")]
    pub sent_at: Duration,
    /// From sending to the end of the answer, or to the failure; none when not sent.
    #[serde(with = "millis_opt", rename = "latency_ms")]
    pub latency: Option<Duration>,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// For an acknowledged write: the id its acknowledgement names (the request id for a 201;
    /// the receipt of a 202, from its `Location` or body — a 202 without one acknowledges
    /// nothing and counts as failed).
    pub receipt: Option<String>,
    /// For an acknowledged write, once [`LoadReport::check_writes`] ran: whether the store lacks
    /// it.
    pub lost: Option<bool>,
}

impl Record {
    /// A write the service acknowledged (answered 2xx; a 202 only with a receipt).
    pub fn acknowledged_write(&self) -> bool {
        self.kind == Kind::Write && self.succeeded()
    }

    /// Answered 2xx, and a 202 write with a receipt.
    pub fn succeeded(&self) -> bool {
        match self.outcome {
            Outcome::Status(202) if self.kind == Kind::Write => self.receipt.is_some(),
            Outcome::Status(s) => (200..300).contains(&s),
            _ => false,
        }
    }

    /// The id the store must hold for an acknowledged write: what a 201 names; for a 202 (a
    /// write queued, to be replayed with its own headers) the request's `X-Request-Id`.
    fn stored_as(&self) -> Option<&str> {
        match self.outcome {
            Outcome::Status(202) => self.receipt.as_ref().map(|_| self.id.as_str()),
            _ => self.receipt.as_deref(),
        }
    }
}

/// The requests of a run, in schedule order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadReport {
    /// When the run started (offsets count from it); not exported.
    #[serde(skip, default = "Instant::now")]
    pub started: Instant,
    pub records: Vec<Record>,
}

/// A span of the run by send time, as offsets from its start: `from` included, `to` excluded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    pub from: Option<Duration>,
    pub to: Option<Duration>,
}

impl Window {
    /// The whole run.
    pub fn all() -> Self {
        Self::default()
    }
    /// Requests sent before `t`.
    pub fn before(t: Duration) -> Self {
        Self {
            from: None,
            to: Some(t),
        }
    }
    /// Requests sent at or after `t`.
    pub fn after(t: Duration) -> Self {
        Self {
            from: Some(t),
            to: None,
        }
    }
    /// Requests sent in `[from, to)`.
    pub fn between(from: Duration, to: Duration) -> Self {
        Self {
            from: Some(from),
            to: Some(to),
        }
    }
    fn contains(&self, t: Duration) -> bool {
        self.from.is_none_or(|f| t >= f) && self.to.is_none_or(|e| t < e)
    }
}

/// Figures over the requests of one window.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Requests sent (dropped-by-client ones are not).
    pub sent: u64,
    /// Requests due but not sent: the client's concurrency bound was reached.
    pub dropped_by_client: u64,
    /// Answered 2xx.
    pub ok_2xx: u64,
    /// Answered 202 (also counted in `ok_2xx`).
    pub accepted_202: u64,
    /// Answers by status.
    pub by_status: BTreeMap<u16, u64>,
    pub connect_errors: u64,
    pub resets: u64,
    pub timeouts: u64,
    pub other_errors: u64,
    /// Writes answered 2xx.
    pub acknowledged_writes: u64,
    /// Acknowledged writes absent from the store (0 until [`LoadReport::check_writes`] ran).
    pub lost_writes: u64,
    /// Latency percentiles over the requests answered (any status); none when none was.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

impl LoadReport {
    /// The offset from the run's start of an instant (zero for one before it), to build a
    /// [`Window`] from the moment something happened.
    pub fn offset(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.started)
    }

    /// Marks every acknowledged write lost or not by looking its receipt up in `store`; returns
    /// how many are lost.
    pub fn check_writes(&mut self, store: &Store) -> u64 {
        let mut lost = 0;
        for r in &mut self.records {
            if !r.acknowledged_write() {
                continue;
            }
            let missing = r.stored_as().is_none_or(|id| !store.contains(id));
            r.lost = Some(missing);
            lost += u64::from(missing);
        }
        lost
    }

    /// Figures over the requests sent within `window`.
    pub fn summary(&self, window: Window) -> Summary {
        let mut s = Summary::default();
        let mut latencies = Vec::new();
        for r in self.records.iter().filter(|r| window.contains(r.sent_at)) {
            match r.outcome {
                Outcome::DroppedByClient => {
                    s.dropped_by_client += 1;
                    continue;
                }
                Outcome::Status(code) => {
                    *s.by_status.entry(code).or_default() += 1;
                    if r.succeeded() {
                        s.ok_2xx += 1;
                    }
                    if code == 202 {
                        s.accepted_202 += 1;
                    }
                    if let Some(l) = r.latency {
                        latencies.push(l);
                    }
                }
                Outcome::ConnectError => s.connect_errors += 1,
                Outcome::Reset => s.resets += 1,
                Outcome::Timeout => s.timeouts += 1,
                Outcome::OtherError => s.other_errors += 1,
            }
            s.sent += 1;
            if r.acknowledged_write() {
                s.acknowledged_writes += 1;
            }
            if r.lost == Some(true) {
                s.lost_writes += 1;
            }
        }
        latencies.sort_unstable();
        s.p50_ms = percentile_ms(&latencies, 0.50);
        s.p99_ms = percentile_ms(&latencies, 0.99);
        s
    }
}

/// Nearest-rank percentile of sorted latencies, in milliseconds.
pub fn percentile_ms(sorted: &[Duration], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    let i = rank.clamp(1, sorted.len()) - 1;
    Some(sorted[i].as_secs_f64() * 1e3)
}

/// Offers the load `spec` describes and returns every request's record once the last one has
/// ended (each is bounded by the spec's timeout). Must run inside a Tokio runtime; to stop early,
/// drop the future (outstanding requests are abandoned).
pub async fn run(spec: LoadSpec) -> Result<LoadReport, LoadError> {
    let plan = Plan::new(&spec)?;
    let client: Client<LoopbackConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(spec.max_in_flight)
        .build(LoopbackConnector);
    let outstanding = Arc::new(Semaphore::new(spec.max_in_flight));
    let body = Bytes::from(vec![b'x'; spec.body_bytes]);
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let interval = plan.interval;

    let started = Instant::now();
    let start = tokio::time::Instant::from_std(started);
    let mut records = Vec::with_capacity(plan.count as usize);
    let mut tasks = JoinSet::new();
    for seq in 0..plan.count {
        let scheduled_at = interval.mul_f64(seq as f64);
        // Open loop: wait for the slot, never for an answer. A scheduler that fell behind sends
        // the overdue requests at once rather than thinning the load.
        tokio::time::sleep_until(start + scheduled_at).await;
        let kind = if rng.random_bool(spec.write_ratio) {
            Kind::Write
        } else {
            Kind::Read
        };
        let key = format!("k{}", rng.random_range(0..spec.keys));
        let id = format!("{run_id}-{seq}");
        let Ok(permit) = outstanding.clone().try_acquire_owned() else {
            records.push(Record {
                id,
                kind,
                key,
                scheduled_at,
                sent_at: started.elapsed(),
                latency: None,
                outcome: Outcome::DroppedByClient,
                receipt: None,
                lost: None,
            });
            continue;
        };
        let request = plan.request(kind, &key, &id, &body);
        let client = client.clone();
        let timeout = spec.timeout;
        tasks.spawn(async move {
            let sent = Instant::now();
            let (outcome, receipt) =
                match tokio::time::timeout(timeout, send(&client, request)).await {
                    Ok(Ok((status, receipt))) => (Outcome::Status(status.as_u16()), receipt),
                    Ok(Err(outcome)) => (outcome, None),
                    Err(_) => (Outcome::Timeout, None),
                };
            let latency = sent.elapsed();
            drop(permit);
            let receipt = match (kind, outcome) {
                (Kind::Write, Outcome::Status(201)) => Some(id.clone()),
                (Kind::Write, Outcome::Status(202)) => receipt,
                (Kind::Write, Outcome::Status(s)) if (200..300).contains(&s) => Some(id.clone()),
                _ => None,
            };
            Record {
                id,
                kind,
                key,
                scheduled_at,
                sent_at: sent.saturating_duration_since(started),
                latency: Some(latency),
                outcome,
                receipt,
                lost: None,
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        // A request task only panics on a bug; its record is lost but the run's others are kept.
        if let Ok(record) = done {
            records.push(record);
        }
    }
    records.sort_by_key(|r| r.scheduled_at);
    Ok(LoadReport { started, records })
}

/// The validated spec: how many requests, and where they go.
struct Plan {
    count: u64,
    /// Time between two requests' scheduled sends.
    interval: Duration,
    base: Uri,
    prefix: String,
}

impl Plan {
    fn new(spec: &LoadSpec) -> Result<Self, LoadError> {
        if !(spec.rate.is_finite() && spec.rate > 0.0) {
            return Err(LoadError::Invalid("rate must be a positive number"));
        }
        if !(0.0..=1.0).contains(&spec.write_ratio) {
            return Err(LoadError::Invalid("write_ratio must be within 0.0 to 1.0"));
        }
        if spec.keys == 0 {
            return Err(LoadError::Invalid("keys must be at least 1"));
        }
        if spec.max_in_flight == 0 {
            return Err(LoadError::Invalid("max_in_flight must be at least 1"));
        }
        if spec.timeout.is_zero() {
            return Err(LoadError::Invalid("timeout must be positive"));
        }
        let interval = Duration::try_from_secs_f64(1.0 / spec.rate)
            .map_err(|_| LoadError::Invalid("rate is too low to schedule"))?;
        let count = (spec.rate * spec.duration.as_secs_f64()).floor();
        if count > MAX_REQUESTS as f64 {
            return Err(LoadError::Invalid(
                "more than 1,000,000 requests in one run",
            ));
        }
        let base: Uri = spec.base_url.parse().map_err(|source| LoadError::BadUrl {
            url: spec.base_url.clone(),
            source,
        })?;
        // Refuse a destination outside the bed before the first request is due.
        dial::uri_addr(&base)
            .and_then(|addr| dial::to_loopback(addr.ip()).map_err(DialError::from))
            .map_err(|source| LoadError::Dial {
                url: spec.base_url.clone(),
                source,
            })?;
        let prefix = base.path().trim_end_matches('/').to_owned();
        Ok(Self {
            count: count as u64,
            interval,
            base,
            prefix,
        })
    }

    fn request(&self, kind: Kind, key: &str, id: &str, body: &Bytes) -> Request<Full<Bytes>> {
        let mut parts = self.base.clone().into_parts();
        parts.path_and_query = format!("{}/items/{key}", self.prefix).parse().ok();
        let uri = Uri::from_parts(parts).unwrap_or_else(|_| self.base.clone());
        let (method, body) = match kind {
            Kind::Read => (Method::GET, Bytes::new()),
            Kind::Write => (Method::POST, body.clone()),
        };
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        if let Ok(v) = http::HeaderValue::from_str(id) {
            req.headers_mut().insert("x-request-id", v);
        }
        req
    }
}

/// Sends one request and reads its answer in full; the error is the failure's outcome.
async fn send(
    client: &Client<LoopbackConnector, Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> Result<(StatusCode, Option<String>), Outcome> {
    let response = client.request(request).await.map_err(|e| {
        if e.is_connect() {
            Outcome::ConnectError
        } else {
            classify(&e)
        }
    })?;
    let status = response.status();
    let location = response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| classify(&e))?
        .to_bytes();
    let receipt = if status == StatusCode::ACCEPTED {
        receipt(location.as_deref(), &body)
    } else {
        None
    };
    Ok((status, receipt))
}

/// The receipt a 202 names: the last segment of its `Location`, else its body if that is a short
/// token.
fn receipt(location: Option<&str>, body: &[u8]) -> Option<String> {
    if let Some(seg) = location
        .and_then(|l| l.trim_end_matches('/').rsplit('/').next())
        .filter(|s| !s.is_empty())
    {
        return Some(seg.to_owned());
    }
    let text = std::str::from_utf8(body).ok()?.trim();
    let token = !text.is_empty() && text.len() <= 128 && text.bytes().all(|b| b.is_ascii_graphic());
    token.then(|| text.to_owned())
}

/// A failure after the connection was made: a reset or an early close is `Reset`, anything else
/// `OtherError`.
fn classify(error: &(dyn std::error::Error + 'static)) -> Outcome {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<io::Error>()
            && matches!(
                io.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::UnexpectedEof
            )
        {
            return Outcome::Reset;
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>()
            && (h.is_incomplete_message() || h.is_canceled())
        {
            return Outcome::Reset;
        }
        if e.downcast_ref::<DialError>().is_some() {
            return Outcome::ConnectError;
        }
        cause = e.source();
    }
    Outcome::OtherError
}

/// Durations exported as fractional milliseconds, for plotting.
mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64() * 1e3)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let ms = f64::deserialize(d)?;
        Duration::try_from_secs_f64(ms / 1e3).map_err(serde::de::Error::custom)
    }
}

mod millis_opt {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_secs_f64() * 1e3)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<f64>::deserialize(d)?
            .map(|ms| Duration::try_from_secs_f64(ms / 1e3).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(sent_ms: u64, kind: Kind, outcome: Outcome, latency_ms: u64) -> Record {
        Record {
            id: format!("r{sent_ms}"),
            kind,
            key: "k0".into(),
            scheduled_at: Duration::from_millis(sent_ms),
            sent_at: Duration::from_millis(sent_ms),
            latency: Some(Duration::from_millis(latency_ms)),
            outcome,
            receipt: (kind == Kind::Write).then(|| format!("r{sent_ms}")),
            lost: None,
        }
    }

    #[test]
    fn a_summary_counts_only_the_requests_sent_within_its_window() {
        let report = LoadReport {
            started: Instant::now(),
            records: vec![
                record(0, Kind::Read, Outcome::Status(200), 10),
                record(10, Kind::Write, Outcome::Status(201), 20),
                record(20, Kind::Read, Outcome::Reset, 5),
                record(30, Kind::Read, Outcome::ConnectError, 1),
                record(40, Kind::Write, Outcome::Status(503), 1),
                record(50, Kind::Read, Outcome::Timeout, 100),
            ],
        };
        let before = report.summary(Window::before(Duration::from_millis(20)));
        assert_eq!(before.sent, 2);
        assert_eq!(before.ok_2xx, 2);
        assert_eq!(before.acknowledged_writes, 1);
        assert_eq!(before.p50_ms, Some(10.0));
        assert_eq!(before.p99_ms, Some(20.0));
        let during = report.summary(Window::between(
            Duration::from_millis(20),
            Duration::from_millis(50),
        ));
        assert_eq!(
            (during.sent, during.resets, during.connect_errors),
            (3, 1, 1)
        );
        assert_eq!(during.by_status.get(&503), Some(&1));
        let after = report.summary(Window::after(Duration::from_millis(50)));
        assert_eq!((after.sent, after.timeouts, after.p50_ms), (1, 1, None));
        assert_eq!(report.summary(Window::all()).sent, 6);
    }

    #[tokio::test]
    async fn an_acknowledged_write_missing_from_the_store_is_lost() {
        let store = Store::new();
        store.put("r10", "/items/k0", Bytes::new()).await;
        let mut report = LoadReport {
            started: Instant::now(),
            records: vec![
                record(10, Kind::Write, Outcome::Status(201), 1),
                record(20, Kind::Write, Outcome::Status(202), 1),
                record(30, Kind::Write, Outcome::Status(503), 1),
            ],
        };
        assert_eq!(report.check_writes(&store), 1);
        assert_eq!(report.records[0].lost, Some(false));
        assert_eq!(report.records[1].lost, Some(true));
        assert_eq!(report.records[2].lost, None, "a 503 acknowledged nothing");
        assert_eq!(report.summary(Window::all()).lost_writes, 1);
    }

    #[tokio::test]
    async fn a_queued_write_counts_once_replayed_under_its_own_request_id_and_only_with_a_receipt()
    {
        let store = Store::new();
        store.put("r20", "/items/k0", Bytes::new()).await;
        let queued = |sent_ms, receipt: Option<&str>| Record {
            receipt: receipt.map(str::to_owned),
            ..record(sent_ms, Kind::Write, Outcome::Status(202), 1)
        };
        let mut report = LoadReport {
            started: Instant::now(),
            records: vec![
                queued(20, Some("receipt-a")),
                queued(30, Some("receipt-b")),
                queued(40, None),
            ],
        };
        assert_eq!(report.check_writes(&store), 1);
        assert_eq!(report.records[0].lost, Some(false), "replayed as r20");
        assert_eq!(report.records[1].lost, Some(true), "never replayed");
        assert_eq!(
            report.records[2].lost, None,
            "no receipt: nothing acknowledged"
        );
        let all = report.summary(Window::all());
        assert_eq!((all.ok_2xx, all.accepted_202), (2, 3));
    }

    #[test]
    fn a_202_receipt_comes_from_its_location_else_its_body() {
        assert_eq!(
            receipt(Some("/receipts/abc"), b"ignored").as_deref(),
            Some("abc")
        );
        assert_eq!(receipt(None, b" r-7\n").as_deref(), Some("r-7"));
        assert_eq!(receipt(None, b"two words"), None);
        assert_eq!(receipt(None, b""), None);
    }

    #[test]
    fn a_spec_out_of_range_is_refused() {
        let ok = LoadSpec::new("http://10.64.0.2:8080", 10.0, Duration::from_secs(1));
        assert!(Plan::new(&ok).is_ok());
        for bad in [
            LoadSpec {
                rate: 0.0,
                ..ok.clone()
            },
            LoadSpec {
                rate: f64::NAN,
                ..ok.clone()
            },
            LoadSpec {
                write_ratio: 1.5,
                ..ok.clone()
            },
            LoadSpec {
                keys: 0,
                ..ok.clone()
            },
            LoadSpec {
                max_in_flight: 0,
                ..ok.clone()
            },
            LoadSpec {
                timeout: Duration::ZERO,
                ..ok.clone()
            },
            LoadSpec {
                rate: 1e9,
                duration: Duration::from_secs(10),
                ..ok.clone()
            },
        ] {
            assert!(
                matches!(Plan::new(&bad), Err(LoadError::Invalid(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn requests_go_to_items_under_the_base_path() {
        let spec = LoadSpec::new("http://10.64.0.2:8080/svc/", 10.0, Duration::from_secs(1));
        let plan = Plan::new(&spec).unwrap();
        let req = plan.request(Kind::Write, "k3", "id-1", &Bytes::from_static(b"x"));
        assert_eq!(req.uri().to_string(), "http://10.64.0.2:8080/svc/items/k3");
        assert_eq!(req.method(), Method::POST);
        assert_eq!(req.headers().get("x-request-id").unwrap(), "id-1");
    }
}
