//! Ingresses (class `alb`) reconciled into the load balancer's listener rules through moto's
//! ELBv2 API, as the AWS Load Balancer Controller does, by [`super::ingress`]'s translation.
//! The stand-in owns the listener's rules from [`FIRST_PRIORITY`] up (the scenario's own rules
//! sit below): the rules of every `alb` Ingress, ordered by `alb.ingress.kubernetes.io/group.order`
//! then namespace and name, take consecutive priorities; a rule that changed is modified, a new
//! one created, a stale one deleted. An Ingress that cannot be translated leaves the listener as
//! it was (the real controller reports the error as an event and retries).

use std::time::{Duration, Instant};

use aws_sdk_elasticloadbalancingv2::Client;
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, FixedResponseActionConfig, ForwardActionConfig,
    HostHeaderConditionConfig, PathPatternConditionConfig, RuleCondition, Tag, TargetGroupTuple,
};
use costop_core::constants::TAG_LBC_INGRESS_STACK as TAG_INGRESS_STACK;
use kubesim::Simulator;
use kubesim::resources;
use kubesim::store::ListOptions;
use serde_json::Value;

use super::ingress::{self, IngressRule};
use super::{Binding, ServicePort};

/// The first listener-rule priority the stand-in owns.
pub const FIRST_PRIORITY: i32 = 1000;
/// The IngressClass (or legacy `kubernetes.io/ingress.class`) the stand-in serves.
pub const INGRESS_CLASS: &str = "alb";

/// What the listener has been given, and since when the cluster has asked for something else.
#[derive(Default)]
pub struct ListenerState {
    applied: Option<Vec<IngressRule>>,
    pending: Option<Instant>,
}

fn is_alb(ingress: &Value) -> bool {
    ingress["spec"]["ingressClassName"] == INGRESS_CLASS
        || ingress["metadata"]["annotations"]["kubernetes.io/ingress.class"] == INGRESS_CLASS
}

/// Every `alb` Ingress's rules, in priority order; `None` when one cannot be translated.
fn desired(sim: &Simulator, bindings: &[Binding]) -> Option<Vec<IngressRule>> {
    let mut ingresses: Vec<Value> = sim
        .store()
        .list(&resources::INGRESSES, None, &ListOptions::default())
        .0
        .into_iter()
        .filter(is_alb)
        .filter(|i| i["metadata"].get("deletionTimestamp").is_none())
        .collect();
    let order = |i: &Value| {
        i["metadata"]["annotations"]["alb.ingress.kubernetes.io/group.order"]
            .as_str()
            .and_then(|o| o.parse::<i64>().ok())
            .unwrap_or(0)
    };
    ingresses.sort_by_key(|i| {
        (
            order(i),
            i["metadata"]["namespace"].as_str().unwrap_or("").to_owned(),
            i["metadata"]["name"].as_str().unwrap_or("").to_owned(),
        )
    });
    if ingresses.is_empty() {
        return Some(Vec::new());
    }
    // A Service port named by number or name is one entry of the Service's ports; a binding
    // names its entry either way too.
    let services = sim
        .store()
        .list(&resources::SERVICES, None, &ListOptions::default())
        .0;
    let entry = |ns: &str, svc: &str, port: &str| -> Option<(u64, String)> {
        let service = services
            .iter()
            .find(|s| s["metadata"]["namespace"] == ns && s["metadata"]["name"] == svc)?;
        service["spec"]["ports"].as_array()?.iter().find_map(|p| {
            let number = p["port"].as_u64()?;
            let name = p["name"].as_str().unwrap_or("").to_owned();
            (number.to_string() == port || (!name.is_empty() && name == port))
                .then_some((number, name))
        })
    };
    let tg_of = |ns: &str, svc: &str, port: &str| -> Option<String> {
        let wanted = entry(ns, svc, port)?;
        bindings
            .iter()
            .find(|b| {
                let named = match &b.port {
                    ServicePort::Number(n) => n.to_string(),
                    ServicePort::Name(n) => n.clone(),
                };
                b.namespace == ns
                    && b.service == svc
                    && entry(ns, svc, &named) == Some(wanted.clone())
            })
            .map(|b| b.target_group_arn.clone())
    };
    let mut out = Vec::new();
    for i in &ingresses {
        match ingress::rules(i, &tg_of) {
            Ok(rules) => out.extend(rules),
            Err(e) => {
                tracing::warn!(ingress = %i["metadata"]["name"], error = %e, "ingress not reconciled");
                return None;
            }
        }
    }
    Some(out)
}

