//! The interruption path end to end, each body run twice by `on_both!`: with in-memory AWS fakes
//! (fast) and with the real adapters against moto (the bed); kubesim is the cluster in both.

use std::time::{Duration, Instant};

use chrono::Utc;
use costop_app::drain::DrainReport;
use costop_app::ports::Ec2;
use costop_app::{HandlerError, HasEc2, Mode, Outcome, Retryable};
use costop_bed::LifecycleAction;
use costop_core::record::TimelineStep;
use costop_core::{Decision, IgnoreReason};
use costop_tests::{
    Harness, Setup, events, is_daemonset_pod, node, on_both, pin_to, pod_ref, pods_on, spot_nodes,
};
use kubesim::resources;
use serde_json::Value;

const WEB_TG: &str = "costop-dev-web";
const API_TG: &str = "costop-dev-api";

fn cordoned(n: &Value) -> bool {
    n.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true)
}

fn taint_keys(n: &Value) -> Vec<String> {
    n.pointer("/spec/taints")
        .and_then(Value::as_array)
        .map(|ts| {
            ts.iter()
                .filter_map(|t| t["key"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

async fn timeline<H: Harness>(h: &H, interruption_id: &str) -> Vec<TimelineStep> {
    costop_tests::timeline(h, interruption_id)
        .await
        .into_iter()
        .map(|e| e.step)
        .collect()
}

fn pinned_deployment(name: &str, replicas: u32, pdb: &str) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: default}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}, pinned: "true"}}}}
    spec:
      terminationGracePeriodSeconds: 30
      containers: [{{name: c, image: nginx, resources: {{requests: {{cpu: 10m, memory: 16Mi}}}}}}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {{name: {name}, namespace: default}}
spec:
  {pdb}
  selector: {{matchLabels: {{app: {name}}}}}
"#
    )
}

/// The drain report of a delivery's (first) instance.
fn drained(outcome: &Outcome) -> DrainReport {
    outcome.instances[0]
        .report
        .as_ref()
        .and_then(|r| r.drain.clone())
        .expect("the delivery drained")
}

/// Delete the PDB `name` (in `default`): its pods may go.
fn remove_pdb<H: Harness>(h: &H, name: &str) {
    h.sim()
        .store()
        .delete(
            &resources::PODDISRUPTIONBUDGETS,
            Some("default"),
            name,
            &Default::default(),
        )
        .expect("PDB removed");
}

// ---------------------------------------------------------------------------------------------

async fn a_spot_warning_cordons_taints_deregisters_and_drains_the_node<H: Harness>(h: H) {
    let (instance, node_name) = spot_nodes(h.sim()).into_iter().next().expect("a spot node");
    let ip = costop_tests::node_ip(h.sim(), &node_name);
    assert!(
        h.target_ids(WEB_TG).await.contains(&instance),
        "{}: registered before",
        h.flavor()
    );
    let outcome = h
        .handler()
        .handle(&events::spot_warning(&instance, Utc::now()), Mode::Execute)
        .await
        .expect("handled");
    let report = outcome.instances[0].report.clone().expect("executed");
    let n = node(h.sim(), &node_name);
    assert!(cordoned(&n), "{}: node cordoned", h.flavor());
    assert!(taint_keys(&n).contains(&"costop.io/spot-interruption".to_string()));
    assert_eq!(
        n["metadata"]["labels"]["node.kubernetes.io/exclude-from-external-load-balancers"],
        "true"
    );
    assert!(
        !h.target_ids(WEB_TG).await.contains(&instance),
        "{}: instance target deregistered",
        h.flavor()
    );
    if let Some(ip) = ip {
        assert!(
            !h.target_ids(API_TG).await.contains(&ip),
            "{}: ip target deregistered",
            h.flavor()
        );
    }
    let drain = report.drain.expect("drained");
    assert!(
        drain.remaining.is_empty(),
        "{}: nothing left: {:?}",
        h.flavor(),
        drain.remaining
    );
    let left: Vec<String> = pods_on(h.sim(), &node_name)
        .iter()
        .filter(|p| !is_daemonset_pod(p))
        .map(pod_ref)
        .collect();
    assert!(
        left.is_empty(),
        "{}: only DaemonSet pods remain, found {left:?}",
        h.flavor()
    );
    let plan = outcome.plans().next().expect("a plan").clone();
    let steps = timeline(&h, &plan.interruption_id).await;
    for want in ["RECEIVED", "CORDONED", "DEREGISTERED", "DRAINED"] {
        assert!(
            steps.iter().any(|s| s.name() == want),
            "{}: timeline has {want}: {steps:?}",
            h.flavor()
        );
    }
}
on_both!(
    a_spot_warning_cordons_taints_deregisters_and_drains_the_node,
    Setup::default_scenario()
);

