//! The disruption controller: PodDisruptionBudget status, which the eviction subresource
//! checks. For each PDB, the pods its selector matches in its namespace give:
//!
//! - `expectedPods`: for `minAvailable: <int>` the number of matching pods; otherwise the scale
//!   of their controllers (a ReplicaSet owned by a Deployment counts the Deployment's replicas,
//!   as the real controller), pods without a known controller counting one each;
//! - `currentHealthy`: Ready pods that are not terminating and not in `disruptedPods`;
//! - `desiredHealthy` from `minAvailable` or `expectedPods − maxUnavailable` (percentages
//!   rounded up);
//! - `disruptionsAllowed = max(0, currentHealthy − desiredHealthy)` (0 when nothing is expected);
//! - `disruptedPods` entries (added by evictions) dropped once the pod is gone or terminating,
//!   or when they are older than the deletion timeout (2 min simulated by default);
//! - `observedGeneration` and the `DisruptionAllowed` condition.
//!
//! Status writes are conditional on the PDB's resourceVersion, so an eviction that changed the
//! budget in between is never overwritten; the change it made triggers a fresh computation.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::At;
use super::informer::{Change, Informer, Key};
use super::{ControllerConfig, Loop, Timers};
use crate::error::ApiError;
use crate::resources::{
    DEPLOYMENTS, PODDISRUPTIONBUDGETS, PODS, REPLICASETS, ResourceDef, STATEFULSETS,
};
use crate::selectors::LabelSelector;

pub struct Disruption {
    timeout_secs: f64,
    dirty: BTreeSet<Key>,
    timers: Timers<Key>,
    selectors: HashMap<Key, LabelSelector>,
}

impl Disruption {
    pub fn new(cfg: &ControllerConfig) -> Self {
        Self {
            timeout_secs: cfg.pdb_disrupted_pod_timeout_seconds.max(0.0),
            dirty: BTreeSet::new(),
            timers: Timers::default(),
            selectors: HashMap::new(),
        }
    }

    fn selector(&mut self, key: &Key, pdb: &Value) -> &LabelSelector {
        self.selectors.entry(key.clone()).or_insert_with(|| {
            // policy/v1: a missing selector matches nothing, an empty one everything.
            LabelSelector::from_object(pdb.at("/spec/selector").unwrap_or(&Value::Null))
                .unwrap_or_else(|e| {
                    tracing::debug!(pdb = %key.1, error = %e, "bad PDB selector; matching nothing");
                    LabelSelector::nothing()
                })
        })
    }
}

fn key_of(o: &Value) -> Key {
    (super::namespace(o).to_string(), super::name(o).to_string())
}

impl Loop for Disruption {
    const NAME: &'static str = "disruption";

    fn kinds(&self) -> Vec<&'static ResourceDef> {
        vec![
            &PODDISRUPTIONBUDGETS,
            &PODS,
            &REPLICASETS,
            &DEPLOYMENTS,
            &STATEFULSETS,
        ]
    }

    fn debounce(&self) -> Duration {
        Duration::from_millis(2)
    }

    fn observe(&mut self, inf: &Informer, ch: &Change) {
        let obj = ch.object();
        let ns = super::namespace(obj).to_string();
        if ch.is(&PODDISRUPTIONBUDGETS) {
            let key = key_of(obj);
            self.selectors.remove(&key);
            if ch.new.is_some() {
                self.dirty.insert(key);
            }
            return;
        }
        if ch.is(&PODS) {
            let labels = |p: Option<&Value>| {
                p.and_then(|p| p.at("/metadata/labels"))
                    .and_then(Value::as_object)
                    .cloned()
            };
            let (old, new) = (labels(ch.old.as_deref()), labels(ch.new.as_deref()));
            for (k, pdb) in inf.in_ns(&PODDISRUPTIONBUDGETS, &ns) {
                let sel = self.selector(k, pdb);
                let hit = |l: &Option<Map<String, Value>>| {
                    l.as_ref().is_some_and(|l| sel.matches(Some(l)))
                };
                if hit(&old) || hit(&new) {
                    self.dirty.insert(k.clone());
                }
            }
            return;
        }
        // A controller's scale changed: PDBs of the namespace may expect a different count.
        let scale = |o: Option<&Value>| o.and_then(|o| o.at("/spec/replicas")).cloned();
        if scale(ch.old.as_deref()) != scale(ch.new.as_deref()) {
            self.dirty.extend(
                inf.in_ns(&PODDISRUPTIONBUDGETS, &ns)
                    .map(|(k, _)| k.clone()),
            );
        }
    }

    fn mark_all(&mut self, inf: &Informer) {
        self.dirty
            .extend(inf.iter(&PODDISRUPTIONBUDGETS).map(|(k, _)| k.clone()));
    }

    fn work(&mut self, inf: &Informer) -> bool {
        for k in self.timers.due() {
            self.dirty.insert(k);
        }
        while let Some(key) = self.dirty.pop_first() {
            self.sync(inf, &key);
        }
        false
    }

    fn deadline(&self) -> Option<Instant> {
        self.timers.next()
    }
}

/// The scale of the controller a pod belongs to: (controller uid, replicas).
fn controller_scale(inf: &Informer, pod: &Value) -> Option<(String, i64)> {
    let owner = super::controller_ref(pod)?;
    let (r, _, obj) = inf.by_uid(owner.uid)?;
    if r.kind == "ReplicaSet" {
        if let Some(d) = super::controller_ref(obj).filter(|o| o.kind == "Deployment")
            && let Some((_, _, dep)) = inf.by_uid(d.uid)
        {
            return Some((d.uid.to_string(), super::replicas(dep)));
        }
        return Some((owner.uid.to_string(), super::replicas(obj)));
    }
    if r.kind == "StatefulSet" || r.kind == "Deployment" {
        return Some((owner.uid.to_string(), super::replicas(obj)));
    }
    None
}

