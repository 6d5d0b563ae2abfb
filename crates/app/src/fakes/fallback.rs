//! The fallback's ports in memory: [`FakeQueue`], the queue table's semantics on plain data
//! (all-or-nothing queueing with the depth limit and idempotency keys, writes ordered on their
//! path by arrival, settling, dead letters), and [`FakeUpstream`], an upstream answering from a script and
//! recording every request.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use costop_core::fallback::record::arrival_seq;
use costop_core::fallback::{QueuedWrite, Receipt, ReceiptState};

use super::lock;
use crate::ports::{Enqueued, PortError, Upstream, WriteQueue};

#[derive(Default)]
struct QueueState {
    pending: BTreeMap<(String, u64), QueuedWrite>,
    dead: BTreeMap<(String, u64), QueuedWrite>,
    receipts: HashMap<String, Receipt>,
    keys: HashMap<String, String>,
    conflicts: u32,
}

/// The write queue in memory.
#[derive(Clone, Default)]
pub struct FakeQueue {
    state: Arc<Mutex<QueueState>>,
}

/// A transaction cancelled for a conflict, while any are asked for.
fn conflict(s: &mut QueueState, op: &'static str) -> Result<(), PortError> {
    if s.conflicts > 0 {
        s.conflicts -= 1;
        return Err(PortError::Transient {
            op,
            source: "TransactionConflict".into(),
        });
    }
    Ok(())
}

/// The write was settled meanwhile (the table's `attribute_exists` condition failing).
fn gone(op: &'static str, _receipt: &str) -> PortError {
    PortError::Conflict { op }
}

impl FakeQueue {
    /// The next `n` transactions (queueing a write or settling one) are cancelled as DynamoDB
    /// cancels a transaction that meets another on the same item (`TransactionConflict`):
    /// nothing changed, a transient error.
    /// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html#transaction-conflict-handling>
    pub fn conflict_next(&self, n: u32) {
        lock(&self.state).conflicts = n;
    }

    /// Items the table would hold: pending and dead writes, receipts and idempotency keys
    /// (the depth counter is not counted).
    pub fn items(&self) -> usize {
        let s = lock(&self.state);
        s.pending.len() + s.dead.len() + s.receipts.len() + s.keys.len()
    }
}

impl WriteQueue for FakeQueue {
    async fn enqueue(&self, mut write: QueuedWrite, max_depth: u64) -> Result<Enqueued, PortError> {
        let mut s = lock(&self.state);
        conflict(&mut s, "queue write")?;
        // Its arrival time, or the next nanosecond free on its path, as the table's is.
        write.seq = arrival_seq(write.queued_at);
        while s.pending.contains_key(&(write.path.clone(), write.seq)) {
            write.seq += 1;
        }
        if let Some(r) = s
            .keys
            .get(&write.idempotency_key)
            .and_then(|id| s.receipts.get(id))
        {
            return Ok(Enqueued::Duplicate(r.clone()));
        }
        if s.pending.len() as u64 >= max_depth {
            return Ok(Enqueued::Full);
        }
        let receipt = Receipt::queued(&write);
        s.keys
            .insert(write.idempotency_key.clone(), write.receipt_id.clone());
        s.receipts.insert(receipt.id.clone(), receipt.clone());
        s.pending.insert((write.path.clone(), write.seq), write);
        Ok(Enqueued::Queued(receipt))
    }

    async fn receipt(&self, id: &str) -> Result<Option<Receipt>, PortError> {
        Ok(lock(&self.state).receipts.get(id).cloned())
    }

    async fn pending(&self) -> Result<Vec<QueuedWrite>, PortError> {
        Ok(lock(&self.state).pending.values().cloned().collect())
    }

    async fn dead_letters(&self) -> Result<Vec<QueuedWrite>, PortError> {
        Ok(lock(&self.state).dead.values().cloned().collect())
    }

    async fn depth(&self) -> Result<u64, PortError> {
        Ok(lock(&self.state).pending.len() as u64)
    }

