//! The object store: every object of every served resource, the cluster-wide resourceVersion
//! counter, and the watch history. All writes go through a [`Tx`] (one lock, all-or-nothing with
//! an undo log) so controllers and the API share one consistency model: optimistic concurrency
//! on `metadata.resourceVersion` (409 on a stale one), ordered watch events, 410 for history
//! that has been compacted away.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use crate::admission;
use crate::clock::Clock;
use crate::error::ApiError;
use crate::network::ServiceNetwork;
use crate::resources::{self, ResourceDef};
use crate::selectors::{FieldSelector, LabelSelector};

/// How many watch events are kept for watches that resume from an older resourceVersion.
const HISTORY: usize = 100_000;
/// Broadcast buffer: a watcher that falls further behind is dropped and must re-list (as with
/// a real server's "too old resource version").
const BROADCAST: usize = 65_536;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One change, as a watch stream reports it.
#[derive(Debug, Clone)]
pub struct WatchEvent {
    pub rv: u64,
    pub kind: EventType,
    pub resource: &'static ResourceDef,
    pub object: Arc<Value>,
}

impl WatchEvent {
    pub fn namespace(&self) -> Option<&str> {
        self.object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
    }
    pub fn name(&self) -> &str {
        self.object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

/// List filters (`labelSelector`, `fieldSelector`).
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub label: Option<LabelSelector>,
    pub field: Option<FieldSelector>,
}

impl ListOptions {
    pub fn labels(sel: LabelSelector) -> Self {
        Self {
            label: Some(sel),
            field: None,
        }
    }
    pub fn matches(&self, obj: &Value) -> bool {
        self.label.as_ref().is_none_or(|l| l.matches_object(obj))
            && self.field.as_ref().is_none_or(|f| f.matches(obj))
    }
}

/// `DeleteOptions` as the API accepts them.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    /// `Orphan` keeps dependents; anything else lets the garbage collector remove them.
    pub orphan: bool,
    pub dry_run: bool,
}

type Key = (String, String); // (namespace or "", name)

#[derive(Default)]
struct State {
    rv: u64,
    objects: HashMap<RKey, BTreeMap<Key, Value>>,
    /// Pods by `spec.nodeName`: listing a node's pods (drain, describe node, the kubelet) is
    /// the hot query, and a scan of every pod's JSON would make it O(all pods).
    pods_by_node: HashMap<String, std::collections::BTreeSet<Key>>,
    history: VecDeque<WatchEvent>,
}

fn node_of(v: &Value) -> Option<&str> {
    v.get("spec")
        .and_then(|s| s.get("nodeName"))
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
}

impl State {
    /// Write or remove one object, keeping the indexes in step; the previous value.
    fn set(&mut self, r: &ResourceDef, key: Key, obj: Option<Value>) -> Option<Value> {
        let map = self.objects.entry(rkey(r)).or_default();

        match obj {
            Some(v) => {
                let new_node = if rkey(r) == rkey(&resources::PODS) {
                    node_of(&v).map(str::to_string)
                } else {
                    None
                };
                let prev = map.insert(key.clone(), v);
                if rkey(r) == rkey(&resources::PODS) {
                    self.reindex(
                        prev.as_ref().and_then(node_of).map(str::to_string),
                        new_node,
                        &key,
                    );
                }
                prev
            }
            None => {
                let prev = map.remove(&key);
                if rkey(r) == rkey(&resources::PODS) {
                    self.reindex(
                        prev.as_ref().and_then(node_of).map(str::to_string),
                        None,
                        &key,
                    );
                }
                prev
            }
        }
    }

    fn reindex(&mut self, old: Option<String>, new: Option<String>, key: &Key) {
        if old == new {
            return;
        }
        if let Some(o) = old
            && let Some(set) = self.pods_by_node.get_mut(&o)
        {
            set.remove(key);
            if set.is_empty() {
                self.pods_by_node.remove(&o);
            }
        }
        if let Some(n) = new {
            self.pods_by_node.entry(n).or_default().insert(key.clone());
        }
    }
}

/// Storage identity of a resource type: (group, plural).
type RKey = (&'static str, &'static str);

fn rkey(r: &ResourceDef) -> RKey {
    (r.group, r.plural)
}

