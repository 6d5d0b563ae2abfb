//! After the opening: plan from the complete facts (pods, target groups and lifecycle hook in)
//! and run the plan phase by phase. What the opening did not send runs first; then the record
//! phase (flushed through the journal), the beside phase (the deregistrations) and the in-order
//! phase (the drain among them) run side by side; the close phase (the event marked finished)
//! waits for all of it, journal included. While an ASG hook's drain runs its heartbeat repeats,
//! and the hook is then completed with the result the drain's end calls for. A failure after the
//! claim is recorded and gives the event up, so Lambda's retry takes over at once.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use costop_core::facts::{Facts, InstanceFacts, PodFacts, TargetGroupFacts};
use costop_core::handoff;
use costop_core::plan::{LifecycleHeartbeat, Phase};
use costop_core::record::{self, TimelineEntry, TimelineStep};
use costop_core::shift::{self, RuleFacts};
use costop_core::{Action, Decision, IgnoreReason, Plan};
use futures::future::{Either, join_all};
use tokio::time::MissedTickBehavior;

use super::opening::{Claimed, Opened, Sent};
use super::{DeliveryContext, ExecutionReport, Handler, HandlerError, InstanceOutcome};
use crate::drain::{self, DrainReport};
use crate::function::{Mode, error_chain};
use crate::journal::Journal;
use crate::ports::{Asg, Elb, HasRecords, InterruptionPorts, Kube, KubeOf, PortError, Records};

/// How old the instance → node index may get before an invocation refreshes it (off its
/// critical path, beside the drain).
const NODE_INDEX_MAX_AGE: Duration = Duration::from_secs(300);

/// Kept back from the invocation's budget to record how far it got and give the event up.
const BUDGET_RESERVE: TimeDelta = TimeDelta::seconds(3);

/// The complete facts did not call for the action the early plan opened with.
#[derive(Debug, thiserror::Error)]
#[error("the plan from the complete facts no longer acts on this instance")]
struct PlanChanged;

/// Why executing a plan stopped.
enum Failure {
    Port(&'static str, PortError),
    OutOfTime { pods_left: usize },
}

/// What one executed action contributes to the report.
enum Done {
    Nothing,
    Cordoned { after_ms: u64 },
    Deregistered { targets: usize },
    Shifted,
    Drained(DrainReport),
}

impl<W: InterruptionPorts> Handler<W> {
    /// One instance after its opening: plan from the complete facts and execute the rest.
    pub(super) async fn finish(
        &self,
        cx: &DeliveryContext<'_>,
        opened: Opened<KubeOf<W>>,
        groups: &Result<Vec<TargetGroupFacts>, PortError>,
        rules: &[RuleFacts],
    ) -> Result<InstanceOutcome, HandlerError> {
        let Opened {
            mut facts,
            early,
            pods,
            hook,
            sent,
        } = opened;
        let instance_id = facts.instance_id.clone();
        let err = |source| HandlerError::Observe {
            instance_id: instance_id.clone(),
            source,
        };
        let claimed = match sent {
            None | Some(Sent::ClaimLost) if early.as_plan().is_none() => {
                self.record_ignore(cx, &instance_id, &early).await;
                return Ok(InstanceOutcome {
                    instance_id,
                    decision: early,
                    report: None,
                });
            }
            None => None,
            Some(Sent::ClaimLost) => {
                let report = ExecutionReport {
                    lost_claim: true,
                    actions: vec!["record_event"],
                    ..Default::default()
                };
                return Ok(InstanceOutcome {
                    instance_id,
                    decision: early,
                    report: Some(report),
                });
            }
            Some(Sent::Claimed(claimed)) => Some(claimed),
        };
        facts.pods = match (pods, early.as_plan(), &claimed) {
            (Ok(pods), ..) => pods,
            (Err(e), Some(plan), Some(_)) => {
                self.give_up(plan, "observe_pods", &e).await;
                return Err(err(e));
            }
            (Err(e), ..) => return Err(err(e)),
        };
        facts.lifecycle_hook = match hook {
            Ok(Some(h)) => Some(h),
            Ok(None) => {
                if let Some(l) = early.as_plan().and_then(Plan::lifecycle) {
                    tracing::warn!(asg = %l.asg, hook = %l.hook, "Auto Scaling knows no such lifecycle hook; heartbeats at the shortest interval");
                }
                None
            }
            // The drain matters more: heartbeats then go out often enough for any hook.
            Err(e) => {
                tracing::warn!(error = %error_chain(&e), "could not read the lifecycle hook; heartbeats at the shortest interval");
                None
            }
        };
        facts.rules = rules.to_vec();
        let mut groups_failed = None;
        match groups {
            Ok(groups) => {
                facts.target_groups = holding(groups, facts.instance.as_ref(), &facts.pods)
            }
            Err(e) => groups_failed = Some(e),
        }
        if let Some(kube) = claimed.as_ref().and_then(|c| c.kube.as_ref()) {
            facts.ingresses = ingresses_of(kube, &facts.rules, &facts.target_groups).await;
        }
        let decision = costop_core::plan(cx.event, &facts, &self.config, cx.now);
        let Some(claimed) = claimed else {
            return Ok(InstanceOutcome {
                instance_id,
                decision,
                report: None,
            });
        };
        let (Decision::Act(plan), Some(early)) = (&decision, early.as_plan()) else {
            // Never expected: the golden tests show the decision does not depend on the pods or
            // target groups. Should it ever, stop and leave the event to the retry.
            if let Some(early) = early.as_plan() {
                self.give_up(early, "plan", &PlanChanged).await;
            }
            return Ok(InstanceOutcome {
                instance_id,
                decision,
                report: None,
            });
        };
        if plan.opening() != early.opening() {
            tracing::error!(interruption_id = %plan.interruption_id, "the opening planned early differs from the complete plan's");
        }
        if let Some(e) = groups_failed {
            // Logged and recorded; the node is already cordoned and must still be drained.
            tracing::error!(interruption_id = %plan.interruption_id, error = %error_chain(e), "target groups unreadable; not deregistering");
            let step = TimelineStep::Failed {
                action: "observe_target_groups".into(),
                error: error_chain(e),
            };
            let _ = self.record_now(plan, step).await;
        }
        let report = self.execute(cx, plan, &facts, claimed).await?;
        Ok(InstanceOutcome {
            instance_id,
            decision,
            report: Some(report),
        })
    }

