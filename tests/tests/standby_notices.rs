//! Notices about costop's own standbys, end to end on both worlds (`on_both!`): a standby that
//! serves no interruption — in the pool, or started by an operator with no lease — is not a
//! dying node, so its stop leaves its node alone (and is recorded beside its lease); once the
//! keeper serves an interruption with it, a stop is handled like any other node's.

use std::time::Duration;

use chrono::Utc;
use costop_app::{Ec2, HasEc2, HasRecords, Mode, Records};
use costop_core::{Decision, IgnoreReason, constants};
use costop_tests::{Harness, Setup, events, eventually, on_both, spot_nodes};
use kubesim::resources;
use kubesim::store::ListOptions;
use serde_json::Value;

fn setup() -> Setup {
    let mut s = Setup::default_scenario();
    s.scenario.load_balancer = None;
    s.with_env("COSTOP_STANDBY_WATCH_SECONDS", "5")
}

fn node_of_instance(h: &impl Harness, instance_id: &str) -> Option<Value> {
    h.sim()
        .store()
        .list(&resources::NODES, None, &ListOptions::default())
        .0
        .into_iter()
        .find(|n| costop_bed::node_instance_id(n) == Some(instance_id))
}

/// Taint keys costop puts on a node it handles (every one but the standby's own).
fn costop_taints(node: &Value) -> Vec<String> {
    node["spec"]["taints"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .filter_map(|t| t["key"].as_str())
                .filter(|k| k.starts_with("costop.io/") && *k != constants::TAINT_STANDBY)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The zone's standby of the first spot node: (standby id, spot id).
async fn a_standby_and_its_spot_node<H: Harness>(h: &H) -> (String, String) {
    let standbys = h.keeper().world().ec2().standbys().await.expect("standbys");
    let spots = h
        .keeper()
        .world()
        .ec2()
        .describe_instances(
            &spot_nodes(h.sim())
                .into_iter()
                .map(|(id, _)| id)
                .collect::<Vec<_>>(),
        )
        .await
        .expect("spot instances");
    for spot in spots {
        if let Some(s) = standbys
            .iter()
            .find(|s| s.availability_zone == spot.availability_zone)
        {
            return (s.instance_id.clone(), spot.instance_id);
        }
    }
    panic!("[{}] no spot node has a standby in its zone", h.flavor());
}

async fn node_ready<H: Harness>(h: &H, instance_id: &str) {
    eventually(
        "the standby's node to be Ready",
        Duration::from_secs(30),
        || node_of_instance(h, instance_id).is_some_and(|n| costop_bed::node_ready(&n)),
    )
    .await;
}

async fn a_stop_of_a_standby_that_serves_nothing_leaves_its_node_alone<H: Harness>(h: H) {
    let (standby, _) = a_standby_and_its_spot_node(&h).await;
    // An operator starts it by hand while preparing it: no lease, no serving tags.
    h.keeper()
        .world()
        .ec2()
        .start(&standby)
        .await
        .expect("start");
    node_ready(&h, &standby).await;

    let outcome = h
        .handler()
        .handle(
            &events::state_change(&standby, "stopping", Utc::now()),
            Mode::Execute,
        )
        .await
        .expect("handled");
    match &outcome.instances[0].decision {
        Decision::Ignore {
            reason: IgnoreReason::StandbyNotServing { state, .. },
        } => assert_eq!(state, "available", "[{}]", h.flavor()),
        other => panic!(
            "[{}] the standby's stop was acted on: {other:?}",
            h.flavor()
        ),
    }
    let node = node_of_instance(&h, &standby).expect("its node");
    assert_ne!(
        node["spec"]["unschedulable"],
        Value::Bool(true),
        "[{}] not cordoned: {node:#}",
        h.flavor()
    );
    assert!(
        costop_taints(&node).is_empty(),
        "[{}] no costop taint: {node:#}",
        h.flavor()
    );
    assert!(
        node["metadata"]["labels"]
            .get(constants::LABEL_EXCLUDE_FROM_EXTERNAL_LB)
            .is_none(),
        "[{}] still in the load balancers: {node:#}",
        h.flavor()
    );
    let recorded = h
        .handler()
        .world()
        .records()
        .query(&format!("STANDBY#{standby}"))
        .await
        .expect("query");
    assert!(
        recorded.iter().any(|i| {
            matches!(i.get("sk"), Some(costop_core::record::Attr::S(sk)) if sk.starts_with("IGNORED#"))
        }),
        "[{}] the ignore is recorded beside the lease: {recorded:?}",
        h.flavor()
    );
}
on_both!(
    a_stop_of_a_standby_that_serves_nothing_leaves_its_node_alone,
    setup()
);

async fn a_stop_of_a_standby_serving_an_interruption_is_handled_like_any_node<H: Harness>(h: H) {
    let (standby, spot) = a_standby_and_its_spot_node(&h).await;
    let warning = events::spot_warning(&spot, Utc::now());
    let (drained, kept) = tokio::join!(
        h.handler().handle(&warning, Mode::Execute),
        h.keeper().handle(&warning, Mode::Execute)
    );
    drained.expect("the interruption path succeeds");
    kept.expect("the keeper succeeds");
    node_ready(&h, &standby).await;

    let outcome = h
        .handler()
        .handle(
            &events::state_change(&standby, "stopping", Utc::now()),
            Mode::Execute,
        )
        .await
        .expect("handled");
    assert!(
        outcome.instances[0].decision.as_plan().is_some(),
        "[{}] a serving standby's stop is an interruption: {:?}",
        h.flavor(),
        outcome.instances[0].decision
    );
    let node = node_of_instance(&h, &standby).expect("its node");
    assert_eq!(
        node["spec"]["unschedulable"],
        Value::Bool(true),
        "[{}] cordoned: {node:#}",
        h.flavor()
    );
}
on_both!(
    a_stop_of_a_standby_serving_an_interruption_is_handled_like_any_node,
    setup()
);
