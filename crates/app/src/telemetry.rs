//! Logs and metrics output: structured JSON logs (one line per event, fields carry event id,
//! instance and node) and CloudWatch EMF metric lines on stdout, where Lambda ships them to
//! CloudWatch Logs and CloudWatch extracts the metrics — no PutMetricData call, no extra IAM.

use std::io::Write;

use chrono::Utc;
use costop_core::Config;
use tracing_subscriber::EnvFilter;

use costop_core::metrics::{self as m, Metric, Unit};

use crate::handler::Outcome;

/// JSON logs to stdout at `level` (or `RUST_LOG` when set). Call once at start-up.
pub fn init_json_logs(level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_target(false)
        .without_time()
        .try_init();
}

/// Human-readable logs to stderr (CLI, demo).
pub fn init_text_logs(level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// One log line per instance of a delivery: what was decided and, for a dry run, the whole plan
/// (so the first dry-run week can be read back from CloudWatch Logs).
pub fn log_outcome(outcome: &Outcome) {
    for inst in &outcome.instances {
        match (&inst.decision, &inst.report) {
            (costop_core::Decision::Ignore { reason }, _) => tracing::info!(
                event_id = %outcome.event_id,
                kind = %outcome.kind,
                instance_id = %inst.instance_id,
                reason = %serde_json::to_string(reason).unwrap_or_default(),
                "ignored"
            ),
            (costop_core::Decision::Act(plan), None) => tracing::info!(
                event_id = %outcome.event_id,
                kind = %outcome.kind,
                instance_id = %inst.instance_id,
                node = %plan.node,
                interruption_id = %plan.interruption_id,
                plan = %serde_json::to_string(plan).unwrap_or_default(),
                "planned (dry run: nothing changed)"
            ),
            (costop_core::Decision::Act(plan), Some(report)) => tracing::info!(
                event_id = %outcome.event_id,
                kind = %outcome.kind,
                instance_id = %inst.instance_id,
                node = %plan.node,
                interruption_id = %plan.interruption_id,
                report = %serde_json::to_string(report).unwrap_or_default(),
                "handled"
            ),
        }
    }
}

/// Emit the EMF metrics of one handled delivery (one line per executed plan).
pub fn emit_metrics(config: &Config, outcome: &Outcome) {
    for inst in &outcome.instances {
        let (Some(plan), Some(report)) = (inst.decision.as_plan(), inst.report.as_ref()) else {
            continue;
        };
        let mut metrics = Vec::new();
        if let Some(ms) = report.time_to_cordon_ms {
            metrics.push(Metric::new(
                m::TIME_TO_CORDON_MS,
                ms as f64,
                Unit::Milliseconds,
            ));
        }
        if let Some(d) = &report.drain {
            metrics.push(Metric::new(
                m::PODS_EVICTED,
                d.evicted.len() as f64,
                Unit::Count,
            ));
            metrics.push(Metric::new(
                m::EVICTION_RETRIES,
                f64::from(d.eviction_retries),
                Unit::Count,
            ));
            metrics.push(Metric::new(
                m::PODS_REMAINING_AT_DEADLINE,
                d.remaining.len() as f64,
                Unit::Count,
            ));
            metrics.push(Metric::new(
                m::DEADLINE_MISSES,
                if d.deadline_missed { 1.0 } else { 0.0 },
                Unit::Count,
            ));
        }
        let dims = [
            (m::DIM_KIND, outcome.kind.as_str()),
            (m::DIM_CLUSTER, plan.cluster.as_str()),
        ];
        let doc = m::emf(&config.metrics_namespace, &dims, &metrics, Utc::now());
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{doc}");
    }
}
