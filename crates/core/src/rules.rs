//! The EventBridge rules that deliver events to costop's functions: the one declaration of
//! their patterns. `infra/template.yaml` writes the same rules for CloudFormation, and
//! `infra/check.py` compares the two through `infra/event-rules.json` (`costop rules --json`,
//! drift-tested here); `costop replay` uses [`functions_for`] to hand a captured event to every
//! function whose rule matches it, as EventBridge does.
//!
//! Matching follows EventBridge's event-pattern semantics for the forms used here: every field
//! of the pattern must be present in the event; an array of values matches when the event's value
//! (or, for an array in the event, any of its elements) equals one of them; an object matches
//! the event's object field by field
//! (<https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns.html>).

use serde::Serialize;
use serde_json::{Value, json};

use crate::event::health::{CATEGORY_SCHEDULED_CHANGE, SERVICE_EC2};
use crate::event::scheduled::{DETAIL_SCHEDULED, SOURCE_EVENTS};
use crate::event::{
    DETAIL_ASG_TERMINATE, DETAIL_HEALTH, DETAIL_REBALANCE, DETAIL_SPOT_INTERRUPTION,
    DETAIL_STATE_CHANGE, SOURCE_AUTOSCALING, SOURCE_EC2, SOURCE_HEALTH,
};

/// The interruption function's name (its binary, and the function name in `costop replay`).
pub const INTERRUPTION_FUNCTION: &str = "costop-interruption";
/// The keeper's name.
pub const KEEPER_FUNCTION: &str = "costop-keeper";
/// Every function, in the order `costop replay` runs and prints them.
pub const FUNCTIONS: [&str; 2] = [INTERRUPTION_FUNCTION, KEEPER_FUNCTION];

/// One rule: what it delivers, and to which function.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rule {
    /// The function it invokes ([`FUNCTIONS`]).
    pub function: &'static str,
    /// Its name under the function in the template (`Events:` key).
    pub name: &'static str,
    /// The event pattern, or `None` for a schedule rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pattern: Option<Value>,
    /// The schedule expression of a schedule rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<&'static str>,
}

impl Rule {
    /// Whether EventBridge would deliver `event` through this rule. A schedule rule delivers
    /// its own `Scheduled Event`s.
    pub fn matches(&self, event: &Value) -> bool {
        match &self.pattern {
            Some(p) => matches_pattern(p, event),
            None => {
                event.get("source").and_then(Value::as_str) == Some(SOURCE_EVENTS)
                    && event.get("detail-type").and_then(Value::as_str) == Some(DETAIL_SCHEDULED)
            }
        }
    }
}

fn pattern(source: &str, detail_type: &str, detail: Option<Value>) -> Option<Value> {
    let mut p = json!({ "source": [source], "detail-type": [detail_type] });
    if let Some(d) = detail {
        p["detail"] = d;
    }
    Some(p)
}

/// Every rule of the template, function by function.
pub fn rules() -> Vec<Rule> {
    let rule = |function, name, pattern| Rule {
        function,
        name,
        pattern,
        schedule: None,
    };
    let spot = || pattern(SOURCE_EC2, DETAIL_SPOT_INTERRUPTION, None);
    let rebalance = || pattern(SOURCE_EC2, DETAIL_REBALANCE, None);
    vec![
        rule(INTERRUPTION_FUNCTION, "SpotInterruptionWarning", spot()),
        rule(
            INTERRUPTION_FUNCTION,
            "RebalanceRecommendation",
            rebalance(),
        ),
        // Only the states costop acts on: an unfiltered rule fires for every pending and
        // running of every instance in the region.
        rule(
            INTERRUPTION_FUNCTION,
            "InstanceStateChange",
            pattern(
                SOURCE_EC2,
                DETAIL_STATE_CHANGE,
                Some(json!({ "state": ["stopping", "stopped", "shutting-down", "terminated"] })),
            ),
        ),
        rule(
            INTERRUPTION_FUNCTION,
            "AsgTerminateLifecycleAction",
            pattern(SOURCE_AUTOSCALING, DETAIL_ASG_TERMINATE, None),
        ),
        rule(
            INTERRUPTION_FUNCTION,
            "HealthScheduledChange",
            pattern(
                SOURCE_HEALTH,
                DETAIL_HEALTH,
                Some(json!({
                    "service": [SERVICE_EC2],
                    "eventTypeCategory": [CATEGORY_SCHEDULED_CHANGE]
                })),
            ),
        ),
        rule(KEEPER_FUNCTION, "SpotInterruptionWarning", spot()),
        rule(KEEPER_FUNCTION, "RebalanceRecommendation", rebalance()),
        Rule {
            function: KEEPER_FUNCTION,
            name: "PoolTick",
            pattern: None,
            schedule: Some("rate(1 minute)"),
        },
    ]
}

