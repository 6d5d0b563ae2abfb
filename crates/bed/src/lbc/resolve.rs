//! Which targets a target-group binding wants, from the cluster as it is: the rules of the AWS
//! Load Balancer Controller's endpoint resolver (`pkg/backend/endpoint_resolver.go` and
//! `endpoint_utils.go` in kubernetes-sigs/aws-load-balancer-controller), over the API objects as
//! JSON. Pure: the controller loop ([`super`]) reads the objects and applies the difference.
//!
//! - **IP targets** (`ResolvePodEndpoints`): every endpoint of the Service's EndpointSlices that
//!   refers to a Pod, on the slice port matching the Service port's name. A `ready` endpoint is a
//!   target. One that is not ready still is when its pod's containers are ready and its node is
//!   Ready and it is not terminating (a pod held back only by a readiness gate, which the
//!   controller itself sets); a terminating pod on a healthy node is not ("start from 1.22+,
//!   terminating pods are included in endpointSlices, and we don't want to include these").
//!   With no such target, endpoints on nodes whose Ready condition is Unknown are used (fail-open).
//! - **Instance targets** (`ResolveNodePortEndpoints`): the Service must be NodePort or
//!   LoadBalancer; every node that may proxy traffic (no `node-role.kubernetes.io/master`, no
//!   `node.kubernetes.io/exclude-from-external-load-balancers`, no
//!   `alpha.service-controller.kubernetes.io/exclude-balancer`, not Fargate) and is Ready, on the
//!   port's nodePort, by the instance id of its providerID; with none Ready, those whose Ready
//!   condition is Unknown (fail-open).

use serde_json::Value;

/// A target to register: an instance id or an IP, and its port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Target {
    pub id: String,
    pub port: u16,
}

/// The Service port a binding names: its number or its name (`intstr`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServicePort {
    Number(u16),
    Name(String),
}

/// Why a binding has no targets to compute.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("the Service has no port {0:?}")]
    NoSuchPort(ServicePort),
    #[error("instance targets need a NodePort or LoadBalancer Service, not {0}")]
    NotNodePort(String),
    #[error("the Service port {0:?} has no nodePort yet")]
    NoNodePort(ServicePort),
}

/// Node labels that keep a node out of instance target groups (the controller's default
/// traffic-proxy node selector).
pub const EXCLUDING_LABELS: [&str; 3] = [
    "node-role.kubernetes.io/master",
    "node.kubernetes.io/exclude-from-external-load-balancers",
    "alpha.service-controller.kubernetes.io/exclude-balancer",
];

/// The Service's port the binding names.
fn service_port<'a>(service: &'a Value, port: &ServicePort) -> Result<&'a Value, ResolveError> {
    service["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| match port {
            ServicePort::Number(n) => p["port"].as_u64() == Some(u64::from(*n)),
            ServicePort::Name(name) => p["name"].as_str() == Some(name.as_str()),
        })
        .ok_or_else(|| ResolveError::NoSuchPort(port.clone()))
}

/// The Ready condition's status of a node (`True`, `False`, `Unknown`), `False` when absent.
fn node_ready_status(node: &Value) -> &str {
    condition(node, "Ready").unwrap_or("False")
}

fn condition<'a>(object: &'a Value, kind: &str) -> Option<&'a str> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)?["status"]
        .as_str()
}

fn name(object: &Value) -> Option<&str> {
    object["metadata"]["name"].as_str()
}

/// IP targets of a Service port (see the module docs).
pub fn ip_targets(
    service: &Value,
    port: &ServicePort,
    slices: &[Value],
    pods: &[Value],
    nodes: &[Value],
) -> Result<Vec<Target>, ResolveError> {
    let svc_port = service_port(service, port)?;
    let port_name = svc_port["name"].as_str().unwrap_or("");
    let mut ready = Vec::new();
    let mut unknown = Vec::new();
    for slice in slices {
        for ep_port in slice["ports"].as_array().into_iter().flatten() {
            if !port_name.is_empty() && ep_port["name"].as_str() != Some(port_name) {
                continue;
            }
            let Some(number) = ep_port["port"].as_u64().and_then(|n| u16::try_from(n).ok()) else {
                continue;
            };
            for ep in slice["endpoints"].as_array().into_iter().flatten() {
                if ep["targetRef"]["kind"] != "Pod" {
                    continue;
                }
                let Some(address) = ep["addresses"][0].as_str() else {
                    continue;
                };
                let target = Target {
                    id: address.to_owned(),
                    port: number,
                };
                if ep["conditions"]["ready"] == true {
                    ready.push(target);
                    continue;
                }
                let pod_name = ep["targetRef"]["name"].as_str();
                let Some(pod) = pods.iter().find(|p| name(p) == pod_name) else {
                    continue;
                };
                if condition(pod, "ContainersReady") != Some("True") {
                    continue;
                }
                let node_name = pod["spec"]["nodeName"].as_str();
                let Some(node) = nodes.iter().find(|n| name(n) == node_name) else {
                    continue;
                };
                match node_ready_status(node) {
                    "True" if ep["conditions"]["terminating"] != true => ready.push(target),
                    "Unknown" => unknown.push(target),
                    _ => {}
                }
            }
        }
    }
    let mut targets = if ready.is_empty() { unknown } else { ready };
    targets.sort();
    targets.dedup();
    Ok(targets)
}

