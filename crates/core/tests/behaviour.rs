//! Table tests: each name is a sentence about costop's behaviour.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use costop_core::event::{Event, IgnoredReason, InstanceState};
use costop_core::facts::{
    Delivery, Facts, InstanceFacts, Lifecycle, LifecycleHookFacts, NodeFacts, OwnerRef, PodFacts,
    PodPhase, RegisteredTarget, StandbyLeaseRecord, TargetGroupFacts, TargetType,
};
use costop_core::handoff::ScheduledChange;
use costop_core::kube::{Taint, TaintEffect};
use costop_core::plan::{
    Action, CompleteLifecycleAction, Decision, Drain, IgnoreReason, LifecycleHeartbeat,
    LifecycleResult, Phase, Plan, Response, SkipReason, plan, plan_all,
};
use costop_core::record::{self, TimelineStep};
use costop_core::{Config, ParseError, constants};
use serde_json::{Value, json};

const I: &str = "i-0a1b2c3d4e5f60718";
const I2: &str = "i-0b2c3d4e5f6071829";
const EVENT_TIME: &str = "2025-03-10T14:02:00Z";

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn now() -> DateTime<Utc> {
    t(EVENT_TIME) + TimeDelta::seconds(2)
}

fn envelope(source: &str, detail_type: &str, detail: Value) -> Value {
    json!({
        "version": "0",
        "id": "11111111-2222-3333-4444-555555555555",
        "detail-type": detail_type,
        "source": source,
        "account": "123456789012",
        "time": EVENT_TIME,
        "region": "us-east-1",
        "resources": [format!("arn:aws:ec2:us-east-1:123456789012:instance/{I}")],
        "detail": detail,
    })
}

fn parse(v: Value) -> Event {
    Event::from_value(&v).unwrap_or_else(|e| panic!("{e}"))
}

fn spot(action: &str) -> Event {
    parse(envelope(
        "aws.ec2",
        "EC2 Spot Instance Interruption Warning",
        json!({ "instance-id": I, "instance-action": action }),
    ))
}

fn state(state: &str) -> Event {
    parse(envelope(
        "aws.ec2",
        "EC2 Instance State-change Notification",
        json!({ "instance-id": I, "state": state }),
    ))
}

fn asg_hook() -> Event {
    parse(envelope(
        "aws.autoscaling",
        "EC2 Instance-terminate Lifecycle Action",
        json!({
            "LifecycleActionToken": "630aa23f-48eb-45e7-aba6-799ea6093a0f",
            "AutoScalingGroupName": "workers",
            "LifecycleHookName": "costop-drain",
            "EC2InstanceId": I,
            "LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING",
            "Origin": "AutoScalingGroup",
            "Destination": "EC2"
        }),
    ))
}

fn health(entities: Value, extra: Value) -> Event {
    let mut detail = json!({
        "eventArn": "arn:aws:health:us-east-1::event/EC2/AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED/x",
        "service": "EC2",
        "eventTypeCode": "AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED",
        "eventTypeCategory": "scheduledChange",
        "statusCode": "upcoming",
        "startTime": "Mon, 10 Mar 2025 14:15:00 GMT",
        "affectedEntities": entities,
        "page": "1",
        "totalPages": "1"
    });
    for (k, v) in extra.as_object().unwrap() {
        detail[k] = v.clone();
    }
    parse(envelope("aws.health", "AWS Health Event", detail))
}

fn instance(id: &str, cluster: &str) -> InstanceFacts {
    InstanceFacts {
        instance_id: id.into(),
        state: InstanceState::Running,
        lifecycle: Lifecycle::Spot,
        instance_type: Some("m5.large".into()),
        availability_zone: Some("us-east-1a".into()),
        private_dns_name: Some(format!("node-{id}")),
        private_ips: vec!["10.0.1.23".into(), "10.0.1.40".into()],
        tags: BTreeMap::from([
            (constants::TAG_EKS_CLUSTER_NAME.into(), cluster.into()),
            (
                constants::TAG_AUTOSCALING_GROUP_NAME.into(),
                "workers".into(),
            ),
        ]),
    }
}

fn pod(name: &str, owner: &str, grace: Option<i64>) -> PodFacts {
    PodFacts {
        namespace: "shop".into(),
        name: name.into(),
        uid: format!("uid-{name}"),
        owner: Some(OwnerRef {
            kind: owner.into(),
            name: format!("{name}-owner"),
        }),
        termination_grace_period_seconds: grace,
        ..PodFacts::default()
    }
}

fn facts(id: &str) -> Facts {
    Facts {
        scheduled: None,
        instance_id: id.into(),
        instance: Some(instance(id, "prod")),
        node: Some(NodeFacts {
            name: format!("node-{id}"),
            resource_version: Some("7".into()),
            ..NodeFacts::default()
        }),
        pods: vec![
            pod("web-1", "ReplicaSet", Some(30)),
            pod("logs", "DaemonSet", Some(10)),
        ],
        target_groups: vec![
            TargetGroupFacts {
                kept_by_controller: false,
                registered: 0,
                arn: "tg-instance".into(),
                target_type: TargetType::Instance,
                targets: vec![
                    RegisteredTarget {
                        id: id.into(),
                        port: Some(30080),
                        availability_zone: None,
                    },
                    RegisteredTarget {
                        id: "i-0ffffffffffffffff".into(),
                        port: Some(30080),
                        availability_zone: None,
                    },
                ],
            },
            TargetGroupFacts {
                kept_by_controller: false,
                registered: 0,
                arn: "tg-ip".into(),
                target_type: TargetType::Ip,
                targets: vec![
                    RegisteredTarget {
                        id: "10.0.1.40".into(),
                        port: Some(8080),
                        availability_zone: None,
                    },
                    RegisteredTarget {
                        id: "10.9.9.9".into(),
                        port: Some(8080),
                        availability_zone: None,
                    },
                ],
            },
            TargetGroupFacts {
                kept_by_controller: false,
                registered: 0,
                arn: "tg-elsewhere".into(),
                target_type: TargetType::Instance,
                targets: vec![RegisteredTarget {
                    id: "i-0eeeeeeeeeeeeeeee".into(),
                    port: None,
                    availability_zone: None,
                }],
            },
        ],
        rules: Vec::new(),
        ingresses: Vec::new(),
        delivery: Delivery::New,
        standby_lease: None,
        lifecycle_hook: None,
    }
}

fn config(pairs: &[(&str, &str)]) -> Config {
    Config::from_env(pairs.iter().copied()).unwrap()
}

fn act(d: Decision) -> Plan {
    match d {
        Decision::Act(p) => p,
        Decision::Ignore { reason } => panic!("expected a plan, got ignore: {reason:?}"),
    }
}

fn ignored(d: Decision) -> IgnoreReason {
    match d {
        Decision::Ignore { reason } => reason,
        Decision::Act(p) => panic!("expected ignore, got plan {}", p.interruption_id),
    }
}

fn names(p: &Plan) -> Vec<&'static str> {
    p.actions().map(Action::name).collect()
}

fn drain(p: &Plan) -> &Drain {
    p.drain().expect("plan has a drain")
}

// --- parsing ---------------------------------------------------------------

