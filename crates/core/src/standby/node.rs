//! A started standby's node, made fit for its replacements. The Node object
//! outlives a stop (as on EKS), so a standby that served before comes back
//! with whatever was done to its node then: cordoned by the tick's drain,
//! tainted by the interruption function when the stop was seen
//! (`costop.io/instance-state-change=stopping`), excluded from load
//! balancers, marked out of service. Replacements tolerate only the standby
//! taint, so each of those would keep them pending.

use serde::{Deserialize, Serialize};

use super::standby_taint;
use crate::config::Config;
use crate::constants;
use crate::facts::NodeFacts;
use crate::kube::Taint;

/// One patch of a standby's node: `spec.unschedulable=false`, the taints
/// replaced by `taints_after`, the labels in `remove_labels` removed,
/// conditional on the resourceVersion it was planned from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StandbyNodePatch {
    /// Node.
    pub node: String,
    /// The node's complete taint list after the change: every taint that is
    /// not costop's kept as it was, and the standby taint.
    pub taints_after: Vec<Taint>,
    /// Labels to remove.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove_labels: Vec<String>,
    /// Precondition for the patch (`metadata.resourceVersion`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
}

/// What `node` needs to take a standby's replacements, `None` when nothing:
/// schedulable, none of costop's per-kind taints nor the out-of-service taint
/// (the instance is running again), no exclude-from-load-balancers label, and
/// exactly the standby taint under its key, which keeps every pod costop did
/// not give the toleration off the node (another value or effect would also
/// keep the replacements off). Taints costop does not own (the node
/// controller's, the operator's) are left to their owners.
pub fn clear_node(node: &NodeFacts, config: &Config) -> Option<StandbyNodePatch> {
    let standby = standby_taint(config);
    let costop_keys = config.taint_keys.all();
    let keep = |t: &&Taint| {
        !costop_keys.contains(&t.key.as_str())
            && t.key != constants::TAINT_OUT_OF_SERVICE
            // The node controller mirrors `spec.unschedulable` into this taint; it goes with it.
            && t.key != constants::TAINT_UNSCHEDULABLE
            && (t.key != standby.key || **t == standby)
    };
    let mut taints_after: Vec<Taint> = node.taints.iter().filter(keep).cloned().collect();
    if !taints_after.contains(&standby) {
        taints_after.push(standby);
    }
    let remove_labels: Vec<String> = [constants::LABEL_EXCLUDE_FROM_EXTERNAL_LB]
        .into_iter()
        .filter(|l| node.labels.contains_key(*l))
        .map(str::to_owned)
        .collect();
    if !node.unschedulable && taints_after == node.taints && remove_labels.is_empty() {
        return None;
    }
    Some(StandbyNodePatch {
        node: node.name.clone(),
        taints_after,
        remove_labels,
        resource_version: node.resource_version.clone(),
    })
}
