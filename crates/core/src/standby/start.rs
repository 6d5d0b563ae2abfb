//! The keeper's answer to a Spot warning (start the zone's standby, retyped
//! to the spot node's type, and tolerate the node's replacements) and to a
//! rebalance recommendation (retype the zone's standby ahead of time, so a
//! warning that follows only has to start it).

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::action::{StartAction, TagChange};
use super::replacements::ReplacementSpec;
use super::{choose, is_standby, serving_tags, standby_toleration};
use crate::config::Config;
use crate::event::{
    Delivered, EventKind, InstanceState, RebalanceRecommendation, SpotInterruptionWarning,
};
use crate::facts::{InstanceFacts, Lifecycle, NodeFacts, PodFacts};
use crate::plan::{interruption_id, resolve_cluster};
use crate::record::{StandbyLease, TimelineEntry, TimelineStep};

/// A lease older than this, never released, may be taken over.
pub const LEASE_TAKEOVER_SECONDS: i64 = 600;

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
    /// Standbys whose lease another interruption holds (lost claims).
    #[serde(default)]
    pub leased_elsewhere: Vec<String>,
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

/// The verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)]
pub enum StartDecision {
    /// Start (or prepare) this standby.
    Act(StartPlan),
    /// Nothing to start; recorded on the interruption's timeline when it has one.
    NoStandby {
        /// The interruption, when the instance is known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interruption_id: Option<String>,
        /// Why.
        reason: NoStandbyReason,
    },
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
    let Some(standby) = choose(
        spot,
        &cluster.name,
        &facts.standbys,
        &facts.leased_elsewhere,
    ) else {
        return Err(no(NoStandbyReason::NoneAvailable {
            cluster: cluster.name,
            zone,
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

/// Plans the keeper's answer to a Spot warning: take the standby's lease,
/// tag it serving, retype it if needed, start it, record it, then tolerate
/// the node's replacement pods until `COSTOP_STANDBY_WATCH_SECONDS` after the
/// warning.
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
    actions.push(StartAction::Record(TimelineEntry {
        interruption_id: iid.clone(),
        at: now,
        step: TimelineStep::StandbyStarted {
            standby: standby_id.clone(),
            instance_type: c.instance_type.clone(),
            retyped_from,
        },
    }));
    if let Some(node) = &facts.node {
        let spec = ReplacementSpec::for_node(
            &iid,
            &c.cluster,
            &node.name,
            &facts.pods,
            standby_toleration(config),
            event.envelope.time,
            event.envelope.time + TimeDelta::seconds(config.standby_watch_seconds),
        );
        // Even with no owners counted here: pods that stopped fast may be gone already, and
        // the interruption function's snapshot (read by the watch) still counts them.
        actions.push(StartAction::TolerateReplacements(spec));
    }
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
