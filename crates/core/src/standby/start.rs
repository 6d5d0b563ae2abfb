//! The keeper's answer to a Spot warning (start the zone's standby, retyped
//! to the spot node's type, clear its node of an earlier life, and tolerate
//! the node's replacements; or, when a standby already serves the warning's
//! interruption, join it) and to a rebalance recommendation (retype the
//! zone's standby ahead of time, so a warning that follows only has to start
//! it).
//!
//! Deliveries of one interruption (EventBridge redelivers; Lambda retries) are
//! told apart by what costop owns: a standby whose tags name the interruption
//! was started by an earlier one, and a lease claim lost to the same
//! interruption means another delivery is starting it right now. Both join
//! instead of starting a second standby.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::action::{StartAction, TagChange};
use super::node::clear_node;
use super::replacements::ReplacementSpec;
use super::{
    StandbyStatus, candidates, is_standby, serves, serving_tags, standby_toleration, status,
};
use crate::config::Config;
use crate::event::{
    Delivered, EventKind, InstanceState, RebalanceRecommendation, SpotInterruptionWarning,
};
use crate::facts::{InstanceFacts, Lifecycle, NodeFacts, PodFacts, node_of};
use crate::plan::{interruption_id, resolve_cluster};
use crate::record::{StandbyLease, TimelineEntry, TimelineStep};

/// A lease older than this, never released, may be taken over.
pub const LEASE_TAKEOVER_SECONDS: i64 = 600;

/// A lease of the same interruption younger than this is a start in progress
/// (the lease, tags, retype and `StartInstances` take seconds), which another
/// delivery joins; older and never released, its start failed or died, and the
/// next delivery resumes it. Lambda retries a failed delivery after a minute.
pub const LEASE_IN_FLIGHT_SECONDS: i64 = 30;

/// What the shell observed for a Spot warning or rebalance recommendation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartFacts {
    /// The interrupted instance (`None`: EC2 does not know it).
    #[serde(default)]
    pub spot: Option<InstanceFacts>,
    /// Every standby instance (`costop.io/standby=true`), any cluster.
    #[serde(default)]
    pub standbys: Vec<InstanceFacts>,
    /// The interrupted instance's node.
    #[serde(default)]
    pub node: Option<NodeFacts>,
    /// Pods on that node (whose owners' replacements get the toleration).
    #[serde(default)]
    pub pods: Vec<PodFacts>,
    /// The nodes of the standbys the plan may start (the shell reads those of
    /// [`super::stopped_in_zone`]), matched to them by [`node_of`].
    #[serde(default)]
    pub standby_nodes: Vec<NodeFacts>,
    /// Standby leases this delivery tried to take and another held.
    #[serde(default)]
    pub lost_claims: Vec<LostClaim>,
}

/// A standby lease another delivery held when this one tried to take it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostClaim {
    /// The standby.
    pub standby: String,
    /// The interruption holding its lease, when the table said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_by: Option<String>,
}

/// Why no standby is started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum NoStandbyReason {
    /// EC2 does not know the instance.
    InstanceNotFound {
        /// Instance.
        instance_id: String,
    },
    /// The instance is itself a standby (or not spot): nothing to replace.
    NotASpotInstance {
        /// Instance.
        instance_id: String,
    },
    /// No cluster tag passes the allow-list.
    NoCluster {
        /// Instance.
        instance_id: String,
    },
    /// The instance is already gone (stopped or terminated).
    InstanceGone {
        /// Instance.
        instance_id: String,
    },
    /// No startable standby of the cluster in the zone.
    NoneAvailable {
        /// Cluster.
        cluster: String,
        /// Zone.
        zone: String,
    },
    /// Every startable standby of the cluster in the zone was leased by
    /// another interruption while this delivery tried them, one by one.
    AllLeased {
        /// Cluster.
        cluster: String,
        /// Zone.
        zone: String,
        /// The standbys tried.
        standbys: Vec<String>,
    },
    /// The pool is disabled (`COSTOP_STANDBY_POOL_SIZE=0`).
    PoolDisabled,
}

