//! The queue table (`COSTOP_QUEUE_TABLE`): its keys, item shapes, and the operations that queue,
//! replay and dead-letter a write — each one DynamoDB transaction, so a write is either wholly
//! queued (counted, receipted, stored) or not at all, and wholly settled or not at all.
//!
//! | item | `pk` | `sk` |
//! |---|---|---|
//! | queue depth, one shard of it (`depth`) | `QUEUE` | `DEPTH#<shard, 2 digits>` |
//! | a pending write (request without its body) | `PENDING` | `<path>#<seq, 20 digits>` |
//! | a piece of its body (base64, ≤ 256 KiB raw) | `PENDING` | `<path>#<seq>#BODY#<n, 3 digits>` |
//! | a dead-lettered write and its body | `DEAD` | as under `PENDING` |
//! | a receipt | `RECEIPT#<id>` | `RECEIPT` |
//! | an idempotency key's receipt | `IDEMPOTENCY#<key>` | `KEY` |
//!
//! `Query pk = PENDING` returns every pending write path by path, each path in sequence order,
//! each write followed by its body pieces (a request path cannot hold `#`: it starts a
//! fragment). The body is split because an item holds at most 400 KB and a body up to 1 MB.
//!
//! A write's place on its path (`seq`) is the time the fallback took it, in nanoseconds since
//! the epoch ([`arrival_seq`]), so queueing is one call: no counter to take first, none for
//! concurrent writes to meet on. Writes a client sends one after another are ordered as it sent
//! them as long as two execution environments' clocks agree better than one write's round trip
//! (the next leaves only after the previous one's answer, a DynamoDB transaction later). Lambda
//! keeps its clock with NTP
//! (<https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html>, `TZ`), on AWS
//! from the Amazon Time Sync Service, whose error is typically well under a millisecond
//! (<https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/set-time.html>). Writes sent at once
//! have no order to keep. Two writes of a path on the same nanosecond cannot overwrite each
//! other: the write's put is conditional ([`ENQUEUE_WRITE_OP`]) and the later one takes the
//! next nanosecond.
//!
//! The depth is counted in [`DEPTH_SHARDS`] items, each write on one of them (its
//! `depth_shard`), each holding at most its share of `COSTOP_QUEUE_MAX_DEPTH`
//! ([`shard_quota`]). One counter would be in every queueing transaction, and DynamoDB cancels
//! a transaction that meets another on the same item (`TransactionConflict`): at tens of
//! writes a second most would be cancelled and retried. The queue is full when the shards'
//! sum reaches the maximum; a write whose shard is full moves to one with room.
//!
//! Pending writes and their receipts never expire: a write is never dropped. A settled receipt
//! and its idempotency key expire `COSTOP_QUEUE_RECEIPT_DAYS` after settling; dead letters stay
//! until someone deals with them.

use std::collections::BTreeMap;

use base64::Engine;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

#[cfg(test)]
use crate::record::PK;
use crate::record::{Attr, Item, Key, RecordError, TTL, sortable_time};

/// Partition of the depth counter's shards.
pub const QUEUE_PK: &str = "QUEUE";
/// Sort key prefix of the depth counter's shards.
pub const DEPTH_SK: &str = "DEPTH";
/// Items the depth is counted in. Queueing at a rate `r` with transactions that take `t`
/// meets another on its shard with a chance of about `2·r·t / DEPTH_SHARDS` (90 writes/s at
/// 25 ms: 14 %; with one counter it would be every other write or more).
pub const DEPTH_SHARDS: u32 = 32;
/// The depth counter's attribute: pending writes.
pub const DEPTH: &str = "depth";
/// The sequence attribute of writes and receipts.
pub const SEQ: &str = "seq";
/// Partition of pending writes.
pub const PENDING_PK: &str = "PENDING";
/// Partition of dead-lettered writes.
pub const DEAD_PK: &str = "DEAD";
/// Sort key of a receipt.
pub const RECEIPT_SK: &str = "RECEIPT";
/// Sort key of an idempotency key's item.
pub const KEY_SK: &str = "KEY";
/// The raw bytes of body per piece: 256 KiB, 342 KB in base64, under DynamoDB's 400 KB item.
pub const BODY_PIECE_BYTES: usize = 256 * 1024;
/// The condition that an item exists (a settle must not resurrect a write settled meanwhile).
pub const EXISTS: &str = "attribute_exists(pk)";
/// The condition that an item does not exist yet.
pub const NOT_EXISTS: &str = "attribute_not_exists(pk)";

