//! The EndpointSlice controller: keeps, for every Service with a selector, the
//! `discovery.k8s.io/v1` EndpointSlices that list the pods it selects
//! (<https://kubernetes.io/docs/concepts/services-networking/endpoint-slices/>). What a slice
//! holds is computed in [`build`]; this loop decides when, and writes the difference.
//!
//! Slices are labelled `kubernetes.io/service-name` and
//! `endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io` and owned by the
//! Service, so the garbage collector removes them with it. A Service without a selector (or
//! of type ExternalName) gets none from this controller; slices left from an earlier selector
//! are removed. Existing slices are updated in place when their port set still exists, extra
//! ones deleted, missing ones created, all in one transaction per Service, so a watcher never
//! sees a pod in two slices of one port set.
//!
//! Service changes are handled at once; pod and node changes after the configured sync delay,
//! which batches bursts as the real controller's `--endpointslice-updates-batch-period` and
//! informer latency do.

pub mod build;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::informer::{Change, Informer, Key};
use super::{At, ControllerConfig, Loop, Timers};
use crate::resources::{ENDPOINTSLICES, NODES, PODS, ResourceDef, SERVICES};
use crate::selectors::LabelSelector;
use crate::store::DeleteOptions;
use build::{CONTROLLER_NAME, MANAGED_BY_LABEL, SERVICE_NAME_LABEL, ZONE_LABEL};

pub struct EndpointSlices {
    sync_secs: f64,
    max_per_slice: usize,
    dirty: BTreeSet<Key>,
    timers: Timers<Key>,
    /// Services waiting for their delayed sync (one timer each, as a delaying work queue).
    pending: HashSet<Key>,
    /// Parsed Service selectors; `None` for a Service this controller leaves alone.
    selectors: HashMap<Key, Option<LabelSelector>>,
}

impl EndpointSlices {
    pub fn new(cfg: &ControllerConfig) -> Self {
        Self {
            sync_secs: cfg.endpoint_slice_sync_seconds.max(0.0),
            max_per_slice: cfg.max_endpoints_per_slice.max(1),
            dirty: BTreeSet::new(),
            timers: Timers::default(),
            pending: HashSet::new(),
            selectors: HashMap::new(),
        }
    }

    fn selector(&mut self, key: &Key, svc: &Value) -> Option<&LabelSelector> {
        self.selectors
            .entry(key.clone())
            .or_insert_with(|| service_selector(svc))
            .as_ref()
    }

    /// Sync `key` after the configured delay.
    fn later(&mut self, inf: &Informer, key: Key) {
        if self.sync_secs == 0.0 {
            self.dirty.insert(key);
        } else if self.pending.insert(key.clone()) {
            let delay = inf.store().clock().real_secs(self.sync_secs);
            self.timers.at(Instant::now() + delay, key);
        }
    }

    /// Services in `ns` whose selector matches any of `labels`.
    fn services_selecting(
        &mut self,
        inf: &Informer,
        ns: &str,
        labels: &[Option<&Map<String, Value>>],
    ) -> Vec<Key> {
        let mut out = Vec::new();
        for (k, svc) in inf.in_ns(&SERVICES, ns) {
            let Some(sel) = self.selector(k, svc) else {
                continue;
            };
            if labels
                .iter()
                .any(|l| l.is_some_and(|l| sel.matches(Some(l))))
            {
                out.push(k.clone());
            }
        }
        out
    }
}

/// The selector of a Service this controller manages slices for.
fn service_selector(svc: &Value) -> Option<LabelSelector> {
    if svc.at("/spec/type").and_then(Value::as_str) == Some("ExternalName") {
        return None;
    }
    let sel = svc
        .at("/spec/selector")
        .and_then(Value::as_object)
        .filter(|m| !m.is_empty())?;
    Some(LabelSelector::from_map(sel))
}

fn key_of(o: &Value) -> Key {
    (super::namespace(o).to_string(), super::name(o).to_string())
}

fn labels(o: Option<&Value>) -> Option<&Map<String, Value>> {
    o?.at("/metadata/labels").and_then(Value::as_object)
}

