//! The planner: `(event, facts, config, now) → Decision`, pure.
//!
//! [`plan`] decides for one instance; [`plan_all`] maps it over the facts of
//! every instance an event names (an AWS Health event can name several).
//! Either costop ignores the delivery, with a typed [`IgnoreReason`], or it
//! acts with a [`Plan`]: an ordered list of [`Action`]s the shell executes.
//!
//! Gates, in order (the first that applies decides the reason):
//! 1. the event is ignored at parse time (unknown/foreign), is a state change
//!    costop does not handle (`pending`, `running`), is a Health event that
//!    is not an EC2 scheduled change, or is closed;
//! 2. the facts are about an instance the event does not name;
//! 3. the delivery was already seen (completed, or still within its lease and
//!    not released by a failed first delivery);
//! 4. EC2 does not know the instance;
//! 5. no cluster tag, or no tagged cluster passes the allow-list;
//! 6. the managed tag is required and missing;
//! 7. the instance is a costop standby that serves no interruption;
//! 8. no node backs the instance.
//!
//! Responses by event kind:
//!
//! | event | response | deadline |
//! |---|---|---|
//! | Spot warning (terminate/stop/hibernate) | full | event time + window (120 s) |
//! | state change stopping/shutting-down | full | now |
//! | state change stopped/terminated | node gone | now |
//! | ASG terminate hook | full + heartbeats + complete | event time + hook deadline |
//! | Health EC2 scheduled change, due | full, per instance | `startTime` (now if past) |
//! | Health EC2 scheduled change, further off than the lead | schedule (see [`crate::handoff`]) | `startTime` |
//! | Health update: closed, or the instance resolved | cancel what was scheduled | none |
//! | rebalance recommendation | record only (standby later) | none |
//!
//! An ASG terminate hook's heartbeat interval, its result and the deadlines that bound its drain
//! are in [`lifecycle`].

pub mod action;
pub mod drain;
pub mod lifecycle;
pub mod rotation;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

pub use action::{
    Action, CompleteLifecycleAction, CordonAndTaint, DeregisterTargets, Drain, EvictPod,
    LifecycleHeartbeat, LifecycleRef, LifecycleResult, Phase, PodUid, RecordEvent, RestoreNode,
    ResumeWatch, Rotation, SkippedPod, Step,
};
pub use drain::{
    BackoffPolicy, DeadlineOutcome, GiveUpReason, MIN_GRACE_SECONDS, PodDisposition, RetryDecision,
    SkipReason, at_deadline, classify_pod, deterministic_jitter, grace_cap, next_eviction_retry,
};
pub use lifecycle::{FailedDrainResult, completion_results, heartbeat_every_seconds};

use crate::config::Config;
use crate::constants;
use crate::event::{Event, EventKind, IgnoredReason, InstanceAction, InstanceState};
use crate::facts::{Delivery, Facts, InstanceFacts, NodeFacts};
use crate::handoff::{self, ScheduledChange};
use crate::kube::{Taint, TaintEffect, to_label_value, with_taint};
use crate::record::TimelineStep;

/// The planner's verdict for one instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
// A Plan is much larger than a reason; Decisions are few and short-lived.
#[allow(clippy::large_enum_variant)]
pub enum Decision {
    /// Do nothing (log the reason).
    Ignore {
        /// Why.
        reason: IgnoreReason,
    },
    /// Execute the plan.
    Act(Plan),
}

impl Decision {
    /// The plan, if acting.
    pub fn as_plan(&self) -> Option<&Plan> {
        match self {
            Decision::Act(p) => Some(p),
            Decision::Ignore { .. } => None,
        }
    }

    /// The reason, if ignoring.
    pub fn as_ignore(&self) -> Option<&IgnoreReason> {
        match self {
            Decision::Ignore { reason } => Some(reason),
            Decision::Act(_) => None,
        }
    }
}

