//! Pool maintenance, once a minute per cluster: return serving standbys to
//! the pool when spot capacity is back (cordon, evict with PDBs respected,
//! stop, retag, release), undo starts that never happened, stop standbys
//! started outside costop, and report the pool against its wanted size.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::action::{TagChange, TickAction};
use super::{Assignment, StandbyStatus, in_cluster, status};
use crate::config::Config;
use crate::constants;
use crate::event::InstanceState;
use crate::facts::{InstanceFacts, NodeFacts, PodFacts};
use crate::plan::{EvictPod, PodDisposition, classify_pod};
use crate::record::{TimelineEntry, TimelineStep};

/// A serving standby still stopped this long after it was tagged never
/// started (its keeper died, or `StartInstances` failed): back to the pool.
pub const START_GRACE_SECONDS: i64 = 180;

/// One standby as the tick sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StandbyFacts {
    /// The instance.
    pub instance: InstanceFacts,
    /// Its node, when registered.
    #[serde(default)]
    pub node: Option<NodeFacts>,
    /// Pods bound to the node.
    #[serde(default)]
    pub pods: Vec<PodFacts>,
}

/// What the shell observed for one cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolFacts {
    /// Cluster.
    pub cluster: String,
    /// Its standbys (any state).
    pub standbys: Vec<StandbyFacts>,
    /// Every node of the cluster (spot capacity coming back shows here).
    pub nodes: Vec<NodeFacts>,
}

/// The pool in one zone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneReport {
    /// Stopped standbys ready to start.
    pub available: u32,
    /// Standbys serving an interruption.
    pub serving: u32,
    /// Standbys being returned.
    pub returning: u32,
    /// `COSTOP_STANDBY_POOL_SIZE`.
    pub wanted: u32,
}

/// The pool of a cluster, by zone (zones with standbys or spot nodes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolReport {
    /// Per zone.
    pub zones: BTreeMap<String, ZoneReport>,
}

impl PoolReport {
    /// Available standbys, all zones.
    pub fn available(&self) -> u32 {
        self.zones.values().map(|z| z.available).sum()
    }
    /// Serving standbys, all zones.
    pub fn serving(&self) -> u32 {
        self.zones.values().map(|z| z.serving).sum()
    }
    /// Zones with fewer available standbys than wanted.
    pub fn short_zones(&self) -> Vec<&str> {
        self.zones
            .iter()
            .filter(|(_, z)| z.available < z.wanted)
            .map(|(n, _)| n.as_str())
            .collect()
    }
}

/// One tick's plan for a cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TickPlan {
    /// Cluster.
    pub cluster: String,
    /// The pool before the actions.
    pub report: PoolReport,
    /// Print, do not execute.
    pub dry_run: bool,
    /// Steps, standby by standby.
    pub actions: Vec<TickAction>,
}

/// Plans one tick for `facts.cluster`.
pub fn plan_tick(facts: &PoolFacts, config: &Config, now: DateTime<Utc>) -> TickPlan {
    let mut report = PoolReport::default();
    for n in facts.nodes.iter().filter(|n| n.is_spot()) {
        if let Some(z) = n.zone() {
            report.zones.entry(z.to_owned()).or_default();
        }
    }
    let mut actions = Vec::new();
    for s in facts
        .standbys
        .iter()
        .filter(|s| in_cluster(&s.instance, &facts.cluster))
    {
        let Some(st) = status(&s.instance) else {
            continue;
        };
        if s.instance.state == InstanceState::Terminated {
            continue;
        }
        let zone = s.instance.availability_zone.clone().unwrap_or_default();
        let z = report.zones.entry(zone).or_default();
        match &st {
            StandbyStatus::Available if is_down(&s.instance) => z.available += 1,
            StandbyStatus::Available => {
                // Started outside costop: drain what landed there, then stop it.
                z.returning += 1;
                actions.extend(returning(s, &Assignment::default(), config, now));
            }
            StandbyStatus::Serving(a) => {
                z.serving += 1;
                actions.extend(serving(s, a, facts, config, now));
            }
            StandbyStatus::Returning(a) => {
                z.returning += 1;
                actions.extend(returning(s, a, config, now));
            }
        }
    }
    for z in report.zones.values_mut() {
        z.wanted = config.standby_pool_size;
    }
    TickPlan {
        cluster: facts.cluster.clone(),
        report,
        dry_run: config.dry_run,
        actions,
    }
}

fn is_down(i: &InstanceFacts) -> bool {
    matches!(i.state, InstanceState::Stopped | InstanceState::Stopping)
}

