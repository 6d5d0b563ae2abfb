//! ClusterIP and node port allocation for Services, inside the write's transaction:
//!
//! - a Service that needs a ClusterIP (every type but ExternalName) gets one from the service
//!   CIDR unless it is headless (`clusterIP: None`) or asks for a specific one, which must be
//!   in the range and free; `clusterIPs`, `ipFamilies: [IPv4]` and `ipFamilyPolicy:
//!   SingleStack` follow
//!   (<https://kubernetes.io/docs/concepts/services-networking/service/#choosing-your-own-ip-address>);
//! - NodePort and LoadBalancer Services get a `nodePort` per port from the node port range,
//!   or keep a requested one that is in range and free
//!   (<https://kubernetes.io/docs/concepts/services-networking/service/#nodeport-custom-port>);
//! - a LoadBalancer with `externalTrafficPolicy: Local` gets a `healthCheckNodePort`
//!   (<https://kubernetes.io/docs/tasks/access-application-cluster/create-external-load-balancer/#preserving-the-client-source-ip>).
//!
//! What is taken is read from the other Services in the store, so deleting a Service, or
//! changing its type so it no longer holds a value, frees it. Refusals are the registry's
//! 422 field errors; a full range is its 500.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use serde_json::{Value, json};

use super::child;
use super::errors::FieldError;
use super::services::{needs_cluster_ip, needs_health_check_port, needs_node_ports, str_at};
use crate::error::ApiError;
use crate::network::allocator::{pick_cluster_ip, pick_node_port, seed};
use crate::resources::SERVICES;
use crate::store::{ListOptions, Tx, meta_str};

/// What the other Services hold.
#[derive(Default)]
struct Taken {
    ips: HashSet<Ipv4Addr>,
    ports: HashSet<u16>,
}

fn taken_by_others(tx: &Tx<'_>, svc: &Value) -> Taken {
    let me = (meta_str(svc, "namespace"), meta_str(svc, "name"));
    let mut t = Taken::default();
    for other in tx.list(&SERVICES, None, &ListOptions::default()) {
        if (meta_str(&other, "namespace"), meta_str(&other, "name")) == me {
            continue;
        }
        for ip in other
            .pointer("/spec/clusterIPs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .chain(other.pointer("/spec/clusterIP"))
        {
            if let Some(ip) = ip.as_str().and_then(|s| s.parse().ok()) {
                t.ips.insert(ip);
            }
        }
        let ports = other
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p.get("nodePort"));
        for p in ports.chain(other.pointer("/spec/healthCheckNodePort")) {
            if let Some(p) = p.as_u64().and_then(|p| u16::try_from(p).ok()) {
                t.ports.insert(p);
            }
        }
    }
    t
}

/// Go's `%#v` of a `[]string`, as the registry prints `clusterIPs` in its errors.
fn go_strings(v: &[&str]) -> String {
    let items: Vec<String> = v.iter().map(|s| format!("\"{s}\"")).collect();
    format!("[]string{{{}}}", items.join(", "))
}

fn raw_invalid(field: &str, value: String, detail: impl std::fmt::Display) -> FieldError {
    FieldError {
        field: field.to_string(),
        reason: "FieldValueInvalid",
        body: format!("Invalid value: {value}: {detail}"),
    }
}

