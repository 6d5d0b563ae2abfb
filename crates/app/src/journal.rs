//! The journal: how every function writes its bookkeeping. Entries (timeline steps, the event
//! header, the node snapshot) are pushed without waiting, stamped when they happen, and written
//! by [`Journal::flush`] in batches through [`Records::put_many`] (the DynamoDB adapter sends
//! 25 per `BatchWriteItem`). Whoever flushes decides what a failed write means: the handler
//! fails the delivery, the drain and the replacement watch log it and go on.

use std::sync::Mutex;

use costop_core::record::{Item, RecordError, TimelineEntry};

use crate::ports::{PortError, Records};

/// Pushed entries not yet written, over one table.
pub struct Journal<'r, R> {
    records: &'r R,
    ttl_days: u32,
    pending: Mutex<Vec<Result<Item, RecordError>>>,
}

impl<'r, R: Records> Journal<'r, R> {
    /// An empty journal writing to `records`, with records expiring after `ttl_days`.
    pub fn new(records: &'r R, ttl_days: u32) -> Self {
        Self {
            records,
            ttl_days,
            pending: Mutex::new(Vec::new()),
        }
    }

    /// Queue a timeline entry (never waits: an eviction slot or a poll is not held up by a
    /// write's latency).
    pub fn push(&self, entry: TimelineEntry) {
        let item = entry.to_item(self.ttl_days);
        self.pending().push(item);
    }

    /// Queue an item already in the record model (the header, the snapshot).
    pub fn push_item(&self, item: Item) {
        self.pending().push(Ok(item));
    }

    /// Write everything pushed so far. Concurrent flushes write disjoint entries. The first
    /// failure is returned after every batch was tried; an entry that could not be encoded is a
    /// permanent failure (a bug), the others were written.
    pub async fn flush(&self) -> Result<(), PortError> {
        let queued = std::mem::take(&mut *self.pending());
        if queued.is_empty() {
            return Ok(());
        }
        let mut items = Vec::with_capacity(queued.len());
        let mut unencodable = None;
        for q in queued {
            match q {
                Ok(item) => items.push(item),
                Err(e) => {
                    unencodable.get_or_insert(e);
                }
            }
        }
        let written = if items.is_empty() {
            Ok(())
        } else {
            self.records.put_many(items).await
        };
        match unencodable {
            Some(e) => Err(PortError::Permanent {
                op: "encode timeline entry",
                source: Box::new(e),
            }),
            None => written,
        }
    }

    /// Entries pushed and not yet flushed.
    pub fn len(&self) -> usize {
        self.pending().len()
    }

    /// Nothing waits to be written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Vec<Result<Item, RecordError>>> {
        // A panic elsewhere while holding the lock leaves a valid Vec: keep going.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}
