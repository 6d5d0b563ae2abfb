//! Nodes that come back, end to end on both worlds (`on_both!`): a Spot warning that stops
//! (not terminates) the instance cordons and taints its node; once the instance runs again and
//! its node is Ready, the keeper's tick gives the node back exactly what costop took and
//! records RESUMED on the interruption's timeline.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use costop_app::keeper::KeeperOutcome;
use costop_app::{Ec2, HasEc2, Mode};
use costop_core::constants;
use costop_core::record::TimelineStep;
use costop_core::resume::ResumeDecision;
use costop_tests::{Harness, Setup, events, eventually, on_both, spot_nodes};
use kubesim::resources;
use kubesim::store::ListOptions;
use serde_json::{Value, json};

fn setup() -> Setup {
    Setup::default_scenario().with_env("COSTOP_RESUME_SETTLE_SECONDS", "0")
}

fn node(h: &impl Harness, name: &str) -> Value {
    let (nodes, _) = h
        .sim()
        .store()
        .list(&resources::NODES, None, &ListOptions::default());
    nodes
        .into_iter()
        .find(|n| n["metadata"]["name"] == name)
        .expect("the node exists")
}

fn taint_keys(n: &Value) -> Vec<String> {
    n["spec"]["taints"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .filter_map(|t| t["key"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

async fn tick<H: Harness>(h: &H) -> Vec<costop_app::keeper::ResumeReport> {
    match h
        .keeper()
        .handle(&events::scheduled_tick(Utc::now()), Mode::Execute)
        .await
        .expect("the tick succeeds")
    {
        KeeperOutcome::Tick { resumes, .. } => resumes,
        other => panic!("not a tick: {other:?}"),
    }
}

async fn a_node_stopped_by_a_spot_warning_is_given_back_when_its_instance_runs_again<H: Harness>(
    h: H,
) {
    let (instance, node_name) = spot_nodes(h.sim()).into_iter().next().expect("a spot node");
    // A stop warning whose two minutes are already over.
    let mut warning = events::spot_warning(&instance, Utc::now() - TimeDelta::seconds(150));
    warning["detail"]["instance-action"] = json!("stop");
    let outcome = h
        .handler()
        .handle(&warning, Mode::Execute)
        .await
        .expect("handled");
    let plan = outcome.plans().next().expect("a plan").clone();
    let marked = node(&h, &node_name);
    assert_eq!(marked["spec"]["unschedulable"], true, "[{}]", h.flavor());
    assert!(taint_keys(&marked).contains(&constants::TAINT_SPOT_INTERRUPTION.to_string()));

    // Still running, before EC2 stopped it: nothing is given back yet.
    h.keeper()
        .world()
        .ec2()
        .stop(&instance)
        .await
        .expect("stop");
    let waiting = tick(&h).await;
    assert!(
        waiting
            .iter()
            .all(|r| matches!(r.decision, ResumeDecision::Wait { .. })),
        "[{}] a stopped instance is waited for: {waiting:?}",
        h.flavor()
    );
    assert_eq!(node(&h, &node_name)["spec"]["unschedulable"], true);

    h.keeper()
        .world()
        .ec2()
        .start(&instance)
        .await
        .expect("start");
    eventually(
        "the node to be Ready again",
        Duration::from_secs(30),
        || costop_bed::node_ready(&node(&h, &node_name)),
    )
    .await;
    let resumed = tick(&h).await;
    assert!(
        resumed.iter().any(|r| r.instance_id == instance
            && r.done
            && matches!(r.decision, ResumeDecision::Restore { .. })),
        "[{}] restored: {resumed:?}",
        h.flavor()
    );
    let back = node(&h, &node_name);
    assert_ne!(
        back["spec"]["unschedulable"],
        true,
        "[{}] {back:#}",
        h.flavor()
    );
    assert!(
        !taint_keys(&back)
            .iter()
            .any(|k| k.starts_with("costop.io/")),
        "[{}] costop's taints gone: {back:#}",
        h.flavor()
    );
    assert!(
        back["metadata"]["labels"]
            .get(constants::LABEL_EXCLUDE_FROM_EXTERNAL_LB)
            .is_none(),
        "[{}] back in the load balancers: {back:#}",
        h.flavor()
    );
    let steps: Vec<TimelineStep> = costop_tests::timeline(&h, &plan.interruption_id)
        .await
        .into_iter()
        .map(|e| e.step)
        .collect();
    assert!(
        steps.iter().any(|s| s.name() == "RESUMED"),
        "[{}] {steps:?}",
        h.flavor()
    );
    // The watch is gone: the next tick has nothing to say about it.
    assert!(
        tick(&h).await.iter().all(|r| r.instance_id != instance),
        "[{}] the watch was dropped",
        h.flavor()
    );
}
on_both!(
    a_node_stopped_by_a_spot_warning_is_given_back_when_its_instance_runs_again,
    setup()
);

async fn a_rebalance_recommendations_taint_is_put_then_taken_off_when_no_interruption_follows<
    H: Harness,
>(
    h: H,
) {
    let (instance, node_name) = spot_nodes(h.sim()).into_iter().next().expect("a spot node");
    let outcome = h
        .handler()
        .handle(&events::rebalance(&instance, Utc::now()), Mode::Execute)
        .await
        .expect("handled");
    let plan = outcome.plans().next().expect("a plan").clone();
    let tainted = node(&h, &node_name);
    let rebalance = tainted["spec"]["taints"]
        .as_array()
        .and_then(|ts| {
            ts.iter()
                .find(|t| t["key"] == constants::TAINT_REBALANCE_RECOMMENDATION)
        })
        .cloned()
        .expect("the rebalance taint");
    assert_eq!(rebalance["effect"], "PreferNoSchedule", "[{}]", h.flavor());
    assert_ne!(
        tainted["spec"]["unschedulable"],
        true,
        "[{}] not cordoned",
        h.flavor()
    );

    // COSTOP_REBALANCE_TAINT_SECONDS is 1 here: the next tick takes it off.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let resumed = tick(&h).await;
    assert!(
        resumed.iter().any(|r| r.instance_id == instance && r.done),
        "[{}] {resumed:?}",
        h.flavor()
    );
    assert!(
        !taint_keys(&node(&h, &node_name))
            .contains(&constants::TAINT_REBALANCE_RECOMMENDATION.to_string()),
        "[{}] the taint is gone",
        h.flavor()
    );
    let steps: Vec<String> = costop_tests::timeline(&h, &plan.interruption_id)
        .await
        .iter()
        .map(|e| e.step.name().to_string())
        .collect();
    for want in ["TAINTED", "RESUMED"] {
        assert!(
            steps.iter().any(|s| s == want),
            "[{}] {steps:?}",
            h.flavor()
        );
    }
}
on_both!(
    a_rebalance_recommendations_taint_is_put_then_taken_off_when_no_interruption_follows,
    setup().with_env("COSTOP_REBALANCE_TAINT_SECONDS", "1")
);
