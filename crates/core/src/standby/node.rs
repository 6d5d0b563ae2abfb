//! A started standby's node, made fit for its replacements. The Node object
//! outlives a stop (as on EKS), so a standby that served before comes back
//! with whatever was done to its node then: cordoned by the tick's drain,
//! tainted by the interruption function when the stop was seen
//! (`costop.io/instance-state-change=stopping`), excluded from load
//! balancers, marked out of service. Replacements tolerate only the standby
//! taint, so each of those would keep them pending.

use super::standby_taint;
use crate::config::Config;
use crate::constants;
use crate::facts::NodeFacts;
use crate::kube::Taint;
use crate::plan::action::RestoreNode;

/// What `node` needs to take a standby's replacements, `None` when nothing:
/// schedulable, none of costop's per-kind taints nor the out-of-service taint
/// (the instance is running again), no exclude-from-load-balancers label, and
/// exactly the standby taint under its key, which keeps every pod costop did
/// not give the toleration off the node (another value or effect would also
/// keep the replacements off). Taints costop does not own (the node
/// controller's, the operator's) are left to their owners.
pub fn clear_node(node: &NodeFacts, config: &Config) -> Option<RestoreNode> {
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
    Some(RestoreNode {
        node: node.name.clone(),
        unschedulable: false,
        taints_after,
        remove_labels,
        remove_annotations: Vec::new(),
        resource_version: node.resource_version.clone(),
    })
}
