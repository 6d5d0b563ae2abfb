//! Events for tests: the captured samples in `events/`, re-addressed to an instance of the test's
//! world and dated as the test needs, so every test exercises the real EventBridge shapes.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

fn sample(file: &str) -> Value {
    let path = format!("{}/../events/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {path}: {e}"))
}

fn stamp(mut ev: Value, id: &str, at: DateTime<Utc>) -> Value {
    ev["id"] = json!(id);
    ev["time"] = json!(at.format("%Y-%m-%dT%H:%M:%SZ").to_string());
    ev
}

fn arn_for(ev: &Value, instance_id: &str) -> String {
    let region = ev["region"].as_str().unwrap_or("us-east-1");
    let account = ev["account"].as_str().unwrap_or("123456789012");
    format!("arn:aws:ec2:{region}:{account}:instance/{instance_id}")
}

/// A Spot Instance Interruption Warning (terminate) for `instance_id`, sent at `at`.
pub fn spot_warning(instance_id: &str, at: DateTime<Utc>) -> Value {
    let mut ev = sample("aws.ec2-spot-instance-interruption-warning-terminate.json");
    ev["resources"] = json!([arn_for(&ev, instance_id)]);
    ev["detail"]["instance-id"] = json!(instance_id);
    stamp(ev, &uuid::Uuid::new_v4().to_string(), at)
}

/// An EC2 Instance State-change Notification: `instance_id` entered `state` (`stopping`,
/// `stopped`, `shutting-down`, `terminated`, ...) at `at`.
pub fn state_change(instance_id: &str, state: &str, at: DateTime<Utc>) -> Value {
    let mut ev = sample("aws.ec2-instance-state-change-notification-stopping.json");
    ev["resources"] = json!([arn_for(&ev, instance_id)]);
    ev["detail"]["instance-id"] = json!(instance_id);
    ev["detail"]["state"] = json!(state);
    stamp(ev, &uuid::Uuid::new_v4().to_string(), at)
}

/// An EC2 Instance Rebalance Recommendation for `instance_id`, sent at `at`.
pub fn rebalance(instance_id: &str, at: DateTime<Utc>) -> Value {
    let mut ev = sample("aws.ec2-instance-rebalance-recommendation.json");
    ev["resources"] = json!([arn_for(&ev, instance_id)]);
    ev["detail"]["instance-id"] = json!(instance_id);
    stamp(ev, &uuid::Uuid::new_v4().to_string(), at)
}

/// An AWS Health scheduled change naming the instances by ARN, starting at `start`.
pub fn health_by_arn(instance_ids: &[&str], at: DateTime<Utc>, start: DateTime<Utc>) -> Value {
    let mut ev = sample("aws.health-aws-health-event-instance-stop-scheduled-arn.json");
    let arns: Vec<String> = instance_ids.iter().map(|id| arn_for(&ev, id)).collect();
    ev["resources"] = json!(arns);
    ev["detail"]["affectedEntities"] =
        Value::Array(arns.iter().map(|a| json!({"entityValue": a})).collect());
    ev["detail"]["startTime"] = json!(start.format("%a, %d %b %Y %H:%M:%S GMT").to_string());
    stamp(ev, &uuid::Uuid::new_v4().to_string(), at)
}

/// The keeper's one-minute schedule firing at `at`.
pub fn scheduled_tick(at: DateTime<Utc>) -> Value {
    let ev = sample("aws.events-scheduled-event.json");
    stamp(ev, &uuid::Uuid::new_v4().to_string(), at)
}

/// An EC2 Instance-terminate Lifecycle Action: `instance_id` waits in `asg`'s terminate `hook`,
/// the action named by `token`; sent at `at`.
pub fn asg_terminate(
    instance_id: &str,
    asg: &str,
    hook: &str,
    token: &str,
    at: DateTime<Utc>,
) -> Value {
    let mut ev = sample("aws.autoscaling-ec2-instance-terminate-lifecycle-action.json");
    let region = ev["region"].as_str().unwrap_or("us-east-1").to_owned();
    let account = ev["account"].as_str().unwrap_or("123456789012").to_owned();
    ev["resources"] = json!([format!(
        "arn:aws:autoscaling:{region}:{account}:autoScalingGroup:59fcbb81-bd02-485d-80ce-563ef5b237bf:autoScalingGroupName/{asg}"
    )]);
    ev["detail"]["EC2InstanceId"] = json!(instance_id);
    ev["detail"]["AutoScalingGroupName"] = json!(asg);
    ev["detail"]["LifecycleHookName"] = json!(hook);
    ev["detail"]["LifecycleActionToken"] = json!(token);
    stamp(ev, &uuid::Uuid::new_v4().to_string(), at)
}

/// A sample that must be rejected as malformed.
pub fn malformed_missing_detail() -> Value {
    sample("aws.ec2-spot-instance-interruption-warning-malformed-missing-detail.json")
}
