//! The controllers' view of the store: an informer-style cache of the resource types one loop
//! cares about, kept exact by applying every watch event in order, with the indexes the loops
//! need (by uid, by controlling owner, pods by node) so no loop re-lists on every event.
//!
//! The cache is taken and the subscription opened under the store's lock, so nothing is missed
//! or applied twice. Each [`Informer::next`] drains everything already broadcast before
//! returning, so after a loop's own writes its next pass sees them (no "expectations" needed).
//! A lagged receiver re-snapshots and reports [`Batch::resynced`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio::time::Instant;

use super::At;
use crate::resources::{self, ResourceDef};
use crate::store::{EventType, ListOptions, Store, WatchEvent};

/// `(namespace or "", name)`.
pub type Key = (String, String);

/// One change seen by the cache: `old` is what the cache held before, `new` is `None` for a
/// deletion.
#[derive(Debug, Clone)]
pub struct Change {
    pub resource: &'static ResourceDef,
    pub old: Option<Arc<Value>>,
    pub new: Option<Arc<Value>>,
}

impl Change {
    /// The newest state known (the deleted object for a deletion).
    pub fn object(&self) -> &Value {
        self.new
            .as_deref()
            .or(self.old.as_deref())
            .unwrap_or(&Value::Null)
    }
    pub fn is(&self, r: &'static ResourceDef) -> bool {
        std::ptr::eq(self.resource, r)
            || (self.resource.group == r.group && self.resource.plural == r.plural)
    }
}

/// What one wait produced.
#[derive(Debug, Default)]
pub struct Batch {
    pub changes: Vec<Change>,
    /// The cache was rebuilt from a fresh snapshot (the receiver lagged): reconcile everything.
    pub resynced: bool,
    /// The store's broadcast closed: the loop should stop.
    pub closed: bool,
}

