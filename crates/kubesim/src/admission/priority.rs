//! Priority classes: the Priority admission plugin that resolves a new pod's `spec.priority`,
//! and the PriorityClass rules (one global default, an immutable value).

use serde_json::{Map, Value, json};

use super::{FieldError, forbidden, invalid, name_of};
use crate::error::ApiError;
use crate::resources::{self, ResourceDef};
use crate::store::{ListOptions, Tx};

/// The Priority admission plugin on create.
pub(super) fn resolve_priority(
    tx: &Tx<'_>,
    pod_name: &str,
    spec: &mut Map<String, Value>,
) -> Result<(), ApiError> {
    let class_name = spec
        .get("priorityClassName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let (class_name, value, policy) = if class_name.is_empty() {
        // The global default with the lowest value (there should be one at most).
        let default = tx
            .list(&resources::PRIORITYCLASSES, None, &ListOptions::default())
            .into_iter()
            .filter(|pc| pc.get("globalDefault").and_then(Value::as_bool) == Some(true))
            .min_by_key(|pc| pc.get("value").and_then(Value::as_i64).unwrap_or(0));
        match default {
            Some(pc) => (
                name_of(&pc).to_string(),
                pc.get("value").and_then(Value::as_i64).unwrap_or(0),
                pc.get("preemptionPolicy").cloned(),
            ),
            None => (String::new(), 0, Some(json!("PreemptLowerPriority"))),
        }
    } else {
        let Some(pc) = tx.try_get(&resources::PRIORITYCLASSES, None, &class_name) else {
            return Err(forbidden(
                &resources::PODS,
                pod_name,
                format!("no PriorityClass with name {class_name} was found"),
            ));
        };
        (
            class_name,
            pc.get("value").and_then(Value::as_i64).unwrap_or(0),
            pc.get("preemptionPolicy").cloned(),
        )
    };
    if let Some(given) = spec.get("priority").and_then(Value::as_i64)
        && given != value
    {
        return Err(forbidden(
            &resources::PODS,
            pod_name,
            format!(
                "the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {value} from the given PriorityClass name"
            ),
        ));
    }
    if !class_name.is_empty() {
        spec.insert("priorityClassName".into(), json!(class_name));
    }
    spec.insert("priority".into(), json!(value));
    if let Some(policy) = policy.filter(|p| p.is_string()) {
        if let Some(given) = spec.get("preemptionPolicy").filter(|g| **g != policy) {
            return Err(forbidden(
                &resources::PODS,
                pod_name,
                format!(
                    "the string value of PreemptionPolicy ({}) must not be provided in pod spec; priority admission controller computed {} from the given PriorityClass name",
                    given.as_str().unwrap_or(""),
                    policy.as_str().unwrap_or("")
                ),
            ));
        }
        spec.insert("preemptionPolicy".into(), policy);
    }
    Ok(())
}

/// PriorityClass defaults, the single global default, and the immutable value.
pub(super) fn priority_class_write(
    tx: &Tx<'_>,
    r: &'static ResourceDef,
    old: Option<&Value>,
    pc: &mut Value,
) -> Result<(), ApiError> {
    let name = name_of(pc).to_string();
    let m = pc.as_object_mut().expect("objects reach admission as maps");
    m.entry("preemptionPolicy")
        .or_insert_with(|| json!("PreemptLowerPriority"));
    if m.get("value").and_then(Value::as_i64).is_none() {
        return Err(invalid(r, &name, vec![FieldError::required("value")]));
    }
    if let Some(old) = old {
        let mut errs = Vec::new();
        for k in ["value", "preemptionPolicy"] {
            if old.get(k) != m.get(k) {
                errs.push(FieldError::forbidden(k, "may not be changed in an update."));
            }
        }
        if !errs.is_empty() {
            return Err(invalid(r, &name, errs));
        }
    }
    if m.get("globalDefault").and_then(Value::as_bool) == Some(true) {
        let other = tx
            .list(&resources::PRIORITYCLASSES, None, &ListOptions::default())
            .into_iter()
            .find(|o| {
                o.get("globalDefault").and_then(Value::as_bool) == Some(true) && name_of(o) != name
            });
        if let Some(other) = other {
            return Err(forbidden(
                r,
                &name,
                format!(
                    "PriorityClass {} is already marked as default. Only one default can exist",
                    name_of(&other)
                ),
            ));
        }
    }
    Ok(())
}
