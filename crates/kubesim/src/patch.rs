//! PATCH bodies: JSON patch (RFC 6902), JSON merge patch (RFC 7386), strategic merge patch
//! (merge keys and directives as kubectl sends them) and apply patches.
//!
//! The strategic merge is a port of `k8s.io/apimachinery/pkg/util/strategicpatch` (`mergeMap`,
//! `mergeSlice`, `normalizeElementOrder`) driven by a small schema table ([`Ty`]) holding the
//! real `patchStrategy`/`patchMergeKey` tags of the fields our resources use. Paths the table
//! does not know merge maps recursively and replace lists wholesale, which is what the real
//! server does for a field without a patch strategy.
//!
//! Server-side apply is approximated: the body (YAML or JSON) is strategic-merged onto the live
//! object. There is no field ownership, so a field dropped from a later apply is *not* removed
//! (the real server removes it when the same manager owned it), `force`/conflicts do not exist
//! and `managedFields` are not maintained.

use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::resources::ResourceDef;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchType {
    /// From the request's Content-Type; anything else is a 415.
    pub fn from_content_type(ct: &str) -> Result<Self, ApiError> {
        match ct.split(';').next().unwrap_or("").trim() {
            "application/json-patch+json" => Ok(Self::Json),
            "application/merge-patch+json" => Ok(Self::Merge),
            "application/strategic-merge-patch+json" => Ok(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Ok(Self::Apply),
            other => Err(ApiError::unsupported_media_type(other)),
        }
    }
}

/// Decode a raw PATCH body for `kind`: JSON for the JSON/merge/strategic types, YAML or JSON
/// for apply patches. Undecodable or empty bodies are a 400.
pub fn parse_body(kind: PatchType, body: &[u8]) -> Result<Value, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| ApiError::bad_request(format!("patch body is not UTF-8: {e}")))?;
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Err(ApiError::bad_request("the patch body is empty"));
    }
    if kind == PatchType::Apply && !trimmed.starts_with('{') {
        return serde_yaml::from_str::<Value>(text)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML apply patch: {e}")));
    }
    serde_json::from_str::<Value>(text)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch as JSON: {e}")))
}

/// Apply `patch` of type `kind` to `original` (an object of resource `res`) and return the result.
/// A patch that cannot be applied is a 422 (JSON patch test/path failures) or 400 (bad body).
///
/// `original` may be `Value::Null` (apply-creates): the patch then applies to `{}`. For
/// [`PatchType::Apply`], `patch` may also be a `Value::String` holding the YAML text.
///
/// The result keeps `apiVersion`, `kind`, `metadata.name`, `metadata.namespace` and
/// `metadata.uid`: a patch that removes them gets the originals back; one that changes name or
/// namespace is a 400 and one that changes uid/apiVersion/kind a 422, as on the real server. A
/// `metadata.resourceVersion` set by the patch is kept so the caller can check it.
pub fn apply(
    res: &ResourceDef,
    kind: PatchType,
    original: &Value,
    patch: &Value,
) -> Result<Value, ApiError> {
    let base = if original.is_null() {
        Value::Object(Map::new())
    } else {
        original.clone()
    };
    let result = match kind {
        PatchType::Json => json_patch(base, patch)?,
        PatchType::Merge => {
            if !patch.is_object() {
                return Err(ApiError::bad_request(format!(
                    "a merge patch must be a JSON object, got {}",
                    type_name(patch)
                )));
            }
            let mut doc = base;
            json_patch::merge(&mut doc, patch);
            doc
        }
        PatchType::Strategic => strategic_merge(res, &base, patch)?,
        PatchType::Apply => apply_patch(res, &base, patch)?,
    };
    keep_identity(res, original, result)
}

/// Strategic-merge `patch` onto `original` using the schema of `res` (or of the object's own
/// `kind`, e.g. `Scale`). Exposed for controllers that want kubectl's merge semantics.
pub fn strategic_merge(
    res: &ResourceDef,
    original: &Value,
    patch: &Value,
) -> Result<Value, ApiError> {
    let Value::Object(p) = patch else {
        return Err(ApiError::bad_request(format!(
            "invalid JSON document: a strategic merge patch must be an object, got {}",
            type_name(patch)
        )));
    };
    let kind = original
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or(res.kind);
    let orig = original.as_object().cloned().unwrap_or_default();
    Ok(Value::Object(merge_map(orig, p, Ty::root(kind))?))
}

fn json_patch(mut doc: Value, patch: &Value) -> Result<Value, ApiError> {
    if !patch.is_array() {
        return Err(ApiError::bad_request(format!(
            "json: cannot unmarshal {} into Go value of type jsonpatch.Patch",
            type_name(patch)
        )));
    }
    let ops: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
    json_patch::patch(&mut doc, &ops).map_err(|e| ApiError::new(422, "Invalid", e.to_string()))?;
    Ok(doc)
}

fn apply_patch(res: &ResourceDef, original: &Value, patch: &Value) -> Result<Value, ApiError> {
    let mut body = match patch {
        Value::String(text) => parse_body(PatchType::Apply, text.as_bytes())?,
        other => other.clone(),
    };
    let Some(obj) = body.as_object_mut() else {
        return Err(ApiError::bad_request(format!(
            "an apply patch must be an object, got {}",
            type_name(&body)
        )));
    };
    for field in ["apiVersion", "kind"] {
        if obj
            .get(field)
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(ApiError::bad_request(format!(
                "{field} must be set in an apply patch"
            )));
        }
    }
    // Ownership is not modelled; dropping managedFields beats storing a client's copy.
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    strategic_merge(res, original, &body)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Restore or police the fields a patch may not change (see [`apply`]).
fn keep_identity(
    res: &ResourceDef,
    original: &Value,
    mut result: Value,
) -> Result<Value, ApiError> {
    let Some(obj) = result.as_object_mut() else {
        return Err(ApiError::bad_request(format!(
            "the patched object must be a JSON object, got {}",
            type_name(&result)
        )));
    };
    let orig_str = |ptr: &str| {
        original
            .pointer(ptr)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let name = orig_str("/metadata/name").unwrap_or_default().to_string();
    let immutable = |field: &str, new: &Value| {
        let shown = new
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| new.to_string());
        ApiError::invalid(
            res.kind,
            &name,
            res.group,
            vec![(
                field.to_string(),
                format!("Invalid value: {shown:?}: field is immutable"),
            )],
        )
    };
    for field in ["apiVersion", "kind"] {
        let Some(before) = orig_str(&format!("/{field}")) else {
            continue;
        };
        match obj.get(field) {
            None | Some(Value::Null) => {
                obj.insert(field.to_string(), Value::String(before.to_string()));
            }
            Some(Value::String(s)) if s == before => {}
            Some(other) => return Err(immutable(field, other)),
        }
    }
    if original.get("metadata").is_none() && obj.get("metadata").is_none() {
        return Ok(result);
    }
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj.insert("metadata".to_string(), Value::Object(Map::new()));
    }
    let meta = obj
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .expect("metadata is an object");
    let new_str = |m: &Map<String, Value>, k: &str| {
        m.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    if let Some(before) = orig_str("/metadata/name") {
        let after = new_str(meta, "name");
        if after != before {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({after}) does not match the name on the URL ({before})"
            )));
        }
    }
    if let Some(before) = orig_str("/metadata/namespace") {
        let after = new_str(meta, "namespace");
        if after.is_empty() {
            meta.insert("namespace".to_string(), Value::String(before.to_string()));
        } else if after != before {
            return Err(ApiError::bad_request(format!(
                "the namespace of the object ({after}) does not match the namespace on the URL ({before})"
            )));
        }
    }
    if let Some(before) = orig_str("/metadata/uid") {
        match meta.get("uid") {
            None | Some(Value::Null) => {
                meta.insert("uid".to_string(), Value::String(before.to_string()));
            }
            Some(Value::String(s)) if s.is_empty() => {
                meta.insert("uid".to_string(), Value::String(before.to_string()));
            }
            Some(Value::String(s)) if s == before => {}
            Some(other) => return Err(immutable("metadata.uid", other)),
        }
    }
    Ok(result)
}

