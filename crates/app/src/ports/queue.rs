//! The write-queue port: the fallback's durable queue of writes, their receipts and dead letters
//! (the queue table, see [`costop_core::fallback::record`]). Queueing is all or nothing; so is
//! settling a write after its replay.

use std::future::Future;

use chrono::{DateTime, Utc};
use costop_core::fallback::{QueuedWrite, Receipt};

use super::PortError;

/// What became of a write offered to the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    /// Stored: its receipt.
    Queued(Receipt),
    /// Its idempotency key was queued before: that write's receipt (nothing stored now).
    Duplicate(Receipt),
    /// The queue holds its maximum: nothing stored.
    Full,
}

/// The durable queue of writes.
pub trait WriteQueue: Send + Sync {
    /// Queue `write` unless the queue already holds `max_depth` writes or the write's
    /// idempotency key was queued before. Its `seq` is set from its `queued_at` (nanoseconds,
    /// the next one free on its path when another write of the path holds it), so a path's
    /// writes replay in the order they arrived.
    fn enqueue(
        &self,
        write: QueuedWrite,
        max_depth: u64,
    ) -> impl Future<Output = Result<Enqueued, PortError>> + Send;
    /// A receipt by id.
    fn receipt(&self, id: &str) -> impl Future<Output = Result<Option<Receipt>, PortError>> + Send;
    /// Every pending write, whole, by path and sequence.
    fn pending(&self) -> impl Future<Output = Result<Vec<QueuedWrite>, PortError>> + Send;
    /// Every dead-lettered write, by path and sequence.
    fn dead_letters(&self) -> impl Future<Output = Result<Vec<QueuedWrite>, PortError>> + Send;
    /// Pending writes (the depth counter).
    fn depth(&self) -> impl Future<Output = Result<u64, PortError>> + Send;
    /// The service answered the replay for good with `status`: settle the receipt, drop the
    /// write; the receipt stays readable `receipt_days`.
    fn replayed(
        &self,
        write: &QueuedWrite,
        status: u16,
        now: DateTime<Utc>,
        receipt_days: u32,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
    /// The replay failed and will be tried again: record the attempts and why.
    fn failed(
        &self,
        write: &QueuedWrite,
        attempts: u32,
        error: &str,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
    /// Out of attempts: move the write to the dead letters, settle its receipt.
    fn dead_letter(
        &self,
        write: &QueuedWrite,
        attempts: u32,
        status: Option<u16>,
        error: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}
