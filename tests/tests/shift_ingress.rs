//! Traffic shifted through an Ingress, end to end on both worlds (`on_both!`): a listener rule
//! the AWS Load Balancer Controller makes from an Ingress (the bed's stand-in, and its in-memory
//! twin in the fast world) is shifted by patching the Ingress's backend onto a weighted
//! `alb.ingress.kubernetes.io/actions.*` forward, which the controller turns into the rule; the
//! keeper's tick puts the Ingress back exactly as it was, also after a crash mid-shift.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use costop_app::keeper::{KeeperOutcome, TrafficReport};
use costop_app::ports::{Clusters, Elb, Kube};
use costop_app::{HasClusters, HasElb, HasRecords, Mode, Records};
use costop_bed::scenario::{PortRef, ServiceRef};
use costop_core::record::SHIFT_PK;
use costop_core::shift::{
    self, GroupShare, IngressTarget, RestoreStep, RuleFacts, ShiftLease, WeightedGroup,
};
use costop_tests::{Harness, Setup, TARGET_GROUP_VALUE, events, on_both, pin_to, spot_nodes};
use kubesim::resources;
use serde_json::{Value, json};

/// The IP target group the controller keeps, bound to the `shop` Service.
const SHOP_TG: &str = "costop-dev-shop";
const FALLBACK_TG: &str = "costop-dev-fallback";
/// The Ingress's stack (`namespace/name`), the tag of the rules made from it.
const STACK: &str = "default/shop";
/// The annotation of the action costop gives the Ingress's `/shop` path.
const ACTION: &str = "alb.ingress.kubernetes.io/actions.costop-shift-shop-80";
/// The notice's deadline: short, so the tick runs past it within the test.
const WINDOW_SECONDS: i64 = 6;

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
        // Whatever the capacity does, the shift ends within the test.
        .with_env("COSTOP_SHIFT_MAX_SECONDS", "40")
        // The hold before a restore is tests/shift.rs's; here the rule goes back once whole.
        .with_env("COSTOP_SHIFT_RESTORE_HOLD_SECONDS", "0");
    s.scenario
        .target_groups
        .push(costop_tests::ip_target_group(FALLBACK_TG, None));
    s.scenario.target_groups.push(costop_tests::ip_target_group(
        SHOP_TG,
        Some(ServiceRef {
            namespace: "default".into(),
            name: "shop".into(),
            port: PortRef::Number(80),
        }),
    ));
    s
}

/// `replicas` pods of `name`, all selected by the `shop` Service (label `tier: shop`).
fn deployment(name: &str, replicas: u32) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: default}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}, tier: shop, pinned: "true"}}}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
        - name: c
          image: nginx
          ports: [{{containerPort: 8080}}]
          resources: {{requests: {{cpu: 10m, memory: 16Mi}}}}
"#
    )
}

/// The `shop` Service.
const SERVICE: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: shop, namespace: default}
spec:
  selector: {tier: shop}
  ports: [{port: 80, targetPort: 8080}]
"#;

/// The shop's Ingress: `shop.example/shop` to the Service's port 80.
const SHOP: &str = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: shop
  namespace: default
  annotations: {kubernetes.io/description: "the shop, kept as it is"}
spec:
  ingressClassName: alb
  rules:
    - host: shop.example
      http:
        paths:
          - path: /shop
            pathType: Prefix
            backend: {service: {name: shop, port: {number: 80}}}
"#;

/// The shop's Ingress with no annotations, two paths to the same Service port.
const TWO_PATHS: &str = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: shop, namespace: default}
spec:
  ingressClassName: alb
  rules:
    - http:
        paths:
          - {path: /shop, pathType: Prefix, backend: {service: {name: shop, port: {number: 80}}}}
          - {path: /cart, pathType: Exact, backend: {service: {name: shop, port: {number: 80}}}}
"#;

