//! Nodes backed by EC2 instances: the link that turns what EC2 says about the cluster's
//! instances into Node objects, as the AWS cloud provider and the kubelet do on EKS. A running
//! instance becomes a Ready node after the boot delay (counted from when it was first seen
//! running; named by its private DNS name, providerID `aws:///<az>/<instance-id>`, capacity and
//! EKS-style allocatable from its type, the labels, addresses, nodeInfo and Lease of an EKS
//! node); a stopped one becomes NotReady (Unknown, "Kubelet stopped posting node status.") with
//! the shutdown taint after the node monitor grace period and keeps its Node, so the node
//! lifecycle controller adds the unreachable taints and the taint manager evicts its pods; started
//! again it comes back with the labels and taints it had (only the kubelet's own labels are
//! refreshed, so a new instance type shows) and its capacity; a terminated or vanished one
//! loses its Node and Lease. A Node deleted by hand while its instance runs is registered again,
//! as a kubelet would.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::clock::Clock;
use crate::controllers;
use crate::error::ApiError;
use crate::resources::{LEASES, NODES};
use crate::store::{Store, Tx};

/// EC2 instance state, as DescribeInstances names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceState {
    Pending,
    Running,
    Stopping,
    Stopped,
    ShuttingDown,
    Terminated,
}

/// A node taint as given by the instance (e.g. the cluster-autoscaler node-template tags).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaintSpec {
    pub key: String,
    #[serde(default)]
    pub value: String,
    pub effect: String,
}

/// What the simulator needs to know about one instance of the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceFacts {
    pub instance_id: String,
    pub state: InstanceState,
    pub private_dns_name: String,
    pub private_ip: Option<String>,
    pub availability_zone: String,
    pub region: String,
    pub instance_type: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    /// Pod capacity (EKS: ENIs × (IPv4 per ENI − 1) + 2).
    pub max_pods: u32,
    pub spot: bool,
    /// Node group name, if any (label `eks.amazonaws.com/nodegroup`).
    pub nodegroup: Option<String>,
    /// Extra labels the node registers with.
    pub labels: BTreeMap<String, String>,
    /// Taints the node registers with.
    pub taints: Vec<TaintSpec>,
}

/// Settings of the node link (simulated seconds unless noted).
#[derive(Debug, Clone)]
pub struct NodeLinkConfig {
    /// From instance running to node Ready.
    pub boot_seconds: f64,
    /// From instance stopping to node NotReady (`node-monitor-grace-period`, 50 s since
    /// Kubernetes 1.32).
    pub not_ready_seconds: f64,
    /// Lease renewal interval (the kubelet's 10 s); never more often than every 2 s real.
    pub lease_renew_seconds: f64,
    /// Real-time interval of the reconcile loop.
    pub tick: Duration,
}

impl Default for NodeLinkConfig {
    fn default() -> Self {
        Self {
            boot_seconds: 30.0,
            not_ready_seconds: 50.0,
            lease_renew_seconds: 10.0,
            tick: Duration::from_millis(50),
        }
    }
}

/// Taint the AWS cloud provider puts on a node whose instance is shut down.
pub const SHUTDOWN_TAINT: &str = "node.cloudprovider.kubernetes.io/shutdown";
const KUBELET_VERSION: &str = "v1.33.0-eks-802817d";
const OS_IMAGE: &str = "Amazon Linux 2023.7.20250609";
const CONTAINERD: &str = "containerd://1.7.27";
const LEASE_NS: &str = "kube-node-lease";
/// Real time between checks that every Ready instance still has its Node.
const VERIFY_EVERY: Duration = Duration::from_secs(1);

/// Turns snapshots of the cluster's instances into Node objects over (simulated) time.
pub struct NodeLink {
    store: Arc<Store>,
    cfg: NodeLinkConfig,
    latest: Mutex<Vec<InstanceFacts>>,
}