async fn pdb_blocked_evictions_are_retried_until_allowed<H: Harness>(h: H) {
    let (instance, node_name) = spot_nodes(h.sim()).into_iter().next().expect("a spot node");
    pin_to(
        &h,
        &node_name,
        &pinned_deployment("guarded", 3, "minAvailable: 2"),
        3,
    )
    .await;
    let outcome = h
        .handler()
        .handle(&events::spot_warning(&instance, Utc::now()), Mode::Execute)
        .await
        .expect("handled");
    let drain = drained(&outcome);
    assert!(
        drain.eviction_retries > 0,
        "{}: the PDB refused some evictions first",
        h.flavor()
    );
    assert!(
        drain.remaining.is_empty(),
        "{}: every guarded pod was evicted in the end: {:?}",
        h.flavor(),
        drain.remaining
    );
    let plan = outcome.plans().next().unwrap().clone();
    let steps = timeline(&h, &plan.interruption_id).await;
    assert!(
        steps
            .iter()
            .any(|s| matches!(s, TimelineStep::EvictionRetried { .. })),
        "{}: retries recorded",
        h.flavor()
    );
}
on_both!(
    pdb_blocked_evictions_are_retried_until_allowed,
    Setup::default_scenario()
);

async fn daemonset_pods_are_left_alone<H: Harness>(h: H) {
    let (instance, node_name) = spot_nodes(h.sim()).into_iter().next().expect("a spot node");
    let ds_before: Vec<Value> = pods_on(h.sim(), &node_name)
        .into_iter()
        .filter(is_daemonset_pod)
        .collect();
    assert!(!ds_before.is_empty(), "the scenario runs a DaemonSet");
    let outcome = h
        .handler()
        .handle(&events::spot_warning(&instance, Utc::now()), Mode::Execute)
        .await
        .expect("handled");
    let plan = outcome.plans().next().unwrap();
    let drain = plan.drain().expect("a drain");
    assert!(
        drain.pods.iter().all(|p| !p.name.starts_with("node-agent")),
        "{}: DaemonSet pods not evicted",
        h.flavor()
    );
    assert!(
        drain
            .skipped
            .iter()
            .any(|s| s.pod.name.starts_with("node-agent")),
        "{}: reported as skipped",
        h.flavor()
    );
    for p in ds_before {
        let still = h.sim().store().get(
            &resources::PODS,
            Some("kube-system"),
            p["metadata"]["name"].as_str().unwrap(),
        );
        let still = still.expect("DaemonSet pod still there");
        assert_eq!(still["metadata"]["uid"], p["metadata"]["uid"]);
        assert!(still["metadata"].get("deletionTimestamp").is_none());
    }
}
on_both!(daemonset_pods_are_left_alone, Setup::default_scenario());

async fn the_same_event_delivered_three_times_acts_once<H: Harness>(h: H) {
    let (instance, _) = spot_nodes(h.sim()).into_iter().next().expect("a spot node");
    let event = events::spot_warning(&instance, Utc::now());
    let first = h
        .handler()
        .handle(&event, Mode::Execute)
        .await
        .expect("first delivery");
    assert!(
        first.instances[0].report.is_some(),
        "{}: the first delivery acts",
        h.flavor()
    );
    for _ in 0..2 {
        let again = h
            .handler()
            .handle(&event, Mode::Execute)
            .await
            .expect("redelivery");
        assert!(
            matches!(
                again.instances[0].decision,
                Decision::Ignore {
                    reason: IgnoreReason::DuplicateDelivery { .. }
                }
            ),
            "{}: a redelivery is a duplicate: {:?}",
            h.flavor(),
            again.instances[0].decision
        );
        assert!(again.instances[0].report.is_none());
    }
    let plan = first.plans().next().unwrap().clone();
    let steps = timeline(&h, &plan.interruption_id).await;
    assert_eq!(
        steps.iter().filter(|s| s.name() == "RECEIVED").count(),
        1,
        "{}: one interruption recorded",
        h.flavor()
    );
    assert_eq!(steps.iter().filter(|s| s.name() == "CORDONED").count(), 1);
}
on_both!(
    the_same_event_delivered_three_times_acts_once,
    Setup::default_scenario()
);

