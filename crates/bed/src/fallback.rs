//! costop's fallback function on the bed, deployed as the template deploys it beside a
//! service's load balancer (scenario `load_balancer.fallback`):
//! - a Lambda target group with the function's ARN registered (health checks off: "If the
//!   target type is lambda, health checks are disabled by default",
//!   <https://docs.aws.amazon.com/elasticloadbalancing/latest/application/lambda-functions.html>);
//! - a rule on the public listener that keeps the receipts path (`/_costop/*`) routed to it;
//! - an internal listener, tagged `costop.io/fallback-upstream`, forwarding as the public
//!   listener does: the fallback's upstream, which costop never shifts;
//! - the environment its processes run with ([`environment`]); the bed's Lambda service
//!   stand-in ([`crate::lambda`]) starts them as invocations arrive.

use aws_sdk_elasticloadbalancingv2::Client;
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, ProtocolEnum, RuleCondition, Tag, TargetDescription, TargetTypeEnum,
};
use serde::{Deserialize, Serialize};

use crate::error::{BedError, aws};
use crate::scenario::{Fallback, Scenario};

/// The path the fallback serves receipts under, kept routed to it after traffic is restored.
pub const RECEIPTS_PATH_PATTERN: &str = "/_costop/*";
/// The receipts rule's priority: after the scenario's own rules, before the load-balancer
/// controller stand-in's (it owns [`crate::lbc::listener::FIRST_PRIORITY`] and up, and would
/// delete a rule there). No service path starts with `/_costop/`, so none is shadowed.
const RECEIPTS_RULE_PRIORITY: i32 = crate::lbc::listener::FIRST_PRIORITY - 1;

/// What seeding the fallback created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeededFallback {
    pub function_arn: String,
    pub target_group_arn: String,
    pub upstream_listener_arn: String,
    pub upstream_listener_port: u16,
}

/// `arn:aws:lambda:<region>:<account>:function:<name>`, the account taken from the load
/// balancer's ARN.
fn function_arn(lb_arn: &str, region: &str, name: &str) -> String {
    let account = lb_arn.split(':').nth(4).unwrap_or("123456789012");
    format!("arn:aws:lambda:{region}:{account}:function:{name}")
}

/// Creates the fallback's target group, its receipts rule on `listener_arn` and the upstream
/// listener on `lb_arn`; `forwards` are the public listener's (default action first, then
/// `(path pattern, target group ARN)` rules), copied onto the upstream listener.
pub async fn seed(
    elb: &Client,
    s: &Scenario,
    f: &Fallback,
    lb_arn: &str,
    listener_arn: &str,
    forwards: &[(Option<String>, String)],
) -> Result<SeededFallback, BedError> {
    let function_arn = function_arn(lb_arn, &s.cluster.region, &f.function);
    let target_group_arn = elb
        .create_target_group()
        .name(&f.target_group)
        .target_type(TargetTypeEnum::Lambda)
        .health_check_enabled(false)
        .send()
        .await
        .map_err(aws("CreateTargetGroup"))?
        .target_groups()
        .first()
        .and_then(|t| t.target_group_arn())
        .ok_or_else(|| BedError::Seed("CreateTargetGroup (lambda) returned no ARN".into()))?
        .to_owned();
    elb.register_targets()
        .target_group_arn(&target_group_arn)
        .targets(TargetDescription::builder().id(&function_arn).build())
        .send()
        .await
        .map_err(aws("RegisterTargets"))?;
    let forward = |arn: &str| {
        Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .target_group_arn(arn)
            .build()
    };
    let path = |p: &str| {
        RuleCondition::builder()
            .field("path-pattern")
            .values(p)
            .build()
    };
    elb.create_rule()
        .listener_arn(listener_arn)
        .priority(RECEIPTS_RULE_PRIORITY)
        .conditions(path(RECEIPTS_PATH_PATTERN))
        .actions(forward(&target_group_arn))
        .send()
        .await
        .map_err(aws("CreateRule"))?;

    let default = forwards
        .iter()
        .find(|(p, _)| p.is_none())
        .ok_or_else(|| BedError::Seed("the public listener has no default forward".into()))?;
    let upstream_listener_arn = elb
        .create_listener()
        .load_balancer_arn(lb_arn)
        .protocol(ProtocolEnum::Http)
        .port(i32::from(f.upstream_listener_port))
        .default_actions(forward(&default.1))
        .tags(
            Tag::builder()
                .key(costop_core::constants::TAG_FALLBACK_UPSTREAM)
                .value("true")
                .build(),
        )
        .send()
        .await
        .map_err(aws("CreateListener"))?
        .listeners()
        .first()
        .and_then(|l| l.listener_arn())
        .ok_or_else(|| BedError::Seed("CreateListener returned no ARN".into()))?
        .to_owned();
    for (i, (pattern, tg)) in forwards.iter().filter(|(p, _)| p.is_some()).enumerate() {
        elb.create_rule()
            .listener_arn(&upstream_listener_arn)
            .priority(i as i32 + 1)
            .conditions(path(pattern.as_deref().unwrap_or("/*")))
            .actions(forward(tg))
            .send()
            .await
            .map_err(aws("CreateRule"))?;
    }
    Ok(SeededFallback {
        function_arn,
        target_group_arn,
        upstream_listener_arn,
        upstream_listener_port: f.upstream_listener_port,
    })
}

/// The fallback's own settings for its processes, beside the bed's AWS environment: its routes
/// and its upstream (the internal listener on loopback), and what Lambda sets for a function
/// (<https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime>).
pub fn environment(f: &Fallback, upstream_url: &str) -> Vec<(String, String)> {
    [
        ("COSTOP_FALLBACK_ROUTES", f.routes.clone()),
        ("COSTOP_FALLBACK_UPSTREAM", upstream_url.to_owned()),
        ("AWS_LAMBDA_FUNCTION_NAME", f.function.clone()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512".to_owned()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{}", f.function),
        ),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "bed".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .chain(f.env.iter().map(|(k, v)| (k.clone(), v.clone())))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_functions_arn_carries_the_load_balancers_account_and_the_scenarios_region() {
        assert_eq!(
            function_arn(
                "arn:aws:elasticloadbalancing:us-east-1:111122223333:loadbalancer/app/x/1",
                "eu-west-1",
                "costop-fallback"
            ),
            "arn:aws:lambda:eu-west-1:111122223333:function:costop-fallback"
        );
    }
}
