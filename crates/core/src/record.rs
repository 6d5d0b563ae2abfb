//! The DynamoDB records, as plain data: key design, item shapes and the
//! timeline step vocabulary. The adapters translate [`Attr`] 1:1 into
//! `aws_sdk_dynamodb::types::AttributeValue` (the serde form of [`Attr`] is
//! DynamoDB's own JSON, e.g. `{"S": "…"}`).
//!
//! ## Single-table key design
//!
//! | item | `pk` | `sk` | other keys |
//! |---|---|---|---|
//! | dedupe (one per event × instance) | `EVENT#<event id>` | `INSTANCE#<instance id>` | |
//! | interruption header | `INTERRUPTION#<interruption id>` | `000#RECEIVED` | `gsi1pk = INSTANCE#<instance id>`, `gsi1sk = <received rfc3339>#<interruption id>` |
//! | node snapshot | `INTERRUPTION#<id>` | `001#SNAPSHOT` | |
//! | timeline entry | `INTERRUPTION#<id>` | `T#<rfc3339 µs>#<STEP>[#<ns>/<pod>]` | |
//!
//! - `Query pk = INTERRUPTION#<id>` returns header, snapshot and the
//!   timeline in order (`000#` < `001#` < `T#`, and µs timestamps sort).
//! - `Query gsi1 (gsi1pk = INSTANCE#<id>)` lists an instance's
//!   interruptions, newest last.
//! - Every item has `ttl` (epoch seconds; `COSTOP_TIMELINE_TTL_DAYS`).
//!
//! The dedupe write is conditional: it succeeds for a new (event, instance)
//! or to take over one whose first delivery never finished and whose lease
//! has expired. See [`dedupe_put`].

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::facts::{Delivery, Facts, PodRef};
use crate::plan::{IgnoreReason, Plan, RecordEvent};

/// Partition key attribute.
pub const PK: &str = "pk";
/// Sort key attribute.
pub const SK: &str = "sk";
/// GSI name for the per-instance index.
pub const GSI1: &str = "gsi1";
/// GSI1 partition key attribute.
pub const GSI1_PK: &str = "gsi1pk";
/// GSI1 sort key attribute.
pub const GSI1_SK: &str = "gsi1sk";
/// TTL attribute (epoch seconds).
pub const TTL: &str = "ttl";
/// Sort key of the interruption header.
pub const SK_HEADER: &str = "000#RECEIVED";
/// Sort key of the node snapshot.
pub const SK_SNAPSHOT: &str = "001#SNAPSHOT";
/// Sort key prefix of timeline entries.
pub const SK_TIMELINE_PREFIX: &str = "T#";

/// A DynamoDB attribute value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Attr {
    /// String.
    S(String),
    /// Number (decimal string, as DynamoDB transmits it).
    N(String),
    /// Boolean.
    #[serde(rename = "BOOL")]
    Bool(bool),
    /// List.
    L(Vec<Attr>),
    /// Map.
    M(BTreeMap<String, Attr>),
}

impl Attr {
    /// A string attribute.
    pub fn s(v: impl Into<String>) -> Attr {
        Attr::S(v.into())
    }
    /// A number attribute.
    pub fn n(v: i64) -> Attr {
        Attr::N(v.to_string())
    }
}

/// An item: attribute name → value.
pub type Item = BTreeMap<String, Attr>;

/// A primary key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Key {
    /// Partition key.
    pub pk: String,
    /// Sort key.
    pub sk: String,
}

impl Key {
    /// As an item (for `GetItem`/`UpdateItem` keys).
    pub fn to_item(&self) -> Item {
        BTreeMap::from([
            (PK.to_owned(), Attr::s(&self.pk)),
            (SK.to_owned(), Attr::s(&self.sk)),
        ])
    }

    /// The key of an item, if it has string `pk` and `sk` attributes.
    pub fn of(item: &Item) -> Option<Key> {
        match (item.get(PK), item.get(SK)) {
            (Some(Attr::S(pk)), Some(Attr::S(sk))) => Some(Key {
                pk: pk.clone(),
                sk: sk.clone(),
            }),
            _ => None,
        }
    }
}