    /// Everything after the opening, phase by phase (see the module docs).
    async fn execute(
        &self,
        cx: &DeliveryContext<'_>,
        plan: &Plan,
        facts: &Facts,
        claimed: Claimed<KubeOf<W>>,
    ) -> Result<ExecutionReport, HandlerError> {
        let journal = Journal::new(self.world.records(), self.config.timeline_ttl_days);
        let run = Run {
            cx,
            plan,
            facts,
            claimed: &claimed,
            journal: &journal,
            drain_failed: AtomicBool::new(false),
        };
        let mut report = ExecutionReport {
            time_to_cordon_ms: claimed.cordoned.map(|c| c.after.as_millis() as u64),
            ..Default::default()
        };
        let mut skipped = Vec::new();
        let phases = async {
            for action in plan.in_phase(Phase::Open) {
                report.add(self.run(&run, action).await?);
            }
            let record = async {
                for action in plan.in_phase(Phase::Record) {
                    self.run(&run, action).await?;
                }
                journal
                    .flush()
                    .await
                    .map_err(|e| Failure::Port("record_timeline", e))
            };
            let beside = async {
                let (effects, stamps): (Vec<&Action>, Vec<&Action>) = plan
                    .in_phase(Phase::Beside)
                    .partition(|a| !matches!(a, Action::RecordTimeline(_)));
                let mut done = Vec::new();
                for r in join_all(effects.into_iter().map(|a| self.run(&run, a))).await {
                    done.push(r?);
                }
                for action in stamps {
                    self.run(&run, action).await?;
                }
                Ok::<_, Failure>(done)
            };
            let in_order = async {
                let mut done = Vec::new();
                let mut missed = false;
                for action in plan.in_phase(Phase::InOrder) {
                    // A missed deadline is recorded by the drain itself, instead of `drained`.
                    if missed && matches!(action, Action::RecordTimeline(TimelineStep::Drained)) {
                        skipped.push(action.name());
                        continue;
                    }
                    let d = self.run(&run, action).await?;
                    if let Done::Drained(r) = &d {
                        missed = r.deadline_missed;
                    }
                    done.push(d);
                }
                Ok::<_, Failure>(done)
            };
            // A warm function then knows every node of the cluster (see `speculate`).
            let index = async {
                if let Some(k) = &claimed.kube
                    && let Err(e) = k.refresh_node_index(NODE_INDEX_MAX_AGE).await
                {
                    tracing::warn!(error = %error_chain(&e), "could not refresh the node index");
                }
            };
            let (record, beside, in_order, ()) = futures::join!(record, beside, in_order, index);
            // The in-order effects' failure is the one to report: it stopped the drain.
            for d in in_order?.into_iter().chain(beside?) {
                report.add(d);
            }
            record?;
            journal
                .flush()
                .await
                .map_err(|e| Failure::Port("record_timeline", e))?;
            for action in plan.in_phase(Phase::Close) {
                report.add(self.run(&run, action).await?);
            }
            Ok::<_, Failure>(())
        };
        if let Err(f) = phases.await {
            return Err(self.fail(plan, f).await);
        }
        report.actions = plan
            .actions()
            .map(Action::name)
            .filter(|n| !skipped.contains(n))
            .collect();
        Ok(report)
    }

