//! The demo: costop's whole answer to a Spot interruption, on the local bed. [`run`] starts the
//! bed with a scenario (the built-in `demo`: a cluster too full for the interrupted node's pods,
//! a stopped warm standby per zone), delivers the captured Spot Instance Interruption Warning
//! for one spot node to the interruption function and the keeper at once (the real function
//! code and adapters, against moto and kubesim), waits until the displaced pods run on the
//! standby the keeper started, and narrates each step: what happened and how long it took, the
//! timeline both functions recorded in DynamoDB, and the cluster before and after.
//!
//! The binary `costop-demo` (`cargo xtask demo`) runs it on stdout; the tests run it on a buffer
//! and check the cluster it leaves.

pub mod cluster;
pub mod describe;
pub mod displaced;
mod error;
pub mod functions;
pub mod narrate;
pub mod traffic;
pub mod warning;

use std::collections::BTreeSet;
use std::io::Write;
use std::time::{Duration, Instant};

use costop_app::Mode;
use costop_app::keeper::KeeperOutcome;
use costop_bed::{Bed, Scenario};
use costop_core::standby::StartDecision;

pub use error::DemoError;
pub use functions::{Delivery, Functions};
use traffic::Traffic;

use cluster::{ClusterView, Marks, PodView};
use displaced::Placement;
use narrate::{Narrator, secs};

/// How the demo runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Only plan: nothing is changed, the run stops after the plans.
    pub dry_run: bool,
    /// The keeper's replacement watch window (it ends sooner once every replacement has the
    /// toleration).
    pub keeper_watch: Duration,
    /// How long to wait for the bed's nodes to be Ready and its pods Running.
    pub ready_timeout: Duration,
    /// How long to wait, after the functions return, for the displaced pods to run on the
    /// standby.
    pub standby_timeout: Duration,
    /// How long the traffic through the load balancer runs (from before the warning), when the
    /// scenario has one.
    pub traffic: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            dry_run: false,
            keeper_watch: Duration::from_secs(30),
            ready_timeout: Duration::from_secs(120),
            standby_timeout: Duration::from_secs(60),
            traffic: Duration::from_secs(40),
        }
    }
}

/// The interrupted spot node.
#[derive(Debug, Clone)]
pub struct Interrupted {
    pub instance_id: String,
    pub node: String,
    pub zone: String,
}