/// Why costop does nothing for an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum IgnoreReason {
    /// A detail-type of a subscribed source that costop does not handle.
    UnknownEvent {
        /// Source.
        source: String,
        /// Detail type.
        detail_type: String,
    },
    /// An event from a source costop does not handle.
    ForeignEvent {
        /// Source.
        source: String,
        /// Detail type.
        detail_type: String,
    },
    /// A Health event that is not an EC2 scheduled change.
    UnhandledHealthEvent {
        /// Service.
        service: String,
        /// Category.
        category: String,
        /// Event type code.
        code: String,
    },
    /// A Health event whose status is `closed` (and nothing was scheduled for it).
    HealthEventClosed {
        /// Event ARN.
        event_arn: String,
    },
    /// The Health event marks the instance's entity `RESOLVED` (and nothing was scheduled
    /// for it).
    EntityResolved {
        /// Instance.
        instance_id: String,
        /// Event ARN.
        event_arn: String,
    },
    /// A state change costop does not act on (`pending`, `running`).
    StateNotHandled {
        /// The state.
        state: InstanceState,
    },
    /// The facts are about an instance the event does not name.
    InstanceNotInEvent {
        /// Instance.
        instance_id: String,
    },
    /// This (event, instance) was already handled or is being handled.
    DuplicateDelivery {
        /// Event id.
        event_id: String,
        /// Instance.
        instance_id: String,
        /// When the first delivery was recorded.
        first_seen_at: DateTime<Utc>,
    },
    /// EC2 does not know the instance.
    InstanceNotFound {
        /// Instance.
        instance_id: String,
    },
    /// The instance has no EKS/Kubernetes cluster tag: not costop's business.
    NotInAnyCluster {
        /// Instance.
        instance_id: String,
    },
    /// The instance's cluster is not in `COSTOP_CLUSTER_ALLOW_LIST`.
    ClusterNotAllowed {
        /// Instance.
        instance_id: String,
        /// The (first) cluster it is tagged with.
        cluster: String,
        /// The allow-list.
        allow_list: Vec<String>,
    },
    /// `COSTOP_REQUIRE_MANAGED_TAG` is set and the tag is missing.
    ManagedTagMissing {
        /// Instance.
        instance_id: String,
        /// The required tag key.
        tag: String,
    },
    /// The instance is one of costop's standbys and serves no interruption (stopped in the
    /// pool, being returned, or started by an operator without a lease): its stop or warning is
    /// the pool's own doing, not an interruption.
    StandbyNotServing {
        /// Instance.
        instance_id: String,
        /// What it is instead: `available`, `returning` or `serving without its lease`.
        state: String,
    },
    /// No node backs the instance (not joined yet, or already deleted).
    NoNodeForInstance {
        /// Instance.
        instance_id: String,
        /// Cluster searched.
        cluster: String,
    },
}

/// How much costop does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    /// Cordon, taint, deregister, drain (and ASG hook handling).
    Full,
    /// The instance is down: record, deregister, optionally out-of-service.
    NodeGone,
    /// Record only (a rebalance recommendation with `COSTOP_REBALANCE_TAINT=false`; the
    /// keeper retypes the zone's standby either way).
    RecordOnly,
    /// A `PreferNoSchedule` taint only (a rebalance recommendation): new pods prefer other
    /// nodes; nothing is cordoned or drained; the keeper's tick removes the taint after
    /// `COSTOP_REBALANCE_TAINT_SECONDS` if no interruption followed.
    Discourage,
    /// A Health scheduled change further off than `COSTOP_SCHEDULED_CHANGE_LEAD_SECONDS`:
    /// recorded, and handed back by the keeper's tick when due (see [`crate::handoff`]).
    Schedule,
    /// An update closed the Health event or resolved the instance: the scheduled change is
    /// forgotten.
    Cancel,
}

impl Response {
    /// Whether the response looks at the node's pods (to drain them or record them).
    pub fn observes_pods(self) -> bool {
        !matches!(self, Response::Schedule | Response::Cancel)
    }
}

/// What costop will do about one instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Deterministic id: `<instance>-<kind>-<anchor time>`; redeliveries and
    /// Health pages of the same change map to the same id.
    pub interruption_id: String,
    /// EventBridge event id.
    pub event_id: String,
    /// Event kind.
    pub kind: EventKind,
    /// Response level.
    pub response: Response,
    /// Instance.
    pub instance_id: String,
    /// Node.
    pub node: String,
    /// Cluster.
    pub cluster: String,
    /// Event time (envelope).
    pub event_time: DateTime<Utc>,
    /// When the shell received it (`now` given to the planner).
    pub received_at: DateTime<Utc>,
    /// When the instance goes away (for a rebalance taint: when the keeper takes it off);
    /// `None` for record-only plans.
    pub deadline: Option<DateTime<Utc>>,
    /// Print, do not execute.
    pub dry_run: bool,
    /// Steps in plan order, each with the phase it runs in.
    #[serde(rename = "actions")]
    pub steps: Vec<Step>,
}

/// A plan's opening: the dedupe claim and the one-request cordon, which the
/// shell sends together as soon as the node is known.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Opening<'a> {
    /// The conditional dedupe write.
    pub claim: Option<&'a RecordEvent>,
    /// The node patch.
    pub cordon: Option<&'a CordonAndTaint>,
}

