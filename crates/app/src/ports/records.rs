//! The records port: costop's DynamoDB table, in the core's record model.

use std::future::Future;

use chrono::{DateTime, Utc};
use costop_core::plan::action::RecordEvent;
use costop_core::record::{Item, Key, StandbyLease, Update};

use super::{Claim, LeaseClaim, PortError};

/// The DynamoDB table, in the core's record model.
pub trait Records: Send + Sync {
    fn get(&self, key: &Key) -> impl Future<Output = Result<Option<Item>, PortError>> + Send;
    fn put(&self, item: Item) -> impl Future<Output = Result<(), PortError>> + Send;
    /// The conditional dedupe write of [`costop_core::record::dedupe_put`].
    fn claim(
        &self,
        action: &RecordEvent,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Claim, PortError>> + Send;
    fn update(&self, update: &Update) -> impl Future<Output = Result<(), PortError>> + Send;
    /// Delete an item (absent is fine).
    fn delete(&self, key: &Key) -> impl Future<Output = Result<(), PortError>> + Send;
    /// Every item of a partition, in sort-key order.
    fn query(&self, pk: &str) -> impl Future<Output = Result<Vec<Item>, PortError>> + Send;
    /// Interruption headers of an instance (GSI1), oldest first.
    fn query_instance(
        &self,
        instance_id: &str,
    ) -> impl Future<Output = Result<Vec<Item>, PortError>> + Send;
    /// Write several unconditional items, in any order. The default sends them one by one, a few
    /// at a time; the DynamoDB adapter batches them (25 per `BatchWriteItem`).
    fn put_many(&self, items: Vec<Item>) -> impl Future<Output = Result<(), PortError>> + Send {
        use futures::{StreamExt, TryStreamExt};
        futures::stream::iter(items)
            .map(|item| self.put(item))
            .buffer_unordered(PUT_MANY_IN_FLIGHT)
            .try_collect()
    }
    /// The conditional standby lease write of [`costop_core::record::standby_lease_put`]; a
    /// refusal says who holds the lease, without another read.
    fn lease_standby(
        &self,
        lease: &StandbyLease,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<LeaseClaim, PortError>> + Send;
    /// [`costop_core::record::standby_lease_release`].
    fn release_standby(&self, standby: &str) -> impl Future<Output = Result<(), PortError>> + Send {
        let update = costop_core::record::standby_lease_release(standby);
        async move { self.update(&update).await }
    }
}

/// Items in flight at once for the default [`Records::put_many`].
pub const PUT_MANY_IN_FLIGHT: usize = 16;
