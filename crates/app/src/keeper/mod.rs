//! The keeper: the shell around [`costop_core::standby`], the warm standby pool. One delivery
//! → parse the trigger → observe → plan (pure) → execute; dry-run stops after the plan.
//! [`start`]: a Spot warning starts the zone's standby, a rebalance recommendation retypes it
//! ahead of time; [`watch`]: after a start, the node's replacement pods get the standby
//! toleration as they appear; [`tick`]: a scheduled tick returns standbys to the pool when spot
//! capacity is back, gives back nodes whose instances returned ([`resume`]), hands scheduled
//! changes that came due to the interruption function ([`handoff`]), puts shifted traffic back
//! as capacity returns ([`traffic`]) and replays the fallback's queued writes once traffic is
//! back ([`replay`]).

mod handoff;
mod replay;
mod resume;
mod start;
mod tick;
mod traffic;
mod watch;

use chrono::{DateTime, TimeDelta, Utc};
use costop_core::event::{EventKind, Ignored};
use costop_core::record::TimelineEntry;
use costop_core::standby::{self, StartDecision, TickPlan, Trigger};
use costop_core::{Config, ParseError};
use serde::Serialize;

pub use handoff::HandoffReport;
pub use replay::ReplayReport;
pub use resume::ResumeReport;
pub use traffic::TrafficReport;

use crate::function::{Function, Mode, Retryable};
use crate::journal::Journal;
use crate::ports::{Clusters, KeeperPorts, KubeOf, PortError};

/// Kept back from the invocation's budget to finish cleanly.
const BUDGET_RESERVE: TimeDelta = TimeDelta::seconds(3);

/// Why a keeper delivery failed; [`Retryable`] maps it to the Lambda error type.
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

impl Retryable for KeeperError {
    fn is_retryable(&self) -> bool {
        match self {
            KeeperError::Malformed(_) => false,
            KeeperError::Observe { source, .. } | KeeperError::Execute { source, .. } => {
                source.is_retryable()
            }
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
        kind: EventKind,
        decision: StartDecision,
        /// Present when the plan was executed.
        #[serde(skip_serializing_if = "Option::is_none")]
        report: Option<StartReport>,
    },
    /// A scheduled tick: one plan per cluster.
    Tick {
        plans: Vec<TickPlan>,
        reports: Vec<TickReport>,
        /// The resume watches (nodes whose instances may come back).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        resumes: Vec<ResumeReport>,
        /// AWS Health scheduled changes that came due, handed to the interruption function.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        handoffs: Vec<HandoffReport>,
        /// Listener rules shifted toward the fallback: kept, adjusted or put back.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        traffic: Vec<TrafficReport>,
        /// The replay of the fallback's queued writes (`None` when reading the queue failed).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replay: Option<ReplayReport>,
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

/// The keeper over a world with its ports.
pub struct Keeper<W> {
    world: W,
    config: Config,
}

impl<W: KeeperPorts> Keeper<W> {
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
                    .start(&id, mode, budget_end, |facts, now| {
                        standby::plan_start(&d, facts, &self.config, now)
                    })
                    .await?;
                Ok(KeeperOutcome::Standby {
                    kind: EventKind::SpotInterruption,
                    decision,
                    report,
                })
            }
            Trigger::Rebalance(d) => {
                let id = d.detail.instance_id.clone();
                let (decision, report) = self
                    .start(&id, mode, budget_end, |facts, _| {
                        standby::plan_prepare(&d, facts, &self.config)
                    })
                    .await?;
                Ok(KeeperOutcome::Standby {
                    kind: EventKind::RebalanceRecommendation,
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

    /// Append one timeline entry now (the journal, flushed at once: the plan's next step
    /// depends on it being written).
    async fn append(&self, entry: &TimelineEntry, standby: &str) -> Result<(), KeeperError> {
        let journal = Journal::new(self.world.records(), self.config.timeline_ttl_days);
        journal.push(entry.clone());
        journal
            .flush()
            .await
            .map_err(|source| KeeperError::Execute {
                standby: standby.to_owned(),
                action: "record",
                source,
            })
    }
}

impl<W: KeeperPorts> Function for Keeper<W> {
    type Outcome = KeeperOutcome;
    type Error = KeeperError;

    fn name(&self) -> &'static str {
        "costop-keeper"
    }

    fn handle_within(
        &self,
        payload: &serde_json::Value,
        mode: Mode,
        budget_end: Option<DateTime<Utc>>,
    ) -> impl std::future::Future<Output = Result<KeeperOutcome, KeeperError>> + Send {
        // Boxed: the keeper's future nests deeply enough to exceed rustc's layout query depth.
        Box::pin(Keeper::handle_within(self, payload, mode, budget_end))
    }

    fn report(&self, outcome: &KeeperOutcome) {
        crate::telemetry::keeper::log_outcome(outcome);
        crate::telemetry::keeper::emit_metrics(&self.config, outcome);
    }
}

/// Compile-time check: a keeper delivery's future is `Send`.
#[allow(dead_code)]
fn keeping_is_send<'a, W: KeeperPorts>(
    k: &'a Keeper<W>,
    payload: &'a serde_json::Value,
) -> impl std::future::Future + Send + 'a {
    k.handle(payload, Mode::Execute)
}