// ---------------------------------------------------------------------------------------------
// Schema: the patch strategies of the fields our resources carry (k8s.io/api struct tags)
// ---------------------------------------------------------------------------------------------

/// The Go struct a JSON object stands for, as far as patch strategies care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// No known strategies below: maps merge, lists replace.
    Unknown,
    /// A top-level object whose only known field is `metadata`.
    Generic,
    Pod,
    Node,
    Service,
    Namespace,
    ServiceAccount,
    /// Deployment, ReplicaSet, DaemonSet, StatefulSet.
    Workload,
    PodDisruptionBudget,
    ObjectMeta,
    PodTemplateSpec,
    PodSpec,
    Container,
    PodStatus,
    NodeSpec,
    NodeStatus,
    ServiceSpec,
    /// Any status whose only strategic list is `conditions` keyed by `type`.
    ConditionsStatus,
    WorkloadSpec,
}

/// How a list field merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStrategy {
    /// No `patchStrategy`: the patch's list replaces the live one.
    Atomic,
    /// `patchStrategy:"merge"` on scalars (finalizers, podCIDRs): set union.
    MergePrimitive,
    /// `patchStrategy:"merge" patchMergeKey:"<key>"`.
    MergeByKey(&'static str),
}

/// A field's element/value type and list strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub ty: Ty,
    pub list: ListStrategy,
}

const fn f(ty: Ty, list: ListStrategy) -> Field {
    Field { ty, list }
}

const UNKNOWN: Field = f(Ty::Unknown, ListStrategy::Atomic);

fn keyed(key: &'static str, ty: Ty) -> Field {
    f(ty, ListStrategy::MergeByKey(key))
}

impl Ty {
    /// The schema root for an object of `kind`.
    pub fn root(kind: &str) -> Ty {
        match kind {
            "Pod" => Ty::Pod,
            "Node" => Ty::Node,
            "Service" => Ty::Service,
            "Namespace" => Ty::Namespace,
            "ServiceAccount" => Ty::ServiceAccount,
            "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet" => Ty::Workload,
            "PodDisruptionBudget" => Ty::PodDisruptionBudget,
            _ => Ty::Generic,
        }
    }

    /// The field `key` of this type.
    pub fn field(self, key: &str) -> Field {
        use ListStrategy::{Atomic, MergePrimitive};
        let is_root = matches!(
            self,
            Ty::Generic
                | Ty::Pod
                | Ty::Node
                | Ty::Service
                | Ty::Namespace
                | Ty::ServiceAccount
                | Ty::Workload
                | Ty::PodDisruptionBudget
        );
        if is_root && key == "metadata" {
            return f(Ty::ObjectMeta, Atomic);
        }
        match (self, key) {
            (Ty::Pod, "spec") => f(Ty::PodSpec, Atomic),
            (Ty::Pod, "status") => f(Ty::PodStatus, Atomic),
            (Ty::Node, "spec") => f(Ty::NodeSpec, Atomic),
            (Ty::Node, "status") => f(Ty::NodeStatus, Atomic),
            (Ty::Service, "spec") => f(Ty::ServiceSpec, Atomic),
            (Ty::Service | Ty::Namespace | Ty::Workload | Ty::PodDisruptionBudget, "status") => {
                f(Ty::ConditionsStatus, Atomic)
            }
            (Ty::ServiceAccount, "secrets") => keyed("name", Ty::Unknown),
            (Ty::Workload, "spec") => f(Ty::WorkloadSpec, Atomic),

            (Ty::ObjectMeta, "finalizers") => f(Ty::Unknown, MergePrimitive),
            (Ty::ObjectMeta, "ownerReferences") => keyed("uid", Ty::Unknown),

            (Ty::WorkloadSpec, "template") => f(Ty::PodTemplateSpec, Atomic),
            (Ty::PodTemplateSpec, "metadata") => f(Ty::ObjectMeta, Atomic),
            (Ty::PodTemplateSpec, "spec") => f(Ty::PodSpec, Atomic),

            (Ty::PodSpec, "containers" | "initContainers" | "ephemeralContainers") => {
                keyed("name", Ty::Container)
            }
            // volumes and resourceClaims are also `retainKeys`; `$retainKeys` is honoured wherever sent.
            (
                Ty::PodSpec,
                "volumes" | "imagePullSecrets" | "schedulingGates" | "resourceClaims",
            ) => keyed("name", Ty::Unknown),
            (Ty::PodSpec, "hostAliases") => keyed("ip", Ty::Unknown),
            (Ty::PodSpec, "topologySpreadConstraints") => keyed("topologyKey", Ty::Unknown),
            // tolerations, readinessGates: no strategy, replaced wholesale.
            (Ty::Container, "ports") => keyed("containerPort", Ty::Unknown),
            (Ty::Container, "env") => keyed("name", Ty::Unknown),
            (Ty::Container, "volumeMounts") => keyed("mountPath", Ty::Unknown),
            (Ty::Container, "volumeDevices") => keyed("devicePath", Ty::Unknown),

            (Ty::PodStatus, "conditions") => keyed("type", Ty::Unknown),
            (Ty::PodStatus, "podIPs" | "hostIPs") => keyed("ip", Ty::Unknown),
            (Ty::PodStatus, "resourceClaimStatuses") => keyed("name", Ty::Unknown),
            // containerStatuses & co. have no strategy.
            (Ty::NodeSpec, "podCIDRs") => f(Ty::Unknown, MergePrimitive),
            // NodeSpec.taints has no patch strategy: kubectl taint sends the whole list.
            (Ty::NodeStatus, "conditions" | "addresses") => keyed("type", Ty::Unknown),
            (Ty::ServiceSpec, "ports") => keyed("port", Ty::Unknown),
            (Ty::ConditionsStatus, "conditions") => keyed("type", Ty::Unknown),
            _ => UNKNOWN,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Strategic merge
// ---------------------------------------------------------------------------------------------

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER: &str = "$setElementOrder/";
const DELETE_PRIMITIVE: &str = "$deleteFromPrimitiveList/";

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(msg)
}

/// JSON equality that treats `80` and `80.0` alike, as Go's float64-typed maps do.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn merge_key_of<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_object().and_then(|m| m.get(key))
}

/// Whether two list items are "the same" element: by merge key, or by value for scalars.
fn same_item(a: &Value, b: &Value, key: Option<&str>) -> bool {
    match key {
        Some(k) => match (merge_key_of(a, k), merge_key_of(b, k)) {
            (Some(x), Some(y)) => json_eq(x, y),
            _ => false,
        },
        None => json_eq(a, b),
    }
}

fn position(list: &[Value], v: &Value, key: Option<&str>) -> Option<usize> {
    list.iter().position(|x| same_item(x, v, key))
}

fn list_key(list: ListStrategy) -> Option<&'static str> {
    match list {
        ListStrategy::MergeByKey(k) => Some(k),
        _ => None,
    }
}

