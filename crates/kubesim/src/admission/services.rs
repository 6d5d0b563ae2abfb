//! Service defaults, validation and the update rules of the Service registry, as the real API
//! server applies them
//! (<https://kubernetes.io/docs/concepts/services-networking/service/>,
//! <https://kubernetes.io/docs/reference/kubernetes-api/service-resources/service-v1/>):
//!
//! - defaults: `type: ClusterIP`, `sessionAffinity: None` (ClientIP gets a 10800 s timeout),
//!   `internalTrafficPolicy: Cluster` (not for ExternalName), `externalTrafficPolicy: Cluster`
//!   for NodePort and LoadBalancer, `allocateLoadBalancerNodePorts: true` for LoadBalancer,
//!   port `protocol: TCP` and `targetPort` = `port` when absent, `status.loadBalancer: {}`;
//! - validation of the type, ports and traffic policies, with apimachinery's messages;
//! - on update, allocated values the client left out are kept (a `kubectl apply` of a
//!   manifest without `clusterIP` or `nodePort` keeps them), and values that no longer apply
//!   after a type change are dropped when the client did not change them (so their addresses
//!   and ports are free again), as the registry's `patchAllocatedValues` and
//!   `dropTypeDependentFields` do.
//!
//! ClusterIPs and node ports themselves are handed out by [`super::service_alloc`].

use serde_json::{Map, Value, json};

use super::errors::{FieldError, invalid};
use super::service_alloc::allocate;
use super::{child, name_of};
use crate::error::ApiError;
use crate::resources::ResourceDef;
use crate::store::Tx;

const TYPES: [&str; 4] = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const PROTOCOLS: [&str; 3] = ["SCTP", "TCP", "UDP"];

/// Defaults, validation and allocation for a new Service.
pub(super) fn service_create(
    tx: &mut Tx<'_>,
    r: &ResourceDef,
    svc: &mut Value,
) -> Result<(), ApiError> {
    defaults(svc);
    finish(tx, r, svc, None)?;
    child(svc, "status")
        .entry("loadBalancer")
        .or_insert_with(|| json!({}));
    Ok(())
}

/// The registry's update path: keep allocated values, drop type-dependent ones, default,
/// validate, allocate what is new.
pub(super) fn service_update(
    tx: &mut Tx<'_>,
    r: &ResourceDef,
    old: &Value,
    new: &mut Value,
) -> Result<(), ApiError> {
    patch_allocated_values(old, new);
    drop_type_dependent_fields(old, new);
    defaults(new);
    let mut errs = Vec::new();
    if needs_cluster_ip(old) && needs_cluster_ip(new) {
        let (o, n) = (
            str_at(old, "/spec/clusterIP"),
            str_at(new, "/spec/clusterIP"),
        );
        if o != n {
            errs.push(FieldError::invalid(
                "spec.clusterIP",
                &json!(n),
                "field is immutable",
            ));
        }
    }
    if !errs.is_empty() {
        return Err(invalid(r, name_of(new), errs));
    }
    finish(tx, r, new, Some(old))
}

fn finish(
    tx: &mut Tx<'_>,
    r: &ResourceDef,
    svc: &mut Value,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    let errs = validate(svc);
    if !errs.is_empty() {
        return Err(invalid(r, name_of(svc), errs));
    }
    let errs = allocate(tx, svc, old)?;
    if !errs.is_empty() {
        return Err(invalid(r, name_of(svc), errs));
    }
    Ok(())
}

pub(super) fn str_at<'v>(v: &'v Value, ptr: &str) -> &'v str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

pub(super) fn svc_type(svc: &Value) -> &str {
    match str_at(svc, "/spec/type") {
        "" => "ClusterIP",
        t => t,
    }
}

/// Everything but ExternalName gets a ClusterIP (or is headless).
pub(super) fn needs_cluster_ip(svc: &Value) -> bool {
    svc_type(svc) != "ExternalName"
}

/// NodePort, and LoadBalancer unless `allocateLoadBalancerNodePorts: false`.
pub(super) fn needs_node_ports(svc: &Value) -> bool {
    match svc_type(svc) {
        "NodePort" => true,
        "LoadBalancer" => {
            svc.pointer("/spec/allocateLoadBalancerNodePorts")
                .and_then(Value::as_bool)
                != Some(false)
        }
        _ => false,
    }
}

