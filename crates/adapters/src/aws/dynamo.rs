//! The DynamoDB table in the core's record model: [`DynamoRecords`] implements the `Records` port,
//! and [`attr_to_value`]/[`attr_from_value`] translate [`Attr`] ↔ `AttributeValue` 1:1.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, PutRequest, ReturnValuesOnConditionCheckFailure, WriteRequest,
};
use chrono::{DateTime, Utc};
use costop_app::ports::{Claim, LeaseClaim, PortError, Records};
use costop_core::plan::action::RecordEvent;
use costop_core::record::{self, Attr, ConditionalPut, Item, Key, StandbyLease, Update};

use super::sdk_error;

/// An attribute type costop never writes (binary, sets, NULL…) was read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("attribute `{name}` has a DynamoDB type costop does not use")]
pub struct AttrError {
    /// The attribute (dotted path for nested values).
    pub name: String,
}

/// [`Attr`] → `AttributeValue`.
pub fn attr_to_value(a: &Attr) -> AttributeValue {
    match a {
        Attr::S(s) => AttributeValue::S(s.clone()),
        Attr::N(n) => AttributeValue::N(n.clone()),
        Attr::Bool(b) => AttributeValue::Bool(*b),
        Attr::L(l) => AttributeValue::L(l.iter().map(attr_to_value).collect()),
        Attr::M(m) => AttributeValue::M(
            m.iter()
                .map(|(k, v)| (k.clone(), attr_to_value(v)))
                .collect(),
        ),
    }
}

/// `AttributeValue` → [`Attr`]; `name` locates an unsupported value in the error.
pub fn attr_from_value(name: &str, v: &AttributeValue) -> Result<Attr, AttrError> {
    Ok(match v {
        AttributeValue::S(s) => Attr::S(s.clone()),
        AttributeValue::N(n) => Attr::N(n.clone()),
        AttributeValue::Bool(b) => Attr::Bool(*b),
        AttributeValue::L(l) => Attr::L(
            l.iter()
                .enumerate()
                .map(|(i, v)| attr_from_value(&format!("{name}[{i}]"), v))
                .collect::<Result<_, _>>()?,
        ),
        AttributeValue::M(m) => Attr::M(
            m.iter()
                .map(|(k, v)| Ok((k.clone(), attr_from_value(&format!("{name}.{k}"), v)?)))
                .collect::<Result<_, _>>()?,
        ),
        _ => {
            return Err(AttrError {
                name: name.to_owned(),
            });
        }
    })
}

/// An [`Item`] → the SDK's item.
pub fn item_to_sdk(item: &Item) -> HashMap<String, AttributeValue> {
    item.iter()
        .map(|(k, v)| (k.clone(), attr_to_value(v)))
        .collect()
}

/// The SDK's item → an [`Item`].
pub fn item_from_sdk(item: &HashMap<String, AttributeValue>) -> Result<Item, AttrError> {
    item.iter()
        .map(|(k, v)| Ok((k.clone(), attr_from_value(k, v)?)))
        .collect()
}

pub(crate) fn decode(
    op: &'static str,
    item: &HashMap<String, AttributeValue>,
) -> Result<Item, PortError> {
    item_from_sdk(item).map_err(|e| PortError::Permanent {
        op,
        source: Box::new(e),
    })
}

/// The table through the SDK.
#[derive(Clone, Debug)]
pub struct DynamoRecords {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoRecords {
    /// Records in `table`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoRecords {
            client,
            table: table.into(),
        }
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Every item where `key_attr = value`, on the table or on `index`, in sort-key order.
    async fn query_eq(
        &self,
        op: &'static str,
        index: Option<&str>,
        key_attr: &str,
        value: &str,
    ) -> Result<Vec<Item>, PortError> {
        query_eq(&self.client, &self.table, op, index, key_attr, value).await
    }
}

