//! Every taint, label, annotation and tag key costop reads or writes.
//!
//! Keeping them in one place means the planner, the shell, the bed and the
//! docs cannot drift apart: grep for a key here and you find every use.
//! Per-kind taint keys are defaults; [`crate::config::TaintKeys`] lets an
//! operator override them.

// ---------------------------------------------------------------------------
// Taints costop puts on nodes (one key per event kind, so an operator can
// tell from `kubectl describe node` *why* the node was cordoned).
// ---------------------------------------------------------------------------

/// Taint key for an EC2 Spot Instance Interruption Warning.
pub const TAINT_SPOT_INTERRUPTION: &str = "costop.io/spot-interruption";
/// Taint key for an EC2 Instance Rebalance Recommendation (standby work).
pub const TAINT_REBALANCE_RECOMMENDATION: &str = "costop.io/rebalance-recommendation";
/// Taint key for an Auto Scaling instance-terminate lifecycle action.
pub const TAINT_ASG_LIFECYCLE_TERMINATION: &str = "costop.io/asg-lifecycle-termination";
/// Taint key for an AWS Health scheduled change (retirement, stop, reboot…).
pub const TAINT_SCHEDULED_MAINTENANCE: &str = "costop.io/scheduled-maintenance";
/// Taint key for an EC2 instance state change (stopping, shutting-down…).
pub const TAINT_INSTANCE_STATE_CHANGE: &str = "costop.io/instance-state-change";
/// Taint key marking warm on-demand standby capacity: only pods costop gave
/// the matching toleration (the replacements of an interrupted node's pods)
/// may land on a standby.
pub const TAINT_STANDBY: &str = "costop.io/standby";
/// Value of [`TAINT_STANDBY`] (and of the toleration costop adds).
pub const TAINT_STANDBY_VALUE: &str = "true";

/// Kubernetes' own out-of-service taint: lets the control plane force-detach
/// volumes and delete pods of a node that is known to be shut down.
pub const TAINT_OUT_OF_SERVICE: &str = "node.kubernetes.io/out-of-service";
/// Value costop sets on [`TAINT_OUT_OF_SERVICE`] (the value the docs use).
pub const TAINT_OUT_OF_SERVICE_VALUE: &str = "nodeshutdown";
/// Taint kubectl/cordon-aware tooling recognises for unschedulable nodes;
/// costop sets `spec.unschedulable` and the API server adds this itself.
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

// ---------------------------------------------------------------------------
// Node labels and annotations.
// ---------------------------------------------------------------------------

/// Label that makes the service controller / AWS LB controller drop the node
/// from external load balancers. Only its presence matters.
pub const LABEL_EXCLUDE_FROM_EXTERNAL_LB: &str =
    "node.kubernetes.io/exclude-from-external-load-balancers";
/// Value costop writes on [`LABEL_EXCLUDE_FROM_EXTERNAL_LB`].
pub const LABEL_EXCLUDE_FROM_EXTERNAL_LB_VALUE: &str = "true";

/// The prefix of costop's own annotations (and taint keys) on Kubernetes objects.
pub const COSTOP_PREFIX: &str = "costop.io/";

/// Annotation costop writes on a node it acted on: the interruption id, so
/// an operator can find the timeline in DynamoDB.
pub const ANNOTATION_INTERRUPTION_ID: &str = "costop.io/interruption-id";
/// Annotation with the RFC 3339 deadline costop is draining against.
pub const ANNOTATION_DEADLINE: &str = "costop.io/deadline";

/// Capacity type label set by EKS managed node groups.
pub const LABEL_EKS_CAPACITY_TYPE: &str = "eks.amazonaws.com/capacityType";
/// [`LABEL_EKS_CAPACITY_TYPE`] value for Spot nodes.
pub const EKS_CAPACITY_SPOT: &str = "SPOT";
/// [`LABEL_EKS_CAPACITY_TYPE`] value for on-demand nodes.
pub const EKS_CAPACITY_ON_DEMAND: &str = "ON_DEMAND";
/// Capacity type label set by Karpenter.
pub const LABEL_KARPENTER_CAPACITY_TYPE: &str = "karpenter.sh/capacity-type";
/// [`LABEL_KARPENTER_CAPACITY_TYPE`] value for Spot nodes.
pub const KARPENTER_CAPACITY_SPOT: &str = "spot";
/// [`LABEL_KARPENTER_CAPACITY_TYPE`] value for on-demand nodes.
pub const KARPENTER_CAPACITY_ON_DEMAND: &str = "on-demand";
/// Community lifecycle label (kops, eksctl self-managed groups).
pub const LABEL_NODE_LIFECYCLE: &str = "node.kubernetes.io/lifecycle";