/// The functions EventBridge delivers `event` to, in [`FUNCTIONS`] order, each once.
pub fn functions_for(event: &Value) -> Vec<&'static str> {
    let rules = rules();
    FUNCTIONS
        .into_iter()
        .filter(|f| rules.iter().any(|r| r.function == *f && r.matches(event)))
        .collect()
}

/// EventBridge's matching for the pattern forms of [`rules`] (see the module docs).
fn matches_pattern(pattern: &Value, event: &Value) -> bool {
    match pattern {
        Value::Object(fields) => fields.iter().all(|(k, p)| match event.get(k) {
            Some(v) => matches_pattern(p, v),
            None => false,
        }),
        Value::Array(allowed) => match event {
            Value::Array(values) => values.iter().any(|v| allowed.contains(v)),
            v => allowed.contains(v),
        },
        // A bare value is not a valid pattern leaf.
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(source: &str, detail_type: &str, detail: Value) -> Value {
        json!({ "source": source, "detail-type": detail_type, "detail": detail })
    }

    #[test]
    fn a_spot_warning_goes_to_both_functions() {
        let e = event(SOURCE_EC2, DETAIL_SPOT_INTERRUPTION, json!({}));
        assert_eq!(functions_for(&e), FUNCTIONS);
    }

    #[test]
    fn state_changes_go_to_the_interruption_function_only_for_the_states_it_handles() {
        let stopping = event(
            SOURCE_EC2,
            DETAIL_STATE_CHANGE,
            json!({ "state": "stopping" }),
        );
        assert_eq!(functions_for(&stopping), [INTERRUPTION_FUNCTION]);
        let running = event(
            SOURCE_EC2,
            DETAIL_STATE_CHANGE,
            json!({ "state": "running" }),
        );
        assert!(functions_for(&running).is_empty());
        let no_state = event(SOURCE_EC2, DETAIL_STATE_CHANGE, json!({}));
        assert!(functions_for(&no_state).is_empty());
    }

    #[test]
    fn health_events_match_on_service_and_category() {
        let ec2 = json!({ "service": "EC2", "eventTypeCategory": "scheduledChange" });
        let rds = json!({ "service": "RDS", "eventTypeCategory": "scheduledChange" });
        assert_eq!(
            functions_for(&event(SOURCE_HEALTH, DETAIL_HEALTH, ec2)),
            [INTERRUPTION_FUNCTION]
        );
        assert!(functions_for(&event(SOURCE_HEALTH, DETAIL_HEALTH, rds)).is_empty());
    }

    #[test]
    fn the_keepers_schedule_delivers_scheduled_events_to_the_keeper_only() {
        let tick = event(SOURCE_EVENTS, DETAIL_SCHEDULED, json!({}));
        assert_eq!(functions_for(&tick), [KEEPER_FUNCTION]);
        assert!(functions_for(&event("aws.s3", "Object Created", json!({}))).is_empty());
    }

    #[test]
    fn an_array_in_the_event_matches_when_any_element_does() {
        let p = json!({ "resources": ["a"] });
        assert!(matches_pattern(&p, &json!({ "resources": ["b", "a"] })));
        assert!(!matches_pattern(&p, &json!({ "resources": ["b"] })));
    }

    #[test]
    fn the_checked_in_rules_file_is_the_declaration() {
        let generated = serde_json::to_string_pretty(&rules()).unwrap() + "\n";
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../infra/event-rules.json");
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            on_disk == generated,
            "infra/event-rules.json differs from crates/core/src/rules.rs; regenerate it with\n  cargo run -q -p costop-cli -- rules --json > infra/event-rules.json"
        );
    }
}