/// `mergeMap`: merge `patch` into `orig` for an object of type `ty`.
fn merge_map(
    mut orig: Map<String, Value>,
    patch: &Map<String, Value>,
    ty: Ty,
) -> Result<Map<String, Value>, ApiError> {
    if let Some(directive) = patch.get(PATCH) {
        return match directive.as_str() {
            Some("replace") => {
                let mut p = patch.clone();
                p.remove(PATCH);
                merge_map(Map::new(), &p, ty)
            }
            Some("delete") => Ok(Map::new()),
            _ => Err(bad(format!(
                "unknown patch type: {directive} in map: {}",
                Value::Object(patch.clone())
            ))),
        };
    }

    if let Some(retain) = patch.get(RETAIN_KEYS) {
        let keys: Vec<&str> = retain
            .as_array()
            .and_then(|a| a.iter().map(Value::as_str).collect::<Option<Vec<_>>>())
            .ok_or_else(|| bad("invalid patch format of retainKeys"))?;
        let listed = |k: &str| keys.contains(&k);
        let stray = patch
            .iter()
            .any(|(k, v)| !v.is_null() && !k.starts_with('$') && !listed(k));
        if stray {
            return Err(bad("invalid patch format of retainKeys"));
        }
        orig.retain(|k, _| listed(k));
    }

    // `$setElementOrder/<list>` first: it merges and orders its list in one go.
    let mut done: HashSet<&str> = HashSet::new();
    for (k, order) in patch {
        let Some(key) = k.strip_prefix(SET_ORDER) else {
            continue;
        };
        let field = ty.field(key);
        let order = order
            .as_array()
            .ok_or_else(|| bad("invalid patch format of setElementOrder list"))?;
        let live = match orig.get(key) {
            Some(Value::Array(a)) => Some(a.clone()),
            _ => None,
        };
        let patch_list = match patch.get(key) {
            Some(Value::Array(a)) => Some(a.as_slice()),
            Some(Value::Null) | None => None,
            Some(_) => return Err(bad("invalid patch format of setElementOrder list")),
        };
        if let Some(pl) = patch_list {
            validate_order(pl, order, list_key(field.list))?;
        }
        let merged = match (live.clone(), patch_list) {
            (Some(l), None) => l,
            (None, Some(p)) => fresh_list(p, field)?,
            (Some(l), Some(p)) => merge_list(l, p, field)?,
            (None, None) => continue,
        };
        let merged = if field.list == ListStrategy::Atomic {
            merged
        } else {
            let order: Vec<Value> = order
                .iter()
                .filter(|v| merge_key_of(v, PATCH).is_none())
                .cloned()
                .collect();
            normalize_order(
                merged,
                &order,
                live.as_deref().unwrap_or_default(),
                list_key(field.list),
            )
        };
        orig.insert(key.to_string(), Value::Array(merged));
        if patch_list.is_some() {
            done.insert(key);
        }
    }

    let mut deletions = Vec::new();
    for (k, v) in patch {
        if done.contains(k.as_str()) || k == PATCH || k == RETAIN_KEYS || k.starts_with(SET_ORDER) {
            continue;
        }
        if let Some(key) = k.strip_prefix(DELETE_PRIMITIVE) {
            deletions.push((key, v));
            continue;
        }
        // Unknown `$` keys would be dropped by the real server's typed decoding.
        if k.starts_with('$') {
            continue;
        }
        if v.is_null() {
            orig.remove(k);
            continue;
        }
        let field = ty.field(k);
        let merged = match (orig.remove(k), v) {
            (Some(Value::Object(o)), Value::Object(p)) => Value::Object(merge_map(o, p, field.ty)?),
            (Some(Value::Array(o)), Value::Array(p)) => Value::Array(merge_list(o, p, field)?),
            (_, v) => fresh(v, field)?,
        };
        orig.insert(k.clone(), merged);
    }

    // After the merges, so a value both added and deleted ends up deleted.
    for (key, v) in deletions {
        match v {
            Value::Null => {
                orig.remove(key);
            }
            Value::Array(del) => {
                if let Some(Value::Array(live)) = orig.get_mut(key) {
                    live.retain(|x| !del.iter().any(|d| json_eq(d, x)));
                }
            }
            _ => return Err(bad("invalid patch format of primitive list")),
        }
    }
    Ok(orig)
}

/// `mergeSliceHandler` + `mergeSlice`.
fn merge_list(live: Vec<Value>, patch: &[Value], field: Field) -> Result<Vec<Value>, ApiError> {
    match field.list {
        ListStrategy::Atomic => fresh_list(patch, field),
        ListStrategy::MergePrimitive => {
            if live.is_empty() && patch.is_empty() {
                return Ok(live);
            }
            let mut merged: Vec<Value> = Vec::with_capacity(live.len() + patch.len());
            for v in live.iter().chain(patch) {
                if v.is_object() || v.is_array() {
                    return Err(bad(format!("a list of primitives cannot hold {v}")));
                }
                if !merged.iter().any(|m| json_eq(m, v)) {
                    merged.push(v.clone());
                }
            }
            Ok(normalize_order(merged, patch, &live, None))
        }
        ListStrategy::MergeByKey(key) => {
            let mut live = live;
            let mut plain: Vec<&Map<String, Value>> = Vec::new();
            let mut replace = false;
            for p in patch {
                let Some(pm) = p.as_object() else {
                    return Err(bad(format!("a list merged by {key:?} cannot hold {p}")));
                };
                match pm.get(PATCH).map(|d| (d, d.as_str())) {
                    None => plain.push(pm),
                    Some((_, Some("delete"))) => {
                        let kv = pm.get(key).ok_or_else(|| no_merge_key(p, key))?;
                        live.retain(|l| !merge_key_of(l, key).is_some_and(|lk| json_eq(lk, kv)));
                    }
                    Some((_, Some("replace"))) => replace = true,
                    Some((_, Some("merge"))) => {
                        return Err(bad("merging lists cannot yet be specified in the patch"));
                    }
                    Some((d, _)) => {
                        return Err(bad(format!("unknown patch type: {d} in map: {p}")));
                    }
                }
            }
            if replace {
                return plain
                    .into_iter()
                    .map(|p| Ok(Value::Object(merge_map(Map::new(), p, field.ty)?)))
                    .collect();
            }
            let server_order = live.clone();
            for pm in &plain {
                let kv = pm
                    .get(key)
                    .ok_or_else(|| no_merge_key(&Value::Object((*pm).clone()), key))?;
                let found = live
                    .iter()
                    .position(|l| merge_key_of(l, key).is_some_and(|lk| json_eq(lk, kv)));
                match found {
                    Some(i) => {
                        let base = live[i].as_object().cloned().unwrap_or_default();
                        live[i] = Value::Object(merge_map(base, pm, field.ty)?);
                    }
                    None => live.push(Value::Object(merge_map(Map::new(), pm, field.ty)?)),
                }
            }
            let order: Vec<Value> = plain
                .into_iter()
                .map(|m| Value::Object(m.clone()))
                .collect();
            Ok(normalize_order(live, &order, &server_order, Some(key)))
        }
    }
}

