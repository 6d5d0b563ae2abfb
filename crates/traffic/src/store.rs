//! The service's database stand-in: one [`Store`] per service, shared (`Arc<Store>`) by every
//! pod app of that service, so a write acknowledged by a pod that later dies is still there. It
//! outlives the pods, as a real database outlives the nodes the service runs on; the load
//! generator checks acknowledged writes against it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;

/// One write as the database holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredWrite {
    /// The write's id (the request's `X-Request-Id`).
    pub id: String,
    /// The item's path, e.g. `/items/k3`.
    pub path: String,
    /// The request body.
    pub body: Bytes,
    /// When the store committed it.
    pub stored_at: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    by_id: HashMap<String, StoredWrite>,
    /// The latest write id for each path, for reads.
    latest: HashMap<String, String>,
    /// The write id each `Idempotency-Key` applied.
    by_key: HashMap<String, String>,
}

/// A thread-safe map write id → write, with an optional per-write latency modelling the database
/// round trip.
#[derive(Debug, Default)]
pub struct Store {
    inner: Mutex<Inner>,
    write_latency: Duration,
}

impl Store {
    /// An empty store whose writes commit at once.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store whose every write takes `latency` before it commits (and `put` returns).
    pub fn with_write_latency(latency: Duration) -> Self {
        Self {
            inner: Mutex::default(),
            write_latency: latency,
        }
    }

    /// Stores a write after the configured latency. The app calls it before acknowledging, so an
    /// acknowledged write is always here; a `put` cancelled during its latency (the pod was killed
    /// mid round trip) commits nothing, and its request was never acknowledged. A second write
    /// with the same id is a client retry: the first one stands.
    pub async fn put(&self, id: &str, path: &str, body: Bytes) {
        self.put_keyed(id, None, path, body).await;
    }

    /// [`Store::put`] with the request's `Idempotency-Key`: a write whose key was applied before
    /// is not applied again (a replay, at least once, of a queued write). Returns the id of the
    /// write that stands for the key (this one, or the first with that key).
    pub async fn put_keyed(&self, id: &str, key: Option<&str>, path: &str, body: Bytes) -> String {
        if !self.write_latency.is_zero() {
            tokio::time::sleep(self.write_latency).await;
        }
        let mut inner = self.lock();
        if let Some(first) = key.and_then(|k| inner.by_key.get(k)) {
            return first.clone();
        }
        if let Some(k) = key {
            inner.by_key.insert(k.to_owned(), id.to_owned());
        }
        if inner.by_id.contains_key(id) {
            return id.to_owned();
        }
        inner.latest.insert(path.to_owned(), id.to_owned());
        inner.by_id.insert(
            id.to_owned(),
            StoredWrite {
                id: id.to_owned(),
                path: path.to_owned(),
                body,
                stored_at: Instant::now(),
            },
        );
        id.to_owned()
    }

    /// The write with this id.
    pub fn get(&self, id: &str) -> Option<StoredWrite> {
        self.lock().by_id.get(id).cloned()
    }

    /// The latest write to this path (what a read of the item returns).
    pub fn latest(&self, path: &str) -> Option<StoredWrite> {
        let inner = self.lock();
        let id = inner.latest.get(path)?;
        inner.by_id.get(id).cloned()
    }

    /// Whether the write with this id is stored.
    pub fn contains(&self, id: &str) -> bool {
        self.lock().by_id.contains_key(id)
    }

    /// How many writes are stored.
    pub fn len(&self) -> usize {
        self.lock().by_id.len()
    }

    /// Whether no write is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops a stored write, as a database that loses data would; for tests that check the loss
    /// is detected.
    pub fn remove(&self, id: &str) -> Option<StoredWrite> {
        let mut inner = self.lock();
        let removed = inner.by_id.remove(id)?;
        if inner.latest.get(&removed.path).is_some_and(|l| l == id) {
            inner.latest.remove(&removed.path);
        }
        Some(removed)
    }

    /// The ids of all stored writes, in no particular order.
    pub fn ids(&self) -> Vec<String> {
        self.lock().by_id.keys().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the maps consistent (each update is one insert or
        // remove), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_put_is_visible_by_id_and_as_the_paths_latest_write() {
        let store = Store::new();
        store.put("a", "/items/k", Bytes::from_static(b"1")).await;
        store.put("b", "/items/k", Bytes::from_static(b"2")).await;
        assert!(store.contains("a"));
        assert_eq!(store.len(), 2);
        assert_eq!(store.latest("/items/k").unwrap().id, "b");
        assert_eq!(store.get("a").unwrap().body, Bytes::from_static(b"1"));
        assert!(store.latest("/items/other").is_none());
    }

    #[tokio::test]
    async fn a_retried_write_keeps_the_first_body() {
        let store = Store::new();
        store.put("a", "/items/k", Bytes::from_static(b"1")).await;
        store.put("a", "/items/k", Bytes::from_static(b"2")).await;
        assert_eq!(store.len(), 1);
        assert_eq!(store.get("a").unwrap().body, Bytes::from_static(b"1"));
    }

    #[tokio::test]
    async fn a_write_with_an_idempotency_key_seen_before_is_applied_once() {
        let store = Store::new();
        let first = store
            .put_keyed("a", Some("k1"), "/items/k", Bytes::from_static(b"1"))
            .await;
        let again = store
            .put_keyed("b", Some("k1"), "/items/k", Bytes::from_static(b"2"))
            .await;
        let other = store
            .put_keyed("c", Some("k2"), "/items/k", Bytes::from_static(b"3"))
            .await;
        assert_eq!(
            (first.as_str(), again.as_str(), other.as_str()),
            ("a", "a", "c")
        );
        assert_eq!(store.len(), 2);
        assert!(!store.contains("b"));
        assert_eq!(store.latest("/items/k").unwrap().id, "c");
    }

    #[tokio::test]
    async fn a_put_takes_the_configured_write_latency() {
        let store = Store::with_write_latency(Duration::from_millis(50));
        let started = Instant::now();
        store.put("a", "/items/k", Bytes::new()).await;
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert!(store.contains("a"));
    }

    #[tokio::test]
    async fn a_removed_write_is_gone_and_no_longer_read() {
        let store = Store::new();
        store.put("a", "/items/k", Bytes::new()).await;
        assert!(store.remove("a").is_some());
        assert!(!store.contains("a"));
        assert!(store.latest("/items/k").is_none());
        assert!(store.is_empty());
    }
}
