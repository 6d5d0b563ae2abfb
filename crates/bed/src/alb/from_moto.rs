//! The ALB stand-in's configuration, read from moto's ELBv2 state and nothing else: the load
//! balancer's listeners and their rules, the target groups they forward to with their health
//! checks, attributes and registered targets. The configuration is written in the ELBv2 API's
//! own field names (`albsim::AlbConfig` deserializes them), so this module only transcribes
//! DescribeListeners, DescribeRules, DescribeTargetGroups, DescribeTargetGroupAttributes,
//! DescribeLoadBalancerAttributes and DescribeTargetHealth answers.

use aws_sdk_elasticloadbalancingv2::Client;
use aws_sdk_elasticloadbalancingv2::types::{Action, RuleCondition};
use serde_json::{Value, json};

use crate::error::{BedError, aws};

/// An action as the API writes it.
fn action(a: &Action) -> Value {
    let mut v = json!({ "Type": a.r#type().map(|t| t.as_str()).unwrap_or("forward") });
    if let Some(o) = a.order() {
        v["Order"] = json!(o);
    }
    if let Some(arn) = a.target_group_arn() {
        v["TargetGroupArn"] = json!(arn);
    }
    if let Some(f) = a.forward_config() {
        v["ForwardConfig"] = json!({
            "TargetGroups": f.target_groups().iter().map(|t| json!({
                "TargetGroupArn": t.target_group_arn(),
                "Weight": t.weight(),
            })).collect::<Vec<_>>()
        });
        if let Some(s) = f.target_group_stickiness_config() {
            v["ForwardConfig"]["TargetGroupStickinessConfig"] = json!({
                "Enabled": s.enabled().unwrap_or(false),
                "DurationSeconds": s.duration_seconds(),
            });
        }
    }
    if let Some(f) = a.fixed_response_config() {
        v["FixedResponseConfig"] = json!({
            "StatusCode": f.status_code(),
            "ContentType": f.content_type(),
            "MessageBody": f.message_body(),
        });
    }
    v
}

/// A rule condition as the API writes it.
fn condition(c: &RuleCondition) -> Value {
    let values = |v: &[String]| json!({ "Values": v });
    let mut out = json!({ "Field": c.field() });
    if !c.values().is_empty() {
        out["Values"] = json!(c.values());
    }
    if let Some(p) = c.path_pattern_config() {
        out["PathPatternConfig"] = values(p.values());
    }
    if let Some(h) = c.host_header_config() {
        out["HostHeaderConfig"] = values(h.values());
    }
    if let Some(m) = c.http_request_method_config() {
        out["HttpRequestMethodConfig"] = values(m.values());
    }
    if let Some(h) = c.http_header_config() {
        out["HttpHeaderConfig"] = json!({
            "HttpHeaderName": h.http_header_name(),
            "Values": h.values(),
        });
    }
    out
}

/// Strip JSON nulls (an absent optional field, as the API omits it).
fn without_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

/// The configuration of the load balancer `lb_arn`, as JSON in the API's field names.
pub async fn read(elb: &Client, lb_arn: &str) -> Result<Value, BedError> {
    let listeners = elb
        .describe_listeners()
        .load_balancer_arn(lb_arn)
        .send()
        .await
        .map_err(aws("DescribeListeners"))?;
    let mut out_listeners = Vec::new();
    for l in listeners.listeners() {
        let Some(listener_arn) = l.listener_arn() else {
            continue;
        };
        let rules = elb
            .describe_rules()
            .listener_arn(listener_arn)
            .send()
            .await
            .map_err(aws("DescribeRules"))?;
        let rules: Vec<Value> = rules
            .rules()
            .iter()
            .filter(|r| !r.is_default().unwrap_or(false))
            .filter_map(|r| {
                let priority: u32 = r.priority()?.parse().ok()?;
                Some(json!({
                    "Priority": priority,
                    "Conditions": r.conditions().iter().map(condition).collect::<Vec<_>>(),
                    "Actions": r.actions().iter().map(action).collect::<Vec<_>>(),
                }))
            })
            .collect();
        out_listeners.push(json!({
            "Port": l.port(),
            "Rules": rules,
            "DefaultActions": l.default_actions().iter().map(action).collect::<Vec<_>>(),
        }));
    }

    let groups = elb
        .describe_target_groups()
        .load_balancer_arn(lb_arn)
        .send()
        .await
        .map_err(aws("DescribeTargetGroups"))?;
    let mut out_groups = Vec::new();
    for g in groups.target_groups() {
        let Some(arn) = g.target_group_arn() else {
            continue;
        };
        let attributes = elb
            .describe_target_group_attributes()
            .target_group_arn(arn)
            .send()
            .await
            .map_err(aws("DescribeTargetGroupAttributes"))?;
        let mut attrs = serde_json::Map::new();
        for a in attributes.attributes() {
            if let (Some(k), Some(v)) = (a.key(), a.value()) {
                attrs.insert(k.to_owned(), attribute_value(k, v));
            }
        }
        let health = elb
            .describe_target_health()
            .target_group_arn(arn)
            .send()
            .await
            .map_err(aws("DescribeTargetHealth"))?;
        let targets: Vec<Value> = health
            .target_health_descriptions()
            .iter()
            .filter_map(|d| d.target())
            .map(|t| {
                json!({
                    "Id": t.id(),
                    "Port": t.port(),
                    "AvailabilityZone": t.availability_zone(),
                })
            })
            .collect();
        out_groups.push(json!({
            "TargetGroupArn": arn,
            "TargetType": g.target_type().map(|t| t.as_str()),
            "Protocol": g.protocol().map(|p| p.as_str()),
            "Port": g.port(),
            "HealthCheckEnabled": g.health_check_enabled(),
            "HealthCheckPath": g.health_check_path(),
            "HealthCheckPort": g.health_check_port(),
            "HealthCheckIntervalSeconds": g.health_check_interval_seconds(),
            "HealthCheckTimeoutSeconds": g.health_check_timeout_seconds(),
            "HealthyThresholdCount": g.healthy_threshold_count(),
            "UnhealthyThresholdCount": g.unhealthy_threshold_count(),
            "Matcher": g.matcher().and_then(|m| m.http_code()).map(|c| json!({"HttpCode": c})),
            "Attributes": Value::Object(attrs),
            "Targets": targets,
        }));
    }

    let lb_attributes = elb
        .describe_load_balancer_attributes()
        .load_balancer_arn(lb_arn)
        .send()
        .await
        .map_err(aws("DescribeLoadBalancerAttributes"))?;
    let mut lb_attrs = serde_json::Map::new();
    for a in lb_attributes.attributes() {
        if let (Some(k), Some(v)) = (a.key(), a.value()) {
            lb_attrs.insert(k.to_owned(), attribute_value(k, v));
        }
    }
    Ok(without_nulls(json!({
        "Listeners": out_listeners,
        "TargetGroups": out_groups,
        "Attributes": Value::Object(lb_attrs),
    })))
}

/// Attributes travel as strings; the configuration reads numbers and booleans as such.
fn attribute_value(_key: &str, value: &str) -> Value {
    if let Ok(n) = value.parse::<u64>() {
        return json!(n);
    }
    match value {
        "true" => json!(true),
        "false" => json!(false),
        other => json!(other),
    }
}