impl Plan {
    /// The opening. It depends only on the event, the delivery, the instance
    /// and the node — never on the pods or target groups — so planning from
    /// [`Facts::for_opening`] yields the same opening as planning from the
    /// complete facts (the golden tests check this for every sample).
    pub fn opening(&self) -> Opening<'_> {
        let (mut claim, mut cordon) = (None, None);
        for a in self.in_phase(Phase::Open) {
            match a {
                Action::RecordEvent(r) => claim = claim.or(Some(r)),
                Action::CordonAndTaint(c) => cordon = cordon.or(Some(c)),
                _ => {}
            }
        }
        Opening { claim, cordon }
    }

    /// Every action, in plan order.
    pub fn actions(&self) -> impl Iterator<Item = &Action> {
        self.steps.iter().map(|s| &s.action)
    }

    /// The actions of one phase, in plan order.
    pub fn in_phase(&self, phase: Phase) -> impl Iterator<Item = &Action> {
        self.steps
            .iter()
            .filter(move |s| s.phase == phase)
            .map(|s| &s.action)
    }

    /// The drain step, if any.
    pub fn drain(&self) -> Option<&Drain> {
        self.actions().find_map(|a| match a {
            Action::Drain(d) => Some(d),
            _ => None,
        })
    }

    /// The lifecycle action this plan heartbeats and completes (an ASG terminate hook's).
    pub fn lifecycle(&self) -> Option<&LifecycleRef> {
        self.actions().find_map(|a| match a {
            Action::LifecycleHeartbeat(h) => Some(&h.hook),
            Action::CompleteLifecycleAction(c) => Some(&c.hook),
            _ => None,
        })
    }
}

/// Deterministic interruption id: `<instance>-<kind>-<yyyymmddthhmmssz>`.
/// Lower-case and at most 63 characters, so it is also a valid label value.
pub fn interruption_id(instance_id: &str, kind: EventKind, anchor: DateTime<Utc>) -> String {
    format!(
        "{instance_id}-{}-{}",
        kind.slug(),
        anchor.format("%Y%m%dt%H%M%Sz")
    )
}

fn ignore(reason: IgnoreReason) -> Decision {
    Decision::Ignore { reason }
}

/// Plans for every instance the event names, one decision per instance in
/// event order, using the matching entry of `facts` (an instance without
/// facts is treated as unknown to EC2). An event that names no instance
/// yields exactly one decision (an ignore).
pub fn plan_all(
    event: &Event,
    facts: &[Facts],
    config: &Config,
    now: DateTime<Utc>,
) -> Vec<Decision> {
    let ids = event.instance_ids();
    if ids.is_empty() {
        let placeholder = Facts::unknown_instance("");
        return vec![plan(event, &placeholder, config, now)];
    }
    ids.iter()
        .map(|id| match facts.iter().find(|f| f.instance_id == *id) {
            Some(f) => plan(event, f, config, now),
            None => plan(event, &Facts::unknown_instance(id.clone()), config, now),
        })
        .collect()
}

/// The cluster costop serves `instance` in: the most authoritative cluster tag that passes the
/// allow-list. The shell uses it to pick a cluster connection before planning; the planner
/// applies the same rule, so the two never disagree.
pub fn resolve_cluster(
    instance: &crate::facts::InstanceFacts,
    config: &Config,
) -> Option<crate::facts::ClusterRef> {
    instance
        .cluster_candidates()
        .into_iter()
        .find(|c| config.allows_cluster(&c.name))
}

/// The node patch of `action` re-derived from a fresh read of the node, after the first attempt
/// met a conflict: costop's taint replaces any previous one with its key, every other taint
/// on the fresh node is kept, and the precondition moves to the fresh resourceVersion.
pub fn refresh_cordon(action: &CordonAndTaint, fresh: &crate::facts::NodeFacts) -> CordonAndTaint {
    CordonAndTaint {
        taints_after: with_taint(&fresh.taints, action.taint.clone()),
        resource_version: fresh.resource_version.clone(),
        ..action.clone()
    }
}

