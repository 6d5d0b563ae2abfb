//! The load balancer's configuration as the ELBv2 API describes it: listeners with their rules
//! and actions, target groups with their health check settings, attributes and registered
//! targets. Field names serialize as the API's (`TargetGroupArn`, `HealthCheckIntervalSeconds`,
//! `deregistration_delay.timeout_seconds`, …) so the bed can fill it from moto's ELBv2 answers.
//!
//! Optional settings stay `Option` where the API leaves them optional; the documented default
//! is applied by the accessor beside it (several defaults depend on the target type).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// One load balancer: its listeners, the target groups they reach and its attributes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AlbConfig {
    #[serde(default)]
    pub listeners: Vec<Listener>,
    #[serde(default)]
    pub target_groups: Vec<TargetGroup>,
    #[serde(default)]
    pub attributes: LoadBalancerAttributes,
}

/// Load balancer attributes (DescribeLoadBalancerAttributes keys).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadBalancerAttributes {
    /// "The default is 60 seconds."
    /// <https://docs.aws.amazon.com/elasticloadbalancing/latest/application/edit-load-balancer-attributes.html#connection-idle-timeout>
    #[serde(
        rename = "idle_timeout.timeout_seconds",
        default = "default_idle_timeout"
    )]
    pub idle_timeout_seconds: u64,
}

fn default_idle_timeout() -> u64 {
    60
}

impl Default for LoadBalancerAttributes {
    fn default() -> Self {
        Self {
            idle_timeout_seconds: default_idle_timeout(),
        }
    }
}

impl LoadBalancerAttributes {
    /// Reads the API's key/value list; keys albsim does not model are ignored.
    pub fn from_key_values<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ConfigError> {
        let mut out = Self::default();
        for (key, value) in pairs {
            if key == "idle_timeout.timeout_seconds" {
                out.idle_timeout_seconds = parse_attr(key, value)?;
            }
        }
        Ok(out)
    }
}

/// A listener (the API's `Listener` plus its `Rule`s). Protocol is HTTP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Listener {
    pub port: u16,
    #[serde(default)]
    pub rules: Vec<Rule>,
    pub default_actions: Vec<Action>,
}

/// A listener rule. Lower priority numbers are evaluated first; the default rule (the
/// listener's `DefaultActions`) last.
/// <https://docs.aws.amazon.com/elasticloadbalancing/latest/application/listener-update-rules.html>
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Rule {
    pub priority: u32,
    #[serde(default)]
    pub conditions: Vec<RuleCondition>,
    pub actions: Vec<Action>,
}

