//! The journal: how every function writes its bookkeeping. Entries (timeline steps, the event
//! header, the node snapshot) are pushed without waiting, stamped when they happen, encoded and written
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
    pending: Mutex<Vec<Pending>>,
}

/// An entry as pushed: encoded only when flushed, so a push costs an eviction slot nothing.
enum Pending {
    Entry(TimelineEntry),
    Item(Item),
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
        self.pending().push(Pending::Entry(entry));
    }

    /// Queue an item already in the record model (the header, the snapshot).
    pub fn push_item(&self, item: Item) {
        self.pending().push(Pending::Item(item));
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
        let mut unencodable: Option<RecordError> = None;
        for q in queued {
            match q {
                Pending::Item(item) => items.push(item),
                Pending::Entry(entry) => match entry.to_item(self.ttl_days) {
                    Ok(item) => items.push(item),
                    Err(e) => {
                        unencodable.get_or_insert(e);
                    }
                },
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

    fn pending(&self) -> std::sync::MutexGuard<'_, Vec<Pending>> {
        // A panic elsewhere while holding the lock leaves a valid Vec: keep going.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, Utc};
    use costop_core::facts::PodRef;
    use costop_core::record::{self, TimelineStep};

    use super::*;
    use crate::fakes::FakeRecords;

    #[tokio::test]
    async fn pushed_entries_are_written_when_flushed_and_only_once() {
        let records = FakeRecords::default();
        let journal = Journal::new(&records, 30);
        let t0 = Utc::now();
        for i in 0..30 {
            journal.push(TimelineEntry {
                interruption_id: "iid".into(),
                at: t0 + TimeDelta::milliseconds(i),
                step: TimelineStep::Evicted {
                    pod: PodRef {
                        namespace: "ns".into(),
                        name: format!("pod-{i}"),
                    },
                },
            });
        }
        journal.push_item(record::header_key("iid").to_item());
        assert_eq!(journal.len(), 31);
        assert!(
            records.items.lock().unwrap().is_empty(),
            "nothing before the flush"
        );
        journal.flush().await.expect("written");
        assert!(journal.is_empty());
        assert_eq!(records.items.lock().unwrap().len(), 31);
        // A flush with nothing pushed writes nothing more.
        journal.flush().await.expect("nothing to write");
        assert_eq!(records.items.lock().unwrap().len(), 31);
    }
}