/// Plans costop's response to `event` for the instance `facts` describes.
pub fn plan(event: &Event, facts: &Facts, config: &Config, now: DateTime<Utc>) -> Decision {
    // 1. Event-level gates.
    let envelope = match (event, event.envelope()) {
        (Event::Ignored(i), _) => {
            let (source, detail_type) = (i.source.clone(), i.detail_type.clone());
            return ignore(match i.reason {
                IgnoredReason::UnknownDetailType => IgnoreReason::UnknownEvent {
                    source,
                    detail_type,
                },
                IgnoredReason::ForeignSource => IgnoreReason::ForeignEvent {
                    source,
                    detail_type,
                },
            });
        }
        (_, Some(e)) => e,
        (_, None) => return unreachable_ignored(event),
    };
    let Some(kind) = event.kind() else {
        return unreachable_ignored(event);
    };
    match event {
        Event::StateChange(d) if !d.detail.state.is_going_down() && !d.detail.state.is_down() => {
            return ignore(IgnoreReason::StateNotHandled {
                state: d.detail.state,
            });
        }
        Event::Health(d) if !d.detail.is_ec2_scheduled_change() => {
            return ignore(IgnoreReason::UnhandledHealthEvent {
                service: d.detail.service.clone(),
                category: d.detail.event_type_category.clone(),
                code: d.detail.event_type_code.clone(),
            });
        }
        Event::Health(d) if d.detail.is_closed() => {
            let otherwise = IgnoreReason::HealthEventClosed {
                event_arn: d.detail.event_arn.clone(),
            };
            return cancel_or_ignore(event, facts, config, now, "closed", otherwise);
        }
        _ => {}
    }

    // 2. The facts must be about an instance this event names.
    let instance_id = facts.instance_id.clone();
    if !event.instance_ids().contains(&instance_id) {
        return ignore(IgnoreReason::InstanceNotInEvent { instance_id });
    }
    if let Event::Health(d) = event
        && d.detail
            .entity_for(&instance_id)
            .is_some_and(|e| e.is_resolved())
    {
        let otherwise = IgnoreReason::EntityResolved {
            instance_id,
            event_arn: d.detail.event_arn.clone(),
        };
        return cancel_or_ignore(event, facts, config, now, "resolved", otherwise);
    }

    // 3. Dedupe: a completed delivery, or one still within its lease, owns it.
    if let Delivery::Seen {
        first_seen_at,
        completed,
        released,
        ..
    } = &facts.delivery
    {
        let lease_over = *first_seen_at + TimeDelta::seconds(config.dedupe_lease_seconds) <= now;
        if *completed || !(lease_over || *released) {
            return ignore(IgnoreReason::DuplicateDelivery {
                event_id: envelope.id.clone(),
                instance_id,
                first_seen_at: *first_seen_at,
            });
        }
    }

    // 4.–6. Instance, cluster and ownership.
    let Some(instance) = &facts.instance else {
        return ignore(IgnoreReason::InstanceNotFound { instance_id });
    };
    let candidates = instance.cluster_candidates();
    let Some(first) = candidates.first() else {
        return ignore(IgnoreReason::NotInAnyCluster { instance_id });
    };
    let Some(cluster) = resolve_cluster(instance, config) else {
        return ignore(IgnoreReason::ClusterNotAllowed {
            instance_id,
            cluster: first.name.clone(),
            allow_list: config.cluster_allow_list.clone(),
        });
    };
    if config.require_managed_tag && !instance.is_managed() {
        return ignore(IgnoreReason::ManagedTagMissing {
            instance_id,
            tag: constants::TAG_COSTOP_MANAGED.to_owned(),
        });
    }

    // 7. A standby is acted on only while it serves.
    if let Err(state) =
        crate::standby::serves_an_interruption(instance, facts.standby_lease.as_ref())
    {
        return ignore(IgnoreReason::StandbyNotServing {
            instance_id,
            state: state.to_owned(),
        });
    }

    // 8. A node to act on.
    let Some(node) = &facts.node else {
        return ignore(IgnoreReason::NoNodeForInstance {
            instance_id,
            cluster: cluster.name.clone(),
        });
    };

    let (response, deadline, anchor) = response_and_deadline(event, envelope.time, config, now);
    let interruption_id = interruption_id(&instance_id, kind, anchor);
    let mut b = Builder {
        event,
        kind,
        facts,
        instance,
        node,
        config,
        now,
        interruption_id: interruption_id.clone(),
        event_id: envelope.id.clone(),
        cluster: cluster.name.clone(),
        steps: Vec::new(),
    };
    match (response, deadline) {
        (Response::Schedule, Some(start)) => b.schedule(start),
        (Response::Full, Some(deadline)) => b.full(deadline),
        (Response::NodeGone, deadline) => b.node_gone(deadline.unwrap_or(now)),
        (Response::Discourage, Some(until)) => b.discourage(until),
        _ => b.record_only(),
    }
    Decision::Act(Plan {
        interruption_id,
        event_id: envelope.id.clone(),
        kind,
        response,
        instance_id,
        node: node.name.clone(),
        cluster: cluster.name.clone(),
        event_time: envelope.time,
        received_at: now,
        deadline,
        dry_run: config.dry_run,
        steps: b.steps,
    })
}

