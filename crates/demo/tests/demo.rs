//! The demo, run as `cargo xtask demo` runs it (the built-in `demo` scenario, its own bed on
//! free loopback ports), checked against what it leaves behind: the cluster in kubesim, the
//! standby in EC2 (moto) and the timeline in DynamoDB, read here, not taken from the demo's
//! own account. Each test drops its bed, which stops moto and kubesim.

use std::collections::{BTreeMap, BTreeSet};

use costop_app::keeper::KeeperOutcome;
use costop_bed::{Bed, Scenario};
use costop_core::constants;
use costop_core::record::TimelineStep;
use costop_core::standby::StartDecision;
use costop_demo::{Functions, Options, Report, Run};
use kubesim::resources;
use kubesim::store::ListOptions;
use serde_json::Value;

async fn run_demo(options: Options) -> Run {
    let mut out = Vec::new();
    let scenario = Scenario::builtin("demo").expect("the built-in demo scenario");
    let result = costop_demo::run(scenario, &options, &mut out).await;
    // nextest shows it for a failing test.
    println!("{}", String::from_utf8_lossy(&out));
    match result {
        Ok(run) => run,
        Err(e) => panic!("the demo failed: {}", costop_app::error_chain(&e)),
    }
}

fn pods(bed: &Bed) -> Vec<Value> {
    bed.sim()
        .store()
        .list(&resources::PODS, None, &ListOptions::default())
        .0
}

fn node_name_of(bed: &Bed, instance_id: &str) -> Option<String> {
    let (nodes, _) = bed
        .sim()
        .store()
        .list(&resources::NODES, None, &ListOptions::default());
    nodes
        .iter()
        .find(|n| costop_bed::node_instance_id(n) == Some(instance_id))
        .and_then(|n| n["metadata"]["name"].as_str().map(str::to_string))
}

fn controller(p: &Value) -> Option<(String, String, String)> {
    let r = p["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"] == true)?;
    Some((
        p["metadata"]["namespace"].as_str()?.to_string(),
        r["kind"].as_str()?.to_string(),
        r["name"].as_str()?.to_string(),
    ))
}

fn key(p: &Value) -> String {
    format!(
        "{}/{}",
        p["metadata"]["namespace"].as_str().unwrap_or_default(),
        p["metadata"]["name"].as_str().unwrap_or_default()
    )
}

fn tolerates_standby(p: &Value) -> bool {
    p["spec"]["tolerations"].as_array().is_some_and(|ts| {
        ts.iter().any(|t| {
            t["key"] == constants::TAINT_STANDBY
                && t["value"] == constants::TAINT_STANDBY_VALUE
                && t["effect"] == "NoSchedule"
        })
    })
}

fn is_daemonset_pod(p: &Value) -> bool {
    controller(p).is_some_and(|(_, kind, _)| kind == "DaemonSet")
}

async fn ec2_instance(bed: &Bed, id: &str) -> aws_sdk_ec2::types::Instance {
    let out = bed
        .ec2()
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .expect("DescribeInstances");
    out.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .next()
        .cloned()
        .expect("the instance exists")
}