/// Reading an item back failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// A required attribute is absent.
    #[error("item has no attribute `{name}`")]
    MissingAttribute {
        /// Attribute.
        name: String,
    },
    /// An attribute has the wrong type.
    #[error("attribute `{name}` must be {expected}")]
    WrongType {
        /// Attribute.
        name: String,
        /// Expected DynamoDB type.
        expected: &'static str,
    },
    /// A timestamp attribute does not parse.
    #[error("attribute `{name}` is not an RFC 3339 timestamp: {value:?}")]
    InvalidTimestamp {
        /// Attribute.
        name: String,
        /// Value.
        value: String,
        /// chrono's error.
        #[source]
        source: chrono::ParseError,
    },
    /// A JSON-encoded attribute does not (de)serialize.
    #[error("attribute `{name}` is not valid JSON for its type")]
    Json {
        /// Attribute.
        name: String,
        /// serde's error.
        #[source]
        source: serde_json::Error,
    },
}

// ---------------------------------------------------------------------------
// Keys.
// ---------------------------------------------------------------------------

/// `INTERRUPTION#<id>`.
pub fn interruption_pk(interruption_id: &str) -> String {
    format!("INTERRUPTION#{interruption_id}")
}

/// `INSTANCE#<id>` (dedupe sort key and GSI1 partition key).
pub fn instance_key(instance_id: &str) -> String {
    format!("INSTANCE#{instance_id}")
}

/// The dedupe item's key.
pub fn dedupe_key(event_id: &str, instance_id: &str) -> Key {
    Key {
        pk: format!("EVENT#{event_id}"),
        sk: instance_key(instance_id),
    }
}

/// The interruption header's key.
pub fn header_key(interruption_id: &str) -> Key {
    Key {
        pk: interruption_pk(interruption_id),
        sk: SK_HEADER.to_owned(),
    }
}

/// The snapshot's key.
pub fn snapshot_key(interruption_id: &str) -> Key {
    Key {
        pk: interruption_pk(interruption_id),
        sk: SK_SNAPSHOT.to_owned(),
    }
}

/// RFC 3339 with microseconds and `Z`: fixed width, so it sorts as text.
pub fn sortable_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// `ttl` for an item written at `at`.
pub fn ttl_epoch(at: DateTime<Utc>, ttl_days: u32) -> i64 {
    (at + TimeDelta::days(i64::from(ttl_days))).timestamp()
}

// ---------------------------------------------------------------------------
// Dedupe.
// ---------------------------------------------------------------------------

/// A conditional `PutItem`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConditionalPut {
    /// The item.
    pub item: Item,
    /// `ConditionExpression`.
    pub condition_expression: String,
    /// `ExpressionAttributeValues`.
    pub expression_values: Item,
}

/// An `UpdateItem`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Update {
    /// The key.
    pub key: Key,
    /// `UpdateExpression`.
    pub update_expression: String,
    /// `ExpressionAttributeValues`.
    pub expression_values: Item,
}

/// The dedupe write for a plan's [`RecordEvent`] action, performed at `now`.
/// Succeeds if no item exists, or if the existing one is unfinished and was
/// first seen before the takeover cutoff (its delivery presumably died).
/// A `ConditionalCheckFailed` means another delivery owns the event.
pub fn dedupe_put(action: &RecordEvent, now: DateTime<Utc>) -> ConditionalPut {
    let key = dedupe_key(&action.event_id, &action.instance_id);
    let mut item = key.to_item();
    item.insert("event_id".into(), Attr::s(&action.event_id));
    item.insert("instance_id".into(), Attr::s(&action.instance_id));
    item.insert("interruption_id".into(), Attr::s(&action.interruption_id));
    item.insert("first_seen_at".into(), Attr::s(sortable_time(now)));
    item.insert("first_seen_epoch".into(), Attr::n(now.timestamp()));
    item.insert("completed".into(), Attr::Bool(false));
    item.insert(TTL.into(), Attr::n(action.expires_at.timestamp()));
    ConditionalPut {
        item,
        condition_expression:
            "attribute_not_exists(pk) OR (completed = :false AND (first_seen_epoch < :cutoff OR released = :true))"
                .to_owned(),
        expression_values: BTreeMap::from([
            (":false".to_owned(), Attr::Bool(false)),
            (":true".to_owned(), Attr::Bool(true)),
            (
                ":cutoff".to_owned(),
                Attr::n(action.takeover_if_seen_before.timestamp()),
            ),
        ]),
    }
}

// ---------------------------------------------------------------------------
// Standby leases.
// ---------------------------------------------------------------------------

/// The lease on one standby instance: `STANDBY#<instance>` / `LEASE`. Two
/// interruptions in one zone at once must not both start (and retag) the same
/// standby; EC2 has no conditional tagging, so the keeper takes this lease first.
pub fn standby_lease_key(standby_instance: &str) -> Key {
    Key {
        pk: format!("STANDBY#{standby_instance}"),
        sk: "LEASE".to_owned(),
    }
}

