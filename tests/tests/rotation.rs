//! Out of rotation before eviction, end to end on both worlds (`on_both!`): pods that serve a
//! load balancer are evicted only once the load balancer has let go of them, and pods that
//! serve none are evicted at once. Both target types, with and without the workload's
//! `costop.io/serving` opt-in; the groups a load-balancer controller keeps are left to it (the
//! bed's controller stand-in, and its in-memory twin in the fast world).

use chrono::{DateTime, Utc};
use costop_app::{Mode, Outcome};
use costop_bed::scenario::{PortRef, ServiceRef};
use costop_core::Action;
use costop_core::record::{TimelineEntry, TimelineStep};
use costop_tests::{Harness, Setup, events, on_both, pin_to, pods_on, spot_nodes};

/// The instance target group of the default scenario (no controller keeps it).
const WEB_TG: &str = "costop-dev-web";
/// The IP target group the controller keeps, bound to the `shop` Service.
const SHOP_TG: &str = "costop-dev-shop";

/// Short waits, so the tests take seconds: the settle time is costop's own wall-clock wait.
fn setup() -> Setup {
    let mut s = Setup::default_scenario()
        .with_env("COSTOP_ROTATION_SETTLE_SECONDS", "2")
        .with_env("COSTOP_ROTATION_MAX_WAIT_SECONDS", "20");
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

/// A Deployment of `replicas` pods labelled `app: name`, and, when `service` is set, the
/// `shop` Service selecting them (on the opt-in label too when `opted_in`).
fn workload(name: &str, replicas: u32, opted_in: bool, service: bool) -> String {
    let serving = if opted_in {
        r#", costop.io/serving: "true""#
    } else {
        ""
    };
    let mut yaml = format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: default}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}, pinned: "true"{serving}}}}}
    spec:
      terminationGracePeriodSeconds: 30
      containers:
        - name: c
          image: nginx
          ports: [{{containerPort: 8080}}]
          resources: {{requests: {{cpu: 10m, memory: 16Mi}}}}
"#
    );
    if service {
        yaml.push_str(&format!(
            r#"---
apiVersion: v1
kind: Service
metadata: {{name: shop, namespace: default}}
spec:
  selector: {{app: {name}{serving}}}
  ports: [{{port: 80, targetPort: 8080}}]
"#
        ));
    }
    yaml
}

/// `replicas` pods of the `shop` workload (opted in or not) pinned to a spot node, each
/// registered as an IP target of the controller's group: the spot instance and their IPs.
async fn shop_on_a_spot_node(
    h: &impl Harness,
    replicas: u32,
    opted_in: bool,
) -> (String, Vec<String>) {
    let (instance, node) = spot_nodes(h.sim()).into_iter().next().expect("a spot node");
    pin_to(
        h,
        &node,
        &workload("shop", replicas, opted_in, true),
        replicas as usize,
    )
    .await;
    let ips = pod_ips(h, &node, "shop-");
    assert_eq!(
        ips.len(),
        replicas as usize,
        "{}: every pod has an IP",
        h.flavor()
    );
    let registered = wait_for(h, SHOP_TG, |t| ips.iter().all(|ip| t.contains(ip))).await;
    assert!(registered, "{}: the pods registered before", h.flavor());
    (instance, ips)
}

async fn entries<H: Harness>(h: &H, interruption_id: &str) -> Vec<TimelineEntry> {
    let mut out = costop_tests::timeline(h, interruption_id).await;
    out.sort_by_key(|e| e.at);
    out
}

fn at(entries: &[TimelineEntry], name: &str) -> Option<DateTime<Utc>> {
    entries.iter().find(|e| e.step.name() == name).map(|e| e.at)
}

/// When each pod whose name starts with `prefix` had its eviction issued.
fn evictions(entries: &[TimelineEntry], prefix: &str) -> Vec<DateTime<Utc>> {
    entries
        .iter()
        .filter_map(|e| match &e.step {
            TimelineStep::EvictionIssued { pod } if pod.name.starts_with(prefix) => Some(e.at),
            _ => None,
        })
        .collect()
}