impl NoStandbyReason {
    /// One line for the timeline.
    pub fn describe(&self) -> String {
        match self {
            NoStandbyReason::InstanceNotFound { instance_id } => {
                format!("{instance_id} is unknown to EC2")
            }
            NoStandbyReason::NotASpotInstance { instance_id } => {
                format!("{instance_id} is not a spot instance")
            }
            NoStandbyReason::NoCluster { instance_id } => {
                format!("{instance_id} is in no allowed cluster")
            }
            NoStandbyReason::InstanceGone { instance_id } => {
                format!("{instance_id} is already down")
            }
            NoStandbyReason::NoneAvailable { cluster, zone } => {
                format!("no stopped, available standby of cluster {cluster} in {zone}")
            }
            NoStandbyReason::AllLeased {
                cluster,
                zone,
                standbys,
            } => format!(
                "every standby of cluster {cluster} in {zone} is leased to another interruption ({})",
                standbys.join(", ")
            ),
            NoStandbyReason::PoolDisabled => {
                "the standby pool is disabled (pool size 0)".to_owned()
            }
        }
    }
}

/// The keeper's plan for one Spot warning or rebalance recommendation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartPlan {
    /// The interruption (same id the interruption function records under).
    pub interruption_id: String,
    /// Cluster.
    pub cluster: String,
    /// The interrupted instance.
    pub spot_instance: String,
    /// The chosen standby.
    pub standby: String,
    /// Zone.
    pub zone: String,
    /// The type the standby will run as.
    pub instance_type: String,
    /// Print, do not execute.
    pub dry_run: bool,
    /// Steps in order.
    pub actions: Vec<StartAction>,
}

/// How a standby was recognised as already serving an interruption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServedBy {
    /// Its `costop.io/standby-interruption` tag names the interruption, and it
    /// is up: an earlier delivery started it.
    Tags,
    /// Its lease names the interruption, taken moments ago: a concurrent
    /// delivery is starting it.
    Lease,
}

/// The verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)]
pub enum StartDecision {
    /// Start (or prepare) this standby.
    Act(StartPlan),
    /// A standby already serves this interruption: note it on the timeline and
    /// tolerate the replacements onto it. Nothing is claimed, tagged, retyped
    /// or started.
    Join {
        /// How it was recognised.
        by: ServedBy,
        /// The plan (a record and the replacement watch).
        #[serde(flatten)]
        plan: StartPlan,
    },
    /// Nothing to start; recorded on the interruption's timeline when it has one.
    NoStandby {
        /// The interruption, when the instance is known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interruption_id: Option<String>,
        /// Why.
        reason: NoStandbyReason,
    },
}

impl StartDecision {
    /// The plan to execute, when there is one.
    pub fn plan(&self) -> Option<&StartPlan> {
        match self {
            StartDecision::Act(plan) | StartDecision::Join { plan, .. } => Some(plan),
            StartDecision::NoStandby { .. } => None,
        }
    }
}

struct Chosen<'a> {
    spot: &'a InstanceFacts,
    standby: &'a InstanceFacts,
    cluster: String,
    zone: String,
    instance_type: String,
    retype: Option<StartAction>,
}

fn pick<'a>(
    instance_id: &str,
    facts: &'a StartFacts,
    config: &Config,
    iid: Option<&str>,
) -> Result<Chosen<'a>, Box<StartDecision>> {
    let no = |reason| {
        Box::new(StartDecision::NoStandby {
            interruption_id: iid.map(str::to_owned),
            reason,
        })
    };
    let id = instance_id.to_owned();
    if config.standby_pool_size == 0 {
        return Err(no(NoStandbyReason::PoolDisabled));
    }
    let Some(spot) = facts.spot.as_ref().filter(|s| s.instance_id == instance_id) else {
        return Err(no(NoStandbyReason::InstanceNotFound { instance_id: id }));
    };
    if is_standby(spot) || spot.lifecycle != Lifecycle::Spot {
        return Err(no(NoStandbyReason::NotASpotInstance { instance_id: id }));
    }
    if matches!(
        spot.state,
        InstanceState::Stopped | InstanceState::Terminated
    ) {
        return Err(no(NoStandbyReason::InstanceGone { instance_id: id }));
    }
    let Some(cluster) = resolve_cluster(spot, config) else {
        return Err(no(NoStandbyReason::NoCluster { instance_id: id }));
    };
    let zone = spot.availability_zone.clone().unwrap_or_default();
    let all = candidates(spot, &cluster.name, &facts.standbys, iid);
    let lost = |s: &InstanceFacts| facts.lost_claims.iter().any(|c| c.standby == s.instance_id);
    let Some(standby) = all.iter().copied().find(|s| !lost(s)) else {
        return Err(no(if all.is_empty() {
            NoStandbyReason::NoneAvailable {
                cluster: cluster.name,
                zone,
            }
        } else {
            NoStandbyReason::AllLeased {
                cluster: cluster.name,
                zone,
                standbys: all.iter().map(|s| s.instance_id.clone()).collect(),
            }
        }));
    };
    let instance_type = spot
        .instance_type
        .clone()
        .or_else(|| standby.instance_type.clone())
        .unwrap_or_default();
    let retype = (standby.instance_type.as_deref() != Some(instance_type.as_str())).then(|| {
        StartAction::RetypeStandby {
            instance_id: standby.instance_id.clone(),
            from: standby.instance_type.clone(),
            to: instance_type.clone(),
        }
    });
    Ok(Chosen {
        spot,
        standby,
        cluster: cluster.name,
        zone,
        instance_type,
        retype,
    })
}

