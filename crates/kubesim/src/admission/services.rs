//! Service defaults: type, session affinity, port protocols and target ports, and a cluster IP
//! for a service that is neither headless nor an ExternalName.

use serde_json::{Value, json};

use super::child;

pub(super) fn service_defaults(svc: &mut Value) {
    let spec = child(svc, "spec");
    spec.entry("type").or_insert_with(|| json!("ClusterIP"));
    spec.entry("sessionAffinity")
        .or_insert_with(|| json!("None"));
    let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
    let is_external_name = spec.get("type").and_then(Value::as_str) == Some("ExternalName");
    if !headless
        && !is_external_name
        && spec
            .get("clusterIP")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        // A free-enough address from the default EKS service range.
        let b = uuid::Uuid::new_v4().into_bytes();
        let ip = format!("10.100.{}.{}", b[0], b[1].max(1));
        spec.insert("clusterIP".into(), json!(ip));
        spec.insert("clusterIPs".into(), json!([ip]));
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            p.entry("protocol").or_insert_with(|| json!("TCP"));
            if let Some(port) = p.get("port").cloned() {
                p.entry("targetPort").or_insert(port);
            }
        }
    }
}