/// The item at `key` in `table`, read consistently.
pub(crate) async fn get_consistent(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    op: &'static str,
    key: &Key,
) -> Result<Option<Item>, PortError> {
    // iam: dynamodb:GetItem
    let out = client
        .get_item()
        .table_name(table)
        .set_key(Some(item_to_sdk(&key.to_item())))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| sdk_error(op, e))?;
    out.item().map(|i| decode(op, i)).transpose()
}

/// Every item of `table` (or its `index`) where `key_attr = value`, in sort-key order, every
/// page read; consistent on the table (a GSI only serves eventually consistent reads).
pub(crate) async fn query_eq(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    op: &'static str,
    index: Option<&str>,
    key_attr: &str,
    value: &str,
) -> Result<Vec<Item>, PortError> {
    // iam: dynamodb:Query
    let mut pages = client
        .query()
        .table_name(table)
        .set_index_name(index.map(str::to_owned))
        .key_condition_expression("#k = :v")
        .expression_attribute_names("#k", key_attr)
        .expression_attribute_values(":v", AttributeValue::S(value.to_owned()))
        .consistent_read(index.is_none())
        .into_paginator()
        .send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| sdk_error(op, e))?;
        for item in page.items() {
            out.push(decode(op, item)?);
        }
    }
    Ok(out)
}

/// DynamoDB's limit of items per `BatchWriteItem`.
const BATCH_WRITE_MAX: usize = 25;
/// Batches in flight at once from one `put_many`.
const BATCHES_IN_FLIGHT: usize = 4;
/// Attempts at a batch whose items keep coming back unprocessed.
const BATCH_ATTEMPTS: u32 = 5;

/// Items still unprocessed after every attempt (DynamoDB kept throttling them).
#[derive(Debug, thiserror::Error)]
#[error("{count} item(s) still unprocessed after {attempts} BatchWriteItem attempts")]
pub struct UnprocessedItems {
    /// Items not written.
    pub count: usize,
    /// Attempts made.
    pub attempts: u32,
}

/// What a conditional `PutItem` did.
enum Put {
    Written,
    /// The condition failed: the item that failed it, when DynamoDB returned it.
    Refused(Option<Item>),
}

impl DynamoRecords {
    /// A conditional `PutItem`. A refusal returns the item that failed the condition
    /// (`ReturnValuesOnConditionCheckFailure=ALL_OLD`, at no extra cost), so whoever holds it is
    /// known without another read.
    async fn conditional_put(
        &self,
        op: &'static str,
        put: &ConditionalPut,
    ) -> Result<Put, PortError> {
        // iam: dynamodb:PutItem
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item_to_sdk(&put.item)))
            .condition_expression(&put.condition_expression)
            .set_expression_attribute_values(Some(item_to_sdk(&put.expression_values)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Put::Written),
            Err(e) => match e.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(refused)) => {
                    // An item costop cannot read back names no holder; the refusal stands.
                    let old = refused.item().and_then(|i| decode(op, i).ok());
                    Ok(Put::Refused(old))
                }
                _ => Err(sdk_error(op, e)),
            },
        }
    }

    async fn batch_write(&self, mut chunk: Vec<WriteRequest>) -> Result<(), PortError> {
        for attempt in 0..BATCH_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(25 << attempt)).await;
            }
            // iam: dynamodb:BatchWriteItem
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.table, chunk)
                .send()
                .await
                .map_err(|e| sdk_error("batch write items", e))?;
            chunk = out
                .unprocessed_items
                .and_then(|mut u| u.remove(&self.table))
                .unwrap_or_default();
            if chunk.is_empty() {
                return Ok(());
            }
        }
        Err(PortError::Transient {
            op: "batch write items",
            source: Box::new(UnprocessedItems {
                count: chunk.len(),
                attempts: BATCH_ATTEMPTS,
            }),
        })
    }
}

impl Records for DynamoRecords {
    async fn get(&self, key: &Key) -> Result<Option<Item>, PortError> {
        // Consistent: the dedupe read must see a write made a moment ago by a concurrent
        // delivery.
        get_consistent(&self.client, &self.table, "get item", key).await
    }