/// What the link has done about one instance.
#[derive(Debug, Default)]
struct Tracked {
    running_since: Option<Instant>,
    stopped_since: Option<Instant>,
    /// Node name while a Node exists for it.
    node: Option<String>,
    ready: bool,
    instance_type: String,
}

impl NodeLink {
    pub fn new(store: Arc<Store>, cfg: NodeLinkConfig) -> Self {
        Self {
            store,
            cfg,
            latest: Mutex::new(Vec::new()),
        }
    }
    /// Record the latest full snapshot of the cluster's instances (all states). Instances
    /// missing from the snapshot are treated as terminated.
    pub fn observe(&self, facts: Vec<InstanceFacts>) {
        *self.latest.lock().unwrap_or_else(|e| e.into_inner()) = facts;
    }
    /// Start the loop that reconciles Nodes with the latest snapshot.
    pub fn spawn(self: Arc<Self>) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut tracked: HashMap<String, Tracked> = HashMap::new();
            let clock = *self.store.clock();
            let renew_every = clock
                .real_secs(self.cfg.lease_renew_seconds)
                .max(Duration::from_secs(2));
            let mut next_renew = Instant::now() + renew_every;
            let mut next_verify = Instant::now() + VERIFY_EVERY;
            let mut interval = tokio::time::interval(self.cfg.tick.max(Duration::from_millis(1)));
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                let facts = self
                    .latest
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                let verify = Instant::now() >= next_verify;
                if verify {
                    next_verify = Instant::now() + VERIFY_EVERY;
                }
                self.reconcile(&mut tracked, &facts, verify);
                if Instant::now() >= next_renew {
                    next_renew = Instant::now() + renew_every;
                    self.renew_leases(&tracked);
                }
            }
        })
    }

    fn reconcile(
        &self,
        tracked: &mut HashMap<String, Tracked>,
        facts: &[InstanceFacts],
        verify: bool,
    ) {
        let clock = *self.store.clock();
        let now = Instant::now();
        let mut seen = HashSet::new();
        let existing: Option<HashSet<String>> = verify.then(|| {
            let (nodes, _) = self.store.list(&NODES, None, &Default::default());
            nodes
                .iter()
                .map(|n| controllers::name(n).to_string())
                .collect()
        });
        for f in facts {
            seen.insert(f.instance_id.clone());
            let t = tracked.entry(f.instance_id.clone()).or_default();
            match f.state {
                InstanceState::Running => {
                    t.stopped_since = None;
                    let since = *t.running_since.get_or_insert(now);
                    if now < since + clock.real_secs(self.cfg.boot_seconds) {
                        continue;
                    }
                    let gone = existing
                        .as_ref()
                        .is_some_and(|e| t.node.as_ref().is_some_and(|n| !e.contains(n)));
                    if !t.ready || t.instance_type != f.instance_type || gone {
                        if gone {
                            tracing::info!(node = ?t.node, "node of a running instance was deleted; registering it again");
                        }
                        self.node_up(t, f);
                    }
                }
                InstanceState::Pending => {
                    t.running_since = None;
                }
                InstanceState::Stopping | InstanceState::Stopped | InstanceState::ShuttingDown => {
                    t.running_since = None;
                    let since = *t.stopped_since.get_or_insert(now);
                    if t.ready && now >= since + clock.real_secs(self.cfg.not_ready_seconds) {
                        self.node_down(t);
                    }
                }
                InstanceState::Terminated => {
                    t.running_since = None;
                    self.node_gone(t);
                }
            }
        }
        let vanished: Vec<String> = tracked
            .keys()
            .filter(|id| !seen.contains(*id))
            .cloned()
            .collect();
        for id in vanished {
            if let Some(mut t) = tracked.remove(&id) {
                self.node_gone(&mut t);
            }
        }
    }

    /// Register the node, or bring it back Ready.
    fn node_up(&self, t: &mut Tracked, f: &InstanceFacts) {
        let name = node_name(f);
        let done = controllers::write(&self.store, "node up", |tx| {
            match tx.try_get(&NODES, None, &name) {
                Some(_) => {
                    let node = tx.modify(&NODES, None, &name, |n| {
                        refresh(n, f);
                        Ok(())
                    })?;
                    controllers::record(
                        tx,
                        &node,
                        &NODES,
                        "Normal",
                        "NodeReady",
                        &format!("Node {name} status is now: NodeReady"),
                        "kubelet",
                    );
                    ensure_lease(tx, &node)?;
                }
                None => {
                    let node = tx.create(&NODES, None, new_node(f))?;
                    controllers::record(
                        tx,
                        &node,
                        &NODES,
                        "Normal",
                        "Starting",
                        "Starting kubelet.",
                        "kubelet",
                    );
                    controllers::record(
                        tx,
                        &node,
                        &NODES,
                        "Normal",
                        "RegisteredNode",
                        &format!("Node {name} event: Registered Node {name} in Controller"),
                        "node-controller",
                    );
                    ensure_lease(tx, &node)?;
                }
            }
            Ok(())
        });
        if done.is_some() {
            tracing::debug!(node = %name, instance = %f.instance_id, "node ready");
            t.node = Some(name);
            t.ready = true;
            t.instance_type = f.instance_type.clone();
        }
    }

    /// The kubelet stopped reporting: conditions Unknown, shutdown taint; the Node stays.
    fn node_down(&self, t: &mut Tracked) {
        let Some(name) = t.node.clone() else {
            t.ready = false;
            return;
        };
        controllers::write(&self.store, "node down", |tx| {
            let node = tx.modify(&NODES, None, &name, |n| {
                mark_unknown(n);
                add_taint(n, SHUTDOWN_TAINT, "NoSchedule");
                Ok(())
            })?;
            controllers::record(
                tx,
                &node,
                &NODES,
                "Normal",
                "NodeNotReady",
                &format!("Node {name} status is now: NodeNotReady"),
                "node-controller",
            );
            Ok(())
        });
        tracing::debug!(node = %name, "node not ready (instance stopped)");
        t.ready = false;
    }

    /// Terminated: the cloud node lifecycle controller deletes the Node (and its Lease).
    fn node_gone(&self, t: &mut Tracked) {
        t.ready = false;
        let Some(name) = t.node.take() else { return };
        controllers::write(&self.store, "node delete", |tx| {
            if tx.try_get(&NODES, None, &name).is_some() {
                tx.remove(&NODES, None, &name)?;
            }
            if tx.try_get(&LEASES, Some(LEASE_NS), &name).is_some() {
                tx.remove(&LEASES, Some(LEASE_NS), &name)?;
            }
            Ok(())
        });
        tracing::debug!(node = %name, "node deleted (instance terminated)");
    }

    fn renew_leases(&self, tracked: &HashMap<String, Tracked>) {
        let names: Vec<&String> = tracked
            .values()
            .filter(|t| t.ready)
            .filter_map(|t| t.node.as_ref())
            .collect();
        if names.is_empty() {
            return;
        }
        let now = micro_time();
        controllers::write(&self.store, "lease renew", |tx| {
            for n in names {
                let _ = tx.modify(&LEASES, Some(LEASE_NS), n, |l| {
                    controllers::put(l, &["spec", "renewTime"], json!(now));
                    Ok(())
                });
            }
            Ok(())
        });
    }
}

