//! The steps of a [`crate::Plan`]: each an [`Action`] with the [`Phase`] the
//! shell runs it in.
//!
//! Each action is one idempotent unit of work for the shell (usually one
//! API call). Actions carry everything the shell needs so it never has to
//! re-derive a decision; the JSON form is what `--dry-run` prints and what
//! golden files compare, so field names are stable and readable.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::drain::{BackoffPolicy, SkipReason};
use crate::facts::{PodRef, RegisteredTarget, TargetType};
use crate::handoff::{ScheduledChange, ScheduledRef};
use crate::kube::Taint;
use crate::record::TimelineStep;

/// When the shell runs a step. The phases run in this order, except that
/// [`Phase::Record`], [`Phase::Beside`] and [`Phase::InOrder`] run side by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Sent first and together, as soon as the node is known: the dedupe claim
    /// and the one node patch. Depends only on the event, the delivery, the
    /// instance and the node (see [`crate::Facts::for_opening`]).
    Open,
    /// Bookkeeping (the event header, milestones, the node snapshot): pushed to
    /// the journal, which writes in batches beside the effects.
    Record,
    /// Effects that run beside the in-order ones, all at once (an evicted pod
    /// takes its grace period to stop, longer than these take to apply); the
    /// phase's milestones are stamped when its effects are all done.
    Beside,
    /// Effects one after another, in plan order (the drain among them), each
    /// milestone stamped when the effects before it are done.
    InOrder,
    /// Once everything else, the journal included, is done.
    Close,
}

/// One step of a plan: an action and the phase it runs in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// When it runs.
    pub phase: Phase,
    /// What it does.
    #[serde(flatten)]
    pub action: Action,
}

/// One action of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Conditionally write the dedupe item (see [`crate::record::dedupe_put`]).
    /// If the condition fails another delivery owns this event: stop here
    /// and record nothing else.
    RecordEvent(RecordEvent),
    /// Append a milestone to the interruption's timeline.
    ///
    /// Besides these declared milestones the executor records the dynamic
    /// ones as they happen: `eviction_issued`, `eviction_retried`,
    /// `evicted`, `deadline_reached` (which replaces the declared `drained`
    /// when pods remain) and `failed`.
    RecordTimeline(TimelineStep),
    /// Store the observed facts (node, pods, instance) for the post-mortem,
    /// via [`crate::record::snapshot_item`].
    SnapshotNode {
        /// Instance.
        instance_id: String,
        /// Node, if one was found.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node: Option<String>,
        /// Pods on the node at observation time.
        pods: usize,
    },
    /// Extend the lifecycle hook's timeout before the (possibly long) drain, and again every
    /// `every_seconds` while the drain runs.
    LifecycleHeartbeat(LifecycleHeartbeat),
    /// Cordon, taint, label and annotate the node in ONE patch, so a
    /// half-applied state (cordoned but still in load balancers) never exists.
    CordonAndTaint(CordonAndTaint),
    /// Deregister the instance's targets from one target group.
    DeregisterTargets(DeregisterTargets),
    /// Move the node's share of a listener rule's traffic to the fallback: write the lease,
    /// then change the rule (see [`crate::shift`]).
    ShiftTraffic(crate::shift::ShiftLease),
    /// Detach the instance from its Auto Scaling group so the group launches
    /// a replacement now rather than after termination.
    DetachFromAsg {
        /// Group.
        asg: String,
        /// Instance.
        instance_id: String,
        /// Always false: keep desired capacity so a replacement launches.
        decrement_desired: bool,
    },
    /// Evict pods through the Eviction API.
    Drain(Drain),
    /// Let Auto Scaling proceed with the termination, with the result the drain's end calls for.
    CompleteLifecycleAction(CompleteLifecycleAction),
    /// Put `node.kubernetes.io/out-of-service` on a node whose instance is
    /// gone, so volumes are force-detached and pods are garbage-collected.
    OutOfServiceTaint {
        /// Node.
        node: String,
        /// The taint added.
        taint: Taint,
        /// The node's complete taint list after the change.
        taints_after: Vec<Taint>,
        /// Precondition for the patch.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resource_version: Option<String>,
    },
    /// Remember that the instance may come back (a stop, a hibernation, a reboot): the
    /// keeper's tick gives its node back once it runs again (see [`crate::resume`]).
    WatchForResume(ResumeWatch),
    /// Keep an AWS Health scheduled change (and the event, narrowed to the instance) until its
    /// moment, when the keeper's tick hands it to the interruption function.
    ScheduleHandoff(ScheduledChange),
    /// Forget a scheduled change (cancelled by an update, or acted on now).
    CancelHandoff(ScheduledRef),
    /// Mark the dedupe item completed: later redeliveries are duplicates.
    FinishEvent {
        /// Event id.
        event_id: String,
        /// Instance.
        instance_id: String,
    },
}

