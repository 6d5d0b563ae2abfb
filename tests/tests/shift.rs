//! Traffic shifted to the fallback and put back, end to end on both worlds (`on_both!`), through
//! the listener-rule path: on a Spot warning each listener rule that forwards to a group holding
//! the node's targets sends the node's share to the fallback's target group, under a lease; the
//! keeper's tick keeps it while the capacity is missing, and puts the rule back exactly as it was
//! once the group is whole again, or once the lease's time is up — also when whatever shifted it
//! died before finishing.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use costop_app::keeper::KeeperOutcome;
use costop_app::ports::Elb;
use costop_app::{HasElb, HasRecords, Mode, Records};
use costop_core::record::SHIFT_PK;
use costop_core::shift::{self, GroupShare, RuleFacts, ShiftLease, WeightedGroup};
use costop_tests::{Harness, Setup, TARGET_GROUP_VALUE, events, on_both, spot_nodes};

/// The default listener's group: every spot and system instance (instance targets).
const WEB_TG: &str = "costop-dev-web";
/// The path rule's group: the spot instances' IPs (IP targets).
const API_TG: &str = "costop-dev-api";
const FALLBACK_TG: &str = "costop-dev-fallback";
/// The notice's deadline: short, so the tick runs past it within the test.
const WINDOW_SECONDS: i64 = 6;
/// How long a whole group's rule stays shifted before it is put back.
const HOLD_SECONDS: u64 = 1;

fn setup() -> Setup {
    let mut s = Setup::default_scenario()
        .with_env(
            "COSTOP_FALLBACK_TARGET_GROUP",
            &format!("{TARGET_GROUP_VALUE}{FALLBACK_TG}"),
        )
        .with_env(
            "COSTOP_DEADLINE_WINDOW_SECONDS",
            &WINDOW_SECONDS.to_string(),
        )
        .with_env("COSTOP_SAFETY_MARGIN_SECONDS", "1")
        .with_env(
            "COSTOP_SHIFT_RESTORE_HOLD_SECONDS",
            &HOLD_SECONDS.to_string(),
        );
    s.scenario
        .target_groups
        .push(costop_tests::ip_target_group(FALLBACK_TG, None));
    s
}

/// Every rule's forward, by the name of its first group as it was (web, api, fallback), with
/// group ARNs shortened to their names.
async fn forwards(h: &impl Harness) -> BTreeMap<String, Vec<(String, u32)>> {
    let rules = h
        .handler()
        .world()
        .elb()
        .listener_rules()
        .await
        .expect("rules read");
    rules
        .iter()
        .map(|r| {
            let named: Vec<(String, u32)> = r
                .forward
                .iter()
                .map(|g| (name_of(&g.target_group_arn), g.weight))
                .collect();
            (named[0].0.clone(), named)
        })
        .collect()
}

/// `costop-dev-web` from `arn:…:targetgroup/costop-dev-web/<id>`.
fn name_of(arn: &str) -> String {
    arn.split("targetgroup/")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or(arn)
        .to_owned()
}

fn named(pairs: &[(&str, u32)]) -> Vec<(String, u32)> {
    pairs.iter().map(|(n, w)| ((*n).to_owned(), *w)).collect()
}

async fn leases(h: &impl Harness) -> usize {
    h.handler()
        .world()
        .records()
        .query(SHIFT_PK)
        .await
        .expect("the table reads")
        .len()
}

async fn tick(h: &impl Harness) -> Vec<costop_app::keeper::TrafficReport> {
    match h
        .keeper()
        .handle(&events::scheduled_tick(Utc::now()), Mode::Execute)
        .await
        .expect("the tick runs")
    {
        KeeperOutcome::Tick { traffic, .. } => traffic,
        other => panic!("not a tick: {other:?}"),
    }
}

async fn steps(h: &impl Harness, interruption_id: &str) -> Vec<&'static str> {
    costop_tests::timeline(h, interruption_id)
        .await
        .iter()
        .map(|e| e.step.name())
        .collect()
}

