//! The keeper: the shell around [`costop_core::standby`]. One delivery → parse the trigger →
//! observe (standbys, the interrupted instance, its node and pods; or each cluster's pool) →
//! plan (pure) → execute. A Spot warning starts the zone's standby and then, for the watch
//! window, gives the node's replacement pods the standby toleration as they appear; a
//! rebalance recommendation retypes the zone's standby ahead of time; a scheduled tick
//! returns standbys to the pool when spot capacity is back. Dry-run stops after the plan.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use costop_core::event::Ignored;
use costop_core::facts::{InstanceFacts, NodeFacts};
use costop_core::plan::resolve_cluster;
use costop_core::record::{self, TimelineEntry, TimelineStep};
use costop_core::standby::{
    self, PoolFacts, ReplacementSpec, ReplacementTracker, StandbyAction, StandbyFacts,
    StartDecision, StartFacts, TickPlan, Trigger,
};
use costop_core::{Config, ParseError};
use serde::Serialize;

use futures::StreamExt;

use crate::handler::Mode;
use crate::ports::{Claim, Clusters, Ec2, EvictOutcome, Kube, PortError, Records, World};
use crate::ratelimit::RateLimiter;

/// How often the pending pods are read while replacements are expected.
const POLL: Duration = Duration::from_millis(1000);
/// How long the replacement watch waits for the interruption function's node snapshot before
/// trusting the keeper's own count of the node's pods alone (it is written within a second of
/// that function's start; it never comes when that function did not act on the node).
const SNAPSHOT_WAIT: Duration = Duration::from_secs(15);
/// Toleration patches in flight at once (each poll; the QPS limit applies as well).
const TOLERATE_IN_FLIGHT: usize = 8;
/// Kept back from the invocation's budget to finish cleanly.
const BUDGET_RESERVE: TimeDelta = TimeDelta::seconds(3);
/// Leases lost to other interruptions before the keeper gives up on a warning.
const MAX_CLAIMS: usize = 3;

/// Why a keeper delivery failed; [`KeeperError::is_retryable`] maps to the Lambda error type.
#[derive(Debug, thiserror::Error)]
pub enum KeeperError {
    #[error("the event is malformed")]
    Malformed(#[source] ParseError),
    #[error("observing {what} failed")]
    Observe {
        what: String,
        #[source]
        source: PortError,
    },
    #[error("action {action} failed on standby {standby}")]
    Execute {
        standby: String,
        action: &'static str,
        #[source]
        source: PortError,
    },
}

impl KeeperError {
    pub fn is_retryable(&self) -> bool {
        match self {
            KeeperError::Malformed(_) => false,
            KeeperError::Observe { source, .. } | KeeperError::Execute { source, .. } => {
                source.is_retryable()
            }
        }
    }
    /// `Retryable` / `NonRetryable`.
    pub fn error_type(&self) -> &'static str {
        if self.is_retryable() {
            "Retryable"
        } else {
            "NonRetryable"
        }
    }
}

fn observe(what: impl Into<String>) -> impl FnOnce(PortError) -> KeeperError {
    let what = what.into();
    move |source| KeeperError::Observe { what, source }
}

/// What one keeper delivery did.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "trigger", rename_all = "snake_case")]
// One per delivery, moved once: boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum KeeperOutcome {
    /// Not the keeper's business.
    Ignored { ignored: Ignored },
    /// A Spot warning or rebalance recommendation.
    Standby {
        kind: &'static str,
        decision: StartDecision,
        /// Present when the plan was executed.
        #[serde(skip_serializing_if = "Option::is_none")]
        report: Option<StartReport>,
    },
    /// A scheduled tick: one plan per cluster.
    Tick {
        plans: Vec<TickPlan>,
        reports: Vec<TickReport>,
    },
}

/// What executing a start (or prepare) plan did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StartReport {
    /// Standbys whose lease another interruption held (skipped).
    pub leases_lost: Vec<String>,
    /// The standby was started.
    pub started: bool,
    /// Observation began → StartInstances answered (cold start excluded, as time to cordon).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_to_start_ms: Option<u64>,
    /// Replacement pods given the toleration.
    pub tolerated: usize,
    /// Why a rebalance's retype was skipped: the standby was no longer stopped and available
    /// when the keeper came to it (a Spot warning's start got there first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<&'static str>,
    /// Actions executed, in order.
    pub actions: Vec<&'static str>,
}

