//! Text rendering of outcomes and timelines for people at a terminal.

use std::fmt::Write;

use costop_app::Outcome;
use costop_app::keeper::KeeperOutcome;
use costop_core::handoff::ScheduledChange;
use costop_core::plan::Response;
use costop_core::record::{self, Attr, Item, TimelineEntry};
use costop_core::standby::StartDecision;
use costop_core::{Action, Decision, Plan};

/// One block per instance: the decision, then the plan (dry-run) or what was done.
pub fn outcome(o: &Outcome, dry_run: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "event {} ({})",
        if o.event_id.is_empty() {
            "-"
        } else {
            &o.event_id
        },
        o.kind
    );
    for i in &o.instances {
        match &i.decision {
            Decision::Ignore { reason } => {
                let reason = serde_json::to_string(reason).unwrap_or_default();
                let _ = writeln!(
                    s,
                    "  {}: ignored {reason}",
                    if i.instance_id.is_empty() {
                        "-"
                    } else {
                        &i.instance_id
                    }
                );
            }
            Decision::Act(plan) => {
                let _ = writeln!(
                    s,
                    "  {} on node {} (cluster {}): interruption {}{}",
                    plan.instance_id,
                    plan.node,
                    plan.cluster,
                    plan.interruption_id,
                    plan.deadline
                        .map(|d| format!(", deadline {}", d.to_rfc3339()))
                        .unwrap_or_default()
                );
                if dry_run || plan.dry_run || i.report.is_none() {
                    let _ = writeln!(s, "  dry run: nothing was changed; the plan:");
                    for a in plan.actions() {
                        let _ = writeln!(s, "    - {}", describe(a));
                    }
                }
                match (plan.response, scheduled(plan)) {
                    (Response::Schedule, Some(change)) => {
                        let _ = writeln!(
                            s,
                            "    scheduled: starts {}, acted on from {} (the keeper's tick hands it to the interruption function then)",
                            change.start_time.to_rfc3339(),
                            change.due_at.to_rfc3339()
                        );
                        continue;
                    }
                    (Response::Cancel, _) => {
                        let _ = writeln!(
                            s,
                            "    the scheduled change is cancelled: it will not be acted on"
                        );
                        continue;
                    }
                    _ => {}
                }
                if let Some(r) = &i.report {
                    if r.lost_claim {
                        let _ = writeln!(
                            s,
                            "    another delivery of this event owns it: nothing done"
                        );
                        continue;
                    }
                    if let Some(ms) = r.time_to_cordon_ms {
                        let _ = writeln!(s, "    cordoned and tainted after {ms} ms");
                    }
                    let _ = writeln!(s, "    targets deregistered: {}", r.targets_deregistered);
                    if let Some(d) = &r.drain {
                        let _ = writeln!(
                            s,
                            "    drain: {} evicted, {} eviction retries, all evictions issued after {} ms",
                            d.evicted.len(),
                            d.eviction_retries,
                            d.all_issued_ms
                        );
                        if !d.remaining.is_empty() {
                            let left: Vec<String> =
                                d.remaining.iter().map(ToString::to_string).collect();
                            let _ = writeln!(
                                s,
                                "    DEADLINE REACHED with pods left: {}",
                                left.join(", ")
                            );
                        }
                    }
                }
            }
        }
    }
    s
}

fn describe(a: &Action) -> String {
    match a {
        Action::CordonAndTaint(c) => format!(
            "cordon {} and taint {}={}:{}{}",
            c.node,
            c.taint.key,
            c.taint.value.as_deref().unwrap_or(""),
            c.taint.effect,
            if c.exclude_from_lb_label {
                ", exclude from external load balancers"
            } else {
                ""
            }
        ),
        Action::DeregisterTargets(d) => {
            let t: Vec<String> = d.targets.iter().map(|t| t.id.clone()).collect();
            format!("deregister {} from {}", t.join(", "), d.target_group_arn)
        }
        Action::ShiftTraffic(l) => format!(
            "send {}% of rule {} to the fallback {} until capacity is back (at the latest {})",
            l.to_fallback(&l.applied),
            l.rule_arn,
            l.fallback_target_group,
            l.restore_by.to_rfc3339()
        ),
        Action::Drain(d) => {
            let pods: Vec<String> = d
                .pods
                .iter()
                .map(|p| {
                    format!(
                        "{}/{} (grace {}s)",
                        p.namespace, p.name, p.grace_period_seconds
                    )
                })
                .collect();
            format!(
                "evict {} pod(s) by {}: {}; skip {}",
                d.pods.len(),
                d.evict_by.to_rfc3339(),
                pods.join(", "),
                d.skipped.len()
            )
        }
        other => serde_json::to_string(other).unwrap_or_else(|_| other.name().to_string()),
    }
}