/// Recognised events always have an envelope and a kind; this keeps the
/// planner total without a panic should that ever change.
fn unreachable_ignored(event: &Event) -> Decision {
    ignore(IgnoreReason::UnknownEvent {
        source: event.source().to_owned(),
        detail_type: event.detail_type().to_owned(),
    })
}

/// An update that closes a Health event, or resolves the instance, cancels the change costop
/// scheduled for it; with nothing scheduled it is ignored with `otherwise`.
fn cancel_or_ignore(
    event: &Event,
    facts: &Facts,
    config: &Config,
    now: DateTime<Utc>,
    reason: &str,
    otherwise: IgnoreReason,
) -> Decision {
    let (Event::Health(d), Some(scheduled)) = (event, &facts.scheduled) else {
        return ignore(otherwise);
    };
    if scheduled.event_arn != d.detail.event_arn
        || scheduled.instance_id != facts.instance_id
        || !event.instance_ids().contains(&facts.instance_id)
    {
        return ignore(otherwise);
    }
    let step = |phase, action| Step { phase, action };
    Decision::Act(Plan {
        interruption_id: scheduled.interruption_id.clone(),
        event_id: d.envelope.id.clone(),
        kind: EventKind::ScheduledMaintenance,
        response: Response::Cancel,
        instance_id: facts.instance_id.clone(),
        node: scheduled.node.clone(),
        cluster: scheduled.cluster.clone(),
        event_time: d.envelope.time,
        received_at: now,
        deadline: None,
        dry_run: config.dry_run,
        steps: vec![
            step(
                Phase::Record,
                Action::RecordTimeline(TimelineStep::ScheduleCancelled {
                    reason: reason.to_owned(),
                }),
            ),
            step(Phase::Record, Action::CancelHandoff(scheduled.reference())),
        ],
    })
}

/// Response level, deadline, and the time the interruption id is anchored to.
fn response_and_deadline(
    event: &Event,
    event_time: DateTime<Utc>,
    config: &Config,
    now: DateTime<Utc>,
) -> (Response, Option<DateTime<Utc>>, DateTime<Utc>) {
    match event {
        Event::SpotInterruption(_) => (
            Response::Full,
            Some(event_time + TimeDelta::seconds(config.deadline_window_seconds)),
            event_time,
        ),
        Event::StateChange(d) if d.detail.state.is_down() => {
            (Response::NodeGone, Some(now.max(event_time)), event_time)
        }
        // Already going down: whatever can move must move now.
        Event::StateChange(_) => (Response::Full, Some(now.max(event_time)), event_time),
        Event::AsgTerminate(_) => (
            Response::Full,
            Some(event_time + TimeDelta::seconds(config.asg_hook_deadline_seconds)),
            event_time,
        ),
        Event::Health(d) => {
            // Anchor on startTime so every page of one change shares an id.
            let start = d.detail.start_time.unwrap_or(event_time);
            if handoff::waits(start, config, now) {
                (Response::Schedule, Some(start), start)
            } else {
                (Response::Full, Some(start.max(now)), start)
            }
        }
        Event::Rebalance(_) if config.rebalance_taint => (
            Response::Discourage,
            Some(now.max(event_time) + TimeDelta::seconds(config.rebalance_taint_seconds)),
            event_time,
        ),
        Event::Rebalance(_) | Event::Ignored(_) => (Response::RecordOnly, None, event_time),
    }
}

struct Builder<'a> {
    event: &'a Event,
    kind: EventKind,
    facts: &'a Facts,
    instance: &'a InstanceFacts,
    node: &'a NodeFacts,
    config: &'a Config,
    now: DateTime<Utc>,
    interruption_id: String,
    event_id: String,
    cluster: String,
    steps: Vec<Step>,
}

