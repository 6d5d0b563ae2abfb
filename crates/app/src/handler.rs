//! The handler: one EventBridge delivery → parse → observe the facts of every instance it names
//! → plan (pure, in the core) → execute the plan's actions in order. Dry-run is "stop after the
//! plan": the same path up to the decision, then nothing is executed.

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use costop_core::facts::{
    Delivery, Facts, InstanceFacts, NodeFacts, PodFacts, TargetGroupFacts,
    instance_id_from_provider_id,
};
use costop_core::plan::action::{CordonAndTaint, DeregisterTargets};
use costop_core::record::{self, TimelineEntry, TimelineStep};
use costop_core::{Action, Config, Decision, Event, ParseError, Plan};
use futures::StreamExt;
use futures::future::{BoxFuture, join_all};
use serde::Serialize;

use crate::drain::{self, DrainReport};
use crate::ports::{Asg, Claim, Clusters, Ec2, Elb, Kube, PortError, Records, World};

/// Execute the plan, or stop after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Execute,
    DryRun,
}

/// Why a delivery could not be handled. [`HandlerError::is_retryable`] maps to the Lambda
/// error type ("Retryable"/"NonRetryable") so a malformed event is never retried.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("the event is malformed")]
    Malformed(#[source] ParseError),
    #[error("observing the world failed for instance {instance_id}")]
    Observe {
        instance_id: String,
        #[source]
        source: PortError,
    },
    #[error("action {action} failed for interruption {interruption_id}")]
    Execute {
        interruption_id: String,
        action: &'static str,
        #[source]
        source: PortError,
    },
    /// The invocation's time ran out before the drain's own deadline (see
    /// [`Handler::handle_within`]); the retry carries on.
    #[error(
        "the invocation's time ran out with {pods_left} pod(s) still to drain for interruption {interruption_id}"
    )]
    OutOfTime {
        interruption_id: String,
        pods_left: usize,
    },
}

impl HandlerError {
    pub fn is_retryable(&self) -> bool {
        match self {
            HandlerError::Malformed(_) => false,
            HandlerError::OutOfTime { .. } => true,
            HandlerError::Observe { source, .. } | HandlerError::Execute { source, .. } => {
                source.is_retryable()
            }
        }
    }
    /// `Retryable` / `NonRetryable`, the Lambda diagnostic error type.
    pub fn error_type(&self) -> &'static str {
        if self.is_retryable() {
            "Retryable"
        } else {
            "NonRetryable"
        }
    }
}

/// What happened to one delivery.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub event_id: String,
    pub kind: String,
    pub instances: Vec<InstanceOutcome>,
}

impl Outcome {
    /// The plans decided (acted on or not).
    pub fn plans(&self) -> impl Iterator<Item = &Plan> {
        self.instances.iter().filter_map(|i| i.decision.as_plan())
    }
}

/// What happened for one instance of a delivery.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceOutcome {
    pub instance_id: String,
    pub decision: Decision,
    /// Present when the plan was executed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<ExecutionReport>,
}

/// What executing a plan did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExecutionReport {
    /// Another delivery owned the event: nothing was done.
    pub lost_claim: bool,
    /// Milliseconds from the start of handling to the node being cordoned and tainted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_to_cordon_ms: Option<u64>,
    pub targets_deregistered: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain: Option<DrainReport>,
    /// Actions executed, in order.
    pub actions: Vec<&'static str>,
}

/// How old the instance → node index may get before an invocation refreshes it (off its
/// critical path, beside the drain).
const NODE_INDEX_MAX_AGE: Duration = Duration::from_secs(300);

/// Bookkeeping writes (header, snapshot, milestones) in flight at once beside the effects.
const JOURNAL_IN_FLIGHT: usize = 8;

/// Kept back from the invocation's budget to record how far it got and give the event up.
const BUDGET_RESERVE: TimeDelta = TimeDelta::seconds(3);

type KubeOf<W> = <<W as World>::Clusters as Clusters>::Kube;

/// The handler over a [`World`].
pub struct Handler<W: World> {
    world: W,
    config: Config,
    /// The cluster of the last instance served (a warm function's hint for speculative reads).
    last_cluster: std::sync::Mutex<Option<String>>,
}

