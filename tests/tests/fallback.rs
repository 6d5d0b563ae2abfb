//! The fallback function end to end on both worlds (`on_both!`): the queue in memory or in
//! moto's DynamoDB, the upstream a loopback HTTP server of the test's own. Writes on a
//! queue-safe route are stored before their 202 and receipt; a repeated `Idempotency-Key` is
//! queued once; writes of a path on the same nanosecond are each stored, in order; a full queue, an oversized body and malformed JSON are refused with nothing
//! stored; an unknown route gets the configured default; a forward is held until capacity
//! answers, or answered 503 with `Retry-After` when the budget runs out. Then the keeper's
//! replay: in order per path, only once no traffic shift is active, each outcome on its
//! receipt; a write that keeps failing is dead-lettered and reported.

use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use costop_app::keeper::{KeeperOutcome, ReplayReport};
use costop_app::{HasQueue, HasRecords, Keeper, KeeperPorts, Mode, Records, WriteQueue};
use costop_core::fallback::headers;
use costop_core::record::{self, Key};
use costop_tests::upstream::TestUpstream;
use costop_tests::{Harness, Setup, events, on_both};
use serde_json::Value;

/// Writes to `/items` are safe to queue and JSON; `/payments` forwards; `/status` answers from
/// configuration; anything else is refused (the default).
const ROUTES: &str = r#"[
    {"prefix": "/items", "queue_safe": true, "json": true},
    {"prefix": "/payments"},
    {"method": "GET", "prefix": "/status", "respond": {"status": 200, "headers": {"cache-control": "no-store"}, "body": "degraded"}}
]"#;

/// The queue holds this many writes at most.
const MAX_DEPTH: usize = 4;

fn setup() -> Setup {
    Setup::default_scenario()
        .with_env("COSTOP_FALLBACK_ROUTES", ROUTES)
        .with_env("COSTOP_FALLBACK_DEFAULT_POLICY", "reject")
        .with_env("COSTOP_QUEUE_MAX_DEPTH", &MAX_DEPTH.to_string())
        .with_env("COSTOP_FALLBACK_FORWARD_BUDGET_MS", "1500")
        .with_env("COSTOP_FALLBACK_BACKOFF_BASE_MS", "20")
        .with_env("COSTOP_FALLBACK_BACKOFF_MAX_MS", "100")
        .with_env("COSTOP_REPLAY_RATE", "200")
        .with_env("COSTOP_REPLAY_MAX_ATTEMPTS", "2")
}

