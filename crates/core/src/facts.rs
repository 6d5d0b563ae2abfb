//! What the shell observed, handed to the planner as plain data.
//!
//! One [`Facts`] value describes one instance named by the event: the EC2
//! instance (or its absence), the Kubernetes node backing it and that node's
//! pods, the ELBv2 target groups that hold it, and whether this delivery was
//! already seen (the dedupe read). Anything *derived* from observations —
//! the cluster an instance belongs to, whether a pod is a mirror pod, which
//! targets belong to the instance — is computed here, in pure code, so the
//! shell stays a thin reader.
//!
//! All types deserialize with generous defaults so golden fixtures stay
//! short.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::constants;
use crate::event::InstanceState;
use crate::kube::{Taint, Toleration};
use crate::plan::LifecycleResult;

/// Everything observed about one instance named by an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facts {
    /// The instance these facts are about (one of `event.instance_ids()`).
    pub instance_id: String,
    /// `DescribeInstances` result; `None` when EC2 no longer knows it.
    #[serde(default)]
    pub instance: Option<InstanceFacts>,
    /// The node whose providerID (or private DNS name) matches the
    /// instance; `None` when the cluster has no such node.
    #[serde(default)]
    pub node: Option<NodeFacts>,
    /// Pods bound to that node (`spec.nodeName`), any phase.
    #[serde(default)]
    pub pods: Vec<PodFacts>,
    /// Target groups that have this instance (or its IPs) registered.
    /// Listing extra targets is harmless: the planner keeps only the ones
    /// that belong to the instance.
    #[serde(default)]
    pub target_groups: Vec<TargetGroupFacts>,
    /// The load balancers' listener rules, read beside the target groups when traffic is
    /// shifted (`COSTOP_FALLBACK_TARGET_GROUP` set); empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<crate::shift::RuleFacts>,
    /// The Ingresses (as the API returns them) of the rules a load-balancer controller manages
    /// that forward to a group holding the node's targets, read once the cluster is known; a
    /// managed rule whose Ingress is missing here is not shifted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingresses: Vec<serde_json::Value>,
    /// The dedupe read for (event id, instance id).
    #[serde(default)]
    pub delivery: Delivery,
    /// The standby lease record, read only when the instance is a costop standby: with its
    /// tags, whether the standby serves an interruption (see
    /// [`crate::standby::serves_an_interruption`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standby_lease: Option<StandbyLeaseRecord>,
    /// The ASG terminate hook the event names (`DescribeLifecycleHooks`), read beside the pods
    /// for a hook's event only; `None` otherwise, or when it could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle_hook: Option<LifecycleHookFacts>,
    /// The scheduled change recorded for this instance and Health event, read for Health
    /// events only (see [`crate::handoff`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled: Option<crate::handoff::ScheduledChange>,
}

/// What Auto Scaling says about a lifecycle hook: how long an instance may wait without a
/// heartbeat, and what happens when that wait runs out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleHookFacts {
    /// `HeartbeatTimeout`: seconds the lifecycle action waits for a heartbeat or completion.
    pub heartbeat_timeout_seconds: i64,
    /// `DefaultResult`: what Auto Scaling does when that time runs out.
    pub default_result: LifecycleResult,
}

/// What the table says about a standby's lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StandbyLeaseRecord {
    /// The interruption that took it.
    pub interruption_id: String,
    /// Given back (the standby returned to the pool, or its start failed).
    pub released: bool,
}

impl Facts {
    /// Facts for an instance EC2 does not know (nothing else observable).
    pub fn unknown_instance(instance_id: impl Into<String>) -> Self {
        Facts {
            instance_id: instance_id.into(),
            instance: None,
            node: None,
            pods: Vec::new(),
            target_groups: Vec::new(),
            rules: Vec::new(),
            ingresses: Vec::new(),
            delivery: Delivery::New,
            standby_lease: None,
            lifecycle_hook: None,
            scheduled: None,
        }
    }