/// The standby the keeper started, and its node.
#[derive(Debug, Clone)]
pub struct Standby {
    pub instance_id: String,
    pub node: String,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct Report {
    pub interrupted: Interrupted,
    /// The interrupted node's pods that a controller recreates elsewhere, before the warning.
    pub displaced: Vec<PodView>,
    /// What each function did with the warning.
    pub delivery: Delivery,
    /// The interruption's id (the timeline's key).
    pub interruption_id: Option<String>,
    /// The started standby (none in a dry run).
    pub standby: Option<Standby>,
    /// The displaced pods' replacements running on the standby.
    pub on_standby: Vec<PodView>,
    /// Those running on another node, which had room (none in the `demo` scenario).
    pub elsewhere: Vec<PodView>,
    /// The requests sent through the load balancer during the run, when the scenario has one.
    pub traffic: Option<traffic::TrafficSummary>,
    /// The whole run, bed start included.
    pub took: Duration,
}

/// A finished run: its report and the bed, still up so the caller can look at what it left
/// (dropping it stops moto and kubesim).
pub struct Run {
    pub bed: Bed,
    pub report: Report,
}

/// Run the demo on `scenario`, narrating to `out`.
pub async fn run(
    scenario: Scenario,
    options: &Options,
    out: &mut dyn Write,
) -> Result<Run, DemoError> {
    let mut say = Narrator::new(out);
    writeln!(
        say.out(),
        "costop demo: a Spot interruption handled end to end on the local bed{}",
        if options.dry_run { " (dry run)" } else { "" }
    )?;

    say.step(&format!(
        "Start the local bed, scenario `{}`: {}",
        scenario.name, scenario.description
    ))?;
    let t = Instant::now();
    let bed = Bed::start(scenario).await.map_err(DemoError::Bed)?;
    say.say(&format!(
        "moto (EC2, Auto Scaling, ELBv2) at {}, DynamoDB's moto at {}, kubesim (the Kubernetes API) at {}",
        bed.endpoint_url(),
        bed.dynamodb_endpoint_url(),
        bed.sim().url()
    ))?;
    say.say(&format!(
        "KUBECONFIG={} (kubectl works against it while the demo runs)",
        bed.kubeconfig_path().display()
    ))?;
    say.took(t.elapsed())?;

    say.step("Wait until every node is Ready and every pod Running")?;
    let t = Instant::now();
    bed.wait_ready(options.ready_timeout)
        .await
        .map_err(DemoError::Bed)?;
    say.took(t.elapsed())?;
    let before = ClusterView::read(bed.sim());
    let Some(spot) = warning::pick_spot_node(&before) else {
        return Err(DemoError::NoSpotNode {
            scenario: bed.scenario().name.clone(),
        });
    };
    let interrupted = Interrupted {
        instance_id: spot.instance_id.clone().unwrap_or_default(),
        node: spot.name.clone(),
        zone: spot.zone.clone(),
    };
    let displaced = displaced::displaced(&before, &interrupted.node);
    let before_uids: BTreeSet<String> = before.pods.iter().map(|p| p.uid.clone()).collect();
    say.say("The cluster before (each node, then its pods):")?;
    let marks = Marks {
        stopped_standbys: stopped_standbys(&bed, &before),
        ..Marks::default()
    };
    cluster::render(&before, &marks, say.out())?;

    let load = if options.dry_run {
        None
    } else {
        Traffic::start(&bed, options.traffic).await?
    };
    if let Some(load) = &load {
        say.step("Send traffic through the load balancer")?;
        say.say(&format!(
            "{:.0} requests/s (a quarter writes) to {} for {}, through the interruption",
            load.rate,
            load.url,
            secs(load.duration)
        ))?;
    }

    say.step(&format!(
        "EC2 warns that spot instance {} (node {}, {}) will be interrupted in two minutes",
        interrupted.instance_id, interrupted.node, interrupted.zone
    ))?;
    say.say(&format!(
        "{} pod(s) on the node must move: {}",
        displaced.len(),
        displaced
            .iter()
            .map(|p| format!("{} ({}m cpu)", p.key(), p.cpu_m))
            .collect::<Vec<_>>()
            .join(", ")
    ))?;
    say.say(&room_elsewhere(&before, &interrupted.node, &displaced))?;
    say.say(
        "The warning goes to costop's two functions at once, as the EventBridge rule's two targets do:",
    )?;
    let event = warning::spot_warning(&interrupted.instance_id).map_err(DemoError::Event)?;
    let functions = Functions::new(&bed, options.dry_run, options.keeper_watch)?;
    let mode = if options.dry_run {
        Mode::DryRun
    } else {
        Mode::Execute
    };
    let delivery = functions.deliver(&event, mode).await?;
    for line in describe::interruption(&delivery.interruption, delivery.interruption_took, mode) {
        say.say(&line)?;
    }
    for line in describe::keeper(&delivery.keeper, delivery.keeper_took) {
        say.say(&line)?;
    }
    let interruption_id = delivery
        .interruption
        .plans()
        .next()
        .map(|p| p.interruption_id.clone());

    if options.dry_run {
        say.say("(dry run: nothing was changed)")?;
        if let Some(plan) = delivery.interruption.plans().next() {
            let json = serde_json::to_string_pretty(plan).map_err(DemoError::PlanJson)?;
            writeln!(say.out(), "{json}")?;
        }
        let took = say.elapsed();
        return Ok(Run {
            bed,
            report: Report {
                interrupted,
                displaced,
                delivery,
                interruption_id,
                standby: None,
                on_standby: Vec::new(),
                elsewhere: Vec::new(),
                traffic: None,
                took,
            },
        });
    }
    let Some(interruption_id) = interruption_id else {
        return Err(DemoError::Ignored {
            instance_id: interrupted.instance_id.clone(),
            why: describe::interruption(&delivery.interruption, delivery.interruption_took, mode)
                .join(" "),
        });
    };
    let standby_instance = started_standby(&delivery.keeper)?;

    say.step(
        "Wait until the displaced pods run again (on the standby, where no other node has room)",
    )?;
    let (placement, standby_node, waited) = displaced::wait_on_standby(
        bed.sim(),
        &displaced,
        &before_uids,
        &standby_instance,
        options.standby_timeout,
    )
    .await;
    let standby_node = match standby_node {
        Some(node) if placement.done() => node,
        node => {
            return Err(not_on_standby(
                placement,
                &standby_instance,
                node.as_deref(),
                waited,
            ));
        }
    };
    for p in &placement.on_standby {
        say.say(&format!(
            "{} Running on the standby {standby_node} with the standby toleration",
            p.key(),
        ))?;
    }
    for p in &placement.elsewhere {
        say.say(&format!(
            "{} Running on {}, which had room: it needed no standby",
            p.key(),
            p.node.as_deref().unwrap_or("?")
        ))?;
    }
    let functions_took = delivery.interruption_took.max(delivery.keeper_took);
    if waited < Duration::from_millis(100) {
        say.say(&format!(
            "(already so when both functions returned, {} after the warning)",
            secs(functions_took)
        ))?;
    } else {
        say.say(&format!(
            "(took {} after both functions returned; {} after the warning)",
            secs(waited),
            secs(functions_took + waited)
        ))?;
    }

    say.step(&format!(
        "The interruption's timeline, as both functions recorded it in DynamoDB ({interruption_id})"
    ))?;
    let timeline = functions.timeline(&interruption_id).await?;
    if let Some(first) = timeline.first().map(|e| e.at) {
        for e in &timeline {
            say.say(&describe::timeline_entry(e, first))?;
        }
    }

    say.step("The cluster after (each node, then its pods)")?;
    let after = ClusterView::read(bed.sim());
    let marks = Marks {
        interrupted: Some(interrupted.node.clone()),
        standby: Some(standby_node.clone()),
        replacements: placement
            .on_standby
            .iter()
            .chain(&placement.elsewhere)
            .map(|p| p.uid.clone())
            .collect(),
        stopped_standbys: stopped_standbys(&bed, &after),
    };
    cluster::render(&after, &marks, say.out())?;

    let traffic = match load {
        Some(load) => Some(traffic_step(&mut say, &bed, &functions, load).await?),
        None => None,
    };

    let took = say.elapsed();
    let summary = if placement.elsewhere.is_empty() {
        format!(
            "the {} pod(s) displaced from {} run on the standby {standby_node}, whose taint keeps \
             every other pod but the DaemonSets' off",
            placement.on_standby.len(),
            interrupted.node,
        )
    } else {
        format!(
            "of the {} pod(s) displaced from {}, {} run on the standby {standby_node} and {} found room elsewhere",
            displaced.len(),
            interrupted.node,
            placement.on_standby.len(),
            placement.elsewhere.len()
        )
    };
    writeln!(say.out(), "\nDone in {}: {summary}.", secs(took))?;
    Ok(Run {
        bed,
        report: Report {
            interrupted,
            displaced,
            delivery,
            interruption_id: Some(interruption_id),
            standby: Some(Standby {
                instance_id: standby_instance,
                node: standby_node,
            }),
            on_standby: placement.on_standby,
            elsewhere: placement.elsewhere,
            traffic,
            took,
        },
    })
}

/// Ticks of the keeper's schedule after the traffic, at most, for the shift to be put back and
/// the queued writes replayed.
const TRAFFIC_TICKS: usize = 60;

/// The traffic's end: the keeper's ticks put the shifted traffic back and replay what the
/// fallback queued, then every request is counted.
async fn traffic_step(
    say: &mut Narrator<'_>,
    bed: &Bed,
    functions: &Functions,
    load: Traffic,
) -> Result<traffic::TrafficSummary, DemoError> {
    say.step("The traffic: the keeper's ticks put the shifted traffic back and replay the writes the fallback queued")?;
    let t = Instant::now();
    let mut replayed = 0;
    let mut dead_lettered = 0;
    let mut ticks = 0;
    loop {
        let tick = functions.tick().await?;
        ticks += 1;
        replayed += tick.replayed;
        dead_lettered += tick.dead_lettered;
        if tick.restored > 0 {
            say.say(&format!(
                "tick {ticks}: {} rule(s) put back as they were",
                tick.restored
            ))?;
        }
        if tick.replayed > 0 {
            say.say(&format!(
                "tick {ticks}: {} queued write(s) replayed to the service",
                tick.replayed
            ))?;
        }
        let settled = tick.shifted == 0 && tick.pending == 0;
        if (settled && load.is_finished()) || ticks >= TRAFFIC_TICKS {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let summary = load.finish(bed, replayed, dead_lettered).await?;
    say.say(&format!(
        "sent {}, succeeded {}, queued {} (replayed {}, dead-lettered {}), failed {}, acknowledged writes lost {}",
        summary.sent,
        summary.succeeded,
        summary.queued,
        summary.replayed,
        summary.dead_lettered,
        summary.failed,
        summary.lost_writes
    ))?;
    if !summary.failed_by_status.is_empty() {
        say.say(&format!(
            "failures by status (0: no answer): {}",
            summary
                .failed_by_status
                .iter()
                .map(|(s, n)| format!("{s} × {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))?;
    }
    say.took(t.elapsed())?;
    Ok(summary)
}

/// The standby the keeper started (or joined): its instance id.
fn started_standby(outcome: &KeeperOutcome) -> Result<String, DemoError> {
    match outcome {
        KeeperOutcome::Standby {
            decision: StartDecision::Act(plan) | StartDecision::Join { plan, .. },
            report: Some(_),
            ..
        } => Ok(plan.standby.clone()),
        KeeperOutcome::Standby {
            decision: StartDecision::NoStandby { reason, .. },
            ..
        } => Err(DemoError::NoStandby {
            why: reason.describe(),
        }),
        other => Err(DemoError::NoStandby {
            why: serde_json::to_string(other).unwrap_or_default(),
        }),
    }
}

fn not_on_standby(
    placement: Placement,
    standby: &str,
    node: Option<&str>,
    waited: Duration,
) -> DemoError {
    let mut waiting = placement.waiting;
    if node.is_none() {
        waiting.push(format!("the standby {standby} has not registered a node"));
    }
    DemoError::NotOnStandby {
        waited,
        standby: match node {
            Some(n) => format!("{standby} (node {n})"),
            None => standby.to_string(),
        },
        waiting,
    }
}

/// Whether the displaced pods need the standby: the CPU free on every other node that could
/// take pods (Ready, schedulable, untainted), against the smallest displaced pod.
fn room_elsewhere(view: &ClusterView, interrupted: &str, displaced: &[PodView]) -> String {
    let smallest = displaced.iter().map(|p| p.cpu_m).min().unwrap_or(0);
    let free: Vec<(String, i64)> = view
        .nodes
        .iter()
        .filter(|n| n.name != interrupted && n.ready && !n.unschedulable && n.taints.is_empty())
        .map(|n| {
            let used: i64 = view.pods_on(&n.name).map(|p| p.cpu_m).sum();
            (n.name.clone(), n.cpu_allocatable_m - used)
        })
        .collect();
    let verdict = if free.iter().all(|(_, f)| *f < smallest) {
        "so the only room is on a stopped standby"
    } else {
        "so some may find room there before a standby is up"
    };
    format!(
        "CPU free on the other nodes: {}; the smallest of those pods needs {smallest}m, {verdict}.",
        free.iter()
            .map(|(n, f)| format!("{n} {f}m"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The bed's standbys with no node in `view`: (instance id, zone).
fn stopped_standbys(bed: &Bed, view: &ClusterView) -> Vec<(String, String)> {
    bed.world()
        .node_groups
        .values()
        .filter(|g| g.standby)
        .flat_map(|g| &g.instances)
        .filter(|i| view.node_of(&i.instance_id).is_none())
        .map(|i| (i.instance_id.clone(), i.availability_zone.clone()))
        .collect()
}