impl Builder<'_> {
    fn push(&mut self, phase: Phase, action: Action) {
        self.steps.push(Step { phase, action });
    }

    fn timeline(&mut self, phase: Phase, step: TimelineStep) {
        self.push(phase, Action::RecordTimeline(step));
    }

    /// RecordEvent, Received, SnapshotNode: the common opening.
    fn opening(&mut self) {
        let c = self.config;
        self.push(
            Phase::Open,
            Action::RecordEvent(RecordEvent {
                event_id: self.event_id.clone(),
                instance_id: self.instance.instance_id.clone(),
                interruption_id: self.interruption_id.clone(),
                takeover_if_seen_before: self.now - TimeDelta::seconds(c.dedupe_lease_seconds),
                expires_at: self.now + TimeDelta::days(i64::from(c.timeline_ttl_days)),
            }),
        );
        self.timeline(Phase::Record, TimelineStep::Received);
        self.push(
            Phase::Record,
            Action::SnapshotNode {
                instance_id: self.instance.instance_id.clone(),
                node: Some(self.node.name.clone()),
                pods: self.facts.pods.len(),
            },
        );
    }

    /// Whether the instance may run again after this interruption: a Spot stop or
    /// hibernation, a stop, an AWS Health scheduled change (a reboot, a stop, a retirement an
    /// operator may start again). A termination, a terminate hook or shutting down does not.
    fn may_come_back(&self) -> bool {
        match self.event {
            Event::SpotInterruption(d) => d.detail.instance_action != InstanceAction::Terminate,
            Event::StateChange(d) => matches!(
                d.detail.state,
                InstanceState::Stopping | InstanceState::Stopped
            ),
            Event::Health(_) => true,
            Event::AsgTerminate(_) | Event::Rebalance(_) | Event::Ignored(_) => false,
        }
    }

    /// Leave a watch for the keeper's tick (see [`crate::resume`]) when the instance may
    /// come back.
    fn watch_for_resume(&mut self, deadline: DateTime<Utc>) {
        if self.may_come_back() {
            self.push_watch(deadline);
        }
    }

    fn push_watch(&mut self, deadline: DateTime<Utc>) {
        self.push(
            Phase::Record,
            Action::WatchForResume(ResumeWatch {
                instance_id: self.instance.instance_id.clone(),
                cluster: self.cluster.clone(),
                node: self.node.name.clone(),
                interruption_id: self.interruption_id.clone(),
                deadline,
            }),
        );
    }

    fn closing(&mut self) {
        self.push(
            Phase::Close,
            Action::FinishEvent {
                event_id: self.event_id.clone(),
                instance_id: self.instance.instance_id.clone(),
            },
        );
    }

    /// Move the node's share of each rule's traffic to the fallback (see [`crate::shift`]);
    /// returns the groups the shift takes out of every rule's direct path.
    fn shift_traffic(&mut self, deadline: DateTime<Utc>) -> BTreeSet<String> {
        let fallback = &self.config.fallback_target_group;
        if fallback.is_empty() {
            return BTreeSet::new();
        }
        let ingresses = &self.facts.ingresses;
        let leases: Vec<_> = crate::shift::shiftable(
            &self.facts.rules,
            &self.facts.target_groups,
            fallback,
            ingresses,
        )
        .into_iter()
        .filter_map(|r| {
            let lease = crate::shift::lease_for(
                r,
                &self.facts.target_groups,
                self.config,
                &self.interruption_id,
                self.now,
                deadline,
            )?;
            // A managed rule's weights go to its Ingress (see `crate::shift::ingress`).
            let ingress = crate::shift::ingress_part(r, ingresses, &self.cluster)
                .ok()?
                .map(Box::new);
            Some(crate::shift::ShiftLease { ingress, ..lease })
        })
        .collect();
        let out = crate::shift::fully_shifted(&self.facts.rules, &leases);
        for lease in leases {
            self.push(Phase::Beside, Action::ShiftTraffic(lease));
        }
        out
    }

    /// Deregister what no controller keeps (see [`rotation`]).
    fn deregister(&mut self) {
        let out =
            rotation::deregistrations(&self.facts.target_groups, self.instance, &self.facts.pods);
        let any = !out.is_empty();
        for d in out {
            self.push(Phase::Beside, Action::DeregisterTargets(d));
        }
        if any {
            self.timeline(Phase::Beside, TimelineStep::Deregistered);
        }
    }

    fn lifecycle_ref(&self) -> Option<LifecycleRef> {
        match self.event {
            Event::AsgTerminate(d) => Some(LifecycleRef {
                asg: d.detail.auto_scaling_group_name.clone(),
                hook: d.detail.lifecycle_hook_name.clone(),
                token: d.detail.lifecycle_action_token.clone(),
                instance_id: d.detail.ec2_instance_id.clone(),
            }),
            _ => None,
        }
    }

    /// The taint value says what is coming, for `kubectl describe node`.
    fn taint_value(&self) -> String {
        let raw = match self.event {
            Event::SpotInterruption(d) => d.detail.instance_action.as_str().to_owned(),
            Event::StateChange(d) => d.detail.state.as_str().to_owned(),
            Event::AsgTerminate(_) => "terminating".to_owned(),
            Event::Health(d) => d.detail.event_type_code.clone(),
            Event::Rebalance(_) => "recommended".to_owned(),
            Event::Ignored(_) => String::new(),
        };
        to_label_value(&raw)
    }

    fn full(&mut self, deadline: DateTime<Utc>) {
        let c = self.config;
        self.opening();
        let lifecycle = self.lifecycle_ref();
        let hook_facts = self.facts.lifecycle_hook.as_ref();
        if let Some(hook) = &lifecycle {
            self.push(
                Phase::InOrder,
                Action::LifecycleHeartbeat(LifecycleHeartbeat {
                    hook: hook.clone(),
                    every_seconds: heartbeat_every_seconds(hook_facts),
                }),
            );
        }

        let taint = Taint::new(
            self.config.taint_keys.for_kind(self.kind),
            Some(self.taint_value()),
            c.taint_effect,
        );
        let annotations = self.marks(deadline);
        self.push(
            Phase::Open,
            Action::CordonAndTaint(CordonAndTaint {
                node: self.node.name.clone(),
                cordon: true,
                taints_after: with_taint(&self.node.taints, taint.clone()),
                taint,
                exclude_from_lb_label: true,
                annotations,
                resource_version: self.node.resource_version.clone(),
            }),
        );
        // Stamped with the time the patch was answered, whenever it is written.
        self.timeline(Phase::Record, TimelineStep::Cordoned);
        self.watch_for_resume(deadline);

        self.deregister();
        let shifted_away = self.shift_traffic(deadline);
        let relabel =
            rotation::to_relabel(&self.facts.pods, &self.facts.target_groups, &shifted_away);
        let watch = rotation::watched(
            &self.facts.target_groups,
            self.instance,
            &self.facts.pods,
            &relabel,
        );

        // An instance in an ASG terminate hook is already leaving the group.
        if c.detach_from_asg
            && lifecycle.is_none()
            && let Some(asg) = self.instance.asg_name()
        {
            self.push(
                Phase::InOrder,
                Action::DetachFromAsg {
                    asg: asg.to_owned(),
                    instance_id: self.instance.instance_id.clone(),
                    decrement_desired: false,
                },
            );
        }

        let drain = self.drain(deadline, relabel, watch, &shifted_away);
        self.push(Phase::InOrder, Action::Drain(drain));
        self.timeline(Phase::InOrder, TimelineStep::Drained);

        if let Some(hook) = lifecycle {
            let (result, if_drain_failed) =
                completion_results(c.asg_hook_failed_drain_result, hook_facts);
            self.push(
                Phase::InOrder,
                Action::CompleteLifecycleAction(CompleteLifecycleAction {
                    hook,
                    result,
                    if_drain_failed,
                }),
            );
        }
        self.forget_schedule();
        self.closing();
    }

    fn drain(
        &self,
        deadline: DateTime<Utc>,
        relabel: Vec<PodUid>,
        watch: Vec<DeregisterTargets>,
        shifted_away: &BTreeSet<String>,
    ) -> Drain {
        let c = self.config;
        let margin = TimeDelta::seconds(c.safety_margin_seconds);
        let evict_by = (deadline - margin).max(self.now);
        let serving = rotation::serving(
            &self.facts.target_groups,
            &self.facts.pods,
            &relabel,
            shifted_away,
        );
        let mut evict = Vec::new();
        let mut skipped = Vec::new();
        for pod in &self.facts.pods {
            match classify_pod(pod) {
                PodDisposition::Skip(reason) => skipped.push(SkippedPod {
                    pod: pod.pod_ref(),
                    reason,
                }),
                PodDisposition::Evict => evict.push(pod),
            }
        }
        // Placeholders first (they exist to be displaced), then the least
        // important workloads; name order keeps plans deterministic.
        evict.sort_by(|a, b| {
            (
                !a.is_placeholder(),
                a.priority.unwrap_or(0),
                &a.namespace,
                &a.name,
            )
                .cmp(&(
                    !b.is_placeholder(),
                    b.priority.unwrap_or(0),
                    &b.namespace,
                    &b.name,
                ))
        });
        skipped.sort_by(|a, b| a.pod.cmp(&b.pod));
        let rotation = evict
            .iter()
            .any(|p| serving.contains(&p.uid))
            .then(|| rotation::rotation(relabel, watch, c, self.now, evict_by));
        let pods = evict
            .into_iter()
            .map(|p| {
                let after_rotation = serving.contains(&p.uid);
                // A serving pod's grace starts when its rotation ends, at the latest.
                let from = match &rotation {
                    Some(r) if after_rotation => r.ends_by(),
                    _ => self.now,
                };
                EvictPod {
                    namespace: p.namespace.clone(),
                    name: p.name.clone(),
                    uid: p.uid.clone(),
                    grace_period_seconds: grace_cap(p.grace_seconds(), from, deadline, margin)
                        .min(c.grace_cap_seconds)
                        .max(MIN_GRACE_SECONDS),
                    after_rotation,
                }
            })
            .collect();
        Drain {
            node: self.node.name.clone(),
            pods,
            skipped,
            evict_by,
            deadline,
            concurrency: c.drain_concurrency,
            force_delete_at_deadline: c.force_delete_at_deadline,
            backoff: c.eviction_backoff,
            rotation,
        }
    }

    fn node_gone(&mut self, deadline: DateTime<Utc>) {
        self.opening();
        self.watch_for_resume(deadline);
        self.deregister();
        if self.config.out_of_service_on_terminated {
            let taint = Taint::new(
                constants::TAINT_OUT_OF_SERVICE,
                Some(constants::TAINT_OUT_OF_SERVICE_VALUE.to_owned()),
                TaintEffect::NoExecute,
            );
            self.push(
                Phase::InOrder,
                Action::OutOfServiceTaint {
                    node: self.node.name.clone(),
                    taints_after: with_taint(&self.node.taints, taint.clone()),
                    taint,
                    resource_version: self.node.resource_version.clone(),
                },
            );
        }
        self.closing();
    }

    /// A rebalance recommendation: one patch adds a `PreferNoSchedule` taint (no cordon, no
    /// label, so running pods keep serving and load balancers keep the node), and a resume
    /// watch lets the keeper's tick take it off at `until` if the node is still running then.
    fn discourage(&mut self, until: DateTime<Utc>) {
        self.opening();
        let taint = Taint::new(
            self.config.taint_keys.for_kind(self.kind),
            Some(self.taint_value()),
            TaintEffect::PreferNoSchedule,
        );
        self.push(
            Phase::Open,
            Action::CordonAndTaint(CordonAndTaint {
                node: self.node.name.clone(),
                cordon: false,
                taints_after: with_taint(&self.node.taints, taint.clone()),
                taint,
                exclude_from_lb_label: false,
                annotations: self.marks(until),
                resource_version: self.node.resource_version.clone(),
            }),
        );
        self.timeline(Phase::Record, TimelineStep::Tainted);
        self.push_watch(until);
        self.closing();
    }

    /// The annotations that name the interruption on the node, so an operator can find its
    /// timeline and the keeper's tick knows which interruption marked the node.
    fn marks(&self, deadline: DateTime<Utc>) -> BTreeMap<String, String> {
        BTreeMap::from([
            (
                constants::ANNOTATION_INTERRUPTION_ID.to_owned(),
                self.interruption_id.clone(),
            ),
            (
                constants::ANNOTATION_DEADLINE.to_owned(),
                deadline.to_rfc3339_opts(SecondsFormat::Secs, true),
            ),
        ])
    }

    /// A Health scheduled change further off than the lead: kept, with a SCHEDULED milestone,
    /// until the keeper hands it back when due. Nothing is claimed: the delivery that comes
    /// due is this event again, and must not be taken for a duplicate.
    fn schedule(&mut self, start: DateTime<Utc>) {
        let change = ScheduledChange {
            instance_id: self.instance.instance_id.clone(),
            event_arn: match self.event {
                Event::Health(d) => d.detail.event_arn.clone(),
                _ => String::new(),
            },
            interruption_id: self.interruption_id.clone(),
            cluster: self.cluster.clone(),
            node: self.node.name.clone(),
            start_time: start,
            due_at: handoff::due_at(start, self.config),
        };
        self.timeline(
            Phase::Record,
            TimelineStep::Scheduled {
                start_time: change.start_time,
                due_at: change.due_at,
            },
        );
        self.push(Phase::Record, Action::ScheduleHandoff(change));
    }

    /// A scheduled change acted on now is no longer waiting.
    fn forget_schedule(&mut self) {
        if let Some(s) = &self.facts.scheduled {
            self.push(Phase::Close, Action::CancelHandoff(s.reference()));
        }
    }

    fn record_only(&mut self) {
        self.opening();
        self.closing();
    }
}