/// The position of the depth update in [`enqueue_ops`]: its condition failing means full.
pub const ENQUEUE_DEPTH_OP: usize = 0;
/// The position of the idempotency put in [`enqueue_ops`]: its condition failing means the
/// key was used before.
pub const ENQUEUE_KEY_OP: usize = 1;
/// The position of the receipt put in [`enqueue_ops`]: its condition failing means a
/// generated receipt id was taken.
pub const ENQUEUE_RECEIPT_OP: usize = 2;
/// The position of the write's put in [`enqueue_ops`]: its condition failing means another
/// write of the path holds its sequence (arrived on the same nanosecond).
pub const ENQUEUE_WRITE_OP: usize = 3;

/// One queued request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedWrite {
    /// Its receipt.
    pub receipt_id: String,
    /// The request path: writes are ordered per path.
    pub path: String,
    /// Its place on the path: when the fallback took it, nanoseconds since the epoch
    /// ([`arrival_seq`]).
    pub seq: u64,
    /// The method.
    pub method: String,
    /// The query string, as received.
    pub query: Option<String>,
    /// The end-to-end headers, in order (a name may repeat).
    pub headers: Vec<(String, String)>,
    /// The body.
    #[serde(skip)]
    pub body: Vec<u8>,
    /// The key every replay carries: the client's, or one generated at queueing.
    pub idempotency_key: String,
    /// The client sent the key (else it was generated).
    pub client_key: bool,
    /// When it was queued.
    pub queued_at: DateTime<Utc>,
    /// Replays tried so far.
    pub attempts: u32,
    /// Why the last replay failed.
    pub last_error: Option<String>,
    /// The depth shard it is counted on (see [`DEPTH_SHARDS`]).
    #[serde(default)]
    pub depth_shard: u32,
}

/// Where a receipt's write is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptState {
    /// Waiting for traffic to be back.
    Queued,
    /// Applied by the service, which answered `status`.
    Replayed,
    /// Gave up after the configured attempts; kept for someone to deal with.
    DeadLettered,
}

impl ReceiptState {
    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiptState::Queued => "queued",
            ReceiptState::Replayed => "replayed",
            ReceiptState::DeadLettered => "dead_lettered",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Self::Queued, Self::Replayed, Self::DeadLettered]
            .into_iter()
            .find(|st| st.as_str() == s)
    }
}

/// A receipt: what `GET /_costop/receipts/{id}` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// Its id.
    pub id: String,
    /// The write's method.
    pub method: String,
    /// The write's path.
    pub path: String,
    /// Its place on the path.
    pub seq: u64,
    /// Where it is.
    pub state: ReceiptState,
    /// The service's status when replayed (or the last one seen when dead-lettered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Replays tried.
    pub attempts: u32,
    /// When it was queued.
    pub queued_at: DateTime<Utc>,
    /// When it was replayed or dead-lettered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settled_at: Option<DateTime<Utc>>,
    /// Why the last replay failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl Receipt {
    /// The receipt of a write just queued.
    pub fn queued(w: &QueuedWrite) -> Receipt {
        Receipt {
            id: w.receipt_id.clone(),
            method: w.method.clone(),
            path: w.path.clone(),
            seq: w.seq,
            state: ReceiptState::Queued,
            status: None,
            attempts: 0,
            queued_at: w.queued_at,
            settled_at: None,
            last_error: None,
        }
    }
}

/// One operation of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `Put`, with an optional condition.
    Put {
        /// The item.
        item: Item,
        /// `ConditionExpression`.
        condition: Option<&'static str>,
    },
    /// `Update`.
    Update {
        /// The key.
        key: Key,
        /// `UpdateExpression`, attribute names as `#n<i>`, values as `:v<i>`.
        expression: String,
        /// `ConditionExpression`, in the same names and values.
        condition: Option<String>,
        /// `ExpressionAttributeNames`.
        names: BTreeMap<String, String>,
        /// `ExpressionAttributeValues`.
        values: Item,
    },
    /// `Delete`, with an optional condition.
    Delete {
        /// The key.
        key: Key,
        /// `ConditionExpression`.
        condition: Option<&'static str>,
    },
}

/// A depth shard's key.
pub fn depth_key(shard: u32) -> Key {
    Key {
        pk: QUEUE_PK.into(),
        sk: format!("{DEPTH_SK}#{shard:02}"),
    }
}

/// The shards a queue of at most `max_depth` writes uses: every one, or one per write when
/// the maximum is smaller than [`DEPTH_SHARDS`] (so each holds at least one).
pub fn depth_shards(max_depth: u64) -> u32 {
    u32::try_from(max_depth.min(u64::from(DEPTH_SHARDS))).unwrap_or(DEPTH_SHARDS)
}

