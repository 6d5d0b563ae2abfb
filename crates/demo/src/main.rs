//! The demo: start the local bed's default scenario, deliver the captured Spot Instance
//! Interruption Warning for one spot node through the real function code (the same handler and
//! adapters the Lambda runs, against moto and kubesim) — to the interruption function and the
//! keeper at once, as the EventBridge rule's two targets do — then print the interruption's
//! timeline as recorded in DynamoDB and the resulting cluster state, the started standby in it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use costop_app::handler::read;
use costop_app::keeper::{Keeper, KeeperOutcome};
use costop_app::{Handler, HasRecords, Mode, telemetry};
use costop_bed::{Bed, Scenario};
use costop_core::Config;
use costop_core::standby::StartDecision;
use kubesim::resources;
use kubesim::store::ListOptions;
use serde_json::Value;

/// The captured event the demo replays (its instance id and time are set to the chosen node's).
const SPOT_WARNING: &str =
    include_str!("../../../events/aws.ec2-spot-instance-interruption-warning-terminate.json");

#[derive(Parser)]
#[command(about = "costop on the local bed: a Spot warning handled end to end")]
struct Args {
    /// Scenario file (default: the built-in default scenario).
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Only print the plan (dry run): nothing is changed.
    #[arg(long)]
    dry_run: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    telemetry::init_text_logs(&std::env::var("COSTOP_DEMO_LOG").unwrap_or_else(|_| "warn".into()));
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo failed: {}", costop_app::error_chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

async fn run(args: Args) -> Result<(), BoxError> {
    let scenario = match &args.scenario {
        Some(p) => Scenario::from_file(p)?,
        None => Scenario::default_scenario(),
    };
    println!(
        "== 1. The local bed: scenario {:?} ({})",
        scenario.name, scenario.description
    );
    let bed = Bed::start(scenario).await?;
    let t = bed.timings();
    println!(
        "   moto at {} and kubesim at {} (started in {:.1} s)",
        bed.endpoint_url(),
        bed.sim().url(),
        t.total
    );
    println!("   KUBECONFIG={}", bed.kubeconfig_path().display());
    bed.wait_ready(Duration::from_secs(120)).await?;
    println!("\n== 2. The cluster before");
    print_cluster(&bed);

    let (instance_id, node) = pick_spot_node(&bed).ok_or("the scenario has no Ready spot node")?;
    let event = spot_warning(&instance_id)?;
    println!(
        "\n== 3. EC2: Spot Instance Interruption Warning for {instance_id} (node {node}), two minutes left"
    );

    // The keeper watches for replacement pods 15 s here (240 s by default) so the demo ends soon.
    let env = bed.env().into_iter().chain([
        ("COSTOP_DRY_RUN".to_string(), args.dry_run.to_string()),
        ("COSTOP_STANDBY_WATCH_SECONDS".to_string(), "15".to_string()),
    ]);
    let config = Config::from_env(env)?;
    let world = || -> Result<_, BoxError> {
        let access = costop_adapters::ClusterAccess::kubeconfig_file(bed.kubeconfig_path())?;
        Ok(costop_adapters::AwsWorld::new(
            bed.aws_config(),
            &config,
            access,
            Default::default(),
        ))
    };
    let handler = Handler::new(world()?, config.clone());
    let keeper = Keeper::new(world()?, config.clone());
    let mode = if args.dry_run {
        Mode::DryRun
    } else {
        Mode::Execute
    };
    let started = Instant::now();
    let keeping = async {
        let outcome = Box::pin(keeper.handle(&event, mode)).await;
        (outcome, started.elapsed())
    };
    let handling = async {
        let outcome = handler.handle(&event, mode).await;
        (outcome, started.elapsed())
    };
    let ((outcome, handled_in), (kept, kept_in)) = tokio::join!(handling, keeping);
    let outcome = outcome?;
    println!("   handled in {handled_in:.2?} by the costop-interruption handler");
    match kept? {
        KeeperOutcome::Standby {
            decision: StartDecision::Act(p),
            report,
            ..
        } => {
            let retyped = p.actions.iter().any(|a| a.name() == "retype_standby");
            println!(
                "   keeper: standby {} in {} {} as {}{}, {} replacement pod(s) tolerated (watch over after {:.2?})",
                p.standby,
                p.zone,
                if report.is_some() {
                    "started"
                } else {
                    "would be started"
                },
                p.instance_type,
                if retyped {
                    " (retyped while stopped)"
                } else {
                    ""
                },
                report.map_or(0, |r| r.tolerated),
                kept_in
            );
        }
        KeeperOutcome::Standby {
            decision: StartDecision::Join { plan, .. },
            report,
            ..
        } => println!(
            "   keeper: standby {} already serves this interruption; joined it, {} replacement pod(s) tolerated (watch over after {:.2?})",
            plan.standby,
            report.map_or(0, |r| r.tolerated),
            kept_in
        ),
        KeeperOutcome::Standby {
            decision: StartDecision::NoStandby { reason, .. },
            ..
        } => {
            println!("   keeper: no standby started: {}", reason.describe())
        }
        other => println!("   keeper: {}", serde_json::to_string(&other)?),
    }
    let Some(plan) = outcome.plans().next().cloned() else {
        println!(
            "   costop ignored it: {}",
            serde_json::to_string(&outcome.instances)?
        );
        return Ok(());
    };
    println!(
        "   plan ({} actions): {}",
        plan.steps.len(),
        plan.actions()
            .map(|a| a.name())
            .collect::<Vec<_>>()
            .join(" → ")
    );
    if let Some(report) = outcome.instances.iter().find_map(|i| i.report.as_ref()) {
        if let Some(ms) = report.time_to_cordon_ms {
            println!("   cordoned + tainted + excluded from load balancers after {ms} ms");
        }
        println!("   deregistered {} target(s)", report.targets_deregistered);
        if let Some(d) = &report.drain {
            println!(
                "   drained: {} pod(s) evicted, {} PDB retries, every eviction issued after {} ms{}",
                d.evicted.len(),
                d.eviction_retries,
                d.all_issued_ms,
                if d.remaining.is_empty() {
                    String::new()
                } else {
                    format!(", {} left at the deadline", d.remaining.len())
                }
            );
        }
    }
    if args.dry_run {
        println!(
            "\n(dry run: nothing was changed)\n{}",
            serde_json::to_string_pretty(&plan)?
        );
        return Ok(());
    }

    println!(
        "\n== 4. The interruption timeline, read back from DynamoDB ({})",
        plan.interruption_id
    );
    for item in read::timeline(handler.world().records(), &plan.interruption_id).await? {
        if let Ok(e) = costop_core::record::TimelineEntry::from_item(&item) {
            let pod = e.step.pod().map(|p| format!(" {p}")).unwrap_or_default();
            println!(
                "   {}  {}{}",
                e.at.format("%H:%M:%S%.3f"),
                e.step.name(),
                pod
            );
        }
    }

    // Let the replacements land (the scheduler and kubelet run at the scenario's time scale).
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!("\n== 5. The cluster after");
    print_cluster(&bed);
    Ok(())
}

fn pick_spot_node(bed: &Bed) -> Option<(String, String)> {
    let (nodes, _) = bed
        .sim()
        .store()
        .list(&resources::NODES, None, &ListOptions::default());
    nodes.iter().find_map(|n| {
        let spot = n
            .pointer("/metadata/labels/eks.amazonaws.com~1capacityType")
            .and_then(Value::as_str)
            == Some("SPOT");
        let id = costop_bed::node_instance_id(n)?;
        (spot && costop_bed::node_ready(n)).then(|| {
            (
                id.to_string(),
                n["metadata"]["name"].as_str().unwrap_or("").to_string(),
            )
        })
    })
}

/// The captured event, re-addressed to `instance_id` and dated now.
fn spot_warning(instance_id: &str) -> Result<Value, BoxError> {
    let mut ev: Value = serde_json::from_str(SPOT_WARNING)?;
    ev["id"] = Value::String(uuid::Uuid::new_v4().to_string());
    ev["time"] = Value::String(chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string());
    let arn = ev["resources"][0].as_str().unwrap_or_default();
    let prefix = arn
        .rsplit_once('/')
        .map(|(p, _)| p.to_string())
        .unwrap_or_default();
    ev["resources"] = serde_json::json!([format!("{prefix}/{instance_id}")]);
    ev["detail"]["instance-id"] = Value::String(instance_id.to_string());
    Ok(ev)
}

fn print_cluster(bed: &Bed) {
    let store = bed.sim().store();
    let (nodes, _) = store.list(&resources::NODES, None, &ListOptions::default());
    let (pods, _) = store.list(&resources::PODS, None, &ListOptions::default());
    let mut per_node: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut pending = Vec::new();
    for p in &pods {
        let name = p["metadata"]["name"].as_str().unwrap_or("?");
        let terminating = p["metadata"].get("deletionTimestamp").is_some();
        let phase = p
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or("?");
        match p.pointer("/spec/nodeName").and_then(Value::as_str) {
            Some(n) if !n.is_empty() => per_node.entry(n).or_default().push(if terminating {
                format!("{name}(terminating)")
            } else {
                name.to_string()
            }),
            _ => pending.push(format!("{name}({phase})")),
        }
    }
    println!(
        "   {:<30} {:<9} {:<11} {:<28} {:<6} PODS",
        "NODE", "CAPACITY", "ZONE", "STATUS", "TAINTS"
    );
    for n in &nodes {
        let name = n["metadata"]["name"].as_str().unwrap_or("?");
        let labels = &n["metadata"]["labels"];
        let cap = labels["eks.amazonaws.com/capacityType"]
            .as_str()
            .unwrap_or("-");
        let zone = labels["topology.kubernetes.io/zone"]
            .as_str()
            .unwrap_or("-");
        let mut status = if costop_bed::node_ready(n) {
            "Ready".to_string()
        } else {
            "NotReady".to_string()
        };
        if n.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
            status.push_str(",SchedulingDisabled");
        }
        if labels
            .get("node.kubernetes.io/exclude-from-external-load-balancers")
            .is_some()
        {
            status.push_str(",NoLB");
        }
        let taints: Vec<String> = n
            .pointer("/spec/taints")
            .and_then(Value::as_array)
            .map(|ts| {
                ts.iter()
                    .filter_map(|t| {
                        t["key"]
                            .as_str()
                            .map(|k| k.rsplit('/').next().unwrap_or(k).to_string())
                    })
                    .collect()
            })
            .unwrap_or_default();
        let on = per_node.get(name).map(Vec::len).unwrap_or(0);
        println!(
            "   {name:<30} {cap:<9} {zone:<11} {status:<28} {:<6} {on}",
            if taints.is_empty() {
                "-".into()
            } else {
                taints.join(",")
            }
        );
    }
    if !pending.is_empty() {
        println!("   pending: {}", pending.join(", "));
    }
}
