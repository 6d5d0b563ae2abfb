//! Smoke tests of the EC2 and DynamoDB adapters against a running moto server, when
//! `COSTOP_TEST_MOTO_URL` names one (e.g. `moto_server -p 5000` → `http://127.0.0.1:5000`).
//! Skipped with a note otherwise: the test crate runs the full bed. Tests share the server and
//! run in parallel, so each looks only at the instances and tables it created.

use costop_core::standby::TagChange;
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
use costop_app::ports::{Claim, Ec2, LeaseClaim, Records};
use costop_core::constants::{
    STANDBY_STATE_AVAILABLE, STANDBY_STATE_SERVING, TAG_STANDBY, TAG_STANDBY_REPLACES,
    TAG_STANDBY_STATE, TAG_STANDBY_VALUE,
};
use costop_core::event::InstanceState;
use costop_core::facts::InstanceFacts;
use costop_core::plan::action::RecordEvent;
use costop_core::record::{self, Attr, StandbyLease};

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

/// A fresh table shaped like the stack's (keys and GSI1).
async fn create_table(ddb: &aws_sdk_dynamodb::Client) -> String {
    let table = format!(
        "costop-smoke-{}-{}",
        std::process::id(),
        Utc::now().timestamp_micros()
    );
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
    table
}

#[tokio::test]
async fn ec2_describes_known_instances_and_skips_unknown_ids() {
    let Some(sdk) = moto().await else { return };
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let id = launch(&ec2, &[("eks:cluster-name", "smoke")]).await;

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
    let table = create_table(&ddb).await;
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

/// Launches one instance with `tags`; its id.
async fn launch(ec2: &aws_sdk_ec2::Client, tags: &[(&str, &str)]) -> String {
    let mut spec = TagSpecification::builder().resource_type(ResourceType::Instance);
    for (k, v) in tags {
        spec = spec.tags(Tag::builder().key(*k).value(*v).build());
    }
    let run = ec2
        .run_instances()
        .image_id("ami-12c6146b")
        .instance_type(InstanceType::M5Large)
        .min_count(1)
        .max_count(1)
        .tag_specifications(spec.build())
        .send()
        .await
        .expect("run instance in moto");
    run.instances()[0]
        .instance_id()
        .expect("an instance id")
        .to_owned()
}

/// A standby, stopped as it waits in the pool.
async fn stopped_standby(ec2: &aws_sdk_ec2::Client, adapter: &Ec2Adapter) -> String {
    let id = launch(ec2, &[(TAG_STANDBY, TAG_STANDBY_VALUE)]).await;
    adapter.stop(&id).await.unwrap();
    id
}

async fn one(adapter: &Ec2Adapter, id: &str) -> InstanceFacts {
    let mut found = adapter.describe_instances(&[id.to_owned()]).await.unwrap();
    assert_eq!(found.len(), 1, "{id} is known");
    found.remove(0)
}

#[tokio::test]
async fn standbys_are_the_tagged_instances_that_are_not_terminated() {
    let Some(sdk) = moto().await else { return };
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let adapter = Ec2Adapter::new(ec2.clone());
    let running = launch(&ec2, &[(TAG_STANDBY, TAG_STANDBY_VALUE)]).await;
    let stopped = stopped_standby(&ec2, &adapter).await;
    let plain = launch(&ec2, &[("eks:cluster-name", "smoke")]).await;
    let not_true = launch(&ec2, &[(TAG_STANDBY, "false")]).await;
    let terminated = launch(&ec2, &[(TAG_STANDBY, TAG_STANDBY_VALUE)]).await;
    ec2.terminate_instances()
        .instance_ids(&terminated)
        .send()
        .await
        .expect("terminate in moto");

    let standbys = adapter.standbys().await.unwrap();
    let listed = |id: &str| standbys.iter().find(|s| s.instance_id == id);
    assert!(listed(&running).is_some(), "a running standby");
    let s = listed(&stopped).expect("a stopped standby");
    assert_eq!(s.state, InstanceState::Stopped);
    assert_eq!(
        s.tags[TAG_STANDBY], TAG_STANDBY_VALUE,
        "mapped with its tags"
    );
    for (id, why) in [
        (&plain, "untagged"),
        (&not_true, "tagged false"),
        (&terminated, "terminated"),
    ] {
        assert!(listed(id).is_none(), "{why} instance {id} listed");
    }
}

#[tokio::test]
async fn tag_standby_sets_and_removes_tags() {
    let Some(sdk) = moto().await else { return };
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let adapter = Ec2Adapter::new(ec2.clone());
    let id = launch(
        &ec2,
        &[
            (TAG_STANDBY, TAG_STANDBY_VALUE),
            (TAG_STANDBY_REPLACES, "i-0123456789abcdef0"),
        ],
    )
    .await;
    let set = BTreeMap::from([(
        TAG_STANDBY_STATE.to_owned(),
        STANDBY_STATE_SERVING.to_owned(),
    )]);
    adapter
        .tag_standby(&change(&id, set, &[TAG_STANDBY_REPLACES]))
        .await
        .unwrap();
    let tags = one(&adapter, &id).await.tags;
    assert_eq!(tags[TAG_STANDBY_STATE], STANDBY_STATE_SERVING);
    assert!(!tags.contains_key(TAG_STANDBY_REPLACES), "{tags:?}");
    assert_eq!(tags[TAG_STANDBY], TAG_STANDBY_VALUE, "other tags kept");

    // A set overwrites the value; an empty change is fine.
    let set = BTreeMap::from([(
        TAG_STANDBY_STATE.to_owned(),
        STANDBY_STATE_AVAILABLE.to_owned(),
    )]);
    adapter.tag_standby(&change(&id, set, &[])).await.unwrap();
    adapter
        .tag_standby(&change(&id, BTreeMap::new(), &[]))
        .await
        .unwrap();
    assert_eq!(
        one(&adapter, &id).await.tags[TAG_STANDBY_STATE],
        STANDBY_STATE_AVAILABLE
    );
}

#[tokio::test]
async fn retype_changes_the_type_of_a_stopped_standby() {
    let Some(sdk) = moto().await else { return };
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let adapter = Ec2Adapter::new(ec2.clone());
    let id = stopped_standby(&ec2, &adapter).await;
    adapter.retype(&id, "c5.xlarge").await.unwrap();
    assert_eq!(
        one(&adapter, &id).await.instance_type.as_deref(),
        Some("c5.xlarge")
    );
}

#[tokio::test]
async fn start_then_stop_moves_a_standby_through_its_states() {
    let Some(sdk) = moto().await else { return };
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let adapter = Ec2Adapter::new(ec2.clone());
    let id = stopped_standby(&ec2, &adapter).await;
    assert_eq!(one(&adapter, &id).await.state, InstanceState::Stopped);
    adapter.start(&id).await.unwrap();
    assert!(matches!(
        one(&adapter, &id).await.state,
        InstanceState::Pending | InstanceState::Running
    ));
    adapter.stop(&id).await.unwrap();
    assert!(matches!(
        one(&adapter, &id).await.state,
        InstanceState::Stopping | InstanceState::Stopped
    ));
    // An unknown instance is EC2's permanent InvalidInstanceID error, kept whole.
    let err = adapter.start("i-0000000000000dead").await.unwrap_err();
    assert!(!err.is_retryable(), "{err:?}");
}

#[tokio::test]
async fn a_standby_lease_is_held_by_one_delivery_until_released_or_left_unfinished() {
    let Some(sdk) = moto().await else { return };
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let records = DynamoRecords::new(ddb.clone(), create_table(&ddb).await);
    let now = Utc::now();
    let lease_at = |interruption: &str, at: chrono::DateTime<Utc>| StandbyLease {
        standby: "i-0aaaaaaaaaaaaaaaa".into(),
        interruption_id: interruption.into(),
        spot_instance: "i-0123456789abcdef0".into(),
        takeover_if_taken_before: at - TimeDelta::seconds(600),
        resume_if_taken_before: at - TimeDelta::seconds(30),
        expires_at: at + TimeDelta::days(1),
    };
    let lease = |interruption: &str| lease_at(interruption, now);
    assert_eq!(
        records.lease_standby(&lease("x1"), now).await.unwrap(),
        LeaseClaim::Won
    );
    assert_eq!(
        records.lease_standby(&lease("x1"), now).await.unwrap(),
        LeaseClaim::Lost {
            held_by: Some("x1".into())
        },
        "a concurrent delivery of the same interruption learns it holds the standby"
    );
    assert_eq!(
        records.lease_standby(&lease("x2"), now).await.unwrap(),
        LeaseClaim::Lost {
            held_by: Some("x1".into())
        },
        "another interruption"
    );
    let later = now + TimeDelta::seconds(60);
    assert_eq!(
        records
            .lease_standby(&lease_at("x1", later), later)
            .await
            .unwrap(),
        LeaseClaim::Won,
        "a later delivery of the same interruption resumes a start that never finished"
    );
    records
        .release_standby("i-0aaaaaaaaaaaaaaaa")
        .await
        .unwrap();
    assert_eq!(
        records.lease_standby(&lease("x2"), now).await.unwrap(),
        LeaseClaim::Won,
        "released"
    );
    let item = records
        .get(&record::standby_lease_key("i-0aaaaaaaaaaaaaaaa"))
        .await
        .unwrap()
        .expect("the lease item");
    assert_eq!(item["interruption_id"], Attr::s("x2"));
    assert_eq!(item["released"], Attr::Bool(false));
}

fn change(instance_id: &str, set: BTreeMap<String, String>, remove: &[&str]) -> TagChange {
    TagChange {
        instance_id: instance_id.to_owned(),
        set,
        remove: remove.iter().map(|k| (*k).to_owned()).collect(),
    }
}