/// One instance, observed up to its opening.
struct Front<K> {
    /// Everything but the target groups (and the pods, which are in `pods`).
    facts: Facts,
    /// The decision planned from [`Facts::for_opening`].
    early: Decision,
    /// The pods, read while the opening was in flight.
    pods: Result<Vec<PodFacts>, PortError>,
    /// `None` when nothing was executed (an ignore, or a dry run).
    opened: Option<Opened<K>>,
}

enum Opened<K> {
    /// Another delivery owns the event.
    Lost,
    /// This delivery owns it, and the node is cordoned (if the plan cordons).
    Won(Won<K>),
}

struct Won<K> {
    kube: Option<K>,
    /// When the cordon patch was answered; `None` if the plan has none (or no claim to
    /// send it with, in which case it runs in its place in the plan).
    cordoned: Option<(Duration, DateTime<Utc>)>,
}

/// The complete facts did not call for the action the early plan opened with.
#[derive(Debug, thiserror::Error)]
#[error("the plan from the complete facts no longer acts on this instance")]
struct PlanChanged;

/// Why executing a plan stopped.
enum Failure {
    Port(&'static str, PortError),
    OutOfTime { pods_left: usize },
}

/// A write for the journal, its error tagged with the action it belongs to. (A free function:
/// a closure doing the same cannot name the journal's lifetime.)
fn journaled<'a>(
    action: &'static str,
    write: impl std::future::Future<Output = Result<(), PortError>> + Send + 'a,
) -> BoxFuture<'a, Result<(), Failure>> {
    Box::pin(async move { write.await.map_err(|e| Failure::Port(action, e)) })
}