/// A rule condition (the API's `RuleCondition`): `Field` names the kind, the matching
/// `*Config` holds the values. The legacy top-level `Values` is accepted for path-pattern and
/// host-header.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RuleCondition {
    pub field: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_pattern_config: Option<ValuesConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_header_config: Option<ValuesConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_request_method_config: Option<ValuesConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_header_config: Option<HttpHeaderConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_string_config: Option<QueryStringConfig>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ValuesConfig {
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HttpHeaderConfig {
    pub http_header_name: String,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueryStringConfig {
    pub values: Vec<QueryStringKeyValue>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueryStringKeyValue {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub value: String,
}

/// A rule action (the API's `Action`). `Type` is `forward`, `fixed-response` or `redirect`;
/// other types (authentication) are not modelled and are skipped when a rule has a later
/// terminal action.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Action {
    #[serde(rename = "Type")]
    pub action_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<u32>,
    /// The single-target-group shorthand of `forward`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_group_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_config: Option<ForwardConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_response_config: Option<FixedResponseConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_config: Option<RedirectConfig>,
}

impl Action {
    /// A `forward` action to one target group.
    pub fn forward(target_group_arn: impl Into<String>) -> Self {
        Self {
            action_type: "forward".into(),
            target_group_arn: Some(target_group_arn.into()),
            ..Self::default()
        }
    }

    /// A `forward` action spread over weighted target groups.
    pub fn forward_weighted<S: Into<String>>(groups: impl IntoIterator<Item = (S, u32)>) -> Self {
        Self {
            action_type: "forward".into(),
            forward_config: Some(ForwardConfig {
                target_groups: groups
                    .into_iter()
                    .map(|(arn, weight)| TargetGroupTuple {
                        target_group_arn: arn.into(),
                        weight: Some(weight),
                    })
                    .collect(),
                target_group_stickiness_config: None,
            }),
            ..Self::default()
        }
    }

    /// A `fixed-response` action.
    pub fn fixed_response(status_code: u16, content_type: &str, body: &str) -> Self {
        Self {
            action_type: "fixed-response".into(),
            fixed_response_config: Some(FixedResponseConfig {
                status_code: status_code.to_string(),
                content_type: Some(content_type.into()),
                message_body: Some(body.into()),
            }),
            ..Self::default()
        }
    }
}

/// The API's `ForwardActionConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ForwardConfig {
    pub target_groups: Vec<TargetGroupTuple>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_group_stickiness_config: Option<TargetGroupStickinessConfig>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TargetGroupTuple {
    pub target_group_arn: String,
    /// 0–999. "If you specify only one target group, the weight is 1 by default" (and so for
    /// every group given without one).
    /// <https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_TargetGroupTuple.html>
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

/// Accepted so the bed can pass it through; requests are not kept on one target group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TargetGroupStickinessConfig {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<u32>,
}

/// The API's `FixedResponseActionConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FixedResponseConfig {
    /// "The HTTP response code (2XX, 4XX, or 5XX)", a string in the API.
    pub status_code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_body: Option<String>,
}

/// The API's `RedirectActionConfig`. Components left out keep the request's value
/// (`#{host}`, `#{path}`, …).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RedirectConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// `HTTP_301` or `HTTP_302`.
    pub status_code: String,
}

/// How a target group's targets are named.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetType {
    #[default]
    Instance,
    Ip,
    Lambda,
}

/// A target group (the API's `TargetGroup`, its attributes and its registered targets).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TargetGroup {
    pub target_group_arn: String,
    /// "The default is instance."
    /// <https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_CreateTargetGroup.html>
    #[serde(default)]
    pub target_type: TargetType,
    /// Only HTTP is served; kept for the bed's round trip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// The traffic port; not used by lambda target groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(flatten)]
    pub health_check: HealthCheck,
    #[serde(default)]
    pub attributes: TargetGroupAttributes,
    #[serde(default)]
    pub targets: Vec<Target>,
}

impl TargetGroup {
    /// A target group of the given type with every setting at its default and no targets.
    pub fn new(arn: impl Into<String>, target_type: TargetType, port: Option<u16>) -> Self {
        Self {
            target_group_arn: arn.into(),
            target_type,
            protocol: Some("HTTP".into()),
            port,
            health_check: HealthCheck::default(),
            attributes: TargetGroupAttributes::default(),
            targets: Vec::new(),
        }
    }
}

/// Health check settings, flattened into the target group as the API has them. Defaults per
/// target type are those of CreateTargetGroup and the health check guide:
/// <https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_CreateTargetGroup.html>,
/// <https://docs.aws.amazon.com/elasticloadbalancing/latest/application/target-group-health-checks.html>.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HealthCheck {
    #[serde(
        rename = "HealthCheckEnabled",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub enabled: Option<bool>,
    #[serde(
        rename = "HealthCheckPath",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub path: Option<String>,
    /// `traffic-port` or a port number, a string in the API.
    #[serde(
        rename = "HealthCheckPort",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub port: Option<String>,
    #[serde(
        rename = "HealthCheckIntervalSeconds",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub interval_seconds: Option<u32>,
    #[serde(
        rename = "HealthCheckTimeoutSeconds",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout_seconds: Option<u32>,
    #[serde(
        rename = "HealthyThresholdCount",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub healthy_threshold: Option<u32>,
    #[serde(
        rename = "UnhealthyThresholdCount",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub unhealthy_threshold: Option<u32>,
    #[serde(rename = "Matcher", default, skip_serializing_if = "Option::is_none")]
    pub matcher: Option<Matcher>,
}

