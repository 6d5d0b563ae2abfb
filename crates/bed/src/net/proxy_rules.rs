//! kube-proxy's choice of endpoints for a connection to a Service's NodePort on one node, and
//! its health-check answer for `externalTrafficPolicy: Local`: pure, over the Service and its
//! EndpointSlices as JSON. The bed's kube-proxy stand-in ([`super::kube_proxy`]) applies it.
//!
//! - `externalTrafficPolicy: Cluster` (the default): any ready endpoint in the cluster; with
//!   none ready, the serving terminating ones (KEP-1669, "Proxy Terminating Endpoints", GA in
//!   1.28: "take all ready endpoints; if none, take all serving terminating endpoints",
//!   <https://www.kubernetes.dev/resources/keps/1669/>).
//! - `Local`: the same rule over the endpoints on this node only, so a node with none rejects the
//!   connection. Its health-check node port answers 200 with the count of local endpoints when
//!   there is one, 503 otherwise, which is how a load balancer learns to skip the node
//!   (<https://kubernetes.io/docs/tasks/access-application-cluster/create-external-load-balancer/#preserving-the-client-source-ip>).
//! - With no endpoint to pick, kube-proxy rejects the connection (a REJECT rule: the client sees
//!   "connection refused").

use serde_json::Value;

/// An endpoint to forward a connection to: a pod IP and the target port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    pub ip: String,
    pub port: u16,
}

/// The traffic policy of a Service for traffic from outside (`spec.externalTrafficPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Cluster,
    Local,
}

impl Policy {
    /// The Service's policy (`Cluster` unless it says `Local`).
    pub fn of(service: &Value) -> Policy {
        match service["spec"]["externalTrafficPolicy"].as_str() {
            Some("Local") => Policy::Local,
            _ => Policy::Cluster,
        }
    }
}

/// Every NodePort of a Service: (its Service port's name, nodePort).
pub fn node_ports(service: &Value) -> Vec<(String, u16)> {
    service["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let port = u16::try_from(p["nodePort"].as_u64()?).ok()?;
            Some((p["name"].as_str().unwrap_or("").to_owned(), port))
        })
        .collect()
}

/// The Service's `healthCheckNodePort`, if it has one.
pub fn health_check_node_port(service: &Value) -> Option<u16> {
    u16::try_from(service["spec"]["healthCheckNodePort"].as_u64()?).ok()
}

struct Candidate<'a> {
    endpoint: Endpoint,
    node: Option<&'a str>,
    ready: bool,
    serving: bool,
    terminating: bool,
}

fn candidates<'a>(slices: &'a [Value], port_name: &str) -> Vec<Candidate<'a>> {
    let mut out = Vec::new();
    for slice in slices {
        let Some(port) = slice["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|p| {
                (p["name"].as_str().unwrap_or("") == port_name)
                    .then(|| p["port"].as_u64().and_then(|n| u16::try_from(n).ok()))
                    .flatten()
            })
        else {
            continue;
        };
        for ep in slice["endpoints"].as_array().into_iter().flatten() {
            let Some(ip) = ep["addresses"][0].as_str() else {
                continue;
            };
            let c = &ep["conditions"];
            // An absent `ready` is to be read as true (EndpointConditions docs); `serving`
            // defaults to `ready`, `terminating` to false.
            let ready = c["ready"].as_bool().unwrap_or(true);
            out.push(Candidate {
                endpoint: Endpoint {
                    ip: ip.to_owned(),
                    port,
                },
                node: ep["nodeName"].as_str(),
                ready,
                serving: c["serving"].as_bool().unwrap_or(ready),
                terminating: c["terminating"].as_bool().unwrap_or(false),
            });
        }
    }
    out
}

