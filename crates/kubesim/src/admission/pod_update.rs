//! `ValidatePodUpdate`: the few spec fields an update of a pod may change, and the 422 with a
//! diff of the spec for anything else.

use serde_json::{Map, Value, json};

use super::pod_defaults::pod_spec_defaults;
use super::{FieldError, child, invalid, name_of};
use crate::error::ApiError;
use crate::resources;

const UPDATABLE_POD_SPEC_FIELDS: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// `ValidatePodUpdate` for the main resource.
pub(super) fn pod_update(old: &Value, new: &mut Value) -> Result<(), ApiError> {
    let name = name_of(old).to_string();
    let old_spec = old
        .get("spec")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    {
        let spec = child(new, "spec");
        pod_spec_defaults(spec);
        // The Priority plugin keeps what it resolved on create.
        for k in ["priority", "preemptionPolicy", "priorityClassName"] {
            if !spec.contains_key(k)
                && let Some(v) = old_spec.get(k)
            {
                spec.insert(k.into(), v.clone());
            }
        }
    }
    let new_spec = new
        .get("spec")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut errs = Vec::new();

    // Containers: same count, images may change but must stay set.
    for list in ["containers", "initContainers"] {
        let o = old_spec
            .get(list)
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let n = new_spec
            .get(list)
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if o.len() != n.len() {
            return Err(invalid(
                &resources::PODS,
                &name,
                vec![FieldError::forbidden(
                    format!("spec.{list}"),
                    "pod updates may not add or remove containers",
                )],
            ));
        }
        for (i, c) in n.iter().enumerate() {
            if c.get("image")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                errs.push(FieldError::required(format!("spec.{list}[{i}].image")));
            }
        }
    }

    // activeDeadlineSeconds may be set or lowered, never raised or removed.
    let old_ads = old_spec
        .get("activeDeadlineSeconds")
        .and_then(Value::as_i64);
    let new_ads = new_spec
        .get("activeDeadlineSeconds")
        .and_then(Value::as_i64);
    match (old_ads, new_ads) {
        (Some(_), None) => errs.push(FieldError::invalid(
            "spec.activeDeadlineSeconds",
            &Value::Null,
            "must not update from a positive integer to nil value",
        )),
        (Some(o), Some(n)) if n > o => errs.push(FieldError::invalid(
            "spec.activeDeadlineSeconds",
            &json!(n),
            "must be less than or equal to previous value",
        )),
        _ => {}
    }

    // Tolerations: existing ones may only change their tolerationSeconds.
    let old_tols = old_spec
        .get("tolerations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let new_tols = new_spec
        .get("tolerations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let kept = old_tols.iter().all(|o| {
        new_tols.iter().any(|n| {
            let mut o = normalized(o);
            let n = normalized(n);
            if let (Some(om), Some(nm)) = (o.as_object_mut(), n.as_object()) {
                match nm.get("tolerationSeconds") {
                    Some(s) => om.insert("tolerationSeconds".into(), s.clone()),
                    None => om.remove("tolerationSeconds"),
                };
            }
            o == n
        })
    });
    if !kept {
        errs.push(FieldError::forbidden(
            "spec.tolerations",
            "existing toleration can not be modified except its tolerationSeconds",
        ));
    }

    // Scheduling gates may only be removed.
    let old_gates = old_spec
        .get("schedulingGates")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for g in new_spec
        .get("schedulingGates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if !old_gates.contains(g) {
            let gname = g.get("name").and_then(Value::as_str).unwrap_or("");
            errs.push(FieldError::forbidden(
                "spec.schedulingGates",
                format!("only deletion is allowed, but found new scheduling gate '{gname}'"),
            ));
        }
    }

    // Everything else must be unchanged: overwrite the updatable fields with the old values
    // and compare.
    let mut munged = new_spec.clone();
    for list in ["containers", "initContainers"] {
        let old_list = old_spec.get(list).and_then(Value::as_array);
        if let (Some(cs), Some(old_list)) =
            (munged.get_mut(list).and_then(Value::as_array_mut), old_list)
        {
            for (c, oc) in cs.iter_mut().zip(old_list) {
                if let Some(c) = c.as_object_mut() {
                    match oc.get("image") {
                        Some(img) => c.insert("image".into(), img.clone()),
                        None => c.remove("image"),
                    };
                }
            }
        }
    }
    for k in ["activeDeadlineSeconds", "tolerations", "schedulingGates"] {
        match old_spec.get(k) {
            Some(v) => munged.insert(k.into(), v.clone()),
            None => munged.remove(k),
        };
    }
    let old_grace = old_spec
        .get("terminationGracePeriodSeconds")
        .and_then(Value::as_i64);
    if old_grace.is_some_and(|g| g < 0)
        && munged
            .get("terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
            == Some(1)
    {
        munged.insert("terminationGracePeriodSeconds".into(), json!(old_grace));
    }
    let munged = Value::Object(munged);
    let old_spec_v = Value::Object(old_spec);
    if normalized(&munged) != normalized(&old_spec_v) {
        errs.push(FieldError::forbidden(
            "spec",
            format!(
                "pod updates may not change fields other than {UPDATABLE_POD_SPEC_FIELDS}\n{}",
                spec_diff(&old_spec_v, &munged)
            ),
        ));
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(invalid(&resources::PODS, &name, errs))
    }
}

