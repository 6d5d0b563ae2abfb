//! What the fallback logs (one line per request) and measures (writes queued, forwards given
//! up), with the queue table as the dimension.

use chrono::{DateTime, Utc};
use costop_core::Config;
use costop_core::metrics::{self as m, Metric, Unit};

use crate::fallback::Served;

/// One log line per request.
pub fn log_served(served: &Served) {
    tracing::info!(
        policy = served.policy,
        status = served.status,
        route = served.route.as_deref().unwrap_or(""),
        receipt = served.receipt.as_deref().unwrap_or(""),
        duplicate = served.duplicate,
        attempts = served.attempts.unwrap_or(0),
        gave_up = served.gave_up,
        elapsed_ms = served.elapsed_ms,
        "request"
    );
}

/// The EMF metrics of one request: none unless it queued a write or gave up a forward.
pub fn metrics(config: &Config, served: &Served, at: DateTime<Utc>) -> Vec<serde_json::Value> {
    let mut metrics = Vec::new();
    if served.policy == "queue" && served.status == 202 && !served.duplicate {
        metrics.push(Metric::new(m::QUEUED_WRITES, 1.0, Unit::Count));
    }
    if served.policy == "forward" && served.gave_up {
        metrics.push(Metric::new(m::FORWARDS_GIVEN_UP, 1.0, Unit::Count));
    }
    if metrics.is_empty() {
        return Vec::new();
    }
    vec![m::emf(
        &config.metrics_namespace,
        &[(m::DIM_QUEUE, &config.queue_table)],
        &metrics,
        at,
    )]
}

/// Log the request and print its metrics.
pub fn report(config: &Config, served: &Served) {
    log_served(served);
    super::emit(&metrics(config, served, Utc::now()));
}