fn pod_ips(h: &impl Harness, node: &str, prefix: &str) -> Vec<String> {
    pods_on(h.sim(), node)
        .iter()
        .filter(|p| {
            p["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with(prefix))
        })
        .filter_map(|p| p["status"]["podIP"].as_str().map(str::to_owned))
        .collect()
}

async fn warn(h: &impl Harness, instance: &str) -> Outcome {
    h.handler()
        .handle(&events::spot_warning(instance, Utc::now()), Mode::Execute)
        .await
        .expect("handled")
}

fn interruption_id(outcome: &Outcome) -> String {
    outcome
        .plans()
        .next()
        .expect("a plan")
        .interruption_id
        .clone()
}

// ---------------------------------------------------------------------------------------------

async fn opted_in_pods_leave_the_controllers_ip_targets_before_they_are_evicted<H: Harness>(h: H) {
    let (instance, ips) = shop_on_a_spot_node(&h, 3, true).await;

    let outcome = warn(&h, &instance).await;
    let plan = outcome.plans().next().expect("a plan");
    assert!(
        !plan.steps.iter().any(|s| matches!(&s.action,
            Action::DeregisterTargets(d) if d.target_group_arn.contains(SHOP_TG))),
        "{}: costop leaves the kept group to its controller",
        h.flavor()
    );
    let e = entries(&h, &interruption_id(&outcome)).await;
    let relabeled = e.iter().find_map(|e| match &e.step {
        TimelineStep::OutOfRotation { relabeled, .. } => Some(relabeled.len()),
        _ => None,
    });
    assert_eq!(
        relabeled,
        Some(3),
        "{}: three pods relabeled: {e:?}",
        h.flavor()
    );
    let draining = at(&e, "TARGETS_DRAINING").expect("the targets drained");
    let settled = at(&e, "ROTATION_SETTLED").expect("the rotation settled");
    assert!(draining <= settled);
    let shop = evictions(&e, "shop-");
    assert_eq!(shop.len(), 3, "{}: three evictions", h.flavor());
    assert!(
        shop.iter().all(|t| *t >= settled),
        "{}: no serving pod evicted before the rotation settled",
        h.flavor()
    );
    let targets = h.target_ids(SHOP_TG).await;
    assert!(
        ips.iter().all(|ip| !targets.contains(ip)),
        "{}: the pods' targets are gone: {targets:?}",
        h.flavor()
    );
    let drain = outcome.instances[0]
        .report
        .as_ref()
        .and_then(|r| r.drain.clone())
        .expect("drained");
    assert!(drain.rotation_ms > 0 && drain.remaining.is_empty());
}
on_both!(
    opted_in_pods_leave_the_controllers_ip_targets_before_they_are_evicted,
    setup()
);

async fn without_the_opt_in_a_kept_group_is_left_to_its_controller_and_its_pods_go_at_once<
    H: Harness,
>(
    h: H,
) {
    let (instance, ips) = shop_on_a_spot_node(&h, 2, false).await;

    let outcome = warn(&h, &instance).await;
    let plan = outcome.plans().next().expect("a plan");
    assert!(
        !plan.steps.iter().any(|s| matches!(&s.action,
            Action::DeregisterTargets(d) if d.target_group_arn.contains(SHOP_TG))),
        "{}: costop does not fight the controller",
        h.flavor()
    );
    let drain = plan.drain().expect("a drain");
    assert!(
        drain
            .pods
            .iter()
            .filter(|p| p.name.starts_with("shop-"))
            .all(|p| !p.after_rotation),
        "{}: nothing to wait for",
        h.flavor()
    );
    let e = entries(&h, &interruption_id(&outcome)).await;
    assert_eq!(evictions(&e, "shop-").len(), 2, "{}", h.flavor());
    // The controller deregisters them once they terminate.
    let gone = wait_for(&h, SHOP_TG, |t| ips.iter().all(|ip| !t.contains(ip))).await;
    assert!(gone, "{}: the controller let go of them", h.flavor());
}
on_both!(
    without_the_opt_in_a_kept_group_is_left_to_its_controller_and_its_pods_go_at_once,
    setup()
);

async fn behind_instance_targets_opted_in_pods_wait_for_the_instance_to_drain_and_others_do_not<
    H: Harness,
>(
    h: H,
) {
    let (instance, node) = spot_nodes(h.sim()).into_iter().next().expect("a spot node");
    let manifests = format!(
        "{}---\n{}",
        workload("shop", 2, true, true),
        workload("batch", 2, false, false)
    );
    pin_to(&h, &node, &manifests, 4).await;
    assert!(
        h.target_ids(WEB_TG).await.contains(&instance),
        "{}: the instance is a target before",
        h.flavor()
    );

    let outcome = warn(&h, &instance).await;
    let e = entries(&h, &interruption_id(&outcome)).await;
    let settled = at(&e, "ROTATION_SETTLED").expect("the rotation settled");
    assert!(
        at(&e, "TARGETS_DRAINING").is_some(),
        "{}: {e:?}",
        h.flavor()
    );
    let (shop, batch) = (evictions(&e, "shop-"), evictions(&e, "batch-"));
    assert_eq!((shop.len(), batch.len()), (2, 2), "{}", h.flavor());
    assert!(
        shop.iter().all(|t| *t >= settled),
        "{}: the opted-in pods waited",
        h.flavor()
    );
    assert!(
        batch.iter().all(|t| *t < settled),
        "{}: the pods that serve nothing went at once",
        h.flavor()
    );
    assert!(
        !h.target_ids(WEB_TG).await.contains(&instance),
        "{}: the instance deregistered",
        h.flavor()
    );
}
on_both!(
    behind_instance_targets_opted_in_pods_wait_for_the_instance_to_drain_and_others_do_not,
    setup()
);

/// The fallback's target group, for a traffic shift that takes every group of the node out of
/// the rules' direct path.
const FALLBACK_TG: &str = "costop-dev-fallback";

fn setup_full_shift() -> Setup {
    let mut s = setup()
        .with_env(
            "COSTOP_FALLBACK_TARGET_GROUP",
            &format!("{}{FALLBACK_TG}", costop_tests::TARGET_GROUP_VALUE),
        )
        .with_env("COSTOP_SHIFT_FACTOR", "1000");
    s.scenario
        .target_groups
        .push(costop_tests::ip_target_group(FALLBACK_TG, None));
    s
}

async fn opted_in_pods_of_a_group_shifted_away_keep_serving_the_fallback_until_their_eviction<
    H: Harness,
>(
    h: H,
) {
    let (instance, ips) = shop_on_a_spot_node(&h, 3, true).await;

    let outcome = warn(&h, &instance).await;
    let plan = outcome.plans().next().expect("a plan");
    assert!(
        plan.steps.iter().any(|s| matches!(&s.action,
            Action::ShiftTraffic(l) if l.before.iter().any(|g| g.target_group_arn.contains(SHOP_TG)))),
        "{}: the shop group's rule is shifted",
        h.flavor()
    );
    let drain = plan.drain().expect("a drain");
    let rotation = drain.rotation.as_ref().expect("a rotation");
    assert!(
        rotation.relabel.is_empty(),
        "{}: no client reaches them directly, so they keep their label: {:?}",
        h.flavor(),
        rotation.relabel
    );
    assert!(
        rotation
            .watch
            .iter()
            .flat_map(|w| &w.targets)
            .all(|t| !ips.contains(&t.id)),
        "{}: their targets stay registered for the fallback's forwards: {:?}",
        h.flavor(),
        rotation.watch
    );
    assert!(
        drain
            .pods
            .iter()
            .filter(|p| p.name.starts_with("shop-"))
            .all(|p| p.after_rotation),
        "{}: they still wait for the rules' propagation",
        h.flavor()
    );
    let e = entries(&h, &interruption_id(&outcome)).await;
    let settled = at(&e, "ROTATION_SETTLED").expect("the rotation settled");
    let shop = evictions(&e, "shop-");
    assert_eq!(shop.len(), 3, "{}: three evictions", h.flavor());
    assert!(
        shop.iter().all(|t| *t >= settled),
        "{}: none evicted before the rotation settled",
        h.flavor()
    );
}
on_both!(
    opted_in_pods_of_a_group_shifted_away_keep_serving_the_fallback_until_their_eviction,
    setup_full_shift()
);

/// Poll the group's targets until `ok` holds (20 s at most); whether it did.
async fn wait_for(h: &impl Harness, group: &str, ok: impl Fn(&[String]) -> bool) -> bool {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if ok(&h.target_ids(group).await) {
            return true;
        }
        if std::time::Instant::now() > until {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
