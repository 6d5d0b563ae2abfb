//! A captured event aimed at another instance, or re-dated: what `costop replay --instance` and
//! `--now` do to a file before delivering it. Pure functions over the raw JSON, so the event is
//! then parsed and delivered exactly as EventBridge would deliver the edited one.

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use serde_json::Value;

use super::field::health_time;
use super::{is_instance_id, resolve_instance_id};

/// The event could not be aimed at the instance; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetargetError {
    /// The id given is not an EC2 instance id.
    #[error("{0:?} is not an EC2 instance id (i- followed by 8 or 17 lower-case hex digits)")]
    NotAnInstanceId(String),
    /// The event names no instance to replace.
    #[error(
        "the event names no EC2 instance (detail, resources or Health entities) to aim at another"
    )]
    NamesNoInstance,
}

/// `event` with every place that names an instance naming `instance_id` instead: the detail's
/// `instance-id` (Spot warning, rebalance, state change) or `EC2InstanceId` (Auto Scaling
/// lifecycle action), the Health `affectedEntities` (one left per instance; an ARN stays an
/// ARN) and `resources` (instance ARNs and ids).
pub fn aim_at_instance(event: &Value, instance_id: &str) -> Result<Value, RetargetError> {
    if !is_instance_id(instance_id) {
        return Err(RetargetError::NotAnInstanceId(instance_id.to_owned()));
    }
    let mut out = event.clone();
    let mut named = false;
    if let Some(detail) = out.get_mut("detail").and_then(Value::as_object_mut) {
        for key in ["instance-id", "EC2InstanceId"] {
            if let Some(v) = detail.get_mut(key)
                && v.is_string()
            {
                *v = Value::String(instance_id.to_owned());
                named = true;
            }
        }
        if let Some(entities) = detail
            .get_mut("affectedEntities")
            .and_then(Value::as_array_mut)
        {
            let mut kept: Vec<Value> = Vec::new();
            for mut e in entities.drain(..) {
                if let Some(v) = e.get_mut("entityValue")
                    && let Some(aimed) = v.as_str().and_then(|s| replaced(s, instance_id))
                {
                    *v = Value::String(aimed);
                    named = true;
                    if kept
                        .iter()
                        .any(|k| k.get("entityValue") == e.get("entityValue"))
                    {
                        continue;
                    }
                }
                kept.push(e);
            }
            *entities = kept;
        }
    }
    if let Some(resources) = out.get_mut("resources").and_then(Value::as_array_mut) {
        let mut kept: Vec<Value> = Vec::new();
        for r in resources.drain(..) {
            let r = match r.as_str().and_then(|s| replaced(s, instance_id)) {
                Some(aimed) => {
                    named = true;
                    Value::String(aimed)
                }
                None => r,
            };
            if !kept.contains(&r) {
                kept.push(r);
            }
        }
        *resources = kept;
    }
    if named {
        Ok(out)
    } else {
        Err(RetargetError::NamesNoInstance)
    }
}

/// `value` (an instance id or ARN) naming `instance_id` instead, in the same form.
fn replaced(value: &str, instance_id: &str) -> Option<String> {
    let old = resolve_instance_id(value)?;
    Some(value.replacen(old, instance_id, 1))
}

/// `event` moved to `now`: its `time` becomes `now` (whole seconds, as EventBridge writes it),
/// and an AWS Health event's `startTime` and `endTime` move with it, keeping their distance
/// from the event's time (a retirement announced two days ahead is still two days ahead).
pub fn redate(event: &Value, now: DateTime<Utc>) -> Value {
    let now = now.trunc_subsecs(0);
    let mut out = event.clone();
    let before = out
        .get("time")
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    if let Some(o) = out.as_object_mut() {
        o.insert(
            "time".into(),
            Value::String(now.to_rfc3339_opts(SecondsFormat::Secs, true)),
        );
    }
    let (Some(before), Some(detail)) =
        (before, out.get_mut("detail").and_then(Value::as_object_mut))
    else {
        return out;
    };
    for key in ["startTime", "endTime"] {
        if let Some(v) = detail.get_mut(key)
            && let Some(t) = v.as_str().and_then(health_time)
        {
            let moved = t + (now - before);
            *v = Value::String(moved.format(HEALTH_TIME_FORMAT).to_string());
        }
    }
    out
}