/// Allocate (or check) everything `svc` needs; field errors for what cannot be had. `old` is
/// the stored Service on an update: values it already holds stay its own.
pub(super) fn allocate(
    tx: &Tx<'_>,
    svc: &mut Value,
    old: Option<&Value>,
) -> Result<Vec<FieldError>, ApiError> {
    let net = *tx.service_network();
    let taken = taken_by_others(tx, svc);
    let mut errs = Vec::new();

    if needs_cluster_ip(svc) {
        let requested = str_at(svc, "/spec/clusterIP").to_string();
        let ip = match requested.as_str() {
            "None" => Some("None".to_string()),
            "" => Some(
                pick_cluster_ip(&net.cluster_ip_range, &taken.ips, seed())
                    .ok_or_else(|| {
                        ApiError::internal(
                            "Internal error occurred: failed to allocate a serviceIP: range is full",
                        )
                    })?
                    .to_string(),
            ),
            given => match given.parse::<Ipv4Addr>() {
                Err(_) => {
                    errs.push(FieldError::invalid(
                        "spec.clusterIPs[0]",
                        &json!(given),
                        "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                    ));
                    None
                }
                Ok(_) if old.is_some_and(|o| str_at(o, "/spec/clusterIP") == given) => {
                    Some(given.to_string())
                }
                Ok(addr) if !net.cluster_ip_range.is_usable(addr) => {
                    errs.push(raw_invalid(
                        "spec.clusterIPs",
                        go_strings(&[given]),
                        format!(
                            "failed to allocate IP {given}: the provided IP ({given}) is not in the valid range. The range of valid IPs is {}",
                            net.cluster_ip_range
                        ),
                    ));
                    None
                }
                Ok(addr) if taken.ips.contains(&addr) => {
                    errs.push(raw_invalid(
                        "spec.clusterIPs",
                        go_strings(&[given]),
                        format!("failed to allocate IP {given}: provided IP is already allocated"),
                    ));
                    None
                }
                Ok(_) => Some(given.to_string()),
            },
        };
        families(svc, &mut errs);
        if let Some(ip) = ip {
            let spec = child(svc, "spec");
            spec.insert("clusterIP".into(), json!(ip));
            spec.insert("clusterIPs".into(), json!([ip]));
        }
    } else if let Some(ip) = Some(str_at(svc, "/spec/clusterIP")).filter(|ip| !ip.is_empty()) {
        errs.push(raw_invalid(
            "spec.clusterIPs",
            go_strings(&[ip]),
            "must be empty for ExternalName services",
        ));
    }

    let old_ports: HashSet<i64> = old
        .into_iter()
        .flat_map(|o| {
            o.pointer("/spec/ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|p| p.get("nodePort").and_then(Value::as_i64))
                .chain(
                    o.pointer("/spec/healthCheckNodePort")
                        .and_then(Value::as_i64),
                )
        })
        .collect();
    let mut mine: HashSet<u16> = HashSet::new();
    let check = |field: &str, port: i64, mine: &HashSet<u16>, errs: &mut Vec<FieldError>| {
        let ours = old_ports.contains(&port);
        if !net.node_port_range.contains(port) && !ours {
            errs.push(raw_invalid(
                field,
                port.to_string(),
                format!(
                    "provided port is not in the valid range. The range of valid ports is {}",
                    net.node_port_range
                ),
            ));
            false
        } else if !ours
            && u16::try_from(port).is_ok_and(|p| taken.ports.contains(&p) || mine.contains(&p))
        {
            errs.push(raw_invalid(
                field,
                port.to_string(),
                "provided port is already allocated",
            ));
            false
        } else {
            true
        }
    };

    let svc_type = super::services::svc_type(svc).to_string();
    if matches!(svc_type.as_str(), "NodePort" | "LoadBalancer") {
        let count = svc
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        // Requested ports first, so an allocated one never takes a port asked for later.
        for i in 0..count {
            let port = svc
                .pointer(&format!("/spec/ports/{i}/nodePort"))
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if port != 0 && check(&format!("spec.ports[{i}].nodePort"), port, &mine, &mut errs) {
                mine.insert(port as u16);
            }
        }
        if needs_node_ports(svc) {
            for i in 0..count {
                let ptr = format!("/spec/ports/{i}/nodePort");
                if svc.pointer(&ptr).and_then(Value::as_i64).unwrap_or(0) != 0 {
                    continue;
                }
                let all: HashSet<u16> = taken.ports.union(&mine).copied().collect();
                let p = pick_node_port(net.node_port_range, &all, seed()).ok_or_else(|| {
                    ApiError::internal(
                        "Internal error occurred: failed to allocate a nodePort: range is full",
                    )
                })?;
                mine.insert(p);
                if let Some(port) = svc
                    .pointer_mut(&format!("/spec/ports/{i}"))
                    .and_then(Value::as_object_mut)
                {
                    port.insert("nodePort".into(), json!(p));
                }
            }
        }
    }
    if needs_health_check_port(svc) {
        let hc = svc
            .pointer("/spec/healthCheckNodePort")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if hc != 0 {
            check("spec.healthCheckNodePort", hc, &mine, &mut errs);
        } else {
            let all: HashSet<u16> = taken.ports.union(&mine).copied().collect();
            let p = pick_node_port(net.node_port_range, &all, seed()).ok_or_else(|| {
                ApiError::internal(
                    "Internal error occurred: failed to allocate a nodePort: range is full",
                )
            })?;
            child(svc, "spec").insert("healthCheckNodePort".into(), json!(p));
        }
    }
    Ok(errs)
}

/// `ipFamilies` and `ipFamilyPolicy` of a single-stack IPv4 cluster.
fn families(svc: &mut Value, errs: &mut Vec<FieldError>) {
    let spec = child(svc, "spec");
    match spec.get("ipFamilies").and_then(Value::as_array) {
        None => {
            spec.insert("ipFamilies".into(), json!(["IPv4"]));
        }
        Some(fams) => {
            for (i, f) in fams.iter().enumerate() {
                if f.as_str() != Some("IPv4") {
                    errs.push(FieldError::invalid(
                        format!("spec.ipFamilies[{i}]"),
                        f,
                        "not configured on this cluster",
                    ));
                }
            }
        }
    }
    match spec.get("ipFamilyPolicy").and_then(Value::as_str) {
        None => {
            spec.insert("ipFamilyPolicy".into(), json!("SingleStack"));
        }
        Some("SingleStack" | "PreferDualStack") => {}
        Some(other) => errs.push(FieldError::invalid(
            "spec.ipFamilyPolicy",
            &json!(other),
            "this cluster is not configured for dual-stack services",
        )),
    }
}