/// A standby lease to take (the keeper's `ClaimStandby`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StandbyLease {
    /// The standby instance.
    pub standby: String,
    /// The interruption it will serve.
    pub interruption_id: String,
    /// The interrupted spot instance.
    pub spot_instance: String,
    /// A lease taken before this and never released is presumed dead (its
    /// keeper crashed between the lease and the start).
    pub takeover_if_taken_before: DateTime<Utc>,
    /// The same interruption's lease taken before this is a start that never
    /// finished (its delivery failed or died before the start): a later delivery
    /// of that interruption resumes it. One taken since is a start in progress,
    /// which a concurrent delivery of the interruption joins rather than repeats.
    pub resume_if_taken_before: DateTime<Utc>,
    /// DynamoDB TTL.
    pub expires_at: DateTime<Utc>,
}

/// The conditional write of a [`StandbyLease`] at `now`: it succeeds when no
/// lease exists, when it was released (the standby went back to the pool), when
/// it is stale, or when the same interruption took it before
/// [`StandbyLease::resume_if_taken_before`] (a redelivery resuming a start that
/// never finished). So of two deliveries of one interruption starting at once,
/// exactly one holds the lease; the other learns from [`lease_holder`] of the
/// item that refused it that its own interruption holds the standby.
pub fn standby_lease_put(lease: &StandbyLease, now: DateTime<Utc>) -> ConditionalPut {
    let mut item = standby_lease_key(&lease.standby).to_item();
    item.insert("standby".into(), Attr::s(&lease.standby));
    item.insert("interruption_id".into(), Attr::s(&lease.interruption_id));
    item.insert("spot_instance".into(), Attr::s(&lease.spot_instance));
    item.insert("taken_at".into(), Attr::s(sortable_time(now)));
    item.insert("taken_epoch".into(), Attr::n(now.timestamp()));
    item.insert("released".into(), Attr::Bool(false));
    item.insert(TTL.into(), Attr::n(lease.expires_at.timestamp()));
    ConditionalPut {
        item,
        condition_expression:
            "attribute_not_exists(pk) OR released = :true OR taken_epoch < :cutoff OR (interruption_id = :iid AND taken_epoch < :resume)"
                .to_owned(),
        expression_values: BTreeMap::from([
            (":iid".to_owned(), Attr::s(&lease.interruption_id)),
            (":true".to_owned(), Attr::Bool(true)),
            (":cutoff".to_owned(), Attr::n(lease.takeover_if_taken_before.timestamp())),
            (":resume".to_owned(), Attr::n(lease.resume_if_taken_before.timestamp())),
        ]),
    }
}

/// Turns the lease `GetItem` result into [`crate::facts::Facts::standby_lease`].
pub fn standby_lease_from_item(
    item: Option<&Item>,
) -> Result<Option<crate::facts::StandbyLeaseRecord>, RecordError> {
    let Some(item) = item else {
        return Ok(None);
    };
    let interruption_id = match item.get("interruption_id") {
        Some(Attr::S(s)) => s.clone(),
        _ => {
            return Err(RecordError::WrongType {
                name: "interruption_id".into(),
                expected: "S",
            });
        }
    };
    Ok(Some(crate::facts::StandbyLeaseRecord {
        interruption_id,
        released: get_bool(item, "released")?,
    }))
}

/// A notice costop ignored because it was about one of its own standbys serving nothing:
/// `STANDBY#<instance>` / `IGNORED#<received>#<event id>`, beside the standby's lease, so the
/// pool's history shows every stop and warning it chose not to act on, and why.
pub fn ignored_notice_item(
    instance_id: &str,
    event_id: &str,
    kind: &str,
    reason: &crate::plan::IgnoreReason,
    received_at: DateTime<Utc>,
    ttl_days: u32,
) -> Result<Item, RecordError> {
    let reason = serde_json::to_string(reason).map_err(|source| RecordError::Json {
        name: "reason".into(),
        source,
    })?;
    let mut item = Key {
        pk: format!("STANDBY#{instance_id}"),
        sk: format!("IGNORED#{}#{event_id}", sortable_time(received_at)),
    }
    .to_item();
    item.insert("instance_id".into(), Attr::s(instance_id));
    item.insert("event_id".into(), Attr::s(event_id));
    item.insert("kind".into(), Attr::s(kind));
    item.insert("reason".into(), Attr::s(reason));
    item.insert("received_at".into(), Attr::s(sortable_time(received_at)));
    item.insert(TTL.into(), Attr::n(ttl_epoch(received_at, ttl_days)));
    Ok(item)
}