#[test]
fn unknown_detail_type_is_a_typed_noop() {
    let e = parse(envelope(
        "aws.ec2",
        "EC2 AMI State Change",
        json!({ "ImageId": "ami-1" }),
    ));
    let Event::Ignored(i) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(i.reason, IgnoredReason::UnknownDetailType);
    assert!(e.instance_ids().is_empty());
    assert_eq!(
        ignored(plan(&e, &facts(I), &Config::default(), now())),
        IgnoreReason::UnknownEvent {
            source: "aws.ec2".into(),
            detail_type: "EC2 AMI State Change".into()
        }
    );
}

#[test]
fn a_foreign_event_is_a_typed_noop_even_without_a_detail() {
    let e = parse(json!({ "source": "aws.s3", "detail-type": "Object Created" }));
    let Event::Ignored(i) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(i.reason, IgnoredReason::ForeignSource);
    let decisions = plan_all(&e, &[], &Config::default(), now());
    assert_eq!(decisions.len(), 1);
    assert!(matches!(
        decisions[0].as_ignore(),
        Some(IgnoreReason::ForeignEvent { .. })
    ));
}

#[test]
fn malformed_event_is_a_clear_error() {
    let spot_type = "EC2 Spot Instance Interruption Warning";
    let mut no_detail = envelope("aws.ec2", spot_type, json!({}));
    no_detail.as_object_mut().unwrap().remove("detail");
    let mut no_id = envelope(
        "aws.ec2",
        spot_type,
        json!({ "instance-id": I, "instance-action": "terminate" }),
    );
    no_id.as_object_mut().unwrap().remove("id");
    let mut bad_time = no_id.clone();
    bad_time["id"] = json!("x");
    bad_time["time"] = json!("yesterday");
    let cases: Vec<(Value, &str)> = vec![
        (no_detail, "missing field `detail`"),
        (no_id, "missing field `id`"),
        (
            bad_time,
            "field `time` is not a valid timestamp: \"yesterday\"",
        ),
        (
            envelope(
                "aws.ec2",
                spot_type,
                json!({ "instance-id": 42, "instance-action": "terminate" }),
            ),
            "field `detail.instance-id` must be a string, found a number",
        ),
        (
            envelope(
                "aws.ec2",
                spot_type,
                json!({ "instance-id": "i-nothex", "instance-action": "terminate" }),
            ),
            "field `detail.instance-id` has invalid value \"i-nothex\"",
        ),
        (
            envelope(
                "aws.ec2",
                spot_type,
                json!({ "instance-id": I, "instance-action": "explode" }),
            ),
            "field `detail.instance-action` has invalid value \"explode\"",
        ),
        (
            envelope("aws.ec2", spot_type, json!("terminate")),
            "field `detail` must be an object, found a string",
        ),
        (
            envelope(
                "aws.ec2",
                "EC2 Instance State-change Notification",
                json!({ "instance-id": I, "state": "melting" }),
            ),
            "field `detail.state` has invalid value \"melting\"",
        ),
        (
            envelope(
                "aws.health",
                "AWS Health Event",
                json!({ "service": "EC2" }),
            ),
            "missing field `detail.eventArn`",
        ),
        (json!({ "detail-type": "x" }), "missing field `source`"),
        (
            json!({ "source": 1, "detail-type": "x" }),
            "field `source` must be a string, found a number",
        ),
        (
            json!([1, 2]),
            "field `(event)` must be an object, found an array",
        ),
    ];
    for (value, expected) in cases {
        let err = Event::from_value(&value).expect_err(expected);
        assert!(
            err.to_string().starts_with(expected),
            "got {err:?}, want {expected}"
        );
        assert!(err.field().is_some(), "{err}");
    }
    let err = Event::parse(b"{\"source\": ").unwrap_err();
    assert!(matches!(err, ParseError::Json { line: 1, .. }), "{err:?}");
    assert!(
        std::error::Error::source(&err).is_some(),
        "wraps serde_json's error"
    );
}

#[test]
fn an_aws_lambda_events_envelope_converts_to_an_event() {
    let value = envelope(
        "aws.ec2",
        "EC2 Instance Rebalance Recommendation",
        json!({ "instance-id": I }),
    );
    let ev: aws_lambda_events::eventbridge::EventBridgeEvent<Value> =
        serde_json::from_value(value).unwrap();
    let e = Event::from_eventbridge(ev).unwrap();
    assert!(matches!(e, Event::Rebalance(_)));
    assert_eq!(e.instance_ids(), vec![I]);
    assert_eq!(e.id(), Some("11111111-2222-3333-4444-555555555555"));
}

#[test]
fn health_event_with_instance_arn_resolves_the_instance_id() {
    let e = health(
        json!([{ "entityValue": format!("arn:aws:ec2:us-east-1:123456789012:instance/{I}"), "statusCode": "IMPAIRED" }]),
        json!({}),
    );
    assert_eq!(e.instance_ids(), vec![I]);
    let p = act(plan(&e, &facts(I), &Config::default(), now()));
    assert_eq!(p.instance_id, I);
}

#[test]
fn health_start_time_in_the_documented_format_is_the_deadline() {
    let e = health(json!([{ "entityValue": I }]), json!({}));
    let p = act(plan(&e, &facts(I), &Config::default(), now()));
    assert_eq!(p.deadline, Some(t("2025-03-10T14:15:00Z")));
    assert_eq!(drain(&p).evict_by, t("2025-03-10T14:14:45Z"));
}

#[test]
fn a_health_change_that_already_started_is_drained_now() {
    let e = health(
        json!([{ "entityValue": I }]),
        json!({ "startTime": "Mon, 10 Mar 2025 12:00:00 GMT" }),
    );
    let p = act(plan(&e, &facts(I), &Config::default(), now()));
    assert_eq!(p.deadline, Some(now()));
}

#[test]
fn health_event_with_several_instances_plans_each_one() {
    let other_cluster = {
        let mut f = facts(I2);
        f.instance = Some(instance(I2, "staging"));
        f
    };
    let e = health(
        json!([
            { "entityValue": I },
            { "entityValue": format!("arn:aws:ec2:us-east-1:123456789012:instance/{I2}") },
            { "entityValue": "i-0c3d4e5f607182930", "statusCode": "RESOLVED" },
            { "entityValue": I }
        ]),
        json!({ "page": "1", "totalPages": "3" }),
    );
    assert_eq!(
        e.instance_ids(),
        vec![I, I2, "i-0c3d4e5f607182930"],
        "duplicate collapsed, RESOLVED entity kept (to cancel what was scheduled for it)"
    );
    let d = plan_all(
        &e,
        &[facts(I), other_cluster],
        &config(&[("COSTOP_CLUSTER_ALLOW_LIST", "prod")]),
        now(),
    );
    assert_eq!(d.len(), 3);
    assert_eq!(d[0].as_plan().unwrap().instance_id, I);
    assert!(
        matches!(d[1].as_ignore(), Some(IgnoreReason::ClusterNotAllowed { cluster, .. }) if cluster == "staging")
    );
    assert!(
        matches!(d[2].as_ignore(), Some(IgnoreReason::EntityResolved { instance_id, .. }) if instance_id == "i-0c3d4e5f607182930")
    );
}

