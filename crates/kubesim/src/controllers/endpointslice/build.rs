//! What the EndpointSlices of one Service should contain, computed from the Service, the pods
//! its selector matches and their nodes — the pure half of the EndpointSlice controller
//! (<https://kubernetes.io/docs/concepts/services-networking/endpoint-slices/>):
//!
//! - a pod is an endpoint while it has an IP and has not finished (Succeeded or Failed);
//!   terminating pods stay, so that load balancers can drain them;
//! - `conditions`: `serving` is the pod's Ready condition, `terminating` is whether it has a
//!   `deletionTimestamp`, and `ready` is `serving && !terminating` — a terminating pod is
//!   never ready, even while it still serves (`publishNotReadyAddresses` makes every endpoint
//!   ready and serving);
//! - `ports` are the Service's ports with each `targetPort` resolved for the pod (a named
//!   one through the pod's container ports; a port the pod does not have is left out), so
//!   pods whose ports resolve differently land in different slices;
//! - at most `max_per_slice` endpoints per slice; a Service with no endpoints still gets one
//!   empty slice.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::controllers::{
    At, is_terminal, is_terminating, name, namespace, pod_node, pod_ready, s, uid,
};

pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// One slice's content: its ports and endpoints (`None` ports for the empty placeholder).
#[derive(Debug, Clone, PartialEq)]
pub struct SliceContent {
    pub ports: Option<Vec<Value>>,
    pub endpoints: Vec<Value>,
}

/// Whether `pod` belongs in the slices at all.
pub fn include_pod(pod: &Value) -> bool {
    !is_terminal(pod) && !pod_ip(pod).is_empty()
}

fn pod_ip(pod: &Value) -> &str {
    s(pod, "/status/podIP").unwrap_or("")
}

/// The Service's ports as the pod serves them (`podutil.FindPort` for named target ports).
pub fn endpoint_ports(svc: &Value, pod: &Value) -> Vec<Value> {
    let ports = svc
        .at("/spec/ports")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut out = Vec::new();
    for p in ports {
        let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
        let number = match p.get("targetPort") {
            Some(Value::String(named)) => match named.parse::<i64>() {
                Ok(n) => Some(n),
                Err(_) => container_port(pod, named, proto),
            },
            Some(Value::Number(n)) => n.as_i64(),
            _ => p.get("port").and_then(Value::as_i64),
        };
        let Some(number) = number else {
            continue;
        };
        let mut ep = json!({
            "name": p.get("name").and_then(Value::as_str).unwrap_or(""),
            "port": number,
            "protocol": proto,
        });
        if let Some(ap) = p.get("appProtocol").filter(|v| v.is_string()) {
            ep["appProtocol"] = ap.clone();
        }
        out.push(ep);
    }
    out
}

fn container_port(pod: &Value, port_name: &str, proto: &str) -> Option<i64> {
    pod.at("/spec/containers")
        .and_then(Value::as_array)?
        .iter()
        .filter_map(|c| c.get("ports").and_then(Value::as_array))
        .flatten()
        .find(|p| {
            p.get("name").and_then(Value::as_str) == Some(port_name)
                && p.get("protocol").and_then(Value::as_str).unwrap_or("TCP") == proto
        })
        .and_then(|p| p.get("containerPort").and_then(Value::as_i64))
}

/// One endpoint for `pod`, `zone` being its node's zone label.
pub fn endpoint(svc: &Value, pod: &Value, zone: Option<&str>) -> Value {
    let publish_not_ready = svc
        .at("/spec/publishNotReadyAddresses")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let serving = publish_not_ready || pod_ready(pod);
    let terminating = is_terminating(pod);
    let ready = publish_not_ready || (serving && !terminating);
    let mut ep = json!({
        "addresses": [pod_ip(pod)],
        "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
        "targetRef": {"kind": "Pod", "namespace": namespace(pod), "name": name(pod), "uid": uid(pod)},
    });
    if let Some(node) = pod_node(pod) {
        ep["nodeName"] = json!(node);
        if let Some(z) = zone.filter(|z| !z.is_empty()) {
            ep["zone"] = json!(z);
        }
    }
    // A pod with `hostname` whose `subdomain` is this Service gets a DNS name through it.
    let hostname = s(pod, "/spec/hostname").unwrap_or("");
    if !hostname.is_empty() && s(pod, "/spec/subdomain") == Some(name(svc)) {
        ep["hostname"] = json!(hostname);
    }
    ep
}