fn serving(
    s: &StandbyFacts,
    a: &Assignment,
    facts: &PoolFacts,
    config: &Config,
    now: DateTime<Utc>,
) -> Vec<TickAction> {
    let since = a.since.unwrap_or(DateTime::<Utc>::MIN_UTC);
    if s.instance.state == InstanceState::Stopped {
        // Tagged serving but never (or no longer) running.
        if since + TimeDelta::seconds(START_GRACE_SECONDS) <= now {
            return back_to_pool(s, a, now, false);
        }
        return Vec::new();
    }
    if s.instance.state != InstanceState::Running
        || since + TimeDelta::seconds(config.standby_min_serve_seconds) > now
    {
        return Vec::new();
    }
    if !capacity_back(s, a, since, facts, config) {
        return Vec::new();
    }
    let mut out = vec![TickAction::TagStandby(TagChange {
        instance_id: s.instance.instance_id.clone(),
        set: BTreeMap::from([(
            constants::TAG_STANDBY_STATE.to_owned(),
            constants::STANDBY_STATE_RETURNING.to_owned(),
        )]),
        remove: Vec::new(),
    })];
    out.extend(returning(s, a, config, now));
    out
}

/// Spot capacity is back for a standby serving since `since`: a Ready,
/// schedulable spot node, not tainted by costop, registered after `since`, in
/// the standby's zone or the interrupted node's group.
fn capacity_back(
    s: &StandbyFacts,
    a: &Assignment,
    since: DateTime<Utc>,
    facts: &PoolFacts,
    config: &Config,
) -> bool {
    let costop_taints = config.taint_keys.all();
    let zone = s.instance.availability_zone.as_deref();
    facts.nodes.iter().any(|n| {
        n.is_spot()
            && n.ready == Some(true)
            && !n.unschedulable
            && n.created_at.is_some_and(|t| t > since)
            && !n
                .taints
                .iter()
                .any(|t| costop_taints.contains(&t.key.as_str()))
            && (n.zone().is_some() && n.zone() == zone
                || a.node_group.is_some()
                    && n.labels.get(constants::LABEL_EKS_NODEGROUP) == a.node_group.as_ref())
    })
}

/// Drain a returning standby; once nothing but DaemonSet/mirror pods is
/// left, stop it and put it back in the pool.
fn returning(
    s: &StandbyFacts,
    a: &Assignment,
    config: &Config,
    now: DateTime<Utc>,
) -> Vec<TickAction> {
    let moving: Vec<&PodFacts> = s
        .pods
        .iter()
        .filter(|p| !p.is_mirror() && !p.is_daemonset() && !p.is_finished())
        .collect();
    if moving.is_empty() || is_down(&s.instance) {
        return back_to_pool(s, a, now, true);
    }
    let mut out = Vec::new();
    if let Some(node) = s.node.as_ref().filter(|n| !n.unschedulable) {
        out.push(TickAction::SetUnschedulable {
            node: node.name.clone(),
            unschedulable: true,
        });
    }
    let evict: Vec<EvictPod> = moving
        .iter()
        .filter(|p| classify_pod(p) == PodDisposition::Evict)
        .map(|p| EvictPod {
            namespace: p.namespace.clone(),
            name: p.name.clone(),
            uid: p.uid.clone(),
            grace_period_seconds: p.grace_seconds().min(config.grace_cap_seconds),
            after_rotation: false,
        })
        .collect();
    // Pods already terminating: wait for them; the stop comes on a later tick.
    if !evict.is_empty() {
        let node = s.node.as_ref().map(|n| n.name.clone()).unwrap_or_default();
        out.push(TickAction::EvictFromStandby { node, pods: evict });
    }
    out
}

fn back_to_pool(
    s: &StandbyFacts,
    a: &Assignment,
    now: DateTime<Utc>,
    returned: bool,
) -> Vec<TickAction> {
    let id = s.instance.instance_id.clone();
    let mut out = Vec::new();
    if !is_down(&s.instance) {
        out.push(TickAction::StopStandby {
            instance_id: id.clone(),
        });
    }
    out.push(TickAction::TagStandby(super::available_tags(&id)));
    if let Some(node) = s.node.as_ref().filter(|n| n.unschedulable) {
        // The taint keeps other pods off; the next serving start needs it schedulable.
        out.push(TickAction::SetUnschedulable {
            node: node.name.clone(),
            unschedulable: false,
        });
    }
    out.push(TickAction::ReleaseLease {
        instance_id: id.clone(),
    });
    if let (true, Some(iid)) = (returned, &a.interruption_id) {
        out.push(TickAction::Record(TimelineEntry {
            interruption_id: iid.clone(),
            at: now,
            step: TimelineStep::StandbyReturned { standby: id },
        }));
    }
    out
}
