//! The fallback's write queue in its DynamoDB table (`COSTOP_QUEUE_TABLE`): [`DynamoQueue`]
//! implements the `WriteQueue` port with the core's keys and operations
//! ([`costop_core::fallback::record`]). Queueing, replaying and dead-lettering are one
//! `TransactWriteItems` each, so a write is wholly queued or not at all; a write's place on its
//! path is its arrival time, so queueing needs no other call. A write is counted on a depth
//! shard drawn at random. A cancelled transaction says why per operation
//! (`CancellationReasons`): a failed condition on the depth shard is a full shard (the write
//! moves to a shard with room, or the queue is full when the shards' sum is at the maximum), on
//! the idempotency key a duplicate, on the write's item another write of its path on the same
//! nanosecond (it takes the next), on a pending write being settled a write settled meanwhile;
//! a conflict with another transaction is transient.
//! (<https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html>)

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem, Update};
use chrono::{DateTime, Utc};
use costop_app::ports::{Enqueued, PortError, WriteQueue};
use costop_core::fallback::record::{
    self as q, DEAD_PK, ENQUEUE_DEPTH_OP, ENQUEUE_KEY_OP, ENQUEUE_RECEIPT_OP, ENQUEUE_WRITE_OP, Op,
    PENDING_PK, QUEUE_PK,
};
use costop_core::fallback::{QueuedWrite, Receipt};
use costop_core::record::{Item, Key};

use super::{item_to_sdk, sdk_error};

/// The reason code of an operation whose condition failed.
const CONDITION_FAILED: &str = "ConditionalCheckFailed";

/// Times a write is offered again after a condition sent it to another depth shard (its own
/// full: writers racing for the last places) or to the next nanosecond of its path, before the
/// queue is called full.
const MOVES: usize = 3;

/// The queue table through the SDK.
#[derive(Clone, Debug)]
pub struct DynamoQueue {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

/// An operation the SDK refused to build (a bug in the core's shapes).
fn build_error(op: &'static str) -> impl Fn(aws_sdk_dynamodb::error::BuildError) -> PortError {
    move |e| PortError::Permanent {
        op,
        source: Box::new(e),
    }
}

fn corrupt(op: &'static str, e: costop_core::record::RecordError) -> PortError {
    PortError::Permanent {
        op,
        source: Box::new(e),
    }
}

/// What a transaction did.
enum Transacted {
    Done,
    /// Cancelled: which operations' conditions failed.
    ConditionFailed(Vec<usize>),
}

impl DynamoQueue {
    /// The queue in `table`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoQueue {
            client,
            table: table.into(),
        }
    }

    fn transact_item(&self, op: &'static str, o: Op) -> Result<TransactWriteItem, PortError> {
        let fail = build_error(op);
        Ok(match o {
            Op::Put { item, condition } => TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(item_to_sdk(&item)))
                        .set_condition_expression(condition.map(str::to_owned))
                        .build()
                        .map_err(&fail)?,
                )
                .build(),
            Op::Update {
                key,
                expression,
                condition,
                names,
                values,
            } => TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name(&self.table)
                        .set_key(Some(item_to_sdk(&key.to_item())))
                        .update_expression(expression)
                        .set_condition_expression(condition)
                        .set_expression_attribute_names(
                            (!names.is_empty()).then(|| names.into_iter().collect()),
                        )
                        .set_expression_attribute_values(
                            (!values.is_empty()).then(|| item_to_sdk(&values)),
                        )
                        .build()
                        .map_err(&fail)?,
                )
                .build(),
            Op::Delete { key, condition } => TransactWriteItem::builder()
                .delete(
                    Delete::builder()
                        .table_name(&self.table)
                        .set_key(Some(item_to_sdk(&key.to_item())))
                        .set_condition_expression(condition.map(str::to_owned))
                        .build()
                        .map_err(&fail)?,
                )
                .build(),
        })
    }

    /// One transaction of `ops`.
    async fn transact(&self, op: &'static str, ops: Vec<Op>) -> Result<Transacted, PortError> {
        let items = ops
            .into_iter()
            .map(|o| self.transact_item(op, o))
            .collect::<Result<Vec<_>, _>>()?;
        // iam: dynamodb:PutItem, dynamodb:UpdateItem, dynamodb:DeleteItem (per operation)
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Transacted::Done),
            Err(e) => match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                    let failed: Vec<usize> = c
                        .cancellation_reasons()
                        .iter()
                        .enumerate()
                        .filter(|(_, r)| r.code() == Some(CONDITION_FAILED))
                        .map(|(i, _)| i)
                        .collect();
                    if failed.is_empty() {
                        // Cancelled for a conflict with another transaction or throttling.
                        Err(PortError::Transient {
                            op,
                            source: Box::new(e),
                        })
                    } else {
                        Ok(Transacted::ConditionFailed(failed))
                    }
                }
                _ => Err(sdk_error(op, e)),
            },
        }
    }

    async fn get(&self, op: &'static str, key: &Key) -> Result<Option<Item>, PortError> {
        super::dynamo::get_consistent(&self.client, &self.table, op, key).await
    }

    /// Every item of a partition (consistent, paged).
    async fn partition(&self, op: &'static str, pk: &str) -> Result<Vec<Item>, PortError> {
        super::dynamo::query_eq(
            &self.client,
            &self.table,
            op,
            None,
            costop_core::record::PK,
            pk,
        )
        .await
    }

    async fn writes(&self, op: &'static str, pk: &str) -> Result<Vec<QueuedWrite>, PortError> {
        let items = self.partition(op, pk).await?;
        let (writes, errors) = q::writes_from_items(&items);
        for e in errors {
            tracing::warn!(error = %costop_app::error_chain(&e), partition = pk, "unreadable queued write skipped");
        }
        Ok(writes)
    }

    /// Settle operations: a failed condition means another keeper settled the write first.
    async fn settle(&self, op: &'static str, ops: Vec<Op>) -> Result<(), PortError> {
        match self.transact(op, ops).await? {
            Transacted::Done => Ok(()),
            Transacted::ConditionFailed(_) => Err(PortError::Conflict { op }),
        }
    }

    /// The depth shards' values (consistent).
    async fn depths(
        &self,
        op: &'static str,
    ) -> Result<std::collections::BTreeMap<u32, u64>, PortError> {
        Ok(q::depths_from_items(&self.partition(op, QUEUE_PK).await?))
    }
}

