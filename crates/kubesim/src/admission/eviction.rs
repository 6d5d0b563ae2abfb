//! The eviction subresource: the PodDisruptionBudget check with the real 429, the budget
//! decrement, and the graceful delete.

use serde_json::{Map, Value, json};

use super::delete::delete_options_from;
use super::{child, forbidden, name_of, set_condition};
use crate::clock::Clock;
use crate::error::ApiError;
use crate::resources;
use crate::selectors::LabelSelector;
use crate::store::{DeleteOptions, ListOptions, Tx, meta_str};

const PDB_VIOLATION: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

fn is_pod_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| {
            c.get("type").and_then(Value::as_str) == Some("Ready")
                && c.get("status").and_then(Value::as_str) == Some("True")
        })
}

/// Pods whose disruption has already happened (terminal, pending, terminating) are deleted
/// without looking at budgets.
fn can_ignore_pdb(pod: &Value) -> bool {
    matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed" | "Pending")
    ) || meta_str(pod, "deletionTimestamp").is_some()
}

fn status_i64(pdb: &Value, field: &str) -> i64 {
    pdb.get("status")
        .and_then(|s| s.get(field))
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

fn too_many_requests(message: String) -> ApiError {
    ApiError::too_many_requests(
        PDB_VIOLATION,
        json!({"reason": "DisruptionBudget", "message": message}),
    )
}

/// POST pods/{name}/eviction, following the real `EvictionREST.Create`: terminal, pending and
/// terminating pods go without a budget check; otherwise the one PDB matching the pod must
/// allow a disruption (more than one is a 500), and is decremented with the pod recorded in
/// `status.disruptedPods`; unready pods may go without spending budget when the PDB's
/// unhealthyPodEvictionPolicy or its current health allows. The pod then gets the
/// DisruptionTarget condition and a graceful delete with the Eviction's deleteOptions.
/// (Dry-run is handled by the caller rolling the transaction back.)
pub fn evict(tx: &mut Tx<'_>, ns: &str, name: &str, eviction: &Value) -> Result<(), ApiError> {
    let opts = match eviction.get("deleteOptions") {
        Some(o) if o.is_object() => delete_options_from(o)?,
        _ => DeleteOptions::default(),
    };
    let pod = tx.get(&resources::PODS, Some(ns), name)?;
    check_preconditions(&pod, &opts, name)?;
    if !can_ignore_pdb(&pod) {
        let pdbs = matching_pdbs(tx, ns, &pod);
        if pdbs.len() > 1 {
            return Err(ApiError::new(
                500,
                "",
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            ));
        }
        if let Some(pdb) = pdbs.into_iter().next() {
            let unhealthy_ok = !is_pod_ready(&pod)
                && (pdb
                    .pointer("/spec/unhealthyPodEvictionPolicy")
                    .and_then(Value::as_str)
                    == Some("AlwaysAllow")
                    || (status_i64(&pdb, "currentHealthy") >= status_i64(&pdb, "desiredHealthy")
                        && status_i64(&pdb, "desiredHealthy") > 0));
            if !unhealthy_ok {
                check_and_decrement(tx, ns, name, &pdb)?;
            }
        }
    }
    add_disruption_condition(tx, ns, name)?;
    let del = DeleteOptions {
        precondition_uid: None,
        precondition_rv: None,
        dry_run: false,
        ..opts
    };
    tx.delete(&resources::PODS, Some(ns), name, &del)?;
    Ok(())
}

fn check_preconditions(pod: &Value, opts: &DeleteOptions, name: &str) -> Result<(), ApiError> {
    if let Some(uid) = &opts.precondition_uid
        && meta_str(pod, "uid") != Some(uid.as_str())
    {
        return Err(ApiError::conflict("", "pods", name).with_message(format!(
            "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
            meta_str(pod, "uid").unwrap_or("")
        )));
    }
    if let Some(rv) = &opts.precondition_rv
        && meta_str(pod, "resourceVersion") != Some(rv.as_str())
    {
        return Err(ApiError::conflict("", "pods", name).with_message(format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                meta_str(pod, "resourceVersion").unwrap_or("")
            )));
    }
    Ok(())
}

/// PDBs in the pod's namespace whose selector matches the pod. A nil or empty selector matches
/// nothing here (unlike elsewhere in policy/v1), and a pod without labels has none.
fn matching_pdbs(tx: &Tx<'_>, ns: &str, pod: &Value) -> Vec<Value> {
    let labels = pod.pointer("/metadata/labels").and_then(Value::as_object);
    if labels.is_none_or(Map::is_empty) {
        return Vec::new();
    }
    tx.list(
        &resources::PODDISRUPTIONBUDGETS,
        Some(ns),
        &ListOptions::default(),
    )
    .into_iter()
    .filter(|pdb| {
        let Some(sel) = pdb.pointer("/spec/selector").filter(|s| !s.is_null()) else {
            return false;
        };
        match LabelSelector::from_object(sel) {
            Ok(s) => !s.is_empty() && s.matches(labels),
            Err(_) => false,
        }
    })
    .collect()
}

fn check_and_decrement(
    tx: &mut Tx<'_>,
    ns: &str,
    pod_name: &str,
    pdb: &Value,
) -> Result<(), ApiError> {
    let pdb_name = name_of(pdb).to_string();
    let generation = pdb
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if status_i64(pdb, "observedGeneration") < generation {
        return Err(too_many_requests(format!(
            "The disruption budget {pdb_name} is still being processed by the server."
        )));
    }
    let allowed = status_i64(pdb, "disruptionsAllowed");
    if allowed < 0 {
        return Err(forbidden(
            &resources::PODDISRUPTIONBUDGETS,
            &pdb_name,
            "pdb disruptions allowed is negative",
        ));
    }
    let disrupted = pdb
        .pointer("/status/disruptedPods")
        .and_then(Value::as_object)
        .map_or(0, Map::len);
    if disrupted > 2000 {
        return Err(forbidden(
            &resources::PODDISRUPTIONBUDGETS,
            &pdb_name,
            "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
        ));
    }
    if allowed == 0 {
        return Err(too_many_requests(format!(
            "The disruption budget {pdb_name} needs {} healthy pods and has {} currently",
            status_i64(pdb, "desiredHealthy"),
            status_i64(pdb, "currentHealthy")
        )));
    }
    let now = Clock::now_rfc3339();
    tx.modify(&resources::PODDISRUPTIONBUDGETS, Some(ns), &pdb_name, |p| {
        let status = child(p, "status");
        status.insert("disruptionsAllowed".into(), json!(allowed - 1));
        let dp = status.entry("disruptedPods").or_insert_with(|| json!({}));
        if !dp.is_object() {
            *dp = json!({});
        }
        dp[pod_name] = json!(now);
        if allowed - 1 == 0 {
            set_condition(
                status,
                json!({"type": "DisruptionAllowed", "status": "False", "reason": "InsufficientPods", "message": "", "observedGeneration": generation}),
                &now,
            );
        }
        Ok(())
    })?;
    Ok(())
}

fn add_disruption_condition(tx: &mut Tx<'_>, ns: &str, name: &str) -> Result<(), ApiError> {
    let now = Clock::now_rfc3339();
    tx.modify(&resources::PODS, Some(ns), name, |p| {
        set_condition(
            child(p, "status"),
            json!({"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting"}),
            &now,
        );
        Ok(())
    })?;
    Ok(())
}