/// The API's `Matcher`: `HttpCode` is "200", "200,202" or "200-299".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Matcher {
    pub http_code: String,
}

/// Where health checks are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthCheckPort {
    TrafficPort,
    Port(u16),
}

impl HealthCheck {
    /// "If the target type is lambda, health checks are disabled by default" and enabled
    /// otherwise (CreateTargetGroup, `HealthCheckEnabled`).
    pub fn enabled(&self, target_type: TargetType) -> bool {
        self.enabled.unwrap_or(target_type != TargetType::Lambda)
    }

    /// Default "/" (CreateTargetGroup, `HealthCheckPath`).
    pub fn path(&self) -> &str {
        self.path.as_deref().unwrap_or("/")
    }

    /// Default `traffic-port` (CreateTargetGroup, `HealthCheckPort`).
    pub fn port(&self) -> Result<HealthCheckPort, ConfigError> {
        match self.port.as_deref() {
            None | Some("traffic-port") => Ok(HealthCheckPort::TrafficPort),
            Some(other) => {
                other
                    .parse()
                    .map(HealthCheckPort::Port)
                    .map_err(|source| ConfigError::BadNumber {
                        field: "HealthCheckPort".into(),
                        value: other.into(),
                        source,
                    })
            }
        }
    }

    /// "If the target type is instance or ip, the default is 30 seconds. If the target group
    /// protocol is GENEVE, the default is 10 seconds. If the target type is lambda, the default
    /// is 35 seconds." (CreateTargetGroup, `HealthCheckIntervalSeconds`)
    pub fn interval_seconds(&self, target_type: TargetType) -> u32 {
        self.interval_seconds.unwrap_or(match target_type {
            TargetType::Lambda => 35,
            _ => 30,
        })
    }

    /// "For target groups with a protocol of HTTP, HTTPS, or GENEVE, the default is 5 seconds.
    /// … If the target type is lambda, the default is 30 seconds."
    /// (CreateTargetGroup, `HealthCheckTimeoutSeconds`)
    pub fn timeout_seconds(&self, target_type: TargetType) -> u32 {
        self.timeout_seconds.unwrap_or(match target_type {
            TargetType::Lambda => 30,
            _ => 5,
        })
    }

    /// "For target groups with a protocol of HTTP or HTTPS, the default is 5. … If the target
    /// type is lambda, the default is 5." (CreateTargetGroup, `HealthyThresholdCount`)
    pub fn healthy_threshold(&self) -> u32 {
        self.healthy_threshold.unwrap_or(5).max(1)
    }

    /// "For target groups with a protocol of HTTP or HTTPS, the default is 2. … If the target
    /// type is lambda, the default is 5." (CreateTargetGroup, `UnhealthyThresholdCount`)
    pub fn unhealthy_threshold(&self, target_type: TargetType) -> u32 {
        self.unhealthy_threshold
            .unwrap_or(match target_type {
                TargetType::Lambda => 5,
                _ => 2,
            })
            .max(1)
    }

    /// "For target groups with a protocol of HTTP or HTTPS, the default is 200." (`Matcher`)
    pub fn matcher(&self) -> &str {
        self.matcher
            .as_ref()
            .map(|m| m.http_code.as_str())
            .unwrap_or("200")
    }
}

/// Whether `status` is one of `matcher`'s codes ("200", "200,202", "200-299").
pub fn matcher_accepts(matcher: &str, status: u16) -> bool {
    matcher
        .split(',')
        .map(str::trim)
        .any(|part| match part.split_once('-') {
            Some((lo, hi)) => match (lo.trim().parse::<u16>(), hi.trim().parse::<u16>()) {
                (Ok(lo), Ok(hi)) => (lo..=hi).contains(&status),
                _ => false,
            },
            None => part.parse::<u16>() == Ok(status),
        })
}