/// Semantic equality as apimachinery sees it: nulls, empty lists and empty maps are the same
/// as absent.
fn normalized(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), normalized(v)))
                .filter(|(_, v)| !is_empty_value(v))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalized).collect()),
        other => other.clone(),
    }
}

fn is_empty_value(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

/// A short cmp.Diff-like rendering of the top-level spec fields that differ.
fn spec_diff(old: &Value, new: &Value) -> String {
    let (o, n) = (normalized(old), normalized(new));
    let empty = Map::new();
    let (om, nm) = (
        o.as_object().unwrap_or(&empty),
        n.as_object().unwrap_or(&empty),
    );
    let mut keys: Vec<&String> = om.keys().chain(nm.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out = String::from("  core.PodSpec{\n");
    for k in keys {
        let (a, b) = (om.get(k), nm.get(k));
        if a == b {
            continue;
        }
        let field = go_field_name(k);
        if let Some(a) = a {
            out.push_str(&format!("- \t{field}: {a},\n"));
        }
        if let Some(b) = b {
            out.push_str(&format!("+ \t{field}: {b},\n"));
        }
    }
    out.push_str("  }\n");
    out
}

fn go_field_name(json_name: &str) -> String {
    let mut c = json_name.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_updates_allow_only_added_tolerations() {
        let mut old = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "x:1"}]}});
        pod_spec_defaults(child(&mut old, "spec"));
        let mut added = old.clone();
        if let Some(t) = added["spec"]["tolerations"].as_array_mut() {
            t.push(json!({"key": "k", "operator": "Exists"}));
        }
        assert!(pod_update(&old, &mut added).is_ok());

        let mut removed = old.clone();
        if let Some(t) = removed["spec"]["tolerations"].as_array_mut() {
            t.remove(0);
        }
        // The removed default toleration is re-added by defaulting, so removing it is a no-op...
        assert!(pod_update(&old, &mut removed).is_ok());
        // ...but removing a user toleration is not.
        let mut removed_user = old.clone();
        removed_user["spec"]["tolerations"] = json!([]);
        let e = pod_update(&added, &mut removed_user).unwrap_err();
        assert_eq!(e.code, 422);
        assert!(
            e.message
                .contains("spec.tolerations: Forbidden: existing toleration can not be modified"),
            "{}",
            e.message
        );

        let mut image = old.clone();
        image["spec"]["containers"][0]["image"] = json!("x:2");
        assert!(pod_update(&old, &mut image).is_ok());

        let mut node = old.clone();
        node["spec"]["nodeName"] = json!("n1");
        let e = pod_update(&old, &mut node).unwrap_err();
        assert!(e.message.starts_with("Pod \"p\" is invalid: spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`"), "{}", e.message);
    }
}
