//! AWS Health scheduled changes acted on at the right moment. AWS announces a retirement, a
//! scheduled stop or a reboot days or weeks ahead; draining the node on receipt throws that
//! capacity away for nothing. A change whose `startTime` is further off than
//! `COSTOP_SCHEDULED_CHANGE_LEAD_SECONDS` is recorded as a [`ScheduledChange`] (with the event,
//! narrowed to its instance by [`narrow_to_instance`]); the keeper's tick hands that event back
//! to the interruption function once it is [`due`], which then plans it as any imminent change.
//! An update that closes the event, or marks the instance's entity `RESOLVED`, cancels it. The
//! records are [`crate::record::scheduled_change_item`] and its key.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::Config;
use crate::event::resolve_instance_id;

/// A scheduled change waiting for its moment: what the keeper hands off and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledChange {
    /// The instance the change is about.
    pub instance_id: String,
    /// The Health event (shared by its pages and updates).
    pub event_arn: String,
    /// The interruption the change will start (anchored on `startTime`, so the timeline of
    /// the scheduling and of the drain is one).
    pub interruption_id: String,
    /// The cluster when it was scheduled (the plan is made again when due).
    pub cluster: String,
    /// The node when it was scheduled.
    pub node: String,
    /// When the change starts.
    pub start_time: DateTime<Utc>,
    /// When the keeper hands it off: `start_time` − the lead.
    pub due_at: DateTime<Utc>,
}

/// Which scheduled change an action is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledRef {
    /// Instance.
    pub instance_id: String,
    /// Health event ARN.
    pub event_arn: String,
}

impl ScheduledChange {
    /// Its reference.
    pub fn reference(&self) -> ScheduledRef {
        ScheduledRef {
            instance_id: self.instance_id.clone(),
            event_arn: self.event_arn.clone(),
        }
    }
}

/// When a change starting at `start` is acted on.
pub fn due_at(start: DateTime<Utc>, config: &Config) -> DateTime<Utc> {
    start - TimeDelta::seconds(config.scheduled_change_lead_seconds)
}

/// A change starting at `start` waits: its moment is still ahead of `now`.
pub fn waits(start: DateTime<Utc>, config: &Config, now: DateTime<Utc>) -> bool {
    due_at(start, config) > now
}

/// The items whose change's moment has come, in the order they came due (`change` finds an
/// item's change, so the keeper keeps each change beside its event).
pub fn due<T>(items: &[T], change: impl Fn(&T) -> &ScheduledChange, now: DateTime<Utc>) -> Vec<&T> {
    let mut out: Vec<&T> = items.iter().filter(|i| change(i).due_at <= now).collect();
    out.sort_by_key(|i| change(i).due_at);
    out
}

/// The delivered event narrowed to one instance: its `affectedEntities` and `resources` keep
/// only what names `instance_id` (an event without either keeps what it has). Handed off
/// later, it asks the interruption function about that instance only, with the event's id,
/// time and `startTime` unchanged, so the dedupe and the interruption id are the original's.
pub fn narrow_to_instance(event: &Value, instance_id: &str) -> Value {
    let mut out = event.clone();
    let names = |v: &Value| v.as_str().and_then(resolve_instance_id) == Some(instance_id);
    if let Some(entities) = out
        .pointer_mut("/detail/affectedEntities")
        .and_then(Value::as_array_mut)
    {
        entities.retain(|e| e.get("entityValue").is_some_and(names));
    }
    if let Some(resources) = out.get_mut("resources").and_then(Value::as_array_mut) {
        resources.retain(names);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(due: &str) -> ScheduledChange {
        ScheduledChange {
            instance_id: "i-0123456789abcdef0".into(),
            event_arn: "arn".into(),
            interruption_id: "x".into(),
            cluster: "c".into(),
            node: "n".into(),
            start_time: due.parse().unwrap(),
            due_at: due.parse().unwrap(),
        }
    }

    #[test]
    fn a_change_waits_until_the_lead_before_its_start() {
        let config = Config::default();
        let start: DateTime<Utc> = "2026-12-10T12:00:00Z".parse().unwrap();
        let lead = TimeDelta::seconds(config.scheduled_change_lead_seconds);
        assert!(waits(start, &config, start - lead - TimeDelta::seconds(1)));
        assert!(!waits(start, &config, start - lead));
        assert!(!waits(start, &config, start + TimeDelta::days(1)));
    }

    #[test]
    fn only_changes_whose_moment_came_are_due_oldest_first() {
        let changes = [
            change("2026-12-10T12:00:00Z"),
            change("2026-12-10T10:00:00Z"),
            change("2026-12-11T10:00:00Z"),
        ];
        let now = "2026-12-10T12:00:00Z".parse().unwrap();
        let due: Vec<_> = due(&changes, |c| c, now).iter().map(|c| c.due_at).collect();
        assert_eq!(due, [changes[1].due_at, changes[0].due_at]);
    }

    #[test]
    fn narrowing_keeps_only_the_instance_named_by_id_or_arn() {
        let event = json!({
            "id": "e", "resources": [
                "arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0",
                "i-0fedcba9876543210"
            ],
            "detail": {"affectedEntities": [
                {"entityValue": "i-0fedcba9876543210"},
                {"entityValue": "arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0"}
            ]}
        });
        let narrowed = narrow_to_instance(&event, "i-0123456789abcdef0");
        assert_eq!(narrowed["resources"].as_array().unwrap().len(), 1);
        assert_eq!(
            narrowed["detail"]["affectedEntities"],
            json!([{"entityValue": "arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0"}])
        );
        assert_eq!(narrowed["id"], "e");
    }
}