/// The timeline of one interruption, oldest first.
pub fn timeline(id: &str, items: &[Item]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "interruption {id}");
    for item in items {
        let sk = match item.get(record::SK) {
            Some(Attr::S(sk)) => sk.as_str(),
            _ => continue,
        };
        if sk == record::SK_HEADER {
            let get = |k: &str| match item.get(k) {
                Some(Attr::S(v)) => v.clone(),
                _ => "-".into(),
            };
            let _ = writeln!(
                s,
                "  instance {} node {} cluster {} kind {} deadline {}",
                get("instance_id"),
                get("node"),
                get("cluster"),
                get("kind"),
                get("deadline")
            );
        } else if sk.starts_with(record::SK_TIMELINE_PREFIX) {
            match TimelineEntry::from_item(item) {
                Ok(e) => {
                    let detail = serde_json::to_value(&e.step).ok().and_then(|v| {
                        let mut m = v.as_object()?.clone();
                        m.remove("step");
                        (!m.is_empty()).then(|| serde_json::Value::Object(m).to_string())
                    });
                    let _ = writeln!(
                        s,
                        "  {}  {:<22} {}",
                        e.at.format("%H:%M:%S%.3f"),
                        e.step.name(),
                        detail.unwrap_or_default()
                    );
                }
                Err(err) => {
                    let _ = writeln!(s, "  {sk}: unreadable entry ({err})");
                }
            }
        }
    }
    s
}

/// The keeper's outcome: the standby started or joined (or why none), or what a tick did.
pub fn keeper(o: &KeeperOutcome) -> String {
    let mut s = String::new();
    match o {
        KeeperOutcome::Ignored { ignored } => {
            let _ = writeln!(
                s,
                "  ignored: {} / {} is not the keeper's",
                ignored.source, ignored.detail_type
            );
        }
        KeeperOutcome::Standby {
            kind,
            decision,
            report,
        } => {
            let _ = writeln!(s, "  {}", kind.slug());
            match decision {
                StartDecision::Act(p) | StartDecision::Join { plan: p, .. } => {
                    let verb = match decision {
                        StartDecision::Join { .. } => "joins",
                        _ => "starts",
                    };
                    let _ = writeln!(
                        s,
                        "  standby {} {verb} interruption {} ({} in {}, as {})",
                        p.standby, p.interruption_id, p.cluster, p.zone, p.instance_type
                    );
                    if report.is_none() {
                        let _ = writeln!(s, "  dry run: nothing was changed; the plan:");
                        for a in &p.actions {
                            let _ = writeln!(
                                s,
                                "    - {}",
                                serde_json::to_string(a).unwrap_or_default()
                            );
                        }
                    }
                }
                StartDecision::NoStandby { reason, .. } => {
                    let _ = writeln!(s, "  no standby: {}", reason.describe());
                }
            }
            if let Some(r) = report {
                if let Some(why) = r.skipped {
                    let _ = writeln!(s, "    skipped: {why}");
                }
                if r.started {
                    let _ = writeln!(
                        s,
                        "    started{}",
                        r.time_to_start_ms
                            .map(|ms| format!(" after {ms} ms"))
                            .unwrap_or_default()
                    );
                }
                if !r.leases_lost.is_empty() {
                    let _ = writeln!(
                        s,
                        "    held by other interruptions: {}",
                        r.leases_lost.join(", ")
                    );
                }
                let _ = writeln!(s, "    replacement pods tolerated: {}", r.tolerated);
            }
        }
        KeeperOutcome::Tick {
            plans,
            reports,
            resumes,
            handoffs,
            traffic,
            replay,
        } => {
            let _ = writeln!(s, "  tick");
            if let Some(r) = replay {
                let _ = writeln!(
                    s,
                    "  queued writes: {} replayed, {} retried, {} dead-lettered, {} pending{}",
                    r.replayed.len(),
                    r.retried,
                    r.dead_lettered.len(),
                    r.pending,
                    if r.gated {
                        " (traffic shift active)"
                    } else {
                        ""
                    }
                );
            }
            for p in plans {
                let _ = writeln!(
                    s,
                    "  pool of {}: {} available, {} serving, {} action(s)",
                    p.cluster,
                    p.report.available(),
                    p.report.serving(),
                    p.actions.len()
                );
            }
            for r in reports {
                if !r.returned.is_empty() {
                    let _ = writeln!(s, "    returned to the pool: {}", r.returned.join(", "));
                }
            }
            for r in resumes {
                let _ = writeln!(
                    s,
                    "  node of {} ({}): {}",
                    r.instance_id,
                    r.interruption_id,
                    serde_json::to_string(&r.decision).unwrap_or_default()
                );
            }
            for h in handoffs {
                let _ = writeln!(
                    s,
                    "  scheduled change of {} due {}: {}",
                    h.instance_id,
                    h.due_at.to_rfc3339(),
                    match (&h.error, h.handed_off) {
                        (Some(e), _) => format!("not handed off: {e}"),
                        (None, true) => "handed to the interruption function".to_owned(),
                        (None, false) => "due (dry run: not handed off)".to_owned(),
                    }
                );
            }
            for t in traffic {
                let _ = writeln!(
                    s,
                    "  rule {} ({}): {}{}",
                    t.rule,
                    t.interruption_id,
                    serde_json::to_string(&t.step).unwrap_or_default(),
                    if t.done { "" } else { " (not carried out)" }
                );
            }
        }
    }
    s
}

/// The scheduled change a plan keeps, if it keeps one.
fn scheduled(plan: &Plan) -> Option<&ScheduledChange> {
    plan.actions().find_map(|a| match a {
        Action::ScheduleHandoff(c) => Some(c),
        _ => None,
    })
}
