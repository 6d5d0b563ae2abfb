//! The warm standby end to end, each body run twice by `on_both!` (AWS fakes, then moto; kubesim
//! is the cluster in both): a Spot warning goes to both functions, as the EventBridge rule's two
//! targets do; the keeper starts the zone's stopped standby retyped to the spot node's type, the
//! node's replacement pod — and nothing else — gets the toleration and lands there, and once a
//! new spot node is Ready the tick drains the standby and stops it, back in the pool.

use std::time::Duration;

use chrono::Utc;
use costop_app::keeper::KeeperOutcome;
use costop_app::telemetry::keeper;
use costop_app::{Ec2, HasEc2, HasRecords, Mode, Records, Retryable};
use costop_core::event::InstanceState;
use costop_core::record::{self, Attr, TimelineEntry, TimelineStep};
use costop_core::standby::{StartAction, StartDecision};
use costop_core::{constants, metrics};
use costop_tests::{Harness, Setup, events, eventually, on_both, pods_on, spot_nodes};
use kubesim::resources;
use kubesim::store::ListOptions;
use serde_json::{Value, json};

/// Spot nodes (m5.large / m5a.large) fit one `big` pod each; nothing else runs, so a
/// replacement has nowhere to go but a standby.
const BIG: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: big, namespace: default}
spec:
  replicas: 3
  selector: {matchLabels: {app: big}}
  template:
    metadata: {labels: {app: big}}
    spec:
      nodeSelector: {costop.io/pool: general}
      terminationGracePeriodSeconds: 5
      containers:
        - name: app
          image: public.ecr.aws/nginx/nginx:1.27
          resources: {requests: {cpu: 1200m, memory: 512Mi}}
"#;

/// Wants the same room, created before the warning: never a replacement.
const BYSTANDER: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: bystander, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {app: bystander}}
  template:
    metadata: {labels: {app: bystander}}
    spec:
      nodeSelector: {costop.io/pool: general}
      containers:
        - name: app
          image: public.ecr.aws/nginx/nginx:1.27
          resources: {requests: {cpu: 1200m, memory: 512Mi}}
"#;

fn setup() -> Setup {
    let mut s = Setup::default_scenario();
    s.scenario.workloads =
        costop_bed::scenario::Workloads(vec![costop_bed::scenario::Workload::Yaml(BIG.into())]);
    s.scenario.load_balancer = None;
    s.with_env("COSTOP_STANDBY_MIN_SERVE_SECONDS", "0")
        .with_env("COSTOP_STANDBY_WATCH_SECONDS", "60")
}

fn nodes(h: &impl Harness) -> Vec<Value> {
    h.sim()
        .store()
        .list(&resources::NODES, None, &ListOptions::default())
        .0
}

fn node_of_instance(h: &impl Harness, instance_id: &str) -> Option<Value> {
    nodes(h)
        .into_iter()
        .find(|n| costop_bed::node_instance_id(n) == Some(instance_id))
}

fn label<'a>(n: &'a Value, key: &str) -> Option<&'a str> {
    n["metadata"]["labels"][key].as_str()
}

fn pods_of(h: &impl Harness, app: &str) -> Vec<Value> {
    let (pods, _) =
        h.sim()
            .store()
            .list(&resources::PODS, Some("default"), &ListOptions::default());
    pods.into_iter()
        .filter(|p| p["metadata"]["labels"]["app"] == app)
        .collect()
}

fn tolerates_standby(p: &Value) -> bool {
    p["spec"]["tolerations"]
        .as_array()
        .is_some_and(|ts| ts.iter().any(|t| t["key"] == constants::TAINT_STANDBY))
}

async fn instance<H: Harness>(h: &H, id: &str) -> costop_core::facts::InstanceFacts {
    let found = h
        .keeper()
        .world()
        .ec2()
        .describe_instances(&[id.to_string()])
        .await
        .expect("describe");
    found.into_iter().next().expect("instance exists")
}

async fn timeline<H: Harness>(h: &H, interruption_id: &str) -> Vec<TimelineStep> {
    let items = h
        .keeper()
        .world()
        .records()
        .query(&record::interruption_pk(interruption_id))
        .await
        .expect("query");
    items
        .iter()
        .filter_map(|i| TimelineEntry::from_item(i).ok())
        .map(|e| e.step)
        .collect()
}

