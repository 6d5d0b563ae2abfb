//! The replacement watch: after a standby started, the node's replacement pods (same owner,
//! created after the warning, at most as many per owner as were on the node) get the standby
//! toleration as they appear, until every owner's quota is met or the watch window ends. Until
//! the standby's node has been seen fit for them (a fresh boot registers it only now; a patch
//! of the start may have lost a race), each poll also reads that node and clears it of costop's
//! cordon, taints and label.

use std::time::Duration;

use chrono::{DateTime, Utc};
use costop_core::record::{self, TimelineEntry, TimelineStep};
use costop_core::standby::{self, ReplacementSpec, ReplacementTracker};
use futures::StreamExt;

use super::start::StandbyNode;
use super::{BUDGET_RESERVE, Keeper};
use crate::function::error_chain;
use crate::journal::Journal;
use crate::ports::{KeeperPorts, Kube, KubeOf, Records};
use crate::ratelimit::RateLimiter;

/// How often the pending pods are read while replacements are expected.
const POLL: Duration = Duration::from_millis(1000);
/// How long the replacement watch waits for the interruption function's node snapshot before
/// trusting the keeper's own count of the node's pods alone (it is written within a second of
/// that function's start; it never comes when that function did not act on the node).
const SNAPSHOT_WAIT: Duration = Duration::from_secs(15);
/// Toleration patches in flight at once (each poll; the QPS limit applies as well).
const TOLERATE_IN_FLIGHT: usize = 8;

impl<W: KeeperPorts> Keeper<W> {
    /// Give replacement pods the toleration as they appear, until every owner's quota is
    /// met and the standby's node is settled, or the watch window (or the invocation's budget)
    /// ends. Each poll patches its pods [`TOLERATE_IN_FLIGHT`] at a time under the client-side
    /// QPS limit and writes their timeline entries in one batch. Errors are logged and the next
    /// poll tries again: a missed pod only means it waits for other capacity.
    pub(super) async fn tolerate(
        &self,
        kube: &KubeOf<W>,
        spec: &ReplacementSpec,
        mut node: Option<StandbyNode<'_>>,
        budget_end: Option<DateTime<Utc>>,
    ) -> usize {
        let until = budget_end.map_or(spec.watch_until, |b| {
            spec.watch_until.min(b - BUDGET_RESERVE)
        });
        let limiter = RateLimiter::new(self.config.kube_qps, self.config.kube_burst);
        let mut tracker = ReplacementTracker::new(spec.clone());
        let began = std::time::Instant::now();
        let mut snapshot_seen = false;
        // One batch of timeline entries per poll; a failed write is logged, the watch goes on.
        let journal = Journal::new(self.world.records(), self.config.timeline_ttl_days);
        loop {
            if !snapshot_seen {
                snapshot_seen = self.merge_snapshot(&mut tracker).await;
            }
            if let Some(n) = node.as_mut().filter(|n| !n.settled) {
                self.settle_standby_node(kube, n).await;
            }
            // Replacements another delivery of the interruption tolerated may be bound already,
            // out of the pending list: they count where they run.
            if !tracker.satisfied()
                && let Some(name) = node.as_ref().and_then(|n| n.name.as_deref())
            {
                match kube.pods_on(name).await {
                    Ok(pods) => tracker.adopt(&pods),
                    Err(e) => {
                        tracing::warn!(node = %name, error = %error_chain(&e), "could not list the pods on the standby")
                    }
                }
            }
            match kube.unbound_pods().await {
                Ok(pending) => {
                    tracker.adopt(&pending);
                    let limiter = &limiter;
                    let results: Vec<_> = futures::stream::iter(tracker.next(&pending))
                        .map(|patch| async move {
                            limiter.acquire().await;
                            let result = kube.tolerate(&patch).await;
                            (patch, result)
                        })
                        .buffer_unordered(TOLERATE_IN_FLIGHT)
                        .collect()
                        .await;
                    for (patch, result) in results {
                        match result {
                            Ok(true) => {
                                tracker.applied(&patch);
                                journal.push(TimelineEntry {
                                    interruption_id: spec.interruption_id.clone(),
                                    at: Utc::now(),
                                    step: TimelineStep::ReplacementTolerated {
                                        pod: costop_core::facts::PodRef {
                                            namespace: patch.namespace,
                                            name: patch.name,
                                        },
                                    },
                                });
                            }
                            // Bound, gone or changed since the list: the next poll sees it as it is.
                            Ok(false) => {}
                            Err(e) => {
                                tracing::warn!(pod = %format!("{}/{}", patch.namespace, patch.name), error = %error_chain(&e), "could not tolerate a replacement")
                            }
                        }
                    }
                    let entries = journal.len();
                    if let Err(e) = journal.flush().await {
                        tracing::warn!(entries, error = %error_chain(&e), "could not record tolerated replacements");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %error_chain(&e), "could not list pending pods")
                }
            }
            // Until the interruption function's count is in (or it is clearly not coming),
            // "every quota met" may only mean the keeper's own count missed gone pods.
            let counted = snapshot_seen || began.elapsed() >= SNAPSHOT_WAIT;
            let node_settled = node.as_ref().is_none_or(|n| n.settled);
            if (tracker.satisfied() && counted && node_settled) || Utc::now() >= until {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        tracing::info!(interruption_id = %spec.interruption_id, tolerated = tracker.tolerated(), satisfied = tracker.satisfied(), "replacement watch over");
        tracker.tolerated()
    }

    /// One look at the standby's node: settled once it is seen needing nothing or is cleared;
    /// not while it has not registered or the clearing failed (the next poll looks again).
    async fn settle_standby_node(&self, kube: &KubeOf<W>, standby: &mut StandbyNode<'_>) {
        let Some(node) = self.standby_node(kube, standby.instance).await else {
            return;
        };
        standby.settled = match standby::clear_node(&node, &self.config) {
            None => true,
            Some(patch) => self.clear_standby_node(kube, &patch).await,
        };
        standby.name = Some(node.name);
    }

    /// Raise the tracker's quotas to the interruption function's snapshot of the node, taken
    /// before its drain: pods evicted and gone before the keeper listed the node still count.
    /// Whether the snapshot was there (a bad one counts as seen: it will not get better).
    async fn merge_snapshot(&self, tracker: &mut ReplacementTracker) -> bool {
        let key = record::snapshot_key(&tracker.spec().interruption_id);
        match self.world.records().get(&key).await {
            Ok(Some(item)) => {
                match record::facts_from_snapshot(&item) {
                    Ok(facts) => tracker.merge_snapshot(&facts),
                    Err(e) => {
                        tracing::warn!(error = %error_chain(&e), "unreadable node snapshot; the keeper's own count stands")
                    }
                }
                true
            }
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(error = %error_chain(&e), "could not read the node snapshot");
                false
            }
        }
    }
}
