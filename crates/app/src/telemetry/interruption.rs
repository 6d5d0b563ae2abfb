//! What the interruption function logs (one line per instance of a delivery) and measures
//! (time to cordon, evictions, deadline misses).

use chrono::{DateTime, Utc};
use costop_core::Config;
use costop_core::metrics::{self as m, Metric, Unit};

use crate::handler::Outcome;

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

/// The EMF metrics of one handled delivery: one document per executed plan (dimensions
/// `Kind`, `Cluster`).
pub fn metrics(config: &Config, outcome: &Outcome, at: DateTime<Utc>) -> Vec<serde_json::Value> {
    let mut docs = Vec::new();
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
        if report.rules_shifted > 0 {
            metrics.push(Metric::new(
                m::TRAFFIC_SHIFTS,
                report.rules_shifted as f64,
                Unit::Count,
            ));
        }
        let dims = [
            (m::DIM_KIND, outcome.kind.as_str()),
            (m::DIM_CLUSTER, plan.cluster.as_str()),
        ];
        docs.push(m::emf(&config.metrics_namespace, &dims, &metrics, at));
    }
    docs
}

/// Print [`metrics`] to stdout.
pub fn emit_metrics(config: &Config, outcome: &Outcome) {
    super::emit(&metrics(config, outcome, Utc::now()));
}
