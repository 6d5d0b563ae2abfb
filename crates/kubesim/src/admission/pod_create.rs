//! A new pod: its containers are checked, its spec is defaulted and given a priority, and its
//! status starts fresh with the QoS class.

use serde_json::{Value, json};

use super::pod_defaults::pod_spec_defaults;
use super::priority::resolve_priority;
use super::qos::qos_class;
use super::{FieldError, child, invalid, name_of};
use crate::error::ApiError;
use crate::resources;
use crate::store::Tx;

fn validate_pod_spec(spec: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    match spec.get("containers").and_then(Value::as_array) {
        Some(cs) if !cs.is_empty() => errs.extend(validate_containers(cs, "spec.containers")),
        _ => errs.push(FieldError::required("spec.containers")),
    }
    if let Some(cs) = spec.get("initContainers").and_then(Value::as_array) {
        errs.extend(validate_containers(cs, "spec.initContainers"));
    }
    errs
}

fn validate_containers(cs: &[Value], path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, c) in cs.iter().enumerate() {
        match c.get("name").and_then(Value::as_str) {
            None | Some("") => errs.push(FieldError::required(format!("{path}[{i}].name"))),
            Some(n) if !seen.insert(n) => errs.push(FieldError {
                field: format!("{path}[{i}].name"),
                reason: "FieldValueDuplicate",
                body: format!("Duplicate value: {}", json!(n)),
            }),
            _ => {}
        }
        if c.get("image")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            errs.push(FieldError::required(format!("{path}[{i}].image")));
        }
    }
    errs
}

pub(super) fn pod_create(tx: &mut Tx<'_>, pod: &mut Value) -> Result<(), ApiError> {
    let name = name_of(pod).to_string();
    let errs = validate_pod_spec(pod.get("spec").unwrap_or(&Value::Null));
    if !errs.is_empty() {
        return Err(invalid(&resources::PODS, &name, errs));
    }
    let spec = child(pod, "spec");
    pod_spec_defaults(spec);
    resolve_priority(tx, &name, spec)?;
    let qos = qos_class(spec);
    // A new pod starts with a fresh status, whatever the client sent (as the real strategy does).
    pod.as_object_mut().expect("pod is an object").insert(
        "status".into(),
        json!({"phase": "Pending", "qosClass": qos}),
    );
    Ok(())
}