/// Active traffic shifts: one lease per shifted listener rule or Ingress.
pub const SHIFT_PK: &str = "SHIFT";

/// The partition of [`ResumeWatch`]es: `RESUME` / `INSTANCE#<id>`, one per instance (a newer
/// interruption of the same instance replaces the older). The keeper's tick reads it whole.
pub const RESUME_PK: &str = "RESUME";

/// The key of an instance's [`ResumeWatch`].
pub fn resume_watch_key(instance_id: &str) -> Key {
    Key {
        pk: RESUME_PK.to_owned(),
        sk: instance_key(instance_id),
    }
}

/// The item of a [`ResumeWatch`].
pub fn resume_watch_item(watch: &crate::plan::action::ResumeWatch, ttl_days: u32) -> Item {
    let mut item = resume_watch_key(&watch.instance_id).to_item();
    item.insert("instance_id".into(), Attr::s(&watch.instance_id));
    item.insert("cluster".into(), Attr::s(&watch.cluster));
    item.insert("node".into(), Attr::s(&watch.node));
    item.insert("interruption_id".into(), Attr::s(&watch.interruption_id));
    item.insert("deadline".into(), Attr::s(sortable_time(watch.deadline)));
    item.insert(TTL.into(), Attr::n(ttl_epoch(watch.deadline, ttl_days)));
    item
}

/// A [`ResumeWatch`] read back.
pub fn resume_watch_from_item(
    item: &Item,
) -> Result<crate::plan::action::ResumeWatch, RecordError> {
    Ok(crate::plan::action::ResumeWatch {
        instance_id: get_s(item, "instance_id")?.to_owned(),
        cluster: get_s(item, "cluster")?.to_owned(),
        node: get_s(item, "node")?.to_owned(),
        interruption_id: get_s(item, "interruption_id")?.to_owned(),
        deadline: get_time(item, "deadline")?,
    })
}

/// The partition of [`ScheduledChange`]s waiting for their moment: `SCHEDULED` /
/// `INSTANCE#<id>#EVENT#<event arn>`, one per instance and Health event (an update of the event
/// replaces it). The keeper's tick reads it whole; the interruption function reads one item
/// when a Health event names the instance.
///
/// [`ScheduledChange`]: crate::handoff::ScheduledChange
pub const SCHEDULED_PK: &str = "SCHEDULED";

/// The key of the scheduled change `r` refers to.
pub fn scheduled_change_key(r: &crate::handoff::ScheduledRef) -> Key {
    Key {
        pk: SCHEDULED_PK.to_owned(),
        sk: format!("{}#EVENT#{}", instance_key(&r.instance_id), r.event_arn),
    }
}

/// The item of a scheduled change, with the event to hand off (JSON). It expires `ttl_days`
/// after the change's start, so one the keeper never handed off does not stay forever.
pub fn scheduled_change_item(
    change: &crate::handoff::ScheduledChange,
    event: &serde_json::Value,
    ttl_days: u32,
) -> Item {
    let mut item = scheduled_change_key(&change.reference()).to_item();
    item.insert("instance_id".into(), Attr::s(&change.instance_id));
    item.insert("event_arn".into(), Attr::s(&change.event_arn));
    item.insert("interruption_id".into(), Attr::s(&change.interruption_id));
    item.insert("cluster".into(), Attr::s(&change.cluster));
    item.insert("node".into(), Attr::s(&change.node));
    item.insert(
        "start_time".into(),
        Attr::s(sortable_time(change.start_time)),
    );
    item.insert("due_at".into(), Attr::s(sortable_time(change.due_at)));
    item.insert("event".into(), Attr::s(event.to_string()));
    item.insert(TTL.into(), Attr::n(ttl_epoch(change.start_time, ttl_days)));
    item
}

/// A scheduled change read back, with the event to hand off.
pub fn scheduled_change_from_item(
    item: &Item,
) -> Result<(crate::handoff::ScheduledChange, serde_json::Value), RecordError> {
    let event =
        serde_json::from_str(get_s(item, "event")?).map_err(|source| RecordError::Json {
            name: "event".into(),
            source,
        })?;
    let change = crate::handoff::ScheduledChange {
        instance_id: get_s(item, "instance_id")?.to_owned(),
        event_arn: get_s(item, "event_arn")?.to_owned(),
        interruption_id: get_s(item, "interruption_id")?.to_owned(),
        cluster: get_s(item, "cluster")?.to_owned(),
        node: get_s(item, "node")?.to_owned(),
        start_time: get_time(item, "start_time")?,
        due_at: get_time(item, "due_at")?,
    };
    Ok((change, event))
}

