//! The Deployment controller: one ReplicaSet per pod template (`<deployment>-<pod-template-hash>`,
//! label `pod-template-hash`), rolled with `RollingUpdate` (maxSurge / maxUnavailable, old
//! unhealthy replicas cleaned first, as the real controller) or `Recreate`, revisions in the
//! `deployment.kubernetes.io/revision` annotation, old ReplicaSets pruned to
//! `revisionHistoryLimit`, and status (`replicas`, `updatedReplicas`, `readyReplicas`,
//! `availableReplicas`, `unavailableReplicas`, `observedGeneration`, conditions Available and
//! Progressing) as `kubectl rollout status` reads it. `spec.paused` stops rollouts (scaling and
//! status continue).

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Value, json};

use super::At;
use super::Loop;
use super::informer::{Change, Informer, Key};
use crate::clock::Clock;
use crate::resources::{DEPLOYMENTS, PODS, REPLICASETS, ResourceDef};
use crate::store::{DeleteOptions, Tx};

const COMPONENT: &str = "deployment-controller";
const REVISION: &str = "deployment.kubernetes.io/revision";
const HASH: &str = "pod-template-hash";

#[derive(Default)]
pub struct Deployments {
    dirty: BTreeSet<Key>,
}

impl Loop for Deployments {
    const NAME: &'static str = "deployment";

    fn kinds(&self) -> Vec<&'static ResourceDef> {
        // Pods only so Recreate can wait until every old pod is gone.
        vec![&DEPLOYMENTS, &REPLICASETS, &PODS]
    }

    fn observe(&mut self, inf: &Informer, ch: &Change) {
        if ch.is(&DEPLOYMENTS) {
            let o = ch.object();
            self.dirty
                .insert((super::namespace(o).to_string(), super::name(o).to_string()));
            return;
        }
        if ch.is(&PODS) {
            // A pod went away: a Recreate rollout may now proceed.
            if ch.new.is_none()
                && let Some(rs) = ch
                    .old
                    .as_deref()
                    .and_then(super::controller_ref)
                    .and_then(|r| inf.by_uid(r.uid))
                && let Some(d) = super::controller_ref(rs.2).filter(|r| r.kind == "Deployment")
            {
                self.dirty.insert((rs.1.0.clone(), d.name.to_string()));
            }
            return;
        }
        super::mark_owners(&mut self.dirty, ch, "Deployment");
    }

    fn mark_all(&mut self, inf: &Informer) {
        self.dirty
            .extend(inf.iter(&DEPLOYMENTS).map(|(k, _)| k.clone()));
    }

    fn work(&mut self, inf: &Informer) -> bool {
        while let Some(key) = self.dirty.pop_first() {
            sync(inf, &key);
        }
        false
    }
}

fn revision(rs: &Value) -> i64 {
    super::s(
        rs,
        &format!("/metadata/annotations/{}", REVISION.replace('/', "~1")),
    )
    .and_then(|r| r.parse().ok())
    .unwrap_or(0)
}

