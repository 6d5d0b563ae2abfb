//! The scheduler (`schedulerName: default-scheduler`): binds pending pods to nodes, highest
//! priority first, with the default profile's filters that matter here (NodeUnschedulable,
//! TaintToleration, NodeAffinity incl. `nodeSelector`, NodeResourcesFit for cpu/memory/pods;
//! a NotReady node counts as tainted `not-ready:NoSchedule`) and a least-allocated score (plus
//! preferred affinity, minus untolerated PreferNoSchedule taints) so pods spread.
//!
//! A pod that fits nowhere gets `PodScheduled=False/Unschedulable` with the real message shape
//! (`0/4 nodes are available: 1 node(s) were unschedulable, 3 Insufficient cpu. preemption:
//! ...`) and a FailedScheduling event. Unless `preemptionPolicy: Never`, it then preempts: on
//! the node where evicting the fewest, lowest-priority pods makes it fit, those victims are
//! deleted gracefully (DisruptionTarget condition, Preempted event) and the pod is nominated
//! (`status.nominatedNodeName`); the nomination reserves the room against lower-priority pods
//! until the victims are gone and the pod binds.
//!
//! Event driven: node and pod changes update an in-memory picture of every node's allocation,
//! so a pod that fits is bound within milliseconds of appearing. Unschedulable pods are
//! retried when capacity may have appeared (node changes, pods leaving nodes) and on resync.
//! Binding is one transaction doing what the binding subresource does.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::At;
use super::Loop;
use super::informer::{Change, Informer, Key};
use super::matching::{self, Requests, Taint, Toleration};
use crate::error::ApiError;
use crate::resources::{NODES, PODS, PRIORITYCLASSES, ResourceDef};
use crate::store::{DeleteOptions, Tx};

pub const SCHEDULER_NAME: &str = "default-scheduler";
/// Pods handled per pass before yielding to other tasks.
const PER_PASS: usize = 1000;
/// Minimum real time between two retries of all unschedulable pods.
const FLUSH_INTERVAL: Duration = Duration::from_millis(10);
/// Minimum real time between rewrites of one pod's Unschedulable condition.
const REPORT_INTERVAL: Duration = Duration::from_secs(1);
const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";
const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";
const UNREACHABLE_TAINT: &str = "node.kubernetes.io/unreachable";

struct NodeInfo {
    name: String,
    node: Arc<Value>,
    taints: Vec<Taint>,
    unschedulable: bool,
    alloc: Requests,
    alloc_pods: i64,
    used: Requests,
    pods: i64,
}

impl NodeInfo {
    fn new(node: Arc<Value>) -> Self {
        let mut taints = matching::taints(&node);
        if !super::node_ready(&node)
            && !taints
                .iter()
                .any(|t| t.key == NOT_READY_TAINT || t.key == UNREACHABLE_TAINT)
        {
            // Before the lifecycle controller taints a NotReady node, treat it as tainted.
            taints.push(Taint {
                key: NOT_READY_TAINT.into(),
                value: String::new(),
                effect: "NoSchedule".into(),
                time_added: None,
            });
        }
        let alloc = node.at("/status/allocatable");
        Self {
            unschedulable: node
                .at("/spec/unschedulable")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            alloc: Requests {
                cpu_m: matching::cpu_millis(alloc.and_then(|a| a.get("cpu"))),
                mem: matching::amount(alloc.and_then(|a| a.get("memory"))),
            },
            alloc_pods: alloc
                .and_then(|a| a.get("pods"))
                .map_or(110, |p| matching::amount(Some(p))),
            taints,
            used: Requests::default(),
            pods: 0,
            name: super::name(&node).to_string(),
            node,
        }
    }
    fn name(&self) -> &str {
        &self.name
    }
    /// What the scheduler looks at, to tell real changes from status noise.
    fn signature(&self) -> (bool, &[Taint], Requests, i64, Option<&Value>) {
        (
            self.unschedulable,
            &self.taints,
            self.alloc,
            self.alloc_pods,
            self.node.at("/metadata/labels"),
        )
    }
}

/// One pending pod, parsed once per attempt.
struct PodInfo {
    key: Key,
    pod: Arc<Value>,
    prio: i64,
    req: Requests,
    tols: Vec<Toleration>,
    class: u64,
    has_preferences: bool,
}