/// The endpoints a new connection to `port_name`'s NodePort on `node` may go to (see the module
/// docs); empty means the connection is refused.
pub fn endpoints_for(
    service: &Value,
    slices: &[Value],
    port_name: &str,
    node: &str,
) -> Vec<Endpoint> {
    let all = candidates(slices, port_name);
    let scope: Vec<&Candidate> = match Policy::of(service) {
        Policy::Cluster => all.iter().collect(),
        Policy::Local => all.iter().filter(|c| c.node == Some(node)).collect(),
    };
    let ready: Vec<Endpoint> = scope
        .iter()
        .filter(|c| c.ready && !c.terminating)
        .map(|c| c.endpoint.clone())
        .collect();
    let mut chosen = if ready.is_empty() {
        scope
            .iter()
            .filter(|c| c.serving && c.terminating)
            .map(|c| c.endpoint.clone())
            .collect()
    } else {
        ready
    };
    chosen.sort();
    chosen.dedup();
    chosen
}

/// The health-check node port's answer on `node`: (HTTP status, local endpoints). Only ready
/// endpoints count: a node whose pods are all terminating reports none, so the load balancer
/// stops choosing it while those pods finish what they have.
pub fn health_check(slices: &[Value], node: &str) -> (u16, usize) {
    let mut local: Vec<&str> = slices
        .iter()
        .flat_map(|s| s["endpoints"].as_array().into_iter().flatten())
        .filter(|ep| ep["nodeName"].as_str() == Some(node))
        .filter(|ep| {
            let c = &ep["conditions"];
            c["ready"].as_bool().unwrap_or(true) && !c["terminating"].as_bool().unwrap_or(false)
        })
        .filter_map(|ep| ep["addresses"][0].as_str())
        .collect();
    local.sort_unstable();
    local.dedup();
    match local.len() {
        0 => (503, 0),
        n => (200, n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ep(ip: &str, node: &str, ready: bool, terminating: bool) -> Value {
        json!({"addresses": [ip], "nodeName": node,
               "conditions": {"ready": ready, "serving": ready || terminating, "terminating": terminating}})
    }

    fn slices(eps: Vec<Value>) -> Vec<Value> {
        vec![json!({"ports": [{"name": "http", "port": 8080}], "endpoints": eps})]
    }

    fn svc(policy: &str) -> Value {
        json!({"spec": {"externalTrafficPolicy": policy,
            "ports": [{"name": "http", "port": 80, "nodePort": 30080}], "healthCheckNodePort": 32000}})
    }

    #[test]
    fn cluster_policy_uses_every_ready_endpoint_and_skips_terminating_ones() {
        let s = slices(vec![
            ep("10.64.0.1", "a", true, false),
            ep("10.64.0.2", "b", false, true),
        ]);
        let got = endpoints_for(&svc("Cluster"), &s, "http", "c");
        assert_eq!(
            got,
            [Endpoint {
                ip: "10.64.0.1".into(),
                port: 8080
            }]
        );
    }

    #[test]
    fn with_none_ready_the_serving_terminating_endpoints_take_the_traffic() {
        let s = slices(vec![ep("10.64.0.2", "b", false, true)]);
        assert_eq!(endpoints_for(&svc("Cluster"), &s, "http", "a").len(), 1);
    }

    #[test]
    fn local_policy_uses_only_this_nodes_endpoints_and_refuses_without_one() {
        let s = slices(vec![ep("10.64.0.1", "a", true, false)]);
        assert_eq!(endpoints_for(&svc("Local"), &s, "http", "a").len(), 1);
        assert!(endpoints_for(&svc("Local"), &s, "http", "b").is_empty());
    }

    #[test]
    fn the_health_check_counts_ready_local_endpoints_only() {
        let s = slices(vec![
            ep("10.64.0.1", "a", true, false),
            ep("10.64.0.2", "b", false, true),
        ]);
        assert_eq!(health_check(&s, "a"), (200, 1));
        assert_eq!(health_check(&s, "b"), (503, 0));
        assert_eq!(health_check_node_port(&svc("Local")), Some(32000));
        assert_eq!(node_ports(&svc("Local")), [("http".to_owned(), 30080)]);
    }
}