fn spec_replicas(rs: &Value) -> i64 {
    rs.at("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(0)
        .max(0)
}

fn status_i(obj: &Value, field: &str) -> i64 {
    obj.at(&format!("/status/{field}"))
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// A planned ReplicaSet scale.
struct Scale {
    name: String,
    from: i64,
    to: i64,
}

fn sync(inf: &Informer, key: &Key) {
    let Some(d) = inf.get_key(&DEPLOYMENTS, key).cloned() else {
        return;
    };
    if super::is_terminating(&d) {
        return;
    }
    let store = inf.store().clone();
    let uid = super::uid(&d).to_string();
    let replicas = super::replicas(&d);
    let template = d.at("/spec/template").cloned().unwrap_or_else(|| json!({}));
    let hash = super::template_hash(&template);
    let mut rss: Vec<Arc<Value>> = inf
        .owned_by(&uid, &REPLICASETS)
        .filter(|r| !super::is_terminating(r))
        .cloned()
        .collect();
    rss.sort_by_key(|r| {
        (
            super::s(r, "/metadata/creationTimestamp")
                .unwrap_or("")
                .to_string(),
            super::name(r).to_string(),
        )
    });
    let is_new =
        |r: &Value| super::s(r, &format!("/metadata/labels/{HASH}")) == Some(hash.as_str());
    let new_rs = rss.iter().find(|r| is_new(r)).cloned();
    let olds: Vec<Arc<Value>> = rss.iter().filter(|r| !is_new(r)).cloned().collect();
    let paused = d
        .at("/spec/paused")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let strategy = super::s(&d, "/spec/strategy/type").unwrap_or("RollingUpdate");
    let max_surge = super::int_or_percent(
        Some(
            d.at("/spec/strategy/rollingUpdate/maxSurge")
                .unwrap_or(&json!("25%")),
        ),
        replicas,
        true,
    )
    .unwrap_or(1)
    .max(0);
    let mut max_unavailable = super::int_or_percent(
        Some(
            d.at("/spec/strategy/rollingUpdate/maxUnavailable")
                .unwrap_or(&json!("25%")),
        ),
        replicas,
        false,
    )
    .unwrap_or(0)
    .clamp(0, replicas);
    if strategy == "RollingUpdate" && max_surge == 0 && max_unavailable == 0 {
        max_unavailable = 1;
    }
    let max_revision = rss.iter().map(|r| revision(r)).max().unwrap_or(0);

    let mut scales: Vec<Scale> = Vec::new();
    let mut created_new: Option<(String, i64)> = None;
    let mut bump_revision = false;
    let old_spec: i64 = olds.iter().map(|r| spec_replicas(r)).sum();
    // Old pods still around, terminating ones included (Recreate waits for all of them).
    let old_pods = olds
        .iter()
        .map(|r| {
            inf.owned_by(super::uid(r), &PODS)
                .filter(|p| !super::is_terminal(p))
                .count()
        })
        .sum::<usize>();

    if paused {
        // Paused: only follow scale changes on the current ReplicaSet.
        if let Some(n) = &new_rs
            && old_spec == 0
            && spec_replicas(n) != replicas
        {
            scales.push(Scale {
                name: super::name(n).into(),
                from: spec_replicas(n),
                to: replicas,
            });
        }
    } else if strategy == "Recreate" {
        for o in &olds {
            if spec_replicas(o) > 0 {
                scales.push(Scale {
                    name: super::name(o).into(),
                    from: spec_replicas(o),
                    to: 0,
                });
            }
        }
        // The new pods start only once every old pod is gone.
        if old_pods == 0 && old_spec == 0 {
            match &new_rs {
                None => created_new = Some((format!("{}-{hash}", key.1), replicas)),
                Some(n) if spec_replicas(n) != replicas => scales.push(Scale {
                    name: super::name(n).into(),
                    from: spec_replicas(n),
                    to: replicas,
                }),
                _ => {}
            }
        }
    } else {
        let mut new_spec = new_rs.as_deref().map_or(0, spec_replicas);
        let total = old_spec + new_spec;
        let target = if new_spec > replicas || old_spec == 0 {
            replicas
        } else {
            let allowed = replicas + max_surge - total;
            if allowed > 0 {
                (new_spec + allowed).min(replicas)
            } else {
                new_spec
            }
        };
        match &new_rs {
            None => created_new = Some((format!("{}-{hash}", key.1), target)),
            Some(n) if target != new_spec => scales.push(Scale {
                name: super::name(n).into(),
                from: new_spec,
                to: target,
            }),
            _ => {}
        }
        new_spec = target;
        // Scale old ReplicaSets down without going below replicas - maxUnavailable available.
        if old_spec > 0 {
            let min_available = replicas - max_unavailable;
            let new_available = new_rs
                .as_deref()
                .map_or(0, |n| status_i(n, "availableReplicas"));
            let new_unavailable = (new_spec - new_available).max(0);
            let mut budget = old_spec + new_spec - min_available - new_unavailable;
            let mut plan: Vec<(String, i64, i64)> = olds
                .iter()
                .map(|o| {
                    (
                        super::name(o).to_string(),
                        spec_replicas(o),
                        status_i(o, "availableReplicas"),
                    )
                })
                .collect();
            // First the old replicas that are not available anyway (oldest first).
            for (_, spec, avail) in plan.iter_mut() {
                if budget <= 0 {
                    break;
                }
                let unhealthy = (*spec - *avail).max(0);
                let dec = unhealthy.min(budget);
                *spec -= dec;
                budget -= dec;
            }
            // Then available ones, keeping minAvailable across all ReplicaSets.
            let all_available: i64 = olds
                .iter()
                .map(|o| status_i(o, "availableReplicas"))
                .sum::<i64>()
                + new_available;
            let mut can = budget.min(all_available - min_available);
            for (_, spec, _) in plan.iter_mut() {
                if can <= 0 {
                    break;
                }
                let dec = (*spec).min(can);
                *spec -= dec;
                can -= dec;
            }
            for (o, (name, spec, _)) in olds.iter().zip(plan) {
                if spec != spec_replicas(o) {
                    scales.push(Scale {
                        name,
                        from: spec_replicas(o),
                        to: spec,
                    });
                }
            }
        }
    }
    if let Some(n) = &new_rs {
        bump_revision = !paused && revision(n) < max_revision;
    }

    let new_name = new_rs
        .as_deref()
        .map(|n| super::name(n).to_string())
        .or_else(|| created_new.as_ref().map(|(n, _)| n.clone()));
    let new_revision = match (&new_rs, &created_new) {
        (Some(n), _) if !bump_revision => revision(n),
        _ => max_revision + 1,
    };

    // Write: scales, a new ReplicaSet, the revision annotation; then status.
    if !scales.is_empty() || created_new.is_some() || bump_revision {
        super::write(&store, "deployment rollout", |tx| {
            if let Some((name, reps)) = &created_new {
                create_rs(
                    tx,
                    &d,
                    &template,
                    &hash,
                    name,
                    *reps,
                    new_revision,
                    replicas,
                    max_surge,
                )?;
                super::record(
                    tx,
                    &d,
                    &DEPLOYMENTS,
                    "Normal",
                    "ScalingReplicaSet",
                    &format!("Scaled up replica set {name} from 0 to {reps}"),
                    COMPONENT,
                );
            }
            if bump_revision && let Some(n) = &new_name {
                tx.modify(&REPLICASETS, Some(&key.0), n, |o| {
                    super::put(
                        o,
                        &["metadata", "annotations", REVISION],
                        json!(new_revision.to_string()),
                    );
                    Ok(())
                })?;
            }
            for sc in &scales {
                tx.modify(&REPLICASETS, Some(&key.0), &sc.name, |o| {
                    super::put(o, &["spec", "replicas"], json!(sc.to));
                    super::put(
                        o,
                        &[
                            "metadata",
                            "annotations",
                            "deployment.kubernetes.io/desired-replicas",
                        ],
                        json!(replicas.to_string()),
                    );
                    super::put(
                        o,
                        &[
                            "metadata",
                            "annotations",
                            "deployment.kubernetes.io/max-replicas",
                        ],
                        json!((replicas + max_surge).to_string()),
                    );
                    Ok(())
                })?;
                let verb = if sc.to > sc.from { "up" } else { "down" };
                super::record(
                    tx,
                    &d,
                    &DEPLOYMENTS,
                    "Normal",
                    "ScalingReplicaSet",
                    &format!(
                        "Scaled {verb} replica set {} from {} to {}",
                        sc.name, sc.from, sc.to
                    ),
                    COMPONENT,
                );
            }
            Ok(())
        });
        // Status follows from the ReplicaSets' next updates.
    }

    cleanup_history(inf, &d, &olds, new_name.as_deref());
    update_status(
        inf,
        &d,
        &rss,
        new_rs.as_deref(),
        new_name.as_deref(),
        created_new.is_some(),
        new_revision,
        max_unavailable,
    );
}

#[allow(clippy::too_many_arguments)]
fn create_rs(
    tx: &mut Tx<'_>,
    d: &Value,
    template: &Value,
    hash: &str,
    name: &str,
    reps: i64,
    revision: i64,
    replicas: i64,
    max_surge: i64,
) -> Result<(), crate::error::ApiError> {
    let ns = super::namespace(d).to_string();
    if let Some(existing) = tx.try_get(&REPLICASETS, Some(&ns), name) {
        // Same name but not ours (an orphan or a collision): leave it, as the real controller
        // would bump collisionCount; adoption is out of scope.
        tracing::debug!(replicaset = name, owner = ?super::controller_ref(&existing).map(|r| r.name.to_string()), "replicaset name taken");
        return Ok(());
    }
    let mut tpl = template.clone();
    super::put(&mut tpl, &["metadata", "labels", HASH], json!(hash));
    let mut selector = d
        .at("/spec/selector")
        .cloned()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    super::put(&mut selector, &["matchLabels", HASH], json!(hash));
    let labels = tpl
        .at("/metadata/labels")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let rs = json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": labels,
            "annotations": {
                REVISION: revision.to_string(),
                "deployment.kubernetes.io/desired-replicas": replicas.to_string(),
                "deployment.kubernetes.io/max-replicas": (replicas + max_surge).to_string(),
            },
            "ownerReferences": [super::controller_ref_to(d, &DEPLOYMENTS)],
        },
        "spec": {
            "replicas": reps,
            "minReadySeconds": d.at("/spec/minReadySeconds").cloned().unwrap_or(json!(0)),
            "selector": selector,
            "template": tpl,
        },
    });
    tx.create(&REPLICASETS, Some(&ns), rs)?;
    Ok(())
}