/// A pod waiting for room: when its condition was last written, the message, and the hash of
/// the spec the failure was computed for (a spec change, e.g. an added toleration, retries it).
struct Unschedulable {
    reported: Instant,
    message: String,
    spec: u64,
}

/// Why one node does not fit.
#[derive(Default, Clone)]
struct Fit {
    reasons: Vec<String>,
    /// Only resources are missing: preemption might help.
    resources_only: bool,
}

#[derive(Default)]
pub struct Scheduler {
    nodes: BTreeMap<String, NodeInfo>,
    /// Bound, unfinished pods → (node, requests, priority) accounted in `nodes`.
    usage: HashMap<Key, (String, Requests)>,
    /// Unbound pods nominated to a node → (node, priority, requests).
    nominated: HashMap<Key, (String, i64, Requests)>,
    /// Pods to try, highest priority then oldest first.
    active: BTreeSet<(std::cmp::Reverse<i64>, String, Key)>,
    queued: HashMap<Key, (i64, String)>,
    /// Pods that did not fit.
    unschedulable: HashMap<Key, Unschedulable>,
    flush_wanted: bool,
    last_flush: Option<Instant>,
    /// Per pass: for each pod class, the nodes' verdicts on everything but resources
    /// (unschedulable, taints, affinity), which binding pods does not change.
    static_fits: HashMap<u64, Vec<Option<Fit>>>,
}

impl Scheduler {
    pub fn new() -> Self {
        Self::default()
    }
}

fn wants_scheduling(pod: &Value) -> bool {
    super::pod_node(pod).is_none()
        && !super::is_terminating(pod)
        && !super::is_terminal(pod)
        && super::s(pod, "/spec/schedulerName").is_none_or(|n| n.is_empty() || n == SCHEDULER_NAME)
        && pod
            .at("/spec/schedulingGates")
            .and_then(Value::as_array)
            .is_none_or(|g| g.is_empty())
}

fn key_of(obj: &Value) -> Key {
    (
        super::namespace(obj).to_string(),
        super::name(obj).to_string(),
    )
}

impl Loop for Scheduler {
    const NAME: &'static str = "scheduler";

    fn kinds(&self) -> Vec<&'static ResourceDef> {
        vec![&NODES, &PODS, &PRIORITYCLASSES]
    }

    fn observe(&mut self, inf: &Informer, ch: &Change) {
        if ch.is(&NODES) {
            let name = super::name(ch.object()).to_string();
            let old = self.nodes.remove(&name);
            match &ch.new {
                Some(n) => {
                    let mut info = NodeInfo::new(n.clone());
                    let changed = old
                        .as_ref()
                        .is_none_or(|o| o.signature() != info.signature());
                    if let Some(o) = old {
                        info.used = o.used;
                        info.pods = o.pods;
                    }
                    self.nodes.insert(name, info);
                    if changed {
                        self.flush_wanted = true;
                    }
                }
                None => {
                    // Bound pods keep their accounting until pod GC removes them.
                }
            }
            return;
        }
        if ch.is(&PODS) {
            // Status updates of running pods (most events) change nothing the scheduler tracks.
            let tracked = |p: &Value| {
                (
                    super::pod_node(p).map(str::to_string),
                    super::is_terminal(p),
                    super::is_terminating(p),
                    p.at("/status/nominatedNodeName").cloned(),
                )
            };
            if let (Some(old), Some(new)) = (ch.old.as_deref(), ch.new.as_deref())
                && super::pod_node(new).is_some()
                && tracked(old) == tracked(new)
            {
                return;
            }
            let key = key_of(ch.object());
            self.account(inf, &key, ch.new.as_deref());
            return;
        }
        // A PriorityClass change may reorder or enable pods: retry everything pending.
        self.flush_wanted = true;
    }

    fn mark_all(&mut self, inf: &Informer) {
        self.nodes = inf
            .iter(&NODES)
            .map(|(_, n)| (super::name(n).to_string(), NodeInfo::new(n.clone())))
            .collect();
        self.usage.clear();
        self.nominated.clear();
        self.active.clear();
        self.queued.clear();
        let keys: Vec<Key> = inf.iter(&PODS).map(|(k, _)| k.clone()).collect();
        for k in keys {
            let pod = inf.get_key(&PODS, &k).cloned();
            self.account(inf, &k, pod.as_deref());
        }
        // Everything pending is retried.
        let pending: Vec<Key> = self.unschedulable.keys().cloned().collect();
        for k in pending {
            if let Some(p) = inf.get_key(&PODS, &k).cloned() {
                self.enqueue(inf, &k, &p);
            } else {
                self.unschedulable.remove(&k);
            }
        }
    }

    fn work(&mut self, inf: &Informer) -> bool {
        if self.flush_wanted
            && self
                .last_flush
                .is_none_or(|t| t.elapsed() >= FLUSH_INTERVAL)
        {
            self.flush_wanted = false;
            self.last_flush = Some(Instant::now());
            let keys: Vec<Key> = self.unschedulable.keys().cloned().collect();
            for k in keys {
                if let Some(p) = inf.get_key(&PODS, &k).cloned() {
                    self.enqueue(inf, &k, &p);
                }
            }
        }
        let mut failed_classes: HashMap<u64, String> = HashMap::new();
        self.static_fits.clear();
        let mut n = 0;
        while let Some(entry) = self.active.pop_first() {
            let key = entry.2;
            self.queued.remove(&key);
            let Some(pod) = inf.get_key(&PODS, &key).cloned() else {
                continue;
            };
            if !wants_scheduling(&pod) {
                continue;
            }
            let info = self.pod_info(inf, key, pod);
            if let Some(msg) = failed_classes.get(&info.class).cloned() {
                // An identical pod failed this pass: so does this one (capacity only shrinks).
                self.report_unschedulable(inf, &info, &msg);
                continue;
            }
            if let Err(msg) = self.schedule_one(inf, &info) {
                failed_classes.insert(info.class, msg);
            }
            n += 1;
            if n >= PER_PASS {
                return true;
            }
        }
        false
    }

    fn deadline(&self) -> Option<Instant> {
        match (self.flush_wanted, self.last_flush) {
            (true, Some(t)) => Some(t + FLUSH_INTERVAL),
            (true, None) => Some(Instant::now()),
            _ => None,
        }
    }
}