impl Action {
    /// Whether the action acts on the cluster (the shell connects before the opening).
    pub fn needs_cluster(&self) -> bool {
        matches!(
            self,
            Action::CordonAndTaint(_) | Action::Drain(_) | Action::OutOfServiceTaint { .. }
        )
    }

    /// The action's snake_case name (log field, metric dimension).
    pub fn name(&self) -> &'static str {
        match self {
            Action::RecordEvent(_) => "record_event",
            Action::RecordTimeline(_) => "record_timeline",
            Action::SnapshotNode { .. } => "snapshot_node",
            Action::LifecycleHeartbeat(_) => "lifecycle_heartbeat",
            Action::CordonAndTaint(_) => "cordon_and_taint",
            Action::DeregisterTargets(_) => "deregister_targets",
            Action::ShiftTraffic(_) => "shift_traffic",
            Action::DetachFromAsg { .. } => "detach_from_asg",
            Action::Drain(_) => "drain",
            Action::CompleteLifecycleAction(_) => "complete_lifecycle_action",
            Action::OutOfServiceTaint { .. } => "out_of_service_taint",
            Action::WatchForResume(_) => "watch_for_resume",
            Action::ScheduleHandoff(_) => "schedule_handoff",
            Action::CancelHandoff(_) => "cancel_handoff",
            Action::FinishEvent { .. } => "finish_event",
        }
    }
}

/// The dedupe write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordEvent {
    /// EventBridge event id.
    pub event_id: String,
    /// Instance.
    pub instance_id: String,
    /// The interruption this delivery starts.
    pub interruption_id: String,
    /// An unfinished item first seen before this may be taken over (the
    /// earlier delivery is presumed dead).
    pub takeover_if_seen_before: DateTime<Utc>,
    /// DynamoDB TTL.
    pub expires_at: DateTime<Utc>,
}

/// An Auto Scaling lifecycle action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleRef {
    /// Group.
    pub asg: String,
    /// Hook.
    pub hook: String,
    /// Action token.
    pub token: String,
    /// Instance.
    pub instance_id: String,
}

/// `CompleteLifecycleAction`'s `LifecycleActionResult`, and a hook's `DefaultResult`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LifecycleResult {
    /// Proceed: the instance terminates once every other hook is done.
    Continue,
    /// Stop the remaining lifecycle actions: the instance terminates now, or is retained where
    /// the group has an instance lifecycle policy that retains on an abandoned hook.
    Abandon,
}

impl LifecycleResult {
    /// The word Auto Scaling uses (`CONTINUE`, `ABANDON`).
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleResult::Continue => "CONTINUE",
            LifecycleResult::Abandon => "ABANDON",
        }
    }
}

/// The hook's heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleHeartbeat {
    /// The hook.
    #[serde(flatten)]
    pub hook: LifecycleRef,
    /// While the drain runs, a heartbeat goes out this often (see
    /// [`super::lifecycle::heartbeat_every_seconds`]).
    pub every_seconds: i64,
}

/// The hook's completion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompleteLifecycleAction {
    /// The hook.
    #[serde(flatten)]
    pub hook: LifecycleRef,
    /// The result once the drain is done.
    pub result: LifecycleResult,
    /// The result when the drain's deadline came with pods left.
    pub if_drain_failed: LifecycleResult,
}

impl CompleteLifecycleAction {
    /// The result to send after a drain that `failed` (its deadline came with pods left) or not.
    pub fn result_after(&self, failed: bool) -> LifecycleResult {
        if failed {
            self.if_drain_failed
        } else {
            self.result
        }
    }
}

/// The node patch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CordonAndTaint {
    /// Node.
    pub node: String,
    /// `spec.unschedulable = true`.
    pub cordon: bool,
    /// costop's taint for this event kind.
    pub taint: Taint,
    /// The node's complete taint list after the change (existing taints
    /// kept, costop's key replaced): the shell writes this list as is.
    pub taints_after: Vec<Taint>,
    /// Add `node.kubernetes.io/exclude-from-external-load-balancers`.
    pub exclude_from_lb_label: bool,
    /// Annotations to set (interruption id, deadline).
    pub annotations: BTreeMap<String, String>,
    /// Precondition for the patch (`metadata.resourceVersion`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
}