    /// These facts without the pods, the target groups and the lifecycle hook: all
    /// the plan's opening (claim and cordon, [`crate::Plan::opening`]) depends on,
    /// so the shell can plan and send it before those slower reads are in.
    pub fn for_opening(&self) -> Facts {
        Facts {
            pods: Vec::new(),
            target_groups: Vec::new(),
            rules: Vec::new(),
            ingresses: Vec::new(),
            lifecycle_hook: None,
            ..self.clone()
        }
    }
}

/// Whether this (event id, instance id) delivery was seen before.
///
/// EventBridge delivers at least once and Lambda async invocations retry,
/// so the same event can arrive several times, sometimes concurrently. The
/// shell reads the dedupe item before planning and reports it here; the
/// plan's first action is then a *conditional* write of that item, which
/// closes the race between two concurrent first deliveries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Delivery {
    /// No dedupe item exists.
    #[default]
    New,
    /// A dedupe item exists.
    Seen {
        /// When the first delivery wrote it.
        first_seen_at: DateTime<Utc>,
        /// The first delivery finished its plan.
        #[serde(default)]
        completed: bool,
        /// The interruption the first delivery started.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interruption_id: Option<String>,
        /// The first delivery failed and gave the event up, so a retry may
        /// take over at once instead of waiting for the lease to expire.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        released: bool,
    },
}

/// Spot or on-demand.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Lifecycle {
    /// Spot capacity (`InstanceLifecycle: spot`).
    Spot,
    /// On-demand (no `InstanceLifecycle`).
    #[default]
    OnDemand,
    /// Capacity Blocks, scheduled instances and future values.
    Other,
}

/// `DescribeInstances` facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceFacts {
    /// Instance id.
    pub instance_id: String,
    /// Current state.
    pub state: InstanceState,
    /// Spot or on-demand.
    #[serde(default)]
    pub lifecycle: Lifecycle,
    /// e.g. `m5.large`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    /// e.g. `us-east-1a`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    /// e.g. `ip-10-0-1-23.ec2.internal` (the node name on many clusters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_dns_name: Option<String>,
    /// Every private IPv4 address of every ENI, primary first. With the VPC
    /// CNI these include pod IPs, which is what IP-mode targets register.
    #[serde(default)]
    pub private_ips: Vec<String>,
    /// Instance tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// A cluster an instance claims membership of, and the tag that said so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterRef {
    /// Cluster name.
    pub name: String,
    /// The tag key it was read from.
    pub tag: String,
}

impl InstanceFacts {
    /// The Auto Scaling group, from the `aws:autoscaling:groupName` tag.
    pub fn asg_name(&self) -> Option<&str> {
        self.tags
            .get(constants::TAG_AUTOSCALING_GROUP_NAME)
            .map(String::as_str)
    }

    /// Opted in with `costop.io/managed=true`.
    pub fn is_managed(&self) -> bool {
        self.tags
            .get(constants::TAG_COSTOP_MANAGED)
            .is_some_and(|v| v == constants::TAG_COSTOP_MANAGED_VALUE)
    }

    /// Clusters named by the instance's tags, most authoritative first:
    /// `eks:cluster-name`, `aws:eks:cluster-name`, then every
    /// `kubernetes.io/cluster/<name>` tagged `owned` or `shared`.
    pub fn cluster_candidates(&self) -> Vec<ClusterRef> {
        let mut out: Vec<ClusterRef> = Vec::new();
        let mut push = |name: &str, tag: &str| {
            if !name.is_empty() && !out.iter().any(|c| c.name == name) {
                out.push(ClusterRef {
                    name: name.to_owned(),
                    tag: tag.to_owned(),
                });
            }
        };
        for tag in [
            constants::TAG_EKS_CLUSTER_NAME,
            constants::TAG_AWS_EKS_CLUSTER_NAME,
        ] {
            if let Some(name) = self.tags.get(tag) {
                push(name, tag);
            }
        }
        for (key, value) in &self.tags {
            if let Some(name) = key.strip_prefix(constants::TAG_KUBERNETES_CLUSTER_PREFIX)
                && matches!(
                    value.as_str(),
                    constants::TAG_KUBERNETES_CLUSTER_OWNED
                        | constants::TAG_KUBERNETES_CLUSTER_SHARED
                )
            {
                push(name, key);
            }
        }
        out
    }
}