/// The slices `svc` should have for `pods` (already matched by its selector), in a stable
/// order: grouped by port set, endpoints by pod name, chunked by `max_per_slice`.
pub fn desired_slices<'p>(
    svc: &Value,
    pods: impl IntoIterator<Item = &'p Value>,
    zone_of: impl Fn(&str) -> Option<String>,
    max_per_slice: usize,
) -> Vec<SliceContent> {
    // Port set (as JSON text) → its ports and (pod name, endpoint) pairs.
    type Group = (Vec<Value>, Vec<(String, Value)>);
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    for pod in pods.into_iter().filter(|p| include_pod(p)) {
        let ports = endpoint_ports(svc, pod);
        let zone = pod_node(pod).and_then(&zone_of);
        let ep = endpoint(svc, pod, zone.as_deref());
        let key = Value::Array(ports.clone()).to_string();
        groups
            .entry(key)
            .or_insert_with(|| (ports, Vec::new()))
            .1
            .push((name(pod).to_string(), ep));
    }
    let mut out = Vec::new();
    for (_, (ports, mut eps)) in groups {
        eps.sort_by(|a, b| a.0.cmp(&b.0));
        for chunk in eps.chunks(max_per_slice.max(1)) {
            out.push(SliceContent {
                ports: Some(ports.clone()),
                endpoints: chunk.iter().map(|(_, e)| e.clone()).collect(),
            });
        }
    }
    if out.is_empty() {
        out.push(SliceContent {
            ports: None,
            endpoints: Vec::new(),
        });
    }
    out
}

/// The labels of `svc`'s slices: the Service's own, plus the controller's.
pub fn slice_labels(svc: &Value) -> Map<String, Value> {
    let mut labels: Map<String, Value> = svc
        .at("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    labels.remove(HEADLESS_LABEL);
    labels.insert(SERVICE_NAME_LABEL.into(), json!(name(svc)));
    labels.insert(MANAGED_BY_LABEL.into(), json!(CONTROLLER_NAME));
    if s(svc, "/spec/clusterIP") == Some("None") {
        labels.insert(HEADLESS_LABEL.into(), json!(""));
    }
    labels
}

/// The `ports` and `endpoints` fields of a slice as stored.
pub fn content_fields(c: &SliceContent) -> (Value, Value) {
    (
        c.ports.clone().map_or(Value::Null, Value::Array),
        if c.endpoints.is_empty() && c.ports.is_none() {
            Value::Null
        } else {
            Value::Array(c.endpoints.clone())
        },
    )
}

/// A new slice object for `svc` with `content`.
pub fn new_slice(svc: &Value, content: &SliceContent) -> Value {
    let (ports, endpoints) = content_fields(content);
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "generateName": format!("{}-", name(svc)),
            "namespace": namespace(svc),
            "labels": slice_labels(svc),
            "ownerReferences": [owner_ref(svc)],
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": ports,
    })
}

