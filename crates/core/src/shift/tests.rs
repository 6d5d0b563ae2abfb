use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};

use super::*;
use crate::facts::{RegisteredTarget, TargetType};

const FALLBACK: &str = "tg-fallback";

fn w(arn: &str, weight: u32) -> WeightedGroup {
    WeightedGroup {
        target_group_arn: arn.into(),
        weight,
    }
}

fn rule(arn: &str, forward: Vec<WeightedGroup>) -> RuleFacts {
    RuleFacts {
        arn: arn.into(),
        listener_arn: "l".into(),
        is_default: false,
        forward,
        ingress: None,
        hosts: Vec::new(),
        paths: vec!["/*".into()],
    }
}

/// A group narrowed to the node's `node` targets out of `registered`.
fn group(arn: &str, node: usize, registered: usize) -> TargetGroupFacts {
    TargetGroupFacts {
        arn: arn.into(),
        target_type: TargetType::Ip,
        targets: (0..node)
            .map(|i| RegisteredTarget {
                id: format!("10.1.0.{i}"),
                port: Some(8080),
                availability_zone: None,
            })
            .collect(),
        kept_by_controller: false,
        registered,
    }
}

fn config() -> Config {
    Config {
        fallback_target_group: FALLBACK.into(),
        ..Config::default()
    }
}

#[test]
fn the_nodes_share_of_a_group_moves_to_the_fallback() {
    let share = |_: &str| 0.25;
    assert_eq!(
        shifted(&[w("a", 1)], share, FALLBACK, 1.0),
        Some(vec![w("a", 75), w(FALLBACK, 25)])
    );
    // Two groups: only the one with a share gives some up.
    let only_a = |g: &str| if g == "a" { 0.5 } else { 0.0 };
    assert_eq!(
        shifted(&[w("a", 50), w("b", 50)], only_a, FALLBACK, 1.0),
        Some(vec![w("a", 25), w("b", 50), w(FALLBACK, 25)])
    );
    // The factor scales the move and never moves more than all.
    assert_eq!(
        shifted(&[w("a", 1)], share, FALLBACK, 2.0),
        Some(vec![w("a", 50), w(FALLBACK, 50)])
    );
    assert_eq!(
        shifted(&[w("a", 1)], share, FALLBACK, 10.0),
        Some(vec![w("a", 0), w(FALLBACK, 100)])
    );
    // Nothing to move.
    assert_eq!(shifted(&[w("a", 1)], |_| 0.0, FALLBACK, 1.0), None);
    assert_eq!(shifted(&[w("a", 0)], share, FALLBACK, 1.0), None);
}

#[test]
fn rules_of_the_nodes_groups_not_yet_shifted_are_shiftable_managed_ones_through_their_ingress() {
    let groups = [group("a", 1, 4), group("b", 0, 4)];
    let managed = |arn: &str, stack: &str| RuleFacts {
        ingress: Some(stack.into()),
        ..rule(arn, vec![w("a", 1)])
    };
    let shop = serde_json::json!({
        "metadata": {"namespace": "default", "name": "shop"},
        "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}},
    });
    let rules = [
        rule("mine", vec![w("a", 1)]),
        rule("other", vec![w("b", 1)]),
        rule("shifted", vec![w("a", 1), w(FALLBACK, 1)]),
        managed("managed", "default/shop"),
        managed("unread", "default/gone"),
    ];
    let picked: Vec<&str> = shiftable(&rules, &groups, FALLBACK, &[shop])
        .iter()
        .map(|r| r.arn.as_str())
        .collect();
    assert_eq!(picked, ["mine", "managed"]);
}

#[test]
fn a_listeners_load_balancer_is_named_by_its_arn() {
    for (listener, lb) in [
        (
            "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/shop/50dc6c495c0c9188/f2f7dc8efc522ab2",
            "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/shop/50dc6c495c0c9188",
        ),
        ("l", "l"),
    ] {
        assert_eq!(load_balancer_of(listener), lb);
    }
}

