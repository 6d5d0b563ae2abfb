//! Which pending pods are the interrupted node's replacements.
//!
//! When a node is drained, each evicted pod's controller creates a
//! replacement: a new pod with the same controller owner (a ReplicaSet,
//! StatefulSet or Job), created after the warning, not yet bound to a node.
//! Those pods — and only those, at most as many per owner as the owner had on
//! the node — get the standby toleration (and an annotation naming the
//! interruption), so the scheduler may place them on the standby while every
//! other pod still cannot.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::facts::{Facts, PodFacts, PodPhase};
use crate::kube::Toleration;

/// Pods created this long before the warning still count as replacements
/// (clock skew between EventBridge and the API server).
pub const CREATION_SKEW_SECONDS: i64 = 5;

/// One owner's pods on the interrupted node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OwnerQuota {
    /// Namespace.
    pub namespace: String,
    /// Owner kind (`ReplicaSet`, `StatefulSet`, `Job`, …).
    pub kind: String,
    /// Owner name.
    pub name: String,
    /// Its pods on the node: at most this many replacements are tolerated.
    pub pods: u32,
}

/// What `TolerateReplacements` looks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplacementSpec {
    /// The interruption (annotation value).
    pub interruption_id: String,
    /// The cluster.
    pub cluster: String,
    /// The interrupted node.
    pub node: String,
    /// Owners of the node's pods.
    pub owners: Vec<OwnerQuota>,
    /// The toleration to add.
    pub toleration: Toleration,
    /// Replacements are created after this.
    pub created_after: DateTime<Utc>,
    /// Stop looking then.
    pub watch_until: DateTime<Utc>,
}

impl ReplacementSpec {
    /// The spec for the pods on an interrupted node, counted by
    /// [`owner_quotas`].
    pub fn for_node(
        interruption_id: &str,
        cluster: &str,
        node: &str,
        pods: &[PodFacts],
        toleration: Toleration,
        warned_at: DateTime<Utc>,
        watch_until: DateTime<Utc>,
    ) -> ReplacementSpec {
        ReplacementSpec {
            interruption_id: interruption_id.to_owned(),
            cluster: cluster.to_owned(),
            node: node.to_owned(),
            owners: owner_quotas(pods),
            toleration,
            created_after: warned_at - TimeDelta::seconds(CREATION_SKEW_SECONDS),
            watch_until,
        }
    }
}

/// One quota per controller owner of `pods` that recreates its pods elsewhere
/// (not DaemonSets, whose pods are per node, nor node-owned mirror pods);
/// finished and placeholder pods are not counted.
pub fn owner_quotas(pods: &[PodFacts]) -> Vec<OwnerQuota> {
    let mut counts: BTreeMap<(String, String, String), u32> = BTreeMap::new();
    for p in pods {
        let Some(owner) = &p.owner else { continue };
        if matches!(owner.kind.as_str(), "DaemonSet" | "Node")
            || p.is_finished()
            || p.is_placeholder()
        {
            continue;
        }
        *counts
            .entry((p.namespace.clone(), owner.kind.clone(), owner.name.clone()))
            .or_default() += 1;
    }
    counts
        .into_iter()
        .map(|((namespace, kind, name), pods)| OwnerQuota {
            namespace,
            kind,
            name,
            pods,
        })
        .collect()
}

/// One pod to give the toleration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TolerationPatch {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID precondition (never patch a same-named successor).
    pub uid: String,
    /// `metadata.resourceVersion` precondition, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// The pod's tolerations after the patch (existing ones kept: the API
    /// only lets a pod's tolerations grow).
    pub tolerations_after: Vec<Toleration>,
    /// The pod's annotations after the patch (`costop.io/standby-for` added).
    pub annotations_after: BTreeMap<String, String>,
    /// Annotation `costop.io/standby-for` value.
    pub interruption_id: String,
    /// The pod's controller kind.
    pub owner_kind: String,
    /// The pod's controller name.
    pub owner_name: String,
}

/// Tracks which replacements got the toleration across polls of the pending
/// pods, so no owner gets more than its quota.
#[derive(Debug, Clone)]
pub struct ReplacementTracker {
    spec: ReplacementSpec,
    /// Per owner, the pods tolerated for the interruption (by this tracker or adopted).
    done: BTreeMap<usize, BTreeSet<String>>,
    /// The pods this tracker patched itself.
    patched: BTreeSet<String>,
}

impl ReplacementTracker {
    /// A fresh tracker.
    pub fn new(spec: ReplacementSpec) -> Self {
        ReplacementTracker {
            spec,
            done: BTreeMap::new(),
            patched: BTreeSet::new(),
        }
    }

    /// The spec.
    pub fn spec(&self) -> &ReplacementSpec {
        &self.spec
    }

