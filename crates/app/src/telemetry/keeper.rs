//! What the keeper logs (one line per delivery, one per cluster of a tick) and measures
//! (standby starts, replacements tolerated, time to start, the pool against its size; the
//! replay of the fallback's queue: writes replayed and dead-lettered, the queue's depth).

use chrono::{DateTime, Utc};
use costop_core::Config;
use costop_core::event::EventKind;
use costop_core::standby::{self, StartDecision};

use crate::keeper::KeeperOutcome;

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
            kind = %kind,
            decision = %serde_json::to_string(decision).unwrap_or_default(),
            report = %serde_json::to_string(report).unwrap_or_default(),
            "{}",
            if report.is_some() { "handled" } else { "planned (nothing executed)" }
        ),
        KeeperOutcome::Tick {
            plans,
            reports,
            handoffs,
            replay,
            ..
        } => {
            if let Some(r) = replay {
                tracing::info!(
                    gated = r.gated,
                    replayed = r.replayed.len(),
                    retried = r.retried,
                    dead_lettered = ?r.dead_lettered,
                    blocked = r.blocked,
                    pending = r.pending,
                    "queued writes"
                );
            }
            for h in handoffs {
                tracing::info!(
                    instance_id = %h.instance_id,
                    interruption_id = %h.interruption_id,
                    due_at = %h.due_at,
                    handed_off = h.handed_off,
                    "scheduled change due"
                );
            }
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
        } if *kind == EventKind::SpotInterruption => match decision {
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
            // The standby's start is counted by the delivery that started it.
            StartDecision::Join { plan, .. } => vec![doc(
                &plan.cluster,
                &[Metric::new(
                    m::REPLACEMENTS_TOLERATED,
                    report.tolerated as f64,
                    Unit::Count,
                )],
            )],
            StartDecision::NoStandby {
                reason:
                    standby::NoStandbyReason::NoneAvailable { cluster, .. }
                    | standby::NoStandbyReason::AllLeased { cluster, .. },
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
        KeeperOutcome::Tick {
            plans,
            reports,
            replay,
            traffic,
            ..
        } => std::iter::once({
            use costop_core::shift::RestoreStep;
            let restored = traffic
                .iter()
                .filter(|t| t.done && matches!(t.step, RestoreStep::Restore { .. }))
                .count();
            m::emf(
                &config.metrics_namespace,
                &[],
                &[
                    Metric::new(
                        m::SHIFTED_RULES,
                        (traffic.len() - restored) as f64,
                        Unit::Count,
                    ),
                    Metric::new(m::TRAFFIC_RESTORES, restored as f64, Unit::Count),
                ],
                at,
            )
        })
        .chain(replay.iter().map(|r| {
            m::emf(
                &config.metrics_namespace,
                &[(m::DIM_QUEUE, &config.queue_table)],
                &[
                    Metric::new(m::REPLAYED_WRITES, r.replayed.len() as f64, Unit::Count),
                    Metric::new(
                        m::DEAD_LETTERED_WRITES,
                        r.dead_lettered.len() as f64,
                        Unit::Count,
                    ),
                    Metric::new(m::QUEUE_DEPTH, r.pending as f64, Unit::Count),
                ],
                at,
            )
        }))
        .chain(plans.iter().map(|plan| {
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
        }))
        .collect(),
    }
}

/// Print [`metrics`] to stdout.
pub fn emit_metrics(config: &Config, outcome: &KeeperOutcome) {
    super::emit(&metrics(config, outcome, Utc::now()));
}
