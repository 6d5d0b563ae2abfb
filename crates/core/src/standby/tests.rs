//! Table tests of the standby decisions the golden files do not spell out.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};

use super::*;
use crate::event::{Delivered, Envelope, SpotInterruptionWarning};
use crate::facts::{Facts, Lifecycle, NodeFacts, OwnerRef, PodFacts, PodPhase};
use crate::record::{TimelineEntry, TimelineStep};
use start::LEASE_IN_FLIGHT_SECONDS;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn instance(
    id: &str,
    zone: &str,
    ty: &str,
    state: InstanceState,
    tags: &[(&str, &str)],
) -> InstanceFacts {
    let mut all: BTreeMap<String, String> = [("eks:cluster-name", "prod")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    all.extend(tags.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    InstanceFacts {
        instance_id: id.into(),
        state,
        lifecycle: Lifecycle::OnDemand,
        instance_type: Some(ty.into()),
        availability_zone: Some(zone.into()),
        private_dns_name: None,
        private_ips: Vec::new(),
        tags: all,
    }
}

fn spot() -> InstanceFacts {
    InstanceFacts {
        lifecycle: Lifecycle::Spot,
        ..instance(
            "i-0spot",
            "us-east-1a",
            "m5.large",
            InstanceState::Running,
            &[],
        )
    }
}

fn standby_in(id: &str, zone: &str, ty: &str) -> InstanceFacts {
    instance(
        id,
        zone,
        ty,
        InstanceState::Stopped,
        &[("costop.io/standby", "true")],
    )
}

fn warning() -> Delivered<SpotInterruptionWarning> {
    Delivered {
        envelope: Envelope {
            version: None,
            id: "e1".into(),
            source: "aws.ec2".into(),
            detail_type: "EC2 Spot Instance Interruption Warning".into(),
            account: None,
            time: t("2025-03-10T14:02:00Z"),
            region: None,
            resources: Vec::new(),
        },
        detail: SpotInterruptionWarning {
            instance_id: "i-0spot".into(),
            instance_action: crate::event::InstanceAction::Terminate,
        },
    }
}

fn pod(name: &str, owner: &str, created: &str) -> PodFacts {
    PodFacts {
        namespace: "shop".into(),
        name: name.into(),
        uid: format!("uid-{name}"),
        owner: Some(OwnerRef {
            kind: "ReplicaSet".into(),
            name: owner.into(),
        }),
        phase: PodPhase::Pending,
        created_at: Some(t(created)),
        ..PodFacts::default()
    }
}

/// The warning's plan a second after it was sent, with the default configuration.
fn plan_warning(facts: &StartFacts) -> StartDecision {
    plan_start(
        &warning(),
        facts,
        &Config::default(),
        t("2025-03-10T14:02:01Z"),
    )
}

fn reason(d: &StartDecision) -> Option<&NoStandbyReason> {
    match d {
        StartDecision::NoStandby { reason, .. } => Some(reason),
        StartDecision::Act(_) | StartDecision::Join { .. } => None,
    }
}

#[test]
fn a_standby_of_the_spot_instances_type_is_preferred_to_one_that_needs_a_retype() {
    let standbys = vec![
        standby_in("i-a", "us-east-1a", "m5.xlarge"),
        standby_in("i-b", "us-east-1a", "m5.large"),
    ];
    assert_eq!(
        candidates(&spot(), "prod", &standbys, None)
            .first()
            .map(|s| s.instance_id.as_str()),
        Some("i-b")
    );
    let facts = StartFacts {
        spot: Some(spot()),
        standbys,
        ..StartFacts::default()
    };
    let StartDecision::Act(plan) = plan_warning(&facts) else {
        panic!("expected a plan")
    };
    assert!(
        !plan
            .actions
            .iter()
            .any(|a| matches!(a, StartAction::RetypeStandby { .. }))
    );
}

#[test]
fn no_standby_is_started_for_another_zone_another_cluster_a_running_or_a_leased_one() {
    let standbys = vec![
        standby_in("i-other-zone", "us-east-1b", "m5.large"),
        instance(
            "i-other-cluster",
            "us-east-1a",
            "m5.large",
            InstanceState::Stopped,
            &[("costop.io/standby", "true"), ("eks:cluster-name", "dev")],
        ),
        instance(
            "i-running",
            "us-east-1a",
            "m5.large",
            InstanceState::Running,
            &[("costop.io/standby", "true")],
        ),
        standby_in("i-leased", "us-east-1a", "m5.large"),
    ];
    let facts = StartFacts {
        spot: Some(spot()),
        standbys,
        lost_claims: vec![LostClaim {
            standby: "i-leased".into(),
            held_by: Some("another-interruption".into()),
        }],
        ..StartFacts::default()
    };
    let d = plan_warning(&facts);
    assert!(
        matches!(reason(&d), Some(NoStandbyReason::AllLeased { zone, standbys, .. })
            if zone == "us-east-1a" && standbys == &["i-leased"]),
        "{d:?}"
    );
    let unleased = StartFacts {
        lost_claims: Vec::new(),
        standbys: facts.standbys[..3].to_vec(),
        ..facts
    };
    let d = plan_warning(&unleased);
    assert!(
        matches!(reason(&d), Some(NoStandbyReason::NoneAvailable { zone, .. }) if zone == "us-east-1a"),
        "{d:?}"
    );
}

#[test]
fn an_on_demand_instance_a_standby_and_a_disabled_pool_start_nothing() {
    let standbys = vec![standby_in("i-b", "us-east-1a", "m5.large")];
    let on_demand = InstanceFacts {
        lifecycle: Lifecycle::OnDemand,
        ..spot()
    };
    let facts = StartFacts {
        spot: Some(on_demand),
        standbys: standbys.clone(),
        ..StartFacts::default()
    };
    let now = t("2025-03-10T14:02:01Z");
    assert!(matches!(
        reason(&plan_start(&warning(), &facts, &Config::default(), now)),
        Some(NoStandbyReason::NotASpotInstance { .. })
    ));
    let disabled = Config {
        standby_pool_size: 0,
        ..Config::default()
    };
    let facts = StartFacts {
        spot: Some(spot()),
        standbys,
        ..StartFacts::default()
    };
    assert_eq!(
        reason(&plan_start(&warning(), &facts, &disabled, now)),
        Some(&NoStandbyReason::PoolDisabled)
    );
    let unknown = StartFacts::default();
    assert!(matches!(
        reason(&plan_start(&warning(), &unknown, &Config::default(), now)),
        Some(NoStandbyReason::InstanceNotFound { .. })
    ));
}

fn tracker(quota: u32) -> ReplacementTracker {
    ReplacementTracker::new(ReplacementSpec {
        interruption_id: "iid".into(),
        cluster: "prod".into(),
        node: "n1".into(),
        owners: vec![OwnerQuota {
            namespace: "shop".into(),
            kind: "ReplicaSet".into(),
            name: "web-1".into(),
            pods: quota,
        }],
        toleration: standby_toleration(&Config::default()),
        created_after: t("2025-03-10T14:01:55Z"),
        watch_until: t("2025-03-10T14:06:00Z"),
    })
}

#[test]
fn only_replacements_created_after_the_warning_of_a_counted_owner_get_the_toleration_up_to_its_quota()
 {
    let mut tr = tracker(2);
    let pending = vec![
        pod("web-1-old", "web-1", "2025-03-10T13:00:00Z"),
        pod("other-1", "other", "2025-03-10T14:02:03Z"),
        pod("web-1-c", "web-1", "2025-03-10T14:02:05Z"),
        pod("web-1-a", "web-1", "2025-03-10T14:02:03Z"),
        pod("web-1-b", "web-1", "2025-03-10T14:02:04Z"),
    ];
    let patches = tr.next(&pending);
    let names: Vec<&str> = patches.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["web-1-a", "web-1-b"], "oldest first, quota 2");
    assert!(
        patches[0]
            .tolerations_after
            .contains(&standby_toleration(&Config::default()))
    );
    assert_eq!(
        patches[0]
            .annotations_after
            .get(crate::constants::ANNOTATION_STANDBY_FOR)
            .map(String::as_str),
        Some("iid")
    );
    for p in &patches {
        tr.applied(p);
    }
    assert!(tr.satisfied());
    assert!(tr.next(&pending).is_empty(), "the quota is spent");
}

#[test]
fn pods_evicted_and_gone_before_the_keeper_looked_still_count_through_the_interruption_functions_snapshot()
 {
    // The keeper saw one web-1 pod on n1; the interruption function's snapshot, taken before
    // its drain, had three web-1 pods and an api-1 pod (plus a DaemonSet pod, never counted).
    let mut tr = tracker(1);
    let mut on_node = vec![
        pod("web-1-x", "web-1", "2025-03-10T13:00:00Z"),
        pod("web-1-y", "web-1", "2025-03-10T13:00:00Z"),
        pod("web-1-z", "web-1", "2025-03-10T13:00:00Z"),
        pod("api-1-x", "api-1", "2025-03-10T13:00:00Z"),
        pod("agent-x", "agent", "2025-03-10T13:00:00Z"),
    ];
    on_node[4].owner.as_mut().unwrap().kind = "DaemonSet".into();
    let snapshot = |node: &str| Facts {
        node: Some(NodeFacts {
            name: node.into(),
            ..NodeFacts::default()
        }),
        pods: on_node.clone(),
        ..Facts::unknown_instance("i-spot")
    };
    let pending = vec![
        pod("web-1-a", "web-1", "2025-03-10T14:02:03Z"),
        pod("web-1-b", "web-1", "2025-03-10T14:02:04Z"),
        pod("web-1-c", "web-1", "2025-03-10T14:02:05Z"),
        pod("web-1-d", "web-1", "2025-03-10T14:02:06Z"),
        pod("api-1-a", "api-1", "2025-03-10T14:02:03Z"),
        pod("agent-a", "agent", "2025-03-10T14:02:03Z"),
    ];

    tr.merge_snapshot(&snapshot("another-node"));
    assert_eq!(
        tr.next(&pending).len(),
        1,
        "a snapshot of another node changes nothing"
    );

    tr.merge_snapshot(&snapshot("n1"));
    let names: Vec<String> = tr.next(&pending).into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["api-1-a", "web-1-a", "web-1-b", "web-1-c"]);

    // Merging again (or a smaller count) never lowers a quota.
    tr.merge_owners(&[OwnerQuota {
        namespace: "shop".into(),
        kind: "ReplicaSet".into(),
        name: "web-1".into(),
        pods: 1,
    }]);
    tr.merge_snapshot(&snapshot("n1"));
    assert_eq!(tr.next(&pending).len(), 4);
}