impl Scheduler {
    /// Keep node usage, nominations and the queue in step with one pod's new state.
    fn account(&mut self, inf: &Informer, key: &Key, pod: Option<&Value>) {
        if let Some((node, req)) = self.usage.remove(key) {
            if let Some(n) = self.nodes.get_mut(&node) {
                n.used.sub(req);
                n.pods -= 1;
            }
            let still_there = pod.is_some_and(|p| {
                super::pod_node(p) == Some(node.as_str()) && !super::is_terminal(p)
            });
            if !still_there {
                // Capacity freed: pending pods may fit now.
                self.flush_wanted = true;
            }
        }
        if self.nominated.remove(key).is_some() {
            self.flush_wanted = true;
        }
        let Some(pod) = pod else {
            self.dequeue(key);
            self.unschedulable.remove(key);
            return;
        };
        if let Some(node) = super::pod_node(pod) {
            self.dequeue(key);
            self.unschedulable.remove(key);
            if !super::is_terminal(pod) {
                let req = matching::pod_requests(pod);
                if let Some(n) = self.nodes.get_mut(node) {
                    n.used.add(req);
                    n.pods += 1;
                }
                self.usage.insert(key.clone(), (node.to_string(), req));
            }
            return;
        }
        if !wants_scheduling(pod) {
            self.dequeue(key);
            self.unschedulable.remove(key);
            return;
        }
        if let Some(nn) = super::s(pod, "/status/nominatedNodeName").filter(|n| !n.is_empty()) {
            self.nominated.insert(
                key.clone(),
                (
                    nn.to_string(),
                    self.priority(inf, pod),
                    matching::pod_requests(pod),
                ),
            );
        }
        // New pods, and unschedulable pods whose spec changed (e.g. a toleration was added),
        // are tried now; status-only updates of a waiting pod are not a reason to retry.
        if self
            .unschedulable
            .get(key)
            .is_some_and(|u| u.spec == spec_hash(pod))
        {
            return;
        }
        self.enqueue(inf, key, pod);
    }

    fn enqueue(&mut self, inf: &Informer, key: &Key, pod: &Value) {
        let prio = self.priority(inf, pod);
        let ts = super::s(pod, "/metadata/creationTimestamp")
            .unwrap_or("")
            .to_string();
        if let Some((p, t)) = self.queued.remove(key) {
            self.active.remove(&(std::cmp::Reverse(p), t, key.clone()));
        }
        self.active
            .insert((std::cmp::Reverse(prio), ts.clone(), key.clone()));
        self.queued.insert(key.clone(), (prio, ts));
    }