/// The store. Cheap to share behind an `Arc`.
pub struct Store {
    state: Mutex<State>,
    tx: broadcast::Sender<WatchEvent>,
    clock: Clock,
    net: ServiceNetwork,
}

impl Store {
    pub fn new(clock: Clock) -> Self {
        Self::with_service_network(clock, ServiceNetwork::default())
    }

    /// A store whose Services get ClusterIPs and node ports from `net`.
    pub fn with_service_network(clock: Clock, net: ServiceNetwork) -> Self {
        let (tx, _) = broadcast::channel(BROADCAST);
        Self {
            state: Mutex::new(State {
                rv: 1,
                ..Default::default()
            }),
            tx,
            clock,
            net,
        }
    }

    pub fn service_network(&self) -> &ServiceNetwork {
        &self.net
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock would poison it; the state is still consistent
        // because every write is all-or-nothing, so keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run `f` atomically. If it returns an error every write it made is undone and no watch
    /// event is sent.
    pub fn transaction<T>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let mut guard = self.lock();
        let start_rv = guard.rv;
        let mut tx = Tx {
            state: &mut guard,
            clock: self.clock,
            net: self.net,
            undo: Vec::new(),
            events: Vec::new(),
        };
        match f(&mut tx) {
            Ok(v) => {
                let events = std::mem::take(&mut tx.events);
                drop(tx);
                for ev in events {
                    if guard.history.len() >= HISTORY {
                        guard.history.pop_front();
                    }
                    guard.history.push_back(ev.clone());
                    // No receivers is fine.
                    let _ = self.tx.send(ev);
                }
                Ok(v)
            }
            Err(e) => {
                let undo = std::mem::take(&mut tx.undo);
                drop(tx);
                for (r, key, prev) in undo.into_iter().rev() {
                    guard.set(r, key, prev);
                }
                guard.rv = start_rv;
                Err(e)
            }
        }
    }

    /// The newest resourceVersion handed out.
    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    pub fn get(
        &self,
        r: &'static ResourceDef,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        self.transaction(|tx| tx.get(r, ns, name))
    }

    /// Objects matching `opts` (all namespaces when `ns` is `None`) and the list resourceVersion.
    pub fn list(
        &self,
        r: &'static ResourceDef,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> (Vec<Value>, u64) {
        let g = self.lock();
        let items = list_in(&g, r, ns, opts);
        (items, g.rv)
    }

    pub fn create(
        &self,
        r: &'static ResourceDef,
        ns: Option<&str>,
        obj: Value,
    ) -> Result<Value, ApiError> {
        self.transaction(|tx| tx.create(r, ns, obj))
    }

    pub fn update(
        &self,
        r: &'static ResourceDef,
        ns: Option<&str>,
        name: &str,
        obj: Value,
    ) -> Result<Value, ApiError> {
        self.transaction(|tx| tx.update(r, ns, name, obj))
    }

    pub fn update_status(
        &self,
        r: &'static ResourceDef,
        ns: Option<&str>,
        name: &str,
        obj: Value,
    ) -> Result<Value, ApiError> {
        self.transaction(|tx| tx.update_status(r, ns, name, obj))
    }

    /// Read-modify-write of one object under the lock; `f` may return an error to abort.
    pub fn modify(
        &self,
        r: &'static ResourceDef,
        ns: Option<&str>,
        name: &str,
        f: impl FnOnce(&mut Value) -> Result<(), ApiError>,
    ) -> Result<Value, ApiError> {
        self.transaction(|tx| tx.modify(r, ns, name, f))
    }

    pub fn delete(
        &self,
        r: &'static ResourceDef,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Value, ApiError> {
        self.transaction(|tx| tx.delete(r, ns, name, opts))
    }

    /// Every change from now on, all resources. Controllers filter; a lagged receiver should
    /// resync from [`Store::list`].
    pub fn subscribe(&self) -> broadcast::Receiver<WatchEvent> {
        self.tx.subscribe()
    }

