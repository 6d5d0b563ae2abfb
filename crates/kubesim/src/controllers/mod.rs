//! The control loops that make the store behave like a cluster: workload controllers
//! (Deployment, ReplicaSet, DaemonSet, StatefulSet), PDB status, EndpointSlices, namespace
//! deletion, garbage collection, the node lifecycle and NoExecute taint managers, the
//! scheduler and the kubelet stand-in.
//!
//! Every loop has the same shape ([`run`]): an [`informer::Informer`] cache of the types it
//! watches, a set of keys marked dirty by changes, timers for delayed work, and a periodic
//! "reconcile everything" as a safety net. Loops never re-list the store per event; they read
//! their cache and write through [`Store::transaction`].

pub mod daemonset;
pub mod deployment;
pub mod endpointslice;
pub mod gc;
pub mod informer;
pub mod kubelet;
pub mod matching;
pub mod namespace;
pub mod node_lifecycle;
pub mod pdb;
pub mod replicaset;
pub mod scheduler;
pub mod statefulset;
pub mod taint_eviction;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::clock::Clock;
use crate::error::ApiError;
use crate::network::{Ipv4Cidr, POD_NETWORK};
use crate::resources::{self, ResourceDef};
use crate::store::{Store, Tx};
use informer::{Change, Informer};

/// Knobs of the control loops (delays are simulated seconds; see [`crate::Clock`]).
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// Bound pods become Running and Ready after this long.
    pub pod_start_seconds: f64,
    /// A pod being deleted gracefully is gone after `min(grace period, pod_stop_seconds)`:
    /// real applications exit on SIGTERM well before their grace period runs out, so the
    /// kubelet reports them gone early. A grace period of 0 is always immediate.
    pub pod_stop_seconds: f64,
    /// PDB `status.disruptedPods` entries the API server added on eviction expire after this
    /// long if the pod was not deleted (the disruption controller's `DeletionTimeout`).
    pub pdb_disrupted_pod_timeout_seconds: f64,
    /// Delay from a pod or node change to the EndpointSlice update it causes: informer
    /// propagation plus the controller's batching (`--endpointslice-updates-batch-period`).
    /// Service changes are applied at once.
    pub endpoint_slice_sync_seconds: f64,
    /// Endpoints per EndpointSlice (kube-controller-manager's `--max-endpoints-per-slice`).
    pub max_endpoints_per_slice: usize,
    /// Delay from a namespace's deletion to the namespace controller deleting its contents
    /// (the real one rediscovers the served resources and deletes collection by collection).
    pub namespace_cleanup_delay_seconds: f64,
    /// Real-time interval of each loop's full reconcile (a safety net; loops are event driven).
    pub resync_every: Duration,
    /// Where the kubelet takes pod IPs from.
    pub pod_network: Ipv4Cidr,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            pod_start_seconds: 2.0,
            pod_stop_seconds: 2.0,
            pdb_disrupted_pod_timeout_seconds: 120.0,
            endpoint_slice_sync_seconds: 0.2,
            max_endpoints_per_slice: 100,
            namespace_cleanup_delay_seconds: 1.0,
            resync_every: Duration::from_secs(5),
            pod_network: POD_NETWORK,
        }
    }
}

/// Start every control loop; abort the handles to stop them.
pub fn spawn_all(store: Arc<Store>, cfg: ControllerConfig) -> Vec<JoinHandle<()>> {
    let resync = cfg.resync_every;
    vec![
        spawn(store.clone(), scheduler::Scheduler::new(), resync),
        spawn(store.clone(), kubelet::Kubelet::new(&cfg), resync),
        spawn(store.clone(), replicaset::ReplicaSets::default(), resync),
        spawn(store.clone(), deployment::Deployments::default(), resync),
        spawn(store.clone(), daemonset::DaemonSets::default(), resync),
        spawn(store.clone(), statefulset::StatefulSets::default(), resync),
        spawn(store.clone(), pdb::Disruption::new(&cfg), resync),
        spawn(
            store.clone(),
            endpointslice::EndpointSlices::new(&cfg),
            resync,
        ),
        spawn(store.clone(), namespace::Namespaces::new(&cfg), resync),
        spawn(store.clone(), gc::GarbageCollector::default(), resync),
        spawn(
            store.clone(),
            node_lifecycle::NodeLifecycle::default(),
            resync,
        ),
        spawn(store, taint_eviction::TaintEviction::default(), resync),
    ]
}