#[test]
fn pages_of_one_health_change_share_an_interruption_id() {
    let a = health(
        json!([{ "entityValue": I }]),
        json!({ "page": "1", "totalPages": "2" }),
    );
    let mut b_json = envelope("aws.health", "AWS Health Event", json!({}));
    b_json["id"] = json!("another-delivery-id");
    b_json["time"] = json!("2025-03-10T14:05:00Z");
    b_json["detail"] = serde_json::to_value(match &a {
        Event::Health(d) => json!({
            "eventArn": d.detail.event_arn, "service": "EC2", "eventTypeCode": d.detail.event_type_code,
            "eventTypeCategory": "scheduledChange", "startTime": "Mon, 10 Mar 2025 14:15:00 GMT",
            "affectedEntities": [{ "entityValue": I }], "page": "2", "totalPages": "2"
        }),
        _ => unreachable!(),
    })
    .unwrap();
    let b = parse(b_json);
    let pa = act(plan(&a, &facts(I), &Config::default(), now()));
    let pb = act(plan(&b, &facts(I), &Config::default(), now()));
    assert_eq!(pa.interruption_id, pb.interruption_id);
    assert_ne!(pa.event_id, pb.event_id);
}

#[test]
fn a_closed_or_non_ec2_health_event_is_ignored() {
    let closed = health(
        json!([{ "entityValue": I }]),
        json!({ "statusCode": "closed" }),
    );
    assert!(matches!(
        ignored(plan(&closed, &facts(I), &Config::default(), now())),
        IgnoreReason::HealthEventClosed { .. }
    ));
    let rds = health(
        json!([{ "entityValue": "db-1" }]),
        json!({ "service": "RDS" }),
    );
    assert!(rds.instance_ids().is_empty());
    assert!(matches!(
        ignored(plan_all(&rds, &[], &Config::default(), now()).remove(0)),
        IgnoreReason::UnhandledHealthEvent { service, .. } if service == "RDS"
    ));
    let issue = health(
        json!([{ "entityValue": I }]),
        json!({ "eventTypeCategory": "issue" }),
    );
    assert!(matches!(
        ignored(plan(&issue, &facts(I), &Config::default(), now())),
        IgnoreReason::UnhandledHealthEvent { .. }
    ));
}

fn three_days_ahead() -> Event {
    health(
        json!([{ "entityValue": I }]),
        json!({ "startTime": "Thu, 13 Mar 2025 14:00:00 GMT" }),
    )
}

fn scheduled_for(e: &Event) -> ScheduledChange {
    let p = act(plan(e, &facts(I), &Config::default(), now()));
    p.actions()
        .find_map(|a| match a {
            Action::ScheduleHandoff(s) => Some(s.clone()),
            _ => None,
        })
        .expect("a scheduled change")
}

#[test]
fn a_health_change_three_days_ahead_is_scheduled_and_the_node_not_touched() {
    let p = act(plan(
        &three_days_ahead(),
        &facts(I),
        &Config::default(),
        now(),
    ));
    assert_eq!(p.response, Response::Schedule);
    assert_eq!(names(&p), ["record_timeline", "schedule_handoff"]);
    assert!(p.opening().claim.is_none() && p.opening().cordon.is_none());
    let s = scheduled_for(&three_days_ahead());
    assert_eq!(s.start_time, t("2025-03-13T14:00:00Z"));
    assert_eq!(
        s.due_at,
        t("2025-03-13T13:45:00Z"),
        "the default lead is 15 minutes"
    );
    assert_eq!(s.interruption_id, p.interruption_id);
    assert_eq!(
        (s.node.as_str(), s.cluster.as_str()),
        (format!("node-{I}").as_str(), "prod")
    );
}

#[test]
fn the_lead_is_configurable_and_a_change_within_it_is_drained_now() {
    let within = config(&[("COSTOP_SCHEDULED_CHANGE_LEAD_SECONDS", "259200")]);
    let p = act(plan(&three_days_ahead(), &facts(I), &within, now()));
    assert_eq!(p.response, Response::Full);
    assert_eq!(p.deadline, Some(t("2025-03-13T14:00:00Z")));
    // The same change handed back when due is drained, under the scheduled interruption id.
    let s = scheduled_for(&three_days_ahead());
    let p = act(plan(
        &three_days_ahead(),
        &facts(I),
        &Config::default(),
        s.due_at,
    ));
    assert_eq!(p.response, Response::Full);
    assert_eq!(p.interruption_id, s.interruption_id);
}

#[test]
fn a_change_acted_on_forgets_its_schedule() {
    let s = scheduled_for(&three_days_ahead());
    let mut f = facts(I);
    f.scheduled = Some(s.clone());
    let p = act(plan(&three_days_ahead(), &f, &Config::default(), s.due_at));
    assert!(
        p.in_phase(Phase::Close)
            .any(|a| *a == Action::CancelHandoff(s.reference()))
    );
}

#[test]
fn a_closing_update_cancels_the_scheduled_change_and_nothing_else() {
    let s = scheduled_for(&three_days_ahead());
    let mut f = facts(I);
    f.scheduled = Some(s.clone());
    let closed = health(
        json!([{ "entityValue": I }]),
        json!({ "statusCode": "closed", "startTime": "Thu, 13 Mar 2025 14:00:00 GMT" }),
    );
    let p = act(plan(&closed, &f, &Config::default(), now()));
    assert_eq!(p.response, Response::Cancel);
    assert_eq!(p.interruption_id, s.interruption_id);
    assert_eq!(names(&p), ["record_timeline", "cancel_handoff"]);
    let resolved = health(
        json!([{ "entityValue": I, "statusCode": "RESOLVED" }]),
        json!({ "startTime": "Thu, 13 Mar 2025 14:00:00 GMT" }),
    );
    let p = act(plan(&resolved, &f, &Config::default(), now()));
    assert_eq!(p.response, Response::Cancel);
    // Nothing scheduled: an ignore, as before.
    assert!(matches!(
        ignored(plan(&resolved, &facts(I), &Config::default(), now())),
        IgnoreReason::EntityResolved { .. }
    ));
    // Another event's schedule is not this update's to cancel.
    f.scheduled = Some(ScheduledChange {
        event_arn: "arn:other".into(),
        ..s
    });
    assert!(matches!(
        ignored(plan(&closed, &f, &Config::default(), now())),
        IgnoreReason::HealthEventClosed { .. }
    ));
}

// --- gates -----------------------------------------------------------------

#[test]
fn a_duplicate_delivery_is_ignored() {
    let mut f = facts(I);
    f.delivery = Delivery::Seen {
        first_seen_at: now(),
        completed: true,
        interruption_id: None,
        released: false,
    };
    let later = now() + TimeDelta::hours(1);
    assert!(matches!(
        ignored(plan(&spot("terminate"), &f, &Config::default(), later)),
        IgnoreReason::DuplicateDelivery { event_id, .. } if event_id == "11111111-2222-3333-4444-555555555555"
    ));
}

#[test]
fn a_delivery_in_progress_elsewhere_is_a_duplicate_until_its_lease_expires() {
    let mut f = facts(I);
    f.delivery = Delivery::Seen {
        first_seen_at: now(),
        completed: false,
        interruption_id: None,
        released: false,
    };
    let c = Config::default();
    let within = now() + TimeDelta::seconds(c.dedupe_lease_seconds - 1);
    assert!(matches!(
        ignored(plan(&spot("terminate"), &f, &c, within)),
        IgnoreReason::DuplicateDelivery { .. }
    ));
    let after = now() + TimeDelta::seconds(c.dedupe_lease_seconds);
    act(plan(&spot("terminate"), &f, &c, after));
}

