//! The ports: what costop needs from AWS and Kubernetes, as traits over the core's plain data.
//! `costop-adapters` implements them with the AWS SDK and kube; [`crate::fakes`] and the test
//! crate implement them in memory, so the same handler and the same test bodies run on both.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use costop_core::facts::{InstanceFacts, NodeFacts, PodFacts, TargetGroupFacts};
use costop_core::kube::Taint;
use costop_core::plan::action::{
    CordonAndTaint, DeregisterTargets, EvictPod, LifecycleRef, RecordEvent,
};
use costop_core::record::{Item, Key, StandbyLease, TimelineEntry, Update};
use costop_core::standby::TolerationPatch;
use std::collections::BTreeMap;

/// Any error from below a port, kept whole (never stringified) for logs and diagnostics.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A port call failed. The variant says what the handler may do about it.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// The object changed since it was read (optimistic concurrency); re-read and retry.
    #[error("{op}: the object was modified concurrently")]
    Conflict { op: &'static str },
    /// The object is not there.
    #[error("{op}: {what} not found")]
    NotFound { op: &'static str, what: String },
    /// The object is not in a state that allows the call (EC2's `IncorrectInstanceState`: an
    /// instance started or stopped by someone else since it was read); re-read before deciding.
    #[error("{op}: not in a state that allows it")]
    WrongState {
        op: &'static str,
        #[source]
        source: BoxError,
    },
    /// Throttling, timeouts, 5xx: worth retrying the whole delivery.
    #[error("{op} failed (transient)")]
    Transient {
        op: &'static str,
        #[source]
        source: BoxError,
    },
    /// Permissions, validation, a bug: retrying will not help.
    #[error("{op} failed")]
    Permanent {
        op: &'static str,
        #[source]
        source: BoxError,
    },
}

impl PortError {
    /// `Transient` or `Permanent`, as the adapter judged the source.
    pub fn classified(op: &'static str, transient: bool, source: BoxError) -> Self {
        if transient {
            PortError::Transient { op, source }
        } else {
            PortError::Permanent { op, source }
        }
    }

    /// Worth a retry of the delivery (Lambda's async retry) rather than a dead letter.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            PortError::Transient { .. } | PortError::Conflict { .. } | PortError::WrongState { .. }
        )
    }
}

/// The result of one eviction request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvictOutcome {
    /// Accepted: the pod is being deleted gracefully.
    Accepted,
    /// Refused with 429 (a PodDisruptionBudget); retry later. The server's message.
    Blocked { message: String },
    /// The pod (with that uid) no longer exists.
    Gone,
}

/// The outcome of the dedupe claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This delivery owns the event.
    Won,
    /// Another delivery owns it.
    Lost,
}

