//! The handler: one EventBridge delivery → parse → observe the facts of every instance it names
//! → plan (pure, in the core) → execute the plan's actions in order. Dry-run is "stop after the
//! plan": the same path up to the decision, then nothing is executed.

use std::time::Instant;

use chrono::{DateTime, Utc};
use costop_core::facts::{Delivery, Facts, InstanceFacts, NodeFacts, PodFacts, TargetGroupFacts, instance_id_from_provider_id};
use costop_core::plan::action::CordonAndTaint;
use costop_core::record::{self, TimelineEntry, TimelineStep};
use costop_core::{Action, Config, Decision, Event, ParseError, Plan};
use futures::future::join_all;
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
}

impl HandlerError {
    pub fn is_retryable(&self) -> bool {
        match self {
            HandlerError::Malformed(_) => false,
            HandlerError::Observe { source, .. } | HandlerError::Execute { source, .. } => source.is_retryable(),
        }
    }
    /// `Retryable` / `NonRetryable`, the Lambda diagnostic error type.
    pub fn error_type(&self) -> &'static str {
        if self.is_retryable() { "Retryable" } else { "NonRetryable" }
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

/// The handler over a [`World`].
pub struct Handler<W: World> {
    world: W,
    config: Config,
    /// The cluster of the last instance served (a warm function's hint for speculative reads).
    last_cluster: std::sync::Mutex<Option<String>>,
}

impl<W: World> Handler<W> {
    pub fn new(world: W, config: Config) -> Self {
        Self { world, config, last_cluster: std::sync::Mutex::new(None) }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn world(&self) -> &W {
        &self.world
    }

    /// Handle one delivery (the raw EventBridge JSON).
    pub async fn handle(&self, payload: &serde_json::Value, mode: Mode) -> Result<Outcome, HandlerError> {
        let started = Instant::now();
        let event = Event::from_value(payload).map_err(HandlerError::Malformed)?;
        let now = Utc::now();
        let ids: Vec<String> = event.instance_ids().into_iter().map(|s| s.to_string()).collect();
        let event_id = event.id().unwrap_or_default().to_string();
        let facts = self.observe(&event, &event_id, &ids).await?;
        let decisions = costop_core::plan_all(&event, &facts, &self.config, now);
        let mut instances = Vec::with_capacity(decisions.len());
        // Several instances (a Health event) are independent: run them side by side.
        let runs = decisions.into_iter().map(|decision| {
            let f = facts.iter().find(|f| decision.as_plan().is_some_and(|p| p.instance_id == f.instance_id)).cloned();
            async move {
                let instance_id = match &decision {
                    Decision::Act(p) => p.instance_id.clone(),
                    Decision::Ignore { .. } => f.as_ref().map(|f| f.instance_id.clone()).unwrap_or_default(),
                };
                match (&decision, mode) {
                    (Decision::Act(plan), Mode::Execute) if !plan.dry_run => {
                        let report = self.execute(plan, f.as_ref(), started).await?;
                        Ok(InstanceOutcome { instance_id, decision, report: Some(report) })
                    }
                    _ => Ok::<_, HandlerError>(InstanceOutcome { instance_id, decision, report: None }),
                }
            }
        });
        for r in join_all(runs).await {
            instances.push(r?);
        }
        // Ignore decisions carry their own instance ids in the reason; fill blanks in order.
        for (i, id) in ids.iter().enumerate() {
            if let Some(o) = instances.get_mut(i) {
                if o.instance_id.is_empty() {
                    o.instance_id = id.clone();
                }
            }
        }
        Ok(Outcome { event_id, kind: event.kind().map(|k| k.slug().to_string()).unwrap_or_else(|| "ignored".into()), instances })
    }

    /// Everything the planner needs, for every instance. The reads are shaped so that a warm
    /// function needs ONE round of parallel requests: EC2, the dedupe item, the target groups and
    /// — when the cluster and the instance's node name are already known from an earlier
    /// invocation — the node and its pods are all asked at once. A cold function, or a node it
    /// has not seen, costs one more round after EC2 answers.
    async fn observe(&self, event: &Event, event_id: &str, ids: &[String]) -> Result<Vec<Facts>, HandlerError> {
        if ids.is_empty() || matches!(event, Event::Ignored(_)) {
            return Ok(Vec::new());
        }
        let all = |source| HandlerError::Observe { instance_id: ids.join(","), source };
        let hint = self.cluster_hint();
        let describe = self.world.ec2().describe_instances(ids);
        let groups = self.world.elb().target_groups();
        let dedupe = join_all(ids.iter().map(|id| self.delivery(event_id, id)));
        let speculative = join_all(ids.iter().map(|id| self.speculate(hint.as_deref(), id)));
        let (instances, groups, deliveries, speculated) = futures::join!(describe, groups, dedupe, speculative);
        let instances = instances.map_err(all)?;
        let groups = groups.map_err(all)?;
        let per_instance = ids.iter().zip(deliveries).zip(speculated).map(|((id, delivery), guess)| {
            let instance = instances.iter().find(|i| i.instance_id == *id).cloned();
            let groups = &groups;
            let hint = hint.clone();
            async move {
                let err = |source| HandlerError::Observe { instance_id: id.to_string(), source };
                let delivery = delivery.map_err(err)?;
                let Some(instance) = instance else {
                    return Ok(Facts { delivery, ..Facts::unknown_instance(id.as_str()) });
                };
                let cluster = costop_core::plan::resolve_cluster(&instance, &self.config).map(|c| c.name);
                let (node, pods) = match (cluster, guess) {
                    (Some(c), Some((node, pods))) if Some(&c) == hint.as_ref() => (Some(node), pods),
                    (Some(c), _) => self.observe_node(&c, &instance).await.map_err(err)?,
                    (None, _) => (None, Vec::new()),
                };
                // Keep only the groups (and targets) of this instance: a group can hold hundreds.
                let target_groups = groups
                    .iter()
                    .filter_map(|g| {
                        let mine = g.targets_of(&instance);
                        (!mine.is_empty()).then(|| TargetGroupFacts { targets: mine, ..g.clone() })
                    })
                    .collect();
                Ok(Facts { instance_id: id.clone(), delivery, target_groups, node, pods, instance: Some(instance) })
            }
        });
        join_all(per_instance).await.into_iter().collect()
    }

    async fn delivery(&self, event_id: &str, id: &str) -> Result<Delivery, PortError> {
        let item = self.world.records().get(&record::dedupe_key(event_id, id)).await?;
        record::delivery_from_item(item.as_ref()).map_err(|e| PortError::Permanent { op: "read dedupe item", source: Box::new(e) })
    }

    /// The node and pods of `instance_id` read by a name remembered from an earlier invocation,
    /// before EC2 has answered; `None` when there is nothing to go on or the guess is stale.
    async fn speculate(&self, cluster: Option<&str>, instance_id: &str) -> Option<(NodeFacts, Vec<PodFacts>)> {
        let kube = self.world.clusters().connect(cluster?).await.ok()?;
        let name = kube.known_node_name(instance_id)?;
        let (node, pods) = futures::join!(kube.node(&name), kube.pods_on(&name));
        let node = node.ok()??;
        // A recycled name (same private IP, new instance) is not this instance's node.
        let ours = node.provider_id.as_deref().and_then(instance_id_from_provider_id).is_none_or(|id| id == instance_id);
        Some((node, pods.ok()?)).filter(|_| ours)
    }

    async fn observe_node(&self, cluster: &str, instance: &InstanceFacts) -> Result<(Option<NodeFacts>, Vec<PodFacts>), PortError> {
        let kube = self.world.clusters().connect(cluster).await?;
        *self.last_cluster.lock().unwrap_or_else(|e| e.into_inner()) = Some(cluster.to_string());
        let Some(node) = kube.node_for(instance).await? else { return Ok((None, Vec::new())) };
        let pods = kube.pods_on(&node.name).await?;
        Ok((Some(node), pods))
    }

    /// The cluster to read speculatively: the only one allowed, else the last one served.
    fn cluster_hint(&self) -> Option<String> {
        match self.config.cluster_allow_list.as_slice() {
            [only] => Some(only.clone()),
            _ => self.last_cluster.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }

    /// Run a plan's actions in order.
    async fn execute(&self, plan: &Plan, facts: Option<&Facts>, started: Instant) -> Result<ExecutionReport, HandlerError> {
        let mut report = ExecutionReport::default();
        let fail = |action: &'static str| {
            let id = plan.interruption_id.clone();
            move |source| HandlerError::Execute { interruption_id: id, action, source }
        };
        let records = self.world.records();
        let ttl = self.config.timeline_ttl_days;
        let kube = match self.world.clusters().connect(&plan.cluster).await {
            Ok(k) => Some(k),
            Err(e) if plan.actions.iter().any(needs_kube) => return Err(fail("connect")(e)),
            Err(_) => None,
        };
        // The opening: the dedupe claim and the node patch go out together, so the node is
        // cordoned one round trip after the facts are in. The patch is idempotent (the same
        // taint, conditional on the resourceVersion), so a concurrent duplicate delivery that
        // also sends it changes nothing; only the claim's winner goes on past this point.
        let claim = plan.actions.iter().find_map(|a| match a {
            Action::RecordEvent(r) => Some(r),
            _ => None,
        });
        let cordon = plan.actions.iter().find_map(|a| match a {
            Action::CordonAndTaint(c) => Some(c),
            _ => None,
        });
        if let Some(claim) = claim {
            let claim_fut = records.claim(claim, Utc::now());
            let cordon_fut = async {
                match (cordon, kube.as_ref()) {
                    (Some(c), Some(k)) => Some(self.cordon(k, c).await.map(|()| started.elapsed())),
                    _ => None,
                }
            };
            let (claimed, cordoned) = futures::join!(claim_fut, cordon_fut);
            match claimed.map_err(fail("record_event"))? {
                Claim::Lost => {
                    tracing::info!(interruption_id = %plan.interruption_id, "another delivery owns this event; stopping");
                    report.lost_claim = true;
                    report.actions.push("record_event");
                    return Ok(report);
                }
                Claim::Won => {}
            }
            if let Some(done) = cordoned {
                match done {
                    Ok(elapsed) => report.time_to_cordon_ms = Some(elapsed.as_millis() as u64),
                    Err(e) => {
                        let _ = records.put(record::header_item(plan, ttl)).await;
                        let _ = self
                            .record(plan, TimelineStep::Failed { action: "cordon_and_taint".into(), error: error_chain(&e) })
                            .await;
                        return Err(fail("cordon_and_taint")(e));
                    }
                }
            }
        }
        for action in &plan.actions {
            report.actions.push(action.name());
            let name = action.name();
            let result: Result<(), PortError> = async {
                match action {
                    // Claimed in the opening; the header goes in now that this delivery owns it.
                    Action::RecordEvent(_) => records.put(record::header_item(plan, ttl)).await?,
                    Action::RecordTimeline(TimelineStep::Drained)
                        if report.drain.as_ref().is_some_and(|d| d.deadline_missed) => {}
                    Action::RecordTimeline(step) => self.record(plan, step.clone()).await?,
                    Action::SnapshotNode { .. } => {
                        if let Some(f) = facts {
                            let item = record::snapshot_item(&plan.interruption_id, f, Utc::now(), ttl)
                                .map_err(|e| PortError::Permanent { op: "encode snapshot", source: Box::new(e) })?;
                            records.put(item).await?;
                        }
                    }
                    Action::LifecycleHeartbeat(hook) => self.world.asg().heartbeat(hook).await?,
                    Action::CordonAndTaint(a) => {
                        // Done in the opening when the plan claims the event first.
                        if claim.is_none() {
                            let kube = kube.as_ref().expect("connected above");
                            self.cordon(kube, a).await?;
                            report.time_to_cordon_ms = Some(started.elapsed().as_millis() as u64);
                        }
                    }
                    Action::DeregisterTargets(d) => {
                        self.world.elb().deregister(d).await?;
                        report.targets_deregistered += d.targets.len();
                    }
                    Action::DetachFromAsg { asg, instance_id, .. } => self.world.asg().detach(asg, instance_id).await?,
                    Action::Drain(d) => {
                        let kube = kube.as_ref().expect("connected above");
                        let r = drain::run(kube, records, &plan.interruption_id, d, &self.config).await;
                        report.drain = Some(r);
                    }
                    Action::CompleteLifecycleAction { hook, .. } => self.world.asg().complete(hook).await?,
                    Action::OutOfServiceTaint { node, taints_after, resource_version, .. } => {
                        let kube = kube.as_ref().expect("connected above");
                        kube.set_taints(node, taints_after, resource_version.as_deref()).await?;
                    }
                    Action::FinishEvent { event_id, instance_id } => {
                        records.update(&record::dedupe_finish(event_id, instance_id)).await?
                    }
                }
                Ok(())
            }
            .await;
            if let Err(e) = result {
                tracing::error!(interruption_id = %plan.interruption_id, action = name, error = %e, "action failed");
                // Best effort: the failure itself belongs in the timeline.
                let _ = self
                    .record(plan, TimelineStep::Failed { action: name.to_string(), error: error_chain(&e) })
                    .await;
                return Err(fail(name)(e));
            }
        }
        Ok(report)
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

    async fn record(&self, plan: &Plan, step: TimelineStep) -> Result<(), PortError> {
        // "Received" is when the delivery arrived, not when its record was written.
        let at = if step == TimelineStep::Received { plan.received_at } else { Utc::now() };
        let entry = TimelineEntry { interruption_id: plan.interruption_id.clone(), at, step };
        self.world.records().append(&entry, self.config.timeline_ttl_days).await
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
        self.world.records().query(&record::interruption_pk(interruption_id)).await
    }
}

fn needs_kube(a: &Action) -> bool {
    matches!(a, Action::CordonAndTaint(_) | Action::Drain(_) | Action::OutOfServiceTaint { .. })
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

/// Timestamp helper for callers that render outcomes.
pub fn now() -> DateTime<Utc> {
    Utc::now()
}