fn spawn<L: Loop>(store: Arc<Store>, l: L, resync: Duration) -> JoinHandle<()> {
    tokio::spawn(run(store, l, resync))
}

/// One control loop. `observe` marks work, `work` does it, `deadline` asks to be woken.
pub(crate) trait Loop: Send + 'static {
    const NAME: &'static str;
    /// The types this loop caches.
    fn kinds(&self) -> Vec<&'static ResourceDef>;
    /// How long to let a burst of changes accumulate before working (0 = at once).
    fn debounce(&self) -> Duration {
        Duration::ZERO
    }
    fn observe(&mut self, inf: &Informer, ch: &Change);
    fn mark_all(&mut self, inf: &Informer);
    /// Do marked and due work. Returns true if there is more to do right away (the loop then
    /// yields to let other tasks and new events in before calling again).
    fn work(&mut self, inf: &Informer) -> bool;
    /// When the loop's timers want it to run next (none by default).
    fn deadline(&self) -> Option<Instant> {
        None
    }
}

/// Mark dirty the `kind` controllers owning the object of a change (before and after it).
pub(crate) fn mark_owners(dirty: &mut BTreeSet<(String, String)>, ch: &Change, kind: &str) {
    for o in [ch.old.as_deref(), ch.new.as_deref()].into_iter().flatten() {
        if let Some(owner) = controller_ref(o).filter(|r| r.kind == kind) {
            dirty.insert((namespace(o).to_string(), owner.name.to_string()));
        }
    }
}

async fn run<L: Loop>(store: Arc<Store>, mut l: L, resync: Duration) {
    let mut inf = Informer::new(store, &l.kinds());
    l.mark_all(&inf);
    let mut next_resync = Instant::now() + resync;
    loop {
        let more = l.work(&inf);
        let deadline = if more {
            tokio::task::yield_now().await;
            Instant::now()
        } else {
            l.deadline().map_or(next_resync, |d| d.min(next_resync))
        };
        let batch = inf
            .next(
                Some(deadline),
                if more { Duration::ZERO } else { l.debounce() },
            )
            .await;
        if batch.closed {
            tracing::debug!(controller = L::NAME, "store closed; stopping");
            return;
        }
        if batch.resynced || Instant::now() >= next_resync {
            l.mark_all(&inf);
            next_resync = Instant::now() + resync;
        }
        for ch in &batch.changes {
            l.observe(&inf, ch);
        }
    }
}

/// Run a write; log and swallow failures (the next change or resync retries). Conflicts and
/// not-found are routine races between loops and clients.
pub(crate) fn write<T>(
    store: &Store,
    what: &str,
    f: impl FnOnce(&mut Tx<'_>) -> Result<T, ApiError>,
) -> Option<T> {
    match store.transaction(f) {
        Ok(v) => Some(v),
        Err(e) if matches!(e.code, 404 | 409) => {
            tracing::debug!(error = %e, "{what}: skipped");
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "{what}: failed");
            None
        }
    }
}

/// A set of timers: keys due at instants. Duplicates are harmless (work re-checks state).
#[derive(Debug)]
pub(crate) struct Timers<K: Ord> {
    set: BTreeSet<(Instant, K)>,
}

impl<K: Ord> Default for Timers<K> {
    fn default() -> Self {
        Self {
            set: BTreeSet::new(),
        }
    }
}

impl<K: Ord + Clone> Timers<K> {
    pub fn at(&mut self, when: Instant, key: K) {
        self.set.insert((when, key));
    }
    pub fn next(&self) -> Option<Instant> {
        self.set.first().map(|(t, _)| *t)
    }
    /// Remove and return the keys due by now.
    pub fn due(&mut self) -> Vec<K> {
        let now = Instant::now();
        let mut out = Vec::new();
        while let Some((t, _)) = self.set.first() {
            if *t > now {
                break;
            }
            if let Some((_, k)) = self.set.pop_first() {
                out.push(k);
            }
        }
        out
    }
}

// ------------------------------------------------------------------------------------------
// Object helpers shared by the loops. All tolerate odd objects (missing fields read as absent).
// ------------------------------------------------------------------------------------------

