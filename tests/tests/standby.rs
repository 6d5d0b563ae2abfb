//! The warm standby end to end, each body run twice by `on_both!` (AWS fakes, then moto; kubesim
//! is the cluster in both): a Spot warning goes to both functions, as the EventBridge rule's two
//! targets do; the keeper starts the zone's stopped standby retyped to the spot node's type, the
//! node's replacement pod — and nothing else — gets the toleration and lands there, and once a
//! new spot node is Ready the tick drains the standby and stops it, back in the pool.

use std::time::Duration;

use chrono::Utc;
use costop_app::keeper::{KeeperOutcome, StartReport};
use costop_app::telemetry::keeper;
use costop_app::{Ec2, HasEc2, HasRecords, Mode, Records, Retryable};
use costop_core::event::InstanceState;
use costop_core::record::{self, Attr, TimelineEntry, TimelineStep};
use costop_core::standby::{NoStandbyReason, ServedBy, StartAction, StartDecision, StartPlan};
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

    let (kept, plan, report) = warn_both_and_start(&h, &spot_id).await;
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

/// A Spot warning for `spot_id` sent to both functions at once, as the EventBridge rule's two
/// targets do. The keeper's outcome must be an executed start: it, its plan and its report.
async fn warn_both_and_start<H: Harness>(
    h: &H,
    spot_id: &str,
) -> (KeeperOutcome, StartPlan, StartReport) {
    let warning = events::spot_warning(spot_id, Utc::now());
    let (drained, kept) = tokio::join!(
        h.handler().handle(&warning, Mode::Execute),
        h.keeper().handle(&warning, Mode::Execute)
    );
    drained.expect("the interruption path succeeds");
    let kept = kept.expect("the keeper succeeds");
    let (plan, report) = started(h, &kept);
    let (plan, report) = (plan.clone(), report.clone());
    (kept, plan, report)
}