/// What shard `shard` may hold: the maximum split evenly over [`depth_shards`], the first ones
/// taking the remainder, so the quotas add up to `max_depth`.
pub fn shard_quota(max_depth: u64, shard: u32) -> u64 {
    let n = u64::from(depth_shards(max_depth));
    if n == 0 || u64::from(shard) >= n {
        return 0;
    }
    max_depth / n + u64::from(u64::from(shard) < max_depth % n)
}

/// The shard of a write queued with the random number `draw` when the shards hold
/// `depths` (by shard; missing ones empty): `None` when the queue is full. A shard is drawn
/// among those with room, so a write never waits on a full shard while others have room.
pub fn shard_with_room(max_depth: u64, depths: &BTreeMap<u32, u64>, draw: u64) -> Option<u32> {
    let total: u64 = depths.values().sum();
    if total >= max_depth {
        return None;
    }
    let room: Vec<u32> = (0..depth_shards(max_depth))
        .filter(|s| depths.get(s).copied().unwrap_or(0) < shard_quota(max_depth, *s))
        .collect();
    if room.is_empty() {
        return None;
    }
    Some(room[(draw % room.len() as u64) as usize])
}

/// A write's place on its path when taken at `queued_at`: nanoseconds since the epoch (0
/// before it; chrono counts them to 2262, 20 digits of sort key hold them all).
pub fn arrival_seq(queued_at: DateTime<Utc>) -> u64 {
    queued_at
        .timestamp_nanos_opt()
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(0)
}

/// A receipt's key.
pub fn receipt_key(id: &str) -> Key {
    Key {
        pk: format!("RECEIPT#{id}"),
        sk: RECEIPT_SK.into(),
    }
}

/// An idempotency key's item key.
pub fn idempotency_key(key: &str) -> Key {
    Key {
        pk: format!("IDEMPOTENCY#{key}"),
        sk: KEY_SK.into(),
    }
}

/// The sort key of a write (under `PENDING` or `DEAD`).
pub fn write_sk(path: &str, seq: u64) -> String {
    format!("{path}#{seq:020}")
}

fn piece_sk(path: &str, seq: u64, n: usize) -> String {
    format!("{}#BODY#{n:03}", write_sk(path, seq))
}

fn pieces(body: &[u8]) -> usize {
    body.len().div_ceil(BODY_PIECE_BYTES)
}

/// The write's items under partition `pk`: the request, then its body pieces.
pub fn write_items(w: &QueuedWrite, pk: &str) -> Vec<Item> {
    let mut head = Key {
        pk: pk.into(),
        sk: write_sk(&w.path, w.seq),
    }
    .to_item();
    head.insert("receipt_id".into(), Attr::s(&w.receipt_id));
    head.insert("path".into(), Attr::s(&w.path));
    head.insert(SEQ.into(), Attr::N(w.seq.to_string()));
    head.insert("method".into(), Attr::s(&w.method));
    if let Some(q) = &w.query {
        head.insert("query".into(), Attr::s(q));
    }
    head.insert(
        "headers".into(),
        Attr::L(
            w.headers
                .iter()
                .map(|(n, v)| Attr::L(vec![Attr::s(n), Attr::s(v)]))
                .collect(),
        ),
    );
    head.insert("idempotency_key".into(), Attr::s(&w.idempotency_key));
    head.insert("client_key".into(), Attr::Bool(w.client_key));
    head.insert("queued_at".into(), Attr::s(sortable_time(w.queued_at)));
    head.insert("attempts".into(), Attr::N(w.attempts.to_string()));
    if let Some(e) = &w.last_error {
        head.insert("last_error".into(), Attr::s(e));
    }
    head.insert("pieces".into(), Attr::N(pieces(&w.body).to_string()));
    head.insert("depth_shard".into(), Attr::N(w.depth_shard.to_string()));
    let mut items = vec![head];
    for (n, chunk) in w.body.chunks(BODY_PIECE_BYTES).enumerate() {
        let mut piece = Key {
            pk: pk.into(),
            sk: piece_sk(&w.path, w.seq, n),
        }
        .to_item();
        piece.insert("receipt_id".into(), Attr::s(&w.receipt_id));
        piece.insert("piece".into(), Attr::N(n.to_string()));
        piece.insert(
            "data".into(),
            Attr::s(base64::engine::general_purpose::STANDARD.encode(chunk)),
        );
        items.push(piece);
    }
    items
}

/// The keys of a write's items under `pk`.
pub fn write_keys(w: &QueuedWrite, pk: &str) -> Vec<Key> {
    let mut keys = vec![Key {
        pk: pk.into(),
        sk: write_sk(&w.path, w.seq),
    }];
    keys.extend((0..pieces(&w.body)).map(|n| Key {
        pk: pk.into(),
        sk: piece_sk(&w.path, w.seq, n),
    }));
    keys
}