/// What executing one cluster's tick did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TickReport {
    pub cluster: String,
    pub evictions_accepted: usize,
    pub evictions_blocked: usize,
    pub stopped: Vec<String>,
    pub returned: Vec<String>,
    pub actions: Vec<&'static str>,
}

type KubeOf<W> = <<W as World>::Clusters as Clusters>::Kube;

/// The keeper over a [`World`].
pub struct Keeper<W: World> {
    world: W,
    config: Config,
}

impl<W: World> Keeper<W> {
    pub fn new(world: W, config: Config) -> Self {
        Self { world, config }
    }
    pub fn config(&self) -> &Config {
        &self.config
    }
    pub fn world(&self) -> &W {
        &self.world
    }

    /// One delivery, without an invocation budget.
    pub async fn handle(
        &self,
        payload: &serde_json::Value,
        mode: Mode,
    ) -> Result<KeeperOutcome, KeeperError> {
        self.handle_within(payload, mode, None).await
    }

    /// One delivery; replacement watching stops [`BUDGET_RESERVE`] before `budget_end`.
    pub async fn handle_within(
        &self,
        payload: &serde_json::Value,
        mode: Mode,
        budget_end: Option<DateTime<Utc>>,
    ) -> Result<KeeperOutcome, KeeperError> {
        let mode = if self.config.dry_run {
            Mode::DryRun
        } else {
            mode
        };
        match Trigger::from_value(payload).map_err(KeeperError::Malformed)? {
            Trigger::Ignored(ignored) => Ok(KeeperOutcome::Ignored { ignored }),
            Trigger::SpotInterruption(d) => {
                let id = d.detail.instance_id.clone();
                let (decision, report) = self
                    .standby(&id, mode, budget_end, |facts, now| {
                        standby::plan_start(&d, facts, &self.config, now)
                    })
                    .await?;
                Ok(KeeperOutcome::Standby {
                    kind: "spot-interruption",
                    decision,
                    report,
                })
            }
            Trigger::Rebalance(d) => {
                let id = d.detail.instance_id.clone();
                let (decision, report) = self
                    .standby(&id, mode, budget_end, |facts, _| {
                        standby::plan_prepare(&d, facts, &self.config)
                    })
                    .await?;
                Ok(KeeperOutcome::Standby {
                    kind: "rebalance-recommendation",
                    decision,
                    report,
                })
            }
            Trigger::Tick(_) => self.tick(mode).await,
        }
    }

    async fn connect(&self, cluster: &str) -> Result<KubeOf<W>, KeeperError> {
        self.world
            .clusters()
            .connect(cluster)
            .await
            .map_err(observe(format!("cluster {cluster}")))
    }

