//! Drain policy: which pods are evicted and which are skipped, how long each
//! may take to stop, how evictions refused by a PodDisruptionBudget (HTTP
//! 429) are retried, and what happens to pods still present at the deadline.
//!
//! These are pure helpers the planner uses and the shell's executor calls
//! again while draining (it owns the clock and the randomness and passes
//! them in).

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::facts::{PodFacts, PodRef};

/// The shortest grace period costop asks for. Zero would mean "delete
/// without waiting for the kubelet", which skips preStop hooks; one second
/// still lets the kubelet send SIGTERM.
pub const MIN_GRACE_SECONDS: i64 = 1;

/// Why a pod on the node is not evicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// DaemonSet pods tolerate cordons and would be recreated on the node.
    #[serde(rename = "daemonset")]
    DaemonSet,
    /// Mirror pods belong to the kubelet's static pods; the API cannot evict them.
    Mirror,
    /// Succeeded/Failed pods hold no workload.
    Finished,
    /// Already has a deletionTimestamp; evicting again changes nothing.
    AlreadyTerminating,
}

/// What drain does with one pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PodDisposition {
    /// Evict it through the Eviction API (PDBs respected).
    Evict,
    /// Leave it.
    Skip(SkipReason),
}

/// Classifies a pod. Order matters only for the reported reason.
pub fn classify_pod(pod: &PodFacts) -> PodDisposition {
    if pod.is_mirror() {
        PodDisposition::Skip(SkipReason::Mirror)
    } else if pod.is_daemonset() {
        PodDisposition::Skip(SkipReason::DaemonSet)
    } else if pod.is_finished() {
        PodDisposition::Skip(SkipReason::Finished)
    } else if pod.is_terminating() {
        PodDisposition::Skip(SkipReason::AlreadyTerminating)
    } else {
        PodDisposition::Evict
    }
}

/// The grace period to request when evicting a pod at `now`, so that it has
/// stopped `margin` before `deadline`: `min(pod_grace, deadline − margin −
/// now)`, never below [`MIN_GRACE_SECONDS`]. When the deadline is already
/// (nearly) here the pod still gets the minimum rather than an error: a fast
/// eviction lets its controller reschedule it elsewhere immediately.
pub fn grace_cap(
    pod_grace_seconds: i64,
    now: DateTime<Utc>,
    deadline: DateTime<Utc>,
    margin: TimeDelta,
) -> i64 {
    let budget = (deadline - margin - now).num_seconds();
    pod_grace_seconds.min(budget).max(MIN_GRACE_SECONDS)
}

/// Retry policy for evictions refused with 429 (PDB would be violated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackoffPolicy {
    /// First delay, milliseconds.
    pub base_ms: u64,
    /// Delay ceiling, milliseconds.
    pub max_ms: u64,
    /// Attempts per pod, the first one included.
    pub max_attempts: u32,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        BackoffPolicy {
            base_ms: 250,
            max_ms: 5_000,
            max_attempts: 60,
        }
    }
}

impl BackoffPolicy {
    /// Delay before retry number `retry` (1 = the first retry), or `None`
    /// once attempts are exhausted. Exponential (×2) up to `max_ms`, with
    /// "equal jitter": half the delay is fixed, half is scaled by `jitter`
    /// (a value in `[0, 1)`, clamped). Equal jitter keeps a floor so a
    /// hot PDB is not hammered, while spreading many pods' retries apart.
    pub fn delay(&self, retry: u32, jitter: f64) -> Option<Duration> {
        if retry == 0 || retry >= self.max_attempts {
            return None;
        }
        let exp = self
            .base_ms
            .saturating_mul(1u64.checked_shl(retry - 1).unwrap_or(u64::MAX));
        let capped = exp.min(self.max_ms);
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let half = capped / 2;
        // Lossless enough: delays are far below 2^52 ms.
        let jittered = half + ((capped - half) as f64 * jitter) as u64;
        Some(Duration::from_millis(jittered))
    }

    /// The whole schedule (for docs, tests and dry-run output).
    pub fn schedule(&self, jitter: f64) -> Vec<Duration> {
        (1..self.max_attempts)
            .filter_map(|r| self.delay(r, jitter))
            .collect()
    }
}

/// What to do after an eviction was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum RetryDecision {
    /// Try again at this time.
    RetryAt {
        /// When.
        at: DateTime<Utc>,
    },
    /// Stop retrying this pod; it is reported at the deadline.
    GiveUp {
        /// Why.
        reason: GiveUpReason,
    },
}

/// Why retries stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GiveUpReason {
    /// `max_attempts` reached.
    AttemptsExhausted,
    /// The next attempt would start after `evict_by`.
    DeadlineReached,
}

/// After refusal number `retry` (1 = the first attempt was refused), when
/// to try again — or give up if that would be past `evict_by`.
pub fn next_eviction_retry(
    policy: &BackoffPolicy,
    retry: u32,
    now: DateTime<Utc>,
    evict_by: DateTime<Utc>,
    jitter: f64,
) -> RetryDecision {
    let Some(delay) = policy.delay(retry, jitter) else {
        return RetryDecision::GiveUp {
            reason: GiveUpReason::AttemptsExhausted,
        };
    };
    let at = TimeDelta::from_std(delay)
        .ok()
        .and_then(|d| now.checked_add_signed(d));
    match at {
        Some(at) if at <= evict_by => RetryDecision::RetryAt { at },
        _ => RetryDecision::GiveUp {
            reason: GiveUpReason::DeadlineReached,
        },
    }
}