/// The receipt's item.
pub fn receipt_item(r: &Receipt) -> Item {
    let mut item = receipt_key(&r.id).to_item();
    item.insert("receipt_id".into(), Attr::s(&r.id));
    item.insert("method".into(), Attr::s(&r.method));
    item.insert("path".into(), Attr::s(&r.path));
    item.insert(SEQ.into(), Attr::N(r.seq.to_string()));
    item.insert("state".into(), Attr::s(r.state.as_str()));
    if let Some(s) = r.status {
        item.insert("http_status".into(), Attr::n(i64::from(s)));
    }
    item.insert("attempts".into(), Attr::N(r.attempts.to_string()));
    item.insert("queued_at".into(), Attr::s(sortable_time(r.queued_at)));
    if let Some(t) = r.settled_at {
        item.insert("settled_at".into(), Attr::s(sortable_time(t)));
    }
    if let Some(e) = &r.last_error {
        item.insert("last_error".into(), Attr::s(e));
    }
    item
}

/// `SET` of each attribute, names and values numbered; `condition` may use `#n<i>` of the
/// attributes set and the extra values given.
fn set_op(key: Key, set: Vec<(&str, Attr)>, condition: Option<&str>) -> Op {
    let mut names = BTreeMap::new();
    let mut values = BTreeMap::new();
    let mut parts = Vec::new();
    for (i, (name, value)) in set.into_iter().enumerate() {
        names.insert(format!("#n{i}"), name.to_owned());
        values.insert(format!(":v{i}"), value);
        parts.push(format!("#n{i} = :v{i}"));
    }
    Op::Update {
        key,
        expression: format!("SET {}", parts.join(", ")),
        condition: condition.map(str::to_owned),
        names,
        values,
    }
}

/// A depth shard changed by `delta`, up to `max` when given.
fn depth_op(shard: u32, delta: i64, max: Option<u64>) -> Op {
    let mut names = BTreeMap::from([("#n0".to_owned(), DEPTH.to_owned())]);
    let mut values = BTreeMap::from([(":v0".to_owned(), Attr::n(delta))]);
    let condition = max.map(|max| {
        values.insert(":max".to_owned(), Attr::N(max.to_string()));
        names.insert("#n0".to_owned(), DEPTH.to_owned());
        "attribute_not_exists(#n0) OR #n0 < :max".to_owned()
    });
    Op::Update {
        key: depth_key(shard),
        expression: "ADD #n0 :v0".into(),
        condition,
        names,
        values,
    }
}

/// Queueing `w`: the depth counted up unless its shard reached its share of `max_depth` (op
/// [`ENQUEUE_DEPTH_OP`]), the idempotency key taken unless taken before (op
/// [`ENQUEUE_KEY_OP`]), the receipt put unless its id was taken (op [`ENQUEUE_RECEIPT_OP`]),
/// the write put unless its path's sequence was taken (op [`ENQUEUE_WRITE_OP`]), then its body
/// pieces.
pub fn enqueue_ops(w: &QueuedWrite, max_depth: u64) -> Vec<Op> {
    let mut key_item = idempotency_key(&w.idempotency_key).to_item();
    key_item.insert("receipt_id".into(), Attr::s(&w.receipt_id));
    let mut ops = vec![
        depth_op(
            w.depth_shard,
            1,
            Some(shard_quota(max_depth, w.depth_shard)),
        ),
        Op::Put {
            item: key_item,
            condition: Some(NOT_EXISTS),
        },
        Op::Put {
            item: receipt_item(&Receipt::queued(w)),
            condition: Some(NOT_EXISTS),
        },
    ];
    ops.extend(
        write_items(w, PENDING_PK)
            .into_iter()
            .enumerate()
            .map(|(i, item)| Op::Put {
                item,
                // The head's condition covers its pieces: they share its sort key's prefix.
                condition: (i == 0).then_some(NOT_EXISTS),
            }),
    );
    ops
}

fn ttl_of(now: DateTime<Utc>, ttl_days: u32) -> Attr {
    Attr::n((now + TimeDelta::days(i64::from(ttl_days))).timestamp())
}

