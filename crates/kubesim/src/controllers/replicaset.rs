//! The ReplicaSet controller: keeps `spec.replicas` active pods (not terminating, not finished)
//! per ReplicaSet, creating them from the template (`generateName: <rs>-`, controller
//! ownerReference) and deleting the surplus (unbound, pending, unready and newest first, like
//! the real ranking), and reports status (`replicas`, `readyReplicas`, `availableReplicas`, ...).
//!
//! Terminating pods do not count, so a pod being evicted or deleted is replaced at once by a
//! new Pending pod, before the old one is gone: the behaviour costop relies on while draining.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::At;
use super::informer::{Change, Informer, Key};
use super::{Loop, PodName, Timers};
use crate::resources::{PODS, REPLICASETS, ResourceDef};
use crate::store::DeleteOptions;

/// At most this many pods are created per pass (the real controller's burst is 500).
const BURST: usize = 500;
const COMPONENT: &str = "replicaset-controller";

#[derive(Default)]
pub struct ReplicaSets {
    dirty: BTreeSet<Key>,
    timers: Timers<Key>,
    /// When each pod (uid) was first seen Ready, for `minReadySeconds`.
    ready_since: HashMap<String, Instant>,
    /// Last creation error per ReplicaSet, so a failing template is reported once.
    failures: HashMap<Key, String>,
}

impl Loop for ReplicaSets {
    const NAME: &'static str = "replicaset";

    fn kinds(&self) -> Vec<&'static ResourceDef> {
        vec![&REPLICASETS, &PODS]
    }

    fn observe(&mut self, _inf: &Informer, ch: &Change) {
        if ch.is(&REPLICASETS) {
            let o = ch.object();
            self.dirty
                .insert((super::namespace(o).to_string(), super::name(o).to_string()));
            return;
        }
        for pod in [ch.old.as_deref(), ch.new.as_deref()].into_iter().flatten() {
            if let Some(owner) = super::controller_ref(pod).filter(|r| r.kind == "ReplicaSet") {
                self.dirty
                    .insert((super::namespace(pod).to_string(), owner.name.to_string()));
            }
        }
        if ch.new.is_none()
            && let Some(u) = ch.old.as_deref().map(super::uid)
        {
            self.ready_since.remove(u);
        }
    }

    fn mark_all(&mut self, inf: &Informer) {
        self.dirty
            .extend(inf.iter(&REPLICASETS).map(|(k, _)| k.clone()));
    }

    fn work(&mut self, inf: &Informer) -> bool {
        for k in self.timers.due() {
            self.dirty.insert(k);
        }
        let mut created = 0;
        while let Some(key) = self.dirty.pop_first() {
            created += self.sync(inf, &key);
            if created >= BURST {
                return true;
            }
        }
        false
    }

    fn deadline(&self) -> Option<Instant> {
        self.timers.next()
    }
}

/// Lower sorts first = deleted first: unbound, then Pending < Unknown < Running, unready, newest.
fn deletion_rank(pod: &Value) -> (bool, u8, bool, std::cmp::Reverse<String>) {
    let phase = match super::phase(pod) {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 3,
    };
    let created = super::s(pod, "/metadata/creationTimestamp")
        .unwrap_or("")
        .to_string();
    (
        super::pod_node(pod).is_some(),
        phase,
        super::pod_ready(pod),
        std::cmp::Reverse(created),
    )
}