    /// Run one action of the plan (every action the planner makes is handled here).
    async fn run(&self, run: &Run<'_, W>, action: &Action) -> Result<Done, Failure> {
        let name = action.name();
        let port = |e| Failure::Port(name, e);
        let plan = run.plan;
        let kube = || {
            run.claimed.kube.as_ref().ok_or_else(|| {
                port(PortError::NotFound {
                    op: "connect",
                    what: format!("cluster {}", plan.cluster),
                })
            })
        };
        match action {
            Action::RecordEvent(_) => {
                // The claim went out in the opening; the header makes the timeline findable.
                run.journal
                    .push_item(record::header_item(plan, self.config.timeline_ttl_days));
            }
            Action::RecordTimeline(step) => {
                let at = match step {
                    // When the delivery arrived, not when its record was written.
                    TimelineStep::Received => plan.received_at,
                    TimelineStep::Cordoned | TimelineStep::Tainted => {
                        run.claimed.cordoned.map_or_else(Utc::now, |c| c.at)
                    }
                    _ => Utc::now(),
                };
                run.journal.push(TimelineEntry {
                    interruption_id: plan.interruption_id.clone(),
                    at,
                    step: step.clone(),
                });
            }
            Action::SnapshotNode { .. } => {
                let item = record::snapshot_item(
                    &plan.interruption_id,
                    run.facts,
                    Utc::now(),
                    self.config.timeline_ttl_days,
                )
                .map_err(|e| {
                    port(PortError::Permanent {
                        op: "encode snapshot",
                        source: Box::new(e),
                    })
                })?;
                run.journal.push_item(item);
            }
            Action::WatchForResume(watch) => run.journal.push_item(record::resume_watch_item(
                watch,
                self.config.timeline_ttl_days,
            )),
            Action::CordonAndTaint(a) => {
                // Sent with the claim in the opening, unless the plan has no claim.
                if run.claimed.cordoned.is_none() {
                    self.cordon(kube()?, a).await.map_err(port)?;
                    return Ok(Done::Cordoned {
                        after_ms: run.cx.started.elapsed().as_millis() as u64,
                    });
                }
            }
            Action::ShiftTraffic(lease) => {
                // The lease first: whatever happens next, the keeper's tick puts the rule back.
                let item = shift::shift_lease_item(lease).map_err(|e| {
                    port(PortError::Permanent {
                        op: "encode shift lease",
                        source: Box::new(e),
                    })
                })?;
                self.world.records().put(item).await.map_err(port)?;
                match &lease.ingress {
                    // The controller's rule: its Ingress, as just read, gets the weights.
                    Some(part) => {
                        let ingress = run
                            .facts
                            .ingresses
                            .iter()
                            .find(|i| shift::ingress::ingress_ref(i) == part.ingress())
                            .ok_or_else(|| {
                                port(PortError::NotFound {
                                    op: "shift traffic",
                                    what: format!("ingress {}", part.ingress()),
                                })
                            })?;
                        shift_ingress(kube()?, part, ingress, &lease.applied)
                            .await
                            .map_err(port)?;
                    }
                    None => self
                        .world
                        .elb()
                        .set_forward(&lease.rule(), &lease.applied)
                        .await
                        .map_err(port)?,
                }
                run.journal.push(TimelineEntry {
                    interruption_id: plan.interruption_id.clone(),
                    at: Utc::now(),
                    step: TimelineStep::TrafficShifted {
                        rule: lease.rule_arn.clone(),
                        to_fallback: lease.to_fallback(&lease.applied),
                    },
                });
                return Ok(Done::Shifted);
            }
            Action::DeregisterTargets(d) => {
                self.world.elb().deregister(d).await.map_err(port)?;
                return Ok(Done::Deregistered {
                    targets: d.targets.len(),
                });
            }
            Action::LifecycleHeartbeat(beat) => {
                self.world.asg().heartbeat(&beat.hook).await.map_err(port)?
            }
            Action::DetachFromAsg {
                asg, instance_id, ..
            } => self
                .world
                .asg()
                .detach(asg, instance_id)
                .await
                .map_err(port)?,
            Action::Drain(d) => {
                let bounded = run
                    .cx
                    .budget_end
                    .and_then(|end| d.bounded_by(end - BUDGET_RESERVE));
                let drain = drain::run(
                    kube()?,
                    self.world.elb(),
                    self.world.records(),
                    &plan.interruption_id,
                    bounded.as_ref().unwrap_or(d),
                    &self.config,
                );
                let r = match heartbeat_of(plan) {
                    Some(beat) => self.beating(beat, drain).await,
                    None => drain.await,
                };
                run.drain_failed.store(r.deadline_missed, Ordering::Relaxed);
                if bounded.is_some() && !r.remaining.is_empty() {
                    return Err(Failure::OutOfTime {
                        pods_left: r.remaining.len(),
                    });
                }
                return Ok(Done::Drained(r));
            }
            Action::CompleteLifecycleAction(c) => {
                let failed = run.drain_failed.load(Ordering::Relaxed);
                let result = c.result_after(failed);
                if failed {
                    tracing::warn!(interruption_id = %plan.interruption_id, result = result.as_str(), "the drain left pods behind; completing the lifecycle action");
                }
                self.world
                    .asg()
                    .complete(&c.hook, result)
                    .await
                    .map_err(port)?
            }
            Action::OutOfServiceTaint {
                node,
                taints_after,
                resource_version,
                ..
            } => kube()?
                .set_taints(node, taints_after, resource_version.as_deref())
                .await
                .map_err(port)?,
            Action::ScheduleHandoff(change) => {
                // The header makes the scheduled interruption findable by instance.
                let ttl = self.config.timeline_ttl_days;
                run.journal.push_item(record::header_item(plan, ttl));
                let event = handoff::narrow_to_instance(run.cx.payload, &change.instance_id);
                run.journal
                    .push_item(record::scheduled_change_item(change, &event, ttl));
            }
            Action::CancelHandoff(r) => self
                .world
                .records()
                .delete(&record::scheduled_change_key(r))
                .await
                .map_err(port)?,
            Action::FinishEvent {
                event_id,
                instance_id,
            } => self
                .world
                .records()
                .update(&record::dedupe_finish(event_id, instance_id))
                .await
                .map_err(port)?,
        }
        Ok(Done::Nothing)
    }