/// A replay the service answered with `status`: the write leaves the queue, the receipt says
/// replayed with the status, the depth counts down, receipt and key expire in `ttl_days`.
pub fn replayed_ops(w: &QueuedWrite, status: u16, now: DateTime<Utc>, ttl_days: u32) -> Vec<Op> {
    let mut ops: Vec<Op> = write_keys(w, PENDING_PK)
        .into_iter()
        .enumerate()
        .map(|(i, key)| Op::Delete {
            key,
            condition: (i == 0).then_some(EXISTS),
        })
        .collect();
    ops.push(set_op(
        receipt_key(&w.receipt_id),
        vec![
            ("state", Attr::s(ReceiptState::Replayed.as_str())),
            ("http_status", Attr::n(i64::from(status))),
            ("attempts", Attr::N((w.attempts + 1).to_string())),
            ("settled_at", Attr::s(sortable_time(now))),
            (TTL, ttl_of(now, ttl_days)),
        ],
        Some(EXISTS),
    ));
    ops.push(set_op(
        idempotency_key(&w.idempotency_key),
        vec![(TTL, ttl_of(now, ttl_days))],
        None,
    ));
    ops.push(depth_op(w.depth_shard, -1, None));
    ops
}

/// A replay that failed and will be tried again: the write's attempts and last error.
pub fn failed_op(w: &QueuedWrite, attempts: u32, error: &str) -> Op {
    set_op(
        Key {
            pk: PENDING_PK.into(),
            sk: write_sk(&w.path, w.seq),
        },
        vec![
            ("attempts", Attr::N(attempts.to_string())),
            ("last_error", Attr::s(error)),
        ],
        Some(EXISTS),
    )
}

/// A write given up on after `attempts`: moved whole from `PENDING` to `DEAD`, the receipt
/// says dead-lettered with the last error (and status, if the service answered one), the depth
/// counts down. Nothing expires.
pub fn dead_letter_ops(
    w: &QueuedWrite,
    attempts: u32,
    status: Option<u16>,
    error: &str,
    now: DateTime<Utc>,
) -> Vec<Op> {
    let dead = QueuedWrite {
        attempts,
        last_error: Some(error.to_owned()),
        ..w.clone()
    };
    let mut ops: Vec<Op> = write_items(&dead, DEAD_PK)
        .into_iter()
        .map(|item| Op::Put {
            item,
            condition: None,
        })
        .collect();
    ops.extend(
        write_keys(w, PENDING_PK)
            .into_iter()
            .enumerate()
            .map(|(i, key)| Op::Delete {
                key,
                condition: (i == 0).then_some(EXISTS),
            }),
    );
    let mut set = vec![
        ("state", Attr::s(ReceiptState::DeadLettered.as_str())),
        ("attempts", Attr::N(attempts.to_string())),
        ("settled_at", Attr::s(sortable_time(now))),
        ("last_error", Attr::s(error)),
    ];
    if let Some(s) = status {
        set.push(("http_status", Attr::n(i64::from(s))));
    }
    ops.push(set_op(receipt_key(&w.receipt_id), set, Some(EXISTS)));
    ops.push(depth_op(w.depth_shard, -1, None));
    ops
}

// ---------------------------------------------------------------------------
// Reading back.
// ---------------------------------------------------------------------------

fn s<'a>(item: &'a Item, name: &str) -> Result<&'a str, RecordError> {
    match item.get(name) {
        Some(Attr::S(v)) => Ok(v),
        Some(_) => Err(RecordError::WrongType {
            name: name.into(),
            expected: "S",
        }),
        None => Err(RecordError::MissingAttribute { name: name.into() }),
    }
}

fn opt_s(item: &Item, name: &str) -> Option<String> {
    match item.get(name) {
        Some(Attr::S(v)) => Some(v.clone()),
        _ => None,
    }
}

fn n<T: std::str::FromStr>(item: &Item, name: &str) -> Result<T, RecordError> {
    match item.get(name) {
        Some(Attr::N(v)) => v.parse().map_err(|_| RecordError::WrongType {
            name: name.into(),
            expected: "N (in range)",
        }),
        Some(_) => Err(RecordError::WrongType {
            name: name.into(),
            expected: "N",
        }),
        None => Err(RecordError::MissingAttribute { name: name.into() }),
    }
}

fn time(item: &Item, name: &str) -> Result<DateTime<Utc>, RecordError> {
    let v = s(item, name)?;
    DateTime::parse_from_rfc3339(v)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|source| RecordError::InvalidTimestamp {
            name: name.into(),
            value: v.into(),
            source,
        })
}

/// A receipt read back.
pub fn receipt_from_item(item: &Item) -> Result<Receipt, RecordError> {
    Ok(Receipt {
        id: s(item, "receipt_id")?.to_owned(),
        method: s(item, "method")?.to_owned(),
        path: s(item, "path")?.to_owned(),
        seq: n(item, SEQ)?,
        state: ReceiptState::parse(s(item, "state")?).ok_or(RecordError::WrongType {
            name: "state".into(),
            expected: "queued, replayed or dead_lettered",
        })?,
        status: n(item, "http_status").ok(),
        attempts: n(item, "attempts")?,
        queued_at: time(item, "queued_at")?,
        settled_at: time(item, "settled_at").ok(),
        last_error: opt_s(item, "last_error"),
    })
}