    async fn replayed(
        &self,
        write: &QueuedWrite,
        status: u16,
        now: DateTime<Utc>,
        _receipt_days: u32,
    ) -> Result<(), PortError> {
        let mut s = lock(&self.state);
        conflict(&mut s, "settle replayed write")?;
        let key = (write.path.clone(), write.seq);
        let w = s
            .pending
            .remove(&key)
            .ok_or_else(|| gone("settle replayed write", &write.receipt_id))?;
        if let Some(r) = s.receipts.get_mut(&w.receipt_id) {
            r.state = ReceiptState::Replayed;
            r.status = Some(status);
            r.attempts = write.attempts + 1;
            r.settled_at = Some(now);
        }
        Ok(())
    }

    async fn failed(
        &self,
        write: &QueuedWrite,
        attempts: u32,
        error: &str,
    ) -> Result<(), PortError> {
        let mut s = lock(&self.state);
        conflict(&mut s, "record failed replay")?;
        let w = s
            .pending
            .get_mut(&(write.path.clone(), write.seq))
            .ok_or_else(|| gone("record failed replay", &write.receipt_id))?;
        w.attempts = attempts;
        w.last_error = Some(error.to_owned());
        Ok(())
    }

    async fn dead_letter(
        &self,
        write: &QueuedWrite,
        attempts: u32,
        status: Option<u16>,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), PortError> {
        let mut s = lock(&self.state);
        conflict(&mut s, "dead-letter write")?;
        let key = (write.path.clone(), write.seq);
        let mut w = s
            .pending
            .remove(&key)
            .ok_or_else(|| gone("dead-letter write", &write.receipt_id))?;
        w.attempts = attempts;
        w.last_error = Some(error.to_owned());
        if let Some(r) = s.receipts.get_mut(&w.receipt_id) {
            r.state = ReceiptState::DeadLettered;
            r.status = status;
            r.attempts = attempts;
            r.settled_at = Some(now);
            r.last_error = Some(error.to_owned());
        }
        s.dead.insert(key, w);
        Ok(())
    }
}

/// How the fake upstream answers one request: a response, or no answer (a `Transient` error).
pub type UpstreamScript =
    Arc<dyn Fn(&http::Request<Bytes>) -> Option<http::Response<Bytes>> + Send + Sync>;

/// An upstream answering from a script; every request it received is kept.
#[derive(Clone)]
pub struct FakeUpstream {
    script: Arc<Mutex<UpstreamScript>>,
    /// Every request, in order.
    pub requests: Arc<Mutex<Vec<http::Request<Bytes>>>>,
}

impl Default for FakeUpstream {
    /// Answers 200 with an empty body.
    fn default() -> Self {
        FakeUpstream::answering(|_| Some(http::Response::new(Bytes::new())))
    }
}

impl FakeUpstream {
    /// An upstream that answers as `script` says.
    pub fn answering(
        script: impl Fn(&http::Request<Bytes>) -> Option<http::Response<Bytes>> + Send + Sync + 'static,
    ) -> Self {
        FakeUpstream {
            script: Arc::new(Mutex::new(Arc::new(script))),
            requests: Arc::default(),
        }
    }

    /// Answer from now on as `script` says.
    pub fn set(
        &self,
        script: impl Fn(&http::Request<Bytes>) -> Option<http::Response<Bytes>> + Send + Sync + 'static,
    ) {
        *lock(&self.script) = Arc::new(script);
    }

    /// The requests received so far.
    pub fn received(&self) -> Vec<http::Request<Bytes>> {
        lock(&self.requests).clone()
    }
}

/// A response with `status` and no body.
pub fn status(status: u16) -> http::Response<Bytes> {
    let mut r = http::Response::new(Bytes::new());
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    r
}

impl Upstream for FakeUpstream {
    async fn send(
        &self,
        request: http::Request<Bytes>,
        _timeout: Duration,
    ) -> Result<http::Response<Bytes>, PortError> {
        let script = lock(&self.script).clone();
        let answer = script(&request);
        lock(&self.requests).push(request);
        answer.ok_or_else(|| PortError::Transient {
            op: "upstream request",
            source: "connection refused (scripted)".into(),
        })
    }
}