fn no_merge_key(item: &Value, key: &str) -> ApiError {
    bad(format!(
        "map: {item} does not contain declared merge key: {key}"
    ))
}

/// `validatePatchWithSetOrderList`: the patch list must follow the `$setElementOrder` order.
fn validate_order(patch: &[Value], order: &[Value], key: Option<&str>) -> Result<(), ApiError> {
    let items: Vec<&Value> = patch
        .iter()
        .filter(|v| merge_key_of(v, PATCH).is_none())
        .collect();
    let (mut pi, mut oi) = (0, 0);
    while pi < items.len() && oi < order.len() {
        if same_item(items[pi], &order[oi], key) {
            pi += 1;
        }
        oi += 1;
    }
    if pi < items.len() {
        return Err(bad(format!(
            "the order in patch list {} doesn't match the $setElementOrder list {}",
            Value::Array(patch.to_vec()),
            Value::Array(order.to_vec())
        )));
    }
    Ok(())
}

/// `normalizeElementOrder`: items named in `order` take that order; the other (server-only)
/// items keep their live order and are interleaved by their live positions. New items that
/// the live list does not know come before the remaining server-only items, as in Go.
fn normalize_order(
    merged: Vec<Value>,
    order: &[Value],
    live: &[Value],
    key: Option<&str>,
) -> Vec<Value> {
    let (mut patch_items, mut server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|v| position(order, v, key).is_some());
    patch_items.sort_by_key(|v| position(order, v, key));
    server_only.sort_by_key(|v| position(live, v, key).unwrap_or(usize::MAX));

    let mut out = Vec::with_capacity(patch_items.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = patch_items.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => match (position(live, l, key), position(live, r, key)) {
                (Some(li), Some(ri)) => li < ri,
                _ => false,
            },
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}

/// A patch value with nothing live to merge into: process its directives against an empty
/// original and drop its nulls, which is what the real server's typed decoding leaves.
fn fresh(v: &Value, field: Field) -> Result<Value, ApiError> {
    Ok(match v {
        Value::Object(p) => Value::Object(merge_map(Map::new(), p, field.ty)?),
        Value::Array(p) => Value::Array(fresh_list(p, field)?),
        other => other.clone(),
    })
}

fn fresh_list(patch: &[Value], field: Field) -> Result<Vec<Value>, ApiError> {
    let elem = Field {
        ty: field.ty,
        list: ListStrategy::Atomic,
    };
    patch
        .iter()
        // `{"$patch": "delete"|"replace", ...}` markers have nothing to act on in a new list.
        .filter(|v| merge_key_of(v, PATCH).is_none())
        .map(|v| fresh(v, elem))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::resources::{self, ResourceDef};

    fn smp(res: &ResourceDef, original: Value, patch: Value) -> Value {
        apply(res, PatchType::Strategic, &original, &patch).unwrap_or_else(|e| panic!("{e}"))
    }

    fn deployment(pod_spec: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "namespace": "default", "uid": "u1", "resourceVersion": "4"},
               "spec": {"replicas": 1, "template": {"metadata": {"labels": {"app": "web"}}, "spec": pod_spec}}})
    }

    fn pod(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default", "uid": "u"},
               "spec": spec})
    }

    #[test]
    fn patch_type_comes_from_the_content_type() {
        assert_eq!(
            PatchType::from_content_type("application/json-patch+json").unwrap(),
            PatchType::Json
        );
        assert_eq!(
            PatchType::from_content_type("application/merge-patch+json; charset=utf-8").unwrap(),
            PatchType::Merge
        );
        assert_eq!(
            PatchType::from_content_type("application/strategic-merge-patch+json").unwrap(),
            PatchType::Strategic
        );
        assert_eq!(
            PatchType::from_content_type("application/apply-patch+yaml").unwrap(),
            PatchType::Apply
        );
        assert_eq!(
            PatchType::from_content_type("application/json")
                .unwrap_err()
                .code,
            415
        );
    }

    // --- JSON patch --------------------------------------------------------------------------

    #[test]
    fn json_patch_applies_rfc6902_operations() {
        let orig = pod(json!({"nodeName": "n1"}));
        let out = apply(
            &resources::PODS,
            PatchType::Json,
            &orig,
            &json!([
                {"op": "test", "path": "/spec/nodeName", "value": "n1"},
                {"op": "add", "path": "/metadata/labels", "value": {"a": "b"}},
                {"op": "add", "path": "/metadata/labels/example.com~1x", "value": "y"},
                {"op": "replace", "path": "/spec/nodeName", "value": "n2"},
                {"op": "copy", "from": "/spec/nodeName", "path": "/spec/hostname"},
                {"op": "remove", "path": "/spec/hostname"}
            ]),
        )
        .unwrap();
        assert_eq!(
            out["metadata"]["labels"],
            json!({"a": "b", "example.com/x": "y"})
        );
        assert_eq!(out["spec"], json!({"nodeName": "n2"}));
    }

    #[test]
    fn json_patch_failed_test_or_bad_path_is_a_422() {
        let orig = pod(json!({"nodeName": "n1"}));
        for ops in [
            json!([{"op": "test", "path": "/spec/nodeName", "value": "n2"}]),
            json!([{"op": "remove", "path": "/spec/missing"}]),
            json!([{"op": "replace", "path": "/status/phase", "value": "x"}]),
        ] {
            let e = apply(&resources::PODS, PatchType::Json, &orig, &ops).unwrap_err();
            assert_eq!((e.code, e.reason), (422, "Invalid"), "{ops}");
        }
    }

    #[test]
    fn json_patch_body_that_is_not_an_operation_array_is_a_400() {
        let orig = pod(json!({}));
        for body in [
            json!({"op": "add"}),
            json!([{"op": "frobnicate", "path": "/a"}]),
            json!([{"op": "add"}]),
        ] {
            let e = apply(&resources::PODS, PatchType::Json, &orig, &body).unwrap_err();
            assert_eq!((e.code, e.reason), (400, "BadRequest"), "{body}");
        }
    }

    // --- merge patch -------------------------------------------------------------------------

    #[test]
    fn null_in_merge_patch_deletes_the_key() {
        let orig = pod(json!({"nodeName": "n1", "tolerations": [{"key": "a"}]}));
        let out = apply(
            &resources::PODS,
            PatchType::Merge,
            &orig,
            &json!({"metadata": {"labels": {"a": "b"}}, "spec": {"nodeName": null, "tolerations": [{"key": "b"}]}}),
        )
        .unwrap();
        assert_eq!(out["spec"], json!({"tolerations": [{"key": "b"}]}));
        assert_eq!(out["metadata"]["labels"], json!({"a": "b"}));
    }

    #[test]
    fn merge_patch_replaces_lists_even_with_a_merge_key() {
        let orig = pod(json!({"containers": [{"name": "a", "image": "x"}, {"name": "b"}]}));
        let out = apply(
            &resources::PODS,
            PatchType::Merge,
            &orig,
            &json!({"spec": {"containers": [{"name": "a"}]}}),
        )
        .unwrap();
        assert_eq!(out["spec"]["containers"], json!([{"name": "a"}]));
    }

    #[test]
    fn merge_patch_that_is_not_an_object_is_a_400() {
        let e = apply(
            &resources::PODS,
            PatchType::Merge,
            &pod(json!({})),
            &json!([1]),
        )
        .unwrap_err();
        assert_eq!(e.code, 400);
    }

    // --- strategic merge patch: maps and scalars ----------------------------------------------

    #[test]
    fn strategic_patch_merges_maps_and_null_deletes_a_key() {
        let orig = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n", "labels": {"a": "1", "b": "2"}},
                          "spec": {"unschedulable": true, "providerID": "aws:///i-1"}});
        let out = smp(
            &resources::NODES,
            orig,
            json!({"metadata": {"labels": {"a": null, "c": "3"}}, "spec": {"unschedulable": null}}),
        );
        assert_eq!(out["metadata"]["labels"], json!({"b": "2", "c": "3"}));
        assert_eq!(out["spec"], json!({"providerID": "aws:///i-1"}));
    }

    #[test]
    fn strategic_patch_null_for_a_missing_key_is_ignored_and_nested_nulls_are_dropped() {
        let out = smp(
            &resources::PODS,
            pod(json!({})),
            json!({"spec": {"nodeName": null, "affinity": {"nodeAffinity": null, "x": {"y": null}}}}),
        );
        assert_eq!(out["spec"], json!({"affinity": {"x": {}}}));
    }

    #[test]
    fn strategic_patch_map_directives_replace_and_delete() {
        let orig =
            pod(json!({"nodeSelector": {"a": "1", "b": "2"}, "affinity": {"podAffinity": {}}}));
        let out = smp(
            &resources::PODS,
            orig,
            json!({"spec": {"nodeSelector": {"$patch": "replace", "c": "3"}, "affinity": {"$patch": "delete"}}}),
        );
        assert_eq!(out["spec"]["nodeSelector"], json!({"c": "3"}));
        assert_eq!(out["spec"]["affinity"], json!({}));
        let e = apply(
            &resources::PODS,
            PatchType::Strategic,
            &pod(json!({})),
            &json!({"spec": {"$patch": "bogus"}}),
        )
        .unwrap_err();
        assert_eq!(e.code, 400);
    }

    #[test]
    fn strategic_patch_on_a_type_without_schema_behaves_like_a_merge_patch() {
        let orig = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "d"},
                          "data": {"a": "1", "b": "2"}, "list": [1, 2]});
        let patch = json!({"data": {"a": null, "c": "3"}, "list": [3]});
        let out = smp(&resources::CONFIGMAPS, orig.clone(), patch.clone());
        let merged = apply(&resources::CONFIGMAPS, PatchType::Merge, &orig, &patch).unwrap();
        assert_eq!(out, merged);
        assert_eq!(out["data"], json!({"b": "2", "c": "3"}));
    }

    #[test]
    fn strategic_patch_that_is_not_an_object_is_a_400() {
        let e = apply(
            &resources::PODS,
            PatchType::Strategic,
            &pod(json!({})),
            &json!([]),
        )
        .unwrap_err();
        assert_eq!(e.code, 400);
    }

    // --- strategic merge patch: lists ---------------------------------------------------------

    #[test]
    fn strategic_patch_merges_containers_by_name() {
        let orig = pod(json!({"containers": [
            {"name": "app", "image": "app:1", "imagePullPolicy": "IfNotPresent"},
            {"name": "side", "image": "side:1"}
        ]}));
        let out = smp(
            &resources::PODS,
            orig,
            json!({"spec": {"containers": [{"name": "app", "image": "app:2"}]}}),
        );
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "app", "image": "app:2", "imagePullPolicy": "IfNotPresent"}, {"name": "side", "image": "side:1"}])
        );
    }

    #[test]
    fn strategic_patch_puts_new_list_items_before_untouched_live_ones_like_the_real_server() {
        // Go's mergeSortedSlice cannot place an item the live list lacks, so it goes first.
        let orig = pod(json!({"containers": [{"name": "app"}]}));
        let out = smp(
            &resources::PODS,
            orig,
            json!({"spec": {"containers": [{"name": "side", "image": "s"}]}}),
        );
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "side", "image": "s"}, {"name": "app"}])
        );
    }

    #[test]
    fn strategic_patch_merges_template_containers_and_nested_keyed_lists() {
        let orig = deployment(json!({"containers": [{
            "name": "web", "image": "w:1",
            "ports": [{"containerPort": 80, "protocol": "TCP"}],
            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
            "volumeMounts": [{"name": "v", "mountPath": "/a"}]
        }], "volumes": [{"name": "v", "emptyDir": {}}]}));
        let out = smp(
            &resources::DEPLOYMENTS,
            orig,
            json!({"spec": {"template": {"spec": {
                "containers": [{"name": "web",
                    "ports": [{"containerPort": 80, "name": "http"}],
                    "env": [{"name": "A", "value": "9"}, {"name": "C", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                    "volumeMounts": [{"name": "v2", "mountPath": "/b"}]}],
                "volumes": [{"name": "v2", "emptyDir": {}}]
            }}}}),
        );
        let c = &out["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["image"], "w:1");
        assert_eq!(
            c["ports"],
            json!([{"containerPort": 80, "protocol": "TCP", "name": "http"}])
        );
        assert_eq!(
            c["env"],
            json!([{"name": "A", "value": "9"}, {"name": "C", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                   {"name": "B", "value": "2"}])
        );
        assert_eq!(
            c["volumeMounts"],
            json!([{"name": "v2", "mountPath": "/b"}, {"name": "v", "mountPath": "/a"}])
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["volumes"],
            json!([{"name": "v2", "emptyDir": {}}, {"name": "v", "emptyDir": {}}])
        );
    }

    #[test]
    fn strategic_patch_replaces_tolerations_wholesale() {
        let orig = pod(
            json!({"tolerations": [{"key": "a", "operator": "Exists"}, {"key": "b", "operator": "Exists"}]}),
        );
        let out = smp(
            &resources::PODS,
            orig,
            json!({"spec": {"tolerations": [{"key": "c", "operator": "Exists"}]}}),
        );
        assert_eq!(
            out["spec"]["tolerations"],
            json!([{"key": "c", "operator": "Exists"}])
        );
    }

    #[test]
    fn strategic_patch_replaces_node_taints_wholesale() {
        let orig = json!({"kind": "Node", "metadata": {"name": "n"}, "spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]}});
        let out = smp(
            &resources::NODES,
            orig,
            json!({"spec": {"taints": [{"key": "b", "effect": "NoExecute"}]}}),
        );
        assert_eq!(
            out["spec"]["taints"],
            json!([{"key": "b", "effect": "NoExecute"}])
        );
    }

    #[test]
    fn strategic_patch_deletes_list_items_with_the_patch_directive() {
        let orig = pod(json!({"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}));
        let out = smp(
            &resources::PODS,
            orig,
            json!({"spec": {"containers": [{"$patch": "delete", "name": "b"}]}}),
        );
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "a"}, {"name": "c"}])
        );
    }

    #[test]
    fn strategic_patch_replace_directive_replaces_a_keyed_list() {
        let orig = pod(json!({"containers": [{"name": "a", "image": "x"}, {"name": "b"}]}));
        let out = smp(
            &resources::PODS,
            orig,
            json!({"spec": {"containers": [{"name": "z", "image": "z"}, {"$patch": "replace"}]}}),
        );
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "z", "image": "z"}])
        );
    }

    #[test]
    fn strategic_patch_rejects_list_items_without_their_merge_key() {
        let orig = pod(json!({"containers": [{"name": "a"}]}));
        for patch in [
            json!({"spec": {"containers": [{"image": "x"}]}}),
            json!({"spec": {"containers": [{"$patch": "delete"}]}}),
            json!({"spec": {"containers": [{"name": "a", "$patch": "merge"}]}}),
            json!({"spec": {"containers": ["a"]}}),
        ] {
            let e = apply(&resources::PODS, PatchType::Strategic, &orig, &patch).unwrap_err();
            assert_eq!(e.code, 400, "{patch}");
        }
        let e = apply(
            &resources::PODS,
            PatchType::Strategic,
            &orig,
            &json!({"spec": {"containers": [{"image": "x"}]}}),
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "map: {\"image\":\"x\"} does not contain declared merge key: name"
        );
    }

    #[test]
    fn strategic_patch_unions_finalizers_and_deletes_from_primitive_lists() {
        let orig = json!({"kind": "Pod", "metadata": {"name": "p", "finalizers": ["a", "b"]}});
        let out = smp(
            &resources::PODS,
            orig.clone(),
            json!({"metadata": {"finalizers": ["b", "c"]}}),
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "b", "c"]));
        let out = smp(
            &resources::PODS,
            orig.clone(),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
        let out = smp(
            &resources::PODS,
            orig,
            json!({"metadata": {"$deleteFromPrimitiveList/missing": ["a"]}}),
        );
        assert!(out["metadata"].get("missing").is_none());
    }

    #[test]
    fn strategic_patch_merges_owner_references_by_uid_and_conditions_by_type() {
        let orig = json!({"kind": "Pod", "metadata": {"name": "p", "ownerReferences": [{"uid": "1", "name": "rs"}]},
                          "status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True"}]}});
        let out = smp(
            &resources::PODS,
            orig,
            json!({"metadata": {"ownerReferences": [{"uid": "1", "controller": true}]},
                   "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
        );
        assert_eq!(
            out["metadata"]["ownerReferences"],
            json!([{"uid": "1", "name": "rs", "controller": true}])
        );
        assert_eq!(
            out["status"]["conditions"],
            json!([{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}])
        );
    }

    #[test]
    fn strategic_patch_merges_node_status_conditions_and_addresses_by_type() {
        let orig = json!({"kind": "Node", "metadata": {"name": "n"}, "status": {
            "conditions": [{"type": "Ready", "status": "True"}, {"type": "MemoryPressure", "status": "False"}],
            "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
            "images": [{"names": ["a"]}]}});
        let out = smp(
            &resources::NODES,
            orig,
            json!({"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "KubeletDown"}],
                              "addresses": [{"type": "Hostname", "address": "n"}],
                              "images": [{"names": ["b"]}]}}),
        );
        assert_eq!(
            out["status"]["conditions"],
            json!([{"type": "Ready", "status": "False", "reason": "KubeletDown"}, {"type": "MemoryPressure", "status": "False"}])
        );
        assert_eq!(
            out["status"]["addresses"],
            json!([{"type": "Hostname", "address": "n"}, {"type": "InternalIP", "address": "10.0.0.1"}])
        );
        assert_eq!(out["status"]["images"], json!([{"names": ["b"]}]));
    }

    #[test]
    fn strategic_patch_merges_service_ports_by_port_and_workload_conditions_by_type() {
        let svc = json!({"kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}});
        let out = smp(
            &resources::SERVICES,
            svc,
            json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}),
        );
        assert_eq!(
            out["spec"]["ports"],
            json!([{"port": 80, "targetPort": 9090}, {"port": 443}])
        );
        for res in [
            &resources::DEPLOYMENTS,
            &resources::REPLICASETS,
            &resources::DAEMONSETS,
            &resources::STATEFULSETS,
        ] {
            let obj = json!({"kind": res.kind, "metadata": {"name": "x"}, "status": {"conditions": [{"type": "Available", "status": "True"}]}});
            let out = smp(
                res,
                obj,
                json!({"status": {"conditions": [{"type": "Progressing", "status": "True"}]}}),
            );
            assert_eq!(
                out["status"]["conditions"].as_array().unwrap().len(),
                2,
                "{}",
                res.kind
            );
        }
        let pdb = json!({"kind": "PodDisruptionBudget", "metadata": {"name": "x"}, "status": {"conditions": [{"type": "DisruptionAllowed", "status": "True"}]}});
        let out = smp(
            &resources::PODDISRUPTIONBUDGETS,
            pdb,
            json!({"status": {"conditions": [{"type": "DisruptionAllowed", "status": "False"}]}}),
        );
        assert_eq!(
            out["status"]["conditions"],
            json!([{"type": "DisruptionAllowed", "status": "False"}])
        );
    }

    #[test]
    fn strategic_patch_honours_set_element_order() {
        let orig = pod(json!({"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}));
        let out = smp(
            &resources::PODS,
            orig,
            json!({"spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "a"}, {"name": "b"}],
                            "containers": [{"name": "c", "image": "x"}]}}),
        );
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "c", "image": "x"}, {"name": "a"}, {"name": "b"}])
        );
        // The directive alone reorders; it never lands in the object.
        let orig = json!({"kind": "Pod", "metadata": {"name": "p", "finalizers": ["x", "y"]}});
        let out = smp(
            &resources::PODS,
            orig,
            json!({"metadata": {"$setElementOrder/finalizers": ["y", "x"]}}),
        );
        assert_eq!(
            out["metadata"],
            json!({"name": "p", "finalizers": ["y", "x"]})
        );
    }

    #[test]
    fn strategic_patch_rejects_a_list_out_of_set_element_order() {
        let orig = pod(json!({"containers": [{"name": "a"}, {"name": "b"}]}));
        let patch = json!({"spec": {"$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
                                    "containers": [{"name": "b"}, {"name": "a"}]}});
        assert_eq!(
            apply(&resources::PODS, PatchType::Strategic, &orig, &patch)
                .unwrap_err()
                .code,
            400
        );
    }

    #[test]
    fn strategic_patch_retain_keys_clears_unlisted_fields() {
        let orig = deployment(json!({"containers": [{"name": "c"}]}));
        let mut orig = orig;
        orig["spec"]["strategy"] =
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}});
        let out = smp(
            &resources::DEPLOYMENTS,
            orig.clone(),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": null}}}),
        );
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
        let bad = json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 2}}}});
        assert_eq!(
            apply(&resources::DEPLOYMENTS, PatchType::Strategic, &orig, &bad)
                .unwrap_err()
                .code,
            400
        );
    }

    #[test]
    fn strategic_patch_strips_directives_from_values_new_to_the_object() {
        let out = smp(
            &resources::DEPLOYMENTS,
            deployment(json!({})),
            json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "a"}],
                "containers": [{"name": "a", "$setElementOrder/env": [{"name": "X"}], "env": [{"name": "X", "value": "1"}]},
                               {"$patch": "delete", "name": "gone"}],
                "volumes": [{"$retainKeys": ["name", "emptyDir"], "name": "v", "emptyDir": {}, "hostPath": null}]
            }}}}),
        );
        assert_eq!(
            out["spec"]["template"]["spec"],
            json!({"containers": [{"name": "a", "env": [{"name": "X", "value": "1"}]}], "volumes": [{"name": "v", "emptyDir": {}}]})
        );
    }

    #[test]
    fn strategic_patch_matches_numeric_merge_keys_regardless_of_representation() {
        let orig = pod(json!({"containers": [{"name": "c", "ports": [{"containerPort": 80}]}]}));
        let out = smp(
            &resources::PODS,
            orig,
            json!({"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80.0, "name": "http"}]}]}}),
        );
        assert_eq!(
            out["spec"]["containers"][0]["ports"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn schema_table_knows_the_real_patch_strategies() {
        use ListStrategy::*;
        let at = |path: &[&str], kind: &str| {
            path.iter()
                .fold(f(Ty::root(kind), Atomic), |fld, k| fld.ty.field(k))
                .list
        };
        let cases: &[(&str, &[&str], ListStrategy)] = &[
            ("Pod", &["spec", "containers"], MergeByKey("name")),
            ("Pod", &["spec", "initContainers"], MergeByKey("name")),
            ("Pod", &["spec", "ephemeralContainers"], MergeByKey("name")),
            ("Pod", &["spec", "volumes"], MergeByKey("name")),
            ("Pod", &["spec", "imagePullSecrets"], MergeByKey("name")),
            ("Pod", &["spec", "hostAliases"], MergeByKey("ip")),
            ("Pod", &["spec", "tolerations"], Atomic),
            (
                "Pod",
                &["spec", "containers", "ports"],
                MergeByKey("containerPort"),
            ),
            ("Pod", &["spec", "containers", "env"], MergeByKey("name")),
            (
                "Pod",
                &["spec", "containers", "volumeMounts"],
                MergeByKey("mountPath"),
            ),
            (
                "Pod",
                &["spec", "containers", "volumeDevices"],
                MergeByKey("devicePath"),
            ),
            ("Pod", &["spec", "containers", "args"], Atomic),
            ("Pod", &["status", "conditions"], MergeByKey("type")),
            ("Pod", &["status", "podIPs"], MergeByKey("ip")),
            ("Pod", &["status", "containerStatuses"], Atomic),
            ("Pod", &["metadata", "finalizers"], MergePrimitive),
            ("Pod", &["metadata", "ownerReferences"], MergeByKey("uid")),
            ("Node", &["spec", "taints"], Atomic),
            ("Node", &["spec", "podCIDRs"], MergePrimitive),
            ("Node", &["status", "conditions"], MergeByKey("type")),
            ("Node", &["status", "addresses"], MergeByKey("type")),
            ("Service", &["spec", "ports"], MergeByKey("port")),
            ("ServiceAccount", &["secrets"], MergeByKey("name")),
            ("Deployment", &["status", "conditions"], MergeByKey("type")),
            (
                "StatefulSet",
                &["spec", "template", "spec", "containers", "env"],
                MergeByKey("name"),
            ),
            (
                "DaemonSet",
                &["spec", "template", "metadata", "finalizers"],
                MergePrimitive,
            ),
            (
                "ReplicaSet",
                &["spec", "template", "spec", "tolerations"],
                Atomic,
            ),
            (
                "ConfigMap",
                &["metadata", "ownerReferences"],
                MergeByKey("uid"),
            ),
            ("ConfigMap", &["data", "x"], Atomic),
        ];
        for (kind, path, want) in cases {
            assert_eq!(at(path, kind), *want, "{kind} {path:?}");
        }
    }

    // --- apply patches -----------------------------------------------------------------------

    #[test]
    fn apply_patch_accepts_yaml_and_merges_onto_the_live_object() {
        let orig = pod(json!({"containers": [{"name": "c", "image": "a"}], "nodeName": "n1"}));
        let yaml = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labels: {app: x}\nspec:\n  containers:\n  - name: c\n    image: b\n";
        let body = parse_body(PatchType::Apply, yaml.as_bytes()).unwrap();
        let out = apply(&resources::PODS, PatchType::Apply, &orig, &body).unwrap();
        assert_eq!(
            out["spec"],
            json!({"containers": [{"name": "c", "image": "b"}], "nodeName": "n1"})
        );
        assert_eq!(out["metadata"]["labels"], json!({"app": "x"}));
        assert_eq!(out["metadata"]["namespace"], "default");
        // The YAML text itself is accepted as a string value too.
        let out2 = apply(
            &resources::PODS,
            PatchType::Apply,
            &orig,
            &Value::String(yaml.to_string()),
        )
        .unwrap();
        assert_eq!(out, out2);
    }

    #[test]
    fn apply_patch_onto_nothing_builds_the_object_and_drops_managed_fields() {
        let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
                          "metadata": {"name": "c", "managedFields": [{"manager": "x"}]}, "data": {"a": "1"}});
        let out = apply(
            &resources::CONFIGMAPS,
            PatchType::Apply,
            &Value::Null,
            &body,
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}})
        );
    }

    #[test]
    fn apply_patch_without_kind_or_with_bad_yaml_is_a_400() {
        let e = apply(
            &resources::CONFIGMAPS,
            PatchType::Apply,
            &Value::Null,
            &json!({"apiVersion": "v1"}),
        )
        .unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (400, "kind must be set in an apply patch")
        );
        assert_eq!(
            parse_body(PatchType::Apply, b"a: [unclosed")
                .unwrap_err()
                .code,
            400
        );
    }

    #[test]
    fn body_parse_errors_are_400s_with_the_reason() {
        let e = parse_body(PatchType::Strategic, b"{\"spec\":").unwrap_err();
        assert_eq!(e.code, 400);
        assert!(
            e.message.starts_with("error decoding patch as JSON"),
            "{}",
            e.message
        );
        assert_eq!(parse_body(PatchType::Merge, b"  ").unwrap_err().code, 400);
        assert_eq!(parse_body(PatchType::Json, b"[]").unwrap(), json!([]));
        assert_eq!(
            parse_body(PatchType::Apply, b"{\"a\":1}").unwrap(),
            json!({"a": 1})
        );
    }

    // --- identity ----------------------------------------------------------------------------

    #[test]
    fn patch_changing_the_name_or_namespace_is_a_400() {
        let orig = pod(json!({}));
        for kind in [PatchType::Merge, PatchType::Strategic] {
            let e = apply(
                &resources::PODS,
                kind,
                &orig,
                &json!({"metadata": {"name": "q"}}),
            )
            .unwrap_err();
            assert_eq!(
                (e.code, e.message.as_str()),
                (
                    400,
                    "the name of the object (q) does not match the name on the URL (p)"
                )
            );
            let e = apply(
                &resources::PODS,
                kind,
                &orig,
                &json!({"metadata": {"namespace": "other"}}),
            )
            .unwrap_err();
            assert_eq!(
                (e.code, e.message.as_str()),
                (
                    400,
                    "the namespace of the object (other) does not match the namespace on the URL (default)"
                )
            );
        }
        let e = apply(
            &resources::PODS,
            PatchType::Json,
            &orig,
            &json!([{"op": "remove", "path": "/metadata/name"}]),
        )
        .unwrap_err();
        assert_eq!(e.code, 400);
    }

    #[test]
    fn patch_changing_uid_kind_or_api_version_is_a_422() {
        let orig = pod(json!({}));
        for patch in [
            json!({"metadata": {"uid": "other"}}),
            json!({"kind": "Service"}),
            json!({"apiVersion": "v2"}),
        ] {
            let e = apply(&resources::PODS, PatchType::Merge, &orig, &patch).unwrap_err();
            assert_eq!((e.code, e.reason), (422, "Invalid"), "{patch}");
        }
        let e = apply(
            &resources::PODS,
            PatchType::Merge,
            &orig,
            &json!({"metadata": {"uid": "x"}}),
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "Pod \"p\" is invalid: metadata.uid: Invalid value: \"x\": field is immutable"
        );
    }

    #[test]
    fn patch_removing_identity_fields_gets_them_back_and_keeps_a_sent_resource_version() {
        let orig = pod(json!({}));
        let out = apply(
            &resources::PODS,
            PatchType::Merge,
            &orig,
            &json!({"apiVersion": null, "kind": null, "metadata": {"namespace": null, "uid": null, "resourceVersion": "41"}}),
        )
        .unwrap();
        assert_eq!(out["apiVersion"], "v1");
        assert_eq!(out["kind"], "Pod");
        assert_eq!(
            out["metadata"],
            json!({"name": "p", "namespace": "default", "uid": "u", "resourceVersion": "41"})
        );
    }

    // --- recorded kubectl v1.32 requests -------------------------------------------------------

    /// Request bodies captured from kubectl v1.32 against a recording server; `expected` is
    /// what a real API server stores (modulo defaulting and omitempty).
    const FIXTURES: &[(&str, &str)] = &[
        (
            "kubectl_label",
            include_str!("../tests/fixtures/patch/kubectl_label.json"),
        ),
        (
            "kubectl_unlabel",
            include_str!("../tests/fixtures/patch/kubectl_unlabel.json"),
        ),
        (
            "kubectl_label_resource_version",
            include_str!("../tests/fixtures/patch/kubectl_label_resource_version.json"),
        ),
        (
            "kubectl_annotate",
            include_str!("../tests/fixtures/patch/kubectl_annotate.json"),
        ),
        (
            "kubectl_taint_add",
            include_str!("../tests/fixtures/patch/kubectl_taint_add.json"),
        ),
        (
            "kubectl_taint_remove_last",
            include_str!("../tests/fixtures/patch/kubectl_taint_remove_last.json"),
        ),
        (
            "kubectl_cordon",
            include_str!("../tests/fixtures/patch/kubectl_cordon.json"),
        ),
        (
            "kubectl_uncordon",
            include_str!("../tests/fixtures/patch/kubectl_uncordon.json"),
        ),
        (
            "kubectl_patch_replicas",
            include_str!("../tests/fixtures/patch/kubectl_patch_replicas.json"),
        ),
        (
            "kubectl_rollout_restart",
            include_str!("../tests/fixtures/patch/kubectl_rollout_restart.json"),
        ),
        (
            "kubectl_set_image",
            include_str!("../tests/fixtures/patch/kubectl_set_image.json"),
        ),
        (
            "kubectl_scale",
            include_str!("../tests/fixtures/patch/kubectl_scale.json"),
        ),
        (
            "kubectl_apply",
            include_str!("../tests/fixtures/patch/kubectl_apply.json"),
        ),
        (
            "kubectl_apply_directives",
            include_str!("../tests/fixtures/patch/kubectl_apply_directives.json"),
        ),
        (
            "kubectl_apply_server_side",
            include_str!("../tests/fixtures/patch/kubectl_apply_server_side.json"),
        ),
    ];

    #[test]
    fn kubectl_request_bodies_patch_objects_like_the_real_server() {
        for (name, text) in FIXTURES {
            let fx: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            let res = resources::ALL
                .iter()
                .find(|r| r.plural == fx["resource"])
                .expect("resource");
            let kind = PatchType::from_content_type(fx["contentType"].as_str().unwrap()).unwrap();
            let body = parse_body(kind, fx["body"].as_str().unwrap().as_bytes()).unwrap();
            let out =
                apply(res, kind, &fx["original"], &body).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(
                out,
                fx["expected"],
                "{name}: {}\n got: {}\nwant: {}",
                fx["description"],
                serde_json::to_string_pretty(&out).unwrap(),
                serde_json::to_string_pretty(&fx["expected"]).unwrap()
            );
        }
    }
}
