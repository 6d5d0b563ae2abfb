//! The NoExecute taint manager: a pod bound to a node with a NoExecute taint it does not
//! tolerate is deleted at once; one that tolerates every such taint but with
//! `tolerationSeconds` is deleted when the smallest of those runs out (counted from when the
//! manager first saw the pod under the taint, as the real one). Deleted pods get the
//! `DisruptionTarget` condition (reason `DeletionByTaintManager`) and a `TaintManagerEviction`
//! event, and go through the normal graceful deletion.

use std::collections::{BTreeSet, HashMap};

use serde_json::{Value, json};
use tokio::time::Instant;

use super::informer::{Change, Informer, Key};
use super::matching::{self, Taint};
use super::{Loop, Timers};
use crate::resources::{NODES, PODS, ResourceDef};
use crate::store::DeleteOptions;

const COMPONENT: &str = "taint-eviction-controller";

#[derive(Default)]
pub struct TaintEviction {
    dirty: BTreeSet<Key>,
    timers: Timers<Key>,
    /// Pod uid → when it was first seen under tolerated NoExecute taints.
    since: HashMap<String, Instant>,
    /// NoExecute taints per node as last seen, to react to changes only.
    node_taints: HashMap<String, Vec<Taint>>,
}

fn no_execute(node: &Value) -> Vec<Taint> {
    matching::taints(node)
        .into_iter()
        .filter(|t| t.effect == "NoExecute")
        .collect()
}

fn key_of(p: &Value) -> Key {
    (super::namespace(p).to_string(), super::name(p).to_string())
}

impl Loop for TaintEviction {
    const NAME: &'static str = "taint-eviction";

    fn kinds(&self) -> Vec<&'static ResourceDef> {
        vec![&NODES, &PODS]
    }

    fn observe(&mut self, inf: &Informer, ch: &Change) {
        if ch.is(&NODES) {
            let name = super::name(ch.object()).to_string();
            let taints = ch.new.as_deref().map(no_execute).unwrap_or_default();
            let changed = self.node_taints.get(&name) != Some(&taints);
            if ch.new.is_none() {
                self.node_taints.remove(&name);
            } else {
                self.node_taints.insert(name.clone(), taints);
            }
            if changed {
                self.dirty.extend(inf.pods_on(&name).map(|p| key_of(p)));
            }
            return;
        }
        match ch.new.as_deref() {
            Some(p) if super::pod_node(p).is_some() => {
                // Only pods on NoExecute-tainted nodes need a look.
                if super::pod_node(p)
                    .and_then(|n| self.node_taints.get(n))
                    .is_some_and(|t| !t.is_empty())
                {
                    self.dirty.insert(key_of(p));
                }
            }
            Some(_) => {}
            None => {
                if let Some(u) = ch.old.as_deref().map(super::uid) {
                    self.since.remove(u);
                }
            }
        }
    }

    fn mark_all(&mut self, inf: &Informer) {
        self.node_taints = inf
            .iter(&NODES)
            .map(|(_, n)| (super::name(n).to_string(), no_execute(n)))
            .collect();
        let tainted: Vec<String> = self
            .node_taints
            .iter()
            .filter(|(_, t)| !t.is_empty())
            .map(|(n, _)| n.clone())
            .collect();
        for n in tainted {
            self.dirty.extend(inf.pods_on(&n).map(|p| key_of(p)));
        }
    }

    fn work(&mut self, inf: &Informer) -> bool {
        for k in self.timers.due() {
            self.dirty.insert(k);
        }
        let mut evict: Vec<(Key, String, String)> = Vec::new();
        while let Some(key) = self.dirty.pop_first() {
            let Some(pod) = inf.get_key(&PODS, &key) else {
                continue;
            };
            let uid = super::uid(pod).to_string();
            let Some(node) = super::pod_node(pod) else {
                continue;
            };
            if super::is_terminating(pod) || super::is_terminal(pod) {
                self.since.remove(&uid);
                continue;
            }
            let taints = self.node_taints.get(node).cloned().unwrap_or_default();
            if taints.is_empty() {
                self.since.remove(&uid);
                continue;
            }
            let tols = matching::tolerations(pod);
            if let Some(t) = taints.iter().find(|t| !matching::tolerated(&tols, t)) {
                evict.push((key, uid, format!("{}={}:{}", t.key, t.value, t.effect)));
                continue;
            }
            // Every taint is tolerated; the shortest tolerationSeconds among the tolerations
            // in use bounds how long the pod may stay (none → forever).
            let min = taints
                .iter()
                .flat_map(|t| tols.iter().filter(move |tol| tol.tolerates(t)))
                .filter_map(|tol| tol.seconds)
                .min();
            let Some(secs) = min else {
                self.since.remove(&uid);
                continue;
            };
            let since = *self.since.entry(uid.clone()).or_insert_with(Instant::now);
            let due = since + inf.store().clock().real_secs(secs.max(0) as f64);
            if due <= Instant::now() {
                evict.push((key, uid, String::new()));
            } else {
                self.timers.at(due, key);
            }
        }
        for ((ns, name), uid, _taint) in evict {
            self.since.remove(&uid);
            super::write(inf.store(), "taint eviction", |tx| {
                let pod = tx.modify(&PODS, Some(&ns), &name, |o| {
                    if super::uid(o) != uid {
                        return Err(crate::error::ApiError::conflict("", "pods", &name));
                    }
                    super::set_condition(
                        o,
                        "DisruptionTarget",
                        "True",
                        Some("DeletionByTaintManager"),
                        Some("Taint manager: deleting due to NoExecute taint"),
                        json!({}),
                    );
                    Ok(())
                })?;
                tx.delete(&PODS, Some(&ns), &name, &DeleteOptions::default())?;
                super::record(
                    tx,
                    &pod,
                    &PODS,
                    "Normal",
                    "TaintManagerEviction",
                    &format!("Marking for deletion Pod {ns}/{name}"),
                    COMPONENT,
                );
                Ok(())
            });
        }
        false
    }

    fn deadline(&self) -> Option<Instant> {
        self.timers.next()
    }
}
