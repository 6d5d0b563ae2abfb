//! The Kubernetes ports: one cluster, and the connections to every cluster costop serves.

use std::future::Future;
use std::time::Duration;

use costop_core::facts::{InstanceFacts, NodeFacts, PodFacts};
use costop_core::kube::Taint;
use costop_core::plan::action::{CordonAndTaint, EvictPod, PodUid, RestoreNode};
use costop_core::standby::TolerationPatch;

use super::{EvictOutcome, PortError};

/// One Kubernetes cluster.
pub trait Kube: Send + Sync {
    /// The node backing `instance`: by private DNS name, else by providerID.
    fn node_for(
        &self,
        instance: &InstanceFacts,
    ) -> impl Future<Output = Result<Option<NodeFacts>, PortError>> + Send;
    /// The node name this client last saw for the instance, without any request (a warm
    /// Lambda's cache), so the handler can read the node while EC2 is still answering.
    fn known_node_name(&self, instance_id: &str) -> Option<String>;
    /// Fill the instance → node name index behind [`Kube::known_node_name`] from a (paged) list
    /// of every node, unless the last list is younger than `max_age`; `true` when it listed. The
    /// handler calls it off the critical path, so a warm function knows the node of every
    /// instance that was in the cluster at the last refresh.
    fn refresh_node_index(
        &self,
        max_age: Duration,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;
    /// A node by name.
    fn node(&self, name: &str)
    -> impl Future<Output = Result<Option<NodeFacts>, PortError>> + Send;
    /// Pods bound to `node`.
    fn pods_on(&self, node: &str) -> impl Future<Output = Result<Vec<PodFacts>, PortError>> + Send;
    /// Cordon, taint, label and annotate in one request, conditional on the resourceVersion.
    fn cordon_and_taint(
        &self,
        action: &CordonAndTaint,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
    /// Replace the node's taints (conditional on the resourceVersion when given).
    fn set_taints(
        &self,
        node: &str,
        taints: &[Taint],
        resource_version: Option<&str>,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
    /// Give a node back what costop took (one patch, conditional on the resourceVersion).
    fn restore_node(
        &self,
        restore: &RestoreNode,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
    /// Set the pod's [`costop_core::constants::LABEL_SERVING`] to
    /// [`costop_core::constants::LABEL_SERVING_OUT`] (uid precondition), taking it out of the
    /// Services that select on it. `Ok(false)`: the pod is gone (or a successor has its name).
    fn leave_rotation(&self, pod: &PodUid) -> impl Future<Output = Result<bool, PortError>> + Send;
    fn evict(&self, pod: &EvictPod)
    -> impl Future<Output = Result<EvictOutcome, PortError>> + Send;
    /// Delete with grace period 0 (only when configured, at the deadline).
    fn force_delete(&self, pod: &EvictPod) -> impl Future<Output = Result<(), PortError>> + Send;
    /// Every node of the cluster (paged).
    fn nodes(&self) -> impl Future<Output = Result<Vec<NodeFacts>, PortError>> + Send;
    /// Pods not bound to any node (`spec.nodeName` empty), every namespace.
    fn unbound_pods(&self) -> impl Future<Output = Result<Vec<PodFacts>, PortError>> + Send;
    /// Give a pod the standby toleration and annotation (uid and
    /// resourceVersion preconditions). `Ok(false)`: the pod is gone or changed
    /// since it was read (the next poll reads it again).
    fn tolerate(
        &self,
        patch: &TolerationPatch,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;
    /// An Ingress (`networking.k8s.io/v1`) as the API returns it; `None` when there is none.
    fn ingress(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<serde_json::Value>, PortError>> + Send;
    /// Apply a JSON Patch (RFC 6902) to an Ingress. A failed `test` (the API's 422) or a write
    /// race (409) is [`PortError::Conflict`]: the Ingress changed since it was read, and the
    /// patch changed nothing.
    fn patch_ingress(
        &self,
        namespace: &str,
        name: &str,
        patch: &serde_json::Value,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
    /// Set `spec.unschedulable` (taints untouched).
    fn set_unschedulable(
        &self,
        node: &str,
        unschedulable: bool,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// Connections to the clusters costop serves.
pub trait Clusters: Send + Sync {
    type Kube: Kube + Clone + 'static;
    /// A client for `cluster` (built once and cached by the implementation).
    fn connect(&self, cluster: &str) -> impl Future<Output = Result<Self::Kube, PortError>> + Send;
}