fn request(
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> http::Request<Bytes> {
    let mut b = http::Request::builder().method(method).uri(target);
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    b.body(Bytes::copy_from_slice(body))
        .expect("a valid request")
}

fn write(path: &str, body: &str) -> http::Request<Bytes> {
    request(
        "POST",
        path,
        &[
            ("content-type", "application/json"),
            ("x-request-id", &uuid::Uuid::new_v4().to_string()),
        ],
        body.as_bytes(),
    )
}

fn body_json(r: &http::Response<Bytes>) -> Value {
    serde_json::from_slice(r.body()).unwrap_or(Value::Null)
}

fn header<'a>(r: &'a http::Response<Bytes>, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// An upstream that answers 201 to everything.
async fn accepting() -> TestUpstream {
    TestUpstream::start(|_, _| 201).await
}

async fn a_write_on_a_queue_safe_route_is_stored_before_its_202_and_receipt<H: Harness>(h: H) {
    let up = accepting().await;
    let f = h.fallback(&up.url);
    let (r, served) = f.handle(write("/items/cart?v=2", r#"{"n": 1}"#)).await;
    assert_eq!(r.status(), 202, "[{}] {:?}", h.flavor(), r.body());
    assert_eq!(header(&r, headers::X_COSTOP_FALLBACK), "queue");
    let receipt = body_json(&r);
    let id = receipt["id"].as_str().expect("a receipt id").to_owned();
    assert_eq!(served.receipt.as_deref(), Some(id.as_str()));
    let location = format!("/_costop/receipts/{id}");
    assert_eq!(header(&r, "location"), location);
    assert_eq!(receipt["state"], "queued");
    assert_eq!(receipt["path"], "/items/cart");
    // Stored before the answer: the queue has it, whole, and nothing reached the service.
    let pending = f.world().queue().pending().await.expect("the queue reads");
    assert_eq!(pending.len(), 1, "[{}]", h.flavor());
    assert_eq!(pending[0].body, br#"{"n": 1}"#);
    assert_eq!(pending[0].query.as_deref(), Some("v=2"));
    assert!(
        !pending[0].client_key,
        "a key is generated when the client sent none"
    );
    assert!(up.seen().is_empty());
    // The receipt reads back; an unknown one is 404.
    let (r, _) = f.handle(request("GET", &location, &[], b"")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(body_json(&r)["state"], "queued");
    let (r, _) = f
        .handle(request("GET", "/_costop/receipts/nosuchreceipt", &[], b""))
        .await;
    assert_eq!(r.status(), 404, "[{}]", h.flavor());
    // Reads on the same route are forwarded.
    let (r, _) = f.handle(request("GET", "/items/cart", &[], b"")).await;
    assert_eq!((r.status().as_u16(), up.seen().len()), (201, 1));
}

async fn a_repeated_idempotency_key_is_queued_once<H: Harness>(h: H) {
    let up = accepting().await;
    let f = h.fallback(&up.url);
    let keyed = || {
        request(
            "PUT",
            "/items/k1",
            &[
                ("content-type", "application/json"),
                ("idempotency-key", "order-7"),
            ],
            br#"{"qty": 2}"#,
        )
    };
    let (first, _) = f.handle(keyed()).await;
    let (second, served) = f.handle(keyed()).await;
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (202, 202)
    );
    assert!(served.duplicate, "[{}]", h.flavor());
    assert_eq!(body_json(&first)["id"], body_json(&second)["id"]);
    let pending = f.world().queue().pending().await.expect("the queue reads");
    assert_eq!(pending.len(), 1, "[{}] queued twice", h.flavor());
    assert_eq!(pending[0].idempotency_key, "order-7");
    assert!(pending[0].client_key);
}

async fn a_full_queue_answers_503_with_retry_after_and_stores_nothing<H: Harness>(h: H) {
    let up = accepting().await;
    let f = h.fallback(&up.url);
    for n in 0..MAX_DEPTH {
        let (r, _) = f
            .handle(write("/items/a", &format!("{{\"n\": {n}}}")))
            .await;
        assert_eq!(r.status(), 202);
    }
    let before = h.queue_items().await;
    let (r, served) = f
        .handle(write("/items/a", r#"{"n": "one too many"}"#))
        .await;
    assert_eq!(r.status(), 503, "[{}] {:?}", h.flavor(), r.body());
    assert_eq!(header(&r, headers::RETRY_AFTER), "5");
    assert!(served.gave_up);
    assert_eq!(
        h.queue_items().await,
        before,
        "[{}] something was stored",
        h.flavor()
    );
    let pending = f.world().queue().pending().await.expect("the queue reads");
    assert_eq!(pending.len(), MAX_DEPTH);
    assert_eq!(f.world().queue().depth().await.unwrap(), MAX_DEPTH as u64);
}

/// Writes arriving together: on the bed's DynamoDB their transactions overlap and meet on the
/// depth shards (`TransactionConflict`, as DynamoDB cancels them); each is queued once, whole,
/// and counted once.
async fn writes_arriving_together_are_each_queued_and_counted_once<H: Harness>(h: H) {
    const WRITES: usize = 48;
    let up = accepting().await;
    let f = h.fallback(&up.url);
    let answers = futures::future::join_all((0..WRITES).map(|n| {
        f.handle(write(
            &format!("/items/p{}", n % 3),
            &format!("{{\"n\": {n}}}"),
        ))
    }))
    .await;
    let statuses: Vec<u16> = answers.iter().map(|(r, _)| r.status().as_u16()).collect();
    assert!(
        statuses.iter().all(|s| *s == 202),
        "[{}] {statuses:?}",
        h.flavor()
    );
    let pending = f.world().queue().pending().await.expect("the queue reads");
    assert_eq!(pending.len(), WRITES, "[{}]", h.flavor());
    let mut bodies: Vec<&[u8]> = pending.iter().map(|w| w.body.as_slice()).collect();
    bodies.sort();
    bodies.dedup();
    assert_eq!(
        bodies.len(),
        WRITES,
        "[{}] a write stored twice",
        h.flavor()
    );
    assert_eq!(
        f.world().queue().depth().await.unwrap(),
        WRITES as u64,
        "[{}]",
        h.flavor()
    );
}

/// A write's place on its path is its arrival time; writes of one path taken on the same
/// nanosecond (different functions' environments) are each stored, none over another, in the
/// order they were offered.
async fn writes_of_a_path_taken_on_the_same_nanosecond_are_each_queued_in_the_order_offered<
    H: Harness,
>(
    h: H,
) {
    let up = accepting().await;
    let f = h.fallback(&up.url);
    let at = Utc::now();
    for n in 0..3u8 {
        let write = costop_core::fallback::QueuedWrite {
            receipt_id: format!("same-ns-{n}"),
            path: "/items/x".into(),
            seq: 0,
            method: "POST".into(),
            query: None,
            headers: vec![("content-type".into(), "application/json".into())],
            body: vec![n],
            idempotency_key: format!("same-ns-key-{n}"),
            client_key: true,
            queued_at: at,
            attempts: 0,
            last_error: None,
            depth_shard: 0,
        };
        let enqueued = f
            .world()
            .queue()
            .enqueue(write, MAX_DEPTH as u64)
            .await
            .expect("the queue takes it");
        assert!(
            matches!(enqueued, costop_app::Enqueued::Queued(_)),
            "[{}] {enqueued:?}",
            h.flavor()
        );
    }
    let pending = f.world().queue().pending().await.expect("the queue reads");
    let bodies: Vec<u8> = pending.iter().map(|w| w.body[0]).collect();
    assert_eq!(bodies, [0, 1, 2], "[{}]", h.flavor());
    let first = costop_core::fallback::record::arrival_seq(at);
    let seqs: Vec<u64> = pending.iter().map(|w| w.seq).collect();
    assert_eq!(seqs, [first, first + 1, first + 2], "[{}]", h.flavor());
    assert_eq!(f.world().queue().depth().await.unwrap(), 3);
}

async fn a_body_over_one_megabyte_is_refused_with_413_and_nothing_is_stored<H: Harness>(h: H) {
    let up = accepting().await;
    let f = h.fallback(&up.url);
    let mut big = b"[".to_vec();
    big.resize(1024 * 1024, b' ');
    big.extend_from_slice(b"1]");
    let (r, _) = f
        .handle(request(
            "POST",
            "/items/big",
            &[("content-type", "application/json")],
            &big,
        ))
        .await;
    assert_eq!(r.status(), 413, "[{}]", h.flavor());
    assert_eq!(
        h.queue_items().await,
        0,
        "[{}] something was stored",
        h.flavor()
    );
    assert!(up.seen().is_empty());
    // Just under the limit is taken, whole, across the table's item size.
    big.truncate(1024 * 1024 - 2);
    big.extend_from_slice(b"1]");
    let (r, _) = f
        .handle(request(
            "POST",
            "/items/big",
            &[("content-type", "application/json")],
            &big,
        ))
        .await;
    assert_eq!(r.status(), 202, "[{}] {:?}", h.flavor(), r.body());
    let pending = f.world().queue().pending().await.expect("the queue reads");
    assert_eq!(pending[0].body.len(), 1024 * 1024);
}

async fn malformed_json_on_a_json_route_is_refused_with_400_and_nothing_is_stored<H: Harness>(
    h: H,
) {
    let up = accepting().await;
    let f = h.fallback(&up.url);
    let (r, _) = f.handle(write("/items/x", r#"{"n": "#)).await;
    assert_eq!(r.status(), 400, "[{}]", h.flavor());
    assert!(
        body_json(&r)["error"]
            .as_str()
            .unwrap_or("")
            .contains("not JSON")
    );
    let too_long = "k".repeat(300);
    let (r, _) = f
        .handle(request(
            "POST",
            "/items/x",
            &[("idempotency-key", &too_long)],
            b"{}",
        ))
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        h.queue_items().await,
        0,
        "[{}] something was stored",
        h.flavor()
    );
    assert!(up.seen().is_empty());
    // A route that does not declare JSON takes any body (and forwards it).
    let (r, _) = f
        .handle(request("POST", "/payments/1", &[], b"not json"))
        .await;
    assert_eq!(r.status(), 201);
}

async fn an_unknown_route_gets_the_configured_default_and_a_fixed_route_its_response<H: Harness>(
    h: H,
) {
    let up = accepting().await;
    let f = h.fallback(&up.url);
    let (r, served) = f.handle(write("/elsewhere", "{}")).await;
    assert_eq!(served.policy, "reject", "[{}]", h.flavor());
    assert_eq!(r.status(), 503);
    assert_eq!(header(&r, headers::RETRY_AFTER), "5");
    let (r, _) = f.handle(request("GET", "/status/now", &[], b"")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "cache-control"), "no-store");
    assert_eq!(r.body().as_ref(), b"degraded");
    assert!(
        up.seen().is_empty(),
        "[{}] reached the upstream",
        h.flavor()
    );
    assert_eq!(h.queue_items().await, 0);
}

async fn a_forward_is_held_and_retried_until_the_upstream_answers<H: Harness>(h: H) {
    // No capacity for the first three tries, then the service answers.
    let up = TestUpstream::start(|n, _| if n < 3 { 503 } else { 201 }).await;
    let f = h.fallback(&up.url);
    let (r, served) = f
        .handle(request(
            "POST",
            "/payments/9?x=1",
            &[
                ("connection", "keep-alive, x-private"),
                ("x-private", "hop"),
                ("keep-alive", "timeout=5"),
                ("x-forwarded-for", "203.0.113.7"),
                ("x-forwarded-proto", "https"),
            ],
            b"pay",
        ))
        .await;
    assert_eq!(r.status(), 201, "[{}] {:?}", h.flavor(), r.body());
    assert_eq!(served.attempts, Some(4));
    let seen = up.seen();
    assert_eq!(seen.len(), 4);
    let last = &seen[3];
    assert_eq!(
        (last.method.as_str(), last.target.as_str()),
        ("POST", "/payments/9?x=1")
    );
    assert_eq!(last.body.as_ref(), b"pay");
    assert_eq!(last.headers["x-forwarded-for"], "203.0.113.7");
    assert_eq!(last.headers["x-forwarded-proto"], "https");
    for hop in ["x-private", "keep-alive"] {
        assert!(
            !last.headers.contains_key(hop),
            "[{}] {hop} forwarded",
            h.flavor()
        );
    }
    assert_eq!(h.queue_items().await, 0);
}

async fn a_forward_answers_503_with_retry_after_when_the_budget_runs_out<H: Harness>(h: H) {
    let up = TestUpstream::start(|_, _| 502).await;
    let f = h.fallback(&up.url);
    let (r, served) = f.handle(request("GET", "/items/cart", &[], b"")).await;
    assert_eq!(r.status(), 503, "[{}]", h.flavor());
    assert_eq!(header(&r, headers::RETRY_AFTER), "5");
    assert!(served.gave_up);
    assert!(up.seen().len() > 1, "[{}] not retried", h.flavor());
    // Every attempt reached the upstream but perhaps the last, sent with what was left of
    // the budget, which may end before its connection does.
    let (attempts, seen) = (served.attempts.unwrap_or(0), up.seen().len() as u32);
    assert!(
        (seen..=seen + 1).contains(&attempts),
        "[{}] {attempts} attempts, {seen} seen",
        h.flavor()
    );
    // Nothing listening at all is no answer either.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let (r, _) = h
        .fallback(&closed)
        .handle(request("GET", "/items/cart", &[], b""))
        .await;
    assert_eq!(r.status(), 503);
}

/// One keeper tick; its replay report and its metrics.
async fn tick<W: KeeperPorts>(keeper: &Keeper<W>) -> (ReplayReport, Vec<Value>) {
    let outcome = keeper
        .handle(&events::scheduled_tick(Utc::now()), Mode::Execute)
        .await
        .expect("the tick succeeds");
    let metrics = costop_app::telemetry::keeper::metrics(keeper.config(), &outcome, Utc::now());
    match outcome {
        KeeperOutcome::Tick {
            replay: Some(r), ..
        } => (r, metrics),
        other => panic!("no replay in {other:?}"),
    }
}

/// A traffic-shift lease, as the shifting code leaves one per shifted listener rule.
fn shift_lease() -> Key {
    Key {
        pk: record::SHIFT_PK.into(),
        sk: "RULE#arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/shop/1/2/3"
            .into(),
    }
}

async fn receipt_of<W: costop_app::FallbackPorts>(f: &costop_app::Fallback<W>, id: &str) -> Value {
    let (r, _) = f
        .handle(request("GET", &format!("/_costop/receipts/{id}"), &[], b""))
        .await;
    assert_eq!(r.status(), 200);
    body_json(&r)
}

async fn queued_writes_are_replayed_in_order_per_path_once_no_traffic_shift_is_active<
    H: Harness,
>(
    h: H,
) {
    let up = accepting().await;
    let f = h.fallback(&up.url);
    let keeper = h.keeper_to(&up.url);
    let records = keeper.world().records();
    records
        .put(shift_lease().to_item())
        .await
        .expect("the lease is written");
    let mut ids = Vec::new();
    for (path, n, key) in [
        ("/items/a", 1, None),
        ("/items/b", 1, Some("b-1")),
        ("/items/a", 2, None),
        ("/items/a", 3, None),
    ] {
        let mut req = write(path, &format!("{{\"n\": {n}}}"));
        if let Some(k) = key {
            req.headers_mut()
                .insert("idempotency-key", k.parse().unwrap());
        }
        let (r, _) = f.handle(req).await;
        assert_eq!(r.status(), 202);
        ids.push(body_json(&r)["id"].as_str().unwrap().to_owned());
    }

    // A shift is active: nothing is replayed.
    let (report, _) = tick(&keeper).await;
    assert!(report.gated, "[{}] {report:?}", h.flavor());
    assert_eq!(report.pending, 4);
    assert!(
        up.seen().is_empty(),
        "[{}] replayed during a shift",
        h.flavor()
    );

    // Traffic is back.
    records
        .delete(&shift_lease())
        .await
        .expect("the lease goes");
    let (report, metrics) = tick(&keeper).await;
    assert!(!report.gated);
    assert_eq!(report.replayed.len(), 4, "[{}] {report:?}", h.flavor());
    assert_eq!(report.pending, 0);
    let seen = up.seen();
    let on_a: Vec<&str> = seen
        .iter()
        .filter(|s| s.target == "/items/a")
        .map(|s| std::str::from_utf8(&s.body).unwrap())
        .collect();
    assert_eq!(
        on_a,
        [r#"{"n": 1}"#, r#"{"n": 2}"#, r#"{"n": 3}"#],
        "[{}]",
        h.flavor()
    );
    for s in &seen {
        let key = s.headers[headers::IDEMPOTENCY_KEY].to_str().unwrap();
        assert!(!key.is_empty());
        assert!(s.headers.contains_key(headers::X_COSTOP_RECEIPT));
        assert!(
            s.headers.contains_key("x-request-id"),
            "the client's headers go along"
        );
    }
    let b = seen.iter().find(|s| s.target == "/items/b").unwrap();
    assert_eq!(
        b.headers[headers::IDEMPOTENCY_KEY],
        "b-1",
        "the client's own key"
    );
    for id in &ids {
        let r = receipt_of(&f, id).await;
        assert_eq!(
            (r["state"].as_str(), r["status"].as_u64()),
            (Some("replayed"), Some(201)),
            "[{}]",
            h.flavor()
        );
    }
    assert!(f.world().queue().pending().await.unwrap().is_empty());
    assert_eq!(f.world().queue().depth().await.unwrap(), 0);
    let replayed = metrics
        .iter()
        .find_map(|m| m.get("ReplayedWrites").cloned());
    assert_eq!(replayed, Some(Value::from(4.0)));

    // Nothing replays twice.
    let (report, _) = tick(&keeper).await;
    assert!(report.replayed.is_empty());
    assert_eq!(up.seen().len(), 4);
}

async fn paths_are_replayed_side_by_side_each_one_write_at_a_time<H: Harness>(h: H) {
    // A slow service: each answer takes 150 ms, thirty times the pace's 5 ms. Four writes (the
    // queue's depth here) on three paths.
    let up = accepting().await;
    up.set_delay(Duration::from_millis(150));
    let f = h.fallback(&up.url);
    let keeper = h.keeper_to(&up.url);
    for (path, n) in [
        ("/items/a", 1),
        ("/items/b", 1),
        ("/items/a", 2),
        ("/items/c", 1),
    ] {
        let (r, _) = f.handle(write(path, &format!("{{\"n\": {n}}}"))).await;
        assert_eq!(r.status(), 202);
    }
    let (report, _) = tick(&keeper).await;
    assert_eq!(report.replayed.len(), 4, "[{}] {report:?}", h.flavor());
    let held = up.held();
    assert!(
        held.most >= 2,
        "[{}] the paths went one after another: {held:?}",
        h.flavor()
    );
    assert!(
        held.most_on.values().all(|&n| n == 1),
        "[{}] a path had two writes in flight: {held:?}",
        h.flavor()
    );
    for (path, want) in [("/items/a", 2), ("/items/b", 1), ("/items/c", 1)] {
        let bodies: Vec<String> = up
            .seen()
            .iter()
            .filter(|s| s.target == path)
            .map(|s| String::from_utf8_lossy(&s.body).into_owned())
            .collect();
        let expected: Vec<String> = (1..=want).map(|n| format!("{{\"n\": {n}}}")).collect();
        assert_eq!(bodies, expected, "[{}] {path} out of sequence", h.flavor());
    }
}

async fn a_write_the_upstream_keeps_failing_is_dead_lettered_after_its_attempts_and_reported<
    H: Harness,
>(
    h: H,
) {
    // The service fails every replay of the poisoned write, and takes the others.
    let up = TestUpstream::start(|_, s| {
        if s.body.as_ref() == br#"{"poison": true}"# {
            500
        } else {
            201
        }
    })
    .await;
    let f = h.fallback(&up.url);
    let keeper = h.keeper_to(&up.url);
    let mut ids = Vec::new();
    for (path, body) in [
        ("/items/bad", r#"{"poison": true}"#),
        ("/items/bad", r#"{"after": true}"#),
        ("/items/ok", r#"{"ok": true}"#),
    ] {
        let (r, _) = f.handle(write(path, body)).await;
        ids.push(body_json(&r)["id"].as_str().unwrap().to_owned());
    }
    let (poisoned, after, ok) = (&ids[0], &ids[1], &ids[2]);

    // First pass: the poisoned write fails, the write behind it on its path waits.
    let (report, _) = tick(&keeper).await;
    assert_eq!(
        report.replayed,
        vec![ok.clone()],
        "[{}] {report:?}",
        h.flavor()
    );
    assert_eq!((report.retried, report.blocked), (1, 1));
    assert!(report.dead_lettered.is_empty());
    assert!(
        !up.seen()
            .iter()
            .any(|s| s.body.as_ref() == br#"{"after": true}"#),
        "[{}] out of order",
        h.flavor()
    );
    assert_eq!(receipt_of(&f, poisoned).await["state"], "queued");

    // Second pass, its last attempt: dead-lettered and reported; the path goes on.
    let (report, metrics) = tick(&keeper).await;
    assert_eq!(
        report.dead_lettered,
        vec![poisoned.clone()],
        "[{}] {report:?}",
        h.flavor()
    );
    assert_eq!(report.replayed, vec![after.clone()]);
    let dead = metrics
        .iter()
        .find_map(|m| m.get("DeadLetteredWrites").cloned());
    assert_eq!(dead, Some(Value::from(1.0)));
    let r = receipt_of(&f, poisoned).await;
    assert_eq!(r["state"], "dead_lettered", "[{}]", h.flavor());
    assert_eq!(
        (r["attempts"].as_u64(), r["status"].as_u64()),
        (Some(2), Some(500))
    );
    assert_eq!(receipt_of(&f, after).await["state"], "replayed");
    // Kept, whole: never dropped.
    let letters = f.world().queue().dead_letters().await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].body, br#"{"poison": true}"#);
    assert_eq!(f.world().queue().depth().await.unwrap(), 0);
    assert_eq!(
        up.seen()
            .iter()
            .filter(|s| s.body.as_ref() == br#"{"poison": true}"#)
            .count(),
        2
    );
}

on_both!(
    queued_writes_are_replayed_in_order_per_path_once_no_traffic_shift_is_active,
    setup()
);
on_both!(
    writes_of_a_path_taken_on_the_same_nanosecond_are_each_queued_in_the_order_offered,
    setup()
);
on_both!(
    paths_are_replayed_side_by_side_each_one_write_at_a_time,
    setup()
);
on_both!(
    a_write_the_upstream_keeps_failing_is_dead_lettered_after_its_attempts_and_reported,
    setup()
);
on_both!(
    a_write_on_a_queue_safe_route_is_stored_before_its_202_and_receipt,
    setup()
);
on_both!(a_repeated_idempotency_key_is_queued_once, setup());
on_both!(
    a_full_queue_answers_503_with_retry_after_and_stores_nothing,
    setup()
);
on_both!(
    writes_arriving_together_are_each_queued_and_counted_once,
    setup().with_env("COSTOP_QUEUE_MAX_DEPTH", "1000")
);
on_both!(
    a_body_over_one_megabyte_is_refused_with_413_and_nothing_is_stored,
    setup()
);
on_both!(
    malformed_json_on_a_json_route_is_refused_with_400_and_nothing_is_stored,
    setup()
);
on_both!(
    an_unknown_route_gets_the_configured_default_and_a_fixed_route_its_response,
    setup()
);
on_both!(
    a_forward_is_held_and_retried_until_the_upstream_answers,
    setup()
);
on_both!(
    a_forward_answers_503_with_retry_after_when_the_budget_runs_out,
    setup()
);

/// DynamoDB cancels a transaction that meets another on an item (`TransactionConflict`), as
/// settles of several paths counting down one depth shard can; the bed's window makes it
/// happen by chance, the fakes' queue on demand. The settle is tried again; the path goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_whose_settle_meets_another_transaction_is_settled_on_a_later_attempt_and_its_path_goes_on()
 {
    let h = <costop_tests::FastHarness as Harness>::start(setup()).await;
    let up = accepting().await;
    let f = h.fallback(&up.url);
    let keeper = h.keeper_to(&up.url);
    for n in 1..=3 {
        let (r, _) = f
            .handle(write("/items/a", &format!("{{\"n\": {n}}}")))
            .await;
        assert_eq!(r.status(), 202);
    }
    // The first write's settle is cancelled twice (another lane's settle on its depth shard).
    f.world().queue.conflict_next(2);
    let (report, _) = tick(&keeper).await;
    assert_eq!(report.replayed.len(), 3, "{report:?}");
    assert_eq!(
        (report.unsettled, report.blocked, report.pending),
        (0, 0, 0)
    );
    // Each write reached the service once: the settle was tried again, not the replay.
    assert_eq!(up.seen().len(), 3);
}

/// DynamoDB cancels a transaction that meets another on the same item (`TransactionConflict`),
/// as concurrent writes counted on one depth shard do; the bed's window makes it happen by
/// chance, the fakes' queue on demand. The write is queued on a later attempt, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_transaction_meets_another_is_queued_on_a_later_attempt_once() {
    let h = <costop_tests::FastHarness as Harness>::start(setup()).await;
    let up = accepting().await;
    let f = h.fallback(&up.url);
    f.world().queue.conflict_next(2);
    let (r, served) = f.handle(write("/items/a", r#"{"n": 1}"#)).await;
    assert_eq!(r.status(), 202, "{:?}", r.body());
    assert_eq!(served.attempts, Some(3));
    let pending = f.world().queue().pending().await.expect("the queue reads");
    assert_eq!(pending.len(), 1);
    assert_eq!(body_json(&r)["id"], pending[0].receipt_id.as_str());

    // Conflicts past the budget: 503 with Retry-After, nothing more stored.
    f.world().queue.conflict_next(u32::MAX);
    let (r, served) = f.handle(write("/items/a", r#"{"n": 2}"#)).await;
    assert_eq!(r.status(), 503);
    assert_eq!(header(&r, headers::RETRY_AFTER), "5");
    assert!(served.gave_up);
    assert_eq!(f.world().queue().pending().await.unwrap().len(), 1);
}