    fn dequeue(&mut self, key: &Key) {
        if let Some((p, t)) = self.queued.remove(key) {
            self.active.remove(&(std::cmp::Reverse(p), t, key.clone()));
        }
    }

    /// `spec.priority` (set by admission), else the PriorityClass's value, else the global
    /// default class, else 0.
    fn priority(&self, inf: &Informer, pod: &Value) -> i64 {
        if let Some(p) = pod.at("/spec/priority").and_then(Value::as_i64) {
            return p;
        }
        let value = |pc: &Value| pc.get("value").and_then(Value::as_i64).unwrap_or(0);
        if let Some(pc) =
            super::s(pod, "/spec/priorityClassName").and_then(|n| inf.get(&PRIORITYCLASSES, "", n))
        {
            return value(pc);
        }
        inf.iter(&PRIORITYCLASSES)
            .find(|(_, pc)| {
                pc.get("globalDefault")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
            })
            .map_or(0, |(_, pc)| value(pc))
    }

    fn pod_info(&self, inf: &Informer, key: Key, pod: Arc<Value>) -> PodInfo {
        let prio = self.priority(inf, &pod);
        let req = matching::pod_requests(&pod);
        let tols = matching::tolerations(&pod);
        let mut h = DefaultHasher::new();
        spec_hash(&pod).hash(&mut h);
        prio.hash(&mut h);
        let has_preferences = pod
            .at("/spec/affinity/nodeAffinity/preferredDuringSchedulingIgnoredDuringExecution")
            .is_some();
        PodInfo {
            key,
            class: h.finish(),
            prio,
            req,
            tols,
            pod,
            has_preferences,
        }
    }

    /// Resources nominated to `node` for pods of at least `prio` (other than `key`).
    fn nominated_on(&self, node: &str, prio: i64, key: &Key) -> (Requests, i64) {
        let mut r = Requests::default();
        let mut n = 0;
        for (k, (nn, p, req)) in &self.nominated {
            if nn == node && *p >= prio && k != key {
                r.add(*req);
                n += 1;
            }
        }
        (r, n)
    }

    /// Everything but resources: NodeUnschedulable, TaintToleration, NodeAffinity.
    fn static_filter(p: &PodInfo, n: &NodeInfo) -> Option<Fit> {
        let labels = n.node.at("/metadata/labels").and_then(Value::as_object);
        let unsched = Taint {
            key: UNSCHEDULABLE_TAINT.into(),
            value: String::new(),
            effect: "NoSchedule".into(),
            time_added: None,
        };
        if n.unschedulable && !matching::tolerated(&p.tols, &unsched) {
            return Some(Fit {
                reasons: vec!["node(s) were unschedulable".into()],
                resources_only: false,
            });
        }
        if let Some(t) = matching::untolerated(&n.taints, &p.tols) {
            return Some(Fit {
                reasons: vec![format!("node(s) had untolerated taint {}", t.describe())],
                resources_only: false,
            });
        }
        if !(matching::node_selector_matches(&p.pod, labels)
            && matching::required_affinity_matches(&p.pod, &n.name, labels))
        {
            return Some(Fit {
                reasons: vec!["node(s) didn't match Pod's node affinity/selector".into()],
                resources_only: false,
            });
        }
        None
    }

