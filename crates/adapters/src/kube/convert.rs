//! Pure translations between k8s-openapi objects / API JSON and the core's facts and actions:
//! Node → [`NodeFacts`], Pod → [`PodFacts`], the node merge patches, the pod toleration JSON
//! Patch, the Eviction body and the message of a refused eviction. No I/O, so every rule here is
//! unit-tested.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use costop_core::constants;
use costop_core::facts::{NodeFacts, OwnerRef, PodFacts, PodPhase, VolumeFacts};
use costop_core::kube::{Taint, TaintEffect, Toleration};
use costop_core::plan::action::{CordonAndTaint, EvictPod, PodUid, RestoreNode};
use costop_core::standby::TolerationPatch;
use k8s_openapi::api::core::v1::{Container, Node, NodeCondition, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::core::Status;
use serde_json::{Map, Value, json};

use super::quantity::Requests;

/// Node → facts. Taints with an effect the core does not know are dropped with a warning (the API
/// server only admits the three effects, so this is defensive).
pub(crate) fn node_facts(node: &Node) -> NodeFacts {
    let spec = node.spec.as_ref();
    NodeFacts {
        name: node.metadata.name.clone().unwrap_or_default(),
        provider_id: spec.and_then(|s| s.provider_id.clone()),
        resource_version: node.metadata.resource_version.clone(),
        // Only costop's own: the planner reads which interruption marked the node.
        annotations: node
            .metadata
            .annotations
            .iter()
            .flatten()
            .filter(|(k, _)| k.starts_with(constants::COSTOP_PREFIX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        labels: node.metadata.labels.clone().unwrap_or_default(),
        taints: spec
            .and_then(|s| s.taints.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|t| match t.effect.parse::<TaintEffect>() {
                Ok(effect) => Some(Taint { key: t.key.clone(), value: t.value.clone(), effect }),
                Err(e) => {
                    tracing::warn!(taint = %t.key, error = %e, "ignoring a node taint with an unknown effect");
                    None
                }
            })
            .collect(),
        unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
        ready: node_ready(node.status.as_ref().and_then(|s| s.conditions.as_deref())),
        created_at: node.metadata.creation_timestamp.as_ref().and_then(time),
    }
}

/// The `Ready` condition: `True` → ready; `False` or `Unknown` (the kubelet stopped posting) →
/// not ready; no such condition (a node still registering, or one created by hand) → unknown.
fn node_ready(conditions: Option<&[NodeCondition]>) -> Option<bool> {
    conditions?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status == "True")
}

fn time(t: &Time) -> Option<DateTime<Utc>> {
    let ts = t.0;
    DateTime::from_timestamp(ts.as_second(), u32::try_from(ts.subsec_nanosecond()).ok()?)
}

fn phase(p: Option<&str>) -> PodPhase {
    match p {
        Some("Pending") | None => PodPhase::Pending,
        Some("Running") => PodPhase::Running,
        Some("Succeeded") => PodPhase::Succeeded,
        Some("Failed") => PodPhase::Failed,
        Some(_) => PodPhase::Unknown,
    }
}

fn container_requests(c: &Container) -> Requests {
    let mut r = Requests::default();
    if let Some(req) = c.resources.as_ref().and_then(|r| r.requests.as_ref()) {
        r.add(req.iter().map(|(k, q)| (k, q.0.as_str())));
    }
    r
}

/// The pod's effective requests, as the scheduler counts them: pod-level `resources` when set,
/// else the sum of its containers and restartable (sidecar) init containers, raised to any single
/// regular init container's requests; plus the runtime overhead.
fn pod_requests(pod: &Pod) -> BTreeMap<String, String> {
    let Some(spec) = pod.spec.as_ref() else {
        return BTreeMap::new();
    };
    let mut total = Requests::default();
    if let Some(req) = spec.resources.as_ref().and_then(|r| r.requests.as_ref()) {
        total.add(req.iter().map(|(k, q)| (k, q.0.as_str())));
    } else {
        let inits = spec.init_containers.as_deref().unwrap_or_default();
        let is_sidecar = |c: &&Container| c.restart_policy.as_deref() == Some("Always");
        for c in spec
            .containers
            .iter()
            .chain(inits.iter().filter(is_sidecar))
        {
            if let Some(req) = c.resources.as_ref().and_then(|r| r.requests.as_ref()) {
                total.add(req.iter().map(|(k, q)| (k, q.0.as_str())));
            }
        }
        for c in inits.iter().filter(|c| !is_sidecar(c)) {
            total.max_with(container_requests(c));
        }
    }
    if let Some(overhead) = &spec.overhead {
        total.add(overhead.iter().map(|(k, q)| (k, q.0.as_str())));
    }
    total.into_map()
}

/// Pod → facts.
pub(crate) fn pod_facts(pod: &Pod) -> PodFacts {
    let meta = &pod.metadata;
    let name = meta.name.clone().unwrap_or_default();
    let spec = pod.spec.as_ref();
    PodFacts {
        namespace: meta.namespace.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        owner: meta
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
            .map(|o| OwnerRef {
                kind: o.kind.clone(),
                name: o.name.clone(),
            }),
        annotations: meta.annotations.clone().unwrap_or_default(),
        labels: meta.labels.clone().unwrap_or_default(),
        phase: phase(pod.status.as_ref().and_then(|s| s.phase.as_deref())),
        deletion_timestamp: meta.deletion_timestamp.as_ref().and_then(time),
        termination_grace_period_seconds: spec.and_then(|s| s.termination_grace_period_seconds),
        priority: spec.and_then(|s| s.priority),
        priority_class_name: spec.and_then(|s| s.priority_class_name.clone()),
        requests: pod_requests(pod),
        volumes: spec
            .and_then(|s| s.volumes.as_ref())
            .into_iter()
            .flatten()
            .map(|v| VolumeFacts {
                name: v.name.clone(),
                persistent_volume_claim: v
                    .persistent_volume_claim
                    .as_ref()
                    .map(|c| c.claim_name.clone())
                    // A generic ephemeral volume's PVC is named `<pod>-<volume>` by the API.
                    .or_else(|| v.ephemeral.as_ref().map(|_| format!("{name}-{}", v.name))),
                empty_dir: v.empty_dir.is_some(),
            })
            .collect(),
        node_selector: spec
            .and_then(|s| s.node_selector.clone())
            .unwrap_or_default(),
        tolerations: spec
            .and_then(|s| s.tolerations.as_ref())
            .into_iter()
            .flatten()
            .map(|t| Toleration {
                key: t.key.clone().filter(|k| !k.is_empty()),
                operator: t.operator.clone(),
                value: t.value.clone(),
                // Empty effect means "all effects", like an absent one.
                effect: t.effect.as_deref().and_then(|e| e.parse().ok()),
                toleration_seconds: t.toleration_seconds,
            })
            .collect(),
        created_at: meta.creation_timestamp.as_ref().and_then(time),
        resource_version: meta.resource_version.clone(),
        ip: pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .filter(|ip| !ip.is_empty()),
        name,
    }
}

fn taint_json(t: &Taint) -> Value {
    let mut m = Map::new();
    m.insert("key".into(), t.key.clone().into());
    if let Some(v) = &t.value {
        m.insert("value".into(), v.clone().into());
    }
    m.insert("effect".into(), t.effect.as_str().into());
    Value::Object(m)
}

/// A toleration as the API spells it (absent fields left out, as `kubectl get -o json` shows).
fn toleration_json(t: &Toleration) -> Value {
    let mut m = Map::new();
    if let Some(k) = &t.key {
        m.insert("key".into(), k.clone().into());
    }
    if let Some(o) = &t.operator {
        m.insert("operator".into(), o.clone().into());
    }
    if let Some(v) = &t.value {
        m.insert("value".into(), v.clone().into());
    }
    if let Some(e) = t.effect {
        m.insert("effect".into(), e.as_str().into());
    }
    if let Some(s) = t.toleration_seconds {
        m.insert("tolerationSeconds".into(), s.into());
    }
    Value::Object(m)
}

/// The JSON Patch (RFC 6902) that gives a pending pod the standby toleration and annotation.
///
/// The `test` operations make it conditional: on the uid, so a same-named successor is never
/// touched, and on the resourceVersion when known, so tolerations read a moment ago are not
/// overwritten after a concurrent change. `add` on an existing member replaces it: both lists
/// are the pod's complete values after the patch.
pub(crate) fn toleration_patch(patch: &TolerationPatch) -> Value {
    let mut ops = vec![json!({"op": "test", "path": "/metadata/uid", "value": patch.uid})];
    if let Some(rv) = &patch.resource_version {
        ops.push(json!({"op": "test", "path": "/metadata/resourceVersion", "value": rv}));
    }
    ops.push(json!({
        "op": "add",
        "path": "/spec/tolerations",
        "value": patch.tolerations_after.iter().map(toleration_json).collect::<Vec<_>>(),
    }));
    ops.push(
        json!({"op": "add", "path": "/metadata/annotations", "value": patch.annotations_after}),
    );
    Value::Array(ops)
}

/// The JSON patch that takes a pod out of rotation: its serving label set to `false`, only if
/// the uid is still the one planned for (a `test` that fails is a 422).
pub(crate) fn leave_rotation_patch(pod: &PodUid) -> Value {
    // RFC 6901: `/` in a key is written `~1`.
    let label = constants::LABEL_SERVING
        .replace('~', "~0")
        .replace('/', "~1");
    json!([
        {"op": "test", "path": "/metadata/uid", "value": pod.uid},
        {"op": "add", "path": format!("/metadata/labels/{label}"),
         "value": constants::LABEL_SERVING_OUT},
    ])
}

/// The merge patch that cordons or uncordons a node (its taints are left to the node
/// lifecycle controller and to costop's own patches).
pub(crate) fn unschedulable_patch(unschedulable: bool) -> Value {
    json!({"spec": {"unschedulable": unschedulable}})
}

fn metadata_with_precondition(resource_version: Option<&str>) -> Map<String, Value> {
    let mut meta = Map::new();
    // In a merge patch, a resourceVersion makes the write conditional: 409 if it moved.
    if let Some(rv) = resource_version {
        meta.insert("resourceVersion".into(), rv.into());
    }
    meta
}

/// The single merge patch that cordons, taints, labels and annotates the node.
pub(crate) fn cordon_patch(action: &CordonAndTaint) -> Value {
    let mut meta = metadata_with_precondition(action.resource_version.as_deref());
    if action.exclude_from_lb_label {
        meta.insert(
            "labels".into(),
            json!({ constants::LABEL_EXCLUDE_FROM_EXTERNAL_LB: constants::LABEL_EXCLUDE_FROM_EXTERNAL_LB_VALUE }),
        );
    }
    if !action.annotations.is_empty() {
        meta.insert("annotations".into(), json!(action.annotations));
    }
    let mut spec = Map::new();
    if action.cordon {
        spec.insert("unschedulable".into(), true.into());
    }
    // A merge patch replaces lists whole: `taints_after` is the node's complete list.
    spec.insert(
        "taints".into(),
        action.taints_after.iter().map(taint_json).collect(),
    );
    json!({ "metadata": meta, "spec": spec })
}

/// The merge patch giving a node back what costop took: `null` deletes a label or annotation,
/// the taint list is replaced whole.
pub(crate) fn restore_patch(restore: &RestoreNode) -> Value {
    let mut meta = metadata_with_precondition(restore.resource_version.as_deref());
    let nulls = |keys: &[String]| -> Map<String, Value> {
        keys.iter().map(|k| (k.clone(), Value::Null)).collect()
    };
    if !restore.remove_labels.is_empty() {
        meta.insert(
            "labels".into(),
            Value::Object(nulls(&restore.remove_labels)),
        );
    }
    if !restore.remove_annotations.is_empty() {
        meta.insert(
            "annotations".into(),
            Value::Object(nulls(&restore.remove_annotations)),
        );
    }
    json!({
        "metadata": meta,
        "spec": {
            "unschedulable": restore.unschedulable,
            "taints": restore.taints_after.iter().map(taint_json).collect::<Vec<_>>(),
        }
    })
}

/// The merge patch replacing the node's taints.
pub(crate) fn taints_patch(taints: &[Taint], resource_version: Option<&str>) -> Value {
    let meta = metadata_with_precondition(resource_version);
    let taints: Vec<Value> = taints.iter().map(taint_json).collect();
    if meta.is_empty() {
        json!({ "spec": { "taints": taints } })
    } else {
        json!({ "metadata": meta, "spec": { "taints": taints } })
    }
}

/// The policy/v1 Eviction. Built here rather than with kube's `Api::evict`, whose body spells the
/// field `delete_options`: the API server ignores that unknown field, silently dropping the grace
/// period and the UID precondition.
pub(crate) fn eviction_body(pod: &EvictPod) -> Value {
    let mut delete_options = json!({ "gracePeriodSeconds": pod.grace_period_seconds.max(0) });
    if !pod.uid.is_empty() {
        delete_options["preconditions"] = json!({ "uid": pod.uid });
    }
    json!({
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": { "name": pod.name, "namespace": pod.namespace },
        "deleteOptions": delete_options,
    })
}

/// A 429's message with its causes (the PDB that refused), e.g. "Cannot evict pod as it would
/// violate the pod's disruption budget. (The disruption budget web needs 2 healthy pods and has 2
/// currently)".
pub(crate) fn blocked_message(status: &Status) -> String {
    let causes: Vec<&str> = status
        .details
        .iter()
        .flat_map(|d| d.causes.iter())
        .map(|c| c.message.as_str())
        .filter(|m| !m.is_empty())
        .collect();
    let message = if status.message.is_empty() {
        "eviction refused (429)"
    } else {
        &status.message
    };
    if causes.is_empty() {
        message.to_owned()
    } else {
        format!("{message} ({})", causes.join("; "))
    }
}

/// Whether a 409 is a failed UID precondition (the pod was replaced by a same-named successor)
/// rather than a write conflict.
pub(crate) fn is_uid_precondition_failure(status: &Status) -> bool {
    status.message.contains("Precondition failed") || status.message.contains("UID in precondition")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": "ip-10-0-1-23.ec2.internal", "resourceVersion": "42", "labels": {"a": "b"}},
            "spec": {
                "providerID": "aws:///us-east-1a/i-0123456789abcdef0",
                "unschedulable": true,
                "taints": [
                    {"key": "k", "value": "v", "effect": "NoSchedule"},
                    {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": "2025-01-01T00:00:00Z"}
                ]
            }
        }))
        .unwrap()
    }

    #[test]
    fn nodes_map_to_facts() {
        let f = node_facts(&node());
        assert_eq!(f.name, "ip-10-0-1-23.ec2.internal");
        assert_eq!(
            f.provider_id.as_deref(),
            Some("aws:///us-east-1a/i-0123456789abcdef0")
        );
        assert_eq!(f.resource_version.as_deref(), Some("42"));
        assert_eq!(f.labels["a"], "b");
        assert!(f.unschedulable);
        assert_eq!(
            f.taints,
            vec![
                Taint::new("k", Some("v".into()), TaintEffect::NoSchedule),
                Taint::new(
                    "node.kubernetes.io/unreachable",
                    None,
                    TaintEffect::NoExecute
                ),
            ]
        );
        assert_eq!(node_facts(&Node::default()), NodeFacts::default());
    }

    #[test]
    fn pods_map_to_facts() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {
                "name": "web-1", "namespace": "shop", "uid": "u-1",
                "deletionTimestamp": "2025-01-01T00:00:01.5Z",
                "annotations": {"kubernetes.io/config.mirror": "x"},
                "labels": {"app": "web"},
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Other", "name": "o", "uid": "1"},
                    {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "2", "controller": true}
                ]
            },
            "spec": {
                "containers": [
                    {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "1Gi"}}},
                    {"name": "b", "resources": {"requests": {"cpu": "150m"}}}
                ],
                "initContainers": [
                    {"name": "init", "resources": {"requests": {"cpu": "2"}}},
                    {"name": "sidecar", "restartPolicy": "Always", "resources": {"requests": {"memory": "512Mi"}}}
                ],
                "overhead": {"cpu": "10m"},
                "terminationGracePeriodSeconds": 45,
                "priority": 1000, "priorityClassName": "high",
                "nodeSelector": {"zone": "a"},
                "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}, {"operator": "Exists"}],
                "volumes": [
                    {"name": "data", "persistentVolumeClaim": {"claimName": "data-web-1"}},
                    {"name": "scratch", "emptyDir": {}},
                    {"name": "eph", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
                    {"name": "cfg", "configMap": {"name": "c"}}
                ]
            },
            "status": {"phase": "Running"}
        }))
        .unwrap();
        let f = pod_facts(&pod);
        assert_eq!(
            (f.namespace.as_str(), f.name.as_str(), f.uid.as_str()),
            ("shop", "web-1", "u-1")
        );
        assert_eq!(
            f.owner,
            Some(OwnerRef {
                kind: "StatefulSet".into(),
                name: "web".into()
            })
        );
        assert!(f.is_mirror());
        assert_eq!(f.phase, PodPhase::Running);
        assert_eq!(
            f.deletion_timestamp,
            Some("2025-01-01T00:00:01.5Z".parse().unwrap())
        );
        assert_eq!(f.termination_grace_period_seconds, Some(45));
        assert_eq!(
            (f.priority, f.priority_class_name.as_deref()),
            (Some(1000), Some("high"))
        );
        // max(100m + 150m, init 2) + 10m overhead; 1Gi + the sidecar's 512Mi.
        assert_eq!(f.requests["cpu"], "2010m");
        assert_eq!(f.requests["memory"], "1536Mi");
        assert_eq!(f.node_selector["zone"], "a");
        assert_eq!(f.tolerations[0].effect, Some(TaintEffect::NoExecute));
        assert_eq!(f.tolerations[0].toleration_seconds, Some(5));
        assert_eq!(f.tolerations[1].key, None);
        let pvcs: Vec<_> = f.pvc_names().collect();
        assert_eq!(pvcs, ["data-web-1", "web-1-eph"]);
        assert!(f.volumes[1].empty_dir);
        assert_eq!(f.volumes.len(), 4);
        assert_eq!(pod_facts(&Pod::default()).phase, PodPhase::Pending);
        assert_eq!(phase(Some("Weird")), PodPhase::Unknown);
    }

    #[test]
    fn readiness_creation_time_and_resource_version_are_read() {
        let node_with = |conditions: Value| -> Node {
            serde_json::from_value(json!({
                "metadata": {"name": "n", "creationTimestamp": "2025-01-01T00:00:02Z"},
                "status": {"conditions": conditions}
            }))
            .unwrap()
        };
        let cond = |t: &str, s: &str| json!({"type": t, "status": s});
        let ready = |conditions| node_facts(&node_with(conditions)).ready;
        assert_eq!(
            ready(json!([
                cond("MemoryPressure", "False"),
                cond("Ready", "True")
            ])),
            Some(true)
        );
        assert_eq!(ready(json!([cond("Ready", "False")])), Some(false));
        assert_eq!(
            ready(json!([cond("Ready", "Unknown")])),
            Some(false),
            "the kubelet stopped posting"
        );
        assert_eq!(ready(json!([])), None);
        assert_eq!(ready(json!([cond("DiskPressure", "False")])), None);
        assert_eq!(node_facts(&node()).ready, None, "no status at all");
        assert_eq!(
            node_facts(&node_with(json!([]))).created_at,
            Some("2025-01-01T00:00:02Z".parse().unwrap())
        );

        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u", "resourceVersion": "77", "creationTimestamp": "2025-01-01T00:00:03Z"},
            "spec": {"containers": []}
        }))
        .unwrap();
        let f = pod_facts(&pod);
        assert_eq!(f.resource_version.as_deref(), Some("77"));
        assert_eq!(f.created_at, Some("2025-01-01T00:00:03Z".parse().unwrap()));
        let bare = pod_facts(&Pod::default());
        assert_eq!((bare.resource_version, bare.created_at), (None, None));
    }

    fn toleration_patch_for(resource_version: Option<&str>) -> TolerationPatch {
        TolerationPatch {
            namespace: "shop".into(),
            name: "web-2".into(),
            uid: "u-2".into(),
            resource_version: resource_version.map(str::to_owned),
            tolerations_after: vec![
                Toleration {
                    key: Some("node.kubernetes.io/not-ready".into()),
                    operator: Some("Exists".into()),
                    value: None,
                    effect: Some(TaintEffect::NoExecute),
                    toleration_seconds: Some(300),
                },
                Toleration {
                    key: Some("costop.io/standby".into()),
                    operator: Some("Equal".into()),
                    value: Some("true".into()),
                    effect: Some(TaintEffect::NoSchedule),
                    toleration_seconds: None,
                },
                Toleration {
                    operator: Some("Exists".into()),
                    ..Toleration::default()
                },
            ],
            annotations_after: BTreeMap::from([
                ("a".to_owned(), "b".to_owned()),
                ("costop.io/standby-for".to_owned(), "x1".to_owned()),
            ]),
            interruption_id: "x1".into(),
            owner_kind: "ReplicaSet".into(),
            owner_name: "web-abc".into(),
        }
    }

    #[test]
    fn the_toleration_patch_tests_uid_and_resource_version_then_sets_both_lists() {
        assert_eq!(
            toleration_patch(&toleration_patch_for(Some("12"))),
            json!([
                {"op": "test", "path": "/metadata/uid", "value": "u-2"},
                {"op": "test", "path": "/metadata/resourceVersion", "value": "12"},
                {"op": "add", "path": "/spec/tolerations", "value": [
                    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                    {"key": "costop.io/standby", "operator": "Equal", "value": "true", "effect": "NoSchedule"},
                    {"operator": "Exists"}
                ]},
                {"op": "add", "path": "/metadata/annotations", "value": {"a": "b", "costop.io/standby-for": "x1"}}
            ])
        );
        let unconditional = toleration_patch(&toleration_patch_for(None));
        let paths: Vec<&str> = unconditional
            .as_array()
            .unwrap()
            .iter()
            .map(|op| op["path"].as_str().unwrap())
            .collect();
        assert_eq!(
            paths,
            [
                "/metadata/uid",
                "/spec/tolerations",
                "/metadata/annotations"
            ]
        );
    }

    #[test]
    fn tolerations_survive_the_round_trip_through_the_api_shape() {
        let patch = toleration_patch_for(None);
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [], "tolerations": toleration_patch(&patch)[1]["value"]}
        }))
        .unwrap();
        assert_eq!(pod_facts(&pod).tolerations, patch.tolerations_after);
        assert_eq!(
            unschedulable_patch(false),
            json!({"spec": {"unschedulable": false}})
        );
    }

    #[test]
    fn the_cordon_patch_is_one_conditional_merge_patch() {
        let action = CordonAndTaint {
            node: "n".into(),
            cordon: true,
            taint: Taint::new(
                "costop.io/spot-interruption",
                Some("x".into()),
                TaintEffect::NoSchedule,
            ),
            taints_after: vec![
                Taint::new("other", None, TaintEffect::NoExecute),
                Taint::new(
                    "costop.io/spot-interruption",
                    Some("x".into()),
                    TaintEffect::NoSchedule,
                ),
            ],
            exclude_from_lb_label: true,
            annotations: BTreeMap::from([(
                constants::ANNOTATION_INTERRUPTION_ID.to_owned(),
                "i1".to_owned(),
            )]),
            resource_version: Some("7".into()),
        };
        assert_eq!(
            cordon_patch(&action),
            json!({
                "metadata": {
                    "resourceVersion": "7",
                    "labels": {"node.kubernetes.io/exclude-from-external-load-balancers": "true"},
                    "annotations": {"costop.io/interruption-id": "i1"}
                },
                "spec": {
                    "unschedulable": true,
                    "taints": [
                        {"key": "other", "effect": "NoExecute"},
                        {"key": "costop.io/spot-interruption", "value": "x", "effect": "NoSchedule"}
                    ]
                }
            })
        );
        let bare = CordonAndTaint {
            cordon: false,
            exclude_from_lb_label: false,
            annotations: BTreeMap::new(),
            resource_version: None,
            taints_after: vec![],
            ..action
        };
        assert_eq!(
            cordon_patch(&bare),
            json!({"metadata": {}, "spec": {"taints": []}})
        );
    }

    #[test]
    fn the_taints_patch_carries_the_precondition_only_when_given() {
        let t = [Taint::new("k", None, TaintEffect::NoSchedule)];
        assert_eq!(
            taints_patch(&t, Some("9")),
            json!({"metadata": {"resourceVersion": "9"}, "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}})
        );
        assert_eq!(taints_patch(&[], None), json!({"spec": {"taints": []}}));
    }

    #[test]
    fn the_standby_node_patch_uncordons_replaces_the_taints_and_deletes_the_labels_conditionally() {
        let patch = RestoreNode {
            node: "n1".into(),
            unschedulable: false,
            remove_annotations: Vec::new(),
            taints_after: vec![Taint::new(
                "costop.io/standby",
                Some("true".into()),
                TaintEffect::NoSchedule,
            )],
            remove_labels: vec![constants::LABEL_EXCLUDE_FROM_EXTERNAL_LB.into()],
            resource_version: Some("7".into()),
        };
        assert_eq!(
            restore_patch(&patch),
            json!({
                "metadata": {
                    "resourceVersion": "7",
                    "labels": {"node.kubernetes.io/exclude-from-external-load-balancers": null},
                },
                "spec": {
                    "unschedulable": false,
                    "taints": [{"key": "costop.io/standby", "value": "true", "effect": "NoSchedule"}],
                },
            })
        );
        let bare = RestoreNode {
            remove_labels: Vec::new(),
            resource_version: None,
            ..patch
        };
        assert_eq!(restore_patch(&bare)["metadata"], json!({}));
    }

    #[test]
    fn the_eviction_carries_grace_and_uid_in_delete_options() {
        let pod = EvictPod {
            namespace: "ns".into(),
            name: "p".into(),
            uid: "u".into(),
            after_rotation: false,
            grace_period_seconds: -3,
        };
        assert_eq!(
            eviction_body(&pod),
            json!({
                "apiVersion": "policy/v1", "kind": "Eviction",
                "metadata": {"name": "p", "namespace": "ns"},
                "deleteOptions": {"gracePeriodSeconds": 0, "preconditions": {"uid": "u"}}
            })
        );
        let no_uid = EvictPod {
            uid: String::new(),
            grace_period_seconds: 30,
            ..pod
        };
        assert_eq!(
            eviction_body(&no_uid)["deleteOptions"],
            json!({"gracePeriodSeconds": 30})
        );
    }

    #[test]
    fn refusals_and_precondition_failures_are_read_from_the_status() {
        let s: Status = serde_json::from_value(json!({
            "status": "Failure", "code": 429, "reason": "TooManyRequests",
            "message": "Cannot evict pod as it would violate the pod's disruption budget.",
            "details": {"causes": [{"reason": "DisruptionBudget", "message": "The disruption budget web needs 2 healthy pods and has 2 currently"}]}
        }))
        .unwrap();
        assert_eq!(
            blocked_message(&s),
            "Cannot evict pod as it would violate the pod's disruption budget. (The disruption budget web needs 2 healthy pods and has 2 currently)"
        );
        assert_eq!(
            blocked_message(&Status::failure("", "")),
            "eviction refused (429)"
        );
        let conflict = Status::failure(
            "Operation cannot be fulfilled on pods \"p\": Precondition failed: UID in precondition: a, UID in object meta: b",
            "Conflict",
        );
        assert!(is_uid_precondition_failure(&conflict));
        assert!(!is_uid_precondition_failure(&Status::failure(
            "the object has been modified",
            "Conflict"
        )));
    }
}