impl<W: World> Handler<W> {
    pub fn new(world: W, config: Config) -> Self {
        Self {
            world,
            config,
            last_cluster: std::sync::Mutex::new(None),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn world(&self) -> &W {
        &self.world
    }

    /// Handle one delivery (the raw EventBridge JSON) with no time limit of its own.
    pub async fn handle(
        &self,
        payload: &serde_json::Value,
        mode: Mode,
    ) -> Result<Outcome, HandlerError> {
        self.handle_within(payload, mode, None).await
    }

    /// Handle one delivery, done by `budget_end` (the Lambda invocation's deadline). A drain
    /// whose own deadline lies beyond it (an ASG hook waits up to its heartbeat timeout) stops
    /// a few seconds before, records how far it got, gives the event up and fails retryably, so
    /// the async retry carries on from the cluster as it then is instead of being killed
    /// mid-flight with nothing recorded.
    pub async fn handle_within(
        &self,
        payload: &serde_json::Value,
        mode: Mode,
        budget_end: Option<DateTime<Utc>>,
    ) -> Result<Outcome, HandlerError> {
        let started = Instant::now();
        let event = Event::from_value(payload).map_err(HandlerError::Malformed)?;
        let now = Utc::now();
        let ids: Vec<String> = event
            .instance_ids()
            .into_iter()
            .map(|s| s.to_string())
            .collect();
        let event_id = event.id().unwrap_or_default().to_string();
        let kind = event
            .kind()
            .map(|k| k.slug().to_string())
            .unwrap_or_else(|| "ignored".into());
        if ids.is_empty() || matches!(event, Event::Ignored(_)) {
            let instances = costop_core::plan_all(&event, &[], &self.config, now)
                .into_iter()
                .enumerate()
                .map(|(i, decision)| InstanceOutcome {
                    instance_id: ids.get(i).cloned().unwrap_or_default(),
                    decision,
                    report: None,
                })
                .collect();
            return Ok(Outcome {
                event_id,
                kind,
                instances,
            });
        }

        // Round one asks EC2, the dedupe items, the target groups and — when a warm function
        // knows the node — the node, all at once. Each instance then goes on to its
        // opening (claim ∥ cordon) as soon as its node is known; its pods are read beside the
        // opening, and the target groups are awaited only after it.
        let hint = self.cluster_hint();
        let all = |source| HandlerError::Observe {
            instance_id: ids.join(","),
            source,
        };
        let front = async {
            let describe = self.world.ec2().describe_instances(&ids);
            let dedupe = join_all(ids.iter().map(|id| self.delivery(&event_id, id)));
            let speculative = join_all(ids.iter().map(|id| self.speculate(hint.as_deref(), id)));
            let (instances, deliveries, guesses) = futures::join!(describe, dedupe, speculative);
            let instances = instances.map_err(all)?;
            let fronts = ids
                .iter()
                .zip(deliveries)
                .zip(guesses)
                .map(|((id, delivery), guess)| {
                    let instance = instances.iter().find(|i| i.instance_id == *id).cloned();
                    self.front(
                        &event,
                        id,
                        instance,
                        delivery,
                        guess,
                        hint.as_deref(),
                        now,
                        mode,
                        started,
                    )
                });
            Ok::<_, HandlerError>(join_all(fronts).await)
        };
        let (groups, fronts) = futures::join!(self.world.elb().target_groups(), front);
        let fronts = fronts?;
        let won_any = fronts.iter().any(|f| {
            matches!(
                f,
                Ok(Front {
                    opened: Some(Opened::Won(_)),
                    ..
                })
            )
        });
        // Nothing done yet: a failed target-group read fails the delivery, to be retried whole.
        // Once a node is cordoned its drain must go on: the deregistration is skipped instead.
        let groups = match groups {
            Err(e) if !won_any => return Err(all(e)),
            other => other,
        };
        // Instances are independent (a Health event names several): each finishes even when
        // another failed; the first error is returned after all of them.
        let runs = fronts.into_iter().map(|front| async {
            let front = front?;
            self.finish(&event, front, &groups, now, started, budget_end)
                .await
        });
        let mut instances = Vec::with_capacity(ids.len());
        let mut first_error = None;
        for r in join_all(runs).await {
            match r {
                Ok(o) => instances.push(o),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(Outcome {
                event_id,
                kind,
                instances,
            }),
        }
    }

    /// One instance up to its opening: find the node (unless the speculative read did), plan
    /// from what the opening depends on, then send the opening while reading the pods.
    #[allow(clippy::too_many_arguments)]
    async fn front(
        &self,
        event: &Event,
        id: &str,
        instance: Option<InstanceFacts>,
        delivery: Result<Delivery, PortError>,
        guess: Option<NodeFacts>,
        hint: Option<&str>,
        now: DateTime<Utc>,
        mode: Mode,
        started: Instant,
    ) -> Result<Front<KubeOf<W>>, HandlerError> {
        let err = |source| HandlerError::Observe {
            instance_id: id.to_string(),
            source,
        };
        let mut facts = Facts {
            delivery: delivery.map_err(err)?,
            instance,
            ..Facts::unknown_instance(id)
        };
        let cluster = facts
            .instance
            .as_ref()
            .and_then(|i| costop_core::plan::resolve_cluster(i, &self.config))
            .map(|c| c.name);
        // Look for the node only if the planner would act given one: a duplicate delivery or
        // an instance of another cluster costs no Kubernetes request.
        let needs_node = match costop_core::plan(event, &facts, &self.config, now) {
            Decision::Ignore { reason } => {
                matches!(reason, costop_core::IgnoreReason::NoNodeForInstance { .. })
            }
            Decision::Act(_) => false,
        };
        if let (true, Some(c), Some(instance)) = (needs_node, &cluster, &facts.instance) {
            match guess {
                Some(node) if Some(c.as_str()) == hint => facts.node = Some(node),
                _ => facts.node = self.find_node(c, instance).await.map_err(err)?,
            }
        }
        let early = costop_core::plan(event, &facts, &self.config, now);
        let pods = async {
            match (&early, &facts.node, &cluster) {
                (Decision::Act(_), Some(node), Some(c)) => {
                    self.world
                        .clusters()
                        .connect(c)
                        .await?
                        .pods_on(&node.name)
                        .await
                }
                _ => Ok(Vec::new()),
            }
        };
        let opening = async {
            match (&early, mode) {
                (Decision::Act(plan), Mode::Execute) if !plan.dry_run => {
                    Some(self.open(plan, started).await)
                }
                _ => None,
            }
        };
        // The opening first: its requests go out before the pods are asked for.
        let (opened, pods) = futures::join!(opening, pods);
        Ok(Front {
            facts,
            early,
            pods,
            opened: opened.transpose()?,
        })
    }

    /// The opening: the dedupe claim and the node patch go out together, so the node is
    /// cordoned one round trip after its facts are in. The patch is idempotent (the same taint,
    /// conditional on the resourceVersion), so a concurrent duplicate delivery that also sends
    /// it changes nothing; only the claim's winner goes on.
    async fn open(&self, plan: &Plan, started: Instant) -> Result<Opened<KubeOf<W>>, HandlerError> {
        let fail = |action: &'static str| {
            let id = plan.interruption_id.clone();
            move |source| HandlerError::Execute {
                interruption_id: id,
                action,
                source,
            }
        };
        let kube = match self.world.clusters().connect(&plan.cluster).await {
            Ok(k) => Some(k),
            Err(e) if plan.actions.iter().any(needs_kube) => return Err(fail("connect")(e)),
            Err(_) => None,
        };
        let opening = plan.opening();
        let Some(claim) = opening.claim else {
            return Ok(Opened::Won(Won {
                kube,
                cordoned: None,
            }));
        };
        let cordon = async {
            match (opening.cordon, kube.as_ref()) {
                (Some(c), Some(k)) => Some(
                    self.cordon(k, c)
                        .await
                        .map(|()| (started.elapsed(), Utc::now())),
                ),
                _ => None,
            }
        };
        let (claimed, cordoned) =
            futures::join!(self.world.records().claim(claim, Utc::now()), cordon);
        match claimed.map_err(fail("record_event"))? {
            Claim::Lost => {
                tracing::info!(interruption_id = %plan.interruption_id, "another delivery owns this event; stopping");
                return Ok(Opened::Lost);
            }
            Claim::Won => {}
        }
        match cordoned.transpose() {
            Ok(cordoned) => Ok(Opened::Won(Won { kube, cordoned })),
            Err(e) => {
                self.give_up(plan, "cordon_and_taint", &e).await;
                Err(fail("cordon_and_taint")(e))
            }
        }
    }

    /// One instance after its opening: plan from the complete facts and execute the rest.
    async fn finish(
        &self,
        event: &Event,
        front: Front<KubeOf<W>>,
        groups: &Result<Vec<TargetGroupFacts>, PortError>,
        now: DateTime<Utc>,
        started: Instant,
        budget_end: Option<DateTime<Utc>>,
    ) -> Result<InstanceOutcome, HandlerError> {
        let Front {
            mut facts,
            early,
            pods,
            opened,
        } = front;
        let instance_id = facts.instance_id.clone();
        let err = |source| HandlerError::Observe {
            instance_id: instance_id.clone(),
            source,
        };
        let won = match opened {
            None | Some(Opened::Lost) if early.as_plan().is_none() => {
                return Ok(InstanceOutcome {
                    instance_id,
                    decision: early,
                    report: None,
                });
            }
            None => None,
            Some(Opened::Lost) => {
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
            Some(Opened::Won(won)) => Some(won),
        };
        let pods = match (pods, early.as_plan(), &won) {
            (Ok(pods), ..) => pods,
            (Err(e), Some(plan), Some(_)) => {
                self.give_up(plan, "observe_pods", &e).await;
                return Err(err(e));
            }
            (Err(e), ..) => return Err(err(e)),
        };
        facts.pods = pods;
        let mut groups_failed = None;
        match groups {
            Ok(groups) => facts.target_groups = mine(groups, facts.instance.as_ref()),
            Err(e) => groups_failed = Some(e),
        }
        let decision = costop_core::plan(event, &facts, &self.config, now);
        let Some(won) = won else {
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
            let _ = self.record(plan, Utc::now(), step).await;
        }
        let report = self.execute(plan, &facts, won, started, budget_end).await?;
        Ok(InstanceOutcome {
            instance_id,
            decision,
            report: Some(report),
        })
    }

    async fn delivery(&self, event_id: &str, id: &str) -> Result<Delivery, PortError> {
        let item = self
            .world
            .records()
            .get(&record::dedupe_key(event_id, id))
            .await?;
        record::delivery_from_item(item.as_ref()).map_err(|e| PortError::Permanent {
            op: "read dedupe item",
            source: Box::new(e),
        })
    }

    /// The node of `instance_id` read by a name remembered from an earlier invocation (or the
    /// node index), before EC2 has answered; `None` when there is nothing to go on or the guess
    /// is stale. Only the node: its pods are read beside the opening, never ahead of it.
    async fn speculate(&self, cluster: Option<&str>, instance_id: &str) -> Option<NodeFacts> {
        let kube = self.world.clusters().connect(cluster?).await.ok()?;
        let name = kube.known_node_name(instance_id)?;
        let node = kube.node(&name).await.ok()??;
        // A recycled name (same private IP, new instance) is not this instance's node.
        let ours = node
            .provider_id
            .as_deref()
            .and_then(instance_id_from_provider_id)
            .is_none_or(|id| id == instance_id);
        Some(node).filter(|_| ours)
    }

    async fn find_node(
        &self,
        cluster: &str,
        instance: &InstanceFacts,
    ) -> Result<Option<NodeFacts>, PortError> {
        let kube = self.world.clusters().connect(cluster).await?;
        *self.last_cluster.lock().unwrap_or_else(|e| e.into_inner()) = Some(cluster.to_string());
        kube.node_for(instance).await
    }

    /// The cluster to read speculatively: the only one allowed, else the last one served.
    fn cluster_hint(&self) -> Option<String> {
        match self.config.cluster_allow_list.as_slice() {
            [only] => Some(only.clone()),
            _ => self
                .last_cluster
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }

    /// Everything after the opening. Effects (heartbeat, detach, drain, lifecycle completion,
    /// out-of-service taint) run in plan order. What need not hold them up runs beside them: the
    /// bookkeeping writes (header, snapshot, milestones) and the deregistrations. The event is
    /// marked finished only once all of it is done.
    async fn execute(
        &self,
        plan: &Plan,
        facts: &Facts,
        won: Won<KubeOf<W>>,
        started: Instant,
        budget_end: Option<DateTime<Utc>>,
    ) -> Result<ExecutionReport, HandlerError> {
        let records = self.world.records();
        let ttl = self.config.timeline_ttl_days;
        let kube = won.kube.as_ref();
        let (journal_tx, journal_rx) =
            futures::channel::mpsc::unbounded::<BoxFuture<'_, Result<(), Failure>>>();
        let journal = journal_rx
            .buffer_unordered(JOURNAL_IN_FLIGHT)
            .filter_map(|r| std::future::ready(r.err()))
            .collect::<Vec<_>>();
        let effects = async {
            // Dropped when the effects are done, which ends the journal once it is written.
            let journal = journal_tx;
            let mut report = ExecutionReport {
                time_to_cordon_ms: won.cordoned.map(|(d, _)| d.as_millis() as u64),
                ..Default::default()
            };
            let mut i = 0;
            while let Some(action) = plan.actions.get(i) {
                i += 1;
                let name = action.name();
                let port = |e| Failure::Port(name, e);
                match action {
                    Action::RecordEvent(_) => {
                        let _ = journal.unbounded_send(journaled(
                            name,
                            records.put(record::header_item(plan, ttl)),
                        ));
                    }
                    Action::RecordTimeline(TimelineStep::Drained)
                        if report.drain.as_ref().is_some_and(|d| d.deadline_missed) => {}
                    // Stamped beside the deregistrations when they are done.
                    Action::RecordTimeline(TimelineStep::Deregistered) => {}
                    Action::RecordTimeline(step) => {
                        let at = match step {
                            // When the delivery arrived, not when its record was written.
                            TimelineStep::Received => plan.received_at,
                            TimelineStep::Cordoned => {
                                won.cordoned.map_or_else(Utc::now, |(_, at)| at)
                            }
                            _ => Utc::now(),
                        };
                        let _ = journal
                            .unbounded_send(journaled(name, self.record(plan, at, step.clone())));
                    }
                    Action::SnapshotNode { .. } => {
                        match record::snapshot_item(&plan.interruption_id, facts, Utc::now(), ttl) {
                            Ok(item) => {
                                let _ = journal.unbounded_send(journaled(name, records.put(item)));
                            }
                            Err(e) => {
                                return Err(port(PortError::Permanent {
                                    op: "encode snapshot",
                                    source: Box::new(e),
                                }));
                            }
                        }
                    }
                    Action::LifecycleHeartbeat(hook) => {
                        self.world.asg().heartbeat(hook).await.map_err(port)?
                    }
                    Action::CordonAndTaint(a) => {
                        // Sent with the claim in the opening, unless the plan has no claim.
                        if won.cordoned.is_none() {
                            let kube = kube.expect("connected in the opening");
                            self.cordon(kube, a).await.map_err(port)?;
                            report.time_to_cordon_ms = Some(started.elapsed().as_millis() as u64);
                        }
                    }
                    Action::DeregisterTargets(_) => {
                        // This and the deregistrations right after it go out side by side, beside
                        // the drain: an evicted pod takes its grace period to stop, longer than a
                        // deregistration takes to apply. `Deregistered` is stamped when they are
                        // all done, so the plan's own entry for it is skipped below.
                        let run: Vec<&DeregisterTargets> = plan.actions[i - 1..]
                            .iter()
                            .map_while(|a| match a {
                                Action::DeregisterTargets(d) => Some(d),
                                _ => None,
                            })
                            .collect();
                        i += run.len() - 1;
                        report.targets_deregistered +=
                            run.iter().map(|d| d.targets.len()).sum::<usize>();
                        report
                            .actions
                            .extend(std::iter::repeat_n(name, run.len() - 1));
                        let deregister = async move {
                            for r in
                                join_all(run.iter().map(|d| self.world.elb().deregister(d))).await
                            {
                                r.map_err(|e| Failure::Port(name, e))?;
                            }
                            self.record(plan, Utc::now(), TimelineStep::Deregistered)
                                .await
                                .map_err(|e| Failure::Port("record_timeline", e))
                        };
                        let _ = journal.unbounded_send(Box::pin(deregister));
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
                        let kube = kube.expect("connected in the opening");
                        let bounded = budget_end.and_then(|end| d.bounded_by(end - BUDGET_RESERVE));
                        let r = drain::run(
                            kube,
                            records,
                            &plan.interruption_id,
                            bounded.as_ref().unwrap_or(d),
                            &self.config,
                        )
                        .await;
                        if bounded.is_some() && !r.remaining.is_empty() {
                            return Err(Failure::OutOfTime {
                                pods_left: r.remaining.len(),
                            });
                        }
                        report.drain = Some(r);
                    }
                    Action::CompleteLifecycleAction { hook, .. } => {
                        self.world.asg().complete(hook).await.map_err(port)?
                    }
                    Action::OutOfServiceTaint {
                        node,
                        taints_after,
                        resource_version,
                        ..
                    } => {
                        let kube = kube.expect("connected in the opening");
                        kube.set_taints(node, taints_after, resource_version.as_deref())
                            .await
                            .map_err(port)?;
                    }
                    // Once the journal is complete, below.
                    Action::FinishEvent { .. } => continue,
                }
                report.actions.push(name);
            }
            Ok(report)
        };
        // A warm function then knows every node of the cluster (see `speculate`).
        let index = async {
            if let Some(k) = kube
                && let Err(e) = k.refresh_node_index(NODE_INDEX_MAX_AGE).await
            {
                tracing::warn!(error = %error_chain(&e), "could not refresh the node index");
            }
        };
        let (effects, journal_failures, ()) = futures::join!(effects, journal, index);
        let mut report = match effects {
            Err(f) => return Err(self.fail(plan, f).await),
            Ok(report) => report,
        };
        if let Some(f) = journal_failures.into_iter().next() {
            return Err(self.fail(plan, f).await);
        }
        for action in &plan.actions {
            if let Action::FinishEvent {
                event_id,
                instance_id,
            } = action
            {
                records
                    .update(&record::dedupe_finish(event_id, instance_id))
                    .await
                    .map_err(|e| HandlerError::Execute {
                        interruption_id: plan.interruption_id.clone(),
                        action: action.name(),
                        source: e,
                    })?;
                report.actions.push(action.name());
            }
        }
        Ok(report)
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
    async fn give_up(
        &self,
        plan: &Plan,
        action: &str,
        e: &(dyn std::error::Error + Send + Sync + 'static),
    ) {
        let error = error_chain(e);
        tracing::error!(interruption_id = %plan.interruption_id, action, error = %error, "action failed; giving the event up for a retry");
        let records = self.world.records();
        let header = records.put(record::header_item(plan, self.config.timeline_ttl_days));
        let failed = self.record(
            plan,
            Utc::now(),
            TimelineStep::Failed {
                action: action.to_string(),
                error,
            },
        );
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
        let (a, b, c) = futures::join!(header, failed, release);
        for r in [a, b, c] {
            if let Err(e) = r {
                tracing::warn!(interruption_id = %plan.interruption_id, error = %error_chain(&e), "could not record the failure");
            }
        }
    }

    /// The one-request cordon+taint; on a conflict (the node changed since it was read) read it
    /// again, re-plan the patch from the fresh node and retry a few times.
    async fn cordon<K: Kube>(&self, kube: &K, first: &CordonAndTaint) -> Result<(), PortError> {
        let mut action = first.clone();
        for attempt in 0..5 {
            match kube.cordon_and_taint(&action).await {
                Err(PortError::Conflict { .. }) if attempt < 4 => {
                    let node = kube.node(&action.node).await?.ok_or(PortError::NotFound {
                        op: "cordon",
                        what: format!("node {}", action.node),
                    })?;
                    action = costop_core::plan::refresh_cordon(&action, &node);
                }
                other => return other,
            }
        }
        Ok(())
    }

    async fn record(
        &self,
        plan: &Plan,
        at: DateTime<Utc>,
        step: TimelineStep,
    ) -> Result<(), PortError> {
        let entry = TimelineEntry {
            interruption_id: plan.interruption_id.clone(),
            at,
            step,
        };
        self.world
            .records()
            .append(&entry, self.config.timeline_ttl_days)
            .await
    }

    /// The interruptions recorded for an instance, oldest first.
    pub async fn interruptions_of(&self, instance_id: &str) -> Result<Vec<String>, PortError> {
        let items = self.world.records().query_instance(instance_id).await?;
        Ok(items
            .iter()
            .filter_map(|i| match i.get("interruption_id") {
                Some(record::Attr::S(s)) => Some(s.clone()),
                _ => None,
            })
            .collect())
    }

    /// The timeline of an interruption: header, snapshot and entries, in order.
    pub async fn timeline(&self, interruption_id: &str) -> Result<Vec<record::Item>, PortError> {
        self.world
            .records()
            .query(&record::interruption_pk(interruption_id))
            .await
    }
}

/// The target groups that hold `instance`, each with only its targets (a group can hold
/// hundreds).
fn mine(groups: &[TargetGroupFacts], instance: Option<&InstanceFacts>) -> Vec<TargetGroupFacts> {
    let Some(instance) = instance else {
        return Vec::new();
    };
    groups
        .iter()
        .filter_map(|g| {
            let targets = g.targets_of(instance);
            (!targets.is_empty()).then(|| TargetGroupFacts {
                targets,
                ..g.clone()
            })
        })
        .collect()
}

fn needs_kube(a: &Action) -> bool {
    matches!(
        a,
        Action::CordonAndTaint(_) | Action::Drain(_) | Action::OutOfServiceTaint { .. }
    )
}

/// An error and its sources, one line, for the timeline (the log keeps the typed error).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        // SDK errors often repeat their source in their own text; say each thing once.
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// The invocation budget from Lambda's context deadline (epoch milliseconds), for
/// `handle_within`. A deadline already past on arrival is not a real one (cargo lambda's local
/// emulator sends a duration where Lambda sends an epoch): then `None`, and the plan's own
/// deadlines apply.
pub fn budget_end(deadline_ms: u64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(i64::try_from(deadline_ms).ok()?)
        .filter(|end| *end > Utc::now())
}

/// Timestamp helper for callers that render outcomes.
pub fn now() -> DateTime<Utc> {
    Utc::now()
}

/// Compile-time check: a delivery's future is `Send`, so callers may `tokio::spawn` it.
#[allow(dead_code)]
fn handling_is_send<'a, W: World>(
    h: &'a Handler<W>,
    payload: &'a serde_json::Value,
) -> impl std::future::Future + Send + 'a {
    h.handle(payload, Mode::Execute)
}