/// How a target group picks among its routable targets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadBalancingAlgorithm {
    #[default]
    RoundRobin,
    LeastOutstandingRequests,
}

/// Target group attributes (DescribeTargetGroupAttributes keys), with the defaults of
/// <https://docs.aws.amazon.com/elasticloadbalancing/latest/application/edit-target-group-attributes.html>.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetGroupAttributes {
    /// "The default value is 300 seconds."
    /// <https://docs.aws.amazon.com/elasticloadbalancing/latest/application/edit-target-group-attributes.html#deregistration-delay>
    #[serde(
        rename = "deregistration_delay.timeout_seconds",
        default = "default_deregistration_delay"
    )]
    pub deregistration_delay_seconds: u64,
    /// "The default is round_robin."
    /// <https://docs.aws.amazon.com/elasticloadbalancing/latest/application/edit-target-group-attributes.html#modify-routing-algorithm>
    #[serde(rename = "load_balancing.algorithm.type", default)]
    pub load_balancing_algorithm: LoadBalancingAlgorithm,
    /// "The default is false." Off: the event carries `headers` and `queryStringParameters`
    /// with the last value of each; on: `multiValueHeaders` and
    /// `multiValueQueryStringParameters`.
    /// <https://docs.aws.amazon.com/elasticloadbalancing/latest/application/lambda-functions.html#multi-value-headers>
    #[serde(rename = "lambda.multi_value_headers.enabled", default)]
    pub lambda_multi_value_headers: bool,
}

fn default_deregistration_delay() -> u64 {
    300
}

impl Default for TargetGroupAttributes {
    fn default() -> Self {
        Self {
            deregistration_delay_seconds: default_deregistration_delay(),
            load_balancing_algorithm: LoadBalancingAlgorithm::default(),
            lambda_multi_value_headers: false,
        }
    }
}