/// Whether a node may proxy traffic for instance targets.
pub fn may_proxy(node: &Value) -> bool {
    let labels = &node["metadata"]["labels"];
    EXCLUDING_LABELS.iter().all(|l| labels.get(*l).is_none())
        && labels["eks.amazonaws.com/compute-type"] != "fargate"
}

/// Instance targets of a Service port (see the module docs): nodes by instance id, each on the
/// port's nodePort.
pub fn instance_targets(
    service: &Value,
    port: &ServicePort,
    nodes: &[Value],
) -> Result<Vec<Target>, ResolveError> {
    let kind = service["spec"]["type"].as_str().unwrap_or("ClusterIP");
    if kind != "NodePort" && kind != "LoadBalancer" {
        return Err(ResolveError::NotNodePort(kind.to_owned()));
    }
    let node_port = service_port(service, port)?["nodePort"]
        .as_u64()
        .and_then(|n| u16::try_from(n).ok())
        .ok_or_else(|| ResolveError::NoNodePort(port.clone()))?;
    let candidates: Vec<&Value> = nodes.iter().filter(|n| may_proxy(n)).collect();
    let with = |status: &str| -> Vec<Target> {
        candidates
            .iter()
            .filter(|n| node_ready_status(n) == status)
            .filter_map(|n| crate::node_instance_id(n))
            .map(|id| Target {
                id: id.to_owned(),
                port: node_port,
            })
            .collect()
    };
    let mut targets = with("True");
    if targets.is_empty() {
        targets = with("Unknown");
    }
    targets.sort();
    Ok(targets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, id: &str, ready: &str, labels: Value) -> Value {
        json!({"metadata": {"name": name, "labels": labels},
               "spec": {"providerID": format!("aws:///us-east-1a/{id}")},
               "status": {"conditions": [{"type": "Ready", "status": ready}]}})
    }

    fn pod(name: &str, node: &str, containers_ready: bool) -> Value {
        json!({"metadata": {"name": name}, "spec": {"nodeName": node},
               "status": {"conditions": [{"type": "ContainersReady",
                   "status": if containers_ready { "True" } else { "False" }}]}})
    }

    fn endpoint(ip: &str, pod: &str, ready: bool, terminating: bool) -> Value {
        json!({"addresses": [ip], "targetRef": {"kind": "Pod", "name": pod},
               "conditions": {"ready": ready, "serving": ready || terminating, "terminating": terminating}})
    }

    fn service(kind: &str) -> Value {
        json!({"spec": {"type": kind, "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080}]}})
    }

    #[test]
    fn ready_endpoints_are_ip_targets_and_a_terminating_pod_on_a_ready_node_is_not() {
        let nodes = [node("n1", "i-0000000000000000a", "True", json!({}))];
        let pods = [
            pod("a", "n1", true),
            pod("b", "n1", true),
            pod("c", "n1", false),
        ];
        let slice = json!({"ports": [{"name": "http", "port": 8080}], "endpoints": [
            endpoint("10.64.0.1", "a", true, false),
            endpoint("10.64.0.2", "b", false, true),
            endpoint("10.64.0.3", "c", false, false)]});
        let t = ip_targets(
            &service("ClusterIP"),
            &ServicePort::Number(80),
            &[slice],
            &pods,
            &nodes,
        )
        .unwrap();
        assert_eq!(
            t,
            [Target {
                id: "10.64.0.1".into(),
                port: 8080
            }]
        );
    }

    #[test]
    fn a_pod_held_back_only_by_a_readiness_gate_is_registered() {
        let nodes = [node("n1", "i-0000000000000000a", "True", json!({}))];
        let pods = [pod("a", "n1", true)];
        let slice = json!({"ports": [{"name": "http", "port": 8080}],
            "endpoints": [endpoint("10.64.0.1", "a", false, false)]});
        let t = ip_targets(
            &service("ClusterIP"),
            &ServicePort::Name("http".into()),
            &[slice],
            &pods,
            &nodes,
        )
        .unwrap();
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn excluded_and_not_ready_nodes_are_not_instance_targets() {
        let nodes = [
            node("n1", "i-0000000000000000a", "True", json!({})),
            node(
                "n2",
                "i-0000000000000000b",
                "True",
                json!({"node.kubernetes.io/exclude-from-external-load-balancers": "true"}),
            ),
            node("n3", "i-0000000000000000c", "False", json!({})),
        ];
        let t = instance_targets(&service("NodePort"), &ServicePort::Number(80), &nodes).unwrap();
        assert_eq!(
            t,
            [Target {
                id: "i-0000000000000000a".into(),
                port: 30080
            }]
        );
    }

    #[test]
    fn with_no_ready_node_the_unknown_ones_are_used() {
        let nodes = [
            node("n1", "i-0000000000000000a", "Unknown", json!({})),
            node("n2", "i-0000000000000000b", "False", json!({})),
        ];
        let t = instance_targets(&service("NodePort"), &ServicePort::Number(80), &nodes).unwrap();
        assert_eq!(
            t,
            [Target {
                id: "i-0000000000000000a".into(),
                port: 30080
            }]
        );
    }

    #[test]
    fn instance_targets_need_a_node_port_service() {
        assert_eq!(
            instance_targets(&service("ClusterIP"), &ServicePort::Number(80), &[]),
            Err(ResolveError::NotNodePort("ClusterIP".into()))
        );
        assert_eq!(
            instance_targets(&service("NodePort"), &ServicePort::Number(81), &[]),
            Err(ResolveError::NoSuchPort(ServicePort::Number(81)))
        );
    }
}