/// Delete fully scaled-down old ReplicaSets beyond `revisionHistoryLimit` (default 10).
fn cleanup_history(inf: &Informer, d: &Value, olds: &[Arc<Value>], new_name: Option<&str>) {
    let limit = d
        .at("/spec/revisionHistoryLimit")
        .and_then(Value::as_i64)
        .unwrap_or(10)
        .max(0) as usize;
    let mut idle: Vec<&Arc<Value>> = olds
        .iter()
        .filter(|o| {
            Some(super::name(o)) != new_name
                && spec_replicas(o) == 0
                && status_i(o, "replicas") == 0
        })
        .collect();
    if idle.len() <= limit {
        return;
    }
    idle.sort_by_key(|o| revision(o));
    let doomed: Vec<String> = idle[..idle.len() - limit]
        .iter()
        .map(|o| super::name(o).to_string())
        .collect();
    let ns = super::namespace(d).to_string();
    super::write(inf.store(), "deployment history cleanup", |tx| {
        for n in &doomed {
            tx.delete(&REPLICASETS, Some(&ns), n, &DeleteOptions::default())?;
        }
        Ok(())
    });
}

#[allow(clippy::too_many_arguments)]
fn update_status(
    inf: &Informer,
    d: &Value,
    rss: &[Arc<Value>],
    new_rs: Option<&Value>,
    new_name: Option<&str>,
    just_created: bool,
    new_revision: i64,
    max_unavailable: i64,
) {
    let replicas = super::replicas(d);
    let actual: i64 = rss.iter().map(|r| status_i(r, "replicas")).sum();
    let spec_total: i64 = rss.iter().map(|r| spec_replicas(r)).sum();
    let ready: i64 = rss.iter().map(|r| status_i(r, "readyReplicas")).sum();
    let available: i64 = rss.iter().map(|r| status_i(r, "availableReplicas")).sum();
    let updated = new_rs.map_or(0, |n| status_i(n, "replicas"));
    let unavailable = (spec_total - available).max(0);
    let complete =
        new_rs.is_some() && updated == replicas && available == replicas && actual == replicas;
    let now = Clock::now_rfc3339();
    let name = new_name.unwrap_or("");
    let (p_reason, p_msg) = if complete {
        (
            "NewReplicaSetAvailable",
            format!("ReplicaSet \"{name}\" has successfully progressed."),
        )
    } else if just_created {
        (
            "NewReplicaSetCreated",
            format!("Created new replica set \"{name}\""),
        )
    } else {
        (
            "ReplicaSetUpdated",
            format!("ReplicaSet \"{name}\" is progressing."),
        )
    };
    let (a_status, a_reason, a_msg) = if available >= replicas - max_unavailable {
        (
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
        )
    } else {
        (
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        )
    };
    let ns = super::namespace(d).to_string();
    let dname = super::name(d).to_string();
    let uid = super::uid(d).to_string();
    let paused = d
        .at("/spec/paused")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut next = d.clone();
    {
        let mut st = d
            .get("status")
            .cloned()
            .filter(Value::is_object)
            .unwrap_or_else(|| json!({}));
        for (k, v) in [
            ("observedGeneration", super::generation(d)),
            ("replicas", actual),
            ("updatedReplicas", updated),
            ("readyReplicas", ready),
            ("availableReplicas", available),
            ("unavailableReplicas", unavailable),
        ] {
            super::put(&mut st, &[k], json!(v));
        }
        if let Some(m) = st.as_object_mut() {
            // Zero counts are omitted by the real API (omitempty).
            m.retain(|k, v| {
                k == "observedGeneration" || k == "conditions" || v.as_i64() != Some(0)
            });
        }
        super::put(&mut next, &["status"], st);
    }
    let stamp = json!({"lastUpdateTime": now});
    super::set_condition(
        &mut next,
        "Available",
        a_status,
        Some(a_reason),
        Some(a_msg),
        stamp.clone(),
    );
    if paused {
        super::set_condition(
            &mut next,
            "Progressing",
            "Unknown",
            Some("DeploymentPaused"),
            Some("Deployment is paused"),
            stamp,
        );
    } else if !name.is_empty() {
        super::set_condition(
            &mut next,
            "Progressing",
            "True",
            Some(p_reason),
            Some(&p_msg),
            stamp,
        );
    }
    if new_revision > 0 && !paused && !name.is_empty() {
        let cur = super::s(
            d,
            &format!("/metadata/annotations/{}", REVISION.replace('/', "~1")),
        );
        if cur != Some(new_revision.to_string().as_str()) {
            super::put(
                &mut next,
                &["metadata", "annotations", REVISION],
                json!(new_revision.to_string()),
            );
        }
    }
    if next.get("status") == d.get("status")
        && next.at("/metadata/annotations") == d.at("/metadata/annotations")
    {
        return;
    }
    super::write(inf.store(), "deployment status", |tx| {
        tx.modify(&DEPLOYMENTS, Some(&ns), &dname, |o| {
            if super::uid(o) != uid {
                return Ok(());
            }
            if let Some(st) = next.get("status") {
                super::put(o, &["status"], st.clone());
            }
            if let Some(rev) = next.at(&format!(
                "/metadata/annotations/{}",
                REVISION.replace('/', "~1")
            )) {
                super::put(o, &["metadata", "annotations", REVISION], rev.clone());
            }
            Ok(())
        })
    });
}