/// The interruption a standby lease item names.
pub fn lease_holder(item: &Item) -> Option<&str> {
    match item.get("interruption_id") {
        Some(Attr::S(iid)) if !iid.is_empty() => Some(iid),
        _ => None,
    }
}

/// Releases a standby's lease (it is back in the pool, or its start failed).
pub fn standby_lease_release(standby_instance: &str) -> Update {
    Update {
        key: standby_lease_key(standby_instance),
        update_expression: "SET released = :true".to_owned(),
        expression_values: BTreeMap::from([(":true".to_owned(), Attr::Bool(true))]),
    }
}

/// Marks a dedupe item completed (the plan's `FinishEvent`).
pub fn dedupe_finish(event_id: &str, instance_id: &str) -> Update {
    Update {
        key: dedupe_key(event_id, instance_id),
        update_expression: "SET completed = :true".to_owned(),
        expression_values: BTreeMap::from([(":true".to_owned(), Attr::Bool(true))]),
    }
}

/// Gives a claimed event up after the delivery that owns it failed (the
/// shell's error path): a retry of the delivery may then claim it at once
/// rather than be ignored as a duplicate until the lease runs out.
pub fn dedupe_release(event_id: &str, instance_id: &str) -> Update {
    Update {
        key: dedupe_key(event_id, instance_id),
        update_expression: "SET released = :true".to_owned(),
        expression_values: BTreeMap::from([(":true".to_owned(), Attr::Bool(true))]),
    }
}

/// Turns the dedupe `GetItem` result into [`Facts::delivery`].
pub fn delivery_from_item(item: Option<&Item>) -> Result<Delivery, RecordError> {
    let Some(item) = item else {
        return Ok(Delivery::New);
    };
    Ok(Delivery::Seen {
        first_seen_at: get_time(item, "first_seen_at")?,
        completed: get_bool(item, "completed")?,
        interruption_id: match item.get("interruption_id") {
            Some(Attr::S(s)) => Some(s.clone()),
            _ => None,
        },
        released: get_bool(item, "released")?,
    })
}

/// An optional BOOL attribute (absent = false).
fn get_bool(item: &Item, name: &str) -> Result<bool, RecordError> {
    match item.get(name) {
        None => Ok(false),
        Some(Attr::Bool(b)) => Ok(*b),
        Some(_) => Err(RecordError::WrongType {
            name: name.into(),
            expected: "BOOL",
        }),
    }
}

// ---------------------------------------------------------------------------
// Interruption header and snapshot.
// ---------------------------------------------------------------------------

/// The interruption header (`000#RECEIVED`), indexed by instance.
pub fn header_item(plan: &Plan, ttl_days: u32) -> Item {
    let mut item = header_key(&plan.interruption_id).to_item();
    let received = sortable_time(plan.received_at);
    item.insert(GSI1_PK.into(), Attr::s(instance_key(&plan.instance_id)));
    item.insert(
        GSI1_SK.into(),
        Attr::s(format!("{received}#{}", plan.interruption_id)),
    );
    item.insert("interruption_id".into(), Attr::s(&plan.interruption_id));
    item.insert("event_id".into(), Attr::s(&plan.event_id));
    item.insert("kind".into(), Attr::s(plan.kind.slug()));
    item.insert("instance_id".into(), Attr::s(&plan.instance_id));
    item.insert("node".into(), Attr::s(&plan.node));
    item.insert("cluster".into(), Attr::s(&plan.cluster));
    item.insert("event_time".into(), Attr::s(sortable_time(plan.event_time)));
    item.insert("received_at".into(), Attr::s(received));
    if let Some(d) = plan.deadline {
        item.insert("deadline".into(), Attr::s(sortable_time(d)));
    }
    item.insert("dry_run".into(), Attr::Bool(plan.dry_run));
    item.insert(TTL.into(), Attr::n(ttl_epoch(plan.received_at, ttl_days)));
    item
}

