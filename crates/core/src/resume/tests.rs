use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::*;
use crate::facts::Lifecycle;
use crate::kube::{Taint, TaintEffect};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

const ID: &str = "i-0123456789abcdef0";

fn watch() -> ResumeWatch {
    ResumeWatch {
        instance_id: ID.into(),
        cluster: "prod".into(),
        node: "ip-10-0-1-23.ec2.internal".into(),
        interruption_id: format!("{ID}-spot-interruption-20250310t140000z"),
        deadline: t("2025-03-10T14:02:00Z"),
    }
}

fn instance(state: InstanceState) -> InstanceFacts {
    InstanceFacts {
        instance_id: ID.into(),
        state,
        lifecycle: Lifecycle::Spot,
        instance_type: Some("m5.large".into()),
        availability_zone: Some("us-east-1a".into()),
        private_dns_name: Some("ip-10-0-1-23.ec2.internal".into()),
        private_ips: vec!["10.0.1.23".into()],
        tags: BTreeMap::new(),
    }
}

fn taint(key: &str) -> Taint {
    Taint::new(key, Some("x".into()), TaintEffect::NoSchedule)
}

/// The node before costop's cordon: a team's own taint, schedulable.
fn before() -> NodeFacts {
    NodeFacts {
        name: "ip-10-0-1-23.ec2.internal".into(),
        provider_id: Some(format!("aws:///us-east-1a/{ID}")),
        taints: vec![taint("team.example.com/gpu")],
        ready: Some(true),
        ..NodeFacts::default()
    }
}

/// The node as costop left it: cordoned, its taint, the out-of-service taint, the label.
fn marked() -> NodeFacts {
    let mut n = before();
    n.unschedulable = true;
    n.taints.push(taint(constants::TAINT_SPOT_INTERRUPTION));
    n.taints.push(taint(constants::TAINT_OUT_OF_SERVICE));
    n.labels.insert(
        constants::LABEL_EXCLUDE_FROM_EXTERNAL_LB.into(),
        "true".into(),
    );
    n.resource_version = Some("42".into());
    n
}

fn decide(state: InstanceState, node: Option<&NodeFacts>, now: &str) -> ResumeDecision {
    plan_resume(
        &watch(),
        Some(&instance(state)),
        node,
        Some(&before()),
        &Config::default(),
        t(now),
    )
}

#[test]
fn a_node_is_given_back_only_what_costop_took_once_its_instance_is_back() {
    let ResumeDecision::Restore { restore, restored } = decide(
        InstanceState::Running,
        Some(&marked()),
        "2025-03-10T15:00:00Z",
    ) else {
        panic!("expected a restore")
    };
    let restore = restore.expect("a patch");
    assert!(!restore.unschedulable);
    assert_eq!(restore.taints_after, vec![taint("team.example.com/gpu")]);
    assert_eq!(
        restore.remove_labels,
        vec![constants::LABEL_EXCLUDE_FROM_EXTERNAL_LB.to_string()]
    );
    assert_eq!(restore.resource_version.as_deref(), Some("42"));
    assert_eq!(
        restored,
        vec![
            "uncordoned".to_string(),
            constants::TAINT_SPOT_INTERRUPTION.into(),
            constants::TAINT_OUT_OF_SERVICE.into(),
            constants::LABEL_EXCLUDE_FROM_EXTERNAL_LB.into(),
        ]
    );
}

#[test]
fn what_the_node_had_before_the_interruption_stays() {
    let mut was = marked();
    was.taints
        .retain(|t| t.key != constants::TAINT_SPOT_INTERRUPTION);
    let ResumeDecision::Restore { restore, .. } = plan_resume(
        &watch(),
        Some(&instance(InstanceState::Running)),
        Some(&marked()),
        Some(&was),
        &Config::default(),
        t("2025-03-10T15:00:00Z"),
    ) else {
        panic!("expected a restore")
    };
    let restore = restore.expect("a patch");
    assert!(restore.unschedulable, "it was cordoned before");
    assert!(
        restore.remove_labels.is_empty(),
        "the label was there before"
    );
    assert_eq!(
        restore
            .taints_after
            .iter()
            .map(|t| t.key.as_str())
            .collect::<Vec<_>>(),
        ["team.example.com/gpu", constants::TAINT_OUT_OF_SERVICE],
        "the out-of-service taint was there before; costop's own goes"
    );
}

#[test]
fn a_watch_waits_while_the_instance_is_on_its_way_down_or_away() {
    let cases = [
        // Running but within the deadline and its settle time: still going down.
        (
            InstanceState::Running,
            Some(marked()),
            "2025-03-10T14:03:00Z",
        ),
        // Stopped: it may start again.
        (
            InstanceState::Stopped,
            Some(marked()),
            "2025-03-10T15:00:00Z",
        ),
        (
            InstanceState::Pending,
            Some(marked()),
            "2025-03-10T15:00:00Z",
        ),
        // Running, but its node has not reported Ready yet.
        (
            InstanceState::Running,
            Some(NodeFacts {
                ready: Some(false),
                ..marked()
            }),
            "2025-03-10T15:00:00Z",
        ),
    ];
    for (state, node, now) in cases {
        assert!(
            matches!(
                decide(state, node.as_ref(), now),
                ResumeDecision::Wait { .. }
            ),
            "{state:?} at {now}"
        );
    }
}

#[test]
fn a_watch_is_dropped_when_the_instance_or_its_node_is_gone() {
    for state in [InstanceState::Terminated, InstanceState::ShuttingDown] {
        assert!(matches!(
            decide(state, Some(&marked()), "2025-03-10T15:00:00Z"),
            ResumeDecision::Forget { .. }
        ));
    }
    assert!(matches!(
        plan_resume(
            &watch(),
            None,
            None,
            None,
            &Config::default(),
            t("2025-03-10T15:00:00Z")
        ),
        ResumeDecision::Forget { .. }
    ));
    // A node of that name now backs another instance (a recycled private IP).
    let mut other = marked();
    other.provider_id = Some("aws:///us-east-1a/i-0fedcba9876543210".into());
    assert!(matches!(
        decide(InstanceState::Running, Some(&other), "2025-03-10T15:00:00Z"),
        ResumeDecision::Forget { .. }
    ));
}

#[test]
fn a_node_a_later_interruption_marked_is_left_to_that_interruption() {
    let mut node = marked();
    node.annotations.insert(
        constants::ANNOTATION_INTERRUPTION_ID.into(),
        format!("{ID}-spot-interruption-20250310t160000z"),
    );
    assert!(matches!(
        decide(InstanceState::Running, Some(&node), "2025-03-10T16:01:00Z"),
        ResumeDecision::Forget { .. }
    ));
    node.annotations.insert(
        constants::ANNOTATION_INTERRUPTION_ID.into(),
        watch().interruption_id,
    );
    assert!(matches!(
        decide(InstanceState::Running, Some(&node), "2025-03-10T16:01:00Z"),
        ResumeDecision::Restore { .. }
    ));
}

#[test]
fn a_node_someone_already_uncordoned_needs_no_patch() {
    let ResumeDecision::Restore { restore, restored } = decide(
        InstanceState::Running,
        Some(&before()),
        "2025-03-10T15:00:00Z",
    ) else {
        panic!("expected a restore")
    };
    assert_eq!(restore, None);
    assert!(restored.is_empty());
}
