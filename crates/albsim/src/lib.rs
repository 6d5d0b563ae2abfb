//! albsim: an Application Load Balancer data plane on loopback, for the bed to carry real HTTP
//! traffic through a simulated Spot interruption.
//!
//! moto keeps the ELBv2 state; albsim serves it: it takes an [`AlbConfig`] mirroring the ELBv2
//! API (listeners, rules, target groups, targets, attributes), binds one loopback listener per
//! ALB listener, health-checks targets, routes and proxies requests once each (no retries),
//! and answers failures with the status codes the ALB documents. Changes applied with
//! [`Alb::apply`] reach the data plane after a propagation delay; removed targets drain for
//! the deregistration delay. Lambda targets are invoked through a Lambda runtime API served
//! per function, so a real function process can poll it.
//!
//! Everything albsim serves or dials is on 127.0.0.0/8; a target resolved elsewhere is
//! refused.

mod access;
mod alb;
mod clock;
pub mod config;
mod error;
mod front;
mod health;
mod lambda;
mod proxy;
mod resolve;
mod responses;
mod routing;
mod runtime_api;
mod targets;
mod upstream;

pub use access::AccessRecord;
pub use alb::{Alb, AlbOptions};
pub use clock::Clock;
pub use config::{
    Action, AlbConfig, ForwardConfig, HealthCheck, Listener, LoadBalancerAttributes,
    LoadBalancingAlgorithm, Matcher, Rule, RuleCondition, Target, TargetGroup,
    TargetGroupAttributes, TargetGroupTuple, TargetType,
};
pub use error::{AlbError, ConfigError};
pub use health::{HealthState, Reason, TargetDescription, TargetHealth, TargetHealthDescription};
pub use lambda::PAYLOAD_LIMIT as LAMBDA_PAYLOAD_LIMIT;
pub use resolve::{Resolver, is_loopback_v4};
pub use runtime_api::{InvokeError, RuntimeApi};

/// A fresh `X-Amzn-Trace-Id` value: `Root=1-<epoch seconds, hex>-<96 random bits, hex>`
/// (<https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-request-tracing.html>).
pub(crate) fn trace_id() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let r: [u8; 12] = rand::random();
    let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
    format!("Root=1-{secs:08x}-{hex}")
}
