//! Traffic shift and restore. While an interrupted node's targets leave a target group, the
//! share of each listener rule's traffic they carried (times `COSTOP_SHIFT_FACTOR`) goes to the
//! fallback function's target group (`COSTOP_FALLBACK_TARGET_GROUP`), through the rule's
//! weighted forward; as the group's capacity comes back the share returns in steps, and once the
//! group is whole again (or `COSTOP_SHIFT_MAX_SECONDS` after the notice, whatever happens) the
//! rule is put back exactly as it was.
//!
//! Every shifted rule has a lease ([`ShiftLease`], under [`crate::record::SHIFT_PK`]), written
//! before the rule is changed: whatever happens to the function that shifted it, the keeper's
//! tick finds the lease and carries the restore through ([`restore_step`]). The share a rule
//! keeps shifted is the larger of what the interrupted nodes announced (until their deadline:
//! their targets still look healthy while they drain) and the group's deficit (targets in
//! service short of what it had at the notice), so a second interruption in the same group, or
//! slow replacements, keep the shift as long as the capacity is missing.
//!
//! A rule the AWS Load Balancer Controller manages (tagged `ingress.k8s.aws/stack`) is changed
//! through its Ingress's `actions` annotation, never directly, or the controller would undo it
//! at its next reconcile ([`ingress`]): its lease carries the Ingress part ([`IngressShift`])
//! and the weights go to the Ingress instead of the rule. [`shiftable`] takes such a rule only
//! when its Ingress was read and the path it comes from can be patched.

mod coverage;
pub mod ingress;
mod lease;
mod weights;

pub use coverage::fully_shifted;
pub use ingress::{IngressShift, IngressShiftError, IngressTarget};
pub use lease::{GroupShare, ShiftLease, shift_lease_from_item, shift_lease_item, shift_lease_key};
pub use weights::shifted;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::facts::TargetGroupFacts;

/// A target group in a weighted forward, with its weight (ELBv2: 0–999).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightedGroup {
    /// Target group ARN.
    pub target_group_arn: String,
    /// Weight.
    pub weight: u32,
}

/// A listener rule that forwards to target groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleFacts {
    /// Rule ARN.
    pub arn: String,
    /// Its listener.
    pub listener_arn: String,
    /// The listener's default rule (changed through the listener's default actions).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_default: bool,
    /// Its forward action's groups (a plain forward is one group of weight 1).
    pub forward: Vec<WeightedGroup>,
    /// The Ingress (`namespace/name`) whose controller manages the rule, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<String>,
    /// Its `host-header` condition's values (none: any host).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Its `path-pattern` condition's values (none: any path).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
}

/// The Ingress part of a rule's shift: `None` for a rule no controller manages; for a managed
/// one, where it comes from in its Ingress (found among `ingresses` by the rule's stack tag), or
/// why it cannot be shifted.
pub fn ingress_part(
    rule: &RuleFacts,
    ingresses: &[serde_json::Value],
    cluster: &str,
) -> Result<Option<IngressShift>, IngressShiftError> {
    let Some(stack) = &rule.ingress else {
        return Ok(None);
    };
    let ingress = ingresses
        .iter()
        .find(|i| ingress::ingress_ref(i) == *stack)
        .ok_or_else(|| IngressShiftError::NotRead {
            ingress: stack.clone(),
        })?;
    ingress::locate(rule, ingress, cluster).map(Some)
}

/// Which load balancer a listener belongs to: its ARN without the listener's own id, since
/// `…:listener/app/<name>/<lb-id>/<listener-id>` is a listener of `…:loadbalancer/app/<name>/<lb-id>`
/// (ARN formats in the Service Authorization Reference, "Actions, resources, and condition keys
/// for Elastic Load Balancing V2"); two listeners of one load balancer give the same value. An
/// ARN without that shape stands for itself.
pub fn load_balancer_of(listener_arn: &str) -> &str {
    listener_arn
        .rsplit_once('/')
        .map_or(listener_arn, |(lb, _)| lb)
}