/// One step: apply the Ingresses' rules once they have asked for them for `delay`.
pub async fn step(
    sim: &Simulator,
    elb: &Client,
    bindings: &[Binding],
    listener_arn: &str,
    state: &mut ListenerState,
    delay: Duration,
) {
    let Some(wanted) = desired(sim, bindings) else {
        return;
    };
    if state.applied.as_ref() == Some(&wanted) || (state.applied.is_none() && wanted.is_empty()) {
        state.pending = None;
        return;
    }
    let since = *state.pending.get_or_insert_with(Instant::now);
    if since.elapsed() < delay {
        return;
    }
    match apply(elb, listener_arn, &wanted).await {
        Ok(()) => {
            state.applied = Some(wanted);
            state.pending = None;
        }
        Err(e) => tracing::warn!(error = %e, "listener rules not reconciled; retrying"),
    }
}

type ElbError = Box<dyn std::error::Error + Send + Sync>;

async fn apply(elb: &Client, listener_arn: &str, wanted: &[IngressRule]) -> Result<(), ElbError> {
    let current = elb
        .describe_rules()
        .listener_arn(listener_arn)
        .send()
        .await?;
    let owned: Vec<(i32, String)> = current
        .rules()
        .iter()
        .filter_map(|r| {
            let p: i32 = r.priority()?.parse().ok()?;
            (p >= FIRST_PRIORITY).then(|| (p, r.rule_arn().unwrap_or_default().to_owned()))
        })
        .collect();
    for (i, rule) in wanted.iter().enumerate() {
        let priority = FIRST_PRIORITY + i32::try_from(i)?;
        let conditions: Vec<RuleCondition> = rule.conditions.iter().map(condition).collect();
        let actions: Vec<Action> = rule.actions.iter().map(action).collect::<Result<_, _>>()?;
        // The controller tags the rules it makes with their Ingress's stack (`pkg/deploy/tracking`
        // in kubernetes-sigs/aws-load-balancer-controller), which costop reads.
        let tags = [Tag::builder()
            .key(TAG_INGRESS_STACK)
            .value(&rule.stack)
            .build()];
        match owned.iter().find(|(p, _)| *p == priority) {
            Some((_, arn)) => {
                elb.modify_rule()
                    .rule_arn(arn)
                    .set_conditions(Some(conditions))
                    .set_actions(Some(actions))
                    .send()
                    .await?;
                elb.add_tags()
                    .resource_arns(arn)
                    .set_tags(Some(tags.to_vec()))
                    .send()
                    .await?;
            }
            None => {
                elb.create_rule()
                    .listener_arn(listener_arn)
                    .priority(priority)
                    .set_conditions(Some(conditions))
                    .set_actions(Some(actions))
                    .set_tags(Some(tags.to_vec()))
                    .send()
                    .await?;
            }
        }
    }
    let keep = FIRST_PRIORITY + i32::try_from(wanted.len())?;
    for (p, arn) in owned {
        if p >= keep {
            elb.delete_rule().rule_arn(arn).send().await?;
        }
    }
    Ok(())
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

fn condition(c: &Value) -> RuleCondition {
    let field = c["Field"].as_str().unwrap_or("path-pattern");
    let b = RuleCondition::builder().field(field);
    match field {
        "host-header" => b
            .host_header_config(
                HostHeaderConditionConfig::builder()
                    .set_values(Some(strings(&c["HostHeaderConfig"]["Values"])))
                    .build(),
            )
            .build(),
        _ => b
            .path_pattern_config(
                PathPatternConditionConfig::builder()
                    .set_values(Some(strings(&c["PathPatternConfig"]["Values"])))
                    .build(),
            )
            .build(),
    }
}

fn action(a: &Value) -> Result<Action, ElbError> {
    match a["Type"].as_str() {
        Some("fixed-response") => {
            let f = &a["FixedResponseConfig"];
            Ok(Action::builder()
                .r#type(ActionTypeEnum::FixedResponse)
                .fixed_response_config(
                    FixedResponseActionConfig::builder()
                        .status_code(f["StatusCode"].as_str().unwrap_or("503"))
                        .set_content_type(f["ContentType"].as_str().map(str::to_owned))
                        .set_message_body(f["MessageBody"].as_str().map(str::to_owned))
                        .build(),
                )
                .build())
        }
        _ => {
            let b = Action::builder().r#type(ActionTypeEnum::Forward);
            let b = match a["TargetGroupArn"].as_str() {
                Some(arn) => b.target_group_arn(arn),
                None => b.forward_config(
                    ForwardActionConfig::builder()
                        .set_target_groups(Some(
                            a["ForwardConfig"]["TargetGroups"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .map(|t| {
                                    TargetGroupTuple::builder()
                                        .set_target_group_arn(
                                            t["TargetGroupArn"].as_str().map(str::to_owned),
                                        )
                                        .set_weight(
                                            t["Weight"]
                                                .as_i64()
                                                .and_then(|w| i32::try_from(w).ok()),
                                        )
                                        .build()
                                })
                                .collect(),
                        ))
                        .build(),
                ),
            };
            Ok(b.build())
        }
    }
}