    /// Observe, plan (again without a standby whose lease is lost), execute.
    async fn standby(
        &self,
        instance_id: &str,
        mode: Mode,
        budget_end: Option<DateTime<Utc>>,
        plan: impl Fn(&StartFacts, DateTime<Utc>) -> StartDecision,
    ) -> Result<(StartDecision, Option<StartReport>), KeeperError> {
        let began = std::time::Instant::now();
        let ec2 = self.world.ec2();
        let ids = [instance_id.to_owned()];
        let (spot, standbys) = futures::join!(ec2.describe_instances(&ids), ec2.standbys());
        let spot = spot
            .map_err(observe(format!("instance {instance_id}")))?
            .into_iter()
            .next();
        let standbys = standbys.map_err(observe("standbys"))?;
        let mut facts = StartFacts {
            spot,
            standbys,
            ..StartFacts::default()
        };
        let mut kube = None;
        if let Some(cluster) = facts
            .spot
            .as_ref()
            .and_then(|s| resolve_cluster(s, &self.config))
        {
            let k = self.connect(&cluster.name).await?;
            let spot = facts.spot.as_ref().expect("checked above");
            facts.node = k
                .node_for(spot)
                .await
                .map_err(observe(format!("node of {instance_id}")))?;
            if let Some(node) = &facts.node {
                facts.pods = k
                    .pods_on(&node.name)
                    .await
                    .map_err(observe(format!("pods on {}", node.name)))?;
            }
            kube = Some(k);
        }
        let mut report = StartReport::default();
        for _ in 0..MAX_CLAIMS {
            let decision = plan(&facts, Utc::now());
            let plan = match &decision {
                StartDecision::NoStandby {
                    interruption_id,
                    reason,
                } => {
                    tracing::info!(instance_id, reason = %reason.describe(), "no standby started");
                    if let (Mode::Execute, Some(iid), Some(_)) =
                        (mode, interruption_id, &facts.spot)
                    {
                        let entry = TimelineEntry {
                            interruption_id: iid.clone(),
                            at: Utc::now(),
                            step: TimelineStep::NoStandby {
                                reason: reason.describe(),
                            },
                        };
                        self.append(&entry, "").await?;
                        return Ok((decision, Some(report)));
                    }
                    return Ok((decision, None));
                }
                StartDecision::Act(p) => p,
            };
            if mode == Mode::DryRun {
                return Ok((decision, None));
            }
            match self
                .execute_start(plan, kube.as_ref(), budget_end, began, &mut report)
                .await
            {
                Ok(Claim::Won) => return Ok((decision, Some(report))),
                Ok(Claim::Lost) => {
                    report.leases_lost.push(plan.standby.clone());
                    facts.leased_elsewhere.push(plan.standby.clone());
                }
                Err(e) => {
                    self.undo_start(plan).await;
                    return Err(e);
                }
            }
        }
        // Every candidate was taken: plan once more to report why nothing is left.
        Ok((plan(&facts, Utc::now()), Some(report)))
    }

