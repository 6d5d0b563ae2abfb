//! The demo's traffic: requests through the bed's ALB stand-in while the interruption is
//! handled (open loop, a quarter writes, each with its own `X-Request-Id`), and their count at
//! the end: sent, succeeded, queued by the fallback (`202` with a receipt), replayed by the
//! keeper, failed, and acknowledged writes missing from the service's store.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use costop_bed::Bed;
use costop_traffic::loadgen::{self, LoadReport, LoadSpec, Window};
use tokio::task::JoinHandle;

use crate::DemoError;

/// Requests per second the demo offers: a third of what the service's pods carry, so the
/// survivors carry it alone and every failure is the interruption's.
pub const RATE: f64 = 40.0;
/// Keys the load reads and writes (each written once before the load, so a read finds it).
const KEYS: usize = 8;
/// The store of the scenario's service (`<namespace>/<app label>`).
pub const STORE: &str = "default/web";

/// The load, running.
pub struct Traffic {
    task: JoinHandle<Result<LoadReport, loadgen::LoadError>>,
    pub url: String,
    pub rate: f64,
    pub duration: Duration,
}

/// What the traffic came to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrafficSummary {
    pub sent: u64,
    /// Answered 2xx (a 202 only with a receipt).
    pub succeeded: u64,
    /// Writes the fallback queued (202 with a receipt).
    pub queued: u64,
    /// Queued writes the keeper replayed to the service.
    pub replayed: usize,
    /// Queued writes dead-lettered after their last replay.
    pub dead_lettered: usize,
    pub failed: u64,
    /// Acknowledged writes (201, or 202 once replayed) missing from the store.
    pub lost_writes: u64,
    /// Failures by HTTP status (0: no answer: refused, reset, timed out, or not sent).
    pub failed_by_status: BTreeMap<u16, u64>,
}

/// One write of `key` through the load balancer: whether it was acknowledged (201).
async fn write_once(url: &str, key: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(url.trim_start_matches("http://")).await else {
        return false;
    };
    let req = format!(
        "POST /items/{key} HTTP/1.1\r\nHost: demo\r\nX-Request-Id: seed-{key}-{}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}",
        uuid::Uuid::new_v4().simple()
    );
    if s.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out).await;
    out.starts_with("HTTP/1.1 201")
}

/// The ALB answers for the service: every key written once, retried while the targets turn
/// healthy (the first health checks), for at most `timeout`.
async fn seed(url: &str, timeout: Duration) -> Result<(), DemoError> {
    let t0 = Instant::now();
    for k in 0..KEYS {
        while !write_once(url, &format!("k{k}")).await {
            if t0.elapsed() > timeout {
                return Err(DemoError::ServiceDown {
                    url: url.to_owned(),
                    waited: t0.elapsed(),
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    Ok(())
}

impl Traffic {
    /// Starts the load on the bed's ALB for `duration`, once the service answers; `None` when
    /// the scenario runs no ALB stand-in.
    pub async fn start(bed: &Bed, duration: Duration) -> Result<Option<Traffic>, DemoError> {
        let Some(url) = bed.alb_url() else {
            return Ok(None);
        };
        seed(&url, Duration::from_secs(60)).await?;
        let mut spec = LoadSpec::new(url.clone(), RATE, duration);
        spec.keys = KEYS;
        spec.timeout = Duration::from_secs(30);
        let task = tokio::spawn(loadgen::run(spec));
        Ok(Some(Traffic {
            task,
            url,
            rate: RATE,
            duration,
        }))
    }

    /// Whether every request has been sent and answered (or given up on).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Waits for the load's end and counts it against the store.
    pub async fn finish(
        self,
        bed: &Bed,
        replayed: usize,
        dead_lettered: usize,
    ) -> Result<TrafficSummary, DemoError> {
        let mut report = self
            .task
            .await
            .map_err(DemoError::LoadTask)?
            .map_err(DemoError::Load)?;
        let lost_writes = report.check_writes(&bed.stores().get(STORE));
        let all = report.summary(Window::all());
        let mut failed_by_status = BTreeMap::new();
        let mut queued = 0;
        for r in &report.records {
            if r.succeeded() {
                queued += u64::from(matches!(r.outcome, loadgen::Outcome::Status(202)));
                continue;
            }
            let code = match r.outcome {
                loadgen::Outcome::Status(s) => s,
                _ => 0,
            };
            *failed_by_status.entry(code).or_insert(0) += 1;
        }
        let sent = all.sent + all.dropped_by_client;
        Ok(TrafficSummary {
            sent,
            succeeded: all.ok_2xx,
            queued,
            replayed,
            dead_lettered,
            failed: sent - all.ok_2xx,
            lost_writes,
            failed_by_status,
        })
    }
}