async fn a_spot_warning_starts_the_zones_standby_for_the_replacements_only_and_the_tick_returns_it<
    H: Harness,
>(
    h: H,
) {
    // Bad input is refused as non-retryable and changes nothing.
    let err = h
        .keeper()
        .handle(&events::malformed_missing_detail(), Mode::Execute)
        .await
        .expect_err("malformed");
    assert!(!err.is_retryable(), "[{}] {err}", h.flavor());

    let (spot_id, spot_node) = retyped_spot_node(&h);
    let zone = label(
        &costop_tests::node(h.sim(), &spot_node),
        constants::LABEL_TOPOLOGY_ZONE,
    )
    .expect("zone")
    .to_string();
    h.sim().apply_yaml(BYSTANDER).expect("bystander applies");
    eventually(
        "the bystander to be pending",
        Duration::from_secs(20),
        || !pods_of(&h, "bystander").is_empty(),
    )
    .await;

    let warning = events::spot_warning(&spot_id, Utc::now());
    let (drained, kept) = tokio::join!(
        h.handler().handle(&warning, Mode::Execute),
        h.keeper().handle(&warning, Mode::Execute)
    );
    drained.expect("the interruption path succeeds");
    let kept = kept.expect("the keeper succeeds");
    let KeeperOutcome::Standby {
        decision: StartDecision::Act(plan),
        report: Some(report),
        ..
    } = &kept
    else {
        panic!("[{}] expected a started standby", h.flavor())
    };
    assert_eq!(
        (plan.zone.as_str(), plan.instance_type.as_str()),
        (zone.as_str(), "m5a.large"),
        "[{}]",
        h.flavor()
    );
    assert!(
        plan.actions
            .iter()
            .any(|a| matches!(a, StartAction::RetypeStandby { .. }))
    );
    assert!(
        report.started && report.tolerated == 1,
        "[{}] {report:?}",
        h.flavor()
    );
    let emitted = keeper::metrics(h.keeper().config(), &kept, Utc::now());
    assert_eq!(
        metric(&emitted, metrics::STANDBY_STARTS),
        Some(1.0),
        "{emitted:?}"
    );
    assert_eq!(
        metric(&emitted, metrics::REPLACEMENTS_TOLERATED),
        Some(1.0),
        "{emitted:?}"
    );
    assert!(
        metric(&emitted, metrics::TIME_TO_STANDBY_START_MS).is_some(),
        "{emitted:?}"
    );
    assert_eq!(emitted[0][metrics::DIM_CLUSTER], json!(plan.cluster));

    let standby = instance(&h, &plan.standby).await;
    assert_eq!(standby.state, InstanceState::Running);
    assert_eq!(standby.instance_type.as_deref(), Some("m5a.large"));
    assert_eq!(
        standby.tags.get(constants::TAG_STANDBY_INTERRUPTION),
        Some(&plan.interruption_id)
    );
    assert_eq!(
        standby
            .tags
            .get(constants::TAG_STANDBY_STATE)
            .map(String::as_str),
        Some(constants::STANDBY_STATE_SERVING)
    );

    // The replacement runs on the standby; the bystander was never tolerated and is elsewhere.
    let standby_node = replacement_runs_on_standby(&h, &plan.standby).await;
    for p in pods_on(h.sim(), &standby_node) {
        assert_eq!(
            p["metadata"]["annotations"][constants::ANNOTATION_STANDBY_FOR].as_str(),
            Some(plan.interruption_id.as_str()),
            "[{}] only replacements land on the standby: {}",
            h.flavor(),
            p["metadata"]["name"]
        );
    }
    for p in pods_of(&h, "bystander") {
        assert!(
            !tolerates_standby(&p),
            "[{}] the bystander got the standby toleration",
            h.flavor()
        );
        assert_ne!(p["spec"]["nodeName"].as_str(), Some(standby_node.as_str()));
    }
    let steps = timeline(&h, &plan.interruption_id).await;
    assert!(
        steps
            .iter()
            .any(|s| matches!(s, TimelineStep::StandbyStarted { .. })),
        "{steps:?}"
    );
    assert!(
        steps
            .iter()
            .any(|s| matches!(s, TimelineStep::ReplacementTolerated { .. })),
        "{steps:?}"
    );

    // Spot capacity comes back (a new spot node in the zone, Ready); the bystander goes first so
    // the standby's pod has the room.
    h.sim()
        .store()
        .delete(
            &resources::DEPLOYMENTS,
            Some("default"),
            "bystander",
            &Default::default(),
        )
        .expect("bystander deleted");
    let fresh = h.launch_spot_like(&spot_id).await;
    eventually(
        "the new spot node to be Ready",
        Duration::from_secs(60),
        || node_of_instance(&h, &fresh).is_some_and(|n| costop_bed::node_ready(&n)),
    )
    .await;
    let tick = json!({"version": "0", "id": uuid::Uuid::new_v4().to_string(), "source": "aws.events", "detail-type": "Scheduled Event",
        "time": Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(), "resources": [], "detail": {}});
    let t0 = std::time::Instant::now();
    let mut returns = 0.0;
    loop {
        let ticked = h
            .keeper()
            .handle(&tick, Mode::Execute)
            .await
            .expect("the tick succeeds");
        let emitted = keeper::metrics(h.keeper().config(), &ticked, Utc::now());
        assert!(
            metric(&emitted, metrics::STANDBY_POOL_WANTED).is_some_and(|n| n >= 1.0),
            "{emitted:?}"
        );
        returns += metric(&emitted, metrics::STANDBY_RETURNS).unwrap_or(0.0);
        if instance(&h, &plan.standby).await.state == InstanceState::Stopped {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "[{}] the standby was never returned",
            h.flavor()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        returns,
        1.0,
        "[{}] one StandbyReturns over the ticks",
        h.flavor()
    );
    let standby = instance(&h, &plan.standby).await;
    assert_eq!(
        standby
            .tags
            .get(constants::TAG_STANDBY_STATE)
            .map(String::as_str),
        Some(constants::STANDBY_STATE_AVAILABLE)
    );
    assert!(
        constants::STANDBY_SERVING_TAGS
            .iter()
            .all(|t| !standby.tags.contains_key(*t)),
        "{:?}",
        standby.tags
    );
    let lease = h
        .keeper()
        .world()
        .records()
        .get(&record::standby_lease_key(&plan.standby))
        .await
        .expect("get")
        .expect("lease");
    assert_eq!(lease.get("released"), Some(&Attr::Bool(true)));
    assert!(
        timeline(&h, &plan.interruption_id)
            .await
            .iter()
            .any(|s| matches!(s, TimelineStep::StandbyReturned { .. }))
    );
    eventually(
        "the replacement to run on the new spot node",
        Duration::from_secs(60),
        || {
            let fresh_node = node_of_instance(&h, &fresh)
                .and_then(|n| n["metadata"]["name"].as_str().map(str::to_string));
            fresh_node.is_some_and(|n| {
                pods_on(h.sim(), &n)
                    .iter()
                    .any(|p| p["metadata"]["labels"]["app"] == "big")
            })
        },
    )
    .await;
    // Schedulable again for its next start; the taint keeps everything else off.
    let node = costop_tests::node(h.sim(), &standby_node);
    assert_ne!(node.pointer("/spec/unschedulable"), Some(&json!(true)));
}

/// (instance id, node name) of the m5a.large spot node: the standbys are m5.large, so starting
/// (or preparing) one for it takes a retype.
fn retyped_spot_node(h: &impl Harness) -> (String, String) {
    spot_nodes(h.sim())
        .into_iter()
        .find(|(_, n)| {
            label(
                &costop_tests::node(h.sim(), n),
                constants::LABEL_INSTANCE_TYPE,
            ) == Some("m5a.large")
        })
        .expect("an m5a.large spot node")
}

/// A metric's value in the first EMF document that carries it.
fn metric(docs: &[Value], name: &str) -> Option<f64> {
    docs.iter().find_map(|d| d[name].as_f64())
}

/// Waits for the standby's node and a `big` replacement running on it; the node's name.
async fn replacement_runs_on_standby<H: Harness>(h: &H, standby: &str) -> String {
    let standby_node = eventually_node(h, standby).await;
    eventually(
        "the replacement to run on the standby",
        Duration::from_secs(60),
        || {
            pods_on(h.sim(), &standby_node).iter().any(|p| {
                p["metadata"]["labels"]["app"] == "big" && p["status"]["phase"] == "Running"
            })
        },
    )
    .await;
    standby_node
}

async fn eventually_node<H: Harness>(h: &H, instance_id: &str) -> String {
    eventually("the standby's node", Duration::from_secs(30), || {
        node_of_instance(h, instance_id).is_some()
    })
    .await;
    node_of_instance(h, instance_id)
        .and_then(|n| n["metadata"]["name"].as_str().map(str::to_string))
        .expect("node name")
}

on_both!(
    a_spot_warning_starts_the_zones_standby_for_the_replacements_only_and_the_tick_returns_it,
    setup()
);

/// The keeper's own look at the node can come after the drain: pods that stop fast on SIGTERM
/// are gone by then. The interruption function's snapshot, taken before its drain, still has
/// them, and their replacements get the toleration all the same.
async fn a_keeper_that_comes_after_the_drain_still_tolerates_the_replacements<H: Harness>(h: H) {
    let (spot_id, spot_node) = retyped_spot_node(&h);
    let big_on_node = || {
        pods_on(h.sim(), &spot_node)
            .iter()
            .any(|p| p["metadata"]["labels"]["app"] == "big")
    };
    eventually(
        "a big pod on the spot node",
        Duration::from_secs(30),
        big_on_node,
    )
    .await;

    let warning = events::spot_warning(&spot_id, Utc::now());
    h.handler()
        .handle(&warning, Mode::Execute)
        .await
        .expect("the interruption path succeeds");
    eventually(
        "the drained pod to be gone",
        Duration::from_secs(60),
        || !big_on_node(),
    )
    .await;

    let kept = h
        .keeper()
        .handle(&warning, Mode::Execute)
        .await
        .expect("the keeper succeeds");
    let KeeperOutcome::Standby {
        decision: StartDecision::Act(plan),
        report: Some(report),
        ..
    } = &kept
    else {
        panic!("[{}] expected a started standby: {kept:?}", h.flavor())
    };
    assert!(
        report.started && report.tolerated == 1,
        "[{}] the snapshot's pod counted: {report:?}",
        h.flavor()
    );
    replacement_runs_on_standby(&h, &plan.standby).await;
}

on_both!(
    a_keeper_that_comes_after_the_drain_still_tolerates_the_replacements,
    setup()
);

/// A rebalance recommendation and a Spot warning often arrive together. The rebalance's retype
/// holds no lease, so a warning may claim and start the standby after the rebalance read it:
/// then EC2 refuses the retype (`IncorrectInstanceState`), and that is news, not a failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_leaves_alone_a_standby_that_a_warning_started_meanwhile() {
    let h = <costop_tests::FastHarness as Harness>::start(setup()).await;
    let (spot_id, _) = retyped_spot_node(&h);
    let ec2 = h.keeper().world().ec2.clone();
    let meanwhile = ec2.clone();
    ec2.before_call(std::sync::Arc::new(move |call| {
        if let costop_app::fakes::Ec2Call::Retype { instance_id, .. } = call {
            meanwhile
                .change(instance_id, |i| i.state = InstanceState::Running)
                .expect("the standby exists");
        }
    }));

    let outcome = h
        .keeper()
        .handle(&events::rebalance(&spot_id, Utc::now()), Mode::Execute)
        .await
        .expect("a refused retype is not an error");
    let KeeperOutcome::Standby {
        decision: StartDecision::Act(plan),
        report: Some(report),
        ..
    } = &outcome
    else {
        panic!("expected a prepare plan: {outcome:?}")
    };
    assert!(
        plan.actions
            .iter()
            .any(|a| matches!(a, StartAction::RetypeStandby { .. })),
        "{plan:?}"
    );
    assert_eq!(
        report.skipped,
        Some("standby no longer stopped and available"),
        "{report:?}"
    );
    assert!(report.actions.is_empty(), "{report:?}");
    let standby = ec2.get(&plan.standby).expect("standby");
    assert_eq!(
        standby.instance_type.as_deref(),
        Some("m5.large"),
        "not retyped"
    );
    assert_eq!(
        standby.state,
        InstanceState::Running,
        "left as the warning's start left it"
    );
}
