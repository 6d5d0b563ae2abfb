//! The pods a Spot warning displaces, and where their replacements run. Displaced: the pods on
//! the interrupted node that a controller recreates elsewhere (not the node's DaemonSet pods,
//! not finished ones). Each owner's controller replaces them with new pods; they have landed
//! when every owner has as many new pods Running as it lost. In a cluster with no room left
//! (the `demo` scenario) they all run on the standby, with the standby toleration; in a roomier
//! one some find room elsewhere first, and the demo says so.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kubesim::Simulator;

use crate::cluster::{ClusterView, PodView};

/// How often the wait looks at the cluster.
const POLL: Duration = Duration::from_millis(100);

/// The displaced pods on `node`, as seen before the warning.
pub fn displaced(view: &ClusterView, node: &str) -> Vec<PodView> {
    view.pods_on(node)
        .filter(|p| p.owner.is_some() && !p.is_daemonset())
        .filter(|p| p.phase != "Succeeded" && p.phase != "Failed")
        .cloned()
        .collect()
}

/// Where the replacements of the displaced pods are.
#[derive(Debug, Clone, Default)]
pub struct Placement {
    /// Replacements running on the standby with the standby toleration.
    pub on_standby: Vec<PodView>,
    /// Replacements running on another node, which had room.
    pub elsewhere: Vec<PodView>,
    /// What is still missing, one line each (empty when every replacement runs).
    pub waiting: Vec<String>,
}

impl Placement {
    /// Where the replacements of `displaced` are in `view`. `before` holds the UIDs of every pod
    /// that existed before the warning: any other pod of a displaced pod's owner is a
    /// replacement.
    pub fn of(
        view: &ClusterView,
        displaced: &[PodView],
        before: &BTreeSet<String>,
        standby_node: Option<&str>,
    ) -> Self {
        // (namespace, kind, name) of each owner → how many of its pods were displaced.
        let mut lost: BTreeMap<(&str, &str, &str), usize> = BTreeMap::new();
        for p in displaced {
            if let Some((kind, name)) = &p.owner {
                *lost.entry((&p.namespace, kind, name)).or_default() += 1;
            }
        }
        let mut placement = Placement::default();
        for ((namespace, kind, name), count) in lost {
            let new = view.pods.iter().filter(|p| {
                p.namespace == namespace
                    && p.owner
                        .as_ref()
                        .is_some_and(|(k, n)| k == kind && n == name)
                    && !before.contains(&p.uid)
                    && !p.terminating
            });
            let mut replaced = 0;
            for p in new {
                replaced += 1;
                let on_standby = standby_node.is_some() && p.node.as_deref() == standby_node;
                match (p.is_running(), on_standby && p.tolerates_standby()) {
                    (true, true) => placement.on_standby.push(p.clone()),
                    (true, false) => placement.elsewhere.push(p.clone()),
                    (false, _) => placement.waiting.push(describe(p, standby_node)),
                }
            }
            if replaced < count {
                placement.waiting.push(format!(
                    "{kind} {namespace}/{name}: {replaced} of its {count} displaced pod(s) replaced so far"
                ));
            }
        }
        placement
    }

    /// Every replacement runs.
    pub fn done(&self) -> bool {
        self.waiting.is_empty()
    }
}

/// Why a replacement is not running yet.
fn describe(p: &PodView, standby_node: Option<&str>) -> String {
    let key = p.key();
    match &p.node {
        None => format!(
            "{key} is Pending {} the standby toleration: {}",
            if p.tolerates_standby() {
                "with"
            } else {
                "without"
            },
            p.unschedulable.as_deref().unwrap_or("not scheduled yet")
        ),
        Some(n) if Some(n.as_str()) == standby_node => {
            format!("{key} is {} on the standby", p.phase)
        }
        Some(n) => format!("{key} is {} on {n}", p.phase),
    }
}

/// Poll until every replacement of the displaced pods runs, or `timeout` passes; the last
/// placement either way, the standby's node if it has one, and the time waited.
pub async fn wait_on_standby(
    sim: &Simulator,
    displaced: &[PodView],
    before: &BTreeSet<String>,
    standby_instance: &str,
    timeout: Duration,
) -> (Placement, Option<String>, Duration) {
    let began = Instant::now();
    loop {
        let view = ClusterView::read(sim);
        let node = view.node_of(standby_instance).map(|n| n.name.clone());
        let placement = Placement::of(&view, displaced, before, node.as_deref());
        if placement.done() || began.elapsed() >= timeout {
            return (placement, node, began.elapsed());
        }
        tokio::time::sleep(POLL).await;
    }
}