#[test]
fn once_the_fallback_serves_a_load_balancer_only_that_load_balancers_rules_are_shifted() {
    let public = "arn:aws:elasticloadbalancing:eu-west-1:1:listener/app/public/aaaa/1111";
    let upstream_port = "arn:aws:elasticloadbalancing:eu-west-1:1:listener/app/public/aaaa/2222";
    let internal = "arn:aws:elasticloadbalancing:eu-west-1:1:listener/app/internal/bbbb/3333";
    let on = |listener: &str, arn: &str, forward| RuleFacts {
        listener_arn: listener.into(),
        ..rule(arn, forward)
    };
    let groups = [group("a", 1, 4), group("i", 1, 4)];
    let receipts = on(public, "receipts", vec![w(FALLBACK, 1)]);
    let rules = [
        on(public, "shop", vec![w("a", 1)]),
        on(upstream_port, "shop-8080", vec![w("a", 1)]),
        on(internal, "internal", vec![w("i", 1)]),
        receipts.clone(),
    ];
    let picked = |rules: &[RuleFacts]| -> Vec<String> {
        shiftable(rules, &groups, FALLBACK, &[])
            .iter()
            .map(|r| r.arn.clone())
            .collect()
    };
    // Another listener of the same load balancer is the same load balancer.
    assert_eq!(picked(&rules), ["shop", "shop-8080"]);
    // Attached nowhere yet: every load balancer's rules (the first change attaches it).
    assert_eq!(picked(&rules[..3]), ["shop", "shop-8080", "internal"]);
}

#[test]
fn a_lease_records_the_rule_as_it_was_and_the_shift_applied() {
    let now = Utc::now();
    let deadline = now + TimeDelta::seconds(120);
    let lease = lease_for(
        &rule("r", vec![w("a", 1)]),
        &[group("a", 3, 12)],
        &config(),
        "i-1-spot",
        now,
        deadline,
    )
    .expect("a shift");
    assert_eq!(lease.before, vec![w("a", 1)]);
    assert_eq!(lease.applied, vec![w("a", 75), w(FALLBACK, 25)]);
    assert_eq!(lease.hold_until, deadline);
    assert_eq!(lease.restore_by, now + TimeDelta::seconds(900));
    let back = shift_lease_from_item(&shift_lease_item(&lease).unwrap()).unwrap();
    assert_eq!(back, lease);
}

/// No restore hold: the rule goes back as soon as the groups are whole.
const NO_HOLD: TimeDelta = TimeDelta::zero();

/// The lease of one rule on group `a`, whose 12 targets include the node's 4, noticed at `now`
/// with two minutes left.
fn node_of_four_in_twelve(now: DateTime<Utc>) -> ShiftLease {
    lease_for(
        &rule("r", vec![w("a", 1)]),
        &[group("a", 4, 12)],
        &config(),
        "i-1-spot",
        now,
        now + TimeDelta::seconds(120),
    )
    .unwrap()
}