/// Well-known zone label (used to cross-check the node against the instance).
pub const LABEL_TOPOLOGY_ZONE: &str = "topology.kubernetes.io/zone";
/// Well-known instance type label.
pub const LABEL_INSTANCE_TYPE: &str = "node.kubernetes.io/instance-type";

// ---------------------------------------------------------------------------
// Pods.
// ---------------------------------------------------------------------------

/// Annotation the kubelet puts on mirror pods of static pods. Mirror pods
/// cannot be evicted (the kubelet owns them), so drain skips them.
pub const ANNOTATION_MIRROR_POD: &str = "kubernetes.io/config.mirror";
/// Label of placeholder ("dummy") pods that reserve capacity; costop creates
/// none. A pod carrying it is evicted first and never reported.
pub const LABEL_PLACEHOLDER_POD: &str = "costop.io/placeholder";
/// Annotation costop writes on a replacement pod it gave the standby
/// toleration: the interruption it replaces a pod of.
pub const ANNOTATION_STANDBY_FOR: &str = "costop.io/standby-for";
/// EKS managed node group label on nodes.
pub const LABEL_EKS_NODEGROUP: &str = "eks.amazonaws.com/nodegroup";
/// Annotation on placeholder pods naming the standby pool they belong to.
pub const ANNOTATION_PLACEHOLDER_POOL: &str = "costop.io/standby-pool";
/// The out-of-rotation opt-in: a workload whose pod template carries this label with value
/// [`LABEL_SERVING_IN`], and whose Service selects on it (its Deployment and
/// PodDisruptionBudget selectors do not), lets costop take a pod out of every such Service
/// before evicting it, by setting the value to [`LABEL_SERVING_OUT`]. The EndpointSlice
/// controller drops the pod from the Service's endpoints, so kube-proxy stops sending it
/// connections and the AWS Load Balancer Controller deregisters its IP targets, while the pod
/// still runs and finishes what is in flight. A label rather than a readiness gate: a gate's
/// condition must be set `True` at every pod start by a controller (costop runs only on
/// events), and a pod it makes unready counts against its PodDisruptionBudget, which would
/// then refuse the pod's own eviction.
pub const LABEL_SERVING: &str = "costop.io/serving";
/// [`LABEL_SERVING`]'s value on a pod in rotation.
pub const LABEL_SERVING_IN: &str = "true";
/// [`LABEL_SERVING`]'s value costop sets before the eviction.
pub const LABEL_SERVING_OUT: &str = "false";

// ---------------------------------------------------------------------------
// EC2 / EKS tags.
// ---------------------------------------------------------------------------