    /// Runs `work` while sending the hook's heartbeat every `beat.every_seconds`, the first one
    /// an interval after `work` starts (the plan's heartbeat step went out just before); the
    /// heartbeats stop when `work` ends. A failed heartbeat is logged and the next one still
    /// goes out: the drain matters more than any one heartbeat.
    async fn beating<T>(&self, beat: &LifecycleHeartbeat, work: impl Future<Output = T>) -> T {
        let every = Duration::from_secs(u64::try_from(beat.every_seconds).unwrap_or(1).max(1));
        let beats = async {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                match self.world.asg().heartbeat(&beat.hook).await {
                    Ok(()) => {
                        tracing::debug!(asg = %beat.hook.asg, hook = %beat.hook.hook, "lifecycle heartbeat")
                    }
                    Err(e) => {
                        tracing::warn!(asg = %beat.hook.asg, hook = %beat.hook.hook, error = %error_chain(&e), "lifecycle heartbeat failed; the next one follows")
                    }
                }
            }
        };
        let (work, beats) = (pin!(work), pin!(beats));
        match futures::future::select(work, beats).await {
            Either::Left((out, _)) => out,
            // The heartbeat loop does not end; should it, the work still finishes.
            Either::Right(((), work)) => work.await,
        }
    }

    /// Records a failure after the claim, gives the event up, and says what to report.
    async fn fail(&self, plan: &Plan, failure: Failure) -> HandlerError {
        match failure {
            Failure::Port(action, source) => {
                self.give_up(plan, action, &source).await;
                HandlerError::Execute {
                    interruption_id: plan.interruption_id.clone(),
                    action,
                    source,
                }
            }
            Failure::OutOfTime { pods_left } => {
                let e = HandlerError::OutOfTime {
                    interruption_id: plan.interruption_id.clone(),
                    pods_left,
                };
                self.give_up(plan, "drain", &e).await;
                e
            }
        }
    }

