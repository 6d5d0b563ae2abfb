//! The traffic bed end to end: the `traffic` scenario's pods answer HTTP on loopback, the
//! load-balancer controller stand-in registers them (and the nodes) in moto's target groups, the
//! ALB stand-in configured from moto routes requests to them (IP targets directly, instance
//! targets through the kube-proxy stand-in), writes land in the service's store, and the AWS
//! front answers DescribeTargetHealth with the ALB's own view.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use costop_bed::{Bed, Scenario};

/// The traffic scenario, sped up, without the fallback (tests/fallback.rs runs it).
fn scenario() -> Scenario {
    let mut s = Scenario::builtin("traffic").expect("built-in");
    s.time_scale = 20.0;
    if let Some(lb) = &mut s.load_balancer {
        lb.fallback = None;
    }
    s
}

async fn bed() -> Bed {
    let bed = Bed::start(scenario()).await.expect("bed starts");
    bed.wait_ready(Duration::from_secs(120))
        .await
        .expect("bed settles");
    bed
}

/// One HTTP/1.1 request on a fresh connection: (status, body).
async fn request(
    url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let (status, out) = common::http(url, method, path, headers, body).await;
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

/// Target states of a group as the ALB stand-in sees them.
fn states(bed: &Bed, group: &str) -> BTreeMap<String, String> {
    let arn = &bed.world().target_groups[group];
    bed.alb()
        .expect("the ALB stand-in runs")
        .alb()
        .target_health(arn)
        .unwrap_or_default()
        .into_iter()
        .map(|d| {
            let state = serde_json::to_value(d.target_health.state).unwrap();
            (d.target.id, state.as_str().unwrap_or("").to_owned())
        })
        .collect()
}

async fn until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_the_alb_reaches_a_pod_is_stored_and_read_back() {
    let bed = bed().await;
    let url = bed.alb_url().expect("the ALB stand-in has a URL");
    until("a healthy IP target", Duration::from_secs(60), || {
        states(&bed, "shop-ip").values().any(|s| s == "healthy")
    })
    .await;
    let (status, body) = request(
        &url,
        "POST",
        "/items/cart-1",
        &[("X-Request-Id", "req-1")],
        "{\"n\":1}",
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let store = bed.stores().get("default/shop");
    assert!(
        store.contains("req-1"),
        "the acknowledged write is in the store"
    );
    let (status, body) = request(&url, "GET", "/items/cart-1", &[], "").await;
    assert_eq!((status, body.as_str()), (200, "{\"n\":1}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_target_groups_follow_the_service_and_the_front_reports_the_albs_view() {
    let bed = bed().await;
    // Every pod registered as an IP target, every node as an instance target, all healthy:
    // the instance group's health checks go through the kube-proxy stand-in to a pod.
    until("12 healthy IP targets", Duration::from_secs(90), || {
        let s = states(&bed, "shop-ip");
        s.len() == 12 && s.values().all(|v| v == "healthy")
    })
    .await;
    until(
        "4 healthy instance targets",
        Duration::from_secs(90),
        || {
            let s = states(&bed, "shop-instance");
            s.len() == 4 && s.values().all(|v| v == "healthy")
        },
    )
    .await;
    let arn = &bed.world().target_groups["shop-ip"];
    let out = bed
        .elbv2()
        .describe_target_health()
        .target_group_arn(arn)
        .send()
        .await
        .expect("DescribeTargetHealth through the front");
    let reported: BTreeMap<String, String> = out
        .target_health_descriptions()
        .iter()
        .map(|d| {
            (
                d.target().and_then(|t| t.id()).unwrap_or("").to_owned(),
                d.target_health()
                    .and_then(|h| h.state())
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(reported, states(&bed, "shop-ip"));

    // A deleted pod: its endpoint stops being ready, the controller deregisters it, and the
    // ALB (and so DescribeTargetHealth) shows it draining, as AWS does.
    let (pods, _) = bed.sim().store().list(
        &kubesim::resources::PODS,
        Some("default"),
        &Default::default(),
    );
    let pod = pods
        .iter()
        .find(|p| p["metadata"]["labels"]["app"] == "shop")
        .expect("a shop pod");
    let ip = pod["status"]["podIP"].as_str().unwrap().to_owned();
    bed.sim()
        .store()
        .delete(
            &kubesim::resources::PODS,
            Some("default"),
            pod["metadata"]["name"].as_str().unwrap(),
            &Default::default(),
        )
        .expect("pod deleted");
    until(
        "the deleted pod's target to drain",
        Duration::from_secs(30),
        || {
            states(&bed, "shop-ip")
                .get(&ip)
                .is_some_and(|s| s == "draining")
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alb_ingress_with_a_weighted_action_becomes_a_listener_rule_in_moto() {
    let bed = bed().await;
    bed.sim()
        .apply_yaml(
            r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: shop
  namespace: default
  annotations:
    alb.ingress.kubernetes.io/actions.split: >-
      {"type":"forward","forwardConfig":{"targetGroups":[
        {"serviceName":"shop","servicePort":"80","weight":80},
        {"serviceName":"shop","servicePort":"http","weight":20}]}}
spec:
  ingressClassName: alb
  rules:
    - host: shop.example
      http:
        paths:
          - path: /items
            pathType: Prefix
            backend: {service: {name: split, port: {name: use-annotation}}}
"#,
        )
        .expect("the Ingress applies");
    let listener = bed.world().listener_arn.clone().expect("a listener");
    let t0 = Instant::now();
    let rule = loop {
        let rules = bed
            .elbv2()
            .describe_rules()
            .listener_arn(&listener)
            .send()
            .await
            .expect("DescribeRules");
        if let Some(r) = rules
            .rules()
            .iter()
            .find(|r| r.priority().and_then(|p| p.parse::<i32>().ok()) >= Some(1000))
        {
            break r.clone();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no rule from the Ingress"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let conditions: Vec<String> = rule
        .conditions()
        .iter()
        .flat_map(|c| {
            c.path_pattern_config()
                .map(|p| p.values().to_vec())
                .into_iter()
                .chain(c.host_header_config().map(|h| h.values().to_vec()))
                .flatten()
        })
        .collect();
    assert_eq!(conditions, ["shop.example", "/items", "/items/*"]);
    // Tagged as the controller's, with the Ingress it comes from.
    let tags = bed
        .elbv2()
        .describe_tags()
        .resource_arns(rule.rule_arn().expect("an ARN"))
        .send()
        .await
        .expect("DescribeTags");
    let stack = tags.tag_descriptions()[0]
        .tags()
        .iter()
        .find(|t| t.key() == Some("ingress.k8s.aws/stack"))
        .and_then(|t| t.value());
    assert_eq!(stack, Some("default/shop"));
    let weights: Vec<i32> = rule.actions()[0]
        .forward_config()
        .expect("a weighted forward")
        .target_groups()
        .iter()
        .filter_map(|t| t.weight())
        .collect();
    assert_eq!(weights, [80, 20]);
}
