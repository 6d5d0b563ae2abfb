//! The namespace controller: empties a namespace being deleted, then lets it go
//! (<https://kubernetes.io/docs/concepts/overview/working-with-objects/namespaces/>,
//! <https://kubernetes.io/docs/tasks/administer-cluster/namespaces/#deleting-a-namespace>).
//!
//! After a namespace gets its `deletionTimestamp` (phase `Terminating`), the controller
//! deletes every object in it as a client's DELETE would — pods gracefully, so they
//! terminate through the kubelet; objects with finalizers wait for them — and reports
//! progress in the namespace's conditions (`NamespaceContentRemaining`,
//! `NamespaceFinalizersRemaining`, ...) as the real one does. Once nothing is left it removes
//! the `kubernetes` finalizer from `spec.finalizers` and the namespace disappears.
//!
//! The first pass waits `namespace_cleanup_delay_seconds`: the real controller rediscovers
//! the served resources and deletes collection by collection, so a client deleting a
//! manifest (namespace first, its objects after) still finds the objects.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Value, json};
use tokio::time::Instant;

use super::informer::{Change, Informer};
use super::{At, ControllerConfig, Loop, Timers};
use crate::admission::{KUBERNETES_FINALIZER, namespace_is_terminating};
use crate::error::ApiError;
use crate::resources::{self, NAMESPACES, ResourceDef};
use crate::store::{DeleteOptions, ListOptions, Tx};

pub struct Namespaces {
    delay_secs: f64,
    dirty: BTreeSet<String>,
    timers: Timers<String>,
    /// When each terminating namespace's cleanup may start (uid, instant).
    start_at: HashMap<String, (String, Instant)>,
}

impl Namespaces {
    pub fn new(cfg: &ControllerConfig) -> Self {
        Self {
            delay_secs: cfg.namespace_cleanup_delay_seconds.max(0.0),
            dirty: BTreeSet::new(),
            timers: Timers::default(),
            start_at: HashMap::new(),
        }
    }
}

fn namespaced() -> impl Iterator<Item = &'static ResourceDef> {
    resources::ALL.iter().copied().filter(|r| r.namespaced)
}

impl Loop for Namespaces {
    const NAME: &'static str = "namespace";

    fn kinds(&self) -> Vec<&'static ResourceDef> {
        std::iter::once(&NAMESPACES).chain(namespaced()).collect()
    }

    fn debounce(&self) -> std::time::Duration {
        std::time::Duration::from_millis(2)
    }

    fn observe(&mut self, inf: &Informer, ch: &Change) {
        let obj = ch.object();
        if ch.is(&NAMESPACES) {
            let name = super::name(obj).to_string();
            if ch.new.as_deref().is_some_and(namespace_is_terminating) {
                self.dirty.insert(name);
            } else if ch.new.is_none() {
                self.start_at.remove(&name);
            }
            return;
        }
        // Content going (or changing its finalizers) in a terminating namespace: look again.
        let ns = super::namespace(obj);
        if inf
            .get(&NAMESPACES, "", ns)
            .is_some_and(|n| namespace_is_terminating(n))
        {
            self.dirty.insert(ns.to_string());
        }
    }

    fn mark_all(&mut self, inf: &Informer) {
        let terminating: Vec<String> = inf
            .iter(&NAMESPACES)
            .filter(|(_, n)| namespace_is_terminating(n))
            .map(|(_, n)| super::name(n).to_string())
            .collect();
        self.dirty.extend(terminating);
    }

    fn work(&mut self, inf: &Informer) -> bool {
        for k in self.timers.due() {
            self.dirty.insert(k);
        }
        while let Some(ns) = self.dirty.pop_first() {
            self.sync(inf, &ns);
        }
        false
    }

    fn deadline(&self) -> Option<Instant> {
        self.timers.next()
    }
}