async fn timeline(bed: &Bed, report: &Report) -> Vec<TimelineStep> {
    let iid = report
        .interruption_id
        .as_deref()
        .expect("the interruption has an id");
    let functions = Functions::new(bed, false, std::time::Duration::from_secs(1)).unwrap();
    functions
        .timeline(iid)
        .await
        .expect("timeline")
        .into_iter()
        .map(|e| e.step)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_warns_both_functions_starts_the_standby_and_runs_every_displaced_pod_there_with_the_toleration()
 {
    let Run { bed, report } = run_demo(Options::default()).await;
    let interrupted = &report.interrupted;
    let displaced: BTreeSet<String> = report.displaced.iter().map(|p| p.key()).collect();
    assert!(
        !displaced.is_empty(),
        "the interrupted node had pods to move"
    );

    // The interruption function acted on the warning: cordoned and drained the node, evicting
    // exactly its displaced pods.
    let executed = report
        .delivery
        .interruption
        .instances
        .iter()
        .find_map(|i| i.report.as_ref())
        .expect("the interruption function executed its plan");
    let drain = executed.drain.as_ref().expect("the node was drained");
    let evicted: BTreeSet<String> = drain
        .evicted
        .iter()
        .map(|p| format!("{}/{}", p.namespace, p.name))
        .collect();
    assert_eq!(evicted, displaced, "the drain evicted the displaced pods");
    assert!(drain.remaining.is_empty(), "{drain:?}");

    // The keeper acted on the same warning: it started a standby.
    let KeeperOutcome::Standby {
        decision: StartDecision::Act(plan),
        report: Some(kept),
        ..
    } = &report.delivery.keeper
    else {
        panic!(
            "the keeper did not start a standby: {:?}",
            report.delivery.keeper
        )
    };
    assert!(kept.started, "{kept:?}");
    assert_eq!(kept.tolerated, displaced.len(), "{kept:?}");
    assert_eq!(plan.zone, interrupted.zone);

    // Both functions recorded their part on the interruption's timeline in DynamoDB.
    let steps = timeline(&bed, &report).await;
    let names: Vec<&str> = steps.iter().map(|s| s.name()).collect();
    for want in ["RECEIVED", "CORDONED", "DRAINED", "STANDBY_STARTED"] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    let tolerated_on_timeline = steps
        .iter()
        .filter(|s| matches!(s, TimelineStep::ReplacementTolerated { .. }))
        .count();
    assert_eq!(tolerated_on_timeline, displaced.len(), "{names:?}");

    // The standby runs in EC2, as the interrupted node's type, and its node is Ready.
    let standby = ec2_instance(&bed, &plan.standby).await;
    assert_eq!(
        standby.state().and_then(|s| s.name()).map(|n| n.as_str()),
        Some("running")
    );
    let spot = ec2_instance(&bed, &interrupted.instance_id).await;
    assert_eq!(standby.instance_type(), spot.instance_type());
    let standby_node = node_name_of(&bed, &plan.standby).expect("the standby has a node");
    assert_eq!(
        report.standby.as_ref().map(|s| s.node.as_str()),
        Some(standby_node.as_str())
    );

    // Every displaced pod is replaced by a pod of the same owner Running on the standby with
    // the standby toleration; the displaced pods themselves are gone.
    let all = pods(&bed);
    let uids: BTreeSet<&str> = all
        .iter()
        .filter_map(|p| p["metadata"]["uid"].as_str())
        .collect();
    let mut lost: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for p in &report.displaced {
        assert!(!uids.contains(p.uid.as_str()), "{} is still there", p.key());
        let (kind, name) = p.owner.clone().expect("displaced pods have owners");
        *lost.entry((p.namespace.clone(), kind, name)).or_default() += 1;
    }
    for (owner, count) in &lost {
        let on_standby: Vec<&Value> = all
            .iter()
            .filter(|p| controller(p).as_ref() == Some(owner))
            .filter(|p| p["spec"]["nodeName"].as_str() == Some(standby_node.as_str()))
            .filter(|p| p["status"]["phase"] == "Running")
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .filter(|p| tolerates_standby(p))
            .collect();
        assert_eq!(
            on_standby.len(),
            *count,
            "{owner:?} lost {count} pod(s); Running on the standby with the toleration: {:?}",
            on_standby.iter().map(|p| key(p)).collect::<Vec<_>>()
        );
    }

    // Nothing is Pending, and the interrupted node keeps only its DaemonSet pod.
    let pending: Vec<String> = all
        .iter()
        .filter(|p| p["status"]["phase"] != "Running" || p["spec"]["nodeName"].is_null())
        .map(key)
        .collect();
    assert!(pending.is_empty(), "pods not running: {pending:?}");
    let left: Vec<String> = all
        .iter()
        .filter(|p| p["spec"]["nodeName"].as_str() == Some(interrupted.node.as_str()))
        .filter(|p| !is_daemonset_pod(p))
        .map(key)
        .collect();
    assert!(left.is_empty(), "still on the interrupted node: {left:?}");

    // The requests sent through the load balancer all the while: the interrupted node served
    // some, their share went to the fallback, its queued writes were replayed, none failed.
    let traffic = report.traffic.as_ref().expect("the demo sends traffic");
    assert!(traffic.sent > 0, "{traffic:?}");
    assert_eq!(traffic.failed, 0, "{traffic:?}");
    assert_eq!(traffic.lost_writes, 0, "{traffic:?}");
    assert_eq!(traffic.succeeded, traffic.sent, "{traffic:?}");
    assert!(
        traffic.queued > 0,
        "no write went to the fallback: {traffic:?}"
    );
    assert_eq!(traffic.replayed as u64, traffic.queued, "{traffic:?}");
    for step in ["OUT_OF_ROTATION", "TRAFFIC_SHIFTED", "ROTATION_SETTLED"] {
        assert!(names.contains(&step), "{step} missing from {names:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_of_the_demo_plans_both_functions_and_changes_nothing() {
    let Run { bed, report } = run_demo(Options {
        dry_run: true,
        ..Options::default()
    })
    .await;
    assert!(report.standby.is_none());
    assert!(
        report.delivery.interruption.plans().next().is_some(),
        "the interruption function planned"
    );
    assert!(
        report
            .delivery
            .interruption
            .instances
            .iter()
            .all(|i| i.report.is_none()),
        "the interruption function executed nothing"
    );
    let KeeperOutcome::Standby {
        decision: StartDecision::Act(plan),
        report: None,
        ..
    } = &report.delivery.keeper
    else {
        panic!(
            "the keeper should plan a start and not execute it: {:?}",
            report.delivery.keeper
        )
    };
    let standby = ec2_instance(&bed, &plan.standby).await;
    assert_eq!(
        standby.state().and_then(|s| s.name()).map(|n| n.as_str()),
        Some("stopped")
    );
    // The displaced pods still run where they ran.
    let all = pods(&bed);
    for p in &report.displaced {
        let now = all
            .iter()
            .find(|q| q["metadata"]["uid"] == p.uid.as_str())
            .unwrap_or_else(|| panic!("{} is gone", p.key()));
        assert_eq!(
            now["spec"]["nodeName"].as_str(),
            Some(report.interrupted.node.as_str())
        );
        assert_eq!(now["status"]["phase"], "Running");
    }
}