/// `Value::pointer` without its per-segment allocations: the loops read many fields of
/// thousands of objects, and `pointer` allocates for every path segment.
pub(crate) trait At {
    fn at(&self, path: &str) -> Option<&Value>;
}

impl At for Value {
    fn at(&self, path: &str) -> Option<&Value> {
        if path.is_empty() {
            return Some(self);
        }
        let mut cur = self;
        for seg in path.strip_prefix('/')?.split('/') {
            cur = match cur {
                Value::Object(m) if seg.contains('~') => {
                    m.get(&seg.replace("~1", "/").replace("~0", "~"))?
                }
                Value::Object(m) => m.get(seg)?,
                Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(cur)
    }
}

pub(crate) fn s<'v>(obj: &'v Value, ptr: &str) -> Option<&'v str> {
    obj.at(ptr).and_then(Value::as_str)
}

pub(crate) fn name(obj: &Value) -> &str {
    s(obj, "/metadata/name").unwrap_or("")
}

pub(crate) fn namespace(obj: &Value) -> &str {
    s(obj, "/metadata/namespace").unwrap_or("")
}

pub(crate) fn uid(obj: &Value) -> &str {
    s(obj, "/metadata/uid").unwrap_or("")
}

pub(crate) fn generation(obj: &Value) -> i64 {
    obj.at("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

/// `spec.replicas`, defaulting to 1 as the API does.
pub(crate) fn replicas(obj: &Value) -> i64 {
    obj.at("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
        .max(0)
}

/// Set `obj[path...] = v`, creating missing (or null) intermediate objects. Returns false (and
/// changes nothing further) if something on the way is not an object, so odd objects never
/// panic a loop.
pub(crate) fn put(obj: &mut Value, path: &[&str], v: Value) -> bool {
    let Some((last, init)) = path.split_last() else {
        return false;
    };
    let mut cur = obj;
    for k in init {
        if cur.is_null() {
            *cur = json!({});
        }
        let Some(m) = cur.as_object_mut() else {
            return false;
        };
        cur = m.entry(k.to_string()).or_insert(Value::Null);
    }
    if cur.is_null() {
        *cur = json!({});
    }
    match cur.as_object_mut() {
        Some(m) => {
            m.insert(last.to_string(), v);
            true
        }
        None => false,
    }
}

/// An ownerReference, borrowed from the object.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OwnerRef<'v> {
    pub api_version: &'v str,
    pub kind: &'v str,
    pub name: &'v str,
    pub uid: &'v str,
}

pub(crate) fn owner_refs(obj: &Value) -> Vec<OwnerRef<'_>> {
    obj.at("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| {
                    Some(OwnerRef {
                        api_version: r.get("apiVersion").and_then(Value::as_str).unwrap_or(""),
                        kind: r.get("kind").and_then(Value::as_str).unwrap_or(""),
                        name: r.get("name").and_then(Value::as_str)?,
                        uid: r.get("uid").and_then(Value::as_str)?,
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The controlling owner (`controller: true`), if any.
pub(crate) fn controller_ref(obj: &Value) -> Option<OwnerRef<'_>> {
    let r = obj
        .at("/metadata/ownerReferences")?
        .as_array()?
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))?;
    Some(OwnerRef {
        api_version: r.get("apiVersion").and_then(Value::as_str).unwrap_or(""),
        kind: r.get("kind").and_then(Value::as_str).unwrap_or(""),
        name: r.get("name").and_then(Value::as_str)?,
        uid: r.get("uid").and_then(Value::as_str)?,
    })
}

/// An ownerReference to `owner` marking it the controller.
pub(crate) fn controller_ref_to(owner: &Value, r: &ResourceDef) -> Value {
    json!({
        "apiVersion": r.api_version(),
        "kind": r.kind,
        "name": name(owner),
        "uid": uid(owner),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// `spec.nodeName`, if set and non-empty.
pub(crate) fn pod_node(pod: &Value) -> Option<&str> {
    s(pod, "/spec/nodeName").filter(|n| !n.is_empty())
}

pub(crate) fn is_terminating(obj: &Value) -> bool {
    obj.at("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

pub(crate) fn phase(pod: &Value) -> &str {
    s(pod, "/status/phase").unwrap_or("Pending")
}

/// Succeeded or Failed.
pub(crate) fn is_terminal(pod: &Value) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

/// Counts towards a controller's replicas: neither terminating nor finished.
pub(crate) fn is_active(pod: &Value) -> bool {
    !is_terminating(pod) && !is_terminal(pod)
}

pub(crate) fn condition<'v>(obj: &'v Value, ty: &str) -> Option<&'v Value> {
    obj.at("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(ty))
}

pub(crate) fn condition_status<'v>(obj: &'v Value, ty: &str) -> Option<&'v str> {
    condition(obj, ty)
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str)
}

pub(crate) fn pod_ready(pod: &Value) -> bool {
    condition_status(pod, "Ready") == Some("True")
}

/// Running, Ready and not being deleted: what PDBs and rollouts call healthy.
pub(crate) fn pod_healthy(pod: &Value) -> bool {
    !is_terminating(pod) && phase(pod) == "Running" && pod_ready(pod)
}

pub(crate) fn node_ready(node: &Value) -> bool {
    condition_status(node, "Ready") == Some("True")
}

/// Set (or add) condition `ty` in `status.conditions`. An unchanged condition (same status,
/// reason and message) is left alone, so a no-op stays a no-op; `lastTransitionTime` only moves
/// when the status does, as on a real server. `extra` fields (e.g. `lastUpdateTime`,
/// `lastProbeTime`) are merged in when the condition is written.
pub(crate) fn set_condition(
    obj: &mut Value,
    ty: &str,
    status: &str,
    reason: Option<&str>,
    message: Option<&str>,
    extra: Value,
) {
    let Some(o) = obj.as_object_mut() else { return };
    let st = o.entry("status").or_insert_with(|| json!({}));
    if !st.is_object() {
        *st = json!({});
    }
    let Some(st) = st.as_object_mut() else { return };
    let conds = st.entry("conditions").or_insert_with(|| json!([]));
    if !conds.is_array() {
        *conds = json!([]);
    }
    let Some(arr) = conds.as_array_mut() else {
        return;
    };
    let mut c = json!({"type": ty, "status": status});
    if let Some(r) = reason {
        c["reason"] = json!(r);
    }
    if let Some(m) = message {
        c["message"] = json!(m);
    }
    if let Some(e) = extra.as_object() {
        for (k, v) in e {
            c[k] = v.clone();
        }
    }
    let now = Clock::now_rfc3339();
    match arr
        .iter_mut()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(ty))
    {
        Some(existing) => {
            let same_status = existing.get("status").and_then(Value::as_str) == Some(status);
            if same_status
                && existing.get("reason") == c.get("reason")
                && existing.get("message") == c.get("message")
            {
                return;
            }
            let ltt = existing
                .get("lastTransitionTime")
                .cloned()
                .filter(|_| same_status);
            c["lastTransitionTime"] = ltt.unwrap_or_else(|| json!(now));
            *existing = c;
        }
        None => {
            c["lastTransitionTime"] = json!(now);
            arr.push(c);
        }
    }
}

/// A core/v1 Event about `obj` (what `kubectl describe` and `kubectl get events` show).
pub(crate) fn event(
    obj: &Value,
    r: &ResourceDef,
    ty: &str,
    reason: &str,
    message: &str,
    component: &str,
) -> Value {
    let now = Clock::now_rfc3339();
    let ns = match namespace(obj) {
        "" => "default",
        ns => ns,
    };
    let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    json!({
        "metadata": {"name": format!("{}.{:x}{}", name(obj), nanos, &suffix[..4]), "namespace": ns},
        "involvedObject": {
            "apiVersion": r.api_version(),
            "kind": r.kind,
            "name": name(obj),
            "namespace": if r.namespaced { json!(ns) } else { Value::Null },
            "uid": uid(obj),
            "resourceVersion": s(obj, "/metadata/resourceVersion").unwrap_or(""),
        },
        "reason": reason,
        "message": message,
        "type": ty,
        "source": {"component": component},
        "reportingComponent": component,
        "reportingInstance": "",
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    })
}

/// Record an event inside a transaction; failures (e.g. a namespace being deleted) are ignored
/// so they never abort the write they describe.
pub(crate) fn record(
    tx: &mut Tx<'_>,
    obj: &Value,
    r: &ResourceDef,
    ty: &str,
    reason: &str,
    message: &str,
    component: &str,
) {
    let ev = event(obj, r, ty, reason, message, component);
    let ns = s(&ev, "/metadata/namespace")
        .unwrap_or("default")
        .to_string();
    if tx.try_get(&resources::NAMESPACES, None, &ns).is_some() {
        let _ = tx.create(&resources::EVENTS, Some(&ns), ev);
    }
}

/// A pod for a workload: the template's metadata and spec, `generateName` or a fixed name,
/// the owner as controller, and extra labels.
pub(crate) fn pod_from_template(
    owner: &Value,
    owner_res: &ResourceDef,
    template: &Value,
    name: PodName<'_>,
    extra_labels: &[(&str, &str)],
) -> Value {
    let mut meta = json!({});
    if let Some(l) = template.at("/metadata/labels").filter(|v| v.is_object()) {
        meta["labels"] = l.clone();
    } else {
        meta["labels"] = json!({});
    }
    if let Some(a) = template
        .at("/metadata/annotations")
        .filter(|v| v.is_object())
    {
        meta["annotations"] = a.clone();
    }
    for (k, v) in extra_labels {
        meta["labels"][*k] = json!(v);
    }
    match name {
        PodName::Generate(prefix) => meta["generateName"] = json!(prefix),
        PodName::Fixed(n) => meta["name"] = json!(n),
    }
    meta["namespace"] = json!(namespace(owner));
    meta["ownerReferences"] = json!([controller_ref_to(owner, owner_res)]);
    let spec = template
        .get("spec")
        .cloned()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec})
}

