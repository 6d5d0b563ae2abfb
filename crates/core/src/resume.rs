//! Nodes that come back. An interruption the instance may survive — a Spot stop or
//! hibernation, a stop, an AWS Health scheduled change (a reboot sends no state change at all)
//! — leaves a [`ResumeWatch`]; the keeper's tick decides here, for each watch, whether the
//! instance is back and its node should be given back what costop took.
//!
//! Why the tick and not a `running` rule: EC2's state-change events carry no tags, so a
//! `running` rule fires for every launch in the region; a reboot sends none; and a missed
//! event must not leave a node cordoned forever. The tick reads one partition a minute and
//! restores a node within a minute of its instance being back, which is well inside the
//! minutes-to-days a stopped instance was away.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::constants;
use crate::event::InstanceState;
use crate::facts::{InstanceFacts, NodeFacts};
use crate::plan::action::{RestoreNode, ResumeWatch};

/// What to do about one watch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum ResumeDecision {
    /// Not back yet (or still on its way down); look again next tick.
    Wait {
        /// Why.
        reason: String,
    },
    /// The instance will not come back (terminated, unknown to EC2) or its node is gone:
    /// drop the watch.
    Forget {
        /// Why.
        reason: String,
    },
    /// Back: restore the node (`None` when it already is as before), record RESUMED, drop the
    /// watch.
    Restore {
        /// The node patch.
        restore: Option<RestoreNode>,
        /// What it gives back, for the timeline.
        restored: Vec<String>,
    },
}

/// Decide for one watch. `node` is the watch's node as it is now; `before` the node as the
/// interruption's snapshot recorded it, before costop's cordon (absent: nothing was costop's
/// before, so every mark of costop's goes).
pub fn plan_resume(
    watch: &ResumeWatch,
    instance: Option<&InstanceFacts>,
    node: Option<&NodeFacts>,
    before: Option<&NodeFacts>,
    config: &Config,
    now: DateTime<Utc>,
) -> ResumeDecision {
    let wait = |reason: &str| ResumeDecision::Wait {
        reason: reason.to_owned(),
    };
    let forget = |reason: &str| ResumeDecision::Forget {
        reason: reason.to_owned(),
    };
    if let Some(decided) = before_the_node(watch, instance, config, now) {
        return decided;
    }
    let Some(node) = node.filter(|n| n.may_back(&watch.instance_id)) else {
        return forget("the node is gone");
    };
    // A later interruption (a Spot warning after a rebalance recommendation) marked the node:
    // its own watch, if any, decides; this one is over.
    if node
        .annotations
        .get(constants::ANNOTATION_INTERRUPTION_ID)
        .is_some_and(|owner| *owner != watch.interruption_id)
    {
        return forget("a later interruption marked the node");
    }
    if node.ready != Some(true) {
        return wait("the node is not Ready");
    }
    let (restore, restored) = restoration(node, before, config);
    ResumeDecision::Restore { restore, restored }
}

/// The decision when it needs no look at the node (the shell reads the node and the snapshot
/// only when this is `None`): the instance is gone, away, or still on its way down.
pub fn before_the_node(
    watch: &ResumeWatch,
    instance: Option<&InstanceFacts>,
    config: &Config,
    now: DateTime<Utc>,
) -> Option<ResumeDecision> {
    let wait = |reason: &str| {
        Some(ResumeDecision::Wait {
            reason: reason.to_owned(),
        })
    };
    let Some(instance) = instance else {
        return Some(ResumeDecision::Forget {
            reason: "the instance is unknown to EC2".to_owned(),
        });
    };
    match instance.state {
        InstanceState::ShuttingDown | InstanceState::Terminated => {
            return Some(ResumeDecision::Forget {
                reason: "the instance is terminated".to_owned(),
            });
        }
        InstanceState::Running => {}
        _ => return wait("the instance is not running"),
    }
    if now < watch.deadline + TimeDelta::seconds(config.resume_settle_seconds) {
        return wait("the interruption's deadline and settle time are not over");
    }
    None
}

/// The patch that gives `node` back what costop took, and what it gives back.
fn restoration(
    node: &NodeFacts,
    before: Option<&NodeFacts>,
    config: &Config,
) -> (Option<RestoreNode>, Vec<String>) {
    let per_kind = config.taint_keys.all();
    let costops: Vec<&str> = per_kind
        .iter()
        .copied()
        .chain([constants::TAINT_OUT_OF_SERVICE])
        .collect();
    let had_taint = |key: &str| before.is_some_and(|b| b.taints.iter().any(|t| t.key == key));
    let mut restored = Vec::new();
    let taints_after = node
        .taints
        .iter()
        .filter(|t| {
            let costops_own = costops.contains(&t.key.as_str()) && !had_taint(&t.key);
            if costops_own {
                restored.push(t.key.clone());
            }
            !costops_own
        })
        .cloned()
        .collect();
    let unschedulable = before.is_some_and(|b| b.unschedulable);
    if node.unschedulable && !unschedulable {
        restored.insert(0, "uncordoned".to_owned());
    }
    let label = constants::LABEL_EXCLUDE_FROM_EXTERNAL_LB;
    let remove_labels: Vec<String> = (node.labels.contains_key(label)
        && !before.is_some_and(|b| b.labels.contains_key(label)))
    .then(|| label.to_owned())
    .into_iter()
    .collect();
    restored.extend(remove_labels.iter().cloned());
    if restored.is_empty() {
        return (None, restored);
    }
    let restore = RestoreNode {
        node: node.name.clone(),
        unschedulable,
        taints_after,
        remove_labels,
        remove_annotations: vec![
            constants::ANNOTATION_INTERRUPTION_ID.to_owned(),
            constants::ANNOTATION_DEADLINE.to_owned(),
        ],
        resource_version: node.resource_version.clone(),
    };
    (Some(restore), restored)
}

#[cfg(test)]
mod tests;