/// Deregistration from one target group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeregisterTargets {
    /// Target group.
    pub target_group_arn: String,
    /// Its target type.
    pub target_type: TargetType,
    /// The instance's targets in it.
    pub targets: Vec<RegisteredTarget>,
}

/// The drain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Drain {
    /// Node.
    pub node: String,
    /// Pods to evict, in order (placeholders, then lowest priority first).
    pub pods: Vec<EvictPod>,
    /// Pods left alone, and why.
    pub skipped: Vec<SkippedPod>,
    /// Pods should be gone by then (deadline − safety margin); evictions
    /// are not retried past it.
    pub evict_by: DateTime<Utc>,
    /// The hard deadline.
    pub deadline: DateTime<Utc>,
    /// Evictions in flight at once.
    pub concurrency: u32,
    /// At the deadline: delete remaining pods (true) or only report them.
    pub force_delete_at_deadline: bool,
    /// Retry policy for 429s.
    pub backoff: BackoffPolicy,
    /// Taking the pods that serve a load balancer out of rotation before their eviction
    /// ([`EvictPod::after_rotation`]); `None` when no pod does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<Rotation>,
}

/// Out of rotation, then evicted: the pods marked [`EvictPod::after_rotation`] are evicted only
/// once the load balancers stop sending them requests. costop relabels the opted-in pods
/// (so their Services, kube-proxy and the load-balancer controller let go of them), waits
/// until every target it deregistered is `draining` or gone, or until `wait_until`, then for
/// `settle_seconds` more (the load balancer acts on a deregistration a few seconds after it
/// reports it), and only then evicts them. The other pods are evicted at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rotation {
    /// Pods whose [`crate::constants::LABEL_SERVING`] goes to
    /// [`crate::constants::LABEL_SERVING_OUT`] (uid precondition).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relabel: Vec<PodUid>,
    /// The targets to see `draining` or gone (those the plan deregisters), per group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub watch: Vec<DeregisterTargets>,
    /// Stop waiting for the targets then (the settle time still follows).
    pub wait_until: DateTime<Utc>,
    /// After the targets are draining: the load balancer's propagation, and kube-proxy's.
    pub settle_seconds: i64,
}

/// A pod by name and uid.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PodUid {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID precondition: never touch a same-named successor.
    pub uid: String,
}

impl PodUid {
    /// `namespace/name`.
    pub fn pod_ref(&self) -> PodRef {
        PodRef {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }
}

impl Drain {
    /// This drain cut short at `limit` when that comes before its deadline (the
    /// invocation's own time runs out first, e.g. a Lambda timeout shorter than an
    /// ASG hook's deadline); `None` when the drain already ends by then.
    pub fn bounded_by(&self, limit: DateTime<Utc>) -> Option<Drain> {
        (limit < self.deadline).then(|| Drain {
            evict_by: self.evict_by.min(limit),
            deadline: limit,
            rotation: self.rotation.clone().map(|r| Rotation {
                wait_until: r.wait_until.min(limit),
                ..r
            }),
            ..self.clone()
        })
    }
}

/// An interrupted instance that may come back, and the node costop marked for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeWatch {
    /// The instance.
    pub instance_id: String,
    /// Its cluster.
    pub cluster: String,
    /// The node costop cordoned.
    pub node: String,
    /// The interruption (its snapshot says what the node was before).
    pub interruption_id: String,
    /// The interruption's deadline: before it (and a settle time after), a running instance
    /// is still on its way down.
    pub deadline: DateTime<Utc>,
}

/// Give a node back what costop took (one merge patch, conditional on the resourceVersion):
/// schedulable again unless it was cordoned before, costop's taints gone unless they were
/// there before, its label and annotations removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreNode {
    /// Node.
    pub node: String,
    /// `spec.unschedulable` as it was before.
    pub unschedulable: bool,
    /// The node's complete taint list after the change.
    pub taints_after: Vec<Taint>,
    /// Labels to remove.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove_labels: Vec<String>,
    /// Annotations to remove.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove_annotations: Vec<String>,
    /// Precondition for the patch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
}

/// One eviction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvictPod {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID precondition.
    pub uid: String,
    /// `DeleteOptions.gracePeriodSeconds`, capped to end before `evict_by`.
    pub grace_period_seconds: i64,
    /// The pod serves a load balancer: evicted once the drain's [`Rotation`] is done.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub after_rotation: bool,
}

impl EvictPod {
    /// `namespace/name`.
    pub fn pod_ref(&self) -> PodRef {
        PodRef {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }
}

/// A pod drain leaves alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedPod {
    /// The pod.
    pub pod: PodRef,
    /// Why.
    pub reason: SkipReason,
}
