//! The drain executor: evicts a plan's pods with bounded concurrency and a client-side QPS
//! limit, those that serve a load balancer once they are out of rotation ([`rotation`]), retries PodDisruptionBudget refusals (429) on the core's backoff schedule until
//! `evict_by`, waits for evicted pods to go (one list of the node's pods per tick for all of
//! them), and at the deadline reports (and, only if configured, force-deletes) whatever is
//! left. It never runs past the deadline. Its timeline entries go through its own [`Journal`].

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use costop_core::Config;
use costop_core::facts::PodRef;
use costop_core::plan::action::{Drain, EvictPod};
use costop_core::plan::drain::{
    RetryDecision, at_deadline, deterministic_jitter, next_eviction_retry,
};
use costop_core::record::{TimelineEntry, TimelineStep};
use futures::StreamExt;
use serde::Serialize;

use crate::function::error_chain;
use crate::journal::Journal;
use crate::ports::{Elb, EvictOutcome, Kube, PortError, Records};
use crate::ratelimit::RateLimiter;
use crate::rotation;

/// What the drain did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DrainReport {
    /// Evictions accepted by the API server.
    pub evictions_issued: usize,
    /// 429 refusals that were retried.
    pub eviction_retries: u32,
    /// Pods confirmed gone.
    pub evicted: Vec<PodRef>,
    /// Pods still there at the deadline.
    pub remaining: Vec<PodRef>,
    /// Pods force-deleted at the deadline (only when configured).
    pub force_deleted: Vec<PodRef>,
    /// Milliseconds until every eviction had been issued (accepted or given up on), the
    /// serving pods' counted from the end of their rotation.
    pub all_issued_ms: u64,
    /// Milliseconds from the drain's start until the serving pods could be evicted (out of
    /// rotation, targets draining, settled); 0 without a rotation.
    pub rotation_ms: u64,
    /// The deadline came with pods left.
    pub deadline_missed: bool,
}

/// How often to check that an evicted pod is gone.
const GONE_POLL: Duration = Duration::from_millis(200);

enum PodResult {
    /// Already gone when asked.
    Gone { retries: u32 },
    /// Eviction accepted; the pod is terminating.
    Accepted { retries: u32 },
    /// Refused until `evict_by` (or attempts ran out).
    GaveUp { retries: u32 },
}

/// Run `drain`. Infallible by design: failures of individual pods are retried until the
/// deadline and then reported; timeline writes are best effort.
pub async fn run<K: Kube, E: Elb, R: Records>(
    kube: &K,
    elb: &E,
    records: &R,
    interruption_id: &str,
    drain: &Drain,
    config: &Config,
) -> DrainReport {
    let started = std::time::Instant::now();
    let limiter = RateLimiter::new(config.kube_qps, config.kube_burst);
    // Timeline entries are stamped when they happen and written in batches between phases:
    // awaiting a DynamoDB write inside an eviction slot would hold the slot for the write's
    // latency and slow every eviction behind it.
    let journal = Journal::new(records, config.timeline_ttl_days);
    let record = |step: TimelineStep| {
        journal.push(TimelineEntry {
            interruption_id: interruption_id.to_string(),
            at: Utc::now(),
            step,
        })
    };
    let flush = || async {
        let entries = journal.len();
        if let Err(e) = journal.flush().await {
            tracing::warn!(interruption_id, entries, error = %error_chain(&e), "timeline write failed");
        }
    };
    // The pods that serve a load balancer wait for their rotation; the others go at once.
    let (later, now): (Vec<EvictPod>, Vec<EvictPod>) = drain
        .pods
        .iter()
        .cloned()
        .partition(|p| p.after_rotation && drain.rotation.is_some());
    let first = evict_all(kube, &limiter, now, drain, &record, started);
    let second = async {
        let Some(rotation) = drain.rotation.as_ref().filter(|_| !later.is_empty()) else {
            return (Vec::new(), 0, 0);
        };
        rotation::run(kube, elb, &limiter, rotation, &record).await;
        let waited = started.elapsed().as_millis() as u64;
        flush().await;
        // Measured from the end of the wait: the evictions' own speed.
        let (results, issued) = evict_all(
            kube,
            &limiter,
            later,
            drain,
            &record,
            std::time::Instant::now(),
        )
        .await;
        (results, issued, waited)
    };
    let ((mut results, issued_now), (results_later, issued_later, rotation_ms)) =
        futures::join!(first, second);
    results.extend(results_later);

    let mut report = DrainReport {
        all_issued_ms: issued_now.max(issued_later),
        rotation_ms,
        ..Default::default()
    };
    let mut remaining = Vec::new();
    let mut accepted = Vec::new();
    for (pod, r) in results {
        match r {
            PodResult::Gone { retries } => {
                report.eviction_retries += retries;
                report.evictions_issued += 1;
                report.evicted.push(pod);
            }
            PodResult::Accepted { retries } => {
                report.eviction_retries += retries;
                report.evictions_issued += 1;
                accepted.extend(drain.pods.iter().find(|p| p.pod_ref() == pod));
            }
            PodResult::GaveUp { retries } => {
                report.eviction_retries += retries;
                remaining.push(pod);
            }
        }
    }
    flush().await;
    let gone = wait_gone(kube, &limiter, drain, &accepted, &record).await;
    for p in accepted {
        let r = p.pod_ref();
        if gone.contains(&r) {
            report.evicted.push(r);
        } else {
            remaining.push(r);
        }
    }
    let outcome = at_deadline(&remaining, drain.force_delete_at_deadline);
    for pod in &outcome.force_delete {
        if let Some(p) = drain.pods.iter().find(|p| p.pod_ref() == *pod) {
            match kube.force_delete(p).await {
                Ok(()) => {
                    record(TimelineStep::ForceDeleted { pod: pod.clone() });
                    report.force_deleted.push(pod.clone());
                }
                Err(e) => tracing::warn!(pod = %pod, error = %e, "force delete failed"),
            }
        }
    }
    report.evicted.sort();
    report.deadline_missed = !outcome.is_clean();
    // A clean drain is recorded by the plan's own `drained` milestone; a missed deadline
    // replaces it (the handler skips `drained` then).
    if !outcome.is_clean() {
        record(TimelineStep::DeadlineReached {
            remaining: outcome.remaining.clone(),
        });
    }
    flush().await;
    report.remaining = outcome.remaining;
    report
}

