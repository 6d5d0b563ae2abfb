//! Garbage collection:
//!
//! - ownerReferences: an object all of whose owners are gone is deleted (background cascade:
//!   Deployment → ReplicaSets → Pods); references to owners that are gone are dropped when
//!   other owners remain. An owner deleted with `propagationPolicy: Orphan` (the `orphan`
//!   finalizer) has its references removed from its dependents and the finalizer cleared; one
//!   deleted in the foreground (`foregroundDeletion`) loses its dependents first.
//! - pod GC: pods bound to a node that no longer exists are force-deleted, and so are
//!   terminating pods on a NotReady node tainted `node.kubernetes.io/out-of-service` (the
//!   non-graceful node shutdown path costop can use).
//!
//! Owners of types the simulator does not serve are assumed to exist. Every deletion is
//! re-checked against the store inside its transaction.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use super::At;
use super::Loop;
use super::informer::{Change, Informer, Key};
use crate::error::ApiError;
use crate::resources::{
    self, DAEMONSETS, DEPLOYMENTS, ENDPOINTSLICES, LEASES, NODES, PODS, REPLICASETS, ResourceDef,
    SERVICES, STATEFULSETS,
};
use crate::store::{DeleteOptions, Tx};

const OUT_OF_SERVICE: &str = "node.kubernetes.io/out-of-service";
const KINDS: &[&ResourceDef] = &[
    &PODS,
    &REPLICASETS,
    &DEPLOYMENTS,
    &DAEMONSETS,
    &STATEFULSETS,
    &NODES,
    &LEASES,
    &SERVICES,
    &ENDPOINTSLICES,
];

type Obj = (&'static ResourceDef, Key);

#[derive(Default)]
pub struct GarbageCollector {
    dirty: BTreeSet<(&'static str, Key)>,
    /// Owner uid → dependents (every ownerReference, not only controllers).
    dependents: HashMap<String, BTreeSet<(&'static str, Key)>>,
}

fn rk(r: &ResourceDef) -> &'static str {
    resources::ALL
        .iter()
        .find(|d| d.group == r.group && d.plural == r.plural)
        .map_or("", |d| d.plural)
}

fn def(plural: &str) -> Option<&'static ResourceDef> {
    KINDS.iter().copied().find(|d| d.plural == plural)
}

fn key_of(o: &Value) -> Key {
    (super::namespace(o).to_string(), super::name(o).to_string())
}

impl Loop for GarbageCollector {
    const NAME: &'static str = "garbage-collector";

    fn kinds(&self) -> Vec<&'static ResourceDef> {
        KINDS.to_vec()
    }

    fn debounce(&self) -> std::time::Duration {
        std::time::Duration::from_millis(2)
    }

    fn observe(&mut self, inf: &Informer, ch: &Change) {
        let obj = ch.object();
        let key = key_of(obj);
        let kind = rk(ch.resource);
        if let Some(old) = ch.old.as_deref() {
            for r in super::owner_refs(old) {
                if let Some(set) = self.dependents.get_mut(r.uid) {
                    set.remove(&(kind, key.clone()));
                    if set.is_empty() {
                        self.dependents.remove(r.uid);
                    }
                }
            }
        }
        if let Some(new) = ch.new.as_deref() {
            let refs = super::owner_refs(new);
            for r in &refs {
                self.dependents
                    .entry(r.uid.to_string())
                    .or_default()
                    .insert((kind, key.clone()));
            }
            // Status updates do not change ownership: look again only when the references do.
            let refs_changed = ch.old.as_deref().is_none_or(|o| {
                o.at("/metadata/ownerReferences") != new.at("/metadata/ownerReferences")
            });
            if !refs.is_empty() && refs_changed {
                self.dirty.insert((kind, key.clone()));
            }
            // An owner being deleted with a finalizer the collector handles.
            if super::is_terminating(new) && has_gc_finalizer(new) {
                self.dirty.insert((kind, key.clone()));
            }
        }
        let uid = super::uid(obj);
        if ch.new.is_none() || ch.new.as_deref().is_some_and(super::is_terminating) {
            // Its dependents may now be orphans.
            if let Some(deps) = self.dependents.get(uid) {
                self.dirty.extend(deps.iter().cloned());
            }
        }
        if ch.is(&NODES) {
            // Pods on a node that went away, or that is now NotReady and out of service.
            let oos = |n: Option<&Value>| n.is_some_and(out_of_service);
            if ch.new.is_none() || oos(ch.new.as_deref()) != oos(ch.old.as_deref()) {
                self.dirty
                    .extend(inf.pods_on(super::name(obj)).map(|p| ("pods", key_of(p))));
            }
        } else if ch.is(&PODS)
            && ch
                .new
                .as_deref()
                .is_some_and(|p| super::pod_node(p).is_some())
        {
            // Pod GC looks at bound pods when they are bound or start terminating.
            let state = |p: Option<&Value>| {
                p.map(|p| {
                    (
                        super::pod_node(p).map(str::to_string),
                        super::is_terminating(p),
                    )
                })
            };
            if state(ch.old.as_deref()) != state(ch.new.as_deref()) {
                self.dirty.insert(("pods", key));
            }
        }
    }

    fn mark_all(&mut self, inf: &Informer) {
        self.dependents.clear();
        for r in KINDS {
            for (k, o) in inf.iter(r) {
                let refs = super::owner_refs(o);
                for rf in &refs {
                    self.dependents
                        .entry(rf.uid.to_string())
                        .or_default()
                        .insert((rk(r), k.clone()));
                }
                if !refs.is_empty()
                    || has_gc_finalizer(o)
                    || (r.kind == "Pod" && super::pod_node(o).is_some())
                {
                    self.dirty.insert((rk(r), k.clone()));
                }
            }
        }
    }

    fn work(&mut self, inf: &Informer) -> bool {
        let mut n = 0;
        while let Some((kind, key)) = self.dirty.pop_first() {
            let Some(r) = def(kind) else { continue };
            let Some(obj) = inf.get_key(r, &key).cloned() else {
                continue;
            };
            self.sync(inf, (r, key), &obj);
            n += 1;
            if n >= 2000 {
                return true;
            }
        }
        false
    }
}

