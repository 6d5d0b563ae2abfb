//! The node lifecycle controller's tainting: keeps the condition taints in step with each
//! node (TaintNodesByCondition and the NoExecute taints), as the real controller does:
//!
//! - `spec.unschedulable` → `node.kubernetes.io/unschedulable:NoSchedule` (what a cordon shows);
//! - Ready=False → `node.kubernetes.io/not-ready` NoSchedule + NoExecute;
//! - Ready=Unknown (the kubelet stopped reporting) → `node.kubernetes.io/unreachable` NoSchedule
//!   + NoExecute (with `timeAdded`, from which tolerationSeconds run in the taint manager);
//! - Memory/Disk/PID pressure and NetworkUnavailable → their NoSchedule taints.
//!
//! When a node stops being Ready its pods are marked Ready=False (`MarkPodsNotReady`), so
//! endpoints and PDBs stop counting them. Nodes without a Ready condition at all (objects
//! created by hand) are left alone. Other taints are never touched.

use std::collections::{BTreeSet, HashMap};

use serde_json::{Value, json};

use super::At;
use super::Loop;
use super::informer::{Change, Informer};
use super::matching::{self, Taint};
use crate::clock::Clock;
use crate::resources::{NODES, PODS, ResourceDef};

pub const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
const CONDITION_TAINTS: &[(&str, &str)] = &[
    ("MemoryPressure", "node.kubernetes.io/memory-pressure"),
    ("DiskPressure", "node.kubernetes.io/disk-pressure"),
    ("PIDPressure", "node.kubernetes.io/pid-pressure"),
    (
        "NetworkUnavailable",
        "node.kubernetes.io/network-unavailable",
    ),
];

#[derive(Default)]
pub struct NodeLifecycle {
    dirty: BTreeSet<String>,
    /// Readiness as last acted on, so pods are marked NotReady once per transition.
    was_ready: HashMap<String, bool>,
}

impl Loop for NodeLifecycle {
    const NAME: &'static str = "node-lifecycle";

    fn kinds(&self) -> Vec<&'static ResourceDef> {
        // Pods are cached only to find those on a node that goes NotReady.
        vec![&NODES, &PODS]
    }

    fn observe(&mut self, _inf: &Informer, ch: &Change) {
        if ch.is(&NODES) {
            let name = super::name(ch.object()).to_string();
            if ch.new.is_none() {
                self.was_ready.remove(&name);
                self.dirty.remove(&name);
            } else {
                self.dirty.insert(name);
            }
        }
    }

    fn mark_all(&mut self, inf: &Informer) {
        self.dirty
            .extend(inf.iter(&NODES).map(|(_, n)| super::name(n).to_string()));
    }

    fn work(&mut self, inf: &Informer) -> bool {
        while let Some(name) = self.dirty.pop_first() {
            self.sync(inf, &name);
        }
        false
    }
}

fn is_managed(key: &str) -> bool {
    key == UNSCHEDULABLE
        || key == NOT_READY
        || key == UNREACHABLE
        || CONDITION_TAINTS.iter().any(|(_, k)| *k == key)
}

/// The controller-owned taints `node` should carry.
fn desired(node: &Value) -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    if node
        .at("/spec/unschedulable")
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        out.push((UNSCHEDULABLE, "NoSchedule"));
    }
    match super::condition_status(node, "Ready") {
        Some("True") | None => {}
        Some("False") => {
            out.push((NOT_READY, "NoSchedule"));
            out.push((NOT_READY, "NoExecute"));
        }
        Some(_) => {
            out.push((UNREACHABLE, "NoSchedule"));
            out.push((UNREACHABLE, "NoExecute"));
        }
    }
    for (cond, key) in CONDITION_TAINTS {
        if super::condition_status(node, cond) == Some("True") {
            out.push((key, "NoSchedule"));
        }
    }
    out
}

impl NodeLifecycle {
    fn sync(&mut self, inf: &Informer, name: &str) {
        let Some(node) = inf.get(&NODES, "", name).cloned() else {
            return;
        };
        let want = desired(&node);
        let have: Vec<Taint> = matching::taints(&node)
            .into_iter()
            .filter(|t| is_managed(&t.key))
            .collect();
        let same = want.len() == have.len()
            && want
                .iter()
                .all(|(k, e)| have.iter().any(|t| t.key == *k && t.effect == *e));
        let uid = super::uid(&node).to_string();
        if !same {
            super::write(inf.store(), "node taints", |tx| {
                tx.modify(&NODES, None, name, |o| {
                    if super::uid(o) != uid {
                        return Ok(());
                    }
                    let current = o
                        .at("/spec/taints")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    let fresh = desired(o);
                    let mut taints: Vec<Value> = current
                        .iter()
                        .filter(|t| {
                            let k = t.get("key").and_then(Value::as_str).unwrap_or("");
                            let e = t.get("effect").and_then(Value::as_str).unwrap_or("");
                            !is_managed(k) || fresh.iter().any(|(fk, fe)| *fk == k && *fe == e)
                        })
                        .cloned()
                        .collect();
                    for (k, e) in &fresh {
                        let present = taints.iter().any(|t| {
                            t.get("key").and_then(Value::as_str) == Some(k)
                                && t.get("effect").and_then(Value::as_str) == Some(e)
                        });
                        if !present {
                            let mut t = json!({"key": k, "effect": e});
                            if *e == "NoExecute" {
                                t["timeAdded"] = json!(Clock::now_rfc3339());
                            }
                            taints.push(t);
                        }
                    }
                    if taints.is_empty() {
                        if let Some(spec) = o.get_mut("spec").and_then(Value::as_object_mut) {
                            spec.remove("taints");
                        }
                    } else {
                        super::put(o, &["spec", "taints"], json!(taints));
                    }
                    Ok(())
                })
            });
        }
        // MarkPodsNotReady on the transition away from Ready.
        let ready = super::condition_status(&node, "Ready");
        let now_ready = ready == Some("True");
        let before = self.was_ready.insert(name.to_string(), now_ready);
        if ready.is_some() && !now_ready && before != Some(false) {
            let pods: Vec<(String, String, String)> = inf
                .pods_on(name)
                .filter(|p| !super::is_terminal(p) && super::pod_ready(p))
                .map(|p| {
                    (
                        super::namespace(p).to_string(),
                        super::name(p).to_string(),
                        super::uid(p).to_string(),
                    )
                })
                .collect();
            if !pods.is_empty() {
                super::write(inf.store(), "mark pods not ready", |tx| {
                    for (ns, pname, puid) in &pods {
                        let _ = tx.modify(&PODS, Some(ns), pname, |o| {
                            if super::uid(o) == puid {
                                super::set_condition(
                                    o,
                                    "Ready",
                                    "False",
                                    None,
                                    None,
                                    json!({"lastProbeTime": null}),
                                );
                            }
                            Ok(())
                        });
                    }
                    Ok(())
                });
            }
        }
    }
}