#[test]
fn a_delivery_released_by_its_failed_first_delivery_is_taken_over_at_once() {
    let mut f = facts(I);
    f.delivery = Delivery::Seen {
        first_seen_at: now(),
        completed: false,
        interruption_id: None,
        released: true,
    };
    act(plan(&spot("terminate"), &f, &Config::default(), now()));
    // A completed delivery stays done even if it was released before.
    if let Delivery::Seen { completed, .. } = &mut f.delivery {
        *completed = true;
    }
    assert!(matches!(
        ignored(plan(&spot("terminate"), &f, &Config::default(), now())),
        IgnoreReason::DuplicateDelivery { .. }
    ));
}

/// Three deliveries of one event against an in-memory dedupe table: the
/// shell reads the item into `Facts::delivery`, plans, and executes the
/// plan's conditional `RecordEvent` before anything else.
#[test]
fn an_event_delivered_three_times_acts_once() {
    let c = Config::default();
    let event = spot("terminate");
    let mut table: BTreeMap<record::Key, record::Item> = BTreeMap::new();
    let mut acted = 0;
    for n in 0..3 {
        let at = now() + TimeDelta::seconds(n);
        let key = record::dedupe_key(event.id().unwrap(), I);
        let mut f = facts(I);
        f.delivery = record::delivery_from_item(table.get(&key)).unwrap();
        if let Decision::Act(p) = plan(&event, &f, &c, at) {
            let Some(Action::RecordEvent(rec)) = p.actions().next() else {
                panic!("RecordEvent must come first")
            };
            let put = record::dedupe_put(rec, at);
            // attribute_not_exists(pk) OR (completed = false AND first_seen_epoch < cutoff)
            let allowed = match table.get(&key) {
                None => true,
                Some(item) => {
                    item.get("completed") == Some(&record::Attr::Bool(false))
                        && matches!((item.get("first_seen_epoch"), put.expression_values.get(":cutoff")),
                            (Some(record::Attr::N(seen)), Some(record::Attr::N(cutoff)))
                                if seen.parse::<i64>().unwrap() < cutoff.parse::<i64>().unwrap())
                }
            };
            if allowed {
                table.insert(key, put.item);
                acted += 1;
            }
        }
    }
    assert_eq!(acted, 1);
}

#[test]
fn an_instance_of_another_cluster_is_ignored() {
    let mut f = facts(I);
    f.instance = Some(instance(I, "staging"));
    let reason = ignored(plan(
        &spot("terminate"),
        &f,
        &config(&[("COSTOP_CLUSTER_ALLOW_LIST", "prod,qa")]),
        now(),
    ));
    assert_eq!(
        reason,
        IgnoreReason::ClusterNotAllowed {
            instance_id: I.into(),
            cluster: "staging".into(),
            allow_list: vec!["prod".into(), "qa".into()]
        }
    );
}

#[test]
fn any_tagged_cluster_is_accepted_when_the_allow_list_is_empty() {
    let mut f = facts(I);
    f.instance = Some(instance(I, "staging"));
    assert_eq!(
        act(plan(&spot("terminate"), &f, &Config::default(), now())).cluster,
        "staging"
    );
}

#[test]
fn an_instance_without_cluster_tags_is_ignored() {
    let mut f = facts(I);
    f.instance.as_mut().unwrap().tags.clear();
    assert_eq!(
        ignored(plan(&spot("terminate"), &f, &Config::default(), now())),
        IgnoreReason::NotInAnyCluster {
            instance_id: I.into()
        }
    );
}

#[test]
fn an_instance_without_the_managed_tag_is_ignored_when_the_tag_is_required() {
    let c = config(&[("COSTOP_REQUIRE_MANAGED_TAG", "true")]);
    let mut f = facts(I);
    assert!(matches!(
        ignored(plan(&spot("terminate"), &f, &c, now())),
        IgnoreReason::ManagedTagMissing { .. }
    ));
    f.instance
        .as_mut()
        .unwrap()
        .tags
        .insert(constants::TAG_COSTOP_MANAGED.into(), "true".into());
    act(plan(&spot("terminate"), &f, &c, now()));
}

#[test]
fn an_instance_without_a_node_is_ignored() {
    let mut f = facts(I);
    f.node = None;
    assert_eq!(
        ignored(plan(&spot("terminate"), &f, &Config::default(), now())),
        IgnoreReason::NoNodeForInstance {
            instance_id: I.into(),
            cluster: "prod".into()
        }
    );
}

#[test]
fn a_stop_of_a_standby_that_serves_no_interruption_leaves_its_node_alone() {
    let standby = |state: Option<&str>, interruption: Option<&str>| {
        let mut f = facts(I);
        let tags = &mut f.instance.as_mut().unwrap().tags;
        tags.insert(
            constants::TAG_STANDBY.into(),
            constants::TAG_STANDBY_VALUE.into(),
        );
        if let Some(s) = state {
            tags.insert(constants::TAG_STANDBY_STATE.into(), s.into());
        }
        if let Some(iid) = interruption {
            tags.insert(constants::TAG_STANDBY_INTERRUPTION.into(), iid.into());
        }
        f
    };
    let lease = |iid: &str, released: bool| {
        Some(StandbyLeaseRecord {
            interruption_id: iid.into(),
            released,
        })
    };
    let not_serving = |f: &Facts| match plan(&state("stopping"), f, &Config::default(), now()) {
        Decision::Ignore {
            reason: IgnoreReason::StandbyNotServing { state, .. },
        } => Some(state),
        Decision::Ignore { reason } => panic!("ignored for another reason: {reason:?}"),
        Decision::Act(_) => None,
    };
    // In the pool, being returned, or started by an operator (serving tags, no lease).
    assert_eq!(
        not_serving(&standby(None, None)).as_deref(),
        Some("available")
    );
    assert_eq!(
        not_serving(&standby(Some("returning"), Some("iid-1"))).as_deref(),
        Some("returning")
    );
    assert_eq!(
        not_serving(&standby(Some("serving"), Some("iid-1"))).as_deref(),
        Some("serving without its lease")
    );
    // A lease released, or held by another interruption, is not this one's.
    let mut f = standby(Some("serving"), Some("iid-1"));
    f.standby_lease = lease("iid-1", true);
    assert!(not_serving(&f).is_some());
    f.standby_lease = lease("iid-2", false);
    assert!(not_serving(&f).is_some());
    // Serving, with its lease: a node like any other.
    f.standby_lease = lease("iid-1", false);
    assert_eq!(not_serving(&f), None);
    // An instance that is not a standby never needs a lease.
    assert_eq!(not_serving(&facts(I)), None);
}

#[test]
fn an_instance_unknown_to_ec2_is_ignored() {
    assert_eq!(
        ignored(plan(
            &spot("terminate"),
            &Facts::unknown_instance(I),
            &Config::default(),
            now()
        )),
        IgnoreReason::InstanceNotFound {
            instance_id: I.into()
        }
    );
}

#[test]
fn facts_about_an_instance_the_event_does_not_name_are_ignored() {
    assert_eq!(
        ignored(plan(
            &spot("terminate"),
            &facts(I2),
            &Config::default(),
            now()
        )),
        IgnoreReason::InstanceNotInEvent {
            instance_id: I2.into()
        }
    );
}

#[test]
fn running_and_pending_state_changes_are_ignored() {
    for s in ["running", "pending"] {
        assert!(matches!(
            ignored(plan(&state(s), &facts(I), &Config::default(), now())),
            IgnoreReason::StateNotHandled { .. }
        ));
    }
}