impl Disruption {
    fn sync(&mut self, inf: &Informer, key: &Key) {
        let Some(pdb) = inf.get_key(&PODDISRUPTIONBUDGETS, key).cloned() else {
            self.selectors.remove(key);
            return;
        };
        let sel = self.selector(key, &pdb).clone();
        let pods: Vec<&Value> = inf
            .in_ns(&PODS, &key.0)
            .map(|(_, p)| &**p)
            .filter(|p| sel.matches_object(p))
            .collect();

        let spec = pdb.get("spec");
        let min_available = spec
            .and_then(|s| s.get("minAvailable"))
            .filter(|v| !v.is_null());
        let max_unavailable = spec
            .and_then(|s| s.get("maxUnavailable"))
            .filter(|v| !v.is_null());
        let scale = || {
            let mut seen = HashSet::new();
            let mut total = 0;
            for p in &pods {
                match controller_scale(inf, p) {
                    Some((uid, n)) => {
                        if seen.insert(uid) {
                            total += n;
                        }
                    }
                    None => total += 1,
                }
            }
            total
        };
        let (expected, desired) = match (max_unavailable, min_available) {
            (Some(mu), _) => {
                let expected = scale();
                let mu = super::int_or_percent(Some(mu), expected, true)
                    .unwrap_or(0)
                    .max(0);
                (expected, (expected - mu).max(0))
            }
            (None, Some(Value::Number(n))) => (pods.len() as i64, n.as_i64().unwrap_or(0)),
            (None, Some(ma)) => {
                let expected = scale();
                (
                    expected,
                    super::int_or_percent(Some(ma), expected, true).unwrap_or(0),
                )
            }
            (None, None) => (0, 0),
        };

        // disruptedPods: keep entries for live, non-terminating pods within the timeout.
        let clock = *inf.store().clock();
        let timeout = clock.real_secs(self.timeout_secs);
        let recorded = pdb
            .at("/status/disruptedPods")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut disrupted = Map::new();
        let mut recheck: Option<Duration> = None;
        for p in &pods {
            let name = super::name(p);
            let Some(ts) = recorded.get(name) else {
                continue;
            };
            if super::is_terminating(p) {
                continue;
            }
            let age = super::real_age(ts.as_str()).unwrap_or(Duration::ZERO);
            if age >= timeout {
                tracing::debug!(pdb = %key.1, pod = name, "pod was expected to be deleted after eviction but was not");
                continue;
            }
            let left = timeout - age;
            recheck = Some(recheck.map_or(left, |r: Duration| r.min(left)));
            disrupted.insert(name.to_string(), ts.clone());
        }
        if let Some(left) = recheck {
            // Timestamps have second precision: look again a little after the earliest expiry.
            self.timers.at(
                Instant::now() + left + Duration::from_millis(50),
                key.clone(),
            );
        }
        let healthy = pods
            .iter()
            .filter(|p| super::pod_healthy(p) && !disrupted.contains_key(super::name(p)))
            .count() as i64;
        let mut allowed = healthy - desired;
        if expected <= 0 || allowed <= 0 {
            allowed = 0;
        }

        let mut next = pdb
            .get("status")
            .cloned()
            .filter(Value::is_object)
            .unwrap_or_else(|| json!({}));
        for (k, v) in [
            ("observedGeneration", json!(super::generation(&pdb))),
            ("disruptionsAllowed", json!(allowed)),
            ("currentHealthy", json!(healthy)),
            ("desiredHealthy", json!(desired)),
            ("expectedPods", json!(expected)),
        ] {
            super::put(&mut next, &[k], v);
        }
        if disrupted.is_empty() {
            if let Some(m) = next.as_object_mut() {
                m.remove("disruptedPods");
            }
        } else {
            super::put(&mut next, &["disruptedPods"], Value::Object(disrupted));
        }
        let mut wrapped = json!({"status": next});
        let (st, reason) = if allowed > 0 {
            ("True", "SufficientPods")
        } else {
            ("False", "InsufficientPods")
        };
        super::set_condition(
            &mut wrapped,
            "DisruptionAllowed",
            st,
            Some(reason),
            Some(""),
            json!({"observedGeneration": super::generation(&pdb)}),
        );
        let next = wrapped["status"].take();
        if pdb.get("status") == Some(&next) {
            return;
        }
        let rv = super::s(&pdb, "/metadata/resourceVersion")
            .unwrap_or("")
            .to_string();
        let written = super::write(inf.store(), "pdb status", |tx| {
            tx.modify(&PODDISRUPTIONBUDGETS, Some(&key.0), &key.1, |o| {
                // Only over the version this was computed from (an eviction may have moved it).
                if super::s(o, "/metadata/resourceVersion") != Some(rv.as_str()) {
                    return Err(ApiError::conflict("policy", "poddisruptionbudgets", &key.1));
                }
                super::put(o, &["status"], next.clone());
                Ok(())
            })
        });
        if written.is_none() {
            // The newer version arrives as an event and is recomputed; be sure anyway.
            self.timers
                .at(Instant::now() + Duration::from_millis(20), key.clone());
        }
    }
}
