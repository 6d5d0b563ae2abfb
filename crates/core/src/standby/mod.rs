//! The warm standby pool, decided purely: which stopped, pre-tainted on-demand
//! standby answers a Spot warning (same cluster and zone, retyped to the spot
//! node's instance type), which pending pods are the interrupted node's
//! replacements and get the standby toleration, and when a serving standby
//! goes back to the pool. The keeper function is the shell around it.
//!
//! A standby is an EC2 instance tagged `costop.io/standby=true`, joined to the
//! cluster once and stopped; its node registers with the taint
//! `costop.io/standby=true:NoSchedule`, so nothing lands on it unless costop
//! gave the pod the toleration. Its lifecycle lives in its tags (the keeper
//! is stateless between invocations):
//!
//! ```text
//!  available (stopped) ──Spot warning──▶ serving (running) ──spot capacity back,
//!        ▲                                                  min serve time over──▶ returning
//!        └──────────── stopped, serving tags removed ◀── drained (evictions, PDBs respected) ─┘
//! ```
//!
//! Modules: [`trigger`] (what woke the keeper), [`start`] (the Spot warning and
//! rebalance plans), [`node`] (a started standby's node, cleared for its
//! replacements), [`replacements`] (which pending pods to tolerate),
//! [`tick`] (pool maintenance), [`action`] (the steps the shell executes).

pub mod action;
pub mod node;
pub mod replacements;
pub mod start;
pub mod tick;
pub mod trigger;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::constants;
use crate::event::InstanceState;
use crate::facts::InstanceFacts;
use crate::kube::{Taint, TaintEffect, Toleration};

pub use action::{StartAction, TagChange, TickAction};
pub use node::clear_node;
pub use replacements::{
    OwnerQuota, ReplacementSpec, ReplacementTracker, TolerationPatch, owner_quotas,
};
pub use start::{
    LostClaim, NoStandbyReason, ServedBy, StartDecision, StartFacts, StartPlan, plan_prepare,
    plan_start,
};
pub use tick::{PoolFacts, PoolReport, StandbyFacts, TickPlan, plan_tick};
pub use trigger::Trigger;

/// A standby's place in its lifecycle, read from its tags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum StandbyStatus {
    /// In the pool (normally stopped).
    Available,
    /// Started for an interruption.
    Serving(Assignment),
    /// Spot capacity is back: being drained, then stopped.
    Returning(Assignment),
}

/// What a serving (or returning) standby was started for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// The interruption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interruption_id: Option<String>,
    /// When it started serving.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// The spot instance it replaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
    /// That instance's node group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_group: Option<String>,
}

/// Whether `instance` is a costop standby.
pub fn is_standby(instance: &InstanceFacts) -> bool {
    instance
        .tags
        .get(constants::TAG_STANDBY)
        .map(String::as_str)
        == Some(constants::TAG_STANDBY_VALUE)
}

/// The standby's status from its tags (`None`: not a standby). An unknown
/// state value counts as serving, so the keeper never stops an instance it
/// does not understand without first draining it.
pub fn status(instance: &InstanceFacts) -> Option<StandbyStatus> {
    if !is_standby(instance) {
        return None;
    }
    let tag = |k: &str| instance.tags.get(k).filter(|v| !v.is_empty()).cloned();
    let assignment = || Assignment {
        interruption_id: tag(constants::TAG_STANDBY_INTERRUPTION),
        since: tag(constants::TAG_STANDBY_SINCE)
            .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
            .map(|t| t.with_timezone(&Utc)),
        replaces: tag(constants::TAG_STANDBY_REPLACES),
        node_group: tag(constants::TAG_STANDBY_NODE_GROUP),
    };
    Some(match tag(constants::TAG_STANDBY_STATE).as_deref() {
        None | Some(constants::STANDBY_STATE_AVAILABLE) => StandbyStatus::Available,
        Some(constants::STANDBY_STATE_RETURNING) => StandbyStatus::Returning(assignment()),
        Some(_) => StandbyStatus::Serving(assignment()),
    })
}

/// Whether a standby serves an interruption, from facts costop owns: its tags say serving
/// for an interruption and that interruption holds its lease. Only then is it a node like any
/// other for a notice; stopped in the pool, being returned by the keeper, or started by an
/// operator while preparing it (no lease), a stop or a warning about it is the pool's own
/// doing, and costop leaves its node alone. `Ok(())` when it serves, else what it is.
pub fn serves_an_interruption(
    instance: &InstanceFacts,
    lease: Option<&crate::facts::StandbyLeaseRecord>,
) -> Result<(), &'static str> {
    match status(instance) {
        None => Ok(()),
        Some(StandbyStatus::Available) => Err(constants::STANDBY_STATE_AVAILABLE),
        Some(StandbyStatus::Returning(_)) => Err(constants::STANDBY_STATE_RETURNING),
        Some(StandbyStatus::Serving(a)) => match (lease, a.interruption_id) {
            (Some(l), Some(iid)) if !l.released && l.interruption_id == iid => Ok(()),
            _ => Err("serving without its lease"),
        },
    }
}

/// The standby's pool name (tag), `default` when untagged.
pub fn pool_of(instance: &InstanceFacts) -> String {
    instance
        .tags
        .get(constants::TAG_STANDBY_POOL)
        .filter(|p| !p.is_empty())
        .cloned()
        .unwrap_or_else(|| "default".to_owned())
}