pub(crate) enum PodName<'a> {
    Generate(&'a str),
    Fixed(&'a str),
}

/// A stable short hash of a pod template, rendered like the real `pod-template-hash` /
/// `controller-revision-hash` (FNV-32a, then the API's "safe" alphabet). Keys are hashed in
/// sorted order so the hash does not depend on how the template was written.
pub(crate) fn template_hash(template: &Value) -> String {
    fn canon(v: &Value, out: &mut String) {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push('{');
                for k in keys {
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    canon(&m[k], out);
                    out.push(',');
                }
                out.push('}');
            }
            Value::Array(a) => {
                out.push('[');
                for x in a {
                    canon(x, out);
                    out.push(',');
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut text = String::new();
    canon(template, &mut text);
    let mut h: u32 = 0x811c9dc5;
    for b in text.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    h.to_string()
        .bytes()
        .map(|d| ALPHABET[usize::from(d) % ALPHABET.len()] as char)
        .collect()
}

/// `intstr` value (`3` or `"25%"`) scaled against `total`; `round_up` as the real helpers.
pub(crate) fn int_or_percent(v: Option<&Value>, total: i64, round_up: bool) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => {
            if let Some(p) = s.strip_suffix('%') {
                let p: f64 = p.trim().parse().ok()?;
                let x = p * total as f64 / 100.0;
                Some(if round_up { x.ceil() } else { x.floor() } as i64)
            } else {
                s.trim().parse().ok()
            }
        }
        _ => None,
    }
}

/// Seconds since an RFC 3339 timestamp, in real time (None if absent or unparsable).
pub(crate) fn real_age(ts: Option<&str>) -> Option<Duration> {
    let t = chrono::DateTime::parse_from_rfc3339(ts?).ok()?;
    (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
        .to_std()
        .ok()
        .or(Some(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_hash_is_stable_and_safe() {
        let a = json!({"metadata": {"labels": {"app": "web", "tier": "x"}}, "spec": {"containers": []}});
        let b = json!({"spec": {"containers": []}, "metadata": {"labels": {"tier": "x", "app": "web"}}});
        assert_eq!(template_hash(&a), template_hash(&b));
        assert!(template_hash(&a).chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(template_hash(&a), template_hash(&json!({})));
    }

    #[test]
    fn int_or_percent_rounds_like_kubernetes() {
        assert_eq!(int_or_percent(Some(&json!("25%")), 10, true), Some(3));
        assert_eq!(int_or_percent(Some(&json!("25%")), 10, false), Some(2));
        assert_eq!(int_or_percent(Some(&json!(2)), 10, false), Some(2));
        assert_eq!(int_or_percent(None, 10, false), None);
    }
}
