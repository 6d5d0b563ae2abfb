//! The binding subresource: assigning a node to a pod that has none.

use serde_json::{Value, json};

use super::{FieldError, child, invalid, set_condition};
use crate::clock::Clock;
use crate::error::ApiError;
use crate::resources;
use crate::store::{Tx, meta_str};

/// POST pods/{name}/binding: bind a pod that has no node yet (409 otherwise), recording the
/// PodScheduled condition and the Binding's annotations.
pub fn bind(tx: &mut Tx<'_>, ns: &str, name: &str, binding: &Value) -> Result<(), ApiError> {
    if let Some(bname) = meta_str(binding, "name").filter(|n| !n.is_empty())
        && bname != name
    {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Binding object",
        ));
    }
    let target = binding.get("target").unwrap_or(&Value::Null);
    let node = target
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut errs = Vec::new();
    if node.is_empty() {
        errs.push(FieldError::required("target.name"));
    }
    if let Some(kind) = target
        .get("kind")
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty() && *k != "Node")
    {
        errs.push(FieldError::invalid(
            "target.kind",
            &json!(kind),
            "must be empty or 'Node'",
        ));
    }
    if !errs.is_empty() {
        let mut e = invalid(&resources::PODS, name, errs);
        e.message = e.message.replacen("Pod \"", "Binding \"", 1);
        return Err(e);
    }
    let pod = tx.get(&resources::PODS, Some(ns), name)?;
    let conflict = |msg: String| {
        ApiError::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on pods/binding \"{name}\": {msg}"),
        )
        .with_details(json!({"name": name, "kind": "pods/binding"}))
    };
    if let Some(uid) = meta_str(binding, "uid").filter(|u| !u.is_empty())
        && meta_str(&pod, "uid") != Some(uid)
    {
        return Err(conflict(format!(
            "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
            meta_str(&pod, "uid").unwrap_or("")
        )));
    }
    if meta_str(&pod, "deletionTimestamp").is_some() {
        return Err(conflict(format!(
            "pod {name} is being deleted, cannot be assigned to a host"
        )));
    }
    if let Some(current) = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        return Err(conflict(format!(
            "pod {name} is already assigned to node \"{current}\""
        )));
    }
    if pod
        .pointer("/spec/schedulingGates")
        .and_then(Value::as_array)
        .is_some_and(|g| !g.is_empty())
    {
        return Err(conflict(format!(
            "pod {name} has non-empty .spec.schedulingGates"
        )));
    }
    let annotations = binding
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .cloned();
    let now = Clock::now_rfc3339();
    tx.modify(&resources::PODS, Some(ns), name, |p| {
        child(p, "spec").insert("nodeName".into(), json!(node));
        if let Some(a) = annotations {
            let meta = child(p, "metadata");
            let ann = meta.entry("annotations").or_insert_with(|| json!({}));
            if let Some(ann) = ann.as_object_mut() {
                ann.extend(a);
            }
        }
        set_condition(
            child(p, "status"),
            json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null}),
            &now,
        );
        Ok(())
    })?;
    Ok(())
}