// ---------------------------------------------------------------------------------------------

async fn the_nodes_share_goes_to_the_fallback_and_comes_back_with_the_capacity<H: Harness>(h: H) {
    let before = forwards(&h).await;
    assert_eq!(before[WEB_TG], named(&[(WEB_TG, 1)]), "{}", h.flavor());
    let (instance, _) = spot_nodes(h.sim()).into_iter().next().expect("a spot node");
    let web_targets = h.target_ids(WEB_TG).await.len();
    assert_eq!(
        web_targets,
        4,
        "{}: 3 spot + 1 system instances",
        h.flavor()
    );

    let outcome = h
        .handler()
        .handle(&events::spot_warning(&instance, Utc::now()), Mode::Execute)
        .await
        .expect("handled");
    let interruption_id = outcome
        .plans()
        .next()
        .expect("a plan")
        .interruption_id
        .clone();
    // One of four instances: a quarter of the default rule's traffic.
    let shifted = forwards(&h).await;
    assert_eq!(
        shifted[WEB_TG],
        named(&[(WEB_TG, 75), (FALLBACK_TG, 25)]),
        "{}: {shifted:?}",
        h.flavor()
    );
    assert!(leases(&h).await >= 1);
    assert!(
        steps(&h, &interruption_id)
            .await
            .contains(&"TRAFFIC_SHIFTED")
    );

    // Past the deadline the node's instance is out of the group: the deficit keeps the shift.
    tokio::time::sleep(Duration::from_secs(WINDOW_SECONDS as u64 + 1)).await;
    tick(&h).await;
    assert_eq!(
        forwards(&h).await[WEB_TG],
        named(&[(WEB_TG, 75), (FALLBACK_TG, 25)]),
        "{}: capacity still missing",
        h.flavor()
    );
    // A replacement comes into service: the group is whole, and the rule stays shifted for the
    // hold (the fallback answers what it still holds), then it is as it was.
    let replacement = h.launch_spot_like(&instance).await;
    h.register_target(WEB_TG, &replacement).await;
    let reports = tick(&h).await;
    assert!(
        reports
            .iter()
            .any(|r| r.done && matches!(r.step, shift::RestoreStep::Hold { .. })),
        "{}: {reports:?}",
        h.flavor()
    );
    assert_eq!(
        forwards(&h).await[WEB_TG],
        named(&[(WEB_TG, 75), (FALLBACK_TG, 25)]),
        "{}: held shifted",
        h.flavor()
    );
    tokio::time::sleep(Duration::from_secs(HOLD_SECONDS) + Duration::from_millis(100)).await;
    let reports = tick(&h).await;
    assert!(
        reports
            .iter()
            .any(|r| r.done && matches!(r.step, shift::RestoreStep::Restore { .. })),
        "{}: {reports:?}",
        h.flavor()
    );
    let after = forwards(&h).await;
    assert_eq!(
        after[WEB_TG],
        before[WEB_TG],
        "{}: the rule as it was",
        h.flavor()
    );
    // The api group (the node's IP) got no replacement: its rule stays shifted, its lease kept.
    assert_eq!(
        after[API_TG],
        named(&[(API_TG, 67), (FALLBACK_TG, 33)]),
        "{}: one of three IPs still missing",
        h.flavor()
    );
    assert_eq!(leases(&h).await, 1, "{}: the api rule's lease", h.flavor());
    assert!(
        steps(&h, &interruption_id)
            .await
            .contains(&"TRAFFIC_RESTORED")
    );
}
on_both!(
    the_nodes_share_goes_to_the_fallback_and_comes_back_with_the_capacity,
    setup()
);