impl RuleFacts {
    /// The rule's forward names `group` (with any weight).
    pub fn forwards_to(&self, group: &str) -> bool {
        self.forward.iter().any(|g| g.target_group_arn == group)
    }
}

/// The load balancers `group` serves: those with a rule among `rules` forwarding to it. A target
/// group serves at most one load balancer ("Load balancers per target group: 1" in the
/// Application Load Balancer quotas, not adjustable; ELBv2 refuses another with
/// `TargetGroupAssociationLimit`).
pub fn load_balancers_forwarding_to<'a>(
    rules: impl IntoIterator<Item = &'a RuleFacts>,
    group: &str,
) -> BTreeSet<&'a str> {
    rules
        .into_iter()
        .filter(|r| r.forwards_to(group))
        .map(|r| load_balancer_of(&r.listener_arn))
        .collect()
}

/// The rules to shift: forwarding to a group that holds the node's targets, not already shifted
/// (a lease holds it then, and its tick follows the deficit), not already forwarding to the
/// fallback, and, for a rule a controller manages, with an Ingress (among `ingresses`) whose
/// path can be patched ([`ingress_part`]). Once the fallback's group serves a load balancer,
/// only that load balancer's rules: the group can serve no other, so a rule of another one (an
/// internal load balancer before the same pods, the fallback's own upstream) keeps its traffic.
pub fn shiftable<'a>(
    rules: &'a [RuleFacts],
    groups: &[TargetGroupFacts],
    fallback: &str,
    ingresses: &[serde_json::Value],
) -> Vec<&'a RuleFacts> {
    // The fallback's load balancer: the `/_costop/*` route of the receipts, or a shift in
    // progress, forwards to its group there.
    let served = load_balancers_forwarding_to(rules, fallback);
    rules
        .iter()
        .filter(|r| served.is_empty() || served.contains(load_balancer_of(&r.listener_arn)))
        .filter(|r| ingress_part(r, ingresses, "").is_ok())
        .filter(|r| !r.forwards_to(fallback))
        .filter(|r| {
            r.forward.iter().any(|w| {
                groups
                    .iter()
                    .any(|g| g.arn == w.target_group_arn && !g.targets.is_empty())
            })
        })
        .collect()
}

/// The lease of one rule's shift on a notice: the node's share of each of its groups (targets on
/// the node over targets registered), the weights that move it to the fallback, and until when.
/// `None` when nothing would move (no share, or a zero factor).
pub fn lease_for(
    rule: &RuleFacts,
    groups: &[TargetGroupFacts],
    config: &Config,
    interruption_id: &str,
    now: DateTime<Utc>,
    deadline: DateTime<Utc>,
) -> Option<ShiftLease> {
    let shares: Vec<GroupShare> = rule
        .forward
        .iter()
        .filter_map(|w| {
            let g = groups.iter().find(|g| g.arn == w.target_group_arn)?;
            Some(GroupShare {
                target_group_arn: g.arn.clone(),
                expected: g.registered.max(g.targets.len()),
                announced: g.targets.len(),
                leaving: g.targets.iter().map(|t| t.id.clone()).collect(),
            })
        })
        .collect();
    let by_group: BTreeMap<&str, f64> = shares
        .iter()
        .map(|s| (s.target_group_arn.as_str(), s.announced_share()))
        .collect();
    let fallback = &config.fallback_target_group;
    let applied = shifted(
        &rule.forward,
        |arn| by_group.get(arn).copied().unwrap_or(0.0),
        fallback,
        f64::from(config.shift_factor),
    )?;
    Some(ShiftLease {
        rule_arn: rule.arn.clone(),
        listener_arn: rule.listener_arn.clone(),
        is_default: rule.is_default,
        before: rule.forward.clone(),
        applied,
        fallback_target_group: fallback.clone(),
        factor: f64::from(config.shift_factor),
        groups: shares,
        interruption_id: interruption_id.to_owned(),
        hold_until: deadline,
        restore_by: now + TimeDelta::seconds(config.shift_max_seconds),
        whole_since: None,
        ingress: None,
    })
}