/// Whether `instance` belongs to `cluster` by any of its cluster tags.
pub fn in_cluster(instance: &InstanceFacts, cluster: &str) -> bool {
    instance
        .cluster_candidates()
        .iter()
        .any(|c| c.name == cluster)
}

/// The taint every standby carries (`<COSTOP_TAINT_KEY_STANDBY>=true:NoSchedule`).
pub fn standby_taint(config: &Config) -> Taint {
    Taint::new(
        config.standby_taint_key.clone(),
        Some(constants::TAINT_STANDBY_VALUE.to_owned()),
        TaintEffect::NoSchedule,
    )
}

/// The toleration replacement pods get.
pub fn standby_toleration(config: &Config) -> Toleration {
    Toleration::of(&standby_taint(config))
}

/// A standby that can be started now: available and stopped.
pub fn is_startable(instance: &InstanceFacts) -> bool {
    instance.state == InstanceState::Stopped && status(instance) == Some(StandbyStatus::Available)
}

/// Whether the standby's tags say it serves the interruption `iid` (or is
/// being returned from serving it).
pub fn serves(instance: &InstanceFacts, iid: &str) -> bool {
    matches!(
        status(instance),
        Some(StandbyStatus::Serving(a) | StandbyStatus::Returning(a))
            if a.interruption_id.as_deref() == Some(iid)
    )
}

/// A standby tagged serving `iid` but stopped: the delivery that tagged it
/// failed or died before the start, and a later delivery of `iid` may start it.
fn resumable(instance: &InstanceFacts, iid: Option<&str>) -> bool {
    instance.state == InstanceState::Stopped
        && matches!(
            status(instance),
            Some(StandbyStatus::Serving(a)) if iid.is_some() && a.interruption_id.as_deref() == iid
        )
}

/// The standbys of `cluster` in the `spot` instance's zone.
fn in_zone_of<'a>(
    spot: &InstanceFacts,
    cluster: &str,
    standbys: &'a [InstanceFacts],
) -> Vec<&'a InstanceFacts> {
    let zone = spot.availability_zone.as_deref();
    standbys
        .iter()
        .filter(|s| {
            zone.is_some() && s.availability_zone.as_deref() == zone && in_cluster(s, cluster)
        })
        .collect()
}

/// The standbys that may answer an interrupted `spot` instance of `cluster`,
/// best first: the startable standbys of the cluster in its zone, and one
/// tagged for the interruption `iid` whose start never happened. The one of
/// `iid` comes first (it is already this interruption's), then one of the
/// spot instance's type (no retype), then the lowest id, so two keepers agree.
pub fn candidates<'a>(
    spot: &InstanceFacts,
    cluster: &str,
    standbys: &'a [InstanceFacts],
    iid: Option<&str>,
) -> Vec<&'a InstanceFacts> {
    let mut out = in_zone_of(spot, cluster, standbys);
    out.retain(|s| is_startable(s) || resumable(s, iid));
    out.sort_by_key(|s| {
        (
            !resumable(s, iid),
            s.instance_type != spot.instance_type,
            s.instance_id.clone(),
        )
    });
    out
}

/// Every stopped standby of `cluster` in the `spot` instance's zone: the
/// [`candidates`] of any interruption of it are among them, so the shell reads
/// their nodes before planning.
pub fn stopped_in_zone<'a>(
    spot: &InstanceFacts,
    cluster: &str,
    standbys: &'a [InstanceFacts],
) -> Vec<&'a InstanceFacts> {
    let mut out = in_zone_of(spot, cluster, standbys);
    out.retain(|s| s.state == InstanceState::Stopped);
    out
}

/// The tags that make a standby serve `interruption_id` for `spot`.
pub fn serving_tags(
    interruption_id: &str,
    spot: &InstanceFacts,
    now: DateTime<Utc>,
) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::from([
        (
            constants::TAG_STANDBY_STATE.to_owned(),
            constants::STANDBY_STATE_SERVING.to_owned(),
        ),
        (
            constants::TAG_STANDBY_INTERRUPTION.to_owned(),
            interruption_id.to_owned(),
        ),
        (
            constants::TAG_STANDBY_SINCE.to_owned(),
            now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        ),
        (
            constants::TAG_STANDBY_REPLACES.to_owned(),
            spot.instance_id.clone(),
        ),
    ]);
    if let Some(ng) = spot
        .tags
        .get(constants::TAG_EKS_NODEGROUP_NAME)
        .or_else(|| spot.tags.get(constants::TAG_AUTOSCALING_GROUP_NAME))
    {
        tags.insert(constants::TAG_STANDBY_NODE_GROUP.to_owned(), ng.clone());
    }
    tags
}

/// The tag change that puts a standby back in the pool: state `available`, the serving tags
/// removed.
pub fn available_tags(instance_id: &str) -> TagChange {
    TagChange {
        instance_id: instance_id.to_owned(),
        set: BTreeMap::from([(
            constants::TAG_STANDBY_STATE.to_owned(),
            constants::STANDBY_STATE_AVAILABLE.to_owned(),
        )]),
        remove: constants::STANDBY_SERVING_TAGS
            .iter()
            .map(|t| (*t).to_owned())
            .collect(),
    }
}

#[cfg(test)]
mod tests;