/// A LoadBalancer with `externalTrafficPolicy: Local` has a health check node port.
pub(super) fn needs_health_check_port(svc: &Value) -> bool {
    svc_type(svc) == "LoadBalancer" && str_at(svc, "/spec/externalTrafficPolicy") == "Local"
}

fn defaults(svc: &mut Value) {
    let spec = child(svc, "spec");
    spec.entry("type").or_insert_with(|| json!("ClusterIP"));
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    spec.entry("sessionAffinity")
        .or_insert_with(|| json!("None"));
    if spec.get("sessionAffinity").and_then(Value::as_str) == Some("ClientIP") {
        let cfg = spec
            .entry("sessionAffinityConfig")
            .or_insert_with(|| json!({}));
        if let Some(cfg) = cfg.as_object_mut() {
            let client = cfg.entry("clientIP").or_insert_with(|| json!({}));
            if let Some(c) = client.as_object_mut() {
                c.entry("timeoutSeconds").or_insert_with(|| json!(10800));
            }
        }
    }
    if ty != "ExternalName" {
        spec.entry("internalTrafficPolicy")
            .or_insert_with(|| json!("Cluster"));
    }
    if ty == "NodePort" || ty == "LoadBalancer" {
        spec.entry("externalTrafficPolicy")
            .or_insert_with(|| json!("Cluster"));
    }
    if ty == "LoadBalancer" {
        spec.entry("allocateLoadBalancerNodePorts")
            .or_insert_with(|| json!(true));
    }
    // A clusterIP given alone is the first of clusterIPs.
    if let Some(ip) = spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .filter(|ip| !ip.is_empty())
        .map(str::to_string)
        && spec
            .get("clusterIPs")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
    {
        spec.insert("clusterIPs".into(), json!([ip]));
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            p.entry("protocol").or_insert_with(|| json!("TCP"));
            let unset = match p.get("targetPort") {
                None | Some(Value::Null) => true,
                Some(Value::Number(n)) => n.as_i64() == Some(0),
                Some(Value::String(s)) => s.is_empty(),
                Some(_) => false,
            };
            if unset && let Some(port) = p.get("port").cloned() {
                p.insert("targetPort".into(), port);
            }
        }
    }
}

