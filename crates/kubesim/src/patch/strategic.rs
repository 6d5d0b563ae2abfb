//! Strategic merge patch, with the merge keys and directives (`$patch`, `$retainKeys`,
//! `$setElementOrder/`, `$deleteFromPrimitiveList/`) kubectl sends.
//!
//! The strategic merge is a port of `k8s.io/apimachinery/pkg/util/strategicpatch` (`mergeMap`,
//! `mergeSlice`, `normalizeElementOrder`) driven by a small schema table ([`Ty`]) holding the
//! real `patchStrategy`/`patchMergeKey` tags of the fields our resources use. Paths the table
//! does not know merge maps recursively and replace lists wholesale, which is what the real
//! server does for a field without a patch strategy.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::schema::{Field, ListStrategy, Ty};
use super::type_name;
use crate::error::ApiError;
use crate::resources::ResourceDef;

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
    use serde_json::{Value, json};

    use crate::patch::tests::pod;
    use crate::patch::{PatchType, apply};
    use crate::resources::{self, ResourceDef};

    fn smp(res: &ResourceDef, original: Value, patch: Value) -> Value {
        apply(res, PatchType::Strategic, &original, &patch).unwrap_or_else(|e| panic!("{e}"))
    }

    fn deployment(pod_spec: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "namespace": "default", "uid": "u1", "resourceVersion": "4"},
               "spec": {"replicas": 1, "template": {"metadata": {"labels": {"app": "web"}}, "spec": pod_spec}}})
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
}