/// The node snapshot (`001#SNAPSHOT`): the full facts as one JSON string
/// attribute. JSON rather than nested maps keeps the item readable and
/// lets the post-mortem tooling deserialize [`Facts`] directly.
pub fn snapshot_item(
    interruption_id: &str,
    facts: &Facts,
    at: DateTime<Utc>,
    ttl_days: u32,
) -> Result<Item, RecordError> {
    let json = serde_json::to_string(facts).map_err(|source| RecordError::Json {
        name: "facts".into(),
        source,
    })?;
    let mut item = snapshot_key(interruption_id).to_item();
    item.insert("taken_at".into(), Attr::s(sortable_time(at)));
    item.insert("instance_id".into(), Attr::s(&facts.instance_id));
    if let Some(node) = &facts.node {
        item.insert("node".into(), Attr::s(&node.name));
    }
    item.insert("pod_count".into(), Attr::n(facts.pods.len() as i64));
    item.insert("facts".into(), Attr::S(json));
    item.insert(TTL.into(), Attr::n(ttl_epoch(at, ttl_days)));
    Ok(item)
}

/// Reads a snapshot item back.
pub fn facts_from_snapshot(item: &Item) -> Result<Facts, RecordError> {
    let json = get_s(item, "facts")?;
    serde_json::from_str(json).map_err(|source| RecordError::Json {
        name: "facts".into(),
        source,
    })
}

// ---------------------------------------------------------------------------
// Timeline.
// ---------------------------------------------------------------------------

/// A milestone of an interruption.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum TimelineStep {
    /// The event was accepted.
    Received,
    /// Cordoned, tainted, excluded from load balancers.
    Cordoned,
    /// Tainted `PreferNoSchedule` only (a rebalance recommendation): nothing drained.
    Tainted,
    /// Deregistered from every target group.
    Deregistered,
    /// Detached from the Auto Scaling group.
    DetachedFromAsg,
    /// An eviction was sent.
    EvictionIssued {
        /// Pod.
        pod: PodRef,
    },
    /// An eviction was refused (PDB) and will be retried.
    EvictionRetried {
        /// Pod.
        pod: PodRef,
        /// Retry number (1 = first retry).
        attempt: u32,
    },
    /// The pod is gone.
    Evicted {
        /// Pod.
        pod: PodRef,
    },
    /// The pod was force-deleted at the deadline.
    ForceDeleted {
        /// Pod.
        pod: PodRef,
    },
    /// Every evictable pod is gone.
    Drained,
    /// The deadline came with pods still present.
    DeadlineReached {
        /// The pods still present.
        remaining: Vec<PodRef>,
    },
    /// The lifecycle action was completed.
    LifecycleCompleted,
    /// The out-of-service taint was applied.
    OutOfServiceTainted,
    /// A warm standby was started to take the node's replacement pods.
    StandbyStarted {
        /// The standby instance.
        standby: String,
        /// Its instance type now (the interrupted node's).
        instance_type: String,
        /// Its type before, when the keeper changed it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retyped_from: Option<String>,
    },
    /// A later or concurrent delivery of the interruption found the standby
    /// already serving it, and only watches for the replacements.
    StandbyJoined {
        /// The standby instance.
        standby: String,
    },
    /// No standby could take the node's pods.
    NoStandby {
        /// Why (e.g. none available in the zone).
        reason: String,
    },
    /// A replacement pod got the standby toleration.
    ReplacementTolerated {
        /// Pod.
        pod: PodRef,
    },
    /// Spot capacity is back: the standby was drained, stopped and returned to the pool.
    StandbyReturned {
        /// The standby instance.
        standby: String,
    },
    /// The instance came back (running again, its node Ready, the interruption's deadline
    /// past): costop gave its node back what it took.
    Resumed {
        /// What was given back (`uncordoned`, taint keys, label keys); empty when the node
        /// already was as before.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        restored: Vec<String>,
    },
    /// An AWS Health scheduled change further off than the lead: kept until its moment, when
    /// the keeper hands it to the interruption function.
    Scheduled {
        /// When the change starts.
        start_time: DateTime<Utc>,
        /// When costop acts on it.
        due_at: DateTime<Utc>,
    },
    /// The keeper handed the scheduled change to the interruption function.
    HandedOff,
    /// An update of the Health event closed it, or resolved the instance: the scheduled
    /// change will not be acted on.
    ScheduleCancelled {
        /// What the update said (`closed`, `resolved`).
        reason: String,
    },
    /// Nothing was done.
    Ignored {
        /// Why.
        reason: IgnoreReason,
    },
    /// A step failed.
    Failed {
        /// The action that failed ([`crate::Action::name`]).
        action: String,
        /// The error, as displayed.
        error: String,
    },
}