    async fn put(&self, item: Item) -> Result<(), PortError> {
        // iam: dynamodb:PutItem
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item_to_sdk(&item)))
            .send()
            .await
            .map(drop)
            .map_err(|e| sdk_error("put item", e))
    }

    async fn claim(&self, action: &RecordEvent, now: DateTime<Utc>) -> Result<Claim, PortError> {
        Ok(
            match self
                .conditional_put("claim event", &record::dedupe_put(action, now))
                .await?
            {
                Put::Written => Claim::Won,
                Put::Refused(_) => Claim::Lost,
            },
        )
    }

    async fn lease_standby(
        &self,
        lease: &StandbyLease,
        now: DateTime<Utc>,
    ) -> Result<LeaseClaim, PortError> {
        Ok(
            match self
                .conditional_put("lease standby", &record::standby_lease_put(lease, now))
                .await?
            {
                Put::Written => LeaseClaim::Won,
                Put::Refused(old) => LeaseClaim::Lost {
                    held_by: old
                        .as_ref()
                        .and_then(record::lease_holder)
                        .map(str::to_owned),
                },
            },
        )
    }

    /// `BatchWriteItem`, 25 items per request and a few requests in flight; items DynamoDB
    /// leaves unprocessed (throttling) are sent again with backoff.
    async fn put_many(&self, items: Vec<Item>) -> Result<(), PortError> {
        use futures::{StreamExt, TryStreamExt};
        // A batch must not name one key twice; the last write of a key wins, as with PutItem.
        let mut unique: HashMap<Key, Item> = HashMap::with_capacity(items.len());
        for item in items {
            let key = Key::of(&item).ok_or_else(|| PortError::Permanent {
                op: "batch write items",
                source: Box::new(record::RecordError::MissingAttribute {
                    name: record::PK.into(),
                }),
            })?;
            unique.insert(key, item);
        }
        let requests: Vec<WriteRequest> = unique
            .values()
            .map(|item| {
                let put = PutRequest::builder()
                    .set_item(Some(item_to_sdk(item)))
                    .build()
                    .map_err(|e| PortError::Permanent {
                        op: "batch write items",
                        source: Box::new(e),
                    })?;
                Ok(WriteRequest::builder().put_request(put).build())
            })
            .collect::<Result<_, PortError>>()?;
        let chunks: Vec<Vec<WriteRequest>> = requests
            .chunks(BATCH_WRITE_MAX)
            .map(<[_]>::to_vec)
            .collect();
        futures::stream::iter(chunks)
            .map(|chunk| self.batch_write(chunk))
            .buffer_unordered(BATCHES_IN_FLIGHT)
            .try_collect()
            .await
    }

    async fn update(&self, update: &Update) -> Result<(), PortError> {
        let values =
            (!update.expression_values.is_empty()).then(|| item_to_sdk(&update.expression_values));
        // iam: dynamodb:UpdateItem
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(item_to_sdk(&update.key.to_item())))
            .update_expression(&update.update_expression)
            .set_expression_attribute_values(values)
            .send()
            .await
            .map(drop)
            .map_err(|e| sdk_error("update item", e))
    }

    async fn delete(&self, key: &Key) -> Result<(), PortError> {
        // iam: dynamodb:DeleteItem
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(item_to_sdk(&key.to_item())))
            .send()
            .await
            .map(drop)
            .map_err(|e| sdk_error("delete item", e))
    }

    async fn query(&self, pk: &str) -> Result<Vec<Item>, PortError> {
        self.query_eq("query partition", None, record::PK, pk).await
    }

    async fn query_instance(&self, instance_id: &str) -> Result<Vec<Item>, PortError> {
        // gsi1sk starts with the received time, so ascending key order is oldest first.
        self.query_eq(
            "query instance index",
            Some(record::GSI1),
            record::GSI1_PK,
            &record::instance_key(instance_id),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::tests::sdk_config;
    use crate::testutil::{Captured, Reply, Server};
    use aws_sdk_dynamodb::primitives::Blob;
    use serde_json::json;
    use std::collections::BTreeMap;

    #[test]
    fn attrs_round_trip_through_attribute_values() {
        let nested = Attr::M(BTreeMap::from([
            (
                "l".to_owned(),
                Attr::L(vec![Attr::n(1), Attr::s("x"), Attr::Bool(false)]),
            ),
            ("m".to_owned(), Attr::M(BTreeMap::new())),
        ]));
        for a in [
            Attr::s("s"),
            Attr::n(-5),
            Attr::N("1.5".into()),
            Attr::Bool(true),
            Attr::L(vec![]),
            nested,
        ] {
            assert_eq!(attr_from_value("a", &attr_to_value(&a)).unwrap(), a);
        }
        assert_eq!(attr_to_value(&Attr::n(7)), AttributeValue::N("7".into()));
        let item: Item = BTreeMap::from([
            ("pk".to_owned(), Attr::s("P")),
            ("n".to_owned(), Attr::n(1)),
        ]);
        assert_eq!(item_from_sdk(&item_to_sdk(&item)).unwrap(), item);
    }

    #[test]
    fn unused_types_are_errors_naming_the_attribute() {
        let bad = AttributeValue::M(HashMap::from([(
            "inner".to_owned(),
            AttributeValue::L(vec![
                AttributeValue::S("ok".into()),
                AttributeValue::B(Blob::new(vec![1])),
            ]),
        )]));
        assert_eq!(
            attr_from_value("top", &bad),
            Err(AttrError {
                name: "top.inner[1]".into()
            })
        );
        assert!(attr_from_value("n", &AttributeValue::Null(true)).is_err());
        assert!(attr_from_value("ss", &AttributeValue::Ss(vec!["a".into()])).is_err());
    }

    fn target(r: &Captured) -> String {
        r.headers["x-amz-target"]
            .trim_start_matches("DynamoDB_20120810.")
            .to_owned()
    }

    fn action() -> RecordEvent {
        let now: DateTime<Utc> = "2025-01-01T00:00:00Z".parse().unwrap();
        RecordEvent {
            event_id: "e1".into(),
            instance_id: "i-0123456789abcdef0".into(),
            interruption_id: "x1".into(),
            takeover_if_seen_before: now - chrono::TimeDelta::seconds(180),
            expires_at: now + chrono::TimeDelta::days(30),
        }
    }

    #[tokio::test]
    async fn claim_is_the_cores_conditional_put_and_a_failed_condition_is_lost() {
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let server = Server::start(move |_| {
            if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                Reply::aws_json(200, json!({}))
            } else {
                Reply::aws_json(400, json!({"__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException", "message": "The conditional request failed"}))
            }
        })
        .await;
        let records = DynamoRecords::new(
            aws_sdk_dynamodb::Client::new(&sdk_config(&server.url).await),
            "costop",
        );
        let now = "2025-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(records.claim(&action(), now).await.unwrap(), Claim::Won);
        assert_eq!(records.claim(&action(), now).await.unwrap(), Claim::Lost);
        let req = &server.requests()[0];
        assert_eq!(target(req), "PutItem");
        let body = req.json();
        let expected = record::dedupe_put(&action(), now);
        assert_eq!(body["TableName"], "costop");
        assert_eq!(
            body["ConditionExpression"],
            expected.condition_expression.as_str()
        );
        assert_eq!(
            body["ExpressionAttributeValues"],
            json!({":false": {"BOOL": false}, ":true": {"BOOL": true}, ":cutoff": {"N": "1735689420"}})
        );
        assert_eq!(body["Item"]["pk"], json!({"S": "EVENT#e1"}));
        assert_eq!(body["Item"]["completed"], json!({"BOOL": false}));
    }

    /// An item as DynamoDB's JSON protocol spells it.
    fn wire_item(item: &Item) -> serde_json::Value {
        fn wire(a: &Attr) -> serde_json::Value {
            match a {
                Attr::S(s) => json!({"S": s}),
                Attr::N(n) => json!({"N": n}),
                Attr::Bool(b) => json!({"BOOL": b}),
                Attr::L(l) => json!({"L": l.iter().map(wire).collect::<Vec<_>>()}),
                Attr::M(m) => json!({"M": wire_item(m)}),
            }
        }
        item.iter()
            .map(|(k, v)| (k.clone(), wire(v)))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }

    #[tokio::test]
    async fn a_standby_lease_is_the_cores_conditional_put_and_a_failed_condition_names_the_holder()
    {
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let server = Server::start(move |_| match calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
            0 => Reply::aws_json(200, json!({})),
            1 => Reply::aws_json(400, json!({"__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException", "message": "The conditional request failed",
                "Item": {"pk": {"S": "STANDBY#i-0aaaaaaaaaaaaaaaa"}, "sk": {"S": "LEASE"}, "interruption_id": {"S": "x0"}, "released": {"BOOL": false}}})),
            2 => Reply::aws_json(400, json!({"__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException", "message": "The conditional request failed"})),
            _ => Reply::aws_json(400, json!({"__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException", "message": "slow down"})),
        })
        .await;
        let records = DynamoRecords::new(
            aws_sdk_dynamodb::Client::new(&sdk_config(&server.url).await),
            "costop",
        );
        let now: DateTime<Utc> = "2025-01-01T00:00:00Z".parse().unwrap();
        let lease = StandbyLease {
            standby: "i-0aaaaaaaaaaaaaaaa".into(),
            interruption_id: "x1".into(),
            spot_instance: "i-0123456789abcdef0".into(),
            takeover_if_taken_before: now - chrono::TimeDelta::seconds(600),
            resume_if_taken_before: now - chrono::TimeDelta::seconds(30),
            expires_at: now + chrono::TimeDelta::days(1),
        };
        assert_eq!(
            records.lease_standby(&lease, now).await.unwrap(),
            LeaseClaim::Won
        );
        assert_eq!(
            records.lease_standby(&lease, now).await.unwrap(),
            LeaseClaim::Lost {
                held_by: Some("x0".into())
            }
        );
        assert_eq!(
            records.lease_standby(&lease, now).await.unwrap(),
            LeaseClaim::Lost { held_by: None },
            "a refusal without the item still refuses"
        );
        let err = records.lease_standby(&lease, now).await.unwrap_err();
        assert!(
            matches!(
                err,
                PortError::Transient {
                    op: "lease standby",
                    ..
                }
            ),
            "{err:?}"
        );
        let req = &server.requests()[0];
        assert_eq!(target(req), "PutItem");
        let body = req.json();
        let expected = record::standby_lease_put(&lease, now);
        assert_eq!(body["TableName"], "costop");
        assert_eq!(
            body["ConditionExpression"],
            expected.condition_expression.as_str()
        );
        assert_eq!(body["Item"], wire_item(&expected.item));
        assert_eq!(
            body["ExpressionAttributeValues"],
            wire_item(&expected.expression_values)
        );
        assert_eq!(body["ReturnValuesOnConditionCheckFailure"], "ALL_OLD");
    }

    #[tokio::test]
    async fn many_puts_go_out_25_per_batch_and_unprocessed_items_are_sent_again() {
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let server = Server::start(move |r: &Captured| {
            assert_eq!(target(r), "BatchWriteItem");
            let body = r.json();
            let writes = body["RequestItems"]["costop"].as_array().unwrap().clone();
            // The first request of all is throttled in part: its first item comes back.
            if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                Reply::aws_json(
                    200,
                    json!({"UnprocessedItems": {"costop": [writes[0].clone()]}}),
                )
            } else {
                Reply::aws_json(200, json!({"UnprocessedItems": {}}))
            }
        })
        .await;
        let records = DynamoRecords::new(
            aws_sdk_dynamodb::Client::new(&sdk_config(&server.url).await),
            "costop",
        );
        let item = |i: usize| {
            BTreeMap::from([
                (record::PK.to_owned(), Attr::s("P")),
                (record::SK.to_owned(), Attr::s(format!("S{i:02}"))),
            ])
        };
        // 30 distinct items plus a second write of item 3: 30 keys.
        let mut items: Vec<Item> = (0..30).map(item).collect();
        items.push(item(3));
        records.put_many(items).await.unwrap();
        let sizes: Vec<usize> = server
            .requests()
            .iter()
            .map(|r| r.json()["RequestItems"]["costop"].as_array().unwrap().len())
            .collect();
        assert_eq!(sizes.len(), 3, "two batches and one resend: {sizes:?}");
        assert_eq!(sizes.iter().sum::<usize>(), 31, "{sizes:?}");
        assert!(sizes.contains(&25) && sizes.contains(&1), "{sizes:?}");
    }

    #[tokio::test]
    async fn items_left_unprocessed_after_every_attempt_are_a_transient_error() {
        let server = Server::start(|r: &Captured| {
            let body = r.json();
            Reply::aws_json(
                200,
                json!({"UnprocessedItems": {"costop": body["RequestItems"]["costop"].clone()}}),
            )
        })
        .await;
        let records = DynamoRecords::new(
            aws_sdk_dynamodb::Client::new(&sdk_config(&server.url).await),
            "costop",
        );
        let item = BTreeMap::from([
            (record::PK.to_owned(), Attr::s("P")),
            (record::SK.to_owned(), Attr::s("S")),
        ]);
        let err = records.put_many(vec![item]).await.unwrap_err();
        assert!(err.is_retryable(), "{err:?}");
        assert_eq!(server.requests().len(), BATCH_ATTEMPTS as usize);
    }

    #[tokio::test]
    async fn reads_are_consistent_and_queries_page_through_the_index() {
        let server = Server::start(|r: &Captured| match target(r).as_str() {
            "GetItem" => Reply::aws_json(
                200,
                json!({"Item": {"pk": {"S": "P"}, "sk": {"S": "S"}, "n": {"N": "3"}}}),
            ),
            "Query" if r.json().get("ExclusiveStartKey").is_none() => Reply::aws_json(
                200,
                json!({"Items": [{"pk": {"S": "a"}}], "LastEvaluatedKey": {"pk": {"S": "a"}}}),
            ),
            "Query" => Reply::aws_json(200, json!({"Items": [{"pk": {"S": "b"}}]})),
            "UpdateItem" => Reply::aws_json(200, json!({})),
            t => panic!("unexpected {t}"),
        })
        .await;
        let records = DynamoRecords::new(
            aws_sdk_dynamodb::Client::new(&sdk_config(&server.url).await),
            "costop",
        );
        let item = records
            .get(&Key {
                pk: "P".into(),
                sk: "S".into(),
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(item["n"], Attr::n(3));
        let items = records.query_instance("i-1").await.unwrap();
        assert_eq!(items.len(), 2);
        records
            .update(&record::dedupe_finish("e1", "i-1"))
            .await
            .unwrap();

        let reqs = server.requests();
        let get = reqs[0].json();
        assert_eq!(get["ConsistentRead"], true);
        assert_eq!(get["Key"], json!({"pk": {"S": "P"}, "sk": {"S": "S"}}));
        let query = reqs[1].json();
        assert_eq!(query["IndexName"], "gsi1");
        assert_eq!(query["KeyConditionExpression"], "#k = :v");
        assert_eq!(query["ExpressionAttributeNames"], json!({"#k": "gsi1pk"}));
        assert_eq!(
            query["ExpressionAttributeValues"],
            json!({":v": {"S": "INSTANCE#i-1"}})
        );
        assert_eq!(query["ConsistentRead"], false);
        assert_eq!(
            reqs[2].json()["ExclusiveStartKey"],
            json!({"pk": {"S": "a"}})
        );
        let update = reqs[3].json();
        assert_eq!(update["UpdateExpression"], "SET completed = :true");
        assert_eq!(
            update["ExpressionAttributeValues"],
            json!({":true": {"BOOL": true}})
        );
    }
}