/// The Kubernetes node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeFacts {
    /// `metadata.name`.
    pub name: String,
    /// `spec.providerID`, e.g. `aws:///us-east-1a/i-0abc…`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
    /// `metadata.resourceVersion`, for an optimistic-concurrency patch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// costop's own annotations on the node (`costop.io/…`; the adapter reads no others).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `spec.taints`.
    pub taints: Vec<Taint>,
    /// `spec.unschedulable`.
    pub unschedulable: bool,
    /// The `Ready` condition is `True` (`None`: not observed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    /// `metadata.creationTimestamp`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
}

impl NodeFacts {
    /// Spot capacity by the labels EKS, Karpenter or the community set.
    pub fn is_spot(&self) -> bool {
        let label = |k: &str| self.labels.get(k).map(String::as_str);
        label(constants::LABEL_EKS_CAPACITY_TYPE) == Some(constants::EKS_CAPACITY_SPOT)
            || label(constants::LABEL_KARPENTER_CAPACITY_TYPE)
                == Some(constants::KARPENTER_CAPACITY_SPOT)
            || label(constants::LABEL_NODE_LIFECYCLE) == Some("spot")
    }

    /// The zone label.
    pub fn zone(&self) -> Option<&str> {
        self.labels
            .get(constants::LABEL_TOPOLOGY_ZONE)
            .map(String::as_str)
    }

    /// The instance id from the providerID.
    pub fn instance_id(&self) -> Option<&str> {
        self.provider_id
            .as_deref()
            .and_then(instance_id_from_provider_id)
    }

    /// Whether this node, found by a name tied to `instance_id` (its private DNS name, or a
    /// name an index remembered for it), is that instance's: see [`may_back`].
    pub fn may_back(&self, instance_id: &str) -> bool {
        may_back(self.provider_id.as_deref(), instance_id)
    }
}

/// The rule for a node found by name: it backs `instance_id` unless its providerID names
/// another instance. A Node left behind by an earlier instance with the same private IP has
/// the same name (EKS names nodes by private DNS name) but that instance's providerID. A node
/// with no providerID yet (the kubelet sets it on registration) is taken by its name.
pub fn may_back(provider_id: Option<&str>, instance_id: &str) -> bool {
    provider_id
        .and_then(instance_id_from_provider_id)
        .is_none_or(|id| id == instance_id)
}

/// The one rule for an instance's node among `nodes`: the node whose providerID names the
/// instance; else the node named by its private DNS name, if that node [`may_back`] it.
/// (Custom node names — Karpenter, Bottlerocket — are found by the providerID.)
pub fn node_of<'a>(instance: &InstanceFacts, nodes: &'a [NodeFacts]) -> Option<&'a NodeFacts> {
    let id = instance.instance_id.as_str();
    nodes
        .iter()
        .find(|n| n.instance_id() == Some(id))
        .or_else(|| {
            let dns = instance
                .private_dns_name
                .as_deref()
                .filter(|d| !d.is_empty())?;
            nodes.iter().find(|n| n.name == dns && n.may_back(id))
        })
}

/// The providerID the AWS cloud provider gives a node.
pub fn provider_id(availability_zone: &str, instance_id: &str) -> String {
    format!("aws:///{availability_zone}/{instance_id}")
}

/// The instance id in an AWS providerID (`aws:///<az>/<id>`, also the
/// older `aws:///<id>` form).
pub fn instance_id_from_provider_id(provider_id: &str) -> Option<&str> {
    let rest = provider_id.strip_prefix("aws://")?;
    let id = rest.rsplit('/').next()?;
    crate::event::is_instance_id(id).then_some(id)
}