#[test]
fn pods_an_earlier_delivery_tolerated_count_against_the_quota() {
    let mut tr = tracker(1);
    let mut done = pod("web-1-a", "web-1", "2025-03-10T14:02:03Z");
    done.annotations.insert(
        crate::constants::ANNOTATION_STANDBY_FOR.into(),
        "iid".into(),
    );
    done.tolerations
        .push(standby_toleration(&Config::default()));
    let fresh = pod("web-1-b", "web-1", "2025-03-10T14:02:04Z");
    tr.adopt(&[done.clone(), fresh.clone()]);
    assert!(tr.satisfied());
    assert!(tr.next(&[done, fresh]).is_empty());
    assert_eq!(
        tr.tolerated(),
        0,
        "the other delivery's pod is not counted here"
    );
}

#[test]
fn the_standby_toleration_tolerates_the_standby_taint_and_nothing_else() {
    let c = Config::default();
    let tol = standby_toleration(&c);
    assert!(tol.tolerates(&standby_taint(&c)));
    let other = Taint::new(
        "costop.io/spot-interruption",
        Some("x".into()),
        TaintEffect::NoSchedule,
    );
    assert!(!tol.tolerates(&other));
    let wrong_value = Taint::new(
        c.standby_taint_key.clone(),
        Some("false".into()),
        TaintEffect::NoSchedule,
    );
    assert!(!tol.tolerates(&wrong_value));
}