async fn a_shift_left_behind_by_a_crash_is_put_back_by_the_keepers_tick<H: Harness>(h: H) {
    let before = forwards(&h).await;
    let rules = h
        .handler()
        .world()
        .elb()
        .listener_rules()
        .await
        .expect("rules read");
    let rule: &RuleFacts = rules
        .iter()
        .find(|r| name_of(&r.forward[0].target_group_arn) == WEB_TG)
        .expect("the default rule");
    let fallback = h.handler().config().fallback_target_group.clone();
    // What a function that died right after shifting leaves: the lease and the changed rule,
    // and nothing else; its lease ran out.
    let applied = vec![
        WeightedGroup {
            target_group_arn: rule.forward[0].target_group_arn.clone(),
            weight: 50,
        },
        WeightedGroup {
            target_group_arn: fallback.clone(),
            weight: 50,
        },
    ];
    let lease = ShiftLease {
        rule_arn: rule.arn.clone(),
        listener_arn: rule.listener_arn.clone(),
        is_default: rule.is_default,
        before: rule.forward.clone(),
        applied: applied.clone(),
        fallback_target_group: fallback,
        factor: 1.0,
        groups: vec![GroupShare {
            target_group_arn: rule.forward[0].target_group_arn.clone(),
            expected: 8,
            announced: 4,
            leaving: Vec::new(),
        }],
        interruption_id: "i-0dead-spot-interruption".into(),
        hold_until: Utc::now() - TimeDelta::seconds(60),
        restore_by: Utc::now() - TimeDelta::seconds(1),
        whole_since: None,
        ingress: None,
    };
    let records = h.handler().world().records();
    records
        .put(shift::shift_lease_item(&lease).expect("encodes"))
        .await
        .expect("lease written");
    h.handler()
        .world()
        .elb()
        .set_forward(rule, &applied)
        .await
        .expect("rule changed");
    assert_ne!(forwards(&h).await, before);

    let reports = tick(&h).await;
    assert!(
        matches!(
            reports.first().map(|r| &r.step),
            Some(shift::RestoreStep::Restore {
                reason: "lease_expired"
            })
        ),
        "{}: {reports:?}",
        h.flavor()
    );
    assert_eq!(
        forwards(&h).await,
        before,
        "{}: the rule as it was",
        h.flavor()
    );
    assert_eq!(leases(&h).await, 0, "{}", h.flavor());
}
on_both!(
    a_shift_left_behind_by_a_crash_is_put_back_by_the_keepers_tick,
    setup()
);

/// An internal load balancer before the same pods (the fallback's upstream, say) keeps its
/// traffic: the fallback's target group serves the public one (its path rule here), and a
/// target group serves one load balancer at most, so ELBv2 would refuse the change
/// (`TargetGroupAssociationLimit`, which the bed's moto and the fakes enforce).
async fn a_load_balancer_the_fallback_does_not_serve_keeps_its_traffic<H: Harness>(h: H) {
    const INTERNAL: &str = "costop-dev-internal";
    let (instance, node) = spot_nodes(h.sim()).into_iter().next().expect("a spot node");
    let ip = costop_tests::node_ip(h.sim(), &node).expect("the node's IP");
    h.add_internal_load_balancer(INTERNAL, &[ip]).await;
    assert_eq!(forwards(&h).await[INTERNAL], named(&[(INTERNAL, 1)]));

    h.handler()
        .handle(&events::spot_warning(&instance, Utc::now()), Mode::Execute)
        .await
        .expect("handled");
    let after = forwards(&h).await;
    assert_eq!(
        after[WEB_TG],
        named(&[(WEB_TG, 75), (FALLBACK_TG, 25)]),
        "{}: {after:?}",
        h.flavor()
    );
    assert_eq!(
        after[INTERNAL],
        named(&[(INTERNAL, 1)]),
        "{}: the internal load balancer as it was",
        h.flavor()
    );
    assert_eq!(
        leases(&h).await,
        2,
        "{}: the web and api rules' leases, none for the internal one",
        h.flavor()
    );
}
on_both!(
    a_load_balancer_the_fallback_does_not_serve_keeps_its_traffic,
    setup()
);