    /// Start a watch of `r` after resourceVersion `rv`: the buffered events newer than `rv`,
    /// and a receiver for everything after them (taken under the same lock, so nothing is
    /// missed or repeated). `None` or `0` means "from now, starting with the current state"
    /// and yields synthetic ADDED events for existing objects, like the real server.
    pub fn watch(
        &self,
        r: &'static ResourceDef,
        ns: Option<&str>,
        rv: Option<u64>,
        opts: &ListOptions,
    ) -> Result<(Vec<WatchEvent>, broadcast::Receiver<WatchEvent>), ApiError> {
        let g = self.lock();
        let rx = self.tx.subscribe();
        let key = rkey(r);
        let in_scope = |ev: &WatchEvent| rkey(ev.resource) == key;
        let ns_ok = |ev: &WatchEvent| ns.is_none() || ev.namespace() == ns;
        let backlog = match rv {
            None | Some(0) => list_in(&g, r, ns, opts)
                .into_iter()
                .map(|o| WatchEvent {
                    rv: g.rv,
                    kind: EventType::Added,
                    resource: r,
                    object: Arc::new(o),
                })
                .collect(),
            Some(rv) => {
                let oldest = g.history.front().map(|e| e.rv).unwrap_or(g.rv + 1);
                if rv + 1 < oldest && rv < g.rv {
                    return Err(ApiError::gone(rv));
                }
                g.history
                    .iter()
                    .filter(|e| e.rv > rv && in_scope(e) && ns_ok(e))
                    .cloned()
                    .collect()
            }
        };
        Ok((backlog, rx))
    }
}

fn list_in(g: &State, r: &'static ResourceDef, ns: Option<&str>, opts: &ListOptions) -> Vec<Value> {
    let Some(map) = g.objects.get(&rkey(r)) else {
        return Vec::new();
    };
    if rkey(r) == rkey(&resources::PODS)
        && let Some(node) = opts
            .field
            .as_ref()
            .and_then(|f| f.exact("spec.nodeName"))
            .filter(|n| !n.is_empty())
    {
        let Some(keys) = g.pods_by_node.get(node) else {
            return Vec::new();
        };
        return keys
            .iter()
            .filter(|(n, _)| ns.is_none_or(|ns| ns == n))
            .filter_map(|k| map.get(k))
            .filter(|v| opts.matches(v))
            .cloned()
            .collect();
    }
    let iter: Box<dyn Iterator<Item = (&Key, &Value)>> = match ns {
        Some(ns) if r.namespaced => Box::new(
            map.range((ns.to_string(), String::new())..)
                .take_while(move |((n, _), _)| n == ns),
        ),
        _ => Box::new(map.iter()),
    };
    iter.filter(|(_, v)| opts.matches(v))
        .map(|(_, v)| v.clone())
        .collect()
}

/// A write transaction; see [`Store::transaction`].
pub struct Tx<'a> {
    state: &'a mut State,
    clock: Clock,
    net: ServiceNetwork,
    undo: Vec<(&'static ResourceDef, Key, Option<Value>)>,
    events: Vec<WatchEvent>,
}

fn ns_key(r: &ResourceDef, ns: Option<&str>) -> String {
    if r.namespaced {
        ns.unwrap_or("default").to_string()
    } else {
        String::new()
    }
}

pub fn meta_str<'v>(obj: &'v Value, field: &str) -> Option<&'v str> {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
}

