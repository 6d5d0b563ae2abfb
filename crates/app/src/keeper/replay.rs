//! The replay of the fallback's queued writes, the keeper's part: each tick, once traffic is
//! fully restored (no traffic-shift lease under `SHIFT` in costop's table), the pending writes
//! go to the service through the upstream, paths side by side and each path in sequence
//! ([`costop_core::fallback::replay`]), `COSTOP_REPLAY_RATE` starts per second for at most
//! [`REPLAY_WINDOW`]. Each carries its `Idempotency-Key` (the client's, or the one generated when
//! it was queued) and `X-Costop-Receipt`: delivery is at least once, and the key makes a second
//! delivery harmless to a service that honours it. The service's answer settles the receipt; a
//! "try again" leaves the write (and the writes after it on its path) for the next tick; after
//! `COSTOP_REPLAY_MAX_ATTEMPTS` the write is dead-lettered — kept, logged at error, counted in
//! the metrics and in the tick's outcome.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use costop_core::fallback::backoff::ATTEMPT_TIMEOUT;
use costop_core::fallback::replay::{
    REPLAY_PATHS_AT_ONCE, REPLAY_WINDOW, replay_budget, replay_interval, replay_lanes,
    replay_order, traffic_restored,
};
use costop_core::fallback::{QueuedWrite, ReplayFate, headers, replay_fate};
use costop_core::record;
use futures::StreamExt;
use serde::Serialize;

use super::{Keeper, KeeperError, observe};
use crate::fallback::retry::{Attempt, within_budget};
use crate::function::{Mode, error_chain};
use crate::ports::{KeeperPorts, PortError, Records, Upstream, WriteQueue};

/// How long a settle is tried again while DynamoDB cancels it for a conflict.
const SETTLE_BUDGET: Duration = Duration::from_secs(2);

/// What the tick's replay did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplayReport {
    /// Traffic shifts still active: nothing replayed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub gated: bool,
    /// Why nothing was replayed though writes wait (no upstream configured, a dry run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<&'static str>,
    /// Receipts of the writes replayed, in order.
    pub replayed: Vec<String>,
    /// Replays that failed and will be tried again.
    pub retried: usize,
    /// Receipts of the writes dead-lettered this tick.
    pub dead_lettered: Vec<String>,
    /// Writes waiting behind a failing write on their path.
    pub blocked: usize,
    /// Writes whose outcome could not be recorded (tried again next tick).
    pub unsettled: usize,
    /// Writes pending after the replay.
    pub pending: u64,
}

impl ReplayReport {
    /// Fold one lane's report into the tick's.
    fn add(&mut self, lane: ReplayReport) {
        self.replayed.extend(lane.replayed);
        self.retried += lane.retried;
        self.dead_lettered.extend(lane.dead_lettered);
        self.blocked += lane.blocked;
        self.unsettled += lane.unsettled;
    }
}

/// Starts handed out at the replay rate to every lane: the `n`-th start at `n` intervals after
/// the first, none once [`REPLAY_WINDOW`] has gone.
struct Pacer {
    first: tokio::time::Instant,
    interval: Duration,
    next: AtomicU32,
}

impl Pacer {
    fn new(interval: Duration) -> Self {
        Pacer {
            first: tokio::time::Instant::now(),
            interval,
            next: AtomicU32::new(0),
        }
    }

    /// Wait for the next start; `false` once the window is over.
    async fn start(&self) -> bool {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let offset = self.interval.saturating_mul(n);
        if offset >= REPLAY_WINDOW {
            return false;
        }
        tokio::time::sleep_until(self.first + offset).await;
        true
    }
}

impl<W: KeeperPorts> Keeper<W> {
    /// Replay what the queue holds, if traffic is back. Only unreadable state fails the tick; a
    /// write that could not be sent or settled waits for the next.
    pub(super) async fn replay(&self, mode: Mode) -> Result<ReplayReport, KeeperError> {
        let mut report = ReplayReport::default();
        let shifts = self
            .world
            .records()
            .query(record::SHIFT_PK)
            .await
            .map_err(observe("traffic shifts"))?;
        let queue = self.world.queue();
        if !traffic_restored(shifts.len()) {
            report.gated = true;
            report.pending = queue.depth().await.map_err(observe("queue depth"))?;
            return Ok(report);
        }
        let pending = queue.pending().await.map_err(observe("queued writes"))?;
        if pending.is_empty() {
            return Ok(report);
        }
        if self.config.fallback_upstream.is_empty() {
            tracing::warn!(
                pending = pending.len(),
                "queued writes wait: no upstream is configured (COSTOP_FALLBACK_UPSTREAM)"
            );
            report.held = Some("no upstream configured");
        } else if mode == Mode::DryRun {
            report.held = Some("dry run");
        } else {
            self.replay_writes(&pending, &mut report).await;
        }
        report.pending = queue.depth().await.map_err(observe("queue depth"))?;
        Ok(report)
    }

