//! The DaemonSet controller: one pod per eligible node. A node is eligible when the template's
//! `nodeSelector` / required node affinity match it and every NoSchedule/NoExecute taint is
//! tolerated, counting the tolerations the real controller adds to daemon pods (not-ready and
//! unreachable NoExecute; disk/memory/pid-pressure and unschedulable NoSchedule;
//! network-unavailable for hostNetwork). A pod keeps running on a node that only stopped being
//! eligible through NoSchedule taints. Pods are created with required node affinity
//! `matchFields metadata.name In [<node>]`, as the real controller does, and the scheduler binds
//! them. Template changes roll out node by node (RollingUpdate, `maxUnavailable`, default 1);
//! OnDelete waits. Status: desired/current/misscheduled/ready/available/updated counts.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::{Value, json};

use super::At;
use super::informer::{Change, Informer, Key};
use super::matching::{self, Toleration};
use super::{Loop, PodName};
use crate::resources::{DAEMONSETS, NODES, PODS, ResourceDef};
use crate::store::DeleteOptions;

const COMPONENT: &str = "daemonset-controller";
const HASH: &str = "controller-revision-hash";

#[derive(Default)]
pub struct DaemonSets {
    dirty: BTreeSet<Key>,
}

fn key_of(o: &Value) -> Key {
    (super::namespace(o).to_string(), super::name(o).to_string())
}

impl Loop for DaemonSets {
    const NAME: &'static str = "daemonset";

    fn kinds(&self) -> Vec<&'static ResourceDef> {
        vec![&DAEMONSETS, &NODES, &PODS]
    }

    fn observe(&mut self, inf: &Informer, ch: &Change) {
        if ch.is(&DAEMONSETS) {
            self.dirty.insert(key_of(ch.object()));
        } else if ch.is(&NODES) {
            let relevant = |n: Option<&Value>| {
                n.map(|n| {
                    (
                        n.at("/metadata/labels").cloned(),
                        n.at("/spec/taints").cloned(),
                        super::node_ready(n),
                    )
                })
            };
            if relevant(ch.old.as_deref()) != relevant(ch.new.as_deref()) {
                self.dirty
                    .extend(inf.iter(&DAEMONSETS).map(|(k, _)| k.clone()));
            }
        } else {
            for p in [ch.old.as_deref(), ch.new.as_deref()].into_iter().flatten() {
                if let Some(owner) = super::controller_ref(p).filter(|r| r.kind == "DaemonSet") {
                    self.dirty
                        .insert((super::namespace(p).to_string(), owner.name.to_string()));
                }
            }
        }
    }

    fn mark_all(&mut self, inf: &Informer) {
        self.dirty
            .extend(inf.iter(&DAEMONSETS).map(|(k, _)| k.clone()));
    }

    fn work(&mut self, inf: &Informer) -> bool {
        while let Some(key) = self.dirty.pop_first() {
            sync(inf, &key);
        }
        false
    }
}