/// A standby whose tags say it serves `iid` and that is up (or being
/// returned): an earlier delivery started it. One tagged for `iid` but still
/// stopped never started, and is a candidate to resume instead.
fn started_for(standby: &InstanceFacts, iid: &str) -> bool {
    serves(standby, iid)
        && match status(standby) {
            Some(StandbyStatus::Serving(_)) => {
                matches!(
                    standby.state,
                    InstanceState::Pending | InstanceState::Running
                )
            }
            _ => true,
        }
}

/// The standby already serving `iid`, and how that is known.
fn served<'a>(iid: &str, facts: &'a StartFacts) -> Option<(&'a str, ServedBy)> {
    if let Some(s) = facts.standbys.iter().find(|s| started_for(s, iid)) {
        return Some((&s.instance_id, ServedBy::Tags));
    }
    facts
        .lost_claims
        .iter()
        .find(|c| c.held_by.as_deref() == Some(iid))
        .map(|c| (c.standby.as_str(), ServedBy::Lease))
}

/// Tolerate the interrupted node's replacements until
/// `COSTOP_STANDBY_WATCH_SECONDS` after the warning (when the node is known).
fn tolerate_step(
    event: &Delivered<SpotInterruptionWarning>,
    iid: &str,
    cluster: &str,
    facts: &StartFacts,
    config: &Config,
) -> Option<StartAction> {
    let node = facts.node.as_ref()?;
    // Even with no owners counted here: pods that stopped fast may be gone already, and the
    // interruption function's snapshot (read by the watch) still counts them.
    Some(StartAction::TolerateReplacements(
        ReplacementSpec::for_node(
            iid,
            cluster,
            &node.name,
            &facts.pods,
            standby_toleration(config),
            event.envelope.time,
            event.envelope.time + TimeDelta::seconds(config.standby_watch_seconds),
        ),
    ))
}

fn join(
    event: &Delivered<SpotInterruptionWarning>,
    iid: String,
    (standby_id, by): (&str, ServedBy),
    facts: &StartFacts,
    config: &Config,
    now: DateTime<Utc>,
) -> StartDecision {
    let standby = facts.standbys.iter().find(|s| s.instance_id == standby_id);
    let cluster = [facts.spot.as_ref(), standby]
        .into_iter()
        .flatten()
        .find_map(|i| resolve_cluster(i, config))
        .map(|c| c.name)
        .unwrap_or_default();
    let zone = [standby, facts.spot.as_ref()]
        .into_iter()
        .flatten()
        .find_map(|i| i.availability_zone.clone())
        .unwrap_or_default();
    let mut actions = vec![StartAction::Record(TimelineEntry {
        interruption_id: iid.clone(),
        at: now,
        step: TimelineStep::StandbyJoined {
            standby: standby_id.to_owned(),
        },
    })];
    actions.extend(tolerate_step(event, &iid, &cluster, facts, config));
    StartDecision::Join {
        by,
        plan: StartPlan {
            interruption_id: iid,
            cluster,
            spot_instance: event.detail.instance_id.clone(),
            standby: standby_id.to_owned(),
            zone,
            instance_type: standby
                .and_then(|s| s.instance_type.clone())
                .unwrap_or_default(),
            dry_run: config.dry_run,
            actions,
        },
    }
}