impl TargetGroupAttributes {
    /// Reads the API's key/value list (all values are strings there); keys albsim does not
    /// model are ignored.
    pub fn from_key_values<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ConfigError> {
        let mut out = Self::default();
        for (key, value) in pairs {
            match key {
                "deregistration_delay.timeout_seconds" => {
                    out.deregistration_delay_seconds = parse_attr(key, value)?
                }
                "load_balancing.algorithm.type" => {
                    out.load_balancing_algorithm = match value {
                        "round_robin" => LoadBalancingAlgorithm::RoundRobin,
                        "least_outstanding_requests" => {
                            LoadBalancingAlgorithm::LeastOutstandingRequests
                        }
                        other => {
                            return Err(ConfigError::Unsupported {
                                what: format!("load_balancing.algorithm.type {other}"),
                            });
                        }
                    }
                }
                "lambda.multi_value_headers.enabled" => {
                    out.lambda_multi_value_headers = value.eq_ignore_ascii_case("true")
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

fn parse_attr<T: std::str::FromStr<Err = std::num::ParseIntError>>(
    key: &str,
    value: &str,
) -> Result<T, ConfigError> {
    value.parse().map_err(|source| ConfigError::BadNumber {
        field: key.into(),
        value: value.into(),
        source,
    })
}

/// A registered target (the API's `TargetDescription`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Target {
    /// Instance id, IP address, or function ARN.
    pub id: String,
    /// Overrides the target group's port; absent for lambda targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
}

impl Target {
    pub fn new(id: impl Into<String>, port: Option<u16>) -> Self {
        Self {
            id: id.into(),
            port,
            availability_zone: None,
        }
    }
}

/// A target's identity within its group: the API treats the same id on two ports as two targets.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetKey {
    pub id: String,
    pub port: Option<u16>,
}

impl TargetGroup {
    /// The key of `target`, its port defaulted to the group's.
    pub fn key_of(&self, target: &Target) -> TargetKey {
        TargetKey {
            id: target.id.clone(),
            port: target.port.or(self.port),
        }
    }
}

impl AlbConfig {
    /// Checks references and ranges so that a bad configuration is refused whole.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut arns = BTreeMap::new();
        for tg in &self.target_groups {
            if arns.insert(tg.target_group_arn.as_str(), tg).is_some() {
                return Err(ConfigError::Duplicate {
                    what: format!("target group {}", tg.target_group_arn),
                });
            }
            tg.health_check.port()?;
            if tg.target_type != TargetType::Lambda && tg.port.is_none() {
                return Err(ConfigError::Missing {
                    what: format!("Port of target group {}", tg.target_group_arn),
                });
            }
            // "You can register only one Lambda function" per target group.
            if tg.target_type == TargetType::Lambda && tg.targets.len() > 1 {
                return Err(ConfigError::Unsupported {
                    what: format!(
                        "{} lambda targets in {}",
                        tg.targets.len(),
                        tg.target_group_arn
                    ),
                });
            }
        }
        let mut ports = BTreeMap::new();
        for listener in &self.listeners {
            if ports.insert(listener.port, ()).is_some() {
                return Err(ConfigError::Duplicate {
                    what: format!("listener port {}", listener.port),
                });
            }
            let mut priorities = BTreeMap::new();
            for rule in &listener.rules {
                if priorities.insert(rule.priority, ()).is_some() {
                    return Err(ConfigError::Duplicate {
                        what: format!("priority {} on listener {}", rule.priority, listener.port),
                    });
                }
                crate::routing::compile_conditions(&rule.conditions)?;
                crate::routing::compile_actions(&rule.actions, &arns)?;
            }
            crate::routing::compile_actions(&listener.default_actions, &arns)?;
        }
        Ok(())
    }

    pub fn target_group(&self, arn: &str) -> Option<&TargetGroup> {
        self.target_groups
            .iter()
            .find(|tg| tg.target_group_arn == arn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_matcher_accepts_lists_and_ranges() {
        assert!(matcher_accepts("200", 200));
        assert!(!matcher_accepts("200", 204));
        assert!(matcher_accepts("200,204", 204));
        assert!(matcher_accepts("200-299", 250));
        assert!(!matcher_accepts("200-299", 301));
    }

    #[test]
    fn the_api_names_and_documented_defaults_come_from_json() {
        let tg: TargetGroup = serde_json::from_value(serde_json::json!({
            "TargetGroupArn": "arn:tg",
            "TargetType": "ip",
            "Port": 8080,
            "HealthCheckPath": "/healthz",
            "Attributes": {"deregistration_delay.timeout_seconds": 30},
            "Targets": [{"Id": "10.0.0.1"}]
        }))
        .expect("parses");
        assert_eq!(tg.target_type, TargetType::Ip);
        assert_eq!(tg.health_check.path(), "/healthz");
        assert_eq!(tg.health_check.interval_seconds(tg.target_type), 30);
        assert_eq!(tg.health_check.healthy_threshold(), 5);
        assert_eq!(tg.health_check.unhealthy_threshold(tg.target_type), 2);
        assert_eq!(tg.attributes.deregistration_delay_seconds, 30);
        assert_eq!(
            tg.attributes.load_balancing_algorithm,
            LoadBalancingAlgorithm::RoundRobin
        );
        assert!(!tg.health_check.enabled(TargetType::Lambda));
        let attrs = TargetGroupAttributes::from_key_values([
            (
                "load_balancing.algorithm.type",
                "least_outstanding_requests",
            ),
            ("stickiness.enabled", "false"),
        ])
        .expect("parses");
        assert_eq!(
            attrs.load_balancing_algorithm,
            LoadBalancingAlgorithm::LeastOutstandingRequests
        );
    }
}