async fn an_instance_of_another_cluster_is_ignored<H: Harness>(h: H) {
    let foreign = h.foreign_instance().await;
    let outcome = h
        .handler()
        .handle(&events::spot_warning(&foreign, Utc::now()), Mode::Execute)
        .await
        .expect("handled");
    assert!(
        matches!(
            outcome.instances[0].decision,
            Decision::Ignore {
                reason: IgnoreReason::ClusterNotAllowed { .. }
            }
        ),
        "{}: {:?}",
        h.flavor(),
        outcome.instances[0].decision
    );
    assert_eq!(h.table_items().await, 0, "{}: nothing recorded", h.flavor());
    assert!(
        spot_nodes(h.sim())
            .iter()
            .all(|(_, n)| !cordoned(&node(h.sim(), n)))
    );
}
on_both!(
    an_instance_of_another_cluster_is_ignored,
    Setup::default_scenario().with_env("COSTOP_CLUSTER_ALLOW_LIST", "costop-dev")
);

async fn dry_run_mutates_nothing<H: Harness>(h: H) {
    let (instance, node_name) = spot_nodes(h.sim()).into_iter().next().expect("a spot node");
    let before = node(h.sim(), &node_name);
    let pods_before: Vec<String> = pods_on(h.sim(), &node_name).iter().map(pod_ref).collect();
    let targets_before = h.target_ids(WEB_TG).await;
    let outcome = h
        .handler()
        .handle(&events::spot_warning(&instance, Utc::now()), Mode::Execute)
        .await
        .expect("handled");
    let plan = outcome.plans().next().expect("the plan is still made");
    assert!(plan.dry_run && plan.actions().next().is_some());
    assert!(
        outcome.instances[0].report.is_none(),
        "{}: nothing executed",
        h.flavor()
    );
    assert_eq!(
        node(h.sim(), &node_name)["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
    assert_eq!(
        pods_on(h.sim(), &node_name)
            .iter()
            .map(pod_ref)
            .collect::<Vec<_>>(),
        pods_before
    );
    assert_eq!(h.target_ids(WEB_TG).await, targets_before);
    assert_eq!(h.table_items().await, 0, "{}: nothing recorded", h.flavor());
}
on_both!(
    dry_run_mutates_nothing,
    Setup::default_scenario().with_env("COSTOP_DRY_RUN", "true")
);

async fn a_malformed_event_changes_nothing<H: Harness>(h: H) {
    let (_, node_name) = spot_nodes(h.sim()).into_iter().next().expect("a spot node");
    let before = node(h.sim(), &node_name);
    let err = h
        .handler()
        .handle(&events::malformed_missing_detail(), Mode::Execute)
        .await
        .expect_err("malformed");
    assert!(matches!(err, HandlerError::Malformed(_)), "{err:?}");
    assert_eq!(
        err.error_type(),
        "NonRetryable",
        "a malformed event is never retried"
    );
    assert_eq!(
        node(h.sim(), &node_name)["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
    assert_eq!(h.table_items().await, 0);
}
on_both!(a_malformed_event_changes_nothing, Setup::default_scenario());

async fn a_health_event_naming_the_instance_by_arn_is_handled<H: Harness>(h: H) {
    let (instance, node_name) = spot_nodes(h.sim()).into_iter().next().expect("a spot node");
    let now = Utc::now();
    let event = events::health_by_arn(&[&instance], now, now + chrono::Duration::seconds(90));
    let outcome = h
        .handler()
        .handle(&event, Mode::Execute)
        .await
        .expect("handled");
    let plan = outcome
        .plans()
        .next()
        .unwrap_or_else(|| panic!("{}: a plan: {:?}", h.flavor(), outcome.instances));
    assert_eq!(plan.instance_id, instance);
    let n = node(h.sim(), &node_name);
    assert!(cordoned(&n));
    assert!(taint_keys(&n).contains(&"costop.io/scheduled-maintenance".to_string()));
}
on_both!(
    a_health_event_naming_the_instance_by_arn_is_handled,
    Setup::default_scenario()
);

async fn a_pod_still_blocked_at_the_deadline_is_reported_not_waited_for<H: Harness>(h: H) {
    let (instance, node_name) = spot_nodes(h.sim()).into_iter().next().expect("a spot node");
    pin_to(
        &h,
        &node_name,
        &pinned_deployment("stuck", 1, "maxUnavailable: 0"),
        1,
    )
    .await;
    // The warning came 105 s ago: 15 s left, of which the last 10 are the safety margin.
    let sent = Utc::now() - chrono::Duration::seconds(105);
    let t0 = Instant::now();
    let outcome = h
        .handler()
        .handle(&events::spot_warning(&instance, sent), Mode::Execute)
        .await
        .expect("handled");
    assert!(
        t0.elapsed() < Duration::from_secs(25),
        "{}: returned by the deadline ({:?})",
        h.flavor(),
        t0.elapsed()
    );
    let drain = drained(&outcome);
    assert!(drain.deadline_missed);
    assert!(
        drain.remaining.iter().any(|p| p.name.starts_with("stuck-")),
        "{}: {:?}",
        h.flavor(),
        drain.remaining
    );
    let plan = outcome.plans().next().unwrap().clone();
    let steps = timeline(&h, &plan.interruption_id).await;
    assert!(steps.iter().any(
        |s| matches!(s, TimelineStep::DeadlineReached { remaining } if !remaining.is_empty())
    ));
    assert!(
        pods_on(h.sim(), &node_name)
            .iter()
            .any(|p| p["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("stuck-")),
        "not force-deleted"
    );
}
on_both!(
    a_pod_still_blocked_at_the_deadline_is_reported_not_waited_for,
    Setup::default_scenario().with_env("COSTOP_SAFETY_MARGIN_SECONDS", "10")
);

async fn a_drain_that_outlasts_the_invocation_hands_the_event_to_the_retry<H: Harness>(h: H) {
    let (instance, node_name) = spot_nodes(h.sim()).into_iter().next().expect("a spot node");
    pin_to(
        &h,
        &node_name,
        &pinned_deployment("stuck", 1, "maxUnavailable: 0"),
        1,
    )
    .await;
    let event = events::spot_warning(&instance, Utc::now());
    // The warning leaves ~2 minutes; the invocation only 6 s (3 of them kept in reserve).
    let t0 = Instant::now();
    let budget_end = Utc::now() + chrono::Duration::seconds(6);
    let err = h
        .handler()
        .handle_within(&event, Mode::Execute, Some(budget_end))
        .await
        .expect_err("out of time");
    assert!(
        t0.elapsed() < Duration::from_secs(6),
        "{}: stopped before the invocation's end ({:?})",
        h.flavor(),
        t0.elapsed()
    );
    assert!(
        matches!(err, HandlerError::OutOfTime { pods_left: 1, .. }),
        "{}: {err:?}",
        h.flavor()
    );
    assert_eq!(err.error_type(), "Retryable");
    assert!(
        cordoned(&node(h.sim(), &node_name)),
        "{}: the node stays cordoned",
        h.flavor()
    );
    let HandlerError::OutOfTime {
        interruption_id, ..
    } = &err
    else {
        unreachable!()
    };
    let steps = timeline(&h, interruption_id).await;
    assert!(
        steps
            .iter()
            .any(|s| matches!(s, TimelineStep::Failed { action, .. } if action == "drain")),
        "{}: the timeline says the drain was cut short: {steps:?}",
        h.flavor()
    );
    // The retry is not a duplicate: it takes over at once and finishes once the PDB allows it.
    remove_pdb(&h, "stuck");
    let retry = h
        .handler()
        .handle(&event, Mode::Execute)
        .await
        .expect("the retry is handled");
    let drain = drained(&retry);
    assert!(
        drain.remaining.is_empty(),
        "{}: {:?}",
        h.flavor(),
        drain.remaining
    );
    assert!(
        drain.evicted.iter().any(|p| p.name.starts_with("stuck-")),
        "{}: {:?}",
        h.flavor(),
        drain.evicted
    );
}
on_both!(
    a_drain_that_outlasts_the_invocation_hands_the_event_to_the_retry,
    Setup::default_scenario()
);

/// The Auto Scaling group of a running instance, as EC2 tags it.
async fn asg_of<H: Harness>(h: &H, instance: &str) -> String {
    let found = h
        .handler()
        .world()
        .ec2()
        .describe_instances(&[instance.to_owned()])
        .await
        .expect("EC2 answers");
    found
        .first()
        .and_then(|i| i.asg_name())
        .unwrap_or_else(|| panic!("{}: {instance} is in no ASG", h.flavor()))
        .to_owned()
}

const HOOK: &str = "costop-drain";
const TOKEN: &str = "630aa23f-48eb-45e7-aba6-799ea6093a0f";

async fn an_asg_hook_is_heartbeaten_while_a_long_drain_runs_then_continued<H: Harness>(h: H) {
    let (instance, node_name) = spot_nodes(h.sim()).into_iter().next().expect("a spot node");
    let asg = asg_of(&h, &instance).await;
    // A heartbeat every 2 s; without repeated heartbeats the hook would time out mid-drain.
    let heartbeat_timeout = Duration::from_secs(4);
    h.put_terminate_hook(&asg, HOOK, 4).await;
    pin_to(
        &h,
        &node_name,
        &pinned_deployment("held", 1, "maxUnavailable: 0"),
        1,
    )
    .await;
    let event = events::asg_terminate(&instance, &asg, HOOK, TOKEN, Utc::now());
    // The PDB keeps the drain busy for 5 s, more than the heartbeat timeout.
    let release = async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        remove_pdb(&h, "held");
    };
    let (outcome, ()) = futures::join!(h.handler().handle(&event, Mode::Execute), release);
    let outcome = outcome.expect("handled");
    let drain = drained(&outcome);
    assert!(
        drain.remaining.is_empty() && drain.evicted.iter().any(|p| p.name.starts_with("held-")),
        "{}: the held pod left once the PDB allowed it: {drain:?}",
        h.flavor()
    );

    let calls = h.lifecycle_calls();
    let (complete, heartbeats) = calls.split_last().expect("lifecycle calls");
    assert!(
        heartbeats.len() >= 2
            && heartbeats
                .iter()
                .all(|c| c.action == LifecycleAction::Heartbeat),
        "{}: heartbeats while the drain ran: {calls:#?}",
        h.flavor()
    );
    assert_eq!(complete.action, LifecycleAction::Complete);
    assert_eq!(complete.result.as_deref(), Some("CONTINUE"));
    for c in &calls {
        assert_eq!(
            (c.asg.as_str(), c.hook.as_str(), c.token.as_deref()),
            (asg.as_str(), HOOK, Some(TOKEN))
        );
        assert_eq!(c.refused, None, "{}: accepted: {c:?}", h.flavor());
    }
    // The hook never waited a whole heartbeat timeout, though the drain outlasted one.
    for pair in calls.windows(2) {
        assert!(
            pair[1].at.duration_since(pair[0].at) < heartbeat_timeout,
            "{}: a gap of {:?} between lifecycle calls: {calls:#?}",
            h.flavor(),
            pair[1].at.duration_since(pair[0].at)
        );
    }
    assert!(
        complete.at.duration_since(calls[0].at) > heartbeat_timeout,
        "{}: the drain outlasted the heartbeat timeout",
        h.flavor()
    );
}
on_both!(
    an_asg_hook_is_heartbeaten_while_a_long_drain_runs_then_continued,
    Setup::default_scenario()
);

async fn a_drain_that_misses_its_deadline_abandons_the_hook_where_configured<H: Harness>(h: H) {
    let (instance, node_name) = spot_nodes(h.sim()).into_iter().next().expect("a spot node");
    let asg = asg_of(&h, &instance).await;
    h.put_terminate_hook(&asg, HOOK, 30).await;
    pin_to(
        &h,
        &node_name,
        &pinned_deployment("stuck", 1, "maxUnavailable: 0"),
        1,
    )
    .await;
    // The hook's deadline (300 s) is 4 s away, and the PDB never allows the eviction.
    let sent = Utc::now() - chrono::Duration::seconds(296);
    let event = events::asg_terminate(&instance, &asg, HOOK, TOKEN, sent);
    let outcome = h
        .handler()
        .handle(&event, Mode::Execute)
        .await
        .expect("handled");
    let drain = drained(&outcome);
    assert!(drain.deadline_missed, "{}: {drain:?}", h.flavor());
    let calls = h.lifecycle_calls();
    let complete = calls.last().expect("lifecycle calls");
    assert_eq!(complete.action, LifecycleAction::Complete, "{calls:#?}");
    assert_eq!(
        (complete.result.as_deref(), complete.refused.as_deref()),
        (Some("ABANDON"), None),
        "{}: {calls:#?}",
        h.flavor()
    );
}
on_both!(
    a_drain_that_misses_its_deadline_abandons_the_hook_where_configured,
    Setup::default_scenario()
        .with_env("COSTOP_ASG_HOOK_FAILED_DRAIN_RESULT", "ABANDON")
        .with_env("COSTOP_SAFETY_MARGIN_SECONDS", "2")
);