/// Evict `pods` with the drain's concurrency; each pod's result, and the milliseconds from
/// `started` until the last eviction was issued (accepted or given up on).
async fn evict_all<K: Kube, F: Fn(TimelineStep)>(
    kube: &K,
    limiter: &RateLimiter,
    pods: Vec<EvictPod>,
    drain: &Drain,
    record: &F,
    started: std::time::Instant,
) -> (Vec<(PodRef, PodResult)>, u64) {
    let issued_at = Mutex::new(0u64);
    // Owned pods: a closure over borrowed ones makes this future lose `Send` (rustc's
    // higher-ranked lifetime limitation with stream combinators).
    let results = futures::stream::iter(pods)
        .map(|pod| {
            let issued_at = &issued_at;
            async move {
                let r = evict_one(kube, limiter, &pod, drain, record, || {
                    let mut last = issued_at.lock().unwrap_or_else(|e| e.into_inner());
                    *last = (*last).max(started.elapsed().as_millis() as u64);
                })
                .await;
                (pod.pod_ref(), r)
            }
        })
        .buffer_unordered(drain.concurrency.max(1) as usize)
        .collect()
        .await;
    let issued = *issued_at.lock().unwrap_or_else(|e| e.into_inner());
    (results, issued)
}

async fn evict_one<K, F>(
    kube: &K,
    limiter: &RateLimiter,
    pod: &EvictPod,
    drain: &Drain,
    record: &F,
    mark_issued: impl Fn(),
) -> PodResult
where
    K: Kube,
    F: Fn(TimelineStep),
{
    let pref = pod.pod_ref();
    let mut retries = 0u32;
    // Phase 1: get the eviction accepted (or learn the pod is gone) before evict_by.
    loop {
        limiter.acquire().await;
        let outcome = kube.evict(pod).await;
        let refused = match outcome {
            Ok(EvictOutcome::Accepted) => {
                mark_issued();
                record(TimelineStep::EvictionIssued { pod: pref.clone() });
                break;
            }
            Ok(EvictOutcome::Gone) => {
                mark_issued();
                record(TimelineStep::Evicted { pod: pref.clone() });
                return PodResult::Gone { retries };
            }
            Ok(EvictOutcome::Blocked { message }) => message,
            Err(e) => {
                // Transient API trouble is retried like a PDB refusal; anything else too, since
                // giving up early would leave the pod to die with the instance.
                error_text(&e)
            }
        };
        retries += 1;
        let jitter = deterministic_jitter(&pod.uid, retries);
        match next_eviction_retry(&drain.backoff, retries, Utc::now(), drain.evict_by, jitter) {
            RetryDecision::RetryAt { at } => {
                tracing::debug!(pod = %pref, retry = retries, reason = %refused, "eviction refused; retrying");
                record(TimelineStep::EvictionRetried {
                    pod: pref.clone(),
                    attempt: retries,
                });
                sleep_until(at).await;
            }
            RetryDecision::GiveUp { reason } => {
                mark_issued();
                tracing::warn!(pod = %pref, ?reason, last = %refused, "eviction given up");
                return PodResult::GaveUp {
                    retries: retries - 1,
                };
            }
        }
    }
    PodResult::Accepted { retries }
}

/// Wait until the accepted pods are gone, reading the node's pods once per tick for all of them
/// (one request however many pods are draining), until the deadline.
async fn wait_gone<K, F>(
    kube: &K,
    limiter: &RateLimiter,
    drain: &Drain,
    accepted: &[&EvictPod],
    record: &F,
) -> Vec<PodRef>
where
    K: Kube,
    F: Fn(TimelineStep),
{
    let mut waiting: Vec<&EvictPod> = accepted.to_vec();
    let mut gone = Vec::new();
    while !waiting.is_empty() {
        limiter.acquire().await;
        if let Ok(present) = kube.pods_on(&drain.node).await {
            let (still, left): (Vec<&EvictPod>, Vec<&EvictPod>) = waiting
                .into_iter()
                .partition(|p| present.iter().any(|q| q.uid == p.uid));
            for p in left {
                record(TimelineStep::Evicted { pod: p.pod_ref() });
                gone.push(p.pod_ref());
            }
            waiting = still;
        }
        if waiting.is_empty()
            || Utc::now() + chrono::Duration::from_std(GONE_POLL).unwrap_or_default()
                >= drain.deadline
        {
            break;
        }
        tokio::time::sleep(GONE_POLL).await;
    }
    gone
}

fn error_text(e: &PortError) -> String {
    error_chain(e)
}

async fn sleep_until(at: DateTime<Utc>) {
    if let Ok(d) = (at - Utc::now()).to_std() {
        tokio::time::sleep(d).await;
    }
}