/// Half the shop's pods on the interrupted node, half on another; the rules made from
/// `ingress` (`rules` of them) in place. The interrupted node's instance.
async fn shop_half_on_a_spot_node<H: Harness>(h: &H, ingress: &str, rules: usize) -> String {
    let spot = spot_nodes(h.sim());
    let ((instance, node), (_, other)) = (spot[0].clone(), spot[1].clone());
    pin_to(h, &node, &deployment("shop-a", 2), 2).await;
    pin_to(h, &other, &deployment("shop-b", 2), 2).await;
    h.sim().apply_yaml(SERVICE).expect("the Service applies");
    h.sim().apply_yaml(ingress).expect("the Ingress applies");
    let made = eventually(
        h,
        "the Ingress's rules with the four pods",
        move || async move {
            let targets = h.target_ids(SHOP_TG).await.len();
            let made = ingress_rules(h).await;
            (targets == 4 && made.len() == rules).then_some(made)
        },
    )
    .await;
    for rule in &made {
        assert_eq!(
            named(rule),
            [(SHOP_TG.to_owned(), 1)],
            "{}: the rule as the controller made it",
            h.flavor()
        );
    }
    instance
}

/// Poll `f` (every 100 ms, 30 s at most) until it gives something.
async fn eventually<H: Harness, T, F: Future<Output = Option<T>>>(
    h: &H,
    what: &str,
    mut f: impl FnMut() -> F,
) -> T {
    let until = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(t) = f().await {
            return t;
        }
        assert!(
            std::time::Instant::now() < until,
            "{}: timed out waiting for {what}",
            h.flavor()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The listener rules the controller made from the Ingress.
async fn ingress_rules(h: &impl Harness) -> Vec<RuleFacts> {
    h.handler()
        .world()
        .elb()
        .listener_rules()
        .await
        .expect("rules read")
        .into_iter()
        .filter(|r| r.ingress.as_deref() == Some(STACK))
        .collect()
}

/// The (first) listener rule the controller made from the Ingress.
async fn ingress_rule(h: &impl Harness) -> Option<RuleFacts> {
    ingress_rules(h).await.into_iter().next()
}

/// A rule's forward with group ARNs shortened to their names.
fn named(rule: &RuleFacts) -> Vec<(String, u32)> {
    rule.forward
        .iter()
        .map(|g| {
            let name = g
                .target_group_arn
                .split("targetgroup/")
                .nth(1)
                .and_then(|r| r.split('/').next())
                .unwrap_or(&g.target_group_arn);
            (name.to_owned(), g.weight)
        })
        .collect()
}

/// The Ingress as stored: its annotations and spec (what costop changes and puts back).
fn shop_ingress(h: &impl Harness) -> Value {
    let i = h
        .sim()
        .store()
        .get(&resources::INGRESSES, Some("default"), "shop")
        .expect("the Ingress exists");
    json!({"annotations": i["metadata"]["annotations"], "spec": i["spec"]})
}

fn fallback_arn(h: &impl Harness) -> String {
    h.handler().config().fallback_target_group.clone()
}

async fn leases(h: &impl Harness) -> Vec<ShiftLease> {
    h.handler()
        .world()
        .records()
        .query(SHIFT_PK)
        .await
        .expect("the table reads")
        .iter()
        .map(|i| shift::shift_lease_from_item(i).expect("a lease"))
        .collect()
}

async fn tick(h: &impl Harness) -> Vec<TrafficReport> {
    // Boxed: polled inside `eventually`, the keeper's future is past rustc's layout depth limit.
    match Box::pin(
        h.keeper()
            .handle(&events::scheduled_tick(Utc::now()), Mode::Execute),
    )
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

fn cluster() -> String {
    setup().scenario.cluster.name
}

// ---------------------------------------------------------------------------------------------

async fn an_ingress_rule_is_shifted_through_its_annotation_and_put_back_exactly<H: Harness>(h: H) {
    let instance = shop_half_on_a_spot_node(&h, SHOP, 1).await;
    let original = shop_ingress(&h);
    let rule = ingress_rule(&h).await.expect("the rule");

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
    // Two of the Service's four pods: half the path's traffic, through costop's action.
    let shifted = shop_ingress(&h);
    assert_eq!(
        shifted["spec"]["rules"][0]["http"]["paths"][0]["backend"],
        json!({"service": {"name": "costop-shift-shop-80", "port": {"name": "use-annotation"}}}),
        "{}",
        h.flavor()
    );
    let action: Value =
        serde_json::from_str(shifted["annotations"][ACTION].as_str().expect("the action"))
            .expect("JSON");
    assert_eq!(
        action,
        json!({"type": "forward", "forwardConfig": {"targetGroups": [
            {"serviceName": "shop", "servicePort": 80, "weight": 50},
            {"targetGroupARN": fallback_arn(&h), "weight": 50},
        ]}}),
        "{}",
        h.flavor()
    );
    assert_eq!(
        shifted["annotations"]["kubernetes.io/description"],
        original["annotations"]["kubernetes.io/description"],
        "{}: the other annotations stay",
        h.flavor()
    );
    let lease = leases(&h)
        .await
        .into_iter()
        .find(|l| l.rule_arn == rule.arn)
        .expect("the rule's lease");
    assert_eq!(
        lease.ingress.as_ref().map(|i| i.ingress()).as_deref(),
        Some(STACK),
        "{}: the lease knows the Ingress",
        h.flavor()
    );
    assert!(
        steps(&h, &interruption_id)
            .await
            .contains(&"TRAFFIC_SHIFTED")
    );
    // The controller turns the action into the rule; costop never changed the rule itself.
    let hr = &h;
    let reconciled = eventually(
        hr,
        "the rule to forward to the fallback",
        move || async move { ingress_rule(hr).await.filter(|r| r.forward.len() == 2) },
    )
    .await;
    assert_eq!(
        named(&reconciled),
        [(SHOP_TG.to_owned(), 50), (FALLBACK_TG.to_owned(), 50)],
        "{}",
        h.flavor()
    );
    if let Some(set) = h.rules_set_directly() {
        assert!(
            !set.contains(&reconciled.arn),
            "{}: the controller's rule was modified directly: {set:?}",
            h.flavor()
        );
    }

    // Past the deadline, the keeper's tick follows the capacity until it puts the Ingress back
    // (the evicted pods come back elsewhere, or the lease runs out).
    tokio::time::sleep(Duration::from_secs(WINDOW_SECONDS as u64 + 1)).await;
    let arn = rule.arn.as_str();
    let restored = eventually(
        hr,
        "the Ingress's shift to be put back",
        move || async move {
            let reports = tick(hr).await;
            let mine = reports.into_iter().find(|r| r.rule == arn)?;
            assert!(mine.done, "{}: {mine:?}", hr.flavor());
            matches!(mine.step, RestoreStep::Restore { .. }).then_some(mine)
        },
    )
    .await;
    assert!(restored.done);
    assert_eq!(
        shop_ingress(&h),
        original,
        "{}: the Ingress exactly as it was",
        h.flavor()
    );
    assert!(
        leases(&h).await.iter().all(|l| l.rule_arn != rule.arn),
        "{}: the lease released",
        h.flavor()
    );
    assert!(
        steps(&h, &interruption_id)
            .await
            .contains(&"TRAFFIC_RESTORED")
    );
    let back = eventually(
        hr,
        "the rule back on the Service alone",
        move || async move { ingress_rule(hr).await.filter(|r| r.forward.len() == 1) },
    )
    .await;
    assert_eq!(named(&back), [(SHOP_TG.to_owned(), 1)], "{}", h.flavor());
}
on_both!(
    an_ingress_rule_is_shifted_through_its_annotation_and_put_back_exactly,
    setup()
);

/// A lease for the Ingress's rule as a function leaves it: `applied` claimed, half the group
/// announced out of `expected`, its hold over; `restore_by` from now.
async fn lease_for_the_rule<H: Harness>(
    h: &H,
    expected: usize,
    restore_in: TimeDelta,
) -> ShiftLease {
    let rule = ingress_rule(h).await.expect("the rule");
    let ingress = h
        .sim()
        .store()
        .get(&resources::INGRESSES, Some("default"), "shop")
        .expect("the Ingress");
    let part = shift::ingress_part(&rule, &[ingress], &cluster())
        .expect("a patchable path")
        .expect("a managed rule");
    let shop = rule.forward[0].target_group_arn.clone();
    ShiftLease {
        rule_arn: rule.arn.clone(),
        listener_arn: rule.listener_arn.clone(),
        is_default: false,
        before: rule.forward.clone(),
        applied: vec![
            WeightedGroup {
                target_group_arn: shop.clone(),
                weight: 75,
            },
            WeightedGroup {
                target_group_arn: fallback_arn(h),
                weight: 25,
            },
        ],
        fallback_target_group: fallback_arn(h),
        factor: 1.0,
        groups: vec![GroupShare {
            target_group_arn: shop,
            expected,
            announced: expected / 2,
            leaving: Vec::new(),
        }],
        interruption_id: "i-0dead-spot-interruption".into(),
        hold_until: Utc::now() - TimeDelta::seconds(60),
        restore_by: Utc::now() + restore_in,
        whole_since: None,
        ingress: Some(Box::new(part)),
    }
}

async fn put(h: &impl Harness, lease: &ShiftLease) {
    h.handler()
        .world()
        .records()
        .put(shift::shift_lease_item(lease).expect("encodes"))
        .await
        .expect("lease written");
}

async fn an_ingress_shift_left_behind_by_a_crash_is_carried_through_by_the_keepers_tick<
    H: Harness,
>(
    h: H,
) {
    shop_half_on_a_spot_node(&h, SHOP, 1).await;
    let original = shop_ingress(&h);

    // Died between the lease and the patch, the lease's time up: nothing to undo, the lease
    // goes.
    let lease = lease_for_the_rule(&h, 8, TimeDelta::seconds(-1)).await;
    put(&h, &lease).await;
    let reports = tick(&h).await;
    assert!(
        matches!(
            reports
                .iter()
                .find(|r| r.rule == lease.rule_arn)
                .map(|r| (&r.step, r.done)),
            Some((
                RestoreStep::Restore {
                    reason: "lease_expired"
                },
                true
            ))
        ),
        "{}: {reports:?}",
        h.flavor()
    );
    assert_eq!(shop_ingress(&h), original, "{}", h.flavor());
    assert!(leases(&h).await.is_empty(), "{}", h.flavor());

    // Died between the lease and the patch, the capacity still short: the tick applies the
    // weights the deficit calls for to the Ingress as it finds it.
    let lease = lease_for_the_rule(&h, 8, TimeDelta::seconds(60)).await;
    put(&h, &lease).await;
    let reports = tick(&h).await;
    let Some(TrafficReport {
        step: RestoreStep::Adjust { weights },
        done: true,
        ..
    }) = reports.into_iter().find(|r| r.rule == lease.rule_arn)
    else {
        panic!("{}: an adjusted shift", h.flavor());
    };
    let part = lease.ingress.clone().expect("the Ingress part");
    let adjusted = shop_ingress(&h);
    assert_eq!(
        adjusted["annotations"][ACTION].as_str(),
        Some(part.action_value(&weights).as_str()),
        "{}: the Ingress carries the tick's weights",
        h.flavor()
    );
    assert_eq!(
        leases(&h).await[0].applied,
        weights,
        "{}: the lease knows",
        h.flavor()
    );

    // Patched, then died: the lease's end puts the Ingress back exactly.
    let kube = h
        .handler()
        .world()
        .clusters()
        .connect(&cluster())
        .await
        .expect("the cluster");
    let current = kube
        .ingress("default", "shop")
        .await
        .expect("read")
        .expect("the Ingress");
    let stale = part
        .patch(&current, IngressTarget::Original)
        .expect("a patch")
        .expect("a change");
    let mut expired = leases(&h).await.remove(0);
    expired.restore_by = Utc::now() - TimeDelta::seconds(1);
    put(&h, &expired).await;
    let reports = tick(&h).await;
    assert!(
        reports.iter().any(|r| r.rule == lease.rule_arn
            && r.done
            && matches!(r.step, RestoreStep::Restore { .. })),
        "{}: {reports:?}",
        h.flavor()
    );
    assert_eq!(
        shop_ingress(&h),
        original,
        "{}: the Ingress exactly as it was",
        h.flavor()
    );
    assert!(leases(&h).await.is_empty(), "{}", h.flavor());
    // A patch built from the Ingress as it was read earlier no longer applies: its `test`s fail
    // and nothing changes.
    let refused = kube.patch_ingress("default", "shop", &stale).await;
    assert!(
        matches!(refused, Err(costop_app::ports::PortError::Conflict { .. })),
        "{}: {refused:?}",
        h.flavor()
    );
    assert_eq!(shop_ingress(&h), original, "{}", h.flavor());
}
on_both!(
    an_ingress_shift_left_behind_by_a_crash_is_carried_through_by_the_keepers_tick,
    setup()
);

async fn two_rules_of_one_ingress_without_annotations_are_shifted_side_by_side_and_put_back<
    H: Harness,
>(
    h: H,
) {
    let instance = shop_half_on_a_spot_node(&h, TWO_PATHS, 2).await;
    let original = shop_ingress(&h);
    assert_eq!(original["annotations"], Value::Null);

    h.handler()
        .handle(&events::spot_warning(&instance, Utc::now()), Mode::Execute)
        .await
        .expect("handled");
    // Each path on its own action (they name the same Service port), both patches applied
    // though each was built from the Ingress as read before the other.
    let shifted = shop_ingress(&h);
    let paths = shifted["spec"]["rules"][0]["http"]["paths"]
        .as_array()
        .expect("paths");
    let actions: Vec<&str> = paths
        .iter()
        .map(|p| p["backend"]["service"]["name"].as_str().unwrap_or_default())
        .collect();
    assert!(
        actions
            .iter()
            .all(|a| a.starts_with("costop-shift-shop-80-"))
            && actions[0] != actions[1],
        "{}: {actions:?}",
        h.flavor()
    );
    for a in &actions {
        let key = format!("alb.ingress.kubernetes.io/actions.{a}");
        assert!(
            shifted["annotations"][&key].is_string(),
            "{}: {key} in {}",
            h.flavor(),
            shifted["annotations"]
        );
    }
    let rules: Vec<String> = ingress_rules(&h).await.into_iter().map(|r| r.arn).collect();
    let mine: Vec<ShiftLease> = leases(&h)
        .await
        .into_iter()
        .filter(|l| rules.contains(&l.rule_arn))
        .collect();
    assert_eq!(mine.len(), 2, "{}", h.flavor());

    // Their time up, the tick puts the Ingress back as it was: no annotations at all.
    for mut lease in mine {
        lease.restore_by = Utc::now() - TimeDelta::seconds(1);
        put(&h, &lease).await;
    }
    let reports = tick(&h).await;
    assert_eq!(
        reports
            .iter()
            .filter(|r| rules.contains(&r.rule) && r.done)
            .count(),
        2,
        "{}: {reports:?}",
        h.flavor()
    );
    assert_eq!(
        shop_ingress(&h),
        original,
        "{}: the Ingress exactly as it was",
        h.flavor()
    );
}
on_both!(
    two_rules_of_one_ingress_without_annotations_are_shifted_side_by_side_and_put_back,
    setup()
);