impl Tx<'_> {
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Where Services get their addresses from (the API server's service ranges).
    pub fn service_network(&self) -> &ServiceNetwork {
        &self.net
    }

    fn next_rv(&mut self) -> u64 {
        self.state.rv += 1;
        self.state.rv
    }

    fn put(&mut self, r: &'static ResourceDef, key: Key, obj: Option<Value>, kind: EventType) {
        let prev = self.state.set(r, key.clone(), obj.clone());
        self.undo.push((r, key, prev.clone()));
        let object = match obj {
            Some(v) => v,
            None => {
                // A DELETED event carries the last state with a fresh resourceVersion.
                let mut v = prev.unwrap_or(Value::Null);
                let rv = self.state.rv;
                if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.insert("resourceVersion".into(), json!(rv.to_string()));
                }
                v
            }
        };
        self.events.push(WatchEvent {
            rv: self.state.rv,
            kind,
            resource: r,
            object: Arc::new(object),
        });
    }

    pub fn get(
        &self,
        r: &'static ResourceDef,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        self.try_get(r, ns, name)
            .ok_or_else(|| ApiError::not_found(r.group, r.plural, name))
    }

    pub fn try_get(&self, r: &'static ResourceDef, ns: Option<&str>, name: &str) -> Option<Value> {
        self.state
            .objects
            .get(&rkey(r))
            .and_then(|m| m.get(&(ns_key(r, ns), name.to_string())))
            .cloned()
    }

    pub fn list(
        &self,
        r: &'static ResourceDef,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> Vec<Value> {
        list_in(self.state, r, ns, opts)
    }

    /// Create `obj`: names it (`generateName`), stamps uid/creationTimestamp/resourceVersion/
    /// generation, runs admission (defaults and validation).
    pub fn create(
        &mut self,
        r: &'static ResourceDef,
        ns: Option<&str>,
        mut obj: Value,
    ) -> Result<Value, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON object",
            ));
        }
        let ns_s = ns_key(r, ns.or_else(|| meta_str(&obj, "namespace")));
        if r.namespaced {
            if let Some(body_ns) = meta_str(&obj, "namespace")
                && body_ns != ns_s
            {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            let Some(namespace) = self.try_get(&resources::NAMESPACES, None, &ns_s) else {
                return Err(ApiError::not_found("", "namespaces", &ns_s));
            };
            let name = meta_str(&obj, "name")
                .filter(|n| !n.is_empty())
                .or_else(|| meta_str(&obj, "generateName"))
                .unwrap_or("");
            admission::namespace_open(r, &namespace, name)?;
        }
        let meta = obj
            .as_object_mut()
            .unwrap()
            .entry("metadata")
            .or_insert_with(|| json!({}));
        if !meta.is_object() {
            return Err(ApiError::bad_request("metadata must be an object"));
        }
        let m = meta.as_object_mut().unwrap();
        let name = match (
            m.get("name").and_then(Value::as_str),
            m.get("generateName").and_then(Value::as_str),
        ) {
            (Some(n), _) if !n.is_empty() => n.to_string(),
            (_, Some(g)) if !g.is_empty() => format!("{g}{}", random_suffix()),
            _ => {
                return Err(ApiError::invalid(
                    r.kind,
                    "",
                    r.group,
                    vec![(
                        "metadata.name".into(),
                        "Required value: name or generateName is required".into(),
                    )],
                ));
            }
        };
        if let Err(msg) = validate_name(r, &name) {
            return Err(ApiError::invalid(
                r.kind,
                &name,
                r.group,
                vec![("metadata.name".into(), msg)],
            ));
        }
        let key = (ns_s.clone(), name.clone());
        if self.try_get(r, Some(&ns_s), &name).is_some() {
            return Err(ApiError::already_exists(r.group, r.plural, &name));
        }
        let rv = self.next_rv();
        m.insert("name".into(), json!(name));
        if r.namespaced {
            m.insert("namespace".into(), json!(ns_s));
        } else {
            m.remove("namespace");
        }
        m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        m.insert("creationTimestamp".into(), json!(Clock::now_rfc3339()));
        m.insert("resourceVersion".into(), json!(rv.to_string()));
        m.insert("generation".into(), json!(1));
        m.remove("deletionTimestamp");
        m.remove("deletionGracePeriodSeconds");
        let obj_map = obj.as_object_mut().unwrap();
        obj_map.insert("apiVersion".into(), json!(r.api_version()));
        obj_map.insert("kind".into(), json!(r.kind));
        admission::on_create(self, r, &mut obj)?;
        self.put(r, key, Some(obj.clone()), EventType::Added);
        Ok(obj)
    }

    /// Replace the main resource (status is kept from the stored object for resources with a
    /// status subresource). A `metadata.resourceVersion` in `obj` must match (409 otherwise).
    pub fn update(
        &mut self,
        r: &'static ResourceDef,
        ns: Option<&str>,
        name: &str,
        obj: Value,
    ) -> Result<Value, ApiError> {
        self.replace(r, ns, name, obj, Part::Main)
    }

    /// Replace only `status`.
    pub fn update_status(
        &mut self,
        r: &'static ResourceDef,
        ns: Option<&str>,
        name: &str,
        obj: Value,
    ) -> Result<Value, ApiError> {
        self.replace(r, ns, name, obj, Part::Status)
    }

    /// Replace the whole object, status included (controllers that own both).
    pub fn update_all(
        &mut self,
        r: &'static ResourceDef,
        ns: Option<&str>,
        name: &str,
        obj: Value,
    ) -> Result<Value, ApiError> {
        self.replace(r, ns, name, obj, Part::All)
    }

    /// Read-modify-write `name`; `f` sees the stored object and changes it in place (status
    /// included). No-op changes write nothing and send no event.
    pub fn modify(
        &mut self,
        r: &'static ResourceDef,
        ns: Option<&str>,
        name: &str,
        f: impl FnOnce(&mut Value) -> Result<(), ApiError>,
    ) -> Result<Value, ApiError> {
        let old = self.get(r, ns, name)?;
        let mut new = old.clone();
        f(&mut new)?;
        if new == old {
            return Ok(old);
        }
        self.replace(r, ns, name, new, Part::All)
    }

    fn replace(
        &mut self,
        r: &'static ResourceDef,
        ns: Option<&str>,
        name: &str,
        mut obj: Value,
        part: Part,
    ) -> Result<Value, ApiError> {
        let ns_s = ns_key(r, ns);
        let old = self.get(r, Some(&ns_s), name)?;
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON object",
            ));
        }
        if let Some(body_name) = meta_str(&obj, "name")
            && body_name != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        if let Some(rv) = meta_str(&obj, "resourceVersion")
            && !rv.is_empty()
            && Some(rv) != meta_str(&old, "resourceVersion")
        {
            return Err(ApiError::conflict(r.group, r.plural, name));
        }
        if let Some(uid) = meta_str(&obj, "uid")
            && !uid.is_empty()
            && Some(uid) != meta_str(&old, "uid")
        {
            return Err(ApiError::conflict(r.group, r.plural, name));
        }
        let has_status = r.subresources.contains(&"status");
        match part {
            Part::Main if has_status => {
                set_or_remove(&mut obj, "status", old.get("status").cloned());
            }
            Part::Status => {
                let status = obj.get("status").cloned();
                let mut merged = old.clone();
                set_or_remove(&mut merged, "status", status);
                obj = merged;
            }
            _ => {}
        }
        // Server-owned metadata cannot be changed by clients.
        {
            let om = old.get("metadata").cloned().unwrap_or_default();
            let m = obj
                .as_object_mut()
                .unwrap()
                .entry("metadata")
                .or_insert_with(|| json!({}));
            let Some(m) = m.as_object_mut() else {
                return Err(ApiError::bad_request("metadata must be an object"));
            };
            m.insert("name".into(), json!(name));
            if r.namespaced {
                m.insert("namespace".into(), json!(ns_s));
            }
            for k in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ] {
                match om.get(k) {
                    Some(v) => m.insert(k.into(), v.clone()),
                    None => m.remove(k),
                };
            }
            if part == Part::All {
                // Controllers may set deletion fields through admission-owned paths only.
            }
        }
        obj.as_object_mut()
            .unwrap()
            .insert("apiVersion".into(), json!(r.api_version()));
        obj.as_object_mut()
            .unwrap()
            .insert("kind".into(), json!(r.kind));
        admission::on_update(self, r, &old, &mut obj, part)?;
        // generation moves when the spec does (not for pods, whose spec is mostly immutable).
        if old.get("spec") != obj.get("spec") {
            let g = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            obj["metadata"]["generation"] = json!(g + 1);
        }
        let mut cmp_old = old.clone();
        let mut cmp_new = obj.clone();
        cmp_old["metadata"]
            .as_object_mut()
            .map(|m| m.remove("resourceVersion"));
        cmp_new["metadata"]
            .as_object_mut()
            .map(|m| m.remove("resourceVersion"));
        if cmp_old == cmp_new {
            return Ok(old);
        }
        let rv = self.next_rv();
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        // Finalizers emptied on an object being deleted: it goes now.
        if meta_str(&obj, "deletionTimestamp").is_some()
            && finalizers_empty(&obj)
            && r.kind != "Pod"
            && !(r.kind == "Namespace" && admission::namespace_finalizing(&obj))
        {
            self.put(r, (ns_s, name.to_string()), None, EventType::Deleted);
            return Ok(obj);
        }
        self.put(
            r,
            (ns_s, name.to_string()),
            Some(obj.clone()),
            EventType::Modified,
        );
        Ok(obj)
    }

    /// Delete with the API's semantics: pods bound to a node get a graceful deletion
    /// (deletionTimestamp + grace period; the kubelet removes them); objects with finalizers
    /// wait for them; everything else goes at once. Returns the object as last seen.
    pub fn delete(
        &mut self,
        r: &'static ResourceDef,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Value, ApiError> {
        let ns_s = ns_key(r, ns);
        let mut obj = self.get(r, Some(&ns_s), name)?;
        if let Some(uid) = &opts.precondition_uid
            && meta_str(&obj, "uid") != Some(uid.as_str())
        {
            return Err(
                ApiError::conflict(r.group, r.plural, name).with_message(format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta_str(&obj, "uid").unwrap_or("")
                )),
            );
        }
        if let Some(rv) = &opts.precondition_rv
            && meta_str(&obj, "resourceVersion") != Some(rv.as_str())
        {
            return Err(ApiError::conflict(r.group, r.plural, name));
        }
        if opts.dry_run {
            return Ok(obj);
        }
        let grace = if r.kind == "Pod" {
            admission::pod_grace_period(&obj, opts.grace_period_seconds)
        } else {
            0
        };
        let graceful = r.kind == "Pod"
            && grace > 0
            && obj
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty())
            && !matches!(
                obj.pointer("/status/phase").and_then(Value::as_str),
                Some("Succeeded" | "Failed")
            );
        if opts.orphan {
            obj["metadata"]["finalizers"] = json!(["orphan"]);
        }
        let namespace = r.kind == "Namespace" && r.group.is_empty();
        // A namespace waits for the namespace controller to empty it (its `spec.finalizers`).
        let finalizing_namespace = namespace && admission::namespace_finalizing(&obj);
        if graceful || finalizing_namespace || !finalizers_empty(&obj) {
            let already = meta_str(&obj, "deletionTimestamp").is_some();
            let cur = obj
                .pointer("/metadata/deletionGracePeriodSeconds")
                .and_then(Value::as_i64);
            if already && cur.is_some_and(|c| c <= grace) && !opts.orphan {
                return Ok(obj);
            }
            let rv = self.next_rv();
            let m = obj["metadata"].as_object_mut().unwrap();
            m.insert(
                "deletionTimestamp".into(),
                json!(
                    self.clock
                        .rfc3339_after(std::time::Duration::from_secs(grace.max(0) as u64))
                ),
            );
            m.insert("deletionGracePeriodSeconds".into(), json!(grace));
            m.insert("resourceVersion".into(), json!(rv.to_string()));
            if namespace {
                admission::namespace_terminating(&mut obj);
            }
            self.put(
                r,
                (ns_s, name.to_string()),
                Some(obj.clone()),
                EventType::Modified,
            );
            return Ok(obj);
        }
        self.next_rv();
        self.put(r, (ns_s, name.to_string()), None, EventType::Deleted);
        Ok(obj)
    }

    /// Remove an object now, whatever its grace period or finalizers (the kubelet finishing a
    /// graceful deletion, the garbage collector, a force delete).
    pub fn remove(
        &mut self,
        r: &'static ResourceDef,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        let ns_s = ns_key(r, ns);
        let obj = self.get(r, Some(&ns_s), name)?;
        self.next_rv();
        self.put(r, (ns_s, name.to_string()), None, EventType::Deleted);
        Ok(obj)
    }
}

/// What an update replaces; admission validates API writes of the main resource only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// An API update of the main resource (status kept from the stored object).
    Main,
    /// An API update of the status subresource.
    Status,
    /// An internal write of the whole object by a control loop.
    All,
}

fn set_or_remove(obj: &mut Value, key: &str, v: Option<Value>) {
    if let Some(m) = obj.as_object_mut() {
        match v {
            Some(v) => {
                m.insert(key.into(), v);
            }
            None => {
                m.remove(key);
            }
        }
    }
}

fn finalizers_empty(obj: &Value) -> bool {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_none_or(|a| a.is_empty())
}

fn random_suffix() -> String {
    // Same alphabet as the real server (no vowels, no confusable digits).
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let id = uuid::Uuid::new_v4();
    id.as_bytes()[..5]
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// DNS-1123 subdomain for most objects (≤ 253), as the real server validates names.
fn validate_name(_r: &ResourceDef, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
        ))
    }
}

impl ApiError {
    pub fn with_message(mut self, message: String) -> Self {
        self.message = message;
        self
    }
}

/// Labels of an object (empty map when none).
pub fn labels(obj: &Value) -> Map<String, Value> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}