    /// NodeResourcesFit (with nominated pods' reservations) and the score, for a node that
    /// passed [`Self::static_filter`].
    fn resource_filter(&self, p: &PodInfo, n: &NodeInfo) -> Result<i64, Fit> {
        let (nom, nom_pods) = if self.nominated.is_empty() {
            (Requests::default(), 0)
        } else {
            self.nominated_on(&n.name, p.prio, &p.key)
        };
        let mut reasons = Vec::new();
        if n.pods + nom_pods + 1 > n.alloc_pods {
            reasons.push("Too many pods".to_string());
        }
        if p.req.cpu_m > 0 && n.used.cpu_m + nom.cpu_m + p.req.cpu_m > n.alloc.cpu_m {
            reasons.push("Insufficient cpu".to_string());
        }
        if p.req.mem > 0 && n.used.mem + nom.mem + p.req.mem > n.alloc.mem {
            reasons.push("Insufficient memory".to_string());
        }
        if !reasons.is_empty() {
            return Err(Fit {
                reasons,
                resources_only: true,
            });
        }
        // Least allocated (0..100), plus preferences.
        let free = |used: i64, req: i64, alloc: i64| {
            if alloc > 0 {
                ((alloc - used - req) as f64 / alloc as f64).max(0.0)
            } else {
                0.0
            }
        };
        let mut score = ((free(n.used.cpu_m, p.req.cpu_m, n.alloc.cpu_m)
            + free(n.used.mem, p.req.mem, n.alloc.mem))
            * 50.0) as i64;
        if p.has_preferences {
            let labels = n.node.at("/metadata/labels").and_then(Value::as_object);
            score += matching::preferred_affinity_score(&p.pod, &n.name, labels).min(100);
        }
        score -= 10
            * n.taints
                .iter()
                .filter(|t| t.effect == "PreferNoSchedule" && !matching::tolerated(&p.tols, t))
                .count() as i64;
        Ok(score)
    }

    fn filter(&self, p: &PodInfo, n: &NodeInfo) -> Result<i64, Fit> {
        match Self::static_filter(p, n) {
            Some(fit) => Err(fit),
            None => self.resource_filter(p, n),
        }
    }

    /// Try to place one pod. Err carries the failure message (for identical pods this pass).
    fn schedule_one(&mut self, inf: &Informer, p: &PodInfo) -> Result<(), String> {
        let nominated = super::s(&p.pod, "/status/nominatedNodeName")
            .filter(|n| !n.is_empty())
            .map(str::to_string);
        let mut best: Option<(i64, &str)> = None;
        // The nominated node first: the room made by preemption is meant for this pod.
        if let Some(nn) = &nominated
            && let Some(n) = self.nodes.get(nn)
            && let Ok(score) = self.filter(p, n)
        {
            best = Some((score, n.name()));
        }
        let mut fits: HashMap<String, Fit> = HashMap::new();
        if best.is_none() {
            let statics = self.static_fits.remove(&p.class).unwrap_or_else(|| {
                self.nodes
                    .values()
                    .map(|n| Self::static_filter(p, n))
                    .collect()
            });
            for ((name, n), st) in self.nodes.iter().zip(&statics) {
                let verdict = match st {
                    Some(fit) => Err(fit.clone()),
                    None => self.resource_filter(p, n),
                };
                match verdict {
                    Ok(score) => {
                        if best.is_none_or(|(s, _)| score > s) {
                            best = Some((score, n.name()));
                        }
                    }
                    Err(fit) => {
                        fits.insert(name.clone(), fit);
                    }
                }
            }
            self.static_fits.insert(p.class, statics);
        }
        if let Some((_, node)) = best {
            let node = node.to_string();
            return match self.bind(inf, p, &node) {
                Ok(()) => Ok(()),
                Err(e) => {
                    tracing::debug!(pod = %p.key.1, node = %node, error = %e, "bind failed");
                    Ok(())
                }
            };
        }
        // Unschedulable: diagnose, maybe preempt.
        let total = self.nodes.len();
        let mut hist: BTreeMap<&str, usize> = BTreeMap::new();
        for f in fits.values() {
            for r in &f.reasons {
                *hist.entry(r.as_str()).or_default() += 1;
            }
        }
        let mut parts: Vec<String> = hist.iter().map(|(r, c)| format!("{c} {r}")).collect();
        parts.sort();
        let mut msg = if total == 0 {
            "no nodes available to schedule pods".to_string()
        } else if parts.is_empty() {
            format!("0/{total} nodes are available.")
        } else {
            format!("0/{total} nodes are available: {}.", parts.join(", "))
        };
        match self.preempt(inf, p, &fits) {
            Preemption::Nominated => {}
            Preemption::Waiting => {}
            Preemption::Failed(why) => msg = format!("{msg} {why}"),
        }
        self.report_unschedulable(inf, p, &msg);
        Err(msg)
    }