    async fn replay_writes(&self, pending: &[QueuedWrite], report: &mut ReplayReport) {
        let rate = self.config.replay_rate;
        let order = replay_order(pending, replay_budget(rate, REPLAY_WINDOW));
        let pacer = Pacer::new(replay_interval(rate));
        let lanes: Vec<ReplayReport> = futures::stream::iter(replay_lanes(pending, &order))
            .map(|lane| self.replay_lane(pending, lane, &pacer))
            .buffer_unordered(REPLAY_PATHS_AT_ONCE)
            .collect()
            .await;
        for lane in lanes {
            report.add(lane);
        }
    }

    /// One path's writes in sequence, each when the pacer gives it a start; a write that must be
    /// tried again (or whose outcome could not be recorded) holds the rest of its path back.
    async fn replay_lane(
        &self,
        pending: &[QueuedWrite],
        lane: Vec<usize>,
        pacer: &Pacer,
    ) -> ReplayReport {
        let mut report = ReplayReport::default();
        for (k, &i) in lane.iter().enumerate() {
            if !pacer.start().await {
                break;
            }
            let w = &pending[i];
            let answer = self.send(w).await;
            let fate = replay_fate(answer, w.attempts, self.config.replay_max_attempts);
            let settled = self.settle(w, &fate, &mut report).await;
            if let Err(e) = &settled {
                tracing::warn!(receipt = %w.receipt_id, path = %w.path, error = %error_chain(e), "the replay's outcome could not be recorded; the next tick sends it again");
                report.unsettled += 1;
            }
            if settled.is_err() || matches!(fate, ReplayFate::Retry { .. }) {
                report.blocked += lane.len() - k - 1;
                break;
            }
        }
        report
    }

    /// One replay: the write as received, with its key and receipt; its status, or why none.
    async fn send(&self, w: &QueuedWrite) -> Result<u16, String> {
        let target = match &w.query {
            Some(q) => format!("{}?{q}", w.path),
            None => w.path.clone(),
        };
        let mut request = http::Request::builder()
            .method(w.method.as_str())
            .uri(target.as_str());
        for (name, value) in &w.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let request = request
            .header(headers::IDEMPOTENCY_KEY, w.idempotency_key.as_str())
            .header(headers::X_COSTOP_RECEIPT, w.receipt_id.as_str())
            .body(Bytes::from(w.body.clone()))
            .map_err(|e| format!("the stored request does not build: {e}"))?;
        self.world
            .upstream()
            .send(request, ATTEMPT_TIMEOUT)
            .await
            .map(|r| r.status().as_u16())
            .map_err(|e| error_chain(&e))
    }

    /// Record the replay's outcome, again with backoff while the table answers a transient
    /// error: DynamoDB cancels a transaction that meets another on an item (the depth shard
    /// this one counts down, a conflict other lanes make as they settle theirs), and one
    /// cancelled settle would hold its path back until the next tick.
    async fn settle(
        &self,
        w: &QueuedWrite,
        fate: &ReplayFate,
        report: &mut ReplayReport,
    ) -> Result<(), PortError> {
        let now = Utc::now();
        let tried = within_budget(
            self.config.fallback_backoff,
            SETTLE_BUDGET,
            &w.receipt_id,
            |_| async move {
                match self.settle_once(w, fate, now).await {
                    Ok(()) => Attempt::Done(()),
                    Err(e @ PortError::Transient { .. }) => Attempt::Again(e),
                    Err(e) => Attempt::Stop(e),
                }
            },
        )
        .await;
        tried.result?;
        match fate {
            ReplayFate::Replayed { status } => {
                tracing::info!(receipt = %w.receipt_id, path = %w.path, seq = w.seq, status, "queued write replayed");
                report.replayed.push(w.receipt_id.clone());
            }
            ReplayFate::Retry { attempts, error } => {
                tracing::warn!(receipt = %w.receipt_id, path = %w.path, attempts, error = %error, "replay failed; the path waits for the next tick");
                report.retried += 1;
            }
            ReplayFate::DeadLetter {
                attempts, error, ..
            } => {
                tracing::error!(receipt = %w.receipt_id, path = %w.path, seq = w.seq, attempts, error = %error, "queued write dead-lettered after its last attempt");
                report.dead_lettered.push(w.receipt_id.clone());
            }
        }
        Ok(())
    }

    async fn settle_once(
        &self,
        w: &QueuedWrite,
        fate: &ReplayFate,
        now: chrono::DateTime<Utc>,
    ) -> Result<(), PortError> {
        let queue = self.world.queue();
        match fate {
            ReplayFate::Replayed { status } => {
                queue
                    .replayed(w, *status, now, self.config.queue_receipt_days)
                    .await
            }
            ReplayFate::Retry { attempts, error } => queue.failed(w, *attempts, error).await,
            ReplayFate::DeadLetter {
                attempts,
                status,
                error,
            } => queue.dead_letter(w, *attempts, *status, error, now).await,
        }
    }
}
