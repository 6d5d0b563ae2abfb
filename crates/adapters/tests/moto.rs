//! Smoke tests of the EC2 and DynamoDB adapters against a running moto server, when
//! `COSTOP_TEST_MOTO_URL` names one (e.g. `moto_server -p 5000` → `http://127.0.0.1:5000`).
//! Skipped with a note otherwise: the test crate runs the full bed.

use std::collections::BTreeMap;
use std::io::Write as _;

use aws_config::BehaviorVersion;
use aws_credential_types::Credentials;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use aws_sdk_ec2::types::{InstanceType, ResourceType, Tag, TagSpecification};
use chrono::{TimeDelta, Utc};
use costop_adapters::{DynamoRecords, Ec2Adapter};
use costop_app::ports::{Claim, Ec2, Records};
use costop_core::event::InstanceState;
use costop_core::plan::action::RecordEvent;
use costop_core::record::{self, Attr};

async fn moto() -> Option<aws_config::SdkConfig> {
    let Ok(url) = std::env::var("COSTOP_TEST_MOTO_URL") else {
        // Straight to stderr: libtest captures `eprintln!` of passing tests.
        let _ = writeln!(
            std::io::stderr(),
            "note: COSTOP_TEST_MOTO_URL is not set; skipping the moto smoke test"
        );
        return None;
    };
    Some(
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(url)
            .region("us-east-1")
            .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
            .load()
            .await,
    )
}

#[tokio::test]
async fn ec2_describes_known_instances_and_skips_unknown_ids() {
    let Some(sdk) = moto().await else { return };
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let run = ec2
        .run_instances()
        .image_id("ami-12c6146b")
        .instance_type(InstanceType::M5Large)
        .min_count(1)
        .max_count(1)
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Instance)
                .tags(
                    Tag::builder()
                        .key("eks:cluster-name")
                        .value("smoke")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("run instance in moto");
    let id = run.instances()[0].instance_id().unwrap().to_owned();

    let adapter = Ec2Adapter::new(ec2);
    let found = adapter
        .describe_instances(&[id.clone(), "i-0000000000000dead".into()])
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "the unknown id does not fail the batch");
    let i = &found[0];
    assert_eq!(i.instance_id, id);
    assert!(matches!(
        i.state,
        InstanceState::Running | InstanceState::Pending
    ));
    assert_eq!(i.instance_type.as_deref(), Some("m5.large"));
    assert!(
        i.availability_zone
            .as_deref()
            .is_some_and(|az| az.starts_with("us-east-1"))
    );
    assert!(!i.private_ips.is_empty());
    assert_eq!(i.tags["eks:cluster-name"], "smoke");
    assert!(adapter.describe_instances(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn dynamo_records_claim_put_query_and_update() {
    let Some(sdk) = moto().await else { return };
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let table = format!("costop-smoke-{}", Utc::now().timestamp_micros());
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    let key = |n: &str, t| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .unwrap()
    };
    ddb.create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(vec![
            attr("pk"),
            attr("sk"),
            attr("gsi1pk"),
            attr("gsi1sk"),
        ]))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(record::GSI1)
                .key_schema(key("gsi1pk", KeyType::Hash))
                .key_schema(key("gsi1sk", KeyType::Range))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("create table in moto");

    let records = DynamoRecords::new(ddb, &table);
    let now = Utc::now();
    let action = RecordEvent {
        event_id: "e1".into(),
        instance_id: "i-0123456789abcdef0".into(),
        interruption_id: "x1".into(),
        takeover_if_seen_before: now - TimeDelta::seconds(180),
        expires_at: now + TimeDelta::days(30),
    };
    assert_eq!(records.claim(&action, now).await.unwrap(), Claim::Won);
    assert_eq!(
        records.claim(&action, now).await.unwrap(),
        Claim::Lost,
        "an unfinished fresh claim is owned"
    );
    let key = record::dedupe_key("e1", "i-0123456789abcdef0");
    let item = records.get(&key).await.unwrap().expect("claimed item");
    assert_eq!(item["completed"], Attr::Bool(false));
    records
        .update(&record::dedupe_finish("e1", "i-0123456789abcdef0"))
        .await
        .unwrap();
    assert_eq!(
        records.get(&key).await.unwrap().unwrap()["completed"],
        Attr::Bool(true)
    );
    assert_eq!(
        records
            .claim(&action, now + TimeDelta::seconds(600))
            .await
            .unwrap(),
        Claim::Lost,
        "finished events stay owned"
    );

    for (id, received) in [
        ("x2", "2025-01-02T00:00:00.000000Z"),
        ("x1", "2025-01-01T00:00:00.000000Z"),
    ] {
        let mut header = record::header_key(id).to_item();
        header.insert(
            record::GSI1_PK.into(),
            Attr::s(record::instance_key("i-0123456789abcdef0")),
        );
        header.insert(record::GSI1_SK.into(), Attr::s(format!("{received}#{id}")));
        header.insert(
            "nested".into(),
            Attr::M(BTreeMap::from([("l".into(), Attr::L(vec![Attr::n(1)]))])),
        );
        records.put(header).await.unwrap();
    }
    let headers = records.query_instance("i-0123456789abcdef0").await.unwrap();
    let ids: Vec<_> = headers.iter().map(|h| h[record::PK].clone()).collect();
    assert_eq!(
        ids,
        [Attr::s("INTERRUPTION#x1"), Attr::s("INTERRUPTION#x2")],
        "oldest first"
    );
    assert_eq!(
        headers[0]["nested"],
        Attr::M(BTreeMap::from([("l".into(), Attr::L(vec![Attr::n(1)]))]))
    );
    assert_eq!(records.query("INTERRUPTION#x1").await.unwrap().len(), 1);
    assert!(
        records
            .get(&record::header_key("nope"))
            .await
            .unwrap()
            .is_none()
    );
}