/// What the keeper's tick does with a lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum RestoreStep {
    /// The weights applied are still right.
    Keep,
    /// Capacity came partly back (or went further): apply these weights, keep the lease.
    Adjust {
        /// The new weights.
        weights: Vec<WeightedGroup>,
    },
    /// The groups are whole again since `since`: the rule stays as applied until the restore
    /// hold has passed, so the requests the fallback still holds and retries are answered by
    /// the replacements before the clients' requests go straight to them again.
    Hold {
        /// When the groups were first found whole.
        since: DateTime<Utc>,
    },
    /// The groups are whole again, or the lease's time is up: put the rule back as it was and
    /// delete the lease.
    Restore {
        /// Why (`capacity_back`, `lease_expired`).
        reason: &'static str,
    },
}

/// A group as the keeper's tick finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InService {
    /// The group is gone: nothing to wait for.
    Gone,
    /// Its `healthy` targets (instance id or IP).
    Healthy(Vec<String>),
}

/// One tick's step for `lease`, from each group's targets in service now (absent: unknown,
/// taken as unchanged from the notice), with the groups to stay whole `hold` before the rule
/// is put back.
///
/// The hold: when capacity comes back, the fallback may still hold a backlog of requests it
/// retries (each up to its forward budget). Were the rule put back at once, those and the
/// clients' own requests would meet at the replacements together, and a client request that
/// finds a full queue fails where a request through the fallback is retried. A hold of at least
/// the forward budget lets every request held when capacity came back be answered first.
///
/// The node's own targets never count as capacity: the share stays shifted until as many
/// other targets are healthy as the group had at the notice, and shrinks as each replacement
/// turns healthy. A lease that does not know the node's targets (written before they were
/// recorded) holds the node's share until its deadline instead, as its targets still look
/// healthy while they drain.
pub fn restore_step(
    lease: &ShiftLease,
    in_service: &BTreeMap<String, InService>,
    now: DateTime<Utc>,
    hold: TimeDelta,
) -> RestoreStep {
    if now >= lease.restore_by {
        return RestoreStep::Restore {
            reason: "lease_expired",
        };
    }
    let share = |arn: &str| {
        let Some(g) = lease.groups.iter().find(|g| g.target_group_arn == arn) else {
            return 0.0;
        };
        let knows_leaving = !g.leaving.is_empty();
        match (in_service.get(arn), knows_leaving) {
            (Some(InService::Gone), _) => 0.0,
            (None, true) => g.announced_share(),
            (Some(InService::Healthy(healthy)), true) => g.missing_share(healthy),
            // A lease without the node's targets: count every healthy one, and hold the node's
            // share until the deadline.
            (found, false) => {
                let deficit = match found {
                    Some(InService::Healthy(h)) => g.deficit_share(h.len()),
                    _ => 0.0,
                };
                if now < lease.hold_until {
                    deficit.max(g.announced_share())
                } else {
                    deficit
                }
            }
        }
    };
    match (
        shifted(
            &lease.before,
            share,
            &lease.fallback_target_group,
            lease.factor,
        ),
        lease.whole_since,
    ) {
        // Whole: the hold runs from the first tick that found it so (this one, if none did).
        (None, since) => {
            let since = since.unwrap_or(now);
            if now - since >= hold {
                RestoreStep::Restore {
                    reason: "capacity_back",
                }
            } else {
                RestoreStep::Hold { since }
            }
        }
        (Some(w), None) if w == lease.applied => RestoreStep::Keep,
        // Capacity moved, or went again during the hold (the lease then forgets the hold; an
        // adjust to the same weights is harmless).
        (Some(weights), _) => RestoreStep::Adjust { weights },
    }
}

#[cfg(test)]
mod tests;