    async fn execute_start(
        &self,
        plan: &standby::StartPlan,
        kube: Option<&KubeOf<W>>,
        budget_end: Option<DateTime<Utc>>,
        began: std::time::Instant,
        report: &mut StartReport,
    ) -> Result<Claim, KeeperError> {
        let ec2 = self.world.ec2();
        let failed = |action: &'static str| {
            let standby = plan.standby.clone();
            move |source| KeeperError::Execute {
                standby,
                action,
                source,
            }
        };
        // A start plan begins with the lease; a rebalance's prepare plan has none.
        let leased = matches!(plan.actions.first(), Some(StandbyAction::ClaimStandby(_)));
        for action in &plan.actions {
            match action {
                StandbyAction::ClaimStandby(lease) => {
                    let claim = self
                        .world
                        .records()
                        .lease_standby(lease, Utc::now())
                        .await
                        .map_err(failed(action.name()))?;
                    if claim == Claim::Lost {
                        return Ok(Claim::Lost);
                    }
                }
                StandbyAction::TagStandby {
                    instance_id,
                    set,
                    remove,
                } => ec2
                    .tag_standby(instance_id, set, remove)
                    .await
                    .map_err(failed(action.name()))?,
                StandbyAction::RetypeStandby {
                    instance_id, to, ..
                } if !leased => {
                    // A rebalance's retype holds no lease: a warning may have claimed and
                    // started the standby since it was read. Read it again right before, and
                    // take EC2's refusal of a no longer stopped instance as the same news.
                    let current = ec2
                        .describe_instances(std::slice::from_ref(instance_id))
                        .await
                        .map_err(failed(action.name()))?;
                    let refused = if current.first().is_some_and(standby::is_startable) {
                        match ec2.retype(instance_id, to).await {
                            Ok(()) => false,
                            Err(PortError::WrongState { .. }) => true,
                            Err(e) => return Err(failed(action.name())(e)),
                        }
                    } else {
                        true
                    };
                    if refused {
                        tracing::info!(standby = %instance_id, "standby no longer stopped and available; not retyped");
                        report.skipped = Some("standby no longer stopped and available");
                        return Ok(Claim::Won);
                    }
                }
                StandbyAction::RetypeStandby {
                    instance_id, to, ..
                } => ec2
                    .retype(instance_id, to)
                    .await
                    .map_err(failed(action.name()))?,
                StandbyAction::StartStandby { instance_id } => {
                    ec2.start(instance_id)
                        .await
                        .map_err(failed(action.name()))?;
                    report.started = true;
                    report.time_to_start_ms = Some(began.elapsed().as_millis() as u64);
                    tracing::info!(standby = %instance_id, interruption_id = %plan.interruption_id, instance_type = %plan.instance_type, "standby started");
                }
                StandbyAction::Record(entry) => self.append(entry, &plan.standby).await?,
                StandbyAction::TolerateReplacements(spec) => {
                    if let Some(kube) = kube {
                        report.tolerated = self.tolerate(kube, spec, budget_end).await;
                    }
                }
                other => tracing::warn!(
                    action = other.name(),
                    "unexpected action in a start plan; skipped"
                ),
            }
            report.actions.push(action.name());
        }
        Ok(Claim::Won)
    }

    /// A start failed after the lease: put the standby back (best effort; the tick also
    /// resets a serving standby that never ran) so the retry can take it again.
    async fn undo_start(&self, plan: &standby::StartPlan) {
        let Some(StandbyAction::ClaimStandby(_)) = plan.actions.first() else {
            return;
        };
        let ec2 = self.world.ec2();
        if let Ok(current) = ec2
            .describe_instances(std::slice::from_ref(&plan.standby))
            .await
            && current
                .first()
                .is_some_and(|i| i.state == costop_core::event::InstanceState::Stopped)
        {
            let (set, remove) = standby::available_tags();
            if let Err(e) = ec2.tag_standby(&plan.standby, &set, &remove).await {
                tracing::warn!(standby = %plan.standby, error = %crate::handler::error_chain(&e), "could not retag the standby available");
            }
        }
        if let Err(e) = self.world.records().release_standby(&plan.standby).await {
            tracing::warn!(standby = %plan.standby, error = %crate::handler::error_chain(&e), "could not release the standby's lease");
        }
    }

    /// Give replacement pods the toleration as they appear, until every owner's quota is
    /// met or the watch window (or the invocation's budget) ends. Each poll patches its pods
    /// [`TOLERATE_IN_FLIGHT`] at a time under the client-side QPS limit and writes their
    /// timeline entries in one batch. Errors are logged and the next poll tries again: a
    /// missed pod only means it waits for other capacity.
    async fn tolerate(
        &self,
        kube: &KubeOf<W>,
        spec: &ReplacementSpec,
        budget_end: Option<DateTime<Utc>>,
    ) -> usize {
        let until = budget_end.map_or(spec.watch_until, |b| {
            spec.watch_until.min(b - BUDGET_RESERVE)
        });
        let limiter = RateLimiter::new(self.config.kube_qps, self.config.kube_burst);
        let mut tracker = ReplacementTracker::new(spec.clone());
        let began = std::time::Instant::now();
        let mut snapshot_seen = false;
        loop {
            if !snapshot_seen {
                snapshot_seen = self.merge_snapshot(&mut tracker).await;
            }
            match kube.unbound_pods().await {
                Ok(pending) => {
                    tracker.adopt(&pending);
                    let limiter = &limiter;
                    let results: Vec<_> = futures::stream::iter(tracker.next(&pending))
                        .map(|patch| async move {
                            limiter.acquire().await;
                            let result = kube.tolerate(&patch).await;
                            (patch, result)
                        })
                        .buffer_unordered(TOLERATE_IN_FLIGHT)
                        .collect()
                        .await;
                    let mut entries = Vec::new();
                    for (patch, result) in results {
                        match result {
                            Ok(true) => {
                                tracker.applied(&patch);
                                entries.push(TimelineEntry {
                                    interruption_id: spec.interruption_id.clone(),
                                    at: Utc::now(),
                                    step: TimelineStep::ReplacementTolerated {
                                        pod: costop_core::facts::PodRef {
                                            namespace: patch.namespace,
                                            name: patch.name,
                                        },
                                    },
                                });
                            }
                            // Bound, gone or changed since the list: the next poll sees it as it is.
                            Ok(false) => {}
                            Err(e) => {
                                tracing::warn!(pod = %format!("{}/{}", patch.namespace, patch.name), error = %crate::handler::error_chain(&e), "could not tolerate a replacement")
                            }
                        }
                    }
                    if !entries.is_empty()
                        && let Err(e) = self
                            .world
                            .records()
                            .append_many(&entries, self.config.timeline_ttl_days)
                            .await
                    {
                        tracing::warn!(entries = entries.len(), error = %crate::handler::error_chain(&e), "could not record tolerated replacements");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %crate::handler::error_chain(&e), "could not list pending pods")
                }
            }
            // Until the interruption function's count is in (or it is clearly not coming),
            // "every quota met" may only mean the keeper's own count missed gone pods.
            let counted = snapshot_seen || began.elapsed() >= SNAPSHOT_WAIT;
            if (tracker.satisfied() && counted) || Utc::now() >= until {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        tracing::info!(interruption_id = %spec.interruption_id, tolerated = tracker.tolerated(), satisfied = tracker.satisfied(), "replacement watch over");
        tracker.tolerated()
    }

    /// Raise the tracker's quotas to the interruption function's snapshot of the node, taken
    /// before its drain: pods evicted and gone before the keeper listed the node still count.
    /// Whether the snapshot was there (a bad one counts as seen: it will not get better).
    async fn merge_snapshot(&self, tracker: &mut ReplacementTracker) -> bool {
        let key = record::snapshot_key(&tracker.spec().interruption_id);
        match self.world.records().get(&key).await {
            Ok(Some(item)) => {
                match record::facts_from_snapshot(&item) {
                    Ok(facts) => tracker.merge_snapshot(&facts),
                    Err(e) => {
                        tracing::warn!(error = %crate::handler::error_chain(&e), "unreadable node snapshot; the keeper's own count stands")
                    }
                }
                true
            }
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(error = %crate::handler::error_chain(&e), "could not read the node snapshot");
                false
            }
        }
    }

    async fn append(&self, entry: &TimelineEntry, standby: &str) -> Result<(), KeeperError> {
        self.world
            .records()
            .append(entry, self.config.timeline_ttl_days)
            .await
            .map_err(|source| KeeperError::Execute {
                standby: standby.to_owned(),
                action: "record",
                source,
            })
    }

    /// One tick: every cluster with standbys (and every allow-listed one), planned and executed
    /// independently; the first failure is returned after all clusters had their turn.
    async fn tick(&self, mode: Mode) -> Result<KeeperOutcome, KeeperError> {
        let standbys = self
            .world
            .ec2()
            .standbys()
            .await
            .map_err(observe("standbys"))?;
        let mut by_cluster: BTreeMap<String, Vec<InstanceFacts>> = self
            .config
            .cluster_allow_list
            .iter()
            .map(|c| (c.clone(), Vec::new()))
            .collect();
        for s in standbys {
            if let Some(c) = resolve_cluster(&s, &self.config) {
                by_cluster.entry(c.name).or_default().push(s);
            }
        }
        let mut plans = Vec::new();
        let mut reports = Vec::new();
        let mut first_error = None;
        for (cluster, standbys) in by_cluster {
            match self.tick_cluster(&cluster, standbys, mode).await {
                Ok((plan, report)) => {
                    plans.push(plan);
                    reports.extend(report);
                }
                Err(e) => {
                    tracing::error!(cluster = %cluster, error = %crate::handler::error_chain(&e), "pool maintenance failed");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(KeeperOutcome::Tick { plans, reports }),
        }
    }

    async fn tick_cluster(
        &self,
        cluster: &str,
        standbys: Vec<InstanceFacts>,
        mode: Mode,
    ) -> Result<(TickPlan, Option<TickReport>), KeeperError> {
        let kube = self.connect(cluster).await?;
        let nodes = kube
            .nodes()
            .await
            .map_err(observe(format!("nodes of {cluster}")))?;
        let mut facts = PoolFacts {
            cluster: cluster.to_owned(),
            standbys: Vec::new(),
            nodes,
        };
        for instance in standbys {
            let node = node_of(&facts.nodes, &instance).cloned();
            // A stopped standby has nothing running on it worth a request.
            let pods = match (&node, instance.state) {
                (Some(n), s) if s != costop_core::event::InstanceState::Stopped => kube
                    .pods_on(&n.name)
                    .await
                    .map_err(observe(format!("pods on {}", n.name)))?,
                _ => Vec::new(),
            };
            facts.standbys.push(StandbyFacts {
                instance,
                node,
                pods,
            });
        }
        let plan = standby::plan_tick(&facts, &self.config, Utc::now());
        if mode == Mode::DryRun {
            return Ok((plan, None));
        }
        let report = self.execute_tick(&kube, &plan).await?;
        Ok((plan, Some(report)))
    }

    async fn execute_tick(
        &self,
        kube: &KubeOf<W>,
        plan: &TickPlan,
    ) -> Result<TickReport, KeeperError> {
        let ec2 = self.world.ec2();
        let mut report = TickReport {
            cluster: plan.cluster.clone(),
            ..TickReport::default()
        };
        for action in &plan.actions {
            let failed = |standby: &str| {
                let standby = standby.to_owned();
                let action = action.name();
                move |source| KeeperError::Execute {
                    standby,
                    action,
                    source,
                }
            };
            match action {
                StandbyAction::TagStandby {
                    instance_id,
                    set,
                    remove,
                } => ec2
                    .tag_standby(instance_id, set, remove)
                    .await
                    .map_err(failed(instance_id))?,
                StandbyAction::SetUnschedulable {
                    node,
                    unschedulable,
                } => kube
                    .set_unschedulable(node, *unschedulable)
                    .await
                    .map_err(failed(node))?,
                StandbyAction::EvictFromStandby { node, pods } => {
                    for pod in pods {
                        match kube.evict(pod).await.map_err(failed(node))? {
                            EvictOutcome::Accepted | EvictOutcome::Gone => {
                                report.evictions_accepted += 1
                            }
                            EvictOutcome::Blocked { .. } => report.evictions_blocked += 1,
                        }
                    }
                }
                StandbyAction::StopStandby { instance_id } => {
                    ec2.stop(instance_id).await.map_err(failed(instance_id))?;
                    report.stopped.push(instance_id.clone());
                }
                StandbyAction::ReleaseLease { instance_id } => self
                    .world
                    .records()
                    .release_standby(instance_id)
                    .await
                    .map_err(failed(instance_id))?,
                StandbyAction::Record(entry) => {
                    if let TimelineStep::StandbyReturned { standby } = &entry.step {
                        report.returned.push(standby.clone());
                        tracing::info!(standby = %standby, interruption_id = %entry.interruption_id, "standby returned to the pool");
                    }
                    self.append(entry, "").await?
                }
                other => tracing::warn!(
                    action = other.name(),
                    "unexpected action in a tick plan; skipped"
                ),
            }
            report.actions.push(action.name());
        }
        Ok(report)
    }
}

/// The node of a standby: by providerID, else by private DNS name.
fn node_of<'a>(nodes: &'a [NodeFacts], instance: &InstanceFacts) -> Option<&'a NodeFacts> {
    nodes
        .iter()
        .find(|n| n.instance_id() == Some(instance.instance_id.as_str()))
        .or_else(|| {
            let dns = instance.private_dns_name.as_deref()?;
            nodes.iter().find(|n| n.name == dns)
        })
}

