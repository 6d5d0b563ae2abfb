//! Target health: the states and reason codes DescribeTargetHealth reports, and the health
//! checker that moves each target between them.
//!
//! Rules, from <https://docs.aws.amazon.com/elasticloadbalancing/latest/application/target-group-health-checks.html>:
//! "After your target is registered, it must pass one health check to be considered healthy";
//! `UnhealthyThresholdCount` consecutive failures make a target unhealthy, and
//! `HealthyThresholdCount` consecutive successes make an unhealthy target healthy again.
//! States and reasons: <https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_TargetHealth.html>.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::alb::Shared;
use crate::config::{HealthCheckPort, TargetGroup, TargetType, matcher_accepts};
use crate::targets::{GroupState, TargetState};

/// `TargetHealth.State`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthState {
    Initial,
    Healthy,
    Unhealthy,
    Unused,
    Draining,
    Unavailable,
}

/// `TargetHealth.Reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reason {
    #[serde(rename = "Elb.RegistrationInProgress")]
    RegistrationInProgress,
    #[serde(rename = "Elb.InitialHealthChecking")]
    InitialHealthChecking,
    #[serde(rename = "Target.ResponseCodeMismatch")]
    ResponseCodeMismatch,
    #[serde(rename = "Target.Timeout")]
    Timeout,
    #[serde(rename = "Target.FailedHealthChecks")]
    FailedHealthChecks,
    #[serde(rename = "Target.NotInUse")]
    NotInUse,
    #[serde(rename = "Target.DeregistrationInProgress")]
    DeregistrationInProgress,
    #[serde(rename = "Target.HealthCheckDisabled")]
    HealthCheckDisabled,
}

impl Reason {
    /// The `Description` AWS gives with the reason.
    pub fn description(self) -> &'static str {
        match self {
            Reason::RegistrationInProgress => "Target registration is in progress",
            Reason::InitialHealthChecking => "Initial health checks in progress",
            Reason::ResponseCodeMismatch => "Health checks failed",
            Reason::Timeout => "Request timed out",
            Reason::FailedHealthChecks => "Health checks failed",
            Reason::NotInUse => {
                "Target group is not configured to receive traffic from the load balancer"
            }
            Reason::DeregistrationInProgress => "Target deregistration is in progress",
            Reason::HealthCheckDisabled => "Health checks are disabled",
        }
    }
}

/// One element of DescribeTargetHealth's `TargetHealthDescriptions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TargetHealthDescription {
    pub target: TargetDescription,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_port: Option<String>,
    pub target_health: TargetHealth,
}

/// The API's `TargetDescription`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TargetDescription {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
}

/// The API's `TargetHealth`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TargetHealth {
    pub state: HealthState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// How one health check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckOutcome {
    Passed,
    Failed(Reason, String),
}

/// What DescribeTargetHealth says of `target` now. `in_use` is false when no listener rule
/// forwards to the group.
pub fn describe(
    group: &TargetGroup,
    target: &TargetState,
    in_use: bool,
) -> TargetHealthDescription {
    let rec = target.record();
    let (state, reason, description) = if rec.deregistering {
        (
            HealthState::Draining,
            Some(Reason::DeregistrationInProgress),
            None,
        )
    } else if !in_use {
        (HealthState::Unused, Some(Reason::NotInUse), None)
    } else {
        (rec.state, rec.reason, rec.description.clone())
    };
    let description = description.or_else(|| reason.map(|r| r.description().to_string()));
    let lambda = group.target_type == TargetType::Lambda;
    let health_check_port = (!lambda).then(|| match group.health_check.port() {
        Ok(HealthCheckPort::Port(p)) => p.to_string(),
        _ => target.key.port.map(|p| p.to_string()).unwrap_or_default(),
    });
    TargetHealthDescription {
        target: TargetDescription {
            id: target.target.id.clone(),
            port: if lambda { None } else { target.key.port },
            availability_zone: target
                .target
                .availability_zone
                .clone()
                .or_else(|| lambda.then(|| "all".to_string())),
        },
        health_check_port,
        target_health: TargetHealth {
            state,
            reason,
            description,
        },
    }
}