fn node_name(f: &InstanceFacts) -> String {
    if !f.private_dns_name.is_empty() {
        return f.private_dns_name.clone();
    }
    match &f.private_ip {
        Some(ip) => format!("ip-{}.{}.compute.internal", ip.replace('.', "-"), f.region),
        None => f.instance_id.clone(),
    }
}

/// Graviton types (m6g, c7gn, t4g, r8gd, x2gd, im4gn, is4gen, g5g, a1) run arm64.
pub fn arch_of(instance_type: &str) -> &'static str {
    let family = instance_type.split('.').next().unwrap_or("");
    if family == "a1" {
        return "arm64";
    }
    let rest = family.trim_start_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = rest.trim_start_matches(|c: char| c.is_ascii_digit());
    if suffix.starts_with('g') {
        "arm64"
    } else {
        "amd64"
    }
}

/// EKS kube-reserved CPU (millicores): 6 % of the first core, 1 % of the second, 0.5 % of the
/// third and fourth, 0.25 % of the rest.
fn reserved_cpu_m(vcpus: u32) -> i64 {
    let mut m = 0.0;
    for core in 1..=vcpus {
        m += match core {
            1 => 60.0,
            2 => 10.0,
            3 | 4 => 5.0,
            _ => 2.5,
        };
    }
    m as i64
}