/// `status.phase`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PodPhase {
    /// Accepted, not all containers running.
    Pending,
    /// Bound and running.
    #[default]
    Running,
    /// All containers exited 0; will not restart.
    Succeeded,
    /// All containers exited, at least one failed.
    Failed,
    /// Unknown (node unreachable).
    Unknown,
}

/// `metadata.ownerReferences[controller=true]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerRef {
    /// e.g. `ReplicaSet`, `DaemonSet`, `StatefulSet`, `Job`, `Node`.
    pub kind: String,
    /// Owner name.
    pub name: String,
}

/// A pod volume.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VolumeFacts {
    /// Volume name.
    pub name: String,
    /// `persistentVolumeClaim.claimName`, if a PVC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim: Option<String>,
    /// `emptyDir` (data lost with the node).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub empty_dir: bool,
}

/// A pod bound to the node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PodFacts {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID (eviction precondition: never evict a same-named successor).
    pub uid: String,
    /// Controller owner.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<OwnerRef>,
    /// Annotations (mirror pods carry `kubernetes.io/config.mirror`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Labels.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Phase.
    pub phase: PodPhase,
    /// `metadata.deletionTimestamp`: already terminating.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<DateTime<Utc>>,
    /// `spec.terminationGracePeriodSeconds` (API default 30).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub termination_grace_period_seconds: Option<i64>,
    /// `spec.priority`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// `spec.priorityClassName`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    /// Summed container requests as quantities (`cpu`, `memory`, …).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: BTreeMap<String, String>,
    /// Volumes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<VolumeFacts>,
    /// `spec.nodeSelector`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// `spec.tolerations`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// `metadata.creationTimestamp`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    /// `metadata.resourceVersion`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// `status.podIP`: what an IP target group registers (absent before the pod has a sandbox).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
}

/// Kubernetes' default `terminationGracePeriodSeconds`.
pub const DEFAULT_TERMINATION_GRACE_SECONDS: i64 = 30;

impl PodFacts {
    /// `namespace/name`.
    pub fn pod_ref(&self) -> PodRef {
        PodRef {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }

    /// A static pod's mirror: owned by the kubelet, cannot be evicted.
    pub fn is_mirror(&self) -> bool {
        self.annotations
            .contains_key(constants::ANNOTATION_MIRROR_POD)
    }

    /// Owned by a DaemonSet: it would be recreated on the same node, and it
    /// tolerates unschedulable, so draining it is pointless.
    pub fn is_daemonset(&self) -> bool {
        self.owner.as_ref().is_some_and(|o| o.kind == "DaemonSet")
    }

    /// Succeeded or Failed: nothing left to move.
    pub fn is_finished(&self) -> bool {
        matches!(self.phase, PodPhase::Succeeded | PodPhase::Failed)
    }

    /// Already being deleted.
    pub fn is_terminating(&self) -> bool {
        self.deletion_timestamp.is_some()
    }

    /// The workload opted into being taken out of rotation before its eviction
    /// ([`constants::LABEL_SERVING`] is [`constants::LABEL_SERVING_IN`]).
    pub fn in_rotation_by_label(&self) -> bool {
        self.labels
            .get(constants::LABEL_SERVING)
            .map(String::as_str)
            == Some(constants::LABEL_SERVING_IN)
    }

    /// A placeholder pod ([`constants::LABEL_PLACEHOLDER_POD`]); costop creates none.
    pub fn is_placeholder(&self) -> bool {
        self.labels.contains_key(constants::LABEL_PLACEHOLDER_POD)
    }

    /// PVC names this pod mounts.
    pub fn pvc_names(&self) -> impl Iterator<Item = &str> {
        self.volumes
            .iter()
            .filter_map(|v| v.persistent_volume_claim.as_deref())
    }

    /// The pod's own grace period, or the API default.
    pub fn grace_seconds(&self) -> i64 {
        self.termination_grace_period_seconds
            .unwrap_or(DEFAULT_TERMINATION_GRACE_SECONDS)
    }
}

/// A pod by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PodRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl fmt::Display for PodRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// An ELBv2 target type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetType {
    /// Targets are instance ids.
    Instance,
    /// Targets are IP addresses.
    Ip,
    /// Targets are Lambda functions (never the instance).
    Lambda,
    /// Targets are ALBs (never the instance).
    Alb,
}