    /// After a failure past the claim: the header (so the timeline can be found), the failure
    /// in the timeline, and the claim released so the delivery's retry takes over at once
    /// rather than being ignored as a duplicate until the lease runs out. Best effort.
    pub(super) async fn give_up(
        &self,
        plan: &Plan,
        action: &str,
        e: &(dyn std::error::Error + Send + Sync + 'static),
    ) {
        let error = error_chain(e);
        tracing::error!(interruption_id = %plan.interruption_id, action, error = %error, "action failed; giving the event up for a retry");
        let records = self.world.records();
        let journal = Journal::new(records, self.config.timeline_ttl_days);
        journal.push_item(record::header_item(plan, self.config.timeline_ttl_days));
        journal.push(TimelineEntry {
            interruption_id: plan.interruption_id.clone(),
            at: Utc::now(),
            step: TimelineStep::Failed {
                action: action.to_string(),
                error,
            },
        });
        let release = async {
            match plan.opening().claim {
                Some(c) => {
                    records
                        .update(&record::dedupe_release(&c.event_id, &c.instance_id))
                        .await
                }
                None => Ok(()),
            }
        };
        let (written, released) = futures::join!(journal.flush(), release);
        for r in [written, released] {
            if let Err(e) = r {
                tracing::warn!(interruption_id = %plan.interruption_id, error = %error_chain(&e), "could not record the failure");
            }
        }
    }

    /// A notice about one of costop's own standbys that serves nothing is ignored, and the
    /// ignore recorded beside the standby's lease (best effort: nothing depends on it).
    async fn record_ignore(
        &self,
        cx: &DeliveryContext<'_>,
        instance_id: &str,
        decision: &Decision,
    ) {
        let Some(reason @ IgnoreReason::StandbyNotServing { .. }) = decision.as_ignore() else {
            return;
        };
        tracing::info!(instance_id, reason = %serde_json::to_string(reason).unwrap_or_default(), "a standby that serves nothing: not an interruption");
        if cx.mode == Mode::DryRun || self.config.dry_run {
            return;
        }
        let kind = cx.event.kind().map_or("ignored", |k| k.slug());
        let event_id = cx.event.id().unwrap_or_default();
        let written = match record::ignored_notice_item(
            instance_id,
            event_id,
            kind,
            reason,
            cx.now,
            self.config.timeline_ttl_days,
        ) {
            Ok(item) => self.world.records().put(item).await,
            Err(e) => Err(PortError::Permanent {
                op: "encode ignored notice",
                source: Box::new(e),
            }),
        };
        if let Err(e) = written {
            tracing::warn!(instance_id, error = %error_chain(&e), "could not record the ignored notice");
        }
    }

    /// One timeline entry, written now.
    async fn record_now(&self, plan: &Plan, step: TimelineStep) -> Result<(), PortError> {
        let journal = Journal::new(self.world.records(), self.config.timeline_ttl_days);
        journal.push(TimelineEntry {
            interruption_id: plan.interruption_id.clone(),
            at: Utc::now(),
            step,
        });
        journal.flush().await
    }
}

/// What every action of one plan's execution shares.
struct Run<'a, W: InterruptionPorts> {
    cx: &'a DeliveryContext<'a>,
    plan: &'a Plan,
    facts: &'a Facts,
    claimed: &'a Claimed<KubeOf<W>>,
    journal: &'a Journal<'a, <W as HasRecords>::Records>,
    /// The drain's deadline came with pods left (read by the lifecycle completion after it).
    drain_failed: AtomicBool,
}