fn is_managed(slice: &Value) -> bool {
    labels(Some(slice))
        .and_then(|l| l.get(MANAGED_BY_LABEL))
        .and_then(Value::as_str)
        == Some(CONTROLLER_NAME)
}

fn service_of(slice: &Value) -> Option<&str> {
    labels(Some(slice))?
        .get(SERVICE_NAME_LABEL)
        .and_then(Value::as_str)
}

impl Loop for EndpointSlices {
    const NAME: &'static str = "endpointslice";

    fn kinds(&self) -> Vec<&'static ResourceDef> {
        vec![&SERVICES, &PODS, &NODES, &ENDPOINTSLICES]
    }

    fn debounce(&self) -> Duration {
        Duration::from_millis(1)
    }

    fn observe(&mut self, inf: &Informer, ch: &Change) {
        let obj = ch.object();
        if ch.is(&SERVICES) {
            let key = key_of(obj);
            self.selectors.remove(&key);
            self.dirty.insert(key);
        } else if ch.is(&PODS) {
            let ns = super::namespace(obj).to_string();
            let keys = self.services_selecting(
                inf,
                &ns,
                &[labels(ch.old.as_deref()), labels(ch.new.as_deref())],
            );
            for k in keys {
                self.later(inf, k);
            }
        } else if ch.is(&NODES) {
            let zone = |n: Option<&Value>| labels(n).and_then(|l| l.get(ZONE_LABEL)).cloned();
            if zone(ch.old.as_deref()) != zone(ch.new.as_deref()) {
                let pods: Vec<(String, Map<String, Value>)> = inf
                    .pods_on(super::name(obj))
                    .map(|p| {
                        (
                            super::namespace(p).to_string(),
                            labels(Some(p)).cloned().unwrap_or_default(),
                        )
                    })
                    .collect();
                for (ns, l) in pods {
                    for k in self.services_selecting(inf, &ns, &[Some(&l)]) {
                        self.later(inf, k);
                    }
                }
            }
        } else if ch.is(&ENDPOINTSLICES)
            && is_managed(obj)
            && let Some(svc) = service_of(obj)
        {
            // Someone else changed or deleted one of our slices: put it right.
            self.dirty
                .insert((super::namespace(obj).to_string(), svc.to_string()));
        }
    }

    fn mark_all(&mut self, inf: &Informer) {
        self.dirty
            .extend(inf.iter(&SERVICES).map(|(k, _)| k.clone()));
        // Slices whose Service is gone are the garbage collector's; slices of a Service that
        // lost its selector are ours to remove.
        let orphans: Vec<Key> = inf
            .iter(&ENDPOINTSLICES)
            .filter(|(_, s)| is_managed(s))
            .filter_map(|(k, s)| service_of(s).map(|svc| (k.0.clone(), svc.to_string())))
            .collect();
        self.dirty.extend(orphans);
    }

    fn work(&mut self, inf: &Informer) -> bool {
        for k in self.timers.due() {
            self.pending.remove(&k);
            self.dirty.insert(k);
        }
        let mut n = 0;
        while let Some(key) = self.dirty.pop_first() {
            self.sync(inf, &key);
            n += 1;
            if n >= 500 {
                return true;
            }
        }
        false
    }

    fn deadline(&self) -> Option<Instant> {
        self.timers.next()
    }
}

