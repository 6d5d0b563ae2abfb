//! The StatefulSet controller: pods `<name>-0 … <name>-(N-1)` with stable names (hostname
//! and subdomain set, labels `statefulset.kubernetes.io/pod-name`, `apps.kubernetes.io/pod-index`
//! and `controller-revision-hash`). `OrderedReady` (the default) creates the next ordinal only
//! when every lower one is Running and Ready and removes the highest first, one at a time;
//! `Parallel` creates and deletes all at once. A deleted pod is recreated with the same name
//! once the old one is gone; a failed one is deleted and recreated. Template changes roll out
//! from the highest ordinal down to `partition`, one pod at a time (OnDelete waits).
//! `volumeClaimTemplates` are ignored (no storage in the simulator).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::{Value, json};

use super::At;
use super::informer::{Change, Informer, Key};
use super::{Loop, PodName};
use crate::resources::{PODS, ResourceDef, STATEFULSETS};
use crate::store::DeleteOptions;

const COMPONENT: &str = "statefulset-controller";
const HASH: &str = "controller-revision-hash";

#[derive(Default)]
pub struct StatefulSets {
    dirty: BTreeSet<Key>,
}

impl Loop for StatefulSets {
    const NAME: &'static str = "statefulset";

    fn kinds(&self) -> Vec<&'static ResourceDef> {
        vec![&STATEFULSETS, &PODS]
    }

    fn observe(&mut self, _inf: &Informer, ch: &Change) {
        if ch.is(&STATEFULSETS) {
            let o = ch.object();
            self.dirty
                .insert((super::namespace(o).to_string(), super::name(o).to_string()));
            return;
        }
        super::mark_owners(&mut self.dirty, ch, "StatefulSet");
    }

    fn mark_all(&mut self, inf: &Informer) {
        self.dirty
            .extend(inf.iter(&STATEFULSETS).map(|(k, _)| k.clone()));
    }

    fn work(&mut self, inf: &Informer) -> bool {
        while let Some(key) = self.dirty.pop_first() {
            sync(inf, &key);
        }
        false
    }
}

fn ordinal(set: &str, pod: &str) -> Option<usize> {
    pod.strip_prefix(set)?.strip_prefix('-')?.parse().ok()
}

enum Action {
    Create(usize),
    Delete(String),
}