#[test]
fn the_restore_follows_the_capacity_back_in_steps_then_puts_the_rule_back() {
    let now = Utc::now();
    let lease = node_of_four_in_twelve(now);
    // The node's four (10.1.0.0-3) and eight others (10.2.0.x), then `new` replacements.
    let serving = |node: usize, new: usize| {
        let ids = (0..node)
            .map(|i| format!("10.1.0.{i}"))
            .chain((0..8 + new).map(|i| format!("10.2.0.{i}")))
            .collect();
        BTreeMap::from([("a".to_owned(), InService::Healthy(ids))])
    };
    // The node's targets still look healthy, but they are leaving: the shift holds.
    assert_eq!(
        restore_step(&lease, &serving(4, 0), now, NO_HOLD),
        RestoreStep::Keep
    );
    // Two replacements serve: half the share comes back, well before the deadline.
    let after = now + TimeDelta::seconds(30);
    assert_eq!(
        restore_step(&lease, &serving(4, 2), after, NO_HOLD),
        RestoreStep::Adjust {
            weights: vec![w("a", 83), w(FALLBACK, 17)]
        }
    );
    // An unreadable group is taken as at the notice.
    assert_eq!(
        restore_step(&lease, &BTreeMap::new(), after, NO_HOLD),
        RestoreStep::Keep
    );
    assert_eq!(
        restore_step(&lease, &serving(0, 4), after, NO_HOLD),
        RestoreStep::Restore {
            reason: "capacity_back"
        }
    );
    // Whatever the capacity, the lease's end puts the rule back.
    assert_eq!(
        restore_step(
            &lease,
            &serving(0, 0),
            now + TimeDelta::seconds(901),
            NO_HOLD
        ),
        RestoreStep::Restore {
            reason: "lease_expired"
        }
    );
}

#[test]
fn a_lease_that_does_not_know_the_nodes_targets_holds_the_share_until_its_deadline() {
    let now = Utc::now();
    let mut lease = node_of_four_in_twelve(now);
    for g in &mut lease.groups {
        g.leaving.clear();
    }
    let healthy = |n: usize| {
        let ids = (0..n).map(|i| format!("10.3.0.{i}")).collect();
        BTreeMap::from([("a".to_owned(), InService::Healthy(ids))])
    };
    assert_eq!(
        restore_step(&lease, &healthy(12), now, NO_HOLD),
        RestoreStep::Keep
    );
    let after = now + TimeDelta::seconds(130);
    assert_eq!(
        restore_step(&lease, &healthy(12), after, NO_HOLD),
        RestoreStep::Restore {
            reason: "capacity_back"
        }
    );
    // A group that is gone has nothing to wait for.
    let gone = BTreeMap::from([("a".to_owned(), InService::Gone)]);
    assert_eq!(
        restore_step(&lease, &gone, after, NO_HOLD),
        RestoreStep::Restore {
            reason: "capacity_back"
        }
    );
}

#[test]
fn whole_groups_keep_the_rule_shifted_for_the_hold_then_put_it_back() {
    let now = Utc::now();
    let hold = TimeDelta::seconds(30);
    let mut lease = node_of_four_in_twelve(now);
    let whole = BTreeMap::from([(
        "a".to_owned(),
        InService::Healthy((0..12).map(|i| format!("10.2.0.{i}")).collect()),
    )]);
    let back = now + TimeDelta::seconds(40);
    // First found whole: the hold starts now.
    assert_eq!(
        restore_step(&lease, &whole, back, hold),
        RestoreStep::Hold { since: back }
    );
    lease.whole_since = Some(back);
    assert_eq!(
        restore_step(&lease, &whole, back + TimeDelta::seconds(29), hold),
        RestoreStep::Hold { since: back }
    );
    assert_eq!(
        restore_step(&lease, &whole, back + hold, hold),
        RestoreStep::Restore {
            reason: "capacity_back"
        }
    );
    // Capacity gone again during the hold: the lease forgets it, weights as applied.
    let short = BTreeMap::from([(
        "a".to_owned(),
        InService::Healthy((0..8).map(|i| format!("10.2.0.{i}")).collect()),
    )]);
    assert_eq!(
        restore_step(&lease, &short, back + TimeDelta::seconds(10), hold),
        RestoreStep::Adjust {
            weights: lease.applied.clone()
        }
    );
    // The lease's end does not wait for the hold.
    assert_eq!(
        restore_step(&lease, &whole, now + TimeDelta::seconds(901), hold),
        RestoreStep::Restore {
            reason: "lease_expired"
        }
    );
    let back_in = shift_lease_from_item(&shift_lease_item(&lease).unwrap()).unwrap();
    assert_eq!(back_in.whole_since, Some(back));
}
