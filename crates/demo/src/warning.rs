//! The Spot warning the demo delivers: the captured EventBridge event in `events/`,
//! re-addressed to the chosen spot node's instance and dated now, and the choice of that node;
//! and the keeper's scheduled tick, from its captured event too.

use serde_json::Value;

use crate::cluster::{ClusterView, NodeView};

/// The captured event the demo replays.
const SPOT_WARNING: &str =
    include_str!("../../../events/aws.ec2-spot-instance-interruption-warning-terminate.json");

/// The keeper's schedule's captured event.
const SCHEDULED_TICK: &str = include_str!("../../../events/aws.events-scheduled-event.json");

/// A keeper tick, dated now.
pub fn scheduled_tick() -> Result<Value, serde_json::Error> {
    let mut ev: Value = serde_json::from_str(SCHEDULED_TICK)?;
    ev["id"] = Value::String(uuid::Uuid::new_v4().to_string());
    ev["time"] = Value::String(chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string());
    Ok(ev)
}

/// The spot node to interrupt: the Ready one with the most pods that answer requests, so the
/// traffic shows what the interruption costs; among equals the first by name.
pub fn pick_spot_node(view: &ClusterView) -> Option<&NodeView> {
    let serving = |n: &NodeView| {
        view.pods
            .iter()
            .filter(|p| p.serves_http && p.node.as_deref() == Some(n.name.as_str()))
            .count()
    };
    view.nodes
        .iter()
        .filter(|n| n.capacity_type == "SPOT" && n.ready && n.instance_id.is_some())
        .min_by(|a, b| {
            serving(b)
                .cmp(&serving(a))
                .then_with(|| a.name.cmp(&b.name))
        })
}

/// The captured event, re-addressed to `instance_id` and dated now.
pub fn spot_warning(instance_id: &str) -> Result<Value, serde_json::Error> {
    let mut ev: Value = serde_json::from_str(SPOT_WARNING)?;
    ev["id"] = Value::String(uuid::Uuid::new_v4().to_string());
    ev["time"] = Value::String(chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string());
    let arn = ev["resources"][0].as_str().unwrap_or_default();
    let prefix = arn
        .rsplit_once('/')
        .map(|(p, _)| p.to_string())
        .unwrap_or_default();
    ev["resources"] = serde_json::json!([format!("{prefix}/{instance_id}")]);
    ev["detail"]["instance-id"] = Value::String(instance_id.to_string());
    Ok(ev)
}
