//! AWS Health scheduled changes at the right moment, end to end on both worlds (`on_both!`):
//! a change further off than the lead is recorded and leaves the node alone; the keeper's tick
//! hands it to the interruption function when it comes due (in process here, as moto runs no
//! Lambda), which then cordons and drains; an update that closes the event cancels it.

use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use costop_app::keeper::KeeperOutcome;
use costop_app::{HasRecords, Mode, Records};
use costop_core::plan::Response;
use costop_core::record::{self};
use costop_tests::{Harness, Setup, events, on_both, spot_nodes};
use kubesim::resources;
use kubesim::store::ListOptions;
use serde_json::{Value, json};

/// The shortest lead costop accepts, so a change comes due within seconds.
const LEAD_SECONDS: i64 = 60;

fn setup() -> Setup {
    Setup::default_scenario().with_env(
        "COSTOP_SCHEDULED_CHANGE_LEAD_SECONDS",
        &LEAD_SECONDS.to_string(),
    )
}

fn unschedulable(h: &impl Harness, name: &str) -> bool {
    let (nodes, _) = h
        .sim()
        .store()
        .list(&resources::NODES, None, &ListOptions::default());
    nodes
        .iter()
        .find(|n| n["metadata"]["name"] == name)
        .expect("the node exists")["spec"]["unschedulable"]
        == true
}

async fn steps(h: &impl Harness, interruption_id: &str) -> Vec<&'static str> {
    costop_tests::timeline(h, interruption_id)
        .await
        .iter()
        .map(|e| e.step.name())
        .collect()
}

async fn scheduled_items(h: &impl Harness) -> usize {
    h.handler()
        .world()
        .records()
        .query(record::SCHEDULED_PK)
        .await
        .expect("the table reads")
        .len()
}

/// Deliver `event` and return the one plan's response and interruption id.
async fn deliver(h: &impl Harness, event: &Value) -> (Response, String) {
    let outcome = h
        .handler()
        .handle(event, Mode::Execute)
        .await
        .expect("handled");
    let plan = outcome.plans().next().expect("a plan");
    (plan.response, plan.interruption_id.clone())
}

async fn tick(h: &impl Harness) -> usize {
    match h
        .keeper()
        .handle(&events::scheduled_tick(Utc::now()), Mode::Execute)
        .await
        .expect("the tick succeeds")
    {
        KeeperOutcome::Tick { handoffs, .. } => handoffs.iter().filter(|h| h.handed_off).count(),
        other => panic!("not a tick: {other:?}"),
    }
}

fn change_starting(instance: &str, start: DateTime<Utc>) -> Value {
    events::health_by_arn(&[instance], Utc::now(), start)
}

async fn a_change_that_comes_due_within_seconds_is_handed_off_and_drained_then<H: Harness>(h: H) {
    let (instance, node) = spot_nodes(h.sim()).into_iter().next().expect("a spot node");
    // Health's startTime has whole seconds.
    let start = (Utc::now() + TimeDelta::seconds(LEAD_SECONDS + 4)).trunc_subsecs(0);
    let (response, id) = deliver(&h, &change_starting(&instance, start)).await;
    assert_eq!(response, Response::Schedule, "[{}]", h.flavor());
    assert!(
        !unschedulable(&h, &node),
        "[{}] touched before its moment",
        h.flavor()
    );
    assert_eq!(scheduled_items(&h).await, 1);

    // Not yet due: the tick hands nothing off.
    assert_eq!(tick(&h).await, 0, "[{}] handed off early", h.flavor());
    assert!(h.handed_off().is_empty());

    // Ticks until it comes due (about four seconds), as the keeper's schedule would.
    let t0 = Instant::now();
    let handed = loop {
        if tick(&h).await == 1 {
            break h.handed_off();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "[{}] never came due",
            h.flavor()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        Utc::now() >= start - TimeDelta::seconds(LEAD_SECONDS),
        "handed off before startTime − lead"
    );
    assert_eq!(handed.len(), 1);
    assert_eq!(
        scheduled_items(&h).await,
        0,
        "[{}] the record stays",
        h.flavor()
    );

    // Delivered as Lambda would deliver the asynchronous invoke: now it is drained.
    let (response, drained_id) = deliver(&h, &handed[0]).await;
    assert_eq!(response, Response::Full, "[{}]", h.flavor());
    assert_eq!(drained_id, id, "one interruption from scheduling to drain");
    assert!(
        unschedulable(&h, &node),
        "[{}] not cordoned when due",
        h.flavor()
    );
    let steps = steps(&h, &id).await;
    for step in ["SCHEDULED", "HANDED_OFF", "RECEIVED", "CORDONED"] {
        assert!(
            steps.contains(&step),
            "[{}] no {step} in {steps:?}",
            h.flavor()
        );
    }

    // A later tick hands nothing off again.
    assert_eq!(tick(&h).await, 0);
}

async fn a_change_cancelled_by_a_closing_update_is_never_acted_on<H: Harness>(h: H) {
    let (instance, node) = spot_nodes(h.sim()).into_iter().next().expect("a spot node");
    let start = Utc::now() + TimeDelta::days(3);
    let notice = change_starting(&instance, start);
    let (response, id) = deliver(&h, &notice).await;
    assert_eq!(response, Response::Schedule, "[{}]", h.flavor());
    assert_eq!(scheduled_items(&h).await, 1);

    // AWS's update of the same event, closed.
    let mut closing = change_starting(&instance, start);
    closing["detail"]["eventArn"] = notice["detail"]["eventArn"].clone();
    closing["detail"]["statusCode"] = json!("closed");
    let (response, cancelled_id) = deliver(&h, &closing).await;
    assert_eq!(response, Response::Cancel, "[{}]", h.flavor());
    assert_eq!(cancelled_id, id);
    assert_eq!(scheduled_items(&h).await, 0, "[{}]", h.flavor());
    let steps = steps(&h, &id).await;
    assert!(
        steps.contains(&"SCHEDULE_CANCELLED"),
        "[{}] {steps:?}",
        h.flavor()
    );
    assert!(!unschedulable(&h, &node));
    assert_eq!(tick(&h).await, 0);
    assert!(h.handed_off().is_empty());
}

on_both!(
    a_change_that_comes_due_within_seconds_is_handed_off_and_drained_then,
    setup()
);
on_both!(
    a_change_cancelled_by_a_closing_update_is_never_acted_on,
    setup()
);
