//! CloudWatch Embedded Metric Format (EMF) rendering, pure.
//!
//! A Lambda publishes metrics by printing one EMF JSON object per line to
//! stdout; CloudWatch Logs extracts them. No PutMetricData call, no SDK,
//! no extra latency inside the two-minute window. This module only builds
//! the JSON; the shell prints it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// Time from receiving the event to the node being cordoned.
pub const TIME_TO_CORDON_MS: &str = "TimeToCordonMs";
/// Time from receiving the event to the drain finishing (or the deadline).
pub const TIME_TO_DRAIN_MS: &str = "TimeToDrainMs";
/// Pods evicted.
pub const PODS_EVICTED: &str = "PodsEvicted";
/// Eviction retries after PDB refusals.
pub const EVICTION_RETRIES: &str = "EvictionRetries";
/// Pods still present at the deadline.
pub const PODS_REMAINING_AT_DEADLINE: &str = "PodsRemainingAtDeadline";
/// Interruptions that reached the deadline with pods remaining.
pub const DEADLINE_MISSES: &str = "DeadlineMisses";
/// Events ignored.
pub const EVENTS_IGNORED: &str = "EventsIgnored";

/// Listener rules shifted toward the fallback on a notice (interruption).
pub const TRAFFIC_SHIFTS: &str = "TrafficShifts";
/// Listener rules still shifted after the keeper's tick (keeper, every tick, no dimension).
pub const SHIFTED_RULES: &str = "ShiftedRules";
/// Shifted listener rules put back as they were (keeper, no dimension).
pub const TRAFFIC_RESTORES: &str = "TrafficRestores";

/// Warm standbys started for an interruption (keeper).
pub const STANDBY_STARTS: &str = "StandbyStarts";
/// Invocation start → the standby's StartInstances answered, ms (keeper).
pub const TIME_TO_STANDBY_START_MS: &str = "TimeToStandbyStartMs";
/// Spot warnings for which no standby could be started (keeper).
pub const STANDBY_UNAVAILABLE: &str = "StandbyUnavailable";
/// Replacement pods given the standby toleration (keeper).
pub const REPLACEMENTS_TOLERATED: &str = "ReplacementsTolerated";
/// Standbys returned to the pool (keeper).
pub const STANDBY_RETURNS: &str = "StandbyReturns";
/// Stopped standbys ready to start, per cluster (keeper, every tick).
pub const STANDBY_POOL_AVAILABLE: &str = "StandbyPoolAvailable";
/// Standbys serving an interruption, per cluster (keeper, every tick).
pub const STANDBY_POOL_SERVING: &str = "StandbyPoolServing";
/// Standbys wanted (pool size × zones), per cluster (keeper, every tick).
pub const STANDBY_POOL_WANTED: &str = "StandbyPoolWanted";

/// Writes the fallback queued (fallback, dimension `Queue`).
pub const QUEUED_WRITES: &str = "QueuedWrites";
/// Forwarded requests answered 503 because no capacity answered within the budget (fallback).
pub const FORWARDS_GIVEN_UP: &str = "ForwardsGivenUp";
/// Queued writes replayed to the service (keeper, dimension `Queue`).
pub const REPLAYED_WRITES: &str = "ReplayedWrites";
/// Queued writes dead-lettered after their last attempt (keeper, dimension `Queue`).
pub const DEAD_LETTERED_WRITES: &str = "DeadLetteredWrites";
/// Writes pending in the queue after the keeper's replay (keeper, dimension `Queue`).
pub const QUEUE_DEPTH: &str = "QueueDepth";

/// Dimension: the queue table.
pub const DIM_QUEUE: &str = "Queue";
/// Dimension: event kind slug.
pub const DIM_KIND: &str = "Kind";
/// Dimension: cluster name.
pub const DIM_CLUSTER: &str = "Cluster";

/// CloudWatch units costop uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Unit {
    /// Milliseconds.
    Milliseconds,
    /// Seconds.
    Seconds,
    /// Count.
    Count,
    /// No unit.
    None,
}

impl Unit {
    /// CloudWatch spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Milliseconds => "Milliseconds",
            Unit::Seconds => "Seconds",
            Unit::Count => "Count",
            Unit::None => "None",
        }
    }
}

/// One metric value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Metric<'a> {
    /// Metric name.
    pub name: &'a str,
    /// Value.
    pub value: f64,
    /// Unit.
    pub unit: Unit,
}

impl<'a> Metric<'a> {
    /// Convenience constructor.
    pub fn new(name: &'a str, value: f64, unit: Unit) -> Self {
        Metric { name, value, unit }
    }
}

/// Renders one EMF document: the `_aws` metadata declaring `metrics` under
/// `namespace` with one dimension set made of all `dimensions`, plus the
/// dimension values and metric values as top-level members. Non-finite
/// values are dropped (CloudWatch rejects them). A metric whose name clashes
/// with a dimension name is dropped too, since EMF would conflate them.
pub fn emf(
    namespace: &str,
    dimensions: &[(&str, &str)],
    metrics: &[Metric<'_>],
    timestamp: DateTime<Utc>,
) -> Value {
    let mut root = Map::new();
    for (k, v) in dimensions {
        root.insert((*k).to_owned(), Value::String((*v).to_owned()));
    }
    let mut declared = Vec::new();
    for m in metrics {
        if !m.value.is_finite() || dimensions.iter().any(|(k, _)| *k == m.name) {
            continue;
        }
        if let Some(n) = serde_json::Number::from_f64(m.value) {
            root.insert(m.name.to_owned(), Value::Number(n));
            declared.push(json!({ "Name": m.name, "Unit": m.unit.as_str() }));
        }
    }
    let dims: Vec<&str> = dimensions.iter().map(|(k, _)| *k).collect();
    root.insert(
        "_aws".to_owned(),
        json!({
            "Timestamp": timestamp.timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [dims],
                "Metrics": declared,
            }],
        }),
    );
    Value::Object(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_declares_and_carries_every_metric() {
        let at: DateTime<Utc> = "2025-01-01T00:00:00Z".parse().unwrap();
        let doc = emf(
            "Costop",
            &[(DIM_KIND, "spot-interruption"), (DIM_CLUSTER, "prod")],
            &[
                Metric::new(TIME_TO_CORDON_MS, 412.0, Unit::Milliseconds),
                Metric::new(PODS_EVICTED, 7.0, Unit::Count),
                Metric::new(EVICTION_RETRIES, f64::NAN, Unit::Count),
            ],
            at,
        );
        assert_eq!(
            doc,
            json!({
                "_aws": {
                    "Timestamp": 1_735_689_600_000_i64,
                    "CloudWatchMetrics": [{
                        "Namespace": "Costop",
                        "Dimensions": [["Kind", "Cluster"]],
                        "Metrics": [
                            {"Name": "TimeToCordonMs", "Unit": "Milliseconds"},
                            {"Name": "PodsEvicted", "Unit": "Count"}
                        ]
                    }]
                },
                "Kind": "spot-interruption",
                "Cluster": "prod",
                "TimeToCordonMs": 412.0,
                "PodsEvicted": 7.0
            })
        );
    }
}