impl ReplicaSets {
    /// Reconcile one ReplicaSet; returns how many pods were created.
    fn sync(&mut self, inf: &Informer, key: &Key) -> usize {
        let Some(rs) = inf.get_key(&REPLICASETS, key).cloned() else {
            self.failures.remove(key);
            return 0;
        };
        let store = inf.store().clone();
        let clock = *store.clock();
        let uid = super::uid(&rs).to_string();
        let pods: Vec<&Arc<Value>> = inf.owned_by(&uid, &PODS).collect();
        let mut active: Vec<&Arc<Value>> = pods
            .iter()
            .copied()
            .filter(|p| super::is_active(p))
            .collect();
        let want = super::replicas(&rs) as usize;
        let mut created = 0;
        // A ReplicaSet being deleted no longer manages its pods; the garbage collector does.
        if !super::is_terminating(&rs) {
            if active.len() < want {
                let template = rs
                    .at("/spec/template")
                    .cloned()
                    .unwrap_or_else(|| json!({}));
                let prefix = format!("{}-", key.1);
                let n = (want - active.len()).min(BURST);
                for _ in 0..n {
                    let pod = super::pod_from_template(
                        &rs,
                        &REPLICASETS,
                        &template,
                        PodName::Generate(&prefix),
                        &[],
                    );
                    match store.transaction(|tx| {
                        let p = tx.create(&PODS, Some(&key.0), pod)?;
                        super::record(
                            tx,
                            &rs,
                            &REPLICASETS,
                            "Normal",
                            "SuccessfulCreate",
                            &format!("Created pod: {}", super::name(&p)),
                            COMPONENT,
                        );
                        Ok(())
                    }) {
                        Ok(()) => {
                            created += 1;
                            self.failures.remove(key);
                        }
                        Err(e) => {
                            let msg = e.message.clone();
                            if self.failures.get(key) != Some(&msg) {
                                tracing::warn!(replicaset = %key.1, namespace = %key.0, error = %e, "cannot create pod");
                                super::write(&store, "replicaset failure", |tx| {
                                    super::record(
                                        tx,
                                        &rs,
                                        &REPLICASETS,
                                        "Warning",
                                        "FailedCreate",
                                        &format!("Error creating: {msg}"),
                                        COMPONENT,
                                    );
                                    tx.modify(&REPLICASETS, Some(&key.0), &key.1, |o| {
                                        super::set_condition(
                                            o,
                                            "ReplicaFailure",
                                            "True",
                                            Some("FailedCreate"),
                                            Some(&msg),
                                            json!({}),
                                        );
                                        Ok(())
                                    })
                                });
                                self.failures.insert(key.clone(), msg);
                            }
                            break;
                        }
                    }
                }
                if created < want - active.len() && !self.failures.contains_key(key) {
                    self.dirty.insert(key.clone());
                }
            } else if active.len() > want {
                active.sort_by_cached_key(|p| deletion_rank(p));
                let victims: Vec<String> = active[..active.len() - want]
                    .iter()
                    .map(|p| super::name(p).to_string())
                    .collect();
                super::write(&store, "replicaset scale down", |tx| {
                    for v in &victims {
                        if let Ok(p) = tx.delete(&PODS, Some(&key.0), v, &DeleteOptions::default())
                        {
                            super::record(
                                tx,
                                &rs,
                                &REPLICASETS,
                                "Normal",
                                "SuccessfulDelete",
                                &format!("Deleted pod: {}", super::name(&p)),
                                COMPONENT,
                            );
                        }
                    }
                    Ok(())
                });
                active.drain(..active.len() - want);
            }
        }

        // Status from the pods as cached (new pods show up in the next pass).
        let min_ready = rs
            .at("/spec/minReadySeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            .max(0) as f64;
        let template_labels = rs
            .at("/spec/template/metadata/labels")
            .and_then(Value::as_object);
        let now = Instant::now();
        let (mut ready, mut available, mut labeled) = (0, 0, 0);
        let mut next_check: Option<Instant> = None;
        for p in &active {
            if template_labels.is_none_or(|tl| {
                tl.iter()
                    .all(|(k, v)| p.at("/metadata/labels").and_then(|l| l.get(k)) == Some(v))
            }) {
                labeled += 1;
            }
            if !super::pod_ready(p) {
                self.ready_since.remove(super::uid(p));
                continue;
            }
            ready += 1;
            let since = *self
                .ready_since
                .entry(super::uid(p).to_string())
                .or_insert(now);
            let avail_at = since + clock.real_secs(min_ready);
            if min_ready == 0.0 || avail_at <= now {
                available += 1;
            } else {
                next_check = Some(next_check.map_or(avail_at, |t: Instant| t.min(avail_at)));
            }
        }
        if let Some(t) = next_check {
            self.timers.at(t + Duration::from_millis(1), key.clone());
        }
        let status = json!({
            "replicas": active.len(),
            "fullyLabeledReplicas": labeled,
            "readyReplicas": ready,
            "availableReplicas": available,
            "observedGeneration": super::generation(&rs),
        });
        let current = rs.get("status").cloned().unwrap_or_else(|| json!({}));
        let differs = [
            "replicas",
            "fullyLabeledReplicas",
            "readyReplicas",
            "availableReplicas",
            "observedGeneration",
        ]
        .iter()
        .any(|f| {
            current.get(*f).and_then(Value::as_i64).unwrap_or(0) != status[*f].as_i64().unwrap_or(0)
        });
        let clear_failure =
            !self.failures.contains_key(key) && super::condition(&rs, "ReplicaFailure").is_some();
        if differs || clear_failure {
            super::write(&store, "replicaset status", |tx| {
                tx.modify(&REPLICASETS, Some(&key.0), &key.1, |o| {
                    if super::uid(o) != uid {
                        return Ok(());
                    }
                    let st = o
                        .as_object_mut()
                        .map(|m| m.entry("status").or_insert_with(|| json!({})));
                    if let Some(st) = st.and_then(Value::as_object_mut) {
                        for (k, v) in status.as_object().into_iter().flatten() {
                            st.insert(k.clone(), v.clone());
                        }
                        if clear_failure
                            && let Some(c) = st.get_mut("conditions").and_then(Value::as_array_mut)
                        {
                            c.retain(|c| {
                                c.get("type").and_then(Value::as_str) != Some("ReplicaFailure")
                            });
                        }
                    }
                    Ok(())
                })
            });
        }
        created
    }
}
