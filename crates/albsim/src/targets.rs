//! The registered targets of each target group as the data plane sees them: their health
//! state, their in-flight request count, whether they are draining, and the choice of one
//! target for a request (round robin or least outstanding requests, among healthy targets,
//! failing open to the unhealthy ones when no target is healthy).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use tokio::sync::Notify;
use tokio::task::AbortHandle;

use crate::config::{LoadBalancingAlgorithm, Target, TargetGroup, TargetKey};
use crate::health::{HealthState, Reason};

/// One target group's live state.
pub struct GroupState {
    config: RwLock<Arc<TargetGroup>>,
    targets: Mutex<Vec<Arc<TargetState>>>,
    next: AtomicUsize,
}

/// One registered target's live state.
pub struct TargetState {
    pub key: TargetKey,
    pub target: Target,
    record: Mutex<HealthRecord>,
    outstanding: AtomicUsize,
    gone: AtomicBool,
    gone_notify: Notify,
    checker: Mutex<Option<AbortHandle>>,
}

/// Health as the checker last established it, plus the registration lifecycle around it.
#[derive(Debug, Clone)]
pub struct HealthRecord {
    pub state: HealthState,
    pub reason: Option<Reason>,
    pub description: Option<String>,
    pub consecutive_ok: u32,
    pub consecutive_failed: u32,
    /// Deregistered (reported `draining` from the API call on).
    pub deregistering: bool,
    /// The deregistration has reached the data plane: no new requests.
    pub drained: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl GroupState {
    pub fn new(config: Arc<TargetGroup>) -> Self {
        Self {
            config: RwLock::new(config),
            targets: Mutex::new(Vec::new()),
            next: AtomicUsize::new(0),
        }
    }

    pub fn config(&self) -> Arc<TargetGroup> {
        self.config
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn set_config(&self, config: Arc<TargetGroup>) {
        *self.config.write().unwrap_or_else(PoisonError::into_inner) = config;
    }

    pub fn targets(&self) -> Vec<Arc<TargetState>> {
        lock(&self.targets).clone()
    }

    /// Adds a target in `initial` / `Elb.RegistrationInProgress`; a target already registered
    /// (even draining) is left as it is and returned as `None`.
    pub fn register(&self, key: TargetKey, target: Target) -> Option<Arc<TargetState>> {
        let mut targets = lock(&self.targets);
        if targets.iter().any(|t| t.key == key) {
            return None;
        }
        let state = Arc::new(TargetState::new(key, target));
        targets.push(state.clone());
        Some(state)
    }

    /// Forgets a target: it is gone from DescribeTargetHealth and its in-flight requests end.
    pub fn remove(&self, key: &TargetKey) {
        let removed: Vec<_> = {
            let mut targets = lock(&self.targets);
            let (gone, kept) = targets.drain(..).partition(|t| &t.key == key);
            *targets = kept;
            gone
        };
        for t in removed {
            t.mark_gone();
        }
    }

    /// Forgets every target (the group itself is gone).
    pub fn clear(&self) {
        let removed: Vec<_> = lock(&self.targets).drain(..).collect();
        for t in removed {
            t.mark_gone();
        }
    }

    /// Picks the target for one request, or `None` when no target may take it.
    ///
    /// "Each load balancer node routes requests only to the healthy targets", and "if a target
    /// group contains only unhealthy registered targets, the load balancer routes requests to
    /// all those targets, regardless of their health status"
    /// (<https://docs.aws.amazon.com/elasticloadbalancing/latest/application/target-group-health-checks.html>).
    /// Targets still in `initial` take no traffic and do not count against the fail-open.
    pub fn pick(&self) -> Option<Arc<TargetState>> {
        let targets = self.targets();
        let live: Vec<(Arc<TargetState>, HealthState)> = targets
            .into_iter()
            .filter_map(|t| {
                let rec = t.record();
                (!rec.drained).then_some((t, rec.state))
            })
            .collect();
        let mut set: Vec<&Arc<TargetState>> = live
            .iter()
            .filter(|(_, s)| matches!(s, HealthState::Healthy | HealthState::Unavailable))
            .map(|(t, _)| t)
            .collect();
        if set.is_empty() {
            set = live
                .iter()
                .filter(|(_, s)| *s == HealthState::Unhealthy)
                .map(|(t, _)| t)
                .collect();
        }
        if set.is_empty() {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let chosen = match self.config().attributes.load_balancing_algorithm {
            LoadBalancingAlgorithm::RoundRobin => set[start % set.len()],
            // "The least outstanding requests routing algorithm … routes requests to the targets
            // with the lowest number of in progress requests"; ties rotate.
            // <https://docs.aws.amazon.com/elasticloadbalancing/latest/application/edit-target-group-attributes.html#modify-routing-algorithm>
            LoadBalancingAlgorithm::LeastOutstandingRequests => (0..set.len())
                .map(|i| set[(start + i) % set.len()])
                .min_by_key(|t| t.outstanding())
                .unwrap_or(set[0]),
        };
        Some(chosen.clone())
    }
}

impl TargetState {
    fn new(key: TargetKey, target: Target) -> Self {
        Self {
            key,
            target,
            record: Mutex::new(HealthRecord {
                state: HealthState::Initial,
                reason: Some(Reason::RegistrationInProgress),
                description: None,
                consecutive_ok: 0,
                consecutive_failed: 0,
                deregistering: false,
                drained: false,
            }),
            outstanding: AtomicUsize::new(0),
            gone: AtomicBool::new(false),
            gone_notify: Notify::new(),
            checker: Mutex::new(None),
        }
    }

    pub fn record(&self) -> HealthRecord {
        lock(&self.record).clone()
    }

    pub fn update(&self, f: impl FnOnce(&mut HealthRecord)) {
        f(&mut lock(&self.record));
    }

    pub fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Relaxed)
    }

    /// Counts a request in flight until the guard drops.
    pub fn begin_request(self: &Arc<Self>) -> InFlight {
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    pub fn set_checker(&self, handle: AbortHandle) {
        if let Some(old) = lock(&self.checker).replace(handle) {
            old.abort();
        }
    }

    pub fn stop_checker(&self) {
        if let Some(old) = lock(&self.checker).take() {
            old.abort();
        }
    }

    fn mark_gone(&self) {
        self.stop_checker();
        self.gone.store(true, Ordering::SeqCst);
        self.gone_notify.notify_waiters();
    }

    /// Resolves once the target has been removed (its deregistration delay is over).
    pub async fn wait_gone(&self) {
        loop {
            let notified = self.gone_notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.gone.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }
}

/// A request in flight to a target.
pub struct InFlight(Arc<TargetState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}