/// How AWS Health writes its times (RFC 2822 in GMT).
const HEALTH_TIME_FORMAT: &str = "%a, %d %b %Y %H:%M:%S GMT";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NEW: &str = "i-0fedcba9876543210";

    #[test]
    fn a_spot_warning_is_aimed_in_its_detail_and_resources() {
        let e = json!({
            "resources": ["arn:aws:ec2:us-east-2a:instance/i-1234567890abcdef0"],
            "detail": {"instance-id": "i-1234567890abcdef0", "instance-action": "terminate"}
        });
        let a = aim_at_instance(&e, NEW).unwrap();
        assert_eq!(a["detail"]["instance-id"], NEW);
        assert_eq!(
            a["resources"],
            json!([format!("arn:aws:ec2:us-east-2a:instance/{NEW}")])
        );
        assert_eq!(a["detail"]["instance-action"], "terminate");
    }

    #[test]
    fn a_health_event_keeps_one_entity_in_the_form_it_had() {
        let e = json!({
            "resources": ["i-1234567890abcdef0", "i-0abcdef1234567890"],
            "detail": {"affectedEntities": [
                {"entityValue": "arn:aws:ec2:us-east-1:123456789012:instance/i-1234567890abcdef0"},
                {"entityValue": "arn:aws:ec2:us-east-1:123456789012:instance/i-0abcdef1234567890"}
            ]}
        });
        let a = aim_at_instance(&e, NEW).unwrap();
        assert_eq!(
            a["detail"]["affectedEntities"],
            json!([{"entityValue": format!("arn:aws:ec2:us-east-1:123456789012:instance/{NEW}")}])
        );
        assert_eq!(a["resources"], json!([NEW]));
    }

    #[test]
    fn an_asg_lifecycle_action_is_aimed_at_its_ec2_instance_id() {
        let e = json!({"resources": ["arn:aws:autoscaling:us-east-1:1:autoScalingGroup:x"],
                       "detail": {"EC2InstanceId": "i-1234567890abcdef0"}});
        let a = aim_at_instance(&e, NEW).unwrap();
        assert_eq!(a["detail"]["EC2InstanceId"], NEW);
        assert_eq!(
            a["resources"], e["resources"],
            "the group's ARN is not an instance"
        );
    }

    #[test]
    fn a_non_instance_id_or_an_event_without_an_instance_is_refused() {
        let e = json!({"detail": {"instance-id": "i-1234567890abcdef0"}});
        assert_eq!(
            aim_at_instance(&e, "node-1"),
            Err(RetargetError::NotAnInstanceId("node-1".into()))
        );
        assert_eq!(
            aim_at_instance(&e, "i-1234567890ABCDEF0"),
            Err(RetargetError::NotAnInstanceId("i-1234567890ABCDEF0".into()))
        );
        let tick = json!({"source": "aws.events", "resources": ["arn:aws:events:us-east-1:1:rule/x"], "detail": {}});
        assert_eq!(
            aim_at_instance(&tick, NEW),
            Err(RetargetError::NamesNoInstance)
        );
    }

    #[test]
    fn redating_sets_the_time_in_whole_seconds() {
        let now: DateTime<Utc> = "2026-12-07T01:02:03.456Z".parse().unwrap();
        assert_eq!(
            redate(&json!({"time": "x"}), now)["time"],
            "2026-12-07T01:02:03Z"
        );
    }

    #[test]
    fn redating_a_health_event_keeps_its_start_as_far_ahead() {
        let e = json!({"time": "2025-03-12T10:00:00Z", "detail": {
            "startTime": "Fri, 14 Mar 2025 10:00:00 GMT", "endTime": "Fri, 14 Mar 2025 11:00:00 GMT"}});
        let now: DateTime<Utc> = "2026-12-07T01:00:00Z".parse().unwrap();
        let r = redate(&e, now);
        assert_eq!(r["detail"]["startTime"], "Wed, 09 Dec 2026 01:00:00 GMT");
        assert_eq!(r["detail"]["endTime"], "Wed, 09 Dec 2026 02:00:00 GMT");
    }
}