fn serving(since: &str) -> StandbyFacts {
    StandbyFacts {
        instance: instance(
            "i-s",
            "us-east-1a",
            "m5.large",
            InstanceState::Running,
            &[
                ("costop.io/standby", "true"),
                ("costop.io/standby-state", "serving"),
                ("costop.io/standby-since", since),
                ("costop.io/standby-interruption", "iid"),
            ],
        ),
        node: Some(NodeFacts {
            name: "standby-node".into(),
            ready: Some(true),
            ..NodeFacts::default()
        }),
        pods: vec![PodFacts {
            phase: PodPhase::Running,
            ..pod("web-1-a", "web-1", "2025-03-10T14:02:03Z")
        }],
    }
}

fn spot_node(created: &str) -> NodeFacts {
    NodeFacts {
        name: "new-spot".into(),
        labels: [
            ("eks.amazonaws.com/capacityType", "SPOT"),
            ("topology.kubernetes.io/zone", "us-east-1a"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        ready: Some(true),
        created_at: Some(t(created)),
        ..NodeFacts::default()
    }
}

#[test]
fn a_serving_standby_stays_until_both_the_minimum_serve_time_is_over_and_a_new_spot_node_is_ready()
{
    let c = Config::default();
    let pool = |since: &str, node_created: &str| PoolFacts {
        cluster: "prod".into(),
        standbys: vec![serving(since)],
        nodes: vec![spot_node(node_created)],
    };
    let now = t("2025-03-10T15:00:00Z");
    // Too young: served 5 minutes of 10.
    assert!(
        plan_tick(
            &pool("2025-03-10T14:55:00Z", "2025-03-10T14:58:00Z"),
            &c,
            now
        )
        .actions
        .is_empty()
    );
    // The only spot node is older than the start: capacity is not back.
    assert!(
        plan_tick(
            &pool("2025-03-10T14:00:00Z", "2025-03-10T13:00:00Z"),
            &c,
            now
        )
        .actions
        .is_empty()
    );
    // Both: returning, cordoned, pods evicted; not stopped yet.
    let plan = plan_tick(
        &pool("2025-03-10T14:00:00Z", "2025-03-10T14:30:00Z"),
        &c,
        now,
    );
    let names: Vec<&str> = plan.actions.iter().map(TickAction::name).collect();
    assert_eq!(
        names,
        ["tag_standby", "set_unschedulable", "evict_from_standby"]
    );
}

#[test]
fn a_standby_started_outside_costop_is_drained_and_stopped() {
    let mut s = serving("2025-03-10T14:00:00Z");
    s.instance
        .tags
        .retain(|k, _| k == "costop.io/standby" || k == "eks:cluster-name");
    s.pods.clear();
    let plan = plan_tick(
        &PoolFacts {
            cluster: "prod".into(),
            standbys: vec![s],
            nodes: Vec::new(),
        },
        &Config::default(),
        t("2025-03-10T15:00:00Z"),
    );
    let names: Vec<&str> = plan.actions.iter().map(TickAction::name).collect();
    assert_eq!(names, ["stop_standby", "tag_standby", "release_lease"]);
}

#[test]
fn a_scheduled_event_is_a_tick_and_an_interruption_only_kind_is_ignored_by_the_keeper() {
    let tick = serde_json::json!({"id": "1", "source": "aws.events", "detail-type": "Scheduled Event", "time": "2025-03-10T14:05:00Z", "detail": {}});
    assert_eq!(Trigger::from_value(&tick).unwrap().name(), "tick");
    let stopping = serde_json::json!({"id": "2", "source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification",
        "time": "2025-03-10T14:05:00Z", "detail": {"instance-id": "i-0123456789abcdef0", "state": "stopping"}});
    assert_eq!(Trigger::from_value(&stopping).unwrap().name(), "ignored");
    let no_id = serde_json::json!({"source": "aws.events", "detail-type": "Scheduled Event", "time": "2025-03-10T14:05:00Z", "detail": {}});
    assert_eq!(Trigger::from_value(&no_id).unwrap_err().field(), Some("id"));
    let _ = TimeDelta::zero();
}

fn this_interruption() -> String {
    crate::plan::interruption_id(
        "i-0spot",
        crate::event::EventKind::SpotInterruption,
        t("2025-03-10T14:02:00Z"),
    )
}

fn tagged_for(id: &str, iid: &str, state: InstanceState, standby_state: &str) -> InstanceFacts {
    instance(
        id,
        "us-east-1a",
        "m5.large",
        state,
        &[
            ("costop.io/standby", "true"),
            ("costop.io/standby-state", standby_state),
            ("costop.io/standby-interruption", iid),
            ("costop.io/standby-since", "2025-03-10T14:02:01Z"),
        ],
    )
}

/// The spot instance's node, so a plan watches for its replacements.
fn with_spot_node(facts: StartFacts) -> StartFacts {
    StartFacts {
        node: Some(NodeFacts {
            name: "spot-node".into(),
            ..NodeFacts::default()
        }),
        ..facts
    }
}

fn names(d: &StartDecision) -> Vec<&'static str> {
    d.plan()
        .map(|p| p.actions.iter().map(StartAction::name).collect())
        .unwrap_or_default()
}

#[test]
fn a_redelivered_warning_joins_the_standby_whose_tags_name_its_interruption_and_starts_nothing() {
    let now = t("2025-03-10T14:03:00Z");
    for (state, standby_state) in [
        (InstanceState::Running, "serving"),
        (InstanceState::Pending, "serving"),
        (InstanceState::Running, "returning"),
    ] {
        let facts = with_spot_node(StartFacts {
            spot: Some(spot()),
            standbys: vec![
                standby_in("i-a", "us-east-1a", "m5.large"),
                tagged_for("i-b", &this_interruption(), state, standby_state),
            ],
            ..StartFacts::default()
        });
        let d = plan_start(&warning(), &facts, &Config::default(), now);
        let StartDecision::Join { by, plan } = &d else {
            panic!("{state:?} {standby_state}: expected a join: {d:?}")
        };
        assert_eq!((*by, plan.standby.as_str()), (ServedBy::Tags, "i-b"));
        assert_eq!(names(&d), ["record", "tolerate_replacements"]);
        assert!(matches!(
            &plan.actions[0],
            StartAction::Record(TimelineEntry { step: TimelineStep::StandbyJoined { standby }, interruption_id, .. })
                if standby == "i-b" && *interruption_id == this_interruption()
        ));
    }
}

#[test]
fn a_standby_serving_another_interruption_is_not_joined() {
    let facts = StartFacts {
        spot: Some(spot()),
        standbys: vec![
            tagged_for(
                "i-a",
                "i-0other-spot-interruption-20250310t140000z",
                InstanceState::Running,
                "serving",
            ),
            standby_in("i-b", "us-east-1a", "m5.large"),
        ],
        ..StartFacts::default()
    };
    let d = plan_warning(&facts);
    assert!(
        matches!(&d, StartDecision::Act(p) if p.standby == "i-b"),
        "{d:?}"
    );
}

#[test]
fn a_claim_lost_to_the_same_interruption_joins_the_standby_another_delivery_is_starting() {
    let facts = with_spot_node(StartFacts {
        spot: Some(spot()),
        standbys: vec![
            standby_in("i-a", "us-east-1a", "m5.large"),
            standby_in("i-b", "us-east-1a", "m5.large"),
        ],
        lost_claims: vec![LostClaim {
            standby: "i-a".into(),
            held_by: Some(this_interruption()),
        }],
        ..StartFacts::default()
    });
    let d = plan_warning(&facts);
    let StartDecision::Join { by, plan } = &d else {
        panic!("expected a join: {d:?}")
    };
    assert_eq!((*by, plan.standby.as_str()), (ServedBy::Lease, "i-a"));
    assert_eq!(names(&d), ["record", "tolerate_replacements"]);
}

#[test]
fn claims_lost_to_other_interruptions_move_on_to_the_next_standby_until_none_is_left() {
    let standbys = vec![
        standby_in("i-a", "us-east-1a", "m5.large"),
        standby_in("i-b", "us-east-1a", "m5.large"),
    ];
    let lost = |ids: &[&str]| StartFacts {
        spot: Some(spot()),
        standbys: standbys.clone(),
        lost_claims: ids
            .iter()
            .map(|id| LostClaim {
                standby: (*id).into(),
                held_by: Some(format!("{id}-holder")),
            })
            .collect(),
        ..StartFacts::default()
    };
    let plan_with = |ids: &[&str]| plan_warning(&lost(ids));
    assert!(matches!(&plan_with(&[]), StartDecision::Act(p) if p.standby == "i-a"));
    assert!(matches!(&plan_with(&["i-a"]), StartDecision::Act(p) if p.standby == "i-b"));
    let none = plan_with(&["i-a", "i-b"]);
    let Some(reason @ NoStandbyReason::AllLeased { standbys, .. }) = reason(&none) else {
        panic!("{none:?}")
    };
    assert_eq!(standbys, &["i-a", "i-b"]);
    assert_eq!(
        reason.describe(),
        "every standby of cluster prod in us-east-1a is leased to another interruption (i-a, i-b)"
    );
    assert!(
        matches!(&none, StartDecision::NoStandby { interruption_id: Some(iid), .. } if *iid == this_interruption())
    );
}

#[test]
fn a_standby_tagged_for_the_interruption_but_never_started_is_resumed_before_any_other() {
    let facts = StartFacts {
        spot: Some(spot()),
        standbys: vec![
            standby_in("i-a", "us-east-1a", "m5.large"),
            tagged_for(
                "i-b",
                &this_interruption(),
                InstanceState::Stopped,
                "serving",
            ),
        ],
        ..StartFacts::default()
    };
    let now = t("2025-03-10T14:04:00Z");
    let d = plan_start(&warning(), &facts, &Config::default(), now);
    let StartDecision::Act(plan) = &d else {
        panic!("expected a start: {d:?}")
    };
    assert_eq!(plan.standby, "i-b");
    let Some(StartAction::ClaimStandby(lease)) = plan.actions.first() else {
        panic!("{plan:?}")
    };
    assert_eq!(
        lease.resume_if_taken_before,
        now - TimeDelta::seconds(LEASE_IN_FLIGHT_SECONDS),
        "only a lease of this interruption older than a start takes may be resumed"
    );
    // Another interruption's warning does not take a standby tagged for this one.
    let other = Delivered {
        envelope: Envelope {
            time: t("2025-03-10T14:03:30Z"),
            ..warning().envelope
        },
        ..warning()
    };
    assert!(
        matches!(&plan_start(&other, &facts, &Config::default(), now), StartDecision::Act(p) if p.standby == "i-a")
    );
}

fn standby_node(taints: Vec<Taint>, unschedulable: bool, labels: &[(&str, &str)]) -> NodeFacts {
    NodeFacts {
        name: "ip-10-0-0-9.ec2.internal".into(),
        provider_id: Some("aws:///us-east-1a/i-a".into()),
        resource_version: Some("41".into()),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        taints,
        unschedulable,
        ..NodeFacts::default()
    }
}

fn taint(key: &str, value: Option<&str>, effect: TaintEffect) -> Taint {
    Taint::new(key, value.map(str::to_owned), effect)
}

/// What the interruption function puts on a node whose instance is stopping.
fn stopping_taint() -> Taint {
    taint(
        "costop.io/instance-state-change",
        Some("stopping"),
        TaintEffect::NoSchedule,
    )
}

#[test]
fn a_standby_node_left_cordoned_and_tainted_is_cleared_down_to_the_standby_taint_and_others_taints()
{
    let c = Config::default();
    let unreachable = taint(
        "node.kubernetes.io/unreachable",
        None,
        TaintEffect::NoExecute,
    );
    let operators = taint("dedicated", Some("batch"), TaintEffect::NoSchedule);
    let node = standby_node(
        vec![
            standby_taint(&c),
            stopping_taint(),
            taint(
                "costop.io/spot-interruption",
                Some("x"),
                TaintEffect::NoSchedule,
            ),
            taint(
                "node.kubernetes.io/out-of-service",
                Some("nodeshutdown"),
                TaintEffect::NoExecute,
            ),
            taint(
                "node.kubernetes.io/unschedulable",
                None,
                TaintEffect::NoSchedule,
            ),
            unreachable.clone(),
            operators.clone(),
        ],
        true,
        &[
            (
                "node.kubernetes.io/exclude-from-external-load-balancers",
                "true",
            ),
            ("costop.io/pool", "general"),
        ],
    );
    let patch = clear_node(&node, &c).expect("a patch");
    assert_eq!(
        patch.taints_after,
        vec![standby_taint(&c), unreachable, operators],
        "costop's taints go, the controller's and the operator's stay"
    );
    assert_eq!(
        patch.remove_labels,
        ["node.kubernetes.io/exclude-from-external-load-balancers"]
    );
    assert_eq!(patch.resource_version.as_deref(), Some("41"));
    assert_eq!(patch.node, node.name);
}

#[test]
fn a_clean_standby_node_needs_nothing_and_a_lost_or_altered_standby_taint_is_put_back() {
    let c = Config::default();
    assert_eq!(
        clear_node(&standby_node(vec![standby_taint(&c)], false, &[]), &c),
        None
    );
    let uncordon = clear_node(&standby_node(vec![standby_taint(&c)], true, &[]), &c)
        .expect("cordoned: a patch");
    assert_eq!(uncordon.taints_after, vec![standby_taint(&c)]);
    for taints in [
        Vec::new(),
        vec![taint(
            "costop.io/standby",
            Some("true"),
            TaintEffect::NoExecute,
        )],
        vec![taint(
            "costop.io/standby",
            Some("false"),
            TaintEffect::NoSchedule,
        )],
    ] {
        let patch = clear_node(&standby_node(taints.clone(), false, &[]), &c)
            .unwrap_or_else(|| panic!("{taints:?}: a patch"));
        assert_eq!(patch.taints_after, vec![standby_taint(&c)], "{taints:?}");
    }
}

#[test]
fn the_start_clears_the_standbys_node_right_after_starting_it_only_when_it_needs_it() {
    let c = Config::default();
    let standby = InstanceFacts {
        private_dns_name: Some("ip-10-0-0-9.ec2.internal".into()),
        ..standby_in("i-a", "us-east-1a", "m5.large")
    };
    let plan_with = |nodes: Vec<NodeFacts>| {
        let facts = StartFacts {
            spot: Some(spot()),
            standbys: vec![standby.clone()],
            standby_nodes: nodes,
            ..StartFacts::default()
        };
        names(&plan_warning(&facts))
    };
    let dirty = standby_node(vec![standby_taint(&c), stopping_taint()], true, &[]);
    assert_eq!(
        plan_with(vec![dirty.clone()]),
        [
            "claim_standby",
            "tag_standby",
            "start_standby",
            "clear_standby_node",
            "record"
        ]
    );
    let clean = standby_node(vec![standby_taint(&c)], false, &[]);
    assert!(!plan_with(vec![clean]).contains(&"clear_standby_node"));
    assert!(!plan_with(Vec::new()).contains(&"clear_standby_node"));
    // Another instance's node (providerID) is not the standby's, whatever its name.
    let foreign = NodeFacts {
        provider_id: Some("aws:///us-east-1a/i-0123456789abcdef0".into()),
        ..dirty
    };
    assert!(!plan_with(vec![foreign]).contains(&"clear_standby_node"));
}