impl EndpointSlices {
    fn sync(&mut self, inf: &Informer, key: &Key) {
        let (ns, svc_name) = key;
        let svc = inf.get_key(&SERVICES, key).cloned();
        let existing: Vec<Value> = inf
            .in_ns(&ENDPOINTSLICES, ns)
            .map(|(_, s)| &**s)
            .filter(|s| is_managed(s) && service_of(s) == Some(svc_name.as_str()))
            .cloned()
            .collect();
        let Some(svc) = svc else {
            // Owned slices go with their Service (garbage collector).
            self.selectors.remove(key);
            return;
        };
        let svc_uid = super::uid(&svc).to_string();
        let (mut stale, mine): (Vec<Value>, Vec<Value>) = existing.into_iter().partition(|s| {
            super::controller_ref(s).is_some_and(|r| r.kind == "Service" && r.uid != svc_uid)
        });
        let desired = match self.selector(key, &svc).cloned() {
            None => {
                stale.extend(mine);
                Vec::new()
            }
            Some(sel) => {
                let pods = inf
                    .in_ns(&PODS, ns)
                    .map(|(_, p)| &**p)
                    .filter(|p| sel.matches_object(p));
                let zone_of = |node: &str| {
                    inf.get(&NODES, "", node)
                        .and_then(|n| labels(Some(n)))
                        .and_then(|l| l.get(ZONE_LABEL))
                        .and_then(Value::as_str)
                        .map(str::to_string)
                };
                let desired = build::desired_slices(&svc, pods, zone_of, self.max_per_slice);
                let (keep, extra) = pair_up(mine, &desired);
                stale.extend(extra);
                desired.into_iter().zip(keep).collect()
            }
        };
        let want_labels = Value::Object(build::slice_labels(&svc));
        let owner = json!([build::owner_ref(&svc)]);
        let written = super::write(inf.store(), "endpointslice sync", |tx| {
            for (content, current) in &desired {
                let (ports, endpoints) = build::content_fields(content);
                match current {
                    Some(cur) => {
                        let same = cur.get("ports").unwrap_or(&Value::Null) == &ports
                            && cur.get("endpoints").unwrap_or(&Value::Null) == &endpoints
                            && cur.at("/metadata/labels") == Some(&want_labels)
                            && cur.at("/metadata/ownerReferences") == Some(&owner);
                        if !same {
                            tx.modify(&ENDPOINTSLICES, Some(ns), super::name(cur), |o| {
                                o["ports"] = ports.clone();
                                o["endpoints"] = endpoints.clone();
                                o["metadata"]["labels"] = want_labels.clone();
                                o["metadata"]["ownerReferences"] = owner.clone();
                                Ok(())
                            })?;
                        }
                    }
                    None => {
                        tx.create(&ENDPOINTSLICES, Some(ns), build::new_slice(&svc, content))?;
                    }
                }
            }
            for s in &stale {
                if tx
                    .try_get(&ENDPOINTSLICES, Some(ns), super::name(s))
                    .is_some()
                {
                    tx.delete(
                        &ENDPOINTSLICES,
                        Some(ns),
                        super::name(s),
                        &DeleteOptions::default(),
                    )?;
                }
            }
            Ok(())
        });
        if written.is_none() {
            // A race with another writer: try again shortly.
            self.timers
                .at(Instant::now() + Duration::from_millis(50), key.clone());
        }
    }
}

/// Match existing slices to desired contents by port set (an identical slice first); what is
/// left over on the existing side is to be deleted.
fn pair_up(
    existing: Vec<Value>,
    desired: &[build::SliceContent],
) -> (Vec<Option<Value>>, Vec<Value>) {
    let mut pool = existing;
    let mut keep: Vec<Option<Value>> = vec![None; desired.len()];
    let fields = |s: &Value| {
        (
            s.get("ports").cloned().unwrap_or(Value::Null),
            s.get("endpoints").cloned().unwrap_or(Value::Null),
        )
    };
    // Unchanged slices keep their place.
    for (i, d) in desired.iter().enumerate() {
        let want = build::content_fields(d);
        if let Some(pos) = pool.iter().position(|s| fields(s) == want) {
            keep[i] = Some(pool.swap_remove(pos));
        }
    }
    // Then any slice with the same port set is updated in place.
    for (i, d) in desired.iter().enumerate() {
        if keep[i].is_some() {
            continue;
        }
        let (ports, _) = build::content_fields(d);
        if let Some(pos) = pool.iter().position(|s| fields(s).0 == ports) {
            keep[i] = Some(pool.swap_remove(pos));
        }
    }
    // Finally any slice left is reused rather than deleted and created again.
    for slot in keep.iter_mut().filter(|k| k.is_none()) {
        if pool.is_empty() {
            break;
        }
        *slot = Some(pool.swap_remove(0));
    }
    (keep, pool)
}