    fn bind(&mut self, inf: &Informer, p: &PodInfo, node: &str) -> Result<(), ApiError> {
        let (ns, name) = (&p.key.0, &p.key.1);
        let uid = super::uid(&p.pod).to_string();
        inf.store().transaction(|tx| {
            let pod = tx.get(&PODS, Some(ns), name)?;
            if super::uid(&pod) != uid
                || super::pod_node(&pod).is_some()
                || super::is_terminating(&pod)
            {
                return Err(ApiError::conflict("", "pods", name));
            }
            bind_in(tx, ns, name, node)?;
            super::record(
                tx,
                &pod,
                &PODS,
                "Normal",
                "Scheduled",
                &format!("Successfully assigned {ns}/{name} to {node}"),
                SCHEDULER_NAME,
            );
            Ok(())
        })?;
        // Assume the binding now so the rest of this pass sees the node's new usage; the
        // watch event will replace this with the same numbers.
        if let Some(n) = self.nodes.get_mut(node) {
            n.used.add(p.req);
            n.pods += 1;
        }
        self.usage.insert(p.key.clone(), (node.to_string(), p.req));
        if self.nominated.remove(&p.key).is_some() {
            self.flush_wanted = true;
        }
        self.unschedulable.remove(&p.key);
        Ok(())
    }

    /// Write PodScheduled=False (throttled per pod) and a FailedScheduling event when the
    /// message changes.
    fn report_unschedulable(&mut self, inf: &Informer, p: &PodInfo, msg: &str) {
        let spec = spec_hash(&p.pod);
        let now = Instant::now();
        if let Some(u) = self.unschedulable.get_mut(&p.key) {
            u.spec = spec;
            if u.message == msg || now.duration_since(u.reported) < REPORT_INTERVAL {
                return;
            }
            u.message = msg.to_string();
            u.reported = now;
        } else {
            self.unschedulable.insert(
                p.key.clone(),
                Unschedulable {
                    reported: now,
                    message: msg.to_string(),
                    spec,
                },
            );
        }
        let current = super::condition(&p.pod, "PodScheduled");
        let same = current.is_some_and(|c| {
            c.get("status").and_then(Value::as_str) == Some("False")
                && c.get("message").and_then(Value::as_str) == Some(msg)
        });
        if same {
            return;
        }
        let (ns, name) = (&p.key.0, &p.key.1);
        let uid = super::uid(&p.pod).to_string();
        super::write(inf.store(), "scheduler unschedulable", |tx| {
            let pod = tx.modify(&PODS, Some(ns), name, |o| {
                if super::uid(o) == uid && super::pod_node(o).is_none() {
                    super::set_condition(
                        o,
                        "PodScheduled",
                        "False",
                        Some("Unschedulable"),
                        Some(msg),
                        json!({"lastProbeTime": null}),
                    );
                }
                Ok(())
            })?;
            super::record(
                tx,
                &pod,
                &PODS,
                "Warning",
                "FailedScheduling",
                msg,
                SCHEDULER_NAME,
            );
            Ok(())
        });
    }