/// NotReady and tainted `node.kubernetes.io/out-of-service:NoExecute`.
fn out_of_service(n: &Value) -> bool {
    !super::node_ready(n)
        && super::matching::taints(n)
            .iter()
            .any(|t| t.key == OUT_OF_SERVICE && t.effect == "NoExecute")
}

fn finalizers(o: &Value) -> Vec<&str> {
    o.at("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn has_gc_finalizer(o: &Value) -> bool {
    finalizers(o)
        .iter()
        .any(|f| *f == "orphan" || *f == "foregroundDeletion")
}

/// Does the owner named by this reference exist (same uid)? Unknown types count as existing.
fn owner_exists(tx: &Tx<'_>, ns: &str, r: &super::OwnerRef<'_>) -> bool {
    let Some(def) = resources::by_kind(r.api_version, r.kind) else {
        return true;
    };
    let ns = if def.namespaced { Some(ns) } else { None };
    tx.try_get(def, ns, r.name)
        .is_some_and(|o| super::uid(&o) == r.uid)
}

impl GarbageCollector {
    fn sync(&mut self, inf: &Informer, (r, key): Obj, obj: &Value) {
        let store = inf.store();
        // Owner side: orphan / foreground finalizers.
        if super::is_terminating(obj) && has_gc_finalizer(obj) {
            let uid = super::uid(obj).to_string();
            let deps: Vec<(&'static str, Key)> = self
                .dependents
                .get(&uid)
                .map(|d| d.iter().cloned().collect())
                .unwrap_or_default();
            let fins = finalizers(obj)
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>();
            if fins.iter().any(|f| f == "orphan") {
                super::write(store, "gc orphan", |tx| {
                    for (kind, dk) in &deps {
                        let Some(dr) = def(kind) else { continue };
                        let _ = tx.modify(dr, Some(&dk.0), &dk.1, |d| {
                            if let Some(refs) = d
                                .pointer_mut("/metadata/ownerReferences")
                                .and_then(Value::as_array_mut)
                            {
                                refs.retain(|x| {
                                    x.get("uid").and_then(Value::as_str) != Some(uid.as_str())
                                });
                            }
                            Ok(())
                        });
                    }
                    remove_finalizer(tx, r, &key, "orphan")
                });
            } else if fins.iter().any(|f| f == "foregroundDeletion") {
                if deps.is_empty() {
                    super::write(store, "gc foreground done", |tx| {
                        remove_finalizer(tx, r, &key, "foregroundDeletion")
                    });
                } else {
                    super::write(store, "gc foreground", |tx| {
                        for (kind, dk) in &deps {
                            if let Some(dr) = def(kind)
                                && tx
                                    .try_get(dr, Some(&dk.0), &dk.1)
                                    .is_some_and(|d| !super::is_terminating(&d))
                            {
                                tx.delete(dr, Some(&dk.0), &dk.1, &DeleteOptions::default())?;
                            }
                        }
                        Ok(())
                    });
                }
            }
        }

        // Dependent side.
        let refs = super::owner_refs(obj);
        if !refs.is_empty() && !super::is_terminating(obj) {
            let known_gone = refs.iter().filter(|rf| {
                resources::by_kind(rf.api_version, rf.kind).is_some_and(|d| {
                    KINDS
                        .iter()
                        .any(|k| k.plural == d.plural && k.group == d.group)
                }) && !inf.has_uid(rf.uid)
            });
            if known_gone.count() > 0 {
                let ns = key.0.clone();
                let uid = super::uid(obj).to_string();
                super::write(store, "gc dependent", |tx| {
                    let Some(cur) = tx.try_get(r, Some(&ns), &key.1) else {
                        return Ok(());
                    };
                    if super::uid(&cur) != uid {
                        return Ok(());
                    }
                    let refs = super::owner_refs(&cur);
                    let alive: Vec<String> = refs
                        .iter()
                        .filter(|rf| owner_exists(tx, &ns, rf))
                        .map(|rf| rf.uid.to_string())
                        .collect();
                    if alive.is_empty() {
                        tracing::debug!(kind = r.kind, name = %key.1, "garbage collecting object whose owners are gone");
                        tx.delete(r, Some(&ns), &key.1, &DeleteOptions::default())?;
                    } else if alive.len() < refs.len() {
                        tx.modify(r, Some(&ns), &key.1, |d| {
                            if let Some(a) = d
                                .pointer_mut("/metadata/ownerReferences")
                                .and_then(Value::as_array_mut)
                            {
                                a.retain(|x| {
                                    x.get("uid")
                                        .and_then(Value::as_str)
                                        .is_some_and(|u| alive.iter().any(|l| l == u))
                                });
                            }
                            Ok(())
                        })?;
                    }
                    Ok(())
                });
                return;
            }
        }

        // Pod GC.
        if r.kind == "Pod" {
            let Some(node_name) = super::pod_node(obj) else {
                return;
            };
            let node = inf.get(&NODES, "", node_name);
            let orphaned = node.is_none();
            let out_of_service =
                node.is_some_and(|n| out_of_service(n)) && super::is_terminating(obj);
            if orphaned || out_of_service {
                let uid = super::uid(obj).to_string();
                let node_name = node_name.to_string();
                super::write(store, "pod gc", |tx| {
                    let Some(cur) = tx.try_get(&PODS, Some(&key.0), &key.1) else {
                        return Ok(());
                    };
                    if super::uid(&cur) != uid {
                        return Ok(());
                    }
                    if orphaned && tx.try_get(&NODES, None, &node_name).is_some() {
                        return Ok(());
                    }
                    tracing::debug!(pod = %key.1, node = %node_name, "pod gc: force deleting");
                    tx.remove(&PODS, Some(&key.0), &key.1)?;
                    Ok(())
                });
            }
        }
    }
}

fn remove_finalizer(
    tx: &mut Tx<'_>,
    r: &'static ResourceDef,
    key: &Key,
    fin: &str,
) -> Result<(), ApiError> {
    let ns = if r.namespaced {
        Some(key.0.as_str())
    } else {
        None
    };
    tx.modify(r, ns, &key.1, |o| {
        if let Some(f) = o
            .pointer_mut("/metadata/finalizers")
            .and_then(Value::as_array_mut)
        {
            f.retain(|x| x.as_str() != Some(fin));
        }
        Ok(())
    })?;
    Ok(())
}