pub fn owner_ref(svc: &Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "name": name(svc),
        "uid": uid(svc),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc() -> Value {
        json!({"metadata": {"name": "web", "namespace": "shop", "uid": "s-1", "labels": {"app": "web"}},
               "spec": {"selector": {"app": "web"}, "clusterIP": "10.100.1.2",
                        "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"},
                                  {"name": "metrics", "port": 9090, "protocol": "TCP", "targetPort": 9090}]}})
    }

    fn pod(name: &str, ip: &str, ready: bool, terminating: bool, http_port: i64) -> Value {
        let mut p = json!({
            "metadata": {"name": name, "namespace": "shop", "uid": format!("u-{name}"), "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "app", "ports": [{"name": "http", "containerPort": http_port}]}]},
            "status": {"phase": "Running", "podIP": ip,
                       "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        });
        if terminating {
            p["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:00Z");
        }
        p
    }

    fn zone(_: &str) -> Option<String> {
        Some("us-east-1a".into())
    }

    #[test]
    fn named_target_ports_resolve_through_the_pods_container_ports() {
        let ports = endpoint_ports(&svc(), &pod("a", "10.64.0.1", true, false, 8080));
        assert_eq!(
            ports,
            vec![
                json!({"name": "http", "port": 8080, "protocol": "TCP"}),
                json!({"name": "metrics", "port": 9090, "protocol": "TCP"}),
            ]
        );
        let mut no_named = pod("b", "10.64.0.2", true, false, 8080);
        no_named["spec"]["containers"][0]["ports"] = json!([]);
        assert_eq!(endpoint_ports(&svc(), &no_named).len(), 1);
    }

    #[test]
    fn conditions_follow_readiness_and_termination() {
        let cond = |p: &Value| endpoint(&svc(), p, Some("us-east-1a"))["conditions"].clone();
        assert_eq!(
            cond(&pod("a", "10.64.0.1", true, false, 80)),
            json!({"ready": true, "serving": true, "terminating": false})
        );
        assert_eq!(
            cond(&pod("a", "10.64.0.1", false, false, 80)),
            json!({"ready": false, "serving": false, "terminating": false})
        );
        assert_eq!(
            cond(&pod("a", "10.64.0.1", true, true, 80)),
            json!({"ready": false, "serving": true, "terminating": true})
        );
        let ep = endpoint(
            &svc(),
            &pod("a", "10.64.0.1", true, false, 80),
            Some("us-east-1a"),
        );
        assert_eq!(
            (
                ep["nodeName"].clone(),
                ep["zone"].clone(),
                ep["targetRef"]["name"].clone()
            ),
            (json!("n1"), json!("us-east-1a"), json!("a"))
        );
    }

    #[test]
    fn pods_without_ip_or_finished_are_left_out() {
        let mut done = pod("done", "10.64.0.3", false, false, 80);
        done["status"]["phase"] = json!("Succeeded");
        let pods = [pod("noip", "", false, false, 80), done];
        let slices = desired_slices(&svc(), pods.iter(), zone, 100);
        assert_eq!(
            slices,
            vec![SliceContent {
                ports: None,
                endpoints: vec![]
            }]
        );
    }

    #[test]
    fn slices_group_by_resolved_ports_and_hold_at_most_the_maximum() {
        let pods: Vec<Value> = (0..5)
            .map(|i| {
                pod(
                    &format!("p{i}"),
                    &format!("10.64.0.{}", i + 1),
                    true,
                    false,
                    8080,
                )
            })
            .chain([pod("q", "10.64.1.1", true, false, 8081)])
            .collect();
        let slices = desired_slices(&svc(), pods.iter(), zone, 2);
        let shape: Vec<(i64, usize)> = slices
            .iter()
            .map(|s| {
                (
                    s.ports
                        .as_ref()
                        .map_or(0, |p| p[0]["port"].as_i64().unwrap_or(0)),
                    s.endpoints.len(),
                )
            })
            .collect();
        assert_eq!(shape, [(8080, 2), (8080, 2), (8080, 1), (8081, 1)]);
    }

    #[test]
    fn slices_carry_the_service_labels_owner_and_controller_labels() {
        let slice = new_slice(&svc(), &desired_slices(&svc(), [], zone, 100)[0]);
        assert_eq!(
            slice["metadata"]["labels"]["kubernetes.io/service-name"],
            "web"
        );
        assert_eq!(
            slice["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
            "endpointslice-controller.k8s.io"
        );
        assert_eq!(slice["metadata"]["labels"]["app"], "web");
        assert_eq!(slice["metadata"]["ownerReferences"][0]["uid"], "s-1");
        assert_eq!(slice["addressType"], "IPv4");
        assert_eq!(slice["metadata"]["generateName"], "web-");
    }
}