/// A jitter value in `[0, 1)` derived from `seed` (e.g. the pod UID) and the
/// retry number, for executors that want reproducible runs (the bed, tests).
/// FNV-1a: tiny, stable across platforms and Rust versions.
pub fn deterministic_jitter(seed: &str, retry: u32) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.bytes().chain(retry.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// What to do with pods still on the node when the deadline is reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadlineOutcome {
    /// Pods still present (reported in the timeline and metrics).
    pub remaining: Vec<PodRef>,
    /// Pods to delete now, bypassing PDBs (empty unless configured).
    pub force_delete: Vec<PodRef>,
}

impl DeadlineOutcome {
    /// Nothing was left: the drain made it.
    pub fn is_clean(&self) -> bool {
        self.remaining.is_empty()
    }
}

/// Decides the deadline report. Force deletion is opt-in because it
/// violates PodDisruptionBudgets; by default costop only reports, since EC2
/// will take the pods down anyway and the record says which ones.
pub fn at_deadline(remaining: &[PodRef], force_delete_at_deadline: bool) -> DeadlineOutcome {
    let mut remaining = remaining.to_vec();
    remaining.sort();
    remaining.dedup();
    let force_delete = if force_delete_at_deadline {
        remaining.clone()
    } else {
        Vec::new()
    };
    DeadlineOutcome {
        remaining,
        force_delete,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn the_backoff_doubles_up_to_the_ceiling() {
        let p = BackoffPolicy {
            base_ms: 100,
            max_ms: 1000,
            max_attempts: 7,
        };
        let full: Vec<u128> = p.schedule(1.0).iter().map(Duration::as_millis).collect();
        assert_eq!(full, vec![100, 200, 400, 800, 1000, 1000]);
        let floor: Vec<u128> = p.schedule(0.0).iter().map(Duration::as_millis).collect();
        assert_eq!(floor, vec![50, 100, 200, 400, 500, 500]);
        assert_eq!(p.delay(7, 0.5), None);
        assert_eq!(p.delay(0, 0.5), None);
    }

    #[test]
    fn backoff_never_overflows() {
        let p = BackoffPolicy {
            base_ms: u64::MAX / 2,
            max_ms: u64::MAX,
            max_attempts: u32::MAX,
        };
        assert!(p.delay(200, 0.9).is_some());
        assert!(p.delay(3, f64::NAN).is_some());
    }

    #[test]
    fn retries_stop_at_the_evict_by_time() {
        let p = BackoffPolicy {
            base_ms: 1000,
            max_ms: 8000,
            max_attempts: 100,
        };
        let now = t("2025-01-01T00:00:00Z");
        let by = t("2025-01-01T00:00:03Z");
        assert_eq!(
            next_eviction_retry(&p, 1, now, by, 1.0),
            RetryDecision::RetryAt {
                at: t("2025-01-01T00:00:01Z")
            }
        );
        assert_eq!(
            next_eviction_retry(&p, 3, now, by, 1.0),
            RetryDecision::GiveUp {
                reason: GiveUpReason::DeadlineReached
            }
        );
        let few = BackoffPolicy {
            max_attempts: 2,
            ..p
        };
        assert_eq!(
            next_eviction_retry(&few, 2, now, by, 0.0),
            RetryDecision::GiveUp {
                reason: GiveUpReason::AttemptsExhausted
            }
        );
    }

    #[test]
    fn deterministic_jitter_is_stable_and_in_range() {
        let a = deterministic_jitter("uid-1", 1);
        assert_eq!(a, deterministic_jitter("uid-1", 1));
        assert_ne!(a, deterministic_jitter("uid-1", 2));
        for r in 0..1000 {
            let j = deterministic_jitter("x", r);
            assert!((0.0..1.0).contains(&j));
        }
    }

    #[test]
    fn grace_is_the_pods_own_when_there_is_time() {
        let now = t("2025-01-01T00:00:00Z");
        assert_eq!(
            grace_cap(30, now, t("2025-01-01T00:02:00Z"), TimeDelta::seconds(15)),
            30
        );
    }

    #[test]
    fn grace_never_drops_below_the_minimum() {
        let now = t("2025-01-01T00:05:00Z");
        assert_eq!(
            grace_cap(30, now, t("2025-01-01T00:02:00Z"), TimeDelta::seconds(15)),
            MIN_GRACE_SECONDS
        );
        assert_eq!(
            grace_cap(0, now, t("2025-01-01T01:00:00Z"), TimeDelta::zero()),
            MIN_GRACE_SECONDS
        );
    }

    #[test]
    fn the_deadline_report_force_deletes_only_when_configured() {
        let pods = vec![
            PodRef {
                namespace: "b".into(),
                name: "x".into(),
            },
            PodRef {
                namespace: "a".into(),
                name: "y".into(),
            },
        ];
        let report = at_deadline(&pods, false);
        assert_eq!(report.remaining[0].namespace, "a");
        assert!(report.force_delete.is_empty());
        assert_eq!(at_deadline(&pods, true).force_delete.len(), 2);
        assert!(at_deadline(&[], true).is_clean());
    }
}