impl Namespaces {
    fn sync(&mut self, inf: &Informer, ns: &str) {
        let Some(obj) = inf.get(&NAMESPACES, "", ns).cloned() else {
            self.start_at.remove(ns);
            return;
        };
        if !namespace_is_terminating(&obj) {
            return;
        }
        let uid = super::uid(&obj).to_string();
        let now = Instant::now();
        let delay = inf.store().clock().real_secs(self.delay_secs);
        let start = match self.start_at.get(ns) {
            Some((u, at)) if *u == uid => *at,
            _ => {
                self.start_at
                    .insert(ns.to_string(), (uid.clone(), now + delay));
                now + delay
            }
        };
        if start > now {
            self.timers.at(start, ns.to_string());
            return;
        }
        super::write(inf.store(), "namespace cleanup", |tx| {
            if tx
                .try_get(&NAMESPACES, None, ns)
                .is_none_or(|cur| super::uid(&cur) != uid)
            {
                return Ok(());
            }
            delete_content(tx, ns);
            let remaining = remaining(tx, ns);
            tx.modify(&NAMESPACES, None, ns, |n| {
                set_conditions(n, &remaining);
                if remaining.is_empty()
                    && let Some(f) = n
                        .pointer_mut("/spec/finalizers")
                        .and_then(Value::as_array_mut)
                {
                    f.retain(|x| x.as_str() != Some(KUBERNETES_FINALIZER));
                }
                Ok(())
            })?;
            Ok::<(), ApiError>(())
        });
    }
}

/// Delete every object in `ns` that is not already being deleted (errors are left for the
/// next pass, as the real controller retries).
fn delete_content(tx: &mut Tx<'_>, ns: &str) {
    let all = ListOptions::default();
    for r in namespaced() {
        for item in tx.list(r, Some(ns), &all) {
            if super::is_terminating(&item) {
                continue;
            }
            let name = super::name(&item).to_string();
            if let Err(e) = tx.delete(r, Some(ns), &name, &DeleteOptions::default()) {
                tracing::debug!(error = %e, namespace = ns, name, "namespace cleanup: delete failed");
            }
        }
    }
}

/// What is left in `ns`: instances per resource, and finalizers still held by how many.
struct Remaining {
    resources: BTreeMap<String, usize>,
    finalizers: BTreeMap<String, usize>,
}

impl Remaining {
    fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }
}

fn remaining(tx: &Tx<'_>, ns: &str) -> Remaining {
    let all = ListOptions::default();
    let mut out = Remaining {
        resources: BTreeMap::new(),
        finalizers: BTreeMap::new(),
    };
    for r in namespaced() {
        let items = tx.list(r, Some(ns), &all);
        if items.is_empty() {
            continue;
        }
        out.resources.insert(r.qualified(), items.len());
        for item in &items {
            for f in item
                .at("/metadata/finalizers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                *out.finalizers.entry(f.to_string()).or_default() += 1;
            }
        }
    }
    out
}

/// The deletion conditions the real namespace controller reports.
fn set_conditions(ns: &mut Value, left: &Remaining) {
    let none = json!({});
    super::set_condition(
        ns,
        "NamespaceDeletionDiscoveryFailure",
        "False",
        Some("ResourcesDiscovered"),
        Some("All resources successfully discovered"),
        none.clone(),
    );
    super::set_condition(
        ns,
        "NamespaceDeletionGroupVersionParsingFailure",
        "False",
        Some("ParsedGroupVersions"),
        Some("All legacy kube types successfully parsed"),
        none.clone(),
    );
    super::set_condition(
        ns,
        "NamespaceDeletionContentFailure",
        "False",
        Some("ContentDeleted"),
        Some("All content successfully deleted, may be waiting on finalization"),
        none.clone(),
    );
    if left.resources.is_empty() {
        super::set_condition(
            ns,
            "NamespaceContentRemaining",
            "False",
            Some("ContentRemoved"),
            Some("All content successfully removed"),
            none.clone(),
        );
    } else {
        let what: Vec<String> = left
            .resources
            .iter()
            .map(|(r, n)| format!("{r} has {n} resource instances"))
            .collect();
        super::set_condition(
            ns,
            "NamespaceContentRemaining",
            "True",
            Some("SomeResourcesRemain"),
            Some(&format!(
                "Some resources are remaining: {}",
                what.join(", ")
            )),
            none.clone(),
        );
    }
    if left.finalizers.is_empty() {
        super::set_condition(
            ns,
            "NamespaceFinalizersRemaining",
            "False",
            Some("ContentHasNoFinalizers"),
            Some("All content-preserving finalizers finished"),
            none,
        );
    } else {
        let what: Vec<String> = left
            .finalizers
            .iter()
            .map(|(f, n)| format!("{f} in {n} resource instances"))
            .collect();
        super::set_condition(
            ns,
            "NamespaceFinalizersRemaining",
            "True",
            Some("SomeFinalizersRemain"),
            Some(&format!(
                "Some content in the namespace has finalizers remaining: {}",
                what.join(", ")
            )),
            none,
        );
    }
}