/// EC2.
pub trait Ec2: Send + Sync {
    /// The named instances EC2 knows (unknown ids are simply absent).
    fn describe_instances(
        &self,
        ids: &[String],
    ) -> impl Future<Output = Result<Vec<InstanceFacts>, PortError>> + Send;
    /// Every warm standby (`costop.io/standby=true`) not terminated, any cluster.
    fn standbys(&self) -> impl Future<Output = Result<Vec<InstanceFacts>, PortError>> + Send;
    /// Set `set` and delete `remove` on a standby's tags.
    fn tag_standby(
        &self,
        instance_id: &str,
        set: &BTreeMap<String, String>,
        remove: &[String],
    ) -> impl Future<Output = Result<(), PortError>> + Send;
    /// Change a stopped standby's instance type.
    fn retype(
        &self,
        instance_id: &str,
        instance_type: &str,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
    /// Start a stopped standby.
    fn start(&self, instance_id: &str) -> impl Future<Output = Result<(), PortError>> + Send;
    /// Stop a standby.
    fn stop(&self, instance_id: &str) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// Elastic Load Balancing v2.
pub trait Elb: Send + Sync {
    /// Every instance- and IP-type target group with its registered targets. Independent of the
    /// instance so the handler can ask before EC2 has answered; it keeps the groups that hold the
    /// instance (by id or by one of its IPs) itself.
    fn target_groups(
        &self,
    ) -> impl Future<Output = Result<Vec<TargetGroupFacts>, PortError>> + Send;
    fn deregister(
        &self,
        action: &DeregisterTargets,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// Auto Scaling.
pub trait Asg: Send + Sync {
    fn detach(
        &self,
        asg: &str,
        instance_id: &str,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
    fn heartbeat(&self, hook: &LifecycleRef) -> impl Future<Output = Result<(), PortError>> + Send;
    fn complete(&self, hook: &LifecycleRef) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// The DynamoDB table, in the core's record model.
pub trait Records: Send + Sync {
    fn get(&self, key: &Key) -> impl Future<Output = Result<Option<Item>, PortError>> + Send;
    fn put(&self, item: Item) -> impl Future<Output = Result<(), PortError>> + Send;
    /// The conditional dedupe write of [`costop_core::record::dedupe_put`].
    fn claim(
        &self,
        action: &RecordEvent,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Claim, PortError>> + Send;
    fn update(&self, update: &Update) -> impl Future<Output = Result<(), PortError>> + Send;
    /// Every item of a partition, in sort-key order.
    fn query(&self, pk: &str) -> impl Future<Output = Result<Vec<Item>, PortError>> + Send;
    /// Interruption headers of an instance (GSI1), oldest first.
    fn query_instance(
        &self,
        instance_id: &str,
    ) -> impl Future<Output = Result<Vec<Item>, PortError>> + Send;
    /// Write several unconditional items, in any order. The default sends them one by one, a few
    /// at a time; the DynamoDB adapter batches them (25 per `BatchWriteItem`).
    fn put_many(&self, items: Vec<Item>) -> impl Future<Output = Result<(), PortError>> + Send {
        use futures::{StreamExt, TryStreamExt};
        futures::stream::iter(items)
            .map(|item| self.put(item))
            .buffer_unordered(PUT_MANY_IN_FLIGHT)
            .try_collect()
    }
    /// The conditional standby lease write of [`costop_core::record::standby_lease_put`].
    fn lease_standby(
        &self,
        lease: &StandbyLease,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Claim, PortError>> + Send;
    /// [`costop_core::record::standby_lease_release`].
    fn release_standby(&self, standby: &str) -> impl Future<Output = Result<(), PortError>> + Send {
        let update = costop_core::record::standby_lease_release(standby);
        async move { self.update(&update).await }
    }
    fn append(
        &self,
        entry: &TimelineEntry,
        ttl_days: u32,
    ) -> impl Future<Output = Result<(), PortError>> + Send {
        let item = entry.to_item(ttl_days);
        async move {
            let item = item.map_err(encode_error)?;
            self.put(item).await
        }
    }
    /// Several timeline entries, through [`Records::put_many`].
    fn append_many(
        &self,
        entries: &[TimelineEntry],
        ttl_days: u32,
    ) -> impl Future<Output = Result<(), PortError>> + Send {
        let items: Result<Vec<Item>, _> = entries.iter().map(|e| e.to_item(ttl_days)).collect();
        async move { self.put_many(items.map_err(encode_error)?).await }
    }
}

/// Items in flight at once for the default [`Records::put_many`].
pub const PUT_MANY_IN_FLIGHT: usize = 16;

fn encode_error(e: costop_core::record::RecordError) -> PortError {
    PortError::Permanent {
        op: "encode timeline entry",
        source: Box::new(e),
    }
}

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

/// Everything the handler needs.
pub trait World: Send + Sync {
    type Ec2: Ec2;
    type Elb: Elb;
    type Asg: Asg;
    type Records: Records;
    type Clusters: Clusters;
    fn ec2(&self) -> &Self::Ec2;
    fn elb(&self) -> &Self::Elb;
    fn asg(&self) -> &Self::Asg;
    fn records(&self) -> &Self::Records;
    fn clusters(&self) -> &Self::Clusters;
}