/// The kubelet-owned labels (refreshed on every registration).
fn kubelet_labels(f: &InstanceFacts) -> Vec<(&'static str, String)> {
    let name = node_name(f);
    let arch = arch_of(&f.instance_type);
    vec![
        ("kubernetes.io/hostname", name),
        ("kubernetes.io/os", "linux".into()),
        ("kubernetes.io/arch", arch.into()),
        ("beta.kubernetes.io/os", "linux".into()),
        ("beta.kubernetes.io/arch", arch.into()),
        ("node.kubernetes.io/instance-type", f.instance_type.clone()),
        ("beta.kubernetes.io/instance-type", f.instance_type.clone()),
        ("topology.kubernetes.io/zone", f.availability_zone.clone()),
        ("topology.kubernetes.io/region", f.region.clone()),
        (
            "failure-domain.beta.kubernetes.io/zone",
            f.availability_zone.clone(),
        ),
        ("failure-domain.beta.kubernetes.io/region", f.region.clone()),
    ]
}

fn resources(f: &InstanceFacts) -> (Value, Value) {
    let mem_ki = f.memory_mib as i64 * 1024;
    let reserved_mem_ki = (11 * i64::from(f.max_pods) + 255 + 100) * 1024;
    let capacity = json!({
        "cpu": f.vcpus.to_string(),
        "memory": format!("{mem_ki}Ki"),
        "pods": f.max_pods.to_string(),
        "ephemeral-storage": "20959212Ki",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
    });
    let allocatable = json!({
        "cpu": format!("{}m", (i64::from(f.vcpus) * 1000 - reserved_cpu_m(f.vcpus)).max(0)),
        "memory": format!("{}Ki", (mem_ki - reserved_mem_ki).max(0)),
        "pods": f.max_pods.to_string(),
        "ephemeral-storage": "18242267924",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
    });
    (capacity, allocatable)
}

fn stable_hex(seed: &str, salt: &str, len: usize) -> String {
    let mut out = String::new();
    let mut i = 0u64;
    while out.len() < len {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (seed, salt, i).hash(&mut h);
        out.push_str(&format!("{:016x}", h.finish()));
        i += 1;
    }
    out.truncate(len);
    out
}

fn node_info(f: &InstanceFacts) -> Value {
    let arch = arch_of(&f.instance_type);
    let kernel_arch = if arch == "arm64" { "aarch64" } else { "x86_64" };
    let uuid_hex = stable_hex(&f.instance_id, "uuid", 29);
    json!({
        "machineID": stable_hex(&f.instance_id, "machine", 32),
        "systemUUID": format!("ec2{}-{}-{}-{}-{}", &uuid_hex[..5], &uuid_hex[5..9], &uuid_hex[9..13], &uuid_hex[13..17], &uuid_hex[17..29]),
        "bootID": uuid::Uuid::new_v4().to_string(),
        "kernelVersion": format!("6.1.140-154.222.amzn2023.{kernel_arch}"),
        "osImage": OS_IMAGE,
        "containerRuntimeVersion": CONTAINERD,
        "kubeletVersion": KUBELET_VERSION,
        "kubeProxyVersion": KUBELET_VERSION,
        "operatingSystem": "linux",
        "architecture": arch,
    })
}