/// The receipt an idempotency key's item names.
pub fn receipt_of_key(item: &Item) -> Result<&str, RecordError> {
    s(item, "receipt_id")
}

/// The depth shards' values, by shard, from the items of the `QUEUE` partition (others and
/// unreadable ones skipped).
pub fn depths_from_items(items: &[Item]) -> BTreeMap<u32, u64> {
    items
        .iter()
        .filter_map(|i| {
            let shard = s(i, crate::record::SK)
                .ok()?
                .strip_prefix(DEPTH_SK)?
                .strip_prefix('#')?
                .parse()
                .ok()?;
            Some((shard, n(i, DEPTH).ok()?))
        })
        .collect()
}

fn head_from_item(item: &Item) -> Result<(QueuedWrite, usize), RecordError> {
    let headers = match item.get("headers") {
        Some(Attr::L(l)) => l
            .iter()
            .map(|h| match h {
                Attr::L(p) => match p.as_slice() {
                    [Attr::S(n), Attr::S(v)] => Ok((n.clone(), v.clone())),
                    _ => Err(()),
                },
                _ => Err(()),
            })
            .collect::<Result<Vec<_>, ()>>()
            .map_err(|()| RecordError::WrongType {
                name: "headers".into(),
                expected: "L of [S, S]",
            })?,
        _ => Vec::new(),
    };
    let w = QueuedWrite {
        receipt_id: s(item, "receipt_id")?.to_owned(),
        path: s(item, "path")?.to_owned(),
        seq: n(item, SEQ)?,
        method: s(item, "method")?.to_owned(),
        query: opt_s(item, "query"),
        headers,
        body: Vec::new(),
        idempotency_key: s(item, "idempotency_key")?.to_owned(),
        client_key: matches!(item.get("client_key"), Some(Attr::Bool(true))),
        queued_at: time(item, "queued_at")?,
        attempts: n(item, "attempts")?,
        last_error: opt_s(item, "last_error"),
        depth_shard: n(item, "depth_shard").unwrap_or(0),
    };
    Ok((w, n(item, "pieces")?))
}