impl TimelineStep {
    /// UPPER_SNAKE name used in sort keys.
    pub fn name(&self) -> &'static str {
        match self {
            TimelineStep::Received => "RECEIVED",
            TimelineStep::Cordoned => "CORDONED",
            TimelineStep::Tainted => "TAINTED",
            TimelineStep::Deregistered => "DEREGISTERED",
            TimelineStep::DetachedFromAsg => "DETACHED_FROM_ASG",
            TimelineStep::EvictionIssued { .. } => "EVICTION_ISSUED",
            TimelineStep::EvictionRetried { .. } => "EVICTION_RETRIED",
            TimelineStep::Evicted { .. } => "EVICTED",
            TimelineStep::ForceDeleted { .. } => "FORCE_DELETED",
            TimelineStep::Drained => "DRAINED",
            TimelineStep::DeadlineReached { .. } => "DEADLINE_REACHED",
            TimelineStep::LifecycleCompleted => "LIFECYCLE_COMPLETED",
            TimelineStep::OutOfServiceTainted => "OUT_OF_SERVICE_TAINTED",
            TimelineStep::StandbyStarted { .. } => "STANDBY_STARTED",
            TimelineStep::StandbyJoined { .. } => "STANDBY_JOINED",
            TimelineStep::NoStandby { .. } => "NO_STANDBY",
            TimelineStep::ReplacementTolerated { .. } => "REPLACEMENT_TOLERATED",
            TimelineStep::StandbyReturned { .. } => "STANDBY_RETURNED",
            TimelineStep::Resumed { .. } => "RESUMED",
            TimelineStep::Scheduled { .. } => "SCHEDULED",
            TimelineStep::HandedOff => "HANDED_OFF",
            TimelineStep::ScheduleCancelled { .. } => "SCHEDULE_CANCELLED",
            TimelineStep::Ignored { .. } => "IGNORED",
            TimelineStep::Failed { .. } => "FAILED",
        }
    }

    /// The pod a per-pod step is about.
    pub fn pod(&self) -> Option<&PodRef> {
        match self {
            TimelineStep::EvictionIssued { pod }
            | TimelineStep::EvictionRetried { pod, .. }
            | TimelineStep::Evicted { pod }
            | TimelineStep::ForceDeleted { pod }
            | TimelineStep::ReplacementTolerated { pod } => Some(pod),
            _ => None,
        }
    }
}

/// One timeline entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// Interruption.
    pub interruption_id: String,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What happened.
    pub step: TimelineStep,
}

impl TimelineEntry {
    /// Its key. Per-pod steps append the pod (and retry number) so
    /// concurrent evictions in the same microsecond never collide.
    pub fn key(&self) -> Key {
        let mut sk = format!(
            "{SK_TIMELINE_PREFIX}{}#{}",
            sortable_time(self.at),
            self.step.name()
        );
        if let Some(pod) = self.step.pod() {
            sk.push_str(&format!("#{pod}"));
        }
        if let TimelineStep::EvictionRetried { attempt, .. } = &self.step {
            sk.push_str(&format!("#{attempt}"));
        }
        Key {
            pk: interruption_pk(&self.interruption_id),
            sk,
        }
    }

    /// As an item: the key, `at`, `step` (name) and `detail` (the step as JSON).
    pub fn to_item(&self, ttl_days: u32) -> Result<Item, RecordError> {
        let detail = serde_json::to_string(&self.step).map_err(|source| RecordError::Json {
            name: "detail".into(),
            source,
        })?;
        let mut item = self.key().to_item();
        item.insert("interruption_id".into(), Attr::s(&self.interruption_id));
        item.insert("at".into(), Attr::s(sortable_time(self.at)));
        item.insert("step".into(), Attr::s(self.step.name()));
        item.insert("detail".into(), Attr::S(detail));
        item.insert(TTL.into(), Attr::n(ttl_epoch(self.at, ttl_days)));
        Ok(item)
    }

    /// Reads an entry back.
    pub fn from_item(item: &Item) -> Result<Self, RecordError> {
        let detail = get_s(item, "detail")?;
        Ok(TimelineEntry {
            interruption_id: get_s(item, "interruption_id")?.to_owned(),
            at: get_time(item, "at")?,
            step: serde_json::from_str(detail).map_err(|source| RecordError::Json {
                name: "detail".into(),
                source,
            })?,
        })
    }
}