    fn owner_of(&self, pod: &PodFacts) -> Option<usize> {
        let owner = pod.owner.as_ref()?;
        self.spec.owners.iter().position(|q| {
            q.namespace == pod.namespace && q.kind == owner.kind && q.name == owner.name
        })
    }

    fn done_for(&self, owner: usize) -> usize {
        self.done.get(&owner).map_or(0, BTreeSet::len)
    }

    /// The patches for `pending` (unbound pods of the cluster) now: pending,
    /// not terminating, created after the warning, of a counted owner with
    /// quota left, not tolerating the taint already. Oldest first, so the
    /// first replacements go first.
    pub fn next(&self, pending: &[PodFacts]) -> Vec<TolerationPatch> {
        let mut left: BTreeMap<usize, usize> = BTreeMap::new();
        let mut candidates: Vec<(&PodFacts, usize)> = pending
            .iter()
            .filter(|p| p.phase == PodPhase::Pending && !p.is_terminating())
            .filter(|p| p.created_at.is_some_and(|t| t >= self.spec.created_after))
            .filter(|p| !p.tolerations.contains(&self.spec.toleration))
            .filter_map(|p| Some((p, self.owner_of(p)?)))
            .filter(|(p, o)| !self.done.get(o).is_some_and(|d| d.contains(&p.uid)))
            .collect();
        candidates.sort_by_key(|(p, _)| (p.created_at, p.namespace.clone(), p.name.clone()));
        let mut out = Vec::new();
        for (p, o) in candidates {
            let quota = self.spec.owners[o].pods as usize;
            let l = left
                .entry(o)
                .or_insert_with(|| quota.saturating_sub(self.done_for(o)));
            if *l == 0 {
                continue;
            }
            *l -= 1;
            let mut tolerations_after = p.tolerations.clone();
            tolerations_after.push(self.spec.toleration.clone());
            let mut annotations_after = p.annotations.clone();
            annotations_after.insert(
                crate::constants::ANNOTATION_STANDBY_FOR.to_owned(),
                self.spec.interruption_id.clone(),
            );
            out.push(TolerationPatch {
                namespace: p.namespace.clone(),
                name: p.name.clone(),
                uid: p.uid.clone(),
                resource_version: p.resource_version.clone(),
                annotations_after,
                tolerations_after,
                interruption_id: self.spec.interruption_id.clone(),
                owner_kind: self.spec.owners[o].kind.clone(),
                owner_name: self.spec.owners[o].name.clone(),
            });
        }
        out
    }

    /// Count the pods an earlier delivery of the same interruption already
    /// tolerated (annotated with its id), so a redelivery keeps the quota.
    pub fn adopt(&mut self, pods: &[PodFacts]) {
        for p in pods {
            if p.annotations.get(crate::constants::ANNOTATION_STANDBY_FOR)
                == Some(&self.spec.interruption_id)
                && let Some(o) = self.owner_of(p)
            {
                self.done.entry(o).or_default().insert(p.uid.clone());
            }
        }
    }

    /// Note a patch as applied.
    pub fn applied(&mut self, patch: &TolerationPatch) {
        self.patched.insert(patch.uid.clone());
        if let Some(o) = self.spec.owners.iter().position(|q| {
            q.namespace == patch.namespace
                && q.kind == patch.owner_kind
                && q.name == patch.owner_name
        }) {
            self.done.entry(o).or_default().insert(patch.uid.clone());
        }
    }

    /// Take in another count of the node's pods — the interruption function's
    /// snapshot, taken before its drain, which still has the pods that were
    /// evicted and gone before the keeper looked: per owner the larger count,
    /// owners only it saw added.
    pub fn merge_owners(&mut self, owners: &[OwnerQuota]) {
        for o in owners {
            match self
                .spec
                .owners
                .iter_mut()
                .find(|q| q.namespace == o.namespace && q.kind == o.kind && q.name == o.name)
            {
                Some(q) => q.pods = q.pods.max(o.pods),
                None => self.spec.owners.push(o.clone()),
            }
        }
    }

    /// [`merge_owners`](Self::merge_owners) with the pods of the interruption
    /// function's snapshot, if it is of this spec's node.
    pub fn merge_snapshot(&mut self, snapshot: &Facts) {
        if snapshot
            .node
            .as_ref()
            .is_some_and(|n| n.name == self.spec.node)
        {
            self.merge_owners(&owner_quotas(&snapshot.pods));
        }
    }

    /// Pods this tracker gave the toleration; those another delivery of the
    /// interruption did (adopted) count against the quota, not here, so
    /// concurrent deliveries never count one pod twice.
    pub fn tolerated(&self) -> usize {
        self.patched.len()
    }

    /// Every owner has had all its replacements tolerated.
    pub fn satisfied(&self) -> bool {
        self.spec
            .owners
            .iter()
            .enumerate()
            .all(|(o, q)| self.done_for(o) >= q.pods as usize)
    }
}