    fn preempt(&mut self, inf: &Informer, p: &PodInfo, fits: &HashMap<String, Fit>) -> Preemption {
        if super::s(&p.pod, "/spec/preemptionPolicy") == Some("Never") {
            return Preemption::Failed(
                "preemption: not eligible due to preemptionPolicy=Never.".into(),
            );
        }
        let total = self.nodes.len();
        // Already nominated somewhere with lower-priority pods still terminating: wait for them.
        if let Some(nn) = super::s(&p.pod, "/status/nominatedNodeName").filter(|n| !n.is_empty()) {
            let waiting = inf
                .pods_on(nn)
                .any(|v| super::is_terminating(v) && self.priority(inf, v) < p.prio);
            if waiting {
                return Preemption::Waiting;
            }
        }
        let mut not_helpful = 0;
        let mut no_victims = 0;
        // Best node so far: the smallest (max victim priority, victims, sum of priorities, node).
        type Rank = (i64, usize, i64, String);
        let mut best: Option<(Rank, Vec<Key>)> = None;
        for (name, n) in &self.nodes {
            let Some(fit) = fits.get(name) else { continue };
            if !fit.resources_only {
                not_helpful += 1;
                continue;
            }
            let mut candidates: Vec<(i64, String, Key, Requests)> = inf
                .pods_on(name)
                .filter(|v| !super::is_terminal(v) && !super::is_terminating(v))
                .filter_map(|v| {
                    let prio = self.priority(inf, v);
                    (prio < p.prio).then(|| {
                        (
                            prio,
                            super::s(v, "/status/startTime").unwrap_or("").to_string(),
                            key_of(v),
                            matching::pod_requests(v),
                        )
                    })
                })
                .collect();
            let (nom, nom_pods) = self.nominated_on(name, p.prio, &p.key);
            let fits_with = |used: Requests, pods: i64| {
                pods + nom_pods < n.alloc_pods
                    && (p.req.cpu_m == 0 || used.cpu_m + nom.cpu_m + p.req.cpu_m <= n.alloc.cpu_m)
                    && (p.req.mem == 0 || used.mem + nom.mem + p.req.mem <= n.alloc.mem)
            };
            let mut used = n.used;
            let mut pods = n.pods;
            for (_, _, _, r) in &candidates {
                used.sub(*r);
                pods -= 1;
            }
            if candidates.is_empty() || !fits_with(used, pods) {
                no_victims += 1;
                continue;
            }
            // Reprieve the most important pods first (highest priority, longest running).
            candidates.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
            let mut victims = Vec::new();
            for (prio, _, key, r) in candidates {
                let mut with = used;
                with.add(r);
                if fits_with(with, pods + 1) {
                    used = with;
                    pods += 1;
                } else {
                    victims.push((prio, key));
                }
            }
            let rank = (
                victims.iter().map(|v| v.0).max().unwrap_or(i64::MIN),
                victims.len(),
                victims.iter().map(|v| v.0).sum::<i64>(),
                name.clone(),
            );
            if best.as_ref().is_none_or(|(r, _)| rank < *r) {
                best = Some((rank, victims.into_iter().map(|v| v.1).collect()));
            }
        }
        let Some(((_, _, _, node), victims)) = best else {
            let mut parts = Vec::new();
            if not_helpful > 0 {
                parts.push(format!(
                    "{not_helpful} Preemption is not helpful for scheduling"
                ));
            }
            if no_victims > 0 {
                parts.push(format!(
                    "{no_victims} No preemption victims found for incoming pod"
                ));
            }
            parts.sort();
            return Preemption::Failed(format!(
                "preemption: 0/{total} nodes are available: {}.",
                parts.join(", ")
            ));
        };
        let (ns, name) = (&p.key.0, &p.key.1);
        let uid = super::uid(&p.pod).to_string();
        let done = super::write(inf.store(), "scheduler preemption", |tx| {
            tx.modify(&PODS, Some(ns), name, |o| {
                if super::uid(o) != uid {
                    return Err(ApiError::conflict("", "pods", name));
                }
                super::put(o, &["status", "nominatedNodeName"], json!(node));
                Ok(())
            })?;
            let msg = format!("{SCHEDULER_NAME}: preempting to accommodate a higher priority pod");
            for (vns, vname) in &victims {
                let v = tx.modify(&PODS, Some(vns), vname, |o| {
                    super::set_condition(
                        o,
                        "DisruptionTarget",
                        "True",
                        Some("PreemptionByScheduler"),
                        Some(&msg),
                        json!({}),
                    );
                    Ok(())
                })?;
                tx.delete(&PODS, Some(vns), vname, &DeleteOptions::default())?;
                super::record(
                    tx,
                    &v,
                    &PODS,
                    "Normal",
                    "Preempted",
                    &format!("Preempted by pod {uid} on node {node}"),
                    SCHEDULER_NAME,
                );
            }
            Ok(())
        });
        if done.is_some() {
            tracing::debug!(pod = %name, node = %node, victims = victims.len(), "preempted");
            self.nominated.insert(p.key.clone(), (node, p.prio, p.req));
            Preemption::Nominated
        } else {
            Preemption::Waiting
        }
    }
}

enum Preemption {
    Nominated,
    Waiting,
    Failed(String),
}

/// Hash of what scheduling depends on in a pod's spec.
fn spec_hash(pod: &Value) -> u64 {
    let mut h = DefaultHasher::new();
    for f in [
        "tolerations",
        "nodeSelector",
        "affinity",
        "containers",
        "initContainers",
        "overhead",
        "priority",
        "preemptionPolicy",
    ] {
        pod.at(&format!("/spec/{f}"))
            .map(Value::to_string)
            .hash(&mut h);
    }
    h.finish()
}

/// Bind through the binding subresource's own code path (spec.nodeName + PodScheduled=True).
fn bind_in(tx: &mut Tx<'_>, ns: &str, name: &str, node: &str) -> Result<(), ApiError> {
    let binding = json!({
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": name, "namespace": ns},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    });
    crate::admission::bind(tx, ns, name, &binding)
}