fn sync(inf: &Informer, key: &Key) {
    let Some(sts) = inf.get_key(&STATEFULSETS, key).cloned() else {
        return;
    };
    if super::is_terminating(&sts) {
        return;
    }
    let store = inf.store().clone();
    let uid = super::uid(&sts).to_string();
    let name = key.1.as_str();
    let replicas = super::replicas(&sts) as usize;
    let parallel = super::s(&sts, "/spec/podManagementPolicy") == Some("Parallel");
    let template = sts
        .at("/spec/template")
        .cloned()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    let revision = format!("{name}-{}", super::template_hash(&template));

    let mut pods: BTreeMap<usize, Arc<Value>> = BTreeMap::new();
    for p in inf.owned_by(&uid, &PODS) {
        if let Some(i) = ordinal(name, super::name(p)) {
            pods.insert(i, p.clone());
        }
    }
    let rev_of = |p: &Value| {
        super::s(p, &format!("/metadata/labels/{HASH}"))
            .unwrap_or("")
            .to_string()
    };

    let mut actions: Vec<Action> = Vec::new();
    let mut blocked = false;
    for i in 0..replicas {
        match pods.get(&i) {
            None => {
                actions.push(Action::Create(i));
                if !parallel {
                    blocked = true;
                    break;
                }
            }
            Some(p) if super::is_terminating(p) => {
                if !parallel {
                    blocked = true;
                    break;
                }
            }
            Some(p) if super::phase(p) == "Failed" => {
                actions.push(Action::Delete(super::name(p).to_string()));
                if !parallel {
                    blocked = true;
                    break;
                }
            }
            Some(p) if !super::pod_healthy(p) => {
                if !parallel {
                    blocked = true;
                    break;
                }
            }
            Some(_) => {}
        }
    }
    // Scale down: highest ordinal first.
    let condemned: Vec<&Arc<Value>> = pods.range(replicas..).rev().map(|(_, p)| p).collect();
    if !blocked {
        if parallel {
            actions.extend(
                condemned
                    .iter()
                    .filter(|p| !super::is_terminating(p))
                    .map(|p| Action::Delete(super::name(p).to_string())),
            );
        } else if let Some(p) = condemned.first() {
            // One at a time, and only when nothing else is on its way out.
            let terminating = pods.values().any(|p| super::is_terminating(p));
            if !terminating {
                actions.push(Action::Delete(super::name(p).to_string()));
            }
        }
    }
    // Rolling update: when everything is in place and healthy, replace the highest old pod.
    let strategy = super::s(&sts, "/spec/updateStrategy/type").unwrap_or("RollingUpdate");
    let partition = sts
        .at("/spec/updateStrategy/rollingUpdate/partition")
        .and_then(Value::as_i64)
        .unwrap_or(0)
        .max(0) as usize;
    let all_healthy = pods.len() == replicas && pods.values().all(|p| super::pod_healthy(p));
    if strategy == "RollingUpdate"
        && actions.is_empty()
        && all_healthy
        && let Some(p) = pods
            .range(partition..)
            .rev()
            .map(|(_, p)| p)
            .find(|p| rev_of(p) != revision)
    {
        actions.push(Action::Delete(super::name(p).to_string()));
    }

    for a in &actions {
        match a {
            Action::Create(i) => {
                let pod_name = format!("{name}-{i}");
                let idx = i.to_string();
                let mut pod = super::pod_from_template(
                    &sts,
                    &STATEFULSETS,
                    &template,
                    PodName::Fixed(&pod_name),
                    &[
                        ("statefulset.kubernetes.io/pod-name", &pod_name),
                        ("apps.kubernetes.io/pod-index", &idx),
                        (HASH, &revision),
                    ],
                );
                super::put(&mut pod, &["spec", "hostname"], json!(pod_name));
                if let Some(svc) = super::s(&sts, "/spec/serviceName").filter(|s| !s.is_empty()) {
                    super::put(&mut pod, &["spec", "subdomain"], json!(svc));
                }
                super::write(&store, "statefulset pod create", |tx| {
                    tx.create(&PODS, Some(&key.0), pod)?;
                    super::record(
                        tx,
                        &sts,
                        &STATEFULSETS,
                        "Normal",
                        "SuccessfulCreate",
                        &format!("create Pod {pod_name} in StatefulSet {name} successful"),
                        COMPONENT,
                    );
                    Ok(())
                });
            }
            Action::Delete(p) => {
                super::write(&store, "statefulset pod delete", |tx| {
                    tx.delete(&PODS, Some(&key.0), p, &DeleteOptions::default())?;
                    super::record(
                        tx,
                        &sts,
                        &STATEFULSETS,
                        "Normal",
                        "SuccessfulDelete",
                        &format!("delete Pod {p} in StatefulSet {name} successful"),
                        COMPONENT,
                    );
                    Ok(())
                });
            }
        }
    }

    // Status from the cached pods.
    let live: Vec<&Arc<Value>> = pods
        .values()
        .filter(|p| !super::is_terminating(p))
        .collect();
    let ready = live.iter().filter(|p| super::pod_healthy(p)).count();
    let updated = live.iter().filter(|p| rev_of(p) == revision).count();
    let prev_current = super::s(&sts, "/status/currentRevision")
        .filter(|r| !r.is_empty())
        .map(str::to_string);
    let current_revision = match prev_current {
        Some(c) if !(updated == replicas && ready == replicas) => c,
        _ => revision.clone(),
    };
    let current = live
        .iter()
        .filter(|p| rev_of(p) == current_revision)
        .count();
    let status = json!({
        "observedGeneration": super::generation(&sts),
        "replicas": live.len(),
        "readyReplicas": ready,
        "availableReplicas": ready,
        "currentReplicas": current,
        "updatedReplicas": updated,
        "currentRevision": current_revision,
        "updateRevision": revision,
        "collisionCount": 0,
    });
    let differs = status
        .as_object()
        .into_iter()
        .flatten()
        .any(|(k, v)| sts.at(&format!("/status/{k}")) != Some(v));
    if differs {
        super::write(&store, "statefulset status", |tx| {
            tx.modify(&STATEFULSETS, Some(&key.0), &key.1, |o| {
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