/// Compile-time check: a keeper delivery's future is `Send`.
#[allow(dead_code)]
fn keeping_is_send<'a, W: World>(
    k: &'a Keeper<W>,
    payload: &'a serde_json::Value,
) -> impl std::future::Future + Send + 'a {
    k.handle(payload, Mode::Execute)
}

/// One log line for a keeper delivery: what was decided and, for a dry run, the whole plan.
pub fn log_outcome(outcome: &KeeperOutcome) {
    match outcome {
        KeeperOutcome::Ignored { ignored } => {
            tracing::info!(source = %ignored.source, detail_type = %ignored.detail_type, "ignored (not a keeper event)")
        }
        KeeperOutcome::Standby {
            kind,
            decision,
            report,
        } => tracing::info!(
            kind,
            decision = %serde_json::to_string(decision).unwrap_or_default(),
            report = %serde_json::to_string(report).unwrap_or_default(),
            "{}",
            if report.is_some() { "handled" } else { "planned (nothing executed)" }
        ),
        KeeperOutcome::Tick { plans, reports } => {
            for plan in plans {
                tracing::info!(
                    cluster = %plan.cluster,
                    available = plan.report.available(),
                    serving = plan.report.serving(),
                    short_zones = ?plan.report.short_zones(),
                    actions = plan.actions.len(),
                    plan = %if plan.dry_run || reports.iter().all(|r| r.cluster != plan.cluster) {
                        serde_json::to_string(plan).unwrap_or_default()
                    } else {
                        String::new()
                    },
                    "pool"
                );
            }
        }
    }
}