/// A registered target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredTarget {
    /// Instance id or IP address.
    pub id: String,
    /// Port (absent = the group's port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// `all` for IPs outside the VPC, else the AZ (ip targets only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
}

/// Whether a load balancer still sends a target requests, from `DescribeTargetHealth`'s state
/// (<https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_TargetHealth.html>).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetServing {
    /// `initial`, `healthy`, `unhealthy`, `unavailable`: routable, or may become so.
    InService,
    /// `draining`: deregistered; no new requests once the change has propagated.
    Draining,
    /// `unused` (not registered, or in no enabled zone) or absent from the answer.
    Gone,
}

impl TargetServing {
    /// From ELBv2's `TargetHealthStateEnum` string.
    pub fn from_state(state: &str) -> Self {
        match state {
            "draining" => TargetServing::Draining,
            "unused" => TargetServing::Gone,
            _ => TargetServing::InService,
        }
    }
}

/// A target group that may hold the instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetGroupFacts {
    /// Target group ARN.
    pub arn: String,
    /// Its target type.
    pub target_type: TargetType,
    /// Registered targets (any superset of the instance's).
    #[serde(default)]
    pub targets: Vec<RegisteredTarget>,
    /// The AWS Load Balancer Controller keeps its targets (tagged
    /// [`crate::constants::TAG_LBC_CLUSTER`]): it registers every ready endpoint again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub kept_by_controller: bool,
    /// How many targets the group had registered when read (before `targets` was narrowed to
    /// the instance's and its pods'); 0 when unknown.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub registered: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl TargetGroupFacts {
    /// The targets that belong to `instance`: by id for instance targets, by
    /// private IP for IP targets; none for Lambda/ALB target groups.
    pub fn targets_of(&self, instance: &InstanceFacts) -> Vec<RegisteredTarget> {
        self.targets_where(|t| match self.target_type {
            TargetType::Instance => t.id == instance.instance_id,
            TargetType::Ip => instance.private_ips.contains(&t.id),
            TargetType::Lambda | TargetType::Alb => false,
        })
    }

    /// The IP targets that are one of `ips` (pods' IPs); none unless the group is IP-type.
    pub fn targets_at<'a>(
        &self,
        ips: impl IntoIterator<Item = &'a str> + Clone,
    ) -> Vec<RegisteredTarget> {
        if self.target_type != TargetType::Ip {
            return Vec::new();
        }
        self.targets_where(|t| ips.clone().into_iter().any(|ip| ip == t.id))
    }

    fn targets_where(&self, keep: impl Fn(&RegisteredTarget) -> bool) -> Vec<RegisteredTarget> {
        self.targets.iter().filter(|t| keep(t)).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(tags: &[(&str, &str)]) -> InstanceFacts {
        InstanceFacts {
            instance_id: "i-0123456789abcdef0".into(),
            state: InstanceState::Running,
            lifecycle: Lifecycle::Spot,
            instance_type: None,
            availability_zone: None,
            private_dns_name: None,
            private_ips: vec!["10.0.0.1".into(), "10.0.0.2".into()],
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn the_eks_tag_wins_over_the_kubernetes_cluster_tag() {
        let i = instance(&[
            ("kubernetes.io/cluster/legacy", "owned"),
            ("eks:cluster-name", "prod"),
        ]);
        let names: Vec<_> = i.cluster_candidates().into_iter().map(|c| c.name).collect();
        assert_eq!(names, vec!["prod", "legacy"]);
    }

    #[test]
    fn a_kubernetes_cluster_tag_needs_owned_or_shared() {
        assert!(
            instance(&[("kubernetes.io/cluster/x", "nope")])
                .cluster_candidates()
                .is_empty()
        );
        assert_eq!(
            instance(&[("kubernetes.io/cluster/x", "shared")]).cluster_candidates()[0].name,
            "x"
        );
    }

    #[test]
    fn provider_ids_round_trip() {
        let p = provider_id("us-east-1a", "i-0123456789abcdef0");
        assert_eq!(p, "aws:///us-east-1a/i-0123456789abcdef0");
        assert_eq!(
            instance_id_from_provider_id(&p),
            Some("i-0123456789abcdef0")
        );
        assert_eq!(
            instance_id_from_provider_id("aws:///i-12345678"),
            Some("i-12345678")
        );
        assert_eq!(instance_id_from_provider_id("kind://docker/x"), None);
    }

    fn node(name: &str, provider_id: Option<&str>) -> NodeFacts {
        NodeFacts {
            name: name.into(),
            provider_id: provider_id.map(Into::into),
            ready: Some(true),
            ..NodeFacts::default()
        }
    }

    #[test]
    fn an_instances_node_is_found_by_provider_id_first_then_by_its_private_dns_name() {
        let mut i = instance(&[]);
        i.private_dns_name = Some("ip-10-0-0-1.ec2.internal".into());
        let mine = provider_id("us-east-1a", "i-0123456789abcdef0");
        let other = provider_id("us-east-1a", "i-0fedcba9876543210");
        let cases: [(&str, Vec<NodeFacts>, Option<&str>); 5] = [
            (
                "custom name, own providerID",
                vec![node("karpenter-abc", Some(&mine))],
                Some("karpenter-abc"),
            ),
            (
                "DNS name, no providerID yet",
                vec![node("ip-10-0-0-1.ec2.internal", None)],
                Some("ip-10-0-0-1.ec2.internal"),
            ),
            (
                "DNS name left behind by another instance",
                vec![node("ip-10-0-0-1.ec2.internal", Some(&other))],
                None,
            ),
            (
                "providerID wins over a name match",
                vec![
                    node("ip-10-0-0-1.ec2.internal", None),
                    node("karpenter-abc", Some(&mine)),
                ],
                Some("karpenter-abc"),
            ),
            ("no node at all", Vec::new(), None),
        ];
        for (what, nodes, want) in cases {
            assert_eq!(node_of(&i, &nodes).map(|n| n.name.as_str()), want, "{what}");
        }
    }

    #[test]
    fn a_node_found_by_name_backs_the_instance_unless_its_provider_id_names_another() {
        let id = "i-0123456789abcdef0";
        assert!(may_back(None, id));
        assert!(may_back(Some("aws:///us-east-1a/i-0123456789abcdef0"), id));
        assert!(may_back(Some("kind://docker/x"), id));
        assert!(!may_back(Some("aws:///us-east-1a/i-0fedcba9876543210"), id));
    }

    #[test]
    fn only_the_instances_own_targets_are_selected() {
        let i = instance(&[]);
        let tg = |t, ids: &[&str]| TargetGroupFacts {
            arn: "arn".into(),
            target_type: t,
            targets: ids
                .iter()
                .map(|id| RegisteredTarget {
                    id: id.to_string(),
                    port: Some(80),
                    availability_zone: None,
                })
                .collect(),
            kept_by_controller: false,
            registered: 0,
        };
        assert_eq!(
            tg(TargetType::Instance, &["i-0123456789abcdef0", "i-99999999"])
                .targets_of(&i)
                .len(),
            1
        );
        assert_eq!(
            tg(TargetType::Ip, &["10.0.0.2", "10.0.9.9"]).targets_of(&i)[0].id,
            "10.0.0.2"
        );
        assert!(
            tg(TargetType::Lambda, &["i-0123456789abcdef0"])
                .targets_of(&i)
                .is_empty()
        );
    }
}