fn ports(svc: &Value) -> &[Value] {
    svc.pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn not_supported(field: String, value: &str, supported: &[&str]) -> FieldError {
    let list = supported
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ");
    FieldError {
        field,
        reason: "FieldValueNotSupported",
        body: format!("Unsupported value: \"{value}\": supported values: {list}"),
    }
}

fn duplicate(field: String, value: &Value) -> FieldError {
    FieldError {
        field,
        reason: "FieldValueDuplicate",
        body: format!("Duplicate value: {value}"),
    }
}

fn validate(svc: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let ty = svc_type(svc);
    if !TYPES.contains(&ty) {
        errs.push(not_supported("spec.type".into(), ty, &TYPES));
        return errs;
    }
    let headless = str_at(svc, "/spec/clusterIP") == "None";
    if ty == "ExternalName" && str_at(svc, "/spec/externalName").is_empty() {
        errs.push(FieldError::required("spec.externalName"));
    }
    if headless && matches!(ty, "NodePort" | "LoadBalancer") {
        errs.push(FieldError::invalid(
            "spec.clusterIPs[0]",
            &json!("None"),
            format!("may not be set to 'None' for {ty} services"),
        ));
    }
    let ps = ports(svc);
    if ps.is_empty() && ty != "ExternalName" && !headless {
        errs.push(FieldError::required("spec.ports"));
    }
    let mut names: Vec<&str> = Vec::new();
    let mut port_protocols: Vec<(i64, &str)> = Vec::new();
    for (i, p) in ps.iter().enumerate() {
        let at = |f: &str| format!("spec.ports[{i}].{f}");
        let Some(p) = p.as_object() else {
            errs.push(FieldError::invalid(
                format!("spec.ports[{i}]"),
                p,
                "must be an object",
            ));
            continue;
        };
        let name = p.get("name").and_then(Value::as_str).unwrap_or("");
        if ps.len() > 1 && name.is_empty() {
            errs.push(FieldError::required(at("name")));
        } else if !name.is_empty() {
            if names.contains(&name) {
                errs.push(duplicate(at("name"), &json!(name)));
            }
            names.push(name);
        }
        let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
        if !(1..=65535).contains(&port) {
            errs.push(FieldError::invalid(
                at("port"),
                p.get("port").unwrap_or(&json!(0)),
                "must be between 1 and 65535, inclusive",
            ));
        }
        let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
        if !PROTOCOLS.contains(&proto) {
            errs.push(not_supported(at("protocol"), proto, &PROTOCOLS));
        }
        if port_protocols.contains(&(port, proto)) {
            errs.push(duplicate(
                format!("spec.ports[{i}]"),
                &json!({"port": port, "protocol": proto}),
            ));
        }
        port_protocols.push((port, proto));
        if let Some(Value::Number(n)) = p.get("targetPort")
            && !n.as_i64().is_some_and(|t| (1..=65535).contains(&t))
        {
            errs.push(FieldError::invalid(
                at("targetPort"),
                &Value::Number(n.clone()),
                "must be between 1 and 65535, inclusive",
            ));
        }
        if ty == "ClusterIP" && p.get("nodePort").and_then(Value::as_i64).unwrap_or(0) != 0 {
            errs.push(FieldError::forbidden(
                at("nodePort"),
                "may not be used when `type` is 'ClusterIP'",
            ));
        }
    }
    let etp = str_at(svc, "/spec/externalTrafficPolicy");
    if !etp.is_empty() {
        if !matches!(ty, "NodePort" | "LoadBalancer") {
            errs.push(FieldError::invalid(
                "spec.externalTrafficPolicy",
                &json!(etp),
                "may only be set when `type` is 'NodePort' or 'LoadBalancer'",
            ));
        } else if !matches!(etp, "Cluster" | "Local") {
            errs.push(not_supported(
                "spec.externalTrafficPolicy".into(),
                etp,
                &["Cluster", "Local"],
            ));
        }
    }
    let hc = svc
        .pointer("/spec/healthCheckNodePort")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if hc != 0 && !needs_health_check_port(svc) {
        errs.push(FieldError::invalid(
            "spec.healthCheckNodePort",
            &json!(hc),
            "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
        ));
    }
    errs
}

/// Keep the ClusterIPs, node ports and health check port the client did not send again.
fn patch_allocated_values(old: &Value, new: &mut Value) {
    if needs_cluster_ip(old) && needs_cluster_ip(new) {
        let spec = child(new, "spec");
        if spec
            .get("clusterIP")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
            && let Some(ip) = old.pointer("/spec/clusterIP")
        {
            spec.insert("clusterIP".into(), ip.clone());
        }
        if spec
            .get("clusterIPs")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
            && let Some(ips) = old.pointer("/spec/clusterIPs")
        {
            spec.insert("clusterIPs".into(), ips.clone());
        }
    }
    if needs_node_ports(old) && needs_node_ports(new) {
        let node_port = |p: &Value| p.get("nodePort").and_then(Value::as_i64).unwrap_or(0);
        let new_used: Vec<i64> = ports(new).iter().map(node_port).collect();
        let by_name: Map<String, Value> = ports(old)
            .iter()
            .map(|p| {
                (
                    p.get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    json!(node_port(p)),
                )
            })
            .collect();
        if let Some(ps) = child(new, "spec")
            .get_mut("ports")
            .and_then(Value::as_array_mut)
        {
            for p in ps.iter_mut().filter_map(Value::as_object_mut) {
                if p.get("nodePort").and_then(Value::as_i64).unwrap_or(0) != 0 {
                    continue;
                }
                let name = p.get("name").and_then(Value::as_str).unwrap_or("");
                if let Some(v) = by_name.get(name).and_then(Value::as_i64)
                    && v != 0
                    && !new_used.contains(&v)
                {
                    p.insert("nodePort".into(), json!(v));
                }
            }
        }
    }
    if needs_health_check_port(old)
        && needs_health_check_port(new)
        && new
            .pointer("/spec/healthCheckNodePort")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            == 0
        && let Some(hc) = old.pointer("/spec/healthCheckNodePort")
    {
        child(new, "spec").insert("healthCheckNodePort".into(), hc.clone());
    }
}

/// Blank fields the new type does not use, where the client did not change them.
fn drop_type_dependent_fields(old: &Value, new: &mut Value) {
    let same = |ptr: &str, new: &Value| old.pointer(ptr) == new.pointer(ptr);
    if !needs_cluster_ip(new)
        && same("/spec/clusterIP", new)
        && same("/spec/clusterIPs", new)
        && same("/spec/ipFamilies", new)
    {
        let spec = child(new, "spec");
        for k in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            spec.remove(k);
        }
    }
    let node_ports = |v: &Value| -> Vec<Value> {
        ports(v)
            .iter()
            .map(|p| p.get("nodePort").cloned().unwrap_or(Value::Null))
            .collect()
    };
    if !needs_node_ports(new)
        && node_ports(old) == node_ports(new)
        && let Some(ps) = child(new, "spec")
            .get_mut("ports")
            .and_then(Value::as_array_mut)
    {
        for p in ps.iter_mut().filter_map(Value::as_object_mut) {
            p.remove("nodePort");
        }
    }
    if !needs_health_check_port(new) && same("/spec/healthCheckNodePort", new) {
        child(new, "spec").remove("healthCheckNodePort");
    }
    let ty = svc_type(new).to_string();
    if ty != "LoadBalancer" && same("/spec/allocateLoadBalancerNodePorts", new) {
        child(new, "spec").remove("allocateLoadBalancerNodePorts");
    }
    if !matches!(ty.as_str(), "NodePort" | "LoadBalancer")
        && same("/spec/externalTrafficPolicy", new)
    {
        child(new, "spec").remove("externalTrafficPolicy");
    }
    if ty == "ExternalName" && same("/spec/internalTrafficPolicy", new) {
        child(new, "spec").remove("internalTrafficPolicy");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_what_the_api_server_fills() {
        let mut svc = json!({"metadata": {"name": "web"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}});
        defaults(&mut svc);
        assert_eq!(
            svc["spec"],
            json!({"type": "NodePort", "sessionAffinity": "None", "internalTrafficPolicy": "Cluster",
                   "externalTrafficPolicy": "Cluster", "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}]})
        );
    }

    #[test]
    fn validation_names_each_bad_field() {
        let mut svc = json!({"metadata": {"name": "web"}, "spec": {"ports": [{"port": 0}, {"name": "b", "port": 81, "nodePort": 30001}]}});
        defaults(&mut svc);
        let fields: Vec<String> = validate(&svc).into_iter().map(|e| e.to_string()).collect();
        assert_eq!(
            fields,
            [
                "spec.ports[0].name: Required value",
                "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
                "spec.ports[0].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive",
                "spec.ports[1].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
            ]
        );
    }

    #[test]
    fn an_update_keeps_allocated_values_the_client_left_out() {
        let old = json!({"spec": {"type": "NodePort", "clusterIP": "10.100.9.9", "clusterIPs": ["10.100.9.9"],
                                  "ports": [{"name": "http", "port": 80, "nodePort": 31000}]}});
        let mut new =
            json!({"spec": {"type": "NodePort", "ports": [{"name": "http", "port": 80}]}});
        patch_allocated_values(&old, &mut new);
        assert_eq!(new["spec"]["clusterIP"], "10.100.9.9");
        assert_eq!(new["spec"]["ports"][0]["nodePort"], 31000);
    }

    #[test]
    fn switching_to_cluster_ip_drops_unchanged_node_ports() {
        let old = json!({"spec": {"type": "NodePort", "externalTrafficPolicy": "Cluster",
                                  "ports": [{"port": 80, "nodePort": 31000}]}});
        let mut new = old.clone();
        new["spec"]["type"] = json!("ClusterIP");
        drop_type_dependent_fields(&old, &mut new);
        assert_eq!(new["spec"]["ports"][0].get("nodePort"), None);
        assert_eq!(new["spec"].get("externalTrafficPolicy"), None);
    }
}
