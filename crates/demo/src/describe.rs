//! What the functions did, in words for someone new to costop: the interruption function's
//! plan and report, the keeper's decision and report, and the timeline entries both recorded.

use costop_app::keeper::KeeperOutcome;
use costop_app::{Mode, Outcome};
use costop_core::record::{TimelineEntry, TimelineStep};
use costop_core::standby::{StartAction, StartDecision, StartPlan};

use crate::narrate::secs;

/// The interruption function's part, one line each.
pub fn interruption(outcome: &Outcome, took: std::time::Duration, mode: Mode) -> Vec<String> {
    let mut lines = Vec::new();
    let Some(plan) = outcome.plans().next() else {
        let why = outcome
            .instances
            .iter()
            .filter_map(|i| i.decision.as_ignore())
            .map(|r| serde_json::to_string(r).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("; ");
        return vec![format!("costop-interruption ignored it: {why}")];
    };
    let report = outcome.instances.iter().find_map(|i| i.report.as_ref());
    match (mode, report) {
        (Mode::Execute, Some(r)) => {
            lines.push(format!("costop-interruption, done in {}:", secs(took)));
            if let Some(ms) = r.time_to_cordon_ms {
                lines.push(format!(
                    "  cordoned the node, tainted it and excluded it from load balancers {ms} ms after the warning arrived"
                ));
            }
            lines.push(format!(
                "  deregistered it from {} load balancer target group(s)",
                r.targets_deregistered
            ));
            if let Some(d) = &r.drain {
                let mut drained = format!(
                    "  drained it: {} pod(s) evicted through the Eviction API (PodDisruptionBudgets respected",
                    d.evicted.len()
                );
                if d.eviction_retries > 0 {
                    drained.push_str(&format!(", {} refusal(s) retried", d.eviction_retries));
                }
                drained.push(')');
                if !d.remaining.is_empty() {
                    drained.push_str(&format!(", {} left at the deadline", d.remaining.len()));
                }
                lines.push(drained);
            }
        }
        _ => lines.push(format!(
            "costop-interruption would run {} step(s) on {}: {}",
            plan.steps.len(),
            plan.node,
            plan.actions()
                .map(|a| a.name())
                .collect::<Vec<_>>()
                .join(" -> ")
        )),
    }
    lines
}

/// The keeper's part, one line each.
pub fn keeper(outcome: &KeeperOutcome, took: std::time::Duration) -> Vec<String> {
    let KeeperOutcome::Standby {
        decision, report, ..
    } = outcome
    else {
        return vec![format!(
            "costop-keeper: {}",
            serde_json::to_string(outcome).unwrap_or_default()
        )];
    };
    match (decision, report) {
        (StartDecision::Act(plan), Some(report)) => vec![
            format!("costop-keeper, done in {}:", secs(took)),
            format!("  {}", started(plan)),
            format!(
                "  gave {} replacement pod(s) the standby toleration as the drain created them",
                report.tolerated
            ),
        ],
        (StartDecision::Act(plan), None) => vec![format!(
            "costop-keeper would run {} step(s): {}",
            plan.actions.len(),
            plan.actions
                .iter()
                .map(StartAction::name)
                .collect::<Vec<_>>()
                .join(" -> ")
        )],
        (StartDecision::Join { plan, .. }, _) => vec![format!(
            "costop-keeper found standby {} already serving this interruption and joined it",
            plan.standby
        )],
        (StartDecision::NoStandby { reason, .. }, _) => {
            vec![format!(
                "costop-keeper started no standby: {}",
                reason.describe()
            )]
        }
    }
}

fn started(plan: &StartPlan) -> String {
    let retyped = plan.actions.iter().find_map(|a| match a {
        StartAction::RetypeStandby { from, to, .. } => Some(format!(
            ", retyped from {} to {to} (the interrupted node's type) while stopped",
            from.as_deref().unwrap_or("?")
        )),
        _ => None,
    });
    format!(
        "leased the warm standby {} in {} and started it{}",
        plan.standby,
        plan.zone,
        retyped.unwrap_or_default()
    )
}

/// One timeline entry, `at` given relative to `first`.
pub fn timeline_entry(e: &TimelineEntry, first: chrono::DateTime<chrono::Utc>) -> String {
    let offset = (e.at - first).num_milliseconds() as f64 / 1000.0;
    let detail = match &e.step {
        TimelineStep::StandbyStarted {
            standby,
            instance_type,
            retyped_from,
        } => match retyped_from {
            Some(from) => format!(" {standby} as {instance_type} (was {from})"),
            None => format!(" {standby} as {instance_type}"),
        },
        step => step
            .pod()
            .map(|p| format!(" {}/{}", p.namespace, p.name))
            .unwrap_or_default(),
    };
    format!(
        "{:>8} s  {}{detail}",
        format!("+{offset:.3}"),
        e.step.name()
    )
}