// --- the response ----------------------------------------------------------

#[test]
fn every_spot_instance_action_gets_the_full_response() {
    for action in ["terminate", "stop", "hibernate"] {
        let p = act(plan(&spot(action), &facts(I), &Config::default(), now()));
        assert_eq!(p.response, Response::Full);
        // An instance that is only stopped or hibernated may run again: a resume watch.
        let mut names = names(&p);
        let watched = names.iter().position(|n| *n == "watch_for_resume");
        assert_eq!(watched.is_some(), action != "terminate", "{action}");
        if let Some(i) = watched {
            names.remove(i);
        }
        assert_eq!(
            names,
            vec![
                "record_event",
                "record_timeline",
                "snapshot_node",
                "cordon_and_taint",
                "record_timeline",
                "deregister_targets",
                "deregister_targets",
                "record_timeline",
                "drain",
                "record_timeline",
                "finish_event"
            ]
        );
    }
}

#[test]
fn a_spot_warning_deadline_is_two_minutes_after_the_event() {
    let p = act(plan(
        &spot("terminate"),
        &facts(I),
        &Config::default(),
        now(),
    ));
    assert_eq!(p.deadline, Some(t("2025-03-10T14:04:00Z")));
    assert_eq!(drain(&p).evict_by, t("2025-03-10T14:03:45Z"));
    assert_eq!(
        p.interruption_id,
        "i-0a1b2c3d4e5f60718-spot-interruption-20250310t140200z"
    );
}