/// Tag EKS puts on managed node group instances.
pub const TAG_EKS_CLUSTER_NAME: &str = "eks:cluster-name";
/// Tag AWS puts on resources created by EKS itself (`aws:` tags are reserved).
pub const TAG_AWS_EKS_CLUSTER_NAME: &str = "aws:eks:cluster-name";
/// Prefix of the legacy/community cluster tag `kubernetes.io/cluster/<name>`.
pub const TAG_KUBERNETES_CLUSTER_PREFIX: &str = "kubernetes.io/cluster/";
/// [`TAG_KUBERNETES_CLUSTER_PREFIX`] value when the cluster owns the resource.
pub const TAG_KUBERNETES_CLUSTER_OWNED: &str = "owned";
/// [`TAG_KUBERNETES_CLUSTER_PREFIX`] value when the resource is shared.
pub const TAG_KUBERNETES_CLUSTER_SHARED: &str = "shared";
/// Tag an operator sets to opt an instance in when
/// `COSTOP_REQUIRE_MANAGED_TAG=true`.
pub const TAG_COSTOP_MANAGED: &str = "costop.io/managed";
/// Value of [`TAG_COSTOP_MANAGED`] that opts an instance in.
pub const TAG_COSTOP_MANAGED_VALUE: &str = "true";
/// Tag marking an instance as a warm standby (value [`TAG_STANDBY_VALUE`]).
/// The keeper only ever starts, stops, retypes or retags instances with it,
/// and the IAM policy is conditioned on it.
pub const TAG_STANDBY: &str = "costop.io/standby";
/// Value of [`TAG_STANDBY`].
pub const TAG_STANDBY_VALUE: &str = "true";
/// Tag naming the standby pool an instance belongs to (metrics dimension).
pub const TAG_STANDBY_POOL: &str = "costop.io/standby-pool";
/// Tag with the standby's state: [`STANDBY_STATE_AVAILABLE`],
/// [`STANDBY_STATE_SERVING`] or [`STANDBY_STATE_RETURNING`] (absent = available).
pub const TAG_STANDBY_STATE: &str = "costop.io/standby-state";
/// [`TAG_STANDBY_STATE`]: stopped, in the pool.
pub const STANDBY_STATE_AVAILABLE: &str = "available";
/// [`TAG_STANDBY_STATE`]: started for an interruption.
pub const STANDBY_STATE_SERVING: &str = "serving";
/// [`TAG_STANDBY_STATE`]: spot capacity is back; being drained, then stopped.
pub const STANDBY_STATE_RETURNING: &str = "returning";
/// Tag with the interruption a serving standby answers.
pub const TAG_STANDBY_INTERRUPTION: &str = "costop.io/standby-interruption";
/// Tag with the RFC 3339 time a standby started serving.
pub const TAG_STANDBY_SINCE: &str = "costop.io/standby-since";
/// Tag with the spot instance a serving standby replaces.
pub const TAG_STANDBY_REPLACES: &str = "costop.io/standby-replaces";
/// Tag with the node group of the spot instance a serving standby replaces.
pub const TAG_STANDBY_NODE_GROUP: &str = "costop.io/standby-node-group";
/// Every tag the keeper writes on a standby when it starts serving and
/// removes when it returns to the pool.
pub const STANDBY_SERVING_TAGS: [&str; 4] = [
    TAG_STANDBY_INTERRUPTION,
    TAG_STANDBY_SINCE,
    TAG_STANDBY_REPLACES,
    TAG_STANDBY_NODE_GROUP,
];
/// Tag Auto Scaling puts on instances it launched.
pub const TAG_AUTOSCALING_GROUP_NAME: &str = "aws:autoscaling:groupName";
/// The tag the AWS Load Balancer Controller puts on the target groups it creates and keeps
/// (`elbv2.k8s.aws/cluster`, see `pkg/deploy/tracking/provider.go` in
/// kubernetes-sigs/aws-load-balancer-controller). It registers every ready endpoint in them
/// again, so costop deregisters a pod's target from such a group only when the pod is leaving
/// its Service anyway (the [`LABEL_SERVING`] opt-in).
pub const TAG_LBC_CLUSTER: &str = "elbv2.k8s.aws/cluster";
/// The tag the AWS Load Balancer Controller puts on the listener rules it makes for an Ingress:
/// `namespace/name`, or the group name of an IngressGroup. costop never rewrites such a rule
/// directly: the controller would put it back from the Ingress.
pub const TAG_LBC_INGRESS_STACK: &str = "ingress.k8s.aws/stack";
/// Tag on a listener that carries the fallback's upstream (`COSTOP_FALLBACK_UPSTREAM`: an
/// internal listener beside the public one). Its rules are never shifted: the fallback's own
/// forwards would come back to the fallback.
pub const TAG_FALLBACK_UPSTREAM: &str = "costop.io/fallback-upstream";
/// Tag Karpenter puts on instances it launched.
pub const TAG_KARPENTER_NODEPOOL: &str = "karpenter.sh/nodepool";
/// Tag EKS managed node groups put on instances.
pub const TAG_EKS_NODEGROUP_NAME: &str = "eks:nodegroup-name";

/// Builds the `kubernetes.io/cluster/<name>` tag key for a cluster.
pub fn kubernetes_cluster_tag(cluster: &str) -> String {
    format!("{TAG_KUBERNETES_CLUSTER_PREFIX}{cluster}")
}

/// Every costop-owned taint key default, for tooling that wants to list them.
pub const ALL_COSTOP_TAINTS: [&str; 6] = [
    TAINT_SPOT_INTERRUPTION,
    TAINT_REBALANCE_RECOMMENDATION,
    TAINT_ASG_LIFECYCLE_TERMINATION,
    TAINT_SCHEDULED_MAINTENANCE,
    TAINT_INSTANCE_STATE_CHANGE,
    TAINT_STANDBY,
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::is_qualified_name;

    #[test]
    fn every_key_is_a_valid_kubernetes_qualified_name() {
        let keys = ALL_COSTOP_TAINTS.iter().copied().chain([
            TAINT_OUT_OF_SERVICE,
            LABEL_EXCLUDE_FROM_EXTERNAL_LB,
            ANNOTATION_INTERRUPTION_ID,
            ANNOTATION_DEADLINE,
            ANNOTATION_MIRROR_POD,
            LABEL_PLACEHOLDER_POD,
            ANNOTATION_STANDBY_FOR,
            LABEL_EKS_NODEGROUP,
            TAG_STANDBY_STATE,
            TAG_STANDBY_INTERRUPTION,
            LABEL_EKS_CAPACITY_TYPE,
            LABEL_KARPENTER_CAPACITY_TYPE,
            LABEL_NODE_LIFECYCLE,
        ]);
        for key in keys {
            assert!(is_qualified_name(key), "{key}");
        }
    }

    #[test]
    fn the_kubernetes_cluster_tag_is_prefixed() {
        assert_eq!(kubernetes_cluster_tag("prod"), "kubernetes.io/cluster/prod");
    }
}
