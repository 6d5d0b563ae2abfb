//! What the API server itself enforces and defaults on writes, with the real server's messages:
//!
//! - pods on create: field defaults (restart policy, grace period, scheduler, pull policy,
//!   requests from limits), `spec.priority` from the PriorityClass admission plugin (403 for an
//!   unknown class), the DefaultTolerationSeconds tolerations, a fresh `status` with the QoS class;
//! - pods on update: the spec is immutable except container images, `activeDeadlineSeconds`,
//!   *added* tolerations and a few special cases (422 otherwise); `spec.nodeName` moves only
//!   through the binding subresource;
//! - PriorityClasses (one global default, immutable value) and workload defaults;
//! - the namespace lifecycle (finalizer, Terminating, no new content while terminating);
//! - Services: defaults, validation, ClusterIP and node port allocation; Ingress and
//!   EndpointSlice defaults and validation;
//! - the eviction subresource (PodDisruptionBudget check with the real 429, budget decrement,
//!   graceful delete) and the binding subresource.
//!
//! Everything here runs inside a store transaction, so a rejected write leaves nothing behind.
//!
//! `errors` renders the rejections. Pods: `pod_defaults`, `pod_create`, `pod_update`,
//! `priority` and `qos`. Other kinds: `namespaces`, `services` with `service_alloc`,
//! `networking` (Ingress, EndpointSlice), `workloads`, `pdb` (and `priority` for
//! PriorityClasses). Deletes and the pod subresources: `delete`, `eviction`, `binding`. This
//! module routes each write to its kind's rules.

mod binding;
mod delete;
mod errors;
mod eviction;
mod namespaces;
mod networking;
mod pdb;
mod pod_create;
mod pod_defaults;
mod pod_update;
mod priority;
mod qos;
mod service_alloc;
mod services;
mod workloads;

use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::resources::{self, ResourceDef};
use crate::store::{Part, Tx, meta_str};
use pdb::validate_pdb;
use pod_create::pod_create;
use pod_update::pod_update;
use priority::priority_class_write;
use services::{service_create, service_update};
use workloads::workload_defaults;

pub use binding::bind;
pub use delete::{delete_options_from, pod_grace_period};
pub use errors::{FieldError, forbidden, invalid};
pub use eviction::evict;
pub use namespaces::{
    KUBERNETES_FINALIZER, namespace_finalizing, namespace_is_terminating, namespace_open,
    namespace_terminating,
};
pub use qos::{parse_quantity, qos_class};

fn name_of(obj: &Value) -> &str {
    meta_str(obj, "name").unwrap_or("")
}

fn is(r: &ResourceDef, def: &ResourceDef) -> bool {
    r.group == def.group && r.plural == def.plural
}

/// Defaults and validation for a new object (runs for API and controller writes alike).
pub fn on_create(
    tx: &mut Tx<'_>,
    r: &'static ResourceDef,
    obj: &mut Value,
) -> Result<(), ApiError> {
    if is(r, &resources::PODS) {
        pod_create(tx, obj)
    } else if is(r, &resources::NAMESPACES) {
        namespaces::namespace_create(obj);
        Ok(())
    } else if is(r, &resources::PRIORITYCLASSES) {
        priority_class_write(tx, r, None, obj)
    } else if is(r, &resources::SERVICES) {
        service_create(tx, r, obj)
    } else if is(r, &resources::INGRESSES) {
        let errs = networking::ingress_create(tx, obj);
        reject(r, obj, errs)
    } else if is(r, &resources::ENDPOINTSLICES) {
        reject(r, obj, networking::validate_endpoint_slice(obj, None))
    } else if is(r, &resources::PODDISRUPTIONBUDGETS) {
        // The disruption controller owns the status; a new PDB starts unobserved.
        obj.as_object_mut().map(|m| m.insert("status".into(), json!({"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0})));
        validate_pdb(r, obj)
    } else if r.group == "apps" {
        workload_defaults(r, obj)
    } else {
        Ok(())
    }
}

/// Validation for an update. `part` says what the write replaces: API writes of the main
/// resource ([`Part::Main`]) get the full validation; status writes and internal writes by
/// the control loops ([`Part::All`], e.g. the scheduler binding or the kubelet) are trusted.
pub fn on_update(
    tx: &mut Tx<'_>,
    r: &'static ResourceDef,
    old: &Value,
    new: &mut Value,
    part: Part,
) -> Result<(), ApiError> {
    if part != Part::Main {
        return Ok(());
    }
    if is(r, &resources::PODS) {
        pod_update(old, new)
    } else if is(r, &resources::PRIORITYCLASSES) {
        priority_class_write(tx, r, Some(old), new)
    } else if is(r, &resources::SERVICES) {
        service_update(tx, r, old, new)
    } else if is(r, &resources::NAMESPACES) {
        namespaces::namespace_update(old, new);
        Ok(())
    } else if is(r, &resources::INGRESSES) {
        reject(r, new, networking::validate_ingress(new))
    } else if is(r, &resources::ENDPOINTSLICES) {
        reject(r, new, networking::validate_endpoint_slice(new, Some(old)))
    } else if is(r, &resources::PODDISRUPTIONBUDGETS) {
        validate_pdb(r, new)
    } else if r.group == "apps" {
        workload_defaults(r, new)
    } else {
        Ok(())
    }
}

/// 422 Invalid when `errs` is not empty.
fn reject(r: &ResourceDef, obj: &Value, errs: Vec<FieldError>) -> Result<(), ApiError> {
    if errs.is_empty() {
        Ok(())
    } else {
        Err(invalid(r, name_of(obj), errs))
    }
}

/// `obj[key]` as an object, created (or replaced if not an object) when needed.
fn child<'a>(obj: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !obj.is_object() {
        *obj = json!({});
    }
    let m = obj.as_object_mut().expect("just made an object");
    let v = m.entry(key).or_insert_with(|| json!({}));
    if !v.is_object() {
        *v = json!({});
    }
    v.as_object_mut().expect("just made an object")
}

/// Upsert a condition by type; `lastTransitionTime` moves only when the status changes.
fn set_condition(status: &mut Map<String, Value>, mut cond: Value, now: &str) {
    let conds = status.entry("conditions").or_insert_with(|| json!([]));
    if !conds.is_array() {
        *conds = json!([]);
    }
    let list = conds.as_array_mut().expect("just made an array");
    let ty = cond.get("type").cloned();
    match list.iter_mut().find(|c| c.get("type") == ty.as_ref()) {
        Some(existing) => {
            let changed = existing.get("status") != cond.get("status");
            let ltt = if changed {
                json!(now)
            } else {
                existing
                    .get("lastTransitionTime")
                    .cloned()
                    .unwrap_or(json!(now))
            };
            cond["lastTransitionTime"] = ltt;
            if existing.get("lastProbeTime").is_some() {
                cond["lastProbeTime"] = Value::Null;
            }
            *existing = cond;
        }
        None => {
            cond["lastTransitionTime"] = json!(now);
            list.push(cond);
        }
    }
}
