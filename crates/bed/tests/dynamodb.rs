//! The bed's DynamoDB where it adds to moto: a transaction holds its items for the configured
//! window, and another transaction or a single write naming one of them meanwhile is refused
//! as DynamoDB refuses it (`TransactionCanceledException` with reason `TransactionConflict`,
//! `TransactionConflictException`), changing nothing; and moto's parsed conditions, kept by
//! text, names and values, decide each call on its own.

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, Put,
    ScalarAttributeType, TransactWriteItem,
};
use costop_bed::moto::{Moto, MotoOptions};

const TABLE: &str = "t";

async fn table_on(window: Duration) -> (Moto, Client) {
    let moto = tokio::task::spawn_blocking(move || {
        Moto::start_configured(MotoOptions {
            transaction_window: window,
        })
    })
    .await
    .expect("the start task")
    .expect("moto starts");
    let config = costop_bed::sdk::sdk_config(&moto.endpoint_url(), "us-east-1").await;
    let client = Client::new(&config);
    client
        .create_table()
        .table_name(TABLE)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("definition"),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .expect("key"),
        )
        .send()
        .await
        .expect("the table is created");
    (moto, client)
}

fn put(pk: &str) -> TransactWriteItem {
    TransactWriteItem::builder()
        .put(
            Put::builder()
                .table_name(TABLE)
                .item("pk", AttributeValue::S(pk.into()))
                .build()
                .expect("put"),
        )
        .build()
}

async fn transact(c: &Client, pks: &[&str]) -> Result<(), TransactWriteItemsError> {
    c.transact_write_items()
        .set_transact_items(Some(pks.iter().map(|p| put(p)).collect()))
        .send()
        .await
        .map(drop)
        .map_err(|e| e.into_service_error())
}

async fn exists(c: &Client, pk: &str) -> bool {
    c.get_item()
        .table_name(TABLE)
        .key("pk", AttributeValue::S(pk.into()))
        .consistent_read(true)
        .send()
        .await
        .expect("get")
        .item
        .is_some()
}

#[tokio::test]
async fn a_transaction_meeting_one_in_progress_on_an_item_is_cancelled_for_that_item_and_changes_nothing()
 {
    let window = Duration::from_secs(3);
    let (_moto, c) = table_on(window).await;
    transact(&c, &["a", "b"])
        .await
        .expect("the first transaction");
    let started = std::time::Instant::now();

    let cancelled = transact(&c, &["c", "a"]).await.expect_err("a conflict");
    let TransactWriteItemsError::TransactionCanceledException(e) = cancelled else {
        panic!("not a cancellation: {cancelled:?}");
    };
    let reasons: Vec<Option<&str>> = e.cancellation_reasons().iter().map(|r| r.code()).collect();
    assert_eq!(reasons, [Some("None"), Some("TransactionConflict")]);
    assert!(
        !exists(&c, "c").await,
        "a cancelled transaction wrote nothing"
    );

    // A single write to an item a transaction holds fails the same way; others go through.
    let single = c
        .put_item()
        .table_name(TABLE)
        .item("pk", AttributeValue::S("b".into()))
        .send()
        .await
        .expect_err("a conflict");
    assert_eq!(
        single.as_service_error().and_then(|e| e.code()),
        Some("TransactionConflictException")
    );
    c.put_item()
        .table_name(TABLE)
        .item("pk", AttributeValue::S("d".into()))
        .send()
        .await
        .expect("an item no transaction holds");
    assert!(
        started.elapsed() < window,
        "the checks ran inside the window"
    );

    // Once the first transaction is over, the same transaction goes through.
    tokio::time::sleep(window.saturating_sub(started.elapsed()) + Duration::from_millis(100)).await;
    transact(&c, &["c", "a"])
        .await
        .expect("no transaction holds a now");
    assert!(exists(&c, "c").await);
}

#[tokio::test]
async fn with_no_window_transactions_on_the_same_item_never_conflict() {
    let (_moto, c) = table_on(Duration::ZERO).await;
    for _ in 0..3 {
        transact(&c, &["a", "b"]).await.expect("no conflict");
    }
}

/// The bed keeps moto's parsed conditions by their text, names and values: the same text with
/// other values, or naming another attribute, is decided on its own values and names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_condition_repeated_with_other_values_or_names_is_decided_on_them() {
    let (_moto, c) = table_on(Duration::ZERO).await;
    let add = |max: i64, name: &str| {
        c.update_item()
            .table_name(TABLE)
            .key("pk", AttributeValue::S("counter".into()))
            .update_expression("ADD #n :one")
            .condition_expression("attribute_not_exists(#n) OR #n < :max")
            .expression_attribute_names("#n", name)
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":max", AttributeValue::N(max.to_string()))
            .send()
    };
    add(1, "depth").await.expect("the first add, under 1");
    let refused = add(1, "depth").await.expect_err("at 1, not under 1");
    assert_eq!(
        refused.code(),
        Some("ConditionalCheckFailedException"),
        "{refused:?}"
    );
    add(5, "depth")
        .await
        .expect("the same text under 5: its own value");
    add(1, "other")
        .await
        .expect("the same text on another attribute");
    let item = c
        .get_item()
        .table_name(TABLE)
        .key("pk", AttributeValue::S("counter".into()))
        .consistent_read(true)
        .send()
        .await
        .expect("the item reads")
        .item
        .expect("the item");
    assert_eq!(item["depth"], AttributeValue::N("2".into()));
    assert_eq!(item["other"], AttributeValue::N("1".into()));
}