fn addresses(f: &InstanceFacts) -> Value {
    let name = node_name(f);
    let mut a = Vec::new();
    if let Some(ip) = &f.private_ip {
        a.push(json!({"type": "InternalIP", "address": ip}));
    }
    a.push(json!({"type": "InternalDNS", "address": name}));
    a.push(json!({"type": "Hostname", "address": name}));
    Value::Array(a)
}

/// The four kubelet conditions, healthy.
fn ready_conditions(previous: Option<&Value>) -> Value {
    let now = Clock::now_rfc3339();
    let cond = |ty: &str, status: &str, reason: &str, message: &str| {
        // A condition keeps its transition time while its status does not change.
        let ltt = previous
            .and_then(Value::as_array)
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c.get("type").and_then(Value::as_str) == Some(ty))
            })
            .filter(|c| c.get("status").and_then(Value::as_str) == Some(status))
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or_else(|| json!(now));
        json!({"type": ty, "status": status, "lastHeartbeatTime": now, "lastTransitionTime": ltt, "reason": reason, "message": message})
    };
    json!([
        cond(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available"
        ),
        cond(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure"
        ),
        cond(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available"
        ),
        cond(
            "Ready",
            "True",
            "KubeletReady",
            "kubelet is posting ready status"
        ),
    ])
}

fn new_node(f: &InstanceFacts) -> Value {
    let name = node_name(f);
    let mut labels = Map::new();
    for (k, v) in &f.labels {
        labels.insert(k.clone(), json!(v));
    }
    for (k, v) in kubelet_labels(f) {
        labels.insert(k.to_string(), json!(v));
    }
    labels.insert(
        "eks.amazonaws.com/capacityType".into(),
        json!(if f.spot { "SPOT" } else { "ON_DEMAND" }),
    );
    if let Some(ng) = &f.nodegroup {
        labels.insert("eks.amazonaws.com/nodegroup".into(), json!(ng));
    }
    let mut annotations = json!({
        "node.alpha.kubernetes.io/ttl": "0",
        "volumes.kubernetes.io/controller-managed-attach-detach": "true",
    });
    if let Some(ip) = &f.private_ip {
        annotations["alpha.kubernetes.io/provided-node-ip"] = json!(ip);
    }
    let taints: Vec<Value> = f
        .taints
        .iter()
        .map(|t| json!({"key": t.key, "value": t.value, "effect": t.effect}))
        .collect();
    let mut spec =
        json!({"providerID": format!("aws:///{}/{}", f.availability_zone, f.instance_id)});
    if !taints.is_empty() {
        spec["taints"] = json!(taints);
    }
    let (capacity, allocatable) = resources(f);
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels, "annotations": annotations},
        "spec": spec,
        "status": {
            "capacity": capacity,
            "allocatable": allocatable,
            "conditions": ready_conditions(None),
            "addresses": addresses(f),
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": node_info(f),
            "images": [],
        },
    })
}

/// Bring an existing Node back: kubelet labels, capacity, addresses, nodeInfo and conditions
/// from the instance; everything users added (labels, taints, annotations) stays; the
/// shutdown taint goes.
fn refresh(n: &mut Value, f: &InstanceFacts) {
    for (k, v) in kubelet_labels(f) {
        controllers::put(n, &["metadata", "labels", k], json!(v));
    }
    let (capacity, allocatable) = resources(f);
    controllers::put(
        n,
        &["spec", "providerID"],
        json!(format!("aws:///{}/{}", f.availability_zone, f.instance_id)),
    );
    controllers::put(n, &["status", "capacity"], capacity);
    controllers::put(n, &["status", "allocatable"], allocatable);
    controllers::put(n, &["status", "addresses"], addresses(f));
    controllers::put(n, &["status", "nodeInfo"], node_info(f));
    controllers::put(
        n,
        &["status", "daemonEndpoints"],
        json!({"kubeletEndpoint": {"Port": 10250}}),
    );
    let conds = ready_conditions(n.pointer("/status/conditions"));
    controllers::put(n, &["status", "conditions"], conds);
    if let Some(ts) = n.pointer_mut("/spec/taints").and_then(Value::as_array_mut) {
        ts.retain(|t| t.get("key").and_then(Value::as_str) != Some(SHUTDOWN_TAINT));
    }
}

