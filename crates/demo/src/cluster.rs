//! The cluster as the demo shows it: one read of kubesim's nodes and pods, and its rendering
//! per node (its pods under it, CPU requested against allocatable, so a full node shows), with
//! the interrupted node, the standby and the displaced pods' replacements marked.

use std::collections::BTreeSet;
use std::io::Write;

use costop_core::constants;
use kubesim::Simulator;
use kubesim::controllers::matching;
use kubesim::resources;
use kubesim::store::ListOptions;
use serde_json::Value;

/// One pod, as far as the demo cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// The controller owner: (kind, name).
    pub owner: Option<(String, String)>,
    /// Bound node.
    pub node: Option<String>,
    pub phase: String,
    pub terminating: bool,
    /// CPU requested, millicores.
    pub cpu_m: i64,
    /// Tolerations, as `key=value:Effect` (`*` for a toleration of every taint).
    pub tolerations: Vec<String>,
    /// Why the scheduler left it unbound (its `PodScheduled=False` message).
    pub unschedulable: Option<String>,
    /// It answers HTTP on the bed (its `bed.costop.io/app` annotation), so requests reach it.
    pub serves_http: bool,
}

impl PodView {
    fn read(p: &Value) -> Self {
        let s = |ptr: &str| p.pointer(ptr).and_then(Value::as_str).map(str::to_string);
        let owner = p
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .and_then(|refs| refs.iter().find(|r| r["controller"] == true))
            .and_then(|r| Some((r["kind"].as_str()?.into(), r["name"].as_str()?.into())));
        let tolerations = p
            .pointer("/spec/tolerations")
            .and_then(Value::as_array)
            .map(|ts| ts.iter().map(toleration).collect())
            .unwrap_or_default();
        let unschedulable = p
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c["type"] == "PodScheduled" && c["status"] == "False")
            })
            .and_then(|c| c["message"].as_str().map(str::to_string));
        Self {
            namespace: s("/metadata/namespace").unwrap_or_default(),
            name: s("/metadata/name").unwrap_or_default(),
            uid: s("/metadata/uid").unwrap_or_default(),
            owner,
            node: s("/spec/nodeName").filter(|n| !n.is_empty()),
            phase: s("/status/phase").unwrap_or_else(|| "Pending".into()),
            terminating: p.pointer("/metadata/deletionTimestamp").is_some(),
            cpu_m: matching::pod_requests(p).cpu_m,
            tolerations,
            unschedulable,
            serves_http: p
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(costop_bed::net::pods::ANNOTATION_APP))
                .is_some(),
        }
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    pub fn is_daemonset(&self) -> bool {
        self.owner.as_ref().is_some_and(|(k, _)| k == "DaemonSet")
    }

    pub fn is_running(&self) -> bool {
        self.phase == "Running" && !self.terminating
    }

    /// Whether it tolerates the standby taint `costop.io/standby=true:NoSchedule` by name (a
    /// toleration of every taint, as the DaemonSet's, does not count: costop did not give it).
    pub fn tolerates_standby(&self) -> bool {
        self.tolerations.iter().any(|t| t == &standby_taint())
    }
}

/// The standby taint, as `key=value:Effect`.
pub fn standby_taint() -> String {
    format!(
        "{}={}:NoSchedule",
        constants::TAINT_STANDBY,
        constants::TAINT_STANDBY_VALUE
    )
}

fn toleration(t: &Value) -> String {
    let key = t["key"].as_str().unwrap_or_default();
    if key.is_empty() && t["operator"] == "Exists" {
        return "*".into();
    }
    let value = t["value"].as_str().unwrap_or_default();
    let effect = t["effect"].as_str().unwrap_or_default();
    format!("{key}={value}:{effect}")
}

fn taint(t: &Value) -> String {
    let key = t["key"].as_str().unwrap_or_default();
    let effect = t["effect"].as_str().unwrap_or_default();
    match t["value"].as_str().filter(|v| !v.is_empty()) {
        Some(v) => format!("{key}={v}:{effect}"),
        None => format!("{key}:{effect}"),
    }
}

/// One node, as far as the demo cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    pub name: String,
    pub instance_id: Option<String>,
    /// `SPOT` or `ON_DEMAND`.
    pub capacity_type: String,
    pub zone: String,
    pub instance_type: String,
    pub ready: bool,
    pub unschedulable: bool,
    /// Excluded from external load balancers (costop's label).
    pub excluded_from_lbs: bool,
    /// As `key=value:Effect`.
    pub taints: Vec<String>,
    /// Allocatable CPU, millicores.
    pub cpu_allocatable_m: i64,
}

impl NodeView {
    fn read(n: &Value) -> Self {
        let label = |k: &str| {
            n["metadata"]["labels"][k]
                .as_str()
                .unwrap_or("-")
                .to_string()
        };
        Self {
            name: n["metadata"]["name"].as_str().unwrap_or("?").to_string(),
            instance_id: costop_bed::node_instance_id(n).map(str::to_string),
            capacity_type: label("eks.amazonaws.com/capacityType"),
            zone: label("topology.kubernetes.io/zone"),
            instance_type: label("node.kubernetes.io/instance-type"),
            ready: costop_bed::node_ready(n),
            unschedulable: n.pointer("/spec/unschedulable") == Some(&Value::Bool(true)),
            excluded_from_lbs: n["metadata"]["labels"]
                .get(constants::LABEL_EXCLUDE_FROM_EXTERNAL_LB)
                .is_some(),
            taints: n
                .pointer("/spec/taints")
                .and_then(Value::as_array)
                .map(|ts| ts.iter().map(taint).collect())
                .unwrap_or_default(),
            cpu_allocatable_m: matching::cpu_millis(n.pointer("/status/allocatable/cpu")),
        }
    }