impl WriteQueue for DynamoQueue {
    async fn enqueue(&self, mut write: QueuedWrite, max_depth: u64) -> Result<Enqueued, PortError> {
        let op = "queue write";
        let shards = q::depth_shards(max_depth);
        if shards == 0 {
            return Ok(Enqueued::Full);
        }
        write.seq = q::arrival_seq(write.queued_at);
        write.depth_shard = rand::random_range(0..shards);
        let mut full = false;
        for _ in 0..=MOVES {
            let receipt = Receipt::queued(&write);
            let failed = match self.transact(op, q::enqueue_ops(&write, max_depth)).await? {
                Transacted::Done => return Ok(Enqueued::Queued(receipt)),
                Transacted::ConditionFailed(failed) => failed,
            };
            if failed.contains(&ENQUEUE_KEY_OP) {
                let key = self
                    .get(op, &q::idempotency_key(&write.idempotency_key))
                    .await?
                    .ok_or(PortError::Conflict { op })?;
                let id = q::receipt_of_key(&key).map_err(|e| corrupt(op, e))?;
                let first = self.receipt(id).await?.ok_or(PortError::Conflict { op })?;
                return Ok(Enqueued::Duplicate(first));
            }
            // A generated receipt id taken: practically never.
            if failed.contains(&ENQUEUE_RECEIPT_OP) {
                return Err(PortError::Conflict { op });
            }
            if failed.contains(&ENQUEUE_WRITE_OP) {
                write.seq += 1;
            }
            full = failed.contains(&ENQUEUE_DEPTH_OP);
            if full {
                let depths = self.depths("read the queue's depth shards").await?;
                match q::shard_with_room(max_depth, &depths, rand::random()) {
                    Some(shard) => write.depth_shard = shard,
                    None => return Ok(Enqueued::Full),
                }
            }
        }
        if full {
            Ok(Enqueued::Full)
        } else {
            Err(PortError::Conflict { op })
        }
    }

    async fn receipt(&self, id: &str) -> Result<Option<Receipt>, PortError> {
        let op = "read receipt";
        self.get(op, &q::receipt_key(id))
            .await?
            .map(|i| q::receipt_from_item(&i).map_err(|e| corrupt(op, e)))
            .transpose()
    }

    async fn pending(&self) -> Result<Vec<QueuedWrite>, PortError> {
        self.writes("read pending writes", PENDING_PK).await
    }

    async fn dead_letters(&self) -> Result<Vec<QueuedWrite>, PortError> {
        self.writes("read dead letters", DEAD_PK).await
    }

    async fn depth(&self) -> Result<u64, PortError> {
        Ok(self.depths("read queue depth").await?.values().sum())
    }

    async fn replayed(
        &self,
        write: &QueuedWrite,
        status: u16,
        now: DateTime<Utc>,
        receipt_days: u32,
    ) -> Result<(), PortError> {
        self.settle(
            "settle replayed write",
            q::replayed_ops(write, status, now, receipt_days),
        )
        .await
    }

    async fn failed(
        &self,
        write: &QueuedWrite,
        attempts: u32,
        error: &str,
    ) -> Result<(), PortError> {
        self.settle(
            "record failed replay",
            vec![q::failed_op(write, attempts, error)],
        )
        .await
    }

    async fn dead_letter(
        &self,
        write: &QueuedWrite,
        attempts: u32,
        status: Option<u16>,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), PortError> {
        self.settle(
            "dead-letter write",
            q::dead_letter_ops(write, attempts, status, error, now),
        )
        .await
    }
}