/// The plan's lifecycle heartbeat, which repeats while its drain runs.
fn heartbeat_of(plan: &Plan) -> Option<&LifecycleHeartbeat> {
    plan.in_phase(Phase::InOrder).find_map(|a| match a {
        Action::LifecycleHeartbeat(h) => Some(h),
        _ => None,
    })
}

impl ExecutionReport {
    fn add(&mut self, done: Done) {
        match done {
            Done::Nothing => {}
            Done::Cordoned { after_ms } => self.time_to_cordon_ms = Some(after_ms),
            Done::Deregistered { targets } => self.targets_deregistered += targets,
            Done::Shifted => self.rules_shifted += 1,
            Done::Drained(r) => self.drain = Some(r),
        }
    }
}

/// Patch a shifted rule's Ingress to `weights`, from the Ingress as `read` with the facts. Should
/// it have changed since (another of its rules shifted beside this one), once more from a fresh
/// read: the patch is rebuilt from what is there, and still refused if the path's backend or
/// action is no longer as found or as costop writes it.
async fn shift_ingress<K: Kube>(
    kube: &K,
    part: &shift::IngressShift,
    read: &serde_json::Value,
    weights: &[shift::WeightedGroup],
) -> Result<(), PortError> {
    let build = |current: &serde_json::Value| {
        part.patch(current, shift::IngressTarget::Shifted(weights))
            .map_err(|e| PortError::Permanent {
                op: "build ingress patch",
                source: Box::new(e),
            })
    };
    let Some(patch) = build(read)? else {
        return Ok(());
    };
    match kube
        .patch_ingress(&part.namespace, &part.name, &patch)
        .await
    {
        Err(PortError::Conflict { .. }) => {
            let current = kube
                .ingress(&part.namespace, &part.name)
                .await?
                .ok_or_else(|| PortError::NotFound {
                    op: "read ingress",
                    what: format!("ingress {}", part.ingress()),
                })?;
            match build(&current)? {
                Some(patch) => {
                    kube.patch_ingress(&part.namespace, &part.name, &patch)
                        .await
                }
                None => Ok(()),
            }
        }
        other => other,
    }
}

/// The Ingresses of the controller-managed rules that forward to one of `groups` (those holding
/// the node's targets), read at once. One that cannot be read is logged and left out: its rule
/// is then not shifted, and the drain goes on.
async fn ingresses_of<K: Kube>(
    kube: &K,
    rules: &[RuleFacts],
    groups: &[TargetGroupFacts],
) -> Vec<serde_json::Value> {
    let mut stacks: Vec<&str> = rules
        .iter()
        .filter(|r| {
            r.forward
                .iter()
                .any(|w| groups.iter().any(|g| g.arn == w.target_group_arn))
        })
        .filter_map(|r| r.ingress.as_deref())
        .collect();
    stacks.sort_unstable();
    stacks.dedup();
    let reads = stacks.into_iter().map(|stack| async move {
        let (namespace, name) = stack.split_once('/').unwrap_or(("default", stack));
        match kube.ingress(namespace, name).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(ingress = stack, error = %error_chain(&e), "ingress unreadable; its rules not shifted");
                None
            }
        }
    });
    join_all(reads).await.into_iter().flatten().collect()
}

/// The target groups that hold `instance` or one of its `pods` (by IP), each with only those
/// targets (a group can hold hundreds).
fn holding(
    groups: &[TargetGroupFacts],
    instance: Option<&InstanceFacts>,
    pods: &[PodFacts],
) -> Vec<TargetGroupFacts> {
    let Some(instance) = instance else {
        return Vec::new();
    };
    let ips: Vec<&str> = pods.iter().filter_map(|p| p.ip.as_deref()).collect();
    groups
        .iter()
        .filter_map(|g| {
            let mut targets = g.targets_of(instance);
            for t in g.targets_at(ips.iter().copied()) {
                if !targets.contains(&t) {
                    targets.push(t);
                }
            }
            (!targets.is_empty()).then(|| TargetGroupFacts {
                targets,
                registered: g.targets.len(),
                ..g.clone()
            })
        })
        .collect()
}