    fn status(&self) -> String {
        let mut s = if self.ready { "Ready" } else { "NotReady" }.to_string();
        if self.unschedulable {
            s.push_str(",SchedulingDisabled");
        }
        if self.excluded_from_lbs {
            s.push_str(",NoLoadBalancer");
        }
        s
    }
}

/// Every node and pod at one moment.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    pub nodes: Vec<NodeView>,
    pub pods: Vec<PodView>,
}

impl ClusterView {
    pub fn read(sim: &Simulator) -> Self {
        let store = sim.store();
        let all = ListOptions::default();
        let (nodes, _) = store.list(&resources::NODES, None, &all);
        let (pods, _) = store.list(&resources::PODS, None, &all);
        Self {
            nodes: nodes.iter().map(NodeView::read).collect(),
            pods: pods.iter().map(PodView::read).collect(),
        }
    }

    /// Pods bound to `node`.
    pub fn pods_on<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a PodView> + 'a {
        self.pods
            .iter()
            .filter(move |p| p.node.as_deref() == Some(node))
    }

    /// The node of an instance.
    pub fn node_of(&self, instance_id: &str) -> Option<&NodeView> {
        self.nodes
            .iter()
            .find(|n| n.instance_id.as_deref() == Some(instance_id))
    }

    /// CPU requested on `node` by its pods that still hold room (not finished).
    fn cpu_requested_m(&self, node: &str) -> i64 {
        self.pods_on(node)
            .filter(|p| p.phase != "Succeeded" && p.phase != "Failed")
            .map(|p| p.cpu_m)
            .sum()
    }
}

/// What to point out when rendering.
#[derive(Debug, Clone, Default)]
pub struct Marks {
    /// The interrupted node.
    pub interrupted: Option<String>,
    /// The standby's node, once started.
    pub standby: Option<String>,
    /// UIDs of the displaced pods' replacements.
    pub replacements: BTreeSet<String>,
    /// Standbys with no node (stopped, never started): (instance id, zone).
    pub stopped_standbys: Vec<(String, String)>,
}

/// Print every node with its pods under it; pods bound nowhere last, with the scheduler's reason.
pub fn render(view: &ClusterView, marks: &Marks, out: &mut dyn Write) -> std::io::Result<()> {
    let mark = |n: &str| {
        if marks.interrupted.as_deref() == Some(n) {
            "  <- interrupted"
        } else if marks.standby.as_deref() == Some(n) {
            "  <- STANDBY, started by costop-keeper"
        } else {
            ""
        }
    };
    let width = |f: fn(&NodeView) -> usize| view.nodes.iter().map(f).max().unwrap_or(0);
    let (w_name, w_cap, w_type, w_status) = (
        width(|n| n.name.len()),
        width(|n| n.capacity_type.len()),
        width(|n| n.instance_type.len()),
        width(|n| n.status().len()),
    );
    for n in &view.nodes {
        writeln!(
            out,
            "   {:<w_name$}  {:<w_cap$}  {}  {:<w_type$}  {:<w_status$}  cpu {:>5} of {}m requested{}",
            n.name,
            n.capacity_type,
            n.zone,
            n.instance_type,
            n.status(),
            format!("{}m", view.cpu_requested_m(&n.name)),
            n.cpu_allocatable_m,
            mark(&n.name)
        )?;
        if !n.taints.is_empty() {
            writeln!(out, "      taints: {}", n.taints.join(", "))?;
        }
        let mut pods: Vec<&PodView> = view.pods_on(&n.name).collect();
        pods.sort_by_key(|p| (p.is_daemonset(), p.key()));
        for p in pods {
            writeln!(out, "      {}", pod_line(p, marks))?;
        }
    }
    for (id, zone) in &marks.stopped_standbys {
        writeln!(
            out,
            "   {id}  standby in {zone}, stopped: no node until costop starts it"
        )?;
    }
    let unbound: Vec<&PodView> = view.pods.iter().filter(|p| p.node.is_none()).collect();
    if !unbound.is_empty() {
        writeln!(out, "   Pending (bound to no node):")?;
        for p in unbound {
            writeln!(out, "      {}", pod_line(p, marks))?;
            if let Some(why) = &p.unschedulable {
                writeln!(out, "        {why}")?;
            }
        }
    }
    Ok(())
}

fn pod_line(p: &PodView, marks: &Marks) -> String {
    let phase = if p.terminating {
        "Terminating"
    } else {
        p.phase.as_str()
    };
    let mut line = format!("{:<40} {:<11} cpu {:>4}m", p.key(), phase, p.cpu_m);
    if p.is_daemonset() {
        line.push_str("  (DaemonSet)");
    }
    if marks.replacements.contains(&p.uid) {
        line.push_str("  <- replaces a pod displaced");
        if let Some(n) = &marks.interrupted {
            line.push_str(&format!(" from {n}"));
        }
    }
    if p.tolerates_standby() {
        line.push_str(&format!(", tolerates {}", standby_taint()));
    }
    line
}