fn get_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, RecordError> {
    match item.get(name) {
        Some(Attr::S(s)) => Ok(s),
        Some(_) => Err(RecordError::WrongType {
            name: name.to_owned(),
            expected: "S",
        }),
        None => Err(RecordError::MissingAttribute {
            name: name.to_owned(),
        }),
    }
}

fn get_time(item: &Item, name: &str) -> Result<DateTime<Utc>, RecordError> {
    let s = get_s(item, name)?;
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|source| RecordError::InvalidTimestamp {
            name: name.to_owned(),
            value: s.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn pod(n: &str) -> PodRef {
        PodRef {
            namespace: "default".into(),
            name: n.into(),
        }
    }

    #[test]
    fn keys_follow_the_documented_design() {
        assert_eq!(
            dedupe_key("e1", "i-12345678"),
            Key {
                pk: "EVENT#e1".into(),
                sk: "INSTANCE#i-12345678".into()
            }
        );
        assert_eq!(header_key("x").pk, "INTERRUPTION#x");
        assert_eq!(header_key("x").sk, "000#RECEIVED");
        let e = TimelineEntry {
            interruption_id: "x".into(),
            at: t("2025-01-01T00:00:01.5Z"),
            step: TimelineStep::EvictionRetried {
                pod: pod("web"),
                attempt: 2,
            },
        };
        assert_eq!(
            e.key().sk,
            "T#2025-01-01T00:00:01.500000Z#EVICTION_RETRIED#default/web#2"
        );
    }

    #[test]
    fn header_and_snapshot_sort_before_the_timeline() {
        let t0 = TimelineEntry {
            interruption_id: "x".into(),
            at: t("1970-01-01T00:00:00Z"),
            step: TimelineStep::Received,
        };
        let mut sks = [t0.key().sk, SK_SNAPSHOT.to_owned(), SK_HEADER.to_owned()];
        sks.sort();
        assert_eq!(sks[0], SK_HEADER);
        assert_eq!(sks[1], SK_SNAPSHOT);
    }

    #[test]
    fn timeline_entries_sort_by_time() {
        let a = TimelineEntry {
            interruption_id: "x".into(),
            at: t("2025-01-01T00:00:09.999999Z"),
            step: TimelineStep::Drained,
        };
        let b = TimelineEntry {
            interruption_id: "x".into(),
            at: t("2025-01-01T00:00:10Z"),
            step: TimelineStep::Cordoned,
        };
        assert!(a.key().sk < b.key().sk);
    }

    #[test]
    fn timeline_entries_round_trip_through_items() {
        let e = TimelineEntry {
            interruption_id: "x".into(),
            at: t("2025-01-01T00:00:00.000123Z"),
            step: TimelineStep::DeadlineReached {
                remaining: vec![pod("a"), pod("b")],
            },
        };
        let item = e.to_item(30).unwrap();
        assert_eq!(item.get("step"), Some(&Attr::s("DEADLINE_REACHED")));
        assert_eq!(TimelineEntry::from_item(&item).unwrap(), e);
    }

    #[test]
    fn the_dedupe_item_round_trips_into_a_delivery() {
        let now = t("2025-01-01T00:00:00Z");
        let put = dedupe_put(
            &RecordEvent {
                event_id: "e".into(),
                instance_id: "i-12345678".into(),
                interruption_id: "x".into(),
                takeover_if_seen_before: now - TimeDelta::seconds(180),
                expires_at: now + TimeDelta::days(30),
            },
            now,
        );
        assert!(
            put.condition_expression
                .starts_with("attribute_not_exists(pk)")
        );
        assert_eq!(put.item.get(TTL), Some(&Attr::n(1_738_281_600)));
        assert_eq!(
            delivery_from_item(Some(&put.item)).unwrap(),
            Delivery::Seen {
                first_seen_at: now,
                completed: false,
                interruption_id: Some("x".into()),
                released: false,
            }
        );
        assert_eq!(delivery_from_item(None).unwrap(), Delivery::New);
        let mut broken = put.item.clone();
        broken.remove("first_seen_at");
        assert!(matches!(
            delivery_from_item(Some(&broken)),
            Err(RecordError::MissingAttribute { .. })
        ));
    }

    #[test]
    fn attrs_serialize_as_dynamodb_json() {
        let json = serde_json::to_string(&Attr::Bool(true)).unwrap();
        assert_eq!(json, r#"{"BOOL":true}"#);
        assert_eq!(serde_json::to_string(&Attr::n(5)).unwrap(), r#"{"N":"5"}"#);
    }
}