/// The plan and report of a keeper outcome that must be an executed start.
fn started<'a>(h: &impl Harness, kept: &'a KeeperOutcome) -> (&'a StartPlan, &'a StartReport) {
    let KeeperOutcome::Standby {
        decision: StartDecision::Act(plan),
        report: Some(report),
        ..
    } = kept
    else {
        panic!("[{}] expected a started standby: {kept:?}", h.flavor())
    };
    (plan, report)
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
    let (plan, report) = started(&h, &kept);
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

/// The zone's stopped standbys (of the cluster), by instance id.
async fn standbys_in<H: Harness>(h: &H, zone: &str) -> Vec<String> {
    let mut ids: Vec<String> = h
        .keeper()
        .world()
        .ec2()
        .standbys()
        .await
        .expect("standbys")
        .into_iter()
        .filter(|s| s.availability_zone.as_deref() == Some(zone))
        .map(|s| s.instance_id)
        .collect();
    ids.sort();
    ids
}

fn zone_of_node(h: &impl Harness, node: &str) -> String {
    label(
        &costop_tests::node(h.sim(), node),
        constants::LABEL_TOPOLOGY_ZONE,
    )
    .expect("zone")
    .to_string()
}

/// EventBridge delivers at least once: the same warning reaches the keeper twice at once (and
/// again later). One delivery starts the zone's standby; the others see, from the lease or the
/// standby's tags, that it already serves their interruption, and only watch for the
/// replacements.
async fn a_warning_delivered_twice_at_once_and_again_later_starts_one_standby_and_the_others_join_it<
    H: Harness,
>(
    h: H,
) {
    let (spot_id, spot_node) = retyped_spot_node(&h);
    let zone = zone_of_node(&h, &spot_node);
    let before = standbys_in(&h, &zone).await;
    let warning = events::spot_warning(&spot_id, Utc::now());
    let (drained, first, second) = tokio::join!(
        h.handler().handle(&warning, Mode::Execute),
        h.keeper().handle(&warning, Mode::Execute),
        h.keeper().handle(&warning, Mode::Execute),
    );
    drained.expect("the interruption path succeeds");
    let outcomes = [
        first.expect("the first delivery succeeds"),
        second.expect("the second delivery succeeds"),
    ];
    let mut started = Vec::new();
    let mut joined = Vec::new();
    let mut tolerated = 0;
    for outcome in &outcomes {
        let KeeperOutcome::Standby {
            decision,
            report: Some(report),
            ..
        } = outcome
        else {
            panic!("[{}] not executed: {outcome:?}", h.flavor())
        };
        tolerated += report.tolerated;
        match decision {
            StartDecision::Act(plan) if report.started => started.push(plan.clone()),
            StartDecision::Join { plan, .. } => {
                assert!(!report.started, "[{}] {report:?}", h.flavor());
                joined.push(plan.clone())
            }
            other => panic!("[{}] neither a start nor a join: {other:?}", h.flavor()),
        }
    }
    assert_eq!(
        (started.len(), joined.len()),
        (1, 1),
        "[{}] {outcomes:?}",
        h.flavor()
    );
    let standby = started[0].standby.clone();
    assert_eq!(joined[0].standby, standby, "[{}]", h.flavor());
    assert_eq!(
        tolerated,
        1,
        "[{}] the one replacement is tolerated once",
        h.flavor()
    );
    let emitted: Vec<Value> = outcomes
        .iter()
        .flat_map(|o| keeper::metrics(h.keeper().config(), o, Utc::now()))
        .collect();
    assert_eq!(
        emitted
            .iter()
            .filter_map(|d| d[metrics::STANDBY_STARTS].as_f64())
            .sum::<f64>(),
        1.0,
        "{emitted:?}"
    );

    let again = h
        .keeper()
        .handle(&warning, Mode::Execute)
        .await
        .expect("the later delivery succeeds");
    let KeeperOutcome::Standby {
        decision: StartDecision::Join { by, plan },
        report: Some(report),
        ..
    } = &again
    else {
        panic!("[{}] expected a join: {again:?}", h.flavor())
    };
    assert_eq!(
        (*by, plan.standby.as_str()),
        (ServedBy::Tags, standby.as_str()),
        "[{}]",
        h.flavor()
    );
    assert!(
        report.leases_lost.is_empty() && !report.started,
        "[{}] nothing claimed or started: {report:?}",
        h.flavor()
    );

    // One standby runs; the zone's others are still stopped and available.
    for id in &before {
        let s = instance(&h, id).await;
        if *id == standby {
            assert_ne!(s.state, InstanceState::Stopped, "[{}]", h.flavor());
        } else {
            assert_eq!(
                (
                    s.state,
                    s.tags.get(constants::TAG_STANDBY_STATE).map(String::as_str)
                ),
                (InstanceState::Stopped, None),
                "[{}] {id} was left alone",
                h.flavor()
            );
        }
    }
    let steps = timeline(&h, &started[0].interruption_id).await;
    let count = |f: fn(&TimelineStep) -> bool| steps.iter().filter(|s| f(s)).count();
    assert_eq!(
        count(|s| matches!(s, TimelineStep::StandbyStarted { .. })),
        1,
        "{steps:?}"
    );
    assert_eq!(
        count(|s| matches!(s, TimelineStep::StandbyJoined { .. })),
        2,
        "{steps:?}"
    );
    replacement_runs_on_standby(&h, &standby).await;
}

on_both!(
    a_warning_delivered_twice_at_once_and_again_later_starts_one_standby_and_the_others_join_it,
    setup()
);

/// Every spot node and two standbys in one zone.
fn one_zone_two_standbys() -> Setup {
    let mut s = setup();
    for ng in &mut s.scenario.node_groups {
        if ng.capacity == costop_bed::scenario::Capacity::Spot || ng.standby {
            ng.zones = Some(vec!["us-east-1a".into()]);
        }
        if ng.standby {
            ng.count = Some(2);
        }
    }
    s
}

/// Three spot nodes of a zone warned at once, two standbys there: each standby is leased once,
/// both start, and the third delivery tries them both and records why it got none.
async fn three_warnings_at_once_in_a_zone_with_two_standbys_start_both_and_the_third_records_why_it_got_none<
    H: Harness,
>(
    h: H,
) {
    let spots = spot_nodes(h.sim());
    assert_eq!(spots.len(), 3, "[{}] {spots:?}", h.flavor());
    let zone = zone_of_node(&h, &spots[0].1);
    let standbys = standbys_in(&h, &zone).await;
    assert_eq!(standbys.len(), 2, "[{}] {standbys:?}", h.flavor());
    let now = Utc::now();
    let warnings: Vec<Value> = spots
        .iter()
        .map(|(id, _)| events::spot_warning(id, now))
        .collect();
    let (drained, kept) = tokio::join!(
        futures::future::join_all(
            warnings
                .iter()
                .map(|w| h.handler().handle(w, Mode::Execute))
        ),
        futures::future::join_all(warnings.iter().map(|w| h.keeper().handle(w, Mode::Execute))),
    );
    for d in drained {
        d.expect("the interruption path succeeds");
    }
    let mut started: Vec<(String, String)> = Vec::new();
    let mut refused = Vec::new();
    for outcome in kept {
        match outcome.expect("every delivery succeeds") {
            KeeperOutcome::Standby {
                decision: StartDecision::Act(plan),
                report: Some(report),
                ..
            } if report.started => started.push((plan.standby, plan.interruption_id)),
            KeeperOutcome::Standby {
                decision:
                    StartDecision::NoStandby {
                        interruption_id: Some(iid),
                        reason,
                    },
                report: Some(_),
                ..
            } => refused.push((iid, reason)),
            other => panic!("[{}] unexpected: {other:?}", h.flavor()),
        }
    }
    started.sort();
    let started_ids: Vec<String> = started.iter().map(|(s, _)| s.clone()).collect();
    assert_eq!(
        started_ids,
        standbys,
        "[{}] both standbys, once each",
        h.flavor()
    );
    let [(iid, reason)] = refused.as_slice() else {
        panic!("[{}] expected one refusal: {refused:?}", h.flavor())
    };
    assert!(
        matches!(
            reason,
            NoStandbyReason::AllLeased { .. } | NoStandbyReason::NoneAvailable { .. }
        ),
        "[{}] {reason:?}",
        h.flavor()
    );
    assert!(
        timeline(&h, iid).await.contains(&TimelineStep::NoStandby {
            reason: reason.describe()
        }),
        "[{}] the refusal is on its timeline",
        h.flavor()
    );
    // Each standby serves, and is leased to, the interruption that started it.
    for (standby, iid) in &started {
        let s = instance(&h, standby).await;
        assert_eq!(
            s.tags.get(constants::TAG_STANDBY_INTERRUPTION),
            Some(iid),
            "[{}]",
            h.flavor()
        );
        let lease = h
            .keeper()
            .world()
            .records()
            .get(&record::standby_lease_key(standby))
            .await
            .expect("get")
            .expect("lease");
        assert_eq!(record::lease_holder(&lease), Some(iid.as_str()));
    }
    for standby in &standbys {
        replacement_runs_on_standby(&h, standby).await;
    }
}

on_both!(
    three_warnings_at_once_in_a_zone_with_two_standbys_start_both_and_the_third_records_why_it_got_none,
    one_zone_two_standbys()
);

/// A standby that served before keeps its Node while stopped, as on EKS, with what happened to
/// it: the interruption function saw it stopping and cordoned and tainted it. When the next
/// warning starts it, the keeper makes the node schedulable with only the standby taint, and the
/// replacement runs there.
async fn a_standby_whose_node_was_left_cordoned_and_tainted_is_started_schedulable_with_only_the_standby_taint<
    H: Harness,
>(
    h: H,
) {
    let (spot_id, spot_node) = retyped_spot_node(&h);
    let zone = zone_of_node(&h, &spot_node);
    let [standby] = standbys_in(&h, &zone)
        .await
        .try_into()
        .expect("one standby");
    let ec2 = h.keeper().world().ec2();

    // Its earlier life: running, marked by an earlier interruption's cordon (as a serving
    // standby's node is when its instance is interrupted), then stopped. (A stop of a standby
    // that serves nothing is ignored by the interruption function: see standby_notices.rs.)
    ec2.start(&standby).await.expect("start");
    let node_name = eventually_node(&h, &standby).await;
    eventually(
        "the standby's node to be Ready",
        Duration::from_secs(60),
        || costop_bed::node_ready(&costop_tests::node(h.sim(), &node_name)),
    )
    .await;
    h.sim()
        .store()
        .modify(&resources::NODES, None, &node_name, |node| {
            node["spec"]["unschedulable"] = json!(true);
            let taints = node["spec"]["taints"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let mut taints: Vec<Value> = taints;
            taints.push(json!({
                "key": constants::TAINT_INSTANCE_STATE_CHANGE,
                "value": "stopping",
                "effect": "NoSchedule"
            }));
            node["spec"]["taints"] = Value::Array(taints);
            node["metadata"]["labels"][constants::LABEL_EXCLUDE_FROM_EXTERNAL_LB] = json!("true");
            Ok(())
        })
        .expect("the earlier interruption's marks");
    ec2.stop(&standby).await.expect("stop");
    eventually(
        "the standby's node to be NotReady",
        Duration::from_secs(60),
        || !costop_bed::node_ready(&costop_tests::node(h.sim(), &node_name)),
    )
    .await;
    let left = costop_tests::node(h.sim(), &node_name);
    assert_eq!(
        left.pointer("/spec/unschedulable"),
        Some(&json!(true)),
        "[{}]",
        h.flavor()
    );
    assert!(
        taint_keys(&left).contains(&constants::TAINT_INSTANCE_STATE_CHANGE.to_string()),
        "[{}] {:?}",
        h.flavor(),
        taint_keys(&left)
    );
    assert_eq!(instance(&h, &standby).await.state, InstanceState::Stopped);

    let (_, plan, report) = warn_both_and_start(&h, &spot_id).await;
    assert_eq!(plan.standby, standby);
    assert!(report.started, "[{}] {report:?}", h.flavor());
    assert!(
        plan.actions
            .iter()
            .any(|a| matches!(a, StartAction::ClearStandbyNode(p) if p.node == node_name)),
        "[{}] {plan:?}",
        h.flavor()
    );
    eventually(
        "the standby's node to be schedulable with only the standby taint",
        Duration::from_secs(60),
        || {
            let n = costop_tests::node(h.sim(), &node_name);
            costop_bed::node_ready(&n)
                && n.pointer("/spec/unschedulable") != Some(&json!(true))
                && taint_keys(&n) == [constants::TAINT_STANDBY]
                && label(&n, constants::LABEL_EXCLUDE_FROM_EXTERNAL_LB).is_none()
        },
    )
    .await;
    replacement_runs_on_standby(&h, &standby).await;
}

fn taint_keys(node: &Value) -> Vec<String> {
    node.pointer("/spec/taints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t["key"].as_str().map(str::to_string))
        .collect()
}

on_both!(
    a_standby_whose_node_was_left_cordoned_and_tainted_is_started_schedulable_with_only_the_standby_taint,
    setup()
);

/// Ticks until `standby` is stopped: back in the pool.
async fn tick_until_returned<H: Harness>(h: &H, standby: &str) {
    let t0 = std::time::Instant::now();
    while instance(h, standby).await.state != InstanceState::Stopped {
        h.keeper()
            .handle(&events::scheduled_tick(Utc::now()), Mode::Execute)
            .await
            .expect("the tick succeeds");
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "[{}] the standby was never returned",
            h.flavor()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn two_interruptions_in_a_row_in_one_zone_are_each_served_by_the_standby_returned_between_them<
    H: Harness,
>(
    h: H,
) {
    // The first interruption: the standby starts and takes the replacement.
    let (first_spot, _) = retyped_spot_node(&h);
    let (_, first, _) = warn_both_and_start(&h, &first_spot).await;
    let standby_node = replacement_runs_on_standby(&h, &first.standby).await;

    // Spot capacity comes back in the zone; the tick returns the standby to the pool.
    let second_spot = h.launch_spot_like(&first_spot).await;
    eventually(
        "the new spot node to be Ready",
        Duration::from_secs(60),
        || node_of_instance(&h, &second_spot).is_some_and(|n| costop_bed::node_ready(&n)),
    )
    .await;
    tick_until_returned(&h, &first.standby).await;
    eventually(
        "the replacement to move to the new spot node",
        Duration::from_secs(60),
        || {
            node_of_instance(&h, &second_spot)
                .and_then(|n| n["metadata"]["name"].as_str().map(str::to_string))
                .is_some_and(|n| {
                    pods_on(h.sim(), &n)
                        .iter()
                        .any(|p| p["metadata"]["labels"]["app"] == "big")
                })
        },
    )
    .await;

    // EC2 reports the standby's stop as it reports any: the interruption function leaves it be.
    for state in ["stopping", "stopped"] {
        let notice = events::state_change(&first.standby, state, Utc::now());
        let outcome = h
            .handler()
            .handle(&notice, Mode::Execute)
            .await
            .expect("handled");
        assert!(
            outcome.plans().next().is_none(),
            "[{}] the returned standby's {state} was acted on: {outcome:?}",
            h.flavor()
        );
    }
    let node = costop_tests::node(h.sim(), &standby_node);
    assert_ne!(node.pointer("/spec/unschedulable"), Some(&json!(true)));
    let taints: Vec<&str> = node["spec"]["taints"]
        .as_array()
        .map(|ts| ts.iter().filter_map(|t| t["key"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(taints, [constants::TAINT_STANDBY], "[{}]", h.flavor());

    // The second interruption in the zone: the same standby starts again, and the second
    // node's replacement runs on it.
    let (_, second, report) = warn_both_and_start(&h, &second_spot).await;
    assert_eq!(second.standby, first.standby, "[{}]", h.flavor());
    assert_ne!(second.interruption_id, first.interruption_id);
    assert!(report.tolerated >= 1, "[{}] {report:?}", h.flavor());
    let again = replacement_runs_on_standby(&h, &second.standby).await;
    assert_eq!(
        again, standby_node,
        "the standby's Node object survives its stop"
    );
    for p in pods_on(h.sim(), &again) {
        assert_eq!(
            p["metadata"]["annotations"][constants::ANNOTATION_STANDBY_FOR].as_str(),
            Some(second.interruption_id.as_str()),
            "[{}] only the second interruption's replacements run there: {}",
            h.flavor(),
            p["metadata"]["name"]
        );
    }
}

on_both!(
    two_interruptions_in_a_row_in_one_zone_are_each_served_by_the_standby_returned_between_them,
    setup()
);