#[test]
fn the_node_is_cordoned_tainted_and_excluded_from_load_balancers_in_one_action() {
    let p = act(plan(
        &spot("terminate"),
        &facts(I),
        &Config::default(),
        now(),
    ));
    let cordons: Vec<_> = p
        .actions()
        .filter_map(|a| match a {
            Action::CordonAndTaint(c) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(cordons.len(), 1);
    let c = cordons[0];
    assert!(c.cordon && c.exclude_from_lb_label);
    assert_eq!(
        c.taint,
        Taint::new(
            constants::TAINT_SPOT_INTERRUPTION,
            Some("terminate".into()),
            TaintEffect::NoSchedule
        )
    );
    assert_eq!(
        c.annotations[constants::ANNOTATION_INTERRUPTION_ID],
        p.interruption_id
    );
    assert_eq!(
        c.annotations[constants::ANNOTATION_DEADLINE],
        "2025-03-10T14:04:00Z"
    );
    assert_eq!(c.resource_version.as_deref(), Some("7"));
}

#[test]
fn taints_of_other_owners_are_kept_and_a_stale_costop_taint_is_replaced() {
    let mut f = facts(I);
    f.node.as_mut().unwrap().taints = vec![
        Taint::new("dedicated", Some("shop".into()), TaintEffect::NoSchedule),
        Taint::new(
            constants::TAINT_SPOT_INTERRUPTION,
            Some("old".into()),
            TaintEffect::NoSchedule,
        ),
    ];
    let p = act(plan(&spot("stop"), &f, &Config::default(), now()));
    let Some(Action::CordonAndTaint(c)) = p.actions().find(|a| a.name() == "cordon_and_taint")
    else {
        panic!()
    };
    assert_eq!(c.taints_after.len(), 2);
    assert_eq!(c.taints_after[0].key, "dedicated");
    assert_eq!(c.taints_after[1].value.as_deref(), Some("stop"));
}

#[test]
fn the_taint_key_and_effect_follow_configuration() {
    let c = config(&[
        ("COSTOP_TAINT_EFFECT", "NoExecute"),
        (
            "COSTOP_TAINT_KEY_SCHEDULED_MAINTENANCE",
            "example.com/maint",
        ),
    ]);
    let p = act(plan(
        &health(json!([{ "entityValue": I }]), json!({})),
        &facts(I),
        &c,
        now(),
    ));
    let Some(Action::CordonAndTaint(ct)) = p.actions().find(|a| a.name() == "cordon_and_taint")
    else {
        panic!()
    };
    assert_eq!(ct.taint.key, "example.com/maint");
    assert_eq!(ct.taint.effect, TaintEffect::NoExecute);
    assert_eq!(
        ct.taint.value.as_deref(),
        Some("AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED")
    );
}

#[test]
fn cordon_comes_before_deregistration_and_deregistration_before_drain() {
    let p = act(plan(
        &spot("terminate"),
        &facts(I),
        &Config::default(),
        now(),
    ));
    let pos = |n: &str| names(&p).iter().position(|x| *x == n).unwrap();
    assert_eq!(pos("record_event"), 0);
    assert!(pos("cordon_and_taint") < pos("deregister_targets"));
    assert!(pos("deregister_targets") < pos("drain"));
    assert_eq!(names(&p).last(), Some(&"finish_event"));
}

#[test]
fn instance_targets_are_deregistered_by_id_and_ip_targets_by_address() {
    let p = act(plan(
        &spot("terminate"),
        &facts(I),
        &Config::default(),
        now(),
    ));
    let deregs: Vec<_> = p
        .actions()
        .filter_map(|a| match a {
            Action::DeregisterTargets(d) => Some(d),
            _ => None,
        })
        .collect();
    assert_eq!(
        deregs.len(),
        2,
        "the group without the instance is left alone"
    );
    assert_eq!(deregs[0].target_group_arn, "tg-instance");
    assert_eq!(
        deregs[0].targets,
        vec![RegisteredTarget {
            id: I.into(),
            port: Some(30080),
            availability_zone: None
        }]
    );
    assert_eq!(deregs[1].target_group_arn, "tg-ip");
    assert_eq!(deregs[1].targets[0].id, "10.0.1.40");
    assert_eq!(deregs[1].targets.len(), 1);
}

#[test]
fn no_target_groups_means_no_deregistration_milestone() {
    let mut f = facts(I);
    f.target_groups.clear();
    let p = act(plan(&spot("terminate"), &f, &Config::default(), now()));
    assert!(!names(&p).contains(&"deregister_targets"));
    assert!(
        !p.actions()
            .any(|a| *a == Action::RecordTimeline(TimelineStep::Deregistered))
    );
}

#[test]
fn daemonset_pods_are_skipped_not_evicted() {
    let p = act(plan(
        &spot("terminate"),
        &facts(I),
        &Config::default(),
        now(),
    ));
    let d = drain(&p);
    assert_eq!(
        d.pods.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        vec!["web-1"]
    );
    assert_eq!(d.skipped.len(), 1);
    assert_eq!(d.skipped[0].pod.name, "logs");
    assert_eq!(d.skipped[0].reason, SkipReason::DaemonSet);
}

#[test]
fn mirror_finished_and_terminating_pods_are_skipped() {
    let mut f = facts(I);
    let mut mirror = pod("etcd-static", "Node", None);
    mirror
        .annotations
        .insert(constants::ANNOTATION_MIRROR_POD.into(), "hash".into());
    let mut done = pod("job-1", "Job", None);
    done.phase = PodPhase::Succeeded;
    let mut failed = pod("job-2", "Job", None);
    failed.phase = PodPhase::Failed;
    let mut leaving = pod("web-0", "ReplicaSet", None);
    leaving.deletion_timestamp = Some(now());
    f.pods = vec![mirror, done, failed, leaving, pod("bare", "", None)];
    f.pods[4].owner = None;
    let p = act(plan(&spot("terminate"), &f, &Config::default(), now()));
    let d = drain(&p);
    let reasons: Vec<_> = d
        .skipped
        .iter()
        .map(|s| (s.pod.name.as_str(), s.reason))
        .collect();
    assert_eq!(
        reasons,
        vec![
            ("etcd-static", SkipReason::Mirror),
            ("job-1", SkipReason::Finished),
            ("job-2", SkipReason::Finished),
            ("web-0", SkipReason::AlreadyTerminating)
        ]
    );
    assert_eq!(d.pods.len(), 1, "an unowned pod is still evicted");
    assert_eq!(d.pods[0].uid, "uid-bare");
}

#[test]
fn placeholders_go_first_then_the_lowest_priority() {
    let mut f = facts(I);
    let mut high = pod("db", "StatefulSet", None);
    high.priority = Some(1000);
    let mut low = pod("batch", "ReplicaSet", None);
    low.priority = Some(-5);
    let mut placeholder = pod("standby", "ReplicaSet", None);
    placeholder.priority = Some(2000);
    placeholder
        .labels
        .insert(constants::LABEL_PLACEHOLDER_POD.into(), "true".into());
    f.pods = vec![high, low, pod("web", "ReplicaSet", None), placeholder];
    let p = act(plan(&spot("terminate"), &f, &Config::default(), now()));
    let order: Vec<_> = drain(&p).pods.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(order, vec!["standby", "batch", "web", "db"]);
}

#[test]
fn grace_period_is_capped_to_end_before_the_deadline() {
    let mut f = facts(I);
    f.pods = vec![
        pod("slow", "ReplicaSet", Some(600)),
        pod("quick", "ReplicaSet", Some(5)),
    ];
    // 60 s after the warning: 120 − 15 margin − 60 = 45 s left.
    let late = t(EVENT_TIME) + TimeDelta::seconds(60);
    let p = act(plan(
        &spot("terminate"),
        &f,
        &config(&[("COSTOP_GRACE_CAP_SECONDS", "300")]),
        late,
    ));
    let grace: BTreeMap<_, _> = drain(&p)
        .pods
        .iter()
        .map(|p| (p.name.as_str(), p.grace_period_seconds))
        .collect();
    assert_eq!(grace["slow"], 45);
    assert_eq!(grace["quick"], 5);
}

#[test]
fn grace_period_is_also_capped_by_configuration() {
    let mut f = facts(I);
    f.pods = vec![pod("slow", "ReplicaSet", Some(600))];
    let p = act(plan(
        &spot("terminate"),
        &f,
        &config(&[("COSTOP_GRACE_CAP_SECONDS", "20")]),
        now(),
    ));
    assert_eq!(drain(&p).pods[0].grace_period_seconds, 20);
}

#[test]
fn a_warning_delivered_after_the_deadline_still_evicts_with_minimum_grace() {
    let very_late = t(EVENT_TIME) + TimeDelta::seconds(130);
    let p = act(plan(
        &spot("terminate"),
        &facts(I),
        &Config::default(),
        very_late,
    ));
    let d = drain(&p);
    assert_eq!(d.pods[0].grace_period_seconds, 1);
    assert_eq!(d.evict_by, very_late, "never schedule work in the past");
}

#[test]
fn a_stopping_instance_is_drained_now() {
    let p = act(plan(
        &state("stopping"),
        &facts(I),
        &Config::default(),
        now(),
    ));
    assert_eq!(p.response, Response::Full);
    assert_eq!(p.deadline, Some(now()));
    assert_eq!(drain(&p).pods[0].grace_period_seconds, 1);
}

#[test]
fn a_terminated_instance_gets_the_out_of_service_taint_only_when_configured() {
    for s in ["terminated", "stopped"] {
        let p = act(plan(&state(s), &facts(I), &Config::default(), now()));
        assert_eq!(p.response, Response::NodeGone);
        assert!(!names(&p).contains(&"drain") && !names(&p).contains(&"cordon_and_taint"));
        assert!(!names(&p).contains(&"out_of_service_taint"));
        assert!(names(&p).contains(&"deregister_targets"));

        let p = act(plan(
            &state(s),
            &facts(I),
            &config(&[("COSTOP_OUT_OF_SERVICE_ON_TERMINATED", "true")]),
            now(),
        ));
        let Some(Action::OutOfServiceTaint { taint, .. }) =
            p.actions().find(|a| a.name() == "out_of_service_taint")
        else {
            panic!("{:?}", names(&p))
        };
        assert_eq!(
            *taint,
            Taint::new(
                "node.kubernetes.io/out-of-service",
                Some("nodeshutdown".into()),
                TaintEffect::NoExecute
            )
        );
    }
}

#[test]
fn the_asg_hook_is_heartbeaten_then_completed_with_continue() {
    let p = act(plan(
        &asg_hook(),
        &facts(I),
        &config(&[("COSTOP_DETACH_FROM_ASG", "true")]),
        now(),
    ));
    let n = names(&p);
    let pos = |x: &str| n.iter().position(|y| *y == x).unwrap();
    assert!(pos("lifecycle_heartbeat") < pos("cordon_and_taint"));
    assert!(pos("drain") < pos("complete_lifecycle_action"));
    assert!(
        !n.contains(&"detach_from_asg"),
        "an instance in a terminate hook is already leaving its group"
    );
    assert_eq!(p.deadline, Some(t(EVENT_TIME) + TimeDelta::seconds(300)));
    let json = serde_json::to_value(&p.steps[pos("complete_lifecycle_action")].action).unwrap();
    assert_eq!(json["result"], "CONTINUE");
    assert_eq!(json["if_drain_failed"], "CONTINUE");
    assert_eq!(json["token"], "630aa23f-48eb-45e7-aba6-799ea6093a0f");
    assert_eq!(json["hook"], "costop-drain");
}

fn with_hook(heartbeat_timeout_seconds: i64, default_result: LifecycleResult) -> Facts {
    Facts {
        lifecycle_hook: Some(LifecycleHookFacts {
            heartbeat_timeout_seconds,
            default_result,
        }),
        ..facts(I)
    }
}

fn heartbeat(p: &Plan) -> &LifecycleHeartbeat {
    p.actions()
        .find_map(|a| match a {
            Action::LifecycleHeartbeat(h) => Some(h),
            _ => None,
        })
        .expect("plan has a heartbeat")
}

fn completion(p: &Plan) -> &CompleteLifecycleAction {
    p.actions()
        .find_map(|a| match a {
            Action::CompleteLifecycleAction(c) => Some(c),
            _ => None,
        })
        .expect("plan completes the hook")
}

#[test]
fn the_asg_hook_is_heartbeaten_every_half_of_its_heartbeat_timeout_while_the_drain_runs() {
    for (facts, every) in [
        (with_hook(4, LifecycleResult::Continue), 2),
        (with_hook(600, LifecycleResult::Abandon), 300),
        // Unread: half the smallest timeout AWS allows keeps any hook alive.
        (facts(I), 15),
    ] {
        let p = act(plan(&asg_hook(), &facts, &Config::default(), now()));
        assert_eq!(
            heartbeat(&p).every_seconds,
            every,
            "{:?}",
            facts.lifecycle_hook
        );
        assert_eq!(heartbeat(&p).hook.hook, "costop-drain");
        assert_eq!(p.lifecycle(), Some(&heartbeat(&p).hook));
    }
}

#[test]
fn a_failed_drain_completes_the_hook_as_configured_and_a_good_one_continues() {
    use LifecycleResult::{Abandon, Continue};
    for (setting, hook_default, if_failed) in [
        (None, Abandon, Continue),
        (Some("ABANDON"), Continue, Abandon),
        (Some("DEFAULT"), Abandon, Abandon),
        (Some("DEFAULT"), Continue, Continue),
    ] {
        let c = config(
            &setting
                .map(|v| vec![("COSTOP_ASG_HOOK_FAILED_DRAIN_RESULT", v)])
                .unwrap_or_default(),
        );
        let p = act(plan(&asg_hook(), &with_hook(300, hook_default), &c, now()));
        let done = completion(&p);
        assert_eq!((done.result, done.if_drain_failed), (Continue, if_failed));
        assert_eq!(done.result_after(false), Continue, "{setting:?}");
        assert_eq!(done.result_after(true), if_failed, "{setting:?}");
    }
}

#[test]
fn the_lifecycle_hook_read_beside_the_pods_leaves_the_opening_and_deadline_alone() {
    let c = Config::default();
    let without = act(plan(&asg_hook(), &facts(I).for_opening(), &c, now()));
    let with = act(plan(
        &asg_hook(),
        &with_hook(30, LifecycleResult::Abandon),
        &c,
        now(),
    ));
    assert_eq!(with.opening(), without.opening());
    assert_eq!(with.deadline, without.deadline);
    assert_eq!(drain(&with).deadline, drain(&without).deadline);
}

#[test]
fn only_an_asg_hook_plan_names_a_lifecycle_action() {
    let p = act(plan(
        &spot("terminate"),
        &facts(I),
        &Config::default(),
        now(),
    ));
    assert_eq!(p.lifecycle(), None);
}

#[test]
fn detach_from_asg_happens_only_when_configured() {
    let off = act(plan(
        &spot("terminate"),
        &facts(I),
        &Config::default(),
        now(),
    ));
    assert!(!names(&off).contains(&"detach_from_asg"));
    let on = act(plan(
        &spot("terminate"),
        &facts(I),
        &config(&[("COSTOP_DETACH_FROM_ASG", "true")]),
        now(),
    ));
    let Some(Action::DetachFromAsg {
        asg,
        decrement_desired,
        ..
    }) = on.actions().find(|a| a.name() == "detach_from_asg")
    else {
        panic!()
    };
    assert_eq!(asg, "workers");
    assert!(!decrement_desired);
}

#[test]
fn a_rebalance_recommendation_taints_the_node_prefer_no_schedule_and_drains_nothing() {
    let e = parse(envelope(
        "aws.ec2",
        "EC2 Instance Rebalance Recommendation",
        json!({ "instance-id": I }),
    ));
    let p = act(plan(&e, &facts(I), &Config::default(), now()));
    assert_eq!(p.response, Response::Discourage);
    assert_eq!(
        names(&p),
        vec![
            "record_event",
            "record_timeline",
            "snapshot_node",
            "cordon_and_taint",
            "record_timeline",
            "watch_for_resume",
            "finish_event"
        ]
    );
    let Some(Action::CordonAndTaint(c)) = p.actions().find(|a| a.name() == "cordon_and_taint")
    else {
        panic!()
    };
    assert!(!c.cordon && !c.exclude_from_lb_label, "{c:?}");
    assert_eq!(c.taint.effect, TaintEffect::PreferNoSchedule);
    assert_eq!(c.taint.key, constants::TAINT_REBALANCE_RECOMMENDATION);
    // The keeper's tick takes it off after COSTOP_REBALANCE_TAINT_SECONDS.
    let Some(Action::WatchForResume(w)) = p.actions().find(|a| a.name() == "watch_for_resume")
    else {
        panic!()
    };
    assert_eq!(w.deadline, now() + TimeDelta::seconds(1800));
}

#[test]
fn a_rebalance_recommendation_is_recorded_only_when_its_taint_is_off() {
    let e = parse(envelope(
        "aws.ec2",
        "EC2 Instance Rebalance Recommendation",
        json!({ "instance-id": I }),
    ));
    let c = config(&[("COSTOP_REBALANCE_TAINT", "false")]);
    let p = act(plan(&e, &facts(I), &c, now()));
    assert_eq!(p.response, Response::RecordOnly);
    assert_eq!(p.deadline, None);
    assert_eq!(
        names(&p),
        vec![
            "record_event",
            "record_timeline",
            "snapshot_node",
            "finish_event"
        ]
    );
}

#[test]
fn force_delete_at_deadline_and_dry_run_are_carried_in_the_plan() {
    let c = config(&[
        ("COSTOP_DRY_RUN", "true"),
        ("COSTOP_FORCE_DELETE_AT_DEADLINE", "true"),
    ]);
    let p = act(plan(&spot("terminate"), &facts(I), &c, now()));
    assert!(p.dry_run);
    assert!(drain(&p).force_delete_at_deadline);
    assert!(
        !drain(&act(plan(
            &spot("terminate"),
            &facts(I),
            &Config::default(),
            now()
        )))
        .force_delete_at_deadline
    );
}

// --- properties ------------------------------------------------------------

#[test]
fn interruption_ids_are_deterministic_per_instance_kind_and_time() {
    let a = act(plan(
        &spot("terminate"),
        &facts(I),
        &Config::default(),
        now(),
    ));
    let b = act(plan(
        &spot("terminate"),
        &facts(I),
        &Config::default(),
        now() + TimeDelta::seconds(30),
    ));
    assert_eq!(a.interruption_id, b.interruption_id);
    let c = act(plan(&asg_hook(), &facts(I), &Config::default(), now()));
    assert_ne!(a.interruption_id, c.interruption_id);
    assert!(a.interruption_id.len() <= 63 && costop_core::kube::is_label_value(&a.interruption_id));
}

#[test]
fn the_plan_is_a_pure_function_of_its_inputs() {
    let run = || plan(&spot("terminate"), &facts(I), &Config::default(), now());
    assert_eq!(run(), run());
}

#[test]
fn a_plan_round_trips_through_json() {
    for e in [
        spot("hibernate"),
        asg_hook(),
        state("terminated"),
        health(json!([{ "entityValue": I }]), json!({})),
    ] {
        let d = plan(
            &e,
            &facts(I),
            &config(&[("COSTOP_OUT_OF_SERVICE_ON_TERMINATED", "1")]),
            now(),
        );
        let back: Decision = serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
        assert_eq!(back, d);
        let ev_back: Event = serde_json::from_value(serde_json::to_value(&e).unwrap()).unwrap();
        assert_eq!(ev_back, e);
    }
    let ig = plan(
        &spot("terminate"),
        &Facts::unknown_instance(I),
        &Config::default(),
        now(),
    );
    let json = serde_json::to_value(&ig).unwrap();
    assert_eq!(
        json,
        json!({ "decision": "ignore", "reason": { "reason": "instance_not_found", "instance_id": I } })
    );
}

#[test]
fn the_snapshot_record_round_trips_the_facts() {
    let f = facts(I);
    let item = record::snapshot_item("x", &f, now(), 30).unwrap();
    assert_eq!(record::facts_from_snapshot(&item).unwrap(), f);
    assert_eq!(item.get("pk"), Some(&record::Attr::s("INTERRUPTION#x")));
}

#[test]
fn the_interruption_header_is_indexed_by_instance() {
    let p = act(plan(
        &spot("terminate"),
        &facts(I),
        &Config::default(),
        now(),
    ));
    let item = record::header_item(&p, 30);
    assert_eq!(
        item.get("gsi1pk"),
        Some(&record::Attr::s(format!("INSTANCE#{I}")))
    );
    assert_eq!(item.get("sk"), Some(&record::Attr::s("000#RECEIVED")));
    assert_eq!(
        item.get("gsi1sk"),
        Some(&record::Attr::s(format!(
            "2025-03-10T14:02:02.000000Z#{}",
            p.interruption_id
        )))
    );
}

#[test]
fn pods_that_serve_a_load_balancer_are_evicted_after_their_rotation_and_the_others_at_once() {
    let mut f = facts(I);
    let mut opted_in = pod("shop-1", "ReplicaSet", Some(30));
    opted_in.ip = Some("10.0.5.1".into());
    opted_in.labels.insert(
        constants::LABEL_SERVING.into(),
        constants::LABEL_SERVING_IN.into(),
    );
    let mut registered = pod("api-1", "ReplicaSet", Some(30));
    registered.ip = Some("10.0.1.40".into());
    f.pods = vec![opted_in, registered, pod("batch-1", "ReplicaSet", Some(30))];
    f.target_groups.push(TargetGroupFacts {
        arn: "tg-kept".into(),
        target_type: TargetType::Ip,
        targets: vec![RegisteredTarget {
            id: "10.0.5.1".into(),
            port: Some(8080),
            availability_zone: None,
        }],
        kept_by_controller: true,
        registered: 0,
    });
    let p = act(plan(&spot("terminate"), &f, &Config::default(), now()));
    let d = drain(&p);
    let waits: Vec<(&str, bool)> = d
        .pods
        .iter()
        .map(|p| (p.name.as_str(), p.after_rotation))
        .collect();
    assert!(waits.contains(&("shop-1", true)) && waits.contains(&("api-1", true)));
    assert!(waits.contains(&("batch-1", false)));
    let r = d.rotation.as_ref().expect("a rotation");
    assert_eq!(r.relabel.len(), 1);
    assert_eq!(r.relabel[0].name, "shop-1");
    let watched: Vec<&str> = r
        .watch
        .iter()
        .map(|w| w.target_group_arn.as_str())
        .collect();
    assert!(watched.contains(&"tg-kept") && watched.contains(&"tg-ip"));
    // The kept group is not deregistered by costop; the other IP group is.
    let deregistered: Vec<&str> = p
        .steps
        .iter()
        .filter_map(|s| match &s.action {
            Action::DeregisterTargets(d) => Some(d.target_group_arn.as_str()),
            _ => None,
        })
        .collect();
    assert!(!deregistered.contains(&"tg-kept") && deregistered.contains(&"tg-ip"));
    // Defaults: the wait ends by now + 20 s, the serving pods' grace from the end of the settle.
    assert_eq!(r.wait_until, now() + TimeDelta::seconds(20));
    let shop = d.pods.iter().find(|p| p.name == "shop-1").unwrap();
    let batch = d.pods.iter().find(|p| p.name == "batch-1").unwrap();
    assert!(shop.grace_period_seconds <= batch.grace_period_seconds);
    assert!(r.ends_by() + TimeDelta::seconds(shop.grace_period_seconds) <= d.evict_by);
}

#[test]
fn a_shift_that_moves_all_of_a_kept_groups_traffic_takes_its_pods_out_without_the_opt_in() {
    let mut f = facts(I);
    let mut shop = pod("shop-1", "ReplicaSet", Some(30));
    shop.ip = Some("10.0.5.1".into());
    f.pods = vec![shop, pod("batch-1", "ReplicaSet", Some(30))];
    let kept = |targets: usize| TargetGroupFacts {
        arn: "tg-kept".into(),
        target_type: TargetType::Ip,
        targets: vec![RegisteredTarget {
            id: "10.0.5.1".into(),
            port: Some(8080),
            availability_zone: None,
        }],
        kept_by_controller: true,
        registered: targets,
    };
    f.target_groups = vec![kept(6)];
    f.rules = vec![costop_core::shift::RuleFacts {
        arn: "rule-1".into(),
        listener_arn: "listener-1".into(),
        is_default: true,
        forward: vec![costop_core::shift::WeightedGroup {
            target_group_arn: "tg-kept".into(),
            weight: 1,
        }],
        ingress: None,
        hosts: Vec::new(),
        paths: Vec::new(),
    }];
    let waits = |factor: &str| {
        let c = config(&[
            ("COSTOP_FALLBACK_TARGET_GROUP", "tg-fallback"),
            ("COSTOP_SHIFT_FACTOR", factor),
        ]);
        let p = act(plan(&spot("terminate"), &f, &c, now()));
        let shop = drain(&p)
            .pods
            .iter()
            .find(|p| p.name == "shop-1")
            .map(|p| p.after_rotation);
        (shop, drain(&p).rotation.is_some())
    };
    // The node's share (1 of 6) moved: the rule still sends the group five sixths directly,
    // and the pod, not opted in, is evicted at once.
    assert_eq!(waits("1"), (Some(false), false));
    // All of it moved: the group is out of the rule's direct path once the rule propagates,
    // and the pod waits for the settle time.
    assert_eq!(waits("6"), (Some(true), true));
}

#[test]
fn a_node_whose_pods_serve_nothing_has_no_rotation() {
    let p = act(plan(
        &spot("terminate"),
        &facts(I),
        &Config::default(),
        now(),
    ));
    assert!(drain(&p).rotation.is_none());
    assert!(drain(&p).pods.iter().all(|p| !p.after_rotation));
}

// --- traffic shift -----------------------------------------------------------------------

#[test]
fn a_rule_the_controller_manages_is_shifted_through_its_ingress_and_only_once_its_ingress_is_read()
{
    use costop_core::shift::{RuleFacts, WeightedGroup};
    let rule = |arn: &str, tg: &str, ingress: Option<&str>| RuleFacts {
        arn: arn.into(),
        listener_arn: "listener".into(),
        is_default: false,
        forward: vec![WeightedGroup {
            target_group_arn: tg.into(),
            weight: 1,
        }],
        ingress: ingress.map(str::to_owned),
        hosts: Vec::new(),
        paths: vec!["/*".into()],
    };
    let mut f = facts(I);
    f.rules = vec![
        rule("plain", "tg-instance", None),
        rule("managed", "tg-ip", Some("shop/front")),
    ];
    let config = Config {
        fallback_target_group: "tg-fallback".into(),
        ..Config::default()
    };
    let shifted = |f: &Facts| -> Vec<(String, Option<String>)> {
        act(plan(&spot("terminate"), f, &config, now()))
            .actions()
            .filter_map(|a| match a {
                Action::ShiftTraffic(l) => Some((
                    l.rule_arn.clone(),
                    l.ingress.as_ref().map(|i| i.backend_at.clone()),
                )),
                _ => None,
            })
            .collect()
    };
    // Its Ingress unread: the managed rule is left alone, the other shifts as before.
    assert_eq!(shifted(&f), [("plain".to_owned(), None)]);
    f.ingresses = vec![json!({
        "metadata": {"namespace": "shop", "name": "front"},
        "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}},
    })];
    assert_eq!(
        shifted(&f),
        [
            ("plain".to_owned(), None),
            (
                "managed".to_owned(),
                Some("/spec/defaultBackend".to_owned())
            )
        ]
    );
}