pub struct Informer {
    store: Arc<Store>,
    kinds: Vec<&'static ResourceDef>,
    rx: broadcast::Receiver<WatchEvent>,
    objs: HashMap<Rk, BTreeMap<Key, Arc<Value>>>,
    by_uid: HashMap<String, (&'static ResourceDef, Key)>,
    owned: HashMap<String, BTreeSet<(Rk, Key)>>,
    pods_on_node: HashMap<String, BTreeSet<Key>>,
}

/// Storage identity of a type: (group, plural).
type Rk = (&'static str, &'static str);

fn kind_key(r: &'static ResourceDef) -> Rk {
    (r.group, r.plural)
}

/// What the indexes depend on: uid, controlling owner uid, node.
fn index_fields(o: &Value) -> (Option<&str>, Option<&str>, Option<&str>) {
    (
        o.at("/metadata/uid").and_then(Value::as_str),
        super::controller_ref(o).map(|r| r.uid),
        super::pod_node(o),
    )
}

impl Informer {
    /// Snapshot `kinds` and subscribe, atomically.
    pub fn new(store: Arc<Store>, kinds: &[&'static ResourceDef]) -> Self {
        let (rx, snapshot) = Self::snapshot(&store, kinds);
        let mut inf = Self {
            store,
            kinds: kinds.to_vec(),
            rx,
            objs: HashMap::new(),
            by_uid: HashMap::new(),
            owned: HashMap::new(),
            pods_on_node: HashMap::new(),
        };
        inf.load(snapshot);
        inf
    }

    #[allow(clippy::type_complexity)]
    fn snapshot(
        store: &Arc<Store>,
        kinds: &[&'static ResourceDef],
    ) -> (
        broadcast::Receiver<WatchEvent>,
        Vec<(&'static ResourceDef, Vec<Value>)>,
    ) {
        let all = ListOptions::default();
        store
            .transaction(|tx| {
                // Subscribing while the transaction holds the lock: no event can slip between
                // the snapshot and the subscription.
                let rx = store.subscribe();
                let lists = kinds.iter().map(|r| (*r, tx.list(r, None, &all))).collect();
                Ok((rx, lists))
            })
            .unwrap_or_else(|_| (store.subscribe(), Vec::new()))
    }

    fn load(&mut self, snapshot: Vec<(&'static ResourceDef, Vec<Value>)>) {
        self.objs.clear();
        self.by_uid.clear();
        self.owned.clear();
        self.pods_on_node.clear();
        for r in &self.kinds {
            self.objs.insert(kind_key(r), BTreeMap::new());
        }
        for (r, items) in snapshot {
            for obj in items {
                self.apply(r, EventType::Added, Arc::new(obj));
            }
        }
    }

    fn resync(&mut self) {
        let (rx, snapshot) = Self::snapshot(&self.store, &self.kinds.clone());
        self.rx = rx;
        self.load(snapshot);
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Wait until something changes (or `deadline` passes), then drain everything already
    /// broadcast. `debounce` lets a burst accumulate into one batch.
    pub async fn next(&mut self, deadline: Option<Instant>, debounce: Duration) -> Batch {
        let mut batch = Batch::default();
        {
            let first = match deadline {
                Some(d) => tokio::select! {
                    r = self.rx.recv() => Some(r),
                    _ = tokio::time::sleep_until(d) => None,
                },
                None => Some(self.rx.recv().await),
            };
            match first {
                Some(Ok(ev)) => self.handle(ev, &mut batch.changes),
                Some(Err(RecvError::Lagged(n))) => {
                    tracing::debug!(missed = n, "controller cache lagged; resyncing");
                    self.resync();
                    batch.resynced = true;
                }
                Some(Err(RecvError::Closed)) => batch.closed = true,
                None => {}
            }
            if !debounce.is_zero() && !batch.changes.is_empty() {
                tokio::time::sleep(debounce).await;
            }
        }
        self.drain(&mut batch);
        batch
    }

    /// Apply everything already broadcast (e.g. before acting on a timer).
    pub fn drain(&mut self, batch: &mut Batch) {
        loop {
            match self.rx.try_recv() {
                Ok(ev) => self.handle(ev, &mut batch.changes),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Lagged(_)) => {
                    self.resync();
                    batch.resynced = true;
                    batch.changes.clear();
                }
                Err(TryRecvError::Closed) => {
                    batch.closed = true;
                    break;
                }
            }
        }
    }

    fn handle(&mut self, ev: WatchEvent, out: &mut Vec<Change>) {
        if !self
            .kinds
            .iter()
            .any(|r| r.group == ev.resource.group && r.plural == ev.resource.plural)
        {
            return;
        }
        if let Some(ch) = self.apply(ev.resource, ev.kind, ev.object) {
            out.push(ch);
        }
    }

    fn apply(
        &mut self,
        r: &'static ResourceDef,
        kind: EventType,
        obj: Arc<Value>,
    ) -> Option<Change> {
        let ns = obj
            .at("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let name = obj
            .at("/metadata/name")
            .and_then(Value::as_str)?
            .to_string();
        let key = (ns, name);
        let kk = kind_key(r);
        let map = self.objs.entry(kk).or_default();
        let old = match kind {
            EventType::Deleted => map.remove(&key),
            _ => map.insert(key.clone(), obj.clone()),
        };
        // Most events are status updates that leave every index as it was.
        let same_index = kind != EventType::Deleted
            && old
                .as_deref()
                .is_some_and(|o| index_fields(o) == index_fields(&obj));
        if !same_index {
            if let Some(o) = &old {
                self.unindex(r, &key, o);
            }
            if kind != EventType::Deleted {
                self.index(r, &key, &obj);
            }
        }
        let new = (kind != EventType::Deleted).then_some(obj);
        Some(Change {
            resource: r,
            old,
            new,
        })
    }

    fn index(&mut self, r: &'static ResourceDef, key: &Key, obj: &Value) {
        if let Some(uid) = obj.at("/metadata/uid").and_then(Value::as_str) {
            self.by_uid.insert(uid.to_string(), (r, key.clone()));
        }
        if let Some(owner) = super::controller_ref(obj) {
            self.owned
                .entry(owner.uid.to_string())
                .or_default()
                .insert((kind_key(r), key.clone()));
        }
        if r.kind == "Pod"
            && let Some(node) = super::pod_node(obj)
        {
            self.pods_on_node
                .entry(node.to_string())
                .or_default()
                .insert(key.clone());
        }
    }

    fn unindex(&mut self, r: &'static ResourceDef, key: &Key, obj: &Value) {
        if let Some(uid) = obj.at("/metadata/uid").and_then(Value::as_str)
            && self.by_uid.get(uid).is_some_and(|(_, k)| k == key)
        {
            self.by_uid.remove(uid);
        }
        if let Some(owner) = super::controller_ref(obj)
            && let Some(set) = self.owned.get_mut(owner.uid)
        {
            set.remove(&(kind_key(r), key.clone()));
            if set.is_empty() {
                self.owned.remove(owner.uid);
            }
        }
        if r.kind == "Pod"
            && let Some(node) = super::pod_node(obj)
            && let Some(set) = self.pods_on_node.get_mut(node)
        {
            set.remove(key);
            if set.is_empty() {
                self.pods_on_node.remove(node);
            }
        }
    }

    pub fn get(&self, r: &'static ResourceDef, ns: &str, name: &str) -> Option<&Arc<Value>> {
        self.objs
            .get(&kind_key(r))?
            .get(&(ns.to_string(), name.to_string()))
    }

    pub fn get_key(&self, r: &'static ResourceDef, key: &Key) -> Option<&Arc<Value>> {
        self.objs.get(&kind_key(r))?.get(key)
    }

    /// Every cached object of `r`.
    pub fn iter<'a>(
        &'a self,
        r: &'static ResourceDef,
    ) -> impl Iterator<Item = (&'a Key, &'a Arc<Value>)> + 'a {
        self.objs
            .get(&kind_key(r))
            .into_iter()
            .flat_map(|m| m.iter())
    }

    /// Cached objects of `r` in namespace `ns`.
    pub fn in_ns<'a>(
        &'a self,
        r: &'static ResourceDef,
        ns: &'a str,
    ) -> impl Iterator<Item = (&'a Key, &'a Arc<Value>)> + 'a {
        self.objs.get(&kind_key(r)).into_iter().flat_map(move |m| {
            m.range((ns.to_string(), String::new())..)
                .take_while(move |((n, _), _)| n == ns)
        })
    }

    pub fn count(&self, r: &'static ResourceDef) -> usize {
        self.objs.get(&kind_key(r)).map_or(0, BTreeMap::len)
    }

    /// The object with this uid, if cached.
    pub fn by_uid(&self, uid: &str) -> Option<(&'static ResourceDef, &Key, &Arc<Value>)> {
        let (r, key) = self.by_uid.get(uid)?;
        Some((*r, key, self.get_key(r, key)?))
    }

    pub fn has_uid(&self, uid: &str) -> bool {
        self.by_uid.contains_key(uid)
    }

    /// Objects of `r` whose controlling ownerReference has `uid`.
    pub fn owned_by<'a>(
        &'a self,
        uid: &str,
        r: &'static ResourceDef,
    ) -> impl Iterator<Item = &'a Arc<Value>> + 'a {
        let kk = kind_key(r);
        self.owned
            .get(uid)
            .into_iter()
            .flat_map(|s| s.iter())
            .filter(move |(k, _)| *k == kk)
            .filter_map(move |(_, key)| self.get_key(r, key))
    }

    /// Pods whose `spec.nodeName` is `node`.
    pub fn pods_on<'a>(&'a self, node: &str) -> impl Iterator<Item = &'a Arc<Value>> + 'a {
        self.pods_on_node
            .get(node)
            .into_iter()
            .flat_map(|s| s.iter())
            .filter_map(|key| self.get_key(&resources::PODS, key))
    }

    /// Names of nodes that have at least one pod bound.
    pub fn nodes_with_pods(&self) -> impl Iterator<Item = &String> {
        self.pods_on_node.keys()
    }
}