/// The EMF metrics of one keeper delivery, one document per cluster (dimension `Cluster`).
pub fn metrics(
    config: &Config,
    outcome: &KeeperOutcome,
    at: DateTime<Utc>,
) -> Vec<serde_json::Value> {
    use costop_core::metrics::{self as m, Metric, Unit};
    let doc = |cluster: &str, metrics: &[Metric<'_>]| {
        m::emf(
            &config.metrics_namespace,
            &[(m::DIM_CLUSTER, cluster)],
            metrics,
            at,
        )
    };
    match outcome {
        KeeperOutcome::Ignored { .. } => Vec::new(),
        KeeperOutcome::Standby {
            kind,
            decision,
            report: Some(report),
        } if *kind == "spot-interruption" => match decision {
            StartDecision::Act(plan) => {
                let mut metrics = vec![
                    Metric::new(
                        m::STANDBY_STARTS,
                        if report.started { 1.0 } else { 0.0 },
                        Unit::Count,
                    ),
                    Metric::new(
                        m::REPLACEMENTS_TOLERATED,
                        report.tolerated as f64,
                        Unit::Count,
                    ),
                ];
                if let Some(ms) = report.time_to_start_ms {
                    metrics.push(Metric::new(
                        m::TIME_TO_STANDBY_START_MS,
                        ms as f64,
                        Unit::Milliseconds,
                    ));
                }
                vec![doc(&plan.cluster, &metrics)]
            }
            StartDecision::NoStandby {
                reason: standby::NoStandbyReason::NoneAvailable { cluster, .. },
                ..
            } => {
                vec![doc(
                    cluster,
                    &[Metric::new(m::STANDBY_UNAVAILABLE, 1.0, Unit::Count)],
                )]
            }
            StartDecision::NoStandby { .. } => Vec::new(),
        },
        KeeperOutcome::Standby { .. } => Vec::new(),
        KeeperOutcome::Tick { plans, reports } => plans
            .iter()
            .map(|plan| {
                let returned = reports
                    .iter()
                    .filter(|r| r.cluster == plan.cluster)
                    .map(|r| r.returned.len())
                    .sum::<usize>();
                let wanted: u32 = plan.report.zones.values().map(|z| z.wanted).sum();
                doc(
                    &plan.cluster,
                    &[
                        Metric::new(
                            m::STANDBY_POOL_AVAILABLE,
                            f64::from(plan.report.available()),
                            Unit::Count,
                        ),
                        Metric::new(
                            m::STANDBY_POOL_SERVING,
                            f64::from(plan.report.serving()),
                            Unit::Count,
                        ),
                        Metric::new(m::STANDBY_POOL_WANTED, f64::from(wanted), Unit::Count),
                        Metric::new(m::STANDBY_RETURNS, returned as f64, Unit::Count),
                    ],
                )
            })
            .collect(),
    }
}

/// Print [`metrics`] to stdout, where CloudWatch Logs extracts them.
pub fn emit_metrics(config: &Config, outcome: &KeeperOutcome) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for doc in metrics(config, outcome, Utc::now()) {
        let _ = writeln!(out, "{doc}");
    }
}