/// Plans the keeper's answer to a Spot warning. When a standby already serves
/// the interruption ([`ServedBy`]), join it: record that and tolerate the
/// replacements. Otherwise take the standby's lease, tag it serving, retype it
/// if needed, start it, clear its node if an earlier life left it cordoned or
/// tainted, record it, then tolerate the node's replacement pods until
/// `COSTOP_STANDBY_WATCH_SECONDS` after the warning.
pub fn plan_start(
    event: &Delivered<SpotInterruptionWarning>,
    facts: &StartFacts,
    config: &Config,
    now: DateTime<Utc>,
) -> StartDecision {
    let instance_id = &event.detail.instance_id;
    let iid = interruption_id(
        instance_id,
        EventKind::SpotInterruption,
        event.envelope.time,
    );
    if let Some(served) = served(&iid, facts) {
        return join(event, iid, served, facts, config, now);
    }
    let c = match pick(instance_id, facts, config, Some(&iid)) {
        Ok(c) => c,
        Err(d) => return *d,
    };
    let standby_id = c.standby.instance_id.clone();
    let mut actions = vec![
        StartAction::ClaimStandby(StandbyLease {
            standby: standby_id.clone(),
            interruption_id: iid.clone(),
            spot_instance: instance_id.clone(),
            takeover_if_taken_before: now - TimeDelta::seconds(LEASE_TAKEOVER_SECONDS),
            resume_if_taken_before: now - TimeDelta::seconds(LEASE_IN_FLIGHT_SECONDS),
            expires_at: now + TimeDelta::days(i64::from(config.timeline_ttl_days)),
        }),
        StartAction::TagStandby(TagChange {
            instance_id: standby_id.clone(),
            set: serving_tags(&iid, c.spot, now),
            remove: Vec::new(),
        }),
    ];
    let retyped_from = c.retype.as_ref().and(c.standby.instance_type.clone());
    actions.extend(c.retype);
    actions.push(StartAction::StartStandby {
        instance_id: standby_id.clone(),
    });
    // After the start, which it must not delay: the node takes no pods before it is Ready.
    if let Some(patch) =
        node_of(c.standby, &facts.standby_nodes).and_then(|n| clear_node(n, config))
    {
        actions.push(StartAction::ClearStandbyNode(patch));
    }
    actions.push(StartAction::Record(TimelineEntry {
        interruption_id: iid.clone(),
        at: now,
        step: TimelineStep::StandbyStarted {
            standby: standby_id.clone(),
            instance_type: c.instance_type.clone(),
            retyped_from,
        },
    }));
    actions.extend(tolerate_step(event, &iid, &c.cluster, facts, config));
    StartDecision::Act(StartPlan {
        interruption_id: iid,
        cluster: c.cluster,
        spot_instance: instance_id.clone(),
        standby: standby_id,
        zone: c.zone,
        instance_type: c.instance_type,
        dry_run: config.dry_run,
        actions,
    })
}

/// Plans the keeper's answer to a rebalance recommendation: when the zone's
/// standby is of another type, retype it now (it is stopped, so this is
/// free), so the warning that may follow only has to start it. Nothing else:
/// the node keeps running until the warning comes.
pub fn plan_prepare(
    event: &Delivered<RebalanceRecommendation>,
    facts: &StartFacts,
    config: &Config,
) -> StartDecision {
    let instance_id = &event.detail.instance_id;
    let iid = interruption_id(
        instance_id,
        EventKind::RebalanceRecommendation,
        event.envelope.time,
    );
    let c = match pick(instance_id, facts, config, Some(&iid)) {
        Ok(c) => c,
        Err(d) => return *d,
    };
    StartDecision::Act(StartPlan {
        interruption_id: iid,
        cluster: c.cluster,
        spot_instance: instance_id.clone(),
        standby: c.standby.instance_id.clone(),
        zone: c.zone,
        instance_type: c.instance_type,
        dry_run: config.dry_run,
        actions: c.retype.into_iter().collect(),
    })
}