/// The writes in a partition's items (as `Query` returns them, any order), each with its body
/// put back together, sorted by path and sequence; items that do not make a whole write are
/// returned as errors beside them (a write missing a body piece is not replayed half).
pub fn writes_from_items(items: &[Item]) -> (Vec<QueuedWrite>, Vec<RecordError>) {
    let mut heads: BTreeMap<String, (QueuedWrite, usize)> = BTreeMap::new();
    let mut bodies: BTreeMap<String, BTreeMap<usize, Vec<u8>>> = BTreeMap::new();
    let mut errors = Vec::new();
    for item in items {
        if item.contains_key("piece") {
            let piece = (|| {
                let id = s(item, "receipt_id")?.to_owned();
                let part: usize = n(item, "piece")?;
                let data = base64::engine::general_purpose::STANDARD
                    .decode(s(item, "data")?)
                    .map_err(|_| RecordError::WrongType {
                        name: "data".into(),
                        expected: "base64",
                    })?;
                Ok::<_, RecordError>((id, part, data))
            })();
            match piece {
                Ok((id, part, data)) => {
                    bodies.entry(id).or_default().insert(part, data);
                }
                Err(e) => errors.push(e),
            }
        } else {
            match head_from_item(item) {
                Ok((w, p)) => {
                    heads.insert(w.receipt_id.clone(), (w, p));
                }
                Err(e) => errors.push(e),
            }
        }
    }
    let mut writes = Vec::new();
    for (id, (mut w, want)) in heads {
        let parts = bodies.remove(&id).unwrap_or_default();
        if parts.len() != want || parts.keys().enumerate().any(|(i, k)| i != *k) {
            errors.push(RecordError::MissingAttribute {
                name: format!("body piece of receipt {id} ({} of {want})", parts.len()),
            });
            continue;
        }
        w.body = parts.into_values().flatten().collect();
        writes.push(w);
    }
    writes.sort_by(|a, b| (&a.path, a.seq).cmp(&(&b.path, b.seq)));
    (writes, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &str, seq: u64, body: Vec<u8>) -> QueuedWrite {
        QueuedWrite {
            receipt_id: format!("r-{path}-{seq}"),
            path: path.into(),
            seq,
            method: "POST".into(),
            query: Some("a=1".into()),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("x-a".into(), "1".into()),
                ("x-a".into(), "2".into()),
            ],
            body,
            idempotency_key: "k".into(),
            client_key: true,
            queued_at: "2025-01-01T00:00:00Z".parse().unwrap(),
            attempts: 0,
            last_error: None,
            depth_shard: 5,
        }
    }

    #[test]
    fn a_write_round_trips_through_its_items_whatever_its_body_size() {
        for size in [0, 1, BODY_PIECE_BYTES, BODY_PIECE_BYTES + 1, 1024 * 1024] {
            let body: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let w = write("/orders", 7, body);
            let mut items = write_items(&w, PENDING_PK);
            assert_eq!(items.len(), 1 + size.div_ceil(BODY_PIECE_BYTES), "{size}");
            assert!(items.iter().all(|i| format!("{i:?}").len() < 400_000));
            items.reverse();
            let (back, errors) = writes_from_items(&items);
            assert!(errors.is_empty(), "{errors:?}");
            assert_eq!(back, vec![w], "{size}");
        }
    }

    #[test]
    fn writes_read_back_in_path_then_sequence_order_and_a_missing_piece_is_an_error() {
        let a2 = write("/a", 2, vec![1]);
        let a10 = write("/a", 10, vec![]);
        let b1 = write("/b", 1, vec![2; BODY_PIECE_BYTES + 5]);
        let mut items: Vec<Item> = [&b1, &a10, &a2]
            .iter()
            .flat_map(|w| write_items(w, PENDING_PK))
            .collect();
        let (writes, errors) = writes_from_items(&items);
        assert!(errors.is_empty());
        let order: Vec<(&str, u64)> = writes.iter().map(|w| (w.path.as_str(), w.seq)).collect();
        assert_eq!(order, [("/a", 2), ("/a", 10), ("/b", 1)]);
        // Sort keys sort the same way.
        let mut sks: Vec<String> = items.iter().filter_map(Key::of).map(|k| k.sk).collect();
        sks.sort();
        assert!(sks[0].starts_with("/a#00000000000000000002"));
        items.pop();
        let (writes, errors) = writes_from_items(&items);
        assert_eq!(writes.len(), 2);
        assert_eq!(errors.len(), 1);
    }

    #[test]
    fn enqueue_is_one_transaction_counting_up_to_the_limit_and_taking_the_key_once() {
        let w = write("/a", 1, vec![0; BODY_PIECE_BYTES * 2]);
        let ops = enqueue_ops(&w, 100);
        assert_eq!(ops.len(), 3 + 3);
        // Shard 5 of 32 holds 3 of the 100 (the first four hold 4).
        match &ops[ENQUEUE_DEPTH_OP] {
            Op::Update {
                key,
                expression,
                condition,
                values,
                ..
            } => {
                assert_eq!(key, &depth_key(5));
                assert_eq!(key.sk, "DEPTH#05");
                assert_eq!(expression, "ADD #n0 :v0");
                assert_eq!(
                    condition.as_deref(),
                    Some("attribute_not_exists(#n0) OR #n0 < :max")
                );
                assert_eq!(values[":max"], Attr::n(3));
                assert_eq!(values[":v0"], Attr::n(1));
            }
            other => panic!("{other:?}"),
        }
        match &ops[ENQUEUE_KEY_OP] {
            Op::Put { item, condition } => {
                assert_eq!(item[PK], Attr::s("IDEMPOTENCY#k"));
                assert_eq!(*condition, Some(NOT_EXISTS));
            }
            other => panic!("{other:?}"),
        }
        match &ops[ENQUEUE_RECEIPT_OP] {
            Op::Put { item, condition } => {
                assert_eq!(item[PK], Attr::s("RECEIPT#r-/a-1"));
                assert_eq!(*condition, Some(NOT_EXISTS));
            }
            other => panic!("{other:?}"),
        }
        // The write's own item only if its path's sequence is free; its pieces follow it.
        let conditions: Vec<(String, Option<&str>)> = ops[ENQUEUE_WRITE_OP..]
            .iter()
            .map(|o| match o {
                Op::Put { item, condition } => (Key::of(item).unwrap().sk, *condition),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            conditions,
            [
                ("/a#00000000000000000001".to_owned(), Some(NOT_EXISTS)),
                ("/a#00000000000000000001#BODY#000".to_owned(), None),
                ("/a#00000000000000000001#BODY#001".to_owned(), None),
            ]
        );
    }

    #[test]
    fn settling_removes_every_item_of_the_write_and_updates_the_receipt() {
        let w = write("/a", 1, vec![0; BODY_PIECE_BYTES + 1]);
        let now = "2025-01-02T00:00:00Z".parse().unwrap();
        let ops = replayed_ops(&w, 201, now, 7);
        let deleted = ops
            .iter()
            .filter(|o| matches!(o, Op::Delete { key, .. } if key.pk == PENDING_PK))
            .count();
        assert_eq!(deleted, 3);
        let dead = dead_letter_ops(&w, 5, Some(500), "HTTP 500", now);
        let moved = dead
            .iter()
            .filter(|o| matches!(o, Op::Put { item, .. } if item[PK] == Attr::s(DEAD_PK)))
            .count();
        assert_eq!(moved, 3);
        // Both count down the shard the write was counted on.
        for ops in [&ops, &dead] {
            assert!(ops.iter().any(|o| matches!(o,
                Op::Update { key, values, .. } if key == &depth_key(5) && values[":v0"] == Attr::n(-1))));
        }
    }

    #[test]
    fn the_shards_quotas_add_up_to_the_maximum_and_each_used_shard_holds_at_least_one() {
        // (max depth, shards used, quota of shard 0, quota of the last used shard)
        for (max, used, first, last) in [
            (1, 1, 1, 1),
            (4, 4, 1, 1),
            (32, 32, 1, 1),
            (100, 32, 4, 3),
            (10_000, 32, 313, 312),
            (50_000, 32, 1563, 1562),
        ] {
            assert_eq!(depth_shards(max), used, "{max}");
            let quotas: Vec<u64> = (0..DEPTH_SHARDS).map(|s| shard_quota(max, s)).collect();
            assert_eq!(quotas.iter().sum::<u64>(), max, "{max}");
            assert_eq!(
                (quotas[0], quotas[used as usize - 1]),
                (first, last),
                "{max}"
            );
            assert!(quotas[..used as usize].iter().all(|q| *q >= 1), "{max}");
            assert!(quotas[used as usize..].iter().all(|q| *q == 0), "{max}");
        }
        assert_eq!(depth_shards(0), 0);
        assert_eq!(shard_quota(0, 0), 0);
    }

    #[test]
    fn a_write_goes_to_a_shard_with_room_and_none_once_the_sum_reaches_the_maximum() {
        let depths = |v: &[(u32, u64)]| v.iter().copied().collect::<BTreeMap<u32, u64>>();
        // Empty: any used shard, chosen by the draw.
        assert_eq!(shard_with_room(4, &depths(&[]), 6), Some(2));
        // Shards 0, 1 and 3 full (1 each of 4): only shard 2 has room, whatever the draw.
        for draw in 0..10 {
            assert_eq!(
                shard_with_room(4, &depths(&[(0, 1), (1, 1), (3, 1)]), draw),
                Some(2)
            );
        }
        // The sum at the maximum: full, even if a shard is below its quota (another one over
        // it, as a write counted before the maximum was lowered leaves it).
        assert_eq!(
            shard_with_room(4, &depths(&[(0, 2), (1, 1), (3, 1)]), 0),
            None
        );
        assert_eq!(shard_with_room(0, &depths(&[]), 0), None);
        // Shards read from the QUEUE partition's items; other items are not shards.
        let mut a = depth_key(3).to_item();
        a.insert(DEPTH.into(), Attr::n(7));
        let mut b = depth_key(12).to_item();
        b.insert(DEPTH.into(), Attr::n(2));
        let other = receipt_key("r").to_item();
        assert_eq!(
            depths_from_items(&[a, b, other]),
            depths(&[(3, 7), (12, 2)])
        );
    }

    #[test]
    fn a_writes_place_is_its_arrival_in_nanoseconds_and_sorts_as_time_does() {
        let at = |t: &str| arrival_seq(t.parse().unwrap());
        assert_eq!(at("1970-01-01T00:00:00Z"), 0);
        assert_eq!(at("1969-12-31T23:59:59Z"), 0, "before the epoch: 0");
        assert_eq!(
            at("2026-12-08T00:00:00.000000001Z"),
            1_796_688_000_000_000_001
        );
        let (a, b) = (
            at("2026-12-08T00:00:00.999999999Z"),
            at("2026-12-08T00:00:01Z"),
        );
        assert_eq!(b - a, 1);
        assert!(write_sk("/p", a) < write_sk("/p", b));
        // Up to the nanosecond counter's end in 2262 (chrono's i64 nanoseconds) as well.
        assert!(write_sk("/p", at("2262-04-11T00:00:00Z")) > write_sk("/p", b));
    }

    #[test]
    fn a_receipt_round_trips_through_its_item() {
        let w = write("/a", 3, vec![]);
        let mut r = Receipt::queued(&w);
        assert_eq!(receipt_from_item(&receipt_item(&r)).unwrap(), r);
        r.state = ReceiptState::Replayed;
        r.status = Some(201);
        r.attempts = 2;
        r.settled_at = Some("2025-01-01T00:01:00Z".parse().unwrap());
        assert_eq!(receipt_from_item(&receipt_item(&r)).unwrap(), r);
    }
}