/// The tolerations the real controller adds to every daemon pod.
fn with_daemon_tolerations(template: &mut Value) {
    let host_network = template
        .at("/spec/hostNetwork")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut wanted = vec![
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if host_network {
        wanted.push(("node.kubernetes.io/network-unavailable", "NoSchedule"));
    }
    let mut tols = template
        .at("/spec/tolerations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (k, e) in wanted {
        let present = tols.iter().any(|t| {
            t.get("key").and_then(Value::as_str) == Some(k)
                && t.get("effect").and_then(Value::as_str) == Some(e)
                && t.get("operator").and_then(Value::as_str) == Some("Exists")
                && t.get("tolerationSeconds").is_none()
        });
        if !present {
            tols.push(json!({"key": k, "operator": "Exists", "effect": e}));
        }
    }
    super::put(template, &["spec", "tolerations"], json!(tols));
}

/// Required node affinity pinned to `node`: each existing term keeps its expressions and gets
/// `matchFields metadata.name In [node]` (one such term if there were none).
fn pin_to_node(template: &mut Value, node: &str) {
    let field = json!([{"key": "metadata.name", "operator": "In", "values": [node]}]);
    let path = "/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms";
    let mut terms = template
        .at(path)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if terms.is_empty() {
        terms.push(json!({}));
    }
    for t in terms.iter_mut() {
        super::put(t, &["matchFields"], field.clone());
    }
    super::put(
        template,
        &[
            "spec",
            "affinity",
            "nodeAffinity",
            "requiredDuringSchedulingIgnoredDuringExecution",
        ],
        json!({"nodeSelectorTerms": terms}),
    );
}

/// The node a daemon pod is for: its `spec.nodeName`, else its pinned affinity.
fn target_node(pod: &Value) -> Option<String> {
    if let Some(n) = super::pod_node(pod) {
        return Some(n.to_string());
    }
    pod.at("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
        .and_then(Value::as_array)?
        .iter()
        .flat_map(|t| t.get("matchFields").and_then(Value::as_array).into_iter().flatten())
        .find(|f| f.get("key").and_then(Value::as_str) == Some("metadata.name"))
        .and_then(|f| f.at("/values/0"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// (should run, should keep running) on `node` for a pod like `template`.
fn eligibility(template: &Value, tols: &[Toleration], node: &Value) -> (bool, bool) {
    if !matching::node_affinity_matches(template, node) {
        return (false, false);
    }
    let taints = matching::taints(node);
    let blocked = |effect: &str| {
        taints
            .iter()
            .any(|t| t.effect == effect && !matching::tolerated(tols, t))
    };
    let keep = !blocked("NoExecute");
    (keep && !blocked("NoSchedule"), keep)
}

fn sync(inf: &Informer, key: &Key) {
    let Some(ds) = inf.get_key(&DAEMONSETS, key).cloned() else {
        return;
    };
    if super::is_terminating(&ds) {
        return;
    }
    let store = inf.store().clone();
    let uid = super::uid(&ds).to_string();
    let mut template = ds
        .at("/spec/template")
        .cloned()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    let hash = super::template_hash(&template);
    with_daemon_tolerations(&mut template);
    let tols = matching::tolerations(&template);

    let mut by_node: BTreeMap<String, Vec<Arc<Value>>> = BTreeMap::new();
    let mut stray: Vec<Arc<Value>> = Vec::new();
    for p in inf.owned_by(&uid, &PODS) {
        match target_node(p) {
            Some(n) => by_node.entry(n).or_default().push(p.clone()),
            None => stray.push(p.clone()),
        }
    }

    let mut create: Vec<String> = Vec::new();
    let mut delete: Vec<(String, String)> = Vec::new(); // (pod, reason)
    let (mut desired, mut current, mut misscheduled, mut ready, mut updated) = (0, 0, 0, 0, 0);
    let mut old_pods: Vec<Arc<Value>> = Vec::new();
    for (_, node) in inf.iter(&NODES) {
        let name = super::name(node).to_string();
        let (run, keep) = eligibility(&template, &tols, node);
        let pods = by_node.remove(&name).unwrap_or_default();
        let mut live: Vec<&Arc<Value>> =
            pods.iter().filter(|p| !super::is_terminating(p)).collect();
        for p in live.iter().filter(|p| super::phase(p) == "Failed") {
            delete.push((super::name(p).to_string(), "failed".into()));
        }
        live.retain(|p| super::phase(p) != "Failed");
        if run {
            desired += 1;
        }
        if !keep {
            for p in &live {
                delete.push((super::name(p).to_string(), "not eligible".into()));
            }
            if !live.is_empty() {
                misscheduled += 1;
            }
            continue;
        }
        if live.is_empty() {
            if run {
                create.push(name);
            }
            continue;
        }
        if !run {
            misscheduled += 1;
            continue;
        }
        current += 1;
        // Keep the oldest pod; extras go.
        live.sort_by_key(|p| {
            super::s(p, "/metadata/creationTimestamp")
                .unwrap_or("")
                .to_string()
        });
        for extra in &live[1..] {
            delete.push((super::name(extra).to_string(), "duplicate".into()));
        }
        let p = live[0];
        if super::pod_ready(p) {
            ready += 1;
        }
        if super::s(p, &format!("/metadata/labels/{HASH}")) == Some(hash.as_str()) {
            updated += 1;
        } else {
            old_pods.push(p.clone());
        }
    }
    // Pods for nodes that no longer exist (unbound; bound ones go through pod GC).
    for p in by_node.values().flatten().chain(stray.iter()) {
        if !super::is_terminating(p) && super::pod_node(p).is_none() {
            delete.push((super::name(p).to_string(), "node gone".into()));
        }
    }
    // Rolling update: replace old pods, at most maxUnavailable nodes without a ready pod.
    let strategy = super::s(&ds, "/spec/updateStrategy/type").unwrap_or("RollingUpdate");
    if strategy == "RollingUpdate" && !old_pods.is_empty() {
        let max_unavailable = super::int_or_percent(
            ds.at("/spec/updateStrategy/rollingUpdate/maxUnavailable"),
            desired,
            true,
        )
        .unwrap_or(1)
        .max(1);
        let mut unavailable = desired - ready;
        old_pods.sort_by_key(|p| super::pod_ready(p));
        for p in old_pods {
            if !super::pod_ready(&p) {
                delete.push((super::name(&p).to_string(), "update".into()));
            } else if unavailable < max_unavailable {
                unavailable += 1;
                delete.push((super::name(&p).to_string(), "update".into()));
            }
        }
    }

    let generation = super::generation(&ds).to_string();
    let prefix = format!("{}-", key.1);
    for node in &create {
        let mut tpl = template.clone();
        pin_to_node(&mut tpl, node);
        let pod = super::pod_from_template(
            &ds,
            &DAEMONSETS,
            &tpl,
            PodName::Generate(&prefix),
            &[(HASH, &hash), ("pod-template-generation", &generation)],
        );
        super::write(&store, "daemonset pod create", |tx| {
            let p = tx.create(&PODS, Some(&key.0), pod)?;
            super::record(
                tx,
                &ds,
                &DAEMONSETS,
                "Normal",
                "SuccessfulCreate",
                &format!("Created pod: {}", super::name(&p)),
                COMPONENT,
            );
            Ok(())
        });
    }
    if !delete.is_empty() {
        super::write(&store, "daemonset pod delete", |tx| {
            for (p, _) in &delete {
                if tx
                    .delete(&PODS, Some(&key.0), p, &DeleteOptions::default())
                    .is_ok()
                {
                    super::record(
                        tx,
                        &ds,
                        &DAEMONSETS,
                        "Normal",
                        "SuccessfulDelete",
                        &format!("Deleted pod: {p}"),
                        COMPONENT,
                    );
                }
            }
            Ok(())
        });
    }

    let status = json!({
        "desiredNumberScheduled": desired,
        "currentNumberScheduled": current,
        "numberMisscheduled": misscheduled,
        "numberReady": ready,
        "numberAvailable": ready,
        "numberUnavailable": (desired - ready).max(0),
        "updatedNumberScheduled": updated,
        "observedGeneration": super::generation(&ds),
    });
    let differs = status
        .as_object()
        .into_iter()
        .flatten()
        .any(|(k, v)| ds.at(&format!("/status/{k}")).unwrap_or(&json!(0)) != v);
    if differs {
        super::write(&store, "daemonset status", |tx| {
            tx.modify(&DAEMONSETS, Some(&key.0), &key.1, |o| {
                if super::uid(o) == uid {
                    for (k, v) in status.as_object().into_iter().flatten() {
                        super::put(o, &["status", k], v.clone());
                    }
                }
                Ok(())
            })
        });
    }
}