/// Applies one check's outcome to the target's record.
pub fn record_outcome(group: &TargetGroup, target: &TargetState, outcome: CheckOutcome) {
    let healthy_after = group.health_check.healthy_threshold();
    let unhealthy_after = group.health_check.unhealthy_threshold(group.target_type);
    target.update(|rec| match outcome {
        CheckOutcome::Passed => {
            rec.consecutive_ok += 1;
            rec.consecutive_failed = 0;
            let now_healthy = match rec.state {
                HealthState::Initial | HealthState::Unavailable => true,
                HealthState::Unhealthy => rec.consecutive_ok >= healthy_after,
                _ => rec.state == HealthState::Healthy,
            };
            if now_healthy {
                rec.state = HealthState::Healthy;
                rec.reason = None;
                rec.description = None;
            }
        }
        CheckOutcome::Failed(reason, description) => {
            rec.consecutive_failed += 1;
            rec.consecutive_ok = 0;
            if rec.state == HealthState::Unhealthy || rec.consecutive_failed >= unhealthy_after {
                rec.state = HealthState::Unhealthy;
                rec.reason = Some(reason);
                rec.description = Some(description);
            } else if rec.state == HealthState::Initial {
                rec.reason = Some(Reason::InitialHealthChecking);
            }
        }
    });
}

/// Starts checking `target` (its registration has reached the data plane).
pub fn start(shared: &Arc<Shared>, group: Arc<GroupState>, target: Arc<TargetState>) {
    let config = group.config();
    if !config.health_check.enabled(config.target_type) {
        target.update(|rec| {
            rec.state = HealthState::Unavailable;
            rec.reason = Some(Reason::HealthCheckDisabled);
            rec.description = None;
        });
        return;
    }
    target.update(|rec| {
        if rec.state == HealthState::Initial {
            rec.reason = Some(Reason::InitialHealthChecking);
        }
    });
    let weak = Arc::downgrade(shared);
    let checked = target.clone();
    let handle = tokio::spawn(async move {
        loop {
            let Some(shared) = weak.upgrade() else { return };
            let config = group.config();
            let interval = shared.clock.secs(
                config
                    .health_check
                    .interval_seconds(config.target_type)
                    .into(),
            );
            let outcome = check_once(&shared, &config, &checked).await;
            tracing::debug!(target_id = %checked.target.id, ?outcome, "health check");
            record_outcome(&config, &checked, outcome);
            drop(shared);
            tokio::time::sleep(interval).await;
        }
    });
    target.set_checker(handle.abort_handle());
}

async fn check_once(shared: &Shared, group: &TargetGroup, target: &TargetState) -> CheckOutcome {
    let hc = &group.health_check;
    let timeout = shared
        .clock
        .secs(hc.timeout_seconds(group.target_type).into());
    let matcher = hc.matcher().to_string();
    if group.target_type == TargetType::Lambda {
        return crate::lambda::health_check(shared, group, &target.target, hc.path(), timeout)
            .await;
    }
    let addr = match crate::resolve::resolve(&shared.resolver, group, &target.target) {
        Ok(addr) => addr,
        Err(_) => {
            return CheckOutcome::Failed(
                Reason::FailedHealthChecks,
                Reason::FailedHealthChecks.description().into(),
            );
        }
    };
    let addr = match hc.port() {
        Ok(HealthCheckPort::Port(port)) => SocketAddr::new(addr.ip(), port),
        _ => addr,
    };
    http_check(addr, hc.path(), timeout, &matcher).await
}

/// One HTTP health check: a GET on its own connection, closed afterwards ("After each health
/// check is completed, the load balancer node closes the connection that was established for
/// the health check").
async fn http_check(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
    matcher: &str,
) -> CheckOutcome {
    let request = http::Request::get(path)
        .header(http::header::HOST, addr.to_string())
        .header(http::header::USER_AGENT, "ELB-HealthChecker/2.0")
        .header(http::header::CONNECTION, "close")
        .body(http_body_util::Full::new(bytes::Bytes::new()));
    let Ok(request) = request else {
        return CheckOutcome::Failed(
            Reason::FailedHealthChecks,
            Reason::FailedHealthChecks.description().into(),
        );
    };
    match crate::upstream::send_once(addr, request, timeout, timeout, timeout).await {
        Ok(response) if matcher_accepts(matcher, response.status().as_u16()) => {
            CheckOutcome::Passed
        }
        Ok(response) => CheckOutcome::Failed(
            Reason::ResponseCodeMismatch,
            format!(
                "Health checks failed with these codes: [{}]",
                response.status().as_u16()
            ),
        ),
        Err(e) if e.is_timeout() => {
            CheckOutcome::Failed(Reason::Timeout, Reason::Timeout.description().into())
        }
        Err(_) => CheckOutcome::Failed(
            Reason::FailedHealthChecks,
            Reason::FailedHealthChecks.description().into(),
        ),
    }
}