/// Every condition Unknown, as the node lifecycle controller sets them when heartbeats stop.
fn mark_unknown(n: &mut Value) {
    let now = Clock::now_rfc3339();
    if let Some(cs) = n
        .pointer_mut("/status/conditions")
        .and_then(Value::as_array_mut)
    {
        for c in cs.iter_mut() {
            if c.get("status").and_then(Value::as_str) != Some("Unknown") {
                controllers::put(c, &["lastTransitionTime"], json!(now));
            }
            controllers::put(c, &["status"], json!("Unknown"));
            controllers::put(c, &["reason"], json!("NodeStatusUnknown"));
            controllers::put(
                c,
                &["message"],
                json!("Kubelet stopped posting node status."),
            );
        }
    }
}

fn add_taint(n: &mut Value, key: &str, effect: &str) {
    let mut ts = n
        .pointer("/spec/taints")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !ts.iter().any(|t| {
        t.get("key").and_then(Value::as_str) == Some(key)
            && t.get("effect").and_then(Value::as_str) == Some(effect)
    }) {
        ts.push(json!({"key": key, "effect": effect}));
        controllers::put(n, &["spec", "taints"], json!(ts));
    }
}

/// RFC 3339 with microseconds (`MicroTime`), as Lease times are rendered.
fn micro_time() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The node's Lease in kube-node-lease, owned by the Node.
fn ensure_lease(tx: &mut Tx<'_>, node: &Value) -> Result<(), ApiError> {
    let name = controllers::name(node).to_string();
    let owner =
        json!([{"apiVersion": "v1", "kind": "Node", "name": name, "uid": controllers::uid(node)}]);
    if tx
        .try_get(&crate::resources::NAMESPACES, None, LEASE_NS)
        .is_none()
    {
        return Ok(());
    }
    let now = micro_time();
    if tx.try_get(&LEASES, Some(LEASE_NS), &name).is_some() {
        tx.modify(&LEASES, Some(LEASE_NS), &name, |l| {
            controllers::put(l, &["metadata", "ownerReferences"], owner.clone());
            controllers::put(l, &["spec", "renewTime"], json!(now));
            Ok(())
        })?;
    } else {
        tx.create(
            &LEASES,
            Some(LEASE_NS),
            json!({
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": name, "namespace": LEASE_NS, "ownerReferences": owner},
                "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": now},
            }),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graviton_types_are_arm64() {
        for t in [
            "m6g.large",
            "c7gn.xlarge",
            "t4g.micro",
            "r8gd.2xlarge",
            "x2gd.large",
            "im4gn.large",
            "is4gen.large",
            "g5g.xlarge",
            "a1.large",
        ] {
            assert_eq!(arch_of(t), "arm64", "{t}");
        }
        for t in [
            "m5.large",
            "c6i.xlarge",
            "g4dn.xlarge",
            "r7iz.large",
            "m7a.large",
            "t3.micro",
        ] {
            assert_eq!(arch_of(t), "amd64", "{t}");
        }
    }

    #[test]
    fn eks_reserves_cpu_like_the_bootstrap_script() {
        assert_eq!(reserved_cpu_m(2), 70);
        assert_eq!(reserved_cpu_m(4), 80);
        assert_eq!(reserved_cpu_m(8), 90);
    }
}
